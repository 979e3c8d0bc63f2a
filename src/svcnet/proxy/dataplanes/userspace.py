"""The userspace dataplane: kube-proxy's legacy userspace mode, with svcnet's layout.

Every frontend of a service port is a socket this process listens on; each accepted TCP
connection (or each UDP client address) is relayed to an endpoint picked by an IPVS-style
scheduler (:mod:`svcnet.proxy.schedulers`, ``rr`` by default or the service's
``svcnet.io/ipvs-scheduler``) with ClientIP affinity (:mod:`svcnet.proxy.affinity`).
TCP is relayed by :mod:`svcnet.proxy.dataplanes._tcp`, UDP and the endpoint pools
live in :mod:`svcnet.proxy.dataplanes._relay`.

Where frontends live
    With ``netns`` set (the netns pod runtime), *cluster-side* frontends — ClusterIPs,
    NodePorts on the node IPs, non-loopback externalIPs and load-balancer IPs — are
    sockets created inside that namespace (the node's, which pods reach through its
    bridge); an address not yet present there is added to its ``lo`` as /32 or /128 and
    removed once no service uses it (only addresses this dataplane added are ever
    removed; IPv4 ones carry the label ``lo:svcproxy``, so a proxy restarted after a
    crash adopts what the previous one left). *Host-side* frontends — the NodePort on 127.0.0.1 and every loopback
    address (load-balancer IPs from a loopback pool, loopback externalIPs) — are sockets
    in this process's own namespace; 127/8 is local there, so nothing is added.
    Endpoints are dialled from inside ``netns``, except loopback ones (the API server
    behind the ``kubernetes`` Service), which only exist in this process's namespace.
    With ``netns=None`` (the process runtime) everything is in this process's namespace:
    only loopback frontends are served and only loopback endpoints dialled; the others are
    listed under ``skipped`` in :meth:`UserspaceDataplane.status`.

Which endpoints
    ClusterIP frontends use the selection's ``internal`` endpoints, the others its
    ``external`` ones (:func:`svcnet.proxy.endpoints.select_endpoints`), each narrowed to
    the frontend's address family as kube-proxy proxies each family separately: one pool
    (scheduler + endpoints) per (kind, family) in use. Weights come from
    ``ServicePortInfo.weights`` matched by pod name (``EndpointInfo.target``), then by IP.
    Affinity is one table per service port, shared by its pools.

Connections
    TCP: endpoints are dialled with kube-proxy's userspace timeouts (250 ms, 500 ms, 1 s,
    2 s), each failure moving on to the next endpoint the scheduler picks (affinity
    reset); after four failures the client gets an RST. Bytes a client sends before its
    endpoint is connected stay in its socket (TCP flow control holds the client back)
    and are relayed on connect. On load-balancer frontends a client outside ``loadBalancerSourceRanges``
    is reset at once (the kernel modes drop it). UDP: one connected socket per client
    address and endpoint, closed after
    ``udp_idle_timeout`` without a packet either way. ``status()`` and
    ``render_metrics()`` report connections, flows and bytes per endpoint.

No endpoints
    A frontend without endpoints is not listened on, so the kernel answers TCP with RST
    and UDP with ICMP port unreachable (kube-proxy's REJECT). For DROP (a ``Local``
    policy and no endpoint on this node) the same happens: a userspace proxy cannot make
    the kernel silently drop, unlike the kernel modes; clients see a refusal, not a
    timeout. ``status()`` still reports the verdict as DROP. The frontend's address stays
    added while the Service exists, so the refusal comes from this node.

Changes
    Endpoint changes affect new connections only; established ones drain on their old
    endpoint (listed as ``draining`` until they end). A removed frontend stops listening;
    its established TCP connections go on until they end (its address, if this dataplane
    added it, is removed by the first sync after that), its UDP flows are closed with it.
    The client's source address is not preserved: endpoints see the node as the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import resource
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from svcnet._util.netns import NetnsSockets
from svcnet.proxy import dataplane
from svcnet.proxy.affinity import AffinityTable
from svcnet.proxy.dataplane import ProxyState
from svcnet.proxy.dataplanes._relay import (
    DIAL_TIMEOUTS,
    Backend,
    Network,
    Pool,
    UdpFrontend,
    family_of,
)
from svcnet.proxy.dataplanes._tcp import TcpEngine, TcpFrontend
from svcnet.proxy.endpoints import select_endpoints, verdict
from svcnet.proxy.schedulers import Destination, make_scheduler
from svcnet.proxy.types import EndpointInfo, ServicePortInfo, ServicePortName

log = logging.getLogger("svcnet.proxy.userspace")

__all__ = ["UserspaceDataplane", "UserspaceSyncError"]

INTERNAL, EXTERNAL = "internal", "external"
HOST = ""  # the ``where`` of a frontend in this process's own namespace
NOFILE_TARGET = 64000  # kube-proxy's userspace mode raises RLIMIT_NOFILE to this

# (protocol, ip, port, where): where is the netns name or HOST.
Key = tuple[str, str, int, str]


# The label of the IPv4 addresses the dataplane puts on the node namespace's ``lo``.
ADDRESS_LABEL = "lo:svcproxy"


class UserspaceSyncError(RuntimeError):
    """Some frontends could not be opened; the rest of the sync was applied."""


def raise_nofile_limit(target: int = NOFILE_TARGET) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``target`` (capped by the hard limit); returns
    the soft limit in force afterwards. Never lowers it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
    return soft


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _networks(ranges: Iterable[str]) -> tuple[Network, ...]:
    out: list[Network] = []
    for r in ranges:
        try:
            out.append(ipaddress.ip_network(r.strip(), strict=False))
        except ValueError:
            log.warning("ignoring invalid loadBalancerSourceRange %r", r)
    return tuple(out)


def _describe(key: Key) -> str:
    proto, ip, port, where = key
    host = f"[{ip}]" if ":" in ip else ip
    place = f"in netns {where}" if where else "host"
    return f"{proto.lower()} {host}:{port} {place}"


PoolKey = tuple[str, int]  # (INTERNAL or EXTERNAL, address family)


def _family_name(family: int) -> str:
    return "IPv6" if family == socket.AF_INET6 else "IPv4"


@dataclass
class _Plan:
    """What one service port should look like after this sync."""

    info: ServicePortInfo
    # frontend -> (pool, source ranges)
    wants: dict[Key, tuple[PoolKey, tuple[Network, ...]]] = field(default_factory=dict)
    # pool -> (its endpoints, its verdict); one per (kind, family) some frontend uses
    groups: dict[PoolKey, tuple[tuple[EndpointInfo, ...], str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    ns_ips: frozenset[str] = frozenset()

    def serves(self, pool: PoolKey) -> bool:
        return bool(self.groups[pool][0])


class _Port:
    """The programmed state of one service port."""

    def __init__(self, name: ServicePortName, info: ServicePortInfo, scheduler: str) -> None:
        self.name = name
        self.info = info
        self.scheduler_name = scheduler
        self.pools: dict[PoolKey, Pool] = {}
        self.affinity: AffinityTable | None = None
        self.backends: dict[str, Backend] = {}
        self.draining: dict[str, Backend] = {}
        self.frontends: dict[Key, TcpFrontend | UdpFrontend] = {}
        self.skipped: dict[str, str] = {}
        self.ns_ips: frozenset[str] = frozenset()
        self.endpoints: tuple[EndpointInfo, ...] = ()  # as last applied
        self.error = ""
        self.conflicts = False

    @property
    def settled(self) -> bool:
        """Fully applied: a full sync with unchanged input has nothing to redo."""
        return not self.error and not self.conflicts


class UserspaceDataplane:
    """Userspace proxying of every service port (see the module doc).

    ``default_scheduler`` is used when a service names none (or an unknown one);
    ``udp_idle_timeout`` (seconds) closes a UDP client flow after that long without a
    packet either way; ``clock`` (monotonic seconds) drives affinity and UDP idleness;
    ``dial_timeouts`` is the per-attempt backend dial timeout list. Must be used from one
    event loop; :meth:`sync` calls must not overlap.
    """

    name = "userspace"

    def __init__(self, netns: str | None = None, default_scheduler: str = "rr",
                 udp_idle_timeout: float = 0.25,
                 clock: Callable[[], float] = time.monotonic, node_zone: str = "",
                 dial_timeouts: Sequence[float] = DIAL_TIMEOUTS, backlog: int = 4096) -> None:
        make_scheduler(default_scheduler)  # ValueError for an unknown name
        self.netns = netns
        self.default_scheduler = default_scheduler
        self.udp_idle_timeout = udp_idle_timeout
        self.clock = clock
        self.node_zone = node_zone
        self.dial_timeouts = tuple(dial_timeouts)
        self.backlog = backlog
        self._ports: dict[ServicePortName, _Port] = {}
        self._owners: dict[Key, ServicePortName] = {}
        # Stopped listening, connections remain: their netns address stays until they end.
        self._retired: dict[TcpFrontend, Key] = {}
        self._addr_refs: dict[str, int] = {}  # netns IP -> service ports using it
        self._added: set[str] = set()  # netns IPs this dataplane added to lo
        self._ns: NetnsSockets | None = None
        self._node: tuple[str, tuple[str, ...], str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: TcpEngine | None = None
        self.nofile = raise_nofile_limit()

    # --- sync ------------------------------------------------------------------------------

    async def sync(self, state: ProxyState, changed: set[ServicePortName],
                   full: bool) -> None:
        """Apply ``state`` (see :class:`svcnet.proxy.dataplane.Dataplane`).

        Only the service ports in ``changed`` are looked at unless ``full`` (or the node
        name/IPs changed). A frontend that cannot be opened leaves its service port
        without any frontend opened in this sync; the other service ports are applied and
        :class:`UserspaceSyncError` is raised at the end, so a later full sync retries.
        """
        self._loop = asyncio.get_running_loop()
        if self._engine is None:
            self._engine = TcpEngine(self._loop)
        if self.netns is not None and self._ns is None:
            await self._ip("link", "set", "lo", "up")
            self._ns = NetnsSockets(self.netns)
            # Addresses an earlier proxy left behind (killed before its close()) are ours:
            # this sync keeps the ones still wanted and removes the rest.
            self._added |= await self._labelled()
        node = (state.node_name, tuple(state.node_ips), state.node_zone)
        node_changed = node != self._node
        if node_changed:
            full = True
            self._node = node
        names = set(state.services) | set(self._ports) if full else set(changed)
        plans: dict[ServicePortName, _Plan | None] = {}
        for name in names:
            info = state.services.get(name)
            if info is None:
                plans[name] = None
                continue
            eps = state.endpoints.get(name, ())
            port = self._ports.get(name)
            if (full and not node_changed and port is not None and port.settled
                    and (port.info is info or port.info == info)
                    and (port.endpoints is eps or port.endpoints == eps)):
                continue  # applied by an earlier sync, nothing to retry
            plans[name] = self._plan(info, eps, state)

        # 1. Stop listening where a frontend is no longer wanted or has no endpoints.
        for name, plan in plans.items():
            port = self._ports.get(name)
            if port is None:
                continue
            for key in list(port.frontends):
                want = plan.wants.get(key) if plan is not None else None
                if want is None or not plan.serves(want[0]):  # type: ignore[union-attr]
                    self._close_frontend(port, key)

        # 2. Addresses the frontends need inside the namespace.
        for name, plan in plans.items():
            port = self._ports.get(name)
            old = port.ns_ips if port is not None else frozenset()
            new = plan.ns_ips if plan is not None else frozenset()
            for ip in new - old:
                self._addr_refs[ip] = self._addr_refs.get(ip, 0) + 1
            for ip in old - new:
                self._addr_refs[ip] -= 1
                if not self._addr_refs[ip]:
                    del self._addr_refs[ip]
        failed_ips = await self._add_addresses(full)

        # 3. Service ports: pools, then new frontends.
        errors: list[str] = []
        for name in sorted(plans):
            plan = plans[name]
            if plan is None:
                self._remove_port(name)
                continue
            port = self._update_port(name, plan)
            port.endpoints = state.endpoints.get(name, ())
            err = await self._open_frontends(port, plan, failed_ips)
            if err:
                errors.append(f"{name}: {err}")

        # 4. Addresses nobody uses any more, now that their listeners are closed.
        self._retired = {fe: k for fe, k in self._retired.items() if fe.clients}
        draining = {k[1] for k in self._retired.values() if k[3] != HOST}
        await self._remove_addresses([ip for ip in self._added
                                      if ip not in self._addr_refs and ip not in draining])
        if full:
            for port in self._ports.values():
                if port.affinity is not None:
                    port.affinity.sweep()
        if errors:
            raise UserspaceSyncError("proxy userspace: " + "; ".join(errors))

    def _plan(self, info: ServicePortInfo, endpoints: Sequence[EndpointInfo],
              state: ProxyState) -> _Plan:
        sel = select_endpoints(info, endpoints, state.node_name,
                               state.node_zone or self.node_zone)
        plan = _Plan(info)
        proto = info.protocol
        if proto not in ("TCP", "UDP"):
            plan.skipped["frontends"] = f"protocol {proto} is not proxied in userspace"
            return plan
        ns_ips: set[str] = set()

        def want(ip: str, port: int, kind: str, ranges: tuple[Network, ...] = ()) -> None:
            if not ip or not port:
                return
            if _is_loopback(ip):
                key: Key = (proto, ip, port, HOST)
            elif self.netns is None:
                plan.skipped[_describe((proto, ip, port, HOST))] = \
                    "not a loopback address (no netns)"
                return
            else:
                key = (proto, ip, port, self.netns)
                ns_ips.add(ip)
            if key not in plan.wants:
                plan.wants[key] = ((kind, family_of(ip)), ranges)

        for ip in info.cluster_ips:
            want(ip, info.port, INTERNAL)
        if info.node_port:
            for ip in ("127.0.0.1", *state.node_ips):
                want(ip, info.node_port, EXTERNAL)
        for ip in info.external_ips:
            want(ip, info.port, EXTERNAL)
        ranges = _networks(info.source_ranges)
        for ip in info.load_balancer_ips:
            want(ip, info.port, EXTERNAL, ranges)
        plan.ns_ips = frozenset(ns_ips)

        # kube-proxy proxies each address family separately: a frontend of one family
        # uses that family's endpoints only.
        for pool_key, _ in plan.wants.values():
            if pool_key in plan.groups:
                continue
            kind, family = pool_key
            picked = sel.internal if kind == INTERNAL else sel.external
            mine = tuple(e for e in picked if family_of(e.ip) == family)
            if self.netns is None:
                for e in mine:
                    if not _is_loopback(e.ip):
                        plan.skipped[f"endpoint {e.address}"] = \
                            "not a loopback address (no netns)"
                mine = tuple(e for e in mine if _is_loopback(e.ip))
            usable = any(e.ready or (e.serving and e.terminating) for e in endpoints
                         if family_of(e.ip) == family)
            plan.groups[pool_key] = (mine, verdict(mine, usable))
        return plan

    def _scheduler_name(self, info: ServicePortInfo) -> str:
        name = info.scheduler or self.default_scheduler
        try:
            make_scheduler(name)
        except ValueError:
            log.warning("%s: unknown scheduler %r, using %s", info.name, name,
                        self.default_scheduler)
            name = self.default_scheduler
        return name

    def _update_port(self, name: ServicePortName, plan: _Plan) -> _Port:
        """Create or update the port's pools, affinity and bookkeeping (no sockets)."""
        info = plan.info
        sched = self._scheduler_name(info)
        port = self._ports.get(name)
        if port is None:
            port = self._ports[name] = _Port(name, info, sched)
        elif sched != port.scheduler_name:
            port.scheduler_name = sched
            port.pools = {}
        port.info = info
        port.ns_ips = plan.ns_ips
        port.skipped = dict(plan.skipped)
        port.error = ""
        port.conflicts = False

        weights = dict(info.weights)

        def weight(e: EndpointInfo) -> int:
            if e.target and e.target in weights:
                return weights[e.target]
            return weights.get(e.ip, 1)

        old_sig = {k: [(a, b.dest.weight) for a, b in pool.backends.items()]
                   for k, pool in port.pools.items()}
        backends: dict[str, Backend] = {}
        for eps, _ in plan.groups.values():
            for e in eps:
                addr = e.address
                if addr in backends:
                    continue
                b = port.backends.get(addr) or port.draining.pop(addr, None)
                if b is None:
                    b = Backend(Destination(e.ip, e.port, weight(e)), e.target)
                else:
                    b.dest.weight = weight(e)
                    b.target = e.target
                backends[addr] = b
        for addr, b in port.backends.items():
            if addr not in backends and b.busy:
                port.draining[addr] = b
        port.draining = {a: b for a, b in port.draining.items() if b.busy}
        port.backends = backends

        if info.affinity:
            if port.affinity is None or port.affinity.timeout != info.affinity_timeout:
                port.affinity = AffinityTable(info.affinity_timeout, self.clock)
            port.affinity.forget_missing(set(backends))
            port.affinity.sweep()
        else:
            port.affinity = None

        pools: dict[PoolKey, Pool] = {}
        for k, (eps, v) in plan.groups.items():
            pool = port.pools.get(k) or Pool(make_scheduler(sched))
            members = {e.address: backends[e.address] for e in eps}
            pool.set_backends(members, reschedule=[(a, b.dest.weight)
                                                   for a, b in members.items()]
                              != old_sig.get(k))
            pool.verdict = v
            pool.set_affinity(port.affinity)
            pools[k] = pool
        port.pools = pools
        for key, fe in port.frontends.items():
            pool_key, ranges = plan.wants[key]
            fe.pool = pools[pool_key]
            fe.ranges = ranges
        return port

    async def _open_frontends(self, port: _Port, plan: _Plan,
                              failed_ips: dict[str, str]) -> str:
        """Open the port's missing frontends; on failure close the ones opened here and
        return the error (``""`` on success)."""
        opened: list[Key] = []
        for key, (pool_key, ranges) in plan.wants.items():
            if key in port.frontends or not plan.serves(pool_key):
                continue
            owner = self._owners.get(key)
            if owner is not None and owner != port.name:
                port.skipped[_describe(key)] = f"already served for {owner}"
                port.conflicts = True
                continue
            try:
                if key[1] in failed_ips and key[3] != HOST:
                    raise OSError(f"cannot add address: {failed_ips[key[1]]}")
                fe = await self._open(key, port.pools[pool_key], ranges)
            except PermissionError:
                # A privileged port without the privilege (the process runtime run by a
                # user): retrying cannot help; the service's other frontends still work.
                port.skipped[_describe(key)] = (
                    f"port {key[2]} needs root or CAP_NET_BIND_SERVICE "
                    "(or a lower net.ipv4.ip_unprivileged_port_start)")
                continue
            except OSError as e:
                for k in opened:
                    self._close_frontend(port, k)
                port.error = f"{_describe(key)}: {e}"
                return port.error
            port.frontends[key] = fe
            self._owners[key] = port.name
            opened.append(key)
        return ""

    async def _open(self, key: Key, pool: Pool,
                    ranges: tuple[Network, ...]) -> TcpFrontend | UdpFrontend:
        proto, ip, port, where = key
        assert self._loop is not None
        new_socket = self._socket_factory(where)
        dial = self._socket_factory(self.netns or HOST)
        sock = new_socket(family_of(ip),
                          socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM)
        try:
            if proto == "TCP":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((ip, port))
                sock.listen(self.backlog)
            else:
                sock.bind((ip, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        fe: TcpFrontend | UdpFrontend
        if proto == "TCP":
            assert self._engine is not None
            fe = TcpFrontend(self._engine, ip, port, pool,
                             None if self.netns is None else dial, self.dial_timeouts)
            fe.ranges = ranges
            fe.listen(sock)
        else:
            fe = UdpFrontend(self._loop, ip, port, pool, dial, self.udp_idle_timeout,
                             self.clock)
            fe.ranges = ranges
            await fe.start(sock)
        return fe

    def _socket_factory(self, where: str) -> Callable[[int, int], socket.socket]:
        if where == HOST:
            return socket.socket
        assert self._ns is not None
        return self._ns.socket

    def _close_frontend(self, port: _Port, key: Key) -> None:
        fe = port.frontends.pop(key)
        if self._owners.get(key) == port.name:
            del self._owners[key]
        if isinstance(fe, TcpFrontend):
            fe.close_listener()
            if fe.clients:
                self._retired[fe] = key
        else:
            fe.close()

    def _remove_port(self, name: ServicePortName) -> None:
        port = self._ports.pop(name, None)
        if port is None:
            return
        for key in list(port.frontends):
            self._close_frontend(port, key)

    # --- addresses -------------------------------------------------------------------------

    async def _ip(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        assert self.netns is not None
        proc = await asyncio.create_subprocess_exec(
            "ip", "-n", self.netns, *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        return proc.returncode or 0, out.decode(), err.decode().strip()

    async def _present(self) -> set[str]:
        """Every address configured on any interface of the namespace."""
        rc, out, err = await self._ip("-j", "addr", "show")
        if rc != 0:
            raise OSError(f"ip -n {self.netns} addr show: {err}")
        present: set[str] = set()
        for link in json.loads(out or "[]"):
            for a in link.get("addr_info", ()):
                if "local" in a:
                    present.add(str(ipaddress.ip_address(a["local"])))
        return present

    async def _labelled(self) -> set[str]:
        """IPv4 addresses on ``lo`` carrying :data:`ADDRESS_LABEL` (IPv6 has no labels)."""
        rc, out, _ = await self._ip("-j", "-4", "addr", "show", "dev", "lo")
        if rc != 0:
            return set()
        return {str(a["local"]) for link in json.loads(out or "[]")
                for a in link.get("addr_info", ()) if a.get("label") == ADDRESS_LABEL}

    async def _add_addresses(self, full: bool) -> dict[str, str]:
        """Add to ``lo`` the referenced addresses the namespace lacks; on ``full`` also
        re-add ours that vanished. Returns the addresses that could not be added, with
        the error."""
        if self.netns is None:
            return {}
        need = [ip for ip in self._addr_refs if ip not in self._added or full]
        if not need:
            return {}
        try:
            present = await self._present()
        except (OSError, ValueError) as e:
            return dict.fromkeys(need, str(e))
        missing = [ip for ip in need if str(ipaddress.ip_address(ip)) not in present]
        if not missing:
            return {}
        lines = [f"address add {ip}/{128 if ':' in ip else 32} dev lo"
                 + (" nodad" if ":" in ip else f" label {ADDRESS_LABEL}") for ip in missing]
        _, _, err = await self._ip("-force", "-batch", "-", stdin="\n".join(lines) + "\n")
        present = await self._present()
        failed: dict[str, str] = {}
        for ip in missing:
            if str(ipaddress.ip_address(ip)) in present:
                self._added.add(ip)
            else:
                failed[ip] = err or "not added"
        return failed

    async def _remove_addresses(self, ips: Sequence[str]) -> None:
        if not ips or self.netns is None:
            return
        lines = [f"address del {ip}/{128 if ':' in ip else 32} dev lo" for ip in ips]
        rc, _, err = await self._ip("-force", "-batch", "-", stdin="\n".join(lines) + "\n")
        if rc != 0:
            log.warning("removing addresses from %s: %s", self.netns, err)
        self._added.difference_update(ips)

    # --- close -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every listener, connection and UDP flow; remove the addresses this
        dataplane added. The dataplane can be synced again afterwards (full)."""
        for port in list(self._ports.values()):
            for key in list(port.frontends):
                fe = port.frontends[key]
                self._close_frontend(port, key)
                if isinstance(fe, TcpFrontend):
                    fe.abort_all()
        for fe in self._retired:
            fe.abort_all()
        self._retired.clear()
        self._ports.clear()
        self._owners.clear()
        self._addr_refs.clear()
        self._node = None
        await self._remove_addresses(sorted(self._added))
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._ns is not None:
            self._ns.close()
            self._ns = None

    # --- reporting -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``{"mode", "netns", "addresses_added", "service_ports": {name: {...}}}``; each
        service port lists its frontends, skipped items, scheduler, affinity, the verdict
        (FORWARD, REJECT or DROP) of each pool (``"verdicts"``: ``"internal IPv4"``,
        ``"external IPv6"``, ...; ``"internal"``/``"external"``: per kind, FORWARD when
        any family forwards) and its endpoints with their counters and pools."""
        ports: dict[str, Any] = {}
        for name in sorted(self._ports):
            port = self._ports[name]
            eps = []
            for state, group in (("serving", port.backends), ("draining", port.draining)):
                for addr, b in group.items():
                    eps.append({"address": addr, "state": state, "weight": b.dest.weight,
                                "active": b.dest.active, "inactive": b.dest.inactive,
                                "total": b.total, "bytes_in": b.bytes_in,
                                "bytes_out": b.bytes_out,
                                "pools": sorted(f"{k} {_family_name(f)}"
                                                for (k, f), p in port.pools.items()
                                                if addr in p.backends)})
            ports[str(name)] = {
                "protocol": name.protocol,
                "frontends": sorted(_describe(k) for k in port.frontends),
                "skipped": dict(port.skipped),
                "scheduler": port.scheduler_name,
                "affinity_timeout": port.info.affinity_timeout,
                **_kind_verdicts(port.pools),
                "verdicts": {f"{k} {_family_name(f)}": p.verdict
                             for (k, f), p in sorted(port.pools.items())},
                "endpoints": eps,
                **({"error": port.error} if port.error else {}),
            }
        return {"mode": self.name, "netns": self.netns,
                "addresses_added": sorted(self._added), "service_ports": ports}

    def render_metrics(self) -> str:
        """Prometheus text: per service port and endpoint, connections (UDP: flows) made,
        TCP connections established now, and bytes relayed (``direction="in"``: client
        to endpoint, ``"out"``: endpoint to client)."""
        total = ["# HELP svcnet_proxy_backend_connections_total Connections (UDP: flows) "
                 "relayed to an endpoint.",
                 "# TYPE svcnet_proxy_backend_connections_total counter"]
        active = ["# HELP svcnet_proxy_backend_active_connections TCP connections "
                  "established to an endpoint now.",
                  "# TYPE svcnet_proxy_backend_active_connections gauge"]
        flows = ["# HELP svcnet_proxy_backend_udp_flows UDP client flows open to an "
                 "endpoint now.",
                 "# TYPE svcnet_proxy_backend_udp_flows gauge"]
        nbytes = ["# HELP svcnet_proxy_backend_bytes_total Bytes relayed between clients "
                  "and an endpoint.",
                  "# TYPE svcnet_proxy_backend_bytes_total counter"]
        for name in sorted(self._ports):
            port = self._ports[name]
            for addr, b in (*port.backends.items(), *port.draining.items()):
                labels = f'service_port="{_esc(str(name))}",endpoint="{_esc(addr)}"'
                total.append(f"svcnet_proxy_backend_connections_total{{{labels}}} {b.total}")
                if name.protocol == "UDP":
                    flows.append(f"svcnet_proxy_backend_udp_flows{{{labels}}} "
                                 f"{b.dest.inactive}")
                else:
                    active.append(f"svcnet_proxy_backend_active_connections{{{labels}}} "
                                  f"{b.dest.active}")
                nbytes.append(f'svcnet_proxy_backend_bytes_total{{{labels},direction="in"}} '
                              f"{b.bytes_in}")
                nbytes.append(f'svcnet_proxy_backend_bytes_total{{{labels},direction="out"}} '
                              f"{b.bytes_out}")
        return "\n".join((*total, *active, *flows, *nbytes)) + "\n"


def _kind_verdicts(pools: dict[PoolKey, Pool]) -> dict[str, str]:
    """``{"internal": ..., "external": ...}`` for the kinds that have pools: FORWARD if
    any family forwards, else DROP if any drops, else REJECT."""
    out: dict[str, str] = {}
    for kind in (INTERNAL, EXTERNAL):
        got = {p.verdict for (k, _), p in pools.items() if k == kind}
        if got:
            out[kind] = next(v for v in ("FORWARD", "DROP", "REJECT") if v in got)
    return out


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


dataplane.register("userspace", UserspaceDataplane)
