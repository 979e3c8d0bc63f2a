"""Run one command as a child process for exec, fed by client events, with its output handed
to a callback per channel. Independent of the wire protocol (WebSocket or SPDY adapters build
on it).

Contract of :func:`run_process`:

- ``argv`` is passed through ``wrap`` (e.g. a prefix entering the pod's namespaces) and started
  in a new session, so its process group id is its PID;
- without a TTY, stdin/stdout/stderr are pipes (or ``/dev/null`` when not requested) and output
  arrives on channels 1 and 2; with a TTY they all share a pseudo-terminal that becomes the
  child's controlling terminal, output arrives on channel 1 only, and :class:`Resize` events
  set its window size;
- :class:`StdinEOF` closes stdin (with a TTY: writes the terminal EOF character, ``^D``);
- :class:`ClientGone` closes stdin, waits ``gone_grace`` seconds and then kills the process
  group by PID; the same kill happens if the caller is cancelled;
- returns the exit code (``128 + signal`` for a signalled child) once the child has exited and
  its output is drained (at most ``drain_grace`` seconds past the exit: background children
  holding the output open are not waited for);
- raises :class:`StartError` when the command cannot be started.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import pty
import signal
import struct
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from svcnet.agent.streams.channels import STDERR, STDOUT

Output = Callable[[int, bytes], Awaitable[None]]
Wrap = Callable[[list[str]], list[str]]

READ_SIZE = 32 * 1024
TTY_EOF = b"\x04"


@dataclass(frozen=True)
class Stdin:
    """Bytes for the child's standard input."""

    data: bytes


@dataclass(frozen=True)
class StdinEOF:
    """The client has no more input."""


@dataclass(frozen=True)
class Resize:
    """The client's terminal is now ``width`` columns by ``height`` rows."""

    width: int
    height: int


@dataclass(frozen=True)
class ClientGone:
    """The client disconnected: nobody will read the output any more."""


Event = Stdin | StdinEOF | Resize | ClientGone


@dataclass(frozen=True)
class ExecSpec:
    """What to run and which streams the client asked for."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None = None
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False


class StartError(RuntimeError):
    """The command could not be started (message suitable for the client)."""


def exit_code(returncode: int) -> int:
    """Shell-style exit code: a child killed by signal N reports ``128 + N``."""
    return 128 - returncode if returncode < 0 else returncode


def set_window_size(fd: int, width: int, height: int) -> None:
    """Set the terminal size of the pseudo-terminal ``fd`` (TIOCSWINSZ)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def get_window_size(fd: int) -> tuple[int, int]:
    """``(width, height)`` of the terminal ``fd`` (TIOCGWINSZ)."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return cols, rows


def _take_controlling_terminal() -> None:
    # Runs in the child after setsid() and after fd 0 became the pty slave.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def _wait_fd(fd: int, readable: bool) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    if readable:
        loop.add_reader(fd, ready)
    else:
        loop.add_writer(fd, ready)
    try:
        await fut
    finally:
        if readable:
            loop.remove_reader(fd)
        else:
            loop.remove_writer(fd)


async def _read_master(fd: int) -> bytes:
    """Next chunk from a non-blocking pty master; b"" once the slave side is closed (EIO)."""
    while True:
        try:
            return os.read(fd, READ_SIZE)
        except BlockingIOError:
            await _wait_fd(fd, readable=True)
        except OSError as e:
            if e.errno == errno.EIO:
                return b""
            raise


async def _write_master(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
        except BlockingIOError:
            await _wait_fd(fd, readable=False)


class _Child:
    """A started child and the means to feed it."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int | None) -> None:
        self.proc = proc
        self.master = master
        self.stdin_open = True

    async def write(self, data: bytes) -> None:
        if not self.stdin_open:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
            if self.master is not None:
                await _write_master(self.master, data)
            elif self.proc.stdin is not None:
                self.proc.stdin.write(data)
                await self.proc.stdin.drain()

    async def close_stdin(self) -> None:
        if not self.stdin_open:
            return
        if self.master is not None:
            await self.write(TTY_EOF)
        elif self.proc.stdin is not None:
            self.proc.stdin.close()
        self.stdin_open = False

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)


async def _start(spec: ExecSpec, argv: list[str]) -> _Child:
    devnull = asyncio.subprocess.DEVNULL
    pipe = asyncio.subprocess.PIPE
    try:
        if spec.tty:
            master, slave = pty.openpty()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=slave, stdout=slave, stderr=slave, env=spec.env, cwd=spec.cwd,
                    start_new_session=True, preexec_fn=_take_controlling_terminal)
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            os.set_blocking(master, False)
            return _Child(proc, master)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=pipe if spec.stdin else devnull,
            stdout=pipe if spec.stdout else devnull, stderr=pipe if spec.stderr else devnull,
            env=spec.env, cwd=spec.cwd, start_new_session=True)
        return _Child(proc, None)
    except FileNotFoundError as e:
        raise StartError(f'exec: "{argv[0]}": executable file not found in $PATH') from e
    except PermissionError as e:
        raise StartError(f'exec: "{argv[0]}": permission denied') from e
    except OSError as e:
        raise StartError(f"failed to start {argv[0]!r}: {e}") from e


async def _pump_stream(stream: asyncio.StreamReader, channel: int, output: Output) -> None:
    while chunk := await stream.read(READ_SIZE):
        await output(channel, chunk)


async def _pump_master(fd: int, output: Output) -> None:
    while chunk := await _read_master(fd):
        await output(STDOUT, chunk)


async def _feed(child: _Child, events: asyncio.Queue[Event], gone_grace: float) -> None:
    while True:
        ev = await events.get()
        if isinstance(ev, Stdin):
            await child.write(ev.data)
        elif isinstance(ev, StdinEOF):
            await child.close_stdin()
        elif isinstance(ev, Resize):
            if child.master is not None:
                with contextlib.suppress(OSError):
                    set_window_size(child.master, ev.width, ev.height)
        else:
            await child.close_stdin()
            try:
                await asyncio.wait_for(child.proc.wait(), gone_grace)
            except TimeoutError:
                child.kill()
            return


async def run_process(spec: ExecSpec, events: asyncio.Queue[Event], output: Output,
                      wrap: Wrap | None = None, *, drain_grace: float = 2.0,
                      gone_grace: float = 0.5) -> int:
    """Run ``spec`` to completion (see the module docstring for the contract)."""
    argv = wrap(list(spec.argv)) if wrap else list(spec.argv)
    if not argv:
        raise StartError("no command given")
    child = await _start(spec, argv)
    pumps: list[asyncio.Task[None]] = []
    if child.master is not None:
        pumps.append(asyncio.create_task(_pump_master(child.master, output)))
    else:
        if child.proc.stdout is not None:
            pumps.append(asyncio.create_task(_pump_stream(child.proc.stdout, STDOUT, output)))
        if child.proc.stderr is not None:
            pumps.append(asyncio.create_task(_pump_stream(child.proc.stderr, STDERR, output)))
    if not spec.stdin and child.master is None:
        child.stdin_open = False
    feeder = asyncio.create_task(_feed(child, events, gone_grace))
    try:
        returncode = await child.proc.wait()
        if pumps:
            _, pending = await asyncio.wait(pumps, timeout=drain_grace)
            for t in pending:
                t.cancel()
            for t in pumps:
                if not t.cancelled():
                    exc = t.exception()
                    if exc is not None and not isinstance(exc, ConnectionError):
                        raise exc
        return exit_code(returncode)
    finally:
        child.kill()
        for t in (*pumps, feeder):
            t.cancel()
        await asyncio.gather(*pumps, feeder, return_exceptions=True)
        if child.proc.returncode is None:
            with contextlib.suppress(Exception):
                await child.proc.wait()
        if child.master is not None:
            os.close(child.master)
