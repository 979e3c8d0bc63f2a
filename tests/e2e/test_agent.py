"""The node agent running real pods, driven by the machine's kubectl.

The netns runtime needs root and iproute2; without them these tests skip. Every network
namespace the agent makes is removed when it stops (checked at the end)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from svcnet.testing.cluster import APIServerProcess, free_port, netns_names, remove_new_namespaces
from tests.e2e.helpers import netns_skip_reason, wait_for

T = TypeVar("T")


pytestmark = pytest.mark.skipif(bool(netns_skip_reason()),
                                reason=netns_skip_reason() or "ok")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    before = netns_names()
    srv = APIServerProcess(tmp_path_factory.mktemp("agent"))
    srv.start()
    srv.start_controllers()
    srv.start_agent("netns", node_name=f"n{uuid.uuid4().hex[:6]}")
    try:
        wait_for("node Ready", lambda: "Ready" in srv.kubectl("get", "nodes").stdout)
        yield srv
    finally:
        srv.stop_agent()
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)
        left = remove_new_namespaces(before)  # made during this test: removed by name
        assert not left, f"network namespaces left behind: {left}"


def ok(srv: APIServerProcess, *args: str, input: str | None = None) -> str:
    res = srv.kubectl(*args, input=input)
    assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}\n{srv.agent_log()}"
    return res.stdout


def pods(srv: APIServerProcess, selector: str) -> list[dict[str, Any]]:
    return list(json.loads(ok(srv, "get", "pods", "-l", selector, "-o", "json"))["items"])


def running(srv: APIServerProcess, selector: str, n: int) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        items = [p for p in pods(srv, selector)
                 if p["status"].get("phase") == "Running"
                 and not p["metadata"].get("deletionTimestamp")
                 and all(c.get("ready") for c in p["status"].get("containerStatuses", []))]
        return items if len(items) == n else None
    return wait_for(f"{n} running pods {selector}", check, 60)


def endpoint_ips(srv: APIServerProcess, name: str) -> set[str]:
    ep = json.loads(ok(srv, "get", "endpoints", name, "-o", "json"))
    return {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}


def test_books_flow_exec_logs_port_forward(cluster: APIServerProcess) -> None:
    ok(cluster, "create", "deployment", "alpaca-prod",
       "--image=gcr.io/kuar-demo/kuard-amd64:blue", "--port=8080")
    ok(cluster, "scale", "deployment", "alpaca-prod", "--replicas", "3")
    ok(cluster, "expose", "deployment", "alpaca-prod")
    items = running(cluster, "app=alpaca-prod", 3)
    ips = [p["status"]["podIP"] for p in items]
    assert len(set(ips)) == 3 and all(ip.startswith("10.244.") for ip in ips)
    wait_for("3 endpoints", lambda: len(endpoint_ips(cluster, "alpaca-prod")) == 3)
    a, b = items[0]["metadata"]["name"], items[1]
    # Pod to pod across the node's bridge, from inside pod a.
    out = ok(cluster, "exec", a, "--", "curl", "-s", "-m", "5", "--retry", "10", "--retry-connrefused", "--retry-delay", "0",
             f"http://{b['status']['podIP']}:8080/hostname")
    assert out.strip() == b["metadata"]["name"]
    out = ok(cluster, "exec", a, "--", "sh", "-c", "hostname; cat /etc/resolv.conf")
    assert out.splitlines()[0] == a
    assert "nameserver 10.96.0.10" in out and "options ndots:5" in out
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in out
    res = cluster.kubectl("exec", a, "--", "sh", "-c", "exit 3")
    assert res.returncode == 3 and "command terminated with exit code 3" in res.stderr
    # kubectl logs shows the requests the pod served.
    ok(cluster, "exec", a, "--", "curl", "-s", "-m", "5", "--retry", "10", "--retry-connrefused", "--retry-delay", "0", f"http://{ips[1]}:8080/")
    logs = ok(cluster, "logs", b["metadata"]["name"])
    assert "GET /hostname" in logs
    tail = ok(cluster, "logs", b["metadata"]["name"], "--tail=1", "--timestamps")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ", tail)
    # port-forward serves a curl from the host (loopback).
    port = free_port()
    pf = subprocess.Popen(["kubectl", "port-forward", f"pod/{a}", f"{port}:8080"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=cluster.env())
    try:
        assert pf.stdout is not None
        assert "Forwarding from 127.0.0.1" in pf.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=10) as r:
            assert r.read().decode().strip() == a
    finally:
        pf.terminate()
        pf.wait(10)


PROBED = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: probed}
spec:
  replicas: 2
  selector: {matchLabels: {app: probed}}
  template:
    metadata: {labels: {app: probed}}
    spec:
      containers:
      - name: kuard
        image: gcr.io/kuar-demo/kuard-amd64:blue
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /ready, port: http}, periodSeconds: 2,
                         failureThreshold: 3}
        livenessProbe: {httpGet: {path: /healthy, port: 8080}, periodSeconds: 1,
                        failureThreshold: 2}
---
apiVersion: v1
kind: Service
metadata: {name: probed}
spec:
  selector: {app: probed}
  ports: [{port: 8080}]
"""


def test_readiness_and_liveness_probes(cluster: APIServerProcess) -> None:
    ok(cluster, "apply", "-f", "-", input=PROBED)
    items = running(cluster, "app=probed", 2)
    wait_for("2 endpoints", lambda: len(endpoint_ips(cluster, "probed")) == 2)
    victim = items[0]
    name, ip = victim["metadata"]["name"], victim["status"]["podIP"]
    ok(cluster, "exec", name, "--", "curl", "-s", "-m", "3", "--retry", "10", "--retry-connrefused", "--retry-delay", "0", "http://127.0.0.1:8080/ready/fail")
    t0 = time.monotonic()
    wait_for("endpoint removed", lambda: ip not in endpoint_ips(cluster, "probed"), 15)
    # period 2 s x threshold 3, plus a second for the controllers.
    assert time.monotonic() - t0 <= 2 * 3 + 1 + 1
    ok(cluster, "exec", name, "--", "curl", "-s", "-m", "3", "--retry", "10", "--retry-connrefused", "--retry-delay", "0", "http://127.0.0.1:8080/ready/ok")
    wait_for("endpoint back", lambda: ip in endpoint_ips(cluster, "probed"), 15)
    # A liveness failure restarts the container: RESTARTS grows.
    ok(cluster, "exec", name, "--", "curl", "-s", "-m", "3", "--retry", "10", "--retry-connrefused", "--retry-delay", "0",
       "http://127.0.0.1:8080/healthy/fail")

    def restarted() -> bool:
        p = json.loads(ok(cluster, "get", "pod", name, "-o", "json"))
        return any(c.get("restartCount", 0) >= 1 for c in p["status"]["containerStatuses"])
    wait_for("a restart", restarted, 20)
    rows = ok(cluster, "get", "pod", name).splitlines()
    assert re.search(r"\s1 \(\d+s ago\)\s", rows[1]), rows
    events = ok(cluster, "get", "events", "--field-selector", f"involvedObject.name={name}")
    assert "Liveness probe failed" in events


def test_service_environment_variables(cluster: APIServerProcess) -> None:
    ok(cluster, "create", "service", "clusterip", "redis-primary", "--tcp=6379:6379")
    ok(cluster, "run", "envcheck", "--image=busybox", "--command", "--", "sleep", "3600")
    running(cluster, "run=envcheck", 1)
    out = ok(cluster, "exec", "envcheck", "--", "env")
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    ip = json.loads(ok(cluster, "get", "svc", "redis-primary", "-o", "json"))["spec"][
        "clusterIP"]
    assert env["REDIS_PRIMARY_SERVICE_HOST"] == ip
    assert env["REDIS_PRIMARY_SERVICE_PORT"] == "6379"
    assert env["REDIS_PRIMARY_PORT"] == f"tcp://{ip}:6379"
    assert env["REDIS_PRIMARY_PORT_6379_TCP_ADDR"] == ip
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_agent_kill_9_then_restart_recreates_pods(cluster: APIServerProcess) -> None:
    ok(cluster, "create", "deployment", "survivor", "--image=nginx", "--replicas=2")
    first = running(cluster, "app=survivor", 2)
    before = {p["metadata"]["name"]: p["status"]["startTime"] for p in first}
    assert cluster.agent is not None
    node = json.loads(ok(cluster, "get", "nodes", "-o", "json"))["items"][0]["metadata"][
        "name"]
    time.sleep(1.1)  # startTime has a resolution of one second
    cluster.stop_agent(signal_kill())
    cluster.start_agent("netns", node_name=node, port=cluster.agent_port)

    def recreated() -> list[dict[str, Any]] | None:
        items = running(cluster, "app=survivor", 2)
        fresh = [p for p in items
                 if p["status"]["startTime"] != before.get(p["metadata"]["name"])]
        return items if len(fresh) == 2 else None
    after = wait_for("pods recreated by the new agent", recreated, 60)
    # The same pod objects run again (cleanly recreated sandboxes, no duplicates).
    assert {p["metadata"]["name"] for p in after} == set(before)
    for p in after:
        ok(cluster, "exec", p["metadata"]["name"], "--", "true")


def signal_kill() -> int:
    import signal
    return signal.SIGKILL


def test_graceful_pod_deletion(cluster: APIServerProcess) -> None:
    ok(cluster, "run", "short", "--image=nginx")
    running(cluster, "run=short", 1)
    t0 = time.monotonic()
    assert ok(cluster, "delete", "pod", "short").strip() == 'pod "short" deleted'
    assert time.monotonic() - t0 < 15
    assert "NotFound" in cluster.kubectl("get", "pod", "short").stderr


def test_unknown_image_waits_with_err_image_pull(cluster: APIServerProcess,
                                                 tmp_path: Path) -> None:
    ok(cluster, "run", "mystery", "--image=example.com/nobody/knows:1")

    def waiting() -> str | None:
        p = json.loads(ok(cluster, "get", "pod", "mystery", "-o", "json"))
        for c in p["status"].get("containerStatuses") or []:
            w = (c.get("state") or {}).get("waiting") or {}
            if w.get("reason") == "ErrImagePull":
                return str(w.get("message", ""))
        return None
    msg = wait_for("ErrImagePull", waiting, 20)
    assert "images.yaml" in msg


def test_nslookup_inside_a_pod_through_the_search_path(cluster: APIServerProcess) -> None:
    import sys

    from svcnet.agent.runtime.netns import node_netns_name
    node = json.loads(ok(cluster, "get", "nodes", "-o", "json"))["items"][0]["metadata"][
        "name"]
    dns = subprocess.Popen(
        [sys.executable, "-m", "svcnet.cli.main", "dns", "--kubeconfig",
         str(cluster.kubeconfig), "--port", str(free_port()), "--metrics-port", "0",
         "--cluster-netns", node_netns_name("svcnet", node), "--cluster-ip", "10.96.0.10"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ok(cluster, "create", "deployment", "dnsweb", "--image=nginx")
        ok(cluster, "expose", "deployment", "dnsweb", "--port=80")
        ok(cluster, "run", "tools", "--image=praqma/network-multitool")
        running(cluster, "run=tools", 1)
        ip = json.loads(ok(cluster, "get", "svc", "dnsweb", "-o", "json"))["spec"]["clusterIP"]
        for name in ("dnsweb", "dnsweb.default", "dnsweb.default.svc.cluster.local"):
            def answered(n: str = name) -> str | None:
                res = cluster.kubectl("exec", "tools", "--", "nslookup", n)
                return res.stdout if res.returncode == 0 and ip in res.stdout else None
            out = wait_for(f"nslookup {name}", answered, 20)
            assert "Server:\t\t10.96.0.10" in out
            assert "Name:\tdnsweb.default.svc.cluster.local" in out
        # The kube-dns Service's endpoints point at where the server listens: the node's
        # address in the node namespace (mirrored into an EndpointSlice).
        def published() -> dict[str, Any] | None:
            res = cluster.kubectl("get", "endpointslices", "-n", "kube-system", "-l",
                                  "kubernetes.io/service-name=kube-dns", "-o", "json")
            items = json.loads(res.stdout)["items"] if res.returncode == 0 else []
            return items[0] if items and items[0].get("endpoints") else None
        sl = wait_for("kube-dns endpoint slice", published, 20)
        node_ip = sl["endpoints"][0]["addresses"][0]
        assert node_ip.startswith("10.244.")
        assert sorted((p["name"], p["protocol"], p["port"]) for p in sl["ports"]) == [
            ("dns", "UDP", 53), ("dns-tcp", "TCP", 53), ("metrics", "TCP", 9153)]
        out = ok(cluster, "exec", "tools", "--", "nslookup", "dnsweb", node_ip)
        assert ip in out
    finally:
        dns.terminate()
        dns.wait(10)


def test_deleting_a_namespace_stops_its_pods_gracefully(cluster: APIServerProcess) -> None:
    ok(cluster, "create", "namespace", "doomed")
    ok(cluster, "run", "victim", "-n", "doomed", "--image=gcr.io/kuar-demo/kuard-amd64:blue")
    wait_for("victim running", lambda: "Running" in ok(
        cluster, "get", "pod", "victim", "-n", "doomed", "--no-headers"), 60)
    uid = json.loads(ok(cluster, "get", "pod", "victim", "-n", "doomed", "-o", "json"))[
        "metadata"]["uid"]
    from svcnet.agent.runtime.netns import pod_netns_name
    sandbox = pod_netns_name("svcnet", uid)
    assert sandbox in netns_names()
    ok(cluster, "delete", "namespace", "doomed", "--wait=false")
    # The pod is deleted as a client would delete it: its node stops it, removes its
    # sandbox, and only then is the namespace gone.
    wait_for("namespace gone", lambda: cluster.kubectl(
        "get", "namespace", "doomed").returncode != 0, 60)
    assert sandbox not in netns_names()
