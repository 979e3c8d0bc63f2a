"""Garbage collector decisions: owner classification, what to do with a dependent, when a
foreground owner is done, which events cause which work, and the key format."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.client.events import EventRecorder
from svcnet.controllers.gc import (
    Action,
    DependentPlan,
    GarbageCollector,
    OwnerState,
    affected,
    gc_key,
    index_owner_uids,
    owner_state,
    parse_gc_key,
    plan_dependent,
    plan_foreground,
    refs_without,
    unblocked,
    watched_resources,
)
from svcnet.informer.shared import InformerFactory
from svcnet.model import errors, kinds

Obj = dict[str, Any]

P, W, A, U = OwnerState.PRESENT, OwnerState.WAITING, OwnerState.ABSENT, OwnerState.UNKNOWN


def ref(uid: str, block: bool = False, kind: str = "ReplicaSet", name: str = "") -> Obj:
    r: Obj = {"apiVersion": "apps/v1", "kind": kind, "name": name or f"o-{uid}", "uid": uid,
              "controller": True}
    if block:
        r["blockOwnerDeletion"] = True
    return r


def obj(uid: str = "self", refs: list[Obj] | None = None, deleting: bool = False,
        fins: list[str] | None = None, name: str = "x") -> Obj:
    m: Obj = {"name": name, "namespace": "default", "uid": uid, "resourceVersion": "1"}
    if refs is not None:
        m["ownerReferences"] = refs
    if deleting:
        m["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    if fins is not None:
        m["finalizers"] = fins
    return {"kind": "Pod", "apiVersion": "v1", "metadata": m}


# --- owner_state -------------------------------------------------------------------------

OWNER_STATES = [
    ("not-found", None, ref("a"), A),
    ("found-same-uid", obj("a"), ref("a"), P),
    ("found-other-uid-is-absent", obj("b"), ref("a"), A),
    ("deleting-in-foreground-is-waiting",
     obj("a", deleting=True, fins=["foregroundDeletion"]), ref("a"), W),
    ("deleting-in-background-is-present", obj("a", deleting=True, fins=["x"]), ref("a"), P),
    ("foreground-finalizer-without-deletion-is-present",
     obj("a", fins=["foregroundDeletion"]), ref("a"), P),
    ("orphaning-is-present", obj("a", deleting=True, fins=["orphan"]), ref("a"), P),
]


@pytest.mark.parametrize("owner,r,want", [c[1:] for c in OWNER_STATES],
                         ids=[c[0] for c in OWNER_STATES])
def test_owner_state(owner: Obj | None, r: Obj, want: OwnerState) -> None:
    assert owner_state(owner, r) is want


# --- plan_dependent ----------------------------------------------------------------------

DEPENDENT_CASES: list[tuple[str, Obj, dict[str, OwnerState], bool, bool, DependentPlan]] = [
    ("no-owner-references", obj(refs=[]), {}, False, False, DependentPlan(Action.NOTHING)),
    ("owner-present", obj(refs=[ref("a")]), {"a": P}, False, False,
     DependentPlan(Action.NOTHING)),
    ("owner-absent-deleted-in-background", obj(refs=[ref("a")]), {"a": A}, False, False,
     DependentPlan(Action.DELETE, policy="Background")),
    ("owner-absent-with-dependents-still-background", obj(refs=[ref("a")]), {"a": A}, True,
     False, DependentPlan(Action.DELETE, policy="Background")),
    ("all-owners-absent", obj(refs=[ref("a"), ref("b")]), {"a": A, "b": A}, False, False,
     DependentPlan(Action.DELETE, policy="Background")),
    ("one-present-one-absent-drops-dangling-ref", obj(refs=[ref("a"), ref("b")]),
     {"a": P, "b": A}, False, False, DependentPlan(Action.PATCH_REFS, refs=(ref("a"),))),
    ("one-present-one-waiting-drops-waiting-ref", obj(refs=[ref("a"), ref("b", True)]),
     {"a": P, "b": W}, True, False, DependentPlan(Action.PATCH_REFS, refs=(ref("a"),))),
    ("unknown-kind-counts-as-present-and-is-kept", obj(refs=[ref("a"), ref("b")]),
     {"a": U, "b": A}, False, False, DependentPlan(Action.PATCH_REFS, refs=(ref("a"),))),
    ("state-missing-is-unknown", obj(refs=[ref("a")]), {}, False, False,
     DependentPlan(Action.NOTHING)),
    ("waiting-owner-leaf-deleted-in-background", obj(refs=[ref("a", True)]), {"a": W},
     False, False, DependentPlan(Action.DELETE, policy="Background")),
    ("waiting-owner-with-dependents-deleted-in-foreground", obj(refs=[ref("a", True)]),
     {"a": W}, True, False, DependentPlan(Action.DELETE, policy="Foreground")),
    ("waiting-owner-dependent-deleting-dependents-unblocks-first",
     obj(refs=[ref("a", True)]), {"a": W}, True, True,
     DependentPlan(Action.DELETE, policy="Foreground", unblock=True)),
    ("nothing-to-unblock-when-refs-do-not-block", obj(refs=[ref("a")]), {"a": W}, True, True,
     DependentPlan(Action.DELETE, policy="Foreground")),
    ("waiting-and-absent-owners-with-dependents-foreground",
     obj(refs=[ref("a", True), ref("b")]), {"a": W, "b": A}, True, False,
     DependentPlan(Action.DELETE, policy="Foreground")),
    ("own-orphan-finalizer-propagates-orphan",
     obj(refs=[ref("a")], fins=["orphan"]), {"a": A}, True, False,
     DependentPlan(Action.DELETE, policy="Orphan")),
    ("own-foreground-finalizer-propagates-foreground",
     obj(refs=[ref("a")], fins=["foregroundDeletion"]), {"a": A}, False, False,
     DependentPlan(Action.DELETE, policy="Foreground")),
    ("being-deleted-is-left-alone", obj(refs=[ref("a")], deleting=True, fins=["x"]),
     {"a": A}, False, False, DependentPlan(Action.NOTHING)),
]


@pytest.mark.parametrize("o,states,has_deps,dep_deleting,want",
                         [c[1:] for c in DEPENDENT_CASES],
                         ids=[c[0] for c in DEPENDENT_CASES])
def test_plan_dependent(o: Obj, states: dict[str, OwnerState], has_deps: bool,
                        dep_deleting: bool, want: DependentPlan) -> None:
    assert plan_dependent(o, states, has_deps, dep_deleting) == want


# --- plan_foreground ---------------------------------------------------------------------

OWNER = obj("o", deleting=True, fins=["foregroundDeletion"])
BLOCKING = obj("d1", refs=[ref("o", True)], name="d1")
NON_BLOCKING = obj("d2", refs=[ref("o")], name="d2")
BLOCKING_DELETING_DEPS = obj("d3", refs=[ref("o", True)], deleting=True,
                             fins=["foregroundDeletion"], name="d3")
BLOCKING_OTHER_OWNER = obj("d4", refs=[ref("other", True), ref("o")], name="d4")

FOREGROUND_CASES = [
    ("no-dependents-done", [], True, []),
    ("only-non-blocking-done", [NON_BLOCKING], True, []),
    ("blocking-on-another-owner-does-not-count", [BLOCKING_OTHER_OWNER], True, []),
    ("blocking-dependent-waits-and-is-sent", [BLOCKING, NON_BLOCKING], False, ["d1"]),
    ("blocking-deleting-dependents-waits-not-sent", [BLOCKING_DELETING_DEPS], False, []),
    ("mixed", [BLOCKING_DELETING_DEPS, BLOCKING], False, ["d1"]),
]


@pytest.mark.parametrize("deps,done,sent", [c[1:] for c in FOREGROUND_CASES],
                         ids=[c[0] for c in FOREGROUND_CASES])
def test_plan_foreground(deps: list[Obj], done: bool, sent: list[str]) -> None:
    plan = plan_foreground(OWNER, deps)
    assert plan.remove_finalizer is done
    assert [d["metadata"]["name"] for d in plan.dependents] == sent


# --- affected ----------------------------------------------------------------------------

PLAIN = obj("p")
OWNED = obj("c", refs=[ref("o")])
OWNED_STATUS = {**OWNED, "status": {"phase": "Running"}}
OWNED_TWICE = obj("c", refs=[ref("o"), ref("o2")])
FG = obj("p", deleting=True, fins=["foregroundDeletion"])
ORPH = obj("p", deleting=True, fins=["orphan"])
OTHER_FIN = obj("p", deleting=True, fins=["example.com/x"])
RECREATED = obj("p2")

AFFECTED_CASES: list[tuple[str, Obj | None, Obj | None, list[str], set[str], set[str],
                           set[str]]] = [
    # name, old, new, objects(uids), dependents_of, owners, gone
    ("add-plain-nothing", None, PLAIN, [], set(), set(), set()),
    ("add-owned-synced", None, OWNED, ["c"], set(), set(), set()),
    ("add-deleting-dependents-syncs-it-and-dependents", None, FG, ["p"], {"p"}, set(),
     set()),
    ("add-orphaning-synced", None, ORPH, ["p"], set(), set(), set()),
    ("status-update-nothing", OWNED, OWNED_STATUS, [], set(), set(), set()),
    ("refs-changed-syncs-it-and-owners", OWNED, OWNED_TWICE, ["c"], set(), {"o", "o2"},
     set()),
    ("refs-removed-syncs-owners-only", OWNED, obj("c", refs=[]), [], set(), {"o"}, set()),
    ("starts-foreground-syncs-it-and-dependents", PLAIN, FG, ["p"], {"p"}, set(), set()),
    ("starts-orphan-syncs-it", PLAIN, ORPH, ["p"], set(), set(), set()),
    ("other-finalizer-deletion-of-plain-nothing", PLAIN, OTHER_FIN, [], set(), set(),
     set()),
    ("delete-syncs-dependents-and-owners", OWNED, None, [], {"c"}, {"o"}, {"c"}),
    ("delete-plain-syncs-dependents", PLAIN, None, [], {"p"}, set(), {"p"}),
    ("uid-replaced-is-delete-plus-add", OWNED, RECREATED, [], {"c"}, {"o"}, {"c"}),
    ("uid-replaced-by-owned", PLAIN, OWNED, ["c"], {"p"}, set(), {"p"}),
]


@pytest.mark.parametrize("old,new,objects,deps,owners,gone", [c[1:] for c in AFFECTED_CASES],
                         ids=[c[0] for c in AFFECTED_CASES])
def test_affected(old: Obj | None, new: Obj | None, objects: list[str], deps: set[str],
                  owners: set[str], gone: set[str]) -> None:
    a = affected(old, new)
    assert [o["metadata"]["uid"] for o in a.objects] == objects
    assert a.dependents_of == deps
    assert a.owners == owners
    assert a.gone == gone


# --- small helpers -----------------------------------------------------------------------

def test_refs_without_keeps_order_and_does_not_mutate() -> None:
    refs = [ref("a"), ref("b"), ref("c")]
    assert refs_without(refs, ["b"]) == [ref("a"), ref("c")]
    assert len(refs) == 3


def test_unblocked_turns_off_blocking_without_mutating() -> None:
    refs = [ref("a", True), ref("b")]
    out = unblocked(refs)
    assert [r.get("blockOwnerDeletion") for r in out] == [False, None]
    assert refs[0]["blockOwnerDeletion"] is True


def test_index_owner_uids_deduplicates() -> None:
    assert index_owner_uids(obj(refs=[ref("b"), ref("a"), ref("b")])) == ["a", "b"]
    assert index_owner_uids(obj()) == []


KEY_CASES = [
    ("core-namespaced", "", "pods", "default", "web-1", "pods/default/web-1"),
    ("grouped", "apps", "replicasets", "default", "web", "replicasets.apps/default/web"),
    ("cluster-scoped", "", "nodes", None, "n1", "nodes//n1"),
]


@pytest.mark.parametrize("group,resource,ns,name,key", [c[1:] for c in KEY_CASES],
                         ids=[c[0] for c in KEY_CASES])
def test_key_round_trip(group: str, resource: str, ns: str | None, name: str,
                        key: str) -> None:
    r = kinds.lookup(group, resource)
    assert r is not None
    assert gc_key(r, ns, name) == key
    assert parse_gc_key(key) == (r.qualified, ns, name)


def test_watched_resources_cover_owners_and_dependents_but_not_events() -> None:
    names = {r.resource for r in watched_resources()}
    assert {"deployments", "replicasets", "pods", "services", "endpointslices", "endpoints",
            "configmaps", "secrets", "serviceaccounts", "ingresses", "leases",
            "namespaces"} <= names
    assert "events" not in names


# --- the controller against a fake API (no network) --------------------------------------

class FakeAPI:
    """Objects by (qualified resource, namespace, name); records every call. Merge patches
    of ``metadata`` honour a ``resourceVersion`` precondition as the API server does."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], Obj] = {}
        self.calls: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str, str, str]] = []  # (name, policy, uid, rv)
        self.conflicts_left = 0
        self._rv = 100

    def put(self, r: kinds.ResourceInfo, o: Obj) -> None:
        m = o["metadata"]
        self.objects[(r.qualified, m.get("namespace"), m["name"])] = copy.deepcopy(o)

    async def get(self, r: kinds.ResourceInfo, namespace: str | None, name: str) -> Obj:
        self.calls.append(("get", name))
        o = self.objects.get((r.qualified, namespace, name))
        if o is None:
            raise errors.not_found(r.resource, r.group, name)
        return copy.deepcopy(o)

    async def patch(self, r: kinds.ResourceInfo, namespace: str | None, name: str,
                    patch: Obj, content_type: str = "") -> Obj:
        self.calls.append(("patch", name))
        o = self.objects.get((r.qualified, namespace, name))
        if o is None:
            raise errors.not_found(r.resource, r.group, name)
        fields = dict(patch["metadata"])
        if self.conflicts_left or fields.pop("resourceVersion") != \
                o["metadata"]["resourceVersion"]:
            self.conflicts_left = max(0, self.conflicts_left - 1)
            raise errors.stale(r.resource, r.group, name)
        self._rv += 1
        o["metadata"].update(fields, resourceVersion=str(self._rv))
        return copy.deepcopy(o)

    async def delete(self, r: kinds.ResourceInfo, namespace: str | None, name: str, *,
                     propagation_policy: str = "", uid: str = "",
                     resource_version: str = "") -> Obj:
        self.calls.append(("delete", name))
        self.deleted.append((name, propagation_policy, uid, resource_version))
        return self.objects.pop((r.qualified, namespace, name))


class RecordingGC(GarbageCollector):
    """Records enqueued keys instead of running workers."""

    enqueued: list[str]

    def enqueue_key(self, key: str) -> None:
        self.enqueued.append(key)


def resource(group: str, name: str) -> kinds.ResourceInfo:
    r = kinds.lookup(group, name)
    assert r is not None
    return r


PODS = resource("", "pods")
RSS = resource("apps", "replicasets")


def make_gc(api: FakeAPI) -> RecordingGC:
    client: Any = api
    factory = InformerFactory(client)
    gc = RecordingGC(client, factory, EventRecorder(client, "test"))
    gc.enqueued = []
    for _, inf in gc.informers.values():
        inf._synced.set()  # fed by hand below, never run
    return gc


def cache(gc: GarbageCollector, r: kinds.ResourceInfo, o: Obj) -> None:
    """Put ``o`` in the informer cache and dispatch the add, as the reflector would."""
    inf = gc.informers[r.qualified][1]
    inf.indexer.upsert(o)
    inf._dispatch_add(o)


def rs(uid: str, name: str, deleting_fins: list[str] | None = None) -> Obj:
    o = obj(uid, name=name, deleting=deleting_fins is not None, fins=deleting_fins)
    return {**o, "kind": "ReplicaSet", "apiVersion": "apps/v1"}


def pod_of(name: str, *owners: Obj, block: bool = True) -> Obj:
    return obj(f"uid-{name}", name=name, refs=[
        ref(o["metadata"]["uid"], block, name=o["metadata"]["name"]) for o in owners])


async def test_owner_recreated_with_other_uid_counts_as_absent() -> None:
    api = FakeAPI()
    gc = make_gc(api)
    api.put(RSS, rs("new-uid", "web"))
    p = pod_of("p1", rs("old-uid", "web"))
    api.put(PODS, p)
    cache(gc, PODS, p)
    assert gc.enqueued == ["pods/default/p1"]
    await gc.sync("pods/default/p1")
    assert api.deleted == [("p1", "Background", "uid-p1", "1")]


async def test_owner_not_cached_yet_but_live_is_kept() -> None:
    api = FakeAPI()
    gc = make_gc(api)
    owner = rs("rs-uid", "web")
    api.put(RSS, owner)
    p = pod_of("p1", owner)
    api.put(PODS, p)
    cache(gc, PODS, p)
    await gc.sync("pods/default/p1")
    assert api.deleted == []
    cache(gc, RSS, owner)
    api.calls.clear()
    await gc.sync("pods/default/p1")
    assert api.calls == []  # the cache answers now


async def test_deleted_owner_costs_one_lookup_for_many_dependents() -> None:
    api = FakeAPI()
    gc = make_gc(api)
    owner = rs("rs-uid", "web")
    pods = [pod_of(f"p{i}", owner) for i in range(5)]
    for p in pods:
        api.put(PODS, p)
        cache(gc, PODS, p)
    for i in range(5):
        await gc.sync(f"pods/default/p{i}")
    assert sorted(d[0] for d in api.deleted) == [f"p{i}" for i in range(5)]
    assert [c for c in api.calls if c == ("get", "web")] == [("get", "web")]


async def test_owner_delete_event_enqueues_dependents_and_marks_absent() -> None:
    api = FakeAPI()
    gc = make_gc(api)
    owner = rs("rs-uid", "web")
    cache(gc, RSS, owner)
    p = pod_of("p1", owner)
    api.put(PODS, p)
    cache(gc, PODS, p)
    await gc.sync("pods/default/p1")
    assert api.deleted == []
    gc.enqueued.clear()
    inf = gc.informers[RSS.qualified][1]
    inf.indexer.delete("default/web")
    inf._dispatch_delete(owner)
    assert gc.enqueued == ["pods/default/p1"]
    await gc.sync("pods/default/p1")
    assert ("get", "web") not in api.calls
    assert [d[0] for d in api.deleted] == ["p1"]


async def test_foreground_owner_sends_blocking_dependents_then_drops_finalizer() -> None:
    api = FakeAPI()
    gc = make_gc(api)
    owner = rs("rs-uid", "web", ["foregroundDeletion"])
    api.put(RSS, owner)
    cache(gc, RSS, owner)
    p = pod_of("p1", owner)
    api.put(PODS, p)
    cache(gc, PODS, p)
    gc.enqueued.clear()
    await gc.sync("replicasets.apps/default/web")
    assert gc.enqueued == ["pods/default/p1"]
    await gc.sync("pods/default/p1")
    assert api.deleted == [("p1", "Background", "uid-p1", "1")]
    inf = gc.informers[PODS.qualified][1]
    inf.indexer.delete("default/p1")
    gc.enqueued.clear()
    inf._dispatch_delete(p)
    assert gc.enqueued == ["replicasets.apps/default/web"]
    await gc.sync("replicasets.apps/default/web")
    assert api.objects[(RSS.qualified, "default", "web")]["metadata"]["finalizers"] == []


async def test_orphan_owner_releases_dependents_then_drops_finalizer() -> None:
    api = FakeAPI()
    gc = make_gc(api)
    owner = rs("rs-uid", "web", ["orphan"])
    other = rs("other-uid", "other")
    api.put(RSS, owner)
    cache(gc, RSS, owner)
    cache(gc, RSS, other)
    p = pod_of("p1", owner, other, block=False)
    api.put(PODS, p)
    cache(gc, PODS, p)
    api.conflicts_left = 1  # the first write meets a concurrent change: re-read, retry
    await gc.sync("replicasets.apps/default/web")
    left = api.objects[(PODS.qualified, "default", "p1")]["metadata"]["ownerReferences"]
    assert [r["uid"] for r in left] == ["other-uid"]
    assert api.objects[(RSS.qualified, "default", "web")]["metadata"]["finalizers"] == []
    assert api.deleted == []


async def test_reference_naming_the_wrong_object_does_not_taint_correct_ones() -> None:
    api = FakeAPI()
    gc = make_gc(api)
    owner = rs("rs-uid", "web")
    api.put(RSS, owner)
    wrong = obj("uid-bad", name="bad", refs=[ref("rs-uid", name="not-web")])
    good = pod_of("good", owner)
    for o in (wrong, good):
        api.put(PODS, o)
        cache(gc, PODS, o)
    await gc.sync("pods/default/bad")
    await gc.sync("pods/default/good")
    assert [d[0] for d in api.deleted] == ["bad"]
