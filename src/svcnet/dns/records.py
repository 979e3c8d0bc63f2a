"""The cluster zone: pure record building from Services, EndpointSlices, Pods, Namespaces.

:class:`Zone` holds small frozen views of the API objects (converted at the boundary by
``set_*``/``delete_*``, which take plain API dicts) and answers ``resolve(qname, qtype)``
following the Kubernetes DNS specification 1.1.0 and CoreDNS's ``kubernetes`` plugin as
written down in the project's DNS reference. ``resolve`` returns ``None`` for names this
zone does not answer (outside the cluster zone, or reverse names of unknown addresses —
the ``fallthrough in-addr.arpa ip6.arpa`` behaviour), which the server forwards upstream.

Deliberate choices where the reference leaves one open:

* TTL default 30 (kubeadm); SRV priority 0, weight ⌊100/N⌋ (CoreDNS).
* Pod records default to ``insecure`` (kubeadm).
* ``dns-version`` with a type other than TXT is NODATA (the name exists), not CoreDNS's
  NXDOMAIN.
* PTRs exist for cluster IPs and for the ready endpoints of every service.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from svcnet.dns.wire import (
    AAAA,
    CNAME,
    NOERROR,
    NS,
    NXDOMAIN,
    PTR,
    RR,
    SOA,
    SRV,
    TXT,
    A,
)

Obj = dict[str, Any]
SCHEMA_VERSION = "1.1.0"
DNS_VERSION_TTL = 28800
POD_MODES = ("disabled", "insecure", "verified")


@dataclass(frozen=True, slots=True)
class PortInfo:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What DNS needs of a Service. ``kind`` is ClusterIP, Headless or ExternalName."""

    namespace: str
    name: str
    kind: str
    cluster_ips: tuple[str, ...]
    external_name: str
    ports: tuple[PortInfo, ...]


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One ready endpoint of a slice; ``name`` is its hostname or its dashed IP."""

    name: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SliceInfo:
    service: str
    endpoints: tuple[EndpointInfo, ...]
    ports: tuple[PortInfo, ...]


@dataclass(slots=True)
class Answer:
    """The outcome of one lookup. ``chase`` names an out-of-zone CNAME target the server
    should resolve upstream and append (ExternalName A/AAAA)."""

    rcode: int
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    chase: str | None = None
    # The generation cell this answer depends on (see :class:`Zone`); ``None``: the answer
    # must not be cached.
    dep: list[int] | None = None
    cacheable: bool = True


def dashed(ip: str) -> str:
    """``10.244.1.5`` → ``10-244-1-5``; ``2001:db8::`` → ``2001-db8--0``."""
    if ":" in ip:
        s = ip.replace(":", "-")
        return s + "0" if s.endswith("-") else s
    return ip.replace(".", "-")


def undash(label: str) -> str | None:
    """Parse a dashed-IP label (the pod-record rule); ``None`` if it is not an address."""
    try:
        if label.count("-") == 3 and "--" not in label:
            return str(ipaddress.IPv4Address(label.replace("-", ".")))
        return str(ipaddress.IPv6Address(label.replace("-", ":")))
    except ValueError:
        return None


def reverse_to_ip(labels: list[str]) -> str | None:
    """Labels of a full reverse name (without ``in-addr.arpa``/``ip6.arpa``, already in
    DNS order) to an address, else ``None``."""
    if len(labels) == 4:
        try:
            return str(ipaddress.IPv4Address(".".join(reversed(labels))))
        except ValueError:
            return None
    if len(labels) == 32 and all(len(x) == 1 for x in labels):
        try:
            h = "".join(reversed(labels))
            return str(ipaddress.IPv6Address(int(h, 16)))
        except ValueError:
            return None
    return None


def _family(ip: str) -> int:
    return AAAA if ":" in ip else A


def service_from_api(obj: Obj) -> ServiceInfo:
    """A Service dict → :class:`ServiceInfo`. ``clusterIP: None`` (or no address) is
    headless; an ExternalName keeps its target without a trailing dot."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    ports = tuple(PortInfo(str(p.get("name") or ""), str(p.get("protocol") or "TCP").lower(),
                           int(p.get("port") or 0)) for p in spec.get("ports") or [])
    if spec.get("type") == "ExternalName":
        ext = str(spec.get("externalName") or "").rstrip(".")
        return ServiceInfo(meta.get("namespace", "default"), meta["name"], "ExternalName",
                           (), ext, ports)
    ips = [str(i) for i in spec.get("clusterIPs") or [] if i and i != "None"]
    cip = spec.get("clusterIP")
    if not ips and cip and cip != "None":
        ips = [str(cip)]
    kind = "Headless" if cip == "None" or not ips else "ClusterIP"
    return ServiceInfo(meta.get("namespace", "default"), meta["name"], kind,
                       tuple(ips) if kind == "ClusterIP" else (), "", ports)


def slice_from_api(obj: Obj) -> SliceInfo | None:
    """An EndpointSlice dict → its ready endpoints (``conditions.ready`` true or absent) and
    ports; ``None`` when the slice names no service."""
    meta = obj.get("metadata") or {}
    svc = (meta.get("labels") or {}).get("kubernetes.io/service-name")
    if not svc:
        return None
    eps = []
    for ep in obj.get("endpoints") or []:
        cond = ep.get("conditions") or {}
        if cond.get("ready") is False:
            continue
        addrs = tuple(str(a) for a in ep.get("addresses") or [])
        if not addrs:
            continue
        host = ep.get("hostname")
        eps.append(EndpointInfo(str(host).lower() if host else dashed(addrs[0]), addrs))
    ports = tuple(PortInfo(str(p.get("name") or ""), str(p.get("protocol") or "TCP").lower(),
                           int(p.get("port") or 0)) for p in obj.get("ports") or [])
    return SliceInfo(str(svc), tuple(eps), ports)


def _meta(obj: Obj, labels: tuple[str, ...] = ()) -> Obj:
    m = obj.get("metadata") or {}
    out = {k: m[k] for k in ("name", "namespace", "resourceVersion") if k in m}
    if labels:
        out["labels"] = {k: v for k, v in (m.get("labels") or {}).items() if k in labels}
    return out


def _pick(d: Obj | None, keys: tuple[str, ...]) -> Obj:
    return {k: d[k] for k in keys if k in d} if d else {}


def trim_service(obj: Obj) -> Obj:
    """The fields :func:`service_from_api` reads (informer transform: at 10,000 services
    the full objects cost the DNS server about as much memory as the rest of it)."""
    spec = obj.get("spec") or {}
    return {"metadata": _meta(obj),
            "spec": {**_pick(spec, ("type", "clusterIP", "clusterIPs", "externalName")),
                     "ports": [_pick(p, ("name", "protocol", "port"))
                               for p in spec.get("ports") or []]}}


def trim_slice(obj: Obj) -> Obj:
    """The fields :func:`slice_from_api` reads."""
    return {"metadata": _meta(obj, ("kubernetes.io/service-name",)),
            "endpoints": [{**_pick(ep, ("addresses", "hostname")),
                           "conditions": _pick(ep.get("conditions"), ("ready",))}
                          for ep in obj.get("endpoints") or []],
            "ports": [_pick(p, ("name", "protocol", "port")) for p in obj.get("ports") or []]}


def trim_pod(obj: Obj) -> Obj:
    return {"metadata": _meta(obj), "status": _pick(obj.get("status"), ("podIP", "podIPs"))}


def stub(obj: Obj) -> Obj:
    """Identity and version only: what the DNS informers' caches keep (the zone holds
    the rest in its own compact form)."""
    return {"metadata": _meta(obj)}


def trim_namespace(obj: Obj) -> Obj:
    return {"metadata": _meta(obj)}


class Zone:
    """Mutable cluster zone state plus the pure lookup.

    ``changed`` is bumped on every DNS-relevant change; ``serial`` is the SOA serial (Unix
    time of the last change).

    Cache invalidation is scoped by *generation cells* (one-element lists whose value is
    bumped when what they cover changes): every :class:`Answer` names in ``dep`` the cell
    it depends on, and a cached answer is valid while ``dep[0]`` still has the value it
    had when the answer was built. Cells:

    * one per existing Service (``<anything>.<svc>.<ns>.svc.<zone>`` names, headless
      endpoints and SRV included): bumped when the Service or one of its EndpointSlices
      changes, and when the Service is deleted;
    * ``ptr_cell`` for reverse names: bumped on every Service or EndpointSlice change;
    * ``global_cell`` for everything else (apex, NS, ``dns-version``, namespace and pod
      names, names of services that do not exist, ExternalName answers): bumped when a
      Service appears or disappears, an ExternalName or the DNS service itself changes,
      a namespace changes, or a pod changes while pod records are ``verified``.

    In-zone ExternalName chases are never cached (``dep`` is ``None``). A cached negative
    answer may carry an older SOA serial; resolvers only use the serial's TTL fields.
    """

    def __init__(self, zone: str = "cluster.local", ttl: int = 30,
                 pods: str = "insecure", dns_service: tuple[str, str] = ("kube-system",
                                                                          "kube-dns")) -> None:
        if pods not in POD_MODES:
            raise ValueError(f"pods mode must be one of {POD_MODES}")
        self.zone = zone.strip(".").lower()
        self.zone_labels = self.zone.split(".")
        self.ttl = ttl
        self.pods = pods
        self.dns_service = dns_service
        self.services: dict[tuple[str, str], ServiceInfo] = {}
        self.slices: dict[tuple[str, str], SliceInfo] = {}
        self.namespaces: set[str] = set()
        self.pod_ips: dict[str, set[str]] = {}  # namespace → pod IPs
        self._pod_keys: dict[tuple[str, str], tuple[str, ...]] = {}
        self.serial = int(time.time())
        self.changed = 0
        # (namespace, service) → {slice name: slice}, kept incrementally.
        self._by_service: dict[tuple[str, str], dict[str, SliceInfo]] = {}
        self._ptr: dict[str, list[str]] | None = None
        self._chasing = 0
        self.global_cell = [0]
        self.ptr_cell = [0]
        self._cells: dict[tuple[str, str], list[int]] = {}

    # --- mutations (boundary conversion) -------------------------------------------------

    def _touch(self, *services: tuple[str, str], global_: bool = False,
               ptr: bool = False) -> None:
        """Record a change that affects the answers of ``services`` (and of the global
        and reverse cells when asked)."""
        self.changed += 1
        self.serial = int(time.time())
        for key in services:
            cell = self._cells.get(key)
            if cell is not None:
                cell[0] += 1
            if key == self.dns_service:
                global_ = True
        if ptr:
            self._ptr = None
            self.ptr_cell[0] += 1
        if global_:
            self.global_cell[0] += 1

    @staticmethod
    def _key(obj: Obj) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return str(meta.get("namespace") or "default"), str(meta.get("name") or "")

    # set_* add or replace one object, delete_* remove it; both bump ``changed`` only when
    # the DNS-relevant view of the object differs.
    def set_service(self, obj: Obj) -> None:
        info = service_from_api(obj)
        key = (info.namespace, info.name)
        old = self.services.get(key)
        if old != info:
            self.services[key] = info
            self._cells.setdefault(key, [0])
            self._touch(key, ptr=True, global_=old is None or "ExternalName" in (
                old.kind, info.kind))

    def delete_service(self, obj: Obj) -> None:
        key = self._key(obj)
        if self.services.pop(key, None) is not None:
            self._touch(key, ptr=True, global_=True)
            self._cells.pop(key, None)

    def set_slice(self, obj: Obj) -> None:
        key = self._key(obj)
        info = slice_from_api(obj)
        if info is None:
            self.delete_slice(obj)
            return
        old = self.slices.get(key)
        if old == info:
            return
        self.slices[key] = info
        ns, name = key
        if old is not None and old.service != info.service:
            self._unindex(ns, old.service, name)
        self._by_service.setdefault((ns, info.service), {})[name] = info
        self._touch(*{(ns, info.service), (ns, old.service if old else info.service)},
                    ptr=True)

    def delete_slice(self, obj: Obj) -> None:
        key = self._key(obj)
        old = self.slices.pop(key, None)
        if old is not None:
            self._unindex(key[0], old.service, key[1])
            self._touch((key[0], old.service), ptr=True)

    def _unindex(self, ns: str, service: str, slice_name: str) -> None:
        group = self._by_service.get((ns, service))
        if group is not None:
            group.pop(slice_name, None)
            if not group:
                del self._by_service[(ns, service)]

    def set_namespace(self, obj: Obj) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        if name and name not in self.namespaces:
            self.namespaces.add(name)
            self._touch(global_=True)

    def delete_namespace(self, obj: Obj) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        if name in self.namespaces:
            self.namespaces.discard(name)
            self._touch(global_=True)

    def set_pod(self, obj: Obj) -> None:
        key = self._key(obj)
        status = obj.get("status") or {}
        ips = tuple(str(p.get("ip")) for p in status.get("podIPs") or [] if p.get("ip"))
        if not ips and status.get("podIP"):
            ips = (str(status["podIP"]),)
        if self._pod_keys.get(key) == ips:
            return
        self.delete_pod(obj, touch=False)
        self._pod_keys[key] = ips
        self.pod_ips.setdefault(key[0], set()).update(ips)
        self._touch(global_=self.pods == "verified")

    def delete_pod(self, obj: Obj, touch: bool = True) -> None:
        key = self._key(obj)
        old = self._pod_keys.pop(key, None)
        if old is None:
            return
        rest = {ip for k, v in self._pod_keys.items() if k[0] == key[0] for ip in v}
        self.pod_ips[key[0]] = rest
        if touch:
            self._touch(global_=self.pods == "verified")

    # --- derived indexes ------------------------------------------------------------------

    def endpoints_of(self, ns: str, name: str) -> list[SliceInfo]:
        """The slices of a service, ordered by slice name."""
        group = self._by_service.get((ns, name))
        return [group[k] for k in sorted(group)] if group else []

    def _ptr_index(self) -> dict[str, list[str]]:
        if self._ptr is None:
            idx: dict[str, list[str]] = {}
            cip: set[str] = set()
            for s in sorted(self.services.values(), key=lambda s: (s.namespace, s.name)):
                for ip in s.cluster_ips:
                    if ip not in cip:
                        cip.add(ip)
                        idx[ip] = [f"{s.name}.{s.namespace}.svc.{self.zone}."]
            for (ns, _), sl in sorted(self.slices.items()):
                for ep in sl.endpoints:
                    target = f"{ep.name}.{sl.service}.{ns}.svc.{self.zone}."
                    for ip in ep.addresses:
                        if ip in cip:
                            continue
                        names = idx.setdefault(ip, [])
                        if target not in names:
                            names.append(target)
            self._ptr = idx
        return self._ptr

    # --- lookup ---------------------------------------------------------------------------

    def soa(self, zone_spelling: str) -> RR:
        z = zone_spelling.rstrip(".") + "."
        return RR(z, SOA, min(self.ttl, 300),
                  (f"ns.dns.{z}", f"hostmaster.{z}", self.serial, 7200, 1800, 86400, self.ttl))

    def _neg(self, rcode: int, zspell: str) -> Answer:
        return Answer(rcode, authority=[self.soa(zspell)])

    def ns_addresses(self) -> list[str]:
        s = self.services.get(self.dns_service)
        if s is None:
            return []
        if s.cluster_ips:
            return list(s.cluster_ips)
        return [ip for sl in self.endpoints_of(s.namespace, s.name)
                for ep in sl.endpoints for ip in ep.addresses]

    def resolve(self, qname: str, qtype: int) -> Answer | None:
        """Answer ``qname``/``qtype``; ``None`` means "not mine: forward upstream"."""
        name = qname.rstrip(".")
        labels = name.split(".") if name else []
        low = [x.lower() for x in labels]
        nz = len(self.zone_labels)
        if len(low) >= 2 and low[-2:] == ["in-addr", "arpa"] or \
                len(low) >= 2 and low[-2:] == ["ip6", "arpa"]:
            rev = self._reverse(qname, low, qtype)
            if rev is not None:
                rev.dep = self.ptr_cell
            return rev
        if len(low) < nz or low[len(low) - nz:] != self.zone_labels:
            return None
        zspell = ".".join(labels[len(labels) - nz:])
        rel = low[:len(low) - nz]
        ans = self._forward(qname, rel, qtype, zspell)
        if ans.dep is None and ans.cacheable:
            ans.dep = self.global_cell
        return ans

    def _reverse(self, qname: str, low: list[str], qtype: int) -> Answer | None:
        ip = reverse_to_ip(low[:-2])
        if ip is None:
            return None
        names = self._ptr_index().get(ip)
        if not names:
            return None
        if qtype != PTR:
            return self._neg(NOERROR, ".".join(qname.rstrip(".").split(".")[-2:]))
        return Answer(NOERROR, [RR(qname, PTR, self.ttl, n) for n in names])

    def _forward(self, qname: str, rel: list[str], qtype: int, zspell: str) -> Answer:
        ttl = self.ttl
        zname = zspell + "."
        if not rel:  # apex
            if qtype == SOA:
                soa = self.soa(zspell)
                return Answer(NOERROR, [RR(qname, SOA, soa.ttl, soa.rdata)])
            if qtype == NS:
                ns_name = f"ns.dns.{zname}"
                glue = [RR(ns_name, _family(ip), ttl, ip) for ip in self.ns_addresses()]
                return Answer(NOERROR, [RR(qname, NS, ttl, ns_name)], additional=glue)
            return self._neg(NOERROR, zspell)
        top = rel[-1]
        if rel == ["dns-version"]:
            if qtype == TXT:
                return Answer(NOERROR, [RR(qname, TXT, DNS_VERSION_TTL, (SCHEMA_VERSION,))])
            return self._neg(NOERROR, zspell)
        if rel == ["ns", "dns"]:
            addrs = [ip for ip in self.ns_addresses() if _family(ip) == qtype]
            return Answer(NOERROR, [RR(qname, qtype, ttl, ip) for ip in addrs]) if addrs \
                else self._neg(NOERROR, zspell)
        if rel == ["dns"]:
            return self._neg(NOERROR, zspell)
        if top == "svc":
            return self._svc(qname, rel[:-1], qtype, zspell)
        if top == "pod":
            return self._pod(qname, rel[:-1], qtype, zspell)
        return self._neg(NXDOMAIN, zspell)

    def _pod(self, qname: str, rel: list[str], qtype: int, zspell: str) -> Answer:
        if not rel:
            return self._neg(NOERROR, zspell)
        if self.pods == "disabled":
            return self._neg(NXDOMAIN, zspell)
        ns = rel[-1]
        if len(rel) == 1:
            if self.pods == "verified" and ns not in self.namespaces:
                return self._neg(NXDOMAIN, zspell)
            return self._neg(NOERROR, zspell)
        if len(rel) > 2:
            return self._neg(NXDOMAIN, zspell)
        ip = undash(rel[0])
        if ip is None or (self.pods == "verified" and ip not in self.pod_ips.get(ns, ())):
            return self._neg(NXDOMAIN, zspell)
        if qtype == _family(ip):
            return Answer(NOERROR, [RR(qname, qtype, self.ttl, ip)])
        return self._neg(NOERROR, zspell)

    def _svc(self, qname: str, rel: list[str], qtype: int, zspell: str) -> Answer:
        if not rel:
            return self._neg(NOERROR, zspell)
        ns = rel[-1]
        if len(rel) == 1:
            return self._neg(NOERROR if ns in self.namespaces else NXDOMAIN, zspell)
        if len(rel) > 4:
            return self._neg(NXDOMAIN, zspell)
        svc = self.services.get((ns, rel[-2]))
        if svc is None:
            return self._neg(NXDOMAIN, zspell)
        if svc.kind == "ExternalName":
            return self._external(qname, svc, len(rel), qtype, zspell)
        ans = self._svc_names(qname, rel, svc, qtype, zspell)
        ans.dep = self._cells.get((ns, svc.name))
        return ans

    def _svc_names(self, qname: str, rel: list[str], svc: ServiceInfo, qtype: int,
                   zspell: str) -> Answer:
        """Names under an existing ClusterIP or headless service."""
        ns = svc.namespace
        ready = [(ep, sl.ports) for sl in self.endpoints_of(ns, svc.name) for ep in sl.endpoints]
        if len(rel) == 2:
            return self._service(qname, svc, ready, qtype, zspell, None)
        if len(rel) == 3:  # <endpoint>.<svc>.<ns>.svc
            want = rel[0]
            addrs = [ip for ep, _ in ready if ep.name == want for ip in ep.addresses]
            if not addrs:
                return self._neg(NXDOMAIN, zspell)
            if qtype in (A, AAAA):
                recs = [RR(qname, qtype, self.ttl, ip) for ip in _uniq(addrs)
                        if _family(ip) == qtype]
                if recs:
                    return Answer(NOERROR, recs)
            return self._neg(NOERROR, zspell)
        port = (rel[0].removeprefix("_"), rel[1].removeprefix("_"))
        return self._service(qname, svc, ready, qtype, zspell, port)

    def _service(self, qname: str, svc: ServiceInfo,
                 ready: list[tuple[EndpointInfo, tuple[PortInfo, ...]]], qtype: int,
                 zspell: str, port: tuple[str, str] | None) -> Answer:
        ttl = self.ttl
        headless = svc.kind == "Headless"
        if headless and not ready:
            return self._neg(NXDOMAIN, zspell)
        svc_name = f"{svc.name}.{svc.namespace}.svc.{zspell}."
        if port is not None:
            pname, proto = port
            if headless:
                matches = any(p.name.lower() == pname and p.protocol == proto
                              for _, ports in ready for p in ports)
            else:
                matches = any(p.name.lower() == pname and p.protocol == proto
                              for p in svc.ports)
            if not matches or not pname:
                return self._neg(NXDOMAIN, zspell)
        if qtype in (A, AAAA):
            ips = svc.cluster_ips if not headless else \
                _uniq(ip for ep, _ in ready for ip in ep.addresses)
            recs = [RR(qname, qtype, ttl, ip) for ip in ips if _family(ip) == qtype]
            return Answer(NOERROR, recs) if recs else self._neg(NOERROR, zspell)
        if qtype != SRV:
            return self._neg(NOERROR, zspell)

        def port_ok(p: PortInfo) -> bool:
            return port is None or (p.name.lower() == port[0] and p.protocol == port[1])

        srv: list[RR] = []
        extra: list[RR] = []
        seen: set[tuple[str, int]] = set()
        glue_seen: set[tuple[str, str]] = set()
        if not headless:
            weight = max(1, 100 // max(1, len(svc.cluster_ips)))
            for p in svc.ports:
                if not port_ok(p):
                    continue
                if (svc_name, p.port) in seen:
                    continue
                seen.add((svc_name, p.port))
                srv.append(RR(qname, SRV, ttl, (0, weight, p.port, svc_name)))
            if srv:
                extra = [RR(svc_name, _family(ip), ttl, ip) for ip in svc.cluster_ips]
        else:
            n = sum(len(ep.addresses) * len([p for p in eports if port_ok(p)])
                    for ep, eports in ready)
            weight = max(1, 100 // max(1, n))
            for ep, eports in ready:
                target = f"{ep.name}.{svc.name}.{svc.namespace}.svc.{zspell}."
                for p in eports:
                    if not port_ok(p) or (target, p.port) in seen:
                        continue
                    seen.add((target, p.port))
                    srv.append(RR(qname, SRV, ttl, (0, weight, p.port, target)))
                    for ip in ep.addresses:
                        if (target, ip) not in glue_seen:
                            glue_seen.add((target, ip))
                            extra.append(RR(target, _family(ip), ttl, ip))
        if not srv:
            return self._neg(NOERROR, zspell)
        return Answer(NOERROR, srv, additional=extra)

    def _external(self, qname: str, svc: ServiceInfo, depth: int, qtype: int,
                  zspell: str) -> Answer:
        if depth != 2 or not svc.external_name:
            return self._neg(NXDOMAIN, zspell)
        if qtype == SRV:
            return self._neg(NOERROR, zspell)
        target = svc.external_name + "."
        out = Answer(NOERROR, [RR(qname, CNAME, self.ttl, target)])
        if qtype in (A, AAAA):
            t = target.rstrip(".").lower().split(".")
            nz = len(self.zone_labels)
            if len(t) >= nz and t[len(t) - nz:] == self.zone_labels:
                if self._chasing < 8:  # ExternalName chains may loop: bound them
                    self._chasing += 1
                    try:
                        inner = self._forward(target, t[:len(t) - nz], qtype, self.zone)
                    finally:
                        self._chasing -= 1
                    out.rcode = inner.rcode
                    out.answer.extend(inner.answer)
                    out.additional.extend(inner.additional)
                    out.chase = inner.chase
                    if not inner.answer:
                        out.authority = inner.authority
                out.cacheable = False  # depends on another service's cell
            else:
                out.chase = target
        return out


def _uniq(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for i in items:
        seen.setdefault(i, None)
    return list(seen)
