"""Validation of API objects with the Kubernetes API server's field paths and messages.

:func:`validate` checks one (already defaulted) object of a kind on create (``old`` None)
or update, and returns the field causes a real API server reports for the same object, in
the same order where practical; the caller turns them into a 422 with
:func:`svcnet.model.errors.invalid_object`. Nothing here raises for bad input: malformed
values (wrong JSON types, nulls) are read as Go would read their zero value.

The rules and texts follow ``k8s.io/kubernetes/pkg/apis/*/validation`` and
``k8s.io/apimachinery`` at release 1.32. Known, intended differences:

- Loopback endpoint addresses are accepted by default (``ValidationOptions``) because the
  ``process`` pod runtime gives pods 127.x addresses; upstream rejects them.
- ``healthCheckNodePort`` is not required here: svcnet allocates it after validating.
- Go ``%#v`` renderings of structs (duplicate service ports, selectors, strategies) are
  reproduced for the common shapes only.
- Pod updates report the forbidden-change message without upstream's appended diff.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.model import kinds
from svcnet.model.defaulting import normalize_cluster_ips
from svcnet.model.errors import (
    FieldCause,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_long,
)
from svcnet.model.names import (
    _full,
    dns1035_label_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_value_errors,
    max_len_error,
    qualified_name_errors,
    regex_error,
    wildcard_subdomain_errors,
)

Obj = dict[str, Any]
Causes = list[FieldCause]

# --- message building blocks (apimachinery util/validation) -----------------------------

IMMUTABLE = "field is immutable"
NEGATIVE = "must be greater than or equal to 0"

_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_PERCENT_FMT = "[0-9]+%"
_HTTP_PATH_FMT = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+"

_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_PERCENT_MSG = "a valid percent string must be a numeric string followed by an ending '%'"
_RELAXED_ENV_MSG = ("a valid environment variable name must consist only of printable ASCII "
                    "characters other than '='")
_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"

_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_ANNOTATION_SIZE_LIMIT = 256 * 1024
_MAX_SECRET_SIZE = 1024 * 1024
_STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion"}




















def port_num_errors(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else ["must be between 1 and 65535, inclusive"]


def port_name_errors(name: str) -> list[str]:
    """``IsValidPortName`` (IANA_SVC_NAME): named container ports and target ports."""
    errs = [max_len_error(15)] if len(name) > 15 else []
    if not _full("[-a-z0-9]+", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def config_key_errors(key: str) -> list[str]:
    """``IsConfigMapKey``: keys of ConfigMap/Secret data."""
    errs = [max_len_error(253)] if len(key) > 253 else []
    if not _full(_CONFIG_KEY_FMT, key):
        errs.append(regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME",
                                "key-name"))
    if key == ".":
        errs.append("must not be '.'")
    elif key == "..":
        errs.append("must not be '..'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def path_segment_name_errors(name: str) -> list[str]:
    """``ValidatePathSegmentName``: the weakest name rule (used for events)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in "/%" if c in name]


def _mask_trailing_dash(name: str) -> str:
    return name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name


NameRule = Callable[[str, bool], list[str]]

NAME_RULES: dict[str, NameRule] = {
    "dns1123-subdomain": lambda n, p: dns1123_subdomain_errors(_mask_trailing_dash(n) if p else n),
    "dns1123-label": lambda n, p: dns1123_label_errors(_mask_trailing_dash(n) if p else n),
    "dns1035-label": lambda n, p: dns1035_label_errors(_mask_trailing_dash(n) if p else n),
    "path-segment": lambda n, p: path_segment_name_errors(n),
}


# --- JSON readers and Go renderings ---------------------------------------------------------


def _map(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dicts(value: Any) -> list[Obj]:
    return [v for v in _list(value) if isinstance(v, dict)]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _go_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def go_string_map(m: Mapping[str, Any] | None, nil_if_empty: bool = False) -> str:
    """``%#v`` of a ``map[string]string`` (keys sorted, as fmt prints maps)."""
    if m is None or (nil_if_empty and not m):
        return "map[string]string(nil)"
    body = ", ".join(f"{_go_str(k)}:{_go_str(str(m[k]))}" for k in sorted(m))
    return "map[string]string{" + body + "}"


def go_string_slice(values: list[Any]) -> str:
    """``%#v`` of a ``[]string``."""
    if not values:
        return "[]string(nil)"
    return "[]string{" + ", ".join(_go_str(str(v)) for v in values) + "}"


def _go_int_or_string(value: Any) -> str:
    if isinstance(value, str):
        return f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:{_go_str(value)}}}'
    return f'intstr.IntOrString{{Type:0, IntVal:{_int(value)}, StrVal:""}}'


def go_label_selector(sel: Mapping[str, Any]) -> str:
    """``%#v`` of a ``v1.LabelSelector`` with matchLabels and (only nil) expressions."""
    labels = sel.get("matchLabels")
    exprs = sel.get("matchExpressions")
    ml = go_string_map(labels if isinstance(labels, dict) else None)
    me = ("[]v1.LabelSelectorRequirement(nil)" if not exprs
          else f"[]v1.LabelSelectorRequirement{{...{len(exprs)} items}}")
    return f"v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{me}}}"


def _raw(reason: str, label: str, path: str, rendered: str, detail: str = "") -> FieldCause:
    msg = f"{label}: {rendered}" + (f": {detail}" if detail else "")
    return FieldCause(reason, msg, path)


def invalid_raw(path: str, rendered: str, detail: str) -> FieldCause:
    """An Invalid cause whose value is already rendered (Go ``%#v`` of a struct/map/slice)."""
    return _raw("FieldValueInvalid", "Invalid value", path, rendered, detail)


def _not_found(path: str, value: str) -> FieldCause:
    return _raw("FieldValueNotFound", "Not found", path, _go_str(value))


def _too_many(path: str, actual: int, limit: int) -> FieldCause:
    return _raw("FieldValueTooMany", "Too many", path, str(actual),
                f"must have at most {limit} items")


def _each(path: str, value: Any, messages: list[str]) -> Causes:
    return [invalid(path, value, m) for m in messages]


def _nonnegative(path: str, value: int) -> Causes:
    return [invalid(path, value, NEGATIVE)] if value < 0 else []


def _immutable(path: str, new: Any, old: Any, rendered: str | None = None) -> Causes:
    if new == old:
        return []
    if rendered is not None:
        return [invalid_raw(path, rendered, IMMUTABLE)]
    return [invalid(path, new, IMMUTABLE)]


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's ``ParseIPSloppy``: like ``net.ParseIP`` but allowing leading zeros in IPv4."""
    text = value
    if "." in text and ":" not in text:
        parts = text.split(".")
        if len(parts) == 4 and all(p.isdigit() and p for p in parts):
            text = ".".join(str(int(p)) for p in parts)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def ip_errors(path: str, value: str) -> Causes:
    """``IsValidIP``."""
    return [] if _parse_ip(value) is not None else [invalid(path, value, _IP_MSG)]


def cidr_errors(path: str, value: str) -> Causes:
    """``IsValidCIDR``."""
    addr, sep, bits = value.partition("/")
    ok = bool(sep) and _parse_ip(addr) is not None and bits.isdigit()
    if ok:
        try:
            ipaddress.ip_network(f"{_parse_ip(addr)}/{int(bits)}", strict=False)
        except ValueError:
            ok = False
    return [] if ok else [invalid(path, value, _CIDR_MSG)]


def non_special_ip_errors(path: str, value: str, allow_loopback: bool = False) -> Causes:
    """``ValidateNonSpecialIP``: no unspecified, loopback or link-local addresses."""
    ip = _parse_ip(value)
    if ip is None:
        return [invalid(path, value, "must be a valid IP address")]
    causes: Causes = []
    if ip.is_unspecified:
        causes.append(invalid(path, value, f"may not be unspecified ({value})"))
    if ip.is_loopback and not allow_loopback:
        causes.append(invalid(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip.is_link_local and not ip.is_multicast:
        causes.append(invalid(path, value,
                              "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    if _link_local_multicast(ip):
        causes.append(invalid(path, value, "may not be in the link-local multicast range "
                                           "(224.0.0.0/24, ff02::/10)"))
    return causes


def _link_local_multicast(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if ip.version == 4:
        return ip in ipaddress.ip_network("224.0.0.0/24")
    return ip.is_multicast and (int(ip) >> 112) & 0xF == 2


def _port_num_or_name(path: str, value: Any) -> Causes:
    """``ValidatePortNumOrName`` for an IntOrString port."""
    if isinstance(value, str):
        return _each(path, value, port_name_errors(value))
    return _each(path, _int(value), port_num_errors(_int(value)))


# --- options ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationOptions:
    """Switches for svcnet's deliberate departures from upstream validation."""

    # Endpoints/EndpointSlice addresses in 127.0.0.0/8 or ::1 are accepted: the process
    # runtime gives pods loopback addresses.
    allow_loopback_endpoints: bool = True


DEFAULT_OPTIONS = ValidationOptions()


# --- metadata -----------------------------------------------------------------------------


def validate_labels(labels: Any, path: str) -> Causes:
    """``ValidateLabels``: every key a qualified name, every value a label value.

    Causes carry the map's path (``metadata.labels``), not the key, as upstream does;
    keys are visited in sorted order.
    """
    causes: Causes = []
    m = _map(labels)
    for key in sorted(m):
        value = _str(m[key]) if m[key] is not None else ""
        causes += _each(path, key, qualified_name_errors(key))
        causes += _each(path, value, label_value_errors(value))
    return causes


def validate_annotations(annotations: Any, path: str) -> Causes:
    """``ValidateAnnotations``: keys (case-insensitively) qualified names; total size."""
    m = _map(annotations)
    causes: Causes = []
    for key in sorted(m):
        causes += _each(path, key, qualified_name_errors(key.lower()))
    size = sum(len(k.encode()) + len(_str(v).encode()) for k, v in m.items())
    if size > _ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(path, "", _ANNOTATION_SIZE_LIMIT))
    return causes


def validate_label_selector(selector: Any, path: str) -> Causes:
    """``ValidateLabelSelector`` for a ``{matchLabels, matchExpressions}`` object."""
    if not isinstance(selector, dict):
        return []
    causes = validate_labels(selector.get("matchLabels"), path + ".matchLabels")
    for i, expr in enumerate(_dicts(selector.get("matchExpressions"))):
        causes += _selector_requirement(expr, f"{path}.matchExpressions[{i}]")
    return causes


def _selector_requirement(expr: Obj, path: str) -> Causes:
    causes: Causes = []
    op, values = _str(expr.get("operator")), _list(expr.get("values"))
    if op in ("In", "NotIn"):
        if not values:
            causes.append(required(path + ".values",
                                   "must be specified when `operator` is 'In' or 'NotIn'"))
    elif op in ("Exists", "DoesNotExist"):
        if values:
            causes.append(forbidden(
                path + ".values", "may not be specified when `operator` is 'Exists' or "
                                  "'DoesNotExist'"))
    else:
        causes.append(invalid(path + ".operator", op, "not a valid selector operator"))
    key = _str(expr.get("key"))
    causes += _each(path + ".key", key, qualified_name_errors(key))
    for j, v in enumerate(values):
        causes += _each(f"{path}.values[{j}]", _str(v), label_value_errors(_str(v)))
    return causes


def _owner_references(refs: Any, path: str) -> Causes:
    causes: Causes = []
    controller = ""
    for ref in _dicts(refs):
        api_version = _str(ref.get("apiVersion"))
        if not api_version.rpartition("/")[2]:
            causes.append(invalid(path + ".apiVersion", api_version, "version must not be empty"))
        for key, what in (("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not _str(ref.get(key)):
                causes.append(invalid(f"{path}.{key}", _str(ref.get(key)),
                                      f"{what} must not be empty"))
        if ref.get("controller") is True:
            current = f"{_str(ref.get('kind'))}/{_str(ref.get('name'))}"
            if controller:
                causes.append(invalid_raw(
                    path, "[]v1.OwnerReference{...}",
                    'Only one reference can have Controller set to true. Found "true" in '
                    f"references for {controller} and {current}"))
            else:
                controller = current
    return causes


def _finalizers(finalizers: Any, path: str) -> Causes:
    causes: Causes = []
    names = [_str(f) for f in _list(finalizers)]
    for name in names:
        causes += _each(path, name, qualified_name_errors(name))
        if "/" not in name and name not in _STANDARD_FINALIZERS:
            causes.append(invalid(path, name, "name is neither a standard finalizer name nor "
                                              "is it fully qualified"))
    if "orphan" in names and "foregroundDeletion" in names:
        causes.append(invalid_raw(path, go_string_slice(names),
                                  "finalizer orphan and foregroundDeletion cannot be both set"))
    return causes


def validate_object_meta(obj: Mapping[str, Any], namespaced: bool, name_rule: str) -> Causes:
    """``ValidateObjectMeta`` on create: name (by ``name_rule``, a key of
    :data:`NAME_RULES`), generateName, namespace presence and syntax, generation, labels,
    annotations, owner references and finalizers."""
    meta = _map(obj.get("metadata"))
    rule = NAME_RULES[name_rule]
    causes: Causes = []
    generate_name = _str(meta.get("generateName"))
    if generate_name:
        causes += _each("metadata.generateName", generate_name, rule(generate_name, True))
    name = _str(meta.get("name"))
    if not name:
        causes.append(required("metadata.name", "name or generateName is required"))
    else:
        causes += _each("metadata.name", name, rule(name, False))
    namespace = _str(meta.get("namespace"))
    if namespaced:
        if not namespace:
            causes.append(required("metadata.namespace"))
        else:
            causes += _each("metadata.namespace", namespace, dns1123_label_errors(namespace))
    elif namespace:
        causes.append(forbidden("metadata.namespace", "not allowed on this type"))
    causes += _nonnegative("metadata.generation", _int(meta.get("generation")))
    return causes + _meta_common(meta) + _finalizers(meta.get("finalizers"), "metadata.finalizers")


def _meta_common(meta: Obj) -> Causes:
    return (validate_labels(meta.get("labels"), "metadata.labels")
            + validate_annotations(meta.get("annotations"), "metadata.annotations")
            + _owner_references(meta.get("ownerReferences"), "metadata.ownerReferences"))


def validate_object_meta_update(obj: Mapping[str, Any], old: Mapping[str, Any]) -> Causes:
    """``ValidateObjectMetaUpdate``: name, namespace and (when given) uid are immutable;
    generation may not decrease; no new finalizers once deleting; labels, annotations and
    owner references stay valid. ``resourceVersion`` is the caller's business."""
    meta, old_meta = _map(obj.get("metadata")), _map(old.get("metadata"))
    causes: Causes = []
    if old_meta.get("deletionTimestamp"):
        added = sorted(set(map(str, _list(meta.get("finalizers"))))
                       - set(map(str, _list(old_meta.get("finalizers")))))
        if added:
            causes.append(forbidden("metadata.finalizers",
                                    "no new finalizers can be added if the object is being "
                                    f"deleted, found new finalizers {go_string_slice(added)}"))
    generation = _int(meta.get("generation"))
    if generation < _int(old_meta.get("generation")):
        causes.append(invalid("metadata.generation", generation, "must not be decremented"))
    for key in ("name", "namespace"):
        causes += _immutable(f"metadata.{key}", _str(meta.get(key)), _str(old_meta.get(key)))
    if _str(meta.get("uid")):
        causes += _immutable("metadata.uid", _str(meta.get("uid")), _str(old_meta.get("uid")))
    return causes + _meta_common(meta)


# --- pods -----------------------------------------------------------------------------------


def _container_ports(ports: Any, path: str) -> Causes:
    causes: Causes = []
    names: set[str] = set()
    for i, port in enumerate(_dicts(ports)):
        p = f"{path}[{i}]"
        name = _str(port.get("name"))
        if name:
            errs = port_name_errors(name)
            if errs:
                causes += _each(p + ".name", name, errs)
            elif name in names:
                causes.append(duplicate(p + ".name", name))
            names.add(name)
        cport = _int(port.get("containerPort"))
        if cport == 0:
            causes.append(required(p + ".containerPort"))
        else:
            causes += _each(p + ".containerPort", cport, port_num_errors(cport))
        host_port = _int(port.get("hostPort"))
        if host_port:
            causes += _each(p + ".hostPort", host_port, port_num_errors(host_port))
        causes += _protocol(port.get("protocol"), p + ".protocol")
    return causes


def _protocol(value: Any, path: str) -> Causes:
    proto = _str(value)
    if not proto:
        return [required(path)]
    return [] if proto in _PROTOCOLS else [not_supported(path, proto, _PROTOCOLS)]


def _enum(value: Any, path: str, allowed: list[str]) -> Causes:
    """Required when empty, else one of ``allowed`` (listed in the message as given)."""
    text = _str(value)
    if not text:
        return [required(path)]
    return [] if text in allowed else [not_supported(path, text, allowed)]


def _env(env: Any, path: str) -> Causes:
    causes: Causes = []
    for i, var in enumerate(_dicts(env)):
        name = _str(var.get("name"))
        if not name:
            causes.append(required(f"{path}[{i}].name"))
        elif any(not (32 <= ord(ch) < 127) or ch == "=" for ch in name):
            causes.append(invalid(f"{path}[{i}].name", name, _RELAXED_ENV_MSG))
    return causes


def _handler(handler: Obj, path: str) -> Causes:
    """``validateHandler``: exactly one of exec/httpGet/tcpSocket/grpc/sleep."""
    causes: Causes = []
    seen = 0
    for key in ("exec", "httpGet", "tcpSocket", "grpc", "sleep"):
        action = handler.get(key)
        if not isinstance(action, dict):
            continue
        if seen:
            causes.append(forbidden(f"{path}.{key}", "may not specify more than 1 handler type"))
            continue
        seen += 1
        causes += _action(key, action, f"{path}.{key}")
    if not seen:
        causes.append(required(path, "must specify a handler type"))
    return causes


def _action(key: str, action: Obj, path: str) -> Causes:
    if key == "exec":
        return [] if _list(action.get("command")) else [required(path + ".command")]
    if key == "httpGet":
        causes = [] if _str(action.get("path")) else [required(path + ".path")]
        causes += _port_num_or_name(path + ".port", action.get("port"))
        scheme = _str(action.get("scheme"))
        if scheme not in ("HTTP", "HTTPS"):
            causes.append(not_supported(path + ".scheme", scheme, ["HTTP", "HTTPS"]))
        return causes
    if key in ("tcpSocket",):
        return _port_num_or_name(path + ".port", action.get("port"))
    if key == "grpc":
        port = _int(action.get("port"))
        return _each(path + ".port", port, port_num_errors(port))
    seconds = _int(action.get("seconds"))
    return _nonnegative(path + ".seconds", seconds)


def _probe(probe: Any, path: str, kind: str) -> Causes:
    if not isinstance(probe, dict):
        return []
    causes = _handler(probe, path)
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold"):
        causes += _nonnegative(f"{path}.{key}", _int(probe.get(key)))
    grace = probe.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace <= 0:
        causes.append(invalid(path + ".terminationGracePeriodSeconds", grace,
                              "must be greater than 0"))
    if kind == "readiness" and grace is not None:
        causes.append(invalid(path + ".terminationGracePeriodSeconds", grace,
                              "must not be set for readinessProbes"))
    success = _int(probe.get("successThreshold"))
    if kind in ("liveness", "startup") and success != 1:
        causes.append(invalid(path + ".successThreshold", success, "must be 1"))
    return causes


def _volume_mounts(mounts: Any, volumes: set[str], path: str) -> Causes:
    causes: Causes = []
    for i, mount in enumerate(_dicts(mounts)):
        p = f"{path}[{i}]"
        name = _str(mount.get("name"))
        if not name:
            causes.append(required(p + ".name"))
        elif name not in volumes:
            causes.append(_not_found(p + ".name", name))
        if not _str(mount.get("mountPath")):
            causes.append(required(p + ".mountPath"))
    return causes


def _container(c: Obj, path: str, volumes: set[str]) -> Causes:
    """``validateContainerCommon`` (the parts svcnet models)."""
    causes: Causes = []
    name = _str(c.get("name"))
    if not name:
        causes.append(required(path + ".name"))
    else:
        causes += _each(path + ".name", name, dns1123_label_errors(name))
    if not _str(c.get("image")):
        causes.append(required(path + ".image"))
    causes += _enum(c.get("terminationMessagePolicy"), path + ".terminationMessagePolicy",
                    ["File", "FallbackToLogsOnError"])
    causes += _container_ports(c.get("ports"), path + ".ports")
    causes += _env(c.get("env"), path + ".env")
    causes += _volume_mounts(c.get("volumeMounts"), volumes, path + ".volumeMounts")
    causes += _enum(c.get("imagePullPolicy"), path + ".imagePullPolicy",
                    ["Always", "IfNotPresent", "Never"])
    return causes


def _containers(spec: Obj, path: str, volumes: set[str]) -> Causes:
    containers = _dicts(spec.get("containers"))
    if not containers:
        return [required(path)]
    causes: Causes = []
    names: set[str] = set()
    for i, c in enumerate(containers):
        p = f"{path}[{i}]"
        causes += _container(c, p, volumes)
        name = _str(c.get("name"))
        if name in names:
            causes.append(duplicate(p + ".name", name))
        names.add(name)
        lifecycle = _map(c.get("lifecycle"))
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                causes += _handler(lifecycle[hook], f"{p}.lifecycle.{hook}")
        for probe, kind in (("livenessProbe", "liveness"), ("readinessProbe", "readiness"),
                            ("startupProbe", "startup")):
            causes += _probe(c.get(probe), f"{p}.{probe}", kind)
        if c.get("restartPolicy") is not None:
            causes.append(forbidden(p + ".restartPolicy", "may not be set for non-init containers"))
    return causes


def _init_containers(spec: Obj, path: str, volumes: set[str]) -> Causes:
    causes: Causes = []
    taken = {_str(c.get("name")) for c in _dicts(spec.get("containers"))}
    for i, c in enumerate(_dicts(spec.get("initContainers"))):
        p = f"{path}[{i}]"
        causes += _container(c, p, volumes)
        name = _str(c.get("name"))
        if name in taken:
            causes.append(duplicate(p + ".name", name))
        taken.add(name)
    return causes


def _volumes(volumes: Any, path: str) -> tuple[set[str], Causes]:
    names: set[str] = set()
    causes: Causes = []
    for i, vol in enumerate(_dicts(volumes)):
        p = f"{path}[{i}]"
        name = _str(vol.get("name"))
        if not name:
            causes.append(required(p + ".name"))
        else:
            causes += _each(p + ".name", name, dns1123_label_errors(name))
        if name in names:
            causes.append(duplicate(p + ".name", name))
        names.add(name)
        sources = [k for k in vol if k != "name" and vol[k] is not None]
        if not sources:
            causes.append(required(p, "must specify a volume type"))
        elif len(sources) > 1:
            causes.append(forbidden(f"{p}.{sources[1]}", "may not specify more than 1 volume type"))
    return names, causes


def _dns_config(spec: Obj, path: str) -> Causes:
    if _str(spec.get("dnsPolicy")) != "None":
        return []
    config = spec.get("dnsConfig")
    if not isinstance(config, dict):
        return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
    servers = [_str(s) for s in _list(config.get("nameservers"))]
    if not servers:
        return [required(path + ".nameservers",
                         "must provide at least one DNS nameserver when `dnsPolicy` is None")]
    causes: Causes = []
    if len(servers) > 3:
        causes.append(invalid_raw(path + ".nameservers", go_string_slice(servers),
                                  "must not have more than 3 nameservers"))
    for i, server in enumerate(servers):
        causes += ip_errors(f"{path}.nameservers[{i}]", server)
    return causes


def validate_pod_spec(spec: Any, path: str) -> Causes:
    """``ValidatePodSpec`` (volumes, containers, init containers, restart and DNS policy,
    node selector, service account, node name, active deadline, hostname, subdomain)."""
    s = _map(spec)
    volumes, causes = _volumes(s.get("volumes"), path + ".volumes")
    causes += _containers(s, path + ".containers", volumes)
    causes += _init_containers(s, path + ".initContainers", volumes)
    causes += _enum(s.get("restartPolicy"), path + ".restartPolicy",
                    ["Always", "OnFailure", "Never"])
    causes += _enum(s.get("dnsPolicy"), path + ".dnsPolicy",
                    ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"])
    causes += validate_labels(s.get("nodeSelector"), path + ".nodeSelector")
    causes += _dns_config(s, path + ".dnsConfig")
    for key in ("serviceAccountName", "nodeName"):
        value = _str(s.get(key))
        if value:
            causes += _each(f"{path}.{key}", value, dns1123_subdomain_errors(value))
    deadline = s.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not 1 <= deadline <= 2**31 - 1:
        causes.append(invalid(path + ".activeDeadlineSeconds", deadline,
                              "must be between 1 and 2147483647, inclusive"))
    for key in ("hostname", "subdomain"):
        value = _str(s.get(key))
        if value:
            causes += _each(f"{path}.{key}", value, dns1123_label_errors(value))
    return causes


def validate_pod_template(template: Any, path: str) -> Causes:
    """``ValidatePodTemplateSpec``: template labels (reported at ``<path>.labels``),
    annotations and pod spec."""
    t = _map(template)
    meta = _map(t.get("metadata"))
    return (validate_labels(meta.get("labels"), path + ".labels")
            + validate_annotations(meta.get("annotations"), path + ".annotations")
            + validate_pod_spec(t.get("spec"), path + ".spec"))


_POD_UPDATE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)")


def _pod_mutable_view(spec: Obj) -> Obj:
    view = dict(spec)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        view.pop(key, None)
    for key in ("containers", "initContainers"):
        view[key] = [{k: v for k, v in c.items() if k != "image"}
                     for c in _dicts(spec.get(key))]
    return view


def _pod(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    causes = validate_pod_spec(obj.get("spec"), "spec")
    if old is not None:
        new_spec, old_spec = _map(obj.get("spec")), _map(old.get("spec"))
        if _pod_mutable_view(new_spec) != _pod_mutable_view(old_spec):
            causes.append(forbidden("spec", _POD_UPDATE_MSG))
    return causes


# --- apps -----------------------------------------------------------------------------------


def _selector_matches(selector: Obj, labels: Mapping[str, Any]) -> bool:
    """``LabelSelectorAsSelector(sel).Matches(labels)`` for a valid structured selector."""
    for key, value in _map(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expr in _dicts(selector.get("matchExpressions")):
        key, op = _str(expr.get("key")), _str(expr.get("operator"))
        values = [_str(v) for v in _list(expr.get("values"))]
        present = key in labels
        ok = {"In": present and labels.get(key) in values,
              "NotIn": not present or labels.get(key) not in values,
              "Exists": present, "DoesNotExist": not present}.get(op, False)
        if not ok:
            return False
    return True


def _selector_is_valid(selector: Obj) -> bool:
    return all(_str(e.get("operator")) in ("In", "NotIn", "Exists", "DoesNotExist")
               for e in _dicts(selector.get("matchExpressions")))


def _replica_template(spec: Obj, path: str) -> Causes:
    """``ValidatePodTemplateSpecForReplicaSet``: selector/labels match, template, Always."""
    selector = spec.get("selector")
    template = _map(spec.get("template"))
    labels = _map(_map(template.get("metadata")).get("labels"))
    causes: Causes = []
    sel = selector if isinstance(selector, dict) else None
    empty = sel is not None and not sel.get("matchLabels") and not sel.get("matchExpressions")
    if not empty and (sel is None or not _selector_matches(sel, labels)):
        causes.append(invalid_raw(path + ".metadata.labels",
                                  go_string_map(labels, nil_if_empty=True),
                                  "`selector` does not match template `labels`"))
    causes += validate_pod_template(template, path)
    policy = _str(_map(template.get("spec")).get("restartPolicy"))
    if policy != "Always":
        causes.append(not_supported(path + ".spec.restartPolicy", policy, ["Always"]))
    deadline = _map(template.get("spec")).get("activeDeadlineSeconds")
    if deadline is not None:
        causes.append(invalid(path + ".spec.activeDeadlineSeconds", deadline,
                              "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return causes


def _replicas_selector(spec: Obj, replica_set: bool) -> Causes:
    """Shared head of Deployment/ReplicaSet spec validation (a ReplicaSet checks
    ``minReadySeconds`` here, a Deployment after its strategy)."""
    causes = _nonnegative("spec.replicas", _int(spec.get("replicas")))
    if replica_set:
        causes += _nonnegative("spec.minReadySeconds", _int(spec.get("minReadySeconds")))
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        causes.append(required("spec.selector"))
    else:
        causes += validate_label_selector(selector, "spec.selector")
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            causes.append(invalid_raw("spec.selector", go_label_selector(selector),
                                      "empty selector is invalid for deployment"))
    if isinstance(selector, dict) and not _selector_is_valid(selector):
        causes.append(invalid_raw("spec.selector", go_label_selector(selector),
                                  "invalid label selector"))
    else:
        causes += _replica_template(spec, "spec.template")
    return causes


def _percent_or_int(value: Any, path: str) -> Causes:
    if isinstance(value, str):
        if _full(_PERCENT_FMT, value):
            return []
        return [invalid_raw(path, _go_int_or_string(value),
                            regex_error(_PERCENT_MSG, _PERCENT_FMT, "1%", "93%"))]
    return _nonnegative(path, _int(value))


def _int_or_percent_value(value: Any) -> int:
    if isinstance(value, str):
        return int(value[:-1]) if _full(_PERCENT_FMT, value) else 0
    return _int(value)


def _strategy(strategy: Any, path: str) -> Causes:
    s = _map(strategy)
    kind = _str(s.get("type"))
    rolling = s.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [forbidden(path + ".rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind != "RollingUpdate":
        rendered = (f"apps.DeploymentStrategy{{Type:{_go_str(kind)}, "
                    "RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}")
        return [_raw("FieldValueNotSupported", "Unsupported value", path, rendered,
                     'supported values: "Recreate", "RollingUpdate"')]
    if not isinstance(rolling, dict):
        return [required(path + ".rollingUpdate", "this should be defaulted and never be nil")]
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    p = path + ".rollingUpdate"
    causes = _percent_or_int(unavailable, p + ".maxUnavailable")
    causes += _percent_or_int(surge, p + ".maxSurge")
    if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
        causes.append(invalid_raw(p + ".maxUnavailable", _go_int_or_string(unavailable),
                                  "may not be 0 when `maxSurge` is 0"))
    if isinstance(unavailable, str) and _int_or_percent_value(unavailable) > 100:
        causes.append(invalid_raw(p + ".maxUnavailable", _go_int_or_string(unavailable),
                                  "must not be greater than 100%"))
    return causes


def _selector_immutable(obj: Obj, old: Obj | None) -> Causes:
    if old is None:
        return []
    new_sel = _map(obj.get("spec")).get("selector")
    old_sel = _map(old.get("spec")).get("selector")
    if _canonical_selector(new_sel) == _canonical_selector(old_sel):
        return []
    rendered = go_label_selector(new_sel) if isinstance(new_sel, dict) else "null"
    return [invalid_raw("spec.selector", rendered, IMMUTABLE)]


def _canonical_selector(sel: Any) -> Any:
    if not isinstance(sel, dict):
        return None
    return {"matchLabels": sel.get("matchLabels") or {},
            "matchExpressions": sel.get("matchExpressions") or []}


def _deployment(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    spec = _map(obj.get("spec"))
    causes = _replicas_selector(spec, replica_set=False)
    causes += _strategy(spec.get("strategy"), "spec.strategy")
    min_ready = _int(spec.get("minReadySeconds"))
    causes += _nonnegative("spec.minReadySeconds", min_ready)
    history = spec.get("revisionHistoryLimit")
    if isinstance(history, int):
        causes += _nonnegative("spec.revisionHistoryLimit", history)
    deadline = spec.get("progressDeadlineSeconds")
    if isinstance(deadline, int):
        causes += _nonnegative("spec.progressDeadlineSeconds", deadline)
        if deadline <= min_ready:
            causes.append(invalid("spec.progressDeadlineSeconds", deadline,
                                  "must be greater than minReadySeconds"))
    return causes + _selector_immutable(obj, old)


def _replica_set(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    spec = _map(obj.get("spec"))
    return _replicas_selector(spec, replica_set=True) + _selector_immutable(obj, old)


# --- services -------------------------------------------------------------------------------


def _is_headless(spec: Obj) -> bool:
    ips = _list(spec.get("clusterIPs"))
    return len(ips) == 1 and ips[0] == "None"


def _go_service_port(protocol: str, port: int, node_port: int = 0) -> str:
    return ('core.ServicePort{Name:"", Protocol:' + _go_str(protocol)
            + ", AppProtocol:(*string)(nil), Port:" + str(port)
            + ', TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:'
            + str(node_port) + "}")


def _service_port(port: Obj, path: str, require_name: bool, names: set[str]) -> Causes:
    causes: Causes = []
    name = _str(port.get("name"))
    if require_name and not name:
        causes.append(required(path + ".name"))
    elif name:
        causes += _each(path + ".name", name, dns1123_label_errors(name))
        if name in names:
            causes.append(duplicate(path + ".name", name))
        names.add(name)
    number = _int(port.get("port"))
    causes += _each(path + ".port", number, port_num_errors(number))
    causes += _protocol(port.get("protocol"), path + ".protocol")
    causes += _port_num_or_name(path + ".targetPort", port.get("targetPort"))
    app_protocol = port.get("appProtocol")
    if isinstance(app_protocol, str):
        causes += _each(path + ".appProtocol", app_protocol, qualified_name_errors(app_protocol))
    return causes


def _service_type_rules(spec: Obj) -> Causes:
    kind = _str(spec.get("type"))
    ips = _list(spec.get("clusterIPs"))
    if kind in ("LoadBalancer", "NodePort") and _is_headless(spec):
        return [invalid("spec.clusterIPs[0]", ips[0],
                        f"may not be set to 'None' for {kind} services")]
    if kind != "ExternalName":
        return []
    causes: Causes = []
    if ips:
        causes.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
    if _list(spec.get("ipFamilies")):
        causes.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
    if spec.get("ipFamilyPolicy") is not None:
        causes.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
    cname = _str(spec.get("externalName"))
    cname = cname[:-1] if cname.endswith(".") else cname
    if cname:
        causes += _each("spec.externalName", cname, dns1123_subdomain_errors(cname))
    else:
        causes.append(required("spec.externalName"))
    return causes


def _session_affinity(spec: Obj) -> Causes:
    affinity = _str(spec.get("sessionAffinity"))
    causes = _enum(affinity, "spec.sessionAffinity", ["ClientIP", "None"])
    path = "spec.sessionAffinityConfig"
    config = spec.get("sessionAffinityConfig")
    if affinity == "None" and config is not None:
        causes.append(forbidden(path, "must not be set when session affinity is None"))
    if affinity != "ClientIP":
        return causes
    detail = "when session affinity type is ClientIP"
    if not isinstance(config, dict):
        return causes + [required(path, detail)]
    client_ip = config.get("clientIP")
    if not isinstance(client_ip, dict):
        return causes + [required(path + ".clientIP", detail)]
    timeout = client_ip.get("timeoutSeconds")
    if not isinstance(timeout, int):
        return causes + [required(path + ".clientIP.timeoutSeconds", detail)]
    if not 0 < timeout <= 86400:
        causes.append(invalid(path + ".clientIP.timeoutSeconds", timeout,
                              "must be greater than 0 and less than 86400"))
    return causes


def _cluster_ips(spec: Obj) -> Causes:
    """``ValidateServiceClusterIPsRelatedFields``."""
    if _str(spec.get("type")) == "ExternalName":
        return []
    causes: Causes = []
    path = "spec.clusterIPs"
    ip, ips = _str(spec.get("clusterIP")), [_str(v) for v in _list(spec.get("clusterIPs"))]
    if ip:
        if not ips:
            causes.append(required(path))
        elif ips[0] != ip:
            causes.append(invalid_raw(path, go_string_slice(ips), "first value must match `clusterIP`"))
    elif ips:
        causes.append(invalid_raw(path, go_string_slice(ips),
                                  "must be empty when `clusterIP` is not specified"))
    seen: set[str] = set()
    for i, fam in enumerate(_list(spec.get("ipFamilies"))):
        fam = _str(fam)
        if fam not in ("IPv4", "IPv6"):
            causes.append(not_supported(f"spec.ipFamilies[{i}]", fam, ["IPv4", "IPv6"]))
        if fam in seen:
            causes.append(duplicate(f"spec.ipFamilies[{i}]", fam))
        seen.add(fam)
    policy = spec.get("ipFamilyPolicy")
    policies = ["PreferDualStack", "RequireDualStack", "SingleStack"]
    if policy is not None and policy not in policies:
        causes.append(not_supported("spec.ipFamilyPolicy", _str(policy), policies))
    return causes + _cluster_ip_values(spec, ips)


def _cluster_ip_values(spec: Obj, ips: list[str]) -> Causes:
    path = "spec.clusterIPs"
    causes: Causes = []
    bad = False
    for i, value in enumerate(ips):
        if i == 0 and value == "None":
            if len(ips) > 1:
                bad = True
                causes.append(invalid_raw(path, go_string_slice(ips),
                                          "'None' must be the first and only value"))
            continue
        errs = ip_errors(f"{path}[{i}]", value)
        bad = bad or bool(errs)
        causes += errs
    if len(ips) > 2:
        causes.append(invalid_raw(path, go_string_slice(ips), "may only hold up to 2 values"))
    if bad:
        return causes
    parsed = [_parse_ip(v) for v in ips]
    if len(ips) == 2 and parsed[0] is not None and parsed[1] is not None and \
            parsed[0].version == parsed[1].version:
        causes.append(invalid_raw(path, go_string_slice(ips),
                                  "may specify no more than one IP for each IP family"))
    families = [_str(f) for f in _list(spec.get("ipFamilies"))]
    if not _is_headless(spec):
        for i, (value, ip) in enumerate(zip(ips, parsed, strict=False)):
            if i >= len(families) or ip is None:
                break
            want = 4 if families[i] == "IPv4" else 6 if families[i] == "IPv6" else ip.version
            if ip.version != want:
                causes.append(invalid(f"{path}[{i}]", value,
                                      f"expected an {families[i]} value as indicated by "
                                      f"`ipFamilies[{i}]`"))
    return causes


def _service_ports(spec: Obj) -> Causes:
    ports = _dicts(spec.get("ports"))
    causes: Causes = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        causes += _service_port(port, f"spec.ports[{i}]", len(ports) > 1, names)
    return causes


def _node_ports_and_duplicates(spec: Obj) -> Causes:
    causes: Causes = []
    ports = _dicts(spec.get("ports"))
    if _str(spec.get("type")) == "ClusterIP":
        for i, port in enumerate(ports):
            if _int(port.get("nodePort")):
                causes.append(forbidden(f"spec.ports[{i}].nodePort",
                                        "may not be used when `type` is 'ClusterIP'"))
    seen_node: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        node_port = _int(port.get("nodePort"))
        if not node_port:
            continue
        key = (_str(port.get("protocol")), node_port)
        if key in seen_node:
            causes.append(duplicate(f"spec.ports[{i}].nodePort", node_port))
        seen_node.add(key)
    seen: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        key = (_str(port.get("protocol")), _int(port.get("port")))
        if key in seen:
            causes.append(_raw("FieldValueDuplicate", "Duplicate value", f"spec.ports[{i}]",
                               _go_service_port(*key)))
        seen.add(key)
    return causes


def _source_ranges(spec: Obj) -> Causes:
    ranges = [_str(r) for r in _list(spec.get("loadBalancerSourceRanges"))]
    if not ranges:
        return []
    path = "spec.LoadBalancerSourceRanges"  # sic: upstream's capitalised path
    causes: Causes = []
    if _str(spec.get("type")) != "LoadBalancer":
        causes.append(forbidden(path, "may only be used when `type` is 'LoadBalancer'"))
    for i, value in enumerate(ranges):
        causes += cidr_errors(f"{path}[{i}]", value.strip())
    return causes


def _traffic_policies(spec: Obj) -> Causes:
    causes: Causes = []
    kind = _str(spec.get("type"))
    if spec.get("allocateLoadBalancerNodePorts") is not None and kind != "LoadBalancer":
        causes.append(forbidden("spec.allocateLoadBalancerNodePorts",
                                "may only be used when `type` is 'LoadBalancer'"))
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        causes.append(required("allocateLoadBalancerNodePorts"))  # sic: upstream omits spec.
    lb_class = spec.get("loadBalancerClass")
    if lb_class is not None:
        if kind == "LoadBalancer":
            causes += _each("spec.loadBalancerClass", _str(lb_class),
                            qualified_name_errors(_str(lb_class)))
        else:
            causes.append(forbidden("spec.loadBalancerClass",
                                    "may only be used when `type` is 'LoadBalancer'"))
    external = _str(spec.get("externalTrafficPolicy"))
    accessible = kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(_list(spec.get("externalIPs"))))
    if not accessible:
        if external:
            causes.append(invalid("spec.externalTrafficPolicy", external,
                                  "may only be set for externally-accessible services"))
    else:
        causes += _enum(external, "spec.externalTrafficPolicy", ["Cluster", "Local"])
    health = _int(spec.get("healthCheckNodePort"))
    needs_health = kind == "LoadBalancer" and external == "Local"
    if health and not needs_health:
        causes.append(invalid("spec.healthCheckNodePort", health,
                              "may only be set when `type` is 'LoadBalancer' and "
                              "`externalTrafficPolicy` is 'Local'"))
    elif health:
        causes += _each("spec.healthCheckNodePort", health, port_num_errors(health))
    internal = spec.get("internalTrafficPolicy")
    if internal is None:
        if kind in ("ClusterIP", "NodePort", "LoadBalancer"):
            causes.append(required("spec.internalTrafficPolicy"))
    elif internal not in ("Cluster", "Local"):
        causes.append(not_supported("spec.internalTrafficPolicy", _str(internal),
                                    ["Cluster", "Local"]))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        causes.append(not_supported("spec.trafficDistribution", _str(distribution),
                                    ["PreferClose"]))
    return causes


def _external_ips(spec: Obj) -> Causes:
    causes: Causes = []
    for i, value in enumerate(_list(spec.get("externalIPs"))):
        path = f"spec.externalIPs[{i}]"
        errs = ip_errors(path, _str(value))
        causes += errs or non_special_ip_errors(path, _str(value))
    return causes


def validate_service_spec(spec: Obj) -> Causes:
    """``ValidateService`` without metadata, on a spec whose clusterIPs are normalised."""
    causes: Causes = []
    kind = _str(spec.get("type"))
    if not _dicts(spec.get("ports")) and not _is_headless(spec) and kind != "ExternalName":
        causes.append(required("spec.ports"))
    causes += _service_type_rules(spec)
    causes += _service_ports(spec)
    if spec.get("selector") is not None:
        causes += validate_labels(spec.get("selector"), "spec.selector")
    causes += _session_affinity(spec)
    causes += _cluster_ips(spec)
    causes += _external_ips(spec)
    types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
    causes += _enum(kind, "spec.type", types)
    causes += _node_ports_and_duplicates(spec)
    causes += _source_ranges(spec)
    return causes + _traffic_policies(spec)


def _cluster_ips_update(spec: Obj, old_spec: Obj) -> Causes:
    """``validateUpgradeDowngradeClusterIPs``: allocated cluster IPs may not change."""
    if "ExternalName" in (_str(spec.get("type")), _str(old_spec.get("type"))):
        return []
    if _is_headless(spec) and _is_headless(old_spec):
        return []
    new, old = [_str(v) for v in _list(spec.get("clusterIPs"))], \
        [_str(v) for v in _list(old_spec.get("clusterIPs"))]
    rendered = go_string_slice(new)
    causes: Causes = []
    if len(new) == len(old):
        for i, value in enumerate(old):
            if value != new[i]:
                causes.append(invalid_raw(f"spec.clusterIPs[{i}]", rendered, "may not change once set"))
    elif len(old) > len(new):
        if not new:
            causes.append(invalid_raw("spec.clusterIPs[0]", rendered,
                                      "primary clusterIP can not be unset"))
        elif new[0] != old[0]:
            causes.append(invalid_raw("spec.clusterIPs[0]", rendered, "may not change once set"))
        if len(new) == 1 and spec.get("ipFamilyPolicy") != "SingleStack":
            causes.append(invalid("spec.ipFamilyPolicy", spec.get("ipFamilyPolicy"),
                                  "must be set to 'SingleStack' when releasing the secondary "
                                  "clusterIP"))
    elif old and new[0] != old[0]:
        causes.append(invalid_raw("spec.clusterIPs[0]", rendered, "may not change once set"))
    return causes


def _service(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    spec: Obj = dict(_map(obj.get("spec")))
    normalize_cluster_ips({"spec": spec}, old)
    causes: Causes = []
    if old is not None:
        old_spec = _map(old.get("spec"))
        causes += _cluster_ips_update(spec, old_spec)
        if _str(old_spec.get("type")) == "LoadBalancer" and _str(spec.get("type")) == "LoadBalancer" \
                and spec.get("loadBalancerClass") != old_spec.get("loadBalancerClass"):
            causes.append(invalid("spec.loadBalancerClass", spec.get("loadBalancerClass"),
                                  "may not change once set"))
    return causes + validate_service_spec(spec)


# --- endpoints ------------------------------------------------------------------------------


def _endpoint_address(addr: Obj, path: str, opts: ValidationOptions) -> Causes:
    ip = _str(addr.get("ip"))
    causes = ip_errors(path + ".ip", ip)
    hostname = _str(addr.get("hostname"))
    if hostname:
        causes += _each(path + ".hostname", hostname, dns1123_label_errors(hostname))
    node = addr.get("nodeName")
    if isinstance(node, str):
        causes += _each(path + ".nodeName", node, dns1123_subdomain_errors(node))
    return causes + non_special_ip_errors(path + ".ip", ip, opts.allow_loopback_endpoints)


def _endpoint_port(port: Obj, path: str, require_name: bool) -> Causes:
    causes: Causes = []
    name = _str(port.get("name"))
    if require_name and not name:
        causes.append(required(path + ".name"))
    elif name:
        causes += _each(path + ".name", name, dns1123_label_errors(name))
    number = _int(port.get("port"))
    causes += _each(path + ".port", number, port_num_errors(number))
    causes += _protocol(port.get("protocol"), path + ".protocol")
    app_protocol = port.get("appProtocol")
    if isinstance(app_protocol, str):
        causes += _each(path + ".appProtocol", app_protocol, qualified_name_errors(app_protocol))
    return causes


def _endpoints(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    causes: Causes = []
    for i, subset in enumerate(_dicts(obj.get("subsets"))):
        path = f"subsets[{i}]"
        ready, not_ready = _dicts(subset.get("addresses")), _dicts(subset.get("notReadyAddresses"))
        if not ready and not not_ready:
            causes.append(required(path, "must specify `addresses` or `notReadyAddresses`"))
        for j, addr in enumerate(ready):
            causes += _endpoint_address(addr, f"{path}.addresses[{j}]", opts)
        for j, addr in enumerate(not_ready):
            causes += _endpoint_address(addr, f"{path}.notReadyAddresses[{j}]", opts)
        ports = _dicts(subset.get("ports"))
        for j, port in enumerate(ports):
            causes += _endpoint_port(port, f"{path}.ports[{j}]", len(ports) > 1)
    return causes


def _slice_address(address: str, kind: str, path: str, opts: ValidationOptions) -> Causes:
    if kind in ("IPv4", "IPv6"):
        ip = _parse_ip(address)
        if ip is None or ip.version != int(kind[-1]):
            return [invalid(path, address, f"must be a valid {kind} address")]
        return non_special_ip_errors(path, address, opts.allow_loopback_endpoints)
    if kind == "FQDN":
        return _fqdn(path, address)
    return []


def _fqdn(path: str, name: str) -> Causes:
    """``IsFullyQualifiedDomainName``."""
    if not name:
        return [required(path)]
    name = name[:-1] if name.endswith(".") else name
    errs = dns1123_subdomain_errors(name)
    if errs:
        return [invalid(path, name, ",".join(errs))]
    if len(name.split(".")) < 2:
        return [invalid(path, name, "should be a domain with at least two segments separated by dots")]
    for label in name.split("."):
        label_errs = dns1123_label_errors(label)
        if label_errs:
            return [invalid(path, label, ",".join(label_errs))]
    return []


def _slice_endpoints(obj: Obj, opts: ValidationOptions) -> Causes:
    endpoints = _dicts(obj.get("endpoints"))
    if len(endpoints) > 1000:
        return [_too_many("endpoints", len(endpoints), 1000)]
    kind = _str(obj.get("addressType"))
    causes: Causes = []
    for i, ep in enumerate(endpoints):
        path = f"endpoints[{i}]"
        addresses = [_str(a) for a in _list(ep.get("addresses"))]
        if not addresses:
            causes.append(required(path + ".addresses", "must contain at least 1 address"))
        elif len(addresses) > 100:
            causes.append(_too_many(path + ".addresses", len(addresses), 100))
        for j, address in enumerate(addresses):
            causes += _slice_address(address, kind, f"{path}.addresses[{j}]", opts)
        node = ep.get("nodeName")
        if isinstance(node, str):
            causes += _each(path + ".nodeName", node, dns1123_subdomain_errors(node))
        causes += validate_labels(ep.get("deprecatedTopology"), path + ".deprecatedTopology")
        hostname = ep.get("hostname")
        if isinstance(hostname, str):
            causes += _each(path + ".hostname", hostname, dns1123_label_errors(hostname))
    return causes


def _slice_ports(obj: Obj) -> Causes:
    ports = _dicts(obj.get("ports"))
    if len(ports) > 20000:
        return [_too_many("ports", len(ports), 20000)]
    causes: Causes = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        path = f"ports[{i}]"
        name = _str(port.get("name"))
        if name:
            causes += _each(path + ".name", name, dns1123_label_errors(name))
        if name in names:
            causes.append(duplicate(path + ".name", name))
        names.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            causes.append(required(path + ".protocol"))
        elif protocol not in _PROTOCOLS:
            causes.append(not_supported(path + ".protocol", _str(protocol), _PROTOCOLS))
        number = port.get("port")
        if isinstance(number, int):
            causes += _each(path + ".port", number, port_num_errors(number))
        app_protocol = port.get("appProtocol")
        if isinstance(app_protocol, str):
            causes += _each(path + ".appProtocol", app_protocol,
                            qualified_name_errors(app_protocol))
    return causes


_ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]


def _endpoint_slice(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    causes = _slice_endpoints(obj, opts) + _slice_ports(obj)
    kind = _str(obj.get("addressType"))
    if old is not None:
        causes += _immutable("addressType", kind, _str(old.get("addressType")))
    elif not kind:
        causes.append(required("addressType"))
    elif kind not in _ADDRESS_TYPES:
        causes.append(not_supported("addressType", kind, _ADDRESS_TYPES))
    return causes


# --- networking -----------------------------------------------------------------------------


def _ingress_backend(backend: Obj, path: str) -> Causes:
    service, resource = backend.get("service"), backend.get("resource")
    if isinstance(service, dict) and isinstance(resource, dict):
        return [invalid(path, "", "cannot set both resource and service backends")]
    if isinstance(resource, dict):
        causes: Causes = []
        for key in ("kind", "name"):
            if not _str(resource.get(key)):
                causes.append(required(f"{path}.resource.{key}"))
        return causes
    if not isinstance(service, dict):
        return [invalid(path, "", "resource or service backend is required")]
    causes = []
    name = _str(service.get("name"))
    if not name:
        causes.append(required(path + ".service.name"))
    else:
        causes += _each(path + ".service.name", name, dns1035_label_errors(name))
    port = _map(service.get("port"))
    port_name, number = _str(port.get("name")), _int(port.get("number"))
    if port_name and number:
        causes.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        causes += _each(path + ".service.port.name", port_name, port_name_errors(port_name))
    elif number:
        causes += _each(path + ".service.port.number", number, port_num_errors(number))
    else:
        causes.append(required(path, "port name or number is required"))
    return causes


_PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]


def _ingress_path(item: Obj, path: str) -> Causes:
    path_type = item.get("pathType")
    if path_type is None:
        return [required(path + ".pathType", "pathType must be specified")]
    value = _str(item.get("path"))
    causes: Causes = []
    if path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            causes.append(invalid(path + ".path", value, "must be an absolute path"))
        for seq in ("//", "/./", "/../", "%2f", "%2F"):
            if value and seq in value:
                causes.append(invalid(path + ".path", value, f"must not contain '{seq}'"))
        for suffix in ("/..", "/."):
            if value and value.endswith(suffix):
                causes.append(invalid(path + ".path", value, f"cannot end with '{suffix}'"))
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            causes.append(invalid(path + ".path", value, "must be an absolute path"))
    else:
        causes.append(not_supported(path + ".pathType", _str(path_type), _PATH_TYPES))
    return causes + _ingress_backend(_map(item.get("backend")), path + ".backend")


def _host_errors(host: str, path: str) -> Causes:
    if "*" in host:
        return _each(path, host, wildcard_subdomain_errors(host))
    return _each(path, host, dns1123_subdomain_errors(host))


def _ingress_rules(rules: list[Obj]) -> Causes:
    causes: Causes = []
    for i, rule in enumerate(rules):
        path = f"spec.rules[{i}]"
        host = _str(rule.get("host"))
        if host:
            if _parse_ip(host) is not None:
                causes.append(invalid(path + ".host", host, "must be a DNS name, not an IP address"))
            causes += _host_errors(host, path + ".host")
        http = rule.get("http")
        if isinstance(http, dict):
            items = _dicts(http.get("paths"))
            if not items:
                causes.append(required(path + ".http.paths"))
            for j, item in enumerate(items):
                causes += _ingress_path(item, f"{path}.http.paths[{j}]")
    return causes


def _ingress(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    spec = _map(obj.get("spec"))
    rules = _dicts(spec.get("rules"))
    default_backend = spec.get("defaultBackend")
    causes: Causes = []
    if not rules and not isinstance(default_backend, dict):
        rendered = "[]networking.IngressRule(nil)" if spec.get("rules") is None \
            else "[]networking.IngressRule{}"
        causes.append(invalid_raw("spec", rendered,
                                  "either `defaultBackend` or `rules` must be specified"))
    if isinstance(default_backend, dict):
        causes += _ingress_backend(default_backend, "spec.defaultBackend")
    causes += _ingress_rules(rules)
    for i, tls in enumerate(_dicts(spec.get("tls"))):
        for j, host in enumerate(_list(tls.get("hosts"))):
            causes += _host_errors(_str(host), f"spec.tls[{i}].hosts[{j}]")
    class_name = spec.get("ingressClassName")
    if isinstance(class_name, str):
        causes += _each("spec.ingressClassName", class_name, dns1123_subdomain_errors(class_name))
    return causes


def _ingress_class(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    spec = _map(obj.get("spec"))
    controller = _str(spec.get("controller"))
    path = "spec.controller"
    causes: Causes = []
    if len(controller) > 250:
        causes.append(too_long(path, controller, 250))
    causes += _domain_prefixed_path(path, controller)
    if old is not None:
        causes += _immutable(path, controller, _str(_map(old.get("spec")).get("controller")))
    params = spec.get("parameters")
    if isinstance(params, dict):
        causes += _ingress_class_parameters(params, "spec.parameters")
    return causes


def _domain_prefixed_path(path: str, value: str) -> Causes:
    """``IsDomainPrefixedPath`` (e.g. ``example.com/ingress-controller``)."""
    if not value:
        return [required(path)]
    host, sep, rest = value.partition("/")
    if not sep or not host or not rest:
        return [invalid(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    causes = _each(path, host, dns1123_subdomain_errors(host))
    if not _full(_HTTP_PATH_FMT, rest):
        causes.append(invalid(path, rest, regex_error("Invalid path", _HTTP_PATH_FMT)))
    return causes


def _ingress_class_parameters(params: Obj, path: str) -> Causes:
    causes: Causes = []
    if not _str(params.get("kind")):
        causes.append(required(path + ".kind"))
    if not _str(params.get("name")):
        causes.append(required(path + ".name"))
    scope = _str(params.get("scope"))
    namespace = params.get("namespace")
    if scope not in ("Cluster", "Namespace"):
        causes.append(not_supported(path + ".scope", scope, ["Cluster", "Namespace"]))
    elif scope == "Namespace" and not namespace:
        causes.append(required(path + ".namespace", "`parameters.scope` is set to 'Namespace'"))
    elif scope == "Cluster" and namespace is not None:
        causes.append(forbidden(path + ".namespace",
                                "`parameters.scope` is set to 'Cluster'"))
    return causes


# --- configuration, cluster and event kinds ---------------------------------------------------


def _data_keys(data: Any, path: str) -> Causes:
    causes: Causes = []
    for key in sorted(_map(data)):
        causes += _each(f"{path}[{key}]", key, config_key_errors(key))
    return causes


def _decoded_size(data: Obj) -> int:
    total = 0
    for value in data.values():
        try:
            total += len(base64.b64decode(_str(value), validate=True))
        except (binascii.Error, ValueError):
            total += len(_str(value))
    return total


_SECRET_REQUIRED_KEYS: dict[str, list[str]] = {
    "kubernetes.io/dockercfg": [".dockercfg"],
    "kubernetes.io/dockerconfigjson": [".dockerconfigjson"],
    "kubernetes.io/ssh-auth": ["ssh-privatekey"],
    "kubernetes.io/tls": ["tls.crt", "tls.key"],
}


def _secret_type_rules(obj: Obj) -> Causes:
    kind, data = _str(obj.get("type")), _map(obj.get("data"))
    if kind == "kubernetes.io/service-account-token":
        annotations = _map(_map(obj.get("metadata")).get("annotations"))
        if not _str(annotations.get("kubernetes.io/service-account.name")):
            return [required("metadata.annotations[kubernetes.io/service-account.name]")]
        return []
    if kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            return [required("data[username]"), required("data[password]")]
        return []
    missing = [k for k in _SECRET_REQUIRED_KEYS.get(kind, []) if k not in data]
    if kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson", "kubernetes.io/ssh-auth"):
        missing = missing[:1]
    return [required(f"data[{k}]") for k in missing]


def _immutable_data(obj: Obj, old: Obj | None, keys: tuple[str, ...]) -> Causes:
    if old is None or old.get("immutable") is not True:
        return []
    msg = "field is immutable when `immutable` is set"
    causes: Causes = []
    if obj.get("immutable") is not True:
        causes.append(forbidden("immutable", msg))
    for key in keys:
        if (obj.get(key) or {}) != (old.get(key) or {}):
            causes.append(forbidden(key, msg))
    return causes


def _secret(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    data = _map(obj.get("data"))
    causes = _data_keys(data, "data")
    if _decoded_size(data) > _MAX_SECRET_SIZE:
        causes.append(too_long("data", "", _MAX_SECRET_SIZE))
    causes += _secret_type_rules(obj)
    if old is not None:
        causes += _immutable("type", _str(obj.get("type")), _str(old.get("type")))
        causes += _immutable_data(obj, old, ("data",))
    return causes


def _config_map(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    data, binary = _map(obj.get("data")), _map(obj.get("binaryData"))
    causes = _data_keys(data, "data") + _data_keys(binary, "binaryData")
    for key in sorted(binary):
        if key in data:
            causes.append(invalid(f"binaryData[{key}]", key, "duplicate of key present in data"))
    size = sum(len(k) + len(_str(v)) for k, v in data.items()) + _decoded_size(binary)
    if size > _MAX_SECRET_SIZE:
        causes.append(too_long("", "", _MAX_SECRET_SIZE))
    return causes + _immutable_data(obj, old, ("data", "binaryData"))


def _namespace(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    causes: Causes = []
    for name in _list(_map(obj.get("spec")).get("finalizers")):
        name = _str(name)
        causes += _each("spec.finalizers", name, qualified_name_errors(name))
        if "/" not in name and name not in _STANDARD_FINALIZERS:
            causes.append(invalid("spec.finalizers", name, "name is neither a standard finalizer "
                                                           "name nor is it fully qualified"))
    return causes


_TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]


def _node(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    spec = _map(obj.get("spec"))
    causes: Causes = []
    for i, cidr in enumerate(_list(spec.get("podCIDRs"))):
        causes += cidr_errors(f"spec.podCIDRs[{i}]", _str(cidr))
    for i, taint in enumerate(_dicts(spec.get("taints"))):
        path = f"spec.taints[{i}]"
        key = _str(taint.get("key"))
        causes += _each(path + ".key", key, qualified_name_errors(key))
        value = _str(taint.get("value"))
        if value:
            causes += _each(path + ".value", value, label_value_errors(value))
        causes += _enum(taint.get("effect"), path + ".effect", _TAINT_EFFECTS)
    if old is not None:
        old_cidrs = _list(_map(old.get("spec")).get("podCIDRs"))
        if old_cidrs and _list(spec.get("podCIDRs")) != old_cidrs:
            causes.append(forbidden("spec.podCIDRs", "node updates may not change podCIDR except "
                                                     "from \"\" to valid"))
    return causes


def _event(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    """Legacy (core/v1) event validation: namespaces of event and object agree."""
    namespace = _str(_map(obj.get("metadata")).get("namespace"))
    involved = _str(_map(obj.get("involvedObject")).get("namespace"))
    causes: Causes = []
    if not obj.get("eventTime"):
        ok = namespace in ("", "default") if not involved else namespace == involved
    else:
        ok = bool(involved) or namespace in ("default", "kube-system")
        for key in ("reportingComponent", "reportingInstance", "action", "reason"):
            if not _str(obj.get(key)):
                causes.append(required(key))
    if not ok:
        causes.insert(0, invalid("involvedObject.namespace", involved, "does not match event.namespace"))
    causes += _each("namespace", namespace, dns1123_subdomain_errors(namespace))
    return causes


def _lease(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    spec = _map(obj.get("spec"))
    causes: Causes = []
    duration = spec.get("leaseDurationSeconds")
    if isinstance(duration, int) and duration <= 0:
        causes.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if isinstance(transitions, int):
        causes += _nonnegative("spec.leaseTransitions", transitions)
    return causes


def _no_body(obj: Obj, old: Obj | None, opts: ValidationOptions) -> Causes:
    return []


# --- dispatch ---------------------------------------------------------------------------------

BodyRule = Callable[[Obj, Obj | None, ValidationOptions], Causes]


@dataclass(frozen=True)
class KindRules:
    """How one kind is validated: its name rule and the checks beyond metadata."""

    name_rule: str
    body: BodyRule


KIND_RULES: dict[str, KindRules] = {
    "Namespace": KindRules("dns1123-label", _namespace),
    "Pod": KindRules("dns1123-subdomain", _pod),
    "Service": KindRules("dns1035-label", _service),
    "Endpoints": KindRules("dns1123-subdomain", _endpoints),
    "Secret": KindRules("dns1123-subdomain", _secret),
    "ConfigMap": KindRules("dns1123-subdomain", _config_map),
    "ServiceAccount": KindRules("dns1123-subdomain", _no_body),
    "Node": KindRules("dns1123-subdomain", _node),
    "Event": KindRules("path-segment", _event),
    "ResourceQuota": KindRules("dns1123-subdomain", _no_body),
    "LimitRange": KindRules("dns1123-subdomain", _no_body),
    "Deployment": KindRules("dns1123-subdomain", _deployment),
    "ReplicaSet": KindRules("dns1123-subdomain", _replica_set),
    "EndpointSlice": KindRules("dns1123-subdomain", _endpoint_slice),
    "Ingress": KindRules("dns1123-subdomain", _ingress),
    "IngressClass": KindRules("dns1123-subdomain", _ingress_class),
    "Lease": KindRules("dns1123-subdomain", _lease),
}


def validate(kind: str, obj: Mapping[str, Any], old: Mapping[str, Any] | None = None, *,
             options: ValidationOptions | None = None) -> list[FieldCause]:
    """The field causes the API server reports for ``obj`` (of ``kind``), empty when valid.

    ``old`` None validates a create (full metadata rules, name syntax for the kind);
    otherwise an update of ``old`` (metadata immutability plus each kind's immutable
    fields, e.g. Deployment/ReplicaSet ``spec.selector``, Service ``spec.clusterIPs``,
    EndpointSlice ``addressType``). ``obj`` should already be defaulted; services are
    checked with ``clusterIP``/``clusterIPs`` normalised as the API server does first.
    Unknown kinds get metadata checks only (path-segment names).
    """
    opts = options or DEFAULT_OPTIONS
    rules = KIND_RULES.get(kind, KindRules("path-segment", _no_body))
    info = kinds.by_kind(kind)
    namespaced = info.namespaced if info is not None else True
    new, prev = dict(obj), dict(old) if old is not None else None
    if prev is None:
        causes = validate_object_meta(new, namespaced, rules.name_rule)
    else:
        causes = validate_object_meta_update(new, prev)
    return causes + rules.body(new, prev, opts)
