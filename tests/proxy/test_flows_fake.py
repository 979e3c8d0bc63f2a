"""The packet-flow table against the ``fake`` dataplane (the model of forwarding)."""

from __future__ import annotations

import pytest

from svcnet.proxy.changes import ProxyStateBuilder
from svcnet.proxy.dataplanes.fake import FakeDataplane
from tests.proxy.flows import CASE_NAMES, CASES, NODE, NODE_IPS, FlowCase, case


async def synced_fake(c: FlowCase) -> FakeDataplane:
    """A fake dataplane after one full sync of ``c``'s cluster."""
    builder = ProxyStateBuilder(NODE, NODE_IPS)
    for svc in c.services:
        builder.services.add(svc)
    for s in c.slices:
        builder.slices.add(s)
    changed = builder.apply()
    dp = FakeDataplane()
    await dp.sync(builder.snapshot(), changed, full=True)
    return dp


@pytest.mark.parametrize("name", CASE_NAMES)
async def test_flow(name: str) -> None:
    c = case(name)
    dp = await synced_fake(c)
    assert dp.route(c.src, c.dst, c.port, c.protocol) == c.expect


def test_table_covers_every_verdict() -> None:
    expects = {c.expect if isinstance(c.expect, str) else "FORWARD" for c in CASES}
    assert expects == {"FORWARD", "REJECT", "DROP", "NONE"}
    assert len(CASES) >= 25
