"""The backend-independent conformance suite for :class:`svcnet.store.base.Storage`.

A backend's test module provides the fixtures and re-exports the tests::

    from tests.conformance.store_suite import *  # noqa: F403

    @pytest.fixture
    async def store(...) -> AsyncIterator[Storage]: ...   # a fresh, empty store

    @pytest.fixture
    def reopen(...) -> Reopen: ...   # optional: close a store and open the same data again

``reopen`` is not part of the star import: a backend that can reopen its data defines it;
one that cannot imports this module's ``reopen`` (which gives ``None``, and the tests that
need it are skipped). Every wait is bounded by ``asyncio.wait_for`` so a broken backend
fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from svcnet.store.base import (
    Conflict,
    Expired,
    KeyExists,
    KeyNotFound,
    Obj,
    Preconditions,
    Storage,
    UpdateAborted,
    WatchEvent,
)

__all__ = [
    "Reopen",
    "test_compact_everything_keeps_revision_and_next_write_continues",
    "test_compaction_expires_old_watches_and_keeps_values",
    "test_create_does_not_mutate_the_callers_object",
    "test_create_existing_raises_key_exists_and_writes_nothing",
    "test_create_get_roundtrip_sets_resource_version",
    "test_delete_missing_raises_key_not_found",
    "test_delete_returns_last_value_at_deleting_revision",
    "test_delete_with_preconditions",
    "test_get_missing_raises_key_not_found",
    "test_guaranteed_update_concurrent_increments_all_land",
    "test_guaranteed_update_does_not_mutate_the_update_result",
    "test_guaranteed_update_fn_raising_aborts_and_propagates_unchanged",
    "test_guaranteed_update_missing_raises_key_not_found",
    "test_guaranteed_update_noop_writes_nothing",
    "test_guaranteed_update_preconditions",
    "test_list_is_ordered_prefix_exact_and_carries_revision",
    "test_list_of_empty_prefix_returns_everything",
    "test_list_pages_after_a_key_with_a_limit",
    "test_revision_increases_by_one_per_write_across_keys",
    "test_revision_and_values_survive_reopen",
    "test_two_watchers_see_identical_sequences",
    "test_watch_delivers_modified_and_deleted_with_prev",
    "test_watch_filters_by_exact_prefix",
    "test_watch_is_gap_free_under_concurrent_writes",
    "test_watch_replays_history_then_follows_live",
]

TIMEOUT = 10.0

Reopen = Callable[[Storage], Awaitable[Storage]]


@pytest.fixture
def reopen() -> Reopen | None:
    """Backends that can reopen their data override this fixture."""
    return None


# --- helpers ----------------------------------------------------------------------------


def obj(name: str, **extra: Any) -> Obj:
    """A small ConfigMap-like object."""
    o: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
    o.update(extra)
    return o


def rv(o: Obj) -> int:
    return int(o["metadata"]["resourceVersion"])


@contextlib.asynccontextmanager
async def watching(store: Storage, prefix: str, revision: int) -> AsyncIterator[
    AsyncIterator[WatchEvent]
]:
    """``store.watch`` that is closed on exit, even when the test fails."""
    it = store.watch(prefix, revision)
    try:
        yield it
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await asyncio.wait_for(aclose(), TIMEOUT)


async def take(it: AsyncIterator[WatchEvent], n: int) -> list[WatchEvent]:
    """The next ``n`` events, failing after TIMEOUT seconds in total."""

    async def collect() -> list[WatchEvent]:
        return [await anext(it) for _ in range(n)]

    return await asyncio.wait_for(collect(), TIMEOUT)


def summary(events: list[WatchEvent]) -> list[tuple[str, str, int]]:
    return [(e.type, e.key, e.revision) for e in events]


# --- create / get / list ----------------------------------------------------------------


async def test_create_get_roundtrip_sets_resource_version(store: Storage) -> None:
    before = await store.current_revision()
    created = await store.create("/configmaps/default/a", obj("a", data={"k": "v"}))
    assert created["metadata"]["resourceVersion"] == str(before + 1)
    assert created["data"] == {"k": "v"}
    got = await store.get("/configmaps/default/a")
    assert got == created
    assert await store.current_revision() == before + 1


async def test_create_does_not_mutate_the_callers_object(store: Storage) -> None:
    mine = obj("a", data={"k": "v"})
    snapshot = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                "data": {"k": "v"}}
    created = await store.create("/configmaps/default/a", mine)
    assert mine == snapshot
    created["data"]["k"] = "changed"
    created["metadata"]["labels"] = {"x": "y"}
    assert mine == snapshot
    assert (await store.get("/configmaps/default/a"))["data"] == {"k": "v"}


async def test_create_existing_raises_key_exists_and_writes_nothing(store: Storage) -> None:
    await store.create("/configmaps/default/a", obj("a"))
    rev = await store.current_revision()
    with pytest.raises(KeyExists) as err:
        await store.create("/configmaps/default/a", obj("a", data={"new": "1"}))
    assert err.value.key == "/configmaps/default/a"
    assert await store.current_revision() == rev
    assert "data" not in await store.get("/configmaps/default/a")


async def test_get_missing_raises_key_not_found(store: Storage) -> None:
    with pytest.raises(KeyNotFound) as err:
        await store.get("/configmaps/default/missing")
    assert err.value.key == "/configmaps/default/missing"


async def test_list_is_ordered_prefix_exact_and_carries_revision(store: Storage) -> None:
    keys = [
        "/pods/default/b",
        "/pods/default/ab",
        "/pods/default/a",
        "/pods/default/a%",
        "/pods/default/a_b",
        "/pods/defaultx/a",
        "/pods/default",
        "/pods/kube-system/a",
        "/podsx/default/a",
    ]
    for k in keys:
        await store.create(k, obj(k.rsplit("/", 1)[1], metadata_key=k))
    items, rev = await store.list("/pods/default/")
    assert [i["metadata_key"] for i in items] == [
        "/pods/default/a",
        "/pods/default/a%",
        "/pods/default/a_b",
        "/pods/default/ab",
        "/pods/default/b",
    ]
    assert rev == await store.current_revision() == len(keys)
    for i in items:
        assert rv(i) <= rev
    items_a, _ = await store.list("/pods/default/a_")
    assert [i["metadata_key"] for i in items_a] == ["/pods/default/a_b"]
    items_pct, _ = await store.list("/pods/default/a%")
    assert [i["metadata_key"] for i in items_pct] == ["/pods/default/a%"]
    none, rev2 = await store.list("/services/")
    assert none == [] and rev2 == rev


async def test_list_pages_after_a_key_with_a_limit(store: Storage) -> None:
    for k in ("/pods/d/a", "/pods/d/b", "/pods/d/c", "/pods/d/d", "/pods/e/a"):
        await store.create(k, obj(k.rsplit("/", 1)[1], metadata_key=k))

    async def keys(start_after: str, limit: int) -> list[str]:
        items, _ = await store.list("/pods/d/", start_after, limit)
        return [i["metadata_key"] for i in items]
    assert await keys("", 2) == ["/pods/d/a", "/pods/d/b"]
    assert await keys("/pods/d/b", 2) == ["/pods/d/c", "/pods/d/d"]
    assert await keys("/pods/d/c", 0) == ["/pods/d/d"]
    assert await keys("/pods/d/d", 5) == []
    assert await keys("/pods/", 1) == ["/pods/d/a"]  # a start before the prefix


async def test_list_of_empty_prefix_returns_everything(store: Storage) -> None:
    await store.create("/b", obj("b"))
    await store.create("/a", obj("a"))
    items, rev = await store.list("")
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert rev == 2


# --- revisions --------------------------------------------------------------------------


async def test_revision_increases_by_one_per_write_across_keys(store: Storage) -> None:
    start = await store.current_revision()
    revs = [
        rv(await store.create("/a/1", obj("1"))),
        rv(await store.create("/b/1", obj("1"))),
        rv(await store.guaranteed_update("/a/1", lambda o: {**o, "data": {"x": "1"}})),
        rv(await store.create("/a/2", obj("2"))),
        rv(await store.delete("/b/1")),
        rv(await store.guaranteed_update("/a/2", lambda o: {**o, "data": {"x": "2"}})),
    ]
    assert revs == list(range(start + 1, start + 7))
    assert await store.current_revision() == start + 6
    assert rv(await store.get("/a/1")) == start + 3


# --- guaranteed_update ------------------------------------------------------------------


def set_data(data: dict[str, str]) -> Callable[[Obj], Obj]:
    """An update function replacing ``data``."""
    return lambda o: {**o, "data": data}


def bump(o: Obj) -> Obj:
    o["data"]["n"] = str(int(o["data"]["n"]) + 1)
    return o


async def test_guaranteed_update_concurrent_increments_all_land(store: Storage) -> None:
    await store.create("/counters/c", obj("c", data={"n": "0"}))
    start = await store.current_revision()
    n = 200
    results = await asyncio.wait_for(
        asyncio.gather(*(store.guaranteed_update("/counters/c", bump) for _ in range(n))),
        TIMEOUT,
    )
    final = await store.get("/counters/c")
    assert final["data"]["n"] == str(n)
    assert sorted(rv(r) for r in results) == list(range(start + 1, start + n + 1))
    assert sorted(int(r["data"]["n"]) for r in results) == list(range(1, n + 1))


async def test_guaranteed_update_preconditions(store: Storage) -> None:
    created = await store.create("/x/a", obj("a", data={"n": "0"}))
    created_uid = await store.guaranteed_update(
        "/x/a", lambda o: {**o, "metadata": {**o["metadata"], "uid": "u-1"}}
    )
    rev = await store.current_revision()
    with pytest.raises(Conflict):
        await store.guaranteed_update(
            "/x/a", bump, Preconditions(resource_version=created["metadata"]["resourceVersion"])
        )
    with pytest.raises(Conflict):
        await store.guaranteed_update("/x/a", bump, Preconditions(uid="u-other"))
    assert await store.current_revision() == rev
    ok = await store.guaranteed_update(
        "/x/a",
        bump,
        Preconditions(resource_version=created_uid["metadata"]["resourceVersion"], uid="u-1"),
    )
    assert ok["data"]["n"] == "1"
    assert rv(ok) == rev + 1


async def test_guaranteed_update_noop_writes_nothing(store: Storage) -> None:
    created = await store.create("/x/a", obj("a", data={"n": "0"}))
    rev = await store.current_revision()
    same = await store.guaranteed_update("/x/a", lambda o: o)
    rebuilt = await store.guaranteed_update("/x/a", lambda o: {**o, "data": {"n": "0"}})
    assert same == created and rebuilt == created
    assert await store.current_revision() == rev
    async with watching(store, "/x/", rev) as w:
        await store.create("/x/b", obj("b"))
        (event,) = await take(w, 1)
    assert event.key == "/x/b" and event.revision == rev + 1


async def test_guaranteed_update_fn_raising_aborts_and_propagates_unchanged(
    store: Storage,
) -> None:
    await store.create("/x/a", obj("a", data={"n": "0"}))
    rev = await store.current_revision()
    boom = ValueError("boom")
    aborted = UpdateAborted("leave it")

    def raising(exc: Exception) -> Callable[[Obj], Obj]:
        def fn(o: Obj) -> Obj:
            o["data"]["n"] = "mutated-before-raise"
            raise exc

        return fn

    with pytest.raises(ValueError) as e1:
        await store.guaranteed_update("/x/a", raising(boom))
    assert e1.value is boom
    with pytest.raises(UpdateAborted) as e2:
        await store.guaranteed_update("/x/a", raising(aborted))
    assert e2.value is aborted
    assert await store.current_revision() == rev
    assert (await store.get("/x/a"))["data"] == {"n": "0"}


async def test_guaranteed_update_missing_raises_key_not_found(store: Storage) -> None:
    with pytest.raises(KeyNotFound):
        await store.guaranteed_update("/x/missing", bump)
    assert await store.current_revision() == 0


async def test_guaranteed_update_does_not_mutate_the_update_result(store: Storage) -> None:
    await store.create("/x/a", obj("a"))
    replacement = obj("a", data={"n": "9"})
    result = await store.guaranteed_update("/x/a", lambda _o: replacement)
    assert replacement == obj("a", data={"n": "9"})
    assert result["data"] == {"n": "9"} and rv(result) == 2


# --- delete -----------------------------------------------------------------------------


async def test_delete_returns_last_value_at_deleting_revision(store: Storage) -> None:
    await store.create("/x/a", obj("a", data={"n": "1"}))
    deleted = await store.delete("/x/a")
    assert deleted["data"] == {"n": "1"}
    assert rv(deleted) == 2 == await store.current_revision()
    with pytest.raises(KeyNotFound):
        await store.get("/x/a")
    assert await store.list("/x/") == ([], 2)
    recreated = await store.create("/x/a", obj("a"))
    assert rv(recreated) == 3


async def test_delete_with_preconditions(store: Storage) -> None:
    created = await store.create("/x/a", obj("a"))
    await store.guaranteed_update(
        "/x/a", lambda o: {**o, "metadata": {**o["metadata"], "uid": "u-1"}}
    )
    with pytest.raises(Conflict):
        await store.delete("/x/a", Preconditions(resource_version=created["metadata"]["resourceVersion"]))
    with pytest.raises(Conflict):
        await store.delete("/x/a", Preconditions(uid="u-2"))
    assert await store.current_revision() == 2
    deleted = await store.delete("/x/a", Preconditions(resource_version="2", uid="u-1"))
    assert rv(deleted) == 3


async def test_delete_missing_raises_key_not_found(store: Storage) -> None:
    with pytest.raises(KeyNotFound):
        await store.delete("/x/missing")
    assert await store.current_revision() == 0


# --- watch ------------------------------------------------------------------------------


async def test_watch_replays_history_then_follows_live(store: Storage) -> None:
    for i in range(5):
        await store.create(f"/w/{i}", obj(str(i)))
    async with watching(store, "/w/", 2) as w:
        replay = await take(w, 3)
        assert summary(replay) == [("ADDED", f"/w/{i}", i + 1) for i in (2, 3, 4)]
        assert replay[0].obj["metadata"]["name"] == "2" and rv(replay[0].obj) == 3
        assert replay[0].prev is None
        await store.create("/w/5", obj("5"))
        await store.guaranteed_update("/w/0", lambda o: {**o, "data": {"k": "v"}})
        live = await take(w, 2)
    assert summary(live) == [("ADDED", "/w/5", 6), ("MODIFIED", "/w/0", 7)]
    assert live[1].obj["data"] == {"k": "v"}


async def test_watch_delivers_modified_and_deleted_with_prev(store: Storage) -> None:
    async with watching(store, "/w/", 0) as w:
        await store.create("/w/a", obj("a", data={"n": "1"}))
        await store.guaranteed_update("/w/a", lambda o: {**o, "data": {"n": "2"}})
        await store.delete("/w/a")
        added, modified, deleted = await take(w, 3)
    assert (added.type, modified.type, deleted.type) == ("ADDED", "MODIFIED", "DELETED")
    assert modified.prev is not None and modified.prev["data"] == {"n": "1"}
    assert rv(modified.prev) == 1 and rv(modified.obj) == 2
    assert deleted.obj["data"] == {"n": "2"} and rv(deleted.obj) == 3
    assert deleted.prev is not None and deleted.prev["data"] == {"n": "2"} and rv(deleted.prev) == 2
    assert deleted.revision == 3


async def test_watch_filters_by_exact_prefix(store: Storage) -> None:
    async with watching(store, "/pods/default/", 0) as w:
        await store.create("/pods/defaultx/a", obj("a"))
        await store.create("/pods/default", obj("ns-ish"))
        await store.create("/pods/default/a_", obj("a_"))
        await store.create("/pods/other/a", obj("a"))
        await store.create("/pods/default/a%", obj("a%"))
        got = await take(w, 2)
    assert summary(got) == [("ADDED", "/pods/default/a_", 3), ("ADDED", "/pods/default/a%", 5)]


async def test_two_watchers_see_identical_sequences(store: Storage) -> None:
    await store.create("/w/pre", obj("pre"))
    async with watching(store, "/w/", 0) as w1, watching(store, "/w/", 0) as w2:
        first = await take(w1, 1)
        for i in range(20):
            await store.create(f"/w/{i}", obj(str(i), data={"i": str(i)}))
            if i % 3 == 0:
                await store.delete(f"/w/{i}")
        n = 1 + 20 + 7
        a = first + await take(w1, n - 1)
        b = await take(w2, n)
    assert summary(a) == summary(b)
    assert [(e.obj, e.prev) for e in a] == [(e.obj, e.prev) for e in b]
    assert [e.revision for e in a] == list(range(1, n + 1))


async def test_watch_is_gap_free_under_concurrent_writes(store: Storage) -> None:
    watched: list[int] = []
    started = asyncio.Event()
    n = 400

    async def writer() -> None:
        # Half the writes are watched, one write per loop turn: a consumer taking one
        # event per turn catches up with the history and then follows live writes.
        for i in range(n):
            if i % 2:
                await store.create(f"/other/{i}", obj(str(i)))
            elif i % 22 == 0 and watched:
                with contextlib.suppress(KeyNotFound):
                    watched.append(rv(await store.delete(f"/g/{(i - 2) % 17}")))
            else:
                key = f"/g/{i % 17}"
                try:
                    o = await store.create(key, obj(str(i)))
                except KeyExists:
                    o = await store.guaranteed_update(key, set_data({"i": str(i)}))
                watched.append(rv(o))
            if i == n // 3:
                started.set()
            await asyncio.sleep(0)
        watched.append(rv(await store.create("/g/done", obj("done"))))

    task = asyncio.create_task(writer())
    try:
        await asyncio.wait_for(started.wait(), TIMEOUT)
        start = watched[len(watched) // 2]  # a past revision: catch-up, then live
        got: list[WatchEvent] = []

        async def consume(it: AsyncIterator[WatchEvent]) -> None:
            async for event in it:
                got.append(event)
                if event.key == "/g/done":
                    return
                await asyncio.sleep(0)  # a consumer that lets the writer run between events

        async with watching(store, "/g/", start) as w:
            await asyncio.wait_for(consume(w), TIMEOUT)
        await asyncio.wait_for(task, TIMEOUT)
    finally:
        task.cancel()
    revisions = [e.revision for e in got]
    assert revisions == [r for r in watched if r > start]
    assert len(set(revisions)) == len(revisions)
    assert all(e.key.startswith("/g/") for e in got)


# --- compaction -------------------------------------------------------------------------


async def test_compaction_expires_old_watches_and_keeps_values(store: Storage) -> None:
    await store.create("/c/a", obj("a"))  # 1
    await store.guaranteed_update("/c/a", lambda o: {**o, "data": {"n": "2"}})  # 2
    await store.create("/c/b", obj("b"))  # 3
    await store.create("/c/gone", obj("gone"))  # 4
    await store.delete("/c/gone")  # 5
    await store.compact(3)
    with pytest.raises(Expired) as err:
        async with watching(store, "/c/", 2) as w:
            await take(w, 1)
    assert err.value.requested == 2 and err.value.oldest >= 3
    with pytest.raises(Expired):
        async with watching(store, "/c/", 0) as w:
            await take(w, 1)
    async with watching(store, "/c/", 3) as w:
        got = await take(w, 2)
    assert summary(got) == [("ADDED", "/c/gone", 4), ("DELETED", "/c/gone", 5)]
    items, rev = await store.list("/c/")
    assert [(i["metadata"]["name"], rv(i)) for i in items] == [("a", 2), ("b", 3)]
    assert rev == 5 == await store.current_revision()
    assert (await store.get("/c/a"))["data"] == {"n": "2"}


async def test_compact_everything_keeps_revision_and_next_write_continues(
    store: Storage,
) -> None:
    for i in range(4):
        await store.create(f"/c/{i}", obj(str(i)))
    await store.delete("/c/0")
    await store.compact(5)
    assert await store.current_revision() == 5
    async with watching(store, "/c/", 5) as w:
        created = await store.create("/c/new", obj("new"))
        (event,) = await take(w, 1)
    assert rv(created) == 6 and event.revision == 6
    assert [i["metadata"]["name"] for i in (await store.list("/c/"))[0]] == ["1", "2", "3", "new"]


async def test_revision_and_values_survive_reopen(store: Storage, reopen: Reopen | None) -> None:
    if reopen is None:
        pytest.skip("backend cannot reopen its data")
    for i in range(3):
        await store.create(f"/r/{i}", obj(str(i)))
    await store.delete("/r/0")
    await store.compact(4)  # everything: the revision must still survive
    again = await reopen(store)
    assert await again.current_revision() == 4
    assert [i["metadata"]["name"] for i in (await again.list("/r/"))[0]] == ["1", "2"]
    with pytest.raises(Expired):
        async with watching(again, "/r/", 3) as w:
            await take(w, 1)
    created = await again.create("/r/3", obj("3"))
    assert rv(created) == 5
