"""Node lifecycle (upstream ``node-lifecycle-controller``, the part services depend on).

A node agent proves it is alive by renewing its Lease in ``kube-node-lease`` and by
heartbeats on its Node's conditions. Every ``monitor_period`` seconds this controller
looks at each Node's newest sign of life; when none came for ``grace_period`` seconds
(upstream ``--node-monitor-grace-period``, 40 s):

* the Node's conditions become ``Unknown`` with reason ``NodeStatusUnknown`` and message
  "Kubelet stopped posting node status.", and it gets the ``node.kubernetes.io/unreachable``
  taints (NoSchedule and NoExecute), with a ``NodeNotReady`` event;
* every pod bound to it gets ``Ready=False`` (upstream ``MarkPodsNotReady``), so the
  endpoint controllers move it to not-ready addresses and the service proxy and DNS stop
  sending clients to it.

A node whose agent reports ``Ready=False`` gets the ``node.kubernetes.io/not-ready``
taints instead (NoSchedule and NoExecute). When the agent comes back it reports
``Ready=True`` itself; the controller then removes the taints (the agent re-reports its
pods' readiness). Pods are evicted by :mod:`svcnet.controllers.tainteviction` once their
toleration of the NoExecute taint (300 s by default) runs out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from svcnet._util import rfc3339
from svcnet.client.api import MERGE_PATCH, APIClient
from svcnet.client.events import EventRecorder
from svcnet.controllers.base import Controller
from svcnet.informer.shared import InformerFactory
from svcnet.model import errors, kinds
from svcnet.model import taints as taints_model

Obj = dict[str, Any]
NODES = kinds.require("", "nodes")
PODS = kinds.require("", "pods")
LEASES = kinds.require("coordination.k8s.io", "leases")
UNREACHABLE = taints_model.UNREACHABLE
NOT_READY = taints_model.NOT_READY
_CONDITION_TAINTS = (UNREACHABLE, NOT_READY)
GRACE_PERIOD = 40.0
MONITOR_PERIOD = 5.0


def parse_time(text: str | None) -> float | None:
    """RFC 3339 (with or without fractional seconds) → Unix time; ``None`` if absent."""
    return rfc3339.to_unix(text)


def last_sign_of_life(node: Obj, lease: Obj | None) -> float | None:
    """The newest of the lease's renewTime and the Ready condition's heartbeat."""
    times = [parse_time((lease or {}).get("spec", {}).get("renewTime"))]
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            times.append(parse_time(c.get("lastHeartbeatTime")))
    known = [t for t in times if t is not None]
    return max(known) if known else None


def ready_status(node: Obj) -> str:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status") or "Unknown")
    return "Unknown"


def unknown_conditions(node: Obj, now: str) -> list[Obj]:
    """The node's conditions turned ``Unknown`` as upstream does for a silent node."""
    out = []
    for c in (node.get("status") or {}).get("conditions") or []:
        c = dict(c)
        if c.get("status") != "Unknown":
            c["lastTransitionTime"] = now
        c.update(status="Unknown", reason="NodeStatusUnknown",
                 message="Kubelet stopped posting node status.")
        out.append(c)
    return out


def lifecycle_taints(taints: list[Obj], key: str | None, now: str) -> list[Obj]:
    """``taints`` with the node-condition taints set to ``key``'s NoSchedule and
    NoExecute pair (``UNREACHABLE`` or ``NOT_READY``; ``None``: neither): the other key's
    are removed, existing ones keep their ``timeAdded``, other taints are kept."""
    out = [t for t in taints if t.get("key") not in _CONDITION_TAINTS or t.get("key") == key]
    if key is not None:
        have = {(t.get("key"), t.get("effect")) for t in out}
        out += [{"key": key, "effect": e, "timeAdded": now}
                for e in ("NoSchedule", "NoExecute") if (key, e) not in have]
    return out


class NodeLifecycleController(Controller):
    name = "node-lifecycle"
    workers = 1

    def __init__(self, client: APIClient, factory: InformerFactory, recorder: EventRecorder,
                 grace_period: float = GRACE_PERIOD, monitor_period: float = MONITOR_PERIOD,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(client, recorder)
        self.grace_period = grace_period
        self.monitor_period = monitor_period
        self.clock = clock
        self.nodes = factory.informer(NODES)
        self.pods = factory.informer(PODS)
        self.leases = factory.informer(LEASES, "kube-node-lease")
        self.nodes.add_handlers(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n))
        # A node first seen without any sign of life gets the grace period from then.
        self._first_seen: dict[str, float] = {}

    def start(self) -> None:
        super().start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._monitor()))

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(self.monitor_period)
            for key in self.nodes.indexer.keys():  # noqa: SIM118 - not a dict
                self.enqueue_key(key)

    async def sync(self, key: str) -> None:
        node = self.nodes.indexer.get(key)
        if node is None:
            self._first_seen.pop(key, None)
            return
        name = node["metadata"]["name"]
        lease = self.leases.indexer.get(f"kube-node-lease/{name}")
        now = self.clock()
        seen = last_sign_of_life(node, lease)
        if seen is None:
            seen = self._first_seen.setdefault(key, now)
        silent = now - seen > self.grace_period
        taints = list((node.get("spec") or {}).get("taints") or [])
        ready = ready_status(node)
        if silent:
            if ready != "Unknown":
                await self._mark_unknown(node)
            want: str | None = UNREACHABLE
        elif ready == "False":
            want = NOT_READY
        elif ready == "True":
            want = None
        else:
            return  # not reported yet (or not since it came back): leave the taints
        new = lifecycle_taints(taints, want, rfc3339.now())
        if new != taints:
            await self._patch_taints(name, new)
            if want is None:
                self.log.info("node %s is ready again", name)

    async def _mark_unknown(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        now = rfc3339.now()
        await self.client.patch(NODES, None, name,
                                {"status": {"conditions": unknown_conditions(node, now)}},
                                MERGE_PATCH, subresource="status")
        self.recorder.event(node, "Normal", "NodeNotReady",
                            f"Node {name} status is now: NodeNotReady")
        self.log.info("node %s stopped posting status; its pods are marked not ready", name)
        for pod in self.pods.indexer.items():
            if (pod.get("spec") or {}).get("nodeName") == name:
                await self._pod_not_ready(pod, now)

    async def _pod_not_ready(self, pod: Obj, now: str) -> None:
        status = pod.get("status") or {}
        conds = [dict(c) for c in status.get("conditions") or []]
        changed = False
        for c in conds:
            if c.get("type") == "Ready" and c.get("status") != "False":
                c.update(status="False", lastTransitionTime=now)
                changed = True
        if not changed:
            return
        meta = pod["metadata"]
        try:
            await self.client.patch(PODS, meta.get("namespace"), meta["name"],
                                    {"status": {"conditions": conds}}, MERGE_PATCH,
                                    subresource="status")
        except errors.APIError as e:
            if e.code != 404:
                raise
            return
        self.recorder.event(pod, "Warning", "NodeNotReady", "Node is not ready")

    async def _patch_taints(self, name: str, taints: list[Obj]) -> None:
        await self.client.patch(NODES, None, name, {"spec": {"taints": taints or None}},
                                MERGE_PATCH)
