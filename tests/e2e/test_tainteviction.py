"""Taints and tolerations end to end, with real kubectl and no agent: pods get the
default tolerations (and priority 0, the other admission default), the scheduler keeps pods off nodes whose taints they do not
tolerate, and the taint eviction controller deletes pods from a ``NoExecute``-tainted
node at once or once their toleration runs out."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from svcnet.testing.cluster import APIServerProcess
from tests.e2e.helpers import get_json, ok, wait_for

pytestmark = pytest.mark.usefixtures("kubectl_available")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    with APIServerProcess(tmp_path_factory.mktemp("taints")) as srv:
        srv.start_controllers()
        yield srv


def node(name: str, taints: list[dict[str, Any]]) -> str:
    """A Node with a fresh heartbeat (the lifecycle controller's grace is 40 s)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Test",
                                   "lastHeartbeatTime": now, "lastTransitionTime": now}]}})


def pod(name: str, node_name: str, tolerations: list[dict[str, Any]]) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": node_name, "tolerations": tolerations,
                 "containers": [{"name": "c", "image": "busybox"}]}})


def test_every_pod_gets_the_default_tolerations(cluster: APIServerProcess) -> None:
    ok(cluster, "apply", "-f", "-", input=pod("plain", "nowhere", []))
    tols = get_json(cluster, "pod", "plain")["spec"]["tolerations"]
    assert tols == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
         "effect": "NoExecute", "tolerationSeconds": 300}]
    # a pod that already tolerates one of them keeps its own
    mine = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
             "effect": "NoExecute"}]
    ok(cluster, "apply", "-f", "-", input=pod("own", "nowhere", mine))
    tols = get_json(cluster, "pod", "own")["spec"]["tolerations"]
    assert [t["key"] for t in tols] == ["node.kubernetes.io/unreachable",
                                        "node.kubernetes.io/not-ready"]
    assert "tolerationSeconds" not in tols[0]
    ok(cluster, "delete", "pod", "plain", "own", "--wait=false")


def test_no_execute_taint_evicts_at_once_or_when_the_toleration_runs_out(
        cluster: APIServerProcess) -> None:
    taint = {"key": "example.com/broken", "effect": "NoExecute"}
    ok(cluster, "apply", "-f", "-", input=node("tainted", []))
    short = [{"key": "example.com/broken", "operator": "Exists", "effect": "NoExecute",
              "tolerationSeconds": 2}]
    forever = [{"key": "example.com/broken", "operator": "Exists", "effect": "NoExecute"}]
    for name, tols in (("intolerant", []), ("short", short), ("forever", forever)):
        ok(cluster, "apply", "-f", "-", input=pod(name, "tainted", tols))
    ok(cluster, "taint", "node", "tainted", "example.com/broken:NoExecute")
    assert get_json(cluster, "node", "tainted")["spec"]["taints"][0]["key"] == taint["key"]

    def deleting(name: str) -> bool:
        return bool(get_json(cluster, "pod", name)["metadata"].get("deletionTimestamp"))

    wait_for("the intolerant pod evicted", lambda: deleting("intolerant"), timeout=10)
    assert not deleting("short")
    wait_for("the short toleration running out", lambda: deleting("short"), timeout=10)
    p = get_json(cluster, "pod", "short")
    cond = next(c for c in p["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert (cond["status"], cond["reason"]) == ("True", "DeletionByTaintManager")
    events = get_json(cluster, "events", "--field-selector",
                      "involvedObject.name=short,reason=TaintManagerEviction")["items"]
    assert events and events[0]["message"] == "Marking for deletion Pod default/short"
    assert events[0]["source"]["component"] == "taint-eviction-controller"
    assert not deleting("forever")


def test_the_scheduler_keeps_pods_off_untolerated_taints(cluster: APIServerProcess) -> None:
    ok(cluster, "apply", "-f", "-", input=node("dedicated", [
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"}]))
    ok(cluster, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "picky"},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": "dedicated"},
                 "containers": [{"name": "c", "image": "busybox"}]}}))
    ok(cluster, "label", "node", "dedicated", "kubernetes.io/hostname=dedicated")

    def unschedulable() -> str | None:
        conds = get_json(cluster, "pod", "picky")["status"].get("conditions") or []
        c = next((c for c in conds if c["type"] == "PodScheduled"), None)
        return c["message"] if c and c["status"] == "False" and "taint" in c["message"] \
            else None

    msg = wait_for("picky unschedulable", unschedulable, timeout=10)
    assert "1 node(s) had untolerated taint {dedicated: db}" in msg
    ok(cluster, "delete", "pod", "picky", "--wait=false")
    ok(cluster, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tolerant"},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": "dedicated"},
                 "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db",
                                  "effect": "NoSchedule"}],
                 "containers": [{"name": "c", "image": "busybox"}]}}))
    wait_for("tolerant bound", lambda: get_json(cluster, "pod", "tolerant")["spec"].get(
        "nodeName") == "dedicated", timeout=10)


def test_a_node_reporting_not_ready_gets_the_not_ready_taints(
        cluster: APIServerProcess) -> None:
    body = json.loads(node("sick", []))
    body["status"]["conditions"][0].update(status="False", reason="KubeletNotReady")
    ok(cluster, "apply", "-f", "-", input=json.dumps(body))

    def condition_taints() -> set[tuple[str, str]]:
        return {(t["key"], t["effect"])
                for t in get_json(cluster, "node", "sick")["spec"].get("taints") or []}

    wait_for("not-ready taints", lambda: condition_taints() == {
        ("node.kubernetes.io/not-ready", "NoSchedule"),
        ("node.kubernetes.io/not-ready", "NoExecute")}, timeout=15)
    body["status"]["conditions"][0].update(status="True", reason="KubeletReady")
    ok(cluster, "replace", "--subresource=status", "-f", "-", input=json.dumps(body))
    wait_for("taints removed", lambda: not condition_taints(), timeout=15)


def test_pods_get_priority_zero(cluster: APIServerProcess) -> None:
    ok(cluster, "apply", "-f", "-", input=pod("prio", "nowhere", []))
    spec = get_json(cluster, "pod", "prio")["spec"]
    assert (spec["priority"], spec["preemptionPolicy"]) == (0, "PreemptLowerPriority")
    ok(cluster, "delete", "pod", "prio", "--wait=false")
