"""Tests for svcnet.apiserver.protobuf: kubectl 1.32 protobuf bodies -> JSON-equivalent dicts.

Three kinds of evidence:

* real fixtures (``fixtures/protobuf/<case>.pb`` sent by kubectl 1.32 and ``<case>.json`` sent
  by kubectl 1.31 for the same command, recorded by ``fixtures/protobuf/capture.py``): the
  decoded protobuf must equal the JSON. The only normalisation is dropping keys whose JSON
  value is ``null`` (``"creationTimestamp": null``, TokenRequest's ``"boundObjectRef": null``):
  Go renders the zero ``metav1.Time`` and nil pointers without ``omitempty`` as ``null``,
  and the decoder omits them by contract. ``"status": {}`` needs no normalisation (both
  forms have it);
* hand-encoded messages covering fields no kubectl generator sets (probes, env sources,
  volumes, pointer fields holding zero values, negative varints, times);
* malformed bodies, including seeded random mutations of the fixtures, which must only ever
  raise APIError 400 or 415.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from svcnet.apiserver.protobuf import (
    MAGIC,
    decode_k8s_protobuf,
    is_protobuf,
    read_envelope,
    supported_kinds,
)
from svcnet.model.errors import APIError

FIXTURES = Path(__file__).parent / "fixtures" / "protobuf"

# Fixture stems decoded and compared with kubectl 1.31's JSON.
DECODED_FIXTURES = (
    "namespace",
    "deployment_web",
    "deployment_kuard",
    "deployment_multi",
    "deployment_command",
    "service_clusterip",
    "service_nodeport",
    "service_loadbalancer",
    "service_externalname",
    "service_headless",
    "service_two_ports",
    "secret_generic",
    "secret_tls_type",
    "secret_docker_registry",
    "configmap",
    "configmap_two",
    "configmap_binary",
    "ingress",
    "ingress_multi",
    "serviceaccount",
    "token_request",
)
# Fixture stems of kinds without a schema: decoding must answer 415.
UNSUPPORTED_FIXTURES = ("job_unsupported",)


# --- a minimal protobuf encoder for hand-built messages -------------------------------


def varint(n: int) -> bytes:
    """Base-128 varint of ``n`` as a 64-bit two's-complement value (negatives: 10 bytes)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def vi(number: int, value: int) -> bytes:
    """A varint field."""
    return key(number, 0) + varint(value)


def ld(number: int, payload: bytes | str) -> bytes:
    """A length-delimited field."""
    data = payload.encode() if isinstance(payload, str) else payload
    return key(number, 2) + varint(len(data)) + data


def entry(number: int, k: str, v: bytes | str) -> bytes:
    """One map entry of map field ``number``."""
    return ld(number, ld(1, k) + ld(2, v))


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    """``k8s\\0`` + runtime.Unknown, laid out as kubectl does (empty fields 3 and 4)."""
    return MAGIC + ld(1, ld(1, api_version) + ld(2, kind)) + ld(2, raw) + ld(3, "") + ld(4, "")


def meta(name: str, *extra: bytes) -> bytes:
    """ObjectMeta as gogo-protobuf emits it: every non-pointer field, zero or not."""
    return ld(1, ld(1, name) + b"".join(ld(n, "") for n in (2, 3, 4, 5, 6)) + vi(7, 0)
              + ld(8, b"") + b"".join(extra))


def decode(api_version: str, kind: str, raw: bytes) -> dict[str, Any]:
    return decode_k8s_protobuf(envelope(api_version, kind, raw))


def drop_nulls(obj: Any) -> Any:
    """``obj`` without object keys whose value is ``null``, at any depth."""
    if isinstance(obj, dict):
        return {k: drop_nulls(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [drop_nulls(v) for v in obj]
    return obj


# --- real kubectl fixtures --------------------------------------------------------------


def test_every_fixture_on_disk_is_covered() -> None:
    on_disk = {p.stem for p in FIXTURES.glob("*.pb")}
    assert on_disk == set(DECODED_FIXTURES) | set(UNSUPPORTED_FIXTURES)
    assert all((FIXTURES / f"{stem}.json").is_file() for stem in DECODED_FIXTURES)


@pytest.mark.parametrize("stem", DECODED_FIXTURES, ids=DECODED_FIXTURES)
def test_kubectl_132_protobuf_equals_kubectl_131_json(stem: str) -> None:
    got = decode_k8s_protobuf((FIXTURES / f"{stem}.pb").read_bytes())
    want = json.loads((FIXTURES / f"{stem}.json").read_text())
    assert got == drop_nulls(want)


@pytest.mark.parametrize("stem", UNSUPPORTED_FIXTURES, ids=UNSUPPORTED_FIXTURES)
def test_kubectl_body_of_unmodelled_kind_is_415(stem: str) -> None:
    with pytest.raises(APIError) as err:
        decode_k8s_protobuf((FIXTURES / f"{stem}.pb").read_bytes())
    assert (err.value.code, err.value.reason) == (415, "UnsupportedMediaType")
    assert '"Job"' in err.value.message and '"batch/v1"' in err.value.message


def test_namespace_envelope_matches_the_reference_observation() -> None:
    body = (FIXTURES / "namespace.pb").read_bytes()
    env = read_envelope(body)
    assert len(body) == 54
    assert (env.api_version, env.kind, env.content_encoding, env.content_type) == (
        "v1", "Namespace", "", "")


def test_supported_kinds_cover_the_generators() -> None:
    assert {("v1", "Namespace"), ("apps/v1", "Deployment"), ("v1", "Service"),
            ("v1", "Secret"), ("v1", "ConfigMap"), ("networking.k8s.io/v1", "Ingress"),
            ("v1", "Pod"), ("apps/v1", "ReplicaSet"), ("discovery.k8s.io/v1", "EndpointSlice"),
            ("v1", "Endpoints"), ("v1", "ServiceAccount"),
            ("authentication.k8s.io/v1", "TokenRequest")} <= supported_kinds()


# --- hand-encoded objects ---------------------------------------------------------------

T_2024 = 1704164645  # 2024-01-02T03:04:05Z

CONTAINER = (
    ld(1, "app") + ld(2, "nginx") + ld(3, "sh") + ld(3, "-c") + ld(4, "x") + ld(5, "")
    + ld(6, ld(1, "http") + vi(2, 0) + vi(3, 80) + ld(4, "TCP") + ld(5, ""))
    + ld(7, ld(1, "A") + ld(2, "1"))
    + ld(7, ld(1, "POD_IP") + ld(2, "") + ld(3, ld(1, ld(1, "v1") + ld(2, "status.podIP"))))
    + ld(7, ld(1, "K") + ld(3, ld(3, ld(1, ld(1, "cm")) + ld(2, "key"))))
    + ld(7, ld(1, "S") + ld(3, ld(4, ld(1, ld(1, "sec")) + ld(2, "pw") + vi(3, 1))))
    + ld(8, entry(1, "cpu", ld(1, "500m")) + entry(2, "memory", ld(1, "64Mi")))
    + ld(9, ld(1, "cache") + vi(2, 1) + ld(3, "/cache") + ld(4, ""))
    + ld(10, ld(1, ld(2, ld(1, "/healthz") + ld(2, vi(1, 0) + vi(2, 8080) + ld(3, ""))
                      + ld(4, "HTTP")))
         + vi(2, 5) + vi(3, 1) + vi(4, 10) + vi(5, 1) + vi(6, 3))
    + ld(11, ld(1, ld(3, ld(1, vi(1, 1) + vi(2, 0) + ld(3, "http")) + ld(2, ""))) + vi(2, 0))
    + ld(22, ld(1, ld(1, ld(1, "cat") + ld(1, "/tmp/ready"))) + vi(6, 30))
    + ld(13, "/dev/termination-log") + ld(14, "IfNotPresent") + vi(16, 1) + vi(17, 0)
    + vi(18, 1) + ld(20, "File")
)
CONTAINER_JSON: dict[str, Any] = {
    "name": "app", "image": "nginx", "command": ["sh", "-c"], "args": ["x"],
    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
    "env": [
        {"name": "A", "value": "1"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                      "fieldPath": "status.podIP"}}},
        {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "key"}}},
        {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw",
                                                     "optional": True}}},
    ],
    "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
    "volumeMounts": [{"name": "cache", "readOnly": True, "mountPath": "/cache"}],
    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                      "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 10,
                      "successThreshold": 1, "failureThreshold": 3},
    "readinessProbe": {"tcpSocket": {"port": "http"}},
    "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "failureThreshold": 30},
    "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent",
    "stdin": True, "tty": True, "terminationMessagePolicy": "File",
}
POD_SPEC = (
    ld(1, ld(1, "cache") + ld(2, ld(2, ld(1, ""))))
    + ld(1, ld(1, "cfg") + ld(2, ld(19, ld(1, ld(1, "c1")) + ld(2, ld(1, "k") + ld(2, "k.txt"))
                                    + vi(3, 420))))
    + ld(1, ld(1, "sec") + ld(2, ld(6, ld(1, "s1") + vi(4, 0))))
    + ld(2, CONTAINER)
    + ld(3, "Always") + vi(4, 0) + ld(6, "ClusterFirst") + entry(7, "disk", "ssd")
    + ld(8, "sa") + ld(9, "") + ld(10, "node1") + vi(11, 0)
    + ld(14, vi(2, 1000) + vi(3, 1))
    + ld(16, "h") + ld(17, "sub") + ld(18, ld(1, b""))  # 18 affinity: not modelled
    + ld(19, "default-scheduler")
    + ld(20, ld(1, "init") + ld(2, "busybox") + ld(8, b""))
    + ld(22, ld(1, "k") + ld(2, "Exists") + ld(3, "") + ld(4, "NoSchedule") + vi(5, -1))
    + ld(26, ld(1, "1.1.1.1") + ld(2, "svc.local") + ld(3, ld(1, "ndots") + ld(2, "2")))
    + ld(28, ld(1, "example.com/ready")) + vi(30, 0) + vi(35, 1)
    + key(99, 1) + bytes(8) + key(98, 5) + bytes(4)  # unknown fixed64 / fixed32
)
POD_SPEC_JSON: dict[str, Any] = {
    "volumes": [
        {"name": "cache", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "c1", "items": [{"key": "k", "path": "k.txt"}],
                                      "defaultMode": 420}},
        {"name": "sec", "secret": {"secretName": "s1", "optional": False}},
    ],
    "containers": [CONTAINER_JSON],
    "restartPolicy": "Always", "terminationGracePeriodSeconds": 0, "dnsPolicy": "ClusterFirst",
    "nodeSelector": {"disk": "ssd"}, "serviceAccountName": "sa", "nodeName": "node1",
    "securityContext": {"runAsUser": 1000, "runAsNonRoot": True},
    "hostname": "h", "subdomain": "sub", "schedulerName": "default-scheduler",
    "initContainers": [{"name": "init", "image": "busybox", "resources": {}}],
    "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                     "tolerationSeconds": -1}],
    "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["svc.local"],
                  "options": [{"name": "ndots", "value": "2"}]},
    "readinessGates": [{"conditionType": "example.com/ready"}],
    "enableServiceLinks": False, "setHostnameAsFQDN": True,
}

OBJECT_CASES: list[tuple[str, str, str, bytes, dict[str, Any]]] = [
    (
        "pod-with-probes-env-volumes", "v1", "Pod",
        meta("p1", entry(11, "app", "web"),
             ld(13, ld(1, "ReplicaSet") + ld(3, "rs1") + ld(4, "u1") + ld(5, "apps/v1")
                + vi(6, 1) + vi(7, 0)),
             ld(14, "f1"))
        + ld(2, POD_SPEC)
        + ld(3, ld(1, "Pending") + ld(7, vi(1, T_2024) + vi(2, 999)) + ld(12, ld(1, "10.0.0.5"))),
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "p1", "labels": {"app": "web"}, "finalizers": ["f1"],
                      "ownerReferences": [{"kind": "ReplicaSet", "name": "rs1", "uid": "u1",
                                           "apiVersion": "apps/v1", "controller": True,
                                           "blockOwnerDeletion": False}]},
         "spec": POD_SPEC_JSON,
         "status": {"phase": "Pending", "startTime": "2024-01-02T03:04:05Z",
                    "podIPs": [{"ip": "10.0.0.5"}]}},
    ),
    (
        "deployment-zero-replicas-and-rolling-update", "apps/v1", "Deployment",
        meta("d1", ld(8, vi(1, T_2024)), vi(10, 30))
        + ld(2, vi(1, 0)
             + ld(2, ld(2, ld(1, "tier") + ld(2, "In") + ld(3, "a") + ld(3, "b")))
             + ld(3, ld(1, ld(1, "") + ld(8, b"")) + ld(2, ld(2, ld(1, "c") + ld(2, "img"))))
             + ld(4, ld(1, "RollingUpdate") + ld(2, ld(1, vi(1, 1) + ld(3, "25%"))
                                                  + ld(2, vi(1, 0) + vi(2, 1))))
             + vi(5, 0) + vi(6, 10) + vi(7, 0) + vi(9, 600))
        + ld(3, vi(1, 2) + vi(2, 3) + vi(8, 0)
             + ld(6, ld(1, "Available") + ld(2, "True") + ld(4, "") + ld(5, "")
                  + ld(6, vi(1, 0)) + ld(7, b""))),
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "d1", "creationTimestamp": "2024-01-02T03:04:05Z",
                      "deletionGracePeriodSeconds": 30},
         "spec": {"replicas": 0,
                  "selector": {"matchExpressions": [{"key": "tier", "operator": "In",
                                                     "values": ["a", "b"]}]},
                  "template": {"metadata": {},
                               "spec": {"containers": [{"name": "c", "image": "img"}]}},
                  "strategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
                  "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
         "status": {"observedGeneration": 2, "replicas": 3, "collisionCount": 0,
                    "conditions": [{"type": "Available", "status": "True",
                                    "lastUpdateTime": "1970-01-01T00:00:00Z"}]}},
    ),
    (
        "service-pointer-and-plain-bools", "v1", "Service",
        meta("s")
        + ld(2, ld(1, ld(1, "https") + ld(2, "TCP") + vi(3, 443)
                   + ld(4, vi(1, 1) + vi(2, 0) + ld(3, "web")) + vi(5, 0) + ld(6, "h2"))
             + entry(2, "app", "web") + ld(3, "10.96.0.10") + ld(4, "LoadBalancer")
             + ld(7, "ClientIP") + ld(10, "") + ld(11, "Local") + vi(12, 32000) + vi(13, 0)
             + ld(14, ld(1, vi(1, 10800))) + ld(17, "SingleStack") + ld(18, "10.96.0.10")
             + ld(19, "IPv4") + vi(20, 0) + ld(22, "Cluster"))
        + ld(3, ld(1, ld(1, ld(1, "1.2.3.4") + ld(2, "") + ld(4, vi(1, 443) + ld(2, "TCP"))))),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
         "spec": {"ports": [{"name": "https", "protocol": "TCP", "port": 443,
                             "targetPort": "web", "appProtocol": "h2"}],
                  "selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                  "type": "LoadBalancer", "sessionAffinity": "ClientIP",
                  "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
                  "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                  "ipFamilyPolicy": "SingleStack", "clusterIPs": ["10.96.0.10"],
                  "ipFamilies": ["IPv4"], "allocateLoadBalancerNodePorts": False,
                  "internalTrafficPolicy": "Cluster"},
         "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4",
                                                  "ports": [{"port": 443,
                                                             "protocol": "TCP"}]}]}}},
    ),
    (
        "service-publish-not-ready-true", "v1", "Service",
        meta("s") + ld(2, vi(13, 1)),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
         "spec": {"publishNotReadyAddresses": True}},
    ),
    (
        "secret-immutable-false-and-string-data", "v1", "Secret",
        meta("s", ld(3, "ns1")) + entry(2, "bin", b"\x00\xff") + ld(3, "Opaque")
        + entry(4, "plain", "text") + vi(5, 0),
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns1"},
         "data": {"bin": "AP8="}, "type": "Opaque", "stringData": {"plain": "text"},
         "immutable": False},
    ),
    (
        "configmap-map-last-key-wins-and-missing-value", "v1", "ConfigMap",
        meta("c") + entry(2, "k", "old") + entry(2, "k", "new") + ld(2, ld(1, "v")),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
         "data": {"k": "new", "v": ""}},
    ),
    (
        "namespace-finalizers-and-phase", "v1", "Namespace",
        meta("ns") + ld(2, ld(1, "kubernetes")) + ld(3, ld(1, "Active")),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"},
         "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
    ),
    (
        "ingress-resource-backend-and-tls", "networking.k8s.io/v1", "Ingress",
        meta("i")
        + ld(2, ld(1, ld(3, ld(1, "k8s.example.com") + ld(2, "Bucket") + ld(3, "b1")))
             + ld(2, ld(1, "a.com") + ld(1, "b.com") + ld(2, "cert"))
             + ld(3, ld(1, "") + ld(2, ld(1, ld(1, ld(1, "/x") + ld(3, "ImplementationSpecific")
                                                 + ld(2, ld(4, ld(1, "svc")
                                                            + ld(2, ld(1, "") + vi(2, 80)))))))))
        + ld(3, ld(1, b"")),
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
         "spec": {"defaultBackend": {"resource": {"apiGroup": "k8s.example.com",
                                                  "kind": "Bucket", "name": "b1"}},
                  "tls": [{"hosts": ["a.com", "b.com"], "secretName": "cert"}],
                  "rules": [{"http": {"paths": [{
                      "path": "/x", "pathType": "ImplementationSpecific",
                      "backend": {"service": {"name": "svc", "port": {"number": 80}}}}]}}]},
         "status": {"loadBalancer": {}}},
    ),
    (
        "replicaset-status-replicas-zero-kept", "apps/v1", "ReplicaSet",
        meta("rs") + ld(2, vi(1, 1) + ld(2, entry(1, "a", "b")) + vi(4, 0))
        + ld(3, vi(1, 0) + vi(2, 0) + vi(3, 4)),
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}},
         "status": {"replicas": 0, "observedGeneration": 4}},
    ),
    (
        "endpointslice", "discovery.k8s.io/v1", "EndpointSlice",
        meta("web-abc", entry(11, "kubernetes.io/service-name", "web"))
        + ld(2, ld(1, "10.0.0.1") + ld(2, vi(1, 1) + vi(2, 1) + vi(3, 0))
             + ld(4, ld(1, "Pod") + ld(2, "default") + ld(3, "p1")) + ld(6, "n1"))
        + ld(3, ld(1, "") + ld(2, "TCP") + vi(3, 8080)) + ld(4, "IPv4"),
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
         "endpoints": [{"addresses": ["10.0.0.1"],
                        "conditions": {"ready": True, "serving": True, "terminating": False},
                        "targetRef": {"kind": "Pod", "namespace": "default", "name": "p1"},
                        "nodeName": "n1"}],
         "ports": [{"name": "", "protocol": "TCP", "port": 8080}], "addressType": "IPv4"},
    ),
    (
        "endpoints", "v1", "Endpoints",
        meta("web")
        + ld(2, ld(1, ld(1, "10.0.0.1") + ld(3, "") + ld(4, "n1"))
             + ld(2, ld(1, "10.0.0.2")) + ld(3, ld(1, "http") + vi(2, 80) + ld(3, "TCP"))),
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
         "subsets": [{"addresses": [{"ip": "10.0.0.1", "nodeName": "n1"}],
                      "notReadyAddresses": [{"ip": "10.0.0.2"}],
                      "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]},
    ),
    (
        "serviceaccount-automount-false-kept", "v1", "ServiceAccount",
        meta("sa") + ld(2, ld(3, "tok")) + ld(3, ld(1, "regcred")) + vi(4, 0),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
         "secrets": [{"name": "tok"}], "imagePullSecrets": [{"name": "regcred"}],
         "automountServiceAccountToken": False},
    ),
]


@pytest.mark.parametrize(("api_version", "kind", "raw", "want"),
                         [c[1:] for c in OBJECT_CASES], ids=[c[0] for c in OBJECT_CASES])
def test_hand_encoded_objects(api_version: str, kind: str, raw: bytes,
                              want: dict[str, Any]) -> None:
    assert decode(api_version, kind, raw) == want


# Wire-level behaviour, observed through ConfigMap/Deployment/Pod fields.
WIRE_CASES: list[tuple[str, str, str, bytes, Any]] = [
    ("negative-int32-10-byte-varint", "apps/v1", "Deployment",
     ld(2, vi(1, -1)), {"replicas": -1}),
    ("int32-keeps-low-32-bits", "apps/v1", "Deployment",
     ld(2, vi(1, (1 << 32) + 5)), {"replicas": 5}),
    ("int32-min", "apps/v1", "Deployment", ld(2, vi(1, -(1 << 31))), {"replicas": -(1 << 31)}),
    ("negative-int64", "v1", "Pod", ld(2, vi(4, -5)), {"terminationGracePeriodSeconds": -5}),
    ("int64-max", "v1", "Pod", ld(2, vi(4, (1 << 63) - 1)),
     {"terminationGracePeriodSeconds": (1 << 63) - 1}),
    ("varint-bits-beyond-64-dropped", "apps/v1", "Deployment",
     ld(2, key(1, 0) + b"\x83\x80\x80\x80\x80\x80\x80\x80\x80\x7f"), {"replicas": 3}),
    ("bool-any-nonzero-is-true", "v1", "Pod", ld(2, vi(11, 7)), {"hostNetwork": True}),
    ("plain-zero-scalars-dropped", "v1", "Pod",
     ld(2, ld(3, "") + vi(11, 0) + ld(2, ld(1, "c") + vi(16, 0))), {"containers": [{"name": "c"}]}),
    ("last-scalar-wins", "v1", "Pod", ld(2, ld(3, "Never") + ld(3, "Always")),
     {"restartPolicy": "Always"}),
    ("singular-messages-merge", "v1", "Pod",
     ld(2, ld(26, ld(1, "1.1.1.1")) + ld(26, ld(2, "s.local"))),
     {"dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["s.local"]}}),
    ("unknown-fields-of-every-wire-type-skipped", "v1", "Pod",
     ld(2, vi(500, 1) + key(501, 1) + bytes(8) + ld(502, "zz") + key(503, 5) + bytes(4)
        + ld(3, "Always")),
     {"restartPolicy": "Always"}),
]


@pytest.mark.parametrize(("api_version", "kind", "raw", "spec"),
                         [c[1:] for c in WIRE_CASES], ids=[c[0] for c in WIRE_CASES])
def test_wire_rules(api_version: str, kind: str, raw: bytes, spec: Any) -> None:
    assert decode(api_version, kind, raw)["spec"] == spec


TIME_CASES = [
    ("empty-time-omitted", b"", None),
    ("explicit-zero-seconds-is-epoch", vi(1, 0), "1970-01-01T00:00:00Z"),
    ("nanos-dropped", vi(1, T_2024) + vi(2, 500_000_000), "2024-01-02T03:04:05Z"),
    ("before-epoch", vi(1, -1), "1969-12-31T23:59:59Z"),
]


@pytest.mark.parametrize(("raw_time", "want"), [c[1:] for c in TIME_CASES],
                         ids=[c[0] for c in TIME_CASES])
def test_time(raw_time: bytes, want: str | None) -> None:
    got = decode("v1", "ConfigMap", ld(1, ld(1, "c") + ld(8, raw_time)))["metadata"]
    assert got.get("creationTimestamp") == want
    assert ("creationTimestamp" in got) == (want is not None)


def test_quantity_without_string_is_zero() -> None:
    got = decode("v1", "Pod", ld(2, ld(2, ld(1, "c") + ld(8, entry(1, "cpu", b"")))))
    assert got["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "0"}}


def test_managed_fields_carry_their_json() -> None:
    fields = b'{"f:metadata":{"f:labels":{}}}'
    got = decode("v1", "ConfigMap", ld(1, ld(1, "c") + ld(17, ld(1, "kubectl") + ld(2, "Update")
                                                             + ld(7, ld(1, fields)))))
    assert got["metadata"]["managedFields"] == [
        {"manager": "kubectl", "operation": "Update",
         "fieldsV1": {"f:metadata": {"f:labels": {}}}}]


# --- errors -----------------------------------------------------------------------------

NS = "v1", "Namespace"
ERROR_CASES: list[tuple[str, bytes, int]] = [
    ("empty-body", b"", 400),
    ("wrong-magic", b"k8s\x01" + ld(1, ""), 400),
    ("json-body", b'{"kind":"Namespace"}', 400),
    ("magic-only", MAGIC, 400),
    ("envelope-truncated-varint", MAGIC + b"\x0a\x80", 400),
    ("envelope-length-beyond-end", MAGIC + b"\x0a\x05ab", 400),
    ("envelope-typemeta-as-varint", MAGIC + vi(1, 3), 400),
    ("missing-kind", MAGIC + ld(1, ld(1, "v1")) + ld(2, b""), 400),
    ("missing-api-version", MAGIC + ld(1, ld(2, "Namespace")) + ld(2, b""), 400),
    ("unknown-kind", envelope("example.com/v1", "Widget", b""), 415),
    ("known-kind-other-group", envelope("apps/v1", "Namespace", b""), 415),
    ("raw-truncated-tag", envelope(*NS, b"\x8a"), 400),
    ("raw-truncated-value-varint", envelope(*NS, ld(2, key(1, 0) + b"\xff")), 400),
    ("raw-length-beyond-end", envelope(*NS, b"\x0a\x10\x0a\x01a"), 400),
    ("raw-varint-11-bytes", envelope(*NS, ld(1, key(7, 0) + b"\x80" * 10 + b"\x01")), 400),
    ("field-number-zero", envelope(*NS, vi(0, 1)), 400),
    ("start-group-wire-type", envelope(*NS, key(50, 3)), 400),
    ("end-group-wire-type", envelope(*NS, key(50, 4)), 400),
    ("wire-type-6", envelope(*NS, key(50, 6)), 400),
    ("wire-type-7", envelope(*NS, key(50, 7)), 400),
    ("truncated-fixed64", envelope(*NS, key(50, 1) + bytes(7)), 400),
    ("truncated-fixed32", envelope(*NS, key(50, 5) + bytes(3)), 400),
    ("string-sent-as-varint", envelope(*NS, ld(1, vi(1, 5))), 400),
    ("int-sent-as-bytes", envelope("apps/v1", "Deployment", ld(2, ld(1, "3"))), 400),
    ("message-sent-as-varint", envelope(*NS, vi(1, 1)), 400),
    ("invalid-utf8-name", envelope(*NS, ld(1, ld(1, b"\xff\xfe"))), 400),
    ("invalid-utf8-kind", MAGIC + ld(1, ld(1, "v1") + ld(2, b"\xc3")), 400),
    ("intorstring-type-2", envelope("v1", "Service", ld(2, ld(1, ld(4, vi(1, 2))))), 400),
    ("time-out-of-range", envelope(*NS, ld(1, ld(8, vi(1, 1 << 62)))), 400),
    ("time-seconds-as-bytes", envelope(*NS, ld(1, ld(8, ld(1, "x")))), 400),
    ("time-nanos-as-bytes", envelope(*NS, ld(1, ld(8, vi(1, 5) + ld(2, "x")))), 400),
    ("empty-quantity-string", envelope("v1", "Pod", ld(2, ld(2, ld(8, entry(1, "cpu",
                                                                            ld(1, "")))))), 400),
    ("fieldsv1-not-json", envelope(*NS, ld(1, ld(17, ld(7, ld(1, "{"))))), 400),
    ("fieldsv1-deeply-nested", envelope(*NS, ld(1, ld(17, ld(7, ld(1, "[" * 100_000))))), 400),
    ("map-entry-key-as-varint", envelope("v1", "ConfigMap", ld(2, vi(1, 1))), 400),
    ("map-entry-as-varint", envelope("v1", "ConfigMap", vi(2, 1)), 400),
]


@pytest.mark.parametrize(("body", "code"), [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
def test_malformed_or_unsupported_bodies(body: bytes, code: int) -> None:
    with pytest.raises(APIError) as err:
        decode_k8s_protobuf(body)
    reason = {400: "BadRequest", 415: "UnsupportedMediaType"}[code]
    assert (err.value.code, err.value.reason) == (code, reason)
    assert err.value.message


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """One random corruption: flip, replace, truncate, insert, delete or duplicate bytes."""
    buf = bytearray(data)
    pos = rng.randrange(len(buf))
    op = rng.randrange(6)
    if op == 0:
        buf[pos] ^= 1 << rng.randrange(8)
    elif op == 1:
        buf[pos] = rng.randrange(256)
    elif op == 2:
        del buf[pos:]
    elif op == 3:
        buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
    elif op == 4:
        del buf[pos:pos + rng.randrange(1, 8)]
    else:
        buf[pos:pos] = buf[pos:pos + rng.randrange(1, 16)]
    return bytes(buf)


@pytest.mark.parametrize("stem", DECODED_FIXTURES + UNSUPPORTED_FIXTURES,
                         ids=DECODED_FIXTURES + UNSUPPORTED_FIXTURES)
def test_random_mutations_only_raise_api_errors(stem: str) -> None:
    rng = random.Random(f"svcnet-protobuf-{stem}")
    original = (FIXTURES / f"{stem}.pb").read_bytes()
    codes: set[int] = set()
    for _ in range(400):
        body = original
        for _ in range(rng.randrange(1, 4)):
            body = _mutate(rng, body) if body else body
        try:
            result = decode_k8s_protobuf(body)
        except APIError as exc:
            codes.add(exc.code)
        else:
            assert isinstance(result, dict) and {"apiVersion", "kind"} <= result.keys()
    assert codes <= {400, 415}
    assert 400 in codes


def test_random_bytes_after_magic_only_raise_api_errors() -> None:
    rng = random.Random(20240102)
    for _ in range(2000):
        body = MAGIC + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        try:
            decode_k8s_protobuf(body)
        except APIError as exc:
            assert exc.code in (400, 415)


# --- media type -------------------------------------------------------------------------

MEDIA_CASES = [
    ("plain", "application/vnd.kubernetes.protobuf", True),
    ("with-params", "application/vnd.kubernetes.protobuf; charset=utf-8", True),
    ("upper-case", "Application/VND.Kubernetes.Protobuf", True),
    ("json", "application/json", False),
    ("protobuf-stream", "application/vnd.kubernetes.protobuf;stream=watch", True),
    ("empty", "", False),
]


@pytest.mark.parametrize(("content_type", "want"), [c[1:] for c in MEDIA_CASES],
                         ids=[c[0] for c in MEDIA_CASES])
def test_is_protobuf(content_type: str, want: bool) -> None:
    assert is_protobuf(content_type) is want
