"""The Endpoints controller: one ``v1`` Endpoints object per Service with a selector.

Desired state (upstream ``syncService``), computed by :func:`desired_subsets`:

* every pod matching the selector that :func:`~podinfo.should_pod_be_in_endpoints`
  (terminating pods only with ``publishNotReadyAddresses``) contributes one address per
  service port whose ``targetPort`` it resolves; ready pods (or all, with
  ``publishNotReadyAddresses``) go to ``addresses``, the others to ``notReadyAddresses``;
* a headless service without ports gets its addresses in a subset without ports;
* subsets are then repacked (:func:`repack_subsets`): addresses offering the same ports
  share one subset, so pods that resolve a named port differently land in different
  subsets; everything is sorted.

The object carries the service's labels (plus ``service.kubernetes.io/headless`` for
headless services), ``endpoints.kubernetes.io/last-change-trigger-time`` and, past 1000
addresses, the ``over-capacity: truncated`` annotation. Services without a selector and
ExternalName services are left alone; when a Service is deleted its Endpoints goes too.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Any

from svcnet.client.api import APIClient
from svcnet.client.events import EventRecorder
from svcnet.controllers import podinfo as pi
from svcnet.controllers.base import Controller
from svcnet.informer.cache import object_key, split_key
from svcnet.informer.shared import InformerFactory
from svcnet.model import errors

Obj = dict[str, Any]

SERVICES = pi.resource("", "services")
PODS = pi.resource("", "pods")
ENDPOINTS = pi.resource("", "endpoints")

MAX_CAPACITY = 1000

# (ip, targetRef uid): two addresses are the same endpoint when both match.
_AddrKey = tuple[str, str]
_PortKey = tuple[str, int, str, str]


# --- pure: desired subsets ------------------------------------------------------------------


def _address_for_pod(svc: Obj, pod: Obj) -> Obj | None:
    """The EndpointAddress of ``pod`` for ``svc``: the pod IP of the service's first IP
    family, nodeName when set, targetRef, hostname per ``ShouldSetHostname``."""
    families = pi.spec(svc).get("ipFamilies") or []
    family = families[0] if families else None
    if family is None:
        cip = pi.spec(svc).get("clusterIP") or ""
        family = pi.ip_family(cip) if pi.has_cluster_ip(svc) else None
    ips = pi.pod_ips(pod)
    if family is None:
        family = pi.ip_family(ips[0]) if ips else "IPv4"
    ip = next((i for i in ips if pi.ip_family(i) == family), None)
    if ip is None:
        return None
    m = pi.meta(pod)
    addr: Obj = {"ip": ip}
    if pi.should_set_hostname(pod, svc):
        addr["hostname"] = pi.spec(pod)["hostname"]
    if pi.spec(pod).get("nodeName"):
        addr["nodeName"] = pi.spec(pod)["nodeName"]
    addr["targetRef"] = {"kind": "Pod", "namespace": m.get("namespace", ""),
                         "name": m.get("name", ""), "uid": m.get("uid", "")}
    return addr


def _endpoint_port(svc_port: Obj, number: int) -> Obj:
    port: Obj = {}
    if svc_port.get("name"):
        port["name"] = svc_port["name"]
    port["port"] = number
    port["protocol"] = svc_port.get("protocol") or "TCP"
    if svc_port.get("appProtocol"):
        port["appProtocol"] = svc_port["appProtocol"]
    return port


def desired_subsets(svc: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The repacked, sorted ``subsets`` the Endpoints of ``svc`` should hold."""
    tolerate = bool(pi.spec(svc).get("publishNotReadyAddresses"))
    ports = [p for p in pi.spec(svc).get("ports") or [] if isinstance(p, dict)]
    raw: list[Obj] = []
    for pod in pods:
        if not pi.should_pod_be_in_endpoints(pod, tolerate):
            continue
        addr = _address_for_pod(svc, pod)
        if addr is None:
            continue
        field = "addresses" if tolerate or pi.is_pod_ready(pod) else "notReadyAddresses"
        if not ports:
            if pi.is_headless(svc):
                raw.append({field: [addr]})
            continue
        for svc_port in ports:
            number = pi.find_port(pod, svc_port)
            if number is not None:
                raw.append({field: [addr], "ports": [_endpoint_port(svc_port, number)]})
    return repack_subsets(raw)


def _addr_key(addr: Obj) -> _AddrKey:
    return (str(addr.get("ip", "")), str((addr.get("targetRef") or {}).get("uid", "")))


def _port_key(port: Obj) -> _PortKey:
    return (str(port.get("name") or ""), int(port.get("port") or 0),
            str(port.get("protocol") or "TCP"), str(port.get("appProtocol") or ""))


_NO_PORT: _PortKey = ("", -1, "", "")


def repack_subsets(subsets: Iterable[Obj]) -> list[Obj]:
    """Upstream ``RepackSubsets``: map each port to the addresses offering it (ready wins
    over not-ready for the same address), group ports with identical address sets into
    one subset, and sort (addresses by IP then uid, ports by name/number/protocol,
    subsets by their ports then addresses). Subsets without ports are kept."""
    first_seen: dict[_AddrKey, Obj] = {}
    port_objs: dict[_PortKey, Obj] = {}
    by_port: dict[_PortKey, dict[_AddrKey, bool]] = {}
    for subset in subsets:
        ports = [p for p in subset.get("ports") or [] if isinstance(p, dict)]
        keys = [_port_key(p) for p in ports] or [_NO_PORT]
        for p in ports:
            port_objs.setdefault(_port_key(p), p)
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for addr in subset.get(field) or []:
                ak = _addr_key(addr)
                first_seen.setdefault(ak, addr)
                for pk in keys:
                    seen = by_port.setdefault(pk, {})
                    seen[ak] = seen.get(ak, False) or ready
    groups: dict[tuple[tuple[_AddrKey, bool], ...], list[_PortKey]] = {}
    for pk, addrs in by_port.items():
        groups.setdefault(tuple(sorted(addrs.items())), []).append(pk)
    out = [_build_subset(members, pks, first_seen, port_objs)
           for members, pks in groups.items()]
    return sorted(out, key=_subset_sort_key)


def _build_subset(members: tuple[tuple[_AddrKey, bool], ...], pks: list[_PortKey],
                  first_seen: dict[_AddrKey, Obj], port_objs: dict[_PortKey, Obj]) -> Obj:
    subset: Obj = {}
    ready = [copy.deepcopy(first_seen[k]) for k, r in members if r]
    not_ready = [copy.deepcopy(first_seen[k]) for k, r in members if not r]
    if ready:
        subset["addresses"] = ready
    if not_ready:
        subset["notReadyAddresses"] = not_ready
    real = sorted(pk for pk in pks if pk != _NO_PORT)
    if real:
        subset["ports"] = [copy.deepcopy(port_objs[pk]) for pk in real]
    return subset


def _subset_sort_key(subset: Obj) -> tuple[list[_PortKey], list[_AddrKey], list[_AddrKey]]:
    return ([_port_key(p) for p in subset.get("ports") or []],
            [_addr_key(a) for a in subset.get("addresses") or []],
            [_addr_key(a) for a in subset.get("notReadyAddresses") or []])


def truncate_subsets(subsets: list[Obj]) -> bool:
    """Upstream ``truncateEndpoints``: cut ``subsets`` (in place) to ``MAX_CAPACITY``
    addresses, spreading the cut over subsets in proportion and keeping ready addresses
    first. Returns whether anything was cut."""
    total_ready = sum(len(s.get("addresses") or []) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if total_ready + total_not_ready <= MAX_CAPACITY:
        return False
    truncate_ready = total_ready > MAX_CAPACITY
    limit = MAX_CAPACITY if truncate_ready else MAX_CAPACITY - total_ready
    total = total_ready if truncate_ready else total_not_ready
    room = limit
    field = "addresses" if truncate_ready else "notReadyAddresses"
    for subset in subsets:
        have = subset.get(field) or []
        take = min(math.ceil(len(have) / total * limit), room)
        subset[field] = have[:take]
        room -= len(subset[field])
        if truncate_ready:
            subset.pop("notReadyAddresses", None)
        for f in ("addresses", "notReadyAddresses"):
            if f in subset and not subset[f]:
                del subset[f]
    subsets[:] = [s for s in subsets if s.get("addresses") or s.get("notReadyAddresses")]
    return True


def endpoints_labels(svc: Obj) -> dict[str, str]:
    """The service's labels, plus ``service.kubernetes.io/headless: ""`` exactly when the
    service has no cluster IP."""
    labels = pi.labels_of(svc)
    if pi.has_cluster_ip(svc):
        labels.pop(pi.LABEL_HEADLESS, None)
    else:
        labels[pi.LABEL_HEADLESS] = ""
    return labels


def _strip_target_rv(subsets: list[Obj]) -> list[Obj]:
    """``subsets`` without targetRef resourceVersions (they never matter for equality)."""
    out = copy.deepcopy(subsets)
    for s in out:
        for f in ("addresses", "notReadyAddresses"):
            for a in s.get(f) or []:
                (a.get("targetRef") or {}).pop("resourceVersion", None)
    return out


def endpoints_up_to_date(current: Obj, svc: Obj, subsets: list[Obj], truncated: bool
                         ) -> bool:
    """The no-op test: same subsets (ignoring targetRef resourceVersions), same labels
    apart from the headless label, and the over-capacity annotation present exactly when
    ``subsets`` were truncated."""
    cur_labels = pi.labels_of(current)
    cur_labels.pop(pi.LABEL_HEADLESS, None)
    annotations = pi.meta(current).get("annotations") or {}
    return (_strip_target_rv(current.get("subsets") or []) == subsets
            and cur_labels == pi.labels_of(svc)
            and (pi.ANNOTATION_OVER_CAPACITY in annotations) == truncated)


def desired_endpoints(svc: Obj, pods: Iterable[Obj], current: Obj | None,
                      trigger_time: str | None) -> Obj | None:
    """The Endpoints object to write for ``svc``, or None when ``current`` already says
    it. ``current`` (from a cache) is never mutated; the result keeps its metadata
    (resourceVersion, other annotations) so it can be sent as an update."""
    subsets = desired_subsets(svc, pods)
    truncated = truncate_subsets(subsets)
    if current is not None and endpoints_up_to_date(current, svc, subsets, truncated):
        return None
    m = pi.meta(svc)
    if current is None:
        new: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": m.get("name"), "namespace": m.get("namespace")}}
    else:
        new = copy.deepcopy(current)
        new.setdefault("apiVersion", "v1")
        new.setdefault("kind", "Endpoints")
    nm = new.setdefault("metadata", {})
    annotations = dict(nm.get("annotations") or {})
    if trigger_time:
        annotations[pi.ANNOTATION_TRIGGER_TIME] = trigger_time
    else:
        annotations.pop(pi.ANNOTATION_TRIGGER_TIME, None)
    if truncated:
        annotations[pi.ANNOTATION_OVER_CAPACITY] = "truncated"
    else:
        annotations.pop(pi.ANNOTATION_OVER_CAPACITY, None)
    if annotations:
        nm["annotations"] = annotations
    else:
        nm.pop("annotations", None)
    nm["labels"] = endpoints_labels(svc)
    if subsets:
        new["subsets"] = subsets
    else:
        new.pop("subsets", None)
    return new


# --- the controller -------------------------------------------------------------------------


class EndpointsController(Controller):
    """Keeps ``Endpoints`` true for every Service with a selector (key: ``ns/name``)."""

    name = "endpoints"
    workers = 4

    def __init__(self, client: APIClient, factory: InformerFactory,
                 recorder: EventRecorder) -> None:
        super().__init__(client, recorder)
        self.services = factory.informer(SERVICES)
        self.pods = factory.informer(PODS)
        self.endpoints = factory.informer(ENDPOINTS)
        self.pods.add_indexer(pi.POD_LABEL_INDEX, pi.pod_label_pairs)
        self.triggers = pi.TriggerTimeTracker()
        self.writes = pi.WriteTracker()
        self.services.add_handlers(self.enqueue, lambda _o, n: self.enqueue(n), self.enqueue)
        self.pods.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)
        self.endpoints.add_handlers(self._endpoints_changed,
                                    lambda _o, n: self._endpoints_changed(n),
                                    self.enqueue)

    # --- handlers: record keys only ---------------------------------------------------

    def _pod_added(self, pod: Obj) -> None:
        for key in pi.services_to_update(self.services.indexer, None, pod):
            self.enqueue_key(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        for key in pi.services_to_update(self.services.indexer, old, new):
            self.enqueue_key(key)

    def _pod_deleted(self, pod: Obj) -> None:
        for key in pi.services_to_update(self.services.indexer, pod, None):
            self.enqueue_key(key)

    def _endpoints_changed(self, ep: Obj) -> None:
        """Endpoints we manage are resynced when they change (a user edit is undone);
        Endpoints of other services are never looked at."""
        key = object_key(ep)
        if pi.managed_by_selector(self.services.indexer.get(key)):
            self.enqueue_key(key)

    def start(self) -> None:
        """Start workers, first queueing every Endpoints so that those left behind by a
        Service deleted while the controller was down are removed (upstream
        ``checkLeftoverEndpoints``)."""
        for ep in self.endpoints.indexer.items() if self.endpoints.has_synced() else []:
            if pi.ANNOTATION_LEADER not in (pi.meta(ep).get("annotations") or {}):
                self.enqueue(ep)
        super().start()

    # --- sync -------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        pi.require_synced(self.services, self.pods, self.endpoints)
        ns, name = split_key(key)
        svc = self.services.indexer.get(key)
        current = self.endpoints.indexer.get(key)
        if svc is None:
            self.triggers.forget(key)
            self.writes.forget(key)
            if current is not None:
                await self._delete(ns, name)
            return
        if not pi.managed_by_selector(svc) or self._cache_is_stale(key, current):
            return
        selector = pi.service_selector(svc) or {}
        pods = pi.pods_for_selector(self.pods.indexer, ns or "", selector)
        trigger = self.triggers.compute(key, svc, pods)
        new = desired_endpoints(svc, pods, current, trigger)
        if new is None:
            return
        await self._write(key, svc, current, new)

    def _cache_is_stale(self, key: str, current: Obj | None) -> bool:
        """True while the cache still shows the state from before our last write; the
        watch event of that write requeues the key (and a timer does, as a safety net)."""
        cached = {} if current is None else {
            str(pi.meta(current).get("name")): str(pi.meta(current).get("resourceVersion"))}
        if self.writes.is_stale(key, cached):
            self.queue.add_after(key, 1.0)
            return True
        return False

    async def _write(self, key: str, svc: Obj, current: Obj | None, new: Obj) -> None:
        ns, _ = split_key(key)
        try:
            if current is None:
                await self.client.create(ENDPOINTS, ns, new)
                self.writes.created(key, str(pi.meta(new).get("name")))
                return
            updated = await self.client.update(ENDPOINTS, new)
        except errors.APIError as e:
            if current is None and e.code == 403 and "terminat" in e.message.lower():
                return  # the namespace is going away
            verb = "create" if current is None else "update"
            self.recorder.event(pi.with_kind(svc, "Service"), "Warning", f"FailedTo{verb.title()}Endpoint",
                                f"Failed to {verb} endpoint {key}: {e.message}")
            raise
        old_rv = str(pi.meta(current).get("resourceVersion"))
        if str(pi.meta(updated).get("resourceVersion")) != old_rv:
            self.writes.replaced(key, str(pi.meta(new).get("name")), old_rv)

    async def _delete(self, ns: str | None, name: str) -> None:
        try:
            await self.client.delete(ENDPOINTS, ns, name)
        except errors.APIError as e:
            if e.code != 404:
                raise
