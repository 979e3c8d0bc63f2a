"""The controller pattern: informer events → keys → a work queue → ``sync(key)``.

A controller subclasses :class:`Controller` (which keeps the API client and the event
recorder it is given), registers informer handlers in ``__init__``
that call :meth:`Controller.enqueue` (or ``enqueue_key``), and implements
``sync(key)``: read the informer caches, compute the desired state, write only what
differs. ``sync`` is idempotent; raising makes the key retry with back-off (retries live
here, not in ``sync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from svcnet.client.api import APIClient
from svcnet.client.events import EventRecorder
from svcnet.informer.cache import object_key
from svcnet.informer.workqueue import ShutDown, WorkQueue

Obj = dict[str, Any]


class Controller:
    """Base class: owns the queue and the workers."""

    name = "controller"
    workers = 2
    max_retries = 15

    def __init__(self, client: APIClient, recorder: EventRecorder) -> None:
        self.client = client
        self.recorder = recorder
        self.queue = WorkQueue()
        self.log = logging.getLogger(f"svcnet.controllers.{self.name}")
        self._tasks: list[asyncio.Task[None]] = []

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    def enqueue_key(self, key: str) -> None:
        self.queue.add(key)

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.sync(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                n = self.queue.num_requeues(key)
                if n < self.max_retries:
                    self.log.info("sync %s failed (%s); retry %d", key, e, n + 1)
                    self.queue.add_rate_limited(key)
                else:
                    self.log.exception("sync %s failed %d times; dropping", key, n + 1)
                    self.queue.forget(key)
            finally:
                self.queue.done(key)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._worker()) for _ in range(self.workers)]

    async def stop(self) -> None:
        await self.queue.shutdown()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
