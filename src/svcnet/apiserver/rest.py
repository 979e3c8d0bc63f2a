"""The REST storage layer: Kubernetes verb semantics over a :class:`Storage`.

``Registry`` turns create/get/list/update/patch/delete requests on API objects (plain JSON
dicts) into store operations, applying what the real API server applies between the two:
defaulting, validation, metadata stamping, the status/main-resource split, generation
bumps, the Scale view, ClusterIP/NodePort allocation, namespace existence checks and
graceful deletion with finalizers. It knows nothing about HTTP; errors are
:class:`svcnet.model.errors.APIError`.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from svcnet.apiserver import objects
from svcnet.apiserver.allocators import ServiceAllocator
from svcnet.apiserver.objects import Obj, meta, store_key, store_prefix
from svcnet.model import defaulting, errors, kinds, patch, schema, selectors, taints, validation
from svcnet.model.kinds import ResourceInfo
from svcnet.store import base as store_base
from svcnet.store.base import Preconditions, Storage

log = logging.getLogger("svcnet.apiserver")

Clock = Callable[[], dt.datetime]

NAMESPACES = kinds.lookup("", "namespaces")
SERVICES = kinds.lookup("", "services")
assert NAMESPACES is not None and SERVICES is not None

# Kinds whose DELETE answers with the deleted object rather than a Success Status.
LIST_CHUNK = 500  # store rows read at a time for a paged list
_RETURNS_DELETED_OBJECT = {"pods", "services", "namespaces", "endpoints", "nodes"}
# Kinds for which a PUT of a missing object creates it (AllowCreateOnUpdate upstream).
_CREATE_ON_UPDATE = {"endpoints", "events", "leases", "nodes"}


@dataclass(frozen=True)
class WriteOptions:
    """Query options shared by writes."""

    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Strict"  # Strict | Warn | Ignore (kubectl sends Strict)
    force: bool = False


@dataclass
class WriteResult:
    obj: Obj
    created: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ListOptions:
    label_selector: str = ""
    field_selector: str = ""
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


def _status_success(r: ResourceInfo, obj: Obj) -> Obj:
    m = obj.get("metadata") or {}
    details: Obj = {"name": m.get("name", ""), "kind": r.resource, "uid": m.get("uid", "")}
    if r.group:
        details["group"] = r.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}


def encode_continue(rv: int, start_after: str) -> str:
    import base64
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start_after}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    import base64
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
        return int(d["rv"]), str(d["start"])
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request("continue key is not valid: invalid continue token") from None


class Registry:
    """Kubernetes verb semantics for every resource in :mod:`svcnet.model.kinds`."""

    def __init__(self, store: Storage, allocator: ServiceAllocator,
                 clock: Clock | None = None) -> None:
        self.store = store
        self.allocator = allocator
        self.clock: Clock = clock or (lambda: dt.datetime.now(dt.UTC))
        # Called with a namespace name when it starts terminating (content clean-up).
        self.on_namespace_terminating: Callable[[str], Coroutine[Any, Any, None]] | None = None

    def now(self) -> str:
        return objects.format_time(self.clock())

    # --- reads -------------------------------------------------------------------------

    async def get(self, r: ResourceInfo, ns: str | None, name: str) -> Obj:
        try:
            return await self.store.get(store_key(r, ns, name))
        except store_base.KeyNotFound:
            raise errors.not_found(r.resource, r.group, name) from None

    async def list_objects(self, r: ResourceInfo, ns: str | None, opts: ListOptions
                   ) -> tuple[list[Obj], str, str]:
        """Matching items, the list's resourceVersion and a continue token ("" if none)."""
        label_sel = selectors.parse_label_selector(opts.label_selector)
        field_sel = selectors.parse_field_selector(opts.field_selector)
        selectors.validate_field_selector(field_sel, r.kind)
        prefix = store_prefix(r, ns)
        name = field_sel.exact_name()
        start_after = ""
        if opts.continue_token:
            _, start_after = decode_continue(opts.continue_token)
        if name is not None and r.namespaced and ns is not None:
            try:
                items = [await self.store.get(prefix + name)]
            except store_base.KeyNotFound:
                items = []
            rev = await self.store.current_revision()
            self._check_list_rv(opts, rev)
            out = [o for o in items if self._selected(r, o, label_sel, field_sel)
                   and _key_of(r, o) > start_after]
        elif not opts.limit:
            items, rev = await self.store.list(prefix, start_after)
            self._check_list_rv(opts, rev)
            out = [o for o in items if self._selected(r, o, label_sel, field_sel)]
        else:
            # A page: read the store in chunks after the continue key until one more
            # match than the limit is found, so a page costs its own size, not the list's.
            out = []
            rev = -1
            cursor = start_after
            chunk = max(opts.limit + 1, LIST_CHUNK)
            while len(out) <= opts.limit:
                items, at = await self.store.list(prefix, cursor, chunk)
                if rev < 0:
                    rev = at
                    self._check_list_rv(opts, rev)
                out += [o for o in items if self._selected(r, o, label_sel, field_sel)]
                if len(items) < chunk:
                    break
                cursor = _key_of(r, items[-1])
        token = ""
        if opts.limit and len(out) > opts.limit:
            out = out[: opts.limit]
            token = encode_continue(rev, _key_of(r, out[-1]))
        return out, str(rev), token

    @staticmethod
    def _selected(r: ResourceInfo, obj: Obj, label_sel: selectors.LabelSelector,
                  field_sel: selectors.FieldSelector) -> bool:
        return label_sel.matches((obj.get("metadata") or {}).get("labels")) and \
            field_sel.matches(obj, r.kind)

    @staticmethod
    def _check_list_rv(opts: ListOptions, current: int) -> None:
        if opts.resource_version in ("", "0") or opts.continue_token:
            return
        try:
            want = int(opts.resource_version)
        except ValueError:
            raise errors.bad_request(
                f'resourceVersion: Invalid value: "{opts.resource_version}": '
                "resourceVersion must be an integer") from None
        if want > current:
            err = errors.timeout(f"Too large resource version: {want}, current: {current}")
            err.details = {"causes": [{"reason": "ResourceVersionTooLarge",
                                       "message": "Too large resource version"}],
                           "retryAfterSeconds": 1}
            raise err

    # --- create ------------------------------------------------------------------------

    async def create(self, r: ResourceInfo, ns: str | None, body: Any,
                     opts: WriteOptions, applied: bool = False) -> WriteResult:
        """Create an object. ``applied``: the body comes from server-side apply and carries
        its own managedFields entry."""
        obj = self._decode_body(r, ns, body, opts)
        m = meta(obj)
        if not m.get("name") and m.get("generateName"):
            m["name"] = objects.generate_name(m["generateName"])
        if not m.get("name"):
            raise errors.invalid_object(r.kind, r.group, "", [
                errors.required("metadata.name", "name or generateName is required")])
        warnings = self._check_fields(r, obj, opts)
        self._stamp_new(r, obj, opts, applied)
        obj = defaulting.apply_defaults(r.kind, obj)
        self._prepare_create(r, obj)
        self._validate(r, obj, None)
        if r.namespaced:
            await self._check_namespace(ns or "")
        fresh: list[tuple[str, Any]] = []
        if r is SERVICES:
            fresh = self.allocator.assign(obj, None)
            defaulting.default_ip_families(obj)
        try:
            if opts.dry_run:
                await self._check_absent(r, ns, m["name"])
                return WriteResult(obj, created=True, warnings=warnings)
            created = await self.store.create(store_key(r, ns, m["name"]), obj)
        except store_base.KeyExists:
            self.allocator.undo(fresh)
            raise errors.already_exists(r.resource, r.group, m["name"]) from None
        except BaseException:
            self.allocator.undo(fresh)
            raise
        finally:
            if opts.dry_run:
                self.allocator.undo(fresh)
        return WriteResult(created, created=True, warnings=warnings)

    async def _check_absent(self, r: ResourceInfo, ns: str | None, name: str) -> None:
        try:
            await self.store.get(store_key(r, ns, name))
        except store_base.KeyNotFound:
            return
        raise errors.already_exists(r.resource, r.group, name)

    def _decode_body(self, r: ResourceInfo, ns: str | None, body: Any,
                     opts: WriteOptions) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type {r.kind})")
        obj = copy.deepcopy(body)
        api_version = obj.get("apiVersion") or r.api_version
        kind = obj.get("kind") or r.kind
        if kind != r.kind or api_version != r.api_version:
            raise errors.bad_request(
                f'the API version in the data ({api_version}) does not match the expected '
                f'API version ({r.api_version})' if api_version != r.api_version else
                f"{kind} in version \"{r.version}\" cannot be handled as a {r.kind}: "
                f"unexpected kind")
        obj["apiVersion"], obj["kind"] = api_version, kind
        m = meta(obj)
        if r.namespaced:
            if m.get("namespace") and ns and m["namespace"] != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request")
            m["namespace"] = ns
        else:
            m.pop("namespace", None)
        return obj

    def _check_fields(self, r: ResourceInfo, obj: Obj, opts: WriteOptions) -> list[str]:
        """Decoding as the real server decodes a body: a value of the wrong JSON type is
        400 whatever ``fieldValidation`` says; unknown fields are 400 with Strict and
        warnings with Warn."""
        bad_types = schema.type_errors(r.kind, obj)
        if bad_types:
            raise errors.bad_request(schema.decode_error_message(r.kind, r.version,
                                                                 bad_types[0]))
        if opts.field_validation == "Ignore":
            return []
        unknown = schema.unknown_fields(r.kind, obj)
        if not unknown:
            return []
        if opts.field_validation == "Strict":
            listed = ", ".join(f'unknown field "{f}"' for f in unknown)
            raise errors.bad_request(
                f'{r.kind} in version "{r.version}" cannot be handled as a {r.kind}: '
                f"strict decoding error: {listed}")
        return [f'unknown field "{f}"' for f in unknown]

    def _stamp_new(self, r: ResourceInfo, obj: Obj, opts: WriteOptions,
                   applied: bool = False) -> None:
        m = meta(obj)
        for k in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "selfLink"):
            m.pop(k, None)
        if not applied:
            m.pop("managedFields", None)
        m["uid"] = objects.new_uid()
        m["creationTimestamp"] = self.now()
        if r.tracks_generation:
            m["generation"] = 1
        else:
            m.pop("generation", None)
        if not applied:
            objects.record_manager(obj, opts.field_manager, "Update", r.api_version,
                                   self.now())

    def _prepare_create(self, r: ResourceInfo, obj: Obj) -> None:
        """Per-kind PrepareForCreate: user-supplied status is dropped."""
        if r.has_status and r.resource not in ("nodes", "namespaces"):
            obj["status"] = {}
        if r.resource == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": defaulting.pod_qos_class(obj)}
            spec = obj.setdefault("spec", {})
            spec.setdefault("serviceAccountName", "default")
            spec.setdefault("serviceAccount", spec["serviceAccountName"])
            taints.add_default_tolerations(spec)  # DefaultTolerationSeconds
            # Priority admission without PriorityClasses: every pod gets priority 0.
            spec.setdefault("priority", 0)
            spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        elif r.resource == "services":
            obj["status"] = {"loadBalancer": {}}
        elif r.resource == "replicasets":
            obj["status"] = {"replicas": 0}  # not omitempty upstream; clients require it
        elif r.resource == "namespaces":
            obj["status"] = {"phase": "Active"}

    def _validate(self, r: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        causes = validation.validate(r.kind, obj, old)
        if causes:
            raise errors.invalid_object(r.kind, r.group, meta(obj).get("name", ""), causes)

    async def _check_namespace(self, ns: str) -> None:
        assert NAMESPACES is not None
        try:
            nso = await self.store.get(store_key(NAMESPACES, None, ns))
        except store_base.KeyNotFound:
            raise errors.not_found("namespaces", "", ns) from None
        if (nso.get("status") or {}).get("phase") == "Terminating" or \
                (nso.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.APIError(
                403, "Forbidden",
                f"unable to create new content in namespace {ns} because it is being "
                "terminated",
                {"name": ns, "kind": "namespaces",
                 "causes": [{"reason": "NamespaceTerminating",
                             "message": f"namespace {ns} is being terminated",
                             "field": "metadata.namespace"}]})

    # --- update / patch ----------------------------------------------------------------

    async def update(self, r: ResourceInfo, ns: str | None, name: str, body: Any,
                     opts: WriteOptions, subresource: str = "") -> WriteResult:
        if subresource == "scale":
            return await self._update_scale(r, ns, name, lambda _cur: body, opts)
        new = self._decode_body(r, ns, body, opts)
        _match_url_name(new, name)
        warnings = self._check_fields(r, new, opts)
        rv = meta(new).get("resourceVersion") or None
        try:
            return await self._write(r, ns, name, lambda _cur: new, opts, subresource,
                                     Preconditions(resource_version=rv), warnings)
        except errors.APIError as e:
            if e.code == 404 and r.resource in _CREATE_ON_UPDATE and not subresource:
                return await self.create(r, ns, new, opts)
            raise

    async def patch(self, r: ResourceInfo, ns: str | None, name: str, body: bytes,
                    content_type: str, opts: WriteOptions, subresource: str = "") -> WriteResult:
        ctype = content_type.split(";")[0].strip().lower()
        if ctype == "application/apply-patch+yaml":
            return await self._apply(r, ns, name, body, opts, subresource)
        if subresource == "scale":
            def scale_patch(cur: Obj) -> Obj:
                return patch.patch_by_content_type(cur, body, ctype, "Scale")
            return await self._update_scale(r, ns, name, scale_patch, opts)
        def mutate(cur: Obj) -> Obj:
            out = patch.patch_by_content_type(cur, body, ctype, r.kind)
            if not isinstance(out, dict):
                raise errors.bad_request("the patch produced a non-object")
            bad_types = schema.type_errors(r.kind, out)
            if bad_types:
                raise errors.bad_request(schema.decode_error_message(r.kind, r.version,
                                                                     bad_types[0]))
            rv = (out.get("metadata") or {}).get("resourceVersion")
            if rv and rv != (cur.get("metadata") or {}).get("resourceVersion"):
                raise errors.stale(r.resource, r.group, name)
            return out
        return await self._write(r, ns, name, mutate, opts, subresource, None, [])

    async def _apply(self, r: ResourceInfo, ns: str | None, name: str, body: bytes,
                     opts: WriteOptions, subresource: str) -> WriteResult:
        applied = _parse_yaml_or_json(body)
        if not isinstance(applied, dict):
            raise errors.bad_request("apply patch must be an object")
        _match_url_name(applied, name)
        if not opts.field_manager:
            raise errors.bad_request(
                "PATCH, application/apply-patch+yaml requests require fieldManager to be set")
        try:
            await self.store.get(store_key(r, ns, name))
        except store_base.KeyNotFound:
            if subresource:
                raise errors.not_found(r.resource, r.group, name) from None
            created_obj = patch.apply_patch(None, applied, r.kind, opts.field_manager,
                                            opts.force, self.now())
            return await self.create(r, ns, created_obj, opts, applied=True)
        def mutate(cur: Obj) -> Obj:
            return patch.apply_patch(cur, applied, r.kind, opts.field_manager, opts.force,
                                     self.now())
        return await self._write(r, ns, name, mutate, opts, subresource, None, [],
                                 operation="Apply")

    async def _update_scale(self, r: ResourceInfo, ns: str | None, name: str,
                            change: Callable[[Obj], Any], opts: WriteOptions) -> WriteResult:
        if r.resource not in ("deployments", "replicasets"):
            raise errors.not_found(r.resource, r.group, name)

        def mutate(cur: Obj) -> Obj:
            scale = change(objects.scale_of(r, cur))
            if not isinstance(scale, dict):
                raise errors.bad_request("the object provided is unrecognized (must be of type "
                                         "Scale)")
            want_rv = (scale.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != meta(cur).get("resourceVersion"):
                raise errors.stale(r.resource, r.group, name)
            replicas = (scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.invalid_object("Scale", "autoscaling", name, [
                    errors.invalid("spec.replicas", replicas,
                                   "must be greater than or equal to 0")])
            out = copy.deepcopy(cur)
            out.setdefault("spec", {})["replicas"] = replicas
            return out
        res = await self._write(r, ns, name, mutate, opts, "", None, [])
        res.obj = objects.scale_of(r, res.obj)
        return res

    async def _write(self, r: ResourceInfo, ns: str | None, name: str,
                     change: Callable[[Obj], Obj], opts: WriteOptions, subresource: str,
                     pre: Preconditions | None, warnings: list[str],
                     operation: str = "Update") -> WriteResult:
        """Read-modify-write through the store's compare-and-swap, with every rule of an
        update applied to the candidate: status split, metadata, defaults, allocation,
        validation. Dry runs compute the result without storing it."""
        key = store_key(r, ns, name)
        fresh: list[tuple[str, Any]] = []
        result: dict[str, Obj] = {}

        def update(cur: Obj) -> Obj:
            self.allocator.undo(fresh)
            fresh.clear()
            result["old"] = cur
            cand = change(copy.deepcopy(cur))
            new = self._merge_update(r, cur, cand, subresource, opts, operation)
            if r is SERVICES and not subresource:
                fresh.extend(self.allocator.assign(new, cur))
                defaulting.default_ip_families(new)
            self._validate(r, new, cur)
            if objects.strip_for_compare(new) == objects.strip_for_compare(cur):
                result["unchanged"] = cur
                return cur
            if opts.dry_run:
                result["dry"] = new
                raise _DryRunDone()
            return new

        try:
            stored = await self.store.guaranteed_update(key, update, pre)
        except _DryRunDone:
            self.allocator.undo(fresh)
            return WriteResult(result["dry"], warnings=warnings)
        except store_base.KeyNotFound:
            self.allocator.undo(fresh)
            raise errors.not_found(r.resource, r.group, name) from None
        except store_base.Conflict:
            self.allocator.undo(fresh)
            raise errors.stale(r.resource, r.group, name) from None
        except BaseException:
            self.allocator.undo(fresh)
            raise
        if r is SERVICES:
            # Values the previous version held and the stored one does not are free again.
            self.allocator.release_unused(result.get("old"), stored)
        stored = await self._finish_deletion_if_done(r, ns, name, stored)
        return WriteResult(stored, warnings=warnings)

    def _merge_update(self, r: ResourceInfo, cur: Obj, cand: Obj, subresource: str,
                      opts: WriteOptions, operation: str) -> Obj:
        """The object to store for an update of ``cur`` to ``cand`` (PrepareForUpdate)."""
        cm, old_m = meta(cand), cur.get("metadata") or {}
        cand["apiVersion"], cand["kind"] = r.api_version, r.kind
        if subresource == "status":
            new = copy.deepcopy(cur)
            new["status"] = cand.get("status", {})
            if operation == "Update":
                objects.record_manager(new, opts.field_manager, "Update", r.api_version,
                                       self.now(), "status")
            return new
        for k in ("uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "namespace", "name", "generation"):
            if k in old_m:
                cm[k] = old_m[k]
            else:
                cm.pop(k, None)
        cm["resourceVersion"] = old_m.get("resourceVersion")
        if r.has_status:
            if "status" in cur:
                cand["status"] = copy.deepcopy(cur["status"])
            else:
                cand.pop("status", None)
        if r is SERVICES:
            _drop_type_dependent_fields(cur, cand)
            _keep_allocated(cur, cand)
        new = defaulting.apply_defaults(r.kind, cand)
        if r.tracks_generation and new.get("spec") != cur.get("spec"):
            meta(new)["generation"] = int(old_m.get("generation") or 1) + 1
        if operation == "Update":
            objects.record_manager(new, opts.field_manager, "Update", r.api_version, self.now())
        return new

    async def _finish_deletion_if_done(self, r: ResourceInfo, ns: str | None, name: str,
                                       obj: Obj) -> Obj:
        """An object being deleted goes away once its last finalizer is removed — but
        not a pod still in its grace period (``deletionGracePeriodSeconds`` > 0): updates
        to it (the node agent's status reports while it stops, a condition patch) must
        not end it early; its node's final delete does."""
        m = obj.get("metadata") or {}
        if not m.get("deletionTimestamp") or m.get("finalizers") \
                or m.get("deletionGracePeriodSeconds"):
            return obj
        if r is NAMESPACES and (obj.get("spec") or {}).get("finalizers"):
            return obj
        try:
            gone = await self.store.delete(store_key(r, ns, name))
        except store_base.KeyNotFound:
            return obj
        if r is SERVICES:
            self.allocator.release_unused(gone, None)
        return gone

    # --- pods/binding ------------------------------------------------------------------

    async def bind(self, ns: str, name: str, body: Any, opts: WriteOptions) -> Obj:
        """Assign a pod to a node (what a scheduler does): sets ``spec.nodeName`` once and
        the ``PodScheduled`` condition. Returns a Success Status."""
        pods = kinds.lookup("", "pods")
        assert pods is not None
        target = (body or {}).get("target") or {} if isinstance(body, dict) else {}
        node = target.get("name", "")
        if not node:
            raise errors.invalid_object("Binding", "", name, [
                errors.required("target.name")])
        now = self.now()

        def update(cur: Obj) -> Obj:
            if (cur.get("spec") or {}).get("nodeName"):
                raise errors.conflict("pods", "", name,
                                      f'pod {name} is already assigned to node '
                                      f'"{cur["spec"]["nodeName"]}"')
            if meta(cur).get("deletionTimestamp"):
                raise errors.conflict("pods", "", name,
                                      "pod is being deleted, cannot be assigned to a host")
            new = copy.deepcopy(cur)
            new.setdefault("spec", {})["nodeName"] = node
            status = new.setdefault("status", {})
            conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": now})
            status["conditions"] = conds
            return new
        if not opts.dry_run:
            try:
                await self.store.guaranteed_update(store_key(pods, ns, name), update)
            except store_base.KeyNotFound:
                raise errors.not_found("pods", "", name) from None
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "code": 201}

    # --- delete ------------------------------------------------------------------------

    async def delete(self, r: ResourceInfo, ns: str | None, name: str,
                     options: Obj, opts: WriteOptions) -> tuple[Obj, int]:
        """Delete (or start deleting) one object; returns the reply body and HTTP code
        (200 when done, 202 when finalizers or a namespace clean-up keep it for now)."""
        key = store_key(r, ns, name)
        pre = options.get("preconditions") or {}
        preconditions = Preconditions(resource_version=pre.get("resourceVersion"),
                                      uid=pre.get("uid"))
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is True and not policy:
            policy = "Orphan"
        cur = await self.get(r, ns, name)
        if preconditions.uid and preconditions.uid != meta(cur).get("uid"):
            raise errors.conflict(
                r.resource, r.group, name,
                f"Precondition failed: UID in precondition: {preconditions.uid}, "
                f"UID in object meta: {meta(cur).get('uid')}")
        finalizers = list(meta(cur).get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        elif policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        grace = _pod_grace_period(cur, options) if r.resource == "pods" else 0
        graceful = bool(finalizers) or r is NAMESPACES or grace > 0
        if opts.dry_run:
            return (cur if r.resource in _RETURNS_DELETED_OBJECT else
                    _status_success(r, cur)), 200
        if graceful:
            obj = await self._mark_deleting(r, ns, name, finalizers, preconditions, grace)
            # A pod waiting for its node to stop it answers 200 with the object, as upstream.
            return obj, 202 if finalizers and r is not NAMESPACES else 200
        try:
            gone = await self.store.delete(key, preconditions)
        except store_base.KeyNotFound:
            raise errors.not_found(r.resource, r.group, name) from None
        except store_base.Conflict:
            raise errors.conflict(r.resource, r.group, name,
                                  "Precondition failed: resourceVersion mismatch") from None
        if r is SERVICES:
            self.allocator.release_unused(gone, None)
        return (gone if r.resource in _RETURNS_DELETED_OBJECT else
                _status_success(r, gone)), 200

    async def _mark_deleting(self, r: ResourceInfo, ns: str | None, name: str,
                             finalizers: list[str], pre: Preconditions, grace: int = 0) -> Obj:
        when = objects.format_time(self.clock() + dt.timedelta(seconds=grace))

        def update(cur: Obj) -> Obj:
            new = copy.deepcopy(cur)
            m = meta(new)
            old_grace = m.get("deletionGracePeriodSeconds")
            if "deletionTimestamp" not in m or (old_grace is not None and grace < old_grace):
                # A second delete may only shorten the grace period.
                m["deletionTimestamp"] = when
                m["deletionGracePeriodSeconds"] = grace
            if finalizers:
                m["finalizers"] = finalizers
            if r is NAMESPACES:
                new.setdefault("status", {})["phase"] = "Terminating"
            return new
        try:
            obj = await self.store.guaranteed_update(store_key(r, ns, name), update, pre)
        except store_base.KeyNotFound:
            raise errors.not_found(r.resource, r.group, name) from None
        except store_base.Conflict:
            raise errors.conflict(r.resource, r.group, name,
                                  "Precondition failed: resourceVersion mismatch") from None
        if r is NAMESPACES and self.on_namespace_terminating is not None:
            asyncio.get_running_loop().create_task(self.on_namespace_terminating(name))
        return obj

    async def delete_collection(self, r: ResourceInfo, ns: str | None, lopts: ListOptions,
                                options: Obj, opts: WriteOptions) -> list[Obj]:
        items, _, _ = await self.list_objects(r, ns, lopts)
        out = []
        for obj in items:
            m = obj.get("metadata") or {}
            try:
                await self.delete(r, m.get("namespace") if r.namespaced else None,
                                  m["name"], options, opts)
                out.append(obj)
            except errors.APIError as e:
                if e.code != 404:
                    raise
        return out

    # --- bootstrap ---------------------------------------------------------------------

    async def ensure(self, r: ResourceInfo, obj: Obj, reconcile: tuple[str, ...] = ()
                     ) -> None:
        """Create ``obj`` unless an object of that name exists (built-in objects); for an
        existing one, make the fields at the dotted paths in ``reconcile`` equal ``obj``'s
        (absent in ``obj``: removed). The ``kubernetes`` endpoints follow the API server's
        address across restarts; ``kube-dns`` loses the selector older versions gave it."""
        m = meta(obj)
        key = store_key(r, m.get("namespace"), m["name"])
        try:
            cur = await self.store.get(key)
        except store_base.KeyNotFound:
            await self.create(r, m.get("namespace"), obj,
                              WriteOptions(field_manager="svcnet"))
            return
        if any(_at(cur, f) != _at(obj, f) for f in reconcile):
            def update(c: Obj) -> Obj:
                new = copy.deepcopy(c)
                for f in reconcile:
                    _set_at(new, f, _at(obj, f))
                return new
            await self.store.guaranteed_update(key, update)


class _DryRunDone(Exception):  # noqa: N818 - control flow out of guaranteed_update
    pass


def _pod_grace_period(pod: Obj, options: Obj) -> int:
    """Seconds a pod gets to stop before it is removed; 0 means remove it now (not bound
    to a node, already finished, or deleted with gracePeriodSeconds=0)."""
    spec = pod.get("spec") or {}
    if not spec.get("nodeName"):
        return 0
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    g = options.get("gracePeriodSeconds")
    if g is None:
        g = spec.get("terminationGracePeriodSeconds", 30)
    try:
        return max(0, int(g))
    except (TypeError, ValueError):
        return 30


def _match_url_name(obj: Obj, name: str) -> None:
    """A body for ``.../<name>`` names that object, or no object (then it gets the name)."""
    m = meta(obj)
    if m.get("name") and m["name"] != name:
        raise errors.bad_request(
            f"the name of the object ({m['name']}) does not match the name on the URL "
            f"({name})")
    m["name"] = name


def _at(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _set_at(obj: Obj, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    cur = obj
    for part in parents:
        cur = cur.setdefault(part, {})
    if value is None:
        cur.pop(last, None)
    else:
        cur[last] = value


def _key_of(r: ResourceInfo, obj: Obj) -> str:
    m = obj.get("metadata") or {}
    return store_key(r, m.get("namespace"), m.get("name", ""))


def _keep_allocated(cur: Obj, cand: Obj) -> None:
    """An update that omits clusterIP(s) or nodePorts keeps the allocated ones (as the
    real API server's patchAllocatedValues does)."""
    cs, ns_ = cur.get("spec") or {}, cand.setdefault("spec", {})
    if not ns_.get("clusterIP") and not ns_.get("clusterIPs") and cs.get("clusterIP") and \
            ns_.get("type", "ClusterIP") != "ExternalName":
        ns_["clusterIP"] = cs["clusterIP"]
        if cs.get("clusterIPs"):
            ns_["clusterIPs"] = list(cs["clusterIPs"])
    if ns_.get("clusterIP") and not ns_.get("clusterIPs") and cs.get("clusterIPs") and \
            cs.get("clusterIP") == ns_["clusterIP"]:
        ns_["clusterIPs"] = list(cs["clusterIPs"])
    old_np = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
              for p in cs.get("ports") or [] if p.get("nodePort")}
    if ns_.get("type") in ("NodePort", "LoadBalancer"):
        for p in ns_.get("ports") or []:
            if not p.get("nodePort"):
                np = old_np.get((p.get("port"), p.get("protocol", "TCP")))
                if np:
                    p["nodePort"] = np


def _node_ports_needed(spec: Obj) -> bool:
    t = spec.get("type", "ClusterIP")
    return t == "NodePort" or (t == "LoadBalancer"
                               and spec.get("allocateLoadBalancerNodePorts", True))


def _drop_type_dependent_fields(cur: Obj, cand: Obj) -> None:
    """A type change drops the values the old type needed and the new one forbids, when
    the update left them as they were (upstream's dropTypeDependentFields): nodePorts on
    a change to ClusterIP, the ClusterIP on a change to ExternalName."""
    cs, ns_ = cur.get("spec") or {}, cand.get("spec")
    if not isinstance(ns_, dict):
        return
    if _node_ports_needed(cs) and not _node_ports_needed(ns_):
        old = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
               for p in cs.get("ports") or []}
        for p in ns_.get("ports") or []:
            if p.get("nodePort") and p["nodePort"] == old.get(
                    (p.get("port"), p.get("protocol", "TCP"))):
                del p["nodePort"]
    if cs.get("type", "ClusterIP") != "ExternalName" and \
            ns_.get("type") == "ExternalName" and \
            ns_.get("clusterIP") in (cs.get("clusterIP"), None, ""):
        for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            ns_.pop(f, None)
    new_type = ns_.get("type", "ClusterIP")

    def drop_if_unchanged(field: str) -> None:
        if field in ns_ and ns_[field] == cs.get(field):
            del ns_[field]
    if new_type not in ("NodePort", "LoadBalancer"):
        drop_if_unchanged("externalTrafficPolicy")
    if new_type != "LoadBalancer":
        for f in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            drop_if_unchanged(f)
    if new_type != "LoadBalancer" or ns_.get("externalTrafficPolicy") != "Local":
        drop_if_unchanged("healthCheckNodePort")
    if new_type == "ExternalName":
        drop_if_unchanged("internalTrafficPolicy")


def _parse_yaml_or_json(body: bytes) -> Any:
    import yaml
    try:
        return json.loads(body)
    except ValueError:
        pass
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as e:
        raise errors.bad_request(f"error decoding YAML: {e}") from None
