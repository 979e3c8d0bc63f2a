"""TCP relaying for the userspace dataplane: non-blocking sockets on an edge-triggered
epoll set of their own, driven from the asyncio event loop.

Why not asyncio transports: ``bench/proxy`` measured svcnet relaying through uvloop
``Protocol`` objects at 0.51× haproxy's rate for a new connection per request (88 µs of
CPU per connection against haproxy's 41 µs: two transports' setup, ~24 syscalls, a
coroutine and a future per dial). Relaying here costs about 50 µs and 18 syscalls per
connection (0.85–0.95× haproxy) and keeps keep-alive traffic at the same rate as before.

* :class:`TcpEngine` — one epoll set per dataplane. Its file descriptor is watched by the
  event loop (``loop.add_reader``); each time it is readable the engine polls it without
  blocking and calls the handler registered for each ready descriptor. Sockets closed
  while a batch of events is being handled are closed after the batch, so a descriptor
  number is never reused for a new socket while stale events for it are pending. Dial
  timeouts are kept in one queue per timeout value (deadlines in a queue are in
  order), each with at most one loop timer. Reading stops at a short read: on Linux an
  edge-triggered waiter is woken by every new arrival, so a short read leaves nothing
  that no later event would report — except an EOF or urgent mark already queued, so
  events carrying RDHUP, HUP or PRI are read until EAGAIN.
* :class:`TcpFrontend` — one listening socket of a service port: accepts, checks the
  load-balancer source ranges, picks an endpoint (:class:`~._relay.Pool`) and dials it.
* :class:`TcpConnection` — one client connection and its endpoint connection.

Connection contract (what the tests in ``tests/proxy/test_userspace.py`` hold):

* Dialling: the endpoint socket connects without blocking; each attempt has its own
  timeout (kube-proxy's 0.25, 0.5, 1 and 2 s). A refused, failed or timed-out attempt
  moves on to a newly picked endpoint (affinity reset); after the last one the client
  is reset (RST). While dialling, what the client sends stays in its socket's receive
  buffer (so TCP flow control holds it back), EOF included; it is relayed once
  connected.
* Relaying: bytes read from one side are written to the other at once; what the other
  side cannot take yet is kept (at most one read, :data:`READ_SIZE`) and that side is
  not read again until it is written — so each direction holds at most 64 KiB in the
  proxy and flow control reaches the sender.
* Half-close: an EOF read from one side is passed on as ``shutdown(SHUT_WR)`` of the
  other once its pending bytes are written; when both directions have ended both
  sockets are closed.
* Errors: a reset or error on either side resets both (SO_LINGER 0, then close).
* TCP urgent data is not relayed (nor was it by kube-proxy's userspace mode); the bytes
  around it are.
* Counters: ``Backend.dest.inactive`` counts dials in flight, ``dest.active``
  established pairs, ``Backend.total`` pairs ever established, ``bytes_in`` bytes read
  from clients, ``bytes_out`` bytes read from the endpoint.

Everything here runs on the event loop's thread and is not thread-safe.
"""

from __future__ import annotations

import _socket
import asyncio
import collections
import contextlib
import errno
import logging
import select
import socket
import struct
from collections.abc import Callable, Sequence

from svcnet.proxy.dataplanes._relay import (
    DIAL_TIMEOUTS,
    Backend,
    Network,
    Pool,
    SocketFactory,
    in_ranges,
)

log = logging.getLogger("svcnet.proxy.userspace")

# One recv() reads at most this much; also the most a direction keeps while its
# destination is full.
READ_SIZE = 1 << 16
# Connections accepted per readiness event of a listener (it is level-triggered, so the
# rest are accepted on the next round, after other sockets had their turn).
ACCEPT_BATCH = 128
# After EMFILE/ENFILE/ENOBUFS the listener is left alone this long (seconds).
ACCEPT_PAUSE = 0.1

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_ERR = select.EPOLLERR
_HUP = select.EPOLLHUP
_RDHUP = select.EPOLLRDHUP
_READABLE = _IN | _RDHUP | _HUP
# EPOLLPRI: urgent data. A read stops at the urgent mark, so a short read is not an
# empty socket then; such events are read until EAGAIN, like an EOF.
_ENDED = _RDHUP | _HUP | select.EPOLLPRI
_WATCH = _IN | _OUT | _RDHUP | select.EPOLLPRI | select.EPOLLET
_LINGER_RST = struct.pack("ii", 1, 0)
_STREAM_NONBLOCK = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
# Every recv/send here passes MSG_DONTWAIT. Accepted descriptors are left blocking in
# the kernel (Python accepts without SOCK_NONBLOCK) but wrapped as non-blocking, so no
# call waits: one ioctl per connection less. Connection sockets are the C-level
# ``_socket.socket`` (no Python-level __init__/close frames). Together: ~2 us of the
# ~53 us of CPU a new connection costs.
_RETRYABLE = (BlockingIOError, InterruptedError)
_DONTWAIT = socket.MSG_DONTWAIT
_NO_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

Handler = Callable[[int], None]


def reset_socket(sock: _socket.socket) -> None:
    """Close ``sock``'s connection with RST (SO_LINGER 0) instead of FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    sock.close()


class TcpEngine:
    """An epoll set whose ready sockets are handled from ``loop`` (see the module doc).

    :meth:`watch` registers a socket edge-triggered (or level-triggered) with a handler
    called with the epoll event mask; :meth:`release` forgets it and closes it (RST
    when ``reset``). :meth:`after` calls back after a delay, cheaply, for dial timeouts.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._epoll = select.epoll()
        self._handlers: dict[int, Handler] = {}
        self._in_batch = False
        self._closing: list[tuple[_socket.socket, bool]] = []
        self._timeouts: dict[float, _TimeoutQueue] = {}
        loop.add_reader(self._epoll.fileno(), self._run)

    def watch(self, sock: _socket.socket, handler: Handler, mask: int = _WATCH) -> None:
        fd = sock.fileno()
        self._epoll.register(fd, mask)
        self._handlers[fd] = handler

    def handle(self, sock: _socket.socket, handler: Handler) -> None:
        """Give the watched ``sock`` a new handler."""
        self._handlers[sock.fileno()] = handler

    def unwatch(self, sock: _socket.socket) -> None:
        """Stop handling ``sock`` without closing it."""
        fd = sock.fileno()
        if self._handlers.pop(fd, None) is not None:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)

    def release(self, sock: _socket.socket, reset: bool = False) -> None:
        """Forget ``sock`` and close it (with RST when ``reset``); during a batch the
        close waits for the batch's end."""
        fd = sock.fileno()
        if fd < 0:
            return
        self._handlers.pop(fd, None)  # closing removes it from the epoll set
        if self._in_batch:
            self._closing.append((sock, reset))
        elif reset:
            reset_socket(sock)
        else:
            sock.close()

    def after(self, delay: float, callback: Callable[[int], None], token: int) -> None:
        """Call ``callback(token)`` about ``delay`` seconds from now. There is no cancel:
        callbacks check whether the token still means something."""
        q = self._timeouts.get(delay)
        if q is None:
            q = self._timeouts[delay] = _TimeoutQueue(self.loop, delay)
        q.add(callback, token)

    def _run(self) -> None:
        handlers = self._handlers
        self._in_batch = True
        try:
            for fd, events in self._epoll.poll(0):
                handler = handlers.get(fd)
                if handler is None:
                    continue
                try:
                    handler(events)
                except Exception:  # a bug must not stop the other connections
                    log.exception("TCP relay: handling events %#x of fd %d", events, fd)
        finally:
            self._in_batch = False
            closing, self._closing = self._closing, []
            for sock, reset in closing:
                if reset:
                    reset_socket(sock)
                else:
                    sock.close()

    def close(self) -> None:
        """Stop handling events; sockets still registered are left to their owners."""
        self.loop.remove_reader(self._epoll.fileno())
        for q in self._timeouts.values():
            q.cancel()
        self._timeouts.clear()
        self._handlers.clear()
        self._epoll.close()


class _TimeoutQueue:
    """Callbacks due ``delay`` seconds after they were added, in order, with at most one
    loop timer armed (for the oldest)."""

    __slots__ = ("loop", "delay", "entries", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self.loop = loop
        self.delay = delay
        self.entries: collections.deque[tuple[float, Callable[[int], None], int]] = (
            collections.deque())
        self.timer: asyncio.TimerHandle | None = None

    def add(self, callback: Callable[[int], None], token: int) -> None:
        due = self.loop.time() + self.delay
        self.entries.append((due, callback, token))
        if self.timer is None:
            self.timer = self.loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self.timer = None
        entries = self.entries
        now = self.loop.time()
        while entries and entries[0][0] <= now:
            _, callback, token = entries.popleft()
            try:
                callback(token)
            except Exception:
                log.exception("TCP relay: dial timeout callback")
        if entries and self.timer is None:  # a callback's add() may have armed it
            self.timer = self.loop.call_at(entries[0][0], self._fire)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.entries.clear()


class _Side:
    """One socket of a :class:`TcpConnection`. ``backlog`` holds bytes read from the
    peer that this socket could not take yet; while it is set the peer is not read.
    ``eof``: this socket's peer ended its sending (recv returned nothing)."""

    __slots__ = ("conn", "sock", "peer", "backlog", "eof", "is_client")

    def __init__(self, conn: TcpConnection, sock: _socket.socket, is_client: bool) -> None:
        self.conn = conn
        self.sock = sock
        self.peer: _Side | None = None
        self.backlog: bytes | None = None
        self.eof = False
        self.is_client = is_client

    def on_event(self, events: int) -> None:
        """Relaying: write what waits for this socket, then read what it has."""
        conn = self.conn
        if events & _ERR:
            conn.abort()
            return
        if self.backlog is not None and events & _OUT:
            self.flush()
            if conn.closed:
                return
        if events & _READABLE and not self.eof and self.peer.backlog is None:  # type: ignore[union-attr]
            self.pump(events & _ENDED)

    def pump(self, drain: int | bool) -> None:
        """Read this socket and write to the peer until the socket is empty (a short
        read, or EAGAIN when ``drain``), the peer is full, or EOF."""
        peer = self.peer
        assert peer is not None
        src, dst = self.sock, peer.sock
        conn = self.conn
        backend = conn.backend
        while True:
            try:
                data = src.recv(READ_SIZE, _DONTWAIT)
            except _RETRYABLE:
                return
            except OSError:
                conn.abort()
                return
            n = len(data)
            if not n:
                self.eof = True
                if peer.backlog is None:
                    conn.direction_ended(self)
                return
            if self.is_client:
                backend.bytes_in += n  # type: ignore[union-attr]
            else:
                backend.bytes_out += n  # type: ignore[union-attr]
            try:
                sent = dst.send(data, _DONTWAIT)
            except _RETRYABLE:
                sent = 0
            except OSError:
                conn.abort()
                return
            if sent < n:
                peer.backlog = data[sent:]
                return
            if n < READ_SIZE and not drain:
                return  # a short read emptied the socket; more data is a new edge

    def flush(self) -> None:
        """Write the backlog; once it is all written, read the peer again (or pass its
        EOF on)."""
        data = self.backlog
        assert data is not None
        try:
            sent = self.sock.send(data, _DONTWAIT)
        except _RETRYABLE:
            return
        except OSError:
            self.conn.abort()
            return
        if sent < len(data):
            self.backlog = data[sent:]
            return
        self.backlog = None
        src = self.peer
        assert src is not None
        if src.eof:
            self.conn.direction_ended(src)
        else:
            src.pump(True)


# Connection states.
_DIALING, _RELAYING, _CLOSED = 0, 1, 2


class TcpConnection:
    """An accepted client and, once dialled, its endpoint (see the module doc)."""

    __slots__ = ("frontend", "client", "server", "backend", "src_ip", "src_port",
                 "state", "attempt", "dial_token", "client_ready")

    def __init__(self, frontend: TcpFrontend, sock: _socket.socket, src_ip: str,
                 src_port: int) -> None:
        self.frontend = frontend
        # Both None once closed, so nothing refers back to a closed connection and
        # reference counting frees it at once (no cyclic garbage for the collector).
        self.client: _Side | None = _Side(self, sock, True)
        self.server: _Side | None = None
        self.backend: Backend | None = None
        self.src_ip = src_ip
        self.src_port = src_port
        self.state = _DIALING
        self.attempt = 0
        self.dial_token = 0
        # Events the client's socket had while dialling (read it once connected).
        self.client_ready = 0

    @property
    def closed(self) -> bool:
        return self.state == _CLOSED

    def buffered(self) -> int:
        """Bytes the proxy holds for this connection (both directions)."""
        return sum(len(side.backlog or b"") for side in (self.client, self.server)
                   if side is not None)

    # --- dialling ----------------------------------------------------------------------

    def dial(self) -> None:
        """Dial attempt ``self.attempt`` to a newly picked endpoint; when none is left
        (or every attempt failed at once) the client is reset."""
        fe = self.frontend
        timeouts = fe.timeouts
        while self.attempt < len(timeouts):
            b = fe.pool.pick(self.src_ip, self.src_port, fe.ip, self.attempt > 0)
            if b is None:
                break
            sock = self._connect(b)
            if sock is not None:
                try:
                    fe.engine.watch(sock, self._on_server_dialing)
                except OSError as e:  # e.g. ENOSPC: out of epoll watches
                    log.warning("TCP relay: cannot watch a socket to %s: %s", b.address, e)
                    sock.close()
                    break
                self.backend = b
                self.server = _Side(self, sock, False)
                b.dest.inactive += 1
                self.dial_token += 1
                fe.engine.after(timeouts[self.attempt], self._dial_timed_out,
                                self.dial_token)
                return
            self.attempt += 1
        self.abort()

    def _connect(self, b: Backend) -> _socket.socket | None:
        """A socket connecting (or connected) to ``b``, or None when that failed."""
        fe = self.frontend
        try:
            # Loopback endpoints (the API server behind ``kubernetes``) live in this
            # process's namespace, the others in the node's.
            if fe.new_socket is None or b.ip.startswith("127.") or b.ip == "::1":
                sock = _socket.socket(b.family, _STREAM_NONBLOCK)
            else:
                sock = fe.new_socket(b.family, _STREAM_NONBLOCK)
        except OSError as e:
            log.warning("TCP relay: cannot create a socket for %s: %s", b.address, e)
            return None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex((b.ip, b.port))
        except OSError:
            err = -1
        if err in (0, errno.EINPROGRESS):
            return sock
        sock.close()
        return None

    def _on_server_dialing(self, events: int) -> None:
        server = self.server
        assert server is not None
        if events & (_ERR | _HUP):
            self._dial_failed()
            return
        if not events & _OUT:
            return
        # Connected.
        b = self.backend
        assert b is not None
        b.dest.inactive -= 1
        b.dest.active += 1
        b.total += 1
        self.state = _RELAYING
        self.dial_token += 1
        client = self.client
        assert client is not None
        client.peer, server.peer = server, client
        engine = self.frontend.engine
        engine.handle(server.sock, server.on_event)
        engine.handle(client.sock, client.on_event)
        if self.client_ready:
            client.pump(self.client_ready & _ENDED)
            if self.state != _RELAYING:
                return
        if events & _READABLE and client.backlog is None:  # client can take more
            server.pump(events & _ENDED)

    def _on_client_dialing(self, events: int) -> None:
        if events & _ERR:
            self.abort()
        elif events & _READABLE:
            self.client_ready |= events

    def _dial_timed_out(self, token: int) -> None:
        if self.state == _DIALING and token == self.dial_token:
            self._dial_failed()

    def _dial_failed(self) -> None:
        b, server = self.backend, self.server
        assert b is not None and server is not None
        b.dest.inactive -= 1
        self.frontend.engine.release(server.sock)
        self.server = None
        self.backend = None
        self.dial_token += 1
        self.attempt += 1
        self.dial()

    # --- ending ------------------------------------------------------------------------

    def direction_ended(self, src: _Side) -> None:
        """``src`` reached EOF and everything read from it was written: end the other
        socket's sending side, or close both when the other direction ended too."""
        dst = src.peer
        assert dst is not None
        if dst.eof and src.backlog is None:
            self._close(False)
            return
        try:
            dst.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.abort()

    def abort(self) -> None:
        """Reset both sockets (the endpoint's too if it is dialling or connected)."""
        self._close(True)

    def _close(self, reset: bool) -> None:
        state = self.state
        if state == _CLOSED:
            return
        self.state = _CLOSED
        self.dial_token += 1
        engine = self.frontend.engine
        self.frontend.clients.discard(self)
        b, client, server = self.backend, self.client, self.server
        if b is not None:
            if state == _RELAYING:
                b.dest.active -= 1
            else:
                b.dest.inactive -= 1
        for side in (client, server):
            if side is not None:
                engine.release(side.sock, reset)
                side.peer = None
        self.client = self.server = None


class TcpFrontend:
    """One TCP listening socket of a service port.

    ``pool`` and ``ranges`` may be replaced by the dataplane at any time; connections
    already established keep their endpoint. ``ranges`` (load-balancer source ranges)
    is empty for "any client"; a client outside every range is reset at once.
    ``clients`` holds every accepted connection not yet closed (dialling or relaying).
    ``new_socket`` makes endpoint sockets (in the node's namespace); None dials from
    this process's namespace.
    """

    __slots__ = ("engine", "ip", "port", "pool", "ranges", "new_socket", "timeouts",
                 "sock", "clients", "_pause")

    def __init__(self, engine: TcpEngine, ip: str, port: int, pool: Pool,
                 new_socket: SocketFactory | None,
                 timeouts: Sequence[float] = DIAL_TIMEOUTS) -> None:
        self.engine = engine
        self.ip, self.port = ip, port
        self.pool = pool
        self.ranges: tuple[Network, ...] = ()
        self.new_socket = new_socket
        self.timeouts = tuple(timeouts)
        self.sock: _socket.socket | None = None
        self.clients: set[TcpConnection] = set()
        self._pause: asyncio.TimerHandle | None = None

    def listen(self, sock: _socket.socket) -> None:
        """Serve on ``sock``, bound and listening (and owned from now on)."""
        sock.setblocking(False)
        # Accepted sockets inherit TCP_NODELAY (one setsockopt less per connection).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.engine.watch(sock, self._on_listener, _IN)

    def _on_listener(self, events: int) -> None:
        ls = self.sock
        if ls is None:
            return
        family = ls.family
        engine = self.engine
        for _ in range(ACCEPT_BATCH):
            try:
                fd, addr = ls._accept()  # type: ignore[attr-defined]
            except _RETRYABLE:
                return
            except OSError as e:
                if e.errno in _NO_RESOURCES:
                    log.warning("TCP relay: accepting on %s:%s: %s; pausing %.1f s",
                                self.ip, self.port, e, ACCEPT_PAUSE)
                    engine.unwatch(ls)
                    self._pause = engine.loop.call_later(ACCEPT_PAUSE, self._resume)
                    return
                continue  # ECONNABORTED and the like concern that one client
            sock = _socket.socket(family, _STREAM_NONBLOCK, 0, fd)
            if self.ranges and not in_ranges(addr[0], self.ranges):
                reset_socket(sock)
                continue
            conn = TcpConnection(self, sock, addr[0], addr[1])
            try:
                engine.watch(sock, conn._on_client_dialing)
            except OSError as e:  # e.g. ENOSPC: out of epoll watches
                log.warning("TCP relay: cannot watch a client of %s:%s: %s",
                            self.ip, self.port, e)
                reset_socket(sock)
                continue
            self.clients.add(conn)
            conn.dial()

    def _resume(self) -> None:
        self._pause = None
        if self.sock is not None:
            self.engine.watch(self.sock, self._on_listener, _IN)

    def close_listener(self) -> None:
        """Stop accepting; established connections and dials in flight go on."""
        if self._pause is not None:
            self._pause.cancel()
            self._pause = None
        if self.sock is not None:
            self.engine.unwatch(self.sock)
            self.engine.release(self.sock)
            self.sock = None

    def abort_all(self) -> None:
        """Stop accepting and reset every connection of this frontend."""
        self.close_listener()
        for conn in list(self.clients):
            conn.abort()
