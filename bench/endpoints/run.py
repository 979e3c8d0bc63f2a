"""Endpoints benchmark: 1,000 services x 10 pods on a real API server + controller-manager.

Measures
* propagation: time from a pod's Ready condition write (the API call returning) to the
  EndpointSlice watch event that carries the change, p50/p99 over many flips;
* resync: with the controller-manager stopped, one pod per service changes readiness;
  time from the controller-manager's start until every slice shows the change.

    python bench/endpoints/run.py [--services 1000] [--pods 10] [--flips 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from svcnet.testing.bench import APILoad, pct  # noqa: E402
from svcnet.testing.cluster import APIServerProcess  # noqa: E402

NS = "bench"



def pod_ip(svc: int, pod: int) -> str:
    n = svc * 16 + pod
    return f"10.244.{n // 250}.{n % 250 + 2}"


class Bench(APILoad):
    def __init__(self, srv: APIServerProcess) -> None:
        super().__init__(srv)

    async def set_ready(self, s: aiohttp.ClientSession, name: str, ip: str,
                        ready: bool) -> None:
        await self.call(s, "PATCH", f"/api/v1/namespaces/{NS}/pods/{name}/status", {
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready",
                                       "status": "True" if ready else "False"}]}},
            "application/merge-patch+json")

    async def populate(self, services: int, pods: int) -> float:
        t0 = time.perf_counter()
        async with self.session() as s:
            await self.call(s, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
            # The pods are bound to this node; without it they would be collected as
            # orphans.
            await self.call(s, "POST", "/api/v1/nodes", {
                "metadata": {"name": "node-1"},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
            await self.gather_limited([self.call(
                s, "POST", f"/api/v1/namespaces/{NS}/services",
                {"metadata": {"name": f"svc-{i}"},
                 "spec": {"selector": {"app": f"svc-{i}"}, "ports": [{"port": 80}]}})
                for i in range(services)])
            await self.gather_limited([self.call(
                s, "POST", f"/api/v1/namespaces/{NS}/pods",
                {"metadata": {"name": f"p-{i}-{j}", "labels": {"app": f"svc-{i}"}},
                 "spec": {"nodeName": "node-1",
                          "containers": [{"name": "c", "image": "nginx"}]}})
                for i in range(services) for j in range(pods)])
            await self.gather_limited([self.set_ready(s, f"p-{i}-{j}", pod_ip(i, j), True)
                                       for i in range(services) for j in range(pods)])
        return time.perf_counter() - t0

    async def slices(self) -> dict[str, dict[str, bool]]:
        """service name → {ip: ready} from every EndpointSlice in the namespace."""
        async with self.session() as s, s.get(
                f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices") as r:
            body = await r.json()
        out: dict[str, dict[str, bool]] = {}
        for sl in body["items"]:
            svc = sl["metadata"]["labels"].get("kubernetes.io/service-name", "")
            for ep in sl.get("endpoints") or []:
                for a in ep["addresses"]:
                    out.setdefault(svc, {})[a] = bool(ep["conditions"].get("ready"))
        return out

    async def wait_slices(self, want: dict[str, dict[str, bool]], timeout: float) -> float:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            got = await self.slices()
            if all(got.get(k) == v for k, v in want.items()):
                return time.perf_counter() - t0
            await asyncio.sleep(0.2)
        raise TimeoutError("slices did not converge")

    async def propagation(self, services: int, pods: int, flips: int
                          ) -> tuple[list[float], dict[tuple[int, int], bool]]:
        """Flip random pods' readiness; time until the slice event shows it."""
        lat: list[float] = []
        pending: dict[tuple[str, bool], float] = {}
        got = asyncio.Event()

        async def watcher(s: aiohttp.ClientSession) -> None:
            async with s.get(f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices",
                             params={"watch": "true", "resourceVersion": "0"},
                             timeout=aiohttp.ClientTimeout(total=None)) as r:
                async for line in r.content:
                    now = time.perf_counter()
                    ev = json.loads(line)
                    for ep in ev["object"].get("endpoints") or []:
                        key = (ep["addresses"][0], bool(ep["conditions"].get("ready")))
                        t = pending.pop(key, None)
                        if t is not None:
                            lat.append(now - t)
                            got.set()

        rng = random.Random(1)
        state: dict[tuple[int, int], bool] = {}
        async with self.session() as ws, self.session() as s:
            task = asyncio.create_task(watcher(ws))
            await asyncio.sleep(2.0)  # initial ADDED events
            for _ in range(flips):
                i, j = rng.randrange(services), rng.randrange(pods)
                ready = not state.get((i, j), True)
                state[(i, j)] = ready
                got.clear()
                await self.set_ready(s, f"p-{i}-{j}", pod_ip(i, j), ready)
                pending[(pod_ip(i, j), ready)] = time.perf_counter()
                try:
                    await asyncio.wait_for(got.wait(), 5)
                except TimeoutError:
                    pending.clear()
                await asyncio.sleep(0.02)
            task.cancel()
        return lat, state


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-ep-") as d:
        srv = APIServerProcess(Path(d))
        srv.start()
        try:
            b = Bench(srv)
            srv.start_controllers()
            fill = await b.populate(args.services, args.pods)
            print(f"populated in {fill:.1f}s", file=sys.stderr)
            want = {f"svc-{i}": {pod_ip(i, j): True for j in range(args.pods)}
                    for i in range(args.services)}
            converge = await b.wait_slices(want, 600)
            print(f"converged in {converge:.1f}s", file=sys.stderr)
            lat, flipped = await b.propagation(args.services, args.pods, args.flips)
            for (i, j), ready in flipped.items():
                want[f"svc-{i}"][pod_ip(i, j)] = ready
            print(f"{len(lat)} flips measured", file=sys.stderr)
            # Resync: stop the controllers, change one pod per service, restart.
            srv.stop_controllers()
            async with b.session() as s:
                await b.gather_limited([b.set_ready(s, f"p-{i}-0", pod_ip(i, 0), False)
                                        for i in range(args.services)])
            for i in range(args.services):
                want[f"svc-{i}"][pod_ip(i, 0)] = False
            t0 = time.perf_counter()
            srv.start_controllers()
            await b.wait_slices(want, 600)
            resync = time.perf_counter() - t0
            n = args.services * args.pods
            rows = [
                (f"create {args.services} services + {n} ready pods, s", fill),
                ("slices converged after that, s", converge),
                (f"Ready flip -> slice event, p50 ms ({len(lat)} flips)",
                 statistics.median(lat) * 1000 if lat else float("nan")),
                ("Ready flip -> slice event, p99 ms", pct(lat, 99) * 1000),
                (f"resync after restart ({args.services} changed services), s", resync),
            ]
            for k, v in rows:
                print(f"{k:<58} {v:10.3f}")
        finally:
            srv.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10)
    p.add_argument("--flips", type=int, default=200)
    args = p.parse_args()
    import uvloop  # a dependency of svcnet
    uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
