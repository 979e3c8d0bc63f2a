"""The node agent with the unprivileged process runtime: pods on loopback addresses."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from svcnet.testing.cluster import APIServerProcess

pytestmark = pytest.mark.usefixtures("kubectl_available")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    # The process runtime's service range is loopback (as `svcnet up --runtime process`
    # sets it): the proxy serves cluster IPs on the host.
    srv = APIServerProcess(tmp_path_factory.mktemp("proc"),
                           extra_args=["--service-cidr", "127.96.0.0/12"])
    srv.start()
    srv.start_controllers()
    node = f"p{uuid.uuid4().hex[:6]}"
    srv.start_agent("process", node_name=node)
    srv.start_proxy("process", node, "--min-sync-period", "0.2")
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


def test_pods_run_on_loopback_addresses(cluster: APIServerProcess) -> None:
    res = cluster.kubectl("create", "deployment", "web",
                          "--image=gcr.io/kuar-demo/kuard-amd64:blue", "--replicas=2",
                          "--port=8080")
    assert res.returncode == 0, res.stderr
    deadline = time.monotonic() + 60
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = [p for p in json.loads(cluster.kubectl("get", "pods", "-l", "app=web", "-o",
                                                       "json").stdout)["items"]
                 if p["status"].get("phase") == "Running" and p["status"].get("podIP")]
        if len(items) == 2:
            break
        time.sleep(0.2)
    assert len(items) == 2, cluster.agent_log()
    for p in items:
        ip = p["status"]["podIP"]
        assert ip.startswith("127.")  # loopback: safe to reach from the host
        # Without a readiness probe a pod is Running once its process started, which can
        # be a moment before the program listens (as in Kubernetes): retry briefly.
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://{ip}:8080/hostname", timeout=10) as r:
                    assert r.read().decode().strip() == p["metadata"]["name"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    name = items[0]["metadata"]["name"]
    out = cluster.kubectl("exec", "-i", name, "--", "sh", "-c", "read x; echo got $x",
                          input="hello\n")
    assert out.stdout.strip() == "got hello", out.stderr
    logs = cluster.kubectl("logs", name)
    assert "GET /hostname" in logs.stdout


def test_cluster_ips_are_loopback_vips_the_proxy_serves(cluster: APIServerProcess) -> None:
    from tests.e2e.helpers import get_json, ok, running_pods, wait_for
    ok(cluster, "create", "deployment", "vip", "--image=gcr.io/kuar-demo/kuard-amd64:blue",
       "--replicas=2", "--port=8080")
    names = {p["metadata"]["name"] for p in running_pods(cluster, "app=vip", 2)}
    ok(cluster, "expose", "deployment", "vip", "--type=NodePort")
    svc = get_json(cluster, "svc", "vip")["spec"]
    import ipaddress
    assert ipaddress.ip_address(svc["clusterIP"]) in ipaddress.ip_network("127.96.0.0/12")
    assert get_json(cluster, "svc", "kubernetes")["spec"]["clusterIP"] == "127.96.0.1"

    def spread(url: str) -> set[str] | None:
        seen: set[str] = set()
        for _ in range(10):
            try:
                with urllib.request.urlopen(url, timeout=3) as r:
                    seen.add(r.read().decode().strip())
            except OSError:
                return None
        return seen if seen == names else None
    wait_for("ClusterIP spreads", lambda: spread(f"http://{svc['clusterIP']}:8080/hostname"))
    wait_for("NodePort spreads",
             lambda: spread(f"http://127.0.0.1:{svc['ports'][0]['nodePort']}/hostname"))


def test_the_kube_dns_clusterip_reaches_dns_on_the_host(cluster: APIServerProcess) -> None:
    """The process runtime: DNS publishes its host port as the kube-dns endpoints and
    the proxy serves 127.96.0.10:53 (port 53 needs root, which the tests have)."""
    import dns.message
    import dns.query

    from tests.e2e.helpers import get_json, wait_for
    cluster.start_dns("--publish-host")
    def published() -> dict[str, Any] | None:
        res = cluster.kubectl("get", "endpoints", "kube-dns", "-n", "kube-system", "-o",
                              "json")
        subsets = json.loads(res.stdout).get("subsets") if res.returncode == 0 else None
        return subsets[0] if subsets else None
    ep = wait_for("kube-dns endpoints", published)
    assert ep["addresses"] == [{"ip": "127.0.0.1"}]
    assert {p["port"] for p in ep["ports"]} == {cluster.dns_port}
    ip = get_json(cluster, "svc", "kubernetes")["spec"]["clusterIP"]

    def answer() -> list[str] | None:
        q = dns.message.make_query("kubernetes.default.svc.cluster.local", "A")
        try:
            r = dns.query.udp(q, "127.96.0.10", port=53, timeout=1)
        except Exception:  # noqa: BLE001 - not served yet
            return None
        return [rd.address for rrset in r.answer for rd in rrset] or None
    assert wait_for("answer through 127.96.0.10:53", answer) == [ip]


def test_local_load_balancer_health_check_node_port(cluster: APIServerProcess) -> None:
    """What an external load balancer asks every node: 200 while this node has a ready
    endpoint of the service, 503 once it has none."""
    from tests.e2e.helpers import get_json, ok, running_pods, wait_for
    ok(cluster, "create", "deployment", "hc", "--image=gcr.io/kuar-demo/kuard-amd64:blue",
       "--port=8080")
    running_pods(cluster, "app=hc", 1)
    ok(cluster, "expose", "deployment", "hc", "--type=LoadBalancer", "--port=8080")
    ok(cluster, "patch", "svc", "hc", "-p", '{"spec":{"externalTrafficPolicy":"Local"}}')
    port = get_json(cluster, "svc", "hc")["spec"]["healthCheckNodePort"]

    def check() -> tuple[int, dict[str, object]] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
        except OSError:
            return None

    status, body = wait_for("200 from the health check", lambda: (
        c if (c := check()) and c[0] == 200 else None))
    assert body == {"service": {"namespace": "default", "name": "hc"}, "localEndpoints": 1,
                    "serviceProxyHealthy": True}
    ok(cluster, "scale", "deployment", "hc", "--replicas=0")
    status, body = wait_for("503 once no endpoint is left", lambda: (
        c if (c := check()) and c[0] == 503 else None))
    assert body["localEndpoints"] == 0
    ok(cluster, "delete", "svc", "hc")
    wait_for("health check port closed", lambda: check() is None)
    ok(cluster, "delete", "deployment", "hc")
