"""Pod subresources served by the node agent: ``log``, ``exec``, ``portforward``.

The API server finds the pod's node, reads the agent's endpoint from the Node
(annotation ``svcnet.io/agent-endpoint``), and relays: logs as a streamed HTTP body,
exec and port-forward as a WebSocket relay that keeps the subprotocol the agent chose
(``v5.channel.k8s.io``, ``SPDY/3.1+portforward.k8s.io``, ...) and passes every message
through unchanged, as the real API server's upgrade-aware proxy does.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from svcnet.apiserver.rest import Registry
from svcnet.model import errors, kinds

Obj = dict[str, Any]
PODS = kinds.require("", "pods")
NODES = kinds.require("", "nodes")
AGENT_ENDPOINT = "svcnet.io/agent-endpoint"


class NodeProxy:
    def __init__(self, registry: Registry, token: str) -> None:
        self.registry = registry
        self.token = token
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _target(self, ns: str, name: str, container: str | None
                      ) -> tuple[str, Obj, str]:
        """``(agent base URL, pod, container name)``; errors as the real server words them."""
        pod = await self.registry.get(PODS, ns, name)
        spec = pod.get("spec") or {}
        names = [c.get("name", "") for c in spec.get("containers") or []]
        if not container:
            if len(names) != 1:
                raise errors.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(names)}]")
            container = names[0]
        elif container not in names:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        node = spec.get("nodeName")
        if not node:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        try:
            nobj = await self.registry.get(NODES, None, node)
        except errors.APIError:
            raise errors.bad_request(f'node "{node}" not found') from None
        endpoint = ((nobj.get("metadata") or {}).get("annotations") or {}).get(AGENT_ENDPOINT)
        if not endpoint:
            raise errors.bad_request(f'node "{node}" has no agent endpoint')
        return f"http://{endpoint}", pod, container

    # --- log ---------------------------------------------------------------------------

    async def log(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        q = request.query
        base, _pod, container = await self._target(ns, name, q.get("container"))
        params = {k: v for k, v in q.items() if k != "container"}
        try:
            upstream = await self._http().get(f"{base}/containerLogs/{ns}/{name}/{container}",
                                              params=params)
        except aiohttp.ClientError as e:
            raise errors.internal(f"the node agent could not be reached: {e}") from None
        try:
            if upstream.status >= 300:
                body = await upstream.read()
                return web.Response(status=upstream.status, body=body,
                                    content_type="application/json")
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            if q.get("follow", "").lower() in ("true", "1"):
                resp.enable_chunked_encoding()
            await resp.prepare(request)
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        finally:
            upstream.release()

    # --- exec / port-forward -------------------------------------------------------------

    async def stream(self, request: web.Request, ns: str, name: str, sub: str
                     ) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise errors.APIError(
                400, "BadRequest",
                "Upgrade request required: svcnet serves exec and port-forward over "
                "WebSocket")
        q = request.query
        if sub == "exec":
            base, _pod, container = await self._target(ns, name, q.get("container"))
            url = f"{base}/exec/{ns}/{name}/{container}"
            params = [(k, v) for k, v in q.items() if k != "container"]
        else:
            base, _pod, _c = await self._pod_base(ns, name)
            url = f"{base}/portForward/{ns}/{name}"
            params = list(q.items())
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
                   if p.strip()]
        try:
            upstream = await self._http().ws_connect(url, params=params, protocols=offered,
                                                     autoping=True, max_msg_size=0,
                                                     heartbeat=None)
        except aiohttp.WSServerHandshakeError as e:
            raise errors.APIError(e.status if e.status >= 400 else 500, "BadRequest",
                                  f"the node agent refused the stream: {e.message}") from None
        except aiohttp.ClientError as e:
            raise errors.internal(f"the node agent could not be reached: {e}") from None
        chosen = upstream.protocol
        ws = web.WebSocketResponse(protocols=(chosen,) if chosen else (), max_msg_size=0,
                                   autoping=True, heartbeat=None)
        await ws.prepare(request)
        await _relay(ws, upstream)
        return ws

    async def _pod_base(self, ns: str, name: str) -> tuple[str, Obj, str]:
        pod = await self.registry.get(PODS, ns, name)
        first = next((c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or
                      []), "")
        return await self._target(ns, name, first)


async def _relay(client: web.WebSocketResponse, agent: aiohttp.ClientWebSocketResponse
                 ) -> None:
    """Copy messages both ways until either side closes; then close the other."""

    async def down() -> None:
        async for msg in agent:
            if msg.type == WSMsgType.BINARY:
                await client.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await client.send_str(msg.data)
            else:
                break

    async def up() -> None:
        async for msg in client:
            if msg.type == WSMsgType.BINARY:
                await agent.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await agent.send_str(msg.data)
            else:
                break

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await agent.close()
        with contextlib.suppress(Exception):
            await client.close()
