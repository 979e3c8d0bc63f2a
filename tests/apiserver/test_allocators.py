"""ClusterIP and NodePort allocation rules."""

from __future__ import annotations

import random

import pytest

from svcnet.apiserver.allocators import AllocationError, IPAllocator, ServiceAllocator
from svcnet.model.errors import APIError


def svc(name: str = "s", **spec: object) -> dict[str, object]:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}


def test_ip_allocator_never_hands_out_network_or_broadcast() -> None:
    a = IPAllocator("10.0.0.0/29", random.Random(1))
    got = {a.allocate_next() for _ in range(6)}
    assert got == {f"10.0.0.{i}" for i in range(1, 7)}
    with pytest.raises(AllocationError):
        a.allocate_next()


def test_requested_ip_honoured_then_refused_twice() -> None:
    a = ServiceAllocator("10.96.0.0/12", rng=random.Random(2))
    s1 = svc(clusterIP="10.96.0.50")
    a.assign(s1, None)
    assert s1["spec"]["clusterIPs"] == ["10.96.0.50"]  # type: ignore[index]
    with pytest.raises(APIError) as e:
        a.assign(svc("other", clusterIP="10.96.0.50"), None)
    assert e.value.code == 422
    assert e.value.details["causes"][0]["field"] == "spec.clusterIPs"
    assert "already allocated" in e.value.message


def test_out_of_range_ip_is_422() -> None:
    a = ServiceAllocator("10.96.0.0/12")
    with pytest.raises(APIError) as e:
        a.assign(svc(clusterIP="192.168.1.1"), None)
    assert e.value.code == 422 and "not in the valid range" in e.value.message


def test_headless_and_external_name_get_no_ip() -> None:
    a = ServiceAllocator("10.96.0.0/12")
    h = svc(clusterIP="None")
    a.assign(h, None)
    assert h["spec"]["clusterIPs"] == ["None"]  # type: ignore[index]
    x = {"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": "a.b"}}
    a.assign(x, None)
    assert "clusterIP" not in x["spec"]


def test_node_ports_allocated_kept_and_released() -> None:
    a = ServiceAllocator("10.96.0.0/12", rng=random.Random(3))
    s = svc(type="NodePort")
    a.assign(s, None)
    port = s["spec"]["ports"][0]["nodePort"]  # type: ignore[index]
    assert 30000 <= port <= 32767
    # An update that omits the nodePort keeps the old one.
    upd = svc(type="NodePort", clusterIP=s["spec"]["clusterIP"])  # type: ignore[index]
    fresh = a.assign(upd, s)
    assert fresh == [] and upd["spec"]["ports"][0]["nodePort"] == port  # type: ignore[index]
    with pytest.raises(APIError):
        a.assign(svc("b", type="NodePort", ports=[{"port": 1, "nodePort": port}]), None)
    a.release_unused(s, None)
    again = svc("c", type="NodePort", ports=[{"port": 1, "nodePort": port}])
    a.assign(again, None)


def test_restore_marks_stored_values() -> None:
    a = ServiceAllocator("10.96.0.0/12")
    a.restore([{"spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                         "ports": [{"port": 53, "nodePort": 30053}]}}])
    with pytest.raises(APIError):
        a.assign(svc(clusterIP="10.96.0.10"), None)
    with pytest.raises(APIError):
        a.assign(svc(type="NodePort", ports=[{"port": 1, "nodePort": 30053}]), None)


def test_failed_assign_releases_partial_allocation() -> None:
    a = ServiceAllocator("10.96.0.0/12")
    a.restore([{"spec": {"ports": [{"port": 1, "nodePort": 30001}]}}])
    bad = svc(type="NodePort", clusterIP="10.96.0.77", ports=[{"port": 1, "nodePort": 30001}])
    with pytest.raises(APIError):
        a.assign(bad, None)
    a.assign(svc(clusterIP="10.96.0.77"), None)  # the IP was given back


def test_health_check_node_port_for_local_load_balancers_only() -> None:
    a = ServiceAllocator("10.96.0.0/12", rng=random.Random(5))
    cluster = svc("c", type="LoadBalancer", externalTrafficPolicy="Cluster")
    a.assign(cluster, None)
    assert "healthCheckNodePort" not in cluster["spec"]  # type: ignore[operator]
    local = svc("l", type="LoadBalancer", externalTrafficPolicy="Local")
    a.assign(local, None)
    spec: dict[str, object] = local["spec"]  # type: ignore[assignment]
    health = spec["healthCheckNodePort"]
    assert isinstance(health, int) and 30000 <= health <= 32767
    assert health != spec["ports"][0]["nodePort"]  # type: ignore[index]
    # kept across an update that omits it
    upd = svc("l", type="LoadBalancer", externalTrafficPolicy="Local",
              clusterIP=spec["clusterIP"], ports=[dict(spec["ports"][0])])  # type: ignore[index]
    assert a.assign(upd, local) == []
    assert upd["spec"]["healthCheckNodePort"] == health  # type: ignore[index]
    # taken by this service: another cannot ask for it
    with pytest.raises(APIError) as e:
        a.assign(svc("x", type="LoadBalancer", externalTrafficPolicy="Local",
                     healthCheckNodePort=health), None)
    assert "spec.healthCheckNodePort" in str(e.value.status())
    # released with the service
    a.release_unused(upd, None)
    mine = svc("y", type="LoadBalancer", externalTrafficPolicy="Local",
               healthCheckNodePort=health)
    a.assign(mine, None)
    assert mine["spec"]["healthCheckNodePort"] == health  # type: ignore[index]
