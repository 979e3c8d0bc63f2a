"""Work queue contract: de-duplication, no concurrent processing of a key, fairness,
rate-limited retries."""

from __future__ import annotations

import asyncio

import pytest

from svcnet.informer.workqueue import ShutDown, WorkQueue


async def test_duplicates_are_merged_and_order_is_fair() -> None:
    q = WorkQueue()
    for k in ("a", "b", "a", "c", "b"):
        q.add(k)
    assert len(q) == 3
    got = [await q.get() for _ in range(3)]
    assert got == ["a", "b", "c"]


async def test_key_added_while_processing_comes_back_after_done() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # changed again while a worker holds it
    assert len(q) == 0  # not handed to a second worker
    q.done(key)
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_get_waits_for_add() -> None:
    q = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    q.add("x")
    assert await asyncio.wait_for(waiter, 1) == "x"


async def test_rate_limited_retry_backs_off_and_forget_resets() -> None:
    q = WorkQueue(base=0.01, maximum=1.0)
    loop = asyncio.get_running_loop()
    q.add_rate_limited("k")
    q.add_rate_limited("k")
    assert q.num_requeues("k") == 2
    t0 = loop.time()
    assert await asyncio.wait_for(q.get(), 1) == "k"
    assert loop.time() - t0 >= 0.009
    q.done("k")
    q.forget("k")
    assert q.num_requeues("k") == 0


async def test_add_after_keeps_the_earliest_deadline() -> None:
    q = WorkQueue()
    q.add_after("k", 5.0)
    q.add_after("k", 0.01)
    assert await asyncio.wait_for(q.get(), 1) == "k"


async def test_shutdown_releases_waiters() -> None:
    q = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    await q.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiter, 1)
