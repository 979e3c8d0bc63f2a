"""Taint eviction (upstream ``taint-eviction-controller``): pods leave nodes whose
``NoExecute`` taints they do not tolerate, or tolerate only for a while.

The node lifecycle controller taints a silent node ``node.kubernetes.io/unreachable``
(NoExecute); every pod carries the default 300 s toleration for it
(:func:`svcnet.model.taints.add_default_tolerations`), so five minutes later its pods are
deleted here and their ReplicaSets make replacements on the nodes that are still alive —
which is how a Service's endpoints move off a dead node. When exactly is
:func:`svcnet.model.taints.eviction_time`.

Work is keyed by node: a node's taints changing, or a pod being bound to or updated on
a node, re-examines that node's pods. Each pod due is first given the
``DisruptionTarget`` condition (reason ``DeletionByTaintManager``), then deleted
gracefully with a ``TaintManagerEviction`` event; for the earliest pod not yet due the
node is looked at again when it is. A pod already being deleted is left alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from svcnet._util import rfc3339
from svcnet.client.api import MERGE_PATCH, APIClient
from svcnet.client.events import EventRecorder
from svcnet.controllers.base import Controller
from svcnet.informer.shared import InformerFactory
from svcnet.model import errors, kinds, taints

Obj = dict[str, Any]
NODES = kinds.require("", "nodes")
PODS = kinds.require("", "pods")


def _no_execute(node: Obj) -> list[Obj]:
    return [t for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") == taints.NO_EXECUTE]


class TaintEvictionController(Controller):
    name = "taint-eviction-controller"
    workers = 1

    def __init__(self, client: APIClient, factory: InformerFactory, recorder: EventRecorder,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(client, recorder)
        self.clock = clock
        self.nodes = factory.informer(NODES)
        self.pods = factory.informer(PODS)
        self.nodes.add_handlers(on_add=self._node_changed,
                                on_update=lambda old, new: self._node_changed(new, old))
        self.pods.add_handlers(on_add=self._pod_changed,
                               on_update=lambda _o, new: self._pod_changed(new),
                               on_delete=self._pod_gone)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # When a taint without ``timeAdded`` (kubectl taint sets none) was first seen:
        # (node, key, value, effect) -> Unix time.
        self._first_seen: dict[tuple[str, str, str, str], float] = {}
        # Pods this controller deleted, until the deletion shows in the informer.
        self._evicted: set[str] = set()

    def _node_changed(self, node: Obj, old: Obj | None = None) -> None:
        if _no_execute(node) or (old is not None and _no_execute(old)):
            self.enqueue_key(node["metadata"]["name"])

    def _pod_changed(self, pod: Obj) -> None:
        name = (pod.get("spec") or {}).get("nodeName")
        if name:
            node = self.nodes.indexer.get(name)
            if node is not None and _no_execute(node):
                self.enqueue_key(name)

    def _pod_gone(self, pod: Obj) -> None:
        self._evicted.discard((pod.get("metadata") or {}).get("uid", ""))

    @staticmethod
    def _taint_key(node_name: str, t: Mapping[str, Any]) -> tuple[str, str, str, str]:
        return (node_name, str(t.get("key") or ""), str(t.get("value") or ""),
                str(t.get("effect") or ""))

    def _note_first_seen(self, node_name: str, node_taints: list[Obj], now: float) -> None:
        """Remember when each of the node's taints without ``timeAdded`` was first seen;
        forget the ones it no longer has."""
        current = {self._taint_key(node_name, t) for t in node_taints
                   if not t.get("timeAdded")}
        for key in current:
            self._first_seen.setdefault(key, now)
        for key in [k for k in self._first_seen if k[0] == node_name and k not in current]:
            del self._first_seen[key]

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await super().stop()

    async def sync(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        node = self.nodes.indexer.get(key)
        if node is None:
            return
        now = self.clock()
        node_taints = _no_execute(node)
        self._note_first_seen(key, node_taints, now)
        if not node_taints:
            return

        def seen_since(t: Mapping[str, Any]) -> float | None:
            return self._first_seen.get(self._taint_key(key, t))
        next_due: float | None = None
        for pod in self.pods.indexer.items():
            if (pod.get("spec") or {}).get("nodeName") != key:
                continue
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                self._evicted.discard(meta.get("uid", ""))
                continue
            if meta.get("uid") in self._evicted:
                continue
            due = taints.eviction_time((pod.get("spec") or {}).get("tolerations") or [],
                                       node_taints, now, seen_since)
            if due is None:
                continue
            if due <= now:
                await self._evict(pod)
            elif next_due is None or due < next_due:
                next_due = due
        if next_due is not None:
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_later(next_due - now, self.enqueue_key, key)

    async def _evict(self, pod: Obj) -> None:
        meta = pod["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        conds = [c for c in (pod.get("status") or {}).get("conditions") or []
                 if c.get("type") != "DisruptionTarget"]
        conds.append({"type": "DisruptionTarget", "status": "True",
                      "reason": "DeletionByTaintManager",
                      "message": "Taint manager: deleting due to NoExecute taint",
                      "lastTransitionTime": rfc3339.now()})
        try:
            await self.client.patch(PODS, ns, name, {"status": {"conditions": conds}},
                                    MERGE_PATCH, subresource="status")
            await self.client.delete(PODS, ns, name, uid=meta.get("uid", ""))
            self._evicted.add(meta.get("uid", ""))
        except errors.APIError as e:
            if e.code in (404, 409):  # gone, or replaced by a pod of the same name
                return
            raise
        self.recorder.event(pod, "Normal", "TaintManagerEviction",
                            f"Marking for deletion Pod {ns}/{name}")
        self.log.info("evicting pod %s/%s from node %s (NoExecute taint)", ns, name,
                      (pod.get("spec") or {}).get("nodeName"))
