"""Parsing of API request paths, query options and bodies (pure functions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from svcnet.apiserver import protobuf
from svcnet.model import errors, kinds
from svcnet.model.kinds import ResourceInfo

PROTOBUF = "application/vnd.kubernetes.protobuf"


@dataclass(frozen=True)
class ResourceRequest:
    """What a resource URL names. ``namespace`` is None for cluster-wide collections and
    cluster-scoped resources; ``name`` is None for collections."""

    resource: ResourceInfo
    namespace: str | None
    name: str | None
    subresource: str
    watch_path: bool = False  # the legacy /watch/ URL form


def parse_resource_path(path: str) -> ResourceRequest | None:
    """Map ``/api/v1/...`` or ``/apis/<g>/<v>/...`` to a ResourceRequest; None when the
    path names no served resource (the caller answers 404)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    watch = False
    if rest and rest[0] == "watch":
        watch, rest = True, rest[1:]
    if not rest:
        return None
    ns: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        maybe = kinds.lookup(group, rest[2])
        if maybe is not None and maybe.namespaced and maybe.version == version:
            ns, rest = rest[1], rest[2:]
    r = kinds.lookup(group, rest[0])
    if r is None or r.version != version or len(rest) > 3:
        return None
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) == 3 else ""
    if sub and sub not in r.subresources:
        return None
    if r.namespaced is False and ns is not None:
        return None
    return ResourceRequest(r, ns, name, sub, watch)


def query_bool(value: str | None) -> bool:
    """Kubernetes clients send ``true`` (kubectl, recent Python client), ``True`` (older
    Python client) or ``1``."""
    return value is not None and value.lower() in ("true", "1")


def wants_table(accept: str) -> bool:
    """Whether the client's preferred representation is a ``meta.k8s.io`` Table."""
    for part in accept.split(","):
        params = {kv.split("=", 1)[0].strip(): kv.split("=", 1)[1].strip()
                  for kv in part.split(";")[1:] if "=" in kv}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
        if part.strip().split(";")[0] in ("application/json", "*/*", PROTOBUF):
            return False
    return False


def decode_body(raw: bytes, content_type: str) -> Any:
    """A create/update body as a JSON value: JSON, YAML or Kubernetes protobuf."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == PROTOBUF:
        return protobuf.decode_k8s_protobuf(raw)
    if ctype in ("", "application/json", "*/*"):
        try:
            return json.loads(raw) if raw else None
        except ValueError as e:
            raise errors.bad_request(
                f"Object 'Kind' is missing in '{raw[:200].decode(errors='replace')}': {e}"
            ) from None
    if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise errors.bad_request(f"error converting YAML to JSON: {e}") from None
    raise errors.unsupported_media_type(content_type)


def parse_int(value: str | None, name: str, default: int = 0) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise errors.bad_request(f"invalid value for {name}: {value!r}") from None
