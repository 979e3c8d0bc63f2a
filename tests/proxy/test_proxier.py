"""The proxier: sync bookkeeping with an injected clock, and the whole loop against a real
API server with the fake dataplane."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from svcnet.client.api import APIClient
from svcnet.model import kinds
from svcnet.proxy.dataplanes.fake import FakeDataplane
from svcnet.proxy.proxier import Proxier
from svcnet.proxy.types import ServicePortName
from svcnet.testing.cluster import APIServerProcess
from tests.proxy.flows import NODE, NODE_IPS, POD_CLIENT, endpoint, endpoint_slice, slice_port

SERVICES = kinds.require("", "services")
SLICES = kinds.require("discovery.k8s.io", "endpointslices")
HTTP = ServicePortName("default", "web", "http", "TCP")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def web_service(cluster_ip: str = "10.96.0.10") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": cluster_ip,
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def web_slice(ready: bool = True) -> dict[str, Any]:
    s = endpoint_slice("web", [endpoint("10.244.0.5", ready=ready, serving=ready)],
                       [slice_port(8080, "http")], name="web-1")
    del s["metadata"]["resourceVersion"]
    return s


# --- sync bookkeeping (no API server) ----------------------------------------------------

def offline_proxier(dp: FakeDataplane, clock: Clock) -> Proxier:
    return Proxier(cast(APIClient, None), dp, NODE, NODE_IPS, min_sync_period=0,
                   sync_period=30, clock=clock)


async def test_full_on_first_sync_after_failure_and_after_sync_period() -> None:
    dp, clock = FakeDataplane(), Clock()
    p = offline_proxier(dp, clock)
    p.builder.services.add(web_service())
    await p.sync()
    assert dp.syncs[-1].full and dp.syncs[-1].changed == {HTTP} and p.synced.is_set()

    p.builder.slices.add(web_slice())
    clock.now += 1
    await p.sync()
    assert not dp.syncs[-1].full and dp.syncs[-1].changed == {HTTP}

    dp.fail_next = 1
    p.builder.slices.update(web_slice(), web_slice(ready=False))
    with pytest.raises(RuntimeError):
        await p.sync()
    await p.sync()  # the retry: full, and still reports what the failed one carried
    assert [(r.full, r.failed, r.changed) for r in dp.syncs[-2:]] == [
        (False, True, {HTTP}), (True, False, {HTTP})]
    assert dp.route(POD_CLIENT, "10.96.0.10", 80) == "REJECT"

    clock.now += 10
    await p.sync()
    assert not dp.syncs[-1].full and dp.syncs[-1].changed == set()
    clock.now += 30
    await p.sync()
    assert dp.syncs[-1].full

    st = p.status()
    assert (st["mode"], st["syncs"], st["failures"], st["services"], st["servicePorts"]) == \
        ("fake", 5, 1, 1, 1)
    assert st["programmedServicePorts"] == 1 and st["lastSync"]


async def test_render_metrics() -> None:
    dp, clock = FakeDataplane(), Clock()
    p = offline_proxier(dp, clock)
    await p.sync()
    text = p.render_metrics()
    assert 'kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="+Inf"} 1' in text
    assert "kubeproxy_sync_proxy_rules_duration_seconds_count 1" in text
    assert "# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge" in text
    assert "kubeproxy_sync_proxy_rules_failures_total 0" in text
    last = next(ln for ln in text.splitlines()
                if ln.startswith("kubeproxy_sync_proxy_rules_last_timestamp_seconds "))
    assert float(last.split()[1]) > 1.6e9


# --- against a real API server -----------------------------------------------------------

@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    with APIServerProcess(Path(tmp_path_factory.mktemp("svcnet"))) as srv:
        yield srv


@pytest.mark.e2e
async def test_proxier_follows_the_api(apiserver: APIServerProcess) -> None:
    client = APIClient.from_kubeconfig(apiserver.kubeconfig)
    dp = FakeDataplane()
    proxier = Proxier(client, dp, NODE, NODE_IPS, min_sync_period=0.02, sync_period=30)
    task = asyncio.create_task(proxier.run())
    try:
        svc = await client.create(SERVICES, "default", web_service(cluster_ip=""))
        cip = svc["spec"]["clusterIP"]
        await client.create(SLICES, "default", web_slice())
        await dp.wait_until(lambda d: d.route(POD_CLIENT, cip, 80) == {"10.244.0.5:8080"})
        assert proxier.synced.is_set()
        assert dp.syncs[0].full and not any(r.failed for r in dp.syncs)

        current = await client.get(SLICES, "default", "web-1")
        down = copy.deepcopy(current)
        down["endpoints"][0]["conditions"] = {"ready": False, "serving": False}
        before = len(dp.syncs)
        current = await client.update(SLICES, down)
        await dp.wait_until(lambda d: d.route(POD_CLIENT, cip, 80) == "REJECT")
        assert any(not r.full and r.changed == {HTTP} for r in dp.syncs[before:])

        dp.fail_next = 1
        up = copy.deepcopy(current)
        up["endpoints"][0]["conditions"] = {"ready": True}
        await client.update(SLICES, up)
        await dp.wait_until(lambda d: d.route(POD_CLIENT, cip, 80) == {"10.244.0.5:8080"})
        failed = next(i for i, r in enumerate(dp.syncs) if r.failed)
        assert dp.syncs[failed + 1].full and HTTP in dp.syncs[failed + 1].changed
        assert proxier.status()["failures"] == 1

        await client.delete(SERVICES, "default", "web")
        await dp.wait_until(lambda d: d.route(POD_CLIENT, cip, 80) == "NONE")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()
    assert dp.closed


NODES = kinds.require("", "nodes")


@pytest.mark.e2e
async def test_zone_hints_follow_this_nodes_zone_label(apiserver: APIServerProcess) -> None:
    client = APIClient.from_kubeconfig(apiserver.kubeconfig)
    dp = FakeDataplane()
    proxier = Proxier(client, dp, NODE, NODE_IPS, min_sync_period=0.02, sync_period=30)
    await client.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": NODE, "labels": {"topology.kubernetes.io/zone": "z1"}}})
    task = asyncio.create_task(proxier.run())
    try:
        svc = web_service(cluster_ip="")
        svc["metadata"]["name"] = "zoned"
        cip = (await client.create(SERVICES, "default", svc))["spec"]["clusterIP"]
        s = endpoint_slice("zoned", [
            endpoint("10.244.0.5", zone="z1", zone_hints=["z1"]),
            endpoint("10.244.1.5", node="other", zone="z2", zone_hints=["z2"])],
            [slice_port(8080, "http")], name="zoned-1")
        del s["metadata"]["resourceVersion"]
        await client.create(SLICES, "default", s)
        await dp.wait_until(lambda d: d.route(POD_CLIENT, cip, 80) == {"10.244.0.5:8080"})
        node = await client.get(NODES, None, NODE)
        node["metadata"]["labels"]["topology.kubernetes.io/zone"] = "z2"
        await client.update(NODES, node)
        await dp.wait_until(lambda d: d.route(POD_CLIENT, cip, 80) == {"10.244.1.5:8080"})
        node = await client.get(NODES, None, NODE)
        del node["metadata"]["labels"]["topology.kubernetes.io/zone"]
        await client.update(NODES, node)
        await dp.wait_until(lambda d: d.route(POD_CLIENT, cip, 80) == {
            "10.244.0.5:8080", "10.244.1.5:8080"})
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.delete(NODES, None, NODE)
        await client.close()
