"""TCP relaying for the userspace dataplane: non-blocking sockets on an edge-triggered
epoll set of their own, driven from the asyncio event loop.

Why not asyncio transports: ``bench/proxy`` measured svcnet relaying through uvloop
``Protocol`` objects at 0.51× haproxy's rate for a new connection per request (88 µs of
CPU per connection against haproxy's 41 µs: two transports' setup, ~24 syscalls, a
coroutine and a future per dial). Relaying here costs about 50 µs and 18 syscalls per
connection (0.85–0.95× haproxy) and keeps keep-alive traffic at the same rate as before.

* :class:`TcpEngine` — one epoll set per dataplane, a relay core (:mod:`._core`: C when
  built, else Python). Its file descriptor is watched by the event loop
  (``loop.add_reader``); each time it is readable the engine polls it without blocking:
  the core relays established pairs itself and returns the other ready descriptors,
  whose registered handlers the engine calls (listeners, dials). Sockets closed
  while a batch of events is being handled are closed after the batch, so a descriptor
  number is never reused for a new socket while stale events for it are pending. Dial
  timeouts are kept in one queue per timeout value (deadlines in a queue are in
  order), each with at most one loop timer.
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
* Relaying, once connected, is the relay core's (the contract is in :mod:`._pyrelay`):
  at most 64 KiB held per direction, so flow control reaches the sender; half-close
  passed on; TCP urgent data not relayed (nor was it by kube-proxy's userspace mode),
  the bytes around it are. When the pair ends both sockets are closed — reset (SO_LINGER
  0) when it ended by an error or reset on either side.
* Counters: ``Backend.dest.inactive`` counts dials in flight, ``dest.active``
  established pairs, ``Backend.total`` pairs ever established; ``Backend.counters``
  (``bytes_in`` read from clients, ``bytes_out`` read from the endpoint) are the core's.

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
from typing import Protocol

from svcnet.proxy.dataplanes._core import Counters, Pair, Relay
from svcnet.proxy.dataplanes._relay import (
    DIAL_TIMEOUTS,
    Backend,
    Network,
    Pool,
    SocketFactory,
    in_ranges,
)

log = logging.getLogger("svcnet.proxy.userspace")

# Connections accepted per readiness event of a listener (it is level-triggered, so the
# rest are accepted on the next round, after other sockets had their turn).
ACCEPT_BATCH = 128
# After EMFILE/ENFILE/ENOBUFS the listener is left alone this long (seconds).
ACCEPT_PAUSE = 0.1

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_ERR = select.EPOLLERR
_HUP = select.EPOLLHUP
_READABLE = _IN | select.EPOLLRDHUP | _HUP
# What a connection's sockets are watched for, from accept/dial on: the relay core takes
# them over as they are once connected (EPOLLPRI: urgent data; see the core's contract).
_WATCH = _IN | _OUT | select.EPOLLRDHUP | select.EPOLLPRI | select.EPOLLET
_LINGER_RST = struct.pack("ii", 1, 0)
_STREAM_NONBLOCK = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
# Every recv/send (here and in the relay cores) passes MSG_DONTWAIT. Accepted descriptors
# are left blocking in the kernel (Python accepts without SOCK_NONBLOCK) but wrapped as
# non-blocking, so no call waits: one ioctl per connection less. Connection sockets are the C-level
# ``_socket.socket`` (no Python-level __init__/close frames). Together: ~2 us of the
# ~53 us of CPU a new connection costs.
_RETRYABLE = (BlockingIOError, InterruptedError)
_NO_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

Handler = Callable[[int], None]


class PairOwner(Protocol):
    """What :meth:`TcpEngine.relay` tells when a pair ends."""

    def relay_ended(self, pair: Pair) -> None: ...


def reset_socket(sock: _socket.socket) -> None:
    """Close ``sock``'s connection with RST (SO_LINGER 0) instead of FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    sock.close()


class TcpEngine:
    """An epoll set whose ready sockets are handled from ``loop`` (see the module doc).

    :meth:`watch` registers a socket edge-triggered (or level-triggered) with a handler
    called with the epoll event mask; :meth:`release` forgets it and closes it (RST
    when ``reset``). :meth:`relay` hands two watched sockets over to the relay core
    until their pair ends (the owner's ``relay_ended(pair)`` is then called).
    :meth:`after` calls back after a delay, cheaply, for dial timeouts.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._epoll = Relay()
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

    def relay(self, client: _socket.socket, server: _socket.socket, counters: Counters,
              owner: PairOwner, client_events: int, server_events: int) -> Pair:
        """Relay the watched ``client`` and ``server`` sockets in the core from now on;
        the events given are those seen on them and not handled yet. Only called while
        a batch is handled (from a handler)."""
        self._handlers.pop(client.fileno(), None)
        self._handlers.pop(server.fileno(), None)
        return self._epoll.pair(client, server, counters, owner, client_events,
                                server_events)

    def discard(self, pair: Pair) -> None:
        """Stop relaying ``pair`` (its owner closes the sockets)."""
        self._epoll.discard(pair)

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
            relay = self._epoll
            for fd, events in relay.poll():
                handler = handlers.get(fd)
                try:
                    if handler is None:
                        # Paired by an earlier handler of this batch (a connect and a
                        # client's data arriving together): the core takes the edge.
                        # Else a closed socket's stale event; ignored.
                        relay.handle(fd, events)
                        continue
                    handler(events)
                except Exception:  # a bug must not stop the other connections
                    log.exception("TCP relay: handling events %#x of fd %d", events, fd)
            for pair in self._epoll.take_finished():
                try:
                    pair.owner.relay_ended(pair)
                except Exception:
                    log.exception("TCP relay: ending a connection")
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


# Connection states.
_DIALING, _RELAYING, _CLOSED = 0, 1, 2


class TcpConnection:
    """An accepted client and, once dialled, its endpoint (see the module doc)."""

    __slots__ = ("frontend", "client", "server", "pair", "backend", "src_ip", "src_port",
                 "state", "attempt", "dial_token", "client_ready")

    def __init__(self, frontend: TcpFrontend, sock: _socket.socket, src_ip: str,
                 src_port: int) -> None:
        self.frontend = frontend
        # All None once closed, so no reference cycle (the pair refers to its owner)
        # outlives the connection: reference counting frees it at once.
        self.client: _socket.socket | None = sock
        self.server: _socket.socket | None = None
        self.pair: Pair | None = None
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
        return self.pair.buffered() if self.pair is not None else 0

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
                self.server = sock
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
        client = self.client
        assert b is not None and client is not None
        b.dest.inactive -= 1
        b.dest.active += 1
        b.total += 1
        self.state = _RELAYING
        self.dial_token += 1
        self.pair = self.frontend.engine.relay(client, server, b.counters, self,
                                               self.client_ready, events)

    def relay_ended(self, pair: Pair) -> None:
        """The relay core ended this connection's pair (both directions done, or an
        error or reset on either side)."""
        if pair is self.pair:
            self._close(pair.reset)

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
        self.frontend.engine.release(server)
        self.server = None
        self.backend = None
        self.dial_token += 1
        self.attempt += 1
        self.dial()

    # --- ending ------------------------------------------------------------------------

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
        b, client, server, pair = self.backend, self.client, self.server, self.pair
        if b is not None:
            if state == _RELAYING:
                b.dest.active -= 1
            else:
                b.dest.inactive -= 1
        if pair is not None and pair.active:
            engine.discard(pair)
        for sock in (client, server):
            if sock is not None:
                engine.release(sock, reset)
        self.client = self.server = self.pair = None


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
