"""An asyncio client for the Kubernetes API (what client-go's REST client is to Go).

``APIClient.from_kubeconfig(path)`` reads a kubeconfig (server, CA data or file, bearer
token, optional client certificate) and talks JSON over HTTPS with aiohttp. Failures
arrive as :class:`svcnet.model.errors.APIError` built from the server's ``Status`` (the
one error tree of the project), or ``APIError`` with code 0 for transport failures.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yaml

from svcnet.model import errors
from svcnet.model.kinds import ResourceInfo

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class TransportError(errors.APIError):
    """The request did not get an answer (connection refused, reset, timed out)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "TransportError", message)


@dataclass(frozen=True)
class KubeConfig:
    server: str
    token: str = ""
    ca_data: bytes | None = None
    client_cert: str | None = None
    client_key: str | None = None
    namespace: str = "default"
    insecure: bool = False

    @classmethod
    def load(cls, path: str | os.PathLike[str], context: str | None = None) -> KubeConfig:
        """The current (or named) context of a kubeconfig file."""
        doc = yaml.safe_load(Path(path).read_text()) or {}
        ctx_name = context or doc.get("current-context")
        ctx = _named(doc.get("contexts"), ctx_name).get("context", {})
        cluster = _named(doc.get("clusters"), ctx.get("cluster")).get("cluster", {})
        user = _named(doc.get("users"), ctx.get("user")).get("user", {})
        base = Path(path).parent
        ca = None
        if cluster.get("certificate-authority-data"):
            ca = base64.b64decode(cluster["certificate-authority-data"])
        elif cluster.get("certificate-authority"):
            ca = (base / cluster["certificate-authority"]).read_bytes()
        token = user.get("token", "")
        if not token and user.get("tokenFile"):
            token = (base / user["tokenFile"]).read_text().strip()
        return cls(server=cluster["server"].rstrip("/"), token=token, ca_data=ca,
                   client_cert=_materialise(user, "client-certificate", base),
                   client_key=_materialise(user, "client-key", base),
                   namespace=ctx.get("namespace", "default"),
                   insecure=bool(cluster.get("insecure-skip-tls-verify")))

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        ctx = ssl.create_default_context(cadata=self.ca_data.decode() if self.ca_data else None)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert and self.client_key:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


def _named(items: list[Obj] | None, name: str | None) -> Obj:
    for item in items or []:
        if item.get("name") == name:
            return item
    raise ValueError(f"kubeconfig has no entry named {name!r}")


def _materialise(user: Obj, key: str, base: Path) -> str | None:
    """A path to the PEM named by ``key`` or ``key-data`` (written to a private temp file)."""
    if user.get(key):
        return str(base / user[key])
    data = user.get(key + "-data")
    if not data:
        return None
    fd, path = tempfile.mkstemp(prefix="svcnet-kc-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64decode(data))
    return path


def resource_path(r: ResourceInfo, namespace: str | None, name: str | None = None,
                  subresource: str = "") -> str:
    parts = [r.path_prefix()]
    if r.namespaced and namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(r.resource)
    if name:
        parts.append(name)
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


def _status_error(code: int, body: bytes) -> errors.APIError:
    try:
        st = json.loads(body)
    except ValueError:
        st = None
    if isinstance(st, dict) and st.get("kind") == "Status":
        return errors.APIError(int(st.get("code") or code), st.get("reason", ""),
                               st.get("message", ""), st.get("details") or {})
    return errors.APIError(code, "InternalError" if code >= 500 else "Unknown",
                           body[:500].decode(errors="replace"))


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
    object: Obj


class APIClient:
    """JSON over HTTPS against one API server; safe for concurrent use from one loop."""

    def __init__(self, config: KubeConfig, user_agent: str = "svcnet") -> None:
        self.config = config
        headers = {"Accept": "application/json", "User-Agent": user_agent}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], user_agent: str = "svcnet"
                        ) -> APIClient:
        return cls(KubeConfig.load(path), user_agent)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            conn = aiohttp.TCPConnector(ssl=self.config.ssl_context(), limit=256)
            self._session = aiohttp.ClientSession(
                self.config.server, connector=conn, headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, body: Any = None,
                      content_type: str = "application/json",
                      params: dict[str, str] | None = None, timeout: float = 60.0) -> Any:
        """One request; the decoded JSON reply. Raises APIError for non-2xx answers."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        for attempt in (1, 2):
            try:
                async with self._http().request(
                        method, path, data=data, headers=headers, params=params or None,
                        timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    raw = await resp.read()
                    if resp.status >= 300:
                        raise _status_error(resp.status, raw)
                    return json.loads(raw) if raw else None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
                # A pooled keep-alive connection the server had already closed (e.g. it
                # restarted): the request never reached a live server, so one retry on a
                # fresh connection is safe.
                if attempt == 2 or not _stale_connection(e):
                    raise TransportError(f"{method} {path}: {e!r}") from None
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as e:
                raise TransportError(f"{method} {path}: {e!r}") from None
        raise AssertionError("unreachable")

    # --- verbs -----------------------------------------------------------------------

    async def get(self, r: ResourceInfo, namespace: str | None, name: str,
                  subresource: str = "") -> Obj:
        return dict(await self.request("GET", resource_path(r, namespace, name, subresource)))

    async def list(self, r: ResourceInfo, namespace: str | None = None, *,
                   label_selector: str = "", field_selector: str = "",
                   resource_version: str = "", limit: int = 0,
                   continue_token: str = "") -> Obj:
        """The List object (``items``, ``metadata.resourceVersion``, ``metadata.continue``)."""
        params = _params(labelSelector=label_selector, fieldSelector=field_selector,
                         resourceVersion=resource_version,
                         limit=str(limit) if limit else "", **{"continue": continue_token})
        return dict(await self.request("GET", resource_path(r, namespace), params=params))

    async def create(self, r: ResourceInfo, namespace: str | None, obj: Obj,
                     field_manager: str = "") -> Obj:
        params = _params(fieldManager=field_manager)
        return dict(await self.request("POST", resource_path(r, namespace), obj,
                                       params=params))

    async def update(self, r: ResourceInfo, obj: Obj, subresource: str = "",
                     field_manager: str = "") -> Obj:
        m = obj.get("metadata") or {}
        path = resource_path(r, m.get("namespace"), m["name"], subresource)
        return dict(await self.request("PUT", path, obj,
                                       params=_params(fieldManager=field_manager)))

    async def patch(self, r: ResourceInfo, namespace: str | None, name: str, patch: Any,
                    content_type: str = MERGE_PATCH, subresource: str = "",
                    field_manager: str = "") -> Obj:
        path = resource_path(r, namespace, name, subresource)
        return dict(await self.request("PATCH", path, patch, content_type=content_type,
                                       params=_params(fieldManager=field_manager)))

    async def delete(self, r: ResourceInfo, namespace: str | None, name: str, *,
                     propagation_policy: str = "", uid: str = "",
                     resource_version: str = "", grace_period_seconds: int | None = None
                     ) -> Obj:
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        pre = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if pre:
            body["preconditions"] = pre
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        return dict(await self.request("DELETE", resource_path(r, namespace, name), body)
                    or {})

    async def watch(self, r: ResourceInfo, namespace: str | None = None, *,
                    resource_version: str = "", label_selector: str = "",
                    field_selector: str = "", allow_bookmarks: bool = True,
                    timeout_seconds: int = 0) -> AsyncIterator[WatchEvent]:
        """Events of one watch request until the server ends it. An ``ERROR`` event is
        raised as APIError (410 Expired when the resourceVersion is too old)."""
        params = _params(watch="true", resourceVersion=resource_version,
                         labelSelector=label_selector, fieldSelector=field_selector,
                         allowWatchBookmarks="true" if allow_bookmarks else "",
                         timeoutSeconds=str(timeout_seconds) if timeout_seconds else "")
        try:
            async with self._http().get(resource_path(r, namespace), params=params,
                                        timeout=aiohttp.ClientTimeout(
                                            total=None, sock_read=None)) as resp:
                if resp.status >= 300:
                    raise _status_error(resp.status, await resp.read())
                async for line in resp.content:
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    if ev.get("type") == "ERROR":
                        st = ev.get("object") or {}
                        raise errors.APIError(int(st.get("code") or 500),
                                              st.get("reason", ""), st.get("message", ""),
                                              st.get("details") or {})
                    yield WatchEvent(ev["type"], ev["object"])
        except (aiohttp.ClientError, ConnectionError) as e:
            raise TransportError(f"watch {r.resource}: {e!r}") from None


def _stale_connection(e: Exception) -> bool:
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return True
    return isinstance(e, aiohttp.ClientOSError) and e.errno in (errno.EPIPE, errno.ECONNRESET)


def _params(**kw: str) -> dict[str, str]:
    return {k: v for k, v in kw.items() if v}


def encode_query(**kw: str) -> str:
    return urlencode(_params(**kw))
