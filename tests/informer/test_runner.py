"""Bounded-frequency runner: merging pokes, minimum interval, periodic runs, retries."""

from __future__ import annotations

import asyncio
import contextlib

from svcnet.informer.runner import BoundedFrequencyRunner


async def _until(cond: object, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_pokes_are_merged_and_rate_limited() -> None:
    times: list[float] = []
    loop = asyncio.get_running_loop()

    async def fn() -> None:
        times.append(loop.time())

    r = BoundedFrequencyRunner("t", fn, min_interval=0.1, max_interval=10, burst=1)
    task = asyncio.create_task(r.loop())
    try:
        for _ in range(20):
            r.run()
        await _until(lambda: len(times) >= 1)
        for _ in range(20):
            r.run()
        await _until(lambda: len(times) >= 2)
        await asyncio.sleep(0.15)
        assert len(times) == 2  # 40 pokes, two runs
        assert times[1] - times[0] >= 0.09
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_runs_periodically_without_pokes() -> None:
    n = [0]

    async def fn() -> None:
        n[0] += 1

    r = BoundedFrequencyRunner("t", fn, min_interval=0.0, max_interval=0.05)
    task = asyncio.create_task(r.loop())
    try:
        await _until(lambda: n[0] >= 3)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_failure_is_retried_after_retry_interval() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    async def fn() -> None:
        calls.append(loop.time())
        if len(calls) == 1:
            raise RuntimeError("boom")

    r = BoundedFrequencyRunner("t", fn, min_interval=0.0, max_interval=60,
                               retry_interval=0.05)
    task = asyncio.create_task(r.loop())
    try:
        r.run()
        await _until(lambda: len(calls) >= 2)
        assert r.failures == 1
        assert calls[1] - calls[0] >= 0.04
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
