"""The relay core's contract (documented in ``_pyrelay.py``), run against both the C core
and the pure-Python core (the ``core`` fixture in ``conftest.py``) with real TCP
connections over loopback.

Each case builds two loopback connections, client ``c`` ⇄ proxy side ``pc`` and proxy
side ``ps`` ⇄ endpoint ``e``, registers ``pc`` and ``ps`` edge-triggered and pairs them,
then drives ``Relay.poll()`` by hand.
"""

from __future__ import annotations

import contextlib
import gc
import select
import socket
import struct
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

from svcnet.proxy.dataplanes import _pyrelay

WATCH = (select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLPRI
         | select.EPOLLET)


def tcp_pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    """A connected (outside, inside) pair over loopback; ``inside`` is non-blocking."""
    outside = socket.create_connection(listener.getsockname())
    inside, _ = listener.accept()
    inside.setblocking(False)
    outside.settimeout(2)
    return outside, inside


class Owner:
    """A stand-in connection object (weak-referenceable)."""


@dataclass
class Rig:
    core: ModuleType
    relay: Any
    c: socket.socket
    pc: socket.socket
    ps: socket.socket
    e: socket.socket
    counters: Any
    owner: Owner = field(default_factory=Owner)
    others: list[tuple[int, int]] = field(default_factory=list)
    finished: list[Any] = field(default_factory=list)

    def pair(self, client_events: int = 0, server_events: int = 0) -> Any:
        return self.relay.pair(self.pc, self.ps, self.counters, self.owner, client_events,
                               server_events)

    def step(self) -> None:
        self.others += self.relay.poll()
        self.finished += self.relay.take_finished()

    def until(self, cond: Callable[[], bool], timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, "timed out"
            select.select([self.relay.fileno()], [], [], 0.05)
            self.step()

    def recv_exactly(self, sock: socket.socket, n: int) -> bytes:
        """Read n bytes from a blocking test socket while the relay runs."""
        got = b""
        sock.setblocking(False)
        try:
            def more() -> bool:
                nonlocal got
                with contextlib.suppress(BlockingIOError):
                    got += sock.recv(n - len(got))
                return len(got) >= n
            self.until(more)
        finally:
            sock.settimeout(2)
        return got


@pytest.fixture
def rig(core: ModuleType) -> Iterator[Rig]:
    lc = socket.create_server(("127.0.0.1", 0))
    le = socket.create_server(("127.0.0.1", 0))
    relay = core.Relay()
    c, pc = tcp_pair(lc)
    # Towards the endpoint the proxy's socket is the connecting one.
    ps, e = tcp_pair(le)
    ps.setblocking(False)
    e.settimeout(2)
    relay.register(pc.fileno(), WATCH)
    relay.register(ps.fileno(), WATCH)
    r = Rig(core, relay, c, pc, ps, e, core.Counters())
    try:
        yield r
    finally:
        relay.close()
        for s in (c, pc, ps, e, lc, le):
            s.close()


def test_bytes_flow_both_ways_and_are_counted(rig: Rig) -> None:
    pair = rig.pair()
    assert pair.active and pair.owner is rig.owner
    rig.c.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert rig.recv_exactly(rig.e, 18) == b"GET / HTTP/1.1\r\n\r\n"
    rig.e.sendall(b"x" * 1000)
    assert rig.recv_exactly(rig.c, 1000) == b"x" * 1000
    assert (rig.counters.bytes_in, rig.counters.bytes_out) == (18, 1000)
    assert rig.others == [] and rig.finished == []


def test_events_seen_before_pairing_are_acted_on(rig: Rig) -> None:
    rig.c.sendall(b"early")
    rig.e.sendall(b"hello")
    time.sleep(0.05)
    rig.others += rig.relay.poll()  # the edges go to the caller: nothing is paired yet
    assert {fd for fd, _ in rig.others} == {rig.pc.fileno(), rig.ps.fileno()}
    rig.pair(select.EPOLLIN, select.EPOLLIN | select.EPOLLOUT)
    assert rig.e.recv(100) == b"early"
    assert rig.c.recv(100) == b"hello"


def test_half_close_each_way_then_the_pair_ends_cleanly(rig: Rig) -> None:
    pair = rig.pair()
    rig.c.sendall(b"req")
    rig.c.shutdown(socket.SHUT_WR)
    assert rig.recv_exactly(rig.e, 3) == b"req"
    rig.until(lambda: rig.e.recv(10) == b"")  # EOF passed on
    rig.e.sendall(b"reply after the client's EOF")
    assert rig.recv_exactly(rig.c, 28) == b"reply after the client's EOF"
    assert pair.active
    rig.e.shutdown(socket.SHUT_WR)
    rig.until(lambda: bool(rig.finished))
    assert rig.finished == [pair] and not pair.active and not pair.reset
    rig.pc.close()  # the owner closes both sockets
    assert rig.c.recv(10) == b""


@pytest.mark.parametrize("who", ["client", "endpoint"])
def test_a_reset_ends_the_pair_as_reset(rig: Rig, who: str) -> None:
    pair = rig.pair()
    sock = rig.c if who == "client" else rig.e
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    rig.until(lambda: bool(rig.finished))
    assert rig.finished == [pair] and pair.reset and not pair.active


def test_a_full_destination_holds_at_most_one_read_and_stops_the_sender(rig: Rig) -> None:
    for s in (rig.pc, rig.ps, rig.e):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    pair = rig.pair()
    rig.c.setblocking(False)
    chunk = b"y" * 65536
    sent = 0
    stalled = 0
    while stalled < 20:  # the endpoint reads nothing: the client must end up blocked
        try:
            sent += rig.c.send(chunk)
            stalled = 0
        except BlockingIOError:
            stalled += 1
            time.sleep(0.01)
        rig.step()
        assert pair.buffered() <= _pyrelay.READ_SIZE
        assert sent < 64 * 1024 * 1024, "the client was never held back"
    assert pair.buffered() > 0
    received = len(rig.recv_exactly(rig.e, sent))
    assert received == sent == rig.counters.bytes_in
    assert pair.buffered() == 0


def test_bytes_after_urgent_data_arrive(rig: Rig) -> None:
    rig.pair()
    rig.c.send(b"before")
    rig.c.send(b"!", socket.MSG_OOB)
    rig.c.send(b"after")
    assert rig.recv_exactly(rig.e, 11) == b"beforeafter"


def test_unpaired_events_are_returned_and_paired_descriptors_are_guarded(rig: Rig) -> None:
    other_a, other_b = socket.socketpair()
    try:
        rig.relay.register(other_b.fileno(), select.EPOLLIN)
        other_a.send(b"z")
        pair = rig.pair()
        rig.until(lambda: (other_b.fileno(), select.EPOLLIN) in rig.others)
        with pytest.raises(ValueError):
            rig.relay.unregister(rig.pc.fileno())
        with pytest.raises(ValueError):
            rig.relay.pair(rig.pc, other_b, rig.counters, None, 0, 0)
        with pytest.raises(ValueError):
            rig.relay.pair(other_b, other_b, rig.counters, None, 0, 0)
        rig.relay.unregister(other_b.fileno())
        assert pair.active
    finally:
        other_a.close()
        other_b.close()


def test_a_discarded_pair_is_not_relayed_or_reported(rig: Rig) -> None:
    pair = rig.pair()
    rig.relay.discard(pair)
    assert not pair.active and not pair.reset
    rig.relay.discard(pair)  # twice is harmless
    rig.c.sendall(b"lost")
    time.sleep(0.05)
    rig.step()
    assert rig.finished == []
    assert rig.pc.fileno() in {fd for fd, _ in rig.others}  # handed back to the caller
    rig.relay.unregister(rig.pc.fileno())


def test_an_ended_pair_keeps_nothing_alive(rig: Rig) -> None:
    counters_refs = sys.getrefcount(rig.counters)
    pair = rig.pair()
    owner_ref = weakref.ref(rig.owner)
    held = sys.getrefcount(rig.counters)  # (outside assert: its rewriting holds refs)
    assert held == counters_refs + 1
    rig.c.close()
    rig.e.close()
    rig.until(lambda: bool(rig.finished))
    assert rig.finished == [pair]
    rig.finished.clear()
    del pair
    rig.owner = Owner()
    gc.disable()  # freed by reference counting, not by the collector
    try:
        assert owner_ref() is None
        left = sys.getrefcount(rig.counters)
        assert left == counters_refs
    finally:
        gc.enable()


def test_close_discards_active_pairs_and_refuses_further_use(core: ModuleType) -> None:
    lc = socket.create_server(("127.0.0.1", 0))
    c, pc = tcp_pair(lc)
    d, pd = tcp_pair(lc)
    relay = core.Relay()
    try:
        relay.register(pc.fileno(), WATCH)
        relay.register(pd.fileno(), WATCH)
        owner = Owner()
        ref = weakref.ref(owner)
        pair = relay.pair(pc, pd, core.Counters(), owner, 0, 0)
        del owner
        relay.close()
        assert not pair.active and relay.take_finished() == []
        del pair
        assert ref() is None
        with pytest.raises(ValueError):
            relay.fileno()
        with pytest.raises(ValueError):
            relay.poll()
    finally:
        for s in (c, pc, d, pd, lc):
            s.close()


def test_counters_are_read_write(core: ModuleType) -> None:
    counters = core.Counters()
    assert (counters.bytes_in, counters.bytes_out) == (0, 0)
    counters.bytes_in += 5
    counters.bytes_out = 1 << 40
    assert (counters.bytes_in, counters.bytes_out) == (5, 1 << 40)


def test_handle_relays_an_edge_returned_before_pairing(rig: Rig) -> None:
    rig.c.sendall(b"edge")
    time.sleep(0.05)
    events = dict(rig.relay.poll())  # the edge is taken: nothing is paired yet
    assert events[rig.pc.fileno()] & select.EPOLLIN
    assert rig.relay.handle(rig.pc.fileno(), events[rig.pc.fileno()]) is False
    rig.pair()  # (told nothing of it)
    assert rig.relay.handle(rig.pc.fileno(), events[rig.pc.fileno()]) is True
    assert rig.recv_exactly(rig.e, 4) == b"edge"


def test_misuse_is_refused_alike(core: ModuleType) -> None:
    relay = core.Relay()
    with pytest.raises(ValueError):
        relay.unregister(-1)
    with pytest.raises(TypeError):
        relay.discard(object())
    a, b = socket.socketpair()
    try:
        relay.close()
        with pytest.raises(ValueError):
            relay.pair(a, b, core.Counters(), None, 0, 0)
        with pytest.raises(ValueError):
            relay.handle(a.fileno(), select.EPOLLIN)
    finally:
        a.close()
        b.close()
