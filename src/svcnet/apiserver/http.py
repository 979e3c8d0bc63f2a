"""The HTTP facade: routes, authentication, content negotiation, watch streaming.

Every resource URL goes through one handler that parses the path with
:func:`svcnet.apiserver.request.parse_resource_path` and dispatches on the HTTP method to
:class:`svcnet.apiserver.rest.Registry`. Errors become ``Status`` objects.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from svcnet.apiserver import discovery, objects, watch
from svcnet.apiserver.nodeproxy import NodeProxy
from svcnet.apiserver.objects import Obj, store_prefix
from svcnet.apiserver.request import (
    ResourceRequest,
    decode_body,
    parse_int,
    parse_resource_path,
    query_bool,
    wants_table,
)
from svcnet.apiserver.rest import ListOptions, Registry, WriteOptions
from svcnet.model import errors, printing, selectors
from svcnet.store.base import Expired

log = logging.getLogger("svcnet.apiserver")

JSON = "application/json"
VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4-svcnet",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# Paths any client may read without credentials (system:public-info-viewer upstream).
PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200, content_type: str = JSON,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        headers={"Content-Type": content_type, **(headers or {})})


def error_response(err: errors.APIError) -> web.Response:
    return json_response(err.status(), status=err.code)


class APIServerApp:
    """Builds the aiohttp application around a Registry."""

    def __init__(self, registry: Registry, token: str, server_address: str,
                 bookmark_interval: float = 60.0, watch_timeout_range: tuple[int, int] = (
                     1800, 3600)) -> None:
        self.registry = registry
        self.token = token
        self.server_address = server_address
        self.bookmark_interval = bookmark_interval
        self.watch_timeout_range = watch_timeout_range
        self.lines = watch.LineCache()
        self.nodes = NodeProxy(registry, token)
        self.ready = False

    # --- application -------------------------------------------------------------------

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._authenticate],
                              client_max_size=16 * 1024 * 1024)
        r = app.router
        r.add_get("/version", self.version)
        r.add_get("/version/", self.version)
        for p in ("/healthz", "/livez"):
            r.add_get(p, self.healthy)
        r.add_get("/readyz", self.readyz)
        r.add_get("/api", self.api_root)
        r.add_get("/api/", self.api_root)
        r.add_get("/apis", self.apis_root)
        r.add_get("/apis/", self.apis_root)
        r.add_get("/openapi/v3", self.openapi_root)
        r.add_get("/openapi/v3/", self.openapi_root)
        r.add_get("/openapi/v3/{gv:.+}", self.openapi_gv)
        r.add_route("*", "/api/{tail:.*}", self.dispatch)
        r.add_route("*", "/apis/{tail:.*}", self.dispatch)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.APIError as e:
            return error_response(e)
        except web.HTTPException:
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as e:  # the client gets a Status, the log gets the trace
            log.exception("internal error on %s %s", request.method, request.path)
            return error_response(errors.internal(str(e)))

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler
                            ) -> web.StreamResponse:
        if request.path not in PUBLIC_PATHS:
            auth = request.headers.get("Authorization", "")
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
                return error_response(errors.unauthorized())
        return await handler(request)

    # --- fixed endpoints ---------------------------------------------------------------

    async def version(self, request: web.Request) -> web.Response:
        return json_response(VERSION_INFO)

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def readyz(self, request: web.Request) -> web.Response:
        if not self.ready:
            return web.Response(status=503, text="[-]bootstrap not finished\nreadyz check failed",
                                content_type="text/plain")
        return web.Response(text="ok", content_type="text/plain")

    async def api_root(self, request: web.Request) -> web.Response:
        if "as=APIGroupDiscoveryList" in request.headers.get("Accept", ""):
            return json_response(discovery.aggregated_core(),
                                 content_type=discovery.AGGREGATED_V2)
        return json_response(discovery.legacy_api_versions(self.server_address))

    async def apis_root(self, request: web.Request) -> web.Response:
        if "as=APIGroupDiscoveryList" in request.headers.get("Accept", ""):
            return json_response(discovery.aggregated_groups(),
                                 content_type=discovery.AGGREGATED_V2)
        return json_response(discovery.legacy_api_groups())

    async def openapi_root(self, request: web.Request) -> web.Response:
        return json_response(discovery.openapi_root())

    async def openapi_gv(self, request: web.Request) -> web.Response:
        parts = request.match_info["gv"].strip("/").split("/")
        doc = None
        if parts[0] == "api" and len(parts) == 2:
            doc = discovery.openapi_gv_document("", parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            doc = discovery.openapi_gv_document(parts[1], parts[2])
        if doc is None:
            raise errors.APIError(404, "NotFound", "the server could not find the requested "
                                  "resource")
        return json_response(doc)

    # --- resources ---------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        rr = parse_resource_path(path)
        if rr is None:
            return self._discovery_or_404(path)
        m, q = request.method, request.query
        is_watch = rr.watch_path or query_bool(q.get("watch"))
        if rr.subresource == "log" and m == "GET" and rr.name:
            return await self.nodes.log(request, rr.namespace or "", rr.name)
        if rr.subresource in ("exec", "portforward") and m in ("GET", "POST") and rr.name:
            return await self.nodes.stream(request, rr.namespace or "", rr.name,
                                           rr.subresource)
        if rr.subresource in ("attach", "proxy", "eviction"):
            raise errors.method_not_allowed(f"{rr.subresource} is not supported by svcnet")
        if rr.name is None:
            if m == "GET":
                return await (self._watch(request, rr) if is_watch else self._list(request, rr))
            if m == "POST":
                return await self._create(request, rr)
            if m == "DELETE":
                return await self._delete_collection(request, rr)
        else:
            if m == "GET":
                if is_watch:
                    return await self._watch(request, rr)
                return await self._get(request, rr)
            if m == "PUT":
                return await self._update(request, rr)
            if m == "PATCH":
                return await self._patch(request, rr)
            if m == "DELETE" and not rr.subresource:
                return await self._delete(request, rr)
            if m == "POST" and rr.subresource == "binding":
                body = await self._body(request)
                st = await self.registry.bind(rr.namespace or "", rr.name, body,
                                              self._write_opts(request))
                return json_response(st, 201)
        raise errors.method_not_allowed(
            "the server does not allow this method on the requested resource")

    def _discovery_or_404(self, path: str) -> web.Response:
        parts = [p for p in path.split("/") if p]
        doc: Obj | None = None
        if len(parts) == 2 and parts[0] == "api":
            doc = discovery.legacy_resource_list("", parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = discovery.legacy_resource_list(parts[1], parts[2])
        elif len(parts) == 2 and parts[0] == "apis":
            doc = discovery.legacy_api_group(parts[1])
        if doc is None:
            raise errors.APIError(404, "NotFound",
                                  "the server could not find the requested resource",
                                  {})
        return json_response(doc)

    def _now(self) -> dt.datetime:
        return self.registry.clock()

    def _write_opts(self, request: web.Request) -> WriteOptions:
        q = request.query
        dry = q.getall("dryRun", [])
        for d in dry:
            if d != "All":
                raise errors.bad_request(f'dryRun: Unsupported value: "{d}": supported '
                                         'values: "All"')
        validation = q.get("fieldValidation", "") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(
                f'fieldValidation: Unsupported value: "{validation}": supported values: '
                '"Ignore", "Strict", "Warn"')
        return WriteOptions(dry_run=bool(dry), field_manager=q.get("fieldManager", ""),
                            field_validation=validation, force=query_bool(q.get("force")))

    def _reply_obj(self, request: web.Request, rr: ResourceRequest, obj: Obj,
                   status: int = 200, warnings: list[str] | None = None) -> web.Response:
        headers = {}
        if warnings:
            headers["Warning"] = ", ".join(f'299 - "{w}"' for w in warnings)[:4000]
        if wants_table(request.headers.get("Accept", "")) and obj.get("kind") == rr.resource.kind:
            table = printing.to_table(rr.resource.resource, rr.resource.group, [obj],
                                      self._now(), include_object=self._include(request),
                                      resource_version=(obj.get("metadata") or {}).get(
                                          "resourceVersion", ""))
            return json_response(table, status, headers=headers)
        return json_response(obj, status, headers=headers)

    @staticmethod
    def _include(request: web.Request) -> str:
        v = request.query.get("includeObject", "Metadata") or "Metadata"
        if v not in ("None", "Metadata", "Object"):
            raise errors.bad_request(f'includeObject: Unsupported value: "{v}"')
        return v

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        return decode_body(raw, request.headers.get("Content-Type", ""))

    async def _get(self, request: web.Request, rr: ResourceRequest) -> web.Response:
        assert rr.name is not None
        obj = await self.registry.get(rr.resource, rr.namespace, rr.name)
        if rr.subresource == "scale":
            return json_response(objects.scale_of(rr.resource, obj))
        return self._reply_obj(request, rr, obj)

    def _list_opts(self, request: web.Request) -> ListOptions:
        q = request.query
        return ListOptions(
            label_selector=q.get("labelSelector", ""),
            field_selector=q.get("fieldSelector", ""),
            limit=parse_int(q.get("limit"), "limit"),
            continue_token=q.get("continue", ""),
            resource_version=q.get("resourceVersion", ""),
            resource_version_match=q.get("resourceVersionMatch", ""),
        )

    async def _list(self, request: web.Request, rr: ResourceRequest) -> web.Response:
        r = rr.resource
        items, rv, token = await self.registry.list_objects(r, rr.namespace, self._list_opts(request))
        if wants_table(request.headers.get("Accept", "")):
            table = printing.to_table(r.resource, r.group, items, self._now(),
                                      include_object=self._include(request),
                                      resource_version=rv, continue_token=token)
            return json_response(table)
        meta: Obj = {"resourceVersion": rv}
        if token:
            meta["continue"] = token
        return json_response({"kind": r.list_kind, "apiVersion": r.api_version,
                              "metadata": meta, "items": items})

    async def _create(self, request: web.Request, rr: ResourceRequest) -> web.Response:
        if rr.subresource:
            raise errors.method_not_allowed("create is not supported on this subresource")
        body = await self._body(request)
        res = await self.registry.create(rr.resource, rr.namespace, body,
                                         self._write_opts(request))
        return self._reply_obj(request, rr, res.obj, 201, res.warnings)

    async def _update(self, request: web.Request, rr: ResourceRequest) -> web.Response:
        assert rr.name is not None
        body = await self._body(request)
        res = await self.registry.update(rr.resource, rr.namespace, rr.name, body,
                                         self._write_opts(request), rr.subresource)
        return self._reply_obj(request, rr, res.obj, 201 if res.created else 200, res.warnings)

    async def _patch(self, request: web.Request, rr: ResourceRequest) -> web.Response:
        assert rr.name is not None
        raw = await request.read()
        res = await self.registry.patch(rr.resource, rr.namespace, rr.name, raw,
                                        request.headers.get("Content-Type", ""),
                                        self._write_opts(request), rr.subresource)
        return self._reply_obj(request, rr, res.obj, 201 if res.created else 200, res.warnings)

    async def _delete_options(self, request: web.Request) -> Obj:
        raw = await request.read()
        opts: Obj = {}
        if raw.strip():
            body = decode_body(raw, request.headers.get("Content-Type", "") or JSON)
            if isinstance(body, dict):
                opts = body
        q = request.query
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if "gracePeriodSeconds" in q:
            opts["gracePeriodSeconds"] = parse_int(q["gracePeriodSeconds"], "gracePeriodSeconds")
        pol = opts.get("propagationPolicy")
        if pol not in (None, "", "Background", "Foreground", "Orphan"):
            raise errors.bad_request(
                f'propagationPolicy: Unsupported value: "{pol}": supported values: '
                '"Foreground", "Background", "Orphan", "nil"')
        return opts

    async def _delete(self, request: web.Request, rr: ResourceRequest) -> web.Response:
        assert rr.name is not None
        if rr.resource.resource == "namespaces" and rr.name in ("default", "kube-system",
                                                                  "kube-public"):
            raise errors.APIError(403, "Forbidden",
                                  f'namespaces "{rr.name}" is forbidden: this namespace may '
                                  "not be deleted", {"name": rr.name, "kind": "namespaces"})
        opts = await self._delete_options(request)
        body, code = await self.registry.delete(rr.resource, rr.namespace, rr.name, opts,
                                                self._write_opts(request))
        return json_response(body, code)

    async def _delete_collection(self, request: web.Request, rr: ResourceRequest
                                 ) -> web.Response:
        r = rr.resource
        opts = await self._delete_options(request)
        items = await self.registry.delete_collection(r, rr.namespace, self._list_opts(request),
                                                      opts, self._write_opts(request))
        rv = str(await self.registry.store.current_revision())
        return json_response({"kind": r.list_kind, "apiVersion": r.api_version,
                              "metadata": {"resourceVersion": rv}, "items": items})

    # --- watch -------------------------------------------------------------------------

    async def _watch(self, request: web.Request, rr: ResourceRequest) -> web.StreamResponse:
        r, q = rr.resource, request.query
        label = selectors.parse_label_selector(q.get("labelSelector", ""))
        field = selectors.parse_field_selector(q.get("fieldSelector", ""))
        if rr.name is not None:
            field = selectors.parse_field_selector(
                ",".join(x for x in (q.get("fieldSelector", ""),
                                     f"metadata.name={rr.name}") if x))
        selectors.validate_field_selector(field, r.kind)
        flt = watch.WatchFilter(label, field, r.kind)
        timeout = parse_int(q.get("timeoutSeconds"), "timeoutSeconds", 0)
        if timeout <= 0:
            timeout = random.randint(*self.watch_timeout_range)
        bookmarks = query_bool(q.get("allowWatchBookmarks"))
        rv_text = q.get("resourceVersion", "")
        send_initial = query_bool(q.get("sendInitialEvents"))
        table = watch.TableEncoder(r, self._include(request), self._now) \
            if wants_table(request.headers.get("Accept", "")) else None

        resp = web.StreamResponse(status=200, headers={"Content-Type": JSON,
                                                       "Cache-Control": "no-cache, private"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        def encode(rev: int, key: str, etype: str, obj: Obj) -> bytes:
            if table is not None:
                return table.encode(etype, obj)
            return self.lines.line(rev, key, etype, obj)

        prefix = store_prefix(r, rr.namespace)
        initial: list[Obj] = []
        if rv_text in ("", "0") or send_initial:
            items, start = await self.registry.store.list(prefix)
            initial = [o for o in items if flt.matches(o)]
        else:
            try:
                start = int(rv_text)
            except ValueError:
                raise errors.bad_request(f"invalid resourceVersion {rv_text!r}") from None
        deadline = time.monotonic() + timeout
        pump = watch.EventPump(self.registry.store, prefix, start)
        try:
            if initial:
                await resp.write(b"".join(
                    watch.encode_event("ADDED", obj) if table is None
                    else table.encode("ADDED", obj) for obj in initial))
            if send_initial and bookmarks:
                await resp.write(watch.bookmark(r, start, initial_events_end=True))
            last_rev, last_bookmark = start, time.monotonic()
            tick = min(self.bookmark_interval, 1.0)
            async for batch in pump.batches(tick):
                now = time.monotonic()
                if now >= deadline:
                    break
                chunks = []
                for ev in batch:
                    last_rev = ev.revision
                    out = watch.translate(ev, flt)
                    if out is not None:
                        chunks.append(encode(ev.revision, ev.key, out[0], out[1]))
                if chunks:
                    await resp.write(b"".join(chunks))
                if bookmarks and now - last_bookmark >= self.bookmark_interval:
                    last_bookmark = now
                    await resp.write(watch.bookmark(r, last_rev))
        except Expired as e:
            err = errors.expired(str(e))
            await resp.write(watch.encode_event("ERROR", err.status()))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        finally:
            await pump.close()
        with_eof = resp
        await with_eof.write_eof()
        return resp
