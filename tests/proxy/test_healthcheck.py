"""Service health checks: which ports and counts a state asks for, and the HTTP answers
on real loopback sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from typing import Any

from svcnet.proxy.changes import service_ports_from_api
from svcnet.proxy.dataplane import ProxyState
from svcnet.proxy.healthcheck import ServiceHealthServer, health_checks, listening_sockets
from svcnet.proxy.types import EndpointInfo, ServicePortInfo, ServicePortName
from svcnet.testing.cluster import free_port


def lb(policy: str, health: int | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "LoadBalancer", "clusterIP": "10.96.0.5",
                            "externalTrafficPolicy": policy,
                            "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}
    if health is not None:
        spec["healthCheckNodePort"] = health
    return {"metadata": {"namespace": "default", "name": "web"}, "spec": spec}


def test_the_health_check_port_comes_from_local_load_balancers_only() -> None:
    (info,) = service_ports_from_api(lb("Local", 31000)).values()
    assert info.health_check_node_port == 31000
    (info,) = service_ports_from_api(lb("Cluster", None)).values()
    assert info.health_check_node_port == 0


def test_local_endpoints_are_counted_per_service_on_this_node() -> None:
    a = ServicePortName("default", "web", "http", "TCP")
    b = ServicePortName("default", "web", "https", "TCP")
    info = {n: ServicePortInfo(n, "LoadBalancer", ("10.96.0.5",), 80,
                               health_check_node_port=31000) for n in (a, b)}
    here = [EndpointInfo("10.244.0.2", 8080, node_name="me"),
            EndpointInfo("10.244.0.3", 8080, node_name="me", ready=False),
            EndpointInfo("10.244.1.2", 8080, node_name="other")]
    state = ProxyState(node_name="me", services=info,
                       endpoints={a: tuple(here), b: (EndpointInfo("10.244.0.2", 8443,
                                                                   node_name="me"),)})
    assert health_checks(state) == {31000: ("default", "web", 1)}


def _get(port: int) -> tuple[int, dict[str, Any], str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:
            return r.status, json.loads(r.read()), r.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers["Content-Type"]


def test_answers_200_with_local_endpoints_503_without_and_stops_when_removed() -> None:
    port = free_port()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = ServiceHealthServer(
            lambda p: listening_sockets(p, [(socket.socket, "127.0.0.1")]))
        try:
            await server.update({port: ("default", "web", 2)})
            status, body, ctype = await loop.run_in_executor(None, _get, port)
            assert (status, ctype) == (200, "application/json")
            assert body == {"service": {"namespace": "default", "name": "web"},
                            "localEndpoints": 2, "serviceProxyHealthy": True}
            await server.update({port: ("default", "web", 0)})
            status, body, _ = await loop.run_in_executor(None, _get, port)
            assert status == 503 and body["localEndpoints"] == 0
            await server.update({})
            assert server.ports() == []
            refused = await loop.run_in_executor(None, _refused, port)
            assert refused
        finally:
            await server.close()

    asyncio.run(main())


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_a_port_in_use_is_skipped_and_retried() -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]

    async def main() -> list[int]:
        server = ServiceHealthServer(
            lambda p: listening_sockets(p, [(socket.socket, "127.0.0.1")]))
        try:
            await server.update({port: ("default", "web", 1)})
            assert server.ports() == []
            blocker.close()
            await server.update({port: ("default", "web", 1)})
            return server.ports()
        finally:
            await server.close()

    assert asyncio.run(main()) == [port]
