"""LoadBalancer addresses from a local pool: the part of a cloud's service controller (or
MetalLB) that gives ``type: LoadBalancer`` Services an external address.

Contract:

* A Service of type LoadBalancer without ``spec.loadBalancerClass`` gets
  ``status.loadBalancer.ingress: [{ip, ipMode: VIP}]`` with an address of the pool
  (``--lb-pool``, default ``127.240.0.0/24``: loopback, so the host reaches it and nothing
  leaves the machine). ``spec.loadBalancerIP`` is honoured when it is in the pool and free;
  otherwise the Service gets a ``LoadBalancerIPNotAvailable`` warning event and no address.
* An address stays with its Service until the Service is deleted or stops being a
  LoadBalancer (then its status is cleared). Two Services never share an address.
* An exhausted pool leaves the Service pending (``<pending>`` in ``kubectl get svc``) with
  an ``AllocationFailed`` warning, retried when another Service frees an address.
* Events carry the upstream reasons: ``EnsuringLoadBalancer`` / ``EnsuredLoadBalancer``
  from component ``service-controller``.

The service proxy serves the addresses (``svcnet.proxy``); this controller only assigns
them.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from svcnet.client.api import MERGE_PATCH, APIClient
from svcnet.client.events import EventRecorder
from svcnet.controllers.base import Controller
from svcnet.informer.cache import split_key
from svcnet.informer.shared import InformerFactory
from svcnet.model import errors, kinds

Obj = dict[str, Any]
SERVICES = kinds.require("", "services")
DEFAULT_POOL = "127.240.0.0/24"


def wants_address(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def ingress_ips(svc: Obj) -> list[str]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i["ip"]) for i in ingress if i.get("ip")]


class ServiceLBController(Controller):
    name = "service-lb"
    workers = 1  # allocation decisions are serialised

    def __init__(self, client: APIClient, factory: InformerFactory,
                 recorder: EventRecorder, pool: str = DEFAULT_POOL) -> None:
        super().__init__(client, recorder)
        self.pool = ipaddress.ip_network(pool, strict=False)
        # Written but perhaps not yet in the cache: key → address (None: released).
        self._written: dict[str, str | None] = {}
        self.services = factory.informer(SERVICES)
        self.services.add_handlers(on_add=self._changed,
                                   on_update=lambda old, new: self._changed(new, old),
                                   on_delete=self._deleted)

    def _changed(self, svc: Obj, old: Obj | None = None) -> None:
        if wants_address(svc) or ingress_ips(svc) or (old is not None and wants_address(old)):
            self.enqueue(svc)

    def _deleted(self, svc: Obj) -> None:
        key = f"{svc['metadata'].get('namespace')}/{svc['metadata']['name']}"
        self._written.pop(key, None)
        if ingress_ips(svc):
            self._requeue_pending()

    def _requeue_pending(self) -> None:
        """An address came free: pending services may take it."""
        for other in self.services.indexer.items():
            if wants_address(other) and not ingress_ips(other):
                self.enqueue(other)

    def _in_use(self, except_key: str) -> set[str]:
        used: set[str] = set()
        for svc in self.services.indexer.items():
            key = f"{svc['metadata'].get('namespace')}/{svc['metadata']['name']}"
            if key != except_key and key not in self._written:
                used.update(ingress_ips(svc))
        used.update(ip for k, ip in self._written.items() if ip and k != except_key)
        return used

    def _choose(self, svc: Obj, key: str) -> str | None:
        used = self._in_use(key)
        wanted = (svc.get("spec") or {}).get("loadBalancerIP")
        if wanted:
            try:
                ok = ipaddress.ip_address(wanted) in self.pool and wanted not in used
            except ValueError:
                ok = False
            if not ok:
                self.recorder.event(svc, "Warning", "LoadBalancerIPNotAvailable",
                                    f"spec.loadBalancerIP {wanted} is not a free address of "
                                    f"the pool {self.pool}")
                return None
            return str(wanted)
        for ip in self.pool.hosts():
            if str(ip) not in used:
                return str(ip)
        self.recorder.event(svc, "Warning", "AllocationFailed",
                            f"no free address left in the load-balancer pool {self.pool}")
        return None

    async def sync(self, key: str) -> None:
        svc = self.services.indexer.get(key)
        if svc is None:
            return
        ns, name = split_key(key)
        have = ingress_ips(svc)
        if key in self._written:
            want_cached = self._written[key]
            if (want_cached is None and not have) or (want_cached and want_cached in have):
                del self._written[key]  # the cache caught up
            else:
                have = [want_cached] if want_cached else []
        if not wants_address(svc):
            if have:
                await self._write(ns, name, key, None)
                self._requeue_pending()
            return
        if have and all(ipaddress.ip_address(ip) in self.pool for ip in have) and \
                not set(have) & self._in_use(key):
            return
        self.recorder.event(svc, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
        ip = self._choose(svc, key)
        if ip is None:
            return
        await self._write(ns, name, key, ip)
        self.recorder.event(svc, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")

    async def _write(self, ns: str | None, name: str, key: str, ip: str | None) -> None:
        ingress: list[Obj] | None = [{"ip": ip, "ipMode": "VIP"}] if ip else None
        patch = {"status": {"loadBalancer": {"ingress": ingress}}}  # null removes it
        try:
            await self.client.patch(SERVICES, ns, name, patch, MERGE_PATCH,
                                    subresource="status")
        except errors.APIError as e:
            if e.code == 404:
                return
            raise
        self._written[key] = ip
        self.log.info("service %s: load-balancer address %s", key, ip or "released")
