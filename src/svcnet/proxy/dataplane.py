"""The one protocol every proxy dataplane implements, and the registry by name.

A dataplane turns the desired state into traffic handling (sockets for userspace, rules
for the kernel modes, a record for ``fake``). Contract of :meth:`Dataplane.sync`:

* ``state`` is the complete desired state; ``changed`` names the service ports whose info
  or endpoints changed since the last *successful* sync; ``full`` asks the dataplane to
  reconcile everything (first sync, periodic resync, after a failure).
* ``sync`` either applies the whole change or raises, leaving whatever it had programmed
  before intact or fully replaced — never half a service. The proxier retries a failed
  sync as a full one.
* ``close`` removes everything the dataplane made (sockets, rules, addresses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from svcnet.proxy.types import EndpointInfo, ServicePortInfo, ServicePortName


@dataclass(kw_only=True)
class ProxyState:
    """The desired state handed to a dataplane.

    ``services`` maps each service port to its info; ``endpoints`` maps it to *all* its
    endpoints sorted by ``ip:port`` string (selection by readiness, terminating fallback and
    traffic policy is :func:`svcnet.proxy.endpoints.select_endpoints`'s job, which
    dataplanes call with ``node_name``). Endpoints are listed for every service port some
    EndpointSlice names, whether or not that service port exists. ``node_zone`` is this
    node's ``topology.kubernetes.io/zone`` label (``""``: none), for zone hints.
    """

    node_name: str = ""
    node_ips: tuple[str, ...] = ()
    node_zone: str = ""
    services: dict[ServicePortName, ServicePortInfo] = field(default_factory=dict)
    endpoints: dict[ServicePortName, tuple[EndpointInfo, ...]] = field(default_factory=dict)


class Dataplane(Protocol):
    name: str

    async def sync(self, state: ProxyState, changed: set[ServicePortName],
                   full: bool) -> None: ...

    async def close(self) -> None: ...

    def status(self) -> dict[str, Any]:
        """A JSON-able description of what is programmed (``svcnet proxy status``)."""
        ...


DataplaneFactory = Callable[..., Dataplane]
_REGISTRY: dict[str, DataplaneFactory] = {}


def register(name: str, factory: DataplaneFactory) -> None:
    _REGISTRY[name] = factory


def lookup(name: str) -> DataplaneFactory:
    """The factory registered as ``name``; ``KeyError`` names the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown proxy mode {name!r} (known: "
                       f"{', '.join(sorted(_REGISTRY))})") from None
