"""URL parsing and content negotiation of API requests."""

from __future__ import annotations

import pytest

from svcnet.apiserver.request import parse_resource_path, query_bool, wants_table

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("/api/v1/pods", ("pods", None, None, "")),
        ("/api/v1/namespaces", ("namespaces", None, None, "")),
        ("/api/v1/namespaces/default", ("namespaces", None, "default", "")),
        ("/api/v1/namespaces/default/status", ("namespaces", None, "default", "status")),
        ("/api/v1/namespaces/default/pods", ("pods", "default", None, "")),
        ("/api/v1/namespaces/default/pods/p1", ("pods", "default", "p1", "")),
        ("/api/v1/namespaces/default/pods/p1/log", ("pods", "default", "p1", "log")),
        ("/apis/apps/v1/namespaces/ns/deployments/web/scale",
         ("deployments", "ns", "web", "scale")),
        ("/apis/discovery.k8s.io/v1/endpointslices", ("endpointslices", None, None, "")),
        ("/api/v1/nodes/n1/status", ("nodes", None, "n1", "status")),
        ("/api/v1/watch/namespaces/default/pods", ("pods", "default", None, "")),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_parse_resource_path(path: str, want: tuple[str, str | None, str | None, str]) -> None:
    rr = parse_resource_path(path)
    assert rr is not None
    assert (rr.resource.resource, rr.namespace, rr.name, rr.subresource) == want


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/pods",
        "/api/v1/foos",
        "/apis/apps/v1/pods",
        "/api/v1/namespaces/default/pods/p1/nosuchsub",
        "/api/v1/namespaces/default/nodes/n1",
        "/apis/apps/v2/deployments",
        "/api/v1/namespaces/default/pods/p1/log/extra",
    ],
)
def test_parse_resource_path_rejects(path: str) -> None:
    assert parse_resource_path(path) is None


@pytest.mark.parametrize(("value", "want"), [("true", True), ("True", True), ("1", True),
                                             ("false", False), (None, False), ("", False)])
def test_query_bool(value: str | None, want: bool) -> None:
    assert query_bool(value) is want


@pytest.mark.parametrize(
    ("accept", "want"),
    [(TABLE, True), ("application/json", False), ("application/json, */*", False),
     ("application/vnd.kubernetes.protobuf,application/json", False), ("", False)],
    ids=["kubectl-get", "json", "json-any", "protobuf", "none"],
)
def test_wants_table(accept: str, want: bool) -> None:
    assert wants_table(accept) is want
