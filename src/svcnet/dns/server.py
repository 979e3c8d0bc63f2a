"""The cluster DNS server: asyncio UDP/TCP protocols around the pure zone.

Contracts:

* :class:`DNSHandler` turns one query message into one response (or nothing, for packets
  that deserve none). It never raises: any internal error becomes SERVFAIL, a packet whose
  header does not parse is dropped.
* Until :attr:`DNSHandler.synced` is set (all informers listed once), every name in the
  cluster zone or its reverse zones that this server would answer gets SERVFAIL, so
  resolvers retry instead of caching a negative answer. Forwarding works from the start.
* Cluster answers are cached as wire bytes keyed on the question, EDNS payload size and
  options other than the cookie; the cache is dropped whenever the zone changes and is
  bounded in size. Forwarded answers are cached for their TTL (at most 300 s).
* Names the zone does not own go to the upstream resolvers (``--upstream`` or the host's
  ``/etc/resolv.conf``) over the transport the client used.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import itertools
import logging
import signal
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from svcnet.dns import records, wire
from svcnet.dns.records import Answer, Zone
from svcnet.dns.wire import RR, Query

log = logging.getLogger("svcnet.dns")

# Entries per answer cache. The working set of a cluster is about one entry per service
# name and query type; at 10,000 services the benchmark's mix has ~21,000 distinct
# queries, and a cache smaller than that is useless for a client cycling through them.
CACHE_MAX = 100_000
TCP_MAX = 65535
TCP_IDLE_TIMEOUT = 30.0
UPSTREAM_TIMEOUT = 2.0
UPSTREAM_TTL_MAX = 300
_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))
_TYPE_NAMES = {wire.A: "A", wire.AAAA: "AAAA", wire.SRV: "SRV", wire.PTR: "PTR",
               wire.TXT: "TXT", wire.NS: "NS", wire.SOA: "SOA", wire.CNAME: "CNAME",
               wire.MX: "MX", wire.AXFR: "AXFR", wire.IXFR: "IXFR", wire.ANY: "ANY"}
_RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
                5: "REFUSED"}


def parse_upstream(text: str) -> tuple[str, int]:
    """``IP`` or ``IP:port`` or ``[v6]:port`` → (ip, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 53


def resolv_conf_upstreams(path: Path = Path("/etc/resolv.conf")) -> list[tuple[str, int]]:
    """Nameservers of the host resolver configuration (port 53)."""
    out: list[tuple[str, int]] = []
    try:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                out.append((parts[1].split("%")[0], 53))
    except OSError:
        pass
    return out


@dataclass
class Metrics:
    """CoreDNS-named Prometheus counters and the request-duration histogram."""

    server: str = "dns://:53"
    requests: dict[tuple[str, str], int] = field(default_factory=dict)
    responses: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * len(_BUCKETS))
    duration_sum: float = 0.0
    duration_count: int = 0

    def observe(self, proto: str, qtype: int, rcode: int, seconds: float) -> None:
        k = (proto, _TYPE_NAMES.get(qtype, "other"))
        self.requests[k] = self.requests.get(k, 0) + 1
        rc = _RCODE_NAMES.get(rcode, str(rcode))
        self.responses[rc] = self.responses.get(rc, 0) + 1
        self.duration_sum += seconds
        self.duration_count += 1
        i = bisect.bisect_left(_BUCKETS, seconds)
        if i < len(_BUCKETS):
            self.buckets[i] += 1

    def observe_cached(self, proto: str, entry: CacheEntry, seconds: float) -> None:
        self.observe(proto, entry.qtype, entry.rcode, seconds)

    def render(self) -> str:
        s = self.server
        lines = ["# HELP coredns_dns_requests_total Counter of DNS requests made per zone, "
                 "protocol and family.", "# TYPE coredns_dns_requests_total counter"]
        for (proto, qtype), n in sorted(self.requests.items()):
            lines.append(f'coredns_dns_requests_total{{server="{s}",zone=".",proto="{proto}",'
                         f'type="{qtype}"}} {n}')
        lines += ["# HELP coredns_dns_responses_total Counter of response status codes.",
                  "# TYPE coredns_dns_responses_total counter"]
        for rc, n in sorted(self.responses.items()):
            lines.append(f'coredns_dns_responses_total{{server="{s}",zone=".",rcode="{rc}"}} '
                         f"{n}")
        lines += ["# HELP coredns_dns_request_duration_seconds Histogram of the time (in "
                  "seconds) each request took.",
                  "# TYPE coredns_dns_request_duration_seconds histogram"]
        acc = 0
        for b, n in zip(_BUCKETS, self.buckets, strict=True):
            acc += n
            lines.append(f'coredns_dns_request_duration_seconds_bucket{{server="{s}",zone=".",'
                         f'le="{b:g}"}} {acc}')
        lines.append(f'coredns_dns_request_duration_seconds_bucket{{server="{s}",zone=".",'
                     f'le="+Inf"}} {self.duration_count}')
        lines.append(f'coredns_dns_request_duration_seconds_sum{{server="{s}",zone="."}} '
                     f"{self.duration_sum}")
        lines.append(f'coredns_dns_request_duration_seconds_count{{server="{s}",zone="."}} '
                     f"{self.duration_count}")
        return "\n".join(lines) + "\n"


@dataclass(slots=True)
class CacheEntry:
    """A cached response body (without the message ID) and what it depends on.

    ``bodies`` holds one body, or one slot per rotation of the answer's address records
    (the round-robin order CoreDNS's ``loadbalance`` gives), built on first use by
    ``rotate(k)``; ``cell``/``gen`` are the zone's generation cell and its value when the
    answer was built (valid while equal).
    """

    cell: list[int]
    gen: int
    bodies: list[bytes | None]
    qtype: int
    rcode: int
    rotate: Callable[[int], bytes] | None = None


class DNSHandler:
    """Query → response, with the caches and the upstream forwarder (see module docs)."""

    def __init__(self, zone: Zone, upstreams: list[tuple[str, int]],
                 metrics: Metrics | None = None) -> None:
        self.zone = zone
        self.upstreams = upstreams
        self.metrics = metrics or Metrics()
        self.synced = False
        # Parsed-question key → entry, and (for UDP queries without a cookie) the raw
        # packet minus its ID → the same entry, which lets the UDP path skip parsing.
        self._cache: dict[bytes, CacheEntry] = {}
        self.raw_cache: dict[bytes, CacheEntry] = {}
        self._turn = 0
        self._up_cache: dict[bytes, tuple[float, bytes]] = {}

    def cached(self, entry: CacheEntry) -> bytes | None:
        """The body of a still-valid entry (the next rotation), else ``None``."""
        if entry.cell[0] != entry.gen:
            return None
        bodies = entry.bodies
        if len(bodies) == 1:
            return bodies[0]
        self._turn += 1
        k = self._turn % len(bodies)
        body = bodies[k]
        if body is None:
            assert entry.rotate is not None
            body = bodies[k] = entry.rotate(k)
        return body

    # The fast, synchronous part: everything but forwarding.
    def answer_local(self, data: bytes, udp: bool) -> bytes | Query | None:
        """A response, or the parsed query when it must be resolved asynchronously
        (forwarding, out-of-zone CNAME chase), or ``None`` to drop the packet."""
        try:
            q = wire.parse_query(data)
        except wire.Drop:
            return None
        except wire.FormatError as e:
            return wire.header_only(e.msg_id, e.flags, wire.FORMERR)
        except wire.NotImplementedOpcode as e:
            return wire.header_only(e.msg_id, e.flags, wire.NOTIMP)
        except wire.BadVersion as e:
            return wire.badvers(e.query)
        except Exception:  # a codec bug must not cost more than this packet
            log.exception("parsing a query")
            return None
        try:
            return self._answer_parsed(q, data, udp)
        except Exception:
            log.exception("answering %s/%d", q.qname, q.qtype)
            return wire.build_response(q, wire.SERVFAIL, aa=False)

    def _answer_parsed(self, q: Query, data: bytes, udp: bool) -> bytes | Query:
        if q.qtype in (wire.AXFR, wire.IXFR):
            return wire.build_response(q, wire.REFUSED, aa=False)
        if q.qclass != wire.CLASS_IN:
            return wire.build_response(q, wire.REFUSED, aa=False)
        key = q.cache_key + (b"U" if udp else b"T")
        hit = self._cache.get(key)
        if hit is not None:
            body = self.cached(hit)
            if body is not None:
                return wire.with_id(q.msg_id, body)
        ans = self.zone.resolve(q.qname, q.qtype)
        if ans is None:
            return q
        max_size = q.udp_size if udp else TCP_MAX
        if not self.synced:
            return wire.build_response(q, wire.SERVFAIL, authority=ans.authority[:1],
                                       max_size=max_size)
        if ans.chase is not None:
            return q
        out = wire.build_response(q, ans.rcode, ans.answer, ans.authority, ans.additional,
                                  max_size=max_size)
        if ans.dep is not None and ans.cacheable:
            bodies, rotate = _rotations(q, ans, out, max_size)
            entry = CacheEntry(ans.dep, ans.dep[0], bodies, q.qtype, ans.rcode, rotate)
            if udp and not q.cookie:  # the raw cache serves these; one copy is enough
                _put(self.raw_cache, data[2:], entry)
            else:
                _put(self._cache, key, entry)
        return out

    async def answer(self, data: bytes, udp: bool) -> bytes | None:
        """Full answer including forwarding; never raises."""
        res = self.answer_local(data, udp)
        if not isinstance(res, Query):
            return res
        q = res
        try:
            ans = self.zone.resolve(q.qname, q.qtype)
            if ans is not None and ans.chase is not None:
                return await self._chase(q, ans, udp)
            return await self._forward(q, data, udp)
        except Exception:
            log.exception("forwarding %s/%d", q.qname, q.qtype)
            return wire.build_response(q, wire.SERVFAIL, aa=False)

    async def _upstream(self, msg: dns.message.Message, udp: bool
                        ) -> dns.message.Message | None:
        for host, port in self.upstreams:
            try:
                if udp:
                    return await dns.asyncquery.udp(msg, host, port=port,
                                                    timeout=UPSTREAM_TIMEOUT,
                                                    ignore_unexpected=True)
                return await dns.asyncquery.tcp(msg, host, port=port,
                                                timeout=UPSTREAM_TIMEOUT)
            except Exception as e:  # try the next one
                log.debug("upstream %s:%d: %s", host, port, e)
        return None

    async def _forward(self, q: Query, data: bytes, udp: bool) -> bytes:
        key = q.cache_key + (b"U" if udp else b"T")
        now = time.monotonic()
        hit = self._up_cache.get(key)
        if hit is not None and hit[0] > now:
            return wire.with_id(q.msg_id, hit[1])
        msg = dns.message.from_wire(data)
        resp = await self._upstream(msg, udp)
        if resp is None:
            return wire.build_response(q, wire.SERVFAIL, aa=False)
        resp.id = q.msg_id
        out = resp.to_wire(max_size=TCP_MAX)
        if udp and len(out) > q.udp_size:
            return wire.truncated(q, resp.rcode(), aa=False)
        if resp.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) and \
                not resp.flags & dns.flags.TC:
            ttls = [rr.ttl for sect in (resp.answer, resp.authority) for rr in sect]
            ttl = min([UPSTREAM_TTL_MAX, *ttls]) if ttls else 0
            if ttl > 0:
                if len(self._up_cache) >= CACHE_MAX:
                    self._up_cache.clear()
                self._up_cache[key] = (now + ttl, out[2:])
        return out

    async def _chase(self, q: Query, ans: Answer, udp: bool) -> bytes:
        """Resolve an ExternalName's out-of-zone target upstream and append the records."""
        assert ans.chase is not None
        tc = False
        msg = dns.message.make_query(ans.chase, dns.rdatatype.RdataType.make(q.qtype))
        resp = await self._upstream(msg, udp)
        records = list(ans.answer)
        rcode = ans.rcode
        if resp is not None:
            tc = bool(resp.flags & dns.flags.TC)
            rcode = resp.rcode()
            for rrset in resp.answer:
                for rd in rrset:
                    if rd.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                        records.append(RR(rrset.name.to_text(), int(rd.rdtype), rrset.ttl,
                                          rd.address))
                    elif rd.rdtype == dns.rdatatype.CNAME:
                        records.append(RR(rrset.name.to_text(), wire.CNAME, rrset.ttl,
                                          rd.target.to_text()))
        out = wire.build_response(q, rcode, records, max_size=q.udp_size if udp else TCP_MAX)
        if tc:
            out = out[:2] + struct.pack("!H", struct.unpack_from("!H", out, 2)[0] | 0x0200) \
                + out[4:]
        return out


class UDPProtocol(asyncio.DatagramProtocol):
    """One datagram in, at most one out."""

    def __init__(self, handler: DNSHandler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        start = time.perf_counter()
        # Fast path: a packet seen before (ID aside) whose answer is still valid. Measured
        # with dnsperf at 10k services, this path is what keeps up with dnsmasq.
        entry = self.handler.raw_cache.get(data[2:])
        if entry is not None and self.transport is not None:
            body = self.handler.cached(entry)
            if body is not None:
                self.transport.sendto(data[:2] + body, addr)
                self.handler.metrics.observe_cached("udp", entry, time.perf_counter() - start)
                return
        try:
            res = self.handler.answer_local(data, True)
        except Exception:  # answer_local does not raise; belt and braces
            log.exception("udp handler")
            return
        if isinstance(res, Query):
            asyncio.get_running_loop().create_task(self._slow(data, addr, res, start))
        elif res is not None and self.transport is not None:
            self.transport.sendto(res, addr)
            _observe(self.handler, "udp", data, res, start)

    async def _slow(self, data: bytes, addr: Any, q: Query, start: float) -> None:
        res = await self.handler.answer(data, True)
        if res is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(res, addr)
            _observe(self.handler, "udp", data, res, start)


BATCHES_PER_WAKEUP = 4


class BatchedUDPServer:
    """The UDP side on Linux: datagrams read and answered in batches with
    ``recvmmsg``/``sendmmsg`` (:mod:`svcnet._util.mmsg`) from an event-loop reader
    callback. Same answers as :class:`UDPProtocol`; a query that needs forwarding is
    finished in a task and sent with a plain ``sendto``.

    Latency metrics are per batch: every answer of a batch is observed with the time from
    reading the batch to finishing its answers."""

    def __init__(self, handler: DNSHandler, sock: socket.socket) -> None:
        from svcnet._util.mmsg import DatagramBatch
        self.handler = handler
        self.sock = sock
        sock.setblocking(False)
        self.batch = DatagramBatch()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._on_readable)

    def close(self) -> None:
        if self._loop is not None and self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
        for t in self._tasks:
            t.cancel()
        self.sock.close()

    def _on_readable(self) -> None:
        try:
            self._drain()
        except Exception:  # the reader must survive anything one batch does
            log.exception("udp batch")

    def _drain(self) -> None:
        fd = self.sock.fileno()
        batch, h = self.batch, self.handler
        raw_cache, cached, observe = h.raw_cache, h.cached, h.metrics.observe
        bufsize = batch.bufsize
        # At most BATCHES_PER_WAKEUP batches, then back to the event loop (the reader is
        # level-triggered and fires again): a flood must not starve the informers.
        for _ in range(BATCHES_PER_WAKEUP):
            n = batch.recv(fd)
            if n == 0:
                return
            start = time.perf_counter()
            done: list[tuple[int, int]] = []
            for i in range(n):
                data = batch.data(i)
                if data is None:
                    continue
                entry = raw_cache.get(data[2:])
                if entry is not None:
                    body = cached(entry)
                    if body is not None:
                        batch.reply(i, data[:2] + body)
                        done.append((entry.qtype, entry.rcode))
                        continue
                res = h.answer_local(data, True)
                if isinstance(res, Query):
                    self._spawn(data, batch.address(i), start)
                elif res is not None:
                    if len(res) <= bufsize:
                        batch.reply(i, res)
                    else:
                        with contextlib.suppress(OSError):
                            self.sock.sendto(res, batch.address(i))
                    done.append((_qtype_of(data), res[3] & 0xF))
            batch.flush(fd)
            elapsed = time.perf_counter() - start
            for qtype, rcode in done:
                observe("udp", qtype, rcode, elapsed)
            if n < batch.size:
                return

    def _spawn(self, data: bytes, addr: Any, start: float) -> None:
        assert self._loop is not None
        t = self._loop.create_task(self._slow(data, addr, start))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _slow(self, data: bytes, addr: Any, start: float) -> None:
        res = await self.handler.answer(data, True)
        if res is not None and self.sock.fileno() >= 0:
            with contextlib.suppress(OSError):
                self.sock.sendto(res, addr)
            _observe(self.handler, "udp", data, res, start)


def _qtype_of(query: bytes) -> int:
    try:
        _, end = wire.read_name(query, 12)
        return int(struct.unpack_from("!H", query, end)[0])
    except Exception:
        return 0


class UDPServer:
    """Whichever UDP server suits the platform, on an already bound socket."""

    def __init__(self, handler: DNSHandler, sock: socket.socket) -> None:
        from svcnet._util import mmsg
        self.sock = sock
        self._batched = BatchedUDPServer(handler, sock) if mmsg.available() else None
        self._transport: asyncio.DatagramTransport | None = None
        self.handler = handler

    async def start(self) -> None:
        if self._batched is not None:
            self._batched.start()
            return
        loop = asyncio.get_running_loop()  # pragma: no cover - non-Linux
        self._transport, _ = await loop.create_datagram_endpoint(  # pragma: no cover
            lambda: UDPProtocol(self.handler), sock=self.sock)

    def close(self) -> None:
        if self._batched is not None:
            self._batched.close()
        elif self._transport is not None:  # pragma: no cover - non-Linux
            self._transport.close()


class TCPProtocol(asyncio.Protocol):
    """Length-prefixed messages; answers are written in completion order. A connection idle
    for ``TCP_IDLE_TIMEOUT`` seconds, or holding more than ``MAX_BUFFER`` unread bytes, is
    closed."""

    MAX_BUFFER = 65537 * 4

    def __init__(self, handler: DNSHandler) -> None:
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.tasks: set[asyncio.Task[None]] = set()
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._arm()

    def _arm(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        if self.transport is not None:
            self.idle = asyncio.get_running_loop().call_later(TCP_IDLE_TIMEOUT,
                                                              self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        for t in self.tasks:
            t.cancel()

    def data_received(self, data: bytes) -> None:
        self._arm()
        self.buf += data
        if len(self.buf) > self.MAX_BUFFER and self.transport is not None:
            self.transport.close()
            return
        while len(self.buf) >= 2:
            n = (self.buf[0] << 8) | self.buf[1]
            if len(self.buf) < 2 + n:
                break
            msg = bytes(self.buf[2:2 + n])
            del self.buf[:2 + n]
            start = time.perf_counter()
            res = self.handler.answer_local(msg, False)
            if isinstance(res, Query):
                t = asyncio.get_running_loop().create_task(self._slow(msg, start))
                self.tasks.add(t)
                t.add_done_callback(self.tasks.discard)
            elif res is not None:
                self._send(msg, res, start)

    def _send(self, msg: bytes, res: bytes, start: float) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(struct.pack("!H", len(res)) + res)
            _observe(self.handler, "tcp", msg, res, start)

    async def _slow(self, msg: bytes, start: float) -> None:
        res = await self.handler.answer(msg, False)
        if res is not None:
            self._send(msg, res, start)


ROTATIONS_MAX = 8


def _rotations(q: Query, ans: Answer, first: bytes, max_size: int
               ) -> tuple[list[bytes | None], Callable[[int], bytes] | None]:
    """The cache slots of a response and how to fill them: one per rotation of its A/AAAA
    records (at most ``ROTATIONS_MAX``) when it has several, so repeated queries spread
    clients like CoreDNS's ``loadbalance``; other records keep their place. Only the
    unrotated body is built now."""
    addr_at = [i for i, rr in enumerate(ans.answer) if rr.rtype in (wire.A, wire.AAAA)]
    if len(addr_at) < 2 or first[2] & 0x02:  # one address, or truncated
        return [first[2:]], None
    addrs = [ans.answer[i] for i in addr_at]

    def rotate(k: int) -> bytes:
        records = list(ans.answer)
        for i, rr in zip(addr_at, addrs[k:] + addrs[:k], strict=True):
            records[i] = rr
        return wire.build_response(q, ans.rcode, records, ans.authority, ans.additional,
                                   max_size=max_size)[2:]
    slots: list[bytes | None] = [None] * min(len(addrs), ROTATIONS_MAX)
    slots[0] = first[2:]
    return slots, rotate


def _put(cache: dict[bytes, CacheEntry], key: bytes, entry: CacheEntry) -> None:
    """Insert, evicting the oldest quarter first when the cache is full."""
    if len(cache) >= CACHE_MAX:
        for old in list(itertools.islice(cache, CACHE_MAX // 4)):
            del cache[old]
    cache[key] = entry


def _observe(h: DNSHandler, proto: str, query: bytes, res: bytes, start: float) -> None:
    h.metrics.observe(proto, _qtype_of(query), res[3] & 0xF, time.perf_counter() - start)


async def listen(handler: DNSHandler, host: str, port: int
                 ) -> tuple[UDPServer, asyncio.Server]:
    """Bind UDP and TCP on ``host:port``. With port 0 the TCP side picks a free port and UDP
    takes the same number (retried when that UDP port is taken)."""
    loop = asyncio.get_running_loop()
    for attempt in range(20):
        tcp = await loop.create_server(lambda: TCPProtocol(handler), host, port,
                                       reuse_address=True)
        bound = tcp.sockets[0].getsockname()[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        usock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            usock.bind((host, bound))
        except OSError:
            usock.close()
            tcp.close()
            if port != 0 or attempt == 19:
                raise
            continue
        udp = UDPServer(handler, usock)
        await udp.start()
        return udp, tcp
    raise OSError("no free port")  # pragma: no cover - the loop returns or raises


@dataclass
class DNSConfig:
    kubeconfig: Path
    host: str = "127.0.0.1"
    port: int = 53
    upstreams: list[tuple[str, int]] = field(default_factory=list)
    ttl: int = 30
    zone: str = "cluster.local"
    pods: str = "insecure"
    metrics_port: int = 0
    # Also answer pods on the node's address inside this network namespace (the node's),
    # and publish it as the kube-dns endpoints; with ``cluster_ip`` also on that VIP
    # directly (a cluster without a service proxy).
    # where the pods' resolv.conf points.
    cluster_netns: str | None = None
    cluster_ip: str | None = None
    # Without a cluster namespace (the process runtime): publish this server's own
    # host:port as the kube-dns endpoints, so the proxy serves the kube-dns ClusterIP.
    publish_host: bool = False


class ClusterListener:
    """Where pods reach the server: UDP+TCP port 53 (and metrics on 9153) on the node's own
    address inside network namespace ``netns`` (made by the node agent), plus optionally a
    service VIP for clusters without a service proxy.

    The node address is the namespace's first global IPv4 address (the pod bridge); it is
    what the ``kube-dns`` Service's endpoints point at, so the service proxy carries
    ``10.96.0.10:53`` to it. A VIP is added to the namespace's loopback and removed again by
    :meth:`close`. Sockets are created inside the namespace
    (:func:`svcnet._util.netns.socket_in_netns`); this process stays in its own."""

    def __init__(self, handler: DNSHandler, netns: str, vip: str | None = None,
                 port: int = 53) -> None:
        self.handler, self.netns, self.vip, self.port = handler, netns, vip, port
        self.node_ip: str | None = None
        self.udp: list[UDPServer] = []
        self.tcp: list[asyncio.Server] = []
        self.metrics_cleanup: Callable[[], Any] | None = None
        self.added = False

    async def _ip(self, *args: str) -> tuple[int, bytes]:
        proc = await asyncio.create_subprocess_exec(
            "ip", "-n", self.netns, *args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out

    async def start(self, wait: float = 120.0) -> None:
        """Wait for the namespace and its node address, then listen; gives up after
        ``wait`` seconds."""
        from svcnet._util import netns as nsutil
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            if nsutil.exists(self.netns):
                self.node_ip = await nsutil.first_global_ipv4(self.netns)
                if self.node_ip is not None:
                    break
            if loop.time() > deadline:
                log.warning("network namespace %s (with an address) never appeared; not "
                            "listening there", self.netns)
                return
            await asyncio.sleep(0.5)
        addresses = [self.node_ip]
        if self.vip:
            await self._ip("link", "set", "lo", "up")
            self.added = (await self._ip("addr", "add", f"{self.vip}/32", "dev", "lo"))[0] == 0
            addresses.append(self.vip)
        for ip in addresses:
            usock = nsutil.socket_in_netns(self.netns, socket.AF_INET, socket.SOCK_DGRAM)
            usock.bind((ip, self.port))
            udp = UDPServer(self.handler, usock)
            await udp.start()
            self.udp.append(udp)
            tsock = nsutil.socket_in_netns(self.netns, socket.AF_INET, socket.SOCK_STREAM)
            tsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tsock.bind((ip, self.port))
            self.tcp.append(await loop.create_server(lambda: TCPProtocol(self.handler),
                                                     sock=tsock))
        msock = nsutil.socket_in_netns(self.netns, socket.AF_INET, socket.SOCK_STREAM)
        msock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        msock.bind((self.node_ip, METRICS_PORT))
        self.metrics_cleanup = await _serve_metrics(self.handler.metrics, sock=msock)
        log.info("dns listening on %s:%d inside %s", " ".join(addresses), self.port,
                 self.netns)

    async def close(self) -> None:
        for u in self.udp:
            u.close()
        for t in self.tcp:
            t.close()
        if self.metrics_cleanup is not None:
            await self.metrics_cleanup()
        if self.added and self.vip:
            from svcnet._util import netns as nsutil
            if nsutil.exists(self.netns):
                await self._ip("addr", "del", f"{self.vip}/32", "dev", "lo")


METRICS_PORT = 9153


def dns_endpoints(ip: str | None, dns_port: int = 53,
                  metrics_port: int = METRICS_PORT) -> dict[str, Any]:
    """The ``kube-system/kube-dns`` Endpoints pointing at ``ip`` (no subsets for
    ``None``), with the kube-dns Service's port names (no metrics port for 0)."""
    ports = [{"name": "dns", "port": dns_port, "protocol": "UDP"},
             {"name": "dns-tcp", "port": dns_port, "protocol": "TCP"}]
    if metrics_port:
        ports.append({"name": "metrics", "port": metrics_port, "protocol": "TCP"})
    subsets = [] if ip is None else [{"addresses": [{"ip": ip}], "ports": ports}]
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns"}},
            "subsets": subsets}


async def publish_endpoints(client: Any, body: dict[str, Any]) -> None:
    """Create or replace the kube-dns Endpoints (the endpoint-mirroring controller turns
    them into an EndpointSlice, as for any selector-less Service)."""
    from svcnet.model import kinds
    from svcnet.model.errors import APIError
    res = kinds.require("", "endpoints")
    body = copy.deepcopy(body)
    try:
        cur = await client.get(res, "kube-system", "kube-dns")
    except APIError as e:
        if e.code != 404:
            raise
        await client.create(res, "kube-system", body)
        return
    if cur.get("subsets") != body["subsets"]:
        body["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        await client.update(res, body)


async def _serve_metrics(metrics: Metrics, host: str = "", port: int = 0,
                         sock: socket.socket | None = None) -> Callable[[], Any]:
    """``/metrics`` on ``host:port``, or on an already bound ``sock``."""
    from aiohttp import web

    async def handle(_req: web.Request) -> web.Response:
        return web.Response(text=metrics.render(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site: web.BaseSite = web.SockSite(runner, sock) if sock is not None else \
        web.TCPSite(runner, host, port)
    await site.start()
    return runner.cleanup


def _settle_memory() -> None:
    """After the initial lists: collect, move what survived out of the cyclic GC's way
    (``gc.freeze``: a full collection over the zone's objects would otherwise stall
    answers for tens of milliseconds at 10,000 services) and hand the list responses'
    freed heap back to the system."""
    import ctypes
    import gc
    gc.collect()
    gc.freeze()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


ENDPOINTS_CHECK_INTERVAL = 30.0


async def _serve_cluster(cluster: ClusterListener, client: Any) -> None:
    """Listen inside the node namespace, then keep the kube-dns endpoints pointing
    there."""
    await cluster.start()
    if cluster.node_ip is not None:
        await _keep_endpoints(client, dns_endpoints(cluster.node_ip))


async def _keep_endpoints(client: Any, body: dict[str, Any]) -> None:
    """Write the kube-dns endpoints at once (retried with back-off until the API takes
    them) and check them again every ``ENDPOINTS_CHECK_INTERVAL`` seconds, so a change by
    anyone else is undone."""
    from svcnet._util.backoff import Backoff
    backoff = Backoff(initial=0.5, maximum=10.0)
    while True:
        try:
            await publish_endpoints(client, body)
            backoff.reset()
            await asyncio.sleep(ENDPOINTS_CHECK_INTERVAL)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("publishing the kube-dns endpoints: %s", e)
            await asyncio.sleep(backoff.next())


def _updater(on_set: Callable[[dict[str, Any]], None]
             ) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    return lambda _old, new: on_set(new)


async def run(cfg: DNSConfig) -> None:
    """Serve until SIGTERM/SIGINT: listen at once (SERVFAIL in the zone until synced)."""
    from svcnet.client.api import APIClient
    from svcnet.informer.shared import InformerFactory
    from svcnet.model import kinds

    zone = Zone(cfg.zone, ttl=cfg.ttl, pods=cfg.pods)
    upstreams = cfg.upstreams or [u for u in resolv_conf_upstreams()
                                  if u != (cfg.host, cfg.port)]
    handler = DNSHandler(zone, upstreams, Metrics(server=f"dns://{cfg.host}:{cfg.port}"))
    udp, tcp = await listen(handler, cfg.host, cfg.port)
    log.info("dns listening on %s:%d (udp+tcp), upstreams %s", cfg.host, cfg.port, upstreams)
    cleanup_metrics = None
    if cfg.metrics_port:
        cleanup_metrics = await _serve_metrics(handler.metrics, cfg.host, cfg.metrics_port)
    client = APIClient.from_kubeconfig(cfg.kubeconfig, user_agent="svcnet-dns")
    factory = InformerFactory(client)
    for (group, res), (on_set, on_del, trim) in {
        ("", "services"): (zone.set_service, zone.delete_service, records.trim_service),
        ("discovery.k8s.io", "endpointslices"): (zone.set_slice, zone.delete_slice,
                                                 records.trim_slice),
        ("", "pods"): (zone.set_pod, zone.delete_pod, records.trim_pod),
        ("", "namespaces"): (zone.set_namespace, zone.delete_namespace,
                             records.trim_namespace),
    }.items():
        inf = factory.informer(kinds.require(group, res))
        inf.transform = trim
        inf.cache_transform = records.stub  # the zone keeps its own, smaller view
        inf.add_handlers(on_set, _updater(on_set), on_del)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    factory.start()
    cluster = ClusterListener(handler, cfg.cluster_netns, cfg.cluster_ip) \
        if cfg.cluster_netns else None
    if cluster is not None:
        cluster_task: asyncio.Future[None] | None = asyncio.ensure_future(
            _serve_cluster(cluster, client))
    elif cfg.publish_host:
        cluster_task = asyncio.ensure_future(_keep_endpoints(client, dns_endpoints(
            cfg.host, cfg.port, cfg.metrics_port)))
    else:
        cluster_task = None
    try:
        sync = asyncio.ensure_future(factory.wait_for_sync())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({sync, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if sync.done() and sync.result():
            handler.synced = True
            log.info("dns synced: %d services, %d slices", len(zone.services),
                     len(zone.slices))
            _settle_memory()
        await stopper
    finally:
        if cluster_task is not None:
            cluster_task.cancel()
        if (cluster is not None and cluster.node_ip is not None) or \
                (cluster is None and cfg.publish_host):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(publish_endpoints(client, dns_endpoints(None)), 5)
        if cluster is not None:
            await cluster.close()
        udp.close()
        tcp.close()
        await factory.stop()
        await client.close()
        if cleanup_metrics is not None:
            await cleanup_metrics()
