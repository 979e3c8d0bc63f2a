"""The byte-moving half of the userspace dataplane: TCP connection pairs and UDP flows.

Objects here are created and driven by :mod:`svcnet.proxy.dataplanes.userspace`; all of
them live on one event loop thread and are not thread-safe.

* :class:`Backend` — one endpoint of a service port: the scheduler's ``Destination`` (whose
  counters this module keeps true, as IPVS does: ``active`` counts established TCP pairs,
  ``inactive`` TCP dials in flight and open UDP flows) plus traffic counters.
* :class:`Pool` — the endpoints a frontend picks from (one per kind of frontend —
  ClusterIP: *internal*, NodePort/LB/externalIP: *external* — and address family), with
  the scheduler and the service port's ClientIP affinity table.
* :class:`TcpFrontend` — one listening socket. Until a backend connection exists, what a
  client sends is held (reading pauses past :data:`EARLY_LIMIT` bytes) and forwarded
  on connect. Dials follow kube-proxy's userspace backoff (:data:`DIAL_TIMEOUTS`, each
  failure moving on to a newly picked endpoint with affinity reset); after the last
  failure the client is reset (RST). Established pairs relay bytes with flow control
  (a side whose peer's write buffer is full stops being read until it drains) and
  half-close (an EOF is passed on as ``write_eof``; both transports close once both
  directions ended), and close both sides when either fails.
* :class:`UdpFrontend` — one datagram socket with a flow per client address: a connected
  socket to the picked backend, replies sent back from the frontend socket, closed after
  ``idle_timeout`` seconds without a packet in either direction.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from svcnet.proxy.affinity import AffinityTable
from svcnet.proxy.schedulers import Destination, Scheduler

# kube-proxy's EndpointDialTimeouts: one dial per entry, each to a freshly picked endpoint.
DIAL_TIMEOUTS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
UDP_READ_SIZE = 65535
# Bytes a client may send before its backend is connected until reading pauses.
EARLY_LIMIT = 1 << 16
_LINGER_RST = struct.pack("ii", 1, 0)


SocketFactory = Callable[[int, int], socket.socket]


def family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


class Backend:
    """One endpoint of a service port and its counters.

    ``total`` counts established TCP connections (UDP: flows) ever made to it,
    ``bytes_in`` bytes relayed from clients to it, ``bytes_out`` bytes relayed from it
    back to clients. ``dest.active`` is the number of TCP pairs established right now,
    ``dest.inactive`` the dials in flight plus open UDP flows.
    """

    __slots__ = ("dest", "ip", "port", "address", "family", "target", "total",
                 "bytes_in", "bytes_out")

    def __init__(self, dest: Destination, target: str = "") -> None:
        self.dest = dest
        self.ip: str = dest.ip
        self.port: int = dest.port
        self.address: str = dest.address
        self.family = family_of(self.ip)
        self.target = target
        self.total = 0
        self.bytes_in = 0
        self.bytes_out = 0

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


def reset_transport(transport: Any) -> None:
    """Close ``transport``'s TCP connection with RST (SO_LINGER 0) instead of FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    transport.abort()


# --- TCP ---------------------------------------------------------------------------------

class _ClientSide(asyncio.Protocol):
    """The accepted client connection; ``out`` is the backend's transport once connected.

    Until then, data the client sends is kept in ``early`` (reading pauses once more than
    :data:`EARLY_LIMIT` bytes are kept) and an EOF in ``eof``; both are forwarded on
    connect.
    """

    __slots__ = ("frontend", "transport", "out", "peer", "backend", "eof", "closed", "early",
                 "early_size", "src_ip", "src_port", "dialing")

    def __init__(self, frontend: TcpFrontend) -> None:
        self.frontend = frontend
        self.transport: Any = None
        self.out: Any = None
        self.peer: _BackendSide | None = None
        self.backend: Backend | None = None
        self.eof = False
        self.closed = False
        self.early: list[bytes] = []
        self.early_size = 0
        self.src_ip = ""
        self.src_port = 0
        self.dialing: asyncio.Future[Any] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.frontend.accepted(self)

    def data_received(self, data: bytes) -> None:
        out = self.out
        if out is None:
            self.early.append(data)
            self.early_size += len(data)
            if self.early_size > EARLY_LIMIT:
                self.transport.pause_reading()
            return
        out.write(data)
        self.backend.bytes_in += len(data)  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None:
            return True  # not connected yet: forwarded on connect
        if peer.closed:
            return False
        if peer.eof:
            self.transport.close()
            self.out.close()
            return True
        self.out.write_eof()
        return True

    def connected(self, transport: Any, side: _BackendSide, backend: Backend) -> None:
        """The backend is connected: forward what arrived early and start relaying."""
        self.backend = backend
        self.out = transport
        self.peer = side
        if self.early:
            for data in self.early:
                transport.write(data)
            backend.bytes_in += self.early_size
            if self.early_size > EARLY_LIMIT and not self.eof:
                self.transport.resume_reading()
            self.early = []
        if self.eof:
            transport.write_eof()

    def pause_writing(self) -> None:
        # The client is slower than the backend: stop reading the backend.
        if self.out is not None:
            self.out.pause_reading()

    def resume_writing(self) -> None:
        out = self.out
        if out is not None and not out.is_closing():
            out.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.frontend.clients.discard(self)
        if self.dialing is not None:
            self.dialing.cancel()
        peer = self.peer
        if peer is not None and not peer.closed:
            if exc is None:
                self.out.close()
            else:
                self.out.abort()


class _BackendSide(asyncio.Protocol):
    """The dialled backend connection; ``out`` is the client's transport."""

    __slots__ = ("client", "backend", "transport", "out", "eof", "closed", "counted")

    def __init__(self, client: _ClientSide, backend: Backend) -> None:
        self.client = client
        self.backend = backend
        self.transport: Any = None
        self.out: Any = client.transport
        self.eof = False
        self.closed = False
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.out.write(data)
        self.backend.bytes_out += len(data)

    def eof_received(self) -> bool:
        self.eof = True
        client = self.client
        if client.closed:
            return False
        if client.eof:
            self.transport.close()
            self.out.close()
            return True
        self.out.write_eof()
        return True

    def pause_writing(self) -> None:
        # The backend is slower than the client: stop reading the client.
        self.out.pause_reading()

    def resume_writing(self) -> None:
        out = self.out
        if not out.is_closing():
            out.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.counted:
            self.counted = False
            self.backend.dest.active -= 1
        client = self.client
        if not client.closed and client.peer is self:
            if exc is None:
                self.out.close()
            else:
                self.out.abort()


class TcpFrontend:
    """One TCP listening socket of a service port.

    ``pool`` and ``ranges`` may be replaced by the dataplane at any time; connections
    already established keep their backend. ``ranges`` (load-balancer source ranges) is
    empty for "any client"; a client outside every range is reset at once. ``clients``
    holds every accepted connection not yet closed (dialling or relaying).

    Dialling is callback driven (no coroutine per connection): each attempt is one task
    running the loop's ``create_connection``, cancelled by a timer after that attempt's
    timeout; its done callback relays, retries with the next timeout or resets the client.
    """

    __slots__ = ("loop", "ip", "port", "pool", "ranges", "new_socket", "timeouts",
                 "server", "clients")

    def __init__(self, loop: asyncio.AbstractEventLoop, ip: str, port: int, pool: Pool,
                 new_socket: SocketFactory | None,
                 timeouts: Sequence[float] = DIAL_TIMEOUTS) -> None:
        self.loop = loop
        self.ip, self.port = ip, port
        self.pool = pool
        self.ranges: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
        # None: dial from this process's own namespace (create_connection with an IP
        # literal never resolves names); otherwise sockets come from this factory.
        self.new_socket = new_socket
        self.timeouts = tuple(timeouts)
        self.server: asyncio.AbstractServer | None = None
        self.clients: set[_ClientSide] = set()

    async def start(self, sock: socket.socket, backlog: int) -> None:
        """Serve on the bound, listening socket ``sock`` (closed on failure)."""
        try:
            self.server = await self.loop.create_server(self._accept, sock=sock,
                                                        backlog=backlog)
        except BaseException:
            sock.close()
            raise

    def _accept(self) -> _ClientSide:
        return _ClientSide(self)

    def accepted(self, client: _ClientSide) -> None:
        """A client connected: check its source, then dial."""
        self.clients.add(client)
        if self.ranges or self.pool.needs_source:
            peer = client.transport.get_extra_info("peername")
            if peer:
                client.src_ip, client.src_port = peer[0], peer[1]
            if self.ranges and not _in_ranges(client.src_ip, self.ranges):
                reset_transport(client.transport)
                return
        self._dial(client, 0)

    def _dial(self, client: _ClientSide, attempt: int) -> None:
        b = self.pool.pick(client.src_ip, client.src_port, self.ip, attempt > 0)
        if b is None:
            reset_transport(client.transport)
            return
        loop = self.loop
        b.dest.inactive += 1
        factory = partial(_BackendSide, client, b)
        if self.new_socket is None or b.ip.startswith("127.") or b.ip == "::1":
            # Loopback endpoints (the API server behind ``kubernetes``) live in the
            # host's namespace, where this process is.
            task = loop.create_task(loop.create_connection(factory, b.ip, b.port,
                                                           family=b.family))
        else:
            task = loop.create_task(self._connect_socket(factory, b))
        client.dialing = task
        timer = loop.call_later(self.timeouts[attempt], task.cancel)
        task.add_done_callback(partial(self._dialed, client, b, attempt, timer))

    async def _connect_socket(self, factory: Callable[[], _BackendSide], b: Backend
                              ) -> tuple[Any, _BackendSide]:
        sock = self.new_socket(b.family, socket.SOCK_STREAM)  # type: ignore[misc]
        try:
            sock.setblocking(False)
            await self.loop.sock_connect(sock, (b.ip, b.port))
            return await self.loop.create_connection(factory, sock=sock)
        except BaseException:
            sock.close()
            raise

    def _dialed(self, client: _ClientSide, b: Backend, attempt: int,
                timer: asyncio.TimerHandle, task: asyncio.Future[Any]) -> None:
        timer.cancel()
        b.dest.inactive -= 1
        client.dialing = None
        if task.cancelled() or task.exception() is not None:
            if client.closed:
                return
            if attempt + 1 < len(self.timeouts):
                self._dial(client, attempt + 1)
            else:
                reset_transport(client.transport)
            return
        transport, side = task.result()
        b.dest.active += 1
        side.counted = True
        b.total += 1
        if client.closed:
            transport.close()
            return
        client.connected(transport, side, b)

    def close_listener(self) -> None:
        """Stop accepting; established connections and dials in flight go on."""
        if self.server is not None:
            self.server.close()
            self.server = None

    def abort_all(self) -> None:
        """Stop accepting and abort every connection of this frontend."""
        self.close_listener()
        for client in list(self.clients):
            if client.dialing is not None:
                client.dialing.cancel()
            if client.peer is not None and not client.peer.closed:
                client.peer.transport.abort()
            if client.transport is not None:
                client.transport.abort()


def _in_ranges(ip: str, ranges: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
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
            self.backend.bytes_out += len(data)
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
        self.ranges: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
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
        flow.backend.bytes_in += len(data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors about replies to clients: nothing to do

    def _open_flow(self, addr: Any) -> _Flow | None:
        src_ip, src_port = addr[0], addr[1]
        if self.ranges and not _in_ranges(src_ip, self.ranges):
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
