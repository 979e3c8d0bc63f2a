"""``svcnet proxy``: the node's service proxy process (kube-proxy's role).

Wiring only: an API client, a dataplane chosen by ``--proxy-mode`` from the registry, a
:class:`~svcnet.proxy.proxier.Proxier`, and a small HTTP endpoint on 127.0.0.1 serving
``/healthz`` (200 once the first sync succeeded), ``/metrics`` (Prometheus text: sync
metrics and the dataplane's per-backend counters) and ``/status`` (JSON, what
``svcnet proxy status`` prints).

With the netns runtime the dataplane works inside the node's network namespace, whose
bridge address is the node address NodePorts listen on; the proxy waits for the node agent
to create it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svcnet.proxy import dataplane as registry

if TYPE_CHECKING:
    from svcnet.proxy.healthcheck import ServiceHealthServer

log = logging.getLogger("svcnet.proxy")
DEFAULT_PORT = 10249  # kube-proxy's metrics port


@dataclass
class ProxyConfig:
    kubeconfig: Path
    node_name: str
    mode: str = "userspace"
    netns: str | None = None  # the node's network namespace (netns runtime)
    scheduler: str = "rr"
    udp_timeout: float = 0.25
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    port: int = DEFAULT_PORT
    netns_wait: float = 120.0


def _load_dataplanes() -> None:
    """Import the dataplane modules so they register themselves by name."""
    import importlib
    for mod in ("fake", "userspace"):
        importlib.import_module(f"svcnet.proxy.dataplanes.{mod}")


def make_dataplane(cfg: ProxyConfig) -> registry.Dataplane:
    _load_dataplanes()
    factory = registry.lookup(cfg.mode)
    if cfg.mode == "userspace":
        return factory(netns=cfg.netns, default_scheduler=cfg.scheduler,
                       udp_idle_timeout=cfg.udp_timeout)
    return factory()


async def _node_ips(cfg: ProxyConfig) -> tuple[str, ...]:
    """The node's addresses: its bridge address inside the node namespace (waited for),
    or none with the process runtime."""
    if cfg.netns is None:
        return ()
    from svcnet._util import netns as nsutil
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cfg.netns_wait
    while True:
        ip = await nsutil.first_global_ipv4(cfg.netns) if nsutil.exists(cfg.netns) else None
        if ip is not None:
            return (ip,)
        if loop.time() > deadline:
            raise RuntimeError(f"node network namespace {cfg.netns} did not appear "
                               f"within {cfg.netns_wait:.0f}s (is the agent running?)")
        await asyncio.sleep(0.5)


async def _serve_http(port: int, healthy: Callable[[], bool], metrics: Callable[[], str],
                      status: Callable[[], dict[str, Any]]
                      ) -> Callable[[], Awaitable[None]]:
    from aiohttp import web

    async def healthz(_r: web.Request) -> web.Response:
        return web.Response(text="ok" if healthy() else "not synced",
                            status=200 if healthy() else 503)

    async def metrics_h(_r: web.Request) -> web.Response:
        return web.Response(text=metrics(), content_type="text/plain")

    async def status_h(_r: web.Request) -> web.Response:
        return web.Response(text=json.dumps(status(), indent=1, sort_keys=True),
                            content_type="application/json")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_h)
    app.router.add_get("/status", status_h)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner.cleanup


def health_server(cfg: ProxyConfig) -> tuple[ServiceHealthServer, Callable[[], None]]:
    """The service health check server: health check node ports on the host's
    127.0.0.1 and, with the netns runtime, on every address of the node's namespace;
    plus what to call on exit."""
    import socket

    from svcnet.proxy import healthcheck
    places: list[tuple[Callable[..., socket.socket], str]] = [(socket.socket, "127.0.0.1")]
    ns = None
    if cfg.netns is not None:
        from svcnet._util.netns import NetnsSockets
        ns = NetnsSockets(cfg.netns)
        places.append((ns.socket, "0.0.0.0"))
    server = healthcheck.ServiceHealthServer(
        lambda port: healthcheck.listening_sockets(port, places))
    return server, (ns.close if ns is not None else (lambda: None))


async def run(cfg: ProxyConfig) -> None:
    """Proxy until SIGTERM/SIGINT; everything the dataplane made is removed on exit."""
    from svcnet.client.api import APIClient
    from svcnet.proxy.proxier import Proxier

    node_ips = await _node_ips(cfg)
    dataplane = make_dataplane(cfg)
    client = APIClient.from_kubeconfig(cfg.kubeconfig, user_agent="svcnet-proxy")
    health, close_places = health_server(cfg)
    proxier = Proxier(client, dataplane, cfg.node_name, node_ips,
                      min_sync_period=cfg.min_sync_period, sync_period=cfg.sync_period,
                      health=health)

    def all_metrics() -> str:
        extra = getattr(dataplane, "render_metrics", None)
        return proxier.render_metrics() + (extra() if callable(extra) else "")

    cleanup = await _serve_http(cfg.port, proxier.synced.is_set, all_metrics,
                                lambda: {"node": cfg.node_name, "nodeIPs": list(node_ips),
                                         **proxier.status()})
    log.info("proxy %s on node %s (addresses %s); status on 127.0.0.1:%d", cfg.mode,
             cfg.node_name, ", ".join(node_ips) or "-", cfg.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = loop.create_task(proxier.run())
    stopper = loop.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopper):
            t.cancel()
        for t in (task, stopper):
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await cleanup()
        await client.close()
        close_places()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


def fetch_status(port: int) -> dict[str, Any]:
    """``GET /status`` of a running proxy (``svcnet proxy status``)."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        return dict(json.loads(r.read()))


def format_status(st: dict[str, Any]) -> str:
    """Human-readable ``svcnet proxy status``: one block per service port with its
    frontends (where each listens), its scheduler and its endpoints with their counters."""
    lines = [f"mode {st.get('mode')}  node {st.get('node')}  "
             f"addresses {', '.join(st.get('nodeIPs') or []) or '-'}"
             + (f"  netns {st['netns']}" if st.get("netns") else ""),
             f"syncs {st.get('syncs')}  failures {st.get('failures')}  "
             f"last sync {st.get('lastSync')}  service ports {st.get('servicePorts')}"]
    for name, sp in sorted((st.get("service_ports") or {}).items()):
        head = f"{name}/{sp.get('protocol', '').lower()}  scheduler {sp.get('scheduler')}"
        if sp.get("affinity_timeout"):
            head += f"  affinity ClientIP {sp['affinity_timeout']}s"
        if sp.get("internal") not in ("FORWARD", None):
            head += f"  cluster traffic: {sp.get('internal')}"
        if sp.get("external") not in ("FORWARD", None) and sp.get("external") != sp.get(
                "internal"):
            head += f"  external traffic: {sp.get('external')}"
        lines += ["", head]
        lines += [f"  listen {fe}" for fe in sp.get("frontends") or []]
        lines += [f"  skipped {what}: {why}" for what, why in (sp.get("skipped") or {}).items()]
        if sp.get("error"):
            lines.append(f"  error {sp['error']}")
        for ep in sp.get("endpoints") or []:
            lines.append(f"  -> {ep.get('address')}  {ep.get('state')}  weight "
                         f"{ep.get('weight')}  active {ep.get('active')}  total "
                         f"{ep.get('total')}  bytes in {ep.get('bytes_in')} out "
                         f"{ep.get('bytes_out')}")
    return "\n".join(lines)
