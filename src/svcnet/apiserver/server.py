"""Running the API server: store, allocators, built-in objects, background loops, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from svcnet.apiserver import objects
from svcnet.apiserver.allocators import ServiceAllocator
from svcnet.apiserver.http import APIServerApp
from svcnet.apiserver.pki import ensure_pki
from svcnet.apiserver.rest import NAMESPACES, SERVICES, Registry, WriteOptions
from svcnet.model import kinds
from svcnet.store import base as store_base
from svcnet.store.sqlite import SQLiteStorage

log = logging.getLogger("svcnet.apiserver")

BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class APIServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 6443
    service_cidr: str = "10.96.0.0/12"
    node_port_range: tuple[int, int] = (30000, 32767)
    # Default: the service CIDR's first and tenth addresses (kubeadm's choice).
    kubernetes_service_ip: str = ""
    dns_service_ip: str = ""
    # History kept for watches resuming from an older resourceVersion.
    compaction_interval: float = 300.0
    bookmark_interval: float = 60.0


# Built-in objects whose content follows the configuration on every start.
RECONCILED = {("endpoints", "kubernetes"): ("subsets",),
              ("endpointslices", "kubernetes"): ("endpoints", "ports"),
              ("services", "kube-dns"): ("spec.selector",)}


def service_cidr_address(cidr: str, n: int) -> str:
    """The ``n``-th address of the service CIDR (1: ``kubernetes``, 10: ``kube-dns``)."""
    import ipaddress
    return str(ipaddress.ip_network(cidr, strict=False)[n])


def builtin_objects(cfg: APIServerConfig) -> list[tuple[kinds.ResourceInfo, dict[str, Any]]]:
    """Objects every cluster starts with (kubeadm's defaults).

    ``kube-dns`` has no selector: svcnet's DNS server is not a pod, and it publishes the
    address it listens on as the Service's Endpoints itself (as the API server does for
    ``kubernetes``)."""
    ep = kinds.lookup("", "endpoints")
    assert ep is not None and NAMESPACES is not None and SERVICES is not None
    out: list[tuple[kinds.ResourceInfo, dict[str, Any]]] = [
        (NAMESPACES, {"metadata": {"name": n}}) for n in BUILTIN_NAMESPACES]
    out.append((SERVICES, {
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": cfg.kubernetes_service_ip
                 or service_cidr_address(cfg.service_cidr, 1), "type": "ClusterIP",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": cfg.port}]},
    }))
    out.append((ep, {
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": cfg.host}],
                     "ports": [{"name": "https", "port": cfg.port, "protocol": "TCP"}]}],
    }))
    slices = kinds.lookup("discovery.k8s.io", "endpointslices")
    assert slices is not None
    out.append((slices, {
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [cfg.host], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": cfg.port, "protocol": "TCP"}],
    }))
    out.append((SERVICES, {
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                "kubernetes.io/name": "CoreDNS"},
                     "annotations": {"prometheus.io/port": "9153",
                                     "prometheus.io/scrape": "true"}},
        "spec": {"clusterIP": cfg.dns_service_ip or service_cidr_address(cfg.service_cidr, 10),
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                           {"name": "metrics", "port": 9153, "protocol": "TCP",
                            "targetPort": 9153}]},
    }))
    return out


class NamespaceFinalizer:
    """Removes the content of a terminating namespace, then the namespace itself.

    Content is deleted through the registry, as a client's DELETE would be (background
    propagation): bound pods terminate gracefully through their node agent, objects with
    finalizers wait for them, Services free their addresses. The namespace goes once
    nothing is left in it; until then the sweep repeats every ``retry`` seconds (an object
    whose finalizer is never removed keeps the namespace Terminating, as upstream).
    """

    def __init__(self, registry: Registry, retry: float = 1.0) -> None:
        self.registry = registry
        self.retry = retry
        self._running: set[str] = set()

    async def finalize(self, name: str) -> None:
        if name in self._running:
            return
        self._running.add(name)
        try:
            await self._finalize(name)
        except Exception:
            log.exception("finalizing namespace %s", name)
        finally:
            self._running.discard(name)

    async def _sweep(self, name: str) -> int:
        """Start deleting everything in namespace ``name``; how many objects remain."""
        store = self.registry.store
        remaining = 0
        for r in kinds.RESOURCES:
            if not r.namespaced:
                continue
            items, _ = await store.list(objects.store_prefix(r, name))
            for obj in items:
                remaining += 1
                m = obj.get("metadata") or {}
                if m.get("deletionTimestamp"):
                    continue  # already on its way out
                with contextlib.suppress(store_base.KeyNotFound):
                    try:
                        await self.registry.delete(r, name, m["name"],
                                                   {"propagationPolicy": "Background"},
                                                   WriteOptions())
                    except Exception as e:  # retried on the next sweep
                        if getattr(e, "code", 0) != 404:
                            log.warning("namespace %s: deleting %s %s: %s", name,
                                        r.resource, m.get("name"), e)
        return remaining

    async def _finalize(self, name: str) -> None:
        while await self._sweep(name):
            await asyncio.sleep(self.retry)
        store = self.registry.store
        assert NAMESPACES is not None
        key = objects.store_key(NAMESPACES, None, name)

        def drop_finalizer(cur: dict[str, Any]) -> dict[str, Any]:
            new = dict(cur)
            new["spec"] = {**(cur.get("spec") or {}), "finalizers": []}
            return new
        with contextlib.suppress(store_base.KeyNotFound):
            await store.guaranteed_update(key, drop_finalizer)
            await store.delete(key)

    async def resume(self) -> None:
        """Finish namespaces left terminating by an earlier run."""
        assert NAMESPACES is not None
        items, _ = await self.registry.store.list(objects.store_prefix(NAMESPACES, None))
        for ns in items:
            if (ns.get("metadata") or {}).get("deletionTimestamp"):
                await self.finalize(ns["metadata"]["name"])


async def compaction_loop(store: SQLiteStorage, interval: float) -> None:
    """Every ``interval`` seconds, forget history older than one interval."""
    previous: int | None = None
    while True:
        await asyncio.sleep(interval)
        try:
            if previous is not None:
                await store.compact(previous)
            previous = await store.current_revision()
        except Exception:
            log.exception("compaction failed")


async def serve(cfg: APIServerConfig, ready: Callable[[], Awaitable[None]] | None = None
                ) -> None:
    """Run until cancelled or SIGTERM/SIGINT."""
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    pki = ensure_pki(cfg.data_dir)
    store = SQLiteStorage(cfg.data_dir / "state.db")
    allocator = ServiceAllocator(cfg.service_cidr, cfg.node_port_range)
    assert SERVICES is not None
    services, _ = await store.list(objects.store_prefix(SERVICES, None))
    allocator.restore(services)
    registry = Registry(store, allocator)
    finalizer = NamespaceFinalizer(registry)
    registry.on_namespace_terminating = finalizer.finalize
    address = f"{cfg.host}:{cfg.port}"
    api = APIServerApp(registry, pki.token, address, bookmark_interval=cfg.bookmark_interval)
    app = api.build()
    sslctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    sslctx.load_cert_chain(pki.server_cert, pki.server_key)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                           shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port, ssl_context=sslctx, reuse_address=True,
                       backlog=1024)
    await site.start()
    log.info("serving on https://%s", address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    t0 = time.monotonic()
    for r, obj in builtin_objects(cfg):
        await registry.ensure(r, obj, RECONCILED.get((r.resource, obj["metadata"]["name"]),
                                                     ()))
    await finalizer.resume()
    api.ready = True
    log.info("ready after %.3fs", time.monotonic() - t0)
    compaction = loop.create_task(compaction_loop(store, cfg.compaction_interval))
    if ready is not None:
        await ready()
    try:
        await stop.wait()
    finally:
        compaction.cancel()
        await runner.cleanup()
        await store.close()
