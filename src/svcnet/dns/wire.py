"""A small hand-written DNS wire codec for the server's hot path.

Contracts:

* :func:`parse_query` accepts one DNS query message and returns a :class:`Query`, or raises
  :class:`FormatError` (the header parsed, the rest did not: answer FORMERR) or
  :class:`Drop` (not worth an answer: too short, or a response rather than a query).
* :func:`build_response` encodes a response to a parsed query with name compression. The
  answer's owner names equal to the query name are written as a pointer to the question, so
  the query's spelling (case and odd bytes alike) is echoed exactly.
* Over UDP a response larger than the client's payload size (512 without EDNS0) is replaced
  by an empty one with TC set, so the client retries over TCP.

Names are absolute text names ending in ``.``; labels are decoded as latin-1 so any byte
survives a round trip.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# Types and classes used by the server.
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, OPT, IXFR, AXFR, ANY = (
    1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 251, 252, 255)
CLASS_IN = 1

# Response codes.
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

OPCODE_QUERY = 0
EDNS_OPT_COOKIE = 10
DEFAULT_UDP_SIZE = 512
SERVER_UDP_SIZE = 1232
MAX_NAME = 255
_HDR = struct.Struct("!HHHHHH")


class Drop(Exception):
    """The packet deserves no answer."""


class FormatError(Exception):
    """The header parsed but the message did not; answer FORMERR with ``msg_id``/``flags``."""

    def __init__(self, msg_id: int, flags: int, reason: str) -> None:
        super().__init__(reason)
        self.msg_id = msg_id
        self.flags = flags


class NotImplementedOpcode(Exception):
    """The opcode is not QUERY; answer NOTIMP."""

    def __init__(self, msg_id: int, flags: int) -> None:
        super().__init__("opcode not implemented")
        self.msg_id = msg_id
        self.flags = flags


@dataclass(slots=True)
class Query:
    """One parsed query.

    ``question`` is the raw question section (name, type, class) as received; ``cache_key``
    identifies the answer independent of the message ID and of any EDNS cookie.
    """

    msg_id: int
    flags: int
    qname: str
    qtype: int
    qclass: int
    question: bytes
    edns: bool = False
    udp_size: int = DEFAULT_UDP_SIZE
    do_bit: bool = False
    cache_key: bytes = b""
    # True when the query carries an EDNS cookie (the raw packet is then unique per
    # client and not worth caching by its bytes).
    cookie: bool = False

    @property
    def rd(self) -> bool:
        return bool(self.flags & 0x0100)


class RR(NamedTuple):
    """One resource record. ``rdata`` depends on ``rtype``:

    A/AAAA: address text · CNAME/PTR/NS: name · SRV: (priority, weight, port, target) ·
    TXT: tuple of strings · SOA: (mname, rname, serial, refresh, retry, expire, minimum) ·
    anything else: raw bytes.
    """

    name: str
    rtype: int
    ttl: int
    rdata: object


def read_name(data: bytes, off: int) -> tuple[str, int]:
    """Decode the name at ``off``; return (name, offset after it in the original stream).

    Compression pointers must point strictly backwards (which rules out loops) and the name
    may not exceed 255 octets. Raises ValueError on anything malformed.
    """
    labels: list[str] = []
    end = -1
    total = 0
    limit = off
    n = len(data)
    while True:
        if off >= n:
            raise ValueError("name runs past the end")
        ln = data[off]
        if ln == 0:
            off += 1
            break
        if ln & 0xC0 == 0xC0:
            if off + 1 >= n:
                raise ValueError("truncated pointer")
            ptr = ((ln & 0x3F) << 8) | data[off + 1]
            if ptr >= limit:
                raise ValueError("forward or looping pointer")
            if end < 0:
                end = off + 2
            limit = ptr
            off = ptr
            continue
        if ln & 0xC0:
            raise ValueError("unsupported label type")
        off += 1
        if off + ln > n:
            raise ValueError("label runs past the end")
        total += ln + 1
        if total + 1 > MAX_NAME:
            raise ValueError("name too long")
        labels.append(data[off:off + ln].decode("latin-1"))
        off += ln
    return (".".join(labels) + ".") if labels else ".", (end if end >= 0 else off)


def _skip_rr(data: bytes, off: int) -> tuple[int, int, int, int, int]:
    """Skip one RR; return (type, class, ttl, rdata offset, offset after)."""
    _, off = read_name(data, off)
    if off + 10 > len(data):
        raise ValueError("truncated RR")
    rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, off)
    off += 10
    if off + rdlen > len(data):
        raise ValueError("truncated rdata")
    return rtype, rclass, ttl, off, off + rdlen


def parse_query(data: bytes) -> Query:
    """Parse a query (see the module contract)."""
    if len(data) < 12:
        raise Drop("short")
    msg_id, flags, qd, an, ns, ar = _HDR.unpack_from(data)
    if flags & 0x8000:
        raise Drop("a response")
    opcode = (flags >> 11) & 0xF
    if opcode != OPCODE_QUERY:
        raise NotImplementedOpcode(msg_id, flags)
    if qd != 1:
        raise FormatError(msg_id, flags, "need exactly one question")
    try:
        qname, off = read_name(data, 12)
        if off + 4 > len(data):
            raise ValueError("truncated question")
        qtype, qclass = struct.unpack_from("!HH", data, off)
        qend = off + 4
        off = qend
        for _ in range(an + ns):
            off = _skip_rr(data, off)[4]
        edns = False
        udp_size = DEFAULT_UDP_SIZE
        do_bit = False
        opt_key = b""
        cookie = False
        version = 0
        for _ in range(ar):
            start = off
            rtype, rclass, ttl, rd_off, off = _skip_rr(data, off)
            if rtype == OPT:
                if edns or data[start] != 0:
                    raise ValueError("bad OPT")
                edns = True
                udp_size = max(DEFAULT_UDP_SIZE, rclass)
                do_bit = bool(ttl & 0x8000)
                version = (ttl >> 16) & 0xFF
                opt_key, cookie = _opt_key(data, rd_off, off, ttl)
        if off != len(data):
            raise ValueError("trailing bytes")
    except ValueError as e:
        raise FormatError(msg_id, flags, str(e)) from None
    question = data[12:qend]
    key = (data[2:3] + question + (b"E%d" % min(udp_size, 65535) if edns else b"") + opt_key)
    q = Query(msg_id, flags, qname, qtype, qclass, question, edns, udp_size, do_bit, key,
              cookie)
    if version != 0:
        raise BadVersion(q)
    return q


class BadVersion(Exception):
    """The query's EDNS version is not 0: answer BADVERS (RFC 6891 §6.1.3)."""

    def __init__(self, query: Query) -> None:
        super().__init__("unsupported EDNS version")
        self.query = query


def _opt_key(data: bytes, off: int, end: int, ttl: int) -> tuple[bytes, bool]:
    """EDNS options that matter for the answer (everything but the cookie), and the DO bit;
    and whether a cookie was present."""
    parts = [b"D" if ttl & 0x8000 else b"-"]
    cookie = False
    while off + 4 <= end:
        code, ln = struct.unpack_from("!HH", data, off)
        if off + 4 + ln > end:
            raise ValueError("bad EDNS option")
        if code != EDNS_OPT_COOKIE:
            parts.append(data[off:off + 4 + ln])
        else:
            cookie = True
        off += 4 + ln
    if off != end:
        raise ValueError("bad EDNS options")
    return b"".join(parts), cookie


@dataclass
class _Writer:
    buf: bytearray = field(default_factory=bytearray)
    offsets: dict[str, int] = field(default_factory=dict)

    def name(self, name: str) -> None:
        """Write ``name`` with compression (suffixes matched case-sensitively so the
        spelling of every written name is kept)."""
        if name == ".":
            self.buf.append(0)
            return
        labels = name.rstrip(".").split(".")
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            ptr = self.offsets.get(suffix)
            if ptr is not None:
                self.buf += struct.pack("!H", 0xC000 | ptr)
                return
            if len(self.buf) < 0x3FFF:
                self.offsets[suffix] = len(self.buf)
            raw = labels[i].encode("latin-1")[:63]
            self.buf.append(len(raw))
            self.buf += raw
        self.buf.append(0)

    def rr(self, rr: RR) -> None:
        self.name(rr.name)
        self.buf += struct.pack("!HHI", rr.rtype, CLASS_IN, rr.ttl)
        len_at = len(self.buf)
        self.buf += b"\0\0"
        t, d = rr.rtype, rr.rdata
        if t == A:
            self.buf += socket.inet_pton(socket.AF_INET, str(d))
        elif t == AAAA:
            self.buf += socket.inet_pton(socket.AF_INET6, str(d))
        elif t in (CNAME, PTR, NS):
            self.name(str(d))
        elif t == SRV:
            srv: tuple[int, int, int, str] = d  # type: ignore[assignment]
            self.buf += struct.pack("!HHH", srv[0], srv[1], srv[2])
            self.name(srv[3])
        elif t == TXT:
            for s in d:  # type: ignore[attr-defined]
                raw = str(s).encode()[:255]
                self.buf.append(len(raw))
                self.buf += raw
        elif t == SOA:
            soa: tuple[Any, ...] = d  # type: ignore[assignment]
            self.name(str(soa[0]))
            self.name(str(soa[1]))
            self.buf += struct.pack("!IIIII", *soa[2:7])
        else:
            self.buf += bytes(d)  # type: ignore[call-overload]
        struct.pack_into("!H", self.buf, len_at, len(self.buf) - len_at - 2)


def _opt_rr() -> bytes:
    return b"\0" + struct.pack("!HHIH", OPT, SERVER_UDP_SIZE, 0, 0)


def build_response(q: Query, rcode: int, answer: list[RR] | tuple[RR, ...] = (),
                   authority: list[RR] | tuple[RR, ...] = (),
                   additional: list[RR] | tuple[RR, ...] = (), *, aa: bool = True,
                   max_size: int | None = None) -> bytes:
    """Encode the response to ``q`` (message ID included).

    With ``max_size`` (UDP), a message that does not fit is replaced by header + question
    (+ OPT) with TC set.
    """
    flags = 0x8000 | (q.flags & 0x7900) | 0x0080 | (rcode & 0xF)
    if aa:
        flags |= 0x0400
    w = _Writer()
    w.buf += _HDR.pack(q.msg_id, flags, 1, len(answer), len(authority),
                       len(additional) + (1 if q.edns else 0))
    w.buf += q.question
    w.offsets[q.qname.rstrip(".")] = 12
    for rr in answer:
        w.rr(rr)
    for rr in authority:
        w.rr(rr)
    for rr in additional:
        w.rr(rr)
    if q.edns:
        w.buf += _opt_rr()
    if max_size is not None and len(w.buf) > max_size:
        return truncated(q, rcode, aa)
    return bytes(w.buf)


def truncated(q: Query, rcode: int = NOERROR, aa: bool = True) -> bytes:
    """Header + question (+ OPT) with TC set."""
    flags = 0x8000 | (q.flags & 0x7900) | 0x0080 | 0x0200 | (rcode & 0xF)
    if aa:
        flags |= 0x0400
    out = _HDR.pack(q.msg_id, flags, 1, 0, 0, 1 if q.edns else 0) + q.question
    return out + _opt_rr() if q.edns else out


BADVERS = 16


def badvers(q: Query) -> bytes:
    """BADVERS: header + question + an OPT of version 0 carrying the upper rcode bits."""
    flags = 0x8000 | (q.flags & 0x7900) | 0x0080 | (BADVERS & 0xF)
    opt = b"\0" + struct.pack("!HHIH", OPT, SERVER_UDP_SIZE, (BADVERS >> 4) << 24, 0)
    return _HDR.pack(q.msg_id, flags, 1, 0, 0, 1) + q.question + opt


def header_only(msg_id: int, qflags: int, rcode: int) -> bytes:
    """A response with no sections (FORMERR, NOTIMP)."""
    flags = 0x8000 | (qflags & 0x7900) | 0x0080 | (rcode & 0xF)
    return _HDR.pack(msg_id, flags, 0, 0, 0, 0)


def with_id(msg_id: int, body: bytes) -> bytes:
    """``body`` is a response without its first two bytes; prepend ``msg_id``."""
    return struct.pack("!H", msg_id) + body
