"""Shared informers: a reflector (list, then watch from the list's resourceVersion; relist
on 410; resume with back-off on disconnect) feeding an :class:`Indexer` and handlers.

Handlers are plain callables run on the event loop right after the cache changed; they
must be quick (record a key in a work queue) and must not mutate the objects they get.
Across reconnects no event is lost or repeated: a broken watch resumes from the last
resourceVersion seen, and a relist (after 410 Gone) is turned into the add/update/delete
calls that bring handlers to the listed state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from svcnet._util.backoff import Backoff
from svcnet.client.api import APIClient, TransportError
from svcnet.informer.cache import Indexer, IndexFunc, object_key
from svcnet.model import errors
from svcnet.model.kinds import ResourceInfo

log = logging.getLogger("svcnet.informer")

Obj = dict[str, Any]
AddFn = Callable[[Obj], None]
UpdateFn = Callable[[Obj, Obj], None]
DeleteFn = Callable[[Obj], None]


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


@dataclass
class _Handlers:
    on_add: AddFn | None = None
    on_update: UpdateFn | None = None
    on_delete: DeleteFn | None = None


LIST_PAGE_SIZE = 500


@dataclass
class SharedInformer:
    """One resource (optionally one namespace / selector) mirrored into ``indexer``."""

    client: APIClient
    resource: ResourceInfo
    namespace: str | None = None
    label_selector: str = ""
    field_selector: str = ""
    indexer: Indexer = field(default_factory=Indexer)
    watch_timeout: tuple[int, int] = (300, 600)
    _handlers: list[_Handlers] = field(default_factory=list)
    _synced: asyncio.Event = field(default_factory=asyncio.Event)
    _resource_version: str = ""
    # Applied to every object before it is cached or handed to handlers (client-go's
    # SetTransform): consumers that need a few fields keep only those. It must keep
    # metadata.name, metadata.namespace and metadata.resourceVersion.
    transform: Callable[[Obj], Obj] | None = None
    # What the cache keeps of each (transformed) object, when a consumer holds its own
    # view and only needs events: handlers still get the transformed object, except
    # deletions found by a relist (they get the kept stub) and ``old`` in updates. It
    # must keep metadata.name, metadata.namespace and metadata.resourceVersion.
    cache_transform: Callable[[Obj], Obj] | None = None

    def add_handlers(self, on_add: AddFn | None = None, on_update: UpdateFn | None = None,
                     on_delete: DeleteFn | None = None) -> None:
        """Register callbacks; objects already cached are replayed to ``on_add``."""
        h = _Handlers(on_add, on_update, on_delete)
        self._handlers.append(h)
        if on_add is not None:
            for obj in self.indexer.items():
                self._call(on_add, obj)

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        self.indexer.add_indexer(name, fn)

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    @property
    def last_resource_version(self) -> str:
        return self._resource_version

    # --- the reflector -----------------------------------------------------------------

    async def run(self) -> None:
        """Mirror the resource until cancelled."""
        backoff = Backoff(initial=0.2, maximum=10.0)
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except errors.APIError as e:
                if e.code == 410:
                    log.info("%s: watch expired (%s); relisting", self.resource.resource,
                             e.message)
                    need_list = True
                    continue
                delay = backoff.next()
                if not isinstance(e, TransportError):
                    log.warning("%s: %s; retrying in %.1fs", self.resource.resource, e, delay)
                await asyncio.sleep(delay)
            except Exception:
                delay = backoff.next()
                log.exception("%s: reflector failed; retrying in %.1fs",
                              self.resource.resource, delay)
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        # Paged like client-go (500 per page), transforming page by page, so the full
        # objects of a large list never all live at once. The watch resumes from the first
        # page's resourceVersion: pages read later state, and replaying the events since
        # then can only repeat a change, never miss one.
        items: list[Obj] = []
        token, first_rv = "", None
        while True:
            page = await self.client.list(self.resource, self.namespace,
                                          label_selector=self.label_selector,
                                          field_selector=self.field_selector,
                                          limit=LIST_PAGE_SIZE, continue_token=token)
            meta = page.get("metadata") or {}
            if first_rv is None:
                first_rv = str(meta.get("resourceVersion", ""))
            got = page.get("items") or []
            items.extend(got if self.transform is None else [self.transform(o) for o in got])
            token = str(meta.get("continue") or "")
            if not token:
                break
        lst: Obj = {"metadata": {"resourceVersion": first_rv}}
        full: dict[str, Obj] = {}
        if self.cache_transform is not None:
            full = {object_key(o): o for o in items}
            items = [self.cache_transform(o) for o in items]
        added, updated, deleted = self.indexer.replace(items)
        for obj in deleted:
            self._dispatch_delete(obj)
        for old, new in updated:
            if _rv(old) != _rv(new):
                self._dispatch_update(old, full.get(object_key(new), new))
        for obj in added:
            self._dispatch_add(full.get(object_key(obj), obj))
        self._resource_version = str((lst.get("metadata") or {}).get("resourceVersion", ""))
        self._synced.set()

    async def _watch(self) -> None:
        timeout = random.randint(*self.watch_timeout)
        async for ev in self.client.watch(
                self.resource, self.namespace, resource_version=self._resource_version,
                label_selector=self.label_selector, field_selector=self.field_selector,
                allow_bookmarks=True, timeout_seconds=timeout):
            obj = ev.object
            rv = _rv(obj)
            if ev.type == "BOOKMARK":
                if rv:
                    self._resource_version = rv
                continue
            if self.transform is not None:
                obj = self.transform(obj)
            if ev.type in ("ADDED", "MODIFIED"):
                old = self.indexer.upsert(
                    obj if self.cache_transform is None else self.cache_transform(obj))
                if old is None:
                    self._dispatch_add(obj)
                else:
                    self._dispatch_update(old, obj)
            elif ev.type == "DELETED":
                old = self.indexer.delete(object_key(obj))
                self._dispatch_delete(obj if old is None else obj)
            if rv:
                self._resource_version = rv

    # --- dispatch ----------------------------------------------------------------------

    @staticmethod
    def _call(fn: Callable[..., None], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("informer handler %r failed", fn)

    def _dispatch_add(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_add:
                self._call(h.on_add, obj)

    def _dispatch_update(self, old: Obj, new: Obj) -> None:
        for h in self._handlers:
            if h.on_update:
                self._call(h.on_update, old, new)

    def _dispatch_delete(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_delete:
                self._call(h.on_delete, obj)


class InformerFactory:
    """One shared informer per (resource, namespace, selectors); started together."""

    def __init__(self, client: APIClient) -> None:
        self.client = client
        self._informers: dict[tuple[str, str, str, str, str], SharedInformer] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def informer(self, r: ResourceInfo, namespace: str | None = None,
                 label_selector: str = "", field_selector: str = "") -> SharedInformer:
        key = (r.group, r.resource, namespace or "", label_selector, field_selector)
        inf = self._informers.get(key)
        if inf is None:
            inf = SharedInformer(self.client, r, namespace, label_selector, field_selector)
            self._informers[key] = inf
            if self._tasks:  # already started: start this one too
                self._tasks.append(asyncio.get_running_loop().create_task(inf.run()))
        return inf

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for inf in self._informers.values():
            self._tasks.append(loop.create_task(inf.run()))

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """True once every informer has listed once; False on timeout."""
        try:
            await asyncio.wait_for(
                asyncio.gather(*(i.wait_synced() for i in self._informers.values())), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
