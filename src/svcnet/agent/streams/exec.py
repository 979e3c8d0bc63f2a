"""``kubectl exec`` over a WebSocket speaking a ``*.channel.k8s.io`` protocol.

The caller owns the HTTP layer: it parses the query (``command``, ``stdin``, ``tty`` ...),
negotiates the subprotocol with :func:`choose_protocol` (answering with it in
``Sec-WebSocket-Protocol``), prepares the ``aiohttp`` WebSocketResponse and then calls
:func:`serve_exec`, which runs the command and ends the WebSocket with the final status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSMsgType, web

from svcnet.agent.streams import channels
from svcnet.agent.streams.channels import ProtocolError
from svcnet.agent.streams.process import (
    ClientGone,
    Event,
    ExecSpec,
    Resize,
    StartError,
    Stdin,
    StdinEOF,
    Wrap,
    run_process,
)

log = logging.getLogger(__name__)

#: Protocols offered for exec over WebSocket, most preferred first.
EXEC_PROTOCOLS: tuple[str, ...] = channels.SUPPORTED

#: Exit code reported when the command could not be started at all.
START_FAILURE_CODE = 126


def choose_protocol(offered: list[str]) -> str | None:
    """The subprotocol to answer an exec upgrade with: v5 over v4 over older ones; None when
    the client offered none of them (the caller then rejects or answers without one)."""
    return channels.choose_protocol(offered, EXEC_PROTOCOLS)


async def _read_client(ws: web.WebSocketResponse, protocol: str, stdin: bool,
                       events: asyncio.Queue[Event]) -> None:
    """Translate client messages to process events until the client closes (then ClientGone;
    for protocols without a close signal the close also ends stdin)."""
    try:
        async for msg in ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            try:
                channel, payload = channels.decode(msg.data)
                if channel == channels.STDIN and stdin:
                    events.put_nowait(Stdin(payload))
                elif channel == channels.RESIZE:
                    width, height = channels.parse_resize(payload)
                    events.put_nowait(Resize(width, height))
                elif (channel == channels.CLOSE and channels.has_close_signal(protocol)
                      and channels.closed_channel(payload) == channels.STDIN):
                    events.put_nowait(StdinEOF())
            except ProtocolError as e:
                log.debug("exec: ignoring bad client frame: %s", e)
    finally:
        events.put_nowait(ClientGone())


async def serve_exec(ws: web.WebSocketResponse, argv: list[str], env: dict[str, str],
                     cwd: str | None, stdin: bool, stdout: bool, stderr: bool, tty: bool,
                     protocol: str, wrap: Wrap | None = None) -> int:
    """Run ``argv`` (through ``wrap``) with channels 0/1/2 wired to stdin/stdout/stderr on the
    prepared WebSocket ``ws`` speaking ``protocol``; with ``tty`` a pseudo-terminal carries
    both output streams on channel 1 and resize messages (channel 4) apply to it. When the
    command ends, send the final status on channel 3 and close the WebSocket normally (1000).
    Returns the exit code (``START_FAILURE_CODE`` when it could not start). If the client goes
    away first, the process is killed."""
    events: asyncio.Queue[Event] = asyncio.Queue()
    spec = ExecSpec(argv=argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout,
                    stderr=stderr and not tty, tty=tty)

    async def output(channel: int, data: bytes) -> None:
        if not ws.closed:
            await ws.send_bytes(channels.encode(channel, data))

    reader = asyncio.create_task(_read_client(ws, protocol, stdin, events))
    try:
        try:
            code = await run_process(spec, events, output, wrap)
            status = channels.status_for_exit(code)
        except StartError as e:
            code = START_FAILURE_CODE
            status = channels.status_failure(str(e))
        payload = channels.error_payload(protocol, status)
        if payload is not None and not ws.closed:
            with contextlib.suppress(ConnectionError):
                await ws.send_bytes(channels.encode(channels.ERROR, payload))
        return code
    finally:
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await ws.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
