"""The ``Storage`` protocol every backend (sqlite, etcd) implements.

Model (etcd-like, as the Kubernetes apiserver's storage interface):

* Keys are strings such as ``/apps/deployments/default/web`` (the apiserver builds them;
  backends treat them as opaque, ordered strings). Values are JSON-serialisable dicts.
* One global revision: a 64-bit integer that every successful write (create, update,
  delete) increments by exactly one. The revision of a write is stored into the written
  object as ``metadata.resourceVersion`` (a decimal string) by the backend, so that the
  object returned from a write, a get, a list or a watch always carries the revision at
  which it was last modified.
* Lists are consistent: every item and the list's revision come from one snapshot.
* ``guaranteed_update`` is compare-and-swap: it re-reads and retries when the key changed
  between read and write, so callers pass a pure function of the current object.
* ``watch(prefix, revision)`` yields every change with revision > ``revision`` under the
  prefix, in revision order, exactly once, and then follows live changes until the
  consumer stops iterating. A revision below the compacted revision raises
  :class:`Expired` (the API turns it into 410 Gone); revision 0 is not special here (the
  apiserver handles "watch from now" by listing first).
* ``compact(revision)`` forgets history at or below ``revision``; current values are kept.

Errors are the exceptions below; backends raise nothing else for expected conditions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Obj = dict[str, Any]


class StorageError(Exception):
    """Base of store errors; ``key`` names the key concerned."""

    def __init__(self, key: str, message: str = "") -> None:
        super().__init__(message or key)
        self.key = key


class KeyExists(StorageError):
    """create() of a key that already exists."""


class KeyNotFound(StorageError):
    """get/update/delete of a key that does not exist."""


class Conflict(StorageError):
    """A precondition (expected resourceVersion or uid) did not hold."""


class Expired(StorageError):
    """Watch or list from a revision that has been compacted.

    ``requested`` and ``oldest`` give the message ``too old resource version: R (O)``."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__("", f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


@dataclass(frozen=True)
class Preconditions:
    """Conditions a delete or update must meet; None means unchecked."""

    resource_version: str | None = None
    uid: str | None = None


@dataclass(frozen=True)
class WatchEvent:
    """One change. ``obj`` is the new value (for DELETED: the last value, with
    ``metadata.resourceVersion`` set to the deleting revision); ``prev`` is the value
    before the change (None for ADDED). Events may be shared between watchers:
    consumers must not mutate ``obj`` or ``prev``."""

    type: Literal["ADDED", "MODIFIED", "DELETED"]
    key: str
    obj: Obj
    prev: Obj | None
    revision: int


class UpdateAborted(Exception):  # noqa: N818 - mirrors a control-flow signal, not a failure
    """Raised by an update function to leave the stored object unchanged; the caller of
    ``guaranteed_update`` gets the exception back, unwrapped."""


UpdateFn = Callable[[Obj], Obj]


class Storage(Protocol):
    """The contract every backend meets (see module docstring)."""

    async def create(self, key: str, obj: Obj) -> Obj:
        """Store ``obj`` at a new ``key``; return it with ``metadata.resourceVersion`` set.
        Raises KeyExists."""
        ...

    async def get(self, key: str) -> Obj:
        """The current value. Raises KeyNotFound."""
        ...

    async def list(self, prefix: str, start_after: str = "", limit: int = 0
                   ) -> tuple[list[Obj], int]:
        """Every value whose key starts with ``prefix`` (and sorts after ``start_after``,
        when given), ordered by key, at most ``limit`` of them (0: all), and the store's
        current revision, from one consistent snapshot."""
        ...

    async def guaranteed_update(
        self, key: str, update: UpdateFn, preconditions: Preconditions | None = None
    ) -> Obj:
        """Apply ``update`` to the current value and store the result if it differs
        (an identical result is not a write: the current object is returned unchanged).
        ``update`` may be called more than once and may raise to abort; the error propagates.
        Raises KeyNotFound, Conflict (failed preconditions)."""
        ...

    async def delete(self, key: str, preconditions: Preconditions | None = None) -> Obj:
        """Remove ``key``; return the last value (resourceVersion = the deleting revision).
        Raises KeyNotFound, Conflict."""
        ...

    def watch(self, prefix: str, revision: int) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefix`` with revision > ``revision`` (see module docstring).
        Raises Expired (on first iteration) when ``revision`` < the compacted revision."""
        ...

    async def current_revision(self) -> int:
        ...

    async def compact(self, revision: int) -> None:
        """Forget history at or below ``revision``."""
        ...

    async def close(self) -> None:
        ...
