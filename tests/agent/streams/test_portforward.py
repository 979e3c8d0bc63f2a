"""port-forward: kubectl 1.32 (SPDY over WebSocket and the raw SPDY fallback), the Python
client (channel protocol) and a frame-level SPDY client, against a small API server whose
"pod" ports are local echo servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession, WSMsgType

from svcnet.agent.streams import portforward, spdy
from tests.agent.streams.fakeapi import PREFIX, FakeAPI, free_port, serving

KUBECTL = shutil.which("kubectl")


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A local echo server; closes each connection after the client's EOF."""

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def api_url() -> AsyncIterator[tuple[FakeAPI, str]]:
    api = FakeAPI()
    async with serving(api) as url:
        yield api, url


async def roundtrip(port: int, payload: bytes) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(payload)
        await w.drain()
        w.write_eof()
        return await asyncio.wait_for(r.read(), 10)
    finally:
        w.close()


KUBECTL_CASES = [
    ("spdy over websocket", "true", portforward.SPDY_OVER_WEBSOCKET),
    ("raw spdy fallback", "false", "SPDY/3.1"),
]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
@pytest.mark.parametrize(("websockets", "protocol"), [c[1:] for c in KUBECTL_CASES],
                         ids=[c[0] for c in KUBECTL_CASES])
async def test_kubectl_port_forward(api_url: tuple[FakeAPI, str], echo_port: int,
                                    tmp_path: Path, websockets: str, protocol: str) -> None:
    api, url = api_url
    local = free_port()
    assert KUBECTL is not None
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, f"--server={url}", "port-forward", "--address=127.0.0.1", "pod/p",
        f"{local}:{echo_port}", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
             "KUBECTL_PORT_FORWARD_WEBSOCKETS": websockets})
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert b"Forwarding from 127.0.0.1:" in line
        assert await roundtrip(local, b"first connection\n") == b"first connection\n"
        big = os.urandom(300_000)
        assert await roundtrip(local, big) == big
        assert api.protocols == [protocol]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()


def _python_client_forward(url: str, port: int, payload: bytes) -> tuple[bytes, str | None]:
    from kubernetes import client
    from kubernetes.stream import portforward as pf_client

    cfg = client.Configuration()
    cfg.host = url
    api = client.CoreV1Api(client.ApiClient(cfg))
    pf = pf_client(api.connect_get_namespaced_pod_portforward, "p", "default", ports=str(port))
    sock = pf.socket(port)
    sock.settimeout(10)
    try:
        got = b""
        if payload:
            sock.sendall(payload)
            while len(got) < len(payload):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        else:
            with contextlib.suppress(OSError):
                while sock.recv(65536):
                    pass
        return got, pf.error(port)
    finally:
        sock.close()
        pf.close()


async def test_python_client_port_forward(api_url: tuple[FakeAPI, str], echo_port: int) -> None:
    api, url = api_url
    got, err = await asyncio.to_thread(_python_client_forward, url, echo_port, b"hello pod")
    assert (got, err) == (b"hello pod", None)
    assert api.protocols == ["v4.channel.k8s.io"]


async def test_python_client_port_forward_refused(api_url: tuple[FakeAPI, str]) -> None:
    _, url = api_url
    got, err = await asyncio.to_thread(_python_client_forward, url, free_port(), b"")
    assert got == b""
    assert err is not None and "error forwarding port" in err


class SpdyClient:
    """A frame-level client over SPDY/3.1+portforward.k8s.io, as kubectl speaks it."""

    def __init__(self, ws: object) -> None:
        self.ws = ws
        self.enc = spdy.FrameEncoder()
        self.parser = spdy.FrameParser()
        self.pending: list[spdy.Frame] = []

    async def send(self, frame: bytes) -> None:
        # Split each frame over two messages: boundaries must not matter.
        await self.ws.send_bytes(frame[:5])  # type: ignore[attr-defined]
        await self.ws.send_bytes(frame[5:])  # type: ignore[attr-defined]

    async def frames_until(self, done: object, timeout: float = 10) -> list[spdy.Frame]:
        """Frames received until ``done(frames)`` holds."""
        got: list[spdy.Frame] = []

        async def pump() -> None:
            while not done(got):  # type: ignore[operator]
                msg = await self.ws.receive()  # type: ignore[attr-defined]
                assert msg.type == WSMsgType.BINARY, msg
                got.extend(self.parser.feed(msg.data))

        await asyncio.wait_for(pump(), timeout)
        return got


async def _open_pair(c: SpdyClient, port: int, request_id: int, first: int) -> None:
    hdr = {"port": str(port), "requestid": str(request_id)}
    await c.send(c.enc.syn_stream(first, {"streamtype": "error", **hdr}))
    await c.send(c.enc.data(first, b"", fin=True))
    await c.send(c.enc.syn_stream(first + 2, {"streamtype": "data", **hdr}))


def _fin_on(sid: int) -> object:
    return lambda fs: any(isinstance(f, spdy.Data) and f.stream_id == sid and f.fin for f in fs)


async def test_spdy_frames_success_ping_and_fin(api_url: tuple[FakeAPI, str],
                                                echo_port: int) -> None:
    _, url = api_url
    async with ClientSession() as s, s.ws_connect(
            url + PREFIX + "/portforward", protocols=[portforward.SPDY_OVER_WEBSOCKET]) as ws:
        assert ws.protocol == portforward.SPDY_OVER_WEBSOCKET
        c = SpdyClient(ws)
        await _open_pair(c, echo_port, 0, 1)
        await c.send(c.enc.ping(7))
        await c.send(c.enc.data(3, b"abc"))
        await c.send(c.enc.data(3, b"def", fin=True))
        frames = await c.frames_until(lambda fs: _fin_on(3)(fs) and _fin_on(1)(fs))
        await c.send(c.enc.rst_stream(3, spdy.CANCEL))
    assert [f for f in frames if isinstance(f, spdy.SynReply)] == [
        spdy.SynReply(1, {}), spdy.SynReply(3, {})]
    assert spdy.Ping(7) in frames
    assert b"".join(f.data for f in frames if isinstance(f, spdy.Data) and f.stream_id == 3) \
        == b"abcdef"
    assert [f.data for f in frames if isinstance(f, spdy.Data) and f.stream_id == 1] == [b""]


async def test_spdy_frames_refused_port_reports_on_error_stream(
        api_url: tuple[FakeAPI, str]) -> None:
    _, url = api_url
    closed = free_port()
    async with ClientSession() as s, s.ws_connect(
            url + PREFIX + "/portforward", protocols=[portforward.SPDY_OVER_WEBSOCKET]) as ws:
        c = SpdyClient(ws)
        await _open_pair(c, closed, 0, 1)
        frames = await c.frames_until(lambda fs: _fin_on(1)(fs) and _fin_on(3)(fs))
    error = b"".join(f.data for f in frames if isinstance(f, spdy.Data) and f.stream_id == 1)
    assert error.startswith(f"error forwarding port {closed} to pod:".encode())
    assert [f.data for f in frames if isinstance(f, spdy.Data) and f.stream_id == 3] == [b""]


async def test_spdy_session_ends_on_goaway_and_closes_pod_side(echo_port: int) -> None:
    client_enc, server_frames = spdy.FrameEncoder(), spdy.FrameParser()
    inbound: asyncio.Queue[bytes] = asyncio.Queue()
    out: list[spdy.Frame] = []
    pods: list[asyncio.StreamWriter] = []

    async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        pods.append(w)
        return r, w

    async def write(frame: bytes) -> None:
        out.extend(server_frames.feed(frame))

    for frame in (client_enc.syn_stream(1, {"streamtype": "error", "port": str(echo_port),
                                            "requestid": "0"}),
                  client_enc.syn_stream(3, {"streamtype": "data", "port": str(echo_port),
                                            "requestid": "0"})):
        inbound.put_nowait(frame)
    session = asyncio.create_task(portforward.serve_portforward_spdy(inbound.get, write, connect))
    for _ in range(100):
        if pods:
            break
        await asyncio.sleep(0.02)
    inbound.put_nowait(client_enc.goaway(3))
    await asyncio.wait_for(session, 5)
    assert len(pods) == 1 and pods[0].is_closing()
    assert [f for f in out if isinstance(f, spdy.SynReply)] == [spdy.SynReply(1, {}),
                                                                spdy.SynReply(3, {})]


def test_free_port_is_bindable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))
