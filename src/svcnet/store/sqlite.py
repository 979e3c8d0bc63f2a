"""The embedded storage backend: one SQLite file holding current values and a revision log.

Layout (kine-style, stdlib :mod:`sqlite3`):

* ``kv``   - the current state: ``key`` (primary key), ``value`` (JSON text, carrying
  ``metadata.resourceVersion``), ``create_revision``, ``mod_revision``.
* ``log``  - one row per write: ``revision`` (integer primary key), ``key``, ``type``
  (``ADDED``/``MODIFIED``/``DELETED``), ``value`` (the new value; for DELETED the last value
  with the deleting revision) and ``prev`` (the value before the write, NULL for ADDED).
  Watches read history from here.
* ``meta`` - ``compact_revision`` (history at or below it is gone) and ``schema_version``.

The global revision is ``max(max(log.revision), compact_revision)``: compaction records the
revision it compacted to before deleting rows, so the revision never goes backwards, not
even after compacting everything and reopening.

Ownership and concurrency. :class:`SQLiteStorage` owns one connection, opened in the
constructor and used only from the event-loop thread. SQLite calls are short and run
inline in the ``async`` methods; a write (read-check-write plus commit) therefore never
interleaves with another coroutine's write, and ``guaranteed_update`` calls its function
exactly once. The file is opened in ``locking_mode=EXCLUSIVE`` so that a second process
(for example a second API server pointed at the same data dir) fails at open with
:class:`StoreInUse` instead of writing behind this process's in-memory watch fan-out.

Durability. WAL journal with ``synchronous=NORMAL``: a transaction is committed once its
frames are appended to the WAL file, which is in the OS page cache when ``commit`` returns.
Such a transaction survives the process being killed (``kill -9``); only an OS crash or
power loss may lose the last transactions (never corrupting the file).

Watches. Every committed write is offered to each in-process watcher whose prefix matches,
into a bounded buffer. A watcher first replays the log from the database (in pages), then
follows its buffer; it registers before reading so nothing falls between the two, and
skips buffered events it has already delivered. A watcher whose buffer overflows (the
consumer fell more than ``watch_buffer`` events behind) drops the buffer and re-reads the
missed events from the log; only if compaction removed them does it raise
:class:`~svcnet.store.base.Expired` so that the client relists. Each watcher decodes its
own copies of the objects, so consumers may mutate what they receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterator
from typing import Literal, NamedTuple, cast

from svcnet.store.base import (
    Conflict,
    Expired,
    KeyExists,
    KeyNotFound,
    Obj,
    Preconditions,
    UpdateFn,
    WatchEvent,
)

__all__ = ["SQLiteStorage", "StoreInUse"]

SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        create_revision INTEGER NOT NULL,
        mod_revision INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS log (
        revision INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        prev TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS meta (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

_EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class StoreInUse(RuntimeError):
    """The database file is held by another process (or another open store)."""


class _Row(NamedTuple):
    """One log entry as stored: the unit of both catch-up reads and live fan-out."""

    revision: int
    key: str
    type: str
    value: str
    prev: str | None


# Decoded watch events kept for sharing between watchers (by revision).
_EVENT_CACHE_SIZE = 4096


class _Signal:
    """What a watcher's buffer yields besides rows."""


_Rows = list[_Row]  # spelled here: inside the class, ``list`` is the method

_OVERFLOW = _Signal()
_CLOSED = _Signal()


class _Subscriber:
    """A watcher's bounded buffer of live rows under ``prefix``.

    ``offer`` never blocks the writer: on overflow it drops everything and records that
    the watcher must re-read from the log (``take`` then returns ``_OVERFLOW``)."""

    __slots__ = ("prefix", "limit", "rows", "overflowed", "closed", "wakeup")

    def __init__(self, prefix: str, limit: int) -> None:
        self.prefix = prefix
        self.limit = limit
        self.rows: deque[_Row] = deque()
        self.overflowed = False
        self.closed = False
        self.wakeup = asyncio.Event()

    def offer(self, row: _Row) -> None:
        if self.overflowed or self.closed:
            return
        if len(self.rows) >= self.limit:
            self.rows.clear()
            self.overflowed = True
        else:
            self.rows.append(row)
        self.wakeup.set()

    def close(self) -> None:
        self.closed = True
        self.rows.clear()
        self.wakeup.set()

    def resync(self) -> None:
        """Forget the overflow; the caller re-reads the log synchronously after this."""
        self.overflowed = False

    async def take(self) -> _Row | _Signal:
        while not (self.rows or self.overflowed or self.closed):
            self.wakeup.clear()
            await self.wakeup.wait()
        if self.closed:
            return _CLOSED
        if self.overflowed:
            return _OVERFLOW
        return self.rows.popleft()


# --- pure helpers -----------------------------------------------------------------------


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """``(lo, hi)`` such that ``key.startswith(prefix)`` iff ``lo <= key < hi`` (``hi`` None:
    no upper bound). Code-point order equals SQLite's BINARY (UTF-8 byte) order."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1])
        if code < 0x10FFFF:
            nxt = code + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates are not encodable; skip them
                nxt = 0xE000
            chars[-1] = chr(nxt)
            return prefix, "".join(chars)
        chars.pop()
    return prefix, None


def _with_rv(obj: Obj, rv: str) -> Obj:
    """A shallow copy of ``obj`` whose (copied) metadata has ``resourceVersion = rv``."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta["resourceVersion"] = rv
    out["metadata"] = meta
    return out


def _encode(obj: Obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _decode(text: str) -> Obj:
    return cast(Obj, json.loads(text))


def _event(row: _Row) -> WatchEvent:
    prev = _decode(row.prev) if row.prev is not None else None
    return WatchEvent(cast(_EventType, row.type), row.key, _decode(row.value), prev, row.revision)


def _check_preconditions(key: str, current: Obj, pre: Preconditions | None) -> None:
    """Raise Conflict (with apiserver wording) unless ``current`` meets ``pre``."""
    if pre is None:
        return
    meta = current.get("metadata") or {}
    if pre.uid is not None and pre.uid != meta.get("uid"):
        raise Conflict(
            key,
            f"Precondition failed: UID in precondition: {pre.uid}, "
            f"UID in object meta: {meta.get('uid', '')}",
        )
    if pre.resource_version is not None and pre.resource_version != meta.get("resourceVersion"):
        raise Conflict(
            key,
            f"Precondition failed: ResourceVersion in precondition: {pre.resource_version}, "
            f"ResourceVersion in object meta: {meta.get('resourceVersion', '')}",
        )


# --- the store ---------------------------------------------------------------------------


class SQLiteStorage:
    """:class:`~svcnet.store.base.Storage` on one SQLite file (see module docstring).

    ``SQLiteStorage(path)`` opens (creating if needed) the database synchronously; there is
    no separate ``open`` step. Call :meth:`close` when done (idempotent). Raises
    :class:`StoreInUse` if another process holds the file.

    ``watch_buffer`` bounds each watcher's live buffer (events); ``watch_page`` is how many
    log rows a watcher reads per catch-up query; ``compact_batch`` is how many log rows one
    compaction transaction deletes before yielding to the event loop."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        watch_buffer: int = 10_000,
        watch_page: int = 1_000,
        compact_batch: int = 1_000,
    ) -> None:
        self.path = os.fspath(path)
        self._watch_buffer = watch_buffer
        self._watch_page = watch_page
        self._compact_batch = compact_batch
        self._subs: set[_Subscriber] = set()
        self._event_cache: OrderedDict[int, WatchEvent] = OrderedDict()
        self._closed = False
        self._conn = self._open(self.path)
        self._rev, self._compacted = self._load_revisions()

    # -- opening ----------------------------------------------------------------------

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=True)
        try:
            # Only takes effect when the file is created. Objects are typically 1-5 KB:
            # with 8 KiB pages a 2 KB value wastes far less space than with 4 KiB pages.
            conn.execute("PRAGMA page_size=8192")
            # EXCLUSIVE before WAL: the WAL index lives in process memory and the file lock
            # is held until close, so no other process can open the store meanwhile.
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: committed transactions survive kill -9 (they are in the WAL in
            # the page cache); only power loss / OS crash can drop the newest ones.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA:
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO meta(name, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(name) DO NOTHING",
                (SCHEMA_VERSION,),
            )
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreInUse(f"sqlite store {path} is in use by another process") from exc
            raise
        return conn

    def _load_revisions(self) -> tuple[int, int]:
        (top,) = self._conn.execute("SELECT coalesce(max(revision), 0) FROM log").fetchone()
        row = self._conn.execute(
            "SELECT value FROM meta WHERE name = 'compact_revision'"
        ).fetchone()
        compacted = int(row[0]) if row else 0
        return max(int(top), compacted), compacted

    # -- plumbing -----------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"sqlite store {self.path} is closed")
        return self._conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on normal exit, rolled back (and
        the exception re-raised unchanged) otherwise."""
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _committed(self, row: _Row) -> None:
        """Advance the revision and fan the committed row out to matching watchers."""
        self._rev = row.revision
        for sub in self._subs:
            if row.key.startswith(sub.prefix):
                sub.offer(row)

    @staticmethod
    def _current_text(conn: sqlite3.Connection, key: str) -> str:
        found = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        if found is None:
            raise KeyNotFound(key)
        return cast(str, found[0])

    # -- Storage ------------------------------------------------------------------------

    async def create(self, key: str, obj: Obj) -> Obj:
        """Insert ``obj`` (not mutated) at ``key``; return a fresh copy as stored, with
        ``metadata.resourceVersion`` set. Raises KeyExists."""
        rev = self._rev + 1
        text = _encode(_with_rv(obj, str(rev)))
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO kv(key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key) DO NOTHING",
                (key, text, rev, rev),
            )
            if cur.rowcount == 0:
                raise KeyExists(key)
            conn.execute(
                "INSERT INTO log(revision, key, type, value, prev) VALUES (?, ?, 'ADDED', ?, NULL)",
                (rev, key, text),
            )
        self._committed(_Row(rev, key, "ADDED", text, None))
        return _decode(text)

    async def get(self, key: str) -> Obj:
        """A fresh copy of the current value. Raises KeyNotFound."""
        return _decode(self._current_text(self._db(), key))

    async def list(self, prefix: str, start_after: str = "", limit: int = 0
                   ) -> tuple[list[Obj], int]:
        """Values under ``prefix`` (after ``start_after``) ordered by key, at most
        ``limit`` (0: all), and the revision they were read at."""
        lo, hi = prefix_range(prefix)
        conn = self._db()
        sql = "SELECT value FROM kv WHERE key >= ?"
        args: list[object] = [lo]
        if start_after:
            sql += " AND key > ?"
            args.append(start_after)
        if hi is not None:
            sql += " AND key < ?"
            args.append(hi)
        sql += " ORDER BY key"
        if limit > 0:
            sql += " LIMIT ?"
            args.append(limit)
        cur = conn.execute(sql, args)
        texts = [t for (t,) in cur.fetchall()]
        # One statement is one snapshot, and no write can run before we read _rev.
        rev = self._rev
        return [_decode(t) for t in texts], rev

    async def guaranteed_update(
        self, key: str, update: UpdateFn, preconditions: Preconditions | None = None
    ) -> Obj:
        """Store ``update(copy of current)`` with a new revision; ``update``'s result is not
        mutated. If that result equals the current object (``==``, once given the current
        resourceVersion) nothing is written and the current object is returned. Exceptions
        from ``update`` propagate unchanged with nothing written. Raises KeyNotFound,
        Conflict."""
        with self._write() as conn:
            prev_text = self._current_text(conn, key)
            current = _decode(prev_text)
            _check_preconditions(key, current, preconditions)
            updated = update(_decode(prev_text))
            old_rv = str(current.get("metadata", {}).get("resourceVersion", ""))
            if _with_rv(updated, old_rv) == current:
                return current
            rev = self._rev + 1
            text = _encode(_with_rv(updated, str(rev)))
            conn.execute(
                "UPDATE kv SET value = ?, mod_revision = ? WHERE key = ?", (text, rev, key)
            )
            conn.execute(
                "INSERT INTO log(revision, key, type, value, prev) "
                "VALUES (?, ?, 'MODIFIED', ?, ?)",
                (rev, key, text, prev_text),
            )
        self._committed(_Row(rev, key, "MODIFIED", text, prev_text))
        return _decode(text)

    async def delete(self, key: str, preconditions: Preconditions | None = None) -> Obj:
        """Remove ``key``; return its last value with resourceVersion = the deleting
        revision. Raises KeyNotFound, Conflict."""
        with self._write() as conn:
            prev_text = self._current_text(conn, key)
            current = _decode(prev_text)
            _check_preconditions(key, current, preconditions)
            rev = self._rev + 1
            text = _encode(_with_rv(current, str(rev)))
            conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            conn.execute(
                "INSERT INTO log(revision, key, type, value, prev) "
                "VALUES (?, ?, 'DELETED', ?, ?)",
                (rev, key, text, prev_text),
            )
        self._committed(_Row(rev, key, "DELETED", text, prev_text))
        return _decode(text)

    async def watch(self, prefix: str, revision: int) -> AsyncIterator[WatchEvent]:
        """Events under ``prefix`` with revision > ``revision``: history from the log, then
        live, gap-free and without duplicates. Raises Expired when the needed history is
        compacted (on first iteration, or later if the consumer fell behind both its
        buffer and compaction). Ends when the store is closed. Closing the generator
        (``aclose()``, e.g. via ``contextlib.aclosing``) unregisters the watcher; a generator
        merely abandoned after ``break`` is unregistered when it is garbage-collected."""
        sub = _Subscriber(prefix, self._watch_buffer)
        self._db()
        self._subs.add(sub)
        try:
            last = revision
            while not self._closed:
                # Catch-up: everything already committed, read page by page.
                while not self._closed:
                    if last < self._compacted:
                        raise Expired(last, self._compacted)
                    rows = self._read_log(prefix, last, self._watch_page)
                    for row in rows:
                        last = row.revision
                        yield self._shared_event(row)
                    if len(rows) < self._watch_page:
                        break
                # Live: rows committed after the last read (older duplicates skipped).
                while True:
                    item = await sub.take()
                    if item is _CLOSED:
                        return
                    if item is _OVERFLOW:
                        sub.resync()
                        break
                    row = cast(_Row, item)
                    if row.revision <= last:
                        continue
                    last = row.revision
                    yield self._shared_event(row)
        finally:
            self._subs.discard(sub)

    def _shared_event(self, row: _Row) -> WatchEvent:
        """The decoded event for ``row``, decoded once and shared by every watcher (the
        Storage contract forbids consumers to mutate events). With 100 watchers,
        decoding per watcher cost 200 ``json.loads`` per write and capped fan-out at a
        few hundred writes/s; shared, it is one decode per write."""
        ev = self._event_cache.get(row.revision)
        if ev is None:
            ev = _event(row)
            self._event_cache[row.revision] = ev
            if len(self._event_cache) > _EVENT_CACHE_SIZE:
                self._event_cache.popitem(last=False)
        return ev

    def _read_log(self, prefix: str, after: int, limit: int) -> _Rows:
        lo, hi = prefix_range(prefix)
        conn = self._db()
        if hi is None:
            cur = conn.execute(
                "SELECT revision, key, type, value, prev FROM log "
                "WHERE revision > ? AND key >= ? ORDER BY revision LIMIT ?",
                (after, lo, limit),
            )
        else:
            cur = conn.execute(
                "SELECT revision, key, type, value, prev FROM log "
                "WHERE revision > ? AND key >= ? AND key < ? ORDER BY revision LIMIT ?",
                (after, lo, hi, limit),
            )
        return [_Row(*r) for r in cur.fetchall()]

    async def current_revision(self) -> int:
        """The revision of the newest write (0 for an empty, never-written store)."""
        self._db()
        return self._rev

    async def compacted_revision(self) -> int:
        """History at or below this revision is gone (0: nothing compacted)."""
        self._db()
        return self._compacted

    async def compact(self, revision: int) -> None:
        """Forget log rows at or below ``revision`` (clamped to the current revision; a
        revision at or below the compacted one is a no-op). The compacted revision is
        recorded first, atomically with the first batch, so watchers never see a partial
        history; rows are then deleted in batches, yielding to the loop between them."""
        target = min(revision, self._rev)
        if target <= self._compacted:
            return
        with self._write() as conn:
            conn.execute(
                "INSERT INTO meta(name, value) VALUES ('compact_revision', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value "
                "WHERE excluded.value > meta.value",
                (target,),
            )
            more = self._delete_batch(conn, target)
        self._compacted = max(self._compacted, target)
        while more and not self._closed:
            await asyncio.sleep(0)
            if self._closed:
                return
            with self._write() as conn:
                more = self._delete_batch(conn, target)

    def _delete_batch(self, conn: sqlite3.Connection, target: int) -> bool:
        """Delete up to ``compact_batch`` oldest rows at or below ``target``; True if rows
        at or below ``target`` may remain."""
        (oldest,) = conn.execute("SELECT min(revision) FROM log").fetchone()
        if oldest is None or oldest > target:
            return False
        upto = min(target, int(oldest) + self._compact_batch - 1)
        conn.execute("DELETE FROM log WHERE revision <= ?", (upto,))
        return upto < target

    async def compact_older_than(self, keep: int) -> int:
        """Compact so that only the newest ``keep`` revisions of history remain (for
        periodic compaction); returns the compacted revision afterwards."""
        await self.compact(self._rev - max(keep, 0))
        return self._compacted

    def watcher_count(self) -> int:
        """How many watches are registered (for metrics and tests)."""
        return len(self._subs)

    async def close(self) -> None:
        """End every watch (their iteration stops) and close the database. Idempotent;
        other methods raise RuntimeError afterwards."""
        if self._closed:
            return
        self._closed = True
        for sub in self._subs:
            sub.close()
        self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r}, revision={self._rev})"

