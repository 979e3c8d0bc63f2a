"""The service proxy's control loop: informers → change trackers → runner → dataplane.

Contracts:

* Informer handlers only record the object in a change tracker and poke the
  bounded-frequency runner; conversion and diffing happen in the sync.
* Nothing is synced before the informers (Services, EndpointSlices and Nodes,
  cluster-wide) have listed once. The first sync is full. This node's
  ``topology.kubernetes.io/zone`` label goes into the state (for zone hints); a change
  makes the next sync full.
* A sync is full when asked for (first sync, after a failure) or when the last full sync
  is ``sync_period`` or more ago; otherwise ``changed`` names the service ports changed
  since the last *successful* sync.
* A sync that raises is counted, logged by the runner and retried as a full sync after
  ``retry_period``. The runner also syncs at least every ``sync_period``.
* :meth:`Proxier.run` closes the dataplane when it ends (cancelled or failed). The API
  client belongs to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from svcnet.client.api import APIClient
from svcnet.informer.runner import BoundedFrequencyRunner
from svcnet.informer.shared import InformerFactory, Obj
from svcnet.model import kinds
from svcnet.proxy.changes import ProxyStateBuilder
from svcnet.proxy.dataplane import Dataplane
from svcnet.proxy.healthcheck import ServiceHealthServer, health_checks
from svcnet.proxy.types import ServicePortName

log = logging.getLogger("svcnet.proxy")
ZONE_LABEL = "topology.kubernetes.io/zone"

# kube-proxy's buckets for sync_proxy_rules_duration_seconds: 1 ms · 2^k, k < 15.
DURATION_BUCKETS = tuple(0.001 * 2 ** k for k in range(15))


class Proxier:
    """Keeps ``dataplane`` in step with the cluster's Services and EndpointSlices.

    ``clock`` is a monotonic time source (``loop.time`` by default) used by the runner
    and for sync durations; ``lastSync`` timestamps are wall-clock time.
    """

    def __init__(self, client: APIClient, dataplane: Dataplane, node_name: str,
                 node_ips: tuple[str, ...] = (), min_sync_period: float = 1.0,
                 sync_period: float = 30.0, clock: Callable[[], float] | None = None,
                 retry_period: float | None = None,
                 health: ServiceHealthServer | None = None) -> None:
        self.client = client
        self.health = health
        self.dataplane = dataplane
        self.node_name = node_name
        self.sync_period = sync_period
        self.builder = ProxyStateBuilder(node_name, tuple(node_ips))
        self.synced = asyncio.Event()
        self._clock = clock
        if retry_period is None:
            retry_period = min_sync_period if min_sync_period > 0 else 1.0
        self.runner = BoundedFrequencyRunner(
            "proxy-sync", self.sync, min_interval=min_sync_period, max_interval=sync_period,
            burst=2, retry_interval=retry_period, clock=clock)
        self._need_full = True
        self._last_full: float | None = None
        self._pending: set[ServicePortName] = set()
        self.metrics = SyncMetrics()
        self._services = 0  # as of the last successful sync
        self._service_ports = 0

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    # --- informer handlers (record and poke) -------------------------------------------

    def _on_service(self, obj: Obj) -> None:
        self.builder.services.add(obj)
        self.runner.run()

    def _on_service_update(self, old: Obj, new: Obj) -> None:
        self.builder.services.update(old, new)
        self.runner.run()

    def _on_service_delete(self, obj: Obj) -> None:
        self.builder.services.delete(obj)
        self.runner.run()

    def _on_node(self, obj: Obj) -> None:
        """This node's zone label (for zone hints); a change re-plans everything."""
        meta = obj.get("metadata") or {}
        if meta.get("name") != self.node_name:
            return
        zone = str((meta.get("labels") or {}).get(ZONE_LABEL) or "")
        if zone != self.builder.node_zone:
            log.info("node %s is in zone %r", self.node_name, zone)
            self.builder.node_zone = zone
            self._need_full = True
            self.runner.run()

    def _on_slice(self, obj: Obj) -> None:
        self.builder.slices.add(obj)
        self.runner.run()

    def _on_slice_update(self, old: Obj, new: Obj) -> None:
        self.builder.slices.update(old, new)
        self.runner.run()

    def _on_slice_delete(self, obj: Obj) -> None:
        self.builder.slices.delete(obj)
        self.runner.run()

    # --- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Mirror Services and EndpointSlices, then sync until cancelled."""
        factory = InformerFactory(self.client)
        factory.informer(kinds.require("", "services")).add_handlers(
            self._on_service, self._on_service_update, self._on_service_delete)
        factory.informer(kinds.require("discovery.k8s.io", "endpointslices")).add_handlers(
            self._on_slice, self._on_slice_update, self._on_slice_delete)
        factory.informer(kinds.require("", "nodes")).add_handlers(
            self._on_node, lambda _old, new: self._on_node(new))
        factory.start()
        try:
            await factory.wait_for_sync()
            log.info("proxy informers synced; mode %s", self.dataplane.name)
            self.runner.run()
            await self.runner.loop()
        finally:
            await factory.stop()
            if self.health is not None:
                await self.health.close()
            await self.dataplane.close()

    async def sync(self) -> None:
        """Apply pending changes and sync the dataplane once (raises when it fails)."""
        start = self._now()
        self._pending |= self.builder.apply()
        full = self._need_full or self._last_full is None or \
            start - self._last_full >= self.sync_period
        state = self.builder.snapshot()
        try:
            await self.dataplane.sync(state, set(self._pending), full)
        except Exception:
            self._need_full = True
            self.metrics.failures += 1
            raise
        self.metrics.service_changes += len(self._pending)
        self._pending.clear()
        self._need_full = False
        if full:
            self._last_full = start
        self.metrics.observe(self._now() - start, time.time(), full)
        if self.health is not None:
            try:
                await self.health.update(health_checks(state))
            except Exception:  # the dataplane is synced; health checks retry next time
                log.exception("updating service health checks")
        self._service_ports = len(state.services)
        self._services = len({(n.namespace, n.name) for n in state.services})
        if not self.synced.is_set():
            log.info("proxy synced: %d service ports", len(state.services))
            self.synced.set()

    # --- reporting ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``mode``, ``syncs``, ``failures``, ``lastSync`` (ISO time or ``None``),
        ``services`` (with proxied ports) and ``servicePorts`` as of the last successful
        sync, then the dataplane's own status keys."""
        m = self.metrics
        last = datetime.fromtimestamp(m.last_sync, UTC).isoformat() if m.last_sync else None
        return {"mode": self.dataplane.name, "syncs": m.syncs, "failures": m.failures,
                "lastSync": last, "services": self._services,
                "servicePorts": self._service_ports,
                **self.dataplane.status()}

    def render_metrics(self) -> str:
        """Prometheus text exposition of the sync metrics."""
        return self.metrics.render()


class SyncMetrics:
    """Sync counters and a duration histogram, rendered with kube-proxy's names."""

    def __init__(self) -> None:
        self.syncs = 0
        self.full_syncs = 0
        self.failures = 0
        self.service_changes = 0
        self.last_sync = 0.0  # wall-clock seconds of the last successful sync
        self.last_duration = 0.0
        self.duration_sum = 0.0
        self.bucket_counts = [0] * len(DURATION_BUCKETS)

    def observe(self, duration: float, now: float, full: bool) -> None:
        """Record one successful sync that took ``duration`` seconds, ending at ``now``."""
        self.syncs += 1
        self.full_syncs += int(full)
        self.last_sync = now
        self.last_duration = duration
        self.duration_sum += duration
        for i, le in enumerate(DURATION_BUCKETS):
            if duration <= le:
                self.bucket_counts[i] += 1

    def render(self) -> str:
        h = "kubeproxy_sync_proxy_rules_duration_seconds"
        lines = [f"# HELP {h} SyncProxyRules latency in seconds", f"# TYPE {h} histogram"]
        lines += [f'{h}_bucket{{le="{le:g}"}} {n}'
                  for le, n in zip(DURATION_BUCKETS, self.bucket_counts, strict=True)]
        lines += [f'{h}_bucket{{le="+Inf"}} {self.syncs}', f"{h}_sum {self.duration_sum!r}",
                  f"{h}_count {self.syncs}"]
        for name, kind, text, value in (
            ("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge",
             "The last time proxy rules were successfully synced", self.last_sync),
            ("kubeproxy_sync_proxy_rules_last_duration_seconds", "gauge",
             "How long the last successful sync took", self.last_duration),
            ("kubeproxy_sync_full_proxy_rules_total", "counter",
             "Successful full syncs", self.full_syncs),
            ("kubeproxy_sync_proxy_rules_failures_total", "counter",
             "Syncs that failed (each is retried as a full sync)", self.failures),
            ("kubeproxy_sync_proxy_rules_service_changes_total", "counter",
             "Service ports whose info or endpoints changed, summed over syncs",
             self.service_changes),
        ):
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value!r}"]
        return "\n".join(lines) + "\n"
