"""exec: the process runner, and real clients (kubectl 1.32, the Python client) against a
small API server serving the WebSocket channel protocols."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import ClientSession, WSMsgType

from svcnet.agent.streams import channels
from svcnet.agent.streams.process import (
    ClientGone,
    Event,
    ExecSpec,
    Resize,
    StartError,
    Stdin,
    StdinEOF,
    run_process,
)
from tests.agent.streams.fakeapi import PREFIX, FakeAPI, serving

KUBECTL = shutil.which("kubectl")
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


async def collect(spec: ExecSpec, events: list[Event]) -> tuple[int, dict[int, bytes]]:
    q: asyncio.Queue[Event] = asyncio.Queue()
    for ev in events:
        q.put_nowait(ev)
    out: dict[int, bytes] = {}

    async def output(ch: int, data: bytes) -> None:
        out[ch] = out.get(ch, b"") + data

    code = await asyncio.wait_for(run_process(spec, q, output), 10)
    return code, out


PROCESS_CASES: list[tuple[str, ExecSpec, list[Event], int, dict[int, bytes]]] = [
    ("stdout and stderr apart", ExecSpec(["sh", "-c", "echo o; echo e >&2"], ENV), [], 0,
     {1: b"o\n", 2: b"e\n"}),
    ("exit code", ExecSpec(["sh", "-c", "exit 7"], ENV), [], 7, {}),
    ("stdin then eof", ExecSpec(["cat"], ENV, stdin=True),
     [Stdin(b"a"), Stdin(b"b\n"), StdinEOF()], 0, {1: b"ab\n"}),
    ("no stdout requested", ExecSpec(["echo", "x"], ENV, stdout=False), [], 0, {}),
    ("signalled is 128+n", ExecSpec(["sh", "-c", "kill -TERM $$"], ENV), [], 143, {}),
    ("tty merges stderr, resize applies",
     ExecSpec(["sh", "-c", "read x; stty size; echo e >&2"], ENV, stdin=True, tty=True),
     [Resize(100, 40), Stdin(b"go\n")], 0, {1: b"go\r\n40 100\r\ne\r\n"}),
    ("tty is the controlling terminal", ExecSpec(["sh", "-c", "echo ok >/dev/tty"], ENV,
                                                 tty=True),
     [], 0, {1: b"ok\r\n"}),
]


@pytest.mark.parametrize(("spec", "events", "code", "out"), [c[1:] for c in PROCESS_CASES],
                         ids=[c[0] for c in PROCESS_CASES])
async def test_run_process(spec: ExecSpec, events: list[Event], code: int,
                           out: dict[int, bytes]) -> None:
    got_code, got_out = await collect(spec, events)
    assert (got_code, got_out) == (code, out)


async def test_missing_command_is_start_error() -> None:
    with pytest.raises(StartError, match="executable file not found"):
        await collect(ExecSpec(["no-such-command-here"], ENV), [])


async def test_client_gone_kills_process_group() -> None:
    start = time.monotonic()
    code, _ = await collect(ExecSpec(["sh", "-c", "sleep 30; sleep 30"], ENV, stdin=True),
                            [ClientGone()])
    assert code == 128 + signal.SIGKILL
    assert time.monotonic() - start < 5


async def test_wrap_prefixes_argv() -> None:
    q: asyncio.Queue[Event] = asyncio.Queue()
    got = bytearray()

    async def output(_: int, data: bytes) -> None:
        got.extend(data)

    code = await run_process(ExecSpec(["x"], ENV), q, output, lambda a: ["echo", "wrapped", *a])
    assert (code, bytes(got)) == (0, b"wrapped x\n")


async def eventually(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``cond()`` holds (the server records results after the client is done)."""
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


@pytest.fixture
async def api_url() -> AsyncIterator[tuple[FakeAPI, str]]:
    api = FakeAPI()
    async with serving(api) as url:
        yield api, url


async def kubectl(url: str, home: Path, *args: str, stdin: bytes = b"",
                  env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """Run the real kubectl against ``url``; killed by PID if it outlives 30 s."""
    assert KUBECTL is not None
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, f"--server={url}", *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**ENV, "HOME": str(home), **(env or {})})
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out, err


KUBECTL_CASES: list[tuple[str, list[str], bytes, int, bytes, bytes]] = [
    ("echo", ["exec", "p", "--", "echo", "hi"], b"", 0, b"hi\n", b""),
    ("stdin to cat", ["exec", "-i", "p", "--", "cat"], b"one\ntwo\n", 0, b"one\ntwo\n", b""),
    ("exit code 3", ["exec", "p", "--", "sh", "-c", "echo err >&2; exit 3"], b"", 3, b"",
     b"command terminated with exit code 3"),
    ("container flag", ["exec", "p", "-c", "c", "--", "sh", "-c", "echo $0"], b"", 0,
     b"sh\n", b""),
    ("missing command", ["exec", "p", "--", "no-such-command-here"], b"", 1, b"",
     b"executable file not found"),
]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
@pytest.mark.parametrize(("args", "stdin", "code", "out", "err"),
                         [c[1:] for c in KUBECTL_CASES], ids=[c[0] for c in KUBECTL_CASES])
async def test_kubectl_exec(api_url: tuple[FakeAPI, str], tmp_path: Path, args: list[str],
                            stdin: bytes, code: int, out: bytes, err: bytes) -> None:
    api, url = api_url
    got_code, got_out, got_err = await kubectl(url, tmp_path, *args, stdin=stdin)
    assert (got_code, got_out) == (code, out), got_err
    assert err in got_err
    assert api.protocols == [channels.V5]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
async def test_kubectl_exec_spdy_fallback_is_refused_cleanly(
        api_url: tuple[FakeAPI, str], tmp_path: Path) -> None:
    # Exec over raw SPDY (stream per channel) is not served: kubectl must fail, not hang.
    _, url = api_url
    code, _, err = await kubectl(url, tmp_path, "exec", "p", "--", "echo", "hi",
                                 env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"})
    assert code != 0 and err


async def test_client_disconnect_kills_process(api_url: tuple[FakeAPI, str]) -> None:
    api, url = api_url
    ws_url = url + PREFIX + "/exec?command=sleep&command=60&stdin=true&stdout=true"
    async with ClientSession() as s, s.ws_connect(ws_url, protocols=[channels.V5]) as ws:
        assert ws.protocol == channels.V5
        await ws.send_bytes(channels.encode(0, b"x"))
    await eventually(lambda: bool(api.exit_codes))
    assert api.exit_codes == [128 + signal.SIGKILL]


async def test_v5_close_signal_ends_stdin(api_url: tuple[FakeAPI, str]) -> None:
    api, url = api_url
    ws_url = url + PREFIX + "/exec?command=cat&stdin=true&stdout=true&stderr=true"
    frames: list[tuple[int, bytes]] = []
    async with ClientSession() as s, s.ws_connect(ws_url, protocols=[channels.V5]) as ws:
        await ws.send_str("\x00text frame\n")
        await ws.send_bytes(channels.close_signal(0))
        async for msg in ws:
            assert msg.type == WSMsgType.BINARY
            frames.append(channels.decode(msg.data))
        assert ws.close_code == 1000
    assert frames == [(1, b"text frame\n"), (3, b'{"metadata":{},"status":"Success"}')]
    await eventually(lambda: bool(api.exit_codes))
    assert api.exit_codes == [0]


def _python_client_exec(url: str, command: list[str], stdin: str | None,
                        resize: tuple[int, int] | None = None,
                        tty: bool = False) -> tuple[str, str, int | None]:
    from kubernetes import client
    from kubernetes.stream import stream

    cfg = client.Configuration()
    cfg.host = url
    api = client.CoreV1Api(client.ApiClient(cfg))
    resp = stream(api.connect_get_namespaced_pod_exec, "p", "default", command=command,
                  stdin=stdin is not None, stdout=True, stderr=True, tty=tty,
                  _preload_content=False)
    try:
        if resize is not None:
            resp.write_channel(channels.RESIZE,
                               f'{{"Width":{resize[0]},"Height":{resize[1]}}}')
        if stdin is not None:
            resp.write_stdin(stdin)
        resp.run_forever(timeout=20)
        return resp.read_stdout(), resp.read_stderr(), resp.returncode
    finally:
        resp.close()


PY_CASES: list[tuple[str, list[str], str | None, tuple[int, int] | None, bool,
                     tuple[str, str, int]]] = [
    ("echo", ["echo", "hi"], None, None, False, ("hi\n", "", 0)),
    ("stderr and exit code", ["sh", "-c", "echo e >&2; exit 4"], None, None, False,
     ("", "e\n", 4)),
    ("stdin as text frames", ["sh", "-c", "read x; echo got $x"], "abc\n", None, False,
     ("got abc\n", "", 0)),
    ("tty resize", ["sh", "-c", "read x; stty size"], "go\n", (90, 33), True,
     ("go\r\n33 90\r\n", "", 0)),
]


@pytest.mark.parametrize(("command", "stdin", "resize", "tty", "want"),
                         [c[1:] for c in PY_CASES], ids=[c[0] for c in PY_CASES])
async def test_python_client_exec(api_url: tuple[FakeAPI, str], command: list[str],
                                  stdin: str | None, resize: tuple[int, int] | None, tty: bool,
                                  want: tuple[str, str, int]) -> None:
    api, url = api_url
    got = await asyncio.to_thread(_python_client_exec, url, command, stdin, resize, tty)
    assert got == want
    assert api.protocols[0] in (channels.V5, channels.V4)


async def test_cancelled_caller_kills_process() -> None:
    q: asyncio.Queue[Event] = asyncio.Queue()
    pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def output(_: int, data: bytes) -> None:
        if not pid.done():
            pid.set_result(int(data.split()[0]))

    task = asyncio.create_task(run_process(
        ExecSpec(["sh", "-c", "echo $$; exec sleep 60"], ENV), q, output))
    child = await asyncio.wait_for(pid, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
