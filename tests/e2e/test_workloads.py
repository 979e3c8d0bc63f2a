"""Deployments → ReplicaSets → Pods against a real API server and controller-manager,
driven by real kubectl and the official Python client.

Pods do not run here: tests play the node agent and mark pods Ready through the
``status`` subresource.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from svcnet.testing.cluster import APIServerProcess
from tests.e2e.helpers import wait_for

pytestmark = pytest.mark.usefixtures("kubectl_available")

T = TypeVar("T")
NS = "default"
IMAGE = "gcr.io/kuar-demo/kuard-amd64:blue"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    srv = APIServerProcess(tmp_path_factory.mktemp("workloads"))
    srv.start()
    try:
        srv.start_controllers()
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


@pytest.fixture(scope="module")
def api(cluster: APIServerProcess) -> Iterator[Any]:
    from kubernetes import client, config
    c = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield (client.CoreV1Api(c), client.AppsV1Api(c))
    finally:
        c.close()


def pods_of(core: Any, app: str) -> list[Any]:
    return list(core.list_namespaced_pod(NS, label_selector=f"app={app}").items)


def wait_pods(core: Any, app: str, n: int, logs: Callable[[], str]) -> list[Any]:
    """Wait until exactly ``n`` pods carry ``app=<app>``; returns them."""
    def check() -> list[Any] | None:
        pods = pods_of(core, app)
        return pods if len(pods) == n else None
    return wait_for(f"{n} pods of {app}", check, on_timeout=logs)


def rses_of(apps: Any, app: str) -> list[Any]:
    return list(apps.list_namespaced_replica_set(NS, label_selector=f"app={app}").items)


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True"
               for c in (pod.status.conditions or []))


def set_ready(core: Any, pod: Any, ready: bool = True) -> None:
    ip = f"10.244.0.{abs(hash(pod.metadata.name)) % 250 + 2}"
    core.patch_namespaced_pod_status(pod.metadata.name, NS, {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})


def mark_all_ready(core: Any, app: str) -> None:
    for p in pods_of(core, app):
        if not is_ready(p):
            set_ready(core, p)


def deployment_settled(apps: Any, core: Any, name: str, replicas: int, rs_count: int
                       ) -> Callable[[], bool]:
    """A condition that also plays the node agent: new pods are marked Ready as they
    appear, until the rollout is complete with ``rs_count`` ReplicaSets."""
    def check() -> bool:
        mark_all_ready(core, name)
        d = apps.read_namespaced_deployment(name, NS)
        st = d.status
        rses = rses_of(apps, name)
        active = [r for r in rses if (r.spec.replicas or 0) > 0]
        return bool(st.observed_generation == d.metadata.generation
                    and st.updated_replicas == replicas and st.replicas == replicas
                    and st.available_replicas == replicas and st.ready_replicas == replicas
                    and len(rses) == rs_count and len(active) == 1
                    and len(pods_of(core, name)) == replicas)
    return check


def kubectl_ok(srv: APIServerProcess, *args: str) -> str:
    res = srv.kubectl(*args)
    assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}"
    return res.stdout


def test_deployment_lifecycle(cluster: APIServerProcess, api: Any) -> None:
    core, apps = api
    name = "alpaca-prod"
    logs = cluster.controllers_log
    kubectl_ok(cluster, "create", "deployment", name, f"--image={IMAGE}", "--port=8080")
    kubectl_ok(cluster, "scale", "deployment", name, "--replicas", "3")

    pods = wait_pods(core, name, 3, logs)
    rses = rses_of(apps, name)
    assert len(rses) == 1
    rs = rses[0]
    pod_hash = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"{name}-{pod_hash}"
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{1,10}", pod_hash)
    assert rs.spec.selector.match_labels == {"app": name, "pod-template-hash": pod_hash}
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "3"
    assert rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == "4"
    for p in pods:
        assert re.fullmatch(rf"{name}-{pod_hash}-[bcdfghjklmnpqrstvwxz2456789]{{5}}",
                            p.metadata.name)
        ref = p.metadata.owner_references[0]
        assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == \
            ("ReplicaSet", rs.metadata.name, rs.metadata.uid, True, True)
        assert p.metadata.labels == {"app": name, "pod-template-hash": pod_hash}

    # Not ready yet: READY 0/3, rollout incomplete.
    for p in pods:
        set_ready(core, p)
    wait_for("3/3 available", deployment_settled(apps, core, name, 3, 1), on_timeout=logs)
    row = kubectl_ok(cluster, "get", "deploy", name, "--no-headers").split()
    assert row[:4] == [name, "3/3", "3", "3"], row
    out = kubectl_ok(cluster, "rollout", "status", f"deployment/{name}", "--timeout=60s")
    assert "successfully rolled out" in out
    d = apps.read_namespaced_deployment(name, NS)
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    conds = {c.type: (c.status, c.reason, c.message) for c in d.status.conditions}
    assert conds["Available"] == ("True", "MinimumReplicasAvailable",
                                  "Deployment has minimum availability.")
    assert conds["Progressing"] == ("True", "NewReplicaSetAvailable",
                                    f'ReplicaSet "{rs.metadata.name}" has successfully '
                                    "progressed.")
    rs_status = apps.read_namespaced_replica_set(rs.metadata.name, NS).status
    assert (rs_status.replicas, rs_status.fully_labeled_replicas, rs_status.ready_replicas,
            rs_status.available_replicas) == (3, 3, 3, 3)

    # A new image: a second ReplicaSet takes over once its pods are Ready.
    kubectl_ok(cluster, "set", "image", f"deployment/{name}",
               "kuard-amd64=gcr.io/kuar-demo/kuard-amd64:green")
    wait_for("rollout to green", deployment_settled(apps, core, name, 3, 2), timeout=30,
             on_timeout=logs)
    out = kubectl_ok(cluster, "rollout", "status", f"deployment/{name}", "--timeout=60s")
    assert "successfully rolled out" in out
    by_rev = {r.metadata.annotations["deployment.kubernetes.io/revision"]: r
              for r in rses_of(apps, name)}
    assert set(by_rev) == {"1", "2"}
    assert by_rev["1"].spec.replicas == 0 and by_rev["2"].spec.replicas == 3
    assert by_rev["2"].spec.template.spec.containers[0].image.endswith(":green")
    d = apps.read_namespaced_deployment(name, NS)
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "2"

    # rollout restart changes the template (an annotation): a third ReplicaSet.
    kubectl_ok(cluster, "rollout", "restart", f"deployment/{name}")
    wait_for("restarted rollout", deployment_settled(apps, core, name, 3, 3), timeout=30,
             on_timeout=logs)
    newest = max(rses_of(apps, name),
                 key=lambda r: int(r.metadata.annotations["deployment.kubernetes.io/revision"]))
    assert newest.spec.replicas == 3
    assert "kubectl.kubernetes.io/restartedAt" in newest.spec.template.metadata.annotations

    # Scale down removes the not-ready pod first.
    pods = pods_of(core, name)
    victim = pods[1]
    set_ready(core, victim, ready=False)
    wait_for("victim not ready", lambda: not is_ready(core.read_namespaced_pod(
        victim.metadata.name, NS)))
    wait_for("deployment sees 2 ready", lambda: apps.read_namespaced_deployment(
        name, NS).status.ready_replicas == 2, on_timeout=logs)
    kubectl_ok(cluster, "scale", "deployment", name, "--replicas", "2")
    remaining = wait_pods(core, name, 2, logs)
    assert victim.metadata.name not in {p.metadata.name for p in remaining}
    wait_for("2/2", deployment_settled(apps, core, name, 2, 3), on_timeout=logs)

    described = kubectl_ok(cluster, "describe", "deployment", name)
    first = rs.metadata.name
    # The scale to 3 may reach the controller before or after it created the first
    # ReplicaSet: either "0 to 1" then "1 to 3", or "0 to 3" at once.
    assert re.search(rf"ScalingReplicaSet\s.*Scaled up replica set {first} from 0 to [13]",
                     described), described
    assert f"Scaled up replica set {first} from 1 to 3" in described or \
        f"Scaled up replica set {first} from 0 to 3" in described
    assert re.search(rf"Scaled down replica set {name}-\w+ from \d+ to \d+", described)
    rs_described = kubectl_ok(cluster, "describe", "rs", newest.metadata.name)
    assert "SuccessfulCreate" in rs_described and "Created pod: " in rs_described
    assert "SuccessfulDelete" in rs_described and \
        f"Deleted pod: {victim.metadata.name}" in rs_described


def test_controller_kill_mid_scale_up_converges(cluster: APIServerProcess, api: Any) -> None:
    core, apps = api
    name = "burst"
    want = 60
    logs = cluster.controllers_log
    kubectl_ok(cluster, "create", "deployment", name, f"--image={IMAGE}")
    wait_for("first pod", lambda: len(pods_of(core, name)) == 1, on_timeout=logs)
    kubectl_ok(cluster, "scale", "deployment", name, "--replicas", str(want))
    wait_for("scale-up under way", lambda: len(pods_of(core, name)) > 1, timeout=10,
             on_timeout=logs)
    assert cluster.controllers is not None
    cluster.stop_controllers(signal.SIGKILL)
    seen_at_kill = len(pods_of(core, name))
    cluster.start_controllers()

    def converged() -> bool:
        rses = rses_of(apps, name)
        if len(rses) != 1:
            return False
        st = rses[0].status
        return len(pods_of(core, name)) == want and st.replicas == want and \
            st.observed_generation == rses[0].metadata.generation
    wait_for(f"{want} pods after restart", converged, timeout=30, on_timeout=logs)
    # Settled: the count stays exact and every pod belongs to the one ReplicaSet.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        pods = pods_of(core, name)
        assert len(pods) == want
        time.sleep(0.1)
    owners = {p.metadata.owner_references[0].uid for p in pods}
    assert len(owners) == 1
    assert seen_at_kill <= want


def test_recreate_strategy_and_history_limit(cluster: APIServerProcess, api: Any,
                                             tmp_path: Path) -> None:
    core, apps = api
    name = "recreate"
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": 2, "revisionHistoryLimit": 1,
                 "strategy": {"type": "Recreate"},
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": IMAGE}]}}}}
    path = tmp_path / "d.json"
    path.write_text(json.dumps(manifest))
    kubectl_ok(cluster, "apply", "-f", str(path))
    wait_for("2 ready", deployment_settled(apps, core, name, 2, 1),
             on_timeout=cluster.controllers_log)
    for tag in ("green", "purple"):
        kubectl_ok(cluster, "set", "image", f"deployment/{name}",
                   f"c=gcr.io/kuar-demo/kuard-amd64:{tag}")
        # History limit 1: the oldest zero-replica ReplicaSet is removed.
        wait_for(f"recreate to {tag}", deployment_settled(apps, core, name, 2, 2),
                 timeout=20, on_timeout=cluster.controllers_log)
    revs = sorted(int(r.metadata.annotations["deployment.kubernetes.io/revision"])
                  for r in rses_of(apps, name))
    assert revs == [2, 3]
    # Undo re-uses the ReplicaSet of the previous template under a new revision.
    kubectl_ok(cluster, "rollout", "undo", f"deployment/{name}")
    wait_for("undo to green", deployment_settled(apps, core, name, 2, 2), timeout=20,
             on_timeout=cluster.controllers_log)
    by_image = {r.spec.template.spec.containers[0].image.rsplit(":", 1)[1]: r
                for r in rses_of(apps, name)}
    green = by_image["green"].metadata.annotations
    assert green["deployment.kubernetes.io/revision"] == "4"
    assert green["deployment.kubernetes.io/revision-history"] == "2"
    assert by_image["green"].spec.replicas == 2


def test_paused_deployment_scales_but_does_not_roll(cluster: APIServerProcess,
                                                    api: Any) -> None:
    core, apps = api
    name = "paused"
    logs = cluster.controllers_log
    kubectl_ok(cluster, "create", "deployment", name, f"--image={IMAGE}")
    wait_for("1 ready", deployment_settled(apps, core, name, 1, 1), on_timeout=logs)
    kubectl_ok(cluster, "rollout", "pause", f"deployment/{name}")
    kubectl_ok(cluster, "set", "image", f"deployment/{name}",
               "kuard-amd64=gcr.io/kuar-demo/kuard-amd64:green")
    kubectl_ok(cluster, "scale", "deployment", name, "--replicas", "2")

    def paused_and_scaled() -> bool:
        d = apps.read_namespaced_deployment(name, NS)
        conds = {c.type: c.reason for c in d.status.conditions or []}
        rses = rses_of(apps, name)
        return (d.status.observed_generation == d.metadata.generation
                and conds.get("Progressing") == "DeploymentPaused"
                and len(rses) == 1 and rses[0].spec.replicas == 2)
    wait_for("paused deployment scaled in place", paused_and_scaled, on_timeout=logs)
    kubectl_ok(cluster, "rollout", "resume", f"deployment/{name}")
    wait_for("rollout after resume", deployment_settled(apps, core, name, 2, 2), timeout=20,
             on_timeout=logs)


def test_replicaset_adopts_orphans_and_releases_relabelled_pods(
        cluster: APIServerProcess, api: Any) -> None:
    core, apps = api
    name = "adopt"
    logs = cluster.controllers_log
    core.create_namespaced_pod(NS, {
        "metadata": {"name": "orphan", "labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": IMAGE}]}})
    apps.create_namespaced_replica_set(NS, {
        "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": IMAGE}]}}}})
    rs = apps.read_namespaced_replica_set(name, NS)

    def owned() -> list[Any]:
        return [p for p in pods_of(core, name)
                if any(r.uid == rs.metadata.uid for r in p.metadata.owner_references or [])]
    pods = wait_pods(core, name, 2, logs)
    wait_for("orphan adopted", lambda: len(owned()) == 2, on_timeout=logs)
    assert "orphan" in {p.metadata.name for p in pods}

    kubectl_ok(cluster, "label", "pod", "orphan", f"app={name}-released", "--overwrite")
    wait_for("released pod replaced", lambda: len(owned()) == 2 and "orphan" not in
             {p.metadata.name for p in owned()}, on_timeout=logs)
    released = core.read_namespaced_pod("orphan", NS)
    assert not released.metadata.owner_references
    wait_for("status counts the owned pods only", lambda: apps.read_namespaced_replica_set(
        name, NS).status.replicas == 2, on_timeout=logs)
