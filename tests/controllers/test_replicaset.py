"""ReplicaSet controller core: active/available pods, the deletion order on scale-down,
slow-start batches, status, claiming, expectations and the pod built from a template."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from svcnet.controllers.replicaset import (
    Expectations,
    WrittenVersions,
    claim_action,
    is_pod_active,
    is_pod_available,
    pod_from_template,
    pods_to_delete,
    replica_set_status,
    slow_start_batches,
    status_differs,
)
from svcnet.model.selectors import selector_from_map

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def ts(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, *, node: str = "", phase: str = "Running", ready: bool | None = None,
        ready_for: float = 100, created: float = 1000, restarts: int = 0,
        cost: int | None = None, deleting: bool = False, labels: dict[str, str] | None = None,
        owner: str | None = None, uid: str | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}",
                         "creationTimestamp": ts(created), "labels": labels or {"app": "a"}}
    if cost is not None:
        m["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    if deleting:
        m["deletionTimestamp"] = ts(0)
    if owner is not None:
        m["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                 "uid": owner, "controller": True}]
    status: dict[str, Any] = {"phase": phase,
                              "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                 "lastTransitionTime": ts(ready_for)}]
    return {"metadata": m, "spec": {"nodeName": node}, "status": status}


def rs(replicas: int = 3, min_ready: int = 0, generation: int = 2,
       status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "web-abc", "namespace": "ns", "uid": "rs-uid",
                         "generation": generation},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": {"app": "a"}},
                     "template": {"metadata": {"labels": {"app": "a", "tier": "t"},
                                               "annotations": {"x": "y"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": status or {"replicas": 0}}


@pytest.mark.parametrize(("p", "want"), [
    (pod("p"), True),
    (pod("p", phase="Pending"), True),
    (pod("p", phase="Succeeded"), False),
    (pod("p", phase="Failed"), False),
    (pod("p", deleting=True), False),
], ids=["running", "pending", "succeeded", "failed", "terminating"])
def test_is_pod_active(p: dict[str, Any], want: bool) -> None:
    assert is_pod_active(p) is want


@pytest.mark.parametrize(("p", "min_ready", "want"), [
    (pod("p", ready=True), 0, True),
    (pod("p", ready=False), 0, False),
    (pod("p"), 0, False),
    (pod("p", ready=True, ready_for=30), 10, True),
    (pod("p", ready=True, ready_for=5), 10, False),
    (pod("p", ready=True, ready_for=10), 10, False),
], ids=["ready", "not-ready", "no-condition", "ready-long-enough", "ready-too-briefly",
        "exactly-min-ready-is-not-after"])
def test_is_pod_available(p: dict[str, Any], min_ready: int, want: bool) -> None:
    assert is_pod_available(p, min_ready, NOW) is want


# (pods, how many to delete, expected victims) — the first listed pod is always the one
# that must survive, so the cases also check that the order ignores input order.
DELETE_CASES = {
    "unassigned-before-assigned": (
        [pod("keep", node="n1", ready=True), pod("go", ready=True)], 1, ["go"]),
    "pending-before-running": (
        [pod("keep", node="n1"), pod("go", node="n1", phase="Pending")], 1, ["go"]),
    "unknown-before-running": (
        [pod("keep", node="n1"), pod("go", node="n1", phase="Unknown")], 1, ["go"]),
    "not-ready-before-ready": (
        [pod("keep", ready=True), pod("go", ready=False)], 1, ["go"]),
    "lower-deletion-cost-first": (
        [pod("keep", ready=True, cost=10), pod("go", ready=True, cost=-5)], 1, ["go"]),
    "doubled-up-node-first": (
        [pod("keep", node="n1", ready=True), pod("go", node="n2", ready=True),
         pod("go2", node="n2", ready=True)], 2, ["go", "go2"]),
    "ready-for-less-time-first": (
        [pod("keep", ready=True, ready_for=100_000), pod("go", ready=True, ready_for=5)],
        1, ["go"]),
    "more-restarts-first": (
        [pod("keep", ready=True, restarts=0), pod("go", ready=True, restarts=3)], 1, ["go"]),
    "newer-before-older": (
        [pod("keep", created=100_000), pod("go", created=10)], 1, ["go"]),
    "all-when-diff-covers-everything": (
        [pod("a"), pod("b")], 5, ["a", "b"]),
    "phase-beats-readiness": (
        [pod("keep", node="n", ready=False), pod("go", node="n", phase="Pending", ready=True)],
        1, ["go"]),
}


@pytest.mark.parametrize("case", list(DELETE_CASES))
def test_pods_to_delete(case: str) -> None:
    pods, diff, want = DELETE_CASES[case]
    got = pods_to_delete(pods, pods, diff, NOW)
    assert sorted(p["metadata"]["name"] for p in got) == sorted(want)
    got_reversed = pods_to_delete(list(reversed(pods)), pods, diff, NOW)
    assert sorted(p["metadata"]["name"] for p in got_reversed) == sorted(want)


def test_pods_to_delete_same_log_bucket_ties_by_uid() -> None:
    # 1000 s and 1001 s ago fall in the same log2 bucket: the UID decides, not the age.
    a = pod("a", created=1000, uid="b-uid")
    b = pod("b", created=1001, uid="a-uid")
    assert pods_to_delete([a, b], [a, b], 1, NOW)[0]["metadata"]["name"] == "b"
    # Without logarithmic comparison the newer pod goes first.
    assert pods_to_delete([a, b], [a, b], 1, None)[0]["metadata"]["name"] == "a"


@pytest.mark.parametrize(("count", "want"), [
    (0, []), (1, [1]), (2, [1, 1]), (3, [1, 2]), (5, [1, 2, 2]), (10, [1, 2, 4, 3]),
    (60, [1, 2, 4, 8, 16, 29]),
])
def test_slow_start_batches(count: int, want: list[int]) -> None:
    assert slow_start_batches(count) == want
    assert sum(want) == count


def test_status_counts_and_omits_zero() -> None:
    pods = [pod("a", ready=True, ready_for=100, labels={"app": "a", "tier": "t"}),
            pod("b", ready=True, ready_for=1, labels={"app": "a", "tier": "t"}),
            pod("c", ready=False, labels={"app": "a"})]
    st = replica_set_status(rs(min_ready=10), pods, None, 0, NOW)
    assert st == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                  "availableReplicas": 1, "observedGeneration": 2}
    assert replica_set_status(rs(), [], None, 0, NOW) == {"replicas": 0,
                                                           "observedGeneration": 2}


@pytest.mark.parametrize(("error", "diff", "old_conditions", "want_reason"), [
    ("quota exceeded", -2, [], "FailedCreate"),
    ("cannot delete", 1, [], "FailedDelete"),
    (None, 0, [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}], None),
    ("again", -1, [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                    "message": "first"}], "FailedCreate"),
], ids=["create-failure", "delete-failure", "cleared-on-success", "kept-while-failing"])
def test_status_replica_failure(error: str | None, diff: int,
                                old_conditions: list[dict[str, Any]],
                                want_reason: str | None) -> None:
    st = replica_set_status(rs(status={"replicas": 0, "conditions": old_conditions}), [],
                            error, diff, NOW)
    conds = st.get("conditions", [])
    if want_reason is None:
        assert conds == []
    else:
        assert [(c["type"], c["reason"]) for c in conds] == [("ReplicaFailure", want_reason)]


@pytest.mark.parametrize(("current", "desired", "want"), [
    ({"replicas": 2, "readyReplicas": 0}, {"replicas": 2}, False),
    ({"replicas": 2}, {"replicas": 2, "observedGeneration": 3}, True),
    (None, {"replicas": 0}, False),
    ({"replicas": 1}, {"replicas": 2}, True),
], ids=["zero-equals-absent", "generation", "empty", "count"])
def test_status_differs(current: dict[str, Any] | None, desired: dict[str, Any],
                        want: bool) -> None:
    assert status_differs(current, desired) is want


OWNER = {"metadata": {"name": "web-abc", "namespace": "ns", "uid": "rs-uid"}}
OWNER_DELETING = {"metadata": {**OWNER["metadata"], "deletionTimestamp": ts(0)}}


@pytest.mark.parametrize(("obj", "owner", "want"), [
    (pod("p", owner="rs-uid"), OWNER, "keep"),
    (pod("p", owner="rs-uid", labels={"app": "other"}), OWNER, "release"),
    (pod("p", owner="rs-uid", labels={"app": "other"}), OWNER_DELETING, "ignore"),
    (pod("p", owner="someone-else"), OWNER, "ignore"),
    (pod("p"), OWNER, "adopt"),
    (pod("p", labels={"app": "other"}), OWNER, "ignore"),
    (pod("p"), OWNER_DELETING, "ignore"),
    (pod("p", deleting=True), OWNER, "ignore"),
], ids=["owned-matching", "owned-not-matching", "owned-owner-deleting", "other-controller",
        "orphan-matching", "orphan-not-matching", "orphan-owner-deleting", "orphan-deleting"])
def test_claim_action(obj: dict[str, Any], owner: dict[str, Any], want: str) -> None:
    assert claim_action(obj, owner, selector_from_map({"app": "a"})) == want


def test_expectations_lifecycle() -> None:
    clock = [0.0]
    e = Expectations(ttl=300, clock=lambda: clock[0])
    assert e.satisfied("ns/rs")  # nothing recorded: sync
    e.expect_creations("ns/rs", 2)
    assert not e.satisfied("ns/rs")
    e.creation_observed("ns/rs")
    assert e.pending("ns/rs") == (1, 0) and not e.satisfied("ns/rs")
    e.creation_observed("ns/rs")
    assert e.satisfied("ns/rs")
    e.creation_observed("ns/rs")  # a create from before: never goes negative
    assert e.pending("ns/rs") == (0, 0)
    e.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    e.deletion_observed("ns/rs", "ns/a")
    e.deletion_observed("ns/rs", "ns/a")  # observed twice counts once
    assert e.pending("ns/rs") == (0, 1) and not e.satisfied("ns/rs")
    clock[0] = 301.0  # a lost event does not wedge the key forever
    assert e.satisfied("ns/rs")
    e.delete("ns/rs")
    assert e.pending("ns/rs") == (0, 0)


def test_written_versions() -> None:
    w = WrittenVersions()
    obj = {"metadata": {"name": "d", "namespace": "ns", "resourceVersion": "10"}}
    assert not w.stale(obj)
    w.record({"metadata": {"name": "d", "namespace": "ns", "resourceVersion": "12"}})
    assert w.stale(obj)
    assert not w.stale({"metadata": {"name": "d", "namespace": "ns", "resourceVersion": "12"}})
    w.forget("ns/d")
    assert not w.stale(obj)


def test_pod_from_template() -> None:
    p = pod_from_template(rs())
    m = p["metadata"]
    assert m["generateName"] == "web-abc-"
    assert m["labels"] == {"app": "a", "tier": "t"} and m["annotations"] == {"x": "y"}
    assert m["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                     "name": "web-abc", "uid": "rs-uid", "controller": True,
                                     "blockOwnerDeletion": True}]
    assert p["spec"] == {"containers": [{"name": "c", "image": "i"}]}
    tmpl = rs()
    p["spec"]["containers"][0]["image"] = "changed"
    assert tmpl["spec"]["template"]["spec"]["containers"][0]["image"] == "i"
