"""The EndpointSlice mirroring controller: user-managed Endpoints → EndpointSlices.

For a Service *without* a selector whose Endpoints object is neither labelled
``endpointslice.kubernetes.io/skip-mirror: "true"`` nor a leader-election record, the
Endpoints is mirrored as upstream does: subsets with the same ports merge; each
(port list, address type) gets one slice holding at most 1000 addresses per subset
(``addresses`` → ready, ``notReadyAddresses`` → not ready; invalid IPs are skipped with
a Warning event). Slices copy the Endpoints' labels and annotations (minus the trigger
time and kubectl's last-applied configuration), are labelled with the service name and
``managed-by: endpointslicemirroring-controller.k8s.io``, and are owned by the Endpoints.
Whenever mirroring no longer applies (service gone or given a selector, Endpoints gone or
marked skip-mirror) the mirrored slices are deleted.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from svcnet.client.api import APIClient
from svcnet.client.events import EventRecorder
from svcnet.controllers import podinfo as pi
from svcnet.controllers.base import Controller
from svcnet.controllers.endpointslice import (
    SLICE_SERVICE_INDEX,
    EndpointKey,
    PortsKey,
    SlicePlan,
    SliceWriter,
    cached_versions,
    endpoint_key,
    endpoints_equal_beyond_key,
    ports_key,
    slice_prefix,
    slice_service_key,
)
from svcnet.informer.cache import object_key
from svcnet.informer.shared import InformerFactory

Obj = dict[str, Any]

SERVICES = pi.resource("", "services")
ENDPOINTS = pi.resource("", "endpoints")
ENDPOINT_SLICES = pi.resource("discovery.k8s.io", "endpointslices")

CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
MAX_ENDPOINTS_PER_SUBSET = 1000

_GroupKey = tuple[str, PortsKey]  # (address type, ports)


@dataclass
class MirrorPlan:
    """Writes to make, plus what was left out of the mirror (for events)."""

    slices: SlicePlan = field(default_factory=SlicePlan)
    invalid_addresses: int = 0
    skipped_addresses: int = 0


# --- pure ----------------------------------------------------------------------------------


def should_mirror(endpoints: Obj | None) -> bool:
    """Upstream ``shouldMirror``: not skip-mirror, not a leader-election record."""
    if endpoints is None:
        return False
    if pi.labels_of(endpoints).get(pi.LABEL_SKIP_MIRROR) == "true":
        return False
    return pi.ANNOTATION_LEADER not in (pi.meta(endpoints).get("annotations") or {})


def mirrored_ports(ports: Iterable[Obj] | None) -> list[Obj]:
    out: list[Obj] = []
    for p in ports or []:
        port: Obj = {"name": p.get("name") or "", "port": p.get("port"),
                     "protocol": p.get("protocol") or "TCP"}
        if p.get("appProtocol"):
            port["appProtocol"] = p["appProtocol"]
        out.append(port)
    return out


def address_to_endpoint(addr: Obj, ready: bool) -> tuple[Obj, str] | None:
    """``(endpoint, address type)`` for one Endpoints address, or None for an invalid IP."""
    ip = pi.canonical_ip(str(addr.get("ip") or ""))
    if ip is None:
        return None
    ep: Obj = {"addresses": [ip], "conditions": {"ready": ready}}
    if addr.get("hostname"):
        ep["hostname"] = addr["hostname"]
    if addr.get("nodeName"):
        ep["nodeName"] = addr["nodeName"]
    if addr.get("targetRef"):
        ep["targetRef"] = copy.deepcopy(addr["targetRef"])
    return ep, str(pi.ip_family(ip))


def mirror_labels(endpoints: Obj) -> dict[str, str]:
    labels = pi.labels_of(endpoints)
    labels[pi.LABEL_SERVICE_NAME] = str(pi.meta(endpoints).get("name"))
    labels[pi.LABEL_MANAGED_BY] = CONTROLLER_NAME
    return labels


def mirror_annotations(endpoints: Obj) -> dict[str, str]:
    drop = (pi.ANNOTATION_TRIGGER_TIME, pi.ANNOTATION_LAST_APPLIED)
    return {k: v for k, v in (pi.meta(endpoints).get("annotations") or {}).items()
            if k not in drop}


def endpoints_owner_ref(endpoints: Obj) -> Obj:
    m = pi.meta(endpoints)
    return {"apiVersion": "v1", "kind": "Endpoints", "name": m.get("name", ""),
            "uid": m.get("uid", ""), "controller": True, "blockOwnerDeletion": True}


def mirror_slice(endpoints: Obj, ports: list[Obj], address_type: str, eps: list[Obj],
                 name: str = "", resource_version: str = "") -> Obj:
    """A mirrored slice; named (an update) or with generateName (a create)."""
    m = pi.meta(endpoints)
    meta: Obj = {"namespace": m.get("namespace"), "labels": mirror_labels(endpoints),
                 "ownerReferences": [endpoints_owner_ref(endpoints)]}
    annotations = mirror_annotations(endpoints)
    if annotations:
        meta["annotations"] = annotations
    if name:
        meta["name"] = name
        if resource_version:
            meta["resourceVersion"] = resource_version
    else:
        meta["generateName"] = slice_prefix(str(m.get("name")))
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": address_type, "ports": copy.deepcopy(ports),
            "endpoints": sorted(eps, key=endpoint_key)}


def desired_groups(endpoints: Obj, max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET
                   ) -> tuple[dict[_GroupKey, list[Obj]], dict[_GroupKey, dict[EndpointKey, Obj]],
                              int, int]:
    """``(ports by group, endpoints by group, invalid count, skipped count)`` where a group
    is (address type, ports); at most ``max_per_subset`` addresses of each subset are
    taken, ready ones first."""
    ports_of: dict[_GroupKey, list[Obj]] = {}
    groups: dict[_GroupKey, dict[EndpointKey, Obj]] = {}
    invalid = skipped = 0
    for subset in endpoints.get("subsets") or []:
        ports = mirrored_ports(subset.get("ports"))
        pk = ports_key(ports)
        addrs = [(a, True) for a in subset.get("addresses") or []] + \
                [(a, False) for a in subset.get("notReadyAddresses") or []]
        added = 0
        for addr, ready in addrs:
            if added >= max_per_subset:
                break
            converted = address_to_endpoint(addr, ready)
            if converted is None:
                invalid += 1
                continue
            ep, address_type = converted
            key = (address_type, pk)
            ports_of.setdefault(key, ports)
            groups.setdefault(key, {}).setdefault(endpoint_key(ep), ep)
            added += 1
        skipped += len(addrs) - added
    return ports_of, groups, invalid, skipped


def _slice_matches(existing: Obj, endpoints: Obj, want: dict[EndpointKey, Obj]) -> bool:
    have = existing.get("endpoints") or []
    if len(have) != len(want):
        return False
    for ep in have:
        w = want.get(endpoint_key(ep))
        if w is None or not endpoints_equal_beyond_key(w, ep):
            return False
    return (pi.labels_of(existing) == mirror_labels(endpoints)
            and dict(pi.meta(existing).get("annotations") or {}) == mirror_annotations(endpoints))


def plan_mirror(endpoints: Obj, existing: Iterable[Obj],
                max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET) -> MirrorPlan:
    """The writes that make ``existing`` (mirrored slices, from a cache, never mutated)
    mirror ``endpoints``: per group the first existing slice is updated when it differs,
    extra ones deleted, missing ones created; create+delete pairs become updates."""
    ports_of, groups, invalid, skipped = desired_groups(endpoints, max_per_subset)
    plan = MirrorPlan(invalid_addresses=invalid, skipped_addresses=skipped - invalid)
    by_group: dict[_GroupKey, list[Obj]] = {}
    for s in sorted(existing, key=lambda s: str(pi.meta(s).get("name"))):
        by_group.setdefault((str(s.get("addressType")), ports_key(s.get("ports"))),
                            []).append(s)
    sp = plan.slices
    for key, want in groups.items():
        have = by_group.get(key, [])
        sp.delete += have[1:]
        if have and _slice_matches(have[0], endpoints, want):
            continue
        first = have[0] if have else None
        name = str(pi.meta(first).get("name")) if first else ""
        rv = str(pi.meta(first).get("resourceVersion") or "") if first else ""
        new = mirror_slice(endpoints, ports_of[key], key[0], list(want.values()), name, rv)
        (sp.update if name else sp.create).append(new)
    for key, have in by_group.items():
        if key not in groups:
            sp.delete += have
    _recycle(sp)
    return plan


def _recycle(sp: SlicePlan) -> None:
    """Turn create+delete pairs of one address type into updates."""
    i = 0
    while i < len(sp.delete) and sp.create:
        old, new = sp.delete[i], sp.create[-1]
        if old.get("addressType") == new.get("addressType"):
            sp.create.pop()
            m = new["metadata"]
            m["name"] = pi.meta(old).get("name")
            m["resourceVersion"] = pi.meta(old).get("resourceVersion")
            sp.update.append(new)
            sp.delete.pop(i)
        else:
            i += 1


# --- the controller -------------------------------------------------------------------------


class EndpointSliceMirroringController(Controller):
    """Mirrors user-managed Endpoints of selector-less Services (key ``ns/name``)."""

    name = "endpointslice-mirroring"
    workers = 2
    max_endpoints_per_subset = MAX_ENDPOINTS_PER_SUBSET

    def __init__(self, client: APIClient, factory: InformerFactory,
                 recorder: EventRecorder) -> None:
        super().__init__(client, recorder)
        self.services = factory.informer(SERVICES)
        self.endpoints = factory.informer(ENDPOINTS)
        self.slices = factory.informer(
            ENDPOINT_SLICES, label_selector=f"{pi.LABEL_MANAGED_BY}={CONTROLLER_NAME}")
        self.slices.add_indexer(SLICE_SERVICE_INDEX, slice_service_key)
        self.writes = pi.WriteTracker()
        self.writer = SliceWriter(client, self.writes)
        for inf in (self.services, self.endpoints):
            inf.add_handlers(self.enqueue, lambda _o, n: self.enqueue(n), self.enqueue)
        self.slices.add_handlers(self._slice_changed, lambda _o, n: self._slice_changed(n),
                                 self._slice_changed)
        self._warned: dict[str, tuple[int, int]] = {}

    def _slice_changed(self, slice_: Obj) -> None:
        for key in slice_service_key(slice_):
            self.enqueue_key(key)

    async def sync(self, key: str) -> None:
        pi.require_synced(self.services, self.endpoints, self.slices)
        svc = self.services.indexer.get(key)
        endpoints = self.endpoints.indexer.get(key)
        existing = [s for s in self.slices.indexer.by_index(SLICE_SERVICE_INDEX, key)
                    if not pi.is_terminating(s)]
        if self.writes.is_stale(key, cached_versions(existing)):
            self.queue.add_after(key, 1.0)
            return
        mirror = svc is not None and pi.service_selector(svc) is None and \
            should_mirror(endpoints)
        if not mirror or endpoints is None:
            self._warned.pop(key, None)
            for s in existing:
                await self.writer.delete(key, s)
            return
        plan = plan_mirror(endpoints, existing, self.max_endpoints_per_subset)
        self._warn(endpoints, plan)
        if pi.is_terminating(endpoints):
            plan.slices.create = []
        if not plan.slices.empty:
            await self.writer.apply(key, plan.slices)

    def _warn(self, endpoints: Obj, plan: MirrorPlan) -> None:
        """Warning events for addresses left out, once per distinct situation."""
        key = object_key(endpoints)
        state = (plan.invalid_addresses, plan.skipped_addresses)
        if self._warned.get(key) == state:
            return
        self._warned[key] = state
        if plan.invalid_addresses:
            self.recorder.event(pi.with_kind(endpoints, "Endpoints"), "Warning", "InvalidIPAddress",
                                f"Skipped {plan.invalid_addresses} invalid IP addresses "
                                "when mirroring to EndpointSlices")
        if plan.skipped_addresses > 0:
            self.recorder.event(pi.with_kind(endpoints, "Endpoints"), "Warning", "TooManyAddressesToMirror",
                                f"A max of {self.max_endpoints_per_subset} addresses can be "
                                "mirrored to EndpointSlices per Endpoints subset. "
                                f"{plan.skipped_addresses} addresses were skipped")
