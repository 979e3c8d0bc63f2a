"""Deployment controller core: the template hash, surge/unavailable arithmetic, the new
ReplicaSet, rolling/proportional/recreate plans, revisions, history clean-up, status and
conditions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from svcnet.controllers.deployment import (
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
    build_new_rs,
    compute_hash,
    equal_ignore_hash,
    find_new_rs,
    fnv32a,
    is_scaling_event,
    max_surge,
    max_unavailable,
    new_rs_annotations,
    new_rs_new_replicas,
    old_pods_running,
    old_rs_scale_down_steps,
    paused_condition,
    reconcile_new_rs_target,
    resolve_fenceposts,
    resolve_int_or_percent,
    rollout_status,
    rses_to_clean_up,
    safe_encode_string,
    scale_steps,
    set_condition,
)

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
TEMPLATE: dict[str, Any] = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "img:1"}]}}


def ts(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def deploy(replicas: int = 3, *, surge: Any = "25%", unavailable: Any = "25%",
           strategy: str = "RollingUpdate", generation: int = 1,
           status: dict[str, Any] | None = None, annotations: dict[str, str] | None = None,
           paused: bool = False, history: int | None = 10) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                            "template": TEMPLATE, "progressDeadlineSeconds": 600,
                            "strategy": {"type": strategy}, "paused": paused}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    if history is not None:
        spec["revisionHistoryLimit"] = history
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "d-uid",
                         "generation": generation, "annotations": annotations or {}},
            "spec": spec, "status": status or {}}


def rs(name: str, replicas: int, *, avail: int = 0, ready: int | None = None,
       status_replicas: int | None = None, created: float = 100, revision: int = 1,
       ann: dict[str, str] | None = None, template: dict[str, Any] | None = None,
       generation: int = 1, observed: int = 1) -> dict[str, Any]:
    annotations = {REVISION: str(revision), **(ann or {})}
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                         "creationTimestamp": ts(created), "annotations": annotations,
                         "generation": generation},
            "spec": {"replicas": replicas, "template": template or TEMPLATE},
            "status": {"replicas": replicas if status_replicas is None else status_replicas,
                       "readyReplicas": avail if ready is None else ready,
                       "availableReplicas": avail, "observedGeneration": observed}}


def names(steps: list[tuple[Any, int]]) -> list[tuple[str, int]]:
    return [(s["metadata"]["name"], n) for s, n in steps]


# --- hashing ------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "want"), [
    (b"", 0x811C9DC5), (b"a", 0xE40C292C), (b"foobar", 0xBF9CF968)])
def test_fnv32a_reference_vectors(data: bytes, want: int) -> None:
    assert fnv32a(data) == want


def test_safe_encode_string_maps_digits_like_upstream() -> None:
    assert safe_encode_string("0123456789") == "456789bcdf"


def test_compute_hash_shape_and_stability() -> None:
    h = compute_hash(TEMPLATE, None)
    assert 1 <= len(h) <= 10 and set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    reordered = {"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]}
    assert compute_hash(reordered, None) == h
    assert compute_hash(TEMPLATE, 1) != h
    assert compute_hash(TEMPLATE, 0) != h  # a zero collision count still salts the hash
    other = {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "img:2"}]}}
    assert compute_hash(other, None) != h


def test_equal_ignore_hash_and_find_new() -> None:
    hashed = {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
              "spec": TEMPLATE["spec"]}
    assert equal_ignore_hash(hashed, TEMPLATE)
    echoed = {"metadata": {"creationTimestamp": None, "labels": {"app": "web"},
                           "annotations": {}}, "spec": TEMPLATE["spec"]}
    assert equal_ignore_hash(echoed, TEMPLATE)  # as kubectl echoes a template back
    assert compute_hash(echoed, None) == compute_hash(TEMPLATE, None)
    d = deploy()
    old = rs("web-old", 0, template={"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": "x"}]}})
    newer = rs("web-b", 1, created=10, template=hashed)
    oldest_match = rs("web-a", 1, created=50, template=hashed)
    assert find_new_rs(d, [old, newer, oldest_match]) is oldest_match
    assert find_new_rs(d, [old]) is None


def test_build_new_rs() -> None:
    d = deploy(annotations={"team": "x", "kubectl.kubernetes.io/last-applied-configuration": "{}"})
    out = build_new_rs(d, "h4sh", 2, 3)
    assert out["metadata"]["name"] == "web-h4sh"
    assert out["metadata"]["labels"] == {"app": "web", "pod-template-hash": "h4sh"}
    assert out["spec"]["selector"] == {"matchLabels": {"app": "web", "pod-template-hash": "h4sh"}}
    assert out["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == "h4sh"
    assert out["spec"]["replicas"] == 2
    assert out["metadata"]["annotations"] == {"team": "x", REVISION: "3",
                                              DESIRED_REPLICAS: "3", MAX_REPLICAS: "4"}
    ref = out["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == \
        ("Deployment", "d-uid", True, True)
    assert "pod-template-hash" not in TEMPLATE["metadata"]["labels"]


# --- arithmetic ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "total", "up", "want"), [
    ("25%", 3, True, 1), ("25%", 3, False, 0), ("25%", 10, True, 3), ("25%", 10, False, 2),
    ("50%", 5, True, 3), ("100%", 7, False, 7), (2, 10, True, 2), (0, 10, True, 0),
    ("0%", 10, True, 0),
], ids=["surge-3", "unavail-3", "surge-10", "unavail-10", "half-up", "all", "int", "zero-int",
        "zero-pct"])
def test_resolve_int_or_percent(value: Any, total: int, up: bool, want: int) -> None:
    assert resolve_int_or_percent(value, total, up) == want


def test_resolve_int_or_percent_rejects_plain_strings() -> None:
    with pytest.raises(ValueError):
        resolve_int_or_percent("3", 10, True)


@pytest.mark.parametrize(("surge", "unavail", "desired", "want"), [
    ("25%", "25%", 3, (1, 0)), ("25%", "25%", 1, (1, 0)), (0, 0, 5, (0, 1)),
    ("0%", "10%", 5, (0, 1)), (3, 2, 10, (3, 2)),
], ids=["default-3", "default-1", "both-zero", "pct-rounds-to-zero", "ints"])
def test_resolve_fenceposts(surge: Any, unavail: Any, desired: int,
                            want: tuple[int, int]) -> None:
    assert resolve_fenceposts(surge, unavail, desired) == want


def test_max_surge_and_unavailable() -> None:
    assert (max_surge(deploy(4)), max_unavailable(deploy(4))) == (1, 1)
    assert (max_surge(deploy(0)), max_unavailable(deploy(0))) == (0, 0)
    assert max_unavailable(deploy(2, surge=0, unavailable=5)) == 2
    recreate = deploy(4, strategy="Recreate")
    assert (max_surge(recreate), max_unavailable(recreate)) == (0, 0)


# --- rolling update ------------------------------------------------------------------------------

NEW_REPLICAS_CASES = {
    "first-step-uses-surge": (deploy(3), [rs("old", 3, avail=3)], rs("new", 0), 1),
    "no-room-while-surged": (deploy(3), [rs("old", 3, avail=3)], rs("new", 1), 1),
    "room-after-old-shrinks": (deploy(3), [rs("old", 2, avail=2)], rs("new", 1), 2),
    "capped-at-desired": (deploy(3, surge=10), [rs("old", 0)], rs("new", 1), 3),
    "surge-zero-waits": (deploy(4, surge=0, unavailable=1), [rs("old", 4, avail=4)],
                         rs("new", 0), 0),
    "recreate-takes-all": (deploy(5, strategy="Recreate"), [], rs("new", 0), 5),
}


@pytest.mark.parametrize("case", list(NEW_REPLICAS_CASES))
def test_new_rs_new_replicas(case: str) -> None:
    d, olds, new, want = NEW_REPLICAS_CASES[case]
    assert new_rs_new_replicas(d, [*olds, new], new) == want


def test_reconcile_new_rs_target_scales_down_an_oversized_new_rs() -> None:
    d = deploy(3)
    assert reconcile_new_rs_target(d, [rs("new", 5)], rs("new", 5)) == 3
    assert reconcile_new_rs_target(d, [rs("new", 3)], rs("new", 3)) == 3


OLD_STEPS_CASES = {
    "new-not-available-yet": (deploy(3), rs("new", 1), [rs("old", 3, avail=3)], []),
    "one-new-available": (deploy(3), rs("new", 1, avail=1), [rs("old", 3, avail=3)],
                          [("old", 2)]),
    "unhealthy-old-first": (deploy(3), rs("new", 1, avail=1), [rs("old", 3, avail=1)],
                            [("old", 2)]),
    "max-unavailable-allows-two": (deploy(4, surge=0, unavailable=2), rs("new", 0),
                                   [rs("old", 4, avail=4)], [("old", 2)]),
    "oldest-old-first": (deploy(4, surge=0, unavailable=1), rs("new", 0),
                         [rs("older", 2, avail=2, created=500),
                          rs("old", 2, avail=2, created=200)],
                         [("older", 1)]),
    "nothing-old": (deploy(3), rs("new", 3, avail=3), [], []),
}


@pytest.mark.parametrize("case", list(OLD_STEPS_CASES))
def test_old_rs_scale_down_steps(case: str) -> None:
    d, new, olds, want = OLD_STEPS_CASES[case]
    assert names(old_rs_scale_down_steps(d, new, olds)) == want


# --- proportional scaling --------------------------------------------------------------------------

ANN_13 = {DESIRED_REPLICAS: "10", MAX_REPLICAS: "13"}
SCALE_CASES = {
    # The Kubernetes docs' example: 10 replicas, surge 3, mid-rollout, scaled to 15 → the
    # 5 extra go 3 to the old ReplicaSet and 2 to the new one.
    "docs-example-scale-up": (
        deploy(15, surge=3, unavailable=2),
        rs("new", 5, created=10, ann=ANN_13), [rs("old", 8, created=100, ann=ANN_13)],
        [("old", 11), ("new", 7)]),
    "scale-down-proportionally": (
        deploy(5, surge=3, unavailable=2),
        rs("new", 5, created=10, ann=ANN_13), [rs("old", 8, created=100, ann=ANN_13)],
        [("old", 5), ("new", 3)]),
    "single-active-takes-all": (
        deploy(7), rs("new", 3), [rs("old", 0)], [("new", 7)]),
    "single-active-already-sized": (deploy(3), rs("new", 3), [rs("old", 0)], []),
    "none-active-newest-old": (
        deploy(2), None, [rs("a", 0, created=100), rs("b", 0, created=10)], [("b", 2)]),
    "saturated-new-empties-old": (
        deploy(3), rs("new", 3, avail=3, ann={DESIRED_REPLICAS: "3"}), [rs("old", 1)],
        [("old", 0)]),
    "recreate-several-active-waits": (
        deploy(3, strategy="Recreate"), rs("new", 1), [rs("old", 2)], []),
}


@pytest.mark.parametrize("case", list(SCALE_CASES))
def test_scale_steps(case: str) -> None:
    d, new, olds, want = SCALE_CASES[case]
    assert names(scale_steps(d, new, olds)) == want


@pytest.mark.parametrize(("d", "rses", "want"), [
    (deploy(5), [rs("a", 3, ann={DESIRED_REPLICAS: "3"})], True),
    (deploy(3), [rs("a", 3, ann={DESIRED_REPLICAS: "3"})], False),
    (deploy(5), [rs("a", 0, ann={DESIRED_REPLICAS: "3"})], False),
    (deploy(5), [rs("a", 3)], False),
    (deploy(5), [None], False),
], ids=["replicas-changed", "unchanged", "inactive-ignored", "no-annotation", "no-rs"])
def test_is_scaling_event(d: dict[str, Any], rses: list[Any], want: bool) -> None:
    assert is_scaling_event(d, rses) is want


# --- revisions and history ------------------------------------------------------------------------


def test_new_rs_annotations() -> None:
    d = deploy(3, annotations={"team": "x", REVISION: "4", "kubectl.kubernetes.io/"
                               "last-applied-configuration": "{}"})
    ann, changed = new_rs_annotations(d, {REVISION: "1", "team": "x"}, 5, exists=True)
    assert changed and ann == {REVISION: "5", REVISION_HISTORY: "1", "team": "x"}
    ann2, changed2 = new_rs_annotations(d, ann, 5, exists=True)
    assert not changed2 and ann2 == ann
    ann3, _ = new_rs_annotations(d, {REVISION: "2", REVISION_HISTORY: "1"}, 6, exists=True)
    assert ann3[REVISION_HISTORY] == "1,2"
    fresh, changed4 = new_rs_annotations(d, {}, 1, exists=False)
    assert changed4 and fresh == {"team": "x", REVISION: "1", DESIRED_REPLICAS: "3",
                                  MAX_REPLICAS: "4"}


CLEANUP_CASES = {
    "over-limit-oldest-revision-goes": (
        1, [rs("r2", 0, revision=2), rs("r1", 0, revision=1)], ["r1"]),
    "within-limit": (2, [rs("r2", 0, revision=2), rs("r1", 0, revision=1)], []),
    "pods-still-reported": (
        1, [rs("r2", 0, revision=2), rs("r1", 0, revision=1, status_replicas=1)], []),
    "not-yet-observed": (
        1, [rs("r2", 0, revision=2), rs("r1", 0, revision=1, generation=3, observed=2)], []),
    "nonzero-spec-kept": (0, [rs("r1", 1, revision=1)], []),
}


@pytest.mark.parametrize("case", list(CLEANUP_CASES))
def test_rses_to_clean_up(case: str) -> None:
    limit, olds, want = CLEANUP_CASES[case]
    got = rses_to_clean_up(deploy(history=limit), olds)
    assert [r["metadata"]["name"] for r in got] == want


def test_no_cleanup_without_history_limit() -> None:
    assert rses_to_clean_up(deploy(history=None), [rs("r1", 0), rs("r2", 0)]) == []


@pytest.mark.parametrize(("new", "olds", "pods", "want"), [
    (rs("new", 0), [rs("old", 0)], {}, False),
    (rs("new", 0), [rs("old", 0, status_replicas=1)], {}, True),
    (rs("new", 0), [rs("old", 0)], {"uid-old": [{"status": {"phase": "Running"}}]}, True),
    (rs("new", 0), [rs("old", 0)], {"uid-old": [{"status": {"phase": "Failed"}}]}, False),
    (rs("new", 2), [], {"uid-new": [{"status": {"phase": "Running"}}]}, False),
], ids=["none", "status-reports-pods", "pod-still-there", "failed-pods-ignored",
        "new-pods-ignored"])
def test_old_pods_running(new: dict[str, Any], olds: list[dict[str, Any]],
                          pods: dict[str, list[dict[str, Any]]], want: bool) -> None:
    assert old_pods_running(new, olds, pods) is want


# --- status and conditions ----------------------------------------------------------------------


def cond(type_: str, status: str, reason: str, ago: float = 60) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": "m",
            "lastUpdateTime": ts(ago), "lastTransitionTime": ts(ago)}


def by_type(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"])
            for c in status.get("conditions", [])}


def test_rollout_status_complete() -> None:
    d = deploy(3, generation=2, status={"conditions": [cond("Progressing", "True",
                                                              "ReplicaSetUpdated")]})
    new = rs("web-x", 3, avail=3)
    st = rollout_status(d, [new, rs("old", 0)], new, NOW)
    assert {k: st.get(k) for k in ("observedGeneration", "replicas", "updatedReplicas",
                                   "readyReplicas", "availableReplicas")} == \
        {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
         "availableReplicas": 3}
    assert "unavailableReplicas" not in st
    assert by_type(st) == {
        "Available": ("True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
        "Progressing": ("True", "NewReplicaSetAvailable",
                        'ReplicaSet "web-x" has successfully progressed.')}


def test_rollout_status_progressing_keeps_transition_time() -> None:
    d = deploy(3, status={"replicas": 4, "updatedReplicas": 1,
                          "conditions": [cond("Progressing", "True", "NewReplicaSetCreated",
                                              ago=30)]})
    new = rs("web-x", 2, avail=1)
    st = rollout_status(d, [new, rs("old", 2, avail=2)], new, NOW)
    progressing = next(c for c in st["conditions"] if c["type"] == "Progressing")
    assert (progressing["reason"], progressing["message"]) == \
        ("ReplicaSetUpdated", 'ReplicaSet "web-x" is progressing.')
    assert progressing["lastTransitionTime"] == ts(30)
    assert progressing["lastUpdateTime"] == ts(0)
    assert st["unavailableReplicas"] == 1


def test_rollout_status_times_out_without_progress() -> None:
    d = deploy(3, status={"replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
                          "readyReplicas": 3,
                          "conditions": [cond("Progressing", "True", "ReplicaSetUpdated",
                                              ago=700)]})
    new = rs("web-x", 1, avail=0, ready=0)
    st = rollout_status(d, [new, rs("old", 3, avail=3)], new, NOW)
    assert by_type(st)["Progressing"] == ("False", "ProgressDeadlineExceeded",
                                          'ReplicaSet "web-x" has timed out progressing.')


def test_rollout_status_minimum_unavailable_and_replica_failure() -> None:
    d = deploy(4)
    new = rs("web-x", 4, avail=2)
    new["status"]["conditions"] = [{"type": "ReplicaFailure", "status": "True",
                                    "reason": "FailedCreate", "message": "quota",
                                    "lastTransitionTime": ts(5)}]
    st = rollout_status(d, [new], new, NOW)
    conds = by_type(st)
    assert conds["Available"] == ("False", "MinimumReplicasUnavailable",
                                  "Deployment does not have minimum availability.")
    assert conds["ReplicaFailure"] == ("True", "FailedCreate", "quota")


def test_set_condition_semantics() -> None:
    status: dict[str, Any] = {"conditions": [cond("Available", "True", "A", ago=100)]}
    set_condition(status, cond("Available", "True", "A", ago=0))
    assert status["conditions"][0]["lastUpdateTime"] == ts(100)  # same status+reason: no-op
    set_condition(status, cond("Available", "True", "B", ago=0))
    c = status["conditions"][0]
    assert (c["reason"], c["lastTransitionTime"], c["lastUpdateTime"]) == ("B", ts(100), ts(0))
    set_condition(status, cond("Available", "False", "C", ago=0))
    assert status["conditions"][0]["lastTransitionTime"] == ts(0)


@pytest.mark.parametrize(("d", "want"), [
    (deploy(paused=True), ("Unknown", "DeploymentPaused", "Deployment is paused")),
    (deploy(paused=True, status={"conditions": [cond("Progressing", "Unknown",
                                                     "DeploymentPaused")]}), None),
    (deploy(status={"conditions": [cond("Progressing", "Unknown", "DeploymentPaused")]}),
     ("Unknown", "DeploymentResumed", "Deployment is resumed")),
    (deploy(paused=True, status={"conditions": [cond("Progressing", "False",
                                                     "ProgressDeadlineExceeded")]}), None),
    (deploy(), None),
], ids=["pause", "already-paused", "resume", "timed-out-wins", "running"])
def test_paused_condition(d: dict[str, Any], want: tuple[str, str, str] | None) -> None:
    c = paused_condition(d, NOW)
    assert (None if c is None else (c["status"], c["reason"], c["message"])) == want
