"""A silent node: its agent stops (SIGSTOP, so its pods keep running), the node lifecycle
controller marks the Node Unknown and tainted and its pods not ready, the endpoints drop
them; the agent resumes and everything comes back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from svcnet.testing.cluster import APIServerProcess
from tests.e2e.helpers import get_json, ok, running_pods, wait_for

pytestmark = pytest.mark.usefixtures("kubectl_available")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    srv = APIServerProcess(tmp_path_factory.mktemp("nodelc"))
    srv.start()
    try:
        srv.start_controllers("--node-monitor-grace-period", "4",
                              "--node-monitor-period", "0.5")
        srv.start_agent("process", f"l{uuid.uuid4().hex[:6]}", None,
                        "--node-status-update-frequency", "1")
        yield srv
    finally:
        if srv.agent is not None and srv.agent.poll() is None:
            os.kill(srv.agent.pid, signal.SIGCONT)
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


def ready_condition(node: dict[str, Any]) -> str:
    return next((c["status"] for c in node["status"].get("conditions") or []
                 if c["type"] == "Ready"), "")


def addresses(srv: APIServerProcess, name: str) -> tuple[int, int]:
    subsets = get_json(srv, "endpoints", name).get("subsets") or []
    return (sum(len(s.get("addresses") or []) for s in subsets),
            sum(len(s.get("notReadyAddresses") or []) for s in subsets))


def test_a_silent_node_takes_its_pods_out_of_service(cluster: APIServerProcess) -> None:
    ok(cluster, "create", "deployment", "web", "--image=gcr.io/kuar-demo/kuard-amd64:blue",
       "--replicas=2", "--port=8080")
    ok(cluster, "expose", "deployment", "web", "--port=8080")
    running_pods(cluster, "app=web", 2)
    wait_for("2 ready endpoints", lambda: addresses(cluster, "web") == (2, 0))
    assert cluster.agent is not None
    node_name = get_json(cluster, "nodes")["items"][0]["metadata"]["name"]
    os.kill(cluster.agent.pid, signal.SIGSTOP)
    try:
        node = wait_for("node Unknown", lambda: (
            n if ready_condition(n := get_json(cluster, "node", node_name)) == "Unknown"
            else None), 20)
        reasons = {c["reason"] for c in node["status"]["conditions"]}
        assert reasons == {"NodeStatusUnknown"}
        wait_for("unreachable taints", lambda: {
            (t["key"], t["effect"]) for t in get_json(cluster, "node", node_name)["spec"].get(
                "taints") or []} == {("node.kubernetes.io/unreachable", "NoSchedule"),
                                     ("node.kubernetes.io/unreachable", "NoExecute")})
        wait_for("endpoints not ready", lambda: addresses(cluster, "web") == (0, 2))
        assert "NodeNotReady" in ok(cluster, "describe", "node", node_name)
    finally:
        os.kill(cluster.agent.pid, signal.SIGCONT)
    wait_for("node Ready", lambda: ready_condition(get_json(cluster, "node", node_name))
             == "True", 20)
    wait_for("taints removed", lambda: not get_json(cluster, "node", node_name)["spec"].get(
        "taints"))
    wait_for("endpoints ready again", lambda: addresses(cluster, "web") == (2, 0), 20)


def test_pods_of_a_silent_node_are_evicted_when_their_toleration_runs_out(
        cluster: APIServerProcess) -> None:
    """A pod tolerating the unreachable taint for 2 s is deleted 2 s after the node goes
    silent and its ReplicaSet makes a replacement, which waits for a ready node; when the
    agent comes back it stops the evicted pod and starts the replacement."""
    ok(cluster, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "brief"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "brief"}},
                 "template": {"metadata": {"labels": {"app": "brief"}}, "spec": {
                     "tolerations": [{"key": "node.kubernetes.io/unreachable",
                                      "operator": "Exists", "effect": "NoExecute",
                                      "tolerationSeconds": 2}],
                     "containers": [{"name": "kuard",
                                     "image": "gcr.io/kuar-demo/kuard-amd64:blue"}]}}}}))
    (first,) = running_pods(cluster, "app=brief", 1)
    old = first["metadata"]["name"]
    assert cluster.agent is not None
    os.kill(cluster.agent.pid, signal.SIGSTOP)
    try:
        evicted = wait_for("the pod evicted", lambda: (
            p if (p := get_json(cluster, "pod", old))["metadata"].get("deletionTimestamp")
            else None), 30)
        assert any(c["type"] == "DisruptionTarget" and c["reason"] == "DeletionByTaintManager"
                   for c in evicted["status"]["conditions"])
        wait_for("a replacement waiting for a ready node", lambda: [
            p for p in get_json(cluster, "pods", "-l", "app=brief")["items"]
            if p["metadata"]["name"] != old and not p["spec"].get("nodeName")])
    finally:
        os.kill(cluster.agent.pid, signal.SIGCONT)
    wait_for("the evicted pod gone", lambda: old not in {
        p["metadata"]["name"] for p in get_json(cluster, "pods", "-l", "app=brief")["items"]},
        30)
    (new,) = running_pods(cluster, "app=brief", 1)
    assert new["metadata"]["name"] != old
    ok(cluster, "delete", "deployment", "brief")
