"""The hand-written wire codec, checked against dnspython."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from svcnet.dns import wire
from svcnet.dns.wire import RR


def q(name: str = "alpaca-prod.default.svc.cluster.local.", rdtype: str = "A",
      **kw: object) -> bytes:
    m = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    m.id = 4242
    return m.to_wire()


def hdr(flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", 7, flags, qd, an, ns, ar)


QUESTION = b"\x03foo\x00\x00\x01\x00\x01"


# --- parsing -----------------------------------------------------------------------------

def test_parse_plain_query_keeps_case() -> None:
    p = wire.parse_query(q("Alpaca-PROD.default.svc.cluster.local.", "SRV"))
    assert (p.msg_id, p.qname, p.qtype, p.qclass) == (
        4242, "Alpaca-PROD.default.svc.cluster.local.", wire.SRV, wire.CLASS_IN)
    assert not p.edns and p.udp_size == 512 and p.rd


def test_parse_edns_payload_and_do() -> None:
    p = wire.parse_query(q(use_edns=0, payload=1232, want_dnssec=True))
    assert p.edns and p.udp_size == 1232 and p.do_bit


def test_cache_key_ignores_id_and_cookie_but_not_payload() -> None:
    def with_cookie(cookie: bytes, payload: int = 1232) -> bytes:
        opt = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, cookie)
        return q(use_edns=0, payload=payload, options=[opt])
    a = wire.parse_query(with_cookie(b"\x01" * 8))
    b = wire.parse_query(with_cookie(b"\x02" * 8))
    assert a.cache_key == b.cache_key
    assert wire.parse_query(with_cookie(b"\x01" * 8, 4096)).cache_key != a.cache_key
    assert wire.parse_query(q()).cache_key != a.cache_key
    assert wire.parse_query(q("ALPACA-prod.default.svc.cluster.local.")).cache_key != \
        wire.parse_query(q()).cache_key


@pytest.mark.parametrize(("name", "packet", "outcome"), [
    ("empty", b"", wire.Drop),
    ("short header", b"\x00\x01\x00", wire.Drop),
    ("a response", hdr(0x8100) + QUESTION, wire.Drop),
    ("status opcode", hdr(0x1000) + QUESTION, wire.NotImplementedOpcode),
    ("update opcode", hdr(0x2800) + QUESTION, wire.NotImplementedOpcode),
    ("no question", hdr(qd=0), wire.FormatError),
    ("two questions", hdr(qd=2) + QUESTION + QUESTION, wire.FormatError),
    ("truncated question", hdr() + QUESTION[:-2], wire.FormatError),
    ("label past end", hdr() + b"\x09foo\x00", wire.FormatError),
    ("pointer loop on itself", hdr() + b"\xc0\x0c\x00\x01\x00\x01", wire.FormatError),
    ("forward pointer", hdr() + b"\xc0\x20\x00\x01\x00\x01" + b"\0" * 30, wire.FormatError),
    ("reserved label type", hdr() + b"\x80foo\x00\x00\x01\x00\x01", wire.FormatError),
    ("name too long", hdr() + b"\x3f" + b"a" * 63 + (b"\x3f" + b"a" * 63) * 4 +
     b"\x00\x00\x01\x00\x01", wire.FormatError),
    ("trailing bytes", hdr() + QUESTION + b"xx", wire.FormatError),
    ("missing additional", hdr(ar=1) + QUESTION, wire.FormatError),
    ("two OPT records", hdr(ar=2) + QUESTION + (b"\x00\x00\x29\x04\xd0\0\0\0\0\0\0") * 2,
     wire.FormatError),
    ("bad EDNS option length", hdr(ar=1) + QUESTION +
     b"\x00\x00\x29\x04\xd0\0\0\0\0\0\x04\x00\x0a\x00\x09", wire.FormatError),
])
def test_malformed(name: str, packet: bytes, outcome: type[Exception]) -> None:
    with pytest.raises(outcome):
        wire.parse_query(packet)


def test_backward_pointer_in_additional_is_fine() -> None:
    pkt = hdr(ar=1) + QUESTION + b"\xc0\x0c" + struct.pack("!HHIH", wire.A, 1, 5, 4) + \
        b"\x01\x02\x03\x04"
    assert wire.parse_query(pkt).qname == "foo."


# --- building ----------------------------------------------------------------------------

Z = "cluster.local."
AP = "Alpaca-PROD.default.svc." + Z
RECORDS: list[tuple[str, RR, Callable[[object], str]]] = [
    ("A", RR(AP, wire.A, 30, "10.96.0.20"), lambda r: r.address),  # type: ignore[attr-defined]
    ("AAAA", RR(AP, wire.AAAA, 30, "fd00::30"),
     lambda r: r.address),  # type: ignore[attr-defined]
    ("SRV", RR(AP, wire.SRV, 30, (0, 50, 8080, "web-0.web.prod.svc." + Z)),
     lambda r: r.to_text()),  # type: ignore[attr-defined]
    ("PTR", RR("20.0.96.10.in-addr.arpa.", wire.PTR, 30, "alpaca-prod.default.svc." + Z),
     lambda r: r.to_text()),  # type: ignore[attr-defined]
    ("CNAME", RR(AP, wire.CNAME, 30, "www.example.com."),
     lambda r: r.to_text()),  # type: ignore[attr-defined]
    ("TXT", RR("dns-version." + Z, wire.TXT, 28800, ("1.1.0",)),
     lambda r: r.to_text()),  # type: ignore[attr-defined]
    ("NS", RR(Z, wire.NS, 30, "ns.dns." + Z), lambda r: r.to_text()),  # type: ignore
    ("SOA", RR(Z, wire.SOA, 30, ("ns.dns." + Z, "hostmaster." + Z, 7, 7200, 1800, 86400, 30)),
     lambda r: r.to_text()),  # type: ignore[attr-defined]
]
EXPECTED = {
    "A": "10.96.0.20", "AAAA": "fd00::30", "SRV": "0 50 8080 web-0.web.prod.svc." + Z,
    "PTR": "alpaca-prod.default.svc." + Z, "CNAME": "www.example.com.", "TXT": '"1.1.0"',
    "NS": "ns.dns." + Z, "SOA": f"ns.dns.{Z} hostmaster.{Z} 7 7200 1800 86400 30",
}


@pytest.mark.parametrize(("name", "rr", "text"), RECORDS, ids=[r[0] for r in RECORDS])
def test_records_round_trip_through_dnspython(name: str, rr: RR,
                                              text: Callable[[object], str]) -> None:
    query = wire.parse_query(q(AP, name))
    out = wire.build_response(query, wire.NOERROR, [rr, rr])
    m = dns.message.from_wire(out)
    assert m.id == 4242 and m.rcode() == dns.rcode.NOERROR
    assert m.flags & dns.flags.QR and m.flags & dns.flags.AA and m.flags & dns.flags.RD
    assert str(m.question[0].name) == AP  # case kept
    rrset = m.answer[0]
    assert str(rrset.name) == rr.name and rrset.ttl == rr.ttl
    assert [text(r) for r in rrset] == [EXPECTED[name]]  # duplicates merge in dnspython


def test_owner_name_is_a_pointer_to_the_question() -> None:
    query = wire.parse_query(q(AP))
    out = wire.build_response(query, wire.NOERROR, [RR(AP, wire.A, 30, "10.0.0.1")])
    qend = 12 + len(query.question)
    assert out[qend:qend + 2] == b"\xc0\x0c"


def test_compression_shrinks_repeated_suffixes() -> None:
    query = wire.parse_query(q("web.prod.svc.cluster.local.", "SRV"))
    rrs = [RR("web.prod.svc.cluster.local.", wire.SRV, 30,
              (0, 10, 80, f"web-{i}.web.prod.svc.cluster.local.")) for i in range(10)]
    out = wire.build_response(query, wire.NOERROR, rrs)
    # owner: pointer (2); fixed fields (10); SRV numbers (6); target: "web-N" + pointer (8)
    assert len(out) == 12 + len(query.question) + 10 * (2 + 10 + 6 + 8)
    assert len(dns.message.from_wire(out).answer[0]) == 10


@pytest.mark.parametrize(("name", "edns_payload", "n", "tc"), [
    ("small without EDNS fits", None, 5, False),
    ("big without EDNS truncates at 512", None, 60, True),
    ("big with EDNS 4096 fits", 4096, 60, False),
    ("huge with EDNS 1232 truncates", 1232, 200, True),
])
def test_truncation(name: str, edns_payload: int | None, n: int, tc: bool) -> None:
    kw: dict[str, Any] = {} if edns_payload is None else \
        {"use_edns": 0, "payload": edns_payload}
    query = wire.parse_query(q("web.prod.svc.cluster.local.", **kw))
    rrs = [RR(query.qname, wire.A, 30, f"10.244.{i // 250}.{i % 250}") for i in range(n)]
    out = wire.build_response(query, wire.NOERROR, rrs, max_size=query.udp_size)
    assert len(out) <= query.udp_size
    m = dns.message.from_wire(out)
    assert bool(m.flags & dns.flags.TC) == tc
    assert (m.edns >= 0) == (edns_payload is not None)
    assert sum(len(r) for r in m.answer) == (0 if tc else n)


def test_header_only_error() -> None:
    out = wire.header_only(7, 0x0100, wire.FORMERR)
    m = dns.message.from_wire(out)
    assert m.id == 7 and m.rcode() == dns.rcode.FORMERR and m.flags & dns.flags.QR


def test_with_id() -> None:
    query = wire.parse_query(q())
    out = wire.build_response(query, wire.NXDOMAIN)
    assert wire.with_id(99, out[2:])[:2] == b"\x00\x63"
