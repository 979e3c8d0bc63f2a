"""The agent's HTTP endpoint, reached by the API server (kubelet-style paths):

* ``GET /containerLogs/<ns>/<pod>/<container>`` — the container's log (``follow``,
  ``tailLines``, ``timestamps``, ``previous``, ``sinceSeconds``, ``sinceTime``,
  ``limitBytes``), ``text/plain``, chunked when following;
* ``GET /exec/<ns>/<pod>/<container>?command=...`` — WebSocket, ``v5``/``v4.channel.k8s.io``;
* ``GET /portForward/<ns>/<pod>?ports=...`` — WebSocket, ``SPDY/3.1+portforward.k8s.io``
  (kubectl) or ``v4.channel.k8s.io`` (the Python client).

Listens on 127.0.0.1 and accepts only the cluster's bearer token.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING

from aiohttp import web

from svcnet.agent import logs as logfiles
from svcnet.agent.pods import ContainerConfigError, PodWorker
from svcnet.agent.streams import exec as execmod
from svcnet.agent.streams import portforward as pfmod
from svcnet.model import errors

if TYPE_CHECKING:
    from svcnet.agent.agent import Agent


def _bool(v: str | None) -> bool:
    return v is not None and v.lower() in ("true", "1")


def _int(v: str | None) -> int | None:
    try:
        return int(v) if v not in (None, "") else None
    except ValueError:
        raise errors.bad_request(f"invalid integer {v!r}") from None


def _error(e: errors.APIError) -> web.Response:
    import json
    return web.Response(status=e.code, body=json.dumps(e.status()).encode(),
                        content_type="application/json")


class AgentServer:
    def __init__(self, agent: Agent, token: str) -> None:
        self.agent = agent
        self.token = token
        self.runner: web.AppRunner | None = None

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/healthz", lambda _r: asyncio.sleep(0, web.Response(text="ok")))
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.logs)
        app.router.add_get("/exec/{ns}/{pod}/{container}", self.exec)
        app.router.add_get("/portForward/{ns}/{pod}", self.portforward)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: object) -> web.StreamResponse:
        if request.path != "/healthz":
            auth = request.headers.get("Authorization", "")
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
                return _error(errors.unauthorized())
        try:
            return await handler(request)  # type: ignore[operator]
        except errors.APIError as e:
            return _error(e)

    async def start(self, port: int) -> None:
        self.runner = web.AppRunner(self.build(), handler_cancellation=True, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port, reuse_address=True).start()

    async def cleanup(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    # --- helpers -----------------------------------------------------------------------

    def _worker(self, ns: str, pod: str) -> PodWorker:
        w = self.agent.workers.get(f"{ns}/{pod}")
        if w is None:
            raise errors.not_found("pods", "", pod)
        return w

    @staticmethod
    def _container(w: PodWorker, name: str) -> dict[str, object]:
        for c in (w.pod.get("spec") or {}).get("containers") or []:
            if c.get("name") == name:
                return dict(c)
        raise errors.bad_request(
            f'container {name} is not valid for pod {(w.pod.get("metadata") or {}).get("name")}')

    # --- logs --------------------------------------------------------------------------

    async def logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, cname = (request.match_info[k] for k in ("ns", "pod", "container"))
        w = self._worker(ns, pod)
        self._container(w, cname)
        q = request.query
        opts = logfiles.LogOptions(
            follow=_bool(q.get("follow")), tail_lines=_int(q.get("tailLines")),
            timestamps=_bool(q.get("timestamps")), previous=_bool(q.get("previous")),
            since_seconds=_int(q.get("sinceSeconds")), since_time=q.get("sinceTime"),
            limit_bytes=_int(q.get("limitBytes")))
        run = w.runs.get(cname)
        if run is None or (run.state == "waiting" and not run.last_terminated
                           and run.restart_count == 0 and not run.started_at):
            reason = run.reason if run else "ContainerCreating"
            raise errors.bad_request(
                f'container "{cname}" in pod "{pod}" is waiting to start: {reason}')
        index = run.restart_count
        if opts.previous:
            if run.restart_count == 0 and not run.extra.get("pending_restart"):
                raise errors.bad_request(
                    f'previous terminated container "{cname}" in pod "{pod}" not found')
            index = run.restart_count - (0 if run.extra.get("pending_restart") else 1)
        path = w.log_path(cname, index)
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        if opts.follow:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        follow_alive = (lambda: w.container_running(cname)) if not opts.previous else (
            lambda: False)
        async for chunk in logfiles.stream_log(path, opts, follow_alive):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    # --- exec --------------------------------------------------------------------------

    async def exec(self, request: web.Request) -> web.StreamResponse:
        ns, pod, cname = (request.match_info[k] for k in ("ns", "pod", "container"))
        w = self._worker(ns, pod)
        c = self._container(w, cname)
        if w.sandbox is None or not w.container_running(cname):
            raise errors.bad_request(f'container {cname} is not running in pod {pod}')
        q = request.query
        argv = q.getall("command", [])
        if not argv:
            raise errors.bad_request("you must specify at least 1 command")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
                   if p.strip()]
        protocol = execmod.choose_protocol(offered)
        if protocol is None:
            raise errors.bad_request("exec needs a WebSocket with a channel.k8s.io protocol")
        try:
            env = self.agent.plan_container(w.pod, c).env
        except ContainerConfigError as e:
            raise errors.bad_request(e.message) from None
        ws = web.WebSocketResponse(protocols=(protocol,), heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        prefix = self.agent.runtime.exec_prefix(w.sandbox)
        await execmod.serve_exec(
            ws, argv, {**env, "POD_IP": w.sandbox.ip}, c.get("workingDir") or None,  # type: ignore[arg-type]
            stdin=_bool(q.get("stdin")), stdout=_bool(q.get("stdout", "true")),
            stderr=_bool(q.get("stderr", "true")), tty=_bool(q.get("tty")),
            protocol=protocol, wrap=lambda a: [*prefix, *a])
        return ws

    # --- port-forward ------------------------------------------------------------------

    async def portforward(self, request: web.Request) -> web.StreamResponse:
        ns, pod = request.match_info["ns"], request.match_info["pod"]
        w = self._worker(ns, pod)
        if w.sandbox is None:
            raise errors.bad_request(f"pod {pod} has no network yet")
        sandbox = w.sandbox
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
                   if p.strip()]

        async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await self.agent.runtime.open_connection(sandbox, port)

        if pfmod.SPDY_OVER_WEBSOCKET in offered:
            ws = web.WebSocketResponse(protocols=(pfmod.SPDY_OVER_WEBSOCKET,), heartbeat=None,
                                       max_msg_size=0)
            await ws.prepare(request)
            read, write = pfmod.websocket_transport(ws)
            await pfmod.serve_portforward_spdy(read, write, connect)
            await ws.close()
            return ws
        chosen = next((p for p in offered if p in pfmod.WEBSOCKET_PROTOCOLS), None)
        if chosen is None:
            raise errors.bad_request("port-forward needs a WebSocket with "
                                     f"{pfmod.SPDY_OVER_WEBSOCKET} or v4.channel.k8s.io")
        ports = [int(p) for part in request.query.getall("ports", [])
                 for p in part.split(",") if p.strip()]
        ws = web.WebSocketResponse(protocols=(chosen,), heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        await pfmod.serve_portforward_websocket(ws, ports, connect)
        return ws
