"""Small builders of Pod / Service / EndpointSlice dicts for the endpoint controller tests."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def pod(name: str, ip: str | None = "10.244.0.1", ready: bool = True, *,
        labels: dict[str, str] | None = None, ns: str = "default", node: str = "",
        ports: list[tuple[str, int]] | None = None, hostname: str = "",
        subdomain: str = "", phase: str = "Running", deleting: bool = False,
        ips: list[str] | None = None, ready_since: str = "") -> Obj:
    """A pod with IP ``ip`` (None: no IP yet) and a Ready condition."""
    spec: Obj = {"containers": [{"name": "c", "image": "x", "ports": [
        {"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports or []]}]}
    if node:
        spec["nodeName"] = node
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    status: Obj = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False",
         **({"lastTransitionTime": ready_since} if ready_since else {})}]}
    all_ips = ips if ips is not None else ([ip] if ip else [])
    if all_ips:
        status["podIP"] = all_ips[0]
        status["podIPs"] = [{"ip": i} for i in all_ips]
    meta: Obj = {"name": name, "namespace": ns, "uid": f"uid-{name}",
                 "labels": labels if labels is not None else {"app": "web"},
                 "resourceVersion": "1"}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta, "spec": spec, "status": status}


def service(name: str = "web", *, selector: dict[str, str] | None = None,
            ports: list[Obj] | None = None, cluster_ip: str = "10.96.0.20",
            publish_not_ready: bool = False, labels: dict[str, str] | None = None,
            ns: str = "default", no_selector: bool = False, type_: str = "ClusterIP",
            families: list[str] | None = None) -> Obj:
    spec: Obj = {"type": type_, "clusterIP": cluster_ip,
                 "ports": ports if ports is not None else
                 [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    if not no_selector:
        spec["selector"] = selector if selector is not None else {"app": "web"}
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    spec["ipFamilies"] = families if families is not None else ["IPv4"]
    meta: Obj = {"name": name, "namespace": ns, "uid": f"uid-svc-{name}",
                 "creationTimestamp": "2024-01-01T00:00:00Z"}
    if labels:
        meta["labels"] = labels
    return {"metadata": meta, "spec": spec}


def addr(pod_name: str, ip: str, node: str = "", hostname: str = "") -> Obj:
    """The EndpointAddress the Endpoints controller writes for a builder pod."""
    a: Obj = {"ip": ip}
    if hostname:
        a["hostname"] = hostname
    if node:
        a["nodeName"] = node
    a["targetRef"] = {"kind": "Pod", "namespace": "default", "name": pod_name,
                      "uid": f"uid-{pod_name}"}
    return a
