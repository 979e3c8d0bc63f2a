"""Watch streams: store events → Kubernetes watch events, filtered and encoded.

A watch is a chunked HTTP response carrying one JSON object per line
(``{"type": ..., "object": ...}``). Objects that stop matching the selectors arrive as
DELETED, objects that start matching as ADDED, as the real API server's watch cache does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from svcnet.model import printing
from svcnet.model.kinds import ResourceInfo
from svcnet.model.selectors import FieldSelector, LabelSelector
from svcnet.store.base import Storage, WatchEvent

Obj = dict[str, Any]


@dataclass
class WatchFilter:
    label: LabelSelector
    field: FieldSelector
    kind: str

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        return self.label.matches((obj.get("metadata") or {}).get("labels")) and \
            self.field.matches(obj, self.kind)


def translate(ev: WatchEvent, flt: WatchFilter) -> tuple[str, Obj] | None:
    """The watch event a client with filter ``flt`` sees for a store event, or None."""
    new_ok = ev.type != "DELETED" and flt.matches(ev.obj)
    old_ok = flt.matches(ev.prev) if ev.type != "ADDED" else False
    if ev.type == "DELETED":
        return ("DELETED", ev.obj) if flt.matches(ev.obj) or old_ok else None
    if new_ok and old_ok:
        return "MODIFIED", ev.obj
    if new_ok:
        return "ADDED", ev.obj
    if old_ok:
        return "DELETED", ev.obj
    return None


class LineCache:
    """Encoded JSON lines for plain (non-Table) events, shared by every watcher: with
    many watchers the JSON encoding of each event is done once, not once per watcher."""

    def __init__(self, size: int = 4096) -> None:
        self._lines: OrderedDict[tuple[int, str, str], bytes] = OrderedDict()
        self._size = size

    def line(self, revision: int, key: str, etype: str, obj: Obj) -> bytes:
        k = (revision, key, etype)
        hit = self._lines.get(k)
        if hit is not None:
            return hit
        data = encode_event(etype, obj)
        self._lines[k] = data
        if len(self._lines) > self._size:
            self._lines.popitem(last=False)
        return data


def encode_event(etype: str, obj: Obj) -> bytes:
    return json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n"


class TableEncoder:
    """Encodes events as one-row Tables; column definitions only on the first event."""

    def __init__(self, r: ResourceInfo, include_object: str,
                 clock: Callable[[], dt.datetime]) -> None:
        self.r = r
        self.include_object = include_object
        self.clock = clock
        self.first = True

    def encode(self, etype: str, obj: Obj) -> bytes:
        table = printing.to_table(self.r.resource, self.r.group, [obj], self.clock(),
                                  include_object=self.include_object,
                                  resource_version=(obj.get("metadata") or {}).get(
                                      "resourceVersion", ""),
                                  with_columns=self.first)
        self.first = False
        return encode_event(etype, table)


def bookmark(r: ResourceInfo, revision: int, initial_events_end: bool = False) -> bytes:
    m: Obj = {"resourceVersion": str(revision)}
    if initial_events_end:
        m["annotations"] = {"k8s.io/initial-events-end": "true"}
    return encode_event("BOOKMARK", {"kind": r.kind, "apiVersion": r.api_version, "metadata": m})


PUMP_QUEUE_SIZE = 1024


class EventPump:
    """Moves a store watch into a queue so the HTTP side can wait with timeouts (waiting
    on an async generator directly with a timeout would close it)."""

    def __init__(self, store: Storage, prefix: str, revision: int) -> None:
        # Bounded: a client that reads slowly stalls its pump, its store subscription then
        # overflows and re-reads from the log (or ends with Expired) instead of this
        # process buffering without limit.
        self.queue: asyncio.Queue[WatchEvent | BaseException | None] = asyncio.Queue(
            maxsize=PUMP_QUEUE_SIZE)
        self._gen = store.watch(prefix, revision)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            async for ev in self._gen:
                await self.queue.put(ev)
            await self.queue.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # delivered to the reader, which ends the stream
            await self.queue.put(e)

    async def batches(self, timeout: float) -> AsyncIterator[list[WatchEvent]]:
        """Every event queued so far, as one batch (so a busy stream is written with one
        socket write per wakeup, not one per event); an empty batch when ``timeout``
        passes with none (a tick)."""
        while True:
            try:
                item = await asyncio.wait_for(self.queue.get(), timeout)
            except TimeoutError:
                yield []
                continue
            batch: list[WatchEvent] = []
            while True:
                if item is None:
                    if batch:
                        yield batch
                    return
                if isinstance(item, BaseException):
                    if batch:
                        yield batch
                    raise item
                batch.append(item)
                if self.queue.empty():
                    break
                item = self.queue.get_nowait()
            yield batch

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        with contextlib.suppress(Exception):
            await self._gen.aclose()  # type: ignore[attr-defined]
