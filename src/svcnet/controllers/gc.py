"""The garbage collector: objects whose owners are gone are deleted; owners deleted with
``Foreground`` or ``Orphan`` propagation are finished once their dependents are dealt with.

The dependency graph is the set of ``metadata.ownerReferences`` of every watched object,
kept in two private indexes on the shared informers (object by uid, dependents by owner
uid). Every resource that supports list and watch is watched, except ``events`` (which
churn constantly and own nothing; the upstream collector ignores them too).

Work is keyed per object (``<resource>[.<group>]/<namespace>/<name>``, namespace empty for
cluster-scoped objects) and a sync does whatever that object's current state asks for:

* being deleted with the ``orphan`` finalizer: the references to it are removed from every
  dependent, then the finalizer;
* being deleted with the ``foregroundDeletion`` finalizer: its dependents are sent to be
  collected; once no dependent with ``blockOwnerDeletion`` remains, the finalizer is removed
  (the API server then removes the object);
* otherwise, if it has owner references: each owner is classified (present, absent,
  waiting for its dependents' deletion) and :func:`plan_dependent` decides between keeping
  the object, patching dangling references away, and deleting it.

An owner counts as present only if the cache or a live GET by name finds it with the
referenced uid; an owner known absent (seen deleted, or not found by a lookup) is
remembered (uids are never reused), so deleting an owner of many dependents costs one GET. Before acting on a dependent its latest state is
read from the API server, and every write carries a uid or resourceVersion precondition,
so a concurrent change (an adoption, a new finalizer) is never overwritten.

API calls are made only for changes: informer events enqueue just the objects they affect
(:func:`affected`); start-up enqueues every object with owner references or a pending
finalizer, which is how dependents orphaned while the collector was down are collected.
"""

from __future__ import annotations

import asyncio
import enum
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from svcnet.client.api import MERGE_PATCH, APIClient
from svcnet.client.events import EventRecorder
from svcnet.controllers.base import Controller
from svcnet.informer.shared import InformerFactory, SharedInformer
from svcnet.model import errors, kinds
from svcnet.model.kinds import ResourceInfo

Obj = dict[str, Any]

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
UID_INDEX = "gc/uid"
OWNER_INDEX = "gc/owner-uid"
IGNORED_RESOURCES = frozenset({("", "events")})
ABSENT_CACHE_SIZE = 8192
PATCH_ATTEMPTS = 5


# --- pure helpers ------------------------------------------------------------------------

def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def uid_of(obj: Obj) -> str:
    return str(_meta(obj).get("uid") or "")


def owner_refs(obj: Obj) -> list[Obj]:
    return list(_meta(obj).get("ownerReferences") or [])


def finalizers(obj: Obj) -> list[str]:
    return list(_meta(obj).get("finalizers") or [])


def is_deleting(obj: Obj) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def is_deleting_dependents(obj: Obj) -> bool:
    """Being deleted with Foreground propagation: waits for its blocking dependents."""
    return is_deleting(obj) and FOREGROUND in finalizers(obj)


def is_orphaning(obj: Obj) -> bool:
    """Being deleted with Orphan propagation: its dependents must let go of it first."""
    return is_deleting(obj) and ORPHAN in finalizers(obj)


def index_uid(obj: Obj) -> list[str]:
    uid = uid_of(obj)
    return [uid] if uid else []


def index_owner_uids(obj: Obj) -> list[str]:
    return sorted({str(r["uid"]) for r in owner_refs(obj) if r.get("uid")})


def blocks(dependent: Obj, owner_uid: str) -> bool:
    """Whether ``dependent`` holds a ``blockOwnerDeletion`` reference to ``owner_uid``."""
    return any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion")
               for r in owner_refs(dependent))


def refs_without(refs: Sequence[Obj], uids: Iterable[str]) -> list[Obj]:
    """``refs`` minus the references to ``uids`` (order kept)."""
    drop = set(uids)
    return [r for r in refs if r.get("uid") not in drop]


def unblocked(refs: Sequence[Obj]) -> list[Obj]:
    """``refs`` with every ``blockOwnerDeletion: true`` turned to false."""
    return [{**r, "blockOwnerDeletion": False} if r.get("blockOwnerDeletion") else r
            for r in refs]


def without(items: Sequence[str], item: str) -> list[str]:
    return [x for x in items if x != item]


class OwnerState(enum.Enum):
    PRESENT = "present"  # exists with the referenced uid and is not deleting dependents
    WAITING = "waiting"  # exists, deleted with Foreground: waits for its dependents
    ABSENT = "absent"  # no object with that uid (not found, or found with another uid)
    UNKNOWN = "unknown"  # cannot be looked up (kind not served); kept, counts as present


def owner_state(owner: Obj | None, ref: Obj) -> OwnerState:
    """The state of the owner ``ref`` names, given what a lookup by name returned."""
    if owner is None or uid_of(owner) != ref.get("uid"):
        return OwnerState.ABSENT
    return OwnerState.WAITING if is_deleting_dependents(owner) else OwnerState.PRESENT


class Action(enum.Enum):
    NOTHING = "nothing"
    PATCH_REFS = "patch-refs"  # replace ownerReferences with DependentPlan.refs
    DELETE = "delete"  # delete with DependentPlan.policy (after unblocking, if .unblock)


@dataclass(frozen=True)
class DependentPlan:
    action: Action
    refs: tuple[Obj, ...] = ()
    policy: str = ""
    unblock: bool = False  # first set blockOwnerDeletion false on every reference


NOTHING = DependentPlan(Action.NOTHING)

# Computes the metadata fields to merge-patch into an object's current state (None: none).
MetaChange = Callable[[Obj], "Obj | None"]


def plan_dependent(obj: Obj, states: Mapping[str, OwnerState], has_dependents: bool,
                   dependent_deleting_dependents: bool) -> DependentPlan:
    """What to do with an object that is not being deleted, given its owners' states
    (by uid; a missing uid counts as UNKNOWN) and whether it has dependents of its own /
    one of them is itself deleting dependents.

    * some owner present: keep it; drop references to absent owners and to owners waiting
      for their dependents (else such an owner would wait forever);
    * no owner present, one waiting, and it has dependents: delete it in the foreground
      so that its own dependents go first; if one of those is itself deleting dependents,
      first unblock its references (a cycle would otherwise block every owner);
    * no owner present otherwise: delete it, propagating as its own pending finalizer says
      (Orphan, Foreground) or in the background.
    """
    refs = owner_refs(obj)
    if not refs or is_deleting(obj):
        return NOTHING

    def state(r: Obj) -> OwnerState:
        return states.get(str(r.get("uid")), OwnerState.UNKNOWN)

    present = [r for r in refs if state(r) in (OwnerState.PRESENT, OwnerState.UNKNOWN)]
    gone = [str(r.get("uid")) for r in refs if state(r) is OwnerState.ABSENT]
    waiting = [str(r.get("uid")) for r in refs if state(r) is OwnerState.WAITING]
    if present:
        if not gone and not waiting:
            return NOTHING
        return DependentPlan(Action.PATCH_REFS, tuple(refs_without(refs, gone + waiting)))
    if waiting and has_dependents:
        return DependentPlan(Action.DELETE, policy="Foreground",
                             unblock=dependent_deleting_dependents and any(
                                 r.get("blockOwnerDeletion") for r in refs))
    fins = finalizers(obj)
    policy = "Orphan" if ORPHAN in fins else "Foreground" if FOREGROUND in fins \
        else "Background"
    return DependentPlan(Action.DELETE, policy=policy)


@dataclass(frozen=True)
class ForegroundPlan:
    remove_finalizer: bool
    dependents: tuple[Obj, ...] = ()  # blocking dependents to (re)consider for deletion


def plan_foreground(owner: Obj, dependents: Sequence[Obj]) -> ForegroundPlan:
    """For an owner deleting its dependents: remove the finalizer once no dependent blocks
    it; otherwise the blocking dependents not themselves deleting dependents are sent to be
    collected (those that are will finish on their own)."""
    uid = uid_of(owner)
    blocking = [d for d in dependents if blocks(d, uid)]
    if not blocking:
        return ForegroundPlan(True)
    return ForegroundPlan(False, tuple(d for d in blocking if not is_deleting_dependents(d)))


@dataclass
class Affected:
    """What an informer event asks the collector to look at."""

    objects: list[Obj] = field(default_factory=list)  # sync these objects
    dependents_of: set[str] = field(default_factory=set)  # sync every dependent of uids
    owners: set[str] = field(default_factory=set)  # sync these owner uids if deleting
    gone: set[str] = field(default_factory=set)  # uids known to be absent from now on


def _needs_gc(obj: Obj) -> bool:
    return bool(owner_refs(obj)) or is_deleting_dependents(obj) or is_orphaning(obj)


def affected(old: Obj | None, new: Obj | None) -> Affected:
    """The work one add (old None), update, or delete (new None) event makes.

    * an added object is synced if it has owner references or a pending GC finalizer;
    * an updated one if its references or deletion state changed and it has either;
    * an object that starts deleting dependents sends all its dependents to be synced;
    * a deleted object sends its dependents (their owner is gone) and its owners (they
      may be waiting for it) to be synced; a changed reference list sends the owners;
    * an update that replaces the uid (a relist after delete + re-create) is a delete of
      the old object and an add of the new one.
    """
    out = Affected()
    if old is not None and new is not None and uid_of(old) != uid_of(new):
        a, b = affected(old, None), affected(None, new)
        return Affected(a.objects + b.objects, a.dependents_of | b.dependents_of,
                        a.owners | b.owners, a.gone | b.gone)
    if new is None:
        if old is None:
            return out
        if uid_of(old):
            out.dependents_of.add(uid_of(old))
            out.gone.add(uid_of(old))
        out.owners.update(index_owner_uids(old))
        return out
    if old is None:
        if _needs_gc(new):
            out.objects.append(new)
        if is_deleting_dependents(new) and uid_of(new):
            out.dependents_of.add(uid_of(new))
        return out
    refs_changed = owner_refs(old) != owner_refs(new)
    state_changed = (is_deleting(old), finalizers(old)) != (is_deleting(new), finalizers(new))
    if (refs_changed or state_changed) and _needs_gc(new):
        out.objects.append(new)
    if is_deleting_dependents(new) and not is_deleting_dependents(old):
        out.dependents_of.add(uid_of(new))
    if refs_changed:
        out.owners.update(index_owner_uids(old))
        out.owners.update(index_owner_uids(new))
    return out


def absent_key(ref: Obj, namespace: str | None) -> str:
    """Identity of an owner reference as looked up from ``namespace``: uid plus what the
    lookup used, so a reference naming the wrong object does not taint correct ones."""
    return "|".join(str(x or "") for x in (ref.get("uid"), namespace, ref.get("apiVersion"),
                                           ref.get("kind"), ref.get("name")))


def object_gc_key(r: ResourceInfo, obj: Obj) -> str:
    m = _meta(obj)
    return gc_key(r, m.get("namespace") if r.namespaced else None, str(m.get("name", "")))


def gc_key(r: ResourceInfo, namespace: str | None, name: str) -> str:
    """``pods/default/web-1``, ``replicasets.apps/default/web``, ``nodes//n1``."""
    return f"{r.qualified}/{namespace or ''}/{name}"


def parse_gc_key(key: str) -> tuple[str, str | None, str]:
    """``(qualified resource, namespace or None, name)`` of a :func:`gc_key`."""
    qualified, ns, name = key.split("/", 2)
    return qualified, ns or None, name


def watched_resources() -> list[ResourceInfo]:
    """Every served resource that can own or be owned and can be listed and watched."""
    return [r for r in kinds.RESOURCES
            if {"list", "watch", "delete"} <= set(r.verbs)
            and (r.group, r.resource) not in IGNORED_RESOURCES]


# --- the controller ----------------------------------------------------------------------

class GarbageCollector(Controller):
    """Deletes dependents of absent owners and finishes Foreground / Orphan deletions."""

    name = "garbage-collector"
    workers = 8

    def __init__(self, client: APIClient, factory: InformerFactory,
                 recorder: EventRecorder) -> None:
        super().__init__(client, recorder)
        self.informers: dict[str, tuple[ResourceInfo, SharedInformer]] = {}
        self._absent: OrderedDict[str, None] = OrderedDict()
        for r in watched_resources():
            inf = factory.informer(r)
            inf.add_indexer(UID_INDEX, index_uid)
            inf.add_indexer(OWNER_INDEX, index_owner_uids)
            self.informers[r.qualified] = (r, inf)
            self._register(r, inf)

    def _register(self, r: ResourceInfo, inf: SharedInformer) -> None:
        def on_add(obj: Obj) -> None:
            self._on_event(r, None, obj)

        def on_update(old: Obj, new: Obj) -> None:
            self._on_event(r, old, new)

        def on_delete(obj: Obj) -> None:
            self._on_event(r, obj, None)
        inf.add_handlers(on_add, on_update, on_delete)

    # --- events → keys -------------------------------------------------------------------

    def _on_event(self, r: ResourceInfo, old: Obj | None, new: Obj | None) -> None:
        a = affected(old, new)
        for uid in a.gone:
            self._mark_absent(uid)
        for obj in a.objects:
            self.enqueue_key(object_gc_key(r, obj))
        for uid in a.dependents_of:
            for dr, dep in self.dependents(uid):
                self.enqueue_key(object_gc_key(dr, dep))
        for uid in a.owners:
            for orr, owner in self._cached_by_uid(uid):
                if is_deleting(owner):
                    self.enqueue_key(object_gc_key(orr, owner))

    def _mark_absent(self, key: str) -> None:
        """Remember an absent owner: a bare uid (seen deleted: gone everywhere) or an
        :func:`absent_key` (a lookup by that reference found no object with that uid)."""
        self._absent[key] = None
        self._absent.move_to_end(key)
        while len(self._absent) > ABSENT_CACHE_SIZE:
            self._absent.popitem(last=False)

    # --- cache queries -------------------------------------------------------------------

    def dependents(self, uid: str) -> list[tuple[ResourceInfo, Obj]]:
        """Every cached object with an owner reference to ``uid``."""
        return [(r, d) for r, inf in self.informers.values()
                for d in inf.indexer.by_index(OWNER_INDEX, uid)]

    def _cached_by_uid(self, uid: str) -> list[tuple[ResourceInfo, Obj]]:
        return [(r, o) for r, inf in self.informers.values()
                for o in inf.indexer.by_index(UID_INDEX, uid)]

    async def _wait_synced(self) -> None:
        await asyncio.gather(*(inf.wait_synced() for _, inf in self.informers.values()))

    # --- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        """Bring one object in line with its owners / its own pending GC finalizers.

        Waits for every informer's first list: decisions about dependents rely on the
        cache being complete."""
        await self._wait_synced()
        qualified, ns, name = parse_gc_key(key)
        entry = self.informers.get(qualified)
        if entry is None:
            return
        r, inf = entry
        obj = inf.indexer.get_by(ns, name)
        if obj is None:
            return
        if is_deleting(obj):
            if ORPHAN in finalizers(obj):
                await self._orphan_dependents(r, obj)
            if FOREGROUND in finalizers(obj):
                await self._finish_foreground(r, obj)
            return
        if owner_refs(obj):
            await self._collect(r, obj)

    async def _orphan_dependents(self, r: ResourceInfo, owner: Obj) -> None:
        uid = uid_of(owner)
        self.log.info("orphaning the dependents of %s", object_gc_key(r, owner))
        for dr, dep in self.dependents(uid):
            await self._patch_meta(dr, dep, lambda o: (
                {"ownerReferences": refs_without(owner_refs(o), [uid])}
                if any(x.get("uid") == uid for x in owner_refs(o)) else None))
        await self._patch_meta(r, owner, lambda o: (
            {"finalizers": without(finalizers(o), ORPHAN)}
            if uid_of(o) == uid and ORPHAN in finalizers(o) else None))

    async def _finish_foreground(self, r: ResourceInfo, owner: Obj) -> None:
        uid = uid_of(owner)
        deps = self.dependents(uid)
        plan = plan_foreground(owner, [d for _, d in deps])
        if plan.remove_finalizer:
            self.log.info("dependents of %s gone; removing %s", object_gc_key(r, owner),
                          FOREGROUND)
            await self._patch_meta(r, owner, lambda o: (
                {"finalizers": without(finalizers(o), FOREGROUND)}
                if uid_of(o) == uid and FOREGROUND in finalizers(o) else None))
            return
        wanted = {id(d) for d in plan.dependents}
        for dr, dep in deps:
            if id(dep) in wanted:
                self.enqueue_key(object_gc_key(dr, dep))

    async def _collect(self, r: ResourceInfo, cached: Obj) -> None:
        """Classify the owners of a dependent and act on :func:`plan_dependent`; acts
        only on the object's latest state read from the API server."""
        plan = await self._plan(cached)
        if plan.action is Action.NOTHING:
            return
        m = _meta(cached)
        ns = m.get("namespace") if r.namespaced else None
        try:
            latest = await self.client.get(r, ns, m["name"])
        except errors.APIError as e:
            if e.code == 404:
                return
            raise
        if uid_of(latest) != uid_of(cached):
            return
        plan = await self._plan(latest)
        if plan.action is Action.PATCH_REFS:
            refs = list(plan.refs)
            before = owner_refs(latest)
            await self._patch_meta(r, latest, lambda o: (
                {"ownerReferences": refs} if owner_refs(o) == before else None),
                retry=False)
        elif plan.action is Action.DELETE:
            if plan.unblock:
                before = owner_refs(latest)
                latest = await self._patch_meta(r, latest, lambda o: (
                    {"ownerReferences": unblocked(before)}
                    if owner_refs(o) == before else None), retry=False) or latest
            self.log.info("deleting %s/%s %s (no live owner; propagation %s)",
                          r.qualified, m.get("namespace", ""), m["name"], plan.policy)
            try:
                await self.client.delete(
                    r, ns, m["name"], propagation_policy=plan.policy, uid=uid_of(latest),
                    resource_version=str(_meta(latest).get("resourceVersion") or ""))
            except errors.APIError as e:
                if e.code != 404:
                    raise

    async def _plan(self, obj: Obj) -> DependentPlan:
        if is_deleting(obj) or not owner_refs(obj):
            return NOTHING
        states = {str(ref.get("uid")): await self._owner_state(obj, ref)
                  for ref in owner_refs(obj)}
        deps = self.dependents(uid_of(obj))
        return plan_dependent(obj, states, bool(deps),
                              any(is_deleting_dependents(d) for _, d in deps))

    async def _owner_state(self, dependent: Obj, ref: Obj) -> OwnerState:
        """The cache answers when it holds the owner; otherwise a live GET by name does
        (the cache may not have seen the owner's creation yet)."""
        uid = str(ref.get("uid") or "")
        ns = _meta(dependent).get("namespace")
        looked_up = absent_key(ref, ns)
        if uid in self._absent or looked_up in self._absent:
            return OwnerState.ABSENT
        for orr, owner in self._cached_by_uid(uid):
            om = _meta(owner)
            if orr.kind == ref.get("kind") and om.get("name") == ref.get("name") and \
                    (not orr.namespaced or om.get("namespace") == ns):
                return owner_state(owner, ref)
        r = kinds.by_kind(str(ref.get("kind", "")), str(ref.get("apiVersion", "")))
        if r is None:
            return OwnerState.UNKNOWN
        if r.namespaced and not ns:
            self.recorder.event(dependent, "Warning", "OwnerRefInvalidNamespace",
                                f"ownerRef {ref} does not exist in namespace \"\"")
            return OwnerState.ABSENT  # a cluster-scoped object cannot have namespaced owners
        try:
            live: Obj | None = await self.client.get(r, ns if r.namespaced else None,
                                                     str(ref.get("name", "")))
        except errors.APIError as e:
            if e.code != 404:
                raise
            live = None
        state = owner_state(live, ref)
        if state is OwnerState.ABSENT:
            self._mark_absent(looked_up)
        return state

    async def _patch_meta(self, r: ResourceInfo, obj: Obj, change: MetaChange,
                          retry: bool = True) -> Obj | None:
        """Merge-patch the metadata fields ``change(current)`` returns (None: nothing to
        do) with a resourceVersion precondition. On a conflict, re-read and recompute
        (``retry``) or raise so the key is retried. Returns the patched object, or None
        when nothing was written (no change needed, or the object is gone)."""
        m = _meta(obj)
        ns = m.get("namespace") if r.namespaced else None
        name = str(m.get("name", ""))
        cur = obj
        for attempt in range(PATCH_ATTEMPTS):
            fields = change(cur)
            if fields is None:
                return None
            body = {"metadata": {**fields,
                                 "resourceVersion": _meta(cur).get("resourceVersion")}}
            try:
                return await self.client.patch(r, ns, name, body, MERGE_PATCH)
            except errors.APIError as e:
                if e.code == 404:
                    return None
                if e.code != 409 or not retry or attempt == PATCH_ATTEMPTS - 1:
                    raise
            try:
                cur = await self.client.get(r, ns, name)
            except errors.APIError as e:
                if e.code == 404:
                    return None
                raise
        return None
