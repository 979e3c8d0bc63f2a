"""The SQLite backend: the conformance suite (run against two watch configurations) plus
behaviour only this backend has: reopening, kill -9 durability, single ownership, bounded
watch buffers that fall back to the log, batched compaction."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from svcnet.store.base import Expired, Storage, WatchEvent
from svcnet.store.sqlite import SQLiteStorage, StoreInUse, prefix_range
from tests.conformance.store_suite import *  # noqa: F403
from tests.conformance.store_suite import TIMEOUT, Reopen, obj, rv, take, watching

SRC = str(Path(__file__).resolve().parents[2] / "src")

CONFIGS: dict[str, dict[str, int]] = {
    "default": {},
    # Catch-up spans many pages while live events pile up (and duplicate) in the buffer.
    "paged": {"watch_page": 2},
    # Tiny buffers too: busy watchers overflow and re-read the log.
    "tight": {"watch_page": 2, "watch_buffer": 3, "compact_batch": 2},
}


@pytest.fixture(params=sorted(CONFIGS))
def config(request: pytest.FixtureRequest) -> dict[str, int]:
    return CONFIGS[request.param]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
async def store(db_path: Path, config: dict[str, int]) -> AsyncIterator[SQLiteStorage]:
    s = SQLiteStorage(db_path, **config)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def reopen(db_path: Path, config: dict[str, int]) -> AsyncIterator[Reopen]:
    opened: list[SQLiteStorage] = []

    async def _reopen(old: Storage) -> Storage:
        await old.close()
        new = SQLiteStorage(db_path, **config)
        opened.append(new)
        return new

    try:
        yield _reopen
    finally:
        for s in opened:
            await s.close()


# --- pure helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        pytest.param("/pods/default/", ("/pods/default/", "/pods/default0"), id="slash"),
        pytest.param("a", ("a", "b"), id="single"),
        pytest.param("", ("", None), id="empty-is-unbounded"),
        pytest.param("a\U0010ffff", ("a\U0010ffff", "b"), id="max-code-point-carries"),
        pytest.param("\U0010ffff", ("\U0010ffff", None), id="only-max-code-point"),
        pytest.param("a\ud7ff", ("a\ud7ff", "a\ue000"), id="skips-surrogates"),
    ],
)
def test_prefix_range(prefix: str, expected: tuple[str, str | None]) -> None:
    assert prefix_range(prefix) == expected


# --- reopen and durability --------------------------------------------------------------


async def test_history_survives_close_and_reopen(db_path: Path) -> None:
    s = SQLiteStorage(db_path)
    try:
        await s.create("/p/a", obj("a"))
        await s.guaranteed_update("/p/a", lambda o: {**o, "data": {"n": "1"}})
        await s.create("/p/b", obj("b"))
        await s.delete("/p/b")
    finally:
        await s.close()
    again = SQLiteStorage(db_path)
    try:
        assert await again.current_revision() == 4
        assert await again.get("/p/a") == {**obj("a", data={"n": "1"}),
                                           "metadata": {"name": "a", "resourceVersion": "2"}}
        async with watching(again, "/p/", 0) as w:
            got = await take(w, 4)
        assert [(e.type, e.key, e.revision) for e in got] == [
            ("ADDED", "/p/a", 1), ("MODIFIED", "/p/a", 2), ("ADDED", "/p/b", 3),
            ("DELETED", "/p/b", 4),
        ]
    finally:
        await again.close()


CHILD = """
import asyncio, sys, time
from svcnet.store.sqlite import SQLiteStorage

async def main(path: str) -> None:
    store = SQLiteStorage(path)
    payload = "x" * 2000
    deadline = time.monotonic() + 60
    i = 0
    while time.monotonic() < deadline:
        created = await store.create(f"/k/{i:06d}", {"metadata": {"name": str(i)}, "data": payload})
        sys.stdout.write(f"ack /k/{i:06d} {created['metadata']['resourceVersion']}\\n")
        sys.stdout.flush()
        i += 1

asyncio.run(main(sys.argv[1]))
"""


async def test_every_acknowledged_write_survives_kill_9(db_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(db_path), env=env, stdout=asyncio.subprocess.PIPE
    )
    acked: dict[str, int] = {}
    try:
        assert proc.stdout is not None
        while len(acked) < 1000:
            line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
            assert line.startswith(b"ack "), line
            _, key, acked_rv = line.decode().split()
            acked[key] = int(acked_rv)
        os.kill(proc.pid, signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
    store = SQLiteStorage(db_path)
    try:
        for key, rev in acked.items():
            got = await store.get(key)
            assert rv(got) == rev and got["data"] == "x" * 2000
        assert await store.current_revision() >= max(acked.values())
        items, current = await store.list("/k/")
        assert len(items) == current  # every committed create, nothing torn
    finally:
        await store.close()


def test_second_open_of_the_same_file_fails(db_path: Path) -> None:
    first = SQLiteStorage(db_path)
    try:
        with pytest.raises(StoreInUse):
            SQLiteStorage(db_path)
    finally:
        asyncio.run(first.close())
    SQLiteStorage(db_path)  # released on close


async def test_methods_after_close_raise(db_path: Path) -> None:
    s = SQLiteStorage(db_path)
    await s.close()
    await s.close()  # idempotent
    with pytest.raises(RuntimeError):
        await s.get("/x")
    with pytest.raises(RuntimeError):
        await s.create("/x", obj("x"))


# --- watch buffers ----------------------------------------------------------------------


async def drain_writes(s: SQLiteStorage, n: int, prefix: str = "/w/") -> None:
    for i in range(n):
        await s.create(f"{prefix}{i:04d}", obj(str(i)))


async def test_overflowed_watch_rereads_missed_events_from_the_log(db_path: Path) -> None:
    s = SQLiteStorage(db_path, watch_buffer=4, watch_page=3)
    try:
        async with watching(s, "/w/", 0) as w:
            await s.create("/w/first", obj("first"))
            await take(w, 1)  # now following live events
            await drain_writes(s, 50)  # overflows the 4-event buffer
            got = await take(w, 50)
            await s.create("/w/last", obj("last"))
            (last,) = await take(w, 1)
        assert [e.revision for e in got] == list(range(2, 52))
        assert last.revision == 52
    finally:
        await s.close()


async def test_overflowed_watch_past_compaction_raises_expired(db_path: Path) -> None:
    s = SQLiteStorage(db_path, watch_buffer=4)
    try:
        with pytest.raises(Expired) as err:
            async with watching(s, "/w/", 0) as w:
                await s.create("/w/first", obj("first"))
                await take(w, 1)
                await drain_writes(s, 20)
                await s.compact(await s.current_revision())
                await take(w, 1)
        assert err.value.requested == 1 and err.value.oldest == 21
    finally:
        await s.close()


async def test_watch_within_buffer_is_unaffected_by_compaction(db_path: Path) -> None:
    s = SQLiteStorage(db_path, watch_buffer=100)
    try:
        async with watching(s, "/w/", 0) as w:
            await s.create("/w/first", obj("first"))
            await take(w, 1)
            await drain_writes(s, 20)
            await s.compact(await s.current_revision())
            got = await take(w, 20)
        assert [e.revision for e in got] == list(range(2, 22))
    finally:
        await s.close()


async def test_closing_a_watch_unregisters_it(db_path: Path) -> None:
    s = SQLiteStorage(db_path)
    try:
        async with watching(s, "/w/", 0) as w:
            await s.create("/w/a", obj("a"))
            await take(w, 1)
            assert s.watcher_count() == 1
        assert s.watcher_count() == 0
        gen: Any = s.watch("/w/", 0)
        async for _event in gen:
            break
        assert s.watcher_count() == 1
        await gen.aclose()
        assert s.watcher_count() == 0
    finally:
        await s.close()


async def test_closing_the_store_ends_watches(db_path: Path) -> None:
    s = SQLiteStorage(db_path)
    it = s.watch("/w/", 0)
    pending = asyncio.ensure_future(anext(it))
    try:
        await s.create("/w/a", obj("a"))
        assert (await asyncio.wait_for(pending, TIMEOUT)).key == "/w/a"
        pending = asyncio.ensure_future(anext(it))
        await asyncio.sleep(0)  # let the watch reach its live wait
        await s.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, TIMEOUT)
        assert s.watcher_count() == 0
    finally:
        pending.cancel()
        await s.close()


async def test_watchers_share_one_decoded_event(db_path: Path) -> None:
    """Events are decoded once and shared (the Storage contract forbids mutating them);
    what the store returns from writes and reads stays independent of them."""
    s = SQLiteStorage(db_path)
    try:
        async with watching(s, "/w/", 0) as w1, watching(s, "/w/", 0) as w2:
            created = await s.create("/w/a", obj("a", data={"k": "v"}))
            (e1,) = await take(w1, 1)
            (e2,) = await take(w2, 1)
        assert e1 is e2
        assert e1.obj is not created
        assert (await s.get("/w/a"))["data"] == {"k": "v"}
    finally:
        await s.close()


# --- compaction -------------------------------------------------------------------------


async def test_compaction_deletes_history_in_batches(db_path: Path) -> None:
    s = SQLiteStorage(db_path, compact_batch=3)
    try:
        await drain_writes(s, 20)
        await s.compact(15)
        assert await s.compacted_revision() == 15
        await s.compact(10)  # never goes backwards
        assert await s.compacted_revision() == 15
        async with watching(s, "/w/", 15) as w:
            got: list[WatchEvent] = await take(w, 5)
        assert [e.revision for e in got] == [16, 17, 18, 19, 20]
    finally:
        await s.close()
    with sqlite3.connect(db_path) as db:
        revisions = [r for (r,) in db.execute("SELECT revision FROM log ORDER BY revision")]
        kv_count = db.execute("SELECT count(*) FROM kv").fetchone()[0]
    assert revisions == [16, 17, 18, 19, 20]
    assert kv_count == 20


async def test_compact_older_than_keeps_the_newest_revisions(db_path: Path) -> None:
    s = SQLiteStorage(db_path)
    try:
        await drain_writes(s, 10)
        assert await s.compact_older_than(3) == 7
        assert await s.compact_older_than(100) == 7
        with pytest.raises(Expired):
            async with watching(s, "/w/", 6) as w:
                await take(w, 1)
        async with watching(s, "/w/", 7) as w:
            assert [e.revision for e in await take(w, 3)] == [8, 9, 10]
    finally:
        await s.close()


async def test_compact_beyond_current_revision_is_clamped(db_path: Path) -> None:
    s = SQLiteStorage(db_path)
    try:
        await drain_writes(s, 3)
        await s.compact(1000)
        assert await s.compacted_revision() == 3
        assert rv(await s.create("/w/next", obj("next"))) == 4
    finally:
        await s.close()
