"""A fair, de-duplicating work queue with rate-limited retries (client-go's workqueue).

Contract:
* a key waiting in the queue is held once, however often it is added;
* a key is never handed to two workers at once: added while being processed, it is queued
  again when the worker calls :meth:`done`;
* keys come out in the order they were first added (fair);
* :meth:`add_rate_limited` re-adds after a per-key exponential delay (``base`` doubling up
  to ``maximum``) until :meth:`forget` resets it.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ShutDown(Exception):  # noqa: N818 - mirrors client-go's "shutting down" signal
    """Raised by :meth:`WorkQueue.get` once the queue is shut down and drained."""


class WorkQueue:
    def __init__(self, base: float = 0.005, maximum: float = 60.0) -> None:
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._cond = asyncio.Condition()
        self._shutdown = False
        self.base, self.maximum = base, maximum

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._cond:
                self._cond.notify()
        asyncio.get_running_loop().create_task(notify())

    async def get(self) -> str:
        """The next key; the caller must call :meth:`done` with it when finished."""
        async with self._cond:
            while not self._queue:
                if self._shutdown:
                    raise ShutDown()
                await self._cond.wait()
            key = self._queue.popleft()
            self._dirty.discard(key)
            self._processing.add(key)
            return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake()

    def add_after(self, key: str, delay: float) -> None:
        if self._shutdown:
            return
        if delay <= 0:
            self.add(key)
            return
        old = self._timers.get(key)
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        if old is not None:
            if old.when() <= when:
                return
            old.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)
        self._timers[key] = loop.call_at(when, fire)

    def add_rate_limited(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(self.maximum, self.base * (2 ** n)))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def shutdown(self) -> None:
        self._shutdown = True
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        async with self._cond:
            self._cond.notify_all()
