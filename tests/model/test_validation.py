"""Validation: defaulted objects → the (field, message) causes kubectl prints for a 422."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.model.defaulting import apply_defaults
from svcnet.model.validation import (
    ValidationOptions,
    validate,
    validate_label_selector,
    validate_labels,
    validate_object_meta,
)

Pair = tuple[str, str]

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
PORT_RANGE = "must be between 1 and 65535, inclusive"
SVC_PORT_0 = ('core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, '
              'TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}')


def check(kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Pair]:
    """Default (as the API server does) and validate; the causes as (field, message)."""
    new = apply_defaults(kind, obj)
    prev = None if old is None else apply_defaults(kind, old)
    return [(c.field, c.message) for c in validate(kind, new, prev)]


def meta(name: str = "x", namespace: str | None = "default", **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, **extra}
    if namespace is not None:
        m["namespace"] = namespace
    return m


# --- Deployments -------------------------------------------------------------------------


def deployment(replicas: Any = 1, image: str | None = "nginx:1.27", **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "nginx"}
    if image is not None:
        container["image"] = image
    body: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [container]}}},
    }
    body["spec"].update(spec)
    return body


def with_template(body: dict[str, Any], **pod_spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["spec"]["template"]["spec"].update(pod_spec)
    return body


DEPLOYMENT_CASES: list[tuple[str, dict[str, Any], list[Pair]]] = [
    ("valid", deployment(), []),
    ("reference-example-replicas-and-image", deployment(replicas=-1, image=None), [
        ("spec.replicas", "Invalid value: -1: must be greater than or equal to 0"),
        ("spec.template.spec.containers[0].image", "Required value")]),
    ("bad-name", {**deployment(), "metadata": meta("Bad_Name")}, [
        ("metadata.name", 'Invalid value: "Bad_Name": ' + SUBDOMAIN_MSG)]),
    ("selector-mismatch", deployment(selector={"matchLabels": {"app": "other"}}), [
        ("spec.template.metadata.labels",
         'Invalid value: map[string]string{"app":"web"}: `selector` does not match template '
         "`labels`")]),
    ("selector-missing", deployment(selector=None), [
        ("spec.selector", "Required value"),
        ("spec.template.metadata.labels",
         'Invalid value: map[string]string{"app":"web"}: `selector` does not match template '
         "`labels`")]),
    ("selector-empty", deployment(selector={}), [
        ("spec.selector",
         "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
         "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
         "deployment")]),
    ("restart-never", with_template(deployment(), restartPolicy="Never"), [
        ("spec.template.spec.restartPolicy",
         'Unsupported value: "Never": supported values: "Always"')]),
    ("recreate-with-rolling", deployment(strategy={"type": "Recreate", "rollingUpdate": {}}), [
        ("spec.strategy.rollingUpdate",
         "Forbidden: may not be specified when strategy `type` is 'Recreate'")]),
    ("both-zero", deployment(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}), [
        ("spec.strategy.rollingUpdate.maxUnavailable",
         'Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: may not be 0 when '
         "`maxSurge` is 0")]),
    ("unknown-strategy", deployment(strategy={"type": "BlueGreen"}), [
        ("spec.strategy",
         'Unsupported value: apps.DeploymentStrategy{Type:"BlueGreen", '
         "RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "
         '"Recreate", "RollingUpdate"')]),
    ("bad-percent", deployment(strategy={"rollingUpdate": {"maxSurge": "x%"}}), [
        ("spec.strategy.rollingUpdate.maxSurge",
         'Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"x%"}: a valid percent '
         "string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
         "regex used for validation is '[0-9]+%')")]),
    ("deadline-not-above-min-ready", deployment(minReadySeconds=700), [
        ("spec.progressDeadlineSeconds",
         "Invalid value: 600: must be greater than minReadySeconds")]),
    ("bad-template-label", deployment(selector={"matchLabels": {"app": "web"}},
                                      template={"metadata": {"labels": {"app": "web",
                                                                        "t": "-x"}},
                                                "spec": {"containers": [{"name": "c",
                                                                         "image": "i"}]}}), [
        ("spec.template.labels", 'Invalid value: "-x": ' + LABEL_VALUE_MSG)]),
    ("container-name-and-port", with_template(deployment(), containers=[
        {"name": "Web", "image": "i",
         "ports": [{"containerPort": 70000, "name": "a-very-long-port-name"}]}]), [
        ("spec.template.spec.containers[0].name", 'Invalid value: "Web": ' + LABEL_MSG),
        ("spec.template.spec.containers[0].ports[0].name",
         'Invalid value: "a-very-long-port-name": must be no more than 15 characters'),
        ("spec.template.spec.containers[0].ports[0].containerPort",
         f"Invalid value: 70000: {PORT_RANGE}")]),
    ("duplicate-container", with_template(deployment(), containers=[
        {"name": "c", "image": "i"}, {"name": "c", "image": "i"}]), [
        ("spec.template.spec.containers[1].name", 'Duplicate value: "c"')]),
    ("no-containers", with_template(deployment(), containers=[]), [
        ("spec.template.spec.containers", "Required value")]),
]


@pytest.mark.parametrize(("obj", "want"), [c[1:] for c in DEPLOYMENT_CASES],
                         ids=[c[0] for c in DEPLOYMENT_CASES])
def test_deployment(obj: dict[str, Any], want: list[Pair]) -> None:
    assert check("Deployment", obj) == want


def test_deployment_selector_immutable() -> None:
    old = deployment()
    new = deployment(selector={"matchLabels": {"app": "web2"}})
    new["spec"]["template"]["metadata"]["labels"] = {"app": "web2"}
    assert check("Deployment", new, old) == [
        ("spec.selector",
         'Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web2"}, '
         "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable")]


def test_deployment_update_scales_freely() -> None:
    assert check("Deployment", deployment(replicas=5), deployment()) == []


def test_replica_set() -> None:
    rs = deployment(replicas=-2)
    rs["kind"] = "ReplicaSet"
    assert check("ReplicaSet", rs) == [
        ("spec.replicas", "Invalid value: -2: must be greater than or equal to 0")]


# --- Services ------------------------------------------------------------------------------


def service(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": meta("svc"),
                            "spec": {"selector": {"app": "web"}}}
    body["spec"].update(spec)
    return body


P80 = {"port": 80}
SERVICE_CASES: list[tuple[str, dict[str, Any], list[Pair]]] = [
    ("valid-clusterip", service(ports=[P80]), []),
    ("valid-expose-body", {"apiVersion": "v1", "kind": "Service",
                           "metadata": {"creationTimestamp": None, "labels": {"app": "web"},
                                        "name": "web-exp", "namespace": "default"},
                           "spec": {"ports": [{"port": 8080, "protocol": "TCP",
                                               "targetPort": 80}],
                                    "selector": {"app": "web"}},
                           "status": {"loadBalancer": {}}}, []),
    ("valid-headless-without-ports", service(clusterIP="None"), []),
    ("valid-external-name", service(type="ExternalName", externalName="db.example.com."), []),
    ("valid-named-target", service(ports=[{"port": 80, "targetPort": "http"}]), []),
    ("valid-nodeport", service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}]), []),
    ("valid-lb-ranges", service(type="LoadBalancer", ports=[P80],
                                loadBalancerSourceRanges=["10.0.0.0/8", " 192.168.0.0/16"]),
     []),
    ("valid-client-ip", service(ports=[P80], sessionAffinity="ClientIP"), []),
    ("ports-required", service(), [("spec.ports", "Required value")]),
    ("bad-service-name", {**service(ports=[P80]), "metadata": meta("1svc")}, [
        ("metadata.name", 'Invalid value: "1svc": ' + DNS1035_MSG)]),
    ("two-ports-without-names", service(ports=[{"port": 80}, {"port": 443}]), [
        ("spec.ports[0].name", "Required value"),
        ("spec.ports[1].name", "Required value")]),
    ("duplicate-port-names", service(ports=[{"name": "web", "port": 80},
                                            {"name": "web", "port": 81}]), [
        ("spec.ports[1].name", 'Duplicate value: "web"')]),
    ("bad-port-name", service(ports=[{"name": "Web", "port": 80}]), [
        ("spec.ports[0].name", 'Invalid value: "Web": ' + LABEL_MSG)]),
    ("port-range", service(ports=[{"port": 0, "targetPort": 70000}]), [
        ("spec.ports[0].port", f"Invalid value: 0: {PORT_RANGE}"),
        ("spec.ports[0].targetPort", f"Invalid value: 70000: {PORT_RANGE}")]),
    ("protocol", service(ports=[{"port": 80, "protocol": "HTTP"}]), [
        ("spec.ports[0].protocol",
         'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"')]),
    ("named-target-port", service(ports=[{"port": 80, "targetPort": "8080"}]), [
        ("spec.ports[0].targetPort",
         'Invalid value: "8080": must contain at least one letter (a-z)')]),
    ("duplicate-port-protocol", service(ports=[{"name": "a", "port": 80},
                                               {"name": "b", "port": 80}]), [
        ("spec.ports[1]", "Duplicate value: " + SVC_PORT_0)]),
    ("same-port-other-protocol", service(ports=[{"name": "a", "port": 53},
                                                {"name": "b", "port": 53, "protocol": "UDP"}]),
     []),
    ("node-port-on-clusterip", service(ports=[{"port": 80, "nodePort": 30080}]), [
        ("spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'")]),
    ("duplicate-node-port", service(type="NodePort", ports=[
        {"name": "a", "port": 80, "nodePort": 30080},
        {"name": "b", "port": 81, "nodePort": 30080}]), [
        ("spec.ports[1].nodePort", "Duplicate value: 30080")]),
    ("headless-nodeport", service(type="NodePort", clusterIP="None", ports=[P80]), [
        ("spec.clusterIPs[0]",
         "Invalid value: \"None\": may not be set to 'None' for NodePort services")]),
    ("headless-loadbalancer", service(type="LoadBalancer", clusterIP="None", ports=[P80]), [
        ("spec.clusterIPs[0]",
         "Invalid value: \"None\": may not be set to 'None' for LoadBalancer services")]),
    ("external-name-missing", service(type="ExternalName"), [
        ("spec.externalName", "Required value")]),
    ("external-name-invalid", service(type="ExternalName", externalName="Bad_Host"), [
        ("spec.externalName", 'Invalid value: "Bad_Host": ' + SUBDOMAIN_MSG)]),
    ("external-name-with-cluster-ip", service(type="ExternalName", externalName="a.b",
                                              clusterIP="10.96.0.5"), [
        ("spec.clusterIPs", "Forbidden: may not be set for ExternalName services")]),
    ("unknown-type", service(type="Ingress", ports=[P80]), [
        ("spec.type", 'Unsupported value: "Ingress": supported values: "ClusterIP", '
                      '"ExternalName", "LoadBalancer", "NodePort"')]),
    ("bad-cluster-ip", service(ports=[P80], clusterIP="10.96.0.300"), [
        ("spec.clusterIPs[0]",
         'Invalid value: "10.96.0.300": must be a valid IP address, (e.g. 10.9.8.7 or '
         "2001:db8::ffff)")]),
    ("cluster-ips-mismatch", service(ports=[P80], clusterIP="10.96.0.5",
                                     clusterIPs=["10.96.0.6"]), [
        ("spec.clusterIPs",
         'Invalid value: []string{"10.96.0.6"}: first value must match `clusterIP`')]),
    ("two-v4-cluster-ips", service(ports=[P80], clusterIP="10.96.0.5",
                                   clusterIPs=["10.96.0.5", "10.96.0.6"]), [
        ("spec.clusterIPs", 'Invalid value: []string{"10.96.0.5", "10.96.0.6"}: may specify '
                            "no more than one IP for each IP family")]),
    ("family-mismatch", service(ports=[P80], clusterIP="10.96.0.5", ipFamilies=["IPv6"]), [
        ("spec.clusterIPs[0]",
         'Invalid value: "10.96.0.5": expected an IPv6 value as indicated by `ipFamilies[0]`')]),
    ("bad-family-and-policy", service(ports=[P80], ipFamilies=["IPv5"], ipFamilyPolicy="Dual"), [
        ("spec.ipFamilies[0]", 'Unsupported value: "IPv5": supported values: "IPv4", "IPv6"'),
        ("spec.ipFamilyPolicy", 'Unsupported value: "Dual": supported values: '
                                '"PreferDualStack", "RequireDualStack", "SingleStack"')]),
    ("session-affinity", service(ports=[P80], sessionAffinity="Sticky"), [
        ("spec.sessionAffinity",
         'Unsupported value: "Sticky": supported values: "ClientIP", "None"')]),
    ("affinity-timeout", service(ports=[P80], sessionAffinity="ClientIP",
                                 sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}}), [
        ("spec.sessionAffinityConfig.clientIP.timeoutSeconds",
         "Invalid value: 0: must be greater than 0 and less than 86400")]),
    ("external-ips", service(ports=[P80], externalIPs=["1.2.3", "127.0.0.1"]), [
        ("spec.externalIPs[0]", 'Invalid value: "1.2.3": must be a valid IP address, '
                                "(e.g. 10.9.8.7 or 2001:db8::ffff)"),
        ("spec.externalIPs[1]", 'Invalid value: "127.0.0.1": may not be in the loopback range '
                                "(127.0.0.0/8, ::1/128)")]),
    ("source-ranges-not-lb", service(ports=[P80], loadBalancerSourceRanges=["10.0.0.0/33"]), [
        ("spec.LoadBalancerSourceRanges",
         "Forbidden: may only be used when `type` is 'LoadBalancer'"),
        ("spec.LoadBalancerSourceRanges[0]", 'Invalid value: "10.0.0.0/33": must be a valid '
                                             "CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]),
    ("etp-on-clusterip", service(ports=[P80], externalTrafficPolicy="Local"), [
        ("spec.externalTrafficPolicy",
         'Invalid value: "Local": may only be set for externally-accessible services')]),
    ("etp-value", service(type="NodePort", ports=[P80], externalTrafficPolicy="Node"), [
        ("spec.externalTrafficPolicy",
         'Unsupported value: "Node": supported values: "Cluster", "Local"')]),
    ("itp-value", service(ports=[P80], internalTrafficPolicy="Node"), [
        ("spec.internalTrafficPolicy",
         'Unsupported value: "Node": supported values: "Cluster", "Local"')]),
    ("alloc-lb-node-ports-on-clusterip", service(ports=[P80],
                                                 allocateLoadBalancerNodePorts=False), [
        ("spec.allocateLoadBalancerNodePorts",
         "Forbidden: may only be used when `type` is 'LoadBalancer'")]),
    ("selector-label", service(ports=[P80], selector={"app": "a b"}), [
        ("spec.selector", 'Invalid value: "a b": ' + LABEL_VALUE_MSG)]),
]


@pytest.mark.parametrize(("obj", "want"), [c[1:] for c in SERVICE_CASES],
                         ids=[c[0] for c in SERVICE_CASES])
def test_service(obj: dict[str, Any], want: list[Pair]) -> None:
    assert check("Service", obj) == want


def allocated(ip: str, **spec: Any) -> dict[str, Any]:
    return service(ports=[P80], clusterIP=ip, clusterIPs=[ip], **spec)


SERVICE_UPDATE_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[Pair]]] = [
    ("same-ip", allocated("10.96.0.5"), allocated("10.96.0.5"), []),
    ("old-client-singular-only", service(ports=[P80], clusterIP="10.96.0.5"),
     allocated("10.96.0.5"), []),
    ("cluster-ip-changed", allocated("10.96.0.6"), allocated("10.96.0.5"), [
        ("spec.clusterIPs[0]", 'Invalid value: []string{"10.96.0.6"}: may not change once set')]),
    ("to-external-name", service(type="ExternalName", externalName="a.example"),
     allocated("10.96.0.5"), []),
    ("rename", {**allocated("10.96.0.5"), "metadata": meta("other")}, allocated("10.96.0.5"), [
        ("metadata.name", 'Invalid value: "other": field is immutable')]),
]


@pytest.mark.parametrize(("new", "old", "want"), [c[1:] for c in SERVICE_UPDATE_CASES],
                         ids=[c[0] for c in SERVICE_UPDATE_CASES])
def test_service_update(new: dict[str, Any], old: dict[str, Any], want: list[Pair]) -> None:
    assert check("Service", new, old) == want


def test_service_validation_does_not_mutate() -> None:
    obj = apply_defaults("Service", service(ports=[P80], clusterIP="10.96.0.5"))
    before = copy.deepcopy(obj)
    validate("Service", obj)
    assert obj == before


# --- Pods ------------------------------------------------------------------------------------


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    cs = list(containers) or [{"name": "c", "image": "nginx"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta("p1"),
            "spec": {"containers": cs, **spec}}


POD_CASES: list[tuple[str, dict[str, Any], list[Pair]]] = [
    ("kubectl-run", {"kind": "Pod", "apiVersion": "v1",
                     "metadata": {"name": "p1", "namespace": "default", "creationTimestamp": None,
                                  "labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "p1", "image": "nginx", "resources": {}}],
                              "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
                     "status": {}}, []),
    ("no-containers", pod(containers=[]), [("spec.containers", "Required value")]),
    ("container-name-required", pod({"image": "x"}), [
        ("spec.containers[0].name", "Required value")]),
    ("restart-policy", pod(restartPolicy="Sometimes"), [
        ("spec.restartPolicy", 'Unsupported value: "Sometimes": supported values: "Always", '
                               '"OnFailure", "Never"')]),
    ("dns-policy", pod(dnsPolicy="Cluster"), [
        ("spec.dnsPolicy", 'Unsupported value: "Cluster": supported values: '
                           '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"')]),
    ("dns-none-needs-config", pod(dnsPolicy="None"), [
        ("spec.dnsConfig", "Required value: must provide `dnsConfig` when `dnsPolicy` is None")]),
    ("hostname-subdomain", pod(hostname="Web", subdomain="a.b"), [
        ("spec.hostname", 'Invalid value: "Web": ' + LABEL_MSG),
        ("spec.subdomain", 'Invalid value: "a.b": must not contain dots')]),
    ("probe-without-handler", pod({"name": "c", "image": "x", "readinessProbe": {}}), [
        ("spec.containers[0].readinessProbe", "Required value: must specify a handler type")]),
    ("probe-two-handlers", pod({"name": "c", "image": "x", "livenessProbe": {
        "exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}}), [
        ("spec.containers[0].livenessProbe.tcpSocket",
         "Forbidden: may not specify more than 1 handler type")]),
    ("liveness-success-threshold", pod({"name": "c", "image": "x", "livenessProbe": {
        "httpGet": {"port": "http"}, "successThreshold": 2}}), [
        ("spec.containers[0].livenessProbe.successThreshold", "Invalid value: 2: must be 1")]),
    ("probe-port", pod({"name": "c", "image": "x", "startupProbe": {"tcpSocket": {"port": 0}}}), [
        ("spec.containers[0].startupProbe.tcpSocket.port", f"Invalid value: 0: {PORT_RANGE}")]),
    ("duplicate-port-names", pod({"name": "c", "image": "x", "ports": [
        {"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]}), [
        ("spec.containers[0].ports[1].name", 'Duplicate value: "http"')]),
    ("container-port-required", pod({"name": "c", "image": "x", "ports": [{"name": "http"}]}), [
        ("spec.containers[0].ports[0].containerPort", "Required value")]),
    ("pull-policy", pod({"name": "c", "image": "x", "imagePullPolicy": "Sometimes"}), [
        ("spec.containers[0].imagePullPolicy", 'Unsupported value: "Sometimes": supported '
                                               'values: "Always", "IfNotPresent", "Never"')]),
    ("unknown-volume-mount", pod({"name": "c", "image": "x",
                                  "volumeMounts": [{"name": "data", "mountPath": "/d"}]}), [
        ("spec.containers[0].volumeMounts[0].name", 'Not found: "data"')]),
    ("env-name", pod({"name": "c", "image": "x", "env": [{"name": "A=B"}, {"value": "v"}]}), [
        ("spec.containers[0].env[0].name", 'Invalid value: "A=B": a valid environment variable '
                                           "name must consist only of printable ASCII "
                                           "characters other than '='"),
        ("spec.containers[0].env[1].name", "Required value")]),
]


@pytest.mark.parametrize(("obj", "want"), [c[1:] for c in POD_CASES],
                         ids=[c[0] for c in POD_CASES])
def test_pod(obj: dict[str, Any], want: list[Pair]) -> None:
    assert check("Pod", obj) == want


def test_pod_update_image_allowed_other_fields_forbidden() -> None:
    old = apply_defaults("Pod", pod())
    new_image = copy.deepcopy(old)
    new_image["spec"]["containers"][0]["image"] = "nginx:1.29"
    assert check("Pod", new_image, old) == []
    moved = copy.deepcopy(old)
    moved["spec"]["restartPolicy"] = "Never"
    causes = check("Pod", moved, old)
    assert [f for f, _ in causes] == ["spec"]
    assert causes[0][1].startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`")


# --- Metadata ---------------------------------------------------------------------------------

LONG = "a" * 64
META_CASES: list[tuple[str, str, dict[str, Any], list[Pair]]] = [
    ("name-required", "ConfigMap", {"metadata": {"namespace": "default"}}, [
        ("metadata.name", "Required value: name or generateName is required")]),
    ("namespace-required", "ConfigMap", {"metadata": {"name": "c"}}, [
        ("metadata.namespace", "Required value")]),
    ("namespace-forbidden", "Namespace", {"metadata": meta("ns1")}, [
        ("metadata.namespace", "Forbidden: not allowed on this type")]),
    ("namespace-name-dots", "Namespace", {"metadata": meta("a.b", None)}, [
        ("metadata.name", 'Invalid value: "a.b": must not contain dots')]),
    ("namespace-name-label", "Namespace", {"metadata": meta("Foo", None)}, [
        ("metadata.name", 'Invalid value: "Foo": ' + LABEL_MSG)]),
    ("name-too-long-also-in-default-label", "Namespace", {"metadata": meta(LONG, None)}, [
        ("metadata.name", f'Invalid value: "{LONG}": must be no more than 63 characters'),
        ("metadata.labels", f'Invalid value: "{LONG}": must be no more than 63 characters')]),
    ("bad-label-value", "ConfigMap", {"metadata": meta("c", labels={"app": "web app"})}, [
        ("metadata.labels", 'Invalid value: "web app": ' + LABEL_VALUE_MSG)]),
    ("label-value-too-long", "ConfigMap", {"metadata": meta("c", labels={"app": LONG})}, [
        ("metadata.labels", f'Invalid value: "{LONG}": must be no more than 63 characters')]),
    ("bad-label-key", "ConfigMap", {"metadata": meta("c", labels={"a b": "x"})}, [
        ("metadata.labels", 'Invalid value: "a b": ' + NAME_PART_MSG)]),
    ("label-key-prefix", "ConfigMap", {"metadata": meta("c", labels={"Ex.com/a": "x"})}, [
        ("metadata.labels", 'Invalid value: "Ex.com/a": prefix part ' + SUBDOMAIN_MSG)]),
    ("annotation-key-case-insensitive", "ConfigMap",
     {"metadata": meta("c", annotations={"Example.COM/Key": "v"})}, []),
    ("annotations-too-big", "ConfigMap",
     {"metadata": meta("c", annotations={"a": "x" * 262144})}, [
         ("metadata.annotations", "Too long: may not be more than 262144 bytes")]),
    ("owner-reference", "ConfigMap",
     {"metadata": meta("c", ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": "rs"}])}, [
         ("metadata.ownerReferences.uid", 'Invalid value: "": uid must not be empty')]),
    ("finalizer", "ConfigMap", {"metadata": meta("c", finalizers=["custom"])}, [
        ("metadata.finalizers", 'Invalid value: "custom": name is neither a standard finalizer '
                                "name nor is it fully qualified")]),
    ("generate-name-dash", "Pod", {"metadata": meta("web-abcde", generateName="web-"),
                                   "spec": {"containers": [{"name": "c", "image": "i"}]}}, []),
    ("event-name-path-segment", "Event",
     {"metadata": meta("a/b"), "involvedObject": {"namespace": "default"}}, [
         ("metadata.name", "Invalid value: \"a/b\": may not contain '/'")]),
]


@pytest.mark.parametrize(("kind", "obj", "want"), [c[1:] for c in META_CASES],
                         ids=[c[0] for c in META_CASES])
def test_metadata(kind: str, obj: dict[str, Any], want: list[Pair]) -> None:
    assert check(kind, obj) == want


def test_validate_object_meta_helper() -> None:
    causes = validate_object_meta({"metadata": {"name": "ok"}}, True, "dns1123-label")
    assert [(c.field, c.message) for c in causes] == [("metadata.namespace", "Required value")]


def test_validate_labels_helper_sorted() -> None:
    causes = validate_labels({"b": "-", "a": "-"}, "spec.selector")
    assert [c.field for c in causes] == ["spec.selector", "spec.selector"]
    assert causes[0].message.startswith('Invalid value: "-"')


@pytest.mark.parametrize(("selector", "want"), [
    ({"matchExpressions": [{"key": "a", "operator": "In"}]},
     [("s.matchExpressions[0].values",
       "Required value: must be specified when `operator` is 'In' or 'NotIn'")]),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     [("s.matchExpressions[0].values",
       "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")]),
    ({"matchExpressions": [{"key": "a", "operator": "Has"}]},
     [("s.matchExpressions[0].operator", 'Invalid value: "Has": not a valid selector operator')]),
    ({"matchLabels": {"a": "b"}}, []),
], ids=["in-needs-values", "exists-no-values", "bad-operator", "valid"])
def test_validate_label_selector(selector: dict[str, Any], want: list[Pair]) -> None:
    assert [(c.field, c.message) for c in validate_label_selector(selector, "s")] == want


META_UPDATE_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[Pair]]] = [
    ("namespace-changed", {"metadata": meta("c", "other")}, {"metadata": meta("c")}, [
        ("metadata.namespace", 'Invalid value: "other": field is immutable')]),
    ("uid-changed", {"metadata": meta("c", uid="u2")}, {"metadata": meta("c", uid="u1")}, [
        ("metadata.uid", 'Invalid value: "u2": field is immutable')]),
    ("uid-omitted", {"metadata": meta("c")}, {"metadata": meta("c", uid="u1")}, []),
    ("finalizer-added-while-deleting", {"metadata": meta("c", finalizers=["a.io/x"])},
     {"metadata": meta("c", deletionTimestamp="2024-01-01T00:00:00Z")}, [
         ("metadata.finalizers", "Forbidden: no new finalizers can be added if the object is "
                                 'being deleted, found new finalizers []string{"a.io/x"}')]),
]


@pytest.mark.parametrize(("new", "old", "want"), [c[1:] for c in META_UPDATE_CASES],
                         ids=[c[0] for c in META_UPDATE_CASES])
def test_metadata_update(new: dict[str, Any], old: dict[str, Any], want: list[Pair]) -> None:
    assert check("ConfigMap", new, old) == want


# --- Other kinds ---------------------------------------------------------------------------------

KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
           "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
           "'[-._a-zA-Z0-9]+')")

OTHER_CASES: list[tuple[str, str, dict[str, Any], list[Pair]]] = [
    ("secret-valid", "Secret", {"metadata": meta("s"), "stringData": {"a.b_c-d": "v"}}, []),
    ("secret-key", "Secret", {"metadata": meta("s"), "data": {"a/b": "eA==", "..x": "eA=="}}, [
        ("data[..x]", "Invalid value: \"..x\": must not start with '..'"),
        ("data[a/b]", 'Invalid value: "a/b": ' + KEY_MSG)]),
    ("secret-tls-keys", "Secret", {"metadata": meta("s"), "type": "kubernetes.io/tls"}, [
        ("data[tls.crt]", "Required value"), ("data[tls.key]", "Required value")]),
    ("configmap-key", "ConfigMap", {"metadata": meta("c"), "data": {"bad key": "v"}}, [
        ("data[bad key]", 'Invalid value: "bad key": ' + KEY_MSG)]),
    ("configmap-binary-duplicate", "ConfigMap",
     {"metadata": meta("c"), "data": {"k": "v"}, "binaryData": {"k": "eA=="}}, [
         ("binaryData[k]", 'Invalid value: "k": duplicate of key present in data')]),
    ("namespace-valid", "Namespace", {"metadata": meta("team-a", None)}, []),
    ("namespace-finalizer", "Namespace",
     {"metadata": meta("team-a", None), "spec": {"finalizers": ["mine"]}}, [
         ("spec.finalizers", 'Invalid value: "mine": name is neither a standard finalizer name '
                             "nor is it fully qualified")]),
    ("endpoints-valid-loopback", "Endpoints", {"metadata": meta("web"), "subsets": [
        {"addresses": [{"ip": "127.0.0.5"}], "ports": [{"port": 8080}]}]}, []),
    ("endpoints-bad", "Endpoints", {"metadata": meta("web"), "subsets": [
        {"ports": [{"port": 0}]},
        {"addresses": [{"ip": "10.0.0.x"}], "ports": [{"port": 80}, {"port": 81}]}]}, [
        ("subsets[0]", "Required value: must specify `addresses` or `notReadyAddresses`"),
        ("subsets[0].ports[0].port", f"Invalid value: 0: {PORT_RANGE}"),
        ("subsets[1].addresses[0].ip", 'Invalid value: "10.0.0.x": must be a valid IP address, '
                                       "(e.g. 10.9.8.7 or 2001:db8::ffff)"),
        ("subsets[1].addresses[0].ip", 'Invalid value: "10.0.0.x": must be a valid IP address'),
        ("subsets[1].ports[0].name", "Required value"),
        ("subsets[1].ports[1].name", "Required value")]),
    ("slice-valid", "EndpointSlice", {"metadata": meta("web-abc"), "addressType": "IPv4",
                                      "endpoints": [{"addresses": ["10.244.0.5"],
                                                     "conditions": {"ready": True}}],
                                      "ports": [{"name": "http", "port": 80}]}, []),
    ("slice-address-type-required", "EndpointSlice", {"metadata": meta("e")}, [
        ("addressType", "Required value")]),
    ("slice-address-type", "EndpointSlice", {"metadata": meta("e"), "addressType": "IPv5"}, [
        ("addressType", 'Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"')]),
    ("slice-endpoints", "EndpointSlice", {"metadata": meta("e"), "addressType": "IPv4",
                                          "endpoints": [{"addresses": ["fd00::1"]},
                                                        {"addresses": []},
                                                        {"addresses": ["10.0.0.1"] * 101}],
                                          "ports": [{"port": 80, "protocol": "HTTP"}]}, [
        ("endpoints[0].addresses[0]", 'Invalid value: "fd00::1": must be a valid IPv4 address'),
        ("endpoints[1].addresses", "Required value: must contain at least 1 address"),
        ("endpoints[2].addresses", "Too many: 101: must have at most 100 items"),
        ("ports[0].protocol", 'Unsupported value: "HTTP": supported values: "SCTP", "TCP", '
                              '"UDP"')]),
    ("ingress-valid", "Ingress", {"metadata": meta("ing"), "spec": {
        "ingressClassName": "nginx",
        "rules": [{"host": "*.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"pathType": "ImplementationSpecific",
             "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}],
        "tls": [{"hosts": ["www.example.com"], "secretName": "tls"}]}}, []),
    ("ingress-empty", "Ingress", {"metadata": meta("ing"), "spec": {}}, [
        ("spec", "Invalid value: []networking.IngressRule(nil): either `defaultBackend` or "
                 "`rules` must be specified")]),
    ("ingress-paths", "Ingress", {"metadata": meta("ing"), "spec": {"rules": [{
        "host": "10.0.0.1", "http": {"paths": [
            {"path": "api", "pathType": "Exact",
             "backend": {"service": {"name": "web", "port": {"number": 80, "name": "http"}}}},
            {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"path": "/a//b", "pathType": "Regex", "backend": {}},
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web"}}}]}}]}}, [
        ("spec.rules[0].host", 'Invalid value: "10.0.0.1": must be a DNS name, not an IP '
                               "address"),
        ("spec.rules[0].http.paths[0].path", 'Invalid value: "api": must be an absolute path'),
        ("spec.rules[0].http.paths[0].backend",
         'Invalid value: "": cannot set both port name & port number'),
        ("spec.rules[0].http.paths[1].pathType", "Required value: pathType must be specified"),
        ("spec.rules[0].http.paths[2].pathType", 'Unsupported value: "Regex": supported values: '
                                                 '"Exact", "ImplementationSpecific", "Prefix"'),
        ("spec.rules[0].http.paths[2].backend",
         'Invalid value: "": resource or service backend is required'),
        ("spec.rules[0].http.paths[3].backend",
         "Required value: port name or number is required")]),
    ("ingress-class-valid", "IngressClass", {"metadata": meta("nginx", None),
                                             "spec": {"controller": "k8s.io/ingress-nginx"}}, []),
    ("ingress-class-controller", "IngressClass", {"metadata": meta("c", None), "spec": {}}, [
        ("spec.controller", "Required value")]),
    ("ingress-class-not-prefixed", "IngressClass",
     {"metadata": meta("c", None), "spec": {"controller": "nginx"}}, [
         ("spec.controller",
          'Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")')]),
    ("node-valid", "Node", {"metadata": meta("node-1", None),
                            "spec": {"podCIDRs": ["10.244.0.0/24"]}}, []),
    ("node-taint", "Node", {"metadata": meta("n", None),
                            "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}, [
        ("spec.taints[0].effect", 'Unsupported value: "Sometimes": supported values: '
                                  '"NoSchedule", "PreferNoSchedule", "NoExecute"')]),
    ("event-valid", "Event", {"metadata": meta("p1.17a"),
                              "involvedObject": {"kind": "Pod", "namespace": "default",
                                                 "name": "p1"}}, []),
    ("event-namespace-mismatch", "Event", {"metadata": meta("e", "team"),
                                           "involvedObject": {"namespace": "other"}}, [
        ("involvedObject.namespace", 'Invalid value: "other": does not match event.namespace')]),
    ("lease", "Lease", {"metadata": meta("l"), "spec": {"leaseDurationSeconds": 0}}, [
        ("spec.leaseDurationSeconds", "Invalid value: 0: must be greater than 0")]),
]


@pytest.mark.parametrize(("kind", "obj", "want"), [c[1:] for c in OTHER_CASES],
                         ids=[c[0] for c in OTHER_CASES])
def test_other_kinds(kind: str, obj: dict[str, Any], want: list[Pair]) -> None:
    assert check(kind, obj) == want


def test_loopback_endpoints_rejected_when_upstream_strict() -> None:
    obj = apply_defaults("Endpoints", {"metadata": meta("web"), "subsets": [
        {"addresses": [{"ip": "127.0.0.5"}], "ports": [{"port": 8080}]}]})
    causes = validate("Endpoints", obj, options=ValidationOptions(allow_loopback_endpoints=False))
    assert [(c.field, c.message) for c in causes] == [
        ("subsets[0].addresses[0].ip",
         'Invalid value: "127.0.0.5": may not be in the loopback range (127.0.0.0/8, ::1/128)')]


UPDATE_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], list[Pair]]] = [
    ("slice-address-type", "EndpointSlice",
     {"metadata": meta("e"), "addressType": "IPv6"}, {"metadata": meta("e"), "addressType": "IPv4"},
     [("addressType", 'Invalid value: "IPv6": field is immutable')]),
    ("ingress-class-controller", "IngressClass",
     {"metadata": meta("c", None), "spec": {"controller": "a.io/y"}},
     {"metadata": meta("c", None), "spec": {"controller": "a.io/x"}},
     [("spec.controller", 'Invalid value: "a.io/y": field is immutable')]),
    ("secret-type", "Secret", {"metadata": meta("s"), "type": "Opaque"},
     {"metadata": meta("s"), "type": "kubernetes.io/basic-auth", "data": {"username": "eA=="}},
     [("type", 'Invalid value: "Opaque": field is immutable')]),
    ("immutable-configmap", "ConfigMap",
     {"metadata": meta("c"), "immutable": True, "data": {"a": "2"}},
     {"metadata": meta("c"), "immutable": True, "data": {"a": "1"}},
     [("data", "Forbidden: field is immutable when `immutable` is set")]),
]


@pytest.mark.parametrize(("kind", "new", "old", "want"), [c[1:] for c in UPDATE_CASES],
                         ids=[c[0] for c in UPDATE_CASES])
def test_updates(kind: str, new: dict[str, Any], old: dict[str, Any], want: list[Pair]) -> None:
    assert check(kind, new, old) == want


@pytest.mark.parametrize("obj", [
    {"metadata": None, "spec": None, "status": None},
    {"metadata": {"name": 5, "labels": None}, "spec": {"ports": "x", "selector": []}},
    {"metadata": {"name": "s", "namespace": "default"},
     "spec": {"ports": [{"port": "80", "targetPort": None}], "clusterIPs": None}},
], ids=["nulls", "wrong-types", "wrong-port-types"])
@pytest.mark.parametrize("kind", ["Service", "Pod", "Deployment", "Ingress", "EndpointSlice",
                                  "Secret", "Namespace", "Event"])
def test_malformed_input_never_raises(kind: str, obj: dict[str, Any]) -> None:
    causes = validate(kind, apply_defaults(kind, obj))
    assert isinstance(causes, list)
