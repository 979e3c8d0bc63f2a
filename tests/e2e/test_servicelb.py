"""LoadBalancer addresses from the pool, seen through the real kubectl: EXTERNAL-IP,
``spec.loadBalancerIP``, release on a type change or delete, and a pool running dry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from svcnet.testing.cluster import APIServerProcess
from tests.e2e.helpers import get_json, ok, wait_for

pytestmark = pytest.mark.usefixtures("kubectl_available")

POOL = "127.240.9.0/30"  # two usable addresses: .1 and .2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    with APIServerProcess(tmp_path_factory.mktemp("servicelb")) as srv:
        srv.start_controllers("--lb-pool", POOL)
        yield srv


def external_ip(srv: APIServerProcess, name: str) -> str | None:
    ingress = (get_json(srv, "svc", name).get("status", {}).get("loadBalancer") or {}).get(
        "ingress") or []
    return ingress[0]["ip"] if ingress else None


def test_addresses_are_assigned_shown_and_released(cluster: APIServerProcess) -> None:
    ok(cluster, "create", "service", "loadbalancer", "lb-a", "--tcp=80:8080")
    ip_a = wait_for("lb-a address", lambda: external_ip(cluster, "lb-a"))
    assert ip_a == "127.240.9.1"
    row = ok(cluster, "get", "svc", "lb-a", "--no-headers").split()
    assert row[1] == "LoadBalancer" and row[3] == ip_a
    describe = ok(cluster, "describe", "svc", "lb-a")
    assert "EnsuredLoadBalancer" in describe and f"LoadBalancer Ingress:     {ip_a}" in describe

    # The pool has one more address; the third service stays pending.
    ok(cluster, "create", "service", "loadbalancer", "lb-b", "--tcp=80:8080")
    assert wait_for("lb-b address", lambda: external_ip(cluster, "lb-b")) == "127.240.9.2"
    ok(cluster, "create", "service", "loadbalancer", "lb-c", "--tcp=80:8080")
    wait_for("AllocationFailed event", lambda: "AllocationFailed" in ok(
        cluster, "describe", "svc", "lb-c"))
    assert ok(cluster, "get", "svc", "lb-c", "--no-headers").split()[3] == "<pending>"

    # A type change releases the address, which the pending service then gets.
    ok(cluster, "patch", "svc", "lb-a", "-p", '{"spec":{"type":"ClusterIP"}}')
    wait_for("lb-a released", lambda: external_ip(cluster, "lb-a") is None or None)
    assert wait_for("lb-c address", lambda: external_ip(cluster, "lb-c")) == ip_a

    # Deleting frees it too; a requested free address is honoured.
    ok(cluster, "delete", "svc", "lb-b")
    ok(cluster, "apply", "-f", "-", input="""
apiVersion: v1
kind: Service
metadata: {name: lb-d}
spec:
  type: LoadBalancer
  loadBalancerIP: 127.240.9.2
  ports: [{port: 80}]
""")
    assert wait_for("lb-d address", lambda: external_ip(cluster, "lb-d")) == "127.240.9.2"
    for name in ("lb-a", "lb-c", "lb-d"):
        ok(cluster, "delete", "svc", name)


def test_a_requested_address_outside_the_pool_is_refused(cluster: APIServerProcess) -> None:
    ok(cluster, "apply", "-f", "-", input="""
apiVersion: v1
kind: Service
metadata: {name: lb-out}
spec:
  type: LoadBalancer
  loadBalancerIP: 192.0.2.7
  ports: [{port: 80}]
""")
    wait_for("LoadBalancerIPNotAvailable event", lambda: "LoadBalancerIPNotAvailable" in ok(
        cluster, "describe", "svc", "lb-out"))
    assert external_ip(cluster, "lb-out") is None
    ok(cluster, "delete", "svc", "lb-out")


def test_local_traffic_policy_gets_a_health_check_node_port(cluster: APIServerProcess) -> None:
    ok(cluster, "create", "service", "loadbalancer", "lb-local", "--tcp=80:8080")
    assert "healthCheckNodePort" not in get_json(cluster, "svc", "lb-local")["spec"]
    ok(cluster, "patch", "svc", "lb-local", "-p",
       '{"spec":{"externalTrafficPolicy":"Local"}}')
    spec = get_json(cluster, "svc", "lb-local")["spec"]
    port = spec["healthCheckNodePort"]
    assert 30000 <= port <= 32767 and port != spec["ports"][0]["nodePort"]
    assert f"HealthCheck NodePort:     {port}" in ok(cluster, "describe", "svc", "lb-local")
    # back to Cluster: the port is dropped and free again
    ok(cluster, "patch", "svc", "lb-local", "-p",
       '{"spec":{"externalTrafficPolicy":"Cluster"}}')
    assert "healthCheckNodePort" not in get_json(cluster, "svc", "lb-local")["spec"]
    ok(cluster, "apply", "-f", "-", input=f"""
apiVersion: v1
kind: Service
metadata: {{name: lb-local-2}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  healthCheckNodePort: {port}
  ports: [{{port: 80}}]
""")
    assert get_json(cluster, "svc", "lb-local-2")["spec"]["healthCheckNodePort"] == port
    ok(cluster, "delete", "svc", "lb-local", "lb-local-2")
