"""The byte-moving half of the userspace dataplane: endpoints, pools and UDP flows.

Objects here are created and driven by :mod:`svcnet.proxy.dataplanes.userspace`; all of
them live on one event loop thread and are not thread-safe.

* :class:`Backend` — one endpoint of a service port: the scheduler's ``Destination`` (whose
  counters this module keeps true, as IPVS does: ``active`` counts established TCP pairs,
  ``inactive`` TCP dials in flight and open UDP flows) plus traffic counters.
* :class:`Pool` — the endpoints a frontend picks from (one per kind of frontend —
  ClusterIP: *internal*, NodePort/LB/externalIP: *external* — and address family), with
  the scheduler and the service port's ClientIP affinity table.
* TCP relaying is in :mod:`svcnet.proxy.dataplanes._tcp`.
* :class:`UdpFrontend` — one datagram socket with a flow per client address: a connected
  socket to the picked backend, replies sent back from the frontend socket, closed after
  ``idle_timeout`` seconds without a packet in either direction.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any

from svcnet.proxy.affinity import AffinityTable
from svcnet.proxy.dataplanes._core import Counters
from svcnet.proxy.schedulers import Destination, Scheduler

# kube-proxy's EndpointDialTimeouts: one dial per entry, each to a freshly picked endpoint.
DIAL_TIMEOUTS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
UDP_READ_SIZE = 65535


SocketFactory = Callable[[int, int], socket.socket]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


class Backend:
    """One endpoint of a service port and its counters.

    ``total`` counts established TCP connections (UDP: flows) ever made to it,
    ``bytes_in`` bytes relayed from clients to it, ``bytes_out`` bytes relayed from it
    back to clients (both kept in ``counters``, which the TCP relay core adds to). ``dest.active`` is the number of TCP pairs established right now,
    ``dest.inactive`` the dials in flight plus open UDP flows.
    """

    __slots__ = ("dest", "ip", "port", "address", "family", "target", "total",
                 "counters")

    def __init__(self, dest: Destination, target: str = "") -> None:
        self.dest = dest
        self.ip: str = dest.ip
        self.port: int = dest.port
        self.address: str = dest.address
        self.family = family_of(self.ip)
        self.target = target
        self.total = 0
        self.counters = Counters()

    @property
    def bytes_in(self) -> int:
        return self.counters.bytes_in

    @property
    def bytes_out(self) -> int:
        return self.counters.bytes_out

    @property
    def busy(self) -> bool:
        return bool(self.dest.active or self.dest.inactive)


# Schedulers that hash the client's address: they need the source of every connection.
_SOURCE_HASHING = frozenset({"sh", "mh"})


class Pool:
    """Endpoints a frontend picks from. ``backends`` maps ``ip:port`` to :class:`Backend`
    and holds exactly the destinations last given to ``scheduler.update`` (use
    :meth:`set_backends`). ``needs_source`` tells whether :meth:`pick` uses the client's
    address (affinity or a source-hashing scheduler); without it callers may pass
    ``("", 0)``."""

    __slots__ = ("scheduler", "backends", "affinity", "verdict", "needs_source", "_by_dest")

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.backends: dict[str, Backend] = {}
        self.affinity: AffinityTable | None = None
        self.verdict = "REJECT"
        self.needs_source = getattr(scheduler, "name", "") in _SOURCE_HASHING
        self._by_dest: dict[Destination, Backend] = {}

    def set_affinity(self, table: AffinityTable | None) -> None:
        self.affinity = table
        self.needs_source = (table is not None
                             or getattr(self.scheduler, "name", "") in _SOURCE_HASHING)

    def set_backends(self, backends: dict[str, Backend], reschedule: bool = True) -> None:
        """Make ``backends`` the pool's endpoints; ``reschedule=False`` when only the
        objects changed, not the addresses or weights (the scheduler keeps its state)."""
        self.backends = backends
        self._by_dest = {b.dest: b for b in backends.values()}
        if reschedule:
            self.scheduler.update([b.dest for b in backends.values()])

    def pick(self, src_ip: str, src_port: int, dst_ip: str, reset: bool) -> Backend | None:
        """The backend for a new connection: the client's sticky endpoint when affinity is
        on, ``reset`` is false and that endpoint is still in the pool; otherwise the
        scheduler's choice (recorded as the client's sticky endpoint)."""
        aff = self.affinity
        if aff is not None and not reset:
            addr = aff.get(src_ip)
            if addr is not None:
                b = self.backends.get(addr)
                if b is not None:
                    return b  # get() refreshed the entry's last use
        d = self.scheduler.pick(src_ip, src_port, dst_ip)
        if d is None:
            return None
        b = self._by_dest.get(d)
        if b is not None and aff is not None:
            aff.set(src_ip, b.address)
        return b


def in_ranges(ip: str, ranges: Sequence[Network]) -> bool:
    """Whether ``ip`` (an IPv4-mapped IPv6 address counts as IPv4) is in one of ``ranges``."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == net.version and addr in net for net in ranges)


# --- UDP ---------------------------------------------------------------------------------

class _Flow:
    """One client address of a UDP frontend and its connected backend socket."""

    __slots__ = ("frontend", "client", "sock", "fd", "backend", "last", "timer")

    def __init__(self, frontend: UdpFrontend, client: Any, sock: socket.socket,
                 backend: Backend) -> None:
        self.frontend = frontend
        self.client = client
        self.sock = sock
        self.fd = sock.fileno()
        self.backend = backend
        self.last = frontend.clock()
        self.timer: asyncio.TimerHandle | None = None

    def readable(self) -> None:
        fe = self.frontend
        transport = fe.transport
        while True:
            try:
                data = self.sock.recv(UDP_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable from the backend
                fe.close_flow(self)
                return
            self.last = fe.clock()
            self.backend.counters.bytes_out += len(data)
            if transport is not None:
                transport.sendto(data, self.client)

    def check_idle(self) -> None:
        fe = self.frontend
        idle = fe.clock() - self.last
        if idle >= fe.idle_timeout:
            self.timer = None
            fe.close_flow(self)
        else:
            self.timer = fe.loop.call_later(fe.idle_timeout - idle, self.check_idle)


class UdpFrontend(asyncio.DatagramProtocol):
    """One UDP socket of a service port; see the module doc. ``pool``/``ranges`` as for
    :class:`TcpFrontend`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ip: str, port: int, pool: Pool,
                 new_socket: SocketFactory, idle_timeout: float,
                 clock: Callable[[], float]) -> None:
        self.loop = loop
        self.ip, self.port = ip, port
        self.pool = pool
        self.ranges: tuple[Network, ...] = ()
        self.new_socket = new_socket
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[Any, _Flow] = {}

    async def start(self, sock: socket.socket) -> None:
        """Serve on the bound datagram socket ``sock`` (closed on failure)."""
        try:
            await self.loop.create_datagram_endpoint(lambda: self, sock=sock)
        except BaseException:
            sock.close()
            raise

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        flow = self.flows.get(addr)
        if flow is None:
            flow = self._open_flow(addr)
            if flow is None:
                return
        else:
            flow.last = self.clock()
        try:
            flow.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return  # the socket's queue is full: dropped, as the kernel would
        except OSError:
            self.close_flow(flow)
            return
        flow.backend.counters.bytes_in += len(data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors about replies to clients: nothing to do

    def _open_flow(self, addr: Any) -> _Flow | None:
        src_ip, src_port = addr[0], addr[1]
        if self.ranges and not in_ranges(src_ip, self.ranges):
            return None
        for attempt in range(len(DIAL_TIMEOUTS)):
            b = self.pool.pick(src_ip, src_port, self.ip, attempt > 0)
            if b is None:
                return None
            try:
                sock = self.new_socket(b.family, socket.SOCK_DGRAM)
            except OSError:
                return None
            try:
                sock.setblocking(False)
                sock.connect((b.ip, b.port))
            except OSError:
                sock.close()
                continue
            flow = _Flow(self, addr, sock, b)
            self.flows[addr] = flow
            b.dest.inactive += 1
            b.total += 1
            self.loop.add_reader(flow.fd, flow.readable)
            flow.timer = self.loop.call_later(self.idle_timeout, flow.check_idle)
            return flow
        return None

    def close_flow(self, flow: _Flow) -> None:
        if self.flows.get(flow.client) is not flow:
            return
        del self.flows[flow.client]
        flow.backend.dest.inactive -= 1
        if flow.timer is not None:
            flow.timer.cancel()
            flow.timer = None
        self.loop.remove_reader(flow.fd)
        flow.sock.close()

    def close(self) -> None:
        """Close the socket and every flow."""
        for flow in list(self.flows.values()):
            self.close_flow(flow)
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        for flow in list(self.flows.values()):
            self.close_flow(flow)
        self.transport = None
