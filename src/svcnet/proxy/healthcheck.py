"""Service health checks (kube-proxy's ``healthcheck`` package, service part).

A LoadBalancer Service with ``externalTrafficPolicy: Local`` has a
``spec.healthCheckNodePort``; external load balancers ask every node on that port
whether to send it traffic. The proxy answers ``GET`` on any path with 200 when this
node has ready endpoints of the service and 503 when it has none, and a JSON body in
kube-proxy's format::

    {"service": {"namespace": "default", "name": "web"},
     "localEndpoints": 2, "serviceProxyHealthy": true}

:func:`health_checks` derives what to serve from a :class:`ProxyState`;
:class:`ServiceHealthServer` keeps one listener per port on every place a
``listen(port)`` callback opens sockets for (the host's 127.0.0.1, and the node's
addresses in the netns runtime). A port that cannot be opened is logged and retried on
the next update; the other ports are unaffected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from svcnet.proxy.dataplane import ProxyState

log = logging.getLogger("svcnet.proxy.healthcheck")

# port -> (namespace, name, local ready endpoints)
HealthChecks = dict[int, tuple[str, str, int]]
Listen = Callable[[int], list[socket.socket]]


def health_checks(state: ProxyState) -> HealthChecks:
    """What to serve: for each service with a health check node port, the distinct
    ready endpoint addresses on this node across its ports."""
    local: dict[tuple[str, str], set[str]] = {}
    ports: dict[tuple[str, str], int] = {}
    for name, info in state.services.items():
        if not info.health_check_node_port:
            continue
        key = (name.namespace, name.name)
        ports[key] = info.health_check_node_port
        eps = local.setdefault(key, set())
        for e in state.endpoints.get(name, ()):
            if e.ready and e.node_name == state.node_name:
                eps.add(e.ip)
    return {port: (ns, n, len(local[(ns, n)])) for (ns, n), port in ports.items()}


def response_body(namespace: str, name: str, local_endpoints: int) -> str:
    return json.dumps({"service": {"namespace": namespace, "name": name},
                       "localEndpoints": local_endpoints, "serviceProxyHealthy": True},
                      indent=2)


class ServiceHealthServer:
    """HTTP listeners on health check node ports; see the module doc."""

    def __init__(self, listen: Listen) -> None:
        self._listen = listen
        self._checks: HealthChecks = {}
        self._servers: dict[int, list[asyncio.AbstractServer]] = {}
        self._web = web.Server(self._handle, access_log=None)

    async def update(self, checks: HealthChecks) -> None:
        """Serve exactly ``checks``: open listeners for new ports, close those of ports
        no longer wanted, answer with the new counts from now on."""
        self._checks = dict(checks)
        for port in [p for p in self._servers if p not in checks]:
            for server in self._servers.pop(port):
                server.close()
        loop = asyncio.get_running_loop()
        for port in checks:
            if port in self._servers:
                continue
            try:
                socks = self._listen(port)
            except OSError as e:
                log.warning("health check node port %d: %s (retried on the next sync)",
                            port, e)
                continue
            servers: list[asyncio.AbstractServer] = []
            for sock in socks:
                servers.append(await loop.create_server(self._web, sock=sock))
            self._servers[port] = servers

    async def close(self) -> None:
        await self.update({})
        await self._web.shutdown()

    def ports(self) -> list[int]:
        return sorted(self._servers)

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        sockname: Any = request.transport.get_extra_info("sockname") \
            if request.transport is not None else None
        check = self._checks.get(sockname[1]) if sockname else None
        if check is None:
            return web.Response(status=404, text="no such service health check\n")
        ns, name, count = check
        return web.Response(status=200 if count else 503,
                            body=response_body(ns, name, count).encode(),
                            content_type="application/json",
                            headers={"X-Content-Type-Options": "nosniff"})


def listening_sockets(port: int, places: list[tuple[Callable[..., socket.socket], str]]
                      ) -> list[socket.socket]:
    """Bound, listening TCP sockets for ``port``, one per ``(socket factory, address)``;
    all closed if one fails."""
    out: list[socket.socket] = []
    try:
        for factory, address in places:
            sock = factory(socket.AF_INET, socket.SOCK_STREAM)
            out.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(128)
            sock.setblocking(False)
    except OSError:
        for sock in out:
            sock.close()
        raise
    return out
