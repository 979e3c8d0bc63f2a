"""The userspace dataplane against the real kernel.

Each test makes a node network namespace ``svcnet-t-<hex>`` (deleted by name in the
fixture's teardown, also on failure), puts endpoint and client addresses on its ``lo``,
runs small backends inside it and connects clients from inside it; host-side frontends
(127.0.0.1 NodePorts, loopback load-balancer IPs) are reached from the host over
loopback only. Cluster addresses never leave the test's namespace.

The scenarios run under uvloop (as the proxy does in production); the relay tests run
under the default asyncio loop too. Each runs with both relay cores (C and Python). Helpers live in
``userspace_support.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import time

import pytest

from svcnet._util.netns import socket_in_netns
from svcnet.proxy import dataplane
from svcnet.proxy.dataplane import ProxyState
from svcnet.proxy.dataplanes._tcp import TcpFrontend
from svcnet.proxy.dataplanes.userspace import UserspaceDataplane
from svcnet.proxy.types import EndpointInfo, ServicePortInfo
from tests.proxy.userspace_support import (
    CLIENT,
    CLIENT2,
    EP_IPS,
    NODE,
    Backends,
    ask,
    ask_udp,
    black_hole,
    endpoint_status,
    eps,
    free_port,
    info,
    ip_batch,
    needs_netns,
    ns_addresses,
    open_tcp,
    run,
    spn,
    state,
    synced,
    wait_for,
    with_dataplane,
)

# Every scenario runs with the C relay core and with the pure-Python one.
pytestmark = [needs_netns, pytest.mark.usefixtures("relay_core")]


def test_registered() -> None:
    assert dataplane.lookup("userspace") is UserspaceDataplane


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_round_robin_spreads_over_three_endpoints(netns: str, loop: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        for ip in EP_IPS[:3]:
            await bk.start(ip, 8080)
        await synced(dp, state((info(spn()), eps(*EP_IPS[:3]))))
        got = [await ask(netns, CLIENT, "10.96.0.10", 80) for _ in range(6)]
        assert sorted(got) == sorted([f"{ip}:8080" for ip in EP_IPS[:3]] * 2)
        assert got[:3] == got[3:]  # a cycle
        st = endpoint_status(dp, spn())
        assert {a: e["total"] for a, e in st.items()} == {f"{ip}:8080": 2 for ip in EP_IPS[:3]}
    with_dataplane(netns, body, loop)


def test_affinity_pins_a_client(netns: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        for ip in EP_IPS[:3]:
            await bk.start(ip, 8080)
        await synced(dp, state((info(spn(), affinity_timeout=60), eps(*EP_IPS[:3]))))
        first = [await ask(netns, CLIENT, "10.96.0.10", 80) for _ in range(5)]
        assert len(set(first)) == 1
        second = [await ask(netns, CLIENT2, "10.96.0.10", 80) for _ in range(5)]
        assert len(set(second)) == 1
        assert first[0] != second[0]  # the second client got the next one in rr order
    with_dataplane(netns, body)


def test_least_connection_prefers_fewer_active(netns: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        a, b = EP_IPS[0], EP_IPS[1]
        await bk.start(a, 8080)
        await bk.start(b, 8080)
        await synced(dp, state((info(spn(), scheduler="lc"), eps(a, b))))
        r1, w1 = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        assert (await r1.readline()).decode().strip() == f"{a}:8080"
        r2, w2 = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        assert (await r2.readline()).decode().strip() == f"{b}:8080"
        w2.close()
        await wait_for(lambda: endpoint_status(dp, spn())[f"{b}:8080"]["active"] == 0)
        assert endpoint_status(dp, spn())[f"{a}:8080"]["active"] == 1
        # rr would now pick a; lc picks b, which has no connection left
        assert await ask(netns, CLIENT, "10.96.0.10", 80) == f"{b}:8080"
        w1.close()
    with_dataplane(netns, body)


def test_dial_failure_moves_to_the_next_endpoint(netns: str) -> None:
    # 10.244.0.2 never answers (routed to a veth whose peer has no address, so ARP
    # fails: a 250 ms dial timeout),
    # 10.244.0.3 refuses (on lo, nothing listening), 10.244.0.4 answers.
    black_hole(netns, "10.244.0.2")

    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start("10.244.0.4", 8080)
        await synced(dp, state((info(spn()), eps("10.244.0.2", "10.244.0.3",
                                                 "10.244.0.4"))))
        t0 = time.monotonic()
        assert await ask(netns, CLIENT, "10.96.0.10", 80) == "10.244.0.4:8080"
        elapsed = time.monotonic() - t0
        assert 0.2 <= elapsed < 1.0, elapsed
        st = endpoint_status(dp, spn())
        assert st["10.244.0.4:8080"]["total"] == 1
        assert st["10.244.0.2:8080"]["total"] == 0
        assert all(e["inactive"] == 0 for e in st.values())
    with_dataplane(netns, body)


def test_data_sent_before_the_backend_connects_arrives(netns: str) -> None:
    # The first endpoint swallows SYNs, so the dial takes 250 ms; meanwhile the client
    # sends 1 MiB (more than the sockets buffer, so it must wait) and its EOF.
    black_hole(netns, "10.244.0.2")

    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start("10.244.0.4", 8080, greet=False)
        await synced(dp, state((info(spn()), eps("10.244.0.2", "10.244.0.4"))))
        reader, writer = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        payload = os.urandom(1 << 20)
        writer.write(payload)
        writer.write_eof()
        got = await asyncio.wait_for(reader.read(), 3)
        assert got == payload
        writer.close()
    with_dataplane(netns, body)


def test_every_dial_failing_resets_the_client(netns: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await synced(dp, state((info(spn()), eps("10.244.0.3"))))  # nothing listens
        reader, writer = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 2)
        writer.close()
    with_dataplane(netns, body, dial_timeouts=(0.05, 0.05, 0.05, 0.05))


def test_no_endpoints_refuses_at_once(netns: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start(EP_IPS[0], 8080)
        udp = ServicePortInfo(spn("dns", "dns", "UDP"), "ClusterIP", ("10.96.0.53",), 53)
        await synced(dp, state((info(spn()), ()), (udp, ())))
        assert "10.96.0.10" in ns_addresses(netns)  # served address, refused by the kernel
        t0 = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            await ask(netns, CLIENT, "10.96.0.10", 80)
        assert time.monotonic() - t0 < 0.5
        with pytest.raises(ConnectionRefusedError):  # ICMP port unreachable
            await ask_udp(netns, CLIENT, "10.96.0.53", 53)
        st = dp.status()["service_ports"][str(spn())]
        assert st["frontends"] == [] and st["verdicts"] == {"internal IPv4": "REJECT"}
        # endpoints appear: now it is served
        await dp.sync(state((info(spn()), eps(EP_IPS[0])), (udp, ())), {spn()}, False)
        assert await ask(netns, CLIENT, "10.96.0.10", 80) == f"{EP_IPS[0]}:8080"
    with_dataplane(netns, body)


def test_removed_endpoint_drains_while_new_connections_move(netns: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        a, b = EP_IPS[0], EP_IPS[1]
        await bk.start(a, 8080)
        await bk.start(b, 8080)
        await synced(dp, state((info(spn()), eps(a))))
        reader, writer = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        assert (await reader.readline()).decode().strip() == f"{a}:8080"
        await dp.sync(state((info(spn()), eps(b))), {spn()}, False)
        writer.write(b"still there\n")
        assert await asyncio.wait_for(reader.readline(), 2) == b"still there\n"
        st = endpoint_status(dp, spn())
        assert st[f"{a}:8080"]["state"] == "draining" and st[f"{a}:8080"]["active"] == 1
        for _ in range(3):
            assert await ask(netns, CLIENT, "10.96.0.10", 80) == f"{b}:8080"
        writer.close()
        await wait_for(lambda: f"{a}:8080" not in endpoint_status(dp, spn())
                       or endpoint_status(dp, spn())[f"{a}:8080"]["active"] == 0)
        # the service goes away: the listener closes, an open connection keeps working
        r2, w2 = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        assert (await r2.readline()).decode().strip() == f"{b}:8080"
        await dp.sync(state(), {spn()}, False)
        w2.write(b"after removal\n")
        assert await asyncio.wait_for(r2.readline(), 2) == b"after removal\n"
        with pytest.raises(OSError):
            await ask(netns, CLIENT, "10.96.0.10", 80)
        assert "10.96.0.10" in ns_addresses(netns)  # kept for the open connection
        w2.close()
        await wait_for(lambda: not any(fe.clients for fe in dp._retired))
        await dp.sync(state(), set(), False)
        assert "10.96.0.10" not in ns_addresses(netns)
    with_dataplane(netns, body)


def test_udp_round_trip_and_idle_expiry(netns: str) -> None:
    name = spn("dns", "dns", "UDP")

    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start(EP_IPS[0], 5353, "UDP")
        await bk.start(EP_IPS[1], 5353, "UDP")
        i = ServicePortInfo(name, "ClusterIP", ("10.96.0.53",), 53)
        await synced(dp, state((i, eps(EP_IPS[0], EP_IPS[1], port=5353))))
        got = {await ask_udp(netns, CLIENT, "10.96.0.53", 53) for _ in range(4)}
        assert got == {f"{EP_IPS[0]}:5353", f"{EP_IPS[1]}:5353"}  # one flow per client port
        st = endpoint_status(dp, name)
        assert sum(e["inactive"] for e in st.values()) >= 1  # flows still open
        t0 = time.monotonic()
        await wait_for(lambda: sum(e["inactive"] for e in endpoint_status(dp, name).values())
                       == 0, timeout=2)
        assert time.monotonic() - t0 < 0.6
        st = endpoint_status(dp, name)
        assert sum(e["total"] for e in st.values()) == 4
        assert sum(e["bytes_in"] for e in st.values()) == 16
    with_dataplane(netns, body, udp_idle_timeout=0.25)


def test_udp_flow_keeps_its_backend(netns: str) -> None:
    name = spn("dns", "dns", "UDP")

    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start(EP_IPS[0], 5353, "UDP")
        await bk.start(EP_IPS[1], 5353, "UDP")
        i = ServicePortInfo(name, "ClusterIP", ("10.96.0.53",), 53)
        await synced(dp, state((i, eps(EP_IPS[0], EP_IPS[1], port=5353))))
        sock = socket_in_netns(netns, socket.AF_INET, socket.SOCK_DGRAM)
        loop = asyncio.get_running_loop()
        with sock:
            sock.bind((CLIENT, 0))
            sock.setblocking(False)
            sock.connect(("10.96.0.53", 53))
            seen = set()
            for n in range(5):
                await loop.sock_sendall(sock, b"q%d" % n)
                reply = await asyncio.wait_for(loop.sock_recv(sock, 100), 2)
                seen.add(reply.split()[0])
            assert len(seen) == 1
    with_dataplane(netns, body, udp_idle_timeout=1.0)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_half_close_still_receives_the_reply(netns: str, loop: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        backend = await bk.start(EP_IPS[0], 8080, greet=False)
        await synced(dp, state((info(spn()), eps(EP_IPS[0]))))
        reader, writer = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        writer.write(b"hello, then EOF")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 2) == b"hello, then EOF"  # until EOF
        writer.close()
        await wait_for(lambda: not backend.conns)
        await wait_for(lambda: endpoint_status(dp, spn())[f"{EP_IPS[0]}:8080"]["active"] == 0)
    with_dataplane(netns, body, loop)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_large_transfer_keeps_flow_control(netns: str, loop: str) -> None:
    size = 32 << 20

    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start(EP_IPS[0], 8080, greet=False)
        await synced(dp, state((info(spn()), eps(EP_IPS[0]))))
        reader, writer = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        payload = os.urandom(1 << 20)
        peak = 0

        def buffered() -> int:
            total = 0
            for port in dp._ports.values():
                for fe in port.frontends.values():
                    for c in getattr(fe, "clients", ()):
                        total += c.buffered()
            return total

        async def send() -> None:
            for _ in range(size // len(payload)):
                writer.write(payload)
                await writer.drain()
            writer.write_eof()

        async def receive() -> bytes:
            nonlocal peak
            await asyncio.sleep(0.3)  # a slow reader first: everything upstream must pause
            peak = max(peak, buffered())
            h = hashlib.sha256()
            n = 0
            while chunk := await reader.read(1 << 18):
                h.update(chunk)
                n += len(chunk)
                peak = max(peak, buffered())
            assert n == size
            return h.digest()

        expected = hashlib.sha256(payload * (size // len(payload))).digest()
        _, digest = await asyncio.wait_for(asyncio.gather(send(), receive()), 30)
        assert digest == expected
        assert peak < 4 << 20, f"the proxy buffered {peak} bytes"
        st = endpoint_status(dp, spn())[f"{EP_IPS[0]}:8080"]
        assert st["bytes_in"] == size and st["bytes_out"] == size
        writer.close()
    with_dataplane(netns, body, loop)


def test_hairpin_endpoint_reaches_itself(netns: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start(EP_IPS[0], 8080)
        await synced(dp, state((info(spn()), eps(EP_IPS[0]))))
        assert await ask(netns, EP_IPS[0], "10.96.0.10", 80) == f"{EP_IPS[0]}:8080"
    with_dataplane(netns, body)


def test_host_frontends_and_source_ranges(netns: str) -> None:
    node_port, lb_port = free_port(), 18080
    lb_ip = f"127.241.{secrets.randbelow(200) + 1}.{secrets.randbelow(200) + 1}"

    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start(EP_IPS[0], 8080)
        np = info(spn("np", ""), "10.96.0.30", type="NodePort", node_port=node_port)
        lb = info(spn("lb", ""), "10.96.0.40", lb_port, type="LoadBalancer",
                  load_balancer_ips=(lb_ip,), source_ranges=("192.0.2.0/24",))
        await synced(dp, state((np, eps(EP_IPS[0])), (lb, eps(EP_IPS[0]))))
        fronts = dp.status()["service_ports"]["default/np"]["frontends"]
        assert f"tcp 127.0.0.1:{node_port} host" in fronts
        assert f"tcp 10.244.0.1:{node_port} in netns {netns}" in fronts
        assert await ask(None, "127.0.0.1", "127.0.0.1", node_port) == f"{EP_IPS[0]}:8080"
        assert await ask(netns, CLIENT, "10.244.0.1", node_port) == f"{EP_IPS[0]}:8080"
        # the LB frontend resets clients outside its source ranges; ClusterIP is open
        with pytest.raises((ConnectionResetError, ConnectionRefusedError)):
            await ask(None, "127.0.0.5", lb_ip, lb_port)
        assert await ask(netns, CLIENT, "10.96.0.40", lb_port) == f"{EP_IPS[0]}:8080"
        lb2 = info(spn("lb", ""), "10.96.0.40", lb_port, type="LoadBalancer",
                   load_balancer_ips=(lb_ip,), source_ranges=("127.0.0.0/24",))
        await dp.sync(state((np, eps(EP_IPS[0])), (lb2, eps(EP_IPS[0]))), {lb2.name}, False)
        assert await ask(None, "127.0.0.5", lb_ip, lb_port) == f"{EP_IPS[0]}:8080"
    with_dataplane(netns, body)


def test_close_removes_only_added_addresses(netns: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start(EP_IPS[0], 8080)
        ext = info(spn("ext", ""), "10.96.0.50", external_ips=("192.0.2.50",))
        np = info(spn("np", ""), "10.96.0.30", type="NodePort", node_port=free_port())
        await synced(dp, state((info(spn()), eps(EP_IPS[0])), (ext, eps(EP_IPS[0])),
                               (np, eps(EP_IPS[0]))))
        have = ns_addresses(netns)
        assert {"10.96.0.10", "10.96.0.50", "192.0.2.50", "10.96.0.30"} <= have
        assert dp.status()["addresses_added"] == sorted(
            ["10.96.0.10", "10.96.0.30", "10.96.0.50", "192.0.2.50"])
        # a service going away takes its addresses with it, the others stay
        await dp.sync(state((info(spn()), eps(EP_IPS[0])), (np, eps(EP_IPS[0]))),
                      {ext.name}, False)
        have = ns_addresses(netns)
        assert "10.96.0.50" not in have and "192.0.2.50" not in have
        assert "10.96.0.10" in have
        await dp.close()
        have = ns_addresses(netns)
        assert not have & {"10.96.0.10", "10.96.0.30"}
        assert {"10.244.0.1", *EP_IPS} <= have  # the test's own addresses stay
        with pytest.raises(OSError):
            await ask(None, "127.0.0.1", "127.0.0.1", np.node_port, timeout=0.5)
    with_dataplane(netns, body)


def test_addresses_left_by_a_killed_proxy_are_adopted(netns: str) -> None:
    """A proxy killed before close() leaves labelled addresses; the next one keeps those
    still wanted and removes the rest, never the namespace's own addresses."""
    ip_batch(netns, ["address add 10.96.0.77/32 dev lo label lo:svcproxy",
                     "address add 10.96.0.10/32 dev lo label lo:svcproxy"])

    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start(EP_IPS[0], 8080)
        await synced(dp, state((info(spn()), eps(EP_IPS[0]))))
        have = ns_addresses(netns)
        assert "10.96.0.77" not in have and "10.96.0.10" in have
        assert {"10.244.0.1", *EP_IPS} <= have
        assert await ask(netns, CLIENT, "10.96.0.10", 80) == f"{EP_IPS[0]}:8080"
        await dp.close()
        assert "10.96.0.10" not in ns_addresses(netns)
    with_dataplane(netns, body)


def test_full_sync_restores_a_deleted_address(netns: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start(EP_IPS[0], 8080)
        s = state((info(spn()), eps(EP_IPS[0])))
        await synced(dp, s)
        subprocess.run(["ip", "-n", netns, "address", "del", "10.96.0.10/32", "dev", "lo"],
                       check=True)
        with pytest.raises(OSError):
            await ask(netns, CLIENT, "10.96.0.10", 80, timeout=0.5)
        await dp.sync(s, set(), True)
        assert await ask(netns, CLIENT, "10.96.0.10", 80) == f"{EP_IPS[0]}:8080"
    with_dataplane(netns, body)


def test_failed_listener_fails_only_its_service_port(netns: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start(EP_IPS[0], 8080)
        busy = socket.socket()
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        node_port = busy.getsockname()[1]
        try:
            np = info(spn("np", ""), "10.96.0.30", type="NodePort", node_port=node_port)
            s = state((info(spn()), eps(EP_IPS[0])), (np, eps(EP_IPS[0])))
            with pytest.raises(RuntimeError, match="default/np"):
                await synced(dp, s)
            st = dp.status()["service_ports"]
            assert st["default/np"]["frontends"] == []  # nothing half-opened
            assert "error" in st["default/np"]
            assert await ask(netns, CLIENT, "10.96.0.10", 80) == f"{EP_IPS[0]}:8080"
        finally:
            busy.close()
        await dp.sync(s, set(), True)  # the retry succeeds
        assert await ask(netns, CLIENT, "10.96.0.30", 80) == f"{EP_IPS[0]}:8080"
    with_dataplane(netns, body)


def test_metrics_text_has_the_counters(netns: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await bk.start(EP_IPS[0], 8080)
        await synced(dp, state((info(spn()), eps(EP_IPS[0]))))
        reader, writer = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        await reader.readline()
        writer.write(b"abc\n")
        await reader.readline()
        text = dp.render_metrics()
        labels = 'service_port="default/web:http",endpoint="10.244.0.2:8080"'
        assert f"svcnet_proxy_backend_connections_total{{{labels}}} 1" in text
        assert f"svcnet_proxy_backend_active_connections{{{labels}}} 1" in text
        assert f'svcnet_proxy_backend_bytes_total{{{labels},direction="in"}} 4' in text
        assert f'svcnet_proxy_backend_bytes_total{{{labels},direction="out"}} 20' in text
        assert "# TYPE svcnet_proxy_backend_connections_total counter" in text
        writer.close()
    with_dataplane(netns, body)


def test_process_mode_serves_loopback_only() -> None:
    port, be_port = free_port(), free_port()
    vip = f"127.96.{secrets.randbelow(200) + 1}.{secrets.randbelow(200) + 1}"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ident = f"127.0.0.1:{be_port}"

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(ident.encode() + b"\n")
            await w.drain()
            w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", be_port)
        dp = UserspaceDataplane(netns=None)
        try:
            i = ServicePortInfo(spn(), "ClusterIP", (vip,), port)
            other = ServicePortInfo(spn("other"), "ClusterIP", ("10.96.0.77",), 80)
            s = ProxyState(node_name=NODE, node_ips=("127.0.0.1",),
                           services={i.name: i, other.name: other},
                           endpoints={i.name: (EndpointInfo("127.0.0.1", be_port),
                                               EndpointInfo("10.244.0.5", 8080)),
                                      other.name: (EndpointInfo("127.0.0.1", be_port),)})
            await dp.sync(s, set(s.services), True)
            assert await ask(None, "127.0.0.1", vip, port) == ident
            assert await ask(None, "127.0.0.1", vip, port) == ident  # 10.244.0.5 skipped
            st = dp.status()["service_ports"]
            assert "endpoint 10.244.0.5:8080" in st[str(spn())]["skipped"]
            assert st["default/other:http"]["frontends"] == []
            assert "tcp 10.96.0.77:80 host" in st["default/other:http"]["skipped"]
            assert loop.is_running()
        finally:
            await dp.close()
            server.close()
    run(main())



PRIVILEGED_PORT_SCRIPT = """
import asyncio, json, sys
from svcnet.proxy.dataplane import ProxyState
from svcnet.proxy.dataplanes._tcp import TcpFrontend
from svcnet.proxy.dataplanes.userspace import UserspaceDataplane
from svcnet.proxy.types import EndpointInfo, ServicePortInfo, ServicePortName

async def main():
    vip, node_port, be_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    async def handle(r, w):
        w.write(b"backend\\n"); await w.drain(); w.close()
    server = await asyncio.start_server(handle, "127.0.0.1", be_port)
    name = ServicePortName("default", "web", "http", "TCP")
    info = ServicePortInfo(name, "NodePort", (vip,), 80, node_port=node_port)
    dp = UserspaceDataplane(netns=None)
    state = ProxyState(node_name="n", services={name: info},
                       endpoints={name: (EndpointInfo("127.0.0.1", be_port),)})
    await dp.sync(state, {name}, True)  # must not raise
    r, w = await asyncio.open_connection("127.0.0.1", node_port)
    body = (await r.readline()).decode().strip()
    w.close()
    print(json.dumps({"body": body, "status": dp.status()["service_ports"][str(name)]}))
    await dp.close()
    server.close()

asyncio.run(main())
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to drop CAP_NET_BIND_SERVICE")
def test_a_privileged_port_without_the_privilege_is_skipped_not_retried() -> None:
    """The process runtime run without privileges: port 80 cannot be bound; the
    NodePort still serves and the sync succeeds, with the reason in the status."""
    vip = f"127.96.{secrets.randbelow(200) + 1}.{secrets.randbelow(200) + 1}"
    res = subprocess.run(
        ["setpriv", "--bounding-set", "-net_bind_service", sys.executable, "-c",
         PRIVILEGED_PORT_SCRIPT, vip, str(free_port()), str(free_port())],
        capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["body"] == "backend"
    assert out["status"]["skipped"][f"tcp {vip}:80 host"].startswith(
        "port 80 needs root or CAP_NET_BIND_SERVICE")
    assert "error" not in out["status"]


def _rst(transport: asyncio.BaseTransport) -> None:
    """Close ``transport``'s TCP connection with RST."""
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_reset_is_passed_on_both_ways(netns: str, loop: str) -> None:
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        backend = await bk.start(EP_IPS[0], 8080)
        await synced(dp, state((info(spn()), eps(EP_IPS[0]))))
        addr = f"{EP_IPS[0]}:8080"
        # the endpoint resets: the client sees a reset, the pair is gone
        reader, writer = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        assert (await reader.readline()).decode().strip() == addr
        (conn,) = backend.conns
        _rst(conn.transport)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 2)
        writer.close()
        await wait_for(lambda: endpoint_status(dp, spn())[addr]["active"] == 0)
        # the client resets: the endpoint sees its connection end
        reader, writer = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        assert (await reader.readline()).decode().strip() == addr
        await wait_for(lambda: len(backend.conns) == 1)
        _rst(writer.transport)
        await wait_for(lambda: not backend.conns)
        await wait_for(lambda: endpoint_status(dp, spn())[addr]["active"] == 0)
        assert not any(fe.clients for p in dp._ports.values() for fe in p.frontends.values()
                       if hasattr(fe, "clients"))
    with_dataplane(netns, body, loop)


def test_a_client_leaving_while_dialling_ends_the_dial(netns: str) -> None:
    black_hole(netns, "10.244.0.2")  # SYNs vanish: the dial would take its whole timeout

    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        await synced(dp, state((info(spn()), eps("10.244.0.2"))))
        _, writer = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        await wait_for(lambda: endpoint_status(dp, spn())["10.244.0.2:8080"]["inactive"] == 1)
        t0 = time.monotonic()
        _rst(writer.transport)
        await wait_for(lambda: endpoint_status(dp, spn())["10.244.0.2:8080"]["inactive"] == 0)
        assert time.monotonic() - t0 < 1.0  # not the 5 s dial timeout
        (fe,) = dp._ports[spn()].frontends.values()
        assert isinstance(fe, TcpFrontend) and not fe.clients
    with_dataplane(netns, body, dial_timeouts=(5.0,))


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_many_short_connections_leave_nothing_behind(netns: str, loop: str) -> None:
    """200 clients at once, each sending a line and closing: every reply arrives, and
    afterwards no connection, socket or counter is left over."""
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        backend = await bk.start(EP_IPS[0], 8080, greet=False)
        await bk.start(EP_IPS[1], 8080, greet=False)
        await synced(dp, state((info(spn()), eps(EP_IPS[0], EP_IPS[1]))))
        fds_before = len(os.listdir("/proc/self/fd"))

        async def one(i: int) -> bytes:
            reader, writer = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
            writer.write(b"line %d\n" % i)
            writer.write_eof()
            got = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return got

        got = await asyncio.gather(*(one(i) for i in range(200)))
        assert got == [b"line %d\n" % i for i in range(200)]
        st = endpoint_status(dp, spn())
        assert sum(e["total"] for e in st.values()) == 200
        await wait_for(lambda: all(e["active"] == 0 and e["inactive"] == 0
                                   for e in endpoint_status(dp, spn()).values()))
        await wait_for(lambda: not backend.conns)
        await wait_for(lambda: len(os.listdir("/proc/self/fd")) <= fds_before)
    with_dataplane(netns, body, loop)


_GREETER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8080))
s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"ok\\n")
    c.close()
"""


def test_out_of_descriptors_pauses_accepting_without_spinning_or_losing_clients(
        netns: str) -> None:
    """With no descriptor left the listener is left alone for a moment instead of being
    retried in a busy loop; the waiting clients are served once descriptors are back."""
    # The endpoint runs in a process of its own, so only the proxy runs out.
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", _GREETER,
                             EP_IPS[0]], stdout=subprocess.PIPE)

    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        await synced(dp, state((info(spn()), eps(EP_IPS[0]))))
        loop = asyncio.get_running_loop()
        clients = []
        for _ in range(5):
            c = socket_in_netns(netns, socket.AF_INET, socket.SOCK_STREAM)
            c.bind((CLIENT, 0))
            c.setblocking(False)
            clients.append(c)
        "10.96.0.10".encode("idna")  # loaded lazily by sock_connect: load it now
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowest_free = os.dup(0)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            for c in clients:
                await loop.sock_connect(c, ("10.96.0.10", 80))  # completes in the backlog
            cpu0 = time.process_time()
            await asyncio.sleep(0.5)
            spent = time.process_time() - cpu0
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert spent < 0.25, f"{spent:.2f} s of CPU in 0.5 s: accepting was retried busily"
        replies = await asyncio.wait_for(
            asyncio.gather(*(loop.sock_recv(c, 16) for c in clients)), 5)
        assert replies == [b"ok\n"] * 5
        for c in clients:
            c.close()
        await wait_for(lambda: endpoint_status(dp, spn())[f"{EP_IPS[0]}:8080"]["total"] == 5)

    try:
        with_dataplane(netns, body)
    finally:
        proc.kill()
        proc.wait()


def test_bytes_after_urgent_data_are_not_held_back(netns: str) -> None:
    """A read stops at TCP's urgent mark, so a short read does not mean an empty socket:
    what follows urgent data is relayed without waiting for the client's next send. (The
    urgent byte itself is not relayed, as with kube-proxy's userspace mode.)"""
    async def body(dp: UserspaceDataplane, bk: Backends) -> None:
        backend = await bk.start(EP_IPS[0], 8080, greet=False)
        await synced(dp, state((info(spn()), eps(EP_IPS[0]))))
        reader, writer = await open_tcp(netns, CLIENT, "10.96.0.10", 80)
        writer.write(b"start\n")
        assert await asyncio.wait_for(reader.readline(), 2) == b"start\n"  # relaying
        await wait_for(lambda: len(backend.conns) == 1)
        # The proxy runs on this thread's loop: all three sends are queued before it reads.
        fd = writer.get_extra_info("socket").fileno()
        os.write(fd, b"abc")
        with socket.socket(fileno=os.dup(fd)) as urgent:
            urgent.send(b"!", socket.MSG_OOB)
        os.write(fd, b"efg\n")
        assert await asyncio.wait_for(reader.readline(), 2) == b"abcefg\n"
        writer.close()
    with_dataplane(netns, body)
