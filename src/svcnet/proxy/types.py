"""What the service proxy knows about Services and endpoints (converted at the boundary).

kube-proxy's model: the proxied unit is a *service port* — (namespace, service, port name,
protocol) — with the frontends traffic arrives on (ClusterIPs, NodePort, externalIPs,
load-balancer IPs) and the endpoints behind it. These values are frozen and compared by
value: a change tracker reports a service port as changed exactly when its
:class:`ServicePortInfo` or its endpoint tuple differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds (DefaultClientIPServiceAffinitySeconds)
DEFAULT_SCHEDULER = "rr"
SCHEDULER_ANNOTATION = "svcnet.io/ipvs-scheduler"
# "<pod name or endpoint IP>=<weight>,...": endpoints not named keep weight 1.
WEIGHTS_ANNOTATION = "svcnet.io/ipvs-weights"


@dataclass(frozen=True, slots=True, order=True)
class ServicePortName:
    """``<ns>/<svc>:<port>`` (or ``<ns>/<svc>`` for an unnamed port) plus the protocol."""

    namespace: str
    name: str
    port: str
    protocol: str  # "TCP", "UDP" or "SCTP"

    def __str__(self) -> str:
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port}" if self.port else base


@dataclass(frozen=True, slots=True)
class ServicePortInfo:
    """One port of one Service, with every frontend address it is reached on.

    ``load_balancer_ips`` come from ``status.loadBalancer.ingress[].ip``;
    ``source_ranges`` from ``spec.loadBalancerSourceRanges`` (CIDR strings, empty = any).
    ``affinity_timeout`` is 0 when ``sessionAffinity`` is not ``ClientIP``.
    ``scheduler`` is the service's ``svcnet.io/ipvs-scheduler`` annotation or ``""`` (use
    the proxy's default); ``weights`` maps pod names or endpoint IPs to IPVS weights.
    """

    name: ServicePortName
    type: str  # ClusterIP, NodePort, LoadBalancer
    cluster_ips: tuple[str, ...]
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    source_ranges: tuple[str, ...] = ()
    affinity_timeout: int = 0
    internal_local: bool = False  # internalTrafficPolicy: Local
    external_local: bool = False  # externalTrafficPolicy: Local
    scheduler: str = ""
    weights: tuple[tuple[str, int], ...] = ()
    # spec.healthCheckNodePort of a LoadBalancer with externalTrafficPolicy Local, else 0
    health_check_node_port: int = 0

    @property
    def protocol(self) -> str:
        return self.name.protocol

    @property
    def affinity(self) -> bool:
        return self.affinity_timeout > 0


@dataclass(frozen=True, slots=True, order=True)
class EndpointInfo:
    """One endpoint address of a service port, from an EndpointSlice.

    ``ready``/``serving``/``terminating`` follow the slice conditions with the API's nil
    rules (ready and serving default to true, terminating to false). ``target`` is the pod
    name from ``targetRef`` (``""`` if none); ``zone_hints``/``node_hints`` from ``hints``.
    """

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""
    zone: str = ""
    target: str = ""
    zone_hints: tuple[str, ...] = field(default=())
    node_hints: tuple[str, ...] = field(default=())

    @property
    def address(self) -> str:
        """``ip:port``, IPv6 in brackets (the sort key kube-proxy uses)."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"
