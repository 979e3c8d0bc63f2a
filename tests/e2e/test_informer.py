"""The informer against a real API server: list, watch, and a server restart in the middle
without a lost or repeated event."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

from svcnet.client.api import APIClient
from svcnet.informer.shared import InformerFactory
from svcnet.model import kinds
from svcnet.testing.cluster import APIServerProcess

CM = kinds.lookup("", "configmaps")
assert CM is not None


async def wait_for(cond: object, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_informer_survives_api_server_restart(tmp_path: Path) -> None:
    srv = APIServerProcess(tmp_path / "data")
    srv.start()
    client = APIClient.from_kubeconfig(srv.kubeconfig)
    factory = InformerFactory(client)
    inf = factory.informer(CM, "default")
    adds: list[str] = []
    deletes: list[str] = []
    inf.add_handlers(on_add=lambda o: adds.append(o["metadata"]["name"]),
                     on_delete=lambda o: deletes.append(o["metadata"]["name"]))
    try:
        for i in range(3):
            await client.create(CM, "default", {"metadata": {"name": f"before-{i}"}})
        factory.start()
        assert await factory.wait_for_sync(10)
        await client.create(CM, "default", {"metadata": {"name": "live"}})
        await wait_for(lambda: "live" in adds)
        srv.stop()
        srv.start()  # same port and data: the watch resumes from its resourceVersion
        for i in range(3):
            await client.create(CM, "default", {"metadata": {"name": f"after-{i}"}})
        await client.delete(CM, "default", "before-0")
        await wait_for(lambda: "after-2" in adds and "before-0" in deletes)
        assert sorted(adds) == sorted([f"before-{i}" for i in range(3)] + ["live"]
                                      + [f"after-{i}" for i in range(3)])
        assert deletes == ["before-0"]
        assert sorted(inf.indexer.keys()) == sorted(
            f"default/{n}" for n in ["before-1", "before-2", "live", "after-0", "after-1",
                                     "after-2"])
    finally:
        with contextlib.suppress(Exception):
            await factory.stop()
        await client.close()
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)
