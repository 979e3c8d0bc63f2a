"""The TCP relay engine's own mechanics: the dial-timeout queues, deferred closes and
handing sockets over to the relay core.

Relaying itself is tested against the kernel in ``test_userspace.py``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from types import ModuleType

import pytest

from svcnet.proxy.dataplanes import _tcp
from svcnet.proxy.dataplanes._tcp import TcpEngine


def test_after_calls_back_in_order_with_one_timer_per_delay() -> None:
    async def main() -> list[tuple[str, int]]:
        loop = asyncio.get_running_loop()
        engine = TcpEngine(loop)
        fired: list[tuple[str, int]] = []
        t0 = loop.time()
        times: list[float] = []

        def cb(name: str) -> Callable[[int], None]:
            def fire(token: int) -> None:
                fired.append((name, token))
                times.append(loop.time() - t0)
            return fire

        engine.after(0.10, cb("slow"), 1)
        engine.after(0.02, cb("fast"), 2)
        await asyncio.sleep(0.01)
        engine.after(0.02, cb("fast"), 3)
        engine.after(0.10, cb("slow"), 4)
        assert len(engine._timeouts) == 2
        await asyncio.sleep(0.2)
        engine.close()
        assert times[0] >= 0.02 and times[-1] >= 0.11
        return fired

    assert asyncio.run(main()) == [("fast", 2), ("fast", 3), ("slow", 1), ("slow", 4)]


def test_a_socket_released_during_a_batch_is_closed_after_it() -> None:
    """A descriptor number must not be reused while events for it may still be pending
    in the batch being handled."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        engine = TcpEngine(loop)
        a, b = socket.socketpair()
        a.setblocking(False)
        seen: list[bool] = []

        def handler(events: int) -> None:
            engine.release(a)
            seen.append(a.fileno() >= 0)  # still open inside the batch

        engine.watch(a, handler)
        b.send(b"x")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if seen:
                break
        assert seen == [True]
        assert a.fileno() == -1  # closed once the batch ended
        b.close()
        engine.close()

    asyncio.run(main())


def test_close_stops_watching_and_leaves_no_descriptor() -> None:
    async def main() -> None:
        before = len(os.listdir("/proc/self/fd"))
        engine = TcpEngine(asyncio.get_running_loop())
        engine.after(5.0, lambda token: None, 1)
        engine.close()
        assert len(os.listdir("/proc/self/fd")) == before
        assert not engine._timeouts

    asyncio.run(main())


def test_a_callback_adding_to_its_own_queue_leaves_one_timer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A dial timing out re-dials with the next timeout, which may be the same one: the
    queue must still have a single timer, not one more per re-add."""
    fires = 0
    original = _tcp._TimeoutQueue._fire

    def counting(self: _tcp._TimeoutQueue) -> None:
        nonlocal fires
        fires += 1
        original(self)

    monkeypatch.setattr(_tcp._TimeoutQueue, "_fire", counting)

    async def main() -> int:
        engine = TcpEngine(asyncio.get_running_loop())
        calls = 0

        def again(token: int) -> None:
            nonlocal calls
            calls += 1
            if calls < 20:
                engine.after(0.005, again, token)

        engine.after(0.005, again, 1)
        await asyncio.sleep(0.5)
        (queue,) = engine._timeouts.values()
        assert queue.timer is None and not queue.entries
        engine.close()
        return calls

    assert asyncio.run(main()) == 20
    assert fires <= 21, f"{fires} timer firings for 20 callbacks"


def test_a_client_edge_in_the_batch_that_connects_its_endpoint_is_relayed(
        core: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """The endpoint's connect edge and the client's data edge come in one batch, the
    endpoint's first: the handler pairs them, and the client's edge (already taken off
    the epoll set) must still be relayed, not lost."""
    monkeypatch.setattr(_tcp, "Relay", core.Relay)
    lc = socket.create_server(("127.0.0.1", 0))
    c = socket.create_connection(lc.getsockname())
    pc, _ = lc.accept()
    ps = socket.create_connection(lc.getsockname())
    e, _ = lc.accept()
    for s in (pc, ps):
        s.setblocking(False)
    e.settimeout(2)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        engine = TcpEngine(loop)
        try:
            def connected(events: int) -> None:
                # (The endpoint's own bytes are left unread: relaying them would write
                # to the client's socket, and that write's edge would hide a lost one.)
                engine.relay(pc, ps, core.Counters(), object(), 0, 0)

            engine.watch(ps, lambda events: None)
            engine.watch(pc, lambda events: None)  # the dialling client handler
            engine._run()  # both sockets' first (writable) edges
            engine.handle(ps, connected)
            e.sendall(b"hi")  # an endpoint edge first...
            time.sleep(0.02)  # (blocking: the loop must not run the engine itself)
            c.sendall(b"request")  # ...then the client's, in the same batch
            time.sleep(0.02)
            engine._run()
            e.settimeout(0.5)
            return e.recv(100)
        finally:
            engine.close()

    try:
        assert asyncio.run(main()) == b"request"
    finally:
        for s in (c, pc, ps, e, lc):
            s.close()
