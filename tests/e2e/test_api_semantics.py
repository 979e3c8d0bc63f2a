"""API semantics checked over raw HTTPS: watch rules, resourceVersion rules, discovery
media types, dry run, field validation, pagination, selectors and patch errors."""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from svcnet.testing.cluster import APIServerProcess


class Raw:
    """A tiny HTTPS client with the admin token."""

    def __init__(self, srv: APIServerProcess) -> None:
        self.srv = srv
        self.ctx = ssl.create_default_context(cafile=str(srv.ca_file))

    def conn(self, timeout: float = 10) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.srv.port, context=self.ctx,
                                           timeout=timeout)

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json", **headers: str
                ) -> tuple[int, dict[str, str], Any]:
        c = self.conn()
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        hdrs = {"Authorization": f"Bearer {self.srv.token}", "Content-Type": content_type,
                **{k.replace("_", "-"): v for k, v in headers.items()}}
        c.request(method, path, body=data, headers=hdrs)
        resp = c.getresponse()
        raw = resp.read()
        c.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed

    def watch(self, path: str, **params: str) -> Iterator[dict[str, Any]]:
        c = self.conn(timeout=20)
        c.request("GET", path + "?" + urlencode({"watch": "true", **params}),
                  headers={"Authorization": f"Bearer {self.srv.token}"})
        resp = c.getresponse()
        assert resp.status == 200
        try:
            while True:
                line = resp.readline()
                if not line:
                    return
                yield json.loads(line)
        finally:
            c.close()


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Raw]:
    """A server that compacts every 0.5 s and bookmarks every 0.5 s."""
    srv = APIServerProcess(tmp_path_factory.mktemp("fast"),
                           extra_args=["--compaction-interval", "0.5",
                                       "--bookmark-interval", "0.5"])
    srv.start()
    try:
        yield Raw(srv)
    finally:
        srv.stop()
        shutil.rmtree(srv.home, ignore_errors=True)


@pytest.fixture(scope="module")
def raw(apiserver: APIServerProcess) -> Raw:
    return Raw(apiserver)


CM = "/api/v1/namespaces/default/configmaps"


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def test_watch_from_compacted_revision_gets_410(fast: Raw) -> None:
    status, _, first = fast.request("POST", CM, cm("old"))
    assert status == 201
    old_rv = first["metadata"]["resourceVersion"]
    for i in range(3):
        fast.request("POST", CM, cm(f"newer-{i}"))
    time.sleep(1.6)  # two compaction rounds
    fast.request("POST", CM, cm("newest"))
    events = list(fast.watch(CM, resourceVersion=old_rv, timeoutSeconds="5"))
    assert events[0]["type"] == "ERROR"
    st = events[0]["object"]
    assert (st["kind"], st["code"], st["reason"]) == ("Status", 410, "Expired")
    assert st["message"].startswith(f"too old resource version: {old_rv} (")


def test_watch_bookmarks_and_timeout(fast: Raw) -> None:
    status, _, lst = fast.request("GET", CM)
    t0 = time.monotonic()
    events = list(fast.watch(CM, resourceVersion=lst["metadata"]["resourceVersion"],
                             allowWatchBookmarks="true", timeoutSeconds="2"))
    elapsed = time.monotonic() - t0
    assert 1.5 <= elapsed < 6
    marks = [e for e in events if e["type"] == "BOOKMARK"]
    assert marks, events
    assert marks[0]["object"]["kind"] == "ConfigMap"
    assert int(marks[0]["object"]["metadata"]["resourceVersion"]) >= int(
        lst["metadata"]["resourceVersion"])


def test_watch_rv0_sends_synthetic_added_then_changes(raw: Raw) -> None:
    raw.request("POST", CM, cm("syn-a", w="1"))
    stream = raw.watch(CM, resourceVersion="0", labelSelector="w=1", timeoutSeconds="5")
    first = next(stream)
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "syn-a")
    raw.request("PATCH", CM + "/syn-a", {"metadata": {"labels": {"w": "2"}}},
                content_type="application/merge-patch+json")
    ev = next(stream)
    # The object stopped matching the selector: watchers see it leave.
    assert (ev["type"], ev["object"]["metadata"]["name"]) == ("DELETED", "syn-a")


def test_list_with_future_resource_version_is_504(raw: Raw) -> None:
    status, _, body = raw.request("GET", CM + "?resourceVersion=99999999")
    assert status == 504 and body["reason"] == "Timeout"
    assert body["message"].startswith("Too large resource version")


def test_aggregated_and_legacy_discovery(raw: Raw) -> None:
    agg = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    status, headers, body = raw.request("GET", "/apis", Accept=agg + ",application/json")
    assert status == 200 and headers["content-type"] == agg
    groups = {i["metadata"]["name"] for i in body["items"]}
    assert {"apps", "discovery.k8s.io", "networking.k8s.io"} <= groups
    status, _, body = raw.request("GET", "/api/v1", Accept="application/json")
    names = {r["name"] for r in body["resources"]}
    assert {"pods", "pods/status", "services", "endpoints"} <= names
    status, _, _ = raw.request("GET", "/openapi/v2")
    assert status == 404


def test_dry_run_persists_nothing(raw: Raw) -> None:
    status, _, body = raw.request("POST", CM + "?dryRun=All", cm("dry"))
    assert status == 201 and body["metadata"]["name"] == "dry"
    assert raw.request("GET", CM + "/dry")[0] == 404
    raw.request("POST", CM, cm("dry2"))
    status, _, body = raw.request("PATCH", CM + "/dry2?dryRun=All", {"data": {"k": "changed"}},
                                  content_type="application/merge-patch+json")
    assert status == 200 and body["data"]["k"] == "changed"
    assert raw.request("GET", CM + "/dry2")[2]["data"]["k"] == "v"
    status, _, _ = raw.request("DELETE", CM + "/dry2?dryRun=All")
    assert status == 200 and raw.request("GET", CM + "/dry2")[0] == 200


def test_field_validation_strict_and_warn(raw: Raw) -> None:
    bad = {"metadata": {"name": "strict"}, "datta": {}}
    status, _, body = raw.request("POST", CM + "?fieldValidation=Strict", bad)
    assert status == 400 and body["reason"] == "BadRequest"
    assert 'strict decoding error: unknown field "datta"' in body["message"]
    status, headers, _ = raw.request("POST", CM + "?fieldValidation=Warn", bad)
    assert status == 201 and 'unknown field \\"datta\\"' in headers["warning"] or \
        'unknown field "datta"' in headers["warning"]


def test_pagination_with_limit_and_continue(raw: Raw) -> None:
    for i in range(5):
        raw.request("POST", CM, cm(f"page-{i}", pg="1"))
    seen: list[str] = []
    token = ""
    while True:
        q = "?labelSelector=pg%3D1&limit=2" + (f"&continue={token}" if token else "")
        _, _, body = raw.request("GET", CM + q)
        seen += [i["metadata"]["name"] for i in body["items"]]
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert seen == [f"page-{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("selector", "want"),
    [("tier in (a,b)", {"sel-a", "sel-b"}), ("tier notin (a)", {"sel-b", "sel-none"}),
     ("tier", {"sel-a", "sel-b"}), ("!tier", {"sel-none"}), ("tier!=a", {"sel-b", "sel-none"})],
    ids=["in", "notin", "exists", "not-exists", "not-equal"],
)
def test_label_selector_operators(raw: Raw, selector: str, want: set[str]) -> None:
    for name, labels in (("sel-a", {"tier": "a"}), ("sel-b", {"tier": "b"}),
                         ("sel-none", {})):
        raw.request("POST", "/api/v1/namespaces/default/secrets",
                    {"metadata": {"name": name, "labels": {"grp": "sel", **labels}}})
    _, _, body = raw.request("GET", "/api/v1/namespaces/default/secrets?" + urlencode(
        {"labelSelector": "grp=sel," + selector}))
    assert {i["metadata"]["name"] for i in body["items"]} == want


def test_delete_collection(raw: Raw) -> None:
    for i in range(3):
        raw.request("POST", CM, cm(f"coll-{i}", coll="1"))
    status, _, body = raw.request("DELETE", CM + "?labelSelector=coll%3D1")
    assert status == 200 and len(body["items"]) == 3
    _, _, body = raw.request("GET", CM + "?labelSelector=coll%3D1")
    assert body["items"] == []


def test_json_patch_failed_test_is_422_and_changes_nothing(raw: Raw) -> None:
    raw.request("POST", CM, cm("jp"))
    ops = [{"op": "replace", "path": "/data/k", "value": "x"},
           {"op": "test", "path": "/data/k", "value": "nope"}]
    status, _, body = raw.request("PATCH", CM + "/jp", ops,
                                  content_type="application/json-patch+json")
    assert status == 422 and body["kind"] == "Status"
    assert raw.request("GET", CM + "/jp")[2]["data"]["k"] == "v"


def test_namespace_lifecycle(raw: Raw) -> None:
    raw.request("POST", "/api/v1/namespaces", {"metadata": {"name": "short-lived"}})
    raw.request("POST", "/api/v1/namespaces/short-lived/configmaps", cm("inside"))
    status, _, body = raw.request("DELETE", "/api/v1/namespaces/short-lived")
    assert status == 200 and body["kind"] == "Namespace"
    deadline = time.monotonic() + 10
    while raw.request("GET", "/api/v1/namespaces/short-lived")[0] != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status, _, body = raw.request("POST", "/api/v1/namespaces/short-lived/configmaps",
                                  cm("after"))
    assert status == 404 and body["message"] == 'namespaces "short-lived" not found'
    status, _, body = raw.request("DELETE", "/api/v1/namespaces/default")
    assert status == 403 and "may not be deleted" in body["message"]


def test_namespace_waits_for_its_contents_finalizers(raw: Raw) -> None:
    """Content is deleted as a client would delete it: an object's finalizer keeps the
    namespace Terminating until it is removed."""
    raw.request("POST", "/api/v1/namespaces", {"metadata": {"name": "held-ns"}})
    body = cm("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    raw.request("POST", "/api/v1/namespaces/held-ns/configmaps", body)
    raw.request("POST", "/api/v1/namespaces/held-ns/configmaps", cm("plain"))
    raw.request("DELETE", "/api/v1/namespaces/held-ns")
    deadline = time.monotonic() + 10
    while raw.request("GET", "/api/v1/namespaces/held-ns/configmaps/plain")[0] != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    _, _, held = raw.request("GET", "/api/v1/namespaces/held-ns/configmaps/held")
    assert held["metadata"]["deletionTimestamp"]
    _, _, ns = raw.request("GET", "/api/v1/namespaces/held-ns")
    assert ns["status"]["phase"] == "Terminating"
    raw.request("PATCH", "/api/v1/namespaces/held-ns/configmaps/held",
                {"metadata": {"finalizers": None}},
                content_type="application/merge-patch+json")
    while raw.request("GET", "/api/v1/namespaces/held-ns")[0] != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_finalizers_hold_deletion(raw: Raw) -> None:
    body = cm("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    raw.request("POST", CM, body)
    status, _, _ = raw.request("DELETE", CM + "/held")
    assert status == 202
    _, _, obj = raw.request("GET", CM + "/held")
    assert obj["metadata"]["deletionTimestamp"]
    raw.request("PATCH", CM + "/held", {"metadata": {"finalizers": None}},
                content_type="application/merge-patch+json")
    assert raw.request("GET", CM + "/held")[0] == 404


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/apis/apps/v1/namespaces/default/deployments",
         {"metadata": {"name": "typed"}, "spec": {"replicas": "3"}},
         'Deployment in version "v1" cannot be handled as a Deployment: json: cannot '
         "unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"),
        (CM, {"metadata": {"name": "typed", "labels": {"on": True}}},
         'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot '
         "unmarshal bool into Go struct field ObjectMeta.metadata.labels of type string"),
    ],
    ids=["replicas-string", "label-bool"],
)
def test_wrong_json_types_are_400(raw: Raw, path: str, body: dict[str, Any],
                                  message: str) -> None:
    status, _, st = raw.request("POST", path, body)
    assert (status, st["reason"], st["message"]) == (400, "BadRequest", message)
    raw.request("POST", CM, cm("typed-patch"))
    status, _, st = raw.request("PATCH", CM + "/typed-patch", {"data": {"k": 5}},
                                content_type="application/merge-patch+json")
    assert status == 400 and "cannot unmarshal number" in st["message"]
