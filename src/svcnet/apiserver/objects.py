"""Small pure helpers on API objects used by the REST layer: store keys, metadata
stamping, name generation, the Scale view of a workload."""

from __future__ import annotations

import copy
import datetime as dt
import random
import uuid
from typing import Any

from svcnet.model import selectors
from svcnet.model.kinds import ResourceInfo

Obj = dict[str, Any]

# apiserver's generateName alphabet: no vowels (no accidental words), no 0/1/3 look-alikes.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def store_key(r: ResourceInfo, namespace: str | None, name: str) -> str:
    """The store key of one object; keys sort by resource, then namespace, then name."""
    return store_prefix(r, namespace) + name


def store_prefix(r: ResourceInfo, namespace: str | None) -> str:
    """The key prefix of a collection: all namespaces when ``namespace`` is None."""
    base = f"/{r.group or 'core'}/{r.resource}/"
    if r.namespaced and namespace is not None:
        return f"{base}{namespace}/"
    return base


def format_time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_name(prefix: str, rng: random.Random | None = None) -> str:
    """``prefix`` plus five random characters, trimmed so the name fits 63 characters."""
    pick = (rng or random).choice
    suffix = "".join(pick(_NAME_ALPHABET) for _ in range(5))
    return prefix[: 63 - 5] + suffix


def meta(obj: Obj) -> Obj:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def new_uid() -> str:
    return str(uuid.uuid4())


def record_manager(obj: Obj, manager: str, operation: str, api_version: str, now: str,
                   subresource: str = "") -> None:
    """Upsert the ``metadata.managedFields`` entry for ``manager`` (field sets are not
    tracked for Update operations; server-side apply records its own)."""
    if not manager:
        return
    entries = [e for e in meta(obj).get("managedFields") or []
               if not (e.get("manager") == manager and e.get("operation") == operation
                       and e.get("subresource", "") == subresource)]
    entry: Obj = {"manager": manager, "operation": operation, "apiVersion": api_version,
                  "time": now, "fieldsType": "FieldsV1", "fieldsV1": {}}
    if subresource:
        entry["subresource"] = subresource
    entries.append(entry)
    meta(obj)["managedFields"] = entries


def strip_for_compare(obj: Obj) -> Obj:
    """A copy without the fields every write changes (resourceVersion, managedFields
    times), for deciding whether an update changes anything."""
    c = copy.deepcopy(obj)
    m = c.get("metadata") or {}
    m.pop("resourceVersion", None)
    m.pop("managedFields", None)
    return c


def scale_of(r: ResourceInfo, obj: Obj) -> Obj:
    """The ``autoscaling/v1`` Scale view of a Deployment or ReplicaSet."""
    m = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    sel = selectors.selector_from_label_selector_object(spec.get("selector"))
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                       "creationTimestamp") if k in m},
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {"replicas": status.get("replicas", 0), "selector": str(sel)},
    }
