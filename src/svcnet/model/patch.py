"""Patch semantics of the Kubernetes API on plain JSON values.

Four mechanisms, each a pure function (inputs are never mutated; results share no mutable
structure with the inputs):

* :func:`json_merge_patch` — RFC 7386 (``application/merge-patch+json``).
* :func:`json_patch` — RFC 6902 (``application/json-patch+json``).
* :func:`strategic_merge_patch` — Kubernetes strategic merge patch
  (``application/strategic-merge-patch+json``), driven by the declarative schema
  :data:`TYPES` / :data:`KIND_TYPES` (the ``patchStrategy``/``patchMergeKey`` tags of
  k8s.io/api).
* :func:`apply_patch` — a reduced server-side apply (``application/apply-patch+yaml``)
  with ``metadata.managedFields`` bookkeeping and field-manager conflicts.

:func:`patch_by_content_type` dispatches the first three by ``Content-Type``.

Error mapping (mirrors the apiserver's ``patch.go``):

* a body that is not JSON, or a patch document of the wrong shape (a JSON patch that is
  not a list of well-formed operations, a strategic patch with malformed directives)
  → 400 ``BadRequest``;
* a well-formed JSON patch that cannot be applied (missing path, failed ``test``, bad
  array index) → 422 ``Invalid``; the apiserver answers these with a generic 422 whose
  cause carries the operation error, so the message here is the operation error itself
  and ``details.causes[0]`` repeats it with reason ``UnexpectedServerResponse``;
* a patch whose result is not an object → 422 ``Invalid``;
* a strategic list of lists, or a ``$retainKeys`` list that does not cover the patch
  → 422 / 400 like upstream ``interpretStrategicMergePatchError``;
* an unknown patch content type → 415 ``UnsupportedMediaType``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from svcnet.model import kinds
from svcnet.model.errors import APIError, bad_request

JSONDict = dict[str, Any]
FieldPath = tuple[str, ...]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_CONTENT_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_MERGE_PATCH)


# --- shared helpers ---------------------------------------------------------------------


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers compare by value (1 == 1.0), booleans never equal numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _canon(value: Any) -> str:
    """A hashable identity for a JSON value, equal exactly when :func:`_json_equal` is."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _invalid(message: str) -> APIError:
    """422 Invalid carrying ``message`` both as the message and as the single cause."""
    return APIError(422, "Invalid", message,
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": message}]})


# --- RFC 7386 JSON merge patch ----------------------------------------------------------


def json_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge recursively, ``null`` deletes a
    member, anything else (arrays included) replaces the target value wholesale."""
    return _merge_patch_into(copy.deepcopy(target), patch)


def _merge_patch_into(target: Any, patch: Any) -> Any:
    """Merge ``patch`` into ``target`` (owned by the caller, mutated in place)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch_into(result.get(key), value)
    return result


# --- RFC 6902 JSON patch ----------------------------------------------------------------

_OP_MEMBERS = {
    "add": ("path", "value"),
    "remove": ("path",),
    "replace": ("path", "value"),
    "move": ("path", "from"),
    "copy": ("path", "from"),
    "test": ("path", "value"),
}
_BAD_ESCAPE = re.compile(r"~(?![01])")
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


def json_patch(target: Any, ops: list[dict[str, Any]]) -> Any:
    """Apply an RFC 6902 operation list to ``target``.

    All operations are validated first (a malformed document is 400 BadRequest and
    nothing is applied); operations then apply in order, and any that cannot (missing
    path, failed ``test``, index out of range) makes the whole patch fail with
    422 Invalid.
    """
    if not isinstance(ops, list):
        raise bad_request(
            f"json: cannot unmarshal {_go_type(ops)} into Go value of type jsonpatch.Patch")
    parsed = [_parse_op(op, index) for index, op in enumerate(ops)]
    doc = copy.deepcopy(target)
    for op in parsed:
        doc = op.apply(doc)
    return doc


def _go_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "null"


@dataclass(frozen=True)
class _Op:
    """One validated JSON patch operation."""

    name: str
    pointer: str
    path: list[str]
    source: list[str] = field(default_factory=list)
    source_pointer: str = ""
    value: Any = None

    def apply(self, doc: Any) -> Any:
        if self.name == "add":
            return _add(doc, self.path, copy.deepcopy(self.value), self)
        if self.name == "remove":
            return _remove(doc, self.path, self)[0]
        if self.name == "replace":
            return _replace(doc, self.path, copy.deepcopy(self.value), self)
        if self.name == "move":
            return _move(doc, self)
        if self.name == "copy":
            value = copy.deepcopy(_resolve(doc, self.source, self, self.source_pointer))
            return _add(doc, self.path, value, self)
        return _test(doc, self)


def _parse_op(op: Any, index: int) -> _Op:
    if not isinstance(op, dict):
        raise bad_request(f"json patch operation {index} is not an object")
    name = op.get("op")
    if not isinstance(name, str) or name not in _OP_MEMBERS:
        raise bad_request(f"Unexpected kind: {name}")
    for member in _OP_MEMBERS[name]:
        if member not in op:
            raise bad_request(f'json patch operation {index} ("{name}") is missing "{member}"')
    pointer = op["path"]
    source = op.get("from", "")
    if not isinstance(pointer, str) or not isinstance(source, str):
        raise bad_request(f"json patch operation {index}: path and from must be strings")
    return _Op(name, pointer, _parse_pointer(pointer), _parse_pointer(source), source,
               op.get("value"))


def _parse_pointer(pointer: str) -> list[str]:
    """RFC 6901 tokens of ``pointer`` ("" is the whole document); 400 when malformed."""
    if pointer == "":
        return []
    if not pointer.startswith("/") or _BAD_ESCAPE.search(pointer):
        raise bad_request(f'invalid JSON pointer "{pointer}"')
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def _missing(op: _Op, pointer: str) -> APIError:
    return _invalid(f'{op.name} operation does not apply: doc is missing path: "{pointer}": '
                    f"missing value")


def _index(token: str, size: int, op: _Op, pointer: str) -> int:
    """The array index ``token`` names, which must lie in ``[0, size)``."""
    if not _ARRAY_INDEX.fullmatch(token) or int(token) >= size:
        raise _invalid(f'{op.name} operation does not apply: invalid index "{token}" in '
                       f'"{pointer}"')
    return int(token)


def _resolve(doc: Any, tokens: list[str], op: _Op, pointer: str) -> Any:
    current = doc
    for token in tokens:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and _ARRAY_INDEX.fullmatch(token) \
                and int(token) < len(current):
            current = current[int(token)]
        else:
            raise _missing(op, pointer)
    return current


def _add(doc: Any, tokens: list[str], value: Any, op: _Op) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], op, op.pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        position = len(parent) if last == "-" else _index(last, len(parent) + 1, op, op.pointer)
        parent.insert(position, value)
    else:
        raise _missing(op, op.pointer)
    return doc


def _remove(doc: Any, tokens: list[str], op: _Op, pointer: str = "") -> tuple[Any, Any]:
    """Remove the value at ``tokens``; return ``(doc, removed value)``."""
    pointer = pointer or op.pointer
    if not tokens:
        raise _invalid(f"{op.name} operation does not apply: cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1], op, pointer)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(last, len(parent), op, pointer))
    raise _missing(op, pointer)


def _replace(doc: Any, tokens: list[str], value: Any, op: _Op) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], op, op.pointer)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        parent[last] = value
    elif isinstance(parent, list):
        parent[_index(last, len(parent), op, op.pointer)] = value
    else:
        raise _missing(op, op.pointer)
    return doc


def _move(doc: Any, op: _Op) -> Any:
    if op.path == op.source:
        _resolve(doc, op.source, op, op.source_pointer)
        return doc
    if op.path[:len(op.source)] == op.source:
        raise _invalid(f'move operation does not apply: "{op.pointer}" is a child of '
                       f'"{op.source_pointer}"')
    doc, value = _remove(doc, op.source, op, op.source_pointer)
    return _add(doc, op.path, value, op)


def _test(doc: Any, op: _Op) -> Any:
    actual = _resolve(doc, op.path, op, op.pointer)
    if not _json_equal(actual, op.value):
        raise _invalid(f"testing value {op.pointer} failed: test failed")
    return doc


# --- strategic merge patch: schema ------------------------------------------------------


@dataclass(frozen=True)
class FieldSchema:
    """Patch metadata of one field, as the k8s.io/api struct tags declare it.

    ``strategy`` is a comma-separated subset of ``merge``, ``retainKeys``, ``replace``
    ("" = none: lists are replaced, maps merge). ``merge_key`` names the key that
    identifies elements of a merged list of objects ("" for a merged primitive list).
    ``type_name`` names the :data:`TYPES` entry describing the value (for a list: each
    element); "" means no further patch metadata below this field.
    """

    strategy: str = ""
    merge_key: str = ""
    type_name: str = ""

    @property
    def merges_list(self) -> bool:
        return "merge" in self.strategy.split(",")

    @property
    def replaces(self) -> bool:
        return "replace" in self.strategy.split(",")


_PLAIN = FieldSchema()


def _ref(type_name: str) -> FieldSchema:
    """A field without a strategy whose value is described by ``type_name``."""
    return FieldSchema(type_name=type_name)


def _keyed(merge_key: str, type_name: str = "", retain_keys: bool = False) -> FieldSchema:
    """A list of objects merged element-wise by ``merge_key``."""
    return FieldSchema("merge,retainKeys" if retain_keys else "merge", merge_key, type_name)


_SET = FieldSchema("merge")  # a primitive list merged as a set (union)
_CONDITIONS = _keyed("type")
_TEMPLATE = {"template": _ref("PodTemplateSpec")}

# Reusable type schemas: type name -> field name -> patch metadata. Only fields that carry
# a strategy, or lead to one, are listed; every other field is plain (maps merge, lists
# are replaced).
TYPES: dict[str, dict[str, FieldSchema]] = {
    "ObjectMeta": {"ownerReferences": _keyed("uid"), "finalizers": _SET},
    "Object": {"metadata": _ref("ObjectMeta")},
    "PodTemplateSpec": {"metadata": _ref("ObjectMeta"), "spec": _ref("PodSpec")},
    "PodSpec": {
        "containers": _keyed("name", "Container"),
        "initContainers": _keyed("name", "Container"),
        "ephemeralContainers": _keyed("name", "Container"),
        "volumes": _keyed("name", retain_keys=True),
        "imagePullSecrets": _keyed("name"),
        "hostAliases": _keyed("ip"),
        "topologySpreadConstraints": _keyed("topologyKey"),
        "schedulingGates": _keyed("name"),
        "resourceClaims": _keyed("name", retain_keys=True),
    },
    "Container": {
        "ports": _keyed("containerPort"),
        "env": _keyed("name"),
        "volumeMounts": _keyed("mountPath"),
        "volumeDevices": _keyed("devicePath"),
    },
    "PodStatus": {
        "conditions": _CONDITIONS,
        "podIPs": _keyed("ip"),
        "hostIPs": _keyed("ip"),
        "resourceClaimStatuses": _keyed("name", retain_keys=True),
    },
    "ConditionsStatus": {"conditions": _CONDITIONS},
    "DeploymentSpec": {**_TEMPLATE, "strategy": FieldSchema("retainKeys")},
    "TemplateSpec": _TEMPLATE,
    "JobTemplateSpec": {"metadata": _ref("ObjectMeta"), "spec": _ref("TemplateSpec")},
    "CronJobSpec": {"jobTemplate": _ref("JobTemplateSpec")},
    "PodTemplate": {"metadata": _ref("ObjectMeta"), **_TEMPLATE},
    "ServiceSpec": {"ports": _keyed("port")},
    "NodeSpec": {"podCIDRs": _SET},
    "NodeStatus": {"conditions": _CONDITIONS, "addresses": _keyed("type")},
    "ServiceAccount": {"metadata": _ref("ObjectMeta"), "secrets": _keyed("name")},
}


def _object(spec: str = "", status: str = "") -> dict[str, FieldSchema]:
    fields = {"metadata": _ref("ObjectMeta")}
    if spec:
        fields["spec"] = _ref(spec)
    if status:
        fields["status"] = _ref(status)
    return fields


TYPES.update({
    "Pod": _object("PodSpec", "PodStatus"),
    "Deployment": _object("DeploymentSpec", "ConditionsStatus"),
    "ReplicaSet": _object("TemplateSpec", "ConditionsStatus"),
    "ReplicationController": _object("TemplateSpec", "ConditionsStatus"),
    "DaemonSet": _object("TemplateSpec", "ConditionsStatus"),
    "StatefulSet": _object("TemplateSpec", "ConditionsStatus"),
    "Job": _object("TemplateSpec", "ConditionsStatus"),
    "CronJob": _object("CronJobSpec"),
    "Service": _object("ServiceSpec", "ConditionsStatus"),
    "Node": _object("NodeSpec", "NodeStatus"),
    "Namespace": _object("", "ConditionsStatus"),
})

_METADATA_ONLY_KINDS = (
    "Endpoints", "EndpointSlice", "Ingress", "IngressClass", "ConfigMap", "Secret", "Event",
    "Lease", "ResourceQuota", "LimitRange", "Scale",
)

# kind -> root type schema. A kind missing here has no patch metadata at all: every list
# is replaced (maps, null and directives still work).
KIND_TYPES: dict[str, str] = {
    **{kind: kind for kind in (
        "Pod", "Deployment", "ReplicaSet", "ReplicationController", "DaemonSet",
        "StatefulSet", "Job", "CronJob", "Service", "Node", "Namespace", "ServiceAccount",
        "PodTemplate")},
    **{kind: "Object" for kind in _METADATA_ONLY_KINDS},
}


def _field(type_name: str, key: str) -> FieldSchema:
    return TYPES.get(type_name, {}).get(key, _PLAIN)


def patch_meta(kind: str, path: str) -> FieldSchema:
    """The patch metadata of the dotted field ``path`` (e.g.
    ``spec.template.spec.containers``) in objects of ``kind``; plain when nothing is
    declared. List fields are traversed by their element type (``containers.env``)."""
    type_name = KIND_TYPES.get(kind, "")
    meta = _PLAIN
    for part in path.split("."):
        meta = _field(type_name, part)
        type_name = meta.type_name
    return meta


# --- strategic merge patch: merging -----------------------------------------------------

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_ORDER_PREFIX = "$setElementOrder/"
_DELETE_PREFIX = "$deleteFromPrimitiveList/"


class _Deleted:
    """Result marker: the value was deleted by ``$patch: delete``."""


_DELETED = _Deleted()


def strategic_merge_patch(original: JSONDict, patch: JSONDict, kind: str) -> JSONDict:
    """Apply a Kubernetes strategic merge patch to ``original``, an object of ``kind``.

    Maps merge recursively and ``null`` deletes; a list is replaced unless its field has
    the ``merge`` strategy in the schema (elements matched by merge key and merged, or a
    set union for primitive lists). Directives ``$patch`` (replace/delete/merge, in maps
    and as list elements), ``$setElementOrder/<f>``, ``$deleteFromPrimitiveList/<f>`` and
    ``$retainKeys`` are honoured and never appear in the result. ``$patch: delete`` on
    the whole object yields ``{}``.
    """
    if not isinstance(patch, dict):
        raise bad_request(f"json: cannot unmarshal {_go_type(patch)} into Go value of type "
                          f"map[string]interface {{}}")
    base = copy.deepcopy(original) if isinstance(original, dict) else {}
    result = _smp_map(base, patch, KIND_TYPES.get(kind, ""))
    return {} if isinstance(result, _Deleted) else result


def _smp_map(orig: JSONDict, patch: JSONDict, type_name: str) -> JSONDict | _Deleted:
    """Merge ``patch`` into ``orig`` (owned, mutated); ``patch`` is only read."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "delete":
            return _DELETED
        if directive == "replace":
            rest = {k: v for k, v in patch.items() if k != _DIRECTIVE}
            return _smp_map({}, rest, type_name)
        if directive != "merge":
            raise bad_request(f"unknown patch type: {directive} in map: {patch}")
    _apply_retain_keys(orig, patch)
    server_lists = {name: orig.get(name) for name in _directive_fields(patch, _ORDER_PREFIX)}
    for key, value in patch.items():
        if not key.startswith("$"):
            _smp_field(orig, key, value, _field(type_name, key))
    for name in _directive_fields(patch, _DELETE_PREFIX):
        _delete_from_primitive_list(orig, name, patch[_DELETE_PREFIX + name])
    for name, server in server_lists.items():
        _set_element_order(orig, name, patch[_ORDER_PREFIX + name], server,
                           _field(type_name, name))
    return orig


def _directive_fields(patch: JSONDict, prefix: str) -> list[str]:
    return [key[len(prefix):] for key in patch if key.startswith(prefix)]


def _apply_retain_keys(orig: JSONDict, patch: JSONDict) -> None:
    """``$retainKeys``: drop every key of ``orig`` not listed; the patch must not set a
    key outside the list."""
    if _RETAIN_KEYS not in patch:
        return
    keep = patch[_RETAIN_KEYS]
    if not isinstance(keep, list):
        raise bad_request("invalid patch format of retainKeys")
    for key, value in patch.items():
        if value is not None and not key.startswith("$") and key not in keep:
            raise bad_request("invalid patch format of retainKeys")
    for key in [k for k in orig if k not in keep]:
        del orig[key]


def _smp_field(orig: JSONDict, key: str, value: Any, meta: FieldSchema) -> None:
    if value is None:
        orig.pop(key, None)
        return
    merged = _smp_value(orig.get(key), value, meta)
    if isinstance(merged, _Deleted):
        orig.pop(key, None)
    else:
        orig[key] = merged


def _smp_value(current: Any, value: Any, meta: FieldSchema) -> Any:
    """The merge of patch ``value`` into ``current`` (owned) for a field with ``meta``."""
    if isinstance(value, dict):
        base_map = current if isinstance(current, dict) and not meta.replaces else {}
        return _smp_map(base_map, value, meta.type_name)
    if isinstance(value, list):
        base_list = current if isinstance(current, list) else []
        return _smp_list(base_list, value, meta)
    return value


def _fresh(value: Any, type_name: str) -> Any:
    """A directive-free copy of a patch value that has nothing to merge with."""
    if isinstance(value, dict):
        return _smp_map({}, value, type_name)
    if isinstance(value, list):
        return [item for item in (_fresh(v, "") for v in value)
                if not isinstance(item, _Deleted)]
    return value


def _smp_list(base: list[Any], patch: list[Any], meta: FieldSchema) -> list[Any]:
    if not meta.merges_list:
        return [item for item in (_fresh(v, meta.type_name) for v in patch)
                if not isinstance(item, _Deleted)]
    if any(isinstance(v, list) for v in patch):
        raise _invalid("lists of lists are not supported")
    if any(isinstance(v, dict) for v in patch):
        if not meta.merge_key:
            raise bad_request("cannot merge lists without merge key")
        return _merge_keyed(base, patch, meta)
    return _merge_primitives(base, patch)


def _key_of(item: Any, merge_key: str) -> str | None:
    if isinstance(item, dict) and merge_key in item:
        return _canon(item[merge_key])
    return None


def _merge_keyed(base: list[Any], patch: list[Any], meta: FieldSchema) -> list[Any]:
    """Merge a list of objects element-wise by ``meta.merge_key``."""
    key = meta.merge_key
    server_ids = [_key_of(item, key) for item in base]
    items, plain, replace = list(base), [], False
    for element in patch:
        if not isinstance(element, dict):
            raise bad_request(f"list element {element!r} of a merged list is not an object")
        directive = element.get(_DIRECTIVE)
        if directive is None:
            if key not in element:
                raise bad_request(f"map: {element} does not contain declared merge key: {key}")
            plain.append(element)
        elif directive == "delete":
            if key not in element:
                raise bad_request(f"map: {element} does not contain declared merge key: {key}")
            items = [i for i in items if _key_of(i, key) != _canon(element[key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise bad_request("merging lists cannot yet be specified in the patch")
        else:
            raise bad_request(f"unknown patch type: {directive} in map: {element}")
    if replace:
        return [m for m in (_smp_map({}, e, meta.type_name) for e in plain)
                if not isinstance(m, _Deleted)]
    for element in plain:
        _merge_element(items, element, meta)
    patch_ids = [_canon(e[key]) for e in plain]
    return _reorder(items, patch_ids, server_ids, lambda item: _key_of(item, key))


def _merge_element(items: list[Any], element: JSONDict, meta: FieldSchema) -> None:
    wanted = _canon(element[meta.merge_key])
    for index, item in enumerate(items):
        if _key_of(item, meta.merge_key) == wanted:
            merged = _smp_map(item, element, meta.type_name)
            if isinstance(merged, _Deleted):
                del items[index]
            else:
                items[index] = merged
            return
    new = _smp_map({}, element, meta.type_name)
    if not isinstance(new, _Deleted):
        items.append(new)


def _merge_primitives(base: list[Any], patch: list[Any]) -> list[Any]:
    """Set union of two primitive lists, duplicates removed."""
    items: list[Any] = []
    seen: set[str] = set()
    for value in [*base, *patch]:
        if _canon(value) not in seen:
            seen.add(_canon(value))
            items.append(value)
    return _reorder(items, [_canon(v) for v in patch], [_canon(v) for v in base], _canon)


def _reorder(items: list[Any], patch_ids: Sequence[str | None],
             server_ids: Sequence[str | None],
             ident: Callable[[Any], str | None]) -> list[Any]:
    """Order merged ``items``: those named in the patch follow the patch order, the rest
    keep their server order, and the two runs interleave by server position (an element
    the server never had is placed after server-only elements that precede it).
    Precedence: ``$setElementOrder`` / patch order > server order."""
    patch_pos = _positions(patch_ids)
    server_pos = _positions(server_ids)
    in_patch = sorted((i for i in items if ident(i) in patch_pos),
                      key=lambda i: patch_pos[ident(i)])
    server_only = sorted((i for i in items if ident(i) not in patch_pos),
                         key=lambda i: server_pos.get(ident(i), len(server_pos)))
    return _interleave(server_only, in_patch, lambda i: server_pos.get(ident(i)))


def _positions(ids: Iterable[str | None]) -> dict[str | None, int]:
    positions: dict[str | None, int] = {}
    for index, ident in enumerate(ids):
        if ident is not None:
            positions.setdefault(ident, index)
    return positions


def _interleave(left: list[Any], right: list[Any],
                position: Callable[[Any], int | None]) -> list[Any]:
    """Merge two ordered runs, taking from ``right`` only when both heads have a server
    position and the right one comes first."""
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
            continue
        if j < len(right):
            lpos, rpos = position(left[i]), position(right[j])
            if lpos is not None and rpos is not None and rpos < lpos:
                out.append(right[j])
                j += 1
                continue
        out.append(left[i])
        i += 1
    return out


def _delete_from_primitive_list(orig: JSONDict, name: str, values: Any) -> None:
    if not isinstance(values, list):
        raise bad_request("invalid patch format of primitive list")
    current = orig.get(name)
    if isinstance(current, list):
        drop = {_canon(v) for v in values}
        orig[name] = [v for v in current if _canon(v) not in drop]


def _set_element_order(orig: JSONDict, name: str, order: Any, server: Any,
                       meta: FieldSchema) -> None:
    """Apply ``$setElementOrder/<name>`` to the merged list ``orig[name]``."""
    if not isinstance(order, list):
        raise bad_request("invalid patch type of setElementOrder list")
    current = orig.get(name)
    if not meta.merges_list or not isinstance(current, list):
        return
    key = meta.merge_key

    def ident(item: Any) -> str | None:
        return _key_of(item, key) if key else _canon(item)

    server_list = server if isinstance(server, list) else []
    orig[name] = _reorder(current, [ident(o) for o in order],
                          [ident(s) for s in server_list], ident)


# --- server-side apply ------------------------------------------------------------------

# Fields apply never records as owned (they identify the object or are server-set).
_UNOWNED_PATHS: tuple[FieldPath, ...] = (
    ("f:apiVersion",), ("f:kind",),
    *(("f:metadata", "f:" + name) for name in (
        "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
        "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields")),
)


@dataclass
class _Manager:
    """One ``metadata.managedFields`` entry and the field paths it owns."""

    entry: JSONDict
    paths: set[FieldPath]
    changed: bool = False

    @property
    def name(self) -> str:
        return str(self.entry.get("manager", ""))

    @property
    def operation(self) -> str:
        return str(self.entry.get("operation", ""))


@dataclass(frozen=True)
class _Conflict:
    manager: _Manager
    path: FieldPath


def apply_patch(live: JSONDict | None, applied: JSONDict, kind: str, manager: str,
                force: bool, now: str | None = None) -> JSONDict:
    """Reduced server-side apply of the configuration ``applied`` by ``manager``.

    * ``live`` is None: returns the object to create — ``applied`` plus a
      ``managedFields`` entry for ``manager`` (the caller fills in system fields).
    * Otherwise ``applied`` is merged into ``live`` with strategic-merge list semantics;
      fields this manager applied before but no longer applies, and that no other manager
      owns, are removed; this manager's ``Apply`` entry is replaced.
    * A field another manager owns whose live value differs from the applied one is a
      conflict: 409 Conflict (causes ``FieldManagerConflict``) unless ``force``, which
      takes the field away from the other manager.

    ``now`` is the RFC 3339 time recorded in the entry (default: the current UTC time).
    Approximations: a list item's key is the single SMP merge key (the real key may span
    several fields, e.g. ``containerPort`` + ``protocol``); an object with no
    ``managedFields`` has no implicit ``before-first-apply`` owner; entries of the same
    manager name never conflict with each other; ``status`` is not owned for kinds whose
    status is a subresource.
    """
    if not isinstance(applied, dict):
        raise bad_request("error decoding YAML: the applied configuration is not an object")
    config = _without_managed_fields(applied)
    api_version = str(config.get("apiVersion") or (live or {}).get("apiVersion", ""))
    stamp = now or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    owned = _owned_paths(config, kind)
    ours = _Manager(_entry(manager, api_version, stamp), owned, changed=True)
    if live is None:
        config.setdefault("metadata", {})["managedFields"] = [_render_entry(ours)]
        return config
    managers = _read_managers(live)
    previous = next((m for m in managers if m.name == manager and m.operation == "Apply"),
                    None)
    others = [m for m in managers if m is not previous]
    conflicts = _find_conflicts(live, config, owned, others, manager)
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for conflict in conflicts:
        conflict.manager.paths.discard(conflict.path)
        conflict.manager.changed = True
    result = strategic_merge_patch(_without_managed_fields(live), config, kind)
    if previous is not None:
        _remove_abandoned(result, previous.paths - owned, others, owned)
    entries = [ours if m is previous else m for m in managers]
    if previous is None:
        entries.append(ours)
    result.setdefault("metadata", {})["managedFields"] = [
        _render_entry(m) for m in entries if m.paths]
    return result


def _without_managed_fields(obj: JSONDict) -> JSONDict:
    copied = copy.deepcopy(obj)
    metadata = copied.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return copied


def _entry(manager: str, api_version: str, stamp: str) -> JSONDict:
    return {"manager": manager, "operation": "Apply", "apiVersion": api_version,
            "time": stamp, "fieldsType": "FieldsV1"}


def _render_entry(manager: _Manager) -> JSONDict:
    if not manager.changed:
        return copy.deepcopy(manager.entry)
    entry = {k: copy.deepcopy(v) for k, v in manager.entry.items() if k != "fieldsV1"}
    entry["fieldsV1"] = fields_v1(manager.paths)
    return entry


def _read_managers(live: JSONDict) -> list[_Manager]:
    metadata = live.get("metadata") or {}
    entries = metadata.get("managedFields") or []
    managers = []
    for entry in entries:
        if isinstance(entry, dict):
            raw = entry.get("fieldsV1")
            paths = parse_fields_v1(raw) if isinstance(raw, dict) else set()
            managers.append(_Manager(entry, paths))
    return managers


def field_set(obj: JSONDict, kind: str) -> JSONDict:
    """The FieldsV1 document (``{"f:spec": {"f:replicas": {}}}``) of the fields ``obj``
    sets, as apply records ownership for a configuration of ``kind``."""
    return fields_v1(_owned_paths(obj, kind))


def _owned_paths(obj: JSONDict, kind: str) -> set[FieldPath]:
    paths: set[FieldPath] = set()
    _collect_map(obj, KIND_TYPES.get(kind, ""), (), paths)
    info = kinds.by_kind(kind)
    unowned = _UNOWNED_PATHS + ((("f:status",),) if info is not None and info.has_status else ())
    return {p for p in paths if not any(p[:len(u)] == u for u in unowned)}


def _collect_map(value: JSONDict, type_name: str, prefix: FieldPath,
                 out: set[FieldPath]) -> None:
    for key, child in value.items():
        if child is None or key.startswith("$"):
            continue
        path = (*prefix, "f:" + key)
        meta = _field(type_name, key)
        if isinstance(child, dict) and child:
            _collect_map(child, meta.type_name, path, out)
        elif isinstance(child, list) and child and meta.merges_list:
            _collect_list(child, meta, path, out)
        else:
            out.add(path)


def _collect_list(items: list[Any], meta: FieldSchema, prefix: FieldPath,
                  out: set[FieldPath]) -> None:
    for item in items:
        if isinstance(item, dict) and meta.merge_key in item:
            path = (*prefix, "k:" + _compact({meta.merge_key: item[meta.merge_key]}))
            out.add(path)
            _collect_map(item, meta.type_name, path, out)
        elif not isinstance(item, dict | list):
            out.add((*prefix, "v:" + _compact(item)))
        else:
            out.add(prefix)


def fields_v1(paths: Iterable[FieldPath]) -> JSONDict:
    """Render owned field paths as a FieldsV1 trie; an owned node that also has owned
    children carries ``"."``."""
    members = set(paths)
    root: JSONDict = {}
    for path in sorted(members):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    for path in members:
        node = root
        for element in path:
            node = node[element]
        if node:
            node["."] = {}
    return root


def parse_fields_v1(fields: JSONDict, prefix: FieldPath = ()) -> set[FieldPath]:
    """The owned field paths of a FieldsV1 trie (inverse of :func:`fields_v1`)."""
    out: set[FieldPath] = set()
    for element, sub in fields.items():
        if element == ".":
            out.add(prefix)
        elif isinstance(sub, dict) and sub:
            out |= parse_fields_v1(sub, (*prefix, element))
        else:
            out.add((*prefix, element))
    return out


def _lookup(obj: Any, path: FieldPath) -> tuple[bool, Any]:
    """``(found, value)`` at a field path of ``obj``."""
    current = obj
    for element in path:
        found, current = _step(current, element)
        if not found:
            return False, None
    return True, current


def _step(current: Any, element: str) -> tuple[bool, Any]:
    kind, _, body = element.partition(":")
    if kind == "f":
        if isinstance(current, dict) and body in current:
            return True, current[body]
        return False, None
    if not isinstance(current, list):
        return False, None
    index = _find_item(current, kind, body)
    return (index is not None), (current[index] if index is not None else None)


def _find_item(items: list[Any], kind: str, body: str) -> int | None:
    if kind == "i":
        return int(body) if body.isdigit() and int(body) < len(items) else None
    try:
        wanted = json.loads(body)
    except ValueError:
        return None
    for index, item in enumerate(items):
        if kind == "v" and _json_equal(item, wanted):
            return index
        if kind == "k" and isinstance(wanted, dict) and isinstance(item, dict) and all(
                k in item and _json_equal(item[k], v) for k, v in wanted.items()):
            return index
    return None


def _find_conflicts(live: JSONDict, config: JSONDict, owned: set[FieldPath],
                    others: list[_Manager], manager: str) -> list[_Conflict]:
    """Fields ``config`` sets that another manager owns with a different live value."""
    conflicts = []
    for other in others:
        if other.name == manager:
            continue
        for path in sorted(owned & other.paths):
            if not path or not path[-1].startswith("f:"):
                continue  # list items and set values: present in both, nothing differs
            found, live_value = _lookup(live, path)
            _, applied_value = _lookup(config, path)
            if applied_value == {}:
                continue  # an empty object sets no value of its own
            if found and not _json_equal(live_value, applied_value):
                conflicts.append(_Conflict(other, path))
    return conflicts


def path_string(path: FieldPath) -> str:
    """A field path as apimachinery prints it: ``.spec.containers[name="c"].image``."""
    parts = []
    for element in path:
        kind, _, body = element.partition(":")
        if kind == "f":
            parts.append("." + body)
        elif kind == "k":
            keys = json.loads(body)
            parts.append("[" + ",".join(f"{k}={_compact(v)}" for k, v in keys.items()) + "]")
        elif kind == "v":
            parts.append("[=" + body + "]")
        else:
            parts.append("[" + body + "]")
    return "".join(parts)


def _manager_label(manager: _Manager) -> str:
    label = json.dumps(manager.name)
    if manager.operation == "Update":
        label += f" using {manager.entry.get('apiVersion', '')}"
    return label


def _conflict_error(conflicts: list[_Conflict]) -> APIError:
    causes = [{"reason": "FieldManagerConflict",
               "message": f"conflict with {_manager_label(c.manager)}",
               "field": path_string(c.path)} for c in conflicts]
    if len(conflicts) == 1:
        only = conflicts[0]
        message = (f"Apply failed with 1 conflict: conflict with {_manager_label(only.manager)}"
                   f": {path_string(only.path)}")
    else:
        lines = []
        for label in sorted({_manager_label(c.manager) for c in conflicts}):
            lines.append(f"conflicts with {label}:")
            lines += [f"- {path_string(c.path)}" for c in conflicts
                      if _manager_label(c.manager) == label]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return APIError(409, "Conflict", message, {"causes": causes})


def _remove_abandoned(obj: JSONDict, abandoned: set[FieldPath], others: list[_Manager],
                      owned: set[FieldPath]) -> None:
    """Delete fields no manager owns any more. A field stays while any path at or below
    it is still owned; otherwise its whole subtree goes (shallowest first, so a list item
    is found by its key before its key field could be removed)."""
    still_owned = set(owned).union(*(m.paths for m in others))
    for path in sorted(abandoned, key=len):
        if path and not any(p[:len(path)] == path for p in still_owned):
            _delete_at(obj, path)


def _delete_at(obj: JSONDict, path: FieldPath) -> None:
    found, parent = _lookup(obj, path[:-1])
    if not found:
        return
    kind, _, body = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(body, None)
    elif isinstance(parent, list):
        index = _find_item(parent, kind, body)
        if index is not None:
            del parent[index]


# --- dispatch by content type -----------------------------------------------------------

_GO_JSON_ERRORS = (
    ("Expecting property name", "looking for beginning of object key string"),
    ("Expecting ':' delimiter", "after object key"),
    ("Expecting ',' delimiter", "after object key:value pair"),
    ("Extra data", "after top-level value"),
)


def decode_json(body: bytes | str) -> Any:
    """Parse a JSON request body; 400 BadRequest with Go ``encoding/json``-style text
    (``invalid character 'x' looking for beginning of value``) when it is not JSON."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request(_go_json_message(text, exc)) from None


def _go_json_message(text: str, exc: json.JSONDecodeError) -> str:
    if exc.pos >= len(text.rstrip()):
        return "unexpected end of JSON input"
    context = next((go for py, go in _GO_JSON_ERRORS if exc.msg.startswith(py)),
                   "looking for beginning of value")
    return f"invalid character {text[exc.pos]!r} {context}"


def patch_by_content_type(original: JSONDict, body: bytes | Any, content_type: str,
                          kind: str) -> JSONDict:
    """Apply a PATCH body to ``original`` according to its ``Content-Type`` (parameters
    such as ``; charset=utf-8`` are ignored). ``body`` is raw bytes/str or an already
    decoded value. Server-side apply is not handled here (see :func:`apply_patch`).
    The result must be an object (422 otherwise)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH):
        raise APIError(415, "UnsupportedMediaType",
                       "the body of the request was in an unknown format - accepted media "
                       "types include: " + ", ".join(PATCH_CONTENT_TYPES))
    doc = decode_json(body) if isinstance(body, bytes | str) else body
    if media_type == JSON_PATCH:
        result = json_patch(original, doc)
    elif not isinstance(doc, dict):
        raise bad_request(f"json: cannot unmarshal {_go_type(doc)} into Go value of type "
                          f"map[string]interface {{}}")
    elif media_type == MERGE_PATCH:
        result = json_merge_patch(original, doc)
    else:
        result = strategic_merge_patch(original, doc, kind)
    if not isinstance(result, dict):
        raise _invalid("the patched document is not a JSON object")
    return result
