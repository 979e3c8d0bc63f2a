"""The ``fake`` dataplane: records every sync and answers "where would this packet go".

It programs nothing. :meth:`FakeDataplane.route` evaluates the recorded desired state the
way a real dataplane is expected to forward a *new* connection, so the packet-flow table
(``tests/proxy/flows.py``) can be checked against the model the real dataplanes are
checked against.

Frontends of a service port and the endpoints they use:

* ``clusterIP:port`` → the internal selection (``internalTrafficPolicy``);
* ``nodeIP:nodePort`` for every ``state.node_ips`` address and ``127.0.0.1`` → the
  external selection (``externalTrafficPolicy``);
* ``externalIP:port`` → the external selection;
* ``loadBalancerIP:port`` → the external selection, after ``loadBalancerSourceRanges``:
  a source outside every range is dropped (as kube-proxy does). When a range contains a
  node address, sources equal to a load-balancer IP are allowed too (hairpin through the
  load balancer).

Only endpoints of the frontend address's family are considered. The external selection
applies to every source, including this node's own pods and host processes. Session
affinity is not modelled: it narrows a client's choice later, not the set of backends a
new connection may reach.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from svcnet.proxy import dataplane
from svcnet.proxy.dataplane import ProxyState
from svcnet.proxy.endpoints import DROP, FORWARD, REJECT, of_family, select_endpoints, verdict
from svcnet.proxy.types import EndpointInfo, ServicePortInfo, ServicePortName

NONE = "NONE"  # no frontend matches: not a service address/port at all
NODE_LOCALHOST = "127.0.0.1"

__all__ = ["DROP", "NONE", "REJECT", "FakeDataplane", "SyncRecord"]


@dataclass(frozen=True)
class SyncRecord:
    """One call of :meth:`FakeDataplane.sync` (``failed`` when it raised)."""

    changed: frozenset[ServicePortName]
    full: bool
    failed: bool = False


class FakeSyncError(RuntimeError):
    """Raised by :meth:`FakeDataplane.sync` while ``fail_next`` is positive."""


class FakeDataplane:
    """Records the desired state; ``fail_next`` makes that many next syncs raise.

    ``state`` is a deep copy of the state of the last successful sync; ``syncs`` lists
    every sync call in order, failed ones included.
    """

    name = "fake"

    def __init__(self, fail_next: int = 0, **_options: Any) -> None:
        self.state = ProxyState()
        self.syncs: list[SyncRecord] = []
        self.fail_next = fail_next
        self.closed = False
        self._event = asyncio.Event()

    # --- the Dataplane protocol --------------------------------------------------------

    async def sync(self, state: ProxyState, changed: set[ServicePortName],
                   full: bool) -> None:
        """Record ``state``; raise :class:`FakeSyncError` (keeping the previous state)
        when ``fail_next`` is positive."""
        try:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.syncs.append(SyncRecord(frozenset(changed), full, failed=True))
                raise FakeSyncError("fake dataplane: injected sync failure")
            self.state = copy.deepcopy(state)
            self.syncs.append(SyncRecord(frozenset(changed), full))
        finally:
            self._notify()

    async def close(self) -> None:
        self.closed = True
        self.state = ProxyState()
        self._notify()

    def status(self) -> dict[str, Any]:
        return {"programmedServicePorts": len(self.state.services),
                "programmedEndpoints": sum(len(v) for v in self.state.endpoints.values())}

    # --- for tests ---------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[FakeDataplane], bool],
                         timeout: float = 10.0) -> None:
        """Return once ``predicate(self)`` holds, re-checking after every sync or close;
        ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                await self._event.wait()

    def _notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    # --- the model ---------------------------------------------------------------------

    def route(self, src: str, dst: str, port: int,
              protocol: str = "TCP") -> frozenset[str] | str:
        """The backends (``ip:port``) a new connection ``src`` → ``dst:port`` may reach,
        or ``"REJECT"`` / ``"DROP"`` / ``"NONE"`` (see module doc)."""
        for info in self.state.services.values():
            if info.protocol != protocol:
                continue
            frontend = _frontend(info, self.state.node_ips, dst, port)
            if frontend is None:
                continue
            if frontend == "lb" and not _source_allowed(info, self.state.node_ips, src):
                return DROP
            return self._forward(info, dst, external=frontend != "cluster")
        return NONE

    def _forward(self, info: ServicePortInfo, dst: str,
                 external: bool) -> frozenset[str] | str:
        eps: tuple[EndpointInfo, ...] = self.state.endpoints.get(info.name, ())
        sel = select_endpoints(info, of_family(eps, dst), self.state.node_name,
                               self.state.node_zone)
        chosen = sel.external if external else sel.internal
        v = verdict(chosen, sel.has_any)
        return frozenset(e.address for e in chosen) if v == FORWARD else v


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def _frontend(info: ServicePortInfo, node_ips: tuple[str, ...], dst: str,
              port: int) -> str | None:
    """Which frontend of ``info`` ``dst:port`` hits: "cluster", "node", "external", "lb"."""
    if port == info.port:
        if any(_same_ip(dst, ip) for ip in info.cluster_ips):
            return "cluster"
        if any(_same_ip(dst, ip) for ip in info.external_ips):
            return "external"
        if any(_same_ip(dst, ip) for ip in info.load_balancer_ips):
            return "lb"
    if info.node_port and port == info.node_port and \
            any(_same_ip(dst, ip) for ip in (*node_ips, NODE_LOCALHOST)):
        return "node"
    return None


def _source_allowed(info: ServicePortInfo, node_ips: tuple[str, ...], src: str) -> bool:
    if not info.source_ranges:
        return True
    try:
        addr = ipaddress.ip_address(src)
    except ValueError:
        return False
    nets = [ipaddress.ip_network(r, strict=False) for r in info.source_ranges]
    if any(addr in n for n in nets):
        return True
    from_node = any(ipaddress.ip_address(ip) in n for ip in node_ips for n in nets)
    return from_node and any(_same_ip(src, ip) for ip in info.load_balancer_ips)


dataplane.register("fake", FakeDataplane)
