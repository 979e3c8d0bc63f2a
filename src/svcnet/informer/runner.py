"""Bounded-frequency runner (kube-proxy's ``async.BoundedFrequencyRunner``).

Runs an async function:
* when poked with :meth:`run`, at most ``burst`` times in quick succession and otherwise
  no more often than every ``min_interval`` (pokes in between are merged into one run);
* at least every ``max_interval`` even when nobody pokes;
* after a failure (the function raised), again after ``retry_interval`` (a retry is a
  run like any other and still respects ``min_interval``).

Time comes from the injected ``clock`` (``loop.time`` by default) so tests can reason
about the schedule; waiting uses ``asyncio`` timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("svcnet.runner")


class BoundedFrequencyRunner:
    def __init__(self, name: str, fn: Callable[[], Awaitable[None]], min_interval: float,
                 max_interval: float, burst: int = 2, retry_interval: float | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        if min_interval > max_interval:
            raise ValueError("min_interval must not exceed max_interval")
        self.name = name
        self.fn = fn
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.retry_interval = retry_interval if retry_interval is not None else max_interval
        self.burst = max(1, burst)
        self._clock = clock
        self._wake = asyncio.Event()
        self._tokens = float(self.burst)
        self._last_refill: float | None = None
        self._next_deadline: float | None = None
        self.runs = 0
        self.failures = 0

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def run(self) -> None:
        """Ask for a run as soon as the rate limit allows."""
        self._wake.set()

    def _refill(self, now: float) -> None:
        if self._last_refill is None:
            self._last_refill = now
            return
        if self.min_interval > 0:
            self._tokens = min(float(self.burst),
                               self._tokens + (now - self._last_refill) / self.min_interval)
        else:
            self._tokens = float(self.burst)
        self._last_refill = now

    async def loop(self) -> None:
        """Run until cancelled."""
        self._next_deadline = self._now() + self.max_interval
        while True:
            timeout = max(0.0, self._next_deadline - self._now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            now = self._now()
            self._refill(now)
            if self._tokens < 1.0:
                wait = (1.0 - self._tokens) * self.min_interval
                await asyncio.sleep(wait)
                now = self._now()
                self._refill(now)
            self._tokens -= 1.0
            self._wake.clear()
            await self._run_once()

    async def _run_once(self) -> None:
        self.runs += 1
        try:
            await self.fn()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failures += 1
            log.exception("%s: run failed; retrying in %.2fs", self.name, self.retry_interval)
            self._next_deadline = self._now() + self.retry_interval
            return
        self._next_deadline = self._now() + self.max_interval
