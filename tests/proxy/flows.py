"""The packet-flow table every proxy dataplane is checked against.

Each :class:`FlowCase` is a cluster (API-shaped Service and EndpointSlice dicts, as the API
server returns them: ClusterIPs in 10.96.0.0/12, nodePorts in 30000-32767 and load-balancer
status already set) plus one new connection ``src`` → ``dst:port``; ``expect`` is the set
of backends (``ip:port``) the connection may reach, or ``"REJECT"`` (refused: no usable
endpoint), ``"DROP"`` (silently dropped: a ``Local`` policy without a local endpoint, or a
source outside ``loadBalancerSourceRanges``) or ``"NONE"`` (not a service frontend).

The proxy runs on :data:`NODE` whose address is :data:`NODE_IPS`. Endpoints on NODE live
in 10.244.0.0/24 (fd00:10:244::/64 for IPv6); endpoints on :data:`OTHER_NODE` in
10.244.1.0/24. Real-dataplane tests can only reach endpoints on NODE, so OTHER_NODE
endpoints appear only where the expected result excludes them (Local policies, node
hints) — never inside an ``expect`` set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NODE = "node-a"
OTHER_NODE = "node-b"
NODE_IPS = ("10.244.0.1",)  # node address inside the node network namespace
NAMESPACE = "default"

POD_CLIENT = "10.244.0.100"  # a client pod on NODE
POD_CLIENT_V6 = "fd00:10:244::100"
HOST_CLIENT = "127.0.0.5"  # a host process on NODE with an explicit source address
LOCALHOST = "127.0.0.1"

REJECT = "REJECT"
DROP = "DROP"
NONE = "NONE"

Obj = dict[str, Any]


@dataclass(frozen=True)
class FlowCase:
    name: str
    services: tuple[Obj, ...]
    slices: tuple[Obj, ...]
    src: str
    dst: str
    port: int
    protocol: str = "TCP"
    expect: frozenset[str] | str = REJECT


# --- builders ----------------------------------------------------------------------------

def port(port: int, target: int | str | None = None, name: str = "", protocol: str = "TCP",
         node_port: int = 0) -> Obj:
    """One ``spec.ports[]`` entry (``targetPort`` defaults to ``port``)."""
    p: Obj = {"port": port, "protocol": protocol,
              "targetPort": target if target is not None else port}
    if name:
        p["name"] = name
    if node_port:
        p["nodePort"] = node_port
    return p


def service(name: str, ports: Sequence[Obj], *, cluster_ip: str = "10.96.0.10",
            cluster_ips: Sequence[str] | None = None, type: str = "ClusterIP",
            external_ips: Sequence[str] = (), lb_ips: Sequence[str] = (),
            source_ranges: Sequence[str] = (), internal_local: bool = False,
            external_local: bool = False, affinity_timeout: int = 0,
            annotations: dict[str, str] | None = None, namespace: str = NAMESPACE) -> Obj:
    """A Service as the API server returns it (defaults and allocations filled in)."""
    ips = list(cluster_ips) if cluster_ips else [cluster_ip]
    spec: Obj = {
        "type": type, "clusterIP": ips[0], "clusterIPs": ips,
        "ipFamilies": ["IPv6" if ":" in ip else "IPv4" for ip in ips],
        "ipFamilyPolicy": "RequireDualStack" if len(ips) > 1 else "SingleStack",
        "ports": list(ports), "sessionAffinity": "None",
        "internalTrafficPolicy": "Local" if internal_local else "Cluster",
    }
    if type in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = "Local" if external_local else "Cluster"
    if external_ips:
        spec["externalIPs"] = list(external_ips)
    if source_ranges:
        spec["loadBalancerSourceRanges"] = list(source_ranges)
    if affinity_timeout:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity_timeout}}
    status: Obj = {"loadBalancer": {}}
    if lb_ips:
        status["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in lb_ips]}
    meta: Obj = {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                 "resourceVersion": "1"}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec,
            "status": status}


def endpoint(ip: str, node: str = NODE, *, ready: bool | None = True,
             serving: bool | None = None, terminating: bool | None = None,
             pod: str | None = None, zone: str = "",
             node_hints: Sequence[str] = (), zone_hints: Sequence[str] = ()) -> Obj:
    """One ``endpoints[]`` entry; ``None`` conditions are left out (the API's nil)."""
    cond: Obj = {}
    for key, value in (("ready", ready), ("serving", serving), ("terminating", terminating)):
        if value is not None:
            cond[key] = value
    e: Obj = {"addresses": [ip], "conditions": cond, "nodeName": node,
              "targetRef": {"kind": "Pod", "namespace": NAMESPACE,
                            "name": pod or "pod-" + ip.replace(".", "-").replace(":", "-")}}
    if zone:
        e["zone"] = zone
    hints: Obj = {}
    if node_hints:
        hints["forNodes"] = [{"name": n} for n in node_hints]
    if zone_hints:
        hints["forZones"] = [{"name": z} for z in zone_hints]
    if hints:
        e["hints"] = hints
    return e


def slice_port(port: int, name: str = "", protocol: str = "TCP") -> Obj:
    return {"name": name, "port": port, "protocol": protocol}


def endpoint_slice(service_name: str, endpoints: Sequence[Obj], ports: Sequence[Obj], *,
                   name: str | None = None, address_type: str = "IPv4",
                   namespace: str = NAMESPACE) -> Obj:
    """An EndpointSlice of ``service_name`` (labelled ``kubernetes.io/service-name``)."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name or f"{service_name}-{address_type.lower()}",
                     "namespace": namespace, "resourceVersion": "1",
                     "labels": {"kubernetes.io/service-name": service_name,
                                "endpointslice.kubernetes.io/managed-by": "flows"}},
        "addressType": address_type, "endpoints": list(endpoints), "ports": list(ports),
    }


def backends(*addresses: str) -> frozenset[str]:
    return frozenset(addresses)


# --- a few reusable clusters -------------------------------------------------------------

WEB = service("web", [port(80, 8080, name="http")])
WEB_PORTS = [slice_port(8080, "http")]


def web_slice(*eps: Obj, name: str | None = None) -> Obj:
    return endpoint_slice("web", eps, WEB_PORTS, name=name)


MULTI = service("multi", [port(80, 8080, name="http"), port(9090, 9100, name="metrics")],
                cluster_ip="10.96.0.20")
MULTI_SLICE = endpoint_slice("multi", [endpoint("10.244.0.5"), endpoint("10.244.0.6")],
                             [slice_port(8080, "http"), slice_port(9100, "metrics")])

DNS = service("dns", [port(53, 5353, name="dns", protocol="UDP"),
                      port(53, 5353, name="dns-tcp", protocol="TCP")],
              cluster_ip="10.96.0.53")
DNS_SLICE = endpoint_slice("dns", [endpoint("10.244.0.9")],
                           [slice_port(5353, "dns", "UDP"), slice_port(5353, "dns-tcp", "TCP")])

NODEPORT = service("np", [port(80, 8080, node_port=30080)], cluster_ip="10.96.0.30",
                   type="NodePort")
NODEPORT_LOCAL = service("np", [port(80, 8080, node_port=30080)], cluster_ip="10.96.0.30",
                         type="NodePort", external_local=True)
NP_SLICE = endpoint_slice("np", [endpoint("10.244.0.5")], [slice_port(8080)])
NP_MIXED_SLICE = endpoint_slice("np", [endpoint("10.244.0.5"),
                                       endpoint("10.244.1.5", OTHER_NODE)],
                                [slice_port(8080)])
NP_REMOTE_SLICE = endpoint_slice("np", [endpoint("10.244.1.5", OTHER_NODE)], [slice_port(8080)])

LB_IP = "127.241.0.10"


def lb(source_ranges: Sequence[str] = ()) -> Obj:
    return service("lb", [port(80, 8080, node_port=30081)], cluster_ip="10.96.0.40",
                   type="LoadBalancer", lb_ips=[LB_IP], source_ranges=source_ranges)


LB_SLICE = endpoint_slice("lb", [endpoint("10.244.0.7")], [slice_port(8080)])

EXTERNAL_IP = "127.242.0.20"
EXT = service("ext", [port(8000, 8080)], cluster_ip="10.96.0.50", external_ips=[EXTERNAL_IP])
EXT_SLICE = endpoint_slice("ext", [endpoint("10.244.0.8")], [slice_port(8080)])

ITP = service("itp", [port(80, 8080)], cluster_ip="10.96.0.60", internal_local=True)

DUAL = service("dual", [port(80, 8080)], cluster_ips=["10.96.0.70", "fd00:10:96::70"])
DUAL_SLICES = (endpoint_slice("dual", [endpoint("10.244.0.11")], [slice_port(8080)]),
               endpoint_slice("dual", [endpoint("fd00:10:244::11")], [slice_port(8080)],
                              address_type="IPv6"))


# --- the table ---------------------------------------------------------------------------

CASES: tuple[FlowCase, ...] = (
    # ClusterIP basics
    FlowCase("clusterip-single-endpoint", (WEB,), (web_slice(endpoint("10.244.0.5")),),
             POD_CLIENT, "10.96.0.10", 80, expect=backends("10.244.0.5:8080")),
    FlowCase("clusterip-multiple-endpoints", (WEB,),
             (web_slice(endpoint("10.244.0.5"), endpoint("10.244.0.6"),
                        endpoint("10.244.0.7")),),
             POD_CLIENT, "10.96.0.10", 80,
             expect=backends("10.244.0.5:8080", "10.244.0.6:8080", "10.244.0.7:8080")),
    FlowCase("clusterip-slices-merged", (WEB,),
             (web_slice(endpoint("10.244.0.5"), name="web-a"),
              web_slice(endpoint("10.244.0.6"), name="web-b")),
             POD_CLIENT, "10.96.0.10", 80,
             expect=backends("10.244.0.5:8080", "10.244.0.6:8080")),
    FlowCase("clusterip-from-host", (WEB,), (web_slice(endpoint("10.244.0.5")),),
             HOST_CLIENT, "10.96.0.10", 80, expect=backends("10.244.0.5:8080")),
    FlowCase("clusterip-session-affinity",
             (service("web", [port(80, 8080, name="http")], affinity_timeout=60),),
             (web_slice(endpoint("10.244.0.5"), endpoint("10.244.0.6")),),
             POD_CLIENT, "10.96.0.10", 80,
             expect=backends("10.244.0.5:8080", "10.244.0.6:8080")),
    FlowCase("clusterip-unnamed-port", (service("plain", [port(8000, 8080)]),),
             (endpoint_slice("plain", [endpoint("10.244.0.5")], [slice_port(8080)]),),
             POD_CLIENT, "10.96.0.10", 8000, expect=backends("10.244.0.5:8080")),
    # readiness and termination
    FlowCase("not-ready-excluded", (WEB,),
             (web_slice(endpoint("10.244.0.5"), endpoint("10.244.0.6", ready=False,
                                                         serving=False)),),
             POD_CLIENT, "10.96.0.10", 80, expect=backends("10.244.0.5:8080")),
    FlowCase("all-not-ready-rejects", (WEB,),
             (web_slice(endpoint("10.244.0.5", ready=False, serving=False)),),
             POD_CLIENT, "10.96.0.10", 80, expect=REJECT),
    FlowCase("serving-terminating-fallback", (WEB,),
             (web_slice(endpoint("10.244.0.5", ready=False, serving=True, terminating=True),
                        endpoint("10.244.0.6", ready=False, serving=False,
                                 terminating=True),
                        endpoint("10.244.0.7", ready=False, serving=False)),),
             POD_CLIENT, "10.96.0.10", 80, expect=backends("10.244.0.5:8080")),
    FlowCase("terminating-ignored-while-ready-exist", (WEB,),
             (web_slice(endpoint("10.244.0.5"),
                        endpoint("10.244.0.6", ready=False, serving=True, terminating=True)),),
             POD_CLIENT, "10.96.0.10", 80, expect=backends("10.244.0.5:8080")),
    FlowCase("terminating-not-serving-rejects", (WEB,),
             (web_slice(endpoint("10.244.0.5", ready=False, serving=False,
                                 terminating=True)),),
             POD_CLIENT, "10.96.0.10", 80, expect=REJECT),
    FlowCase("no-endpoint-slice-rejects", (WEB,), (), POD_CLIENT, "10.96.0.10", 80,
             expect=REJECT),
    FlowCase("empty-endpoint-slice-rejects", (WEB,), (web_slice(),), POD_CLIENT,
             "10.96.0.10", 80, expect=REJECT),
    FlowCase("slice-port-name-mismatch-rejects", (WEB,),
             (endpoint_slice("web", [endpoint("10.244.0.5")], [slice_port(8080, "web")]),),
             POD_CLIENT, "10.96.0.10", 80, expect=REJECT),
    # ports and protocols
    FlowCase("multi-port-http", (MULTI,), (MULTI_SLICE,), POD_CLIENT, "10.96.0.20", 80,
             expect=backends("10.244.0.5:8080", "10.244.0.6:8080")),
    FlowCase("multi-port-metrics", (MULTI,), (MULTI_SLICE,), POD_CLIENT, "10.96.0.20", 9090,
             expect=backends("10.244.0.5:9100", "10.244.0.6:9100")),
    FlowCase("clusterip-unknown-port-none", (MULTI,), (MULTI_SLICE,), POD_CLIENT,
             "10.96.0.20", 8080, expect=NONE),
    FlowCase("not-a-service-address-none", (WEB,), (web_slice(endpoint("10.244.0.5")),),
             POD_CLIENT, "10.96.0.99", 80, expect=NONE),
    FlowCase("udp-port", (DNS,), (DNS_SLICE,), POD_CLIENT, "10.96.0.53", 53, "UDP",
             expect=backends("10.244.0.9:5353")),
    FlowCase("tcp-port-same-number", (DNS,), (DNS_SLICE,), POD_CLIENT, "10.96.0.53", 53,
             "TCP", expect=backends("10.244.0.9:5353")),
    FlowCase("udp-to-tcp-only-port-none", (WEB,), (web_slice(endpoint("10.244.0.5")),),
             POD_CLIENT, "10.96.0.10", 80, "UDP", expect=NONE),
    FlowCase("headless-not-proxied",
             (service("headless", [port(80, 8080)], cluster_ip="None"),),
             (endpoint_slice("headless", [endpoint("10.244.0.5")], [slice_port(8080)]),),
             POD_CLIENT, "10.244.0.5", 80, expect=NONE),
    # NodePort
    FlowCase("nodeport-on-node-ip", (NODEPORT,), (NP_SLICE,), POD_CLIENT, NODE_IPS[0], 30080,
             expect=backends("10.244.0.5:8080")),
    FlowCase("nodeport-on-localhost", (NODEPORT,), (NP_SLICE,), LOCALHOST, LOCALHOST, 30080,
             expect=backends("10.244.0.5:8080")),
    FlowCase("nodeport-clusterip-still-works", (NODEPORT,), (NP_SLICE,), POD_CLIENT,
             "10.96.0.30", 80, expect=backends("10.244.0.5:8080")),
    FlowCase("nodeport-without-endpoints-rejects", (NODEPORT,), (), POD_CLIENT, NODE_IPS[0],
             30080, expect=REJECT),
    FlowCase("nodeport-wrong-port-none", (NODEPORT,), (NP_SLICE,), POD_CLIENT, NODE_IPS[0],
             30099, expect=NONE),
    FlowCase("nodeport-external-local-uses-local", (NODEPORT_LOCAL,), (NP_MIXED_SLICE,),
             POD_CLIENT, NODE_IPS[0], 30080, expect=backends("10.244.0.5:8080")),
    FlowCase("nodeport-external-local-no-local-drops", (NODEPORT_LOCAL,), (NP_REMOTE_SLICE,),
             POD_CLIENT, NODE_IPS[0], 30080, expect=DROP),
    # LoadBalancer
    FlowCase("loadbalancer-ip", (lb(),), (LB_SLICE,), HOST_CLIENT, LB_IP, 80,
             expect=backends("10.244.0.7:8080")),
    FlowCase("loadbalancer-source-range-allows", (lb(["127.0.0.0/24"]),), (LB_SLICE,),
             HOST_CLIENT, LB_IP, 80, expect=backends("10.244.0.7:8080")),
    FlowCase("loadbalancer-source-range-drops", (lb(["192.0.2.0/24"]),), (LB_SLICE,),
             HOST_CLIENT, LB_IP, 80, expect=DROP),
    FlowCase("loadbalancer-source-range-not-on-clusterip", (lb(["192.0.2.0/24"]),),
             (LB_SLICE,), HOST_CLIENT, "10.96.0.40", 80, expect=backends("10.244.0.7:8080")),
    FlowCase("loadbalancer-nodeport", (lb(),), (LB_SLICE,), LOCALHOST, LOCALHOST, 30081,
             expect=backends("10.244.0.7:8080")),
    # externalIPs
    FlowCase("external-ip", (EXT,), (EXT_SLICE,), HOST_CLIENT, EXTERNAL_IP, 8000,
             expect=backends("10.244.0.8:8080")),
    FlowCase("external-ip-other-port-none", (EXT,), (EXT_SLICE,), HOST_CLIENT, EXTERNAL_IP,
             80, expect=NONE),
    # internalTrafficPolicy: Local
    FlowCase("internal-local-uses-local", (ITP,),
             (endpoint_slice("itp", [endpoint("10.244.0.5"), endpoint("10.244.1.5",
                                                                      OTHER_NODE)],
                             [slice_port(8080)]),),
             POD_CLIENT, "10.96.0.60", 80, expect=backends("10.244.0.5:8080")),
    FlowCase("internal-local-only-remote-drops", (ITP,),
             (endpoint_slice("itp", [endpoint("10.244.1.5", OTHER_NODE)], [slice_port(8080)]),),
             POD_CLIENT, "10.96.0.60", 80, expect=DROP),
    FlowCase("internal-local-no-endpoints-rejects", (ITP,), (), POD_CLIENT, "10.96.0.60", 80,
             expect=REJECT),
    FlowCase("internal-local-terminating-fallback", (ITP,),
             (endpoint_slice("itp", [endpoint("10.244.0.5", ready=False, serving=True,
                                              terminating=True),
                                     endpoint("10.244.1.5", OTHER_NODE)],
                             [slice_port(8080)]),),
             POD_CLIENT, "10.96.0.60", 80, expect=backends("10.244.0.5:8080")),
    # topology: node hints
    FlowCase("node-hints-prefer-this-node", (WEB,),
             (web_slice(endpoint("10.244.0.5", node_hints=[NODE]),
                        endpoint("10.244.1.5", OTHER_NODE, node_hints=[OTHER_NODE])),),
             POD_CLIENT, "10.96.0.10", 80, expect=backends("10.244.0.5:8080")),
    # dual stack
    FlowCase("dual-stack-ipv4-clusterip", (DUAL,), DUAL_SLICES, POD_CLIENT, "10.96.0.70", 80,
             expect=backends("10.244.0.11:8080")),
    FlowCase("dual-stack-ipv6-clusterip", (DUAL,), DUAL_SLICES, POD_CLIENT_V6,
             "fd00:10:96::70", 80, expect=backends("[fd00:10:244::11]:8080")),
)

CASE_NAMES = tuple(c.name for c in CASES)
assert len(set(CASE_NAMES)) == len(CASE_NAMES), "flow case names must be unique"


def case(name: str) -> FlowCase:
    """The case called ``name`` (KeyError otherwise)."""
    for c in CASES:
        if c.name == name:
            return c
    raise KeyError(name)
