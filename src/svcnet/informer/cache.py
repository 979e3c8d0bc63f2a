"""The informer's local cache: objects by key, plus secondary indexes.

Keys are ``namespace/name`` (``name`` for cluster-scoped objects), as client-go's
``MetaNamespaceKeyFunc``. Objects in the cache are shared with every reader and must not
be mutated; copy before changing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]


def object_key(obj: Obj) -> str:
    m = obj.get("metadata") or {}
    ns = m.get("namespace")
    return f"{ns}/{m.get('name', '')}" if ns else str(m.get("name", ""))


def split_key(key: str) -> tuple[str | None, str]:
    """``(namespace, name)`` of a key; namespace None for cluster-scoped keys."""
    if "/" in key:
        ns, name = key.split("/", 1)
        return ns, name
    return None, key


def by_namespace(obj: Obj) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [ns] if ns else []


def by_owner_uid(obj: Obj) -> list[str]:
    return [o["uid"] for o in (obj.get("metadata") or {}).get("ownerReferences") or []
            if o.get("uid")]


def by_controller_uid(obj: Obj) -> list[str]:
    return [o["uid"] for o in (obj.get("metadata") or {}).get("ownerReferences") or []
            if o.get("uid") and o.get("controller")]


class Indexer:
    """A keyed object store with named indexes kept in step on every change."""

    def __init__(self, indexers: dict[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {"namespace": by_namespace, **(indexers or {})}
        self._indices: dict[str, dict[str, set[str]]] = {n: {} for n in self._indexers}

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        """Add an index; existing objects are indexed at once."""
        if name in self._indexers:
            return
        self._indexers[name] = fn
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index(name, key, obj)

    def _index(self, name: str, key: str, obj: Obj) -> None:
        idx = self._indices[name]
        for v in self._indexers[name](obj):
            idx.setdefault(v, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._indexers.items():
            idx = self._indices[name]
            for v in fn(obj):
                keys = idx.get(v)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del idx[v]

    def upsert(self, obj: Obj) -> Obj | None:
        """Store ``obj``; returns the previous object with that key, if any."""
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._indexers:
            self._index(name, key, obj)
        return old

    def delete(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def replace(self, objs: Iterable[Obj]) -> tuple[list[Obj], list[tuple[Obj, Obj]], list[Obj]]:
        """Make the cache hold exactly ``objs``; returns (added, updated as (old, new),
        deleted) so that a relist can be turned into events."""
        fresh = {object_key(o): o for o in objs}
        deleted = [self.delete(k) for k in list(self._items) if k not in fresh]
        added: list[Obj] = []
        updated: list[tuple[Obj, Obj]] = []
        for obj in fresh.values():
            old = self.upsert(obj)
            if old is None:
                added.append(obj)
            else:
                updated.append((old, obj))
        return added, updated, [d for d in deleted if d is not None]

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def get_by(self, namespace: str | None, name: str) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def items(self) -> list[Obj]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def by_index(self, name: str, value: str) -> list[Obj]:
        return [self._items[k] for k in sorted(self._indices[name].get(value, ()))]

    def __len__(self) -> int:
        return len(self._items)
