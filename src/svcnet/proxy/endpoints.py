"""Which endpoints of a service port take new connections on this node (kube-proxy's
``CategorizeEndpoints``).

Contract of :func:`select_endpoints`:

* **Usable** means ``ready``. When no endpoint is ready, endpoints that are ``serving``
  *and* ``terminating`` are used instead. The fallback is decided separately for the
  cluster-wide set and for the node-local set.
* **Topology** narrows the cluster-wide ready set: when every ready endpoint carries node
  hints and one names this node, only those are used; otherwise, when every ready endpoint
  carries zone hints and one names ``node_zone``, only those; otherwise all of them.
* ``internal_local`` (``internalTrafficPolicy: Local``) makes ClusterIP traffic use the
  node-local set; ``external_local`` does the same for NodePort / load-balancer /
  externalIP traffic. The node-local set ignores topology hints.
* Every returned tuple is sorted by the ``ip:port`` string (:attr:`EndpointInfo.address`).

An empty selection means the connection is refused (:data:`REJECT`) when the service port
has no usable endpoint anywhere, and silently dropped (:data:`DROP`) when it has some but
none on this node (a ``Local`` policy); see :func:`verdict`.

Endpoints of both address families are treated alike; a dataplane that proxies one family
per frontend narrows the list first with :func:`of_family`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from svcnet.proxy.types import EndpointInfo, ServicePortInfo

FORWARD = "FORWARD"
REJECT = "REJECT"
DROP = "DROP"


@dataclass(frozen=True, slots=True)
class Selection:
    """The endpoints one node uses for a service port.

    ``internal`` serves ClusterIP traffic (honours ``internalTrafficPolicy``), ``external``
    serves NodePort / LoadBalancer / externalIP traffic (``externalTrafficPolicy``).
    ``has_any`` is true when the service port has at least one usable endpoint
    cluster-wide (ready, or serving and terminating).
    """

    internal: tuple[EndpointInfo, ...]
    external: tuple[EndpointInfo, ...]
    has_any: bool

    @property
    def internal_verdict(self) -> str:
        """:data:`FORWARD`, :data:`REJECT` or :data:`DROP` for ClusterIP traffic."""
        return verdict(self.internal, self.has_any)

    @property
    def external_verdict(self) -> str:
        """:data:`FORWARD`, :data:`REJECT` or :data:`DROP` for external traffic."""
        return verdict(self.external, self.has_any)


def verdict(selected: Sequence[EndpointInfo], has_any: bool) -> str:
    """:data:`FORWARD` when ``selected`` is non-empty; otherwise :data:`DROP` if the
    service port has usable endpoints elsewhere (``has_any``), else :data:`REJECT`."""
    if selected:
        return FORWARD
    return DROP if has_any else REJECT


def select_endpoints(info: ServicePortInfo, endpoints: Sequence[EndpointInfo],
                     node_name: str, node_zone: str = "") -> Selection:
    """Categorize ``endpoints`` of ``info`` for the node ``node_name`` (see module doc)."""
    uses_local = info.internal_local or info.external_local
    uses_cluster = not (info.internal_local and info.external_local)
    cluster = _cluster_set(endpoints, node_name, node_zone) if uses_cluster else ()
    local = _local_set(endpoints, node_name) if uses_local else ()
    has_any = any(_usable_anywhere(e) for e in endpoints)
    return Selection(internal=local if info.internal_local else cluster,
                     external=local if info.external_local else cluster,
                     has_any=has_any)


def of_family(endpoints: Iterable[EndpointInfo], ip: str) -> tuple[EndpointInfo, ...]:
    """The endpoints whose IP has the same address family as ``ip``."""
    v6 = ":" in ip
    return tuple(e for e in endpoints if (":" in e.ip) == v6)


# --- the rules ---------------------------------------------------------------------------

def _usable_anywhere(e: EndpointInfo) -> bool:
    return e.ready or (e.serving and e.terminating)


def _serving_terminating(e: EndpointInfo) -> bool:
    return e.serving and e.terminating


def _sorted(eps: Iterable[EndpointInfo]) -> tuple[EndpointInfo, ...]:
    return tuple(sorted(eps, key=lambda e: e.address))


def _cluster_set(endpoints: Sequence[EndpointInfo], node_name: str,
                 node_zone: str) -> tuple[EndpointInfo, ...]:
    """Ready endpoints narrowed by topology; else serving-and-terminating ones."""
    keep = _topology_filter(endpoints, node_name, node_zone)
    ready = [e for e in endpoints if e.ready and keep(e)]
    if ready:
        return _sorted(ready)
    return _sorted(e for e in endpoints if _serving_terminating(e))


def _local_set(endpoints: Sequence[EndpointInfo], node_name: str) -> tuple[EndpointInfo, ...]:
    """Ready endpoints on this node; else this node's serving-and-terminating ones."""
    local = [e for e in endpoints if e.node_name == node_name]
    ready = [e for e in local if e.ready]
    if ready:
        return _sorted(ready)
    return _sorted(e for e in local if _serving_terminating(e))


def _topology_filter(endpoints: Sequence[EndpointInfo], node_name: str,
                     node_zone: str) -> Callable[[EndpointInfo], bool]:
    """The predicate topology hints impose on ready endpoints (all-pass when unused).

    Node hints win when every ready endpoint has some and one names this node; zone hints
    are used when every ready endpoint has some and one names ``node_zone``.
    """
    ready = [e for e in endpoints if e.ready]
    if not ready:
        return lambda e: True
    if all(e.node_hints for e in ready) and any(node_name in e.node_hints for e in ready):
        return lambda e: node_name in e.node_hints
    if node_zone and all(e.zone_hints for e in ready) and \
            any(node_zone in e.zone_hints for e in ready):
        return lambda e: node_zone in e.zone_hints
    return lambda e: True
