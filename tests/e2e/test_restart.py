"""State survives restarts of the API server, including ``kill -9``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from svcnet.testing.cluster import APIServerProcess

pytestmark = pytest.mark.usefixtures("kubectl_available")


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    srv = APIServerProcess(tmp_path / "data")
    srv.start()
    try:
        for i in range(20):
            res = srv.kubectl("create", "configmap", f"cm-{i}", f"--from-literal=i={i}")
            assert res.returncode == 0, res.stderr
        res = srv.kubectl("create", "service", "nodeport", "np", "--tcp=80:8080",
                          "--node-port=30080")
        assert res.returncode == 0, res.stderr
        ip = json.loads(srv.kubectl("get", "svc", "np", "-o", "json").stdout)["spec"][
            "clusterIP"]
        srv.kill9()
        srv.start()
        out = srv.kubectl("get", "configmaps", "-o", "json")
        names = {i["metadata"]["name"] for i in json.loads(out.stdout)["items"]}
        assert {f"cm-{i}" for i in range(20)} <= names
        # Allocations were rebuilt: the same ClusterIP and NodePort are refused.
        res = srv.kubectl("create", "service", "nodeport", "np2", "--tcp=80:8080",
                          "--node-port=30080")
        assert res.returncode != 0 and "already allocated" in res.stderr
        manifest = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: same-ip\nspec:\n"
                    f"  clusterIP: {ip}\n  ports:\n  - port: 80\n")
        res = srv.kubectl("apply", "-f", "-", input=manifest)
        assert res.returncode != 0 and "already allocated" in res.stderr
        # Built-in objects are not duplicated and the kubernetes service is intact.
        out = srv.kubectl("get", "svc", "kubernetes", "-o", "json")
        assert json.loads(out.stdout)["spec"]["clusterIP"] == "10.96.0.1"
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


def test_deleted_service_releases_its_node_port(tmp_path: Path) -> None:
    srv = APIServerProcess(tmp_path / "data")
    srv.start()
    try:
        args = ("create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30081")
        assert srv.kubectl(*args).returncode == 0
        assert srv.kubectl("delete", "svc", "np").returncode == 0
        srv.stop()
        srv.start()
        assert srv.kubectl(*args).returncode == 0
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


def test_builtin_endpoints_follow_the_api_server_across_restarts(tmp_path: Path) -> None:
    from svcnet.testing.cluster import free_port
    srv = APIServerProcess(tmp_path / "data")
    srv.start()
    try:
        # As an older svcnet left it: kube-dns with a selector.
        assert srv.kubectl("patch", "svc", "kube-dns", "-n", "kube-system", "-p",
                           '{"spec":{"selector":{"k8s-app":"kube-dns"}}}').returncode == 0
        srv.stop()
        srv.port = free_port()  # the API server comes back on another port
        srv.start()

        def get(*args: str) -> dict[str, object]:
            res = srv.kubectl("get", *args, "-o", "json")
            assert res.returncode == 0, res.stderr
            return dict(json.loads(res.stdout))
        ep = get("endpoints", "kubernetes")
        assert ep["subsets"][0]["ports"][0]["port"] == srv.port  # type: ignore[index]
        sl = get("endpointslice", "kubernetes")
        assert sl["ports"][0]["port"] == srv.port  # type: ignore[index]
        spec = get("svc", "kube-dns", "-n", "kube-system")["spec"]
        assert "selector" not in spec  # type: ignore[operator]
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)
