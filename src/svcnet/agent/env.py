"""A container's environment, computed as the kubelet computes it.

Three jobs, all pure functions over API objects (plain dicts as the API serves them):

* ``service_env`` — the docker-link style service variables (``<NAME>_SERVICE_HOST``,
  ``<NAME>_PORT_<port>_<PROTO>_ADDR`` …) for the Services visible to a pod, with the
  kubelet's rules for which Services count and which wins when two share a name.
* ``container_env`` — a container's final variables: ``envFrom`` first, then ``env`` (each
  entry may override earlier ones; ``value`` strings get ``$(VAR)`` expansion against the
  variables declared so far and the service variables; ``valueFrom`` resolves fieldRef,
  configMapKeyRef and secretKeyRef), then the service variables not already defined.
* ``expand`` — ``$(VAR)`` expansion with ``$$`` escaping, for env values and for a
  container's ``command``/``args``.

Failures that make the kubelet refuse to start a container (a missing non-optional
ConfigMap, Secret or key, an unsupported field path) raise ``ContainerConfigError``; its
message is what the pod shows under the waiting reason ``CreateContainerConfigError``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

Lookup = Callable[[str, str], dict[str, Any] | None]
"""``(namespace, name) -> object or None``: reads a ConfigMap or Secret (e.g. from an
informer cache). ``None`` means the object does not exist."""

MASTER_SERVICE_NAMESPACE = "default"
MASTER_SERVICE_NAMES = frozenset({"kubernetes"})

CONFIG_ERROR_REASON = "CreateContainerConfigError"

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


class ContainerConfigError(Exception):
    """The container's environment cannot be built; ``str(err)`` is the pod's message and
    ``reason`` its waiting reason."""

    reason = CONFIG_ERROR_REASON


# --------------------------------------------------------------------------- service links


def env_var_name(name: str) -> str:
    """A Service or port name as it appears in variable names: upper-cased, '-' → '_'."""
    return name.upper().replace("-", "_")


def _ip_set(service: Mapping[str, Any]) -> bool:
    ip = (service.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def _join_host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def service_link_vars(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The variables one Service contributes, in the kubelet's order (``FromServices``).
    A Service without a ClusterIP (headless, ExternalName) or without ports gives none."""
    spec = service.get("spec") or {}
    ports: list[dict[str, Any]] = list(spec.get("ports") or [])
    if not _ip_set(service) or not ports:
        return []
    ip = str(spec["clusterIP"])
    prefix = env_var_name(str((service.get("metadata") or {}).get("name", "")))
    out: list[tuple[str, str]] = [(f"{prefix}_SERVICE_HOST", ip)]
    first = f"{prefix}_SERVICE_PORT"
    out.append((first, str(int(ports[0]["port"]))))
    for p in ports:
        if p.get("name"):
            out.append((f"{first}_{env_var_name(str(p['name']))}", str(int(p["port"]))))
    for i, p in enumerate(ports):
        port = int(p["port"])
        proto = str(p.get("protocol") or "TCP")
        url = f"{proto.lower()}://{_join_host_port(ip, port)}"
        if i == 0:
            out.append((f"{prefix}_PORT", url))
        pp = f"{prefix}_PORT_{port}_{proto.upper()}"
        out += [(pp, url), (f"{pp}_PROTO", proto.lower()), (f"{pp}_PORT", str(port)),
                (f"{pp}_ADDR", ip)]
    return out


def service_env(services: Iterable[Mapping[str, Any]], namespace: str,
                enable_service_links: bool,
                master_services: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Service variables for a pod in ``namespace`` (kubelet ``getServiceEnvVarMap``).

    ``services`` are the Services of the pod's namespace (others are ignored);
    ``master_services`` are candidates from the ``default`` namespace, of which only the
    ones named ``kubernetes`` count. The master service is always included; the
    namespace's Services only when ``enable_service_links``. A Service of the pod's own
    namespace that has a master service's name wins over the master service. Services
    without a ClusterIP are skipped. Variables are produced in Service-name order, so
    when two Services yield the same variable name the later name wins (the kubelet's
    order there is unspecified).
    """
    chosen: dict[str, Mapping[str, Any]] = {}
    for svc in master_services:
        meta = svc.get("metadata") or {}
        name = str(meta.get("name", ""))
        if (meta.get("namespace", MASTER_SERVICE_NAMESPACE) == MASTER_SERVICE_NAMESPACE
                and name in MASTER_SERVICE_NAMES and _ip_set(svc)):
            chosen.setdefault(name, svc)
    if enable_service_links:
        for svc in services:
            meta = svc.get("metadata") or {}
            name = str(meta.get("name", ""))
            if meta.get("namespace", namespace) != namespace or not _ip_set(svc):
                continue
            if namespace == MASTER_SERVICE_NAMESPACE and name in MASTER_SERVICE_NAMES:
                chosen.setdefault(name, svc)
            else:
                chosen[name] = svc
    out: dict[str, str] = {}
    for name in sorted(chosen):
        out.update(service_link_vars(chosen[name]))
    return out


# --------------------------------------------------------------------------- expansion


def _expand_with(s: str, mapping: Callable[[str], str | None]) -> str:
    buf: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(s)
    while cursor < n:
        if s[cursor] == "$" and cursor + 1 < n:
            buf.append(s[checkpoint:cursor])
            nxt = s[cursor + 1]
            if nxt == "$":  # escaped operator
                buf.append("$")
                cursor += 1
            elif nxt == "(":
                close = s.find(")", cursor + 2)
                if close == -1:  # incomplete reference: kept as written
                    buf.append("$(")
                    cursor += 1
                else:
                    name = s[cursor + 2:close]
                    value = mapping(name)
                    buf.append(value if value is not None else f"$({name})")
                    cursor = close
            else:  # a lone operator
                buf.append("$" + nxt)
                cursor += 1
            checkpoint = cursor + 1
        cursor += 1
    buf.append(s[checkpoint:])
    return "".join(buf)


def expand(s: str, env: Mapping[str, str], *more: Mapping[str, str]) -> str:
    """Replace ``$(VAR)`` in ``s`` with VAR's value from the first of ``env``, ``*more``
    that defines it; unknown references stay as written, ``$$`` becomes ``$``, any other
    ``$`` is literal (Kubernetes' ``third_party/forked/golang/expansion``)."""
    contexts = (env, *more)

    def lookup(name: str) -> str | None:
        for ctx in contexts:
            if name in ctx:
                return ctx[name]
        return None

    return _expand_with(s, lookup)


def expand_all(items: Sequence[str] | None, env: Mapping[str, str]) -> list[str]:
    """``expand`` over a container's ``command`` or ``args`` with its final environment."""
    return [expand(x, env) for x in items or []]


# --------------------------------------------------------------------------- fieldRef


def _format_map(m: Mapping[str, str]) -> str:
    def quote(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return "\n".join(f"{k}={quote(str(m[k]))}" for k in sorted(m))


def field_ref_value(field_ref: Mapping[str, Any], pod: Mapping[str, Any],
                    pod_ips: Sequence[str], host_ips: Sequence[str]) -> str:
    """The value of an env ``valueFrom.fieldRef`` (kubelet ``podFieldSelectorRuntimeValue``)."""
    version = field_ref.get("apiVersion") or "v1"
    if version != "v1":
        raise ContainerConfigError(f"unsupported pod version: {version}")
    path = str(field_ref.get("fieldPath", ""))
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple: dict[str, Callable[[], str]] = {
        "metadata.name": lambda: str(meta.get("name", "")),
        "metadata.namespace": lambda: str(meta.get("namespace", "")),
        "metadata.uid": lambda: str(meta.get("uid", "")),
        "metadata.labels": lambda: _format_map(meta.get("labels") or {}),
        "metadata.annotations": lambda: _format_map(meta.get("annotations") or {}),
        "spec.nodeName": lambda: str(spec.get("nodeName", "")),
        "spec.serviceAccountName": lambda: str(spec.get("serviceAccountName", "")),
        "status.hostIP": lambda: host_ips[0] if host_ips else "",
        "status.hostIPs": lambda: ",".join(host_ips),
        "status.podIP": lambda: pod_ips[0] if pod_ips else "",
        "status.podIPs": lambda: ",".join(pod_ips),
    }
    if path in simple:
        return simple[path]()
    m = _SUBSCRIPT.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldPath: {path}")


def _status_ips(pod: Mapping[str, Any], plural: str, single: str) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(x.get("ip")) for x in status.get(plural) or [] if x.get("ip")]
    if not ips and status.get(single):
        ips = [str(status[single])]
    return ips


# --------------------------------------------------------------------------- ConfigMap/Secret


class _Sources:
    """Fetches each ConfigMap/Secret once per container and decodes Secret data."""

    def __init__(self, namespace: str, lookup_configmap: Lookup, lookup_secret: Lookup):
        self.namespace = namespace
        self._lookups = {"configmap": lookup_configmap, "secret": lookup_secret}
        self._cache: dict[tuple[str, str], dict[str, str] | None] = {}

    def data(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        """The object's data as strings; ``None`` if it is missing and ``optional``."""
        key = (kind, name)
        if key not in self._cache:
            obj = self._lookups[kind](self.namespace, name)
            self._cache[key] = None if obj is None else _decode(kind, name, obj)
        data = self._cache[key]
        if data is None:
            if optional:
                return None
            raise ContainerConfigError(f'{kind} "{name}" not found')
        return data


def _decode(kind: str, name: str, obj: Mapping[str, Any]) -> dict[str, str]:
    raw: Mapping[str, Any] = obj.get("data") or {}
    if kind == "configmap":
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    for k, v in raw.items():
        try:
            b = base64.b64decode(str(v), validate=True)
        except (binascii.Error, ValueError) as err:
            raise ContainerConfigError(
                f'secret "{name}": key {k} is not valid base64: {err}') from err
        out[str(k)] = b.decode("utf-8", errors="surrogateescape")
    return out


def _ref_kind(label: str) -> str:
    return "ConfigMap" if label == "configmap" else "Secret"


# --------------------------------------------------------------------------- container env


def container_env(container: Mapping[str, Any], pod: Mapping[str, Any],
                  service_vars: Mapping[str, str], lookup_configmap: Lookup,
                  lookup_secret: Lookup, *, pod_ips: Sequence[str] | None = None,
                  host_ips: Sequence[str] | None = None,
                  on_invalid_keys: Callable[[str], None] | None = None,
                  ) -> list[tuple[str, str]]:
    """A container's environment as ``(name, value)`` pairs (kubelet
    ``makeEnvironmentVariables``).

    Order of precedence, lowest first: ``service_vars``, ``envFrom`` sources in order (a
    ``prefix`` is prepended to each key; keys that are not valid variable names are skipped
    and reported through ``on_invalid_keys`` with the kubelet's event message), then ``env``
    entries in order. A non-empty ``value`` is ``$(VAR)``-expanded against the variables
    defined so far, then the service variables; ``valueFrom`` resolves ``fieldRef``
    (``pod_ips``/``host_ips`` override the pod's status), ``configMapKeyRef`` and
    ``secretKeyRef``; an ``optional`` source that is missing leaves the variable unset.
    ``resourceFieldRef`` is not supported. Result: envFrom/env variables in first-definition
    order, then the service variables they did not define, sorted.

    Raises ``ContainerConfigError`` for a missing non-optional ConfigMap/Secret/key or an
    unsupported reference.
    """
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace", "default"))
    sources = _Sources(namespace, lookup_configmap, lookup_secret)
    pips = list(pod_ips) if pod_ips is not None else _status_ips(pod, "podIPs", "podIP")
    hips = list(host_ips) if host_ips is not None else _status_ips(pod, "hostIPs", "hostIP")
    env: dict[str, str] = {}

    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for label, field in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = source.get(field)
            if ref is None:
                continue
            name = str(ref.get("name", ""))
            data = sources.data(label, name, bool(ref.get("optional")))
            if data is None:
                continue
            invalid = []
            for k, v in data.items():
                key = prefix + k
                if not _ENV_NAME.match(key) or key in (".", "..") or key.startswith(".."):
                    invalid.append(key)
                    continue
                env[key] = v
            if invalid and on_invalid_keys is not None:
                on_invalid_keys(
                    f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {label} "
                    f"{namespace}/{name} were skipped since they are considered invalid "
                    "environment variable names.")

    def lookup(name: str) -> str | None:
        if name in env:
            return env[name]
        return service_vars.get(name)

    for var in container.get("env") or []:
        name = str(var["name"])
        value = str(var.get("value") or "")
        value_from = var.get("valueFrom")
        if value:
            value = _expand_with(value, lookup)
        elif value_from:
            resolved = _value_from(name, value_from, pod, sources, pips, hips)
            if resolved is None:
                continue
            value = resolved
        env[name] = value

    result = list(env.items())
    result += [(k, service_vars[k]) for k in sorted(service_vars) if k not in env]
    return result


def _value_from(name: str, value_from: Mapping[str, Any], pod: Mapping[str, Any],
                sources: _Sources, pod_ips: Sequence[str],
                host_ips: Sequence[str]) -> str | None:
    """One ``valueFrom``; ``None`` when an optional source is missing."""
    if value_from.get("fieldRef") is not None:
        return field_ref_value(value_from["fieldRef"], pod, pod_ips, host_ips)
    if value_from.get("resourceFieldRef") is not None:
        raise ContainerConfigError(
            f"env {name}: valueFrom.resourceFieldRef is not supported by svcnet")
    for label, field in (("configmap", "configMapKeyRef"), ("secret", "secretKeyRef")):
        ref = value_from.get(field)
        if ref is None:
            continue
        optional = bool(ref.get("optional"))
        ref_name = str(ref.get("name", ""))
        data = sources.data(label, ref_name, optional)
        if data is None:
            return None
        key = str(ref.get("key", ""))
        if key not in data:
            if optional:
                return None
            raise ContainerConfigError(
                f"couldn't find key {key} in {_ref_kind(label)} {sources.namespace}/{ref_name}")
        return data[key]
    raise ContainerConfigError(f"env {name}: valueFrom names no source")
