"""Server-side defaulting: request bodies real kubectl sends → the fields the API server adds."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from svcnet.model.defaulting import (
    apply_defaults,
    default_ip_families,
    image_tag,
    normalize_cluster_ips,
    pod_qos_class,
)

# Bodies as kubectl sends them (reference §6): note "creationTimestamp": null, "status": {}.
KUBECTL_RUN_POD: dict[str, Any] = {
    "kind": "Pod", "apiVersion": "v1",
    "metadata": {"name": "p1", "creationTimestamp": None, "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "p1", "image": "nginx", "resources": {}}],
             "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
    "status": {},
}

KUBECTL_131_CREATE_DEPLOYMENT: dict[str, Any] = {
    "kind": "Deployment", "apiVersion": "apps/v1",
    "metadata": {"name": "web", "creationTimestamp": None, "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                                     "ports": [{"containerPort": 80}], "resources": {}}]},
        },
        "strategy": {},
    },
    "status": {},
}

KUBECTL_EXPOSE_SERVICE: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"creationTimestamp": None, "labels": {"app": "web"}, "name": "web-exp"},
    "spec": {"ports": [{"port": 8080, "protocol": "TCP", "targetPort": 80}],
             "selector": {"app": "web"}},
    "status": {"loadBalancer": {}},
}


def _at(obj: Any, path: str) -> Any:
    """Value at a dotted path with ``[i]`` indexes, e.g. ``spec.containers[0].image``."""
    cur = obj
    for part in path.replace("[", ".[").split("."):
        if part.startswith("["):
            cur = cur[int(part[1:-1])]
        else:
            cur = cur[part]
    return cur


def _absent(obj: Any, path: str) -> bool:
    try:
        _at(obj, path)
    except (KeyError, IndexError):
        return True
    return False


EXPECTED_FIELDS = [
    # kubectl run p1 --image=nginx --labels=app=web
    ("run-restart-policy", "Pod", KUBECTL_RUN_POD, "spec.restartPolicy", "Always"),
    ("run-dns-policy", "Pod", KUBECTL_RUN_POD, "spec.dnsPolicy", "ClusterFirst"),
    ("run-grace", "Pod", KUBECTL_RUN_POD, "spec.terminationGracePeriodSeconds", 30),
    ("run-scheduler", "Pod", KUBECTL_RUN_POD, "spec.schedulerName", "default-scheduler"),
    ("run-security-context", "Pod", KUBECTL_RUN_POD, "spec.securityContext", {}),
    ("run-service-links", "Pod", KUBECTL_RUN_POD, "spec.enableServiceLinks", True),
    ("run-pull-untagged", "Pod", KUBECTL_RUN_POD, "spec.containers[0].imagePullPolicy", "Always"),
    ("run-term-path", "Pod", KUBECTL_RUN_POD, "spec.containers[0].terminationMessagePath",
     "/dev/termination-log"),
    ("run-term-policy", "Pod", KUBECTL_RUN_POD, "spec.containers[0].terminationMessagePolicy",
     "File"),
    ("run-resources", "Pod", KUBECTL_RUN_POD, "spec.containers[0].resources", {}),
    ("run-phase", "Pod", KUBECTL_RUN_POD, "status.phase", "Pending"),
    ("run-qos", "Pod", KUBECTL_RUN_POD, "status.qosClass", "BestEffort"),
    ("run-timestamp-kept", "Pod", KUBECTL_RUN_POD, "metadata.creationTimestamp", None),
    # kubectl 1.31 create deployment web --image=nginx:1.27 --replicas=2 --port=80
    ("deploy-replicas-kept", "Deployment", KUBECTL_131_CREATE_DEPLOYMENT, "spec.replicas", 2),
    ("deploy-strategy", "Deployment", KUBECTL_131_CREATE_DEPLOYMENT, "spec.strategy",
     {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
    ("deploy-history", "Deployment", KUBECTL_131_CREATE_DEPLOYMENT,
     "spec.revisionHistoryLimit", 10),
    ("deploy-deadline", "Deployment", KUBECTL_131_CREATE_DEPLOYMENT,
     "spec.progressDeadlineSeconds", 600),
    ("deploy-template-restart", "Deployment", KUBECTL_131_CREATE_DEPLOYMENT,
     "spec.template.spec.restartPolicy", "Always"),
    ("deploy-template-grace", "Deployment", KUBECTL_131_CREATE_DEPLOYMENT,
     "spec.template.spec.terminationGracePeriodSeconds", 30),
    ("deploy-pull-tagged", "Deployment", KUBECTL_131_CREATE_DEPLOYMENT,
     "spec.template.spec.containers[0].imagePullPolicy", "IfNotPresent"),
    ("deploy-port-protocol", "Deployment", KUBECTL_131_CREATE_DEPLOYMENT,
     "spec.template.spec.containers[0].ports[0].protocol", "TCP"),
    ("deploy-status-untouched", "Deployment", KUBECTL_131_CREATE_DEPLOYMENT, "status", {}),
    # kubectl expose deployment web --port=8080 --target-port=80 --name=web-exp
    ("expose-type", "Service", KUBECTL_EXPOSE_SERVICE, "spec.type", "ClusterIP"),
    ("expose-affinity", "Service", KUBECTL_EXPOSE_SERVICE, "spec.sessionAffinity", "None"),
    ("expose-itp", "Service", KUBECTL_EXPOSE_SERVICE, "spec.internalTrafficPolicy", "Cluster"),
    ("expose-target-kept", "Service", KUBECTL_EXPOSE_SERVICE, "spec.ports[0].targetPort", 80),
    ("expose-lb-status", "Service", KUBECTL_EXPOSE_SERVICE, "status", {"loadBalancer": {}}),
]


@pytest.mark.parametrize(("kind", "body", "path", "want"),
                         [c[1:] for c in EXPECTED_FIELDS], ids=[c[0] for c in EXPECTED_FIELDS])
def test_kubectl_bodies_get_server_defaults(kind: str, body: dict[str, Any], path: str,
                                            want: Any) -> None:
    assert _at(apply_defaults(kind, body), path) == want


ABSENT_FIELDS = [
    ("template-no-service-links", "Deployment", KUBECTL_131_CREATE_DEPLOYMENT,
     "spec.template.spec.enableServiceLinks"),
    ("clusterip-no-etp", "Service", KUBECTL_EXPOSE_SERVICE, "spec.externalTrafficPolicy"),
    ("clusterip-no-alloc-lb", "Service", KUBECTL_EXPOSE_SERVICE,
     "spec.allocateLoadBalancerNodePorts"),
    ("no-ip-families", "Service", KUBECTL_EXPOSE_SERVICE, "spec.ipFamilies"),
    ("no-cluster-ip", "Service", KUBECTL_EXPOSE_SERVICE, "spec.clusterIP"),
    ("no-affinity-config", "Service", KUBECTL_EXPOSE_SERVICE, "spec.sessionAffinityConfig"),
]


@pytest.mark.parametrize(("kind", "body", "path"), [c[1:] for c in ABSENT_FIELDS],
                         ids=[c[0] for c in ABSENT_FIELDS])
def test_fields_left_unset(kind: str, body: dict[str, Any], path: str) -> None:
    assert _absent(apply_defaults(kind, body), path)


def _svc(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "s"}, "spec": spec}


SERVICE_CASES = [
    ("target-port-from-port", _svc(ports=[{"port": 53, "protocol": "UDP"}]),
     "spec.ports[0]", {"port": 53, "protocol": "UDP", "targetPort": 53}),
    ("target-port-zero", _svc(ports=[{"port": 80, "targetPort": 0}]),
     "spec.ports[0].targetPort", 80),
    ("target-port-named-kept", _svc(ports=[{"port": 80, "targetPort": "http"}]),
     "spec.ports[0].targetPort", "http"),
    ("client-ip-timeout", _svc(sessionAffinity="ClientIP"),
     "spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 10800}}),
    ("client-ip-timeout-kept",
     _svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", 60),
    ("nodeport-etp", _svc(type="NodePort"), "spec.externalTrafficPolicy", "Cluster"),
    ("external-ips-etp", _svc(externalIPs=["192.0.2.1"]), "spec.externalTrafficPolicy",
     "Cluster"),
    ("lb-etp", _svc(type="LoadBalancer"), "spec.externalTrafficPolicy", "Cluster"),
    ("lb-alloc-node-ports", _svc(type="LoadBalancer"), "spec.allocateLoadBalancerNodePorts",
     True),
    ("lb-itp", _svc(type="LoadBalancer"), "spec.internalTrafficPolicy", "Cluster"),
    ("local-etp-kept", _svc(type="NodePort", externalTrafficPolicy="Local"),
     "spec.externalTrafficPolicy", "Local"),
]


@pytest.mark.parametrize(("body", "path", "want"), [c[1:] for c in SERVICE_CASES],
                         ids=[c[0] for c in SERVICE_CASES])
def test_service_defaults(body: dict[str, Any], path: str, want: Any) -> None:
    assert _at(apply_defaults("Service", body), path) == want


@pytest.mark.parametrize(("spec", "path"), [
    (dict(type="ExternalName", externalName="example.com"), "spec.internalTrafficPolicy"),
    (dict(type="ExternalName", externalName="example.com"), "spec.externalTrafficPolicy"),
    (dict(sessionAffinity="None", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 5}}),
     "spec.sessionAffinityConfig"),
], ids=["externalname-no-itp", "externalname-no-etp", "none-affinity-drops-config"])
def test_service_fields_not_defaulted(spec: dict[str, Any], path: str) -> None:
    assert _absent(apply_defaults("Service", _svc(**spec)), path)


def _pod(container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": [container], **spec}}


PROBE = {"httpGet": {"port": 8080}}
POD_CASES = [
    ("probe-timings", _pod({"name": "c", "image": "x:1", "livenessProbe": copy.deepcopy(PROBE)}),
     "spec.containers[0].livenessProbe",
     {"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
      "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}),
    ("probe-values-kept",
     _pod({"name": "c", "image": "x:1",
           "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 2}}),
     "spec.containers[0].readinessProbe.periodSeconds", 2),
    ("grpc-service", _pod({"name": "c", "image": "x:1", "startupProbe": {"grpc": {"port": 9}}}),
     "spec.containers[0].startupProbe.grpc", {"port": 9, "service": ""}),
    ("pre-stop-http", _pod({"name": "c", "image": "x:1",
                            "lifecycle": {"preStop": {"httpGet": {"port": 80}}}}),
     "spec.containers[0].lifecycle.preStop.httpGet.scheme", "HTTP"),
    ("latest-tag", _pod({"name": "c", "image": "nginx:latest"}),
     "spec.containers[0].imagePullPolicy", "Always"),
    ("registry-port-untagged", _pod({"name": "c", "image": "localhost:5000/app"}),
     "spec.containers[0].imagePullPolicy", "Always"),
    ("digest-only", _pod({"name": "c", "image": "app@sha256:abc"}),
     "spec.containers[0].imagePullPolicy", "IfNotPresent"),
    ("pull-policy-kept", _pod({"name": "c", "image": "nginx", "imagePullPolicy": "Never"}),
     "spec.containers[0].imagePullPolicy", "Never"),
    ("init-container", {"metadata": {"name": "p"},
                        "spec": {"initContainers": [{"name": "i", "image": "busybox"}],
                                 "containers": [{"name": "c", "image": "x:1"}]}},
     "spec.initContainers[0].terminationMessagePolicy", "File"),
    ("requests-from-limits", _pod({"name": "c", "image": "x:1",
                                   "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}),
     "spec.containers[0].resources.requests", {"cpu": "1", "memory": "1Gi"}),
    ("guaranteed", _pod({"name": "c", "image": "x:1",
                         "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}),
     "status.qosClass", "Guaranteed"),
    ("burstable", _pod({"name": "c", "image": "x:1",
                        "resources": {"requests": {"cpu": "100m"}}}),
     "status.qosClass", "Burstable"),
    ("host-network-ports", _pod({"name": "c", "image": "x:1", "ports": [{"containerPort": 80}]},
                                hostNetwork=True),
     "spec.containers[0].ports[0]", {"containerPort": 80, "hostPort": 80, "protocol": "TCP"}),
    ("empty-volume", _pod({"name": "c", "image": "x:1"}, volumes=[{"name": "v"}]),
     "spec.volumes[0]", {"name": "v", "emptyDir": {}}),
    ("secret-volume-mode", _pod({"name": "c", "image": "x:1"},
                                volumes=[{"name": "v", "secret": {"secretName": "s"}}]),
     "spec.volumes[0].secret.defaultMode", 420),
    ("field-ref-version", _pod({"name": "c", "image": "x:1", "env": [
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}),
     "spec.containers[0].env[0].valueFrom.fieldRef.apiVersion", "v1"),
    ("status-phase-kept", {"metadata": {"name": "p"}, "spec": {"containers": []},
                           "status": {"phase": "Running"}},
     "status.phase", "Running"),
    ("null-spec", {"metadata": {"name": "p"}, "spec": None}, "spec.dnsPolicy", "ClusterFirst"),
]


@pytest.mark.parametrize(("body", "path", "want"), [c[1:] for c in POD_CASES],
                         ids=[c[0] for c in POD_CASES])
def test_pod_defaults(body: dict[str, Any], path: str, want: Any) -> None:
    assert _at(apply_defaults("Pod", body), path) == want


OTHER_CASES = [
    ("deploy-replicas-one", "Deployment", {"spec": {}}, "spec.replicas", 1),
    ("deploy-recreate-no-rolling", "Deployment", {"spec": {"strategy": {"type": "Recreate"}}},
     "spec.strategy", {"type": "Recreate"}),
    ("deploy-surge-kept", "Deployment",
     {"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}},
     "spec.strategy.rollingUpdate", {"maxSurge": 1, "maxUnavailable": "25%"}),
    ("rs-replicas-one", "ReplicaSet", {"spec": {"template": {"spec": {"containers": []}}}},
     "spec.replicas", 1),
    ("rs-template-dns", "ReplicaSet", {"spec": {"template": {"spec": {"containers": []}}}},
     "spec.template.spec.dnsPolicy", "ClusterFirst"),
    ("secret-type", "Secret", {"metadata": {"name": "s"}}, "type", "Opaque"),
    ("secret-string-data", "Secret",
     {"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "hello", "a": "y"}},
     "data", {"a": base64.b64encode(b"y").decode(), "b": base64.b64encode(b"hello").decode()}),
    ("namespace-label", "Namespace", {"metadata": {"name": "foo", "creationTimestamp": None}},
     "metadata.labels", {"kubernetes.io/metadata.name": "foo"}),
    ("namespace-finalizer", "Namespace", {"metadata": {"name": "foo"}, "spec": {}},
     "spec.finalizers", ["kubernetes"]),
    ("namespace-finalizers-emptied-kept", "Namespace",
     {"metadata": {"name": "foo"}, "spec": {"finalizers": []}}, "spec.finalizers", []),
    ("namespace-phase", "Namespace", {"metadata": {"name": "foo"}, "status": {}},
     "status.phase", "Active"),
    ("node-allocatable", "Node", {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4"}}},
     "status.allocatable", {"cpu": "4"}),
    ("endpoints-protocol", "Endpoints",
     {"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]},
     "subsets[0].ports[0].protocol", "TCP"),
    ("slice-port", "EndpointSlice", {"addressType": "IPv4", "ports": [{"port": 80}]},
     "ports[0]", {"port": 80, "name": "", "protocol": "TCP"}),
    ("slice-endpoints-list", "EndpointSlice", {"addressType": "IPv4"}, "endpoints", []),
    ("ingress-class-scope", "IngressClass",
     {"spec": {"controller": "a.io/b", "parameters": {"kind": "K", "name": "n"}}},
     "spec.parameters.scope", "Cluster"),
    ("event-involved-object", "Event", {"metadata": {"name": "e"}}, "involvedObject", {}),
]


@pytest.mark.parametrize(("kind", "body", "path", "want"), [c[1:] for c in OTHER_CASES],
                         ids=[c[0] for c in OTHER_CASES])
def test_other_kinds(kind: str, body: dict[str, Any], path: str, want: Any) -> None:
    assert _at(apply_defaults(kind, body), path) == want


def test_secret_string_data_removed() -> None:
    out = apply_defaults("Secret", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert "stringData" not in out


@pytest.mark.parametrize("kind", ["ConfigMap", "ServiceAccount", "Ingress", "Lease", "Unknown"])
def test_kinds_without_defaults_are_copied(kind: str) -> None:
    body = {"metadata": {"name": "x", "creationTimestamp": None}, "data": {"a": "b"}}
    assert apply_defaults(kind, body) == body


@pytest.mark.parametrize(("kind", "body"), [
    ("Pod", KUBECTL_RUN_POD), ("Deployment", KUBECTL_131_CREATE_DEPLOYMENT),
    ("Service", KUBECTL_EXPOSE_SERVICE),
], ids=["pod", "deployment", "service"])
def test_input_untouched_and_idempotent(kind: str, body: dict[str, Any]) -> None:
    before = copy.deepcopy(body)
    once = apply_defaults(kind, body)
    assert body == before
    assert apply_defaults(kind, once) == once


@pytest.mark.parametrize(("image", "tag"), [
    ("nginx", "latest"), ("nginx:1.27", "1.27"), ("reg:5000/a/b", "latest"),
    ("reg:5000/a/b:v1", "v1"), ("a@sha256:00", ""), ("a:v2@sha256:00", "v2"), ("", ""),
])
def test_image_tag(image: str, tag: str) -> None:
    assert image_tag(image) == tag


def test_qos_class_best_effort_with_other_resources() -> None:
    pod = _pod({"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "1"}}})
    assert pod_qos_class(pod) == "BestEffort"


IP_FAMILY_CASES = [
    ("allocated-v4", {"type": "ClusterIP", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
                      "selector": {"a": "b"}}, "SingleStack", ["IPv4"]),
    ("allocated-v6", {"type": "ClusterIP", "clusterIP": "fd00::5", "clusterIPs": ["fd00::5"]},
     "SingleStack", ["IPv6"]),
    ("headless-with-selector", {"type": "ClusterIP", "clusterIP": "None",
                                "selector": {"a": "b"}}, "SingleStack", ["IPv4"]),
    ("headless-selectorless", {"type": "ClusterIP", "clusterIP": "None"},
     "RequireDualStack", ["IPv4", "IPv6"]),
    ("prefer-dual-on-single-stack", {"type": "ClusterIP", "ipFamilyPolicy": "PreferDualStack"},
     "PreferDualStack", ["IPv4"]),
]


@pytest.mark.parametrize(("spec", "policy", "families"), [c[1:] for c in IP_FAMILY_CASES],
                         ids=[c[0] for c in IP_FAMILY_CASES])
def test_default_ip_families(spec: dict[str, Any], policy: str, families: list[str]) -> None:
    svc = {"spec": dict(spec)}
    default_ip_families(svc)
    assert (svc["spec"]["ipFamilyPolicy"], svc["spec"]["ipFamilies"]) == (policy, families)


def test_default_ip_families_external_name_clears() -> None:
    svc = {"spec": {"type": "ExternalName", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}}
    default_ip_families(svc)
    assert svc["spec"] == {"type": "ExternalName"}


def test_default_ip_families_dual_stack_cluster() -> None:
    svc = {"spec": {"type": "ClusterIP", "ipFamilyPolicy": "PreferDualStack"}}
    default_ip_families(svc, ("IPv6", "IPv4"))
    assert svc["spec"]["ipFamilies"] == ["IPv6", "IPv4"]


NORMALIZE_CASES = [
    ("create-seeds-plural", {"clusterIP": "10.0.0.1"}, None, ["10.0.0.1"]),
    ("create-headless", {"clusterIP": "None"}, None, ["None"]),
    ("create-both-kept", {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.9"]}, None,
     ["10.0.0.9"]),
    ("update-old-client", {"clusterIP": "10.0.0.1"},
     {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "fd00::1"]}, ["10.0.0.1", "fd00::1"]),
    ("update-singular-changed", {"clusterIP": "10.0.0.2", "clusterIPs": ["10.0.0.1"]},
     {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"]}, ["10.0.0.2"]),
    ("update-cleared", {"clusterIP": "", "clusterIPs": ["10.0.0.1"]},
     {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"]}, None),
]


@pytest.mark.parametrize(("spec", "old_spec", "want"), [c[1:] for c in NORMALIZE_CASES],
                         ids=[c[0] for c in NORMALIZE_CASES])
def test_normalize_cluster_ips(spec: dict[str, Any], old_spec: dict[str, Any] | None,
                               want: list[str] | None) -> None:
    svc = {"spec": dict(spec)}
    normalize_cluster_ips(svc, None if old_spec is None else {"spec": old_spec})
    assert svc["spec"].get("clusterIPs") == want
