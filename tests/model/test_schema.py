"""Tests for svcnet.model.schema: unknown-field detection for fieldValidation=Strict and
JSON type checking."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from svcnet.model import _schema_data, kinds
from svcnet.model.schema import (
    KIND_ROOTS,
    QUANTITY_FORMAT_ERROR,
    decode_error_message,
    strict_decoding_message,
    type_errors,
    unknown_fields,
)

REPO = Path(__file__).resolve().parents[2]

# kubectl 1.31 `create deployment web --image=nginx:1.27 --replicas=2 --port=80`, as sent.
KUBECTL_CREATE_DEPLOYMENT = (
    '{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"web",'
    '"creationTimestamp":null,"labels":{"app":"web"}},"spec":{"replicas":2,"selector":'
    '{"matchLabels":{"app":"web"}},"template":{"metadata":{"creationTimestamp":null,'
    '"labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.27",'
    '"ports":[{"containerPort":80}],"resources":{}}]}},"strategy":{}},"status":{}}'
)


def deployment() -> dict[str, Any]:
    """A fresh copy of the kubectl-created Deployment body."""
    obj: dict[str, Any] = json.loads(KUBECTL_CREATE_DEPLOYMENT)
    return obj


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"app": "web", "tier/x.example.com": "frontend"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": "https"},
            ],
            "type": "ClusterIP",
        },
    }


def ingress() -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {
            "ingressClassName": "svcnet",
            "rules": [{
                "host": "web.example.com",
                "http": {"paths": [{
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}},
                }]},
            }],
        },
    }


def endpointslice() -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": ["10.0.0.5"],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"},
            "nodeName": "node-1",
        }],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def with_change(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with ``value`` set at dotted ``path`` (``a.b[0].c``)."""
    obj = copy.deepcopy(base)
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    node: Any = obj
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    node[parts[-1]] = value
    return obj


# --- bodies with no unknown fields ----------------------------------------------------

LAST_APPLIED = json.dumps(json.loads(KUBECTL_CREATE_DEPLOYMENT)) + "\n"

MANAGED_FIELDS = [{
    "manager": "kubectl-client-side-apply",
    "operation": "Update",
    "apiVersion": "apps/v1",
    "time": "2024-05-01T10:00:00Z",
    "fieldsType": "FieldsV1",
    "fieldsV1": {
        "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
        "f:spec": {"f:template": {"f:spec": {"k:{\"name\":\"nginx\"}": {"f:image": {}}}}},
    },
}]


@pytest.mark.parametrize(("kind", "obj"), [
    pytest.param("Deployment", deployment(), id="kubectl-1.31-create-deployment"),
    pytest.param("Deployment", with_change(deployment(), "metadata.labels",
                                           {"any/key.example.com": "v", "UPPER_case": "", "x": "y"}),
                 id="labels-any-keys"),
    pytest.param("Deployment", with_change(deployment(), "metadata.annotations",
                                           {"kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED}),
                 id="last-applied-annotation"),
    pytest.param("Deployment", with_change(deployment(), "metadata.managedFields", MANAGED_FIELDS),
                 id="managed-fields"),
    pytest.param("Deployment", with_change(deployment(), "spec.template.spec.containers[0].resources",
                                           {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 1},
                                            "requests": {"cpu": "100m"}}),
                 id="resources-limits-requests-any-keys"),
    pytest.param("Deployment", with_change(deployment(), "spec.strategy",
                                           {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}),
                 id="rolling-update-int-or-string"),
    pytest.param("Deployment", with_change(deployment(), "spec.template.spec.nodeSelector",
                                           {"kubernetes.io/os": "linux"}),
                 id="node-selector-any-keys"),
    pytest.param("Deployment", with_change(deployment(), "spec.template.spec.containers[0].readinessProbe",
                                           {"httpGet": {"path": "/", "port": "http"},
                                            "tcpSocket": {"port": 80}}),
                 id="probe-ports-int-or-string"),
    pytest.param("Service", service(), id="service-selector-and-target-ports"),
    pytest.param("Service", {**service(), "status": {"loadBalancer": {}}}, id="service-status-lb-empty"),
    pytest.param("Service", {**service(), "status": {"loadBalancer": {"ingress": [
        {"ip": "192.0.2.1", "ports": [{"port": 80, "protocol": "TCP"}]}]}}},
                 id="service-status-lb-ingress"),
    pytest.param("Ingress", ingress(), id="ingress"),
    pytest.param("EndpointSlice", endpointslice(), id="endpointslice"),
    pytest.param("Secret", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                            "type": "Opaque", "data": {"a.b-c": "eA=="},
                            "stringData": {"ANY_KEY": "x"}, "immutable": False},
                 id="secret-data-any-keys"),
    pytest.param("ConfigMap", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                               "data": {"app.properties": "x=1"}, "binaryData": {"b": "AA=="}},
                 id="configmap-data-any-keys"),
    pytest.param("Endpoints", {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
                               "subsets": [{"addresses": [{"ip": "10.0.0.5"}],
                                            "ports": [{"name": "http", "port": 8080}]}]},
                 id="endpoints"),
    pytest.param("Event", {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                           "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Started",
                           "message": "m", "type": "Normal", "count": 1,
                           "source": {"component": "kubelet"}},
                 id="core-event"),
    pytest.param("Scale", {"apiVersion": "autoscaling/v1", "kind": "Scale",
                           "metadata": {"name": "web"}, "spec": {"replicas": 3},
                           "status": {"replicas": 2, "selector": "app=web"}},
                 id="scale"),
    pytest.param("Lease", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                           "metadata": {"name": "l"},
                           "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}},
                 id="lease"),
    pytest.param("Deployment", with_change(deployment(), "spec", None), id="null-spec"),
    pytest.param("Deployment", with_change(deployment(), "spec.template.spec.containers", ["x", None]),
                 id="wrong-shape-list-items-not-checked"),
    pytest.param("Deployment", with_change(deployment(), "spec.replicas", {"foo": 1}),
                 id="object-in-scalar-field-not-checked"),
])
def test_no_unknown_fields(kind: str, obj: dict[str, Any]) -> None:
    assert unknown_fields(kind, obj) == []


# --- bodies with unknown fields -------------------------------------------------------

@pytest.mark.parametrize(("kind", "obj", "expected"), [
    pytest.param("Deployment", with_change(deployment(), "spec.foo", 1), ["spec.foo"],
                 id="spec-foo"),
    pytest.param("Deployment", with_change(deployment(), "spec.template.spec.containers[0].imagee", "x"),
                 ["spec.template.spec.containers[0].imagee"], id="container-imagee"),
    pytest.param("Deployment", with_change(deployment(), "metadata.labelz", {"a": "b"}),
                 ["metadata.labelz"], id="metadata-labelz"),
    pytest.param("Deployment", with_change(deployment(), "spec.template.metadata.nmae", "x"),
                 ["spec.template.metadata.nmae"], id="template-metadata-typo"),
    pytest.param("Deployment", with_change(deployment(), "spec.selector.matchLabel", {"a": "b"}),
                 ["spec.selector.matchLabel"], id="selector-matchlabel-typo"),
    pytest.param("Deployment", with_change(deployment(), "spec.template.spec.containers[0].ports[0].containerport", 80),
                 ["spec.template.spec.containers[0].ports[0].containerport"], id="case-sensitive"),
    pytest.param("Deployment", with_change(deployment(), "metadata.managedFields",
                                           [{**MANAGED_FIELDS[0], "fieldsv1": {}}]),
                 ["metadata.managedFields[0].fieldsv1"], id="managed-fields-entry-typo"),
    pytest.param("Deployment", with_change(deployment(), "Spec", {}), ["Spec"], id="top-level-case"),
    pytest.param("Deployment", with_change(deployment(), "spec.bogus", {"deep": {"er": 1}}),
                 ["spec.bogus"], id="unknown-field-contents-not-inspected"),
    pytest.param("Service", with_change(service(), "spec.ports[1].prot", "TCP"),
                 ["spec.ports[1].prot"], id="service-port-typo"),
    pytest.param("Service", {**service(), "status": {"loadBalancer": {"ingres": []}}},
                 ["status.loadBalancer.ingres"], id="service-status-typo"),
    pytest.param("Ingress", with_change(ingress(), "spec.rules[0].http.paths[0].backend.service.port.numbr", 80),
                 ["spec.rules[0].http.paths[0].backend.service.port.numbr"], id="ingress-backend-port-typo"),
    pytest.param("EndpointSlice", with_change(endpointslice(), "endpoints[0].conditions.readdy", True),
                 ["endpoints[0].conditions.readdy"], id="endpointslice-condition-typo"),
    pytest.param("Secret", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                            "status": {}}, ["status"], id="secret-has-no-status"),
    pytest.param("Scale", {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "w"},
                           "spec": {"replica": 3}}, ["spec.replica"], id="scale-spec-typo"),
    pytest.param("Event", {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                           "involvedObject": {"knd": "Pod"}}, ["involvedObject.knd"],
                 id="core-event-typo"),
])
def test_unknown_fields_reported(kind: str, obj: dict[str, Any], expected: list[str]) -> None:
    assert unknown_fields(kind, obj) == expected


def test_document_order_depth_first() -> None:
    obj = json.loads(
        '{"zeta":1,"apiVersion":"apps/v1","kind":"Deployment",'
        '"spec":{"b":1,"template":{"spec":{"containers":[{"name":"a","x":1},{"y":2}]}},"a":2},'
        '"metadata":{"labelz":{}},"alpha":3}'
    )
    assert unknown_fields("Deployment", obj) == [
        "zeta",
        "spec.b",
        "spec.template.spec.containers[0].x",
        "spec.template.spec.containers[1].y",
        "spec.a",
        "metadata.labelz",
        "alpha",
    ]


@pytest.mark.parametrize(("kind", "obj"), [
    pytest.param("Widget", {"spec": {"foo": 1}}, id="unserved-kind"),
    pytest.param("deployment", {"spec": {"foo": 1}}, id="kind-is-case-sensitive"),
    pytest.param("Deployment", ["not", "an", "object"], id="not-a-mapping"),
])
def test_unchecked_inputs_yield_nothing(kind: str, obj: Any) -> None:
    assert unknown_fields(kind, obj) == []


def test_top_level_type_meta_always_allowed() -> None:
    obj = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "w"}}
    assert unknown_fields("Scale", obj) == []
    assert unknown_fields("Scale", {**obj, "metadata": {"nam": "w"}}) == ["metadata.nam"]


@pytest.mark.parametrize(("allow", "expected"), [
    pytest.param(False, ["spec.template.spec.$setElementOrder/containers", "spec.$retainKeys"],
                 id="directives-rejected-by-default"),
    pytest.param(True, [], id="directives-allowed"),
])
def test_patch_directives(allow: bool, expected: list[str]) -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"image": "nginx:1.28", "name": "nginx"}],
    }}, "$retainKeys": ["replicas"]}}
    assert unknown_fields("Deployment", patch, allow_patch_directives=allow) == expected


@pytest.mark.parametrize(("paths", "message"), [
    pytest.param(["spec.foo"], 'strict decoding error: unknown field "spec.foo"', id="one"),
    pytest.param(["spec.foo", "metadata.labelz"],
                 'strict decoding error: unknown field "spec.foo", unknown field "metadata.labelz"',
                 id="two"),
])
def test_strict_decoding_message(paths: list[str], message: str) -> None:
    assert strict_decoding_message(paths) == message


# --- client-serialised objects round-trip clean ---------------------------------------

def test_python_client_serialised_objects_have_no_unknown_fields() -> None:
    client = pytest.importorskip("kubernetes.client")
    api = client.ApiClient()
    dep = client.V1Deployment(
        api_version="apps/v1", kind="Deployment",
        metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(
                    name="c", image="nginx",
                    ports=[client.V1ContainerPort(container_port=80, name="http")],
                    env=[client.V1EnvVar(name="A", value_from=client.V1EnvVarSource(
                        field_ref=client.V1ObjectFieldSelector(field_path="metadata.name")))],
                )]),
            ),
        ),
    )
    svc = client.V1Service(
        api_version="v1", kind="Service", metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[
            client.V1ServicePort(port=80, target_port="http", node_port=30080)],
            session_affinity_config=client.V1SessionAffinityConfig(
                client_ip=client.V1ClientIPConfig(timeout_seconds=60))),
    )
    assert unknown_fields("Deployment", api.sanitize_for_serialization(dep)) == []
    assert unknown_fields("Service", api.sanitize_for_serialization(svc)) == []


# --- the tables themselves --------------------------------------------------------------

def test_every_served_kind_has_a_root() -> None:
    served = {r.kind for r in kinds.RESOURCES}
    assert served <= set(KIND_ROOTS)
    assert set(KIND_ROOTS) - served <= {"Scale"}
    assert KIND_ROOTS["Scale"] == "V1Scale"
    assert KIND_ROOTS["Event"] == "CoreV1Event"


@pytest.mark.parametrize("kind", sorted(_schema_data.KIND_ROOTS))
def test_root_types_carry_type_meta(kind: str) -> None:
    fields = _schema_data.TYPES[KIND_ROOTS[kind]]
    assert {"apiVersion", "kind", "metadata"} <= set(fields)
    assert fields["metadata"] == "V1ObjectMeta"


def test_type_references_are_closed_and_reachable() -> None:
    types = _schema_data.TYPES
    referenced: set[str] = set()
    for fields in types.values():
        for ref in fields.values():
            name = ref.strip("[]")
            if name not in ("", "{}"):
                referenced.add(name)
    assert referenced <= set(types), "dangling type references"
    assert set(types) == referenced | set(KIND_ROOTS.values()), "unreachable types kept"


@pytest.mark.parametrize(("type_name", "field", "ref"), [
    pytest.param("V1ObjectMeta", "labels", "{}", id="labels-map"),
    pytest.param("V1ObjectMeta", "managedFields", "[V1ManagedFieldsEntry]", id="managed-fields-list"),
    pytest.param("V1ManagedFieldsEntry", "fieldsV1", "", id="fieldsv1-free-form"),
    pytest.param("V1ServicePort", "targetPort", "", id="int-or-string"),
    pytest.param("V1ServiceSpec", "selector", "{}", id="service-selector-map"),
    pytest.param("V1PodSpec", "containers", "[V1Container]", id="containers"),
    pytest.param("V1Secret", "data", "{}", id="secret-data-bytes-map"),
])
def test_generated_references(type_name: str, field: str, ref: str) -> None:
    assert _schema_data.TYPES[type_name][field] == ref


def _load_generator() -> ModuleType:
    path = REPO / "scripts" / "gen_schema.py"
    spec = importlib.util.spec_from_file_location("gen_schema", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_module_is_current_deterministic_and_small() -> None:
    kubernetes = pytest.importorskip("kubernetes")
    if kubernetes.__version__ != _schema_data.CLIENT_VERSION:
        pytest.skip(f"installed client {kubernetes.__version__} != {_schema_data.CLIENT_VERSION}")
    gen = _load_generator()
    first = gen.render(gen.collect(gen.KIND_ROOTS), gen.KIND_ROOTS)
    second = gen.render(gen.collect(gen.KIND_ROOTS), gen.KIND_ROOTS)
    assert first == second
    committed = (REPO / "src/svcnet/model/_schema_data.py").read_text()
    assert first == committed
    assert len(committed.encode()) < 300_000


# --- JSON type checking ----------------------------------------------------------------

def go_err(value: str, field: str, go_type: str) -> str:
    """Go's UnmarshalTypeError text; ``field`` is ``Struct.json.path``."""
    return f"json: cannot unmarshal {value} into Go struct field {field} of type {go_type}"


def node() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "status": {
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": 110},
            "nodeInfo": {"machineID": "abc", "kubeletVersion": "v1.31.0"},
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
        },
    }


@pytest.mark.parametrize(("kind", "obj"), [
    pytest.param("Deployment", deployment(), id="kubectl-create-deployment"),
    pytest.param("Service", service(), id="service-int-and-named-target-ports"),
    pytest.param("Ingress", ingress(), id="ingress"),
    pytest.param("EndpointSlice", endpointslice(), id="endpointslice-bools"),
    pytest.param("Node", node(), id="node-capacity-number-and-string"),
    pytest.param("Deployment", with_change(deployment(), "spec.replicas", 3.0), id="replicas-3.0"),
    pytest.param("Deployment", with_change(deployment(), "metadata.generation", 2.0),
                 id="int64-integral-float"),
    pytest.param("Service", with_change(service(), "spec.ports[0].targetPort", "http"),
                 id="target-port-name"),
    pytest.param("Service", with_change(service(), "spec.ports[1].targetPort", 8080),
                 id="target-port-number"),
    pytest.param("Deployment", with_change(deployment(), "spec.template.spec.containers[0].resources",
                                           {"limits": {"cpu": 1, "memory": "1Gi"},
                                            "requests": {"cpu": 0.5}}),
                 id="resources-number-quantities"),
    pytest.param("Deployment", with_change(deployment(), "spec.strategy",
                                           {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}),
                 id="rolling-update-int-or-string"),
    pytest.param("Deployment", with_change(deployment(), "spec.template.spec.containers[0].readinessProbe",
                                           {"httpGet": {"path": "/", "port": "http"},
                                            "periodSeconds": 5}),
                 id="probe-port-name"),
    pytest.param("Deployment", with_change(deployment(), "spec.replicas", None), id="null-scalar"),
    pytest.param("Deployment", with_change(deployment(), "spec.template.spec.containers", [None]),
                 id="null-list-item"),
    pytest.param("Deployment", with_change(deployment(), "metadata.labels", {"a": None}),
                 id="null-map-value"),
    pytest.param("Deployment", with_change(deployment(), "metadata.managedFields", MANAGED_FIELDS),
                 id="managed-fields-free-form"),
    pytest.param("Deployment", with_change(deployment(), "metadata.labels", {"enabled": "true"}),
                 id="quoted-label-value"),
    pytest.param("Deployment", with_change(deployment(), "spec.foo", "not-checked"),
                 id="unknown-fields-skipped"),
    pytest.param("Deployment", with_change(deployment(), "apiVersion", 1),
                 id="type-meta-not-checked"),
    pytest.param("Secret", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                            "data": {"a": "eA==", "b": [120, 0, 255]}, "immutable": True},
                 id="secret-bytes-as-string-or-list"),
    pytest.param("Event", {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                           "count": 2, "firstTimestamp": "2024-05-01T10:00:00Z"},
                 id="event"),
])
def test_no_type_errors(kind: str, obj: dict[str, Any]) -> None:
    assert type_errors(kind, obj) == []


CONTAINERS = "spec.template.spec.containers"


@pytest.mark.parametrize(("kind", "obj", "expected"), [
    pytest.param("Deployment", with_change(deployment(), "spec.replicas", "3"),
                 [go_err("string", "DeploymentSpec.spec.replicas", "int32")], id="replicas-string"),
    pytest.param("Deployment", with_change(deployment(), "spec.replicas", 1.5),
                 [go_err("number 1.5", "DeploymentSpec.spec.replicas", "int32")],
                 id="replicas-fraction"),
    pytest.param("Deployment", with_change(deployment(), "spec.replicas", 3_000_000_000),
                 [go_err("number 3000000000", "DeploymentSpec.spec.replicas", "int32")],
                 id="replicas-int32-overflow"),
    pytest.param("Deployment", with_change(deployment(), "spec.replicas", True),
                 [go_err("bool", "DeploymentSpec.spec.replicas", "int32")], id="bool-is-not-int"),
    pytest.param("Deployment", with_change(deployment(), "metadata.generation", "1"),
                 [go_err("string", "ObjectMeta.metadata.generation", "int64")], id="int64-field"),
    pytest.param("Deployment", with_change(deployment(), "spec.template.spec.terminationGracePeriodSeconds", "30"),
                 [go_err("string", "PodSpec.spec.template.spec.terminationGracePeriodSeconds", "int64")],
                 id="grace-period-int64"),
    pytest.param("Deployment", with_change(deployment(), "metadata.labels", {"app": "web", "on": True}),
                 [go_err("bool", "ObjectMeta.metadata.labels", "string")], id="label-bool-value"),
    pytest.param("Deployment", with_change(deployment(), "metadata.labels", ["app"]),
                 [go_err("array", "ObjectMeta.metadata.labels", "map[string]string")],
                 id="labels-array"),
    pytest.param("Deployment", with_change(deployment(), f"{CONTAINERS}[0].ports[0].containerPort", "80"),
                 [go_err("string", f"ContainerPort.{CONTAINERS}.ports.containerPort", "int32")],
                 id="container-port-string"),
    pytest.param("Deployment", with_change(deployment(), CONTAINERS, ["nginx"]),
                 [go_err("string", f"PodSpec.{CONTAINERS}", "v1.Container")],
                 id="list-item-wrong-type"),
    pytest.param("Deployment", with_change(deployment(), CONTAINERS, {"name": "nginx"}),
                 [go_err("object", f"PodSpec.{CONTAINERS}", "[]v1.Container")],
                 id="object-for-list"),
    pytest.param("Deployment", with_change(deployment(), "spec", "x"),
                 [go_err("string", "Deployment.spec", "v1.DeploymentSpec")], id="root-struct-field"),
    pytest.param("Deployment", with_change(deployment(), f"{CONTAINERS}[0].args", ["--port", 80]),
                 [go_err("number", f"Container.{CONTAINERS}.args", "string")], id="args-item-number"),
    pytest.param("Deployment", with_change(deployment(), f"{CONTAINERS}[0].command", "sh"),
                 [go_err("string", f"Container.{CONTAINERS}.command", "[]string")],
                 id="command-not-a-list"),
    pytest.param("Deployment", with_change(deployment(), f"{CONTAINERS}[0].resources", {"limits": "1"}),
                 [go_err("string", f"ResourceRequirements.{CONTAINERS}.resources.limits",
                         "v1.ResourceList")],
                 id="resource-list-not-a-map"),
    pytest.param("Deployment", with_change(deployment(), f"{CONTAINERS}[0].resources",
                                           {"limits": {"cpu": True}}),
                 [QUANTITY_FORMAT_ERROR], id="quantity-bool"),
    pytest.param("Deployment", with_change(deployment(), "metadata.creationTimestamp", 0),
                 [go_err("number", "ObjectMeta.metadata.creationTimestamp", "string")],
                 id="timestamp-number"),
    pytest.param("Deployment", with_change(deployment(), "spec.strategy",
                                           {"rollingUpdate": {"maxSurge": True}}),
                 [go_err("bool", "RollingUpdateDeployment.spec.strategy.rollingUpdate.maxSurge", "int32")],
                 id="int-or-string-bool"),
    pytest.param("Service", with_change(service(), "spec.ports[0].targetPort", 80.5),
                 [go_err("number 80.5", "ServicePort.spec.ports.targetPort", "int32")],
                 id="target-port-fraction"),
    pytest.param("Service", with_change(service(), "spec.ports[1].protocol", 6),
                 [go_err("number", "ServicePort.spec.ports.protocol", "v1.Protocol")],
                 id="named-string-type"),
    pytest.param("Service", with_change(service(), "spec.selector", {"app": 1}),
                 [go_err("number", "ServiceSpec.spec.selector", "string")], id="selector-number"),
    pytest.param("Node", with_change(node(), "status.nodeInfo.machineID", True),
                 [go_err("bool", "NodeSystemInfo.status.nodeInfo.machineID", "string")],
                 id="machine-id-yaml-bool"),
    pytest.param("Ingress", with_change(ingress(), "spec.rules[0].http.paths[0].backend.service.port.number", "80"),
                 [go_err("string", "ServiceBackendPort.spec.rules.http.paths.backend.service.port.number",
                         "int32")],
                 id="ingress-backend-port"),
    pytest.param("EndpointSlice", with_change(endpointslice(), "endpoints[0].conditions.ready", "true"),
                 [go_err("string", "EndpointConditions.endpoints.conditions.ready", "bool")],
                 id="bool-field-string"),
    pytest.param("EndpointSlice", with_change(endpointslice(), "ports[0].port", "8080"),
                 [go_err("string", "EndpointPort.ports.port", "int32")], id="discovery-endpoint-port"),
    pytest.param("Event", {"kind": "Event", "metadata": {"name": "e"}, "count": "2"},
                 [go_err("string", "Event.count", "int32")], id="core-event-struct-name"),
    pytest.param("Secret", {"kind": "Secret", "data": {"a": 1}},
                 [go_err("number", "Secret.data", "[]uint8")], id="secret-data-number"),
    pytest.param("Secret", {"kind": "Secret", "data": {"a": [300]}},
                 [go_err("number 300", "Secret.data", "uint8")], id="secret-data-byte-overflow"),
])
def test_type_errors_reported(kind: str, obj: dict[str, Any], expected: list[str]) -> None:
    assert type_errors(kind, obj) == expected


def test_type_errors_in_document_order() -> None:
    obj = json.loads('{"spec":{"template":{"spec":{"containers":[{"name":1},{"image":2}]}},'
                     '"replicas":"3"},"metadata":{"labels":{"a":false}}}')
    assert type_errors("Deployment", obj) == [
        go_err("number", f"Container.{CONTAINERS}.name", "string"),
        go_err("number", f"Container.{CONTAINERS}.image", "string"),
        go_err("string", "DeploymentSpec.spec.replicas", "int32"),
        go_err("bool", "ObjectMeta.metadata.labels", "string"),
    ]


def test_custom_decoder_error_comes_first_and_stops_the_walk() -> None:
    obj = json.loads('{"spec":{"replicas":"3","strategy":{"rollingUpdate":{"maxSurge":[]}},'
                     '"minReadySeconds":"x"}}')
    assert type_errors("Deployment", obj) == [
        go_err("array", "RollingUpdateDeployment.spec.strategy.rollingUpdate.maxSurge", "int32"),
        go_err("string", "DeploymentSpec.spec.replicas", "int32"),
    ]


@pytest.mark.parametrize(("kind", "obj"), [
    pytest.param("Widget", {"spec": {"replicas": "3"}}, id="unserved-kind"),
    pytest.param("Deployment", ["not", "an", "object"], id="not-a-mapping"),
])
def test_type_check_unchecked_inputs(kind: str, obj: Any) -> None:
    assert type_errors(kind, obj) == []


@pytest.mark.parametrize(("kind", "version", "detail", "message"), [
    pytest.param("Deployment", "v1",
                 go_err("string", "DeploymentSpec.spec.replicas", "int32"),
                 'Deployment in version "v1" cannot be handled as a Deployment: json: cannot '
                 'unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32',
                 id="deployment"),
    pytest.param("Ingress", "v1beta1", "x",
                 'Ingress in version "v1beta1" cannot be handled as a Ingress: x', id="other-version"),
])
def test_decode_error_message(kind: str, version: str, detail: str, message: str) -> None:
    assert decode_error_message(kind, version, detail) == message


def test_go_type_tables_cover_the_field_tables() -> None:
    assert set(_schema_data.GO_TYPES) == set(_schema_data.TYPES) == set(_schema_data.GO_NAMES)
    for name, fields in _schema_data.TYPES.items():
        assert set(_schema_data.GO_TYPES[name]) == set(fields), name


@pytest.mark.parametrize(("type_name", "field", "spec"), [
    pytest.param("V1DeploymentSpec", "replicas", "int32", id="int32-default"),
    pytest.param("V1ObjectMeta", "generation", "int64", id="int64-table"),
    pytest.param("V1PodSecurityContext", "supplementalGroups", "[int64]", id="int64-list"),
    pytest.param("V1ObjectMeta", "labels", "{string}", id="string-map"),
    pytest.param("V1ObjectMeta", "creationTimestamp", "time", id="timestamp"),
    pytest.param("V1ObjectMeta", "uid", "string:types.UID", id="named-string"),
    pytest.param("V1ServicePort", "targetPort", "intstr", id="int-or-string"),
    pytest.param("V1HTTPGetAction", "port", "intstr", id="probe-port-int-or-string"),
    pytest.param("V1ManagedFieldsEntry", "fieldsV1", "any", id="free-form"),
    pytest.param("V1ResourceRequirements", "limits", "{quantity}", id="resource-list"),
    pytest.param("V1NodeStatus", "capacity", "{quantity}", id="node-capacity"),
    pytest.param("V1EmptyDirVolumeSource", "sizeLimit", "quantity", id="scalar-quantity"),
    pytest.param("V1Secret", "data", "{[uint8]}", id="bytes-map"),
    pytest.param("V1PodSpec", "containers", "[V1Container]", id="object-list"),
    pytest.param("V1EndpointConditions", "ready", "bool", id="bool"),
])
def test_generated_go_types(type_name: str, field: str, spec: str) -> None:
    assert _schema_data.GO_TYPES[type_name][field] == spec


@pytest.mark.parametrize(("type_name", "go_name"), [
    pytest.param("V1PodSpec", "v1.PodSpec", id="v1"),
    pytest.param("CoreV1Event", "v1.Event", id="group-prefix"),
    pytest.param("DiscoveryV1EndpointPort", "v1.EndpointPort", id="discovery"),
    pytest.param("V1AWSElasticBlockStoreVolumeSource", "v1.AWSElasticBlockStoreVolumeSource",
                 id="acronym"),
])
def test_generated_go_names(type_name: str, go_name: str) -> None:
    assert _schema_data.GO_NAMES[type_name] == go_name


def test_generator_rejects_unclassified_free_form_field() -> None:
    pytest.importorskip("kubernetes")
    gen = _load_generator()
    assert gen.go_spec("V1ServicePort", "targetPort", "object") == "intstr"
    with pytest.raises(gen.SchemaShapeError, match="unclassified"):
        gen.go_spec("V1ServicePort", "somethingNew", "object")
