"""Event recording: what a controller did, as ``v1`` Events that ``kubectl describe`` shows.

Repeated events (same object, reason and message) are aggregated into one Event whose
``count`` and ``lastTimestamp`` grow, as client-go's recorder does. Recording never raises
and never blocks the caller: writes happen in background tasks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from svcnet._util import rfc3339
from svcnet.client.api import MERGE_PATCH, APIClient
from svcnet.model import errors, kinds

log = logging.getLogger("svcnet.events")
EVENTS = kinds.lookup("", "events")
assert EVENTS is not None

Obj = dict[str, Any]


class EventRecorder:
    def __init__(self, client: APIClient, component: str, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self._counts: dict[str, int] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        """Record that ``reason``/``message`` happened to ``obj`` (type Normal|Warning)."""
        m = obj.get("metadata") or {}
        ns = m.get("namespace") or "default"
        involved = {"kind": obj.get("kind", ""), "namespace": m.get("namespace", ""),
                    "name": m.get("name", ""), "uid": m.get("uid", ""),
                    "apiVersion": obj.get("apiVersion", ""),
                    "resourceVersion": m.get("resourceVersion", "")}
        digest = hashlib.sha1(
            f"{m.get('uid')}/{reason}/{message}".encode()).hexdigest()[:10]
        name = f"{m.get('name', 'x')}.{digest}"
        count = self._counts.get(name, 0) + 1
        self._counts[name] = count
        task = asyncio.get_running_loop().create_task(
            self._write(ns, name, count, involved, type_, reason, message))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, ns: str, name: str, count: int, involved: Obj, type_: str,
                     reason: str, message: str) -> None:
        now = rfc3339.now()
        assert EVENTS is not None
        try:
            if count > 1:
                try:
                    await self.client.patch(EVENTS, ns, name, {
                        "count": count, "lastTimestamp": now}, MERGE_PATCH)
                    return
                except errors.APIError as e:
                    if e.code != 404:
                        raise
            await self.client.create(EVENTS, ns, {
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": involved, "reason": reason, "message": message,
                "type": type_, "count": count, "firstTimestamp": now, "lastTimestamp": now,
                "source": {"component": self.component, **({"host": self.host}
                                                           if self.host else {})},
                "reportingComponent": self.component, "reportingInstance": self.host,
            })
        except errors.APIError as e:
            if e.code != 409:
                log.debug("event %s/%s not recorded: %s", ns, name, e)
        except Exception:
            log.debug("event %s/%s not recorded", ns, name, exc_info=True)
