"""Named query → answer cases for every rule of the DNS reference, against the pure zone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from svcnet.dns import wire
from svcnet.dns.records import Answer, Zone, dashed, undash
from svcnet.dns.wire import RR
from tests.dns.fixtures import build_zone, eps, svc

TYPES = {v: k for k, v in vars(wire).items()
         if k in ("A", "AAAA", "SRV", "PTR", "CNAME", "TXT", "SOA", "NS", "MX")}
Z = "cluster.local."


def fmt(rr: RR) -> str:
    d: Any = rr.rdata
    if rr.rtype in (wire.SRV, wire.SOA):
        d = " ".join(str(x) for x in d)
    elif rr.rtype == wire.TXT:
        d = " ".join(f'"{x}"' for x in d)
    return f"{rr.name} {rr.ttl} {TYPES[rr.rtype]} {d}"


@dataclass
class Case:
    name: str
    qname: str
    qtype: int
    rcode: int | None  # None: not this zone's name, forward it
    answer: list[str] = field(default_factory=list)
    additional: list[str] = field(default_factory=list)
    chase: str | None = None


NOERROR, NXDOMAIN = wire.NOERROR, wire.NXDOMAIN
A, AAAA, SRV, PTR, TXT = wire.A, wire.AAAA, wire.SRV, wire.PTR, wire.TXT
AP = "alpaca-prod.default.svc." + Z
WEB = "web.prod.svc." + Z

CASES = [
    # ClusterIP services
    Case("clusterip A", AP, A, NOERROR, [f"{AP} 30 A 10.96.0.20"]),
    Case("clusterip AAAA on IPv4-only is NODATA", AP, AAAA, NOERROR),
    Case("clusterip TXT is NODATA", AP, TXT, NOERROR),
    Case("clusterip MX is NODATA", AP, wire.MX, NOERROR),
    Case("clusterip without endpoints still answers", "empty.default.svc." + Z, A, NOERROR,
         [f"empty.default.svc.{Z} 30 A 10.96.0.40"]),
    Case("dual-stack A", "dual.default.svc." + Z, A, NOERROR,
         [f"dual.default.svc.{Z} 30 A 10.96.0.30"]),
    Case("dual-stack AAAA", "dual.default.svc." + Z, AAAA, NOERROR,
         [f"dual.default.svc.{Z} 30 AAAA fd00::30"]),
    Case("dual-stack SRV weight 50", "_http._tcp.dual.default.svc." + Z, SRV, NOERROR,
         [f"_http._tcp.dual.default.svc.{Z} 30 SRV 0 50 80 dual.default.svc.{Z}"],
         [f"dual.default.svc.{Z} 30 A 10.96.0.30", f"dual.default.svc.{Z} 30 AAAA fd00::30"]),
    # SRV
    Case("SRV named port", "_http._tcp." + AP, SRV, NOERROR,
         [f"_http._tcp.{AP} 30 SRV 0 100 8080 {AP}"], [f"{AP} 30 A 10.96.0.20"]),
    Case("SRV without leading underscores", "http.tcp." + AP, SRV, NOERROR,
         [f"http.tcp.{AP} 30 SRV 0 100 8080 {AP}"], [f"{AP} 30 A 10.96.0.20"]),
    Case("SRV on the bare name lists every port", AP, SRV, NOERROR,
         [f"{AP} 30 SRV 0 100 8080 {AP}", f"{AP} 30 SRV 0 100 9090 {AP}"],
         [f"{AP} 30 A 10.96.0.20"]),
    Case("SRV unknown port name", "_grpc._tcp." + AP, SRV, NXDOMAIN),
    Case("SRV wrong protocol", "_http._udp." + AP, SRV, NXDOMAIN),
    Case("SRV UDP named port", "_dns._udp.kube-dns.kube-system.svc." + Z, SRV, NOERROR,
         [f"_dns._udp.kube-dns.kube-system.svc.{Z} 30 SRV 0 100 53 "
          f"kube-dns.kube-system.svc.{Z}"], [f"kube-dns.kube-system.svc.{Z} 30 A 10.96.0.10"]),
    Case("A on a port name answers the service (CoreDNS)", "_http._tcp." + AP, A, NOERROR,
         [f"_http._tcp.{AP} 30 A 10.96.0.20"]),
    Case("empty non-terminal _tcp is NXDOMAIN", "_tcp." + AP, A, NXDOMAIN),
    Case("endpoint name under a ClusterIP service", "10-244-0-9." + AP, A, NOERROR,
         [f"10-244-0-9.{AP} 30 A 10.244.0.9"]),
    # Headless
    Case("headless A lists ready endpoints", WEB, A, NOERROR,
         [f"{WEB} 30 A 10.244.0.5", f"{WEB} 30 A 10.244.0.6"]),
    Case("headless AAAA is NODATA", WEB, AAAA, NOERROR),
    Case("headless endpoint by hostname", "web-0." + WEB, A, NOERROR,
         [f"web-0.{WEB} 30 A 10.244.0.5"]),
    Case("headless endpoint by dashed IP", "10-244-0-6." + WEB, A, NOERROR,
         [f"10-244-0-6.{WEB} 30 A 10.244.0.6"]),
    Case("headless not-ready endpoint is NXDOMAIN", "10-244-0-7." + WEB, A, NXDOMAIN),
    Case("headless unknown endpoint", "web-9." + WEB, A, NXDOMAIN),
    Case("headless SRV per endpoint", "_http._tcp." + WEB, SRV, NOERROR,
         [f"_http._tcp.{WEB} 30 SRV 0 50 8080 web-0.{WEB}",
          f"_http._tcp.{WEB} 30 SRV 0 50 8080 10-244-0-6.{WEB}"],
         [f"web-0.{WEB} 30 A 10.244.0.5", f"10-244-0-6.{WEB} 30 A 10.244.0.6"]),
    Case("headless bare SRV", WEB, SRV, NOERROR,
         [f"{WEB} 30 SRV 0 50 8080 web-0.{WEB}", f"{WEB} 30 SRV 0 50 8080 10-244-0-6.{WEB}"],
         [f"web-0.{WEB} 30 A 10.244.0.5", f"10-244-0-6.{WEB} 30 A 10.244.0.6"]),
    Case("headless with no ready endpoint is NXDOMAIN", "none-ready.default.svc." + Z, A,
         NXDOMAIN),
    Case("headless with no ready endpoint, AAAA", "none-ready.default.svc." + Z, AAAA,
         NXDOMAIN),
    # ExternalName
    Case("externalname A is a CNAME chased upstream", "ext.default.svc." + Z, A, NOERROR,
         [f"ext.default.svc.{Z} 30 CNAME www.example.com."], chase="www.example.com."),
    Case("externalname CNAME", "ext.default.svc." + Z, wire.CNAME, NOERROR,
         [f"ext.default.svc.{Z} 30 CNAME www.example.com."]),
    Case("externalname in-zone target chased", "ext-in.default.svc." + Z, A, NOERROR,
         [f"ext-in.default.svc.{Z} 30 CNAME {AP}", f"{AP} 30 A 10.96.0.20"]),
    Case("externalname loop is bounded", "loop-a.default.svc." + Z, A, NOERROR,
         [f"loop-a.default.svc.{Z} 30 CNAME loop-b.default.svc.{Z}"] +
         [f"loop-{x}.default.svc.{Z} 30 CNAME loop-{y}.default.svc.{Z}"
          for x, y in [("b", "a"), ("a", "b")] * 4]),
    Case("externalname bare SRV is NODATA", "ext.default.svc." + Z, SRV, NOERROR),
    Case("externalname port SRV is NXDOMAIN", "_http._tcp.ext.default.svc." + Z, SRV,
         NXDOMAIN),
    Case("name below an externalname", "x.ext.default.svc." + Z, A, NXDOMAIN),
    # PTR
    Case("PTR of a cluster IP", "20.0.96.10.in-addr.arpa.", PTR, NOERROR,
         [f"20.0.96.10.in-addr.arpa. 30 PTR {AP}"]),
    Case("PTR of a headless endpoint with hostname", "5.0.244.10.in-addr.arpa.", PTR,
         NOERROR, [f"5.0.244.10.in-addr.arpa. 30 PTR web-0.{WEB}"]),
    Case("PTR of an endpoint by dashed IP", "6.0.244.10.in-addr.arpa.", PTR, NOERROR,
         [f"6.0.244.10.in-addr.arpa. 30 PTR 10-244-0-6.{WEB}"]),
    Case("PTR of an IPv6 cluster IP",
         ".".join(reversed("fd00" + "0" * 24 + "0030")) + ".ip6.arpa.", PTR, NOERROR,
         [".".join(reversed("fd00" + "0" * 24 + "0030")) + f".ip6.arpa. 30 PTR "
          f"dual.default.svc.{Z}"]),
    Case("PTR of an unknown address falls through", "1.2.3.4.in-addr.arpa.", PTR, None),
    Case("partial reverse name falls through", "96.10.in-addr.arpa.", PTR, None),
    Case("A on a known reverse name is NODATA", "20.0.96.10.in-addr.arpa.", A, NOERROR),
    Case("PTR on a forward name is NODATA", AP, PTR, NOERROR),
    # Pods (insecure)
    Case("pod A", "10-244-0-9.default.pod." + Z, A, NOERROR,
         [f"10-244-0-9.default.pod.{Z} 30 A 10.244.0.9"]),
    Case("pod A for any IP in insecure mode", "1-2-3-4.prod.pod." + Z, A, NOERROR,
         [f"1-2-3-4.prod.pod.{Z} 30 A 1.2.3.4"]),
    Case("pod IPv6", "fd00--5.default.pod." + Z, AAAA, NOERROR,
         [f"fd00--5.default.pod.{Z} 30 AAAA fd00::5"]),
    Case("pod AAAA of IPv4 is NODATA", "10-244-0-9.default.pod." + Z, AAAA, NOERROR),
    Case("pod not an IP", "not-an-ip.default.pod." + Z, A, NXDOMAIN),
    Case("pod namespace only is NODATA", "default.pod." + Z, A, NOERROR),
    Case("pod too many labels", "x.10-244-0-9.default.pod." + Z, A, NXDOMAIN),
    # Zone structure
    Case("dns-version TXT", "dns-version." + Z, TXT, NOERROR,
         [f"dns-version.{Z} 28800 TXT \"1.1.0\""]),
    Case("dns-version A is NODATA", "dns-version." + Z, A, NOERROR),
    Case("apex SOA", Z, wire.SOA, NOERROR,
         [f"{Z} 30 SOA ns.dns.{Z} hostmaster.{Z} SERIAL 7200 1800 86400 30"]),
    Case("apex NS with glue", Z, wire.NS, NOERROR, [f"{Z} 30 NS ns.dns.{Z}"],
         [f"ns.dns.{Z} 30 A 10.96.0.10"]),
    Case("ns.dns A", "ns.dns." + Z, A, NOERROR, [f"ns.dns.{Z} 30 A 10.96.0.10"]),
    Case("apex A is NODATA", Z, A, NOERROR),
    Case("SOA below the apex is NODATA", AP, wire.SOA, NOERROR),
    Case("svc label alone is NODATA", "svc." + Z, A, NOERROR),
    Case("pod label alone is NODATA", "pod." + Z, A, NOERROR),
    Case("existing namespace is NODATA", "default.svc." + Z, A, NOERROR),
    Case("unknown namespace is NXDOMAIN", "nope.svc." + Z, A, NXDOMAIN),
    Case("unknown service is NXDOMAIN", "nope.default.svc." + Z, A, NXDOMAIN),
    Case("unknown service, AAAA", "nope.default.svc." + Z, AAAA, NXDOMAIN),
    Case("search-path miss is NXDOMAIN", "google.com.default.svc." + Z, A, NXDOMAIN),
    Case("invalid second label", "foo." + Z, A, NXDOMAIN),
    Case("too many labels", "a.b._http._tcp." + AP, A, NXDOMAIN),
    Case("unknown type on a missing name", "nope.default.svc." + Z, 99, NXDOMAIN),
    # Case handling
    Case("case-insensitive, query case kept", "ALPACA-prod.Default.SVC.Cluster.Local.", A,
         NOERROR, ["ALPACA-prod.Default.SVC.Cluster.Local. 30 A 10.96.0.20"]),
    Case("SRV target uses the query's zone case",
         "_HtTp._TcP.alpaca-prod.default.svc.cLuStEr.LoCaL.", SRV, NOERROR,
         ["_HtTp._TcP.alpaca-prod.default.svc.cLuStEr.LoCaL. 30 SRV 0 100 8080 "
          "alpaca-prod.default.svc.cLuStEr.LoCaL."],
         ["alpaca-prod.default.svc.cLuStEr.LoCaL. 30 A 10.96.0.20"]),
    # Not ours
    Case("outside the zone is forwarded", "www.example.com.", A, None),
    Case("a longer zone that only ends like ours", "x.notcluster.local.", A, None),
    Case("root", ".", wire.NS, None),
]


@pytest.fixture(scope="module")
def zone() -> Zone:
    return build_zone()


def _fmt_all(rrs: list[RR], serial: int) -> list[str]:
    return [fmt(r).replace(f" {serial} ", " SERIAL ") for r in rrs]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_query(zone: Zone, case: Case) -> None:
    ans = zone.resolve(case.qname, case.qtype)
    if case.rcode is None:
        assert ans is None
        return
    assert isinstance(ans, Answer)
    assert ans.rcode == case.rcode
    assert _fmt_all(ans.answer, zone.serial) == case.answer
    assert _fmt_all(ans.additional, zone.serial) == case.additional
    assert ans.chase == case.chase
    if not ans.answer:  # NXDOMAIN and NODATA carry the SOA of the zone
        assert [r.rtype for r in ans.authority] == [wire.SOA]
        soa = ans.authority[0]
        rdata: Any = soa.rdata
        assert soa.ttl == 30 and rdata[-1] == 30
        assert rdata[0].lower().startswith("ns.dns.")
    else:
        assert ans.authority == []


def test_negative_answer_soa_uses_query_case_and_ttl_cap() -> None:
    z = build_zone(ttl=600)
    ans = z.resolve("Nope.default.svc.CLUSTER.local.", wire.A)
    assert ans is not None and ans.rcode == NXDOMAIN
    soa = ans.authority[0]
    assert soa.name == "CLUSTER.local."
    assert soa.ttl == 300
    assert soa.rdata == ("ns.dns.CLUSTER.local.", "hostmaster.CLUSTER.local.", z.serial,
                         7200, 1800, 86400, 600)


@pytest.mark.parametrize(("mode", "qname", "rcode", "answers"), [
    ("disabled", "10-244-0-9.default.pod." + Z, NXDOMAIN, 0),
    ("verified", "10-244-0-9.default.pod." + Z, NOERROR, 1),
    ("verified", "1-2-3-4.default.pod." + Z, NXDOMAIN, 0),
    ("verified", "10-244-0-9.prod.pod." + Z, NXDOMAIN, 0),
    ("verified", "nope.pod." + Z, NXDOMAIN, 0),
    ("insecure", "1-2-3-4.default.pod." + Z, NOERROR, 1),
], ids=["disabled", "verified existing", "verified unknown ip", "verified wrong namespace",
        "verified unknown namespace", "insecure any ip"])
def test_pod_modes(mode: str, qname: str, rcode: int, answers: int) -> None:
    ans = build_zone(pods=mode).resolve(qname, wire.A)
    assert ans is not None and ans.rcode == rcode and len(ans.answer) == answers


def test_changes_are_picked_up_live() -> None:
    """The conformance e2e turns an ExternalName into a ClusterIP service."""
    z = build_zone()
    before = z.changed
    z.set_service(svc("default", "ext", "10.96.0.77"))
    assert z.changed > before
    ans = z.resolve("ext.default.svc." + Z, wire.A)
    assert ans is not None and [fmt(r) for r in ans.answer] == [
        f"ext.default.svc.{Z} 30 A 10.96.0.77"]
    z.set_slice(eps("default", "none-ready", "none-ready-abc",
                    [{"addresses": ["10.244.0.8"], "conditions": {"ready": True}}]))
    ans = z.resolve("none-ready.default.svc." + Z, wire.A)
    assert ans is not None and ans.rcode == NOERROR
    z.delete_service(svc("default", "alpaca-prod", "10.96.0.20"))
    ans = z.resolve(AP, wire.A)
    assert ans is not None and ans.rcode == NXDOMAIN
    assert z.resolve("20.0.96.10.in-addr.arpa.", wire.PTR) is None
    same = z.changed
    z.set_service(svc("default", "ext", "10.96.0.77"))  # no change, no bump
    assert z.changed == same


@pytest.mark.parametrize(("ip", "label"), [
    ("10.244.1.5", "10-244-1-5"), ("5678:abcd::1", "5678-abcd--1"),
    ("2001:db8::", "2001-db8--0")], ids=["ipv4", "ipv6", "ipv6 trailing"])
def test_dashed_names(ip: str, label: str) -> None:
    assert dashed(ip) == label
    assert undash(label) == ip


def test_trimmed_objects_give_the_same_zone() -> None:
    """The DNS informers keep only what the zone reads; the zone must not notice."""
    from svcnet.dns import records
    from tests.dns.fixtures import cluster_objects
    objs = cluster_objects()
    for o in objs["services"]:
        assert records.service_from_api(records.trim_service(o)) == records.service_from_api(o)
    for o in objs["endpointslices"]:
        assert records.slice_from_api(records.trim_slice(o)) == records.slice_from_api(o)
    full, trimmed = Zone(), Zone()
    for o in objs["pods"]:
        full.set_pod(o)
        trimmed.set_pod(records.trim_pod(o))
    assert full.pod_ips == trimmed.pod_ips
