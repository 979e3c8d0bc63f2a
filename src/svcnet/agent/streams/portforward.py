"""``kubectl port-forward`` serving, transport-agnostic.

Two wire forms:

- :func:`serve_portforward_spdy`: SPDY/3.1 streams, as kubectl uses them. Per forwarded
  connection the client opens an ``error`` and a ``data`` stream sharing a ``requestid``
  header and naming the ``port``. Every SYN_STREAM gets a SYN_REPLY; once both streams of a
  pair exist the pod port is dialled with ``connect(port)`` and bytes are copied both ways.
  When the pod side ends, the data stream gets DATA+FIN and the error stream an empty FIN;
  a failed dial writes the error text on the error stream (then FIN on both). A client FIN on
  the data stream half-closes the pod connection; RST_STREAM drops the pair; PINGs are
  echoed; GOAWAY or end of input ends the session, closing every pod connection.
  The byte transport is a pair of callables, so the same code serves raw SPDY after an HTTP
  upgrade (:func:`stream_transport`) and SPDY tunnelled in WebSocket binary messages
  (``SPDY/3.1+portforward.k8s.io``, :func:`websocket_transport`).
- :func:`serve_portforward_websocket`: the channel protocol (``v4.channel.k8s.io``) the Python
  client uses: for the i-th port channel ``2i`` carries data and ``2i+1`` errors; the server
  first sends, on each channel, the channel byte and the port as 16-bit little-endian.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from svcnet.agent.streams import channels, spdy

log = logging.getLogger(__name__)

Connect = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
Reader = Callable[[], Awaitable[bytes]]
Writer = Callable[[bytes], Awaitable[None]]

#: Subprotocol of SPDY tunnelled over WebSocket (kubectl >= 1.31).
SPDY_OVER_WEBSOCKET = "SPDY/3.1+portforward.k8s.io"
#: ``X-Stream-Protocol-Version`` of raw SPDY port-forward.
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
#: Channel protocols for the WebSocket form, most preferred first.
WEBSOCKET_PROTOCOLS: tuple[str, ...] = (channels.V4,)

READ_SIZE = 32 * 1024


def websocket_transport(ws: web.WebSocketResponse) -> tuple[Reader, Writer]:
    """Byte-stream view of a prepared WebSocket: reads return the payloads of binary (and
    text) messages in order (message boundaries carry no meaning), b"" once it closes;
    writes send one binary message each."""

    async def read() -> bytes:
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                if msg.data:
                    return str(msg.data).encode()
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                              WSMsgType.ERROR):
                return b""

    async def write(data: bytes) -> None:
        await ws.send_bytes(data)

    return read, write


def stream_transport(reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> tuple[Reader, Writer]:
    """Byte-stream view of a raw connection (e.g. taken over after a 101 SPDY upgrade)."""

    async def read() -> bytes:
        try:
            return await reader.read(READ_SIZE)
        except ConnectionError:
            return b""

    async def write(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    return read, write


def _close_writer(w: asyncio.StreamWriter | None) -> None:
    if w is not None:
        with contextlib.suppress(Exception):
            w.close()


@dataclass
class _Pair:
    """The error and data streams of one forwarded connection."""

    key: str
    port: str = ""
    error_id: int | None = None
    data_id: int | None = None
    inbox: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    pod: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None


class _SpdySession:
    def __init__(self, write: Writer, connect: Connect) -> None:
        self._write = write
        self._connect = connect
        self._encoder = spdy.FrameEncoder()
        self._lock = asyncio.Lock()
        self._pairs: dict[str, _Pair] = {}
        self._streams: dict[int, _Pair] = {}
        self._broken = False

    async def send(self, *frames: bytes) -> None:
        """Write frames in order; after a transport failure further writes are dropped."""
        async with self._lock:
            for frame in frames:
                if self._broken:
                    return
                try:
                    await self._write(frame)
                except (ConnectionError, RuntimeError) as e:
                    log.debug("port-forward: transport write failed: %s", e)
                    self._broken = True

    async def run(self, read: Reader) -> None:
        parser = spdy.FrameParser()
        try:
            while chunk := await read():
                for frame in parser.feed(chunk):
                    if not await self._handle(frame):
                        return
        except spdy.SpdyError as e:
            log.info("port-forward: bad SPDY input: %s", e)
            await self.send(spdy.FrameEncoder.goaway(0, spdy.PROTOCOL_ERROR))
        finally:
            await self._shutdown()

    async def _handle(self, frame: spdy.Frame) -> bool:
        if isinstance(frame, spdy.SynStream):
            # Only this (sequential) loop compresses headers, so blocks go out in order.
            await self.send(self._encoder.syn_reply(frame.stream_id))
            self._open(frame)
        elif isinstance(frame, spdy.Data):
            pair = self._streams.get(frame.stream_id)
            if pair is not None and frame.stream_id == pair.data_id:
                if frame.data:
                    pair.inbox.put_nowait(frame.data)
                if frame.fin:
                    pair.inbox.put_nowait(None)
        elif isinstance(frame, spdy.RstStream):
            pair = self._streams.pop(frame.stream_id, None)
            if pair is not None:
                self._drop(pair)
        elif isinstance(frame, spdy.Ping):
            await self.send(spdy.FrameEncoder.ping(frame.ping_id))
        elif isinstance(frame, spdy.GoAway):
            return False
        return True

    def _open(self, syn: spdy.SynStream) -> None:
        h = syn.headers
        kind = h.get("streamtype", "")
        key = h.get("requestid") or f"port:{h.get('port', '')}"
        pair = self._pairs.setdefault(key, _Pair(key))
        pair.port = h.get("port", pair.port)
        if kind == "error":
            pair.error_id = syn.stream_id
        elif kind == "data":
            pair.data_id = syn.stream_id
        else:
            log.debug("port-forward: ignoring stream type %r", kind)
            return
        self._streams[syn.stream_id] = pair
        if pair.error_id is not None and pair.data_id is not None and pair.task is None:
            pair.task = asyncio.create_task(self._forward(pair))

    def _drop(self, pair: _Pair) -> None:
        for sid in (pair.error_id, pair.data_id):
            if sid is not None:
                self._streams.pop(sid, None)
        self._pairs.pop(pair.key, None)
        if pair.task is not None:
            pair.task.cancel()
        _close_writer(pair.pod)

    async def _forward(self, pair: _Pair) -> None:
        assert pair.error_id is not None and pair.data_id is not None
        data_id, error_id = pair.data_id, pair.error_id
        try:
            port = int(pair.port)
            if not 0 < port < 65536:
                raise ValueError(pair.port)
        except ValueError:
            await self._fail(pair, f"invalid port {pair.port!r}")
            return
        try:
            pod_r, pod_w = await self._connect(port)
        except Exception as e:  # noqa: BLE001 - any dial failure is reported to the client
            await self._fail(pair, f"error forwarding port {port} to pod: {e}")
            return
        pair.pod = pod_w
        up = asyncio.create_task(_client_to_pod(pair.inbox, pod_w))
        try:
            with contextlib.suppress(ConnectionError):
                while chunk := await pod_r.read(READ_SIZE):
                    await self.send(spdy.FrameEncoder.data(data_id, chunk))
            await self.send(spdy.FrameEncoder.data(data_id, b"", fin=True),
                            spdy.FrameEncoder.data(error_id, b"", fin=True))
            await up  # until the client's FIN; an RST_STREAM cancels this task
        finally:
            up.cancel()
            _close_writer(pod_w)

    async def _fail(self, pair: _Pair, message: str) -> None:
        assert pair.error_id is not None and pair.data_id is not None
        await self.send(*spdy.data_frames(pair.error_id, message.encode(), fin=True),
                        spdy.FrameEncoder.data(pair.data_id, b"", fin=True))

    async def _shutdown(self) -> None:
        tasks = [p.task for p in self._pairs.values() if p.task is not None]
        for pair in list(self._pairs.values()):
            self._drop(pair)
        await asyncio.gather(*tasks, return_exceptions=True)


async def _client_to_pod(inbox: asyncio.Queue[bytes | None], pod: asyncio.StreamWriter) -> None:
    """Copy client bytes to the pod until the client's FIN (then half-close the pod side)."""
    try:
        while (chunk := await inbox.get()) is not None:
            pod.write(chunk)
            await pod.drain()
        if pod.can_write_eof():
            pod.write_eof()
    except (ConnectionError, OSError):
        pass


async def serve_portforward_spdy(reader: Reader, writer: Writer, connect: Connect) -> None:
    """Serve one port-forward SPDY session: ``reader()`` returns the next bytes of the client's
    SPDY stream (b"" at the end), ``writer(frame)`` sends one whole frame, ``connect(port)``
    dials the pod. Returns when the client is gone or sends GOAWAY; every pod connection is
    closed by then."""
    await _SpdySession(writer, connect).run(reader)


def port_prefix(channel: int, port: int) -> bytes:
    """The first message on each port-forward channel: channel byte + port (uint16 LE)."""
    return channels.encode(channel, struct.pack("<H", port))


async def serve_portforward_websocket(ws: web.WebSocketResponse, ports: list[int],
                                      connect: Connect) -> None:
    """Serve the channel-protocol port-forward on a prepared WebSocket for ``ports`` (the
    ``ports`` query parameter, in order). Each port is dialled once; pod bytes go out on its
    data channel, a dial failure as text on its error channel. Ends (closing the WebSocket and
    every pod connection) when the client closes or every pod connection has ended."""
    lock = asyncio.Lock()

    async def send(data: bytes) -> None:
        async with lock:
            if not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_bytes(data)

    inboxes: list[asyncio.Queue[bytes | None]] = [asyncio.Queue() for _ in ports]
    pods: list[asyncio.StreamWriter | None] = [None] * len(ports)

    async def forward(i: int, port: int) -> None:
        await send(port_prefix(2 * i, port))
        await send(port_prefix(2 * i + 1, port))
        try:
            pod_r, pod_w = await connect(port)
        except Exception as e:  # noqa: BLE001 - any dial failure is reported to the client
            await send(channels.encode(2 * i + 1,
                                       f"error forwarding port {port} to pod: {e}".encode()))
            return
        pods[i] = pod_w
        up = asyncio.create_task(_client_to_pod(inboxes[i], pod_w))
        try:
            while chunk := await pod_r.read(READ_SIZE):
                await send(channels.encode(2 * i, chunk))
        except ConnectionError:
            pass
        finally:
            up.cancel()
            _close_writer(pod_w)

    async def read_client() -> None:
        async for msg in ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            try:
                channel, payload = channels.decode(msg.data)
            except channels.ProtocolError:
                continue
            i = channel // 2
            if channel % 2 == 0 and i < len(ports) and payload:
                inboxes[i].put_nowait(payload)

    if not ports:
        await ws.close()
        return
    forwards = [asyncio.create_task(forward(i, p)) for i, p in enumerate(ports)]
    reader = asyncio.create_task(read_client())
    all_done = asyncio.create_task(asyncio.wait(forwards))
    try:
        await asyncio.wait([reader, all_done], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (*forwards, reader, all_done):
            t.cancel()
        for w in pods:
            _close_writer(w)
        await asyncio.gather(*forwards, reader, all_done, return_exceptions=True)
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await ws.close()
