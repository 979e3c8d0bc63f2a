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


def _q(text: str) -> str:
    """``text`` as a double-quoted Python string literal (JSON escaping is valid Python)."""
    return json.dumps(text)


def render(types: dict[str, dict[str, str]], roots: dict[str, str]) -> str:
    """The text of the data module: deterministic for given inputs and client version."""
    out: list[str] = [
        '"""Field tables for strict decoding; GENERATED by scripts/gen_schema.py - do not edit.',
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
