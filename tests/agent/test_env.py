"""Container environment contract: service link variables, env/envFrom resolution with
the kubelet's precedence, fieldRef, ConfigMap/Secret refs, and $(VAR) expansion."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from svcnet.agent.env import (
    ContainerConfigError,
    container_env,
    expand,
    expand_all,
    service_env,
)


def svc(name: str, ip: str, *ports: dict[str, Any], ns: str = "default",
        type_: str = "ClusterIP") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"type": type_, "clusterIP": ip, "ports": list(ports)}}


KUBERNETES = svc("kubernetes", "10.96.0.1",
                 {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443})

KUBERNETES_VARS = {
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "KUBERNETES_SERVICE_PORT_HTTPS": "443",
    "KUBERNETES_PORT": "tcp://10.96.0.1:443",
    "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
    "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
    "KUBERNETES_PORT_443_TCP_PORT": "443",
    "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
}

# The Service concept page's example, verbatim.
REDIS_PRIMARY_VARS = {
    "REDIS_PRIMARY_SERVICE_HOST": "10.0.0.11",
    "REDIS_PRIMARY_SERVICE_PORT": "6379",
    "REDIS_PRIMARY_PORT": "tcp://10.0.0.11:6379",
    "REDIS_PRIMARY_PORT_6379_TCP": "tcp://10.0.0.11:6379",
    "REDIS_PRIMARY_PORT_6379_TCP_PROTO": "tcp",
    "REDIS_PRIMARY_PORT_6379_TCP_PORT": "6379",
    "REDIS_PRIMARY_PORT_6379_TCP_ADDR": "10.0.0.11",
}

SERVICE_CASES: list[tuple[str, list[dict[str, Any]], str, bool, dict[str, str]]] = [
    ("docs example redis-primary plus kubernetes",
     [svc("redis-primary", "10.0.0.11", {"port": 6379, "targetPort": 6379})],
     "default", True, {**KUBERNETES_VARS, **REDIS_PRIMARY_VARS}),
    ("service links disabled keeps only the master service",
     [svc("redis-primary", "10.0.0.11", {"port": 6379})], "default", False, KUBERNETES_VARS),
    ("services of other namespaces are ignored",
     [svc("redis-primary", "10.0.0.11", {"port": 6379}, ns="other")], "default", True,
     KUBERNETES_VARS),
    ("headless and ExternalName services give no variables",
     [svc("db", "None", {"port": 5432}),
      {"metadata": {"name": "ext", "namespace": "default"},
       "spec": {"type": "ExternalName", "externalName": "example.com"}}],
     "default", True, KUBERNETES_VARS),
    ("named ports, UDP, dashes in port names",
     [svc("kube-dns", "10.96.0.10",
          {"name": "dns", "port": 53, "protocol": "UDP"},
          {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
          {"name": "metrics", "port": 9153, "protocol": "TCP"})],
     "default", True, {
         **KUBERNETES_VARS,
         "KUBE_DNS_SERVICE_HOST": "10.96.0.10",
         "KUBE_DNS_SERVICE_PORT": "53",
         "KUBE_DNS_SERVICE_PORT_DNS": "53",
         "KUBE_DNS_SERVICE_PORT_DNS_TCP": "53",
         "KUBE_DNS_SERVICE_PORT_METRICS": "9153",
         "KUBE_DNS_PORT": "udp://10.96.0.10:53",
         "KUBE_DNS_PORT_53_UDP": "udp://10.96.0.10:53",
         "KUBE_DNS_PORT_53_UDP_PROTO": "udp",
         "KUBE_DNS_PORT_53_UDP_PORT": "53",
         "KUBE_DNS_PORT_53_UDP_ADDR": "10.96.0.10",
         "KUBE_DNS_PORT_53_TCP": "tcp://10.96.0.10:53",
         "KUBE_DNS_PORT_53_TCP_PROTO": "tcp",
         "KUBE_DNS_PORT_53_TCP_PORT": "53",
         "KUBE_DNS_PORT_53_TCP_ADDR": "10.96.0.10",
         "KUBE_DNS_PORT_9153_TCP": "tcp://10.96.0.10:9153",
         "KUBE_DNS_PORT_9153_TCP_PROTO": "tcp",
         "KUBE_DNS_PORT_9153_TCP_PORT": "9153",
         "KUBE_DNS_PORT_9153_TCP_ADDR": "10.96.0.10",
     }),
    ("a pod namespace service named kubernetes wins over the master one",
     [svc("kubernetes", "10.96.7.7", {"port": 80}, ns="team")], "team", True, {
         "KUBERNETES_SERVICE_HOST": "10.96.7.7",
         "KUBERNETES_SERVICE_PORT": "80",
         "KUBERNETES_PORT": "tcp://10.96.7.7:80",
         "KUBERNETES_PORT_80_TCP": "tcp://10.96.7.7:80",
         "KUBERNETES_PORT_80_TCP_PROTO": "tcp",
         "KUBERNETES_PORT_80_TCP_PORT": "80",
         "KUBERNETES_PORT_80_TCP_ADDR": "10.96.7.7",
     }),
    ("with links disabled the master service is kept over the namespace's own",
     [svc("kubernetes", "10.96.7.7", {"port": 80}, ns="team")], "team", False,
     KUBERNETES_VARS),
    ("IPv6 cluster IPs are bracketed in URLs",
     [svc("web", "fd00::10", {"port": 80})], "default", True, {
         **KUBERNETES_VARS,
         "WEB_SERVICE_HOST": "fd00::10",
         "WEB_SERVICE_PORT": "80",
         "WEB_PORT": "tcp://[fd00::10]:80",
         "WEB_PORT_80_TCP": "tcp://[fd00::10]:80",
         "WEB_PORT_80_TCP_PROTO": "tcp",
         "WEB_PORT_80_TCP_PORT": "80",
         "WEB_PORT_80_TCP_ADDR": "fd00::10",
     }),
]


@pytest.mark.parametrize(("services", "ns", "links", "expected"),
                         [c[1:] for c in SERVICE_CASES], ids=[c[0] for c in SERVICE_CASES])
def test_service_env(services: list[dict[str, Any]], ns: str, links: bool,
                     expected: dict[str, str]) -> None:
    assert service_env(services, ns, links, [KUBERNETES]) == expected


def test_service_env_without_master_service() -> None:
    assert service_env([], "default", True, []) == {}


EXPAND_CASES: list[tuple[str, str, dict[str, str], str]] = [
    ("plain reference", "$(A)", {"A": "x"}, "x"),
    ("embedded references", "a-$(A)-$(B)-b", {"A": "1", "B": "2"}, "a-1-2-b"),
    ("unknown reference kept", "$(NOPE)/x", {}, "$(NOPE)/x"),
    ("escaped operator", "$$(A)", {"A": "x"}, "$(A)"),
    ("double escape then reference", "$$$(A)", {"A": "x"}, "$x"),
    ("lone dollar kept", "cost $5 and $", {}, "cost $5 and $"),
    ("shell style is not expanded", "${A} $A", {"A": "x"}, "${A} $A"),
    ("incomplete reference kept", "$(A", {"A": "x"}, "$(A"),
    ("empty name", "$()", {"": "z"}, "z"),
    ("value is not re-expanded", "$(A)", {"A": "$(B)", "B": "no"}, "$(B)"),
]


@pytest.mark.parametrize(("s", "env", "want"), [c[1:] for c in EXPAND_CASES],
                         ids=[c[0] for c in EXPAND_CASES])
def test_expand(s: str, env: dict[str, str], want: str) -> None:
    assert expand(s, env) == want


def test_expand_all_for_command_and_args() -> None:
    assert expand_all(["echo", "$(MSG)", "$$(MSG)"], {"MSG": "hi"}) == ["echo", "hi", "$(MSG)"]
    assert expand_all(None, {}) == []


POD: dict[str, Any] = {
    "metadata": {"name": "web-1", "namespace": "team", "uid": "u-1",
                 "labels": {"app": "web", "tier": "front"},
                 "annotations": {"note": "hi"}},
    "spec": {"nodeName": "node-a", "serviceAccountName": "builder"},
    "status": {"podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}],
               "hostIP": "172.18.0.2", "hostIPs": [{"ip": "172.18.0.2"}]},
}

CONFIGMAPS: dict[tuple[str, str], dict[str, Any]] = {
    ("team", "cfg"): {"data": {"LEVEL": "debug", "MODE": "fast", "bad key": "x",
                               "1DIGIT": "y"}},
}
SECRETS: dict[tuple[str, str], dict[str, Any]] = {
    ("team", "creds"): {"data": {"PASSWORD": base64.b64encode(b"s3cret").decode(),
                                 "MODE": base64.b64encode(b"secret-mode").decode()}},
}


def lookup_cm(ns: str, name: str) -> dict[str, Any] | None:
    return CONFIGMAPS.get((ns, name))


def lookup_secret(ns: str, name: str) -> dict[str, Any] | None:
    return SECRETS.get((ns, name))


def field(path: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


FIELD_CASES: list[tuple[str, str, str]] = [
    ("pod name", "metadata.name", "web-1"),
    ("namespace", "metadata.namespace", "team"),
    ("uid", "metadata.uid", "u-1"),
    ("one label", "metadata.labels['app']", "web"),
    ("missing label is empty", "metadata.labels['nope']", ""),
    ("one annotation", "metadata.annotations['note']", "hi"),
    ("node name", "spec.nodeName", "node-a"),
    ("service account", "spec.serviceAccountName", "builder"),
    ("host IP", "status.hostIP", "172.18.0.2"),
    ("pod IP", "status.podIP", "10.244.0.5"),
    ("pod IPs", "status.podIPs", "10.244.0.5,fd00::5"),
]


@pytest.mark.parametrize(("path", "want"), [c[1:] for c in FIELD_CASES],
                         ids=[c[0] for c in FIELD_CASES])
def test_field_ref(path: str, want: str) -> None:
    c = {"env": [{"name": "X", **field(path)}]}
    assert dict(container_env(c, POD, {}, lookup_cm, lookup_secret))["X"] == want


def test_pod_ips_argument_overrides_status() -> None:
    c = {"env": [{"name": "IP", **field("status.podIP")}]}
    got = container_env(c, POD, {}, lookup_cm, lookup_secret, pod_ips=["127.0.1.9"])
    assert dict(got)["IP"] == "127.0.1.9"


ENV_CASES: list[tuple[str, dict[str, Any], dict[str, str], dict[str, str]]] = [
    ("env overrides envFrom which overrides service vars",
     {"envFrom": [{"configMapRef": {"name": "cfg"}}],
      "env": [{"name": "MODE", "value": "slow"}, {"name": "WEB_SERVICE_HOST", "value": "me"}]},
     {"WEB_SERVICE_HOST": "10.96.0.9", "WEB_SERVICE_PORT": "80"},
     {"LEVEL": "debug", "MODE": "slow", "WEB_SERVICE_HOST": "me", "WEB_SERVICE_PORT": "80"}),
    ("later envFrom wins, prefix applied, secrets decoded",
     {"envFrom": [{"configMapRef": {"name": "cfg"}},
                  {"secretRef": {"name": "creds"}},
                  {"prefix": "CM_", "configMapRef": {"name": "cfg"}}]},
     {}, {"LEVEL": "debug", "MODE": "secret-mode", "PASSWORD": "s3cret",
          "CM_LEVEL": "debug", "CM_MODE": "fast", "CM_1DIGIT": "y"}),
    ("key refs",
     {"env": [{"name": "L", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}},
              {"name": "P", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}}]},
     {}, {"L": "debug", "P": "s3cret"}),
    ("optional missing sources leave the variable unset or as before",
     {"envFrom": [{"configMapRef": {"name": "gone", "optional": True}},
                  {"configMapRef": {"name": "cfg"}}],
      "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k",
                                                           "optional": True}}},
              {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {
                  "name": "cfg", "key": "missing", "optional": True}}}]},
     {}, {"LEVEL": "debug", "MODE": "fast"}),
    ("values expand earlier variables and service vars but not later ones",
     {"env": [{"name": "A", "value": "a"},
              {"name": "B", "value": "$(A)-$(C)-$(WEB_SERVICE_HOST)-$$(A)"},
              {"name": "C", "value": "c"},
              {"name": "E"}]},
     {"WEB_SERVICE_HOST": "10.96.0.9"},
     {"A": "a", "B": "a-$(C)-10.96.0.9-$(A)", "C": "c", "E": "", "WEB_SERVICE_HOST": "10.96.0.9"}),
    ("valueFrom results are not expanded",
     {"env": [{"name": "A", "value": "x"},
              {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}}]},
     {}, {"A": "x", "B": "debug"}),
]


@pytest.mark.parametrize(("container", "service_vars", "want"), [c[1:] for c in ENV_CASES],
                         ids=[c[0] for c in ENV_CASES])
def test_container_env(container: dict[str, Any], service_vars: dict[str, str],
                       want: dict[str, str]) -> None:
    got = container_env(container, POD, service_vars, lookup_cm, lookup_secret)
    names = [k for k, _ in got]
    assert len(names) == len(set(names)), "a variable appears twice"
    assert dict(got) == want


def test_order_is_definition_order_then_sorted_service_vars() -> None:
    c = {"env": [{"name": "Z", "value": "1"}, {"name": "A", "value": "2"},
                 {"name": "Z", "value": "3"}]}
    got = container_env(c, POD, {"S_B": "b", "S_A": "a"}, lookup_cm, lookup_secret)
    assert got == [("Z", "3"), ("A", "2"), ("S_A", "a"), ("S_B", "b")]


def test_invalid_envfrom_keys_are_reported() -> None:
    seen: list[str] = []
    c = {"envFrom": [{"configMapRef": {"name": "cfg"}}]}
    got = dict(container_env(c, POD, {}, lookup_cm, lookup_secret, on_invalid_keys=seen.append))
    assert "bad key" not in got and "1DIGIT" not in got
    assert seen == ["Keys [1DIGIT, bad key] from the EnvFrom configmap team/cfg were skipped "
                    "since they are considered invalid environment variable names."]


ERROR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("missing configmap", {"envFrom": [{"configMapRef": {"name": "gone"}}]},
     'configmap "gone" not found'),
    ("missing secret", {"env": [{"name": "P", "valueFrom": {"secretKeyRef": {
        "name": "gone", "key": "k"}}}]}, 'secret "gone" not found'),
    ("missing configmap key", {"env": [{"name": "P", "valueFrom": {"configMapKeyRef": {
        "name": "cfg", "key": "nope"}}}]}, "couldn't find key nope in ConfigMap team/cfg"),
    ("missing secret key", {"env": [{"name": "P", "valueFrom": {"secretKeyRef": {
        "name": "creds", "key": "nope"}}}]}, "couldn't find key nope in Secret team/creds"),
    ("unsupported field path", {"env": [{"name": "X", **field("spec.hostname")}]},
     "unsupported fieldPath: spec.hostname"),
    ("resourceFieldRef", {"env": [{"name": "X", "valueFrom": {"resourceFieldRef": {
        "resource": "limits.cpu"}}}]}, "resourceFieldRef is not supported"),
]


@pytest.mark.parametrize(("container", "message"), [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
def test_config_errors(container: dict[str, Any], message: str) -> None:
    with pytest.raises(ContainerConfigError, match=message.replace("(", r"\(")) as info:
        container_env(container, POD, {}, lookup_cm, lookup_secret)
    assert info.value.reason == "CreateContainerConfigError"
