"""Pod start latency: create → Running (and → Ready) for N pods on one node agent.

Runs a real API server, controller-manager and ``svcnet agent`` (netns runtime as root,
else process), creates N bare pods of the echo image at once, and watches their status.
Prints p50/p99 of create-request → phase Running and → Ready condition True.

    python bench/agent/run.py [--pods 50] [--runtime netns|process]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from svcnet.testing.bench import pct  # noqa: E402
from svcnet.testing.cluster import (  # noqa: E402
    APIServerProcess,
    netns_names,
    remove_new_namespaces,
)


async def measure(srv: APIServerProcess, n: int) -> tuple[list[float], list[float]]:
    ctx = ssl.create_default_context(cafile=str(srv.ca_file))
    headers = {"Authorization": f"Bearer {srv.token}", "Content-Type": "application/json"}
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    ready: dict[str, float] = {}
    done = asyncio.Event()
    async with aiohttp.ClientSession(srv.url, headers=headers,
                                     connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        async with s.get("/api/v1/namespaces/default/pods") as r:
            rv = (await r.json())["metadata"]["resourceVersion"]

        async def watch() -> None:
            async with s.get("/api/v1/namespaces/default/pods",
                             params={"watch": "true", "resourceVersion": rv,
                                     "labelSelector": "bench=start"},
                             timeout=aiohttp.ClientTimeout(total=None)) as r:
                async for line in r.content:
                    now = time.perf_counter()
                    pod = json.loads(line)["object"]
                    name = pod["metadata"]["name"]
                    st = pod.get("status") or {}
                    if st.get("phase") == "Running":
                        running.setdefault(name, now)
                    if any(c.get("type") == "Ready" and c.get("status") == "True"
                           for c in st.get("conditions") or []):
                        ready.setdefault(name, now)
                    if len(ready) >= n:
                        done.set()
                        return

        task = asyncio.create_task(watch())
        await asyncio.sleep(0.5)

        async def create(i: int) -> None:
            name = f"start-{i}"
            created[name] = time.perf_counter()
            body = {"metadata": {"name": name, "labels": {"bench": "start"}},
                    "spec": {"containers": [{"name": "echo", "image": "nginx",
                                             "ports": [{"containerPort": 8080}],
                                             "env": [{"name": "PORT", "value": "8080"}]}]}}
            async with s.post("/api/v1/namespaces/default/pods", data=json.dumps(body)) as r:
                await r.read()
        await asyncio.gather(*(create(i) for i in range(n)))
        await asyncio.wait_for(done.wait(), 300)
        task.cancel()
    return ([running[k] - created[k] for k in running],
            [ready[k] - created[k] for k in ready])


async def main_async(args: argparse.Namespace) -> None:
    before = netns_names() if args.runtime == "netns" else set()
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-agent-") as d:
        srv = APIServerProcess(Path(d))
        srv.start()
        try:
            srv.start_controllers()
            srv.start_agent(args.runtime, node_name=f"bench-{uuid.uuid4().hex[:6]}")
            t0 = time.perf_counter()
            while "Ready" not in srv.kubectl("get", "nodes").stdout:
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("node not ready:\n" + srv.agent_log())
                await asyncio.sleep(0.2)
            run, ready = await measure(srv, args.pods)
            print(f"runtime {args.runtime}, {args.pods} pods created at once")
            for label, xs in (("create -> Running", run), ("create -> Ready", ready)):
                print(f"{label:<20} p50 {statistics.median(xs) * 1000:8.1f} ms   "
                      f"p99 {pct(xs, 99) * 1000:8.1f} ms")
        finally:
            srv.stop()
            if args.runtime == "netns":
                # The agent removes its pods' namespaces when stopped; whatever a slow
                # shutdown left is removed here, by name.
                left = remove_new_namespaces(before)
                if left:
                    print(f"removed {len(left)} namespaces the agent left behind",
                          file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pods", type=int, default=50)
    p.add_argument("--runtime", default="netns" if os.geteuid() == 0 else "process")
    args = p.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
