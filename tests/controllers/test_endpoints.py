"""Desired Endpoints (pure): tables of named cases, plus the shared pod rules."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.controllers import podinfo as pi
from svcnet.controllers.endpoints import (
    MAX_CAPACITY,
    desired_endpoints,
    desired_subsets,
    repack_subsets,
    truncate_subsets,
)
from tests.controllers.builders import addr, pod, service

Obj = dict[str, Any]
P80 = {"port": 8080, "protocol": "TCP"}

SUBSET_CASES: list[tuple[str, Obj, list[Obj], list[Obj]]] = [
    ("ready and not ready",
     service(), [pod("a", "10.244.0.5"), pod("b", "10.244.0.6", ready=False)],
     [{"addresses": [addr("a", "10.244.0.5")], "notReadyAddresses": [addr("b", "10.244.0.6")],
       "ports": [P80]}]),
    ("addresses sorted by ip string",
     service(), [pod("a", "10.244.0.5"), pod("b", "10.244.0.10"), pod("c", "10.244.0.7")],
     [{"addresses": [addr("b", "10.244.0.10"), addr("a", "10.244.0.5"),
                     addr("c", "10.244.0.7")], "ports": [P80]}]),
    ("publishNotReadyAddresses puts everyone in addresses, terminating too",
     service(publish_not_ready=True),
     [pod("a", "10.244.0.5", ready=False), pod("b", "10.244.0.6", deleting=True)],
     [{"addresses": [addr("a", "10.244.0.5"), addr("b", "10.244.0.6")], "ports": [P80]}]),
    ("terminating, terminal and ip-less pods leave",
     service(), [pod("a", "10.244.0.5", deleting=True), pod("b", "10.244.0.6", phase="Failed"),
                 pod("c", "10.244.0.7", phase="Succeeded"), pod("d", None),
                 pod("e", "10.244.0.9")],
     [{"addresses": [addr("e", "10.244.0.9")], "ports": [P80]}]),
    ("nodeName copied",
     service(), [pod("a", "10.244.0.5", node="node-1")],
     [{"addresses": [addr("a", "10.244.0.5", node="node-1")], "ports": [P80]}]),
    ("named targetPort resolved per pod: two numbers, two subsets; no such port, skipped",
     service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]),
     [pod("a", "10.244.0.5", ports=[("web", 8080)]), pod("b", "10.244.0.6", ports=[("web", 9090)]),
      pod("c", "10.244.0.7", ports=[("other", 8080)])],
     [{"addresses": [addr("a", "10.244.0.5")],
       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
      {"addresses": [addr("b", "10.244.0.6")],
       "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}]}]),
    ("multi-port: ports sharing address sets merge into one subset",
     service(ports=[{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"name": "admin", "port": 81, "targetPort": "admin", "protocol": "TCP"}]),
     [pod("a", "10.244.0.5", ports=[("admin", 9000)]), pod("b", "10.244.0.6", ports=[("admin", 9000)])],
     [{"addresses": [addr("a", "10.244.0.5"), addr("b", "10.244.0.6")],
       "ports": [{"name": "admin", "port": 9000, "protocol": "TCP"},
                 {"name": "http", "port": 8080, "protocol": "TCP"}]}]),
    ("hostname only when subdomain names the service",
     service("db", cluster_ip="None", selector={"app": "web"}),
     [pod("a", "10.244.0.5", hostname="a", subdomain="db"),
      pod("b", "10.244.0.6", hostname="b", subdomain="other")],
     [{"addresses": [addr("a", "10.244.0.5", hostname="a"), addr("b", "10.244.0.6")],
       "ports": [P80]}]),
    ("headless without ports: one portless subset",
     service(cluster_ip="None", ports=[]), [pod("a", "10.244.0.5"), pod("b", "10.244.0.6", ready=False)],
     [{"addresses": [addr("a", "10.244.0.5")], "notReadyAddresses": [addr("b", "10.244.0.6")]}]),
    ("not headless without ports: nothing",
     service(ports=[]), [pod("a", "10.244.0.5")], []),
    ("ip of the service's family is chosen",
     service(families=["IPv6"]), [pod("a", ips=["10.244.0.5", "fd00::5"]), pod("b", "10.244.0.6")],
     [{"addresses": [addr("a", "fd00::5")], "ports": [P80]}]),
    ("no pods: no subsets", service(), [], []),
]


@pytest.mark.parametrize("svc,pods,want", [c[1:] for c in SUBSET_CASES],
                         ids=[c[0] for c in SUBSET_CASES])
def test_desired_subsets(svc: Obj, pods: list[Obj], want: list[Obj]) -> None:
    assert desired_subsets(svc, pods) == want


REPACK_CASES: list[tuple[str, list[Obj], list[Obj]]] = [
    ("same ports merge",
     [{"addresses": [{"ip": "1.1.1.2"}], "ports": [{"port": 1}]},
      {"addresses": [{"ip": "1.1.1.1"}], "ports": [{"port": 1}]}],
     [{"addresses": [{"ip": "1.1.1.1"}, {"ip": "1.1.1.2"}], "ports": [{"port": 1}]}]),
    ("ready wins over not ready for one address",
     [{"notReadyAddresses": [{"ip": "1.1.1.1"}], "ports": [{"port": 1}]},
      {"addresses": [{"ip": "1.1.1.1"}], "ports": [{"port": 1}]}],
     [{"addresses": [{"ip": "1.1.1.1"}], "ports": [{"port": 1}]}]),
    ("different address sets stay apart",
     [{"addresses": [{"ip": "1.1.1.1"}], "ports": [{"port": 1}, {"port": 2}]},
      {"addresses": [{"ip": "1.1.1.2"}], "ports": [{"port": 2}]}],
     [{"addresses": [{"ip": "1.1.1.1"}], "ports": [{"port": 1}]},
      {"addresses": [{"ip": "1.1.1.1"}, {"ip": "1.1.1.2"}], "ports": [{"port": 2}]}]),
    ("empty", [], []),
]


@pytest.mark.parametrize("subsets,want", [c[1:] for c in REPACK_CASES],
                         ids=[c[0] for c in REPACK_CASES])
def test_repack_subsets(subsets: list[Obj], want: list[Obj]) -> None:
    assert repack_subsets(subsets) == want


def test_desired_endpoints_new_object_labels_and_annotation() -> None:
    svc = service("db", cluster_ip="None", labels={"tier": "db"})
    ep = desired_endpoints(svc, [pod("a", "10.244.0.5")], None, "2024-01-01T00:00:00Z")
    assert ep is not None
    assert ep["metadata"] == {
        "name": "db", "namespace": "default",
        "labels": {"tier": "db", pi.LABEL_HEADLESS: ""},
        "annotations": {pi.ANNOTATION_TRIGGER_TIME: "2024-01-01T00:00:00Z"}}
    assert ep["subsets"][0]["addresses"] == [addr("a", "10.244.0.5")]


def test_desired_endpoints_no_write_when_equal() -> None:
    svc, pods = service(labels={"x": "y"}), [pod("a", "10.244.0.5")]
    first = desired_endpoints(svc, pods, None, None)
    assert first is not None
    stored = {**first, "metadata": {**first["metadata"], "resourceVersion": "7"}}
    stored["subsets"][0]["addresses"][0]["targetRef"]["resourceVersion"] = "99"
    assert desired_endpoints(svc, pods, stored, "2030-01-01T00:00:00Z") is None


def test_desired_endpoints_update_keeps_metadata_and_does_not_mutate() -> None:
    svc = service()
    current = {"metadata": {"name": "web", "namespace": "default", "resourceVersion": "7",
                            "annotations": {"keep": "me"}, "labels": {"old": "x"}},
               "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}
    before = repr(current)
    new = desired_endpoints(svc, [], current, None)
    assert repr(current) == before
    assert new is not None and "subsets" not in new
    assert new["metadata"]["resourceVersion"] == "7"
    assert new["metadata"]["annotations"] == {"keep": "me"}
    assert new["metadata"]["labels"] == {}


def test_truncation_over_capacity() -> None:
    subsets = [{"addresses": [{"ip": f"10.0.{i // 250}.{i % 250}"} for i in range(900)]},
               {"addresses": [{"ip": f"10.1.0.{i}"} for i in range(200)],
                "notReadyAddresses": [{"ip": "10.2.0.1"}]}]
    assert truncate_subsets(subsets)
    total = sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or [])
                for s in subsets)
    assert total == MAX_CAPACITY
    assert all("notReadyAddresses" not in s for s in subsets)


# --- shared pod rules ------------------------------------------------------------------------

FIND_PORT_CASES: list[tuple[str, Obj, Obj, int | None]] = [
    ("number", pod("a"), {"port": 80, "targetPort": 8080}, 8080),
    ("absent means port", pod("a"), {"port": 80}, 80),
    ("name", pod("a", ports=[("http", 9000)]), {"port": 80, "targetPort": "http"}, 9000),
    ("name with other protocol", pod("a", ports=[("http", 9000)]),
     {"port": 80, "targetPort": "http", "protocol": "UDP"}, None),
    ("missing name", pod("a"), {"port": 80, "targetPort": "http"}, None),
]


@pytest.mark.parametrize("p,svc_port,want", [c[1:] for c in FIND_PORT_CASES],
                         ids=[c[0] for c in FIND_PORT_CASES])
def test_find_port(p: Obj, svc_port: Obj, want: int | None) -> None:
    assert pi.find_port(p, svc_port) == want


RELEVANCE_CASES: list[tuple[str, Obj, Obj, tuple[bool, bool]]] = [
    ("readiness", pod("a"), pod("a", ready=False), (True, False)),
    ("ip", pod("a", "10.0.0.1"), pod("a", "10.0.0.2"), (True, False)),
    ("deleting", pod("a"), pod("a", deleting=True), (True, False)),
    ("labels", pod("a"), pod("a", labels={"app": "other"}), (False, True)),
    ("nothing relevant", pod("a"), pod("a", ready_since="2024-01-01T00:00:00Z"), (False, False)),
]


@pytest.mark.parametrize("old,new,want", [c[1:] for c in RELEVANCE_CASES],
                         ids=[c[0] for c in RELEVANCE_CASES])
def test_pod_update_relevance(old: Obj, new: Obj, want: tuple[bool, bool]) -> None:
    assert pi.pod_update_relevance(old, new) == want


def test_trigger_time_tracker_reports_earliest_change_once() -> None:
    tracker = pi.TriggerTimeTracker()
    svc = service()
    pods = [pod("a", ready_since="2024-02-01T00:00:05Z"),
            pod("b", ready_since="2024-02-01T00:00:03Z")]
    assert tracker.compute("k", svc, pods) == "2024-01-01T00:00:00Z"  # new service
    assert tracker.compute("k", svc, pods) is None
    pods[0] = pod("a", ready=False, ready_since="2024-02-01T00:01:00.5Z")
    assert tracker.compute("k", svc, pods) == "2024-02-01T00:01:00.5Z"


def test_write_tracker() -> None:
    w = pi.WriteTracker()
    w.created("k", "s1")
    w.replaced("k", "s2", "5")
    assert w.is_stale("k", {"s2": "5"})
    assert w.is_stale("k", {"s1": "1", "s2": "5"})
    assert not w.is_stale("k", {"s1": "1", "s2": "6"})
    assert not w.is_stale("k", {})
