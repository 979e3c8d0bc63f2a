"""The packet-flow table (``tests/proxy/flows.py``) against the userspace dataplane.

One node namespace for the module (deleted by name at the end, also on failure) holds the
node IP, the client pod addresses and every endpoint address on NODE. Per case: a fresh
dataplane is synced with the case's cluster, backends answering with their own
``ip:port`` run for every endpoint on NODE (not only the expected ones, so a wrong
forward is seen), and one connection is made from the case's ``src``. Clients whose
source and destination are both loopback run on the host (host-side frontends); all
others run inside the namespace (a "host" source there is the node's own loopback).

REJECT, DROP and NONE all pass when the connection reaches no backend within 1 s: this
dataplane cannot drop silently, so DROP is a refusal or reset here (see the userspace
module doc).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from svcnet.proxy.changes import build_state
from svcnet.proxy.dataplanes.userspace import UserspaceDataplane
from tests.proxy.flows import (
    CASE_NAMES,
    CASES,
    NODE,
    NODE_IPS,
    POD_CLIENT,
    POD_CLIENT_V6,
    FlowCase,
    case,
)
from tests.proxy.userspace_support import (
    Backends,
    ask,
    ask_udp,
    delete_netns,
    make_netns,
    needs_netns,
    ns_addresses,
    run,
)

pytestmark = needs_netns
TIMEOUT = 1.0


def _node_endpoints(c: FlowCase) -> set[tuple[str, int, str]]:
    """(ip, port, protocol) of every endpoint on NODE in the case's slices."""
    out: set[tuple[str, int, str]] = set()
    for s in c.slices:
        for e in s.get("endpoints") or ():
            if e.get("nodeName") != NODE:
                continue
            for ip in e.get("addresses") or ():
                for p in s.get("ports") or ():
                    out.add((ip, int(p["port"]), p.get("protocol", "TCP")))
    return out


def _node_addresses() -> set[str]:
    addrs = {POD_CLIENT, POD_CLIENT_V6, *NODE_IPS}
    for c in CASES:
        addrs |= {ip for ip, _, _ in _node_endpoints(c)}
    return addrs


@pytest.fixture(scope="module")
def flow_ns() -> Iterator[str]:
    name = make_netns(sorted(_node_addresses()))
    try:
        yield name
    finally:
        delete_netns(name)


def _loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


async def _probe(ns: str, c: FlowCase) -> str:
    """The answering backend's ``ip:port``, or ``!<what happened>``."""
    where: str | None = None if _loopback(c.src) and _loopback(c.dst) else ns
    try:
        if c.protocol == "UDP":
            return await ask_udp(where, c.src, c.dst, c.port, timeout=TIMEOUT)
        return await ask(where, c.src, c.dst, c.port, timeout=TIMEOUT)
    except TimeoutError:
        return "!timeout"
    except ConnectionRefusedError:
        return "!refused"
    except ConnectionResetError:
        return "!reset"
    except OSError as e:
        return f"!{e.strerror or e}"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_flow(flow_ns: str, name: str) -> None:
    c = case(name)
    if _loopback(c.dst) and not _loopback(c.src):
        pytest.skip("a pod client of a host-side loopback frontend cannot be reproduced")
    before = ns_addresses(flow_ns)

    async def main() -> str:
        dp = UserspaceDataplane(netns=flow_ns)
        bk = Backends(flow_ns)
        try:
            for ip, port, proto in sorted(_node_endpoints(c)):
                await bk.start(ip, port, proto)
            state = build_state(c.services, c.slices, NODE, NODE_IPS)
            await dp.sync(state, set(state.services), full=True)
            return await _probe(flow_ns, c)
        finally:
            await dp.close()
            bk.close()

    answer = run(main())
    if isinstance(c.expect, frozenset):
        assert answer in c.expect, f"{c.name}: {answer} not in {sorted(c.expect)}"
    else:
        assert answer.startswith("!"), f"{c.name}: expected {c.expect}, reached {answer}"
    assert ns_addresses(flow_ns) == before, "close() must remove what the dataplane added"

