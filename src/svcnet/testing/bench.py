"""Shared pieces of the benchmarks in ``bench/``: percentiles and an HTTPS load client for
a :class:`~svcnet.testing.cluster.APIServerProcess`."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Iterable
from typing import Any

import aiohttp

from svcnet.testing.cluster import APIServerProcess


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; NaN when empty."""
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


class APILoad:
    """Keep-alive HTTPS sessions with the admin token, JSON calls, bounded concurrency."""

    def __init__(self, srv: APIServerProcess) -> None:
        self.srv = srv
        self.ssl = ssl.create_default_context(cafile=str(srv.ca_file))
        self.headers = {"Authorization": f"Bearer {srv.token}"}

    def session(self, limit: int = 32) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(self.srv.url, headers=self.headers,
                                     connector=aiohttp.TCPConnector(ssl=self.ssl, limit=limit))

    async def call(self, s: aiohttp.ClientSession, method: str, path: str, body: Any,
                   ctype: str = "application/json") -> Any:
        """One request; the decoded reply. Raises RuntimeError for a non-2xx answer."""
        async with s.request(method, path, data=json.dumps(body),
                             headers={"Content-Type": ctype}) as r:
            data = await r.read()
            if r.status >= 300:
                raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
            return json.loads(data)

    async def gather_limited(self, coros: Iterable[Awaitable[Any]], limit: int = 32) -> None:
        """Await every coroutine with at most ``limit`` running at once."""
        sem = asyncio.Semaphore(limit)

        async def one(c: Awaitable[Any]) -> None:
            async with sem:
                await c
        await asyncio.gather(*(one(c) for c in coros))
