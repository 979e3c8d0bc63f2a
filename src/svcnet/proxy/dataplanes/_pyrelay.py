"""The relay core in pure Python: an epoll set that relays established connection pairs
itself and hands every other descriptor's events back to its caller.

:mod:`svcnet.proxy.dataplanes._relaycore` is the same contract in C, used when it was
built (``bench/proxy`` measured this module at 0.88–0.90× haproxy's keep-alive rate, all
of the gap Python's own time per event); :mod:`svcnet.proxy.dataplanes._core` picks one.
``tests/proxy/test_relaycore.py`` runs the same cases against both.

Contract:

* :class:`Relay` — ``register(fd, mask)`` / ``unregister(fd)`` watch a descriptor whose
  events :meth:`Relay.poll` returns as ``[(fd, events)]``. ``pair(client, server, counters,
  owner, client_events, server_events)`` takes two registered, edge-triggered sockets (mask including IN, OUT, RDHUP and PRI) over: from then on :meth:`Relay.poll`
  relays them itself. ``client_events``/``server_events`` are the events the caller saw on
  them and did not handle; they are acted on at once. An event :meth:`Relay.poll`
  returned for a descriptor paired later in the same batch (the edge is gone) must be
  given back with ``handle(fd, events)``. ``take_finished()`` returns the pairs that
  ended since the last call; ``discard(pair)`` stops relaying a pair without reporting
  it (``reset`` stays false), as ``close()`` does for every active pair; a closed relay
  refuses further use with ValueError. Descriptors are never closed or unregistered by the relay: the owner
  closes both sockets of an ended pair, and events that arrive for them before then are
  returned by :meth:`Relay.poll` like any unpaired descriptor's.
* Relaying: bytes read from one side are written to the other at once; what the other
  side cannot take yet is kept (at most one read, :data:`READ_SIZE`) and that side is
  not read again until it is written — so each direction holds at most 64 KiB and flow
  control reaches the sender. Reading stops at a short read (on Linux an edge-triggered
  waiter is woken by every new arrival), except for events carrying RDHUP, HUP or PRI (an
  EOF or the urgent mark stops a read short), which are read until EAGAIN. TCP urgent
  data itself is not relayed; the bytes around it are.
* Half-close: an EOF read from one side is passed on as ``shutdown(SHUT_WR)`` of the
  other once its pending bytes are written; when both directions have ended the pair
  ends (``reset`` false).
* Errors: an error or reset on either side ends the pair with ``reset`` true (the owner
  then resets both sockets).
* :class:`Counters` — ``bytes_in`` (read from clients) and ``bytes_out`` (read from the
  endpoint), added to as bytes are read.

Not thread-safe: everything runs on the event loop's thread.
"""

from __future__ import annotations

import _socket
import select
import socket
from typing import Any

READ_SIZE = 1 << 16

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_ERR = select.EPOLLERR
_READABLE = _IN | select.EPOLLRDHUP | select.EPOLLHUP
_ENDED = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLPRI
_RETRYABLE = (BlockingIOError, InterruptedError)
_DONTWAIT = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL


class Counters:
    """Byte counters of one endpoint, added to by the relay."""

    __slots__ = ("bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0


class _Side:
    """One socket of a :class:`Pair`. ``backlog`` holds bytes read from the peer that this
    socket could not take yet; while it is set the peer is not read. ``eof``: recv() on
    this socket returned nothing. Sides refer to nothing but their socket, so a pair
    makes no reference cycle."""

    __slots__ = ("sock", "backlog", "eof", "is_client")

    def __init__(self, sock: _socket.socket, is_client: bool) -> None:
        self.sock = sock  # the owner's; never closed here
        self.backlog: bytes | None = None
        self.eof = False
        self.is_client = is_client


class Pair:
    """A client socket and its endpoint socket relayed by a :class:`Relay`."""

    __slots__ = ("relay", "client", "server", "counters", "owner", "active", "reset")

    def __init__(self, relay: Relay, client: _socket.socket, server: _socket.socket,
                 counters: Counters, owner: Any) -> None:
        self.relay: Relay | None = relay
        self.client = _Side(client, True)
        self.server = _Side(server, False)
        self.counters = counters
        self.owner = owner
        self.active = True
        self.reset = False

    def buffered(self) -> int:
        """Bytes held for this pair (both directions)."""
        return len(self.client.backlog or b"") + len(self.server.backlog or b"")

    def on_event(self, side: _Side, events: int) -> None:
        if events & _ERR:
            self.end(True)
            return
        if side.backlog is not None and events & _OUT:
            self.flush(side)
            if not self.active:
                return
        peer = self.server if side is self.client else self.client
        if events & _READABLE and not side.eof and peer.backlog is None:
            self.pump(side, events & _ENDED)

    def pump(self, src: _Side, drain: int | bool) -> None:
        """Read ``src`` and write to its peer until ``src`` is empty (a short read, or
        EAGAIN when ``drain``), the peer is full, or EOF."""
        dst = self.server if src is self.client else self.client
        rsock, wsock = src.sock, dst.sock
        counters = self.counters
        while True:
            try:
                data = rsock.recv(READ_SIZE, _DONTWAIT)
            except _RETRYABLE:
                return
            except OSError:
                self.end(True)
                return
            n = len(data)
            if not n:
                src.eof = True
                if dst.backlog is None:
                    self.direction_ended(src)
                return
            if src.is_client:
                counters.bytes_in += n
            else:
                counters.bytes_out += n
            try:
                sent = wsock.send(data, _DONTWAIT)
            except _RETRYABLE:
                sent = 0
            except OSError:
                self.end(True)
                return
            if sent < n:
                dst.backlog = data[sent:]
                return
            if n < READ_SIZE and not drain:
                return  # a short read emptied the socket; more data is a new edge

    def flush(self, dst: _Side) -> None:
        """Write ``dst``'s backlog; once it is all written, read its peer again (or pass
        the peer's EOF on)."""
        data = dst.backlog
        assert data is not None
        try:
            sent = dst.sock.send(data, _DONTWAIT)
        except _RETRYABLE:
            return
        except OSError:
            self.end(True)
            return
        if sent < len(data):
            dst.backlog = data[sent:]
            return
        dst.backlog = None
        src = self.server if dst is self.client else self.client
        if src.eof:
            self.direction_ended(src)
        else:
            self.pump(src, True)

    def direction_ended(self, src: _Side) -> None:
        """``src`` reached EOF and everything read from it was written: end the other
        socket's sending side, or the pair when the other direction ended too."""
        dst = self.server if src is self.client else self.client
        if dst.eof and src.backlog is None:
            self.end(False)
            return
        try:
            dst.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.end(True)

    def end(self, reset: bool, report: bool = True) -> None:
        relay = self.relay
        if not self.active or relay is None:
            return
        self.active = False
        self.reset = reset
        self.relay = None
        for side in (self.client, self.server):
            relay.sides.pop(side.sock.fileno(), None)
            side.backlog = None
        if report:
            relay.finished.append(self)


class Relay:
    """An epoll set whose paired sockets it relays itself (see the module doc)."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        # fd -> (pair, side) of every active pair's two sockets.
        self.sides: dict[int, tuple[Pair, _Side]] = {}
        self.finished: list[Pair] = []

    def fileno(self) -> int:
        return self._epoll.fileno()

    def register(self, fd: int, mask: int) -> None:
        self._epoll.register(fd, mask)

    def unregister(self, fd: int) -> None:
        if fd in self.sides:
            raise ValueError("descriptor belongs to an active pair")
        self._epoll.unregister(fd)

    def pair(self, client: _socket.socket, server: _socket.socket, counters: Counters,
             owner: Any, client_events: int, server_events: int) -> Pair:
        self._check()
        client_fd, server_fd = client.fileno(), server.fileno()
        if client_fd < 0 or server_fd < 0 or client_fd == server_fd:
            raise ValueError("two distinct open descriptors are needed")
        if client_fd in self.sides or server_fd in self.sides:
            raise ValueError("descriptor already paired")
        pair = Pair(self, client, server, counters, owner)
        self.sides[client_fd] = (pair, pair.client)
        self.sides[server_fd] = (pair, pair.server)
        if client_events & _READABLE:
            pair.pump(pair.client, client_events & _ENDED)
        if pair.active and server_events & _READABLE and pair.client.backlog is None:
            pair.pump(pair.server, server_events & _ENDED)
        return pair

    def handle(self, fd: int, events: int) -> bool:
        self._check()
        paired = self.sides.get(fd)
        if paired is None:
            return False
        paired[0].on_event(paired[1], events)
        return True

    def _check(self) -> None:
        if self._epoll.closed:
            raise ValueError("I/O operation on a closed relay")

    def poll(self) -> list[tuple[int, int]]:
        sides = self.sides
        others = []
        for fd, events in self._epoll.poll(0):
            paired = sides.get(fd)
            if paired is None:
                others.append((fd, events))
            else:
                paired[0].on_event(paired[1], events)
        return others

    def take_finished(self) -> list[Pair]:
        done, self.finished = self.finished, []
        return done

    def discard(self, pair: Pair) -> None:
        if not isinstance(pair, Pair):
            raise TypeError("discard() takes a Pair")
        if pair.relay is self:
            pair.end(False, report=False)

    def close(self) -> None:
        for pair, _ in list(self.sides.values()):
            pair.end(False, report=False)
        self._epoll.close()
