"""API server benchmark: create throughput, listing 10k services, watch event latency.

Runs a real ``svcnet apiserver`` on a free loopback port and drives it over HTTPS with
aiohttp (keep-alive, bearer token), as clients do. Prints medians; the machine is noisy.

    python bench/api/run.py [--creates 3000] [--services 10000] [--watchers 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import contextlib

from svcnet.testing.bench import pct  # noqa: E402
from svcnet.testing.cluster import APIServerProcess  # noqa: E402


class Bench:
    def __init__(self, srv: APIServerProcess) -> None:
        self.srv = srv
        self.ssl = ssl.create_default_context(cafile=str(srv.ca_file))
        self.headers = {"Authorization": f"Bearer {srv.token}",
                        "Content-Type": "application/json"}

    def session(self, limit: int = 64) -> aiohttp.ClientSession:
        conn = aiohttp.TCPConnector(ssl=self.ssl, limit=limit)
        return aiohttp.ClientSession(self.srv.url, connector=conn, headers=self.headers)

    async def create_many(self, path: str, bodies: list[dict[str, object]],
                          concurrency: int) -> float:
        """POST every body with ``concurrency`` requests in flight; returns writes/s."""
        queue = list(reversed(bodies))
        async with self.session(concurrency) as s:
            async def worker() -> None:
                while queue:
                    body = queue.pop()
                    async with s.post(path, data=json.dumps(body)) as r:
                        if r.status != 201:
                            raise RuntimeError(f"{r.status}: {await r.text()}")
                        await r.read()
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return len(bodies) / (time.perf_counter() - t0)

    async def create_throughput(self, n: int) -> dict[str, float]:
        await self.create_ns("bench-cm")
        out = {}
        for conc in (1, 32):
            bodies = [{"metadata": {"name": f"cm-{conc}-{i}"}, "data": {"k": "v" * 512}}
                      for i in range(n)]
            out[f"configmap creates/s (concurrency {conc})"] = await self.create_many(
                "/api/v1/namespaces/bench-cm/configmaps", bodies, conc)
        return out

    async def create_ns(self, name: str) -> None:
        async with self.session() as s, s.post("/api/v1/namespaces",
                                               data=json.dumps({"metadata": {"name": name}})):
            pass

    async def list_services(self, n: int) -> dict[str, float]:
        await self.create_ns("bench-svc")
        bodies = [{"metadata": {"name": f"svc-{i}", "labels": {"app": f"a{i % 10}"}},
                   "spec": {"selector": {"app": f"a{i}"}, "ports": [{"port": 80}]}}
                  for i in range(n)]
        rate = await self.create_many("/api/v1/namespaces/bench-svc/services", bodies, 32)
        res: dict[str, float] = {f"service creates/s ({n}, with ClusterIP allocation)": rate}
        table = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
        async with self.session() as s:
            for label, headers in (("JSON", {}), ("Table", table)):
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    async with s.get("/api/v1/namespaces/bench-svc/services",
                                     headers=headers) as r:
                        body = await r.read()
                    times.append(time.perf_counter() - t0)
                res[f"list {n} services as {label}, median s"] = statistics.median(times)
                res[f"list {n} services as {label}, MB"] = len(body) / 1e6
        return res

    async def watch_latency(self, watchers: int, writes: int, rate: float
                            ) -> dict[str, float]:
        ns = f"bench-w{watchers}-{int(rate)}"
        await self.create_ns(ns)
        sent: dict[str, float] = {}
        lat: list[float] = []
        name_re = re.compile(rb'"name":"(ev-\d+)"')
        ready = 0
        all_ready = asyncio.Event()
        done = asyncio.Event()
        received = [0]

        async def watcher(s: aiohttp.ClientSession) -> None:
            nonlocal ready
            async with s.get(f"/api/v1/namespaces/{ns}/configmaps",
                             params={"watch": "true", "resourceVersion": "0",
                                     "timeoutSeconds": "600"}) as r:
                ready += 1
                if ready == watchers:
                    all_ready.set()
                async for line in r.content:
                    now = time.perf_counter()
                    m = name_re.search(line)
                    if m and m.group(1).decode() in sent:
                        lat.append(now - sent[m.group(1).decode()])
                        received[0] += 1
                        if received[0] >= watchers * writes:
                            done.set()
                            return

        async def write(s: aiohttp.ClientSession, name: str) -> None:
            sent[name] = time.perf_counter()
            async with s.post(f"/api/v1/namespaces/{ns}/configmaps",
                              data=json.dumps({"metadata": {"name": name}})) as r:
                await r.read()

        async with self.session(watchers + 8) as ws, self.session(64) as s:
            tasks = [asyncio.create_task(watcher(ws)) for _ in range(watchers)]
            await asyncio.wait_for(all_ready.wait(), 30)
            await asyncio.sleep(0.5)
            interval = 1.0 / rate
            t0 = time.perf_counter()
            writers = []
            # Writes are issued on schedule (open loop), not one after another's reply.
            for i in range(writes):
                delay = t0 + i * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                writers.append(asyncio.create_task(write(s, f"ev-{i}")))
            await asyncio.gather(*writers)
            achieved = writes / (time.perf_counter() - t0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 60)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        key = f"{watchers} watchers @ {rate:.0f} writes/s"
        return {f"{key}: achieved writes/s": achieved,
                f"{key}: events delivered": float(len(lat)),
                f"{key}: events expected": float(watchers * writes),
                f"{key}: p50 ms": pct(lat, 50) * 1000,
                f"{key}: p99 ms": pct(lat, 99) * 1000}


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-") as d:
        srv = APIServerProcess(Path(d))
        srv.start()
        try:
            b = Bench(srv)
            results: dict[str, float] = {}
            results |= await b.create_throughput(args.creates)
            results |= await b.list_services(args.services)
            for rate in args.rates:
                results |= await b.watch_latency(args.watchers, args.events, rate)
            width = max(len(k) for k in results)
            for k, v in results.items():
                print(f"{k:<{width}}  {v:10.3f}")
        finally:
            srv.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--creates", type=int, default=3000)
    p.add_argument("--services", type=int, default=10000)
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--events", type=int, default=500)
    p.add_argument("--rates", type=float, nargs="+", default=[100.0, 1000.0])
    args = p.parse_args()
    import uvloop  # a dependency of svcnet
    uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
