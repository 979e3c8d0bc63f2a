"""``svcnet controller-manager``: every controller, sharing one client and one set of
informers, talking to the API server only through the Kubernetes API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from pathlib import Path

from svcnet.client.api import APIClient
from svcnet.client.events import EventRecorder
from svcnet.controllers.base import Controller
from svcnet.informer.shared import InformerFactory

log = logging.getLogger("svcnet.controller-manager")


def build_controllers(client: APIClient, factory: InformerFactory, host: str,
                      pod_gc_quarantine: float = 40.0,
                      lb_pool: str | None = None, node_grace: float = 40.0,
                      node_monitor_period: float = 5.0) -> list[Controller]:
    """Every controller, registered on the factory's informers (not yet started); each
    records events under its upstream component name (``From`` in ``kubectl describe``)."""
    from svcnet.controllers.deployment import DeploymentController
    from svcnet.controllers.endpoints import EndpointsController
    from svcnet.controllers.endpointslice import EndpointSliceController
    from svcnet.controllers.endpointslice_mirroring import EndpointSliceMirroringController
    from svcnet.controllers.gc import GarbageCollector
    from svcnet.controllers.nodelifecycle import NodeLifecycleController
    from svcnet.controllers.podgc import PodGC
    from svcnet.controllers.replicaset import ReplicaSetController
    from svcnet.controllers.scheduler import Scheduler
    from svcnet.controllers.servicelb import DEFAULT_POOL, ServiceLBController
    from svcnet.controllers.tainteviction import TaintEvictionController

    def rec(component: str) -> EventRecorder:
        return EventRecorder(client, component, host)
    return [
        Scheduler(client, factory, rec("default-scheduler")),
        PodGC(client, factory, rec("pod-garbage-collector"), quarantine=pod_gc_quarantine),
        ReplicaSetController(client, factory, rec("replicaset-controller")),
        DeploymentController(client, factory, rec("deployment-controller")),
        GarbageCollector(client, factory, rec("garbage-collector-controller")),
        EndpointsController(client, factory, rec("endpoint-controller")),
        EndpointSliceController(client, factory, rec("endpointslice-controller")),
        EndpointSliceMirroringController(client, factory,
                                         rec("endpointslice-mirroring-controller")),
        ServiceLBController(client, factory, rec("service-controller"),
                            pool=lb_pool or DEFAULT_POOL),
        NodeLifecycleController(client, factory, rec("node-controller"),
                                grace_period=node_grace, monitor_period=node_monitor_period),
        TaintEvictionController(client, factory, rec("taint-eviction-controller")),
    ]


async def run(kubeconfig: Path, sync_timeout: float = 60.0,
              pod_gc_quarantine: float = 40.0, lb_pool: str | None = None,
              node_grace: float = 40.0, node_monitor_period: float = 5.0) -> None:
    """Run until SIGTERM/SIGINT or cancellation."""
    client = APIClient.from_kubeconfig(kubeconfig, user_agent="svcnet-controller-manager")
    factory = InformerFactory(client)
    controllers = build_controllers(client, factory, socket.gethostname(), pod_gc_quarantine,
                                    lb_pool, node_grace, node_monitor_period)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    factory.start()
    try:
        if not await factory.wait_for_sync(sync_timeout):
            log.warning("informers not synced after %.0fs; starting anyway", sync_timeout)
        for c in controllers:
            c.start()
        log.info("controllers running: %s", ", ".join(c.name for c in controllers))
        await stop.wait()
    finally:
        for c in controllers:
            await c.stop()
        await factory.stop()
        await client.close()
