"""Endpoint selection (kube-proxy's CategorizeEndpoints) as a table of named cases."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from svcnet.proxy.endpoints import (
    DROP,
    FORWARD,
    REJECT,
    of_family,
    select_endpoints,
    verdict,
)
from svcnet.proxy.types import EndpointInfo, ServicePortInfo, ServicePortName

NODE = "node-a"
ZONE = "zone-a"
SPN = ServicePortName("default", "web", "", "TCP")


def info(internal_local: bool = False, external_local: bool = False) -> ServicePortInfo:
    return ServicePortInfo(SPN, "NodePort", ("10.96.0.10",), 80, node_port=30080,
                           internal_local=internal_local, external_local=external_local)


def ep(ip: str, node: str = NODE, *, ready: bool = True, serving: bool = True,
       terminating: bool = False, node_hints: tuple[str, ...] = (),
       zone_hints: tuple[str, ...] = ()) -> EndpointInfo:
    """An endpoint ``ip:80`` on ``node``."""
    return EndpointInfo(ip, 80, ready=ready, serving=serving, terminating=terminating,
                        node_name=node, node_hints=node_hints, zone_hints=zone_hints)


def not_ready(spec: str, node: str = NODE) -> EndpointInfo:
    return ep(spec, node, ready=False, serving=False)


def terminating(spec: str, node: str = NODE, serving: bool = True) -> EndpointInfo:
    return ep(spec, node, ready=False, serving=serving, terminating=True)


@dataclass(frozen=True)
class Case:
    name: str
    endpoints: tuple[EndpointInfo, ...]
    internal: tuple[str, ...]  # expected addresses, in order
    external: tuple[str, ...]
    has_any: bool
    internal_local: bool = False
    external_local: bool = False
    node_zone: str = ""


CASES = (
    Case("no endpoints", (), (), (), False),
    Case("ready only", (ep("10.0.0.2"), ep("10.0.0.1")), ("10.0.0.1:80", "10.0.0.2:80"),
         ("10.0.0.1:80", "10.0.0.2:80"), True),
    Case("sorted as strings, not numbers",
         (ep("10.244.2.7"), ep("10.244.10.3")), ("10.244.10.3:80", "10.244.2.7:80"),
         ("10.244.10.3:80", "10.244.2.7:80"), True),
    Case("not ready excluded", (ep("10.0.0.1"), not_ready("10.0.0.2")), ("10.0.0.1:80",),
         ("10.0.0.1:80",), True),
    Case("only not ready", (not_ready("10.0.0.1"),), (), (), False),
    Case("serving-terminating fallback when none ready",
         (terminating("10.0.0.1"), terminating("10.0.0.2", serving=False),
          not_ready("10.0.0.3")),
         ("10.0.0.1:80",), ("10.0.0.1:80",), True),
    Case("no fallback while one is ready",
         (ep("10.0.0.9", "node-b"), terminating("10.0.0.1")), ("10.0.0.9:80",),
         ("10.0.0.9:80",), True),
    Case("terminating not serving is unusable", (terminating("10.0.0.1", serving=False),),
         (), (), False),
    Case("internal local keeps local",
         (ep("10.0.0.1"), ep("10.0.1.1", "node-b")), ("10.0.0.1:80",),
         ("10.0.0.1:80", "10.0.1.1:80"), True, internal_local=True),
    Case("internal local with only remote: drop, external cluster still works",
         (ep("10.0.1.1", "node-b"),), (), ("10.0.1.1:80",), True, internal_local=True),
    Case("external local keeps local",
         (ep("10.0.0.1"), ep("10.0.1.1", "node-b")), ("10.0.0.1:80", "10.0.1.1:80"),
         ("10.0.0.1:80",), True, external_local=True),
    Case("both local, only remote", (ep("10.0.1.1", "node-b"),), (), (), True,
         internal_local=True, external_local=True),
    Case("local fallback is separate from the cluster-wide one",
         (terminating("10.0.0.1"), ep("10.0.1.1", "node-b")), ("10.0.0.1:80",),
         ("10.0.1.1:80",), True, internal_local=True),
    Case("local ready wins over local terminating",
         (terminating("10.0.0.1"), ep("10.0.0.2")), ("10.0.0.2:80",), ("10.0.0.2:80",),
         True, internal_local=True, external_local=True),
    Case("remote serving-terminating counts for has_any",
         (terminating("10.0.1.1", "node-b"),), (), ("10.0.1.1:80",), True,
         internal_local=True),
    Case("node hints: this node's only",
         (ep("10.0.0.1", node_hints=(NODE,)), ep("10.0.1.1", "node-b", node_hints=("node-b",))),
         ("10.0.0.1:80",), ("10.0.0.1:80",), True),
    Case("node hints ignored when one ready endpoint lacks them",
         (ep("10.0.0.1", node_hints=(NODE,)), ep("10.0.1.1", "node-b")),
         ("10.0.0.1:80", "10.0.1.1:80"), ("10.0.0.1:80", "10.0.1.1:80"), True),
    Case("node hints ignored when none is for this node",
         (ep("10.0.1.1", "node-b", node_hints=("node-b",)),), ("10.0.1.1:80",),
         ("10.0.1.1:80",), True),
    Case("node hints of not-ready endpoints do not matter",
         (ep("10.0.0.1", node_hints=(NODE,)), ep("10.0.1.1", "node-b", node_hints=("node-b",)),
          not_ready("10.0.2.1", "node-c")),
         ("10.0.0.1:80",), ("10.0.0.1:80",), True),
    Case("zone hints: this zone's only",
         (ep("10.0.0.1", zone_hints=(ZONE,)), ep("10.0.1.1", "node-b", zone_hints=("zone-b",))),
         ("10.0.0.1:80",), ("10.0.0.1:80",), True, node_zone=ZONE),
    Case("zone hints need the node's zone",
         (ep("10.0.0.1", zone_hints=(ZONE,)), ep("10.0.1.1", "node-b", zone_hints=("zone-b",))),
         ("10.0.0.1:80", "10.0.1.1:80"), ("10.0.0.1:80", "10.0.1.1:80"), True),
    Case("zone hints ignored when one ready endpoint lacks them",
         (ep("10.0.0.1", zone_hints=(ZONE,)), ep("10.0.1.1", "node-b")),
         ("10.0.0.1:80", "10.0.1.1:80"), ("10.0.0.1:80", "10.0.1.1:80"), True,
         node_zone=ZONE),
    Case("node hints win over zone hints",
         (ep("10.0.0.1", node_hints=(NODE,), zone_hints=("zone-b",)),
          ep("10.0.1.1", "node-b", node_hints=("node-b",), zone_hints=(ZONE,))),
         ("10.0.0.1:80",), ("10.0.0.1:80",), True, node_zone=ZONE),
    Case("zone hints used when node hints miss this node",
         (ep("10.0.0.1", node_hints=("node-c",), zone_hints=(ZONE,)),
          ep("10.0.1.1", "node-b", node_hints=("node-b",), zone_hints=("zone-b",))),
         ("10.0.0.1:80",), ("10.0.0.1:80",), True, node_zone=ZONE),
    Case("local set ignores topology",
         (ep("10.0.0.1", zone_hints=("zone-b",)), ep("10.0.1.1", "node-b",
                                                      zone_hints=(ZONE,))),
         ("10.0.0.1:80",), ("10.0.1.1:80",), True, internal_local=True, node_zone=ZONE),
    Case("IPv6 addresses are bracketed",
         (ep("fd00::2"), ep("fd00::1")), ("[fd00::1]:80", "[fd00::2]:80"),
         ("[fd00::1]:80", "[fd00::2]:80"), True),
)


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_select_endpoints(c: Case) -> None:
    sel = select_endpoints(info(c.internal_local, c.external_local), c.endpoints, NODE,
                           node_zone=c.node_zone)
    assert tuple(e.address for e in sel.internal) == c.internal
    assert tuple(e.address for e in sel.external) == c.external
    assert sel.has_any == c.has_any


@pytest.mark.parametrize(("selected", "has_any", "want"), [
    ((), False, REJECT),
    ((), True, DROP),
    ((EndpointInfo("10.0.0.1", 80),), True, FORWARD),
])
def test_verdict(selected: tuple[EndpointInfo, ...], has_any: bool, want: str) -> None:
    assert verdict(selected, has_any) == want


def test_selection_verdicts() -> None:
    sel = select_endpoints(info(internal_local=True), (ep("10.0.1.1", "node-b"),), NODE)
    assert (sel.internal_verdict, sel.external_verdict) == (DROP, FORWARD)
    empty = select_endpoints(info(), (), NODE)
    assert (empty.internal_verdict, empty.external_verdict) == (REJECT, REJECT)


def test_of_family() -> None:
    eps = (EndpointInfo("10.0.0.1", 80), EndpointInfo("fd00::1", 80))
    assert of_family(eps, "10.96.0.1") == (eps[0],)
    assert of_family(eps, "fd00:10:96::1") == (eps[1],)
