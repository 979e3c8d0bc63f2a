"""Generate ``src/svcnet/model/_schema_data.py``: the field tables behind strict decoding.

svcnet's API server must reject unknown fields the way a real one does when a client
sends ``fieldValidation=Strict`` (kubectl always does for ``apply``, ``create -f``,
``replace -f`` and ``edit``). That needs, for every Kubernetes type reachable from a
served kind, the JSON names of its fields and what each field holds. The official
``kubernetes`` Python client is generated from the upstream OpenAPI document and carries
exactly those facts on every model class:

* ``openapi_types``: python attribute -> type string (``'V1ObjectMeta'``,
  ``'List[V1Container]'``, ``'Dict[str, str]'``, ``'object'``, ``'int'``, ...);
* ``attribute_map``: python attribute -> JSON field name.

This script walks the model graph from the root model of each served kind (see
:data:`KIND_ROOTS`), keeps only the reachable types, and writes a compact, deterministic
data module with two tables:

``KIND_ROOTS``
    kind -> root type name (``"Deployment" -> "V1Deployment"``).
``TYPES``
    type name -> {JSON field name -> type reference}. A type reference is

    * ``"V1Container"``: an object of that type (its fields are checked);
    * ``"[V1Container]"``: a list of objects of that type;
    * ``"{}"``: a map with arbitrary keys (labels, annotations, data, limits, ...);
    * ``""``: a scalar, a list of scalars, or arbitrary content (``object`` in the
      client: IntOrString fields and ``managedFields[].fieldsV1``) - never checked.

``GO_NAMES``
    type name -> the Go type as ``reflect.Type.String()`` prints it (``"v1.PodSpec"``,
    ``"v1.Event"`` for ``CoreV1Event``): the client name minus its group/version prefix,
    qualified by the Go package name (the lowercased version: ``v1``).
``GO_TYPES``
    type name -> {JSON field name -> Go type spec}, used for JSON type checking (the
    decoder's ``json: cannot unmarshal ...`` errors). A Go type spec is

    * ``"string"``, ``"int32"``, ``"int64"``, ``"bool"``, ``"float64"``, ``"uint8"``: a Go
      scalar; ``"string:v1.Protocol"``: a named string type (see :data:`TYPED_STRINGS`);
    * ``"time"``: ``metav1.Time``/``MicroTime`` (a JSON string, RFC 3339);
    * ``"intstr"``: ``intstr.IntOrString`` (a JSON string or an int32);
    * ``"quantity"``: ``resource.Quantity`` (a JSON string or number);
    * ``"any"``: free-form JSON (``managedFields[].fieldsV1``);
    * ``"V1PodSpec"`` (starts upper-case): an object of that type;
    * ``"[S]"``: a list of ``S`` (``[uint8]`` is Go ``[]byte``: base64 string or list);
    * ``"{S}"``: a map from string keys to ``S`` (``{quantity}`` is ``v1.ResourceList``).

    Approximations, because the client keeps the JSON type but not the Go type:

    * the client says ``int`` for both ``int32`` and ``int64``; a field is ``int64`` when
      its JSON name is in :data:`INT64_FIELDS` (the ``int64`` fields of the served types:
      generations, grace/deadline seconds, UIDs/GIDs, ...), ``int32`` otherwise;
    * the client says ``str`` for named Go string types; the few listed in
      :data:`TYPED_STRINGS` get their Go name, every other one is plain ``string`` (this
      only changes the ``of type ...`` part of a message);
    * the client says ``object`` for IntOrString and free-form JSON alike, and
      ``Dict[str, str]``/``str`` for quantities; :data:`INT_OR_STRING`, :data:`FREE_FORM`,
      :data:`QUANTITY_MAPS` and :data:`QUANTITY_FIELDS` classify them. An ``object`` field
      in neither table stops the generator (exit 2) so it gets classified.

Fields are written sorted by JSON name and types sorted by name, so the output depends
only on the installed client version (recorded in ``CLIENT_VERSION``).

Usage (from the repository root, with the project virtualenv)::

    .venv/bin/python scripts/gen_schema.py           # (re)write the data module
    .venv/bin/python scripts/gen_schema.py --check   # exit 1 if the file is stale

Exit status: 0 on success; 1 when ``--check`` finds a difference; 2 when the client
models contain a type shape this script does not understand (the module is not written).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes.client.models as models

#: Served kind -> root model class name in the ``kubernetes`` client. ``Scale`` is the
#: ``autoscaling/v1`` body of the ``/scale`` subresource of Deployments and ReplicaSets.
KIND_ROOTS: dict[str, str] = {
    "Namespace": "V1Namespace",
    "Pod": "V1Pod",
    "Service": "V1Service",
    "Endpoints": "V1Endpoints",
    "Secret": "V1Secret",
    "ConfigMap": "V1ConfigMap",
    "ServiceAccount": "V1ServiceAccount",
    "Node": "V1Node",
    "Event": "CoreV1Event",
    "ResourceQuota": "V1ResourceQuota",
    "LimitRange": "V1LimitRange",
    "Deployment": "V1Deployment",
    "ReplicaSet": "V1ReplicaSet",
    "EndpointSlice": "V1EndpointSlice",
    "Ingress": "V1Ingress",
    "IngressClass": "V1IngressClass",
    "Lease": "V1Lease",
    "Scale": "V1Scale",
}

#: Client type strings that carry no checkable structure. ``object`` is the client's
#: rendering of IntOrString and of free-form JSON (``fieldsV1``, ``RawExtension``).
_OPAQUE = frozenset(
    {"str", "int", "float", "bool", "bytes", "date", "datetime", "object", "Any"}
)

#: JSON names of client ``int`` fields whose Go type is ``int64`` (all other ``int`` fields
#: are ``int32``). Valid for the types reachable from :data:`KIND_ROOTS`: object
#: generations, grace-period/deadline/toleration/expiration/sleep seconds, user and group
#: IDs, image sizes and swap capacity in bytes.
INT64_FIELDS = frozenset({
    "activeDeadlineSeconds", "capacity", "defaultUser", "deletionGracePeriodSeconds",
    "expirationSeconds", "fsGroup", "generation", "gid", "observedGeneration", "runAsGroup",
    "runAsUser", "seconds", "sizeBytes", "supplementalGroups", "terminationGracePeriodSeconds",
    "tolerationSeconds", "uid", "user",
})

#: (type, JSON field) of the client ``object`` fields that are ``intstr.IntOrString``.
INT_OR_STRING = frozenset({
    ("V1HTTPGetAction", "port"),
    ("V1RollingUpdateDeployment", "maxSurge"),
    ("V1RollingUpdateDeployment", "maxUnavailable"),
    ("V1ServicePort", "targetPort"),
    ("V1TCPSocketAction", "port"),
})

#: (type, JSON field) of the client ``object`` fields that hold free-form JSON.
FREE_FORM = frozenset({("V1ManagedFieldsEntry", "fieldsV1")})

#: JSON names of client ``Dict[str, str]`` fields that are ``v1.ResourceList`` (maps of
#: ``resource.Quantity``) in the reachable types.
QUANTITY_MAPS = frozenset({
    "allocatable", "allocatedResources", "capacity", "default", "defaultRequest", "hard",
    "limits", "max", "maxLimitRequestRatio", "min", "overhead", "requests", "used",
})

#: (type, JSON field) of the client ``str`` fields that are a single ``resource.Quantity``.
QUANTITY_FIELDS = frozenset({
    ("V1EmptyDirVolumeSource", "sizeLimit"),
    ("V1NodeAllocatableMappedResources", "quantity"),
    ("V1ResourceFieldSelector", "divisor"),
})

#: (type, JSON field) -> Go named string type, for common client ``str`` fields (or the
#: elements of ``List[str]`` fields). Anything not listed is reported as plain ``string``.
TYPED_STRINGS: dict[tuple[str, str], str] = {
    ("CoreV1EndpointPort", "protocol"): "v1.Protocol",
    ("DiscoveryV1EndpointPort", "protocol"): "v1.Protocol",
    ("V1Capabilities", "add"): "v1.Capability",
    ("V1Capabilities", "drop"): "v1.Capability",
    ("V1Container", "imagePullPolicy"): "v1.PullPolicy",
    ("V1Container", "terminationMessagePolicy"): "v1.TerminationMessagePolicy",
    ("V1ContainerPort", "protocol"): "v1.Protocol",
    ("V1DeploymentCondition", "status"): "v1.ConditionStatus",
    ("V1DeploymentCondition", "type"): "v1.DeploymentConditionType",
    ("V1DeploymentStrategy", "type"): "v1.DeploymentStrategyType",
    ("V1EphemeralContainer", "imagePullPolicy"): "v1.PullPolicy",
    ("V1EphemeralContainer", "terminationMessagePolicy"): "v1.TerminationMessagePolicy",
    ("V1HTTPIngressPath", "pathType"): "v1.PathType",
    ("V1ManagedFieldsEntry", "operation"): "v1.ManagedFieldsOperationType",
    ("V1NamespaceCondition", "status"): "v1.ConditionStatus",
    ("V1NamespaceCondition", "type"): "v1.NamespaceConditionType",
    ("V1NamespaceStatus", "phase"): "v1.NamespacePhase",
    ("V1NodeAddress", "type"): "v1.NodeAddressType",
    ("V1NodeCondition", "status"): "v1.ConditionStatus",
    ("V1NodeCondition", "type"): "v1.NodeConditionType",
    ("V1NodeStatus", "phase"): "v1.NodePhase",
    ("V1ObjectMeta", "uid"): "types.UID",
    ("V1ObjectReference", "uid"): "types.UID",
    ("V1OwnerReference", "uid"): "types.UID",
    ("V1PodCondition", "status"): "v1.ConditionStatus",
    ("V1PodCondition", "type"): "v1.PodConditionType",
    ("V1PodSpec", "dnsPolicy"): "v1.DNSPolicy",
    ("V1PodSpec", "restartPolicy"): "v1.RestartPolicy",
    ("V1PodStatus", "phase"): "v1.PodPhase",
    ("V1ReplicaSetCondition", "status"): "v1.ConditionStatus",
    ("V1ReplicaSetCondition", "type"): "v1.ReplicaSetConditionType",
    ("V1Secret", "type"): "v1.SecretType",
    ("V1ServicePort", "protocol"): "v1.Protocol",
    ("V1ServiceSpec", "externalTrafficPolicy"): "v1.ServiceExternalTrafficPolicy",
    ("V1ServiceSpec", "internalTrafficPolicy"): "v1.ServiceInternalTrafficPolicy",
    ("V1ServiceSpec", "ipFamilies"): "v1.IPFamily",
    ("V1ServiceSpec", "ipFamilyPolicy"): "v1.IPFamilyPolicy",
    ("V1ServiceSpec", "sessionAffinity"): "v1.ServiceAffinity",
    ("V1ServiceSpec", "type"): "v1.ServiceType",
    ("V1Taint", "effect"): "v1.TaintEffect",
    ("V1Toleration", "effect"): "v1.TaintEffect",
    ("V1Toleration", "operator"): "v1.TolerationOperator",
}

#: Client scalar type strings -> Go type spec (``int`` is refined by :data:`INT64_FIELDS`).
_SCALAR_SPECS = {"str": "string", "int": "int32", "bool": "bool", "float": "float64",
                 "datetime": "time", "date": "string", "bytes": "[uint8]"}

#: Group/version prefix of a client model name: ``V1``, ``CoreV1``, ``DiscoveryV1beta1``.
_PREFIX = re.compile(r"^[A-Za-z]*?(?P<version>V\d+(?:(?:alpha|beta)\d+)?)(?=[A-Z])")

_LIST = re.compile(r"^List\[(?P<inner>.+)\]$")
_DICT = re.compile(r"^Dict\[str, (?P<inner>.+)\]$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "src/svcnet/model/_schema_data.py"


class SchemaShapeError(Exception):
    """A client type string this generator cannot translate into a type reference."""


def _model(name: str) -> Any:
    """The client model class called ``name``; raises SchemaShapeError if there is none."""
    cls = getattr(models, name, None)
    if cls is None or not hasattr(cls, "openapi_types") or not hasattr(cls, "attribute_map"):
        raise SchemaShapeError(f"{name} is not a model class of the kubernetes client")
    return cls


def type_ref(client_type: str, pending: list[str]) -> str:
    """Translate one ``openapi_types`` string into a type reference (module docstring).

    Model names met on the way are appended to ``pending`` so the caller visits them.
    Raises SchemaShapeError for shapes the checker cannot represent (maps of objects).
    """
    t = client_type.strip()
    if t.startswith("Optional[") and t.endswith("]"):
        t = t[len("Optional["):-1]
    if t in _OPAQUE:
        return ""
    m = _LIST.match(t)
    if m:
        inner = type_ref(m.group("inner"), pending)
        return "" if inner == "" else f"[{inner}]"
    m = _DICT.match(t)
    if m:
        inner = type_ref(m.group("inner"), pending)
        if inner not in ("", "{}"):
            raise SchemaShapeError(f"map of structured values is not supported: {client_type}")
        return "{}"
    if _NAME.match(t):
        _model(t)
        pending.append(t)
        return t
    raise SchemaShapeError(f"unrecognised client type string: {client_type!r}")


def collect(roots: dict[str, str]) -> dict[str, dict[str, str]]:
    """Walk the model graph from ``roots``; return type name -> {JSON field -> type ref}.

    Only types reachable from a root are included. Raises SchemaShapeError on any type
    string :func:`type_ref` rejects, or when two attributes share a JSON name.
    """
    types: dict[str, dict[str, str]] = {}
    pending = list(roots.values())
    while pending:
        name = pending.pop()
        if name in types:
            continue
        cls = _model(name)
        fields: dict[str, str] = {}
        for attr, client_type in cls.openapi_types.items():
            json_name = cls.attribute_map[attr]
            if json_name in fields:
                raise SchemaShapeError(f"{name}: duplicate JSON field {json_name}")
            fields[json_name] = type_ref(client_type, pending)
        types[name] = fields
    return types


def go_name(type_name: str) -> str:
    """The Go ``reflect.Type.String()`` of client model ``type_name``: ``V1PodSpec`` ->
    ``v1.PodSpec``, ``CoreV1Event`` -> ``v1.Event``. Raises SchemaShapeError when the name
    carries no group/version prefix."""
    m = _PREFIX.match(type_name)
    if m is None:
        raise SchemaShapeError(f"no version prefix in model name {type_name!r}")
    return f"{m.group('version').lower()}.{type_name[m.end():]}"


def go_spec(owner: str, field: str, client_type: str) -> str:
    """The Go type spec (module docstring) of field ``field`` of model ``owner`` whose
    ``openapi_types`` string is ``client_type``. Raises SchemaShapeError for an
    unclassified ``object`` field or a shape :func:`type_ref` would reject too."""
    t = client_type.strip()
    if t.startswith("Optional[") and t.endswith("]"):
        t = t[len("Optional["):-1]
    m = _LIST.match(t)
    if m:
        return f"[{go_spec(owner, field, m.group('inner'))}]"
    m = _DICT.match(t)
    if m:
        if m.group("inner").strip() == "str" and field in QUANTITY_MAPS:
            return "{quantity}"
        return f"{{{go_spec(owner, field, m.group('inner'))}}}"
    if t == "object" or t == "Any":
        if (owner, field) in INT_OR_STRING:
            return "intstr"
        if (owner, field) in FREE_FORM:
            return "any"
        raise SchemaShapeError(f"{owner}.{field}: unclassified free-form field ({t}); "
                               "add it to INT_OR_STRING or FREE_FORM")
    if t == "str":
        if (owner, field) in QUANTITY_FIELDS:
            return "quantity"
        typed = TYPED_STRINGS.get((owner, field))
        return f"string:{typed}" if typed else "string"
    if t == "int":
        return "int64" if field in INT64_FIELDS else "int32"
    if t in _SCALAR_SPECS:
        return _SCALAR_SPECS[t]
    if _NAME.match(t):
        _model(t)
        return t
    raise SchemaShapeError(f"unrecognised client type string: {client_type!r}")


def collect_go_types(type_names: Iterable[str]) -> dict[str, dict[str, str]]:
    """type name -> {JSON field -> Go type spec} for each of ``type_names``."""
    out: dict[str, dict[str, str]] = {}
    for name in type_names:
        cls = _model(name)
        out[name] = {cls.attribute_map[attr]: go_spec(name, cls.attribute_map[attr], ct)
                     for attr, ct in cls.openapi_types.items()}
    return out


def _q(text: str) -> str:
    """``text`` as a double-quoted Python string literal (JSON escaping is valid Python)."""
    return json.dumps(text)


def render(types: dict[str, dict[str, str]], roots: dict[str, str]) -> str:
    """The text of the data module: deterministic for given inputs and client version.

    Raises SchemaShapeError when a field cannot be given a Go type spec (:func:`go_spec`).
    """
    out: list[str] = [
        '"""Field and Go type tables for strict decoding and JSON type checking; GENERATED',
        'by scripts/gen_schema.py - do not edit.',
        "",
        f"Source: the official ``kubernetes`` Python client {kubernetes.__version__} models.",
        "See scripts/gen_schema.py for the meaning of the type references.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f"CLIENT_VERSION = {_q(kubernetes.__version__)}",
        "",
        "KIND_ROOTS: dict[str, str] = {",
    ]
    out += [f"    {_q(kind)}: {_q(root)}," for kind, root in sorted(roots.items())]
    out += ["}", "", "TYPES: dict[str, dict[str, str]] = {"]
    for name in sorted(types):
        out.append(f"    {_q(name)}: {{")
        for field_name in sorted(types[name]):
            out.append(f"        {_q(field_name)}: {_q(types[name][field_name])},")
        out.append("    },")
    out += ["}", "", "GO_NAMES: dict[str, str] = {"]
    out += [f"    {_q(name)}: {_q(go_name(name))}," for name in sorted(types)]
    out += ["}", "", "GO_TYPES: dict[str, dict[str, str]] = {"]
    go_types = collect_go_types(types)
    for name in sorted(go_types):
        out.append(f"    {_q(name)}: {{")
        for field_name in sorted(go_types[name]):
            out.append(f"        {_q(field_name)}: {_q(go_types[name][field_name])},")
        out.append("    },")
    out += ["}", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring for arguments and exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="compare with the existing file instead of writing it")
    args = parser.parse_args(argv)
    try:
        text = render(collect(KIND_ROOTS), KIND_ROOTS)
    except SchemaShapeError as exc:
        print(f"gen_schema: {exc}", file=sys.stderr)
        return 2
    output: Path = args.output
    if args.check:
        current = output.read_text() if output.exists() else ""
        if current != text:
            print(f"gen_schema: {output} is stale; re-run scripts/gen_schema.py", file=sys.stderr)
            return 1
        return 0
    output.write_text(text)
    print(f"gen_schema: wrote {output} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
