"""EndpointSlice reconciliation plans and mirroring plans (pure): named cases."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.controllers import podinfo as pi
from svcnet.controllers.endpointslice import (
    CONTROLLER_NAME,
    SlicePlan,
    endpoint_key,
    plan_slices,
    pod_endpoint,
)
from svcnet.controllers.endpointslice_mirroring import (
    CONTROLLER_NAME as MIRROR_NAME,
)
from svcnet.controllers.endpointslice_mirroring import (
    plan_mirror,
    should_mirror,
)
from tests.controllers.builders import pod, service

Obj = dict[str, Any]


def pods_n(n: int, start: int = 0, **kw: Any) -> list[Obj]:
    return [pod(f"p{i:04d}", f"10.244.{i // 250}.{i % 250 + 1}", **kw)
            for i in range(start, start + n)]


def store(plan: SlicePlan, existing: list[Obj] | None = None) -> list[Obj]:
    """What the API would hold after applying ``plan`` to ``existing``."""
    by_name = {s["metadata"]["name"]: s for s in existing or []}
    for s in plan.delete:
        by_name.pop(s["metadata"]["name"])
    for s in plan.update:
        by_name[s["metadata"]["name"]] = copy.deepcopy(s)
    for i, s in enumerate(plan.create):
        c = copy.deepcopy(s)
        c["metadata"]["name"] = f"{c['metadata']['generateName']}gen{len(by_name)}{i}"
        c["metadata"]["resourceVersion"] = "1"
        by_name[c["metadata"]["name"]] = c
    return sorted(by_name.values(), key=lambda s: s["metadata"]["name"])


def counts(plan: SlicePlan) -> tuple[int, int, int]:
    return len(plan.create), len(plan.update), len(plan.delete)


def all_endpoints(slices: list[Obj]) -> list[str]:
    return sorted(e["targetRef"]["name"] for s in slices for e in s["endpoints"])


# --- endpoints of pods ------------------------------------------------------------------------

ENDPOINT_CASES: list[tuple[str, Obj, Obj, Obj]] = [
    ("ready", service(), pod("a", "10.244.0.5", node="n1"),
     {"ready": True, "serving": True, "terminating": False}),
    ("not ready", service(), pod("a", "10.244.0.5", ready=False),
     {"ready": False, "serving": False, "terminating": False}),
    ("terminating but still ready: serving, not ready", service(),
     pod("a", "10.244.0.5", deleting=True),
     {"ready": False, "serving": True, "terminating": True}),
    ("publishNotReadyAddresses: always ready", service(publish_not_ready=True),
     pod("a", "10.244.0.5", ready=False, deleting=True),
     {"ready": True, "serving": False, "terminating": True}),
]


@pytest.mark.parametrize("svc,p,conditions", [c[1:] for c in ENDPOINT_CASES],
                         ids=[c[0] for c in ENDPOINT_CASES])
def test_pod_endpoint_conditions(svc: Obj, p: Obj, conditions: Obj) -> None:
    ep = pod_endpoint(p, svc, "IPv4", zone="z1")
    assert ep is not None
    assert ep["conditions"] == conditions
    assert ep["addresses"] == ["10.244.0.5"]
    assert ep["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "a",
                               "uid": "uid-a"}
    assert ep["zone"] == "z1"


def test_pod_endpoint_hostname_node_and_family() -> None:
    svc = service("db", cluster_ip="None")
    ep = pod_endpoint(pod("a", "10.244.0.5", hostname="a", subdomain="db", node="n1"),
                      svc, "IPv4")
    assert ep is not None and ep["hostname"] == "a" and ep["nodeName"] == "n1"
    assert pod_endpoint(pod("a", "10.244.0.5"), svc, "IPv6") is None


# --- plans --------------------------------------------------------------------------------------


def test_new_service_gets_one_slice_with_sorted_endpoints() -> None:
    svc = service(labels={"team": "a"})
    plan = plan_slices(svc, [pod("b", "10.244.0.6"), pod("a", "10.244.0.5")], [],
                       trigger_time="2024-01-01T00:00:00Z")
    assert counts(plan) == (1, 0, 0)
    s = plan.create[0]
    assert s["metadata"]["generateName"] == "web-"
    assert s["metadata"]["labels"] == {"team": "a", pi.LABEL_SERVICE_NAME: "web",
                                       pi.LABEL_MANAGED_BY: CONTROLLER_NAME}
    assert s["metadata"]["annotations"] == {
        pi.ANNOTATION_TRIGGER_TIME: "2024-01-01T00:00:00Z"}
    assert s["metadata"]["ownerReferences"] == [{
        "apiVersion": "v1", "kind": "Service", "name": "web", "uid": "uid-svc-web",
        "controller": True, "blockOwnerDeletion": True}]
    assert s["addressType"] == "IPv4"
    assert s["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
    assert [e["targetRef"]["name"] for e in s["endpoints"]] == ["a", "b"]


def test_no_pods_placeholder_created_once() -> None:
    svc = service()
    plan = plan_slices(svc, [], [])
    assert counts(plan) == (1, 0, 0)
    assert plan.create[0]["endpoints"] == [] and plan.create[0]["ports"] == []
    assert plan_slices(svc, [], store(plan)).empty


def test_steady_state_is_a_noop() -> None:
    svc = service()
    pods = pods_n(250)
    slices = store(plan_slices(svc, pods, []))
    assert [len(s["endpoints"]) for s in slices] == [100, 100, 50]
    assert plan_slices(svc, pods, slices).empty


def test_one_readiness_flip_updates_only_its_slice() -> None:
    svc = service()
    pods = pods_n(150)
    slices = store(plan_slices(svc, pods, []))
    flipped = pods[120]["metadata"]["name"]
    pods[120] = pod(flipped, pods[120]["status"]["podIP"], ready=False)
    plan = plan_slices(svc, pods, slices)
    assert counts(plan) == (0, 1, 0)
    eps = {e["targetRef"]["name"]: e for e in plan.update[0]["endpoints"]}
    assert eps[flipped]["conditions"]["ready"] is False


def test_new_pod_fills_the_best_fitting_unchanged_slice() -> None:
    svc = service()
    pods = pods_n(150)
    slices = store(plan_slices(svc, pods, []))
    partial = next(s for s in slices if len(s["endpoints"]) == 50)
    plan = plan_slices(svc, [*pods, *pods_n(1, start=150)], slices)
    assert counts(plan) == (0, 1, 0)
    assert plan.update[0]["metadata"]["name"] == partial["metadata"]["name"]
    assert len(plan.update[0]["endpoints"]) == 51


def test_removed_pods_empty_slice_is_deleted() -> None:
    svc = service()
    pods = pods_n(150)
    slices = store(plan_slices(svc, pods, []))
    small = {e["targetRef"]["name"] for s in slices if len(s["endpoints"]) == 50
             for e in s["endpoints"]}
    left = [p for p in pods if p["metadata"]["name"] not in small]
    plan = plan_slices(svc, left, slices)
    assert counts(plan) == (0, 0, 1)
    assert all_endpoints(store(plan, slices)) == sorted(p["metadata"]["name"] for p in left)


def test_port_change_reuses_slice_name() -> None:
    svc = service()
    pods = pods_n(3)
    slices = store(plan_slices(svc, pods, []))
    svc2 = service(ports=[{"port": 80, "targetPort": 9090, "protocol": "TCP"}])
    plan = plan_slices(svc2, pods, slices)
    assert counts(plan) == (0, 1, 0)
    assert plan.update[0]["metadata"]["name"] == slices[0]["metadata"]["name"]
    assert plan.update[0]["ports"][0]["port"] == 9090


def test_label_change_updates_without_endpoint_change() -> None:
    pods = pods_n(2)
    slices = store(plan_slices(service(), pods, []))
    plan = plan_slices(service(labels={"new": "label"}), pods, slices)
    assert counts(plan) == (0, 1, 0)
    assert plan.update[0]["metadata"]["labels"]["new"] == "label"


def test_slice_of_another_service_uid_is_replaced() -> None:
    pods = pods_n(2)
    slices = store(plan_slices(service(), pods, []))
    other = service()
    other["metadata"]["uid"] = "uid-recreated"
    plan = plan_slices(other, pods, slices)
    assert counts(plan) == (1, 0, 1)


def test_dual_stack_and_dropped_family() -> None:
    svc = service(families=["IPv4", "IPv6"])
    pods = [pod("a", ips=["10.244.0.5", "fd00::5"])]
    slices = store(plan_slices(svc, pods, []))
    assert sorted(s["addressType"] for s in slices) == ["IPv4", "IPv6"]
    plan = plan_slices(service(families=["IPv4"]), pods, slices)
    assert counts(plan) == (0, 0, 1) and plan.delete[0]["addressType"] == "IPv6"


def test_headless_label_and_hostname() -> None:
    svc = service("db", cluster_ip="None")
    plan = plan_slices(svc, [pod("a", "10.244.0.5", hostname="a", subdomain="db")], [])
    s = plan.create[0]
    assert s["metadata"]["labels"][pi.LABEL_HEADLESS] == ""
    assert s["endpoints"][0]["hostname"] == "a"


def test_named_ports_split_slices_and_terminating_pods_stay() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    pods = [pod("a", "10.244.0.5", ports=[("web", 8080)]),
            pod("b", "10.244.0.6", ports=[("web", 9090)], deleting=True)]
    slices = store(plan_slices(svc, pods, []))
    assert sorted((s["ports"][0]["port"], len(s["endpoints"])) for s in slices) == \
        [(8080, 1), (9090, 1)]


def test_endpoint_key_ignores_address_order() -> None:
    a = {"addresses": ["2", "1"], "targetRef": {"namespace": "d", "name": "p"}}
    b = {"addresses": ["1", "2"], "targetRef": {"namespace": "d", "name": "p"}}
    assert endpoint_key(a) == endpoint_key(b)


# --- mirroring ------------------------------------------------------------------------------


def manual_endpoints(subsets: list[Obj], labels: dict[str, str] | None = None,
                     annotations: dict[str, str] | None = None) -> Obj:
    return {"metadata": {"name": "ext", "namespace": "default", "uid": "uid-ep",
                         "labels": labels or {}, "annotations": annotations or {}},
            "subsets": subsets}


MIRROR_SHOULD: list[tuple[str, Obj | None, bool]] = [
    ("plain", manual_endpoints([]), True),
    ("skip-mirror", manual_endpoints([], labels={pi.LABEL_SKIP_MIRROR: "true"}), False),
    ("leader election record",
     manual_endpoints([], annotations={pi.ANNOTATION_LEADER: "{}"}), False),
    ("absent", None, False),
]


@pytest.mark.parametrize("ep,want", [c[1:] for c in MIRROR_SHOULD],
                         ids=[c[0] for c in MIRROR_SHOULD])
def test_should_mirror(ep: Obj | None, want: bool) -> None:
    assert should_mirror(ep) is want


def test_mirror_one_slice_per_ports_and_family() -> None:
    ep = manual_endpoints(
        [{"addresses": [{"ip": "192.0.2.10"}], "notReadyAddresses": [{"ip": "192.0.2.11"}],
          "ports": [{"name": "db", "port": 5432, "protocol": "TCP"}]},
         {"addresses": [{"ip": "2001:db8::1"}, {"ip": "not-an-ip"}],
          "ports": [{"name": "db", "port": 5432, "protocol": "TCP"}]}],
        labels={"team": "x"},
        annotations={pi.ANNOTATION_LAST_APPLIED: "{}", "note": "kept"})
    plan = plan_mirror(ep, [])
    assert plan.invalid_addresses == 1 and plan.skipped_addresses == 0
    sp = plan.slices
    assert counts(sp) == (2, 0, 0)
    v4 = next(s for s in sp.create if s["addressType"] == "IPv4")
    assert v4["metadata"]["labels"] == {"team": "x", pi.LABEL_SERVICE_NAME: "ext",
                                        pi.LABEL_MANAGED_BY: MIRROR_NAME}
    assert v4["metadata"]["annotations"] == {"note": "kept"}
    assert v4["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert v4["endpoints"] == [
        {"addresses": ["192.0.2.10"], "conditions": {"ready": True}},
        {"addresses": ["192.0.2.11"], "conditions": {"ready": False}}]
    assert v4["ports"] == [{"name": "db", "port": 5432, "protocol": "TCP"}]
    assert plan_mirror(ep, store(sp)).slices.empty


def test_mirror_updates_in_place_and_caps_subsets() -> None:
    ep = manual_endpoints([{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}])
    slices = store(plan_mirror(ep, []).slices)
    ep2 = manual_endpoints([{"addresses": [{"ip": f"192.0.2.{i}"} for i in range(1, 6)],
                             "ports": [{"port": 80}]}])
    plan = plan_mirror(ep2, slices, max_per_subset=3)
    assert plan.skipped_addresses == 2
    assert counts(plan.slices) == (0, 1, 0)
    assert plan.slices.update[0]["metadata"]["name"] == slices[0]["metadata"]["name"]
    assert len(plan.slices.update[0]["endpoints"]) == 3
    port_change = manual_endpoints([{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 81}]}])
    plan = plan_mirror(port_change, slices)
    assert counts(plan.slices) == (0, 1, 0)
    assert plan_mirror(manual_endpoints([]), slices).slices.delete == slices


def test_prefer_close_hints_ready_endpoints_for_their_zone() -> None:
    svc = service()
    svc["spec"]["trafficDistribution"] = "PreferClose"
    pods = [pod("a", "10.244.0.5", node="n1"), pod("b", "10.244.0.6", node="n2"),
            pod("c", "10.244.0.7", node="n1", ready=False), pod("d", "10.244.0.8", node="n3")]
    zones = {"n1": "z1", "n2": "z2"}  # n3 has no zone
    (s,) = plan_slices(svc, pods, [], zones).create
    hints = {e["targetRef"]["name"]: e.get("hints") for e in s["endpoints"]}
    assert hints == {"a": {"forZones": [{"name": "z1"}]}, "b": {"forZones": [{"name": "z2"}]},
                     "c": None, "d": None}
    # turning it off removes the hints from the existing slice
    stored = store(plan_slices(svc, pods, [], zones))
    del svc["spec"]["trafficDistribution"]
    plan = plan_slices(svc, pods, stored, zones)
    assert counts(plan) == (0, 1, 0)
    assert all("hints" not in e for e in plan.update[0]["endpoints"])
