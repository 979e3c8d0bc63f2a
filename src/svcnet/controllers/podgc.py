"""Pod garbage collection (upstream PodGC's ``gcOrphaned``): pods bound to a node that does
not exist are deleted at once (grace period 0) once the node has been missing for a
quarantine period, since no agent will ever stop them."""

from __future__ import annotations

import asyncio
from typing import Any

from svcnet.client.api import APIClient
from svcnet.client.events import EventRecorder
from svcnet.controllers.base import Controller
from svcnet.informer.cache import split_key
from svcnet.informer.shared import InformerFactory
from svcnet.model import errors, kinds

Obj = dict[str, Any]
PODS = kinds.require("", "pods")
NODES = kinds.require("", "nodes")

QUARANTINE_SECONDS = 40.0


class PodGC(Controller):
    name = "podgc"
    workers = 1

    def __init__(self, client: APIClient, factory: InformerFactory,
                 recorder: EventRecorder, quarantine: float = QUARANTINE_SECONDS) -> None:
        super().__init__(client, recorder)
        self.quarantine = quarantine
        self._first_missing: dict[str, float] = {}
        self.pods = factory.informer(PODS)
        self.nodes = factory.informer(NODES)
        self.pods.add_handlers(on_add=self._pod, on_update=lambda _o, n: self._pod(n))
        self.nodes.add_handlers(on_delete=self._node_gone)

    def _pod(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and self.nodes.indexer.get(node) is None:
            self.enqueue(pod)

    def _node_gone(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name")
        for p in self.pods.indexer.items():
            if (p.get("spec") or {}).get("nodeName") == name:
                self.enqueue(p)

    async def sync(self, key: str) -> None:
        pod = self.pods.indexer.get(key)
        if pod is None:
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or self.nodes.indexer.get(node) is not None:
            return
        first_seen = self._first_missing.setdefault(key, asyncio.get_running_loop().time())
        waited = asyncio.get_running_loop().time() - first_seen
        if waited < self.quarantine:
            self.queue.add_after(key, self.quarantine - waited)
            return
        try:
            await self.client.get(NODES, None, node)
            self._first_missing.pop(key, None)
            return  # the node exists after all (cache lag)
        except errors.APIError as e:
            if e.code != 404:
                raise
        ns, name = split_key(key)
        uid = (pod.get("metadata") or {}).get("uid", "")
        try:
            await self.client.delete(PODS, ns, name, grace_period_seconds=0, uid=uid)
            self.log.info("deleted orphaned pod %s (node %s does not exist)", key, node)
        except errors.APIError as e:
            if e.code not in (404, 409):
                raise
        self._first_missing.pop(key, None)
