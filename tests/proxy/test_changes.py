"""Conversion of Services / EndpointSlices and the change trackers."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import pytest

from svcnet.proxy.changes import (
    ProxyStateBuilder,
    build_state,
    endpoints_from_slice,
    endpoints_from_slices,
    service_ports_from_api,
)
from svcnet.proxy.types import (
    SCHEDULER_ANNOTATION,
    WEIGHTS_ANNOTATION,
    EndpointInfo,
    ServicePortInfo,
    ServicePortName,
)
from tests.proxy.flows import endpoint, endpoint_slice, port, service, slice_port

Obj = dict[str, Any]


def spn(name: str = "web", port_name: str = "", protocol: str = "TCP") -> ServicePortName:
    return ServicePortName("default", name, port_name, protocol)


def with_spec(svc: Obj, **spec: Any) -> Obj:
    out = copy.deepcopy(svc)
    out["spec"].update(spec)
    return out


def without(svc: Obj, *keys: str) -> Obj:
    out = copy.deepcopy(svc)
    for k in keys:
        out["spec"].pop(k, None)
    return out


# --- Services ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SvcCase:
    name: str
    svc: Obj
    want: dict[ServicePortName, ServicePortInfo]


WEB_IPS = ("10.96.0.10",)
BASIC = service("web", [port(80, 8080)])
LB = service("web", [port(80, 8080, node_port=30080)], type="LoadBalancer",
             lb_ips=["127.241.0.10"], source_ranges=["127.0.0.5/24", " 10.0.0.0/8 "])
LB["status"]["loadBalancer"]["ingress"] += [{"hostname": "lb.example"},
                                            {"ip": "127.241.0.11", "ipMode": "Proxy"}]

SVC_CASES = (
    SvcCase("defaults: protocol TCP, unnamed port",
            {"metadata": {"name": "web", "namespace": "default"},
             "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}},
            {spn(): ServicePortInfo(spn(), "ClusterIP", WEB_IPS, 80)}),
    SvcCase("clusterIPs preferred over clusterIP", with_spec(
        BASIC, clusterIPs=["10.96.0.10", "fd00:10:96::10"]),
        {spn(): ServicePortInfo(spn(), "ClusterIP", ("10.96.0.10", "fd00:10:96::10"), 80)}),
    SvcCase("named ports and protocols",
            service("web", [port(80, name="http"), port(53, name="dns", protocol="UDP")]),
            {spn(port_name="http"): ServicePortInfo(spn(port_name="http"), "ClusterIP",
                                                    WEB_IPS, 80),
             spn(port_name="dns", protocol="UDP"): ServicePortInfo(
                 spn(port_name="dns", protocol="UDP"), "ClusterIP", WEB_IPS, 53)}),
    SvcCase("ExternalName is not proxied",
            {"metadata": {"name": "web", "namespace": "default"},
             "spec": {"type": "ExternalName", "externalName": "example.com",
                      "ports": [{"port": 80}]}}, {}),
    SvcCase("headless is not proxied", service("web", [port(80)], cluster_ip="None"), {}),
    SvcCase("no ClusterIP yet", without(BASIC, "clusterIP", "clusterIPs"), {}),
    SvcCase("NodePort", service("web", [port(80, node_port=30080)], type="NodePort"),
            {spn(): ServicePortInfo(spn(), "NodePort", WEB_IPS, 80, node_port=30080)}),
    SvcCase("ClusterIP ignores a stray nodePort",
            service("web", [port(80, node_port=30080)]),
            {spn(): ServicePortInfo(spn(), "ClusterIP", WEB_IPS, 80)}),
    SvcCase("LoadBalancer: VIP ingress IPs, normalized source ranges", LB,
            {spn(): ServicePortInfo(spn(), "LoadBalancer", WEB_IPS, 80, node_port=30080,
                                    load_balancer_ips=("127.241.0.10",),
                                    source_ranges=("127.0.0.0/24", "10.0.0.0/8"))}),
    SvcCase("invalid source range skipped",
            service("web", [port(80)], type="LoadBalancer", source_ranges=["nope", "::/0"]),
            {spn(): ServicePortInfo(spn(), "LoadBalancer", WEB_IPS, 80,
                                    source_ranges=("::/0",))}),
    SvcCase("load-balancer status ignored unless LoadBalancer",
            service("web", [port(80)], lb_ips=["127.241.0.10"], source_ranges=["1.0.0.0/8"]),
            {spn(): ServicePortInfo(spn(), "ClusterIP", WEB_IPS, 80)}),
    SvcCase("externalIPs", service("web", [port(80)], external_ips=["127.242.0.20"]),
            {spn(): ServicePortInfo(spn(), "ClusterIP", WEB_IPS, 80,
                                    external_ips=("127.242.0.20",))}),
    SvcCase("ClientIP affinity default timeout",
            with_spec(BASIC, sessionAffinity="ClientIP"),
            {spn(): ServicePortInfo(spn(), "ClusterIP", WEB_IPS, 80, affinity_timeout=10800)}),
    SvcCase("ClientIP affinity explicit timeout", service("web", [port(80)],
                                                          affinity_timeout=60),
            {spn(): ServicePortInfo(spn(), "ClusterIP", WEB_IPS, 80, affinity_timeout=60)}),
    SvcCase("affinity config without ClientIP is ignored",
            with_spec(BASIC, sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
            {spn(): ServicePortInfo(spn(), "ClusterIP", WEB_IPS, 80)}),
    SvcCase("internalTrafficPolicy Local", service("web", [port(80)], internal_local=True),
            {spn(): ServicePortInfo(spn(), "ClusterIP", WEB_IPS, 80, internal_local=True)}),
    SvcCase("externalTrafficPolicy Local on NodePort",
            service("web", [port(80, node_port=30080)], type="NodePort", external_local=True),
            {spn(): ServicePortInfo(spn(), "NodePort", WEB_IPS, 80, node_port=30080,
                                    external_local=True)}),
    SvcCase("externalTrafficPolicy ignored on a ClusterIP without externalIPs",
            with_spec(BASIC, externalTrafficPolicy="Local"),
            {spn(): ServicePortInfo(spn(), "ClusterIP", WEB_IPS, 80)}),
    SvcCase("externalTrafficPolicy honoured on a ClusterIP with externalIPs",
            with_spec(service("web", [port(80)], external_ips=["127.242.0.20"]),
                      externalTrafficPolicy="Local"),
            {spn(): ServicePortInfo(spn(), "ClusterIP", WEB_IPS, 80,
                                    external_ips=("127.242.0.20",), external_local=True)}),
    SvcCase("scheduler and weights annotations",
            service("web", [port(80)], annotations={
                SCHEDULER_ANNOTATION: " wrr ", WEIGHTS_ANNOTATION: "pod-a=3, 10.244.0.6=0"}),
            {spn(): ServicePortInfo(spn(), "ClusterIP", WEB_IPS, 80, scheduler="wrr",
                                    weights=(("pod-a", 3), ("10.244.0.6", 0)))}),
    SvcCase("malformed weights annotation ignored",
            service("web", [port(80)], annotations={WEIGHTS_ANNOTATION: "pod-a=heavy"}),
            {spn(): ServicePortInfo(spn(), "ClusterIP", WEB_IPS, 80)}),
)


@pytest.mark.parametrize("c", SVC_CASES, ids=[c.name for c in SVC_CASES])
def test_service_ports_from_api(c: SvcCase) -> None:
    assert service_ports_from_api(c.svc) == c.want


def test_malformed_weights_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    svc = service("web", [port(80)], annotations={WEIGHTS_ANNOTATION: "x"})
    with caplog.at_level(logging.WARNING, "svcnet.proxy"):
        assert service_ports_from_api(svc)[spn()].weights == ()
    assert WEIGHTS_ANNOTATION in caplog.text and "default/web" in caplog.text


# --- EndpointSlices ----------------------------------------------------------------------

@dataclass(frozen=True)
class EpCase:
    name: str
    ep: Obj
    want: EndpointInfo


POD = {"kind": "Pod", "name": "web-1"}
EP_CASES = (
    EpCase("nil conditions: ready, serving, not terminating",
           {"addresses": ["10.244.0.5"], "conditions": {}},
           EndpointInfo("10.244.0.5", 8080)),
    EpCase("no conditions at all", {"addresses": ["10.244.0.5"]},
           EndpointInfo("10.244.0.5", 8080)),
    EpCase("serving nil follows ready=false",
           {"addresses": ["10.244.0.5"], "conditions": {"ready": False, "terminating": True}},
           EndpointInfo("10.244.0.5", 8080, ready=False, serving=False, terminating=True)),
    EpCase("serving set explicitly",
           {"addresses": ["10.244.0.5"],
            "conditions": {"ready": False, "serving": True, "terminating": True}},
           EndpointInfo("10.244.0.5", 8080, ready=False, serving=True, terminating=True)),
    EpCase("node, zone, pod target, hints",
           {"addresses": ["10.244.0.5"], "nodeName": "node-a", "zone": "z1",
            "targetRef": POD,
            "hints": {"forZones": [{"name": "z1"}], "forNodes": [{"name": "node-a"}]}},
           EndpointInfo("10.244.0.5", 8080, node_name="node-a", zone="z1", target="web-1",
                        zone_hints=("z1",), node_hints=("node-a",))),
    EpCase("non-pod target ignored",
           {"addresses": ["10.244.0.5"], "targetRef": {"kind": "Node", "name": "n"}},
           EndpointInfo("10.244.0.5", 8080)),
    EpCase("first address only, IPv6 normalized",
           {"addresses": ["FD00:10:244:0::5", "fd00:10:244::6"]},
           EndpointInfo("fd00:10:244::5", 8080)),
)


@pytest.mark.parametrize("c", EP_CASES, ids=[c.name for c in EP_CASES])
def test_endpoint_conversion(c: EpCase) -> None:
    s = endpoint_slice("web", [c.ep], [slice_port(8080)])
    assert endpoints_from_slice(s) == {spn(): (c.want,)}


def test_slice_ports_map_by_name_and_protocol() -> None:
    s = endpoint_slice("web", [endpoint("10.244.0.5")],
                       [slice_port(8080, "http"), slice_port(5353, "dns", "UDP"),
                        {"name": "nil-port", "protocol": "TCP", "port": None}])
    got = endpoints_from_slice(s)
    assert set(got) == {spn(port_name="http"), spn(port_name="dns", protocol="UDP")}
    assert got[spn(port_name="dns", protocol="UDP")][0].address == "10.244.0.5:5353"


@pytest.mark.parametrize("s", [
    {"metadata": {"name": "x", "namespace": "default"}, "addressType": "IPv4",
     "endpoints": [{"addresses": ["10.244.0.5"]}], "ports": [{"port": 80}]},
    endpoint_slice("web", [{"addresses": ["web.example"]}], [slice_port(80)],
                   address_type="FQDN"),
    endpoint_slice("web", [{"addresses": []}, {"addresses": ["not-an-ip"]}],
                   [slice_port(80)]),
], ids=["no service label", "FQDN", "no usable address"])
def test_slices_contributing_nothing(s: Obj) -> None:
    assert not any(endpoints_from_slice(s).values())


def test_slices_merge_sorted_and_deduplicated() -> None:
    a = endpoint_slice("web", [endpoint("10.244.2.7", ready=False),
                               endpoint("10.244.0.5", pod="first")], [slice_port(80)],
                       name="web-a")
    b = endpoint_slice("web", [endpoint("10.244.10.3"), endpoint("10.244.2.7", pod="ready"),
                               endpoint("10.244.0.5", pod="second")], [slice_port(80)],
                       name="web-b")
    got = endpoints_from_slices([b, a])[spn()]
    assert [e.address for e in got] == ["10.244.0.5:80", "10.244.10.3:80", "10.244.2.7:80"]
    assert got[0].target == "first"  # first slice by name wins a duplicate...
    assert got[2].target == "ready" and got[2].ready  # ...unless only the later is ready


# --- the trackers and the builder --------------------------------------------------------

WEB = service("web", [port(80, 8080, name="http")])
WEB_SLICE = endpoint_slice("web", [endpoint("10.244.0.5")], [slice_port(8080, "http")],
                           name="web-1")
HTTP = spn(port_name="http")


def bumped(obj: Obj, rv: str = "2") -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"]["resourceVersion"] = rv
    return out


def loaded() -> ProxyStateBuilder:
    b = ProxyStateBuilder("node-a", ("10.244.0.1",))
    b.services.add(WEB)
    b.slices.add(WEB_SLICE)
    assert b.apply() == {HTTP}
    return b


def test_add_then_nothing_pending() -> None:
    b = loaded()
    assert not b.has_pending()
    assert b.apply() == set()
    st = b.snapshot()
    assert (st.node_name, st.node_ips) == ("node-a", ("10.244.0.1",))
    assert st.services[HTTP].port == 80
    assert [e.address for e in st.endpoints[HTTP]] == ["10.244.0.5:8080"]


def test_noop_updates_are_no_change() -> None:
    b = loaded()
    b.services.update(WEB, bumped(WEB))
    b.slices.update(WEB_SLICE, bumped(WEB_SLICE))
    assert b.has_pending()
    assert b.apply() == set()


def test_update_then_revert_before_sync_is_no_change() -> None:
    b = loaded()
    changed = with_spec(WEB, ports=[port(81, 8080, name="http")])
    b.services.update(WEB, changed)
    b.services.update(changed, bumped(WEB, "3"))
    assert b.apply() == set()


def test_service_change_and_delete() -> None:
    b = loaded()
    b.services.update(WEB, with_spec(WEB, ports=[port(81, 8080, name="http"),
                                                 port(90, name="extra")]))
    assert b.apply() == {HTTP, spn(port_name="extra")}
    assert b.snapshot().services[HTTP].port == 81
    b.services.delete(WEB)
    assert b.apply() == {HTTP, spn(port_name="extra")}
    st = b.snapshot()
    assert st.services == {}
    assert HTTP in st.endpoints  # endpoints stay while their slice exists


def test_endpoint_change_and_slice_delete() -> None:
    b = loaded()
    not_ready = endpoint_slice("web", [endpoint("10.244.0.5", ready=False)],
                               [slice_port(8080, "http")], name="web-1")
    b.slices.update(WEB_SLICE, not_ready)
    assert b.apply() == {HTTP}
    assert not b.snapshot().endpoints[HTTP][0].ready
    b.slices.delete(not_ready)
    assert b.apply() == {HTTP}
    assert HTTP not in b.snapshot().endpoints


def test_second_slice_merges_and_leaves() -> None:
    b = loaded()
    other = endpoint_slice("web", [endpoint("10.244.0.6")], [slice_port(8080, "http")],
                           name="web-2")
    b.slices.add(other)
    assert b.apply() == {HTTP}
    assert len(b.snapshot().endpoints[HTTP]) == 2
    b.slices.delete(other)
    assert b.apply() == {HTTP}
    assert [e.ip for e in b.snapshot().endpoints[HTTP]] == ["10.244.0.5"]


def test_slice_moves_between_services() -> None:
    b = loaded()
    api = service("api", [port(80, 8080, name="http")], cluster_ip="10.96.0.11")
    b.services.add(api)
    b.apply()
    moved = copy.deepcopy(WEB_SLICE)
    moved["metadata"]["labels"]["kubernetes.io/service-name"] = "api"
    b.slices.update(WEB_SLICE, moved)
    api_http = spn("api", "http")
    assert b.apply() == {HTTP, api_http}
    st = b.snapshot()
    assert HTTP not in st.endpoints
    assert [e.ip for e in st.endpoints[api_http]] == ["10.244.0.5"]


def test_slice_losing_its_label_is_removed() -> None:
    b = loaded()
    orphan = copy.deepcopy(WEB_SLICE)
    del orphan["metadata"]["labels"]["kubernetes.io/service-name"]
    b.slices.update(WEB_SLICE, orphan)
    assert b.apply() == {HTTP}
    assert HTTP not in b.snapshot().endpoints


def test_bad_annotation_does_not_break_the_service() -> None:
    b = loaded()
    bad = copy.deepcopy(WEB)
    bad["metadata"]["annotations"] = {WEIGHTS_ANNOTATION: "=,=", SCHEDULER_ANNOTATION: "sh"}
    b.services.update(WEB, bad)
    assert b.apply() == {HTTP}
    info = b.snapshot().services[HTTP]
    assert (info.scheduler, info.weights, info.port) == ("sh", (), 80)


def test_snapshot_is_not_changed_by_later_applies() -> None:
    b = loaded()
    before = b.snapshot()
    b.services.delete(WEB)
    b.slices.delete(WEB_SLICE)
    b.apply()
    assert HTTP in before.services and HTTP in before.endpoints


def test_build_state() -> None:
    st = build_state([WEB], [WEB_SLICE], "node-a")
    assert list(st.services) == [HTTP] and st.node_name == "node-a"
