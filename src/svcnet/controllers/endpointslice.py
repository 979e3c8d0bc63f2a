"""The EndpointSlice controller: ``discovery.k8s.io/v1`` slices for Services with a selector.

Desired endpoints (upstream ``podToEndpoint``): every pod matching the selector that is
not terminal and has an IP of the slice's address type — terminating pods included —
with conditions ``serving`` = pod Ready, ``terminating`` = deletionTimestamp set,
``ready`` = serving and not terminating (always true with ``publishNotReadyAddresses``);
``hostname`` per ``ShouldSetHostname``, ``nodeName``, ``zone`` (from the node's
``topology.kubernetes.io/zone`` label when the node is known) and ``targetRef``; with
``trafficDistribution: PreferClose`` each ready endpoint with a zone is hinted for that
zone (``hints.forZones``), as upstream's PreferClose heuristic.
Endpoints are grouped by their resolved port list; each group is spread over slices of
at most ``max_endpoints_per_slice`` (100) endpoints.

:func:`plan_slices` reconciles like upstream's reconciler, for minimal churn: existing
slices keep their endpoints in place (changed ones are rewritten, gone ones removed,
slices left empty are deleted); leftover endpoints first fill slices that are being
updated anyway, then the unchanged slice they fit best, and only then new slices; a
create paired with a delete becomes an update of the deleted slice. A service with no
endpoints at all keeps one empty placeholder slice per address type.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svcnet.client.api import APIClient
from svcnet.client.events import EventRecorder
from svcnet.controllers import podinfo as pi
from svcnet.controllers.base import Controller
from svcnet.informer.cache import split_key
from svcnet.informer.shared import InformerFactory
from svcnet.model import errors

Obj = dict[str, Any]

SERVICES = pi.resource("", "services")
PODS = pi.resource("", "pods")
NODES = pi.resource("", "nodes")
ENDPOINT_SLICES = pi.resource("discovery.k8s.io", "endpointslices")

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100
SLICE_SERVICE_INDEX = "svcnet.endpointslice/service"

EndpointKey = tuple[tuple[str, ...], str, str, str]
PortsKey = tuple[tuple[str, int, str, str], ...]


@dataclass
class SlicePlan:
    """The writes that bring a service's slices to the desired state."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)

    def extend(self, other: SlicePlan) -> None:
        self.create += other.create
        self.update += other.update
        self.delete += other.delete

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


# --- pure: endpoints of pods ----------------------------------------------------------------


def address_types(svc: Obj) -> list[str]:
    """Address types the service's slices carry: from ``ipFamilies``; without them the
    cluster IP's family, or both families for a headless service (as upstream)."""
    types: list[str] = []
    for fam in pi.spec(svc).get("ipFamilies") or []:
        t = {"IPv4": "IPv4", "IPv6": "IPv6"}.get(fam)
        if t and t not in types:
            types.append(t)
    if types:
        return types
    if pi.has_cluster_ip(svc):
        return [pi.ip_family(str(pi.spec(svc).get("clusterIP"))) or "IPv4"]
    return ["IPv4", "IPv6"]


def endpoint_ports(svc: Obj, pod: Obj) -> list[Obj]:
    """The slice ports for ``pod``: one per service port whose targetPort the pod
    resolves (numbers as they are, names through its container ports)."""
    out: list[Obj] = []
    for svc_port in pi.spec(svc).get("ports") or []:
        number = pi.find_port(pod, svc_port)
        if number is None:
            continue
        port: Obj = {"name": svc_port.get("name") or "", "port": number,
                     "protocol": svc_port.get("protocol") or "TCP"}
        if svc_port.get("appProtocol"):
            port["appProtocol"] = svc_port["appProtocol"]
        out.append(port)
    return out


def pod_endpoint(pod: Obj, svc: Obj, address_type: str, zone: str | None = None
                 ) -> Obj | None:
    """The slice endpoint of ``pod`` for one address type, or None when the pod has no IP
    of that type."""
    addresses = [c for c in (pi.canonical_ip(ip) for ip in pi.pod_ips(pod))
                 if c is not None and pi.ip_family(c) == address_type]
    if not addresses:
        return None
    serving = pi.is_pod_ready(pod)
    terminating = pi.is_terminating(pod)
    ready = bool(pi.spec(svc).get("publishNotReadyAddresses")) or (serving and not terminating)
    m = pi.meta(pod)
    ep: Obj = {"addresses": addresses,
               "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    if pi.should_set_hostname(pod, svc):
        ep["hostname"] = pi.spec(pod)["hostname"]
    ep["targetRef"] = {"kind": "Pod", "namespace": m.get("namespace", ""),
                       "name": m.get("name", ""), "uid": m.get("uid", "")}
    if pi.spec(pod).get("nodeName"):
        ep["nodeName"] = pi.spec(pod)["nodeName"]
    if zone:
        ep["zone"] = zone
        if ready and pi.spec(svc).get("trafficDistribution") == "PreferClose":
            # upstream's PreferClose heuristic: ready endpoints are hinted for their zone
            ep["hints"] = {"forZones": [{"name": zone}]}
    return ep


def endpoint_key(ep: Obj) -> EndpointKey:
    """Identity of an endpoint (upstream's endpoint hash): its sorted addresses, hostname
    and the namespace/name it refers to."""
    ref = ep.get("targetRef") or {}
    return (tuple(sorted(str(a) for a in ep.get("addresses") or [])),
            str(ep.get("hostname") or ""), str(ref.get("namespace") or ""),
            str(ref.get("name") or ""))


def _ref_projection(ref: Obj | None) -> Obj | None:
    if not ref:
        return None
    return {k: v for k, v in ref.items() if k != "resourceVersion" and v not in (None, "")}


def endpoints_equal_beyond_key(a: Obj, b: Obj) -> bool:
    """Whether two endpoints with the same :func:`endpoint_key` also agree on nodeName,
    zone, hints, conditions and targetRef (resourceVersion ignored)."""
    ca, cb = a.get("conditions") or {}, b.get("conditions") or {}
    return (a.get("nodeName") == b.get("nodeName") and a.get("zone") == b.get("zone")
            and (a.get("hints") or None) == (b.get("hints") or None)
            and all(ca.get(c) == cb.get(c) for c in ("ready", "serving", "terminating"))
            and _ref_projection(a.get("targetRef")) == _ref_projection(b.get("targetRef")))


def ports_key(ports: Iterable[Obj] | None) -> PortsKey:
    """Order-independent identity of a slice's port list."""
    return tuple(sorted((str(p.get("name") or ""), int(p.get("port") or 0),
                         str(p.get("protocol") or "TCP"), str(p.get("appProtocol") or ""))
                        for p in ports or []))


# --- pure: slice objects --------------------------------------------------------------------


def slice_labels(current: Mapping[str, str] | None, svc: Obj,
                 controller: str = CONTROLLER_NAME) -> tuple[dict[str, str], bool]:
    """``(labels, changed)``: the service's labels (reserved keys skipped) plus
    service-name, managed-by and — for headless services — the headless label;
    ``changed`` says whether ``current``'s non-reserved labels differ from the service's."""
    reserved = (pi.LABEL_SERVICE_NAME, pi.LABEL_MANAGED_BY, pi.LABEL_HEADLESS)
    have = {k: v for k, v in (current or {}).items() if k not in reserved}
    want = {k: v for k, v in pi.labels_of(svc).items() if k not in reserved}
    changed = have != want
    labels = dict(want)
    if not pi.has_cluster_ip(svc):
        labels[pi.LABEL_HEADLESS] = ""
    labels[pi.LABEL_SERVICE_NAME] = str(pi.meta(svc).get("name"))
    labels[pi.LABEL_MANAGED_BY] = controller
    return labels, changed


def service_owner_ref(svc: Obj) -> Obj:
    m = pi.meta(svc)
    return {"apiVersion": "v1", "kind": "Service", "name": m.get("name", ""),
            "uid": m.get("uid", ""), "controller": True, "blockOwnerDeletion": True}


def slice_prefix(name: str) -> str:
    """generateName for a service's slices: ``<name>-`` unless that is too long."""
    return f"{name}-" if len(name) < 253 else name


def new_slice(svc: Obj, ports: list[Obj], address_type: str) -> Obj:
    """An empty slice (no name yet: generateName) for ``svc``."""
    m = pi.meta(svc)
    labels, _ = slice_labels({}, svc)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": slice_prefix(str(m.get("name"))),
                         "namespace": m.get("namespace"), "labels": labels,
                         "ownerReferences": [service_owner_ref(svc)]},
            "addressType": address_type, "ports": copy.deepcopy(ports), "endpoints": []}


def owned_by(slice_: Obj, svc: Obj) -> bool:
    uid = pi.meta(svc).get("uid")
    return any(o.get("uid") == uid and o.get("kind") == "Service" and
               o.get("apiVersion") == "v1" for o in pi.meta(slice_).get("ownerReferences") or [])


def _owner_projection(slice_: Obj) -> list[tuple[Any, ...]]:
    return [(o.get("apiVersion"), o.get("kind"), o.get("name"), o.get("uid"),
             bool(o.get("controller")), bool(o.get("blockOwnerDeletion")))
            for o in pi.meta(slice_).get("ownerReferences") or []]


def is_same_placeholder(a: Obj, b: Obj) -> bool:
    """Upstream's placeholder comparison: namespace, labels, owners, address type,
    ports and endpoints (everything else in metadata ignored)."""
    return (pi.meta(a).get("namespace") == pi.meta(b).get("namespace")
            and pi.labels_of(a) == pi.labels_of(b)
            and _owner_projection(a) == _owner_projection(b)
            and a.get("addressType") == b.get("addressType")
            and ports_key(a.get("ports")) == ports_key(b.get("ports"))
            and not a.get("endpoints") and not b.get("endpoints"))


# --- pure: the reconciliation plan ----------------------------------------------------------


def plan_slices(svc: Obj, pods: Iterable[Obj], existing: Iterable[Obj],
                zones: Mapping[str, str] | None = None,
                max_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
                trigger_time: str | None = None) -> SlicePlan:
    """The creates, updates and deletes that make ``existing`` (this controller's slices
    for ``svc``, from a cache, never mutated) hold the endpoints of ``pods``."""
    supported = address_types(svc)
    plan = SlicePlan()
    by_type: dict[str, list[Obj]] = {t: [] for t in supported}
    for s in existing:
        if s.get("addressType") in by_type:
            by_type[str(s.get("addressType"))].append(s)
        else:
            plan.delete.append(s)
    pod_list = sorted(pods, key=lambda p: str(pi.meta(p).get("name")))
    for t in supported:
        plan.extend(_plan_address_type(svc, pod_list, by_type[t], t, zones or {},
                                       max_per_slice))
    for s in plan.create + plan.update:
        s["endpoints"] = sorted(s.get("endpoints") or [], key=endpoint_key)
        _set_trigger_time(s, trigger_time)
    if pi.is_terminating(svc):
        plan.create = []
    return plan


def _set_trigger_time(slice_: Obj, trigger_time: str | None) -> None:
    m = slice_.setdefault("metadata", {})
    annotations = dict(m.get("annotations") or {})
    if trigger_time:
        annotations[pi.ANNOTATION_TRIGGER_TIME] = trigger_time
    else:
        annotations.pop(pi.ANNOTATION_TRIGGER_TIME, None)
    if annotations:
        m["annotations"] = annotations
    else:
        m.pop("annotations", None)


def desired_endpoints(svc: Obj, pods: Iterable[Obj], address_type: str,
                      zones: Mapping[str, str]
                      ) -> tuple[dict[PortsKey, list[Obj]], dict[PortsKey, dict[EndpointKey, Obj]]]:
    """``(ports by port-map key, endpoints by port-map key then endpoint key)``. A pod
    contributes its port group even when it has no address of ``address_type``."""
    metas: dict[PortsKey, list[Obj]] = {}
    wanted: dict[PortsKey, dict[EndpointKey, Obj]] = {}
    for pod in pods:
        if not pi.should_pod_be_in_endpoints(pod, True):
            continue
        ports = endpoint_ports(svc, pod)
        pk = ports_key(ports)
        metas.setdefault(pk, ports)
        group = wanted.setdefault(pk, {})
        ep = pod_endpoint(pod, svc, address_type, zones.get(str(pi.spec(pod).get("nodeName"))))
        if ep is not None:
            group.setdefault(endpoint_key(ep), ep)
    return metas, wanted


def _plan_address_type(svc: Obj, pods: list[Obj], existing: list[Obj], address_type: str,
                       zones: Mapping[str, str], max_per_slice: int) -> SlicePlan:
    plan = SlicePlan()
    existing_by_pk: dict[PortsKey, list[Obj]] = {}
    for s in existing:
        if owned_by(s, svc):
            existing_by_pk.setdefault(ports_key(s.get("ports")), []).append(s)
        else:
            plan.delete.append(s)
    metas, wanted = desired_endpoints(svc, pods, address_type, zones)
    for pk, group in wanted.items():
        plan.extend(_plan_port_mapping(svc, existing_by_pk.get(pk, []), dict(group),
                                       metas[pk], address_type, max_per_slice))
    for pk, slices in existing_by_pk.items():
        if pk not in wanted:
            plan.delete += slices
    if len(existing) == len(plan.delete) and not plan.create:
        placeholder = new_slice(svc, [], address_type)
        if len(plan.delete) == 1 and is_same_placeholder(plan.delete[0], placeholder):
            plan.delete = []
        else:
            plan.create.append(placeholder)
    _recycle(svc, plan)
    return plan


def _plan_port_mapping(svc: Obj, existing: list[Obj], remaining: dict[EndpointKey, Obj],
                       ports: list[Obj], address_type: str, max_per_slice: int) -> SlicePlan:
    """Upstream ``reconcileByPortMapping`` for one port group; ``remaining`` (consumed)
    holds the desired endpoints by key."""
    plan = SlicePlan()
    updates: dict[str, Obj] = {}
    unchanged: list[Obj] = []
    for s in existing:
        kept, changed = _keep_desired(s, remaining)
        labels, labels_changed = slice_labels(pi.labels_of(s), svc)
        if changed and not kept:
            plan.delete.append(s)
        elif changed or labels_changed:
            c = copy.deepcopy(s)
            c["endpoints"] = kept
            c["metadata"]["labels"] = labels
            updates[str(pi.meta(s).get("name"))] = c
        else:
            unchanged.append(s)
    if remaining:
        for c in sorted(updates.values(), key=lambda x: -len(x["endpoints"])):
            _fill(c, remaining, max_per_slice)
    while remaining:
        target = None
        if len(remaining) < max_per_slice and unchanged:
            target = _slice_to_fill(unchanged, len(remaining), max_per_slice)
        if target is None:
            target = new_slice(svc, ports, address_type)
            plan.create.append(target)
        else:
            unchanged.remove(target)
            target = copy.deepcopy(target)
            updates[str(pi.meta(target).get("name"))] = target
        _fill(target, remaining, max_per_slice)
    plan.update = list(updates.values())
    return plan


def _keep_desired(slice_: Obj, remaining: dict[EndpointKey, Obj]) -> tuple[list[Obj], bool]:
    """The desired versions of the endpoints ``slice_`` already holds (taken out of
    ``remaining``), and whether any was changed or dropped."""
    kept: list[Obj] = []
    changed = False
    for ep in slice_.get("endpoints") or []:
        want = remaining.pop(endpoint_key(ep), None)
        if want is None:
            changed = True
            continue
        kept.append(want)
        changed = changed or not endpoints_equal_beyond_key(want, ep)
    return kept, changed


def _fill(slice_: Obj, remaining: dict[EndpointKey, Obj], max_per_slice: int) -> None:
    eps = slice_.setdefault("endpoints", [])
    for k in sorted(remaining):
        if len(eps) >= max_per_slice:
            break
        eps.append(remaining.pop(k))


def _slice_to_fill(slices: list[Obj], n: int, max_per_slice: int) -> Obj | None:
    """Upstream ``getSliceToFill``: the slice that ends closest to full with ``n`` more."""
    best, best_gap = None, max_per_slice
    for s in slices:
        gap = max_per_slice - (n + len(s.get("endpoints") or []))
        if 0 <= gap < best_gap:
            best, best_gap = s, gap
            if gap == 0:
                break
    return best


def _recycle(svc: Obj, plan: SlicePlan) -> None:
    """Turn create+delete pairs into updates of the slices that would be deleted."""
    i = 0
    while i < len(plan.delete) and plan.create:
        old = plan.delete[i]
        new = plan.create[-1]
        if old.get("addressType") == new.get("addressType") and owned_by(old, svc):
            plan.create.pop()
            m = new["metadata"]
            m["name"] = pi.meta(old).get("name")
            m["resourceVersion"] = pi.meta(old).get("resourceVersion")
            plan.update.append(new)
            plan.delete.pop(i)
        else:
            i += 1


# --- the controller -------------------------------------------------------------------------


def slice_service_key(slice_: Obj) -> list[str]:
    """Index function: ``ns/<kubernetes.io/service-name>`` of a slice."""
    name = pi.labels_of(slice_).get(pi.LABEL_SERVICE_NAME)
    ns = pi.meta(slice_).get("namespace")
    return [f"{ns}/{name}"] if name and ns else []


class SliceWriter:
    """Applies a :class:`SlicePlan` and records each write in a WriteTracker."""

    def __init__(self, client: APIClient, writes: pi.WriteTracker) -> None:
        self.client = client
        self.writes = writes

    async def apply(self, key: str, plan: SlicePlan) -> None:
        ns, _ = split_key(key)
        for s in plan.create:
            created = await self.client.create(ENDPOINT_SLICES, ns, s)
            self.writes.created(key, str(pi.meta(created).get("name")))
        for s in plan.update:
            await self.client.update(ENDPOINT_SLICES, s)
            self.writes.replaced(key, str(pi.meta(s).get("name")),
                                 str(pi.meta(s).get("resourceVersion")))
        for s in plan.delete:
            await self.delete(key, s)

    async def delete(self, key: str, s: Obj) -> None:
        ns = pi.meta(s).get("namespace")
        try:
            await self.client.delete(ENDPOINT_SLICES, ns, str(pi.meta(s).get("name")))
        except errors.APIError as e:
            if e.code != 404:
                raise
        self.writes.replaced(key, str(pi.meta(s).get("name")),
                             str(pi.meta(s).get("resourceVersion")))


def cached_versions(slices: Iterable[Obj]) -> dict[str, str]:
    return {str(pi.meta(s).get("name")): str(pi.meta(s).get("resourceVersion"))
            for s in slices}


class EndpointSliceController(Controller):
    """Keeps the EndpointSlices of every Service with a selector true (key ``ns/name``)."""

    name = "endpointslice"
    workers = 4
    max_endpoints_per_slice = MAX_ENDPOINTS_PER_SLICE

    def __init__(self, client: APIClient, factory: InformerFactory,
                 recorder: EventRecorder) -> None:
        super().__init__(client, recorder)
        self.services = factory.informer(SERVICES)
        self.pods = factory.informer(PODS)
        self.nodes = factory.informer(NODES)
        self.slices = factory.informer(
            ENDPOINT_SLICES, label_selector=f"{pi.LABEL_MANAGED_BY}={CONTROLLER_NAME}")
        self.pods.add_indexer(pi.POD_LABEL_INDEX, pi.pod_label_pairs)
        self.slices.add_indexer(SLICE_SERVICE_INDEX, slice_service_key)
        self.triggers = pi.TriggerTimeTracker()
        self.writes = pi.WriteTracker()
        self.writer = SliceWriter(client, self.writes)
        self.services.add_handlers(self.enqueue, lambda _o, n: self.enqueue(n), self.enqueue)
        self.pods.add_handlers(
            lambda p: self._enqueue_all(pi.services_to_update(self.services.indexer, None, p)),
            lambda o, n: self._enqueue_all(pi.services_to_update(self.services.indexer, o, n)),
            lambda p: self._enqueue_all(pi.services_to_update(self.services.indexer, p, None)))
        self.slices.add_handlers(self._slice_changed, lambda _o, n: self._slice_changed(n),
                                 self._slice_changed)

    def _enqueue_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.enqueue_key(key)

    def _slice_changed(self, slice_: Obj) -> None:
        self._enqueue_all(slice_service_key(slice_))

    def _zones(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for node in self.nodes.indexer.items():
            zone = pi.labels_of(node).get(pi.LABEL_ZONE)
            if zone:
                out[str(pi.meta(node).get("name"))] = zone
        return out

    async def sync(self, key: str) -> None:
        pi.require_synced(self.services, self.pods, self.slices)
        ns, _ = split_key(key)
        svc = self.services.indexer.get(key)
        existing = [s for s in self.slices.indexer.by_index(SLICE_SERVICE_INDEX, key)
                    if not pi.is_terminating(s)]
        if self.writes.is_stale(key, cached_versions(existing)):
            self.queue.add_after(key, 1.0)
            return
        if not pi.managed_by_selector(svc):
            if svc is None:
                self.triggers.forget(key)
            for s in existing:
                await self.writer.delete(key, s)
            return
        assert svc is not None
        pods = pi.pods_for_selector(self.pods.indexer, ns or "", pi.service_selector(svc) or {})
        trigger = self.triggers.compute(key, svc, pods)
        plan = plan_slices(svc, pods, existing, self._zones(), self.max_endpoints_per_slice,
                           trigger)
        if plan.empty:
            return
        try:
            await self.writer.apply(key, plan)
        except errors.APIError as e:
            self.recorder.event(pi.with_kind(svc, "Service"), "Warning", "FailedToUpdateEndpointSlices",
                                f"Error updating Endpoint Slices for Service {key}: "
                                f"{e.message}")
            raise
