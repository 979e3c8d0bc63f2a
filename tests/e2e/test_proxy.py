"""The service proxy end to end with the netns runtime: the books' flow through DNS and a
ClusterIP from inside a pod, session affinity, readiness, NodePort and LoadBalancer from
the host, named multi-port services, UDP (DNS through the kube-dns ClusterIP), hairpin,
and an immediate refusal without endpoints.

Cluster addresses are only used from inside pods (``kubectl exec``); the host reaches
NodePorts on 127.0.0.1 and load-balancer addresses from the loopback pool.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from svcnet.testing.cluster import APIServerProcess, netns_names, remove_new_namespaces
from tests.e2e.helpers import (
    get_json,
    netns_skip_reason,
    ok,
    running_pods,
    wait_for,
)

pytestmark = pytest.mark.skipif(bool(netns_skip_reason()),
                                reason=netns_skip_reason() or "ok")

KUARD = "gcr.io/kuar-demo/kuard-amd64:blue"
LB_POOL = "127.240.17.0/29"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    before = netns_names()
    node = f"p{uuid.uuid4().hex[:6]}"
    srv = APIServerProcess(tmp_path_factory.mktemp("proxy"))
    srv.start()
    try:
        srv.start_controllers("--lb-pool", LB_POOL)
        srv.start_agent("netns", node_name=node)
        srv.start_proxy("netns", node, "--min-sync-period", "0.2")
        from svcnet.agent.runtime.netns import node_netns_name
        srv.start_dns("--cluster-netns", node_netns_name("svcnet", node))
        wait_for("node Ready", lambda: "Ready" in srv.kubectl("get", "nodes").stdout, 30)
        ok(srv, "run", "tools", "--image=praqma/network-multitool")
        running_pods(srv, "run=tools", 1)
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)
        left = remove_new_namespaces(before)
        assert not left, f"network namespaces left behind: {left}"


@pytest.fixture(scope="module")
def alpaca(cluster: APIServerProcess) -> list[str]:
    """The books' deployment: three kuard pods with a readiness probe, exposed on 8080."""
    ok(cluster, "apply", "-f", "-", input=f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: alpaca-prod, labels: {{app: alpaca-prod}}}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: alpaca-prod}}}}
  template:
    metadata: {{labels: {{app: alpaca-prod}}}}
    spec:
      containers:
      - name: kuard
        image: {KUARD}
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe:
          httpGet: {{path: /ready, port: 8080}}
          periodSeconds: 1
          failureThreshold: 1
""")
    ok(cluster, "expose", "deployment", "alpaca-prod", "--port", "8080")
    pods = running_pods(cluster, "app=alpaca-prod", 3)
    wait_for("3 endpoints", lambda: len(endpoint_ips(cluster, "alpaca-prod")) == 3)
    return sorted(p["metadata"]["name"] for p in pods)


def endpoint_ips(srv: APIServerProcess, name: str) -> set[str]:
    ep = get_json(srv, "endpoints", name)
    return {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}


def curl_many(srv: APIServerProcess, pod: str, url: str, n: int) -> Counter[str]:
    """``n`` curls from inside ``pod``; the bodies counted (one line each)."""
    script = (f"for i in $(seq {n}); do curl -s -m 3 --retry 5 --retry-connrefused "
              f"--retry-delay 0 {url}; echo; done")
    out = ok(srv, "exec", pod, "--", "sh", "-c", script)
    return Counter(line.strip() for line in out.splitlines() if line.strip())


def host_get(url: str, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(r.read().decode())


def test_clusterip_through_dns_spreads_over_the_pods(cluster: APIServerProcess,
                                                      alpaca: list[str]) -> None:
    got = curl_many(cluster, "tools", "http://alpaca-prod:8080/hostname", 30)
    assert sorted(got) == alpaca, got
    # The same through the full name and the ClusterIP.
    ip = get_json(cluster, "svc", "alpaca-prod")["spec"]["clusterIP"]
    assert set(curl_many(cluster, "tools", f"http://{ip}:8080/hostname", 9)) <= set(alpaca)
    got = curl_many(cluster, "tools",
                    "http://alpaca-prod.default.svc.cluster.local:8080/hostname", 3)
    assert set(got) <= set(alpaca)


def test_session_affinity_pins_a_client(cluster: APIServerProcess,
                                        alpaca: list[str]) -> None:
    ok(cluster, "patch", "svc", "alpaca-prod", "-p",
       '{"spec":{"sessionAffinity":"ClientIP"}}')
    try:
        def pinned() -> Counter[str] | None:
            got = curl_many(cluster, "tools", "http://alpaca-prod:8080/hostname", 15)
            return got if len(got) == 1 else None
        got = wait_for("affinity in effect", pinned, 20)
        assert next(iter(got)) in alpaca
    finally:
        ok(cluster, "patch", "svc", "alpaca-prod", "-p",
           '{"spec":{"sessionAffinity":"None"}}')


def test_a_pod_failing_readiness_gets_no_new_connections(cluster: APIServerProcess,
                                                         alpaca: list[str]) -> None:
    victim = alpaca[0]
    ip = get_json(cluster, "pod", victim)["status"]["podIP"]
    ok(cluster, "exec", victim, "--", "curl", "-s", "-m", "3",
       "http://127.0.0.1:8080/ready/fail")
    try:
        wait_for("endpoint removed", lambda: ip not in endpoint_ips(cluster, "alpaca-prod"))
        time.sleep(0.5)  # the proxy's rate-limited sync (min 0.2 s) has applied it
        got = curl_many(cluster, "tools", "http://alpaca-prod:8080/hostname", 20)
        assert victim not in got and set(got) == set(alpaca[1:]), got
    finally:
        ok(cluster, "exec", victim, "--", "curl", "-s", "-m", "3",
           "http://127.0.0.1:8080/ready/ok")
        wait_for("endpoint back", lambda: ip in endpoint_ips(cluster, "alpaca-prod"))


def test_nodeport_answers_on_host_loopback(cluster: APIServerProcess,
                                           alpaca: list[str]) -> None:
    ok(cluster, "expose", "deployment", "alpaca-prod", "--name", "alpaca-np",
       "--type", "NodePort", "--port", "8080")
    node_port = get_json(cluster, "svc", "alpaca-np")["spec"]["ports"][0]["nodePort"]
    seen = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(seen) < 3:
        try:
            seen.add(host_get(f"http://127.0.0.1:{node_port}/hostname").strip())
        except OSError:
            time.sleep(0.2)
    assert seen == set(alpaca)


def test_loadbalancer_gets_an_external_ip_that_answers(cluster: APIServerProcess,
                                                       alpaca: list[str]) -> None:
    ok(cluster, "expose", "deployment", "alpaca-prod", "--name", "alpaca-lb",
       "--type", "LoadBalancer", "--port", "8080")

    def external_ip() -> str | None:
        row = ok(cluster, "get", "svc", "alpaca-lb", "--no-headers").split()
        return row[3] if row[3] != "<pending>" else None
    ip = wait_for("EXTERNAL-IP", external_ip)
    assert ip.startswith("127.240.17.")

    def answer() -> str | None:
        try:
            return host_get(f"http://{ip}:8080/hostname").strip()
        except OSError:
            return None
    assert wait_for("LB answers", answer) in alpaca
    # loadBalancerSourceRanges: the host's 127.0.0.1 is outside 10.0.0.0/8.
    ok(cluster, "patch", "svc", "alpaca-lb", "-p",
       '{"spec":{"loadBalancerSourceRanges":["10.0.0.0/8"]}}')
    wait_for("source range enforced", lambda: answer() is None)

    # externalTrafficPolicy Local: the health check node port answers on the host and
    # inside the node's namespace, counting this node's 3 endpoints.
    ok(cluster, "patch", "svc", "alpaca-lb", "-p", '{"spec":{"externalTrafficPolicy":"Local"}}')
    port = get_json(cluster, "svc", "alpaca-lb")["spec"]["healthCheckNodePort"]

    def health() -> dict[str, Any] | None:
        try:
            return dict(json.loads(host_get(f"http://127.0.0.1:{port}/")))
        except OSError:
            return None
    body = wait_for("health check on the host", health)
    assert body["localEndpoints"] == 3 and body["service"]["name"] == "alpaca-lb"
    node = get_json(cluster, "nodes")["items"][0]["metadata"]["name"]
    from svcnet.agent.runtime.netns import node_netns_name
    inside = subprocess.run(["ip", "netns", "exec", node_netns_name("svcnet", node), "curl",
                             "-s", "-o", "/dev/null", "-w", "%{http_code}",
                             f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                            timeout=10)
    assert inside.stdout == "200", inside


def test_named_multi_port_service_routes_each_port(cluster: APIServerProcess) -> None:
    ok(cluster, "apply", "-f", "-", input=f"""
apiVersion: v1
kind: Pod
metadata: {{name: two-ports, labels: {{app: two-ports}}}}
spec:
  containers:
  - name: kuard
    image: {KUARD}
    ports: [{{containerPort: 8080, name: kuard-http}}]
  - name: web
    image: nginx
    ports: [{{containerPort: 80, name: web-http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: two-ports}}
spec:
  selector: {{app: two-ports}}
  ports:
  - {{name: kuard, port: 8080, targetPort: kuard-http}}
  - {{name: web, port: 80, targetPort: web-http}}
""")
    running_pods(cluster, "app=two-ports", 1)
    kuard = curl_many(cluster, "tools", "http://two-ports:8080/hostname", 1)
    assert list(kuard) == ["two-ports"]
    web = ok(cluster, "exec", "tools", "--", "curl", "-s", "-m", "3", "--retry", "5",
             "--retry-connrefused", "--retry-delay", "0", "-D-", "http://two-ports:80/")
    assert "200" in web.splitlines()[0] and "two-ports" not in web.splitlines()[0]


def test_udp_dns_through_the_kube_dns_clusterip(cluster: APIServerProcess,
                                                alpaca: list[str]) -> None:
    ip = get_json(cluster, "svc", "alpaca-prod")["spec"]["clusterIP"]
    out = wait_for("nslookup through 10.96.0.10", lambda: (
        r.stdout if (r := cluster.kubectl("exec", "tools", "--", "nslookup", "alpaca-prod"))
        .returncode == 0 and ip in r.stdout else None))
    assert "Server:\t\t10.96.0.10" in out
    out = ok(cluster, "exec", "tools", "--", "nslookup", "alpaca-prod.default")
    assert ip in out and "Name:\talpaca-prod.default.svc.cluster.local" in out
    # TCP through the same ClusterIP (dns-tcp port).
    tcp = ok(cluster, "exec", "tools", "--", "dig", "+tcp", "+short",
             "alpaca-prod.default.svc.cluster.local")
    assert tcp.split() == [ip]
    status = subprocess.run(
        [sys.executable, "-m", "svcnet.cli.main", "proxy", "status", "--port",
         str(cluster.proxy_port)], capture_output=True, text=True, timeout=10)
    assert status.returncode == 0, status.stderr
    assert "kube-system/kube-dns:dns/udp" in status.stdout
    assert "udp 10.96.0.10:53" in status.stdout


def test_hairpin_a_pod_reaches_itself_through_its_service(cluster: APIServerProcess,
                                                          alpaca: list[str]) -> None:
    pod = alpaca[1]
    start = time.monotonic()
    got = curl_many(cluster, pod, "http://alpaca-prod:8080/hostname", 30)
    assert pod in got and sum(got.values()) == 30
    assert time.monotonic() - start < 20  # no retransmit stalls


def test_no_endpoints_is_refused_at_once(cluster: APIServerProcess) -> None:
    ok(cluster, "create", "service", "clusterip", "nobody", "--tcp=80:8080")
    ip = get_json(cluster, "svc", "nobody")["spec"]["clusterIP"]
    time.sleep(0.5)
    start = time.monotonic()
    res = cluster.kubectl("exec", "tools", "--", "curl", "-s", "-m", "5",
                          f"http://{ip}:80/")
    took = time.monotonic() - start
    assert res.returncode != 0 and "exit code 7" in res.stderr  # connection refused
    assert took < 3.0


def test_proxy_metrics_count_backend_connections(cluster: APIServerProcess,
                                                 alpaca: list[str]) -> None:
    curl_many(cluster, "tools", "http://alpaca-prod:8080/hostname", 3)
    text = host_get(f"http://127.0.0.1:{cluster.proxy_port}/metrics")
    lines = [x for x in text.splitlines()
             if x.startswith("svcnet_proxy_backend_connections_total")
             and "default/alpaca-prod" in x]
    assert lines and sum(float(x.split()[-1]) for x in lines) >= 3
    st = json.loads(host_get(f"http://127.0.0.1:{cluster.proxy_port}/status"))
    assert st["mode"] == "userspace" and st["syncs"] >= 1


def test_pods_reach_the_api_server_through_the_kubernetes_service(
        cluster: APIServerProcess) -> None:
    version = json.loads(ok(cluster, "exec", "tools", "--", "curl", "-sk", "-m", "5",
                            "https://kubernetes.default.svc/version"))
    assert version["gitVersion"].startswith("v1.")
    status = json.loads(ok(cluster, "exec", "tools", "--", "curl", "-sk", "-m", "5",
                           "https://kubernetes/api/v1/namespaces"))
    assert status["kind"] == "Status" and status["code"] == 401  # no token


def test_a_service_chooses_its_ipvs_scheduler(cluster: APIServerProcess,
                                              alpaca: list[str]) -> None:
    ok(cluster, "annotate", "svc", "alpaca-prod", "svcnet.io/ipvs-scheduler=sh")
    try:
        def hashed() -> Counter[str] | None:
            # Source hashing: every connection from the tools pod lands on one pod.
            got = curl_many(cluster, "tools", "http://alpaca-prod:8080/hostname", 12)
            return got if len(got) == 1 else None
        assert next(iter(wait_for("sh in effect", hashed))) in alpaca
        status = subprocess.run(
            [sys.executable, "-m", "svcnet.cli.main", "proxy", "status", "--port",
             str(cluster.proxy_port)], capture_output=True, text=True, timeout=10).stdout
        assert "default/alpaca-prod/tcp  scheduler sh" in status
    finally:
        ok(cluster, "annotate", "svc", "alpaca-prod", "svcnet.io/ipvs-scheduler-")


def test_a_killed_proxy_comes_back_clean(cluster: APIServerProcess,
                                         alpaca: list[str]) -> None:
    import signal

    from svcnet.agent.runtime.netns import node_netns_name
    node = get_json(cluster, "nodes")["items"][0]["metadata"]["name"]
    ns = node_netns_name("svcnet", node)

    def lo_addresses() -> str:
        return subprocess.run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "lo"],
                              capture_output=True, text=True, check=True).stdout
    ok(cluster, "expose", "deployment", "alpaca-prod", "--name", "short-lived",
       "--port", "8081", "--target-port", "8080")
    vip = get_json(cluster, "svc", "short-lived")["spec"]["clusterIP"]
    wait_for("VIP on the node", lambda: f"{vip}/32" in lo_addresses())
    cluster.stop_component("proxy", signal.SIGKILL)
    ok(cluster, "delete", "svc", "short-lived")
    cluster.start_proxy("netns", node, "--min-sync-period", "0.2")
    wait_for("stale VIP removed", lambda: f"{vip}/32" not in lo_addresses())
    got = curl_many(cluster, "tools", "http://alpaca-prod:8080/hostname", 6)
    assert set(got) <= set(alpaca) and sum(got.values()) == 6
