"""Behaviour of svcnet.model.patch: merge patch, JSON patch, strategic merge patch,
server-side apply and the content-type dispatcher."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from svcnet.model.errors import APIError
from svcnet.model.patch import (
    apply_patch,
    field_set,
    fields_v1,
    json_merge_patch,
    json_patch,
    parse_fields_v1,
    patch_by_content_type,
    patch_meta,
    path_string,
    strategic_merge_patch,
)


def _directive_keys(value: Any) -> list[str]:
    """Every ``$``-prefixed key anywhere in ``value``."""
    if isinstance(value, dict):
        found = [k for k in value if k.startswith("$")]
        for child in value.values():
            found += _directive_keys(child)
        return found
    if isinstance(value, list):
        return [k for child in value for k in _directive_keys(child)]
    return []


# --- RFC 7386 ---------------------------------------------------------------------------

MERGE_CASES = [
    # RFC 7386 appendix A
    ("replace-member", {"a": "b"}, {"a": "c"}, {"a": "c"}),
    ("add-member", {"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ("null-deletes", {"a": "b"}, {"a": None}, {}),
    ("null-deletes-one", {"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ("array-replaced-by-string", {"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ("string-replaced-by-array", {"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ("nested-merge", {"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ("array-replaced-whole", {"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ("arrays", ["a", "b"], ["c", "d"], ["c", "d"]),
    ("object-to-array", {"a": "b"}, ["c"], ["c"]),
    ("null-patch", {"a": "foo"}, None, None),
    ("string-patch", {"a": "foo"}, "bar", "bar"),
    ("null-in-target-kept", {"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ("array-target", [1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ("nested-null-dropped", {}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    # RFC 7386 section 3
    ("rfc-section-3",
     {"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
      "tags": ["example", "sample"], "content": "This will be unchanged"},
     {"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": None},
      "tags": ["example"]},
     {"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
      "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"}),
    ("kubectl-label-remove", {"metadata": {"labels": {"x": "y", "a": "b"}}},
     {"metadata": {"labels": {"x": None}}}, {"metadata": {"labels": {"a": "b"}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), [c[1:] for c in MERGE_CASES],
                         ids=[c[0] for c in MERGE_CASES])
def test_json_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy(target)
    assert json_merge_patch(target, patch) == expected
    assert target == before


def test_json_merge_patch_result_shares_nothing_with_inputs() -> None:
    target = {"a": {"b": [1]}}
    patch = {"c": {"d": [2]}}
    result = json_merge_patch(target, patch)
    result["a"]["b"].append(9)
    result["c"]["d"].append(9)
    assert target == {"a": {"b": [1]}} and patch == {"c": {"d": [2]}}


# --- RFC 6902 ---------------------------------------------------------------------------

JSON_PATCH_CASES = [
    # RFC 6902 appendix A
    ("A1-add-member", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ("A2-add-array-element", {"foo": ["bar", "baz"]},
     [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    ("A3-remove-member", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}],
     {"foo": "bar"}),
    ("A4-remove-element", {"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
     {"foo": ["bar", "baz"]}),
    ("A5-replace", {"baz": "qux", "foo": "bar"},
     [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
    ("A6-move-member", {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ("A7-move-element", {"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ("A8-test-success", {"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ("A10-add-nested", {"foo": "bar"},
     [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ("A11-ignore-unknown-members", {"foo": "bar"},
     [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
    ("A14-escapes", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}],
     {"/": 9, "~1": 10}),
    ("slash-escape", {"a/b": 1}, [{"op": "replace", "path": "/a~1b", "value": 2}], {"a/b": 2}),
    ("A16-append-array-value", {"foo": ["bar"]},
     [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
    ("copy", {"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"}],
     {"a": {"b": [1]}, "c": {"b": [1]}}),
    ("replace-root", {"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}], {"b": 2}),
    ("test-number-int-float", {"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}], {"a": 1}),
    ("kubectl-patch-type-json", {"metadata": {"labels": {"a": "b"}}},
     [{"op": "add", "path": "/metadata/labels/c", "value": "d"}],
     {"metadata": {"labels": {"a": "b", "c": "d"}}}),
    ("ops-in-order", {"a": 1},
     [{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/a"},
      {"op": "test", "path": "/b", "value": 2}], {"b": 2}),
]


@pytest.mark.parametrize(("target", "ops", "expected"), [c[1:] for c in JSON_PATCH_CASES],
                         ids=[c[0] for c in JSON_PATCH_CASES])
def test_json_patch(target: Any, ops: list[dict[str, Any]], expected: Any) -> None:
    before = copy.deepcopy(target)
    assert json_patch(target, ops) == expected
    assert target == before


JSON_PATCH_FAILURES = [
    ("A9-test-fails", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], 422),
    ("A12-add-missing-parent", {"foo": "bar"},
     [{"op": "add", "path": "/baz/bat", "value": "qux"}], 422),
    ("A15-string-vs-number", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}],
     422),
    ("test-bool-vs-number", {"a": 1}, [{"op": "test", "path": "/a", "value": True}], 422),
    ("remove-missing", {"a": 1}, [{"op": "remove", "path": "/b"}], 422),
    ("replace-missing", {"a": 1}, [{"op": "replace", "path": "/b", "value": 2}], 422),
    ("index-out-of-range", {"a": [1]}, [{"op": "add", "path": "/a/5", "value": 2}], 422),
    ("leading-zero-index", {"a": [1, 2]}, [{"op": "remove", "path": "/a/01"}], 422),
    ("move-into-own-child", {"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}],
     422),
    ("later-op-fails-whole-patch", {"a": 1},
     [{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/zzz"}], 422),
    ("unknown-op", {"a": 1}, [{"op": "frobnicate", "path": "/a"}], 400),
    ("missing-value", {"a": 1}, [{"op": "add", "path": "/b"}], 400),
    ("missing-from", {"a": 1}, [{"op": "move", "path": "/b"}], 400),
    ("missing-path", {"a": 1}, [{"op": "remove"}], 400),
    ("op-not-object", {"a": 1}, ["remove"], 400),
    ("not-a-list", {"a": 1}, {"op": "remove", "path": "/a"}, 400),
    ("bad-escape", {"a": 1}, [{"op": "remove", "path": "/a~2"}], 400),
    ("pointer-without-slash", {"a": 1}, [{"op": "remove", "path": "a"}], 400),
]


@pytest.mark.parametrize(("target", "ops", "code"), [c[1:] for c in JSON_PATCH_FAILURES],
                         ids=[c[0] for c in JSON_PATCH_FAILURES])
def test_json_patch_failures(target: Any, ops: Any, code: int) -> None:
    before = copy.deepcopy(target)
    with pytest.raises(APIError) as info:
        json_patch(target, ops)
    assert info.value.code == code
    assert info.value.reason == {400: "BadRequest", 422: "Invalid"}[code]
    assert target == before


def test_json_patch_failed_test_names_the_path() -> None:
    with pytest.raises(APIError) as info:
        json_patch({"spec": {"replicas": 2}}, [{"op": "test", "path": "/spec/replicas", "value": 3}])
    assert "/spec/replicas" in info.value.message
    assert info.value.details["causes"][0]["message"] == info.value.message


# --- strategic merge patch --------------------------------------------------------------


def _deployment(containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"a": "1"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": containers}},
                 **spec},
    }


def _pod_spec(result: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = result["spec"]["template"]["spec"]
    return spec


NGINX = {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}
SIDECAR = {"name": "sidecar", "image": "busybox", "command": ["sleep", "inf"]}
ROLLING = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}


def _with(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` with the dotted ``path`` set to ``value``."""
    out = copy.deepcopy(obj)
    node = out
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


_DEP = _deployment([NGINX, SIDECAR], strategy=ROLLING)
_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "finalizers": ["a/x", "b/y"],
                 "ownerReferences": [{"uid": "u1", "name": "rs1", "kind": "ReplicaSet",
                                      "apiVersion": "apps/v1"}]},
    "spec": {
        "containers": [{"name": "c1", "image": "i1",
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "volumeMounts": [{"name": "v", "mountPath": "/data"}]},
                       {"name": "c2", "image": "i2"}],
        "volumes": [{"name": "v", "emptyDir": {}}],
        "tolerations": [{"key": "k1", "operator": "Exists"}],
        "imagePullSecrets": [{"name": "s1"}],
        "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
    },
    "status": {"phase": "Running",
               "conditions": [{"type": "Ready", "status": "False"},
                              {"type": "PodScheduled", "status": "True"}],
               "podIPs": [{"ip": "10.244.0.5"}]},
}
_SVC = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
    "spec": {"selector": {"app": "web"}, "externalIPs": ["1.1.1.1"],
             "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                       {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]},
}
_NODE = {
    "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
    "spec": {"podCIDRs": ["10.244.0.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}]},
    "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                             {"type": "Hostname", "address": "n1"}],
               "conditions": [{"type": "Ready", "status": "False"}]},
}
_LAST_APPLIED = '{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":3}}\n'

SMP_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("kubectl-apply-observed-patch", "Deployment", _DEP,
     {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                   _LAST_APPLIED}}, "spec": {"replicas": 3}},
     _with(_with(_DEP, "spec.replicas", 3), "metadata.annotations",
           {"a": "1", "kubectl.kubernetes.io/last-applied-configuration": _LAST_APPLIED})),
    ("set-image-keeps-order-and-untouched-container", "Deployment", _DEP,
     {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}],
                                     "containers": [{"image": "nginx:1.29", "name": "nginx"}]}}}},
     _with(_DEP, "spec.template.spec.containers.0.image", "nginx:1.29")),
    ("set-image-on-second-container", "Deployment", _DEP,
     {"spec": {"template": {"spec": {
         "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
         "containers": [{"image": "busybox:2", "name": "sidecar"}]}}}},
     _with(_DEP, "spec.template.spec.containers.1.image", "busybox:2")),
    ("set-element-order-reorders", "Deployment", _DEP,
     {"spec": {"template": {"spec": {
         "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}]}}}},
     _with(_DEP, "spec.template.spec.containers", [SIDECAR, NGINX])),
    ("rollout-restart-annotation", "Deployment", _DEP,
     {"spec": {"template": {"metadata": {"annotations": {
         "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}},
     _with(_DEP, "spec.template.metadata.annotations",
           {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"})),
    ("edit-replicas", "Deployment", _DEP, {"spec": {"replicas": 7}},
     _with(_DEP, "spec.replicas", 7)),
    ("new-container-appended", "Deployment", _DEP,
     {"spec": {"template": {"spec": {"containers": [{"name": "log", "image": "fluent"}]}}}},
     _with(_DEP, "spec.template.spec.containers",
           [NGINX, SIDECAR, {"name": "log", "image": "fluent"}])),
    ("container-port-merge-by-containerPort", "Deployment", _DEP,
     {"spec": {"template": {"spec": {"containers": [
         {"name": "nginx", "ports": [{"containerPort": 80, "name": "http"},
                                     {"containerPort": 443}]}]}}}},
     _with(_DEP, "spec.template.spec.containers.0.ports",
           [{"containerPort": 80, "name": "http"}, {"containerPort": 443}])),
    ("delete-container-directive", "Deployment", _DEP,
     {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}},
     _with(_DEP, "spec.template.spec.containers", [NGINX])),
    ("replace-list-directive", "Deployment", _DEP,
     {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"},
                                                    {"$patch": "replace"}]}}}},
     _with(_DEP, "spec.template.spec.containers", [{"name": "only", "image": "x"}])),
    ("replace-map-directive", "Deployment", _DEP,
     {"spec": {"selector": {"$patch": "replace", "matchLabels": {"tier": "fe"}}}},
     _with(_DEP, "spec.selector", {"matchLabels": {"tier": "fe"}})),
    ("delete-map-directive", "Deployment", _DEP,
     {"spec": {"strategy": {"$patch": "delete"}}},
     {**_DEP, "spec": {k: v for k, v in _DEP["spec"].items() if k != "strategy"}}),
    ("retain-keys-rolling-to-recreate", "Deployment", _DEP,
     {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
     _with(_DEP, "spec.strategy", {"type": "Recreate"})),
    ("retain-keys-with-null-member", "Deployment", _DEP,
     {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}},
     _with(_DEP, "spec.strategy", {"type": "Recreate"})),
    ("empty-merge-list-is-no-op", "Deployment", _DEP,
     {"spec": {"template": {"spec": {"containers": []}}}}, _DEP),
    ("null-deletes-field", "Deployment", _DEP, {"metadata": {"annotations": None}},
     {**_DEP, "metadata": {"name": "web", "namespace": "default"}}),
    ("env-merge-by-name-with-null", "Pod", _POD,
     {"spec": {"containers": [{"name": "c1", "env": [{"name": "B", "value": None,
                                                      "valueFrom": {"fieldRef": {
                                                          "fieldPath": "status.podIP"}}},
                                                     {"name": "C", "value": "3"}]}]}},
     _with(_POD, "spec.containers.0.env",
           [{"name": "A", "value": "1"},
            {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "C", "value": "3"}])),
    ("env-delete-directive", "Pod", _POD,
     {"spec": {"containers": [{"name": "c1", "env": [{"name": "A", "$patch": "delete"}]}]}},
     _with(_POD, "spec.containers.0.env", [{"name": "B", "value": "2"}])),
    ("volume-mount-by-mountPath", "Pod", _POD,
     {"spec": {"containers": [{"name": "c1", "volumeMounts": [
         {"mountPath": "/data", "readOnly": True}, {"name": "w", "mountPath": "/w"}]}]}},
     _with(_POD, "spec.containers.0.volumeMounts",
           [{"name": "v", "mountPath": "/data", "readOnly": True},
            {"name": "w", "mountPath": "/w"}])),
    ("volume-retain-keys-switches-source", "Pod", _POD,
     {"spec": {"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"],
                            "configMap": {"name": "cm"}}]}},
     _with(_POD, "spec.volumes", [{"name": "v", "configMap": {"name": "cm"}}])),
    ("tolerations-replaced", "Pod", _POD,
     {"spec": {"tolerations": [{"key": "k2", "operator": "Exists"}]}},
     _with(_POD, "spec.tolerations", [{"key": "k2", "operator": "Exists"}])),
    ("image-pull-secrets-by-name", "Pod", _POD,
     {"spec": {"imagePullSecrets": [{"name": "s2"}]}},
     _with(_POD, "spec.imagePullSecrets", [{"name": "s1"}, {"name": "s2"}])),
    ("host-aliases-by-ip", "Pod", _POD,
     {"spec": {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}]}},
     _with(_POD, "spec.hostAliases", [{"ip": "10.0.0.1", "hostnames": ["b"]}])),
    ("finalizers-union", "Pod", _POD, {"metadata": {"finalizers": ["b/y", "c/z"]}},
     _with(_POD, "metadata.finalizers", ["a/x", "b/y", "c/z"])),
    ("delete-from-primitive-list", "Pod", _POD,
     {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/x"]}},
     _with(_POD, "metadata.finalizers", ["b/y"])),
    ("owner-references-by-uid", "Pod", _POD,
     {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]}},
     _with(_POD, "metadata.ownerReferences",
           [{"uid": "u1", "name": "rs1", "kind": "ReplicaSet", "apiVersion": "apps/v1",
             "controller": True}])),
    ("pod-status-conditions-by-type", "Pod", _POD,
     {"status": {"conditions": [{"type": "Ready", "status": "True"}],
                 "podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}]}},
     _with(_with(_POD, "status.conditions",
                 [{"type": "Ready", "status": "True"},
                  {"type": "PodScheduled", "status": "True"}]),
           "status.podIPs", [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}])),
    ("service-ports-merge-by-port", "Service", _SVC,
     {"spec": {"ports": [{"port": 443, "targetPort": 9443}, {"port": 8080, "name": "alt"}]}},
     _with(_SVC, "spec.ports",
           [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "https", "port": 443, "targetPort": 9443, "protocol": "TCP"},
            {"port": 8080, "name": "alt"}])),
    ("service-external-ips-replaced", "Service", _SVC,
     {"spec": {"externalIPs": ["2.2.2.2"]}}, _with(_SVC, "spec.externalIPs", ["2.2.2.2"])),
    ("node-addresses-by-type", "Node", _NODE,
     {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
                 "conditions": [{"type": "Ready", "status": "True"}]}},
     _with(_with(_NODE, "status.addresses",
                 [{"type": "InternalIP", "address": "10.0.0.2"},
                  {"type": "Hostname", "address": "n1"}]),
           "status.conditions", [{"type": "Ready", "status": "True"}])),
    ("node-taints-replaced", "Node", _NODE, {"spec": {"taints": []}},
     _with(_NODE, "spec.taints", [])),
    ("scale-subresource", "Scale",
     {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "web"},
      "spec": {"replicas": 2}, "status": {"replicas": 2, "selector": "app=web"}},
     {"spec": {"replicas": 5}},
     {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "web"},
      "spec": {"replicas": 5}, "status": {"replicas": 2, "selector": "app=web"}}),
    ("configmap-finalizers-union", "ConfigMap",
     {"metadata": {"name": "c", "finalizers": ["x"]}, "data": {"a": "1"}},
     {"metadata": {"finalizers": ["y"]}, "data": {"a": None, "b": "2"}},
     {"metadata": {"name": "c", "finalizers": ["x", "y"]}, "data": {"b": "2"}}),
    ("unknown-kind-lists-replaced", "Widget",
     {"metadata": {"name": "w", "finalizers": ["x"]}, "spec": {"items": [{"name": "a"}]}},
     {"metadata": {"finalizers": ["y"]}, "spec": {"items": [{"name": "b"}]}},
     {"metadata": {"name": "w", "finalizers": ["y"]}, "spec": {"items": [{"name": "b"}]}}),
    ("unknown-kind-still-honours-directives", "Widget",
     {"metadata": {"name": "w"}, "spec": {"a": {"x": 1}, "b": {"y": 2}}},
     {"spec": {"a": {"$patch": "replace", "z": 3}, "b": {"$patch": "delete"}}},
     {"metadata": {"name": "w"}, "spec": {"a": {"z": 3}}}),
    ("directives-stripped-in-new-subtree", "Deployment",
     {"metadata": {"name": "d"}},
     {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "a"}],
                                     "containers": [{"name": "a", "image": "i",
                                                     "env": [{"name": "E", "value": "1"}]}]}}}},
     {"metadata": {"name": "d"},
      "spec": {"template": {"spec": {"containers": [
          {"name": "a", "image": "i", "env": [{"name": "E", "value": "1"}]}]}}}}),
    ("replicaset-template-containers-by-name", "ReplicaSet",
     {"spec": {"template": {"spec": {"containers": [NGINX, SIDECAR]}}}},
     {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "n2"}]}}}},
     {"spec": {"template": {"spec": {"containers": [{**NGINX, "image": "n2"}, SIDECAR]}}}}),
    ("deployment-status-conditions-by-type", "Deployment",
     {"status": {"conditions": [{"type": "Available", "status": "False"},
                                {"type": "Progressing", "status": "True"}]}},
     {"status": {"conditions": [{"type": "Available", "status": "True"}]}},
     {"status": {"conditions": [{"type": "Available", "status": "True"},
                                {"type": "Progressing", "status": "True"}]}}),
    ("namespace-status-conditions-by-type", "Namespace",
     {"status": {"phase": "Active", "conditions": [{"type": "A", "status": "False"}]}},
     {"status": {"conditions": [{"type": "B", "status": "True"}]}},
     {"status": {"phase": "Active", "conditions": [{"type": "A", "status": "False"},
                                                   {"type": "B", "status": "True"}]}}),
    ("patch-order-wins-without-set-element-order", "Pod",
     {"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}},
     {"spec": {"containers": [{"name": "c", "x": 1}, {"name": "a", "x": 1}]}},
     {"spec": {"containers": [{"name": "b"}, {"name": "c", "x": 1}, {"name": "a", "x": 1}]}}),
    ("whole-object-delete", "ConfigMap", {"metadata": {"name": "c"}}, {"$patch": "delete"}, {}),
]


@pytest.mark.parametrize(("kind", "original", "patch", "expected"), [c[1:] for c in SMP_CASES],
                         ids=[c[0] for c in SMP_CASES])
def test_strategic_merge_patch(kind: str, original: dict[str, Any], patch: dict[str, Any],
                               expected: dict[str, Any]) -> None:
    before_original, before_patch = copy.deepcopy(original), copy.deepcopy(patch)
    result = strategic_merge_patch(original, patch, kind)
    assert result == expected
    assert _directive_keys(result) == []
    assert original == before_original and patch == before_patch


def test_set_image_keeps_container_order_on_wire() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"image": "nginx:1.29", "name": "nginx"}]}}}}
    result = strategic_merge_patch(_DEP, patch, "Deployment")
    assert [c["name"] for c in _pod_spec(result)["containers"]] == ["nginx", "sidecar"]
    assert _pod_spec(result)["containers"][1] == SIDECAR


SMP_ERRORS = [
    ("unknown-patch-directive", {"spec": {"selector": {"$patch": "frob"}}}, 400),
    ("merge-list-element-without-key",
     {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}, 400),
    ("delete-element-without-key",
     {"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}, 400),
    ("merge-directive-in-list",
     {"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}}, 400),
    ("retain-keys-not-covering-patch",
     {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}, 400),
    ("retain-keys-not-a-list", {"spec": {"strategy": {"$retainKeys": "type"}}}, 400),
    ("set-element-order-not-a-list",
     {"spec": {"template": {"spec": {"$setElementOrder/containers": "nginx"}}}}, 400),
    ("delete-from-primitive-not-a-list",
     {"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}}, 400),
    ("list-of-lists", {"metadata": {"finalizers": [["x"]]}}, 422),
]


@pytest.mark.parametrize(("patch", "code"), [c[1:] for c in SMP_ERRORS],
                         ids=[c[0] for c in SMP_ERRORS])
def test_strategic_merge_patch_errors(patch: dict[str, Any], code: int) -> None:
    with pytest.raises(APIError) as info:
        strategic_merge_patch(_DEP, patch, "Deployment")
    assert info.value.code == code


PATCH_META_CASES = [
    ("pod-containers", "Pod", "spec.containers", "merge", "name"),
    ("deployment-containers", "Deployment", "spec.template.spec.containers", "merge", "name"),
    ("replicaset-init-containers", "ReplicaSet", "spec.template.spec.initContainers", "merge",
     "name"),
    ("container-env", "Pod", "spec.containers.env", "merge", "name"),
    ("container-ports", "Deployment", "spec.template.spec.containers.ports", "merge",
     "containerPort"),
    ("volumes", "Pod", "spec.volumes", "merge,retainKeys", "name"),
    ("service-ports", "Service", "spec.ports", "merge", "port"),
    ("strategy", "Deployment", "spec.strategy", "retainKeys", ""),
    ("owner-references-any-kind", "EndpointSlice", "metadata.ownerReferences", "merge", "uid"),
    ("finalizers-any-kind", "Ingress", "metadata.finalizers", "merge", ""),
    ("node-addresses", "Node", "status.addresses", "merge", "type"),
    ("tolerations", "Pod", "spec.tolerations", "", ""),
    ("unknown-kind", "Widget", "metadata.finalizers", "", ""),
]


@pytest.mark.parametrize(("kind", "path", "strategy", "merge_key"),
                         [c[1:] for c in PATCH_META_CASES], ids=[c[0] for c in PATCH_META_CASES])
def test_patch_meta(kind: str, path: str, strategy: str, merge_key: str) -> None:
    meta = patch_meta(kind, path)
    assert (meta.strategy, meta.merge_key) == (strategy, merge_key)


# --- server-side apply ------------------------------------------------------------------

NOW = "2025-01-01T00:00:00Z"
LATER = "2025-01-02T00:00:00Z"


def _svc_manifest(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "websvc", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"port": 80, "targetPort": 8080}], **spec}}


def _managers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["manager"]: e for e in obj["metadata"]["managedFields"]}


def test_apply_create_returns_applied_with_managed_fields() -> None:
    manifest = _svc_manifest()
    result = apply_patch(None, manifest, "Service", "kubectl", False, now=NOW)
    entry = result["metadata"].pop("managedFields")
    assert result == manifest
    assert entry == [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": NOW,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:selector": {"f:app": {}},
                       "f:ports": {'k:{"port":80}': {".": {}, "f:port": {}, "f:targetPort": {}}}},
        },
    }]


def _live_service() -> dict[str, Any]:
    live = apply_patch(None, _svc_manifest(), "Service", "kubectl", False, now=NOW)
    live["metadata"]["uid"] = "u-1"
    live["spec"]["clusterIP"] = "10.96.0.20"
    live["spec"]["ports"][0]["protocol"] = "TCP"
    return live


def test_apply_update_merges_keyed_list_and_keeps_server_fields() -> None:
    live = _live_service()
    manifest = _svc_manifest(ports=[{"port": 80, "targetPort": 9090}, {"port": 443}])
    result = apply_patch(live, manifest, "Service", "kubectl", False, now=LATER)
    assert result["spec"]["ports"] == [{"port": 80, "targetPort": 9090, "protocol": "TCP"},
                                       {"port": 443}]
    assert result["spec"]["clusterIP"] == "10.96.0.20"
    assert result["metadata"]["uid"] == "u-1"
    entries = result["metadata"]["managedFields"]
    assert len(entries) == 1 and entries[0]["time"] == LATER
    assert 'k:{"port":443}' in entries[0]["fieldsV1"]["f:spec"]["f:ports"]


def test_apply_removes_fields_the_manager_stopped_applying() -> None:
    live = _live_service()
    manifest = _svc_manifest()
    manifest["metadata"]["labels"] = {}
    manifest["spec"]["ports"] = [{"port": 443}]
    result = apply_patch(live, manifest, "Service", "kubectl", False, now=LATER)
    assert "app" not in result["metadata"]["labels"]
    assert result["spec"]["ports"] == [{"port": 443}]


def test_apply_keeps_removed_field_another_manager_owns() -> None:
    live = _live_service()
    live["metadata"]["managedFields"].append({
        "manager": "labeler", "operation": "Update", "apiVersion": "v1", "time": NOW,
        "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}})
    manifest = _svc_manifest()
    del manifest["metadata"]["labels"]
    result = apply_patch(live, manifest, "Service", "kubectl", False, now=LATER)
    assert result["metadata"]["labels"] == {"app": "web"}


def _scaled_deployment(replicas: int) -> dict[str, Any]:
    dep = _deployment([NGINX])
    dep["spec"]["replicas"] = replicas
    dep["metadata"]["managedFields"] = [{
        "manager": "kubectl-scale", "operation": "Update", "apiVersion": "apps/v1", "time": NOW,
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    return dep


def test_apply_conflict_with_update_manager() -> None:
    manifest = _deployment([NGINX])
    manifest["spec"]["replicas"] = 3
    with pytest.raises(APIError) as info:
        apply_patch(_scaled_deployment(5), manifest, "Deployment", "kubectl", False, now=LATER)
    err = info.value
    assert (err.code, err.reason) == (409, "Conflict")
    assert err.message == ('Apply failed with 1 conflict: conflict with "kubectl-scale" '
                           'using apps/v1: .spec.replicas')
    assert err.details["causes"] == [{"reason": "FieldManagerConflict",
                                      "message": 'conflict with "kubectl-scale" using apps/v1',
                                      "field": ".spec.replicas"}]


def test_apply_same_value_is_shared_not_conflicting() -> None:
    manifest = _deployment([NGINX])
    manifest["spec"]["replicas"] = 5
    result = apply_patch(_scaled_deployment(5), manifest, "Deployment", "kubectl", False, now=LATER)
    managers = _managers(result)
    assert set(managers) == {"kubectl-scale", "kubectl"}
    assert "f:replicas" in managers["kubectl"]["fieldsV1"]["f:spec"]


def test_apply_force_takes_ownership() -> None:
    manifest = _deployment([NGINX])
    manifest["spec"]["replicas"] = 3
    result = apply_patch(_scaled_deployment(5), manifest, "Deployment", "kubectl", True, now=LATER)
    assert result["spec"]["replicas"] == 3
    assert set(_managers(result)) == {"kubectl"}  # the scaler owned nothing else


def test_apply_multiple_conflicts_grouped_by_manager() -> None:
    live = _deployment([NGINX])
    live["spec"]["replicas"] = 5
    live["metadata"]["managedFields"] = [{
        "manager": "other", "operation": "Apply", "apiVersion": "apps/v1", "time": NOW,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
            'k:{"name":"nginx"}': {".": {}, "f:image": {}, "f:name": {}}}}}}}}]
    manifest = _deployment([{"name": "nginx", "image": "nginx:2"}])
    manifest["spec"]["replicas"] = 3
    with pytest.raises(APIError) as info:
        apply_patch(live, manifest, "Deployment", "kubectl", False, now=LATER)
    assert info.value.message == (
        'Apply failed with 2 conflicts: conflicts with "other":\n'
        '- .spec.replicas\n'
        '- .spec.template.spec.containers[name="nginx"].image')


def test_apply_twice_by_kubectl_ends_with_applied_values() -> None:
    first = _deployment([NGINX, SIDECAR])
    live = apply_patch(None, first, "Deployment", "kubectl", False, now=NOW)
    second = _deployment([{**NGINX, "image": "nginx:1.29"}])
    second["spec"]["replicas"] = 4
    result = apply_patch(live, second, "Deployment", "kubectl", False, now=LATER)
    assert result["spec"]["replicas"] == 4
    assert _pod_spec(result)["containers"] == [{**NGINX, "image": "nginx:1.29"}]


FIELDS_CASES = [
    ("scalar", {"spec": {"replicas": 1}}, "Deployment", {"f:spec": {"f:replicas": {}}}),
    ("empty-map-is-leaf", {"spec": {"strategy": {}}}, "Deployment", {"f:spec": {"f:strategy": {}}}),
    ("atomic-list-is-leaf", {"spec": {"tolerations": [{"key": "k"}]}}, "Pod",
     {"f:spec": {"f:tolerations": {}}}),
    ("set-values", {"metadata": {"finalizers": ["a"]}}, "Pod",
     {"f:metadata": {"f:finalizers": {'v:"a"': {}}}}),
    ("identity-fields-not-owned", {"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": "p", "namespace": "d"}}, "Pod", {}),
    ("status-of-subresource-kind-not-owned", {"status": {"phase": "x"}}, "Pod", {}),
]


@pytest.mark.parametrize(("obj", "kind", "expected"), [c[1:] for c in FIELDS_CASES],
                         ids=[c[0] for c in FIELDS_CASES])
def test_field_set(obj: dict[str, Any], kind: str, expected: dict[str, Any]) -> None:
    assert field_set(obj, kind) == expected


def test_fields_v1_round_trip_and_path_strings() -> None:
    paths = {("f:spec", "f:replicas"),
             ("f:spec", "f:ports", 'k:{"port":80}'),
             ("f:spec", "f:ports", 'k:{"port":80}', "f:port"),
             ("f:metadata", "f:finalizers", 'v:"x"')}
    assert parse_fields_v1(fields_v1(paths)) == paths
    assert path_string(("f:spec", "f:ports", 'k:{"port":80}', "f:port")) == ".spec.ports[port=80].port"
    assert path_string(("f:metadata", "f:finalizers", 'v:"x"')) == '.metadata.finalizers[="x"]'


# --- content-type dispatch --------------------------------------------------------------

DISPATCH_CASES = [
    ("merge-patch", "application/merge-patch+json", b'{"spec":{"replicas":5}}',
     {"spec": {"replicas": 5, "template": {"x": 1}}}),
    ("merge-patch-charset", "application/merge-patch+json; charset=utf-8",
     b'{"spec":{"template":null}}', {"spec": {"replicas": 1}}),
    ("json-patch", "application/json-patch+json",
     b'[{"op":"replace","path":"/spec/replicas","value":2}]',
     {"spec": {"replicas": 2, "template": {"x": 1}}}),
    ("python-client-list-body", "application/json-patch+json",
     [{"op": "remove", "path": "/spec/template"}], {"spec": {"replicas": 1}}),
    ("strategic", "application/strategic-merge-patch+json", '{"spec":{"replicas":9}}',
     {"spec": {"replicas": 9, "template": {"x": 1}}}),
    ("strategic-decoded-body", "application/strategic-merge-patch+json",
     {"spec": {"replicas": 8}}, {"spec": {"replicas": 8, "template": {"x": 1}}}),
]


@pytest.mark.parametrize(("content_type", "body", "expected"), [c[1:] for c in DISPATCH_CASES],
                         ids=[c[0] for c in DISPATCH_CASES])
def test_patch_by_content_type(content_type: str, body: Any, expected: dict[str, Any]) -> None:
    original = {"spec": {"replicas": 1, "template": {"x": 1}}}
    assert patch_by_content_type(original, body, content_type, "Deployment") == expected


DISPATCH_ERRORS = [
    ("bad-json", "application/strategic-merge-patch+json", b"{x}", 400, "BadRequest",
     "invalid character 'x' looking for beginning of object key string"),
    ("bad-json-value", "application/merge-patch+json", b"nope", 400, "BadRequest",
     "invalid character 'n' looking for beginning of value"),
    ("truncated-json", "application/json-patch+json", b'[{"op":', 400, "BadRequest",
     "unexpected end of JSON input"),
    ("smp-array-body", "application/strategic-merge-patch+json", b"[1]", 400, "BadRequest",
     "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    ("json-patch-object-body", "application/json-patch+json", b"{}", 400, "BadRequest",
     "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    ("json-patch-result-not-object", "application/json-patch+json",
     b'[{"op":"replace","path":"","value":3}]', 422, "Invalid", ""),
    ("apply-not-dispatched", "application/apply-patch+yaml", b"{}", 415,
     "UnsupportedMediaType", "accepted media types include: application/json-patch+json"),
    ("unknown-type", "application/json", b"{}", 415, "UnsupportedMediaType", ""),
]


@pytest.mark.parametrize(("content_type", "body", "code", "reason", "message"),
                         [c[1:] for c in DISPATCH_ERRORS], ids=[c[0] for c in DISPATCH_ERRORS])
def test_patch_by_content_type_errors(content_type: str, body: bytes, code: int, reason: str,
                                      message: str) -> None:
    with pytest.raises(APIError) as info:
        patch_by_content_type({"spec": {}}, body, content_type, "Deployment")
    assert (info.value.code, info.value.reason) == (code, reason)
    assert message in info.value.message


def test_status_renders_for_patch_errors() -> None:
    with pytest.raises(APIError) as info:
        json_patch({}, [{"op": "remove", "path": "/a"}])
    status = info.value.status()
    assert status["code"] == 422 and status["reason"] == "Invalid"
    json.dumps(status)


def test_apply_empty_object_never_conflicts_with_defaulted_value() -> None:
    live = _deployment([NGINX], strategy=ROLLING)
    live["metadata"]["managedFields"] = [{
        "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1",
        "time": NOW, "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:strategy": {}}}}]
    manifest = _deployment([NGINX], strategy={})
    result = apply_patch(live, manifest, "Deployment", "kubectl", False, now=LATER)
    assert result["spec"]["strategy"] == ROLLING
