"""Server-side defaulting of API objects, as the Kubernetes API server applies it.

Objects are plain JSON dicts. :func:`apply_defaults` returns a defaulted deep copy and never
mutates its argument. The rules follow the ``SetDefaults_*`` functions (and declarative
``+default`` markers) of ``k8s.io/kubernetes/pkg/apis/{core,apps,discovery,networking}/v1``
plus the few values the real API server always shows on objects it returns (``resources: {}``
on containers, a pod's initial ``status``, a namespace's ``kubernetes`` finalizer).

Deliberately *not* done here, because upstream does it elsewhere:

- ClusterIP allocation and ``ipFamilies`` / ``ipFamilyPolicy`` (the service REST storage does
  that while allocating; see :func:`default_ip_families` and :func:`normalize_cluster_ips`);
- admission-plugin defaults (``serviceAccountName``, default tolerations, priority);
- metadata the registry stamps (``uid``, ``creationTimestamp``, ``resourceVersion``).

Input may carry ``"creationTimestamp": null``, ``"status": {}`` or ``null`` where an object is
expected (kubectl sends those); such values are treated as absent.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

Obj = dict[str, Any]

DEFAULT_CLIENT_IP_TIMEOUT_SECONDS = 10800
DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS = 30
DEFAULT_SCHEDULER_NAME = "default-scheduler"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
VOLUME_DEFAULT_MODE = 420  # 0644
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
NAMESPACE_FINALIZER = "kubernetes"

_VOLUME_SOURCES_WITH_MODE = ("secret", "configMap", "downwardAPI", "projected")
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


# --- small helpers ----------------------------------------------------------------------


def _child(parent: Obj, key: str) -> Obj:
    """``parent[key]`` as a dict, replacing a missing or non-dict value with ``{}``."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def _dicts(value: Any) -> list[Obj]:
    """The dict elements of a JSON list (anything else gives ``[]``)."""
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


def _as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _set_if_empty(obj: Obj, key: str, value: Any) -> None:
    """Set ``obj[key]`` when it is absent, null or the empty string (Go zero-value)."""
    if obj.get(key) in (None, ""):
        obj[key] = value


def image_tag(image: str) -> str:
    """The tag of an image reference as ``parsers.ParseImageName`` reports it.

    ``latest`` for an untagged, undigested reference; ``""`` for a digest-only or an empty
    one (which the parser rejects).
    """
    if not image:
        return ""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return "" if digest else "latest"


# --- pods and pod templates -------------------------------------------------------------


def _default_http_get(action: Any) -> None:
    if isinstance(action, dict):
        _set_if_empty(action, "path", "/")
        _set_if_empty(action, "scheme", "HTTP")


def _default_handler(handler: Any) -> None:
    """Defaults inside a probe or lifecycle handler (httpGet path/scheme, grpc service)."""
    if not isinstance(handler, dict):
        return
    _default_http_get(handler.get("httpGet"))
    grpc = handler.get("grpc")
    if isinstance(grpc, dict) and grpc.get("service") is None:
        grpc["service"] = ""


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10),
                       ("successThreshold", 1), ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = value
    _default_handler(probe)


def _default_env(env: Any) -> None:
    for var in _dicts(env):
        source = var.get("valueFrom")
        if isinstance(source, dict) and isinstance(source.get("fieldRef"), dict):
            _set_if_empty(source["fieldRef"], "apiVersion", "v1")


def _default_container(c: Obj) -> None:
    """``SetDefaults_Container`` plus the per-field defaults inside a container."""
    if not c.get("imagePullPolicy"):
        tag = image_tag(str(c.get("image") or ""))
        c["imagePullPolicy"] = "Always" if tag == "latest" else "IfNotPresent"
    _set_if_empty(c, "terminationMessagePath", TERMINATION_MESSAGE_PATH)
    _set_if_empty(c, "terminationMessagePolicy", "File")
    if not isinstance(c.get("resources"), dict):
        c["resources"] = {}
    for port in _dicts(c.get("ports")):
        _set_if_empty(port, "protocol", "TCP")
    for probe in _PROBES:
        _default_probe(c.get(probe))
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        _default_handler(lifecycle.get("postStart"))
        _default_handler(lifecycle.get("preStop"))
    _default_env(c.get("env"))


def _default_volume(v: Obj) -> None:
    sources = [k for k in v if k != "name" and v.get(k) is not None]
    if not sources:
        v["emptyDir"] = {}
    for key in _VOLUME_SOURCES_WITH_MODE:
        src = v.get(key)
        if isinstance(src, dict) and src.get("defaultMode") is None:
            src["defaultMode"] = VOLUME_DEFAULT_MODE
    host_path = v.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""


def default_pod_spec(spec: Obj) -> None:
    """``SetDefaults_PodSpec`` and everything nested in a pod spec, in place.

    Applies to pods and to pod templates (Deployment, ReplicaSet) alike.
    """
    _set_if_empty(spec, "dnsPolicy", "ClusterFirst")
    _set_if_empty(spec, "restartPolicy", "Always")
    if not isinstance(spec.get("securityContext"), dict):
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS
    _set_if_empty(spec, "schedulerName", DEFAULT_SCHEDULER_NAME)
    for key in _CONTAINER_LISTS:
        for c in _dicts(spec.get(key)):
            _default_container(c)
    for v in _dicts(spec.get("volumes")):
        _default_volume(v)


def _requests_from_limits(c: Obj) -> None:
    resources = c.get("resources")
    if not isinstance(resources, dict) or not isinstance(resources.get("limits"), dict):
        return
    requests = _child(resources, "requests")
    for name, qty in resources["limits"].items():
        requests.setdefault(name, qty)


def _host_network_ports(c: Obj) -> None:
    for port in _dicts(c.get("ports")):
        if not port.get("hostPort"):
            port["hostPort"] = port.get("containerPort")


def pod_qos_class(pod: Mapping[str, Any]) -> str:
    """``BestEffort``, ``Burstable`` or ``Guaranteed`` per ``qos.GetPodQOS`` (cpu/memory).

    Quantities are compared as written (after requests default to limits), so ``1`` and
    ``1000m`` count as different.
    """
    spec = _as_map(pod.get("spec"))
    containers = _dicts(spec.get("containers")) + _dicts(spec.get("initContainers"))
    requests: dict[str, list[Any]] = {}
    limits: dict[str, list[Any]] = {}
    guaranteed = True
    for c in containers:
        res = _as_map(c.get("resources"))
        req = {k: v for k, v in _as_map(res.get("requests")).items() if k in ("cpu", "memory")}
        lim = {k: v for k, v in _as_map(res.get("limits")).items() if k in ("cpu", "memory")}
        for k, v in req.items():
            requests.setdefault(k, []).append(v)
        for k, v in lim.items():
            limits.setdefault(k, []).append(v)
        if set(lim) != {"cpu", "memory"} or any(req.get(k, lim[k]) != lim[k] for k in lim):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _default_pod(pod: Obj) -> None:
    spec = _child(pod, "spec")
    for key in ("containers", "initContainers"):
        for c in _dicts(spec.get(key)):
            _requests_from_limits(c)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for c in _dicts(spec.get(key)):
                _host_network_ports(c)
    default_pod_spec(spec)
    status = _child(pod, "status")
    if not status.get("phase"):
        status["phase"] = "Pending"
    if not status.get("qosClass"):
        status["qosClass"] = pod_qos_class(pod)


def _default_template(owner: Obj) -> None:
    """Pod-spec defaults inside ``spec.template`` (created when absent, as Go's non-pointer
    template struct always exists)."""
    template = _child(_child(owner, "spec"), "template")
    default_pod_spec(_child(template, "spec"))


# --- workloads ----------------------------------------------------------------------------


def _default_deployment(d: Obj) -> None:
    spec = _child(d, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _child(spec, "strategy")
    _set_if_empty(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _child(strategy, "rollingUpdate")
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = "25%"
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _default_template(d)


def _default_replica_set(rs: Obj) -> None:
    spec = _child(rs, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _default_template(rs)


# --- services -----------------------------------------------------------------------------


def externally_accessible(spec: Mapping[str, Any]) -> bool:
    """LoadBalancer, NodePort, or ClusterIP with external IPs (``service.ExternallyAccessible``)."""
    kind = spec.get("type")
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs")))


def _default_service_affinity(spec: Obj) -> None:
    _set_if_empty(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        cfg = spec.get("sessionAffinityConfig")
        client_ip = cfg.get("clientIP") if isinstance(cfg, dict) else None
        if not isinstance(client_ip, dict) or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {
                "clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_TIMEOUT_SECONDS}}


def _default_service(svc: Obj) -> None:
    spec = _child(svc, "spec")
    _default_service_affinity(spec)
    _set_if_empty(spec, "type", "ClusterIP")
    for port in _dicts(spec.get("ports")):
        _set_if_empty(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    if externally_accessible(spec):
        _set_if_empty(spec, "externalTrafficPolicy", "Cluster")
    if spec.get("internalTrafficPolicy") is None and \
            spec["type"] in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec["internalTrafficPolicy"] = "Cluster"
    if spec["type"] == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        status = svc.get("status")
        lb = status.get("loadBalancer") if isinstance(status, dict) else None
        for ing in _dicts(lb.get("ingress") if isinstance(lb, dict) else None):
            if ing.get("ip") and ing.get("ipMode") is None:
                ing["ipMode"] = "VIP"


def normalize_cluster_ips(svc: Obj, old: Mapping[str, Any] | None = None) -> None:
    """Keep ``spec.clusterIP`` and ``spec.clusterIPs`` in step, in place, as the service
    storage's ``normalizeClusterIPs`` does before validation.

    On create (``old`` None) a lone ``clusterIP`` seeds ``clusterIPs``. On update a client
    that sent only the singular field (or cleared both) gets the plural one fixed up from
    ``old``; anything contradictory is left for validation to report.
    """
    spec = _child(svc, "spec")
    ip, ips = spec.get("clusterIP") or "", list(spec.get("clusterIPs") or [])
    if old is None:
        if ip and not ips:
            spec["clusterIPs"] = [ip]
        return
    old_spec = _as_map(old.get("spec"))
    old_ip, old_ips = old_spec.get("clusterIP") or "", list(old_spec.get("clusterIPs") or [])
    if old_ips and not ips and old_ip == ip:
        ips = old_ips
        spec["clusterIPs"] = list(old_ips)
    if old_ip != ip:
        same = ips == old_ips
        if old_ip and not ip:
            if same:
                spec.pop("clusterIPs", None)
        elif same:
            spec["clusterIPs"] = [ip]


def _ip_family(ip: str) -> str | None:
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except ValueError:
        return None


def default_ip_families(svc: Obj, cluster_families: tuple[str, ...] = ("IPv4",)) -> None:
    """Set ``ipFamilyPolicy`` and ``ipFamilies`` in place, as the service IP allocator does.

    ``cluster_families`` lists the cluster's service families, primary first.
    ExternalName services lose both fields. A headless service without a selector gets
    ``RequireDualStack`` and both families (even on a single-stack cluster, like
    upstream). Otherwise the policy defaults to ``SingleStack`` and the families come from
    the assigned cluster IPs, else the cluster's primary family (plus the secondary one for
    ``PreferDualStack``/``RequireDualStack`` when the cluster has it).
    """
    spec = _child(svc, "spec")
    if spec.get("type") == "ExternalName":
        spec.pop("ipFamilies", None)
        spec.pop("ipFamilyPolicy", None)
        return
    families = [f for f in spec.get("ipFamilies") or [] if isinstance(f, str)]
    if spec.get("clusterIP") == "None" and not spec.get("selector"):
        spec.setdefault("ipFamilyPolicy", "RequireDualStack")
        if not families:
            families = [cluster_families[0]]
        if len(families) < 2 and spec["ipFamilyPolicy"] != "SingleStack":
            families.append("IPv6" if families[0] == "IPv4" else "IPv4")
        spec["ipFamilies"] = families
        return
    if not spec.get("ipFamilyPolicy"):
        spec["ipFamilyPolicy"] = "SingleStack"
    for ip in spec.get("clusterIPs") or []:
        fam = _ip_family(str(ip))
        if fam and fam not in families:
            families.append(fam)
    if not families:
        families = [cluster_families[0]]
    if spec["ipFamilyPolicy"] != "SingleStack" and len(families) < 2:
        families += [f for f in cluster_families if f not in families][:1]
    spec["ipFamilies"] = families


# --- configuration kinds ------------------------------------------------------------------


def _default_secret(secret: Obj) -> None:
    _set_if_empty(secret, "type", "Opaque")
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = _child(secret, "data")
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")


def _default_namespace(ns: Obj) -> None:
    meta = _child(ns, "metadata")
    name = meta.get("name")
    if name:
        _child(meta, "labels")[NAMESPACE_NAME_LABEL] = name
    spec = _child(ns, "spec")
    if spec.get("finalizers") is None:
        spec["finalizers"] = [NAMESPACE_FINALIZER]
    _set_if_empty(_child(ns, "status"), "phase", "Active")


def _default_node(node: Obj) -> None:
    status = node.get("status")
    if isinstance(status, dict) and isinstance(status.get("capacity"), dict) and \
            status.get("allocatable") is None:
        status["allocatable"] = dict(status["capacity"])


# --- discovery and networking -----------------------------------------------------------


def _default_endpoints(ep: Obj) -> None:
    for subset in _dicts(ep.get("subsets")):
        for port in _dicts(subset.get("ports")):
            _set_if_empty(port, "protocol", "TCP")


def _default_endpoint_slice(slice_: Obj) -> None:
    for port in _dicts(slice_.get("ports")):
        if port.get("name") is None:
            port["name"] = ""
        if port.get("protocol") is None:
            port["protocol"] = "TCP"
    if slice_.get("endpoints") is None:
        slice_["endpoints"] = []


def _default_ingress_class(ic: Obj) -> None:
    params = _child(ic, "spec").get("parameters")
    if isinstance(params, dict) and params.get("scope") is None:
        params["scope"] = "Cluster"


def _default_event(ev: Obj) -> None:
    _child(ev, "involvedObject")


_DEFAULTERS: dict[str, Callable[[Obj], None]] = {
    "Pod": _default_pod,
    "Deployment": _default_deployment,
    "ReplicaSet": _default_replica_set,
    "Service": _default_service,
    "Secret": _default_secret,
    "Namespace": _default_namespace,
    "Node": _default_node,
    "Endpoints": _default_endpoints,
    "EndpointSlice": _default_endpoint_slice,
    "IngressClass": _default_ingress_class,
    "Event": _default_event,
}


def apply_defaults(kind: str, obj: Mapping[str, Any]) -> Obj:
    """A deep copy of ``obj`` (an object of ``kind``) with the API server's defaults set.

    Values already present are kept (defaulting only fills gaps), so applying it twice
    gives the same result. Kinds without defaults (ConfigMap, ServiceAccount, Ingress,
    Lease, …) come back as plain copies.
    """
    out: Obj = copy.deepcopy(dict(obj))
    defaulter = _DEFAULTERS.get(kind)
    if defaulter is not None:
        defaulter(out)
    return out
