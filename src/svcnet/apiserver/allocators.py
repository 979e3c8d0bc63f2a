"""ClusterIP and NodePort allocators.

State is in memory and rebuilt at start-up from the stored Services (the same repair the
real API server's allocator controllers perform), so allocations survive restarts without
a separate record. Callers own consistency: allocate before the store write, release when
the write fails or the Service goes away.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
from collections.abc import Iterable
from typing import Any

from svcnet.model import errors


class AllocationError(Exception):
    """A requested value is out of range or already allocated; ``message`` says which."""


class _FieldAllocationError(Exception):
    def __init__(self, field: str, value: Any, detail: str) -> None:
        super().__init__(detail)
        self.field, self.value, self.detail = field, value, detail


class IPAllocator:
    """Allocates addresses from a CIDR, never the network or broadcast address.

    Random choices come from the upper part of the range, as Kubernetes keeps the lower
    part (up to 1/16th of the range, at least 16 and at most 256 addresses) for users who
    pick their own address."""

    def __init__(self, cidr: str, rng: random.Random | None = None) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self._first = int(self.network.network_address) + 1
        self._last = int(self.network.broadcast_address) - (
            1 if self.network.version == 4 else 0)
        size = self._last - self._first + 1
        self._static = min(max(16, size // 16), 256, size // 2)
        self._used: set[int] = set()
        self._rng = rng or random.Random()

    def contains(self, ip: str) -> bool:
        try:
            addr = int(ipaddress.ip_address(ip))
        except ValueError:
            return False
        return self._first <= addr <= self._last

    def allocate(self, ip: str) -> None:
        """Reserve ``ip``; raises AllocationError if out of range or taken."""
        if not self.contains(ip):
            raise AllocationError(
                f"the provided IP ({ip}) is not in the valid range. The range of valid IPs "
                f"is {self.network}")
        n = int(ipaddress.ip_address(ip))
        if n in self._used:
            raise AllocationError(f"the provided IP ({ip}) is already allocated")
        self._used.add(n)

    def allocate_next(self) -> str:
        """Reserve and return a free address. Raises AllocationError when full."""
        lo = self._first + self._static
        for start, end in ((lo, self._last), (self._first, lo - 1)):
            span = end - start + 1
            if span <= 0:
                continue
            offset = self._rng.randrange(span)
            for i in range(span):
                n = start + (offset + i) % span
                if n not in self._used:
                    self._used.add(n)
                    return str(ipaddress.ip_address(n))
        raise AllocationError("range is full")

    def release(self, ip: str) -> None:
        with contextlib.suppress(ValueError):
            self._used.discard(int(ipaddress.ip_address(ip)))

    def is_allocated(self, ip: str) -> bool:
        try:
            return int(ipaddress.ip_address(ip)) in self._used
        except ValueError:
            return False


class PortAllocator:
    """Allocates ports from an inclusive range (NodePorts: 30000-32767)."""

    def __init__(self, first: int = 30000, last: int = 32767,
                 rng: random.Random | None = None) -> None:
        self.first, self.last = first, last
        self._used: set[int] = set()
        self._rng = rng or random.Random()

    @property
    def range_text(self) -> str:
        return f"{self.first}-{self.last}"

    def allocate(self, port: int) -> None:
        if not self.first <= port <= self.last:
            raise AllocationError(
                f"provided port is not in the valid range. The range of valid ports is "
                f"{self.range_text}")
        if port in self._used:
            raise AllocationError("provided port is already allocated")
        self._used.add(port)

    def allocate_next(self) -> int:
        span = self.last - self.first + 1
        offset = self._rng.randrange(span)
        for i in range(span):
            p = self.first + (offset + i) % span
            if p not in self._used:
                self._used.add(p)
                return p
        raise AllocationError("range is full")

    def release(self, port: int) -> None:
        self._used.discard(port)


def _cluster_ips(svc: dict[str, Any]) -> list[str]:
    spec = svc.get("spec") or {}
    ips = list(spec.get("clusterIPs") or [])
    if not ips and spec.get("clusterIP"):
        ips = [spec["clusterIP"]]
    return [ip for ip in ips if ip and ip != "None"]


def _node_ports(svc: dict[str, Any]) -> list[int]:
    spec = svc.get("spec") or {}
    ports = [p.get("nodePort") for p in spec.get("ports") or []]
    ports.append(spec.get("healthCheckNodePort"))
    return [p for p in ports if isinstance(p, int) and p > 0]


def _needs_node_ports(spec: dict[str, Any]) -> bool:
    t = spec.get("type", "ClusterIP")
    return t == "NodePort" or (t == "LoadBalancer"
                               and spec.get("allocateLoadBalancerNodePorts", True))


def _needs_cluster_ip(spec: dict[str, Any]) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None"


class ServiceAllocator:
    """ClusterIPs and NodePorts for Services, with the errors Kubernetes reports."""

    def __init__(self, service_cidr: str, node_port_range: tuple[int, int] = (30000, 32767),
                 rng: random.Random | None = None) -> None:
        self.ips = IPAllocator(service_cidr, rng)
        self.ports = PortAllocator(*node_port_range, rng=rng)

    def restore(self, services: Iterable[dict[str, Any]]) -> None:
        """Mark every value held by stored Services as allocated."""
        for svc in services:
            for ip in _cluster_ips(svc):
                if self.ips.contains(ip) and not self.ips.is_allocated(ip):
                    self.ips.allocate(ip)
            for p in _node_ports(svc):
                with contextlib.suppress(AllocationError):
                    self.ports.allocate(p)

    def assign(self, svc: dict[str, Any], old: dict[str, Any] | None) -> list[tuple[str, Any]]:
        """Fill in clusterIP(s) and nodePorts of ``svc`` (mutated in place), keeping the
        values ``old`` (the stored version, if any) already holds. Returns what was newly
        allocated, to pass to :meth:`undo` if the write does not happen. Raises APIError
        422 with field causes for a requested value that is invalid or taken."""
        spec = svc.setdefault("spec", {})
        fresh: list[tuple[str, Any]] = []
        try:
            self._assign_ip(spec, old, fresh)
            self._assign_node_ports(spec, old, fresh)
            self._assign_health_check_port(spec, old, fresh)
        except _FieldAllocationError as e:
            self.undo(fresh)
            name = (svc.get("metadata") or {}).get("name", "")
            raise errors.invalid_object(
                "Service", "", name, [errors.invalid(e.field, e.value, e.detail)]) from None
        except errors.APIError:
            self.undo(fresh)
            raise
        return fresh

    def _assign_ip(self, spec: dict[str, Any], old: dict[str, Any] | None,
                   fresh: list[tuple[str, Any]]) -> None:
        old_ips = _cluster_ips(old) if old else []
        if not _needs_cluster_ip(spec):
            if spec.get("type") == "ExternalName" and not spec.get("clusterIP"):
                spec.pop("clusterIP", None)
                spec.pop("clusterIPs", None)
            elif spec.get("clusterIP") == "None":
                spec["clusterIPs"] = ["None"]
            return
        want = spec.get("clusterIP") or ((spec.get("clusterIPs") or [None])[0])
        if not want and old_ips:
            want = old_ips[0]
        if want and want in old_ips:
            spec["clusterIP"], spec["clusterIPs"] = want, [want]
            return
        if want:
            try:
                self.ips.allocate(want)
            except AllocationError as e:
                raise _FieldAllocationError("spec.clusterIPs", want, str(e)) from None
        else:
            try:
                want = self.ips.allocate_next()
            except AllocationError:
                raise errors.internal("failed to allocate a serviceIP: range is full") from None
        fresh.append(("ip", want))
        spec["clusterIP"], spec["clusterIPs"] = want, [want]

    def _assign_node_ports(self, spec: dict[str, Any], old: dict[str, Any] | None,
                           fresh: list[tuple[str, Any]]) -> None:
        ports = spec.get("ports") or []
        if not _needs_node_ports(spec):
            return
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in ((old or {}).get("spec") or {}).get("ports") or []}
        held = set(_node_ports(old)) if old else set()
        for i, p in enumerate(ports):
            want = p.get("nodePort")
            if not want:
                want = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                if want and want in held:
                    p["nodePort"] = want
                    continue
                want = None
            if want and want in held:
                continue
            if want:
                try:
                    self.ports.allocate(int(want))
                except AllocationError as e:
                    raise _FieldAllocationError(f"spec.ports[{i}].nodePort", want, str(e)) from None
            else:
                try:
                    want = self.ports.allocate_next()
                except AllocationError:
                    raise errors.internal("failed to allocate a nodePort: range is full") from None
            fresh.append(("port", want))
            p["nodePort"] = want

    def _assign_health_check_port(self, spec: dict[str, Any], old: dict[str, Any] | None,
                                  fresh: list[tuple[str, Any]]) -> None:
        """``spec.healthCheckNodePort`` for a LoadBalancer with ``externalTrafficPolicy:
        Local`` (where the service proxy answers load balancers' health checks): the
        requested port, else the one already held, else the next free NodePort."""
        if spec.get("type") != "LoadBalancer" or spec.get("externalTrafficPolicy") != "Local":
            return
        held = set(_node_ports(old)) if old else set()
        want = spec.get("healthCheckNodePort")
        if not want:
            before = ((old or {}).get("spec") or {}).get("healthCheckNodePort")
            if before and before in held:
                spec["healthCheckNodePort"] = before
                return
        elif want in held:
            return
        if want:
            try:
                self.ports.allocate(int(want))
            except AllocationError as e:
                raise _FieldAllocationError("spec.healthCheckNodePort", want, str(e)) from None
        else:
            try:
                want = self.ports.allocate_next()
            except AllocationError:
                raise errors.internal(
                    "failed to allocate a healthCheckNodePort: range is full") from None
        fresh.append(("port", want))
        spec["healthCheckNodePort"] = want

    def undo(self, fresh: list[tuple[str, Any]]) -> None:
        """Release values returned by :meth:`assign`."""
        for what, value in fresh:
            if what == "ip":
                self.ips.release(value)
            else:
                self.ports.release(value)

    def release_unused(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """Release what ``old`` held and ``new`` (the stored result; None on delete) no
        longer holds."""
        if old is None:
            return
        keep_ips = set(_cluster_ips(new)) if new else set()
        keep_ports = set(_node_ports(new)) if new else set()
        for ip in _cluster_ips(old):
            if ip not in keep_ips:
                self.ips.release(ip)
        for p in _node_ports(old):
            if p not in keep_ports:
                self.ports.release(p)

