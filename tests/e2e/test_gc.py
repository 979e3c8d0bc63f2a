"""Garbage collection end to end, driven by the real kubectl against a real API server
and ``svcnet controller-manager`` (whose Deployment and ReplicaSet controllers make the
ReplicaSets and pods the collector then removes)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from svcnet.testing.cluster import APIServerProcess

pytestmark = pytest.mark.usefixtures("kubectl_available")

Obj = dict[str, Any]


class Cluster:
    """An API server plus the controller-manager."""

    def __init__(self, srv: APIServerProcess) -> None:
        self.srv = srv

    def start_gc(self) -> None:
        self.srv.start_controllers()

    def stop_gc(self) -> None:
        self.srv.stop_controllers()

    def kubectl(self, *args: str, input: str | None = None) -> str:
        res = self.srv.kubectl(*args, input=input)
        assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}"
        return res.stdout

    def apply(self, obj: Obj) -> Obj:
        out = self.kubectl("apply", "-o", "json", "-f", "-", input=json.dumps(obj))
        return dict(json.loads(out))

    def get(self, resource: str, ns: str, name: str) -> Obj | None:
        res = self.srv.kubectl("get", resource, "-n", ns, name, "-o", "json")
        if res.returncode != 0:
            assert "NotFound" in res.stderr, res.stderr
            return None
        return dict(json.loads(res.stdout))

    def items(self, resource: str, ns: str) -> list[Obj]:
        return list(json.loads(self.kubectl("get", resource, "-n", ns, "-o", "json"))["items"])

    def owned_by(self, resource: str, ns: str, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [o for o in self.items(resource, ns)
                if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])]

    def diagnostics(self) -> str:
        return self.srv.controllers_log()


def wait_for(what: str, pred: Callable[[], Any], timeout: float = 15.0,
             cluster: Cluster | None = None) -> Any:
    """Poll ``pred`` until truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n"
                                 f"{cluster.diagnostics() if cluster else ''}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    srv = APIServerProcess(tmp_path_factory.mktemp("svcnet-gc"))
    srv.start()
    c = Cluster(srv)
    try:
        c.start_gc()
        yield c
    finally:
        try:
            c.stop_gc()
        finally:
            srv.stop()
            shutil.rmtree(srv.home, ignore_errors=True)


# --- builders ----------------------------------------------------------------------------

def owner_ref(owner: Obj, block: bool = True) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": block}


def pod(name: str, ns: str, labels: dict[str, str], owner: Obj | None = None) -> Obj:
    m: Obj = {"name": name, "namespace": ns, "labels": labels}
    if owner is not None:
        m["ownerReferences"] = [owner_ref(owner)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m,
            "spec": {"containers": [{"name": "app", "image": "busybox",
                                     "command": ["sleep", "3600"]}]}}


def template(labels: dict[str, str]) -> Obj:
    return {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": "busybox",
                                     "command": ["sleep", "3600"]}]}}


def replicaset(name: str, ns: str, labels: dict[str, str]) -> Obj:
    m: Obj = {"name": name, "namespace": ns, "labels": labels}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": m,
            "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                     "template": template(labels)}}


def namespace(c: Cluster, name: str) -> str:
    c.kubectl("create", "namespace", name)
    return name


def deployment_with_pods(c: Cluster, ns: str, name: str) -> tuple[Obj, list[Obj], list[Obj]]:
    """A Deployment, its ReplicaSet and the two pods the controllers make for them."""
    labels = {"app": name}
    deploy = c.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": name, "namespace": ns},
                      "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                               "template": template(labels)}})
    rss = wait_for("replicaset of the deployment",
                   lambda: c.owned_by("replicasets", ns, deploy), cluster=c)
    pods = rs_pods(c, ns, rss[0])
    return deploy, rss, pods


def rs_pods(c: Cluster, ns: str, rs: Obj) -> list[Obj]:
    """The two pods the ReplicaSet controller makes for ``rs``."""
    def two() -> list[Obj] | None:
        pods = c.owned_by("pods", ns, rs)
        return pods if len(pods) == 2 else None
    return list(wait_for("two pods of the replicaset", two, cluster=c))


def names(objs: list[Obj]) -> set[str]:
    return {o["metadata"]["name"] for o in objs}


def gone(c: Cluster, ns: str, resource: str, wanted: set[str]) -> Callable[[], bool]:
    return lambda: not (names(c.items(resource, ns)) & wanted)


# --- tests -------------------------------------------------------------------------------

def test_background_delete_cascades_deployment_to_pods(cluster: Cluster) -> None:
    c, ns = cluster, namespace(cluster, "gc-bg")
    _, rss, pods = deployment_with_pods(c, ns, "web")
    out = c.kubectl("delete", "deployment", "web", "-n", ns)
    assert 'deployment.apps "web" deleted' in out
    wait_for("replicasets collected", gone(c, ns, "replicasets", names(rss)), cluster=c)
    wait_for("pods collected", gone(c, ns, "pods", names(pods)), cluster=c)


def test_foreground_delete_returns_after_dependents_are_gone(cluster: Cluster) -> None:
    c, ns = cluster, namespace(cluster, "gc-fg")
    _, rss, pods = deployment_with_pods(c, ns, "api")
    # A dependent that does not block its owner is collected too, but not waited for.
    extra = c.apply({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "api-extra", "namespace": ns,
                                  "ownerReferences": [owner_ref(rss[0], block=False)]}})
    out = c.kubectl("delete", "deployment", "api", "-n", ns, "--cascade=foreground",
                    "--timeout=30s")
    assert 'deployment.apps "api" deleted' in out
    # kubectl waited for the Deployment to vanish, which needs every blocking dependent gone.
    assert c.get("deployment", ns, "api") is None
    assert not names(c.items("replicasets", ns)) & names(rss)
    assert not names(c.items("pods", ns)) & names(pods)
    wait_for("non-blocking dependent collected",
             lambda: c.get("configmap", ns, extra["metadata"]["name"]) is None, cluster=c)


def test_orphan_delete_leaves_pods_without_owner(cluster: Cluster) -> None:
    c, ns = cluster, namespace(cluster, "gc-orphan")
    labels = {"app": "cache"}
    rs = c.apply(replicaset("cache", ns, labels))
    pods = rs_pods(c, ns, rs)
    out = c.kubectl("delete", "rs", "cache", "-n", ns, "--cascade=orphan", "--timeout=30s")
    assert 'replicaset.apps "cache" deleted' in out
    assert c.get("replicaset", ns, "cache") is None
    for p in pods:
        live = c.get("pod", ns, p["metadata"]["name"])
        assert live is not None, f"pod {p['metadata']['name']} was deleted"
        assert not live["metadata"].get("ownerReferences")


def test_dangling_reference_dropped_when_another_owner_remains(cluster: Cluster) -> None:
    c, ns = cluster, namespace(cluster, "gc-multi")
    a = c.apply({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "owner-a", "namespace": ns}})
    b = c.apply({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "owner-b", "namespace": ns}})
    refs = [{**owner_ref(a, block=False), "controller": False},
            {**owner_ref(b, block=False), "controller": False}]
    c.apply({"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "shared", "namespace": ns, "ownerReferences": refs}})
    c.kubectl("delete", "configmap", "owner-a", "-n", ns)

    def only_b() -> bool:
        s = c.get("secret", ns, "shared")
        assert s is not None, "dependent with a remaining owner was deleted"
        return [r["name"] for r in s["metadata"].get("ownerReferences") or []] == ["owner-b"]
    wait_for("dangling reference removed", only_b, cluster=c)


def test_dependents_of_owner_deleted_while_collector_was_down(cluster: Cluster) -> None:
    c, ns = cluster, namespace(cluster, "gc-restart")
    owner = c.apply({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "owner", "namespace": ns}})
    c.apply(pod("leftover", ns, {"app": "leftover"}, owner))
    c.apply({"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "leftover", "namespace": ns,
                          "ownerReferences": [owner_ref(owner)]}})
    keeper_owner = c.apply({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "keeper-owner", "namespace": ns}})
    c.apply({"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "keeper", "namespace": ns,
                          "ownerReferences": [owner_ref(keeper_owner)]}})
    c.stop_gc()
    try:
        c.kubectl("delete", "configmap", "owner", "-n", ns)
        assert c.get("pod", ns, "leftover") is not None
    finally:
        c.start_gc()
    wait_for("leftover pod collected", lambda: c.get("pod", ns, "leftover") is None,
             cluster=c)
    wait_for("leftover secret collected", lambda: c.get("secret", ns, "leftover") is None,
             cluster=c)
    assert c.get("secret", ns, "keeper") is not None


def test_foreground_namespace_delete_finishes(cluster: Cluster) -> None:
    c, ns = cluster, namespace(cluster, "gc-ns-fg")
    deployment_with_pods(c, ns, "db")
    out = c.kubectl("delete", "namespace", ns, "--cascade=foreground", "--timeout=30s")
    assert f'namespace "{ns}" deleted' in out
    assert c.srv.kubectl("get", "namespace", ns).returncode != 0
