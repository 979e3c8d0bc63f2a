"""The official ``kubernetes`` Python client against a real svcnet API server: create,
read, list, patch, replace, watch and delete on every served resource."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from svcnet.testing.cluster import APIServerProcess

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config, watch  # noqa: E402


@pytest.fixture(scope="module")
def api(apiserver: APIServerProcess) -> Iterator[client.ApiClient]:
    c = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        yield c
    finally:
        c.close()


@dataclass
class Case:
    """How to drive one resource through the typed client."""

    name: str
    api: str
    suffix: str  # e.g. "namespaced_config_map"
    body: Callable[[str], dict[str, Any]]
    namespaced: bool = True
    patch: dict[str, Any] | None = None


def meta(name: str) -> dict[str, Any]:
    return {"name": name, "labels": {"suite": "py"}}


POD_SPEC = {"containers": [{"name": "c", "image": "nginx"}]}
TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}

CASES = [
    Case("configmap", "CoreV1Api", "namespaced_config_map",
         lambda n: {"metadata": meta(n), "data": {"a": "b"}}),
    Case("secret", "CoreV1Api", "namespaced_secret",
         lambda n: {"metadata": meta(n), "stringData": {"a": "b"}}),
    Case("service", "CoreV1Api", "namespaced_service",
         lambda n: {"metadata": meta(n), "spec": {"ports": [{"port": 80}],
                                                  "selector": {"app": "x"}}}),
    Case("endpoints", "CoreV1Api", "namespaced_endpoints",
         lambda n: {"metadata": meta(n), "subsets": [
             {"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80}]}]}),
    Case("pod", "CoreV1Api", "namespaced_pod",
         lambda n: {"metadata": meta(n), "spec": POD_SPEC}),
    Case("serviceaccount", "CoreV1Api", "namespaced_service_account",
         lambda n: {"metadata": meta(n)}),
    Case("event", "CoreV1Api", "namespaced_event",
         lambda n: {"metadata": meta(n), "involvedObject": {"kind": "Pod", "name": "p",
                                                            "namespace": "pyns"},
                    "reason": "Test", "message": "hello", "type": "Normal"}),
    Case("node", "CoreV1Api", "node", lambda n: {"metadata": meta(n)}, namespaced=False),
    Case("namespace", "CoreV1Api", "namespace", lambda n: {"metadata": meta(n)},
         namespaced=False),
    Case("deployment", "AppsV1Api", "namespaced_deployment",
         lambda n: {"metadata": meta(n), "spec": {"selector": {"matchLabels": {"app": "x"}},
                                                  "template": TEMPLATE}}),
    Case("replicaset", "AppsV1Api", "namespaced_replica_set",
         lambda n: {"metadata": meta(n), "spec": {"selector": {"matchLabels": {"app": "x"}},
                                                  "template": TEMPLATE}}),
    Case("endpointslice", "DiscoveryV1Api", "namespaced_endpoint_slice",
         lambda n: {"metadata": meta(n), "addressType": "IPv4",
                    "endpoints": [{"addresses": ["10.244.0.5"]}], "ports": [{"port": 80}]}),
    Case("ingress", "NetworkingV1Api", "namespaced_ingress",
         lambda n: {"metadata": meta(n), "spec": {"rules": [{"host": "a.example.com", "http": {
             "paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {
                 "name": "s", "port": {"number": 80}}}}]}}]}}),
    Case("ingressclass", "NetworkingV1Api", "ingress_class",
         lambda n: {"metadata": meta(n), "spec": {"controller": "svcnet.io/ingress"}},
         namespaced=False),
    Case("lease", "CoordinationV1Api", "namespaced_lease",
         lambda n: {"metadata": meta(n), "spec": {"holderIdentity": "me"}}),
]


@pytest.fixture(scope="module")
def pyns(api: client.ApiClient) -> str:
    client.CoreV1Api(api).create_namespace({"metadata": {"name": "pyns"}})
    return "pyns"


def call(api: client.ApiClient, case: Case, verb: str, *args: Any, **kw: Any) -> Any:
    target = getattr(client, case.api)(api)
    fn = getattr(target, f"{verb}_{case.suffix}")
    return fn(*args, **kw)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_crud_and_watch(api: client.ApiClient, pyns: str, case: Case) -> None:
    name = f"py-{case.name}"
    ns_args: tuple[str, ...] = (pyns,) if case.namespaced else ()
    list_verb = "list" if case.namespaced or case.suffix != "namespace" else "list"
    seen: list[tuple[str, str]] = []
    started = threading.Event()
    # Watch from a resourceVersion taken now, so every change below is seen however late
    # the watch request reaches the server.
    since = call(api, case, "list", *ns_args, label_selector="suite=py").metadata.resource_version

    def watcher() -> None:
        w = watch.Watch()
        target = getattr(getattr(client, case.api)(api), f"{list_verb}_{case.suffix}")
        started.set()
        for ev in w.stream(target, *ns_args, label_selector="suite=py",
                           field_selector=f"metadata.name={name}", timeout_seconds=10,
                           resource_version=since):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=watcher, daemon=True)
    t.start()
    started.wait(5)

    created = call(api, case, "create", *ns_args, case.body(name))
    assert created.metadata.name == name
    assert created.metadata.uid and created.metadata.resource_version
    got = call(api, case, "read", name, *ns_args)
    assert got.metadata.uid == created.metadata.uid
    listed = call(api, case, "list", *ns_args, label_selector="suite=py")
    assert name in [i.metadata.name for i in listed.items]
    patched = call(api, case, "patch", name, *ns_args, {"metadata": {"labels": {"p": "1"}}})
    assert patched.metadata.labels["p"] == "1"
    body = api.sanitize_for_serialization(patched)
    body["metadata"]["labels"]["r"] = "2"
    replaced = call(api, case, "replace", name, *ns_args, body)
    assert {"suite": "py", "p": "1", "r": "2"}.items() <= replaced.metadata.labels.items()
    call(api, case, "delete", name, *ns_args)
    t.join(15)
    types = [s[0] for s in seen]
    assert types[0] == "ADDED" and types[-1] == "DELETED", seen
    assert "MODIFIED" in types


def test_stale_replace_is_409(api: client.ApiClient, pyns: str) -> None:
    v1 = client.CoreV1Api(api)
    cm = v1.create_namespaced_config_map(pyns, {"metadata": {"name": "stale"}})
    v1.patch_namespaced_config_map("stale", pyns, {"data": {"x": "1"}})
    body = api.sanitize_for_serialization(cm)
    body["data"] = {"x": "2"}
    with pytest.raises(client.ApiException) as e:
        v1.replace_namespaced_config_map("stale", pyns, body)
    assert e.value.status == 409


def test_scale_subresource(api: client.ApiClient, pyns: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(pyns, {"metadata": {"name": "scaled"}, "spec": {
        "selector": {"matchLabels": {"app": "x"}}, "template": TEMPLATE}})
    s = apps.patch_namespaced_deployment_scale("scaled", pyns, {"spec": {"replicas": 5}})
    assert s.spec.replicas == 5
    s = apps.read_namespaced_deployment_scale("scaled", pyns)
    assert s.spec.replicas == 5 and s.status.selector == "app=x"
    assert apps.read_namespaced_deployment("scaled", pyns).spec.replicas == 5


def test_status_subresource_only_changes_status(api: client.ApiClient, pyns: str) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_pod(pyns, {"metadata": {"name": "st"}, "spec": POD_SPEC})
    pod = v1.patch_namespaced_pod_status("st", pyns, {
        "metadata": {"labels": {"ignored": "yes"}},
        "status": {"phase": "Running", "podIP": "10.244.0.9",
                   "conditions": [{"type": "Ready", "status": "True"}]}})
    assert pod.status.phase == "Running"
    assert not (pod.metadata.labels or {}).get("ignored")
    # and a main-resource write leaves status alone
    pod = v1.patch_namespaced_pod("st", pyns, {"status": {"phase": "Failed"},
                                              "metadata": {"labels": {"a": "b"}}})
    assert pod.status.phase == "Running" and pod.metadata.labels["a"] == "b"
