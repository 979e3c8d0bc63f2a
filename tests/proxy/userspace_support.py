"""Helpers for the userspace dataplane's kernel tests (``test_userspace.py`` and
``test_flows_userspace.py``): a node namespace ``svcnet-t-<hex>`` with addresses on its
``lo`` (deleted by name), small TCP/UDP backends that answer with their own address, and
clients connecting from inside the namespace or from the host over loopback only."""


from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

import pytest
import uvloop

from svcnet._util.netns import socket_in_netns
from svcnet.proxy.dataplane import ProxyState
from svcnet.proxy.dataplanes.userspace import UserspaceDataplane
from svcnet.proxy.types import EndpointInfo, ServicePortInfo, ServicePortName

NODE = "node-a"
CLIENT = "10.244.0.100"
CLIENT2 = "10.244.0.101"
EP_IPS = tuple(f"10.244.0.{i}" for i in range(2, 12))
CLIENT_IPS = (CLIENT, CLIENT2)
T = TypeVar("T")


def why_not() -> str:
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs the ip command (iproute2)"
    return ""


needs_netns = pytest.mark.skipif(bool(why_not()), reason=why_not() or "ok")


# --- namespace -----------------------------------------------------------------------------

def ip_batch(ns: str, lines: Iterable[str]) -> None:
    subprocess.run(["ip", "-n", ns, "-force", "-batch", "-"], input="\n".join(lines) + "\n",
                   text=True, check=False, capture_output=True)


def make_netns(addresses: Iterable[str] = ()) -> str:
    """A new namespace with ``lo`` up and ``addresses`` on it (caller deletes it)."""
    name = f"svcnet-t-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        lines = ["link set lo up"]
        for a in addresses:
            lines.append(f"address add {a}/128 dev lo nodad" if ":" in a
                         else f"address add {a}/32 dev lo")
        ip_batch(name, lines)
    except BaseException:
        delete_netns(name)
        raise
    return name


def black_hole(ns: str, ip: str) -> None:
    """Make ``ip`` swallow SYNs inside ``ns``: it leaves ``lo`` and is routed to a veth
    whose peer has no address, so ARP fails and a dial waits for its timeout (this kernel
    has no ``dummy`` device)."""
    subprocess.run(["ip", "-n", ns, "address", "del", f"{ip}/32", "dev", "lo"], check=True)
    ip_batch(ns, ["link add svt-a type veth peer name svt-b", "link set svt-a up",
                  "link set svt-b up", f"route add {ip}/32 dev svt-a"])


def delete_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def ns_addresses(ns: str) -> set[str]:
    out = subprocess.run(["ip", "-n", ns, "-o", "addr", "show"], capture_output=True,
                         text=True, check=True).stdout
    return set(re.findall(r"inet6? ([0-9a-f.:]+)/", out))


def run(coro: Coroutine[Any, Any, T], loop: str = "uvloop") -> T:
    """Run ``coro`` on a fresh event loop of the given kind; its result."""
    if loop == "uvloop":
        return uvloop.run(coro)
    return asyncio.run(coro)


# --- backends ------------------------------------------------------------------------------

class _IdEcho(asyncio.Protocol):
    """Sends ``ip:port\\n`` on connect, then echoes; closes after the client's EOF."""

    def __init__(self, server: Backend) -> None:
        self.server = server
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.server.conns.add(self)
        self.server.accepted += 1
        if self.server.greet:
            transport.write(self.server.ident.encode() + b"\n")

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool:
        self.transport.close()  # after flushing what is left
        return True

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)


class _UdpId(asyncio.DatagramProtocol):
    def __init__(self, server: Backend) -> None:
        self.server = server
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server.accepted += 1
        self.transport.sendto(self.server.ident.encode() + b" " + data, addr)


class Backend:
    """A TCP or UDP backend listening on ``ip:port`` inside ``ns``."""

    def __init__(self, ns: str, ip: str, port: int, protocol: str = "TCP",
                 greet: bool = True) -> None:
        self.ns, self.ip, self.port, self.protocol, self.greet = ns, ip, port, protocol, greet
        self.ident = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        self.conns: set[_IdEcho] = set()
        self.accepted = 0
        self._server: asyncio.AbstractServer | None = None
        self._udp: asyncio.BaseTransport | None = None

    async def start(self) -> Backend:
        loop = asyncio.get_running_loop()
        fam = socket.AF_INET6 if ":" in self.ip else socket.AF_INET
        if self.protocol == "TCP":
            s = socket_in_netns(self.ns, fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.ip, self.port))
            s.listen(128)
            s.setblocking(False)
            self._server = await loop.create_server(lambda: _IdEcho(self), sock=s)
        else:
            s = socket_in_netns(self.ns, fam, socket.SOCK_DGRAM)
            s.bind((self.ip, self.port))
            s.setblocking(False)
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _UdpId(self), sock=s)
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._udp is not None:
            self._udp.close()
        for c in list(self.conns):
            c.transport.abort()


class Backends:
    """Owns every backend a test starts; :meth:`close` stops them all."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.all: list[Backend] = []

    async def start(self, ip: str, port: int, protocol: str = "TCP",
                    greet: bool = True) -> Backend:
        b = Backend(self.ns, ip, port, protocol, greet)
        self.all.append(b)
        return await b.start()

    def close(self) -> None:
        for b in self.all:
            b.close()


# --- clients -------------------------------------------------------------------------------

def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


async def open_tcp(ns: str | None, src: str, dst: str, port: int, timeout: float = 2.0
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection from ``src`` to ``dst:port``, from inside ``ns`` (or the host if
    ``ns`` is None — loopback only)."""
    if ns is None:
        assert dst.startswith("127.") and src.startswith("127."), "host traffic: loopback"
        sock = socket.socket(_family(dst), socket.SOCK_STREAM)
    else:
        sock = socket_in_netns(ns, _family(dst), socket.SOCK_STREAM)
    try:
        sock.bind((src, 0))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (dst, port)), timeout)
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise


async def ask(ns: str | None, src: str, dst: str, port: int, timeout: float = 2.0) -> str:
    """Connect and return the backend's greeting line (``ip:port``)."""
    reader, writer = await open_tcp(ns, src, dst, port, timeout)
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ConnectionResetError("closed without an answer")
        return line.decode().strip()
    finally:
        writer.close()


async def ask_udp(ns: str | None, src: str, dst: str, port: int, payload: bytes = b"ping",
                  timeout: float = 2.0) -> str:
    """Send one datagram from ``src`` and return the reply's first word."""
    if ns is None:
        assert dst.startswith("127."), "host traffic: loopback"
        sock = socket.socket(_family(dst), socket.SOCK_DGRAM)
    else:
        sock = socket_in_netns(ns, _family(dst), socket.SOCK_DGRAM)
    with sock:
        sock.bind((src, 0))
        sock.setblocking(False)
        sock.connect((dst, port))
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, payload)
        data = await asyncio.wait_for(loop.sock_recv(sock, 65535), timeout)
        return data.decode().split(" ", 1)[0]


async def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait until ``cond()`` holds (checked every 10 ms); AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# --- state ---------------------------------------------------------------------------------

def spn(name: str = "web", port: str = "http", protocol: str = "TCP") -> ServicePortName:
    return ServicePortName("default", name, port, protocol)


def info(name: ServicePortName, cluster_ip: str = "10.96.0.10", port: int = 80,
         **kw: Any) -> ServicePortInfo:
    return ServicePortInfo(name=name, type=kw.pop("type", "ClusterIP"),
                           cluster_ips=(cluster_ip,), port=port, **kw)


def eps(*ips: str, port: int = 8080) -> tuple[EndpointInfo, ...]:
    return tuple(sorted((EndpointInfo(ip, port, node_name=NODE, target=f"pod-{ip}")
                         for ip in ips), key=lambda e: e.address))


def state(*ports: tuple[ServicePortInfo, tuple[EndpointInfo, ...]],
          node_ips: tuple[str, ...] = ("10.244.0.1",)) -> ProxyState:
    s = ProxyState(node_name=NODE, node_ips=node_ips)
    for i, e in ports:
        s.services[i.name] = i
        s.endpoints[i.name] = e
    return s


async def synced(dp: UserspaceDataplane, s: ProxyState) -> UserspaceDataplane:
    await dp.sync(s, set(s.services), full=True)
    return dp


def endpoint_status(dp: UserspaceDataplane, name: ServicePortName) -> dict[str, Any]:
    return {e["address"]: e for e in dp.status()["service_ports"][str(name)]["endpoints"]}


def with_dataplane(ns: str | None, body: Callable[[UserspaceDataplane, Backends],
                                                  Awaitable[None]],
                   loop: str = "uvloop", **kw: Any) -> None:
    """Run ``body(dp, backends)`` with a dataplane for ``ns``; both closed afterwards."""
    async def main() -> None:
        dp = UserspaceDataplane(netns=ns, **kw)
        bk = Backends(ns or "")
        try:
            await body(dp, bk)
        finally:
            await dp.close()
            bk.close()
    run(main(), loop)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- tests ---------------------------------------------------------------------------------

