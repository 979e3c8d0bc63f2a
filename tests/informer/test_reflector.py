"""Reflector rules with a scripted API: relist on 410 Gone, resume from the last
resourceVersion after a broken watch, and a relist turned into handler calls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from svcnet.client.api import APIClient, KubeConfig, TransportError, WatchEvent
from svcnet.informer.shared import SharedInformer
from svcnet.model import errors, kinds

CM = kinds.lookup("", "configmaps")
assert CM is not None


def cm(name: str, rv: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "d", "resourceVersion": str(rv)}}


class ScriptedAPI(APIClient):
    """Answers list and watch from a script; records the resourceVersions asked for."""

    def __init__(self, lists: list[dict[str, Any]],
                 watches: list[list[WatchEvent] | BaseException]) -> None:
        super().__init__(KubeConfig(server="http://127.0.0.1:1"))
        self.lists, self.watches = lists, watches
        self.watch_rvs: list[str] = []
        self.done = asyncio.Event()

    async def list(self, r: Any, namespace: str | None = None, **kw: Any) -> dict[str, Any]:
        return self.lists.pop(0)

    async def watch(self, r: Any, namespace: str | None = None, **kw: Any
                    ) -> AsyncIterator[WatchEvent]:
        self.watch_rvs.append(kw["resource_version"])
        if not self.watches:
            self.done.set()
            await asyncio.Event().wait()
        step = self.watches.pop(0)
        if isinstance(step, BaseException):
            raise step
        for ev in step:
            yield ev


async def run_informer(api: ScriptedAPI) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    inf = SharedInformer(api, CM)
    inf.add_handlers(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                     on_update=lambda o, n: seen.append(("update", n["metadata"]["name"])),
                     on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
    await drive(inf, api)
    return seen


async def drive(inf: SharedInformer, api: ScriptedAPI) -> None:
    """Run ``inf`` until ``api`` has played its whole script."""
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(api.done.wait(), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_resume_from_last_rv_after_disconnect() -> None:
    api = ScriptedAPI(
        lists=[{"metadata": {"resourceVersion": "10"}, "items": [cm("a", 5)]}],
        watches=[[WatchEvent("ADDED", cm("b", 11)), WatchEvent("BOOKMARK", cm("", 12))],
                 TransportError("reset"),
                 [WatchEvent("MODIFIED", cm("b", 13)), WatchEvent("DELETED", cm("a", 14))]])
    seen = await run_informer(api)
    assert seen == [("add", "a"), ("add", "b"), ("update", "b"), ("delete", "a")]
    assert api.watch_rvs == ["10", "12", "12", "14"]


async def test_relist_on_410_reports_the_difference() -> None:
    api = ScriptedAPI(
        lists=[{"metadata": {"resourceVersion": "10"}, "items": [cm("a", 5), cm("b", 6)]},
               {"metadata": {"resourceVersion": "50"}, "items": [cm("a", 5), cm("c", 40)]}],
        watches=[errors.expired("too old resource version: 10 (20)")])
    seen = await run_informer(api)
    # b vanished while the watch was gone, c appeared, a did not change: no update for a.
    assert seen == [("add", "a"), ("add", "b"), ("delete", "b"), ("add", "c")]
    assert api.watch_rvs == ["10", "50"]


async def test_transforms_shape_what_handlers_get_and_what_the_cache_keeps() -> None:
    def full(name: str, rv: int) -> dict[str, Any]:
        return {**cm(name, rv), "data": {"k": name}, "junk": "x" * 100}

    api = ScriptedAPI(
        lists=[{"metadata": {"resourceVersion": "10"}, "items": [full("a", 5), full("b", 6)]},
               {"metadata": {"resourceVersion": "50"}, "items": [full("a", 45)]}],
        watches=[[WatchEvent("MODIFIED", full("b", 11))],
                 errors.expired("too old resource version: 11 (20)")])
    got: list[tuple[str, dict[str, Any]]] = []
    inf = SharedInformer(api, CM)
    inf.transform = lambda o: {"metadata": o["metadata"], "data": o.get("data")}
    inf.cache_transform = lambda o: {"metadata": o["metadata"]}
    inf.add_handlers(on_add=lambda o: got.append(("add", o)),
                     on_update=lambda old, new: got.append(("update", new)),
                     on_delete=lambda o: got.append(("delete", o)))
    await drive(inf, api)
    assert [(k, o["metadata"]["name"], o.get("data")) for k, o in got] == [
        ("add", "a", {"k": "a"}), ("add", "b", {"k": "b"}), ("update", "b", {"k": "b"}),
        ("delete", "b", None),  # found by the relist: the cache's stub
        ("update", "a", {"k": "a"})]
    assert all("junk" not in o for _, o in got)
    assert inf.indexer.items() == [{"metadata": cm("a", 45)["metadata"]}]
