"""API objects → :class:`ServicePortInfo` / :class:`EndpointInfo`, and the change trackers.

Conversion happens here and nowhere else (the proxy's boundary with the API):

* :func:`service_ports_from_api` turns one Service into its proxied service ports.
* :func:`endpoints_from_slice` turns one EndpointSlice into endpoints per service port;
  :func:`merge_endpoints` merges the slices of one service.

Change tracking follows kube-proxy: informer handlers call the trackers' ``update`` /
``delete``, which only remember the newest object per key (cheap, no conversion). The
sync loop calls :meth:`ProxyStateBuilder.apply`, which converts what is pending, folds it
into the builder's state and returns the service ports whose info or endpoint tuple
really changed — an update that changes nothing the proxy uses (say, only
``resourceVersion``) yields no change.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from svcnet.proxy.dataplane import ProxyState
from svcnet.proxy.schedulers import parse_weights
from svcnet.proxy.types import (
    DEFAULT_AFFINITY_TIMEOUT,
    SCHEDULER_ANNOTATION,
    WEIGHTS_ANNOTATION,
    EndpointInfo,
    ServicePortInfo,
    ServicePortName,
)

log = logging.getLogger("svcnet.proxy")

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
EndpointMap = dict[ServicePortName, tuple[EndpointInfo, ...]]
PortMap = dict[ServicePortName, ServicePortInfo]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
PROXIED_TYPES = frozenset({"ClusterIP", "NodePort", "LoadBalancer"})


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def object_key(obj: Obj) -> Key:
    m = _meta(obj)
    return (str(m.get("namespace") or ""), str(m.get("name") or ""))


# --- Services ----------------------------------------------------------------------------

def service_ports_from_api(svc: Obj) -> PortMap:
    """The service ports kube-proxy would program for ``svc``.

    One entry per ``spec.ports[]`` (protocol defaults to TCP, port name to ``""``).
    ExternalName services, headless services (``clusterIP: None``) and services without
    an allocated ClusterIP yield nothing. Malformed annotations or source ranges are
    logged and ignored, never fatal.
    """
    spec = svc.get("spec") or {}
    svc_type = str(spec.get("type") or "ClusterIP")
    cluster_ips = _cluster_ips(spec)
    if svc_type not in PROXIED_TYPES or not cluster_ips:
        return {}
    ns, name = object_key(svc)
    external_ips = tuple(str(ip) for ip in spec.get("externalIPs") or ())
    is_lb = svc_type == "LoadBalancer"
    common: dict[str, Any] = {
        "type": svc_type,
        "cluster_ips": cluster_ips,
        "external_ips": external_ips,
        "load_balancer_ips": _load_balancer_ips(svc) if is_lb else (),
        "source_ranges": _source_ranges(svc) if is_lb else (),
        "affinity_timeout": _affinity_timeout(spec),
        "internal_local": spec.get("internalTrafficPolicy") == "Local",
        "external_local": _external_local(spec, svc_type, external_ips),
        "scheduler": _scheduler(svc),
        "weights": _weights(svc),
        "health_check_node_port": int(spec.get("healthCheckNodePort") or 0)
        if is_lb and spec.get("externalTrafficPolicy") == "Local" else 0,
    }
    out: PortMap = {}
    for p in spec.get("ports") or ():
        spn = ServicePortName(ns, name, str(p.get("name") or ""),
                              str(p.get("protocol") or "TCP"))
        node_port = int(p.get("nodePort") or 0) if svc_type != "ClusterIP" else 0
        out[spn] = ServicePortInfo(name=spn, port=int(p.get("port") or 0),
                                   node_port=node_port, **common)
    return out


def _cluster_ips(spec: Obj) -> tuple[str, ...]:
    ips = [str(ip) for ip in spec.get("clusterIPs") or ()]
    if not ips and spec.get("clusterIP"):
        ips = [str(spec["clusterIP"])]
    if not ips or ips[0] == "None":
        return ()
    return tuple(ips)


def _load_balancer_ips(svc: Obj) -> tuple[str, ...]:
    """``status.loadBalancer.ingress[].ip`` except ``ipMode: Proxy`` entries (traffic to
    those arrives from the load balancer, addressed to a node)."""
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
    return tuple(str(i["ip"]) for i in ingress
                 if i.get("ip") and i.get("ipMode", "VIP") != "Proxy")


def _source_ranges(svc: Obj) -> tuple[str, ...]:
    """``spec.loadBalancerSourceRanges`` as normalized CIDRs; invalid entries are
    logged and skipped."""
    out: list[str] = []
    for text in (svc.get("spec") or {}).get("loadBalancerSourceRanges") or ():
        try:
            out.append(str(ipaddress.ip_network(str(text).strip(), strict=False)))
        except ValueError:
            log.warning("service %s/%s: ignoring invalid loadBalancerSourceRange %r",
                        *object_key(svc), text)
    return tuple(out)


def _affinity_timeout(spec: Obj) -> int:
    if spec.get("sessionAffinity") != "ClientIP":
        return 0
    cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
    return int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)


def _external_local(spec: Obj, svc_type: str, external_ips: tuple[str, ...]) -> bool:
    """``externalTrafficPolicy: Local`` on an externally reachable service (NodePort,
    LoadBalancer, or any type with externalIPs — kube-proxy's ``ExternallyAccessible``)."""
    reachable = svc_type in ("NodePort", "LoadBalancer") or bool(external_ips)
    return reachable and spec.get("externalTrafficPolicy") == "Local"


def _annotation(svc: Obj, key: str) -> str:
    return str((_meta(svc).get("annotations") or {}).get(key) or "").strip()


def _scheduler(svc: Obj) -> str:
    return _annotation(svc, SCHEDULER_ANNOTATION)


def _weights(svc: Obj) -> tuple[tuple[str, int], ...]:
    text = _annotation(svc, WEIGHTS_ANNOTATION)
    if not text:
        return ()
    try:
        return parse_weights(text)
    except Exception as e:  # a bad annotation must never take the service down
        log.warning("service %s/%s: ignoring annotation %s=%r: %s", *object_key(svc),
                    WEIGHTS_ANNOTATION, text, e)
        return ()


# --- EndpointSlices ----------------------------------------------------------------------

def slice_service(slice_: Obj) -> Key | None:
    """(namespace, service name) from the ``kubernetes.io/service-name`` label."""
    name = (_meta(slice_).get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not name:
        return None
    return (str(_meta(slice_).get("namespace") or ""), str(name))


def endpoints_from_slice(slice_: Obj) -> EndpointMap:
    """The endpoints ``slice_`` contributes, keyed by service port.

    A slice port (name, protocol, port) maps to the service port with that name and
    protocol. Each endpoint contributes its first address (addresses are fungible;
    kube-proxy uses the first), normalized. Ports without a number, FQDN slices and
    slices without a service label contribute nothing. Conditions follow the API's nil
    rules: ready nil → true, serving nil → the ready value, terminating nil → false.
    """
    svc = slice_service(slice_)
    if svc is None or slice_.get("addressType") == "FQDN":
        return {}
    base = [e for e in (_endpoint(ep) for ep in slice_.get("endpoints") or ()) if e]
    out: EndpointMap = {}
    for p in slice_.get("ports") or ():
        if p.get("port") is None:
            continue
        spn = ServicePortName(svc[0], svc[1], str(p.get("name") or ""),
                              str(p.get("protocol") or "TCP"))
        port = int(p["port"])
        out[spn] = tuple(_with_port(e, port) for e in base)
    return out


def _endpoint(ep: Obj) -> EndpointInfo | None:
    """``ep`` with port 0, or None when it has no valid address."""
    addrs = ep.get("addresses") or ()
    if not addrs:
        return None
    try:
        ip = ipaddress.ip_address(str(addrs[0])).compressed
    except ValueError:
        return None
    cond = ep.get("conditions") or {}
    ready = cond.get("ready") is not False
    serving = ready if cond.get("serving") is None else bool(cond["serving"])
    ref = ep.get("targetRef") or {}
    hints = ep.get("hints") or {}
    return EndpointInfo(
        ip=ip, port=0, ready=ready, serving=serving,
        terminating=bool(cond.get("terminating")),
        node_name=str(ep.get("nodeName") or ""), zone=str(ep.get("zone") or ""),
        target=str(ref.get("name") or "") if ref.get("kind") == "Pod" else "",
        zone_hints=tuple(str(h["name"]) for h in hints.get("forZones") or () if h.get("name")),
        node_hints=tuple(str(h["name"]) for h in hints.get("forNodes") or () if h.get("name")))


def _with_port(e: EndpointInfo, port: int) -> EndpointInfo:
    return EndpointInfo(e.ip, port, e.ready, e.serving, e.terminating, e.node_name, e.zone,
                        e.target, e.zone_hints, e.node_hints)


def merge_endpoints(parts: Iterable[EndpointMap]) -> EndpointMap:
    """Merge per-slice endpoint maps (in the given order) into one map whose tuples are
    sorted by ``ip:port`` string. For a duplicate ``ip:port`` the first one seen is kept,
    unless a later duplicate is ready and the kept one is not."""
    merged: dict[ServicePortName, dict[str, EndpointInfo]] = {}
    for part in parts:
        for spn, eps in part.items():
            seen = merged.setdefault(spn, {})
            for e in eps:
                old = seen.get(e.address)
                if old is None or (e.ready and not old.ready):
                    seen[e.address] = e
    return {spn: tuple(seen[a] for a in sorted(seen)) for spn, seen in merged.items() if seen}


def endpoints_from_slices(slices: Iterable[Obj]) -> EndpointMap:
    """All endpoints of ``slices`` (any services), merged per service port; slices are
    taken in (namespace, name) order so the result does not depend on input order."""
    ordered = sorted(slices, key=object_key)
    return merge_endpoints(endpoints_from_slice(s) for s in ordered)


# --- change trackers ---------------------------------------------------------------------

class _Tracker:
    """Newest object (``None`` = deleted) per (namespace, name) since the last take."""

    def __init__(self) -> None:
        self._pending: dict[Key, Obj | None] = {}

    def add(self, obj: Obj) -> None:
        self._pending[object_key(obj)] = obj

    def update(self, old: Obj | None, new: Obj) -> None:
        """Record ``new`` (``old`` is unused: the builder remembers what it applied)."""
        self._pending[object_key(new)] = new

    def delete(self, obj: Obj) -> None:
        self._pending[object_key(obj)] = None

    def has_pending(self) -> bool:
        return bool(self._pending)

    def take(self) -> dict[Key, Obj | None]:
        """The pending changes, leaving none."""
        pending, self._pending = self._pending, {}
        return pending


class ServiceChangeTracker(_Tracker):
    """Pending Service changes (informer handlers call add/update/delete)."""


class EndpointSliceChangeTracker(_Tracker):
    """Pending EndpointSlice changes (informer handlers call add/update/delete)."""


@dataclass
class _SliceRecord:
    service: Key
    endpoints: EndpointMap


@dataclass
class ProxyStateBuilder:
    """Owns the proxy's desired state and folds tracker changes into it.

    Single-threaded: handlers record into :attr:`services` / :attr:`slices` and the sync
    loop calls :meth:`apply` then :meth:`snapshot`, all on one event loop.
    """

    node_name: str = ""
    node_ips: tuple[str, ...] = ()
    node_zone: str = ""
    services: ServiceChangeTracker = field(default_factory=ServiceChangeTracker)
    slices: EndpointSliceChangeTracker = field(default_factory=EndpointSliceChangeTracker)
    _ports: dict[Key, PortMap] = field(init=False, default_factory=dict)
    _slices: dict[Key, _SliceRecord] = field(init=False, default_factory=dict)
    _slices_by_service: dict[Key, set[Key]] = field(init=False, default_factory=dict)
    _endpoints_by_service: dict[Key, EndpointMap] = field(init=False, default_factory=dict)
    _service_ports: PortMap = field(init=False, default_factory=dict)
    _endpoints: EndpointMap = field(init=False, default_factory=dict)

    def has_pending(self) -> bool:
        return self.services.has_pending() or self.slices.has_pending()

    def apply(self) -> set[ServicePortName]:
        """Fold pending changes in; the service ports whose info or endpoints changed."""
        changed: set[ServicePortName] = set()
        for key, obj in self.services.take().items():
            changed |= self._apply_service(key, obj)
        dirty: set[Key] = set()
        for key, obj in self.slices.take().items():
            dirty |= self._apply_slice(key, obj)
        for svc in dirty:
            changed |= self._recompute_endpoints(svc)
        return changed

    def snapshot(self) -> ProxyState:
        """A :class:`ProxyState` of the current desired state (fresh dicts, shared
        frozen values: later :meth:`apply` calls do not alter it)."""
        return ProxyState(node_name=self.node_name, node_ips=self.node_ips,
                          node_zone=self.node_zone, services=dict(self._service_ports), endpoints=dict(self._endpoints))

    def _apply_service(self, key: Key, obj: Obj | None) -> set[ServicePortName]:
        new = service_ports_from_api(obj) if obj is not None else {}
        old = self._ports.pop(key, {})
        if new:
            self._ports[key] = new
        changed = {spn for spn in old.keys() | new.keys() if old.get(spn) != new.get(spn)}
        for spn in changed:
            if spn in new:
                self._service_ports[spn] = new[spn]
            else:
                self._service_ports.pop(spn, None)
        return changed

    def _apply_slice(self, key: Key, obj: Obj | None) -> set[Key]:
        """Replace the slice's record; the services whose endpoint merge may change."""
        dirty: set[Key] = set()
        old = self._slices.pop(key, None)
        if old is not None:
            dirty.add(old.service)
            self._slices_by_service[old.service].discard(key)
            if not self._slices_by_service[old.service]:
                del self._slices_by_service[old.service]
        svc = slice_service(obj) if obj is not None else None
        if obj is not None and svc is not None:
            self._slices[key] = _SliceRecord(svc, endpoints_from_slice(obj))
            self._slices_by_service.setdefault(svc, set()).add(key)
            dirty.add(svc)
        return dirty

    def _recompute_endpoints(self, svc: Key) -> set[ServicePortName]:
        keys = sorted(self._slices_by_service.get(svc, ()))
        new = merge_endpoints(self._slices[k].endpoints for k in keys)
        old = self._endpoints_by_service.pop(svc, {})
        if new:
            self._endpoints_by_service[svc] = new
        changed = {spn for spn in old.keys() | new.keys() if old.get(spn) != new.get(spn)}
        for spn in changed:
            if spn in new:
                self._endpoints[spn] = new[spn]
            else:
                self._endpoints.pop(spn, None)
        return changed


def build_state(services: Iterable[Obj], slices: Iterable[Obj], node_name: str = "",
                node_ips: tuple[str, ...] = ()) -> ProxyState:
    """The :class:`ProxyState` for these API objects (a convenience for tests and tools)."""
    b = ProxyStateBuilder(node_name, node_ips)
    for svc in services:
        b.services.add(svc)
    for s in slices:
        b.slices.add(s)
    b.apply()
    return b.snapshot()
