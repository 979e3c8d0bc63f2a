"""The ReplicaSet controller: keep ``spec.replicas`` active pods from the template.

Pure core (tested with tables): which pods are active/ready/available, the order in which
surplus pods are deleted (upstream ``ActivePodsWithRanks``), the slow-start batch sizes,
the status a ReplicaSet should report, and the claim decision of the controller-ref
manager (keep / adopt / release / ignore). The :class:`ReplicaSetController` only reads
the informer caches and writes what differs.

Expectations (:class:`Expectations`) stop the controller from acting on a cache that has
not yet seen its own creates and deletes: after asking for N creates the ReplicaSet is not
managed again until N pod ADDED events were observed (or the expectation expired).

Helpers shared with the Deployment controller (owner references, claiming, time parsing)
live here too.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import Any, Literal

from svcnet.client.api import MERGE_PATCH, APIClient
from svcnet.client.events import EventRecorder
from svcnet.controllers.base import Controller
from svcnet.informer.cache import by_controller_uid, object_key, split_key
from svcnet.informer.shared import InformerFactory
from svcnet.model import errors, kinds
from svcnet.model.selectors import LabelSelector, selector_from_label_selector_object

log = logging.getLogger("svcnet.controllers.replicaset")

Obj = dict[str, Any]

PODS = kinds.require("", "pods")
REPLICASETS = kinds.require("apps", "replicasets")

#: Most pods created or deleted in one sync (upstream ``BurstReplicas``).
BURST_REPLICAS = 500
#: First batch of the slow-start creation (upstream ``SlowStartInitialBatchSize``).
SLOW_START_INITIAL_BATCH = 1
#: Expectations older than this are treated as satisfied (upstream ``ExpectationsTimeout``).
EXPECTATIONS_TTL = 300.0

INDEX_CONTROLLER = "by_controller_uid"
INDEX_ORPHANS = "svcnet:orphans-by-namespace"


# --- time and metadata helpers -----------------------------------------------------------


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_time(t: dt.datetime) -> str:
    """RFC 3339 with second precision, as ``metav1.Time`` serialises."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> dt.datetime | None:
    """A ``metav1.Time`` string as an aware datetime; None for empty or unparsable values."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def spec_replicas(obj: Mapping[str, Any]) -> int:
    """``spec.replicas`` of a ReplicaSet/Deployment (1 when unset, as defaulting does)."""
    r = (obj.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The owner reference with ``controller: true``, if any."""
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: Mapping[str, Any], api_version: str, kind: str) -> Obj:
    """The controller reference a dependent of ``owner`` carries."""
    m = meta(owner)
    return {"apiVersion": api_version, "kind": kind, "name": m.get("name", ""),
            "uid": m.get("uid", ""), "controller": True, "blockOwnerDeletion": True}


def orphans_by_namespace(obj: Obj) -> list[str]:
    """Index function: the namespace of objects without a controller reference."""
    if controller_ref(obj) is not None:
        return []
    ns = meta(obj).get("namespace")
    return [ns] if ns else []


# --- pods ------------------------------------------------------------------------------


def is_pod_active(pod: Mapping[str, Any]) -> bool:
    """Not Succeeded, not Failed and not being deleted (upstream ``IsPodActive``)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not meta(pod).get("deletionTimestamp")


def _ready_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return dict(c)
    return None


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    c = _ready_condition(pod)
    return c is not None and c.get("status") == "True"


def pod_ready_time(pod: Mapping[str, Any]) -> dt.datetime | None:
    """When a ready pod became ready (None when not ready or unknown)."""
    c = _ready_condition(pod)
    if c is None or c.get("status") != "True":
        return None
    return parse_time(c.get("lastTransitionTime"))


def is_pod_available(pod: Mapping[str, Any], min_ready_seconds: int, now: dt.datetime) -> bool:
    """Ready for at least ``min_ready_seconds`` (upstream ``IsPodAvailable``)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = pod_ready_time(pod)
    return since is not None and since + dt.timedelta(seconds=min_ready_seconds) < now


def _max_restarts(pod: Mapping[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


def _deletion_cost(pod: Mapping[str, Any]) -> int:
    raw = (meta(pod).get("annotations") or {}).get("controller.kubernetes.io/pod-deletion-cost")
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def _log_rank(t: dt.datetime, now: dt.datetime) -> int:
    """floor(log2(now - t in nanoseconds)); -1 when t is not in the past."""
    ns = (now - t) / dt.timedelta(microseconds=1) * 1000
    return int(math.log2(ns)) if ns > 0 else -1


def _compare_times(t1: dt.datetime | None, t2: dt.datetime | None, uid1: str, uid2: str,
                   now: dt.datetime | None) -> int:
    """-1 when the first pod goes first (newer or zero time), 1 when the second does, 0
    when equal. With ``now`` times are compared in log2 buckets, ties broken by UID
    (upstream LogarithmicScaleDown)."""
    if t1 == t2:
        return 0
    if t1 is None or t2 is None:
        return -1 if t1 is None else 1
    if now is not None:
        diff = _log_rank(t1, now) - _log_rank(t2, now)
        if diff == 0:
            return -1 if uid1 < uid2 else 1
        return -1 if diff < 0 else 1
    return -1 if t1 > t2 else 1


@dataclass(frozen=True)
class RankedPod:
    """A pod with its rank: how many related active pods share its node."""

    pod: Mapping[str, Any]
    rank: int


def deletion_order_cmp(a: RankedPod, b: RankedPod, now: dt.datetime | None) -> int:
    """Negative when ``a`` should be deleted before ``b`` (upstream ActivePodsWithRanks):
    unassigned < assigned; Pending < Unknown < Running; not ready < ready; lower
    pod-deletion-cost first; more pods on the same node first; ready for less time first;
    more container restarts first; newer first."""
    pa, pb = a.pod, b.pod
    na = (pa.get("spec") or {}).get("nodeName") or ""
    nb = (pb.get("spec") or {}).get("nodeName") or ""
    if na != nb and (not na or not nb):
        return -1 if not na else 1
    oa = _PHASE_ORDINAL.get((pa.get("status") or {}).get("phase", ""), 0)
    ob = _PHASE_ORDINAL.get((pb.get("status") or {}).get("phase", ""), 0)
    if oa != ob:
        return -1 if oa < ob else 1
    ra, rb = is_pod_ready(pa), is_pod_ready(pb)
    if ra != rb:
        return -1 if not ra else 1
    ca, cb = _deletion_cost(pa), _deletion_cost(pb)
    if ca != cb:
        return -1 if ca < cb else 1
    if a.rank != b.rank:
        return -1 if a.rank > b.rank else 1
    uid_a, uid_b = str(meta(pa).get("uid", "")), str(meta(pb).get("uid", ""))
    if ra and rb:
        c = _compare_times(pod_ready_time(pa), pod_ready_time(pb), uid_a, uid_b, now)
        if c:
            return c
    xa, xb = _max_restarts(pa), _max_restarts(pb)
    if xa != xb:
        return -1 if xa > xb else 1
    return _compare_times(parse_time(meta(pa).get("creationTimestamp")),
                          parse_time(meta(pb).get("creationTimestamp")), uid_a, uid_b, now)


def pods_to_delete(pods: Sequence[Mapping[str, Any]], related: Iterable[Mapping[str, Any]],
                   diff: int, now: dt.datetime | None) -> list[Mapping[str, Any]]:
    """The ``diff`` pods of ``pods`` to delete first (upstream ``getPodsToDelete``).

    ``related`` are the active pods of every ReplicaSet with the same controller; a pod's
    rank is how many of them share its node. Sorting is stable; ``now`` enables the
    logarithmic time comparison (None compares timestamps exactly).
    """
    if diff >= len(pods):
        return list(pods)
    on_node: dict[str, int] = {}
    for p in related:
        if is_pod_active(p):
            node = (p.get("spec") or {}).get("nodeName") or ""
            on_node[node] = on_node.get(node, 0) + 1
    ranked = [RankedPod(p, on_node.get((p.get("spec") or {}).get("nodeName") or "", 0))
              for p in pods]
    ranked.sort(key=cmp_to_key(lambda a, b: deletion_order_cmp(a, b, now)))
    return [r.pod for r in ranked[:diff]]


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH) -> list[int]:
    """Batch sizes for creating ``count`` pods: initial, doubling, capped by what is left."""
    sizes: list[int] = []
    remaining, size = count, min(count, initial)
    while size > 0:
        sizes.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return sizes


# --- status ----------------------------------------------------------------------------


def _drop_zero(d: Mapping[str, Any], keep: Iterable[str] = ()) -> Obj:
    """Fields with Go ``omitempty`` semantics: zero / empty values are left out."""
    kept = set(keep)
    return {k: v for k, v in d.items() if k in kept or v not in (0, None, [], {}, "")}


def replica_set_status(rs: Mapping[str, Any], pods: Iterable[Mapping[str, Any]],
                       manage_error: str | None, diff: int, now: dt.datetime) -> Obj:
    """The status ``rs`` should report for its claimed active ``pods`` (upstream
    ``calculateStatus``): replicas, fullyLabeledReplicas, readyReplicas,
    availableReplicas, observedGeneration and the ReplicaFailure condition when managing
    replicas failed (``diff`` < 0: FailedCreate, > 0: FailedDelete). Zero counts other
    than ``replicas`` are omitted, as the API serialises them."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    pods = list(pods)
    fully = sum(1 for p in pods if _has_labels(meta(p).get("labels") or {}, template_labels))
    ready = sum(1 for p in pods if is_pod_ready(p))
    available = sum(1 for p in pods if is_pod_available(p, min_ready, now))
    old = rs.get("status") or {}
    conditions = [dict(c) for c in old.get("conditions") or []]
    failure = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
    if manage_error is not None and failure is None:
        reason = "FailedCreate" if diff < 0 else "FailedDelete"
        conditions.append({"type": "ReplicaFailure", "status": "True",
                           "lastTransitionTime": format_time(now), "reason": reason,
                           "message": manage_error})
    elif manage_error is None and failure is not None:
        conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
    return _drop_zero({
        "replicas": len(pods), "fullyLabeledReplicas": fully, "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": int(meta(rs).get("generation") or 0),
        "conditions": conditions,
    }, keep=("replicas",))


def _has_labels(labels: Mapping[str, str], want: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in want.items())


def status_differs(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether writing ``desired`` would change ``current`` (zero values ignored)."""
    cur = _drop_zero(current or {})
    want = _drop_zero(desired)
    return cur != want


# --- claiming (upstream ControllerRefManager) ---------------------------------------------

ClaimAction = Literal["keep", "adopt", "release", "ignore"]


def claim_action(obj: Mapping[str, Any], owner: Mapping[str, Any],
                 selector: LabelSelector) -> ClaimAction:
    """What the controller ``owner`` does with ``obj`` (same namespace assumed):

    * owned by ``owner`` and matching → keep; owned but not matching → release (unless
      ``owner`` is being deleted → ignore);
    * owned by another controller → ignore;
    * an orphan that matches, neither side being deleted → adopt; otherwise ignore.
    """
    ref = controller_ref(obj)
    owner_uid = meta(owner).get("uid")
    owner_deleting = bool(meta(owner).get("deletionTimestamp"))
    matches = selector.matches(meta(obj).get("labels") or {})
    if ref is not None:
        if ref.get("uid") != owner_uid:
            return "ignore"
        if matches:
            return "keep"
        return "ignore" if owner_deleting else "release"
    if owner_deleting or not matches or meta(obj).get("deletionTimestamp"):
        return "ignore"
    if meta(obj).get("namespace") != meta(owner).get("namespace"):
        return "ignore"
    return "adopt"


def adopt_patch(obj: Mapping[str, Any], ref: Obj) -> Obj:
    """Merge patch adding controller reference ``ref`` to ``obj`` (resourceVersion-guarded)."""
    refs = [dict(r) for r in meta(obj).get("ownerReferences") or []
            if r.get("uid") != ref.get("uid")]
    return {"metadata": {"ownerReferences": [*refs, ref],
                         "resourceVersion": meta(obj).get("resourceVersion")}}


def release_patch(obj: Mapping[str, Any], owner_uid: str) -> Obj:
    """Merge patch removing ``owner_uid`` from ``obj``'s owner references."""
    refs = [dict(r) for r in meta(obj).get("ownerReferences") or []
            if r.get("uid") != owner_uid]
    return {"metadata": {"ownerReferences": refs or None,
                         "resourceVersion": meta(obj).get("resourceVersion")}}


@dataclass
class Claimer:
    """Claims objects for one controller object, as upstream's ControllerRefManager.

    ``can_adopt`` is consulted at most once (a fresh read of the owner from the API, so a
    deleted-and-recreated owner never adopts with a stale UID).
    """

    client: APIClient
    resource: kinds.ResourceInfo
    owner: Mapping[str, Any]
    owner_api_version: str
    owner_kind: str
    selector: LabelSelector
    can_adopt: Callable[[], Awaitable[None]]
    _adopt_checked: bool = field(default=False)

    async def claim(self, candidates: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The candidates that belong to the owner after adopting/releasing."""
        claimed: list[Mapping[str, Any]] = []
        errs: list[Exception] = []
        for obj in candidates:
            action = claim_action(obj, self.owner, self.selector)
            try:
                if action == "keep":
                    claimed.append(obj)
                elif action == "adopt":
                    adopted = await self._adopt(obj)
                    if adopted is not None:
                        claimed.append(adopted)
                elif action == "release":
                    await self._patch(obj, release_patch(obj, str(meta(self.owner)["uid"])))
            except errors.APIError as e:
                errs.append(e)
        if errs:
            raise errs[0]
        return claimed

    async def _adopt(self, obj: Mapping[str, Any]) -> Obj | None:
        if not self._adopt_checked:
            await self.can_adopt()
            self._adopt_checked = True
        ref = owner_reference(self.owner, self.owner_api_version, self.owner_kind)
        return await self._patch(obj, adopt_patch(obj, ref))

    async def _patch(self, obj: Mapping[str, Any], patch: Obj) -> Obj | None:
        m = meta(obj)
        try:
            return await self.client.patch(self.resource, m.get("namespace"), m["name"],
                                           patch, MERGE_PATCH)
        except errors.APIError as e:
            if e.code == 404:
                return None
            raise


async def check_can_adopt(client: APIClient, r: kinds.ResourceInfo,
                          owner: Mapping[str, Any]) -> None:
    """Raise unless ``owner`` still exists with the same UID and is not being deleted."""
    m = meta(owner)
    fresh = await client.get(r, m.get("namespace"), m["name"])
    fm = meta(fresh)
    if fm.get("uid") != m.get("uid"):
        raise errors.APIError(409, "Conflict", f"original {r.kind} {m.get('namespace')}/"
                              f"{m.get('name')} is gone: got uid {fm.get('uid')}, "
                              f"wanted {m.get('uid')}")
    if fm.get("deletionTimestamp"):
        raise errors.APIError(409, "Conflict", f"{r.kind} {m.get('namespace')}/"
                              f"{m.get('name')} has just been deleted at "
                              f"{fm.get('deletionTimestamp')}")


def _rv_int(obj: Mapping[str, Any]) -> int | None:
    try:
        return int(meta(obj).get("resourceVersion") or "")
    except ValueError:
        return None


class WrittenVersions:
    """The resourceVersion of the last write this controller made to each object.

    A cached object older than what we wrote means the informer has not caught up with
    our own write: acting on it would only produce a conflict (or, worse, a decision
    based on stale sizes). Its watch event is on the way and will enqueue the owner."""

    def __init__(self) -> None:
        self._rv: dict[str, int] = {}

    def record(self, obj: Mapping[str, Any]) -> None:
        rv = _rv_int(obj)
        if rv is not None:
            self._rv[object_key(dict(obj))] = rv

    def stale(self, obj: Mapping[str, Any]) -> bool:
        """True when ``obj`` (a cached copy) predates our last write to it."""
        rv, written = _rv_int(obj), self._rv.get(object_key(dict(obj)))
        return rv is not None and written is not None and rv < written

    def forget(self, key: str) -> None:
        self._rv.pop(key, None)


# --- expectations ------------------------------------------------------------------------


@dataclass
class _Expectation:
    add: int = 0
    delete_keys: set[str] = field(default_factory=set)
    stamp: float = 0.0


class Expectations:
    """Creates and deletes a controller asked for and has not yet seen in its cache
    (upstream ``UIDTrackingControllerExpectations``). Keyed by controller key.

    * :meth:`satisfied` is True when nothing is outstanding, no record exists, or the
      record is older than ``ttl`` seconds (a lost watch event must not wedge a key).
    * creations are counted; deletions are tracked by pod key so a pod that vanishes
      twice (update with deletionTimestamp, then delete) is counted once.
    """

    def __init__(self, ttl: float = EXPECTATIONS_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._items: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        e = self._items.get(key)
        if e is None:
            return True
        if e.add <= 0 and not e.delete_keys:
            return True
        return self.clock() - e.stamp > self.ttl

    def expect_creations(self, key: str, n: int) -> None:
        self._items[key] = _Expectation(add=n, stamp=self.clock())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self._items[key] = _Expectation(delete_keys=set(pod_keys), stamp=self.clock())

    def creation_observed(self, key: str) -> None:
        e = self._items.get(key)
        if e is not None and e.add > 0:
            e.add -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        e = self._items.get(key)
        if e is not None:
            e.delete_keys.discard(pod_key)

    def delete(self, key: str) -> None:
        self._items.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        """(outstanding creates, outstanding deletes) for ``key``."""
        e = self._items.get(key)
        return (0, 0) if e is None else (max(e.add, 0), len(e.delete_keys))


# --- pods from the template ---------------------------------------------------------------


def pod_from_template(rs: Mapping[str, Any]) -> Obj:
    """The pod ``rs`` creates: template labels/annotations/finalizers and spec,
    ``generateName: <rs>-`` and a controller reference to ``rs``."""
    template = (rs.get("spec") or {}).get("template") or {}
    tm = template.get("metadata") or {}
    m: Obj = {"generateName": f"{meta(rs).get('name')}-",
              "namespace": meta(rs).get("namespace"),
              "ownerReferences": [owner_reference(rs, "apps/v1", "ReplicaSet")]}
    for k in ("labels", "annotations", "finalizers"):
        if tm.get(k):
            m[k] = copy.deepcopy(tm[k])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m,
            "spec": copy.deepcopy(template.get("spec") or {})}


# --- the controller ------------------------------------------------------------------------


class ReplicaSetController(Controller):
    """Creates and deletes pods so every ReplicaSet has ``spec.replicas`` active pods."""

    name = "replicaset"
    workers = 4

    def __init__(self, client: APIClient, factory: InformerFactory,
                 recorder: EventRecorder) -> None:
        super().__init__(client, recorder)
        self.expectations = Expectations()
        self.written = WrittenVersions()
        self.rs_informer = factory.informer(REPLICASETS)
        self.pod_informer = factory.informer(PODS)
        self.rs_informer.add_indexer(INDEX_CONTROLLER, by_controller_uid)
        self.pod_informer.add_indexer(INDEX_CONTROLLER, by_controller_uid)
        self.pod_informer.add_indexer(INDEX_ORPHANS, orphans_by_namespace)
        self.rs_informer.add_handlers(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pod_informer.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)

    # --- handlers: record keys only ------------------------------------------------------

    def _rs_added(self, rs: Obj) -> None:
        self.enqueue(rs)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def _rs_deleted(self, rs: Obj) -> None:
        key = object_key(rs)
        self.expectations.delete(key)
        self.enqueue_key(key)

    def _owner_key(self, pod: Obj, ref: Mapping[str, Any] | None) -> str | None:
        """The key of the ReplicaSet ``ref`` names, if that ReplicaSet is cached."""
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        rs = self.rs_informer.indexer.get_by(meta(pod).get("namespace"), ref.get("name", ""))
        if rs is None or meta(rs).get("uid") != ref.get("uid"):
            return None
        return object_key(rs)

    def _enqueue_matching(self, pod: Obj) -> None:
        """Enqueue every ReplicaSet whose selector matches an orphan ``pod``."""
        labels = meta(pod).get("labels") or {}
        for rs in self.rs_informer.indexer.by_index("namespace", meta(pod).get("namespace", "")):
            try:
                sel = selector_from_label_selector_object((rs.get("spec") or {}).get("selector"))
            except errors.APIError:
                continue
            if sel.matches(labels):
                self.enqueue(rs)

    def _pod_added(self, pod: Obj) -> None:
        if meta(pod).get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        ref = controller_ref(pod)
        if ref is not None:
            key = self._owner_key(pod, ref)
            if key is not None:
                self.expectations.creation_observed(key)
                self.enqueue_key(key)
            return
        self._enqueue_matching(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return
        labels_changed = meta(old).get("labels") != meta(new).get("labels")
        if meta(new).get("deletionTimestamp"):
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            key = self._owner_key(old, old_ref)
            if key is not None:
                self.enqueue_key(key)
        if new_ref is not None:
            key = self._owner_key(new, new_ref)
            if key is None:
                return
            self.enqueue_key(key)
            rs = self.rs_informer.indexer.get(key)
            min_ready = int(((rs or {}).get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(new):
                self.queue.add_after(key, min_ready + 1)
            return
        if labels_changed or old_ref != new_ref:
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod, controller_ref(pod))
        if key is None:
            return
        self.expectations.deletion_observed(key, object_key(pod))
        self.enqueue_key(key)

    # --- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        """Bring one ReplicaSet's pods and status in line with its spec."""
        cached = self.rs_informer.indexer.get(key)
        if cached is None:
            self.expectations.delete(key)
            self.written.forget(key)
            return
        if self.written.stale(cached):
            return
        try:
            selector = selector_from_label_selector_object(
                (cached.get("spec") or {}).get("selector"))
        except errors.APIError as e:
            self.log.warning("replicaset %s: bad selector: %s", key, e.message)
            return
        needs_sync = self.expectations.satisfied(key)
        pods = await self._claim_pods(cached, selector)
        manage_error: str | None = None
        diff = len(pods) - spec_replicas(cached)
        if needs_sync and not meta(cached).get("deletionTimestamp"):
            try:
                await self._manage_replicas(key, cached, pods)
            except errors.APIError as e:
                manage_error = str(e.message or e)
        now = now_utc()
        status = replica_set_status(cached, pods, manage_error, diff, now)
        updated = await self._write_status(cached, status)
        min_ready = int((updated.get("spec") or {}).get("minReadySeconds") or 0)
        st = updated.get("status") or {}
        if manage_error is None and min_ready > 0 and \
                st.get("readyReplicas", 0) == spec_replicas(updated) and \
                st.get("availableReplicas", 0) != spec_replicas(updated):
            self.queue.add_after(key, min_ready)
        if manage_error is not None:
            raise errors.APIError(500, "InternalError", manage_error)

    async def _claim_pods(self, rs: Obj, selector: LabelSelector) -> list[Mapping[str, Any]]:
        """Active pods owned by ``rs`` after adopting matching orphans and releasing owned
        pods that no longer match."""
        idx = self.pod_informer.indexer
        owned = idx.by_index(INDEX_CONTROLLER, meta(rs).get("uid", ""))
        orphans = idx.by_index(INDEX_ORPHANS, meta(rs).get("namespace", ""))
        candidates = [p for p in [*owned, *orphans] if is_pod_active(p)]
        claimer = Claimer(self.client, PODS, rs, "apps/v1", "ReplicaSet", selector,
                          lambda: check_can_adopt(self.client, REPLICASETS, rs))
        return await claimer.claim(candidates)

    async def _manage_replicas(self, key: str, rs: Obj,
                               pods: list[Mapping[str, Any]]) -> None:
        diff = len(pods) - spec_replicas(rs)
        if diff < 0:
            await self._create_pods(key, rs, min(-diff, BURST_REPLICAS))
        elif diff > 0:
            await self._delete_pods(key, rs, pods, min(diff, BURST_REPLICAS))

    async def _create_pods(self, key: str, rs: Obj, count: int) -> None:
        """Create ``count`` pods in slow-start batches; stop at the first failing batch."""
        self.expectations.expect_creations(key, count)
        created = 0
        first_error: errors.APIError | None = None
        for size in slow_start_batches(count):
            results = await asyncio.gather(*(self._create_pod(rs) for _ in range(size)),
                                           return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            created += size - len(failures)
            if failures:
                err = failures[0]
                first_error = err if isinstance(err, errors.APIError) else \
                    errors.APIError(500, "InternalError", str(err))
                break
        for _ in range(count - created):
            self.expectations.creation_observed(key)
        if first_error is not None:
            raise first_error

    async def _create_pod(self, rs: Obj) -> None:
        pod = pod_from_template(rs)
        if not pod["metadata"].get("labels"):
            raise errors.APIError(422, "Invalid", "unable to create pods, no labels")
        try:
            out = await self.client.create(PODS, meta(rs).get("namespace"), pod)
        except errors.APIError as e:
            self.recorder.event(rs, "Warning", "FailedCreate", f"Error creating: {e.message}")
            raise
        self.recorder.event(rs, "Normal", "SuccessfulCreate",
                            f"Created pod: {meta(out).get('name')}")

    def _related_pods(self, rs: Obj) -> list[Mapping[str, Any]]:
        """Pods of every ReplicaSet sharing ``rs``'s controller (``rs``'s own when none)."""
        ref = controller_ref(rs)
        owners: list[Obj] = [rs]
        if ref is not None:
            owners = self.rs_informer.indexer.by_index(INDEX_CONTROLLER, ref.get("uid", ""))
        out: list[Mapping[str, Any]] = []
        for owner in owners:
            out.extend(self.pod_informer.indexer.by_index(INDEX_CONTROLLER,
                                                          meta(owner).get("uid", "")))
        return out

    async def _delete_pods(self, key: str, rs: Obj, pods: list[Mapping[str, Any]],
                           count: int) -> None:
        victims = pods_to_delete(pods, self._related_pods(rs), count, now_utc())
        self.expectations.expect_deletions(key, [object_key(dict(p)) for p in victims])
        results = await asyncio.gather(*(self._delete_pod(key, rs, p) for p in victims),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, errors.APIError):
                raise r
            if isinstance(r, BaseException):
                raise errors.APIError(500, "InternalError", str(r))

    async def _delete_pod(self, key: str, rs: Obj, pod: Mapping[str, Any]) -> None:
        m = meta(pod)
        try:
            await self.client.delete(PODS, m.get("namespace"), m["name"])
        except errors.APIError as e:
            self.expectations.deletion_observed(key, object_key(dict(pod)))
            if e.code == 404:
                return
            self.recorder.event(rs, "Warning", "FailedDelete", f"Error deleting: {e.message}")
            raise
        self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {m['name']}")

    async def _write_status(self, rs: Obj, status: Obj) -> Obj:
        """Write ``status`` through /status when it differs; one retry on conflict."""
        if not status_differs(rs.get("status"), status):
            return rs
        body = copy.deepcopy(rs)
        body["status"] = status
        try:
            out = await self.client.update(REPLICASETS, body, subresource="status")
            self.written.record(out)
            return out
        except errors.APIError as e:
            if e.code != 409:
                raise
        ns, name = split_key(object_key(rs))
        fresh = await self.client.get(REPLICASETS, ns, name)
        if meta(fresh).get("uid") != meta(rs).get("uid"):
            return rs
        fresh["status"] = status
        out = await self.client.update(REPLICASETS, fresh, subresource="status")
        self.written.record(out)
        return out
