"""The DNS server over real loopback UDP and TCP: named cases, caches, forwarding to a fake
upstream on 127.0.0.1, sync gating, and a bounded fuzz run."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from svcnet.dns.records import Zone
from svcnet.dns.server import DNSHandler, listen
from tests.dns.fixtures import FakeUpstream, build_zone, eps, http, svc

Z = "cluster.local."
AP = "alpaca-prod.default.svc." + Z
TIMEOUT = 3.0


# --- the server under test, on its own loop thread --------------------------------------------

@dataclass
class Running:
    handler: DNSHandler
    zone: Zone
    port: int
    loop: asyncio.AbstractEventLoop
    upstream: FakeUpstream
    stop: Callable[[], None] = field(default=lambda: None)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop (zone mutations must not race the handler)."""
        return asyncio.run_coroutine_threadsafe(_acall(fn), self.loop).result(TIMEOUT)

    def query(self, qname: str, rdtype: str = "A", tcp: bool = False,
              **kw: Any) -> dns.message.Message:
        m = dns.message.make_query(qname, rdtype, **kw)
        if tcp:
            return dns.query.tcp(m, "127.0.0.1", port=self.port, timeout=TIMEOUT)
        return dns.query.udp(m, "127.0.0.1", port=self.port, timeout=TIMEOUT)


async def _acall(fn: Callable[[], Any]) -> Any:
    return fn()


def start_server(zone: Zone, upstreams: list[tuple[str, int]], upstream: FakeUpstream,
                 synced: bool = True) -> Running:
    loop = asyncio.new_event_loop()
    handler = DNSHandler(zone, upstreams)
    handler.synced = synced
    ready = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        asyncio.set_event_loop(loop)
        udp, tcp = loop.run_until_complete(listen(handler, "127.0.0.1", 0))
        box["port"] = tcp.sockets[0].getsockname()[1]
        box["transports"] = (udp, tcp)
        ready.set()
        loop.run_forever()
        udp.close()
        tcp.close()
        loop.run_until_complete(tcp.wait_closed())
        loop.close()

    t = threading.Thread(target=main, daemon=True)
    t.start()
    assert ready.wait(TIMEOUT)

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        t.join(TIMEOUT)

    return Running(handler, zone, box["port"], loop, upstream, stop)


def big_zone() -> Zone:
    z = build_zone()
    z.set_service(svc("default", "big", "None", ports=[http(80)]))
    z.set_slice(eps("default", "big", "big-1",
                    [{"addresses": [f"10.244.1.{i}"], "conditions": {"ready": True}}
                     for i in range(1, 101)], [http(80)]))
    return z


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    u = FakeUpstream()
    try:
        yield u
    finally:
        u.close()


@pytest.fixture
def server(upstream: FakeUpstream) -> Iterator[Running]:
    r = start_server(big_zone(), [("127.0.0.1", upstream.port)], upstream)
    try:
        yield r
    finally:
        r.stop()


# --- named cases over both transports ------------------------------------------------------

@dataclass
class Case:
    name: str
    qname: str
    rdtype: str
    rcode: int
    answer: list[str]
    authority_soa: bool = False


CASES = [
    Case("clusterip A", AP, "A", dns.rcode.NOERROR, [f"{AP} 30 IN A 10.96.0.20"]),
    Case("clusterip AAAA NODATA", AP, "AAAA", dns.rcode.NOERROR, [], True),
    Case("SRV named port", "_http._tcp." + AP, "SRV", dns.rcode.NOERROR,
         [f"_http._tcp.{AP} 30 IN SRV 0 100 8080 {AP}"]),
    Case("headless A", "web.prod.svc." + Z, "A", dns.rcode.NOERROR,
         [f"web.prod.svc.{Z} 30 IN A 10.244.0.5", f"web.prod.svc.{Z} 30 IN A 10.244.0.6"]),
    Case("unknown service NXDOMAIN", "nope.default.svc." + Z, "A", dns.rcode.NXDOMAIN, [],
         True),
    Case("PTR cluster IP", "20.0.96.10.in-addr.arpa.", "PTR", dns.rcode.NOERROR,
         [f"20.0.96.10.in-addr.arpa. 30 IN PTR {AP}"]),
    Case("PTR fallthrough to upstream", "4.3.2.1.in-addr.arpa.", "PTR", dns.rcode.NOERROR,
         ["4.3.2.1.in-addr.arpa. 60 IN PTR host.example.com."]),
    Case("forwarded name", "www.example.com.", "A", dns.rcode.NOERROR,
         ["www.example.com. 60 IN A 192.0.2.1"]),
    Case("forwarded NXDOMAIN", "nope.example.org.", "A", dns.rcode.NXDOMAIN, []),
    Case("externalname chased upstream", "ext.default.svc." + Z, "A", dns.rcode.NOERROR,
         [f"ext.default.svc.{Z} 30 IN CNAME www.example.com.",
          "www.example.com. 60 IN A 192.0.2.1"]),
    Case("dns-version", "dns-version." + Z, "TXT", dns.rcode.NOERROR,
         [f'dns-version.{Z} 28800 IN TXT "1.1.0"']),
    Case("mixed case echoed", "ALPACA-prod.Default.svc.Cluster.Local.", "A", dns.rcode.NOERROR,
         ["ALPACA-prod.Default.svc.Cluster.Local. 30 IN A 10.96.0.20"]),
]


def _texts(m: dns.message.Message) -> list[str]:
    return [line for rrset in m.answer for line in rrset.to_text().splitlines()]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_query(server: Running, case: Case, tcp: bool) -> None:
    m = server.query(case.qname, case.rdtype, tcp=tcp)
    assert m.rcode() == case.rcode
    assert _texts(m) == case.answer
    if case.authority_soa:
        assert [r.rdtype for r in m.authority] == [dns.rdatatype.SOA]
        assert m.flags & dns.flags.AA


def test_udp_truncates_and_tcp_carries_the_full_answer(server: Running) -> None:
    name = "big.default.svc." + Z
    m = server.query(name)
    assert m.flags & dns.flags.TC and not m.answer
    m = server.query(name, tcp=True)
    assert len(m.answer[0]) == 100
    m = server.query(name, use_edns=0, payload=4096)
    assert not m.flags & dns.flags.TC and len(m.answer[0]) == 100


@pytest.mark.parametrize(("name", "build", "rcode"), [
    ("AXFR refused", lambda: dns.message.make_query(Z, "AXFR"), dns.rcode.REFUSED),
    ("IXFR refused", lambda: dns.message.make_query(Z, "IXFR"), dns.rcode.REFUSED),
    ("CHAOS class refused", lambda: dns.message.make_query("version.bind.", "TXT", "CH"),
     dns.rcode.REFUSED),
    ("status opcode not implemented",
     lambda: _with_opcode(dns.message.make_query(AP, "A"), dns.opcode.STATUS),
     dns.rcode.NOTIMP),
])
def test_refusals(server: Running, name: str, build: Callable[[], dns.message.Message],
                  rcode: int) -> None:
    m = dns.query.tcp(build(), "127.0.0.1", port=server.port, timeout=TIMEOUT)
    assert m.rcode() == rcode


def _with_opcode(m: dns.message.Message, op: dns.opcode.Opcode) -> dns.message.Message:
    m.set_opcode(op)
    return m


def raw_udp(port: int, data: bytes, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def test_formerr_and_drop(server: Running) -> None:
    out = raw_udp(server.port, struct.pack("!HHHHHH", 77, 0x0100, 2, 0, 0, 0) + b"\x00" * 4)
    assert out is not None
    m = dns.message.from_wire(out)
    assert m.id == 77 and m.rcode() == dns.rcode.FORMERR
    assert raw_udp(server.port, b"\x01\x02\x03", timeout=0.3) is None


def test_servfail_until_synced(upstream: FakeUpstream) -> None:
    r = start_server(build_zone(), [("127.0.0.1", upstream.port)], upstream, synced=False)
    try:
        for tcp in (False, True):
            assert r.query(AP, tcp=tcp).rcode() == dns.rcode.SERVFAIL
            assert r.query("nope.default.svc." + Z, tcp=tcp).rcode() == dns.rcode.SERVFAIL
        assert r.query("www.example.com.").rcode() == dns.rcode.NOERROR  # forwarding works
        r.call(lambda: setattr(r.handler, "synced", True))
        assert _texts(r.query(AP)) == [f"{AP} 30 IN A 10.96.0.20"]
    finally:
        r.stop()


def test_cache_ignores_cookie_and_follows_changes(server: Running) -> None:
    def cookie_query(c: bytes) -> dns.message.Message:
        opt = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, c)
        return server.query(AP, use_edns=0, payload=1232, options=[opt])

    assert _texts(cookie_query(b"\x01" * 8)) == [f"{AP} 30 IN A 10.96.0.20"]
    size = len(server.handler._cache)
    assert _texts(cookie_query(b"\x02" * 8)) == [f"{AP} 30 IN A 10.96.0.20"]
    assert len(server.handler._cache) == size  # same entry served
    server.call(lambda: server.zone.set_service(svc("default", "alpaca-prod", "10.96.0.99")))
    assert _texts(cookie_query(b"\x03" * 8)) == [f"{AP} 30 IN A 10.96.0.99"]


def test_upstream_answers_are_cached(server: Running) -> None:
    for _ in range(3):
        assert server.query("cached.example.com.").rcode() == dns.rcode.NOERROR
    assert server.upstream.seen.count("cached.example.com.") == 1


def test_unreachable_upstream_is_servfail(upstream: FakeUpstream) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    r = start_server(build_zone(), [("127.0.0.1", dead)], upstream)
    try:
        m = r.query("www.example.com.", tcp=True)
        assert m.rcode() == dns.rcode.SERVFAIL
    finally:
        r.stop()


def test_metrics_count_requests(server: Running) -> None:
    server.query(AP)
    server.query("nope.default.svc." + Z, tcp=True)
    text = server.call(server.handler.metrics.render)
    assert 'coredns_dns_requests_total{server="dns://:53",zone=".",proto="udp",type="A"} 1' \
        in text
    assert 'rcode="NXDOMAIN"} 1' in text
    assert "coredns_dns_request_duration_seconds_count" in text


# --- fuzz ----------------------------------------------------------------------------------

def _mutate(rng: random.Random, seed: bytes) -> bytes:
    b = bytearray(seed)
    for _ in range(rng.randint(1, 6)):
        op = rng.randint(0, 3)
        if op == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1:
            b.insert(rng.randint(0, len(b)), rng.randrange(256))
        elif op == 2 and b:
            del b[rng.randrange(len(b)):]
        else:
            b[2:4] = rng.choice([b"\x01\x00", b"\x00\x00", b"\x28\x00", b"\x81\x00"])
    return bytes(b)


def test_fuzz_does_not_harm_the_server(server: Running) -> None:
    rng = random.Random(20240605)
    seeds = [dns.message.make_query(n, t, use_edns=e).to_wire()
             for n in (AP, "_http._tcp." + AP, "web.prod.svc." + Z, "20.0.96.10.in-addr.arpa.",
                       "x.example.com.")
             for t in ("A", "SRV", "PTR") for e in (None, 0)]
    sent = 0
    deadline = time.monotonic() + 3.0
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setblocking(False)
    try:
        while time.monotonic() < deadline:
            if rng.random() < 0.3:
                pkt = bytes(rng.randrange(256) for _ in range(rng.randint(0, 80)))
            else:
                pkt = _mutate(rng, rng.choice(seeds))
            udp.sendto(pkt, ("127.0.0.1", server.port))
            sent += 1
            if sent % 50 == 0:  # TCP: a burst of framed and unframed junk
                with socket.create_connection(("127.0.0.1", server.port), timeout=1) as t:
                    t.sendall(struct.pack("!H", len(pkt)) + pkt + bytes(rng.randrange(256)
                                                                      for _ in range(5)))
            if sent % 20 == 0:
                time.sleep(0.002)
                while True:  # drain replies
                    try:
                        udp.recv(65535)
                    except BlockingIOError:
                        break
    finally:
        udp.close()
    assert sent > 100
    for tcp in (False, True):
        m = server.query(AP, tcp=tcp)
        assert _texts(m) == [f"{AP} 30 IN A 10.96.0.20"]


def test_badvers_for_an_unknown_edns_version(server: Running) -> None:
    m = dns.message.make_query(AP, "A", use_edns=1)
    for tcp in (False, True):
        r = (dns.query.tcp if tcp else dns.query.udp)(m, "127.0.0.1", port=server.port,
                                                       timeout=TIMEOUT)
        assert r.rcode() == dns.rcode.BADVERS and r.edns == 0 and not r.answer


def test_repeated_answers_rotate_their_addresses(server: Running) -> None:
    name = "web.prod.svc." + Z
    orders = {tuple(_texts(server.query(name))) for _ in range(6)}
    assert len(orders) == 2  # both rotations of the two addresses are served
    assert {frozenset(o) for o in orders} == {frozenset(
        [f"{name} 30 IN A 10.244.0.5", f"{name} 30 IN A 10.244.0.6"])}


def test_cached_negative_answers_follow_new_services(server: Running) -> None:
    name = "late.default.svc." + Z
    for _ in range(2):  # the second answer comes from the cache
        assert server.query(name).rcode() == dns.rcode.NXDOMAIN
    server.call(lambda: server.zone.set_service(svc("default", "late", "10.96.0.88")))
    assert _texts(server.query(name)) == [f"{name} 30 IN A 10.96.0.88"]


def test_a_change_to_one_service_keeps_the_others_cached(server: Running) -> None:
    other = "web.prod.svc." + Z
    server.query(AP)
    server.query(other)
    entries = dict(server.handler.raw_cache)
    server.call(lambda: server.zone.set_slice(eps(
        "default", "alpaca-prod", "alpaca-prod-new",
        [{"addresses": ["10.244.0.99"], "conditions": {"ready": True}}], [http(8080)])))
    valid = {server.handler.cached(e) is not None for e in entries.values()
             if e.qtype == dns.rdatatype.A}
    assert valid == {True, False}  # alpaca-prod's entry is stale, web.prod's is not
