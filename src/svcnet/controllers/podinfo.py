"""What the endpoint controllers need to know about pods and services, as plain functions.

Shared by the Endpoints, EndpointSlice and mirroring controllers so that all three agree
on the Kubernetes rules:

* a pod is *ready* when its ``Ready`` condition has status ``"True"``;
* a pod belongs in an endpoint list when it is not terminal (Succeeded/Failed), has an IP,
  and — unless terminating pods are wanted — has no ``deletionTimestamp``
  (``ShouldPodBeInEndpoints``);
* an endpoint carries the pod's ``hostname`` when the pod sets ``spec.hostname`` and its
  ``spec.subdomain`` names the service in the same namespace (``ShouldSetHostname``);
* a named ``targetPort`` resolves to the number of the pod's container port with that name
  and the service port's protocol (``FindPort``); a number is used as it is.

Nothing here reads a cache or does I/O, except :func:`pods_for_selector` and
:func:`services_for_labels`, which only read an informer :class:`Indexer`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from collections.abc import Iterable, Mapping
from typing import Any

from svcnet.informer.cache import Indexer
from svcnet.informer.shared import SharedInformer
from svcnet.model import kinds
from svcnet.model.kinds import ResourceInfo

Obj = dict[str, Any]

LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_ZONE = "topology.kubernetes.io/zone"
ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
ANNOTATION_OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
ANNOTATION_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ANNOTATION_LEADER = "control-plane.alpha.kubernetes.io/leader"

#: Name of the pod informer index that maps ``"<ns>/<key>=<value>"`` to pods.
POD_LABEL_INDEX = "svcnet.endpoints/label-pairs"


def resource(group: str, name: str) -> ResourceInfo:
    """The registered resource ``group/name`` (a missing one is a programming error)."""
    info = kinds.lookup(group, name)
    if info is None:
        raise LookupError(f"resource {group}/{name} is not registered")
    return info


# --- small accessors ------------------------------------------------------------------------


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def with_kind(obj: Obj, kind: str, api_version: str = "v1") -> Obj:
    """A shallow copy of a cached object with ``kind``/``apiVersion`` set (list items
    lack them; event recording needs them)."""
    return {**obj, "kind": kind, "apiVersion": api_version}


def labels_of(obj: Obj) -> dict[str, str]:
    return dict(meta(obj).get("labels") or {})


# --- pods -----------------------------------------------------------------------------------


def is_pod_ready(pod: Obj) -> bool:
    """True when the pod's ``Ready`` condition has status ``"True"``."""
    return ready_condition(pod).get("status") == "True"


def ready_condition(pod: Obj) -> Obj:
    """The pod's ``Ready`` condition ({} when it has none)."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond
    return {}


def is_pod_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_terminating(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def pod_ips(pod: Obj) -> list[str]:
    """The pod's IPs in status order (``status.podIPs``, else ``[status.podIP]``)."""
    status = pod.get("status") or {}
    ips = [p.get("ip", "") for p in status.get("podIPs") or [] if isinstance(p, dict)]
    ips = [ip for ip in ips if ip]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return ips


def should_pod_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """Upstream ``ShouldPodBeInEndpoints``: not terminal, has an IP, and not terminating
    unless ``include_terminating``."""
    if is_pod_terminal(pod) or not pod_ips(pod):
        return False
    return include_terminating or not is_terminating(pod)


def should_set_hostname(pod: Obj, svc: Obj) -> bool:
    """Upstream ``ShouldSetHostname``: hostname set, subdomain == service name, same ns."""
    ps = spec(pod)
    return bool(ps.get("hostname")) and ps.get("subdomain") == meta(svc).get("name") and \
        meta(pod).get("namespace") == meta(svc).get("namespace")


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """The pod port a service port's ``targetPort`` means, or None when the pod has no
    container port of that name and protocol. An absent targetPort means ``port``."""
    target = svc_port.get("targetPort")
    if target in (None, "", 0):
        target = svc_port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = svc_port.get("protocol") or "TCP"
    ps = spec(pod)
    sidecars = [c for c in ps.get("initContainers") or []
                if isinstance(c, dict) and c.get("restartPolicy") == "Always"]
    for container in [*(ps.get("containers") or []), *sidecars]:
        for port in (container or {}).get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                number = port.get("containerPort")
                return int(number) if number is not None else None
    return None


def ip_family(ip: str) -> str | None:
    """``"IPv4"``, ``"IPv6"`` or None for a string that is not an IP address."""
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except ValueError:
        return None


def canonical_ip(ip: str) -> str | None:
    """The IP re-rendered in canonical form, or None when it does not parse."""
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        return None


def pod_update_relevance(old: Obj, new: Obj) -> tuple[bool, bool]:
    """``(pod_changed, labels_changed)`` for an update event, as upstream
    ``podEndpointsChanged``: the first when the pod's endpoint may change (deletion
    timestamp, readiness, IPs, terminal phase), the second when the set of services it
    belongs to, or its hostname/subdomain, may change."""
    labels_changed = labels_of(old) != labels_of(new) or \
        (spec(old).get("hostname"), spec(old).get("subdomain")) != \
        (spec(new).get("hostname"), spec(new).get("subdomain"))
    pod_changed = (meta(old).get("deletionTimestamp") != meta(new).get("deletionTimestamp")
                   or is_pod_ready(old) != is_pod_ready(new)
                   or pod_ips(old) != pod_ips(new)
                   or is_pod_terminal(old) != is_pod_terminal(new)
                   or spec(old).get("nodeName") != spec(new).get("nodeName"))
    return pod_changed, labels_changed


# --- services -------------------------------------------------------------------------------


def service_selector(svc: Obj) -> dict[str, str] | None:
    """The service's selector map; None when it has none (the service's endpoints are
    then managed by someone else)."""
    sel = spec(svc).get("selector")
    return dict(sel) if isinstance(sel, dict) else None


def is_external_name(svc: Obj) -> bool:
    return spec(svc).get("type") == "ExternalName"


def has_cluster_ip(svc: Obj) -> bool:
    """Upstream ``IsServiceIPSet``: clusterIP neither empty nor ``None``."""
    cip = spec(svc).get("clusterIP") or ""
    return cip not in ("", "None")


def is_headless(svc: Obj) -> bool:
    return spec(svc).get("clusterIP") == "None"


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Equality-based match of a service selector (an empty selector matches all)."""
    return all(labels.get(k) == v for k, v in selector.items())


def managed_by_selector(svc: Obj | None) -> bool:
    """True when an endpoint controller computes this service's endpoints."""
    return svc is not None and not is_external_name(svc) and service_selector(svc) is not None


# --- cache lookups --------------------------------------------------------------------------


def pod_label_pairs(pod: Obj) -> list[str]:
    """Index function for :data:`POD_LABEL_INDEX`."""
    ns = meta(pod).get("namespace") or ""
    return [f"{ns}/{k}={v}" for k, v in labels_of(pod).items()]


def pods_for_selector(pods: Indexer, namespace: str, selector: Mapping[str, str]
                      ) -> list[Obj]:
    """Pods of ``namespace`` matching ``selector``, read from an indexer that has
    :data:`POD_LABEL_INDEX` (smallest candidate set first, then a full match)."""
    if not selector:
        return pods.by_index("namespace", namespace)
    candidates: list[Obj] | None = None
    for k, v in selector.items():
        found = pods.by_index(POD_LABEL_INDEX, f"{namespace}/{k}={v}")
        if candidates is None or len(found) < len(candidates):
            candidates = found
        if not candidates:
            return []
    return [p for p in candidates or [] if selector_matches(selector, labels_of(p))]


def services_for_labels(services: Indexer, namespace: str, labels: Mapping[str, str]
                        ) -> set[str]:
    """Keys of the services in ``namespace`` whose (non-nil) selector matches ``labels``."""
    out: set[str] = set()
    for svc in services.by_index("namespace", namespace):
        sel = service_selector(svc)
        if sel is not None and selector_matches(sel, labels):
            out.add(f"{namespace}/{meta(svc).get('name')}")
    return out


def services_to_update(services: Indexer, old: Obj | None, new: Obj | None) -> set[str]:
    """Service keys to resync for a pod add (old None), delete (new None) or update, as
    upstream ``GetServicesToUpdateOnPodChange``."""
    pod = new if new is not None else old
    if pod is None:
        return set()
    ns = meta(pod).get("namespace") or ""
    if old is None or new is None:
        return services_for_labels(services, ns, labels_of(pod))
    if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
        return set()
    pod_changed, labels_changed = pod_update_relevance(old, new)
    if not pod_changed and not labels_changed:
        return set()
    current = services_for_labels(services, ns, labels_of(new))
    if not labels_changed:
        return current
    previous = services_for_labels(services, ns, labels_of(old))
    if pod_changed or labels_of(old) == labels_of(new):  # hostname/subdomain change
        return current | previous
    return current ^ previous


# --- trigger times --------------------------------------------------------------------------


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def format_time(t: dt.datetime) -> str:
    """RFC 3339 with as many fractional digits as needed (Go's ``RFC3339Nano``)."""
    t = t.astimezone(dt.UTC)
    frac = f".{t.microsecond:06d}".rstrip("0").rstrip(".")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


class TriggerTimeTracker:
    """The ``last-change-trigger-time`` of an endpoints write, as upstream's tracker.

    Per service it remembers the trigger time of each pod (its Ready condition's
    ``lastTransitionTime``) and of the service (its ``creationTimestamp``) as last seen.
    :meth:`compute` returns the earliest trigger time among the objects that changed since
    the previous call for that service — the moment the oldest change batched into this
    write happened — or None when none did (the annotation is then dropped).
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str | None, dict[str, str | None]]] = {}

    def compute(self, key: str, svc: Obj, pods: Iterable[Obj]) -> str | None:
        svc_time = meta(svc).get("creationTimestamp")
        prev = self._seen.get(key)
        prev_pods = prev[1] if prev is not None else {}
        changed: list[dt.datetime] = []
        if prev is None or prev[0] != svc_time:
            t = parse_time(svc_time)
            if t is not None:
                changed.append(t)
        now_pods: dict[str, str | None] = {}
        for pod in pods:
            name = str(meta(pod).get("name"))
            when = ready_condition(pod).get("lastTransitionTime")
            now_pods[name] = when
            if prev_pods.get(name, "") != when:
                t = parse_time(when)
                if t is not None:
                    changed.append(t)
        self._seen[key] = (svc_time, now_pods)
        return format_time(min(changed)) if changed else None

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)


class CachesNotSynced(Exception):
    """A sync ran before its informers listed once; it is retried (never acted on, since
    an empty cache would look like every Service was deleted)."""


def require_synced(*informers: SharedInformer) -> None:
    """Raise :class:`CachesNotSynced` unless every informer has listed once."""
    missing = [i.resource.resource for i in informers if not i.has_synced()]
    if missing:
        raise CachesNotSynced("informers not synced: " + ", ".join(missing))


# --- write tracking -------------------------------------------------------------------------


class WriteTracker:
    """What our own writes should make an informer cache show, per controller key.

    After a write the cache lags until the watch event arrives; a sync in between would
    compute from old state and write again (409s, duplicate creates). The controller
    records each write here and, while :meth:`is_stale` says so, skips the sync — the
    write's own watch event requeues the key. Expectations expire after ``ttl`` seconds
    so that a lost event (or someone deleting what we just created) cannot wedge a key.
    """

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        # key -> object name -> (resourceVersion the cache must no longer show, or None
        # for "must be present", monotonic deadline)
        self._expect: dict[str, dict[str, tuple[str | None, float]]] = {}

    def created(self, key: str, name: str) -> None:
        self._add(key, name, None)

    def replaced(self, key: str, name: str, old_rv: str) -> None:
        """``name`` was updated or deleted from ``old_rv``."""
        self._add(key, name, old_rv)

    def _add(self, key: str, name: str, rv: str | None) -> None:
        self._expect.setdefault(key, {})[name] = (rv, _monotonic() + self.ttl)

    def is_stale(self, key: str, cached: Mapping[str, str]) -> bool:
        """True while ``cached`` (object name -> resourceVersion, as the cache shows
        them) does not yet reflect every recorded write of ``key``."""
        expect = self._expect.get(key)
        if not expect:
            return False
        now = _monotonic()
        for name, (rv, deadline) in list(expect.items()):
            done = name in cached if rv is None else cached.get(name) != rv
            if done or now > deadline:
                del expect[name]
        if not expect:
            del self._expect[key]
            return False
        return True

    def forget(self, key: str) -> None:
        self._expect.pop(key, None)


def _monotonic() -> float:
    return time.monotonic()
