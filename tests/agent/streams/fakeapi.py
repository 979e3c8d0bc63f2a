"""A tiny API server for driving the streaming layer with real clients (kubectl, the Python
client): one Running pod ``default/p`` with container ``c``, the discovery documents kubectl
needs, and the exec/port-forward subresources wired to :mod:`svcnet.agent.streams`.

It also shows how a caller owns the HTTP layer:

- WebSocket upgrades: pick the subprotocol, prepare ``aiohttp.web.WebSocketResponse`` with it,
  hand the socket over;
- the raw SPDY upgrade (``POST`` with ``Upgrade: SPDY/3.1``): aiohttp only switches protocols
  for WebSocket, so :func:`take_over` answers ``101`` itself on the transport and moves the
  transport to a plain asyncio stream protocol; aiohttp's handler for that connection is then
  told the connection is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from svcnet.agent.streams import channels, portforward
from svcnet.agent.streams.exec import choose_protocol, serve_exec

POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "namespace": "default", "uid": "00000000-0000-0000-0000-000000000001",
                 "resourceVersion": "1", "creationTimestamp": "2024-01-01T00:00:00Z"},
    "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "n"},
    "status": {"phase": "Running", "podIP": "127.0.0.1",
               "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0,
                                      "image": "busybox", "imageID": "", "started": True,
                                      "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}]},
}
API_RESOURCES: dict[str, Any] = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
    "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
         "verbs": ["get", "list"], "shortNames": ["po"]},
        {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
         "verbs": ["create", "get"]},
        {"name": "pods/portforward", "singularName": "", "namespaced": True,
         "kind": "PodPortForwardOptions", "verbs": ["create", "get"]},
    ],
}
PREFIX = "/api/v1/namespaces/default/pods/p"


def free_port() -> int:
    """A currently unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def take_over(request: web.Request,
                    headers: dict[str, str]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Answer ``101 Switching Protocols`` with ``headers`` directly on the connection and
    return plain asyncio streams over it; the caller must close the writer when done and then
    call :func:`release`."""
    transport = request.transport
    assert transport is not None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    proto = asyncio.StreamReaderProtocol(reader)
    transport.set_protocol(proto)
    proto.connection_made(transport)
    writer = asyncio.StreamWriter(transport, proto, reader, loop)
    head = "HTTP/1.1 101 Switching Protocols\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode("latin-1"))
    await writer.drain()
    return reader, writer


def release(request: web.Request) -> None:
    """Tell aiohttp's protocol the taken-over connection is gone (so it stops serving it)."""
    proto = request.protocol
    with contextlib.suppress(Exception):
        proto.force_close()
        proto.connection_lost(None)


async def connect_local(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The test's pod: ports on 127.0.0.1."""
    return await asyncio.open_connection("127.0.0.1", port)


@dataclass
class FakeAPI:
    """Records what was served, for assertions."""

    exit_codes: list[int] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/version", self.version)
        app.router.add_get("/api", self.api)
        app.router.add_get("/apis", self.apis)
        app.router.add_get("/api/v1", self.api_v1)
        app.router.add_get(PREFIX, self.pod)
        app.router.add_route("*", PREFIX + "/exec", self.exec)
        app.router.add_route("*", PREFIX + "/portforward", self.portforward)
        return app

    async def version(self, _: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0",
                                  "platform": "linux/amd64"})

    async def api(self, _: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"],
                                  "serverAddressByClientCIDRs": []})

    async def apis(self, _: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def api_v1(self, _: web.Request) -> web.Response:
        return web.json_response(API_RESOURCES)

    async def pod(self, _: web.Request) -> web.Response:
        return web.json_response(POD)

    async def exec(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        argv = q.getall("command", [])
        flags = {k: q.get(k, "false").lower() in ("true", "1") for k in
                 ("stdin", "stdout", "stderr", "tty")}
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "message": "upgrade to websocket required",
                                      "reason": "BadRequest", "code": 400}, status=400)
        proto = choose_protocol(request.headers.getall("Sec-WebSocket-Protocol", []))
        if proto is None:
            return web.Response(status=400, text="no supported channel protocol offered")
        self.protocols.append(proto)
        ws = web.WebSocketResponse(protocols=[proto])
        await ws.prepare(request)
        code = await serve_exec(ws, argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                                None, flags["stdin"], flags["stdout"], flags["stderr"],
                                flags["tty"], proto)
        self.exit_codes.append(code)
        return ws

    async def portforward(self, request: web.Request) -> web.StreamResponse:
        upgrade = request.headers.get("Upgrade", "").lower()
        offered = request.headers.getall("Sec-WebSocket-Protocol", [])
        if upgrade == "websocket":
            if channels.choose_protocol(offered, (portforward.SPDY_OVER_WEBSOCKET,)):
                self.protocols.append(portforward.SPDY_OVER_WEBSOCKET)
                ws = web.WebSocketResponse(protocols=[portforward.SPDY_OVER_WEBSOCKET])
                await ws.prepare(request)
                read, write = portforward.websocket_transport(ws)
                await portforward.serve_portforward_spdy(read, write, connect_local)
                await ws.close()
                return ws
            proto = channels.choose_protocol(offered, portforward.WEBSOCKET_PROTOCOLS)
            if proto is None:
                return web.Response(status=400, text="no supported protocol offered")
            self.protocols.append(proto)
            ports = [int(p) for p in ",".join(request.query.getall("ports", [])).split(",") if p]
            ws = web.WebSocketResponse(protocols=[proto])
            await ws.prepare(request)
            await portforward.serve_portforward_websocket(ws, ports, connect_local)
            return ws
        if upgrade == "spdy/3.1" and request.method == "POST":
            versions = request.headers.getall("X-Stream-Protocol-Version", [])
            if portforward.PORTFORWARD_PROTOCOL not in versions:
                return web.Response(status=403, text="unsupported stream protocol")
            self.protocols.append("SPDY/3.1")
            reader, writer = await take_over(request, {
                "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                "X-Stream-Protocol-Version": portforward.PORTFORWARD_PROTOCOL})
            try:
                read, write = portforward.stream_transport(reader, writer)
                await portforward.serve_portforward_spdy(read, write, connect_local)
            finally:
                writer.close()
                release(request)
            return web.Response()
        return web.Response(status=400, text="upgrade required")


@contextlib.asynccontextmanager
async def serving(api: FakeAPI) -> AsyncIterator[str]:
    """Run ``api`` on 127.0.0.1:<free port>; yields its base URL; stops it on exit."""
    runner = web.AppRunner(api.app())
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
