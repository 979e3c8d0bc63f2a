"""Discovery documents (aggregated v2 and legacy) and the OpenAPI v3 stub.

All documents are pure functions of :mod:`svcnet.model.kinds`, computed once.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from svcnet.model import kinds
from svcnet.model.kinds import ResourceInfo

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

# Subresources and the verbs / response kinds they advertise.
_SUB_VERBS: dict[str, tuple[str, ...]] = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "log": ("get",),
    "exec": ("create", "get"),
    "portforward": ("create", "get"),
    "attach": ("create", "get"),
    "eviction": ("create",),
    "binding": ("create",),
    "proxy": ("create", "delete", "get", "patch", "update"),
    "finalize": ("update",),
}
_SUB_KINDS: dict[str, tuple[str, str, str]] = {
    "scale": ("autoscaling", "v1", "Scale"),
    "exec": ("", "v1", "PodExecOptions"),
    "portforward": ("", "v1", "PodPortForwardOptions"),
    "attach": ("", "v1", "PodAttachOptions"),
    "eviction": ("policy", "v1", "Eviction"),
    "binding": ("", "v1", "Binding"),
    "proxy": ("", "v1", "ServiceProxyOptions"),
}


def _sub_kind(r: ResourceInfo, sub: str) -> tuple[str, str, str]:
    return _SUB_KINDS.get(sub, (r.group, r.version, r.kind))


def _aggregated_resource(r: ResourceInfo) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resource": r.resource,
        "singularResource": r.singular,
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "verbs": sorted(r.verbs),
    }
    if r.short_names:
        doc["shortNames"] = list(r.short_names)
    if r.categories:
        doc["categories"] = list(r.categories)
    subs = []
    for s in r.subresources:
        g, v, k = _sub_kind(r, s)
        subs.append({
            "subresource": s,
            "responseKind": {"group": g, "version": v, "kind": k},
            "verbs": list(_SUB_VERBS.get(s, ("get",))),
        })
    if subs:
        doc["subresources"] = subs
    return doc


def _aggregated_group(group: str) -> dict[str, Any]:
    versions = []
    for g, v in kinds.group_versions():
        if g != group:
            continue
        versions.append({
            "version": v,
            "freshness": "Current",
            "resources": [_aggregated_resource(r) for r in kinds.resources_in(g, v)],
        })
    meta: dict[str, Any] = {"creationTimestamp": None}
    if group:
        meta["name"] = group
    return {"metadata": meta, "versions": versions}


@cache
def aggregated_core() -> dict[str, Any]:
    """``GET /api`` as an APIGroupDiscoveryList: one unnamed item, the core group."""
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": [_aggregated_group("")]}


@cache
def aggregated_groups() -> dict[str, Any]:
    """``GET /apis`` as an APIGroupDiscoveryList: one item per named group."""
    groups = [g for g, _ in kinds.group_versions() if g]
    uniq = list(dict.fromkeys(groups))
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": [_aggregated_group(g) for g in uniq]}


def legacy_api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group_doc(group: str) -> dict[str, Any]:
    versions = [v for g, v in kinds.group_versions() if g == group]
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


@cache
def legacy_api_groups() -> dict[str, Any]:
    groups = list(dict.fromkeys(g for g, _ in kinds.group_versions() if g))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_doc(g) for g in groups]}


def legacy_api_group(group: str) -> dict[str, Any] | None:
    if not any(g == group for g, _ in kinds.group_versions()):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group)}


def legacy_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``/apis/<g>/<v>`` as an APIResourceList, or None if not served."""
    rs = kinds.resources_in(group, version)
    if not rs:
        return None
    resources: list[dict[str, Any]] = []
    for r in rs:
        item: dict[str, Any] = {
            "name": r.resource, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": sorted(r.verbs),
        }
        if r.short_names:
            item["shortNames"] = list(r.short_names)
        if r.categories:
            item["categories"] = list(r.categories)
        resources.append(item)
        for s in r.subresources:
            g, v, k = _sub_kind(r, s)
            sub: dict[str, Any] = {"name": f"{r.resource}/{s}", "singularName": "",
                                   "namespaced": r.namespaced, "kind": k,
                                   "verbs": list(_SUB_VERBS.get(s, ("get",)))}
            if (g, v) != (r.group, r.version):
                sub["group"], sub["version"] = g, v
            resources.append(sub)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}


# --- OpenAPI v3 stub ------------------------------------------------------------------------
#
# kubectl's validating commands (apply, create -f, replace, edit) look for a PATCH operation
# carrying the kind's x-kubernetes-group-version-kind and a `fieldValidation` parameter; when
# they find it they skip client-side schema validation and send fieldValidation=Strict, which
# the server enforces. The stub therefore holds exactly that and nothing more.


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@cache
def openapi_gv_document(group: str, version: str) -> dict[str, Any] | None:
    rs = kinds.resources_in(group, version)
    if not rs:
        return None
    paths: dict[str, Any] = {}
    prefix = "/" + _gv_path(group, version)
    for r in rs:
        item = (f"{prefix}/namespaces/{{namespace}}/{r.resource}/{{name}}" if r.namespaced
                else f"{prefix}/{r.resource}/{{name}}")
        params = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
        if r.namespaced:
            params.append({"name": "namespace", "in": "path", "required": True,
                           "schema": {"type": "string"}})
        paths[item] = {
            "parameters": params,
            "patch": {
                "operationId": f"patch{r.kind}",
                "parameters": [
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                    {"name": "force", "in": "query", "schema": {"type": "boolean"}},
                ],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version,
                                                    "kind": r.kind},
            },
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": paths, "components": {"schemas": {}}}


@cache
def openapi_root() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for g, v in kinds.group_versions():
        doc = openapi_gv_document(g, v)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]
        p = _gv_path(g, v)
        paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={digest.upper()}"}
    return {"paths": paths}
