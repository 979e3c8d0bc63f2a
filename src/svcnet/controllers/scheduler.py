"""A simple scheduler: binds each unassigned pod to a ready node.

Choice (pure, :func:`choose_node`): nodes that are Ready, schedulable, match the pod's
``nodeSelector`` and have no ``NoSchedule``/``NoExecute`` taint the pod does not
tolerate; among them the one running the fewest pods (ties by name), so replicas spread. A pod that fits nowhere gets ``PodScheduled=False`` (reason ``Unschedulable``)
and a ``FailedScheduling`` event, and is retried when nodes change.
"""

from __future__ import annotations

from typing import Any

from svcnet._util import rfc3339
from svcnet.client.api import MERGE_PATCH, APIClient
from svcnet.client.events import EventRecorder
from svcnet.controllers.base import Controller
from svcnet.informer.cache import split_key
from svcnet.informer.shared import InformerFactory
from svcnet.model import errors, kinds, taints

Obj = dict[str, Any]
PODS = kinds.require("", "pods")
NODES = kinds.require("", "nodes")

SCHEDULER_NAME = "default-scheduler"


def node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def needs_scheduling(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    phase = (pod.get("status") or {}).get("phase")
    return (not spec.get("nodeName")
            and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
            and phase not in ("Succeeded", "Failed"))


def _fits(pod: Obj, node: Obj) -> str:
    """Why ``pod`` cannot go to ``node`` ("" when it can)."""
    if not node_ready(node):
        return "node(s) were not ready"
    if (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable"
    labels = (node.get("metadata") or {}).get("labels") or {}
    spec = pod.get("spec") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return "node(s) didn't match Pod's node affinity/selector"
    bad = taints.untolerated(spec.get("tolerations") or [],
                             (node.get("spec") or {}).get("taints") or [])
    if bad:
        t = bad[0]
        return f"node(s) had untolerated taint {{{t.get('key')}: {t.get('value') or ''}}}"
    return ""


def choose_node(pod: Obj, nodes: list[Obj], pods_per_node: dict[str, int]
                ) -> tuple[str, str]:
    """``(node name, "")`` for the best node, or ``("", message)`` explaining why none
    fits, worded like the real scheduler: ``0/2 nodes are available: 2 node(s) were not
    ready.``"""
    reasons: dict[str, int] = {}
    fitting: list[str] = []
    for n in nodes:
        why = _fits(pod, n)
        name = (n.get("metadata") or {}).get("name", "")
        if why:
            reasons[why] = reasons.get(why, 0) + 1
        else:
            fitting.append(name)
    if fitting:
        return min(fitting, key=lambda x: (pods_per_node.get(x, 0), x)), ""
    detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
    msg = f"0/{len(nodes)} nodes are available"
    return "", (f"{msg}: {detail}." if detail else f"{msg}.")


class Scheduler(Controller):
    name = "scheduler"
    workers = 1

    def __init__(self, client: APIClient, factory: InformerFactory,
                 recorder: EventRecorder) -> None:
        super().__init__(client, recorder)
        self.pods = factory.informer(PODS)
        self.nodes = factory.informer(NODES)
        self.pods.add_handlers(on_add=self._pod_changed,
                               on_update=lambda _o, n: self._pod_changed(n))
        self.nodes.add_handlers(on_add=self._nodes_changed,
                                on_update=lambda _o, _n: self._nodes_changed(_n),
                                on_delete=self._nodes_changed)
        self._unschedulable: set[str] = set()

    def _pod_changed(self, pod: Obj) -> None:
        if needs_scheduling(pod):
            self.enqueue(pod)

    def _nodes_changed(self, _node: Obj) -> None:
        for key in list(self._unschedulable):
            self.enqueue_key(key)

    def _load(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.pods.indexer.items():
            n = (p.get("spec") or {}).get("nodeName")
            if n and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                counts[n] = counts.get(n, 0) + 1
        return counts

    async def sync(self, key: str) -> None:
        pod = self.pods.indexer.get(key)
        if pod is None or not needs_scheduling(pod):
            self._unschedulable.discard(key)
            return
        ns, name = split_key(key)
        node, why = choose_node(pod, self.nodes.indexer.items(), self._load())
        if not node:
            self._unschedulable.add(key)
            await self._mark_unschedulable(pod, why)
            return
        self._unschedulable.discard(key)
        try:
            await self.client.request(
                "POST", f"/api/v1/namespaces/{ns}/pods/{name}/binding",
                {"apiVersion": "v1", "kind": "Binding",
                 "metadata": {"name": name, "namespace": ns},
                 "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
        except errors.APIError as e:
            if e.code in (404, 409):  # gone, or bound meanwhile
                return
            raise
        self.recorder.event(pod, "Normal", "Scheduled",
                            f"Successfully assigned {ns}/{name} to {node}")

    async def _mark_unschedulable(self, pod: Obj, why: str) -> None:
        conds = (pod.get("status") or {}).get("conditions") or []
        cur = next((c for c in conds if c.get("type") == "PodScheduled"), None)
        if cur and cur.get("status") == "False" and cur.get("message") == why:
            return
        m = pod.get("metadata") or {}
        now = rfc3339.now()
        new_conds = [c for c in conds if c.get("type") != "PodScheduled"]
        new_conds.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                          "message": why, "lastProbeTime": None, "lastTransitionTime": now})
        try:
            await self.client.patch(PODS, m.get("namespace"), m["name"],
                                    {"status": {"conditions": new_conds}}, MERGE_PATCH,
                                    subresource="status")
        except errors.APIError as e:
            if e.code != 404:
                raise
        self.recorder.event(pod, "Warning", "FailedScheduling", why)
