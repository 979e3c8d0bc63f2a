"""What both runtimes share: container processes, their CRI-format logs, and the state
records that let a later run clean up after a crash.

Container processes
    :func:`start_process` starts one container process in its own session (so its own
    process group, ``pgid == pid``) with ``PR_SET_PDEATHSIG = SIGKILL``, so it dies with
    the agent even on ``kill -9``. Its stdout and stderr are pipes the agent pumps into
    the container's log file. When the main process exits, whatever is left of its process
    group is killed — as the kernel does to a container when its PID 1 exits — while the
    exited main process is still an unreaped zombie, so the group id cannot have been
    reused. The exit is learnt through a pidfd, so nothing else in the program can reap
    the process first.

CRI log format
    One line per record: ``<RFC3339Nano UTC timestamp> <stdout|stderr> <F|P> <text>\\n``;
    lines longer than 16 KiB are cut into ``P`` (partial) records, the last piece being
    ``F``, exactly as containerd's CRI logger does. Timestamps always carry nine fraction
    digits (``2024-05-01T12:00:00.000000000Z``), which RFC3339Nano parsers accept and which
    is the form ``kubectl logs --timestamps`` shows.

State records (all JSON files under the runtime's state directory)
    * :class:`ProcessRecords` — pid, ``/proc/<pid>/stat`` start time and marker of every
      live container process; :func:`kill_recorded` kills exactly those (the start time
      guards against PID reuse; the ``SVCNET_CONTAINER=<pod-uid>/<container>`` environment
      marker finds group members that outlived their leader).
    * :class:`SandboxRecords` — the sandboxes a run made, written *before* any namespace or
      file exists, so a crash at any point leaves a record naming what to remove.
    * :class:`AddressPool` — a persisted IPAM: addresses handed out round-robin from a
      network, so an address freed just now is not given to the next pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from svcnet.agent.runtime.base import ContainerSpec, Sandbox

MARKER_VAR = "SVCNET_CONTAINER"
CRI_MAX_LINE = 16 * 1024
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PR_SET_PDEATHSIG = 1
_READ_SIZE = 64 * 1024
_PUMP_DRAIN_TIMEOUT = 2.0

_libc = ctypes.CDLL(None, use_errno=True)


# --------------------------------------------------------------------------- CRI logs


def cri_timestamp(ns: int) -> str:
    """``ns`` (nanoseconds since the epoch) as RFC3339 UTC with nine fraction digits."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def cri_record(ns: int, stream: str, tag: str, text: bytes) -> bytes:
    """One CRI log line (with its trailing newline) for ``text`` (which has none)."""
    return f"{cri_timestamp(ns)} {stream} {tag} ".encode() + text + b"\n"


class LineSplitter:
    """Cuts a byte stream into CRI records: ``feed`` returns ``(tag, text)`` for every
    complete line (``F``) and every 16 KiB piece of a longer one (``P``); ``finish``
    returns the unterminated rest as a final ``F`` record (none if empty)."""

    def __init__(self, max_line: int = CRI_MAX_LINE) -> None:
        self._buf = bytearray()
        self._max = max_line

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self._buf += data
        out: list[tuple[str, bytes]] = []
        while True:
            nl = self._buf.find(b"\n", 0, self._max + 1)
            if 0 <= nl < self._max:
                out.append(("F", bytes(self._buf[:nl])))
                del self._buf[:nl + 1]
            elif len(self._buf) >= self._max:
                out.append(("P", bytes(self._buf[:self._max])))
                del self._buf[:self._max]
            else:
                return out

    def finish(self) -> list[tuple[str, bytes]]:
        rest, self._buf = bytes(self._buf), bytearray()
        return [("F", rest)] if rest else []


class LogFile:
    """An append-only CRI log file shared by a container's two streams. Each record is
    one ``write`` on an ``O_APPEND`` descriptor, so records never interleave."""

    def __init__(self, path: Path, clock: Callable[[], int] = time.time_ns) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                       | os.O_CLOEXEC, 0o640)
        self._clock = clock

    def write(self, stream: str, records: Iterable[tuple[str, bytes]]) -> None:
        if self._fd is None:
            return
        for tag, text in records:
            os.write(self._fd, cri_record(self._clock(), stream, tag, text))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _Pump:
    """Reads one pipe with the event loop and writes its lines to ``log``; ``done`` is
    set at end of file (or when :meth:`stop` is called)."""

    def __init__(self, fd: int, stream: str, log: LogFile,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._fd = fd
        self._stream = stream
        self._log = log
        self._loop = loop
        self._split = LineSplitter()
        self.done = loop.create_future()
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._log.write(self._stream, self._split.feed(data))
        else:
            self.stop()

    def stop(self) -> None:
        if self.done.done():
            return
        self._loop.remove_reader(self._fd)
        self._log.write(self._stream, self._split.finish())
        os.close(self._fd)
        self.done.set_result(None)


# --------------------------------------------------------------------------- processes


def proc_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks after boot); None if
    there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2:].split()
    return int(fields[19])


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (``Z`` for a zombie), None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2:].split()[0].decode()


def exit_code(status: int) -> int:
    """A ``waitpid`` status as container runtimes report it: the exit status, or
    128+N when killed by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _pdeathsig_preexec(parent: int) -> Callable[[], None]:
    prctl = _libc.prctl

    def preexec() -> None:  # runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the agent died before prctl took effect
            os._exit(127)
    return preexec


class HostProcess:
    """A container process started by :func:`start_process` (implements
    :class:`~svcnet.agent.runtime.base.ContainerProcess`)."""

    def __init__(self, popen: subprocess.Popen[bytes], log: LogFile,
                 loop: asyncio.AbstractEventLoop,
                 on_exit: Callable[[HostProcess], None] | None = None) -> None:
        self.pid = popen.pid
        self._popen = popen
        self._log = log
        self._loop = loop
        self._on_exit = on_exit
        self._returncode: int | None = None
        self._exited: asyncio.Future[int] = loop.create_future()
        assert popen.stdout is not None and popen.stderr is not None
        self._pumps = [_Pump(os.dup(popen.stdout.fileno()), "stdout", log, loop),
                       _Pump(os.dup(popen.stderr.fileno()), "stderr", log, loop)]
        popen.stdout.close()
        popen.stderr.close()
        self._pidfd = os.pidfd_open(self.pid)
        loop.add_reader(self._pidfd, self._reap)

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def _reap(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        # The leader is a zombie now: its pid still names the group, so this reaches
        # only what is left of *this* container.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        try:
            _, status = os.waitpid(self.pid, 0)
            self._returncode = exit_code(status)
        except ChildProcessError:  # reaped elsewhere despite the pidfd; code unknown
            self._returncode = 255
        self._popen.returncode = self._returncode  # Popen must never reap it itself
        if self._on_exit is not None:
            self._on_exit(self)
        self._exited.set_result(self._returncode)

    async def wait(self) -> int:
        """The exit code, once the process has exited and its output is in the log."""
        code = await asyncio.shield(self._exited)
        pending = [p.done for p in self._pumps if not p.done.done()]
        if pending:
            # A process that left the group may still hold the pipes: stop reading.
            await asyncio.wait(pending, timeout=_PUMP_DRAIN_TIMEOUT)
            for p in self._pumps:
                p.stop()
        self._log.close()
        return code

    def signal(self, sig: int) -> None:
        """Signal the whole process group; a no-op once the process has been reaped."""
        if self._returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)


async def start_process(argv: list[str], env: Mapping[str, str], log_path: Path, *,
                        cwd: str | None = None,
                        on_exit: Callable[[HostProcess], None] | None = None
                        ) -> HostProcess:
    """Start ``argv`` as a container process (new session, parent-death SIGKILL, stdin
    from /dev/null, stdout/stderr to ``log_path`` in CRI format). ``env`` is the whole
    environment (``PATH`` defaults to the usual container one). ``on_exit`` runs once the
    process has been reaped. Raises OSError if ``argv[0]`` cannot be started."""
    loop = asyncio.get_running_loop()
    full_env = dict(env)
    full_env.setdefault("PATH", DEFAULT_PATH)
    log = LogFile(log_path)
    try:
        popen = subprocess.Popen(argv, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True,
                                 preexec_fn=_pdeathsig_preexec(os.getpid()))
    except BaseException:
        log.close()
        raise
    return HostProcess(popen, log, loop, on_exit)


# --------------------------------------------------------------------------- records


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


@dataclass(frozen=True)
class ProcessRecord:
    pod_uid: str
    container: str
    pid: int
    start_time: int

    @property
    def marker(self) -> str:
        return f"{self.pod_uid}/{self.container}"


class ProcessRecords:
    """``<state_dir>/processes/<pod-uid>_<container>.json`` for every live container
    process of this runtime."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "processes"

    def _path(self, pod_uid: str, container: str) -> Path:
        return self.dir / f"{_safe(pod_uid)}_{_safe(container)}.json"

    def add(self, pod_uid: str, container: str, pid: int) -> ProcessRecord | None:
        """Record ``pid`` (None if it has already gone)."""
        start = proc_start_time(pid)
        if start is None:
            return None
        rec = ProcessRecord(pod_uid, container, pid, start)
        _write_json(self._path(pod_uid, container), asdict(rec))
        return rec

    def remove(self, pod_uid: str, container: str) -> None:
        self._path(pod_uid, container).unlink(missing_ok=True)

    def all(self) -> list[ProcessRecord]:
        out = []
        for p in sorted(self.dir.glob("*.json")):
            with contextlib.suppress(OSError, ValueError, TypeError):
                out.append(ProcessRecord(**json.loads(p.read_text())))
        return out


def marked_pids(markers: set[str]) -> dict[int, str]:
    """Processes whose environment holds ``SVCNET_CONTAINER=<m>`` for some ``m`` in
    ``markers`` (pid → marker). Processes we may not read are skipped."""
    want = {f"{MARKER_VAR}={m}".encode(): m for m in markers}
    found: dict[int, str] = {}
    if not want:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            env = Path(entry.path, "environ").read_bytes()
        except OSError:
            continue
        for var in env.split(b"\0"):
            if var in want:
                found[int(entry.name)] = want[var]
                break
    return found


def kill_recorded(records: Iterable[ProcessRecord]) -> list[int]:
    """SIGKILL what is left of recorded container processes: each group whose leader
    still has the recorded start time, and every process carrying a recorded marker.
    Returns the pids signalled."""
    recs = list(records)
    killed: list[int] = []
    for rec in recs:
        if proc_start_time(rec.pid) == rec.start_time:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(rec.pid, signal.SIGKILL)
                killed.append(rec.pid)
    for pid in marked_pids({r.marker for r in recs}):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


class SandboxRecords:
    """``<state_dir>/sandboxes/<pod-uid>.json``: a :class:`Sandbox` plus runtime extras
    (e.g. the veth name)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "sandboxes"

    def _path(self, pod_uid: str) -> Path:
        return self.dir / f"{_safe(pod_uid)}.json"

    def put(self, sandbox: Sandbox, **extra: str) -> None:
        _write_json(self._path(sandbox.pod_uid), {"sandbox": asdict(sandbox),
                                                  "extra": extra})

    def remove(self, pod_uid: str) -> None:
        self._path(pod_uid).unlink(missing_ok=True)

    def get(self, pod_uid: str) -> Sandbox | None:
        """The recorded sandbox of ``pod_uid`` (None if none or unreadable)."""
        loaded = self._load(self._path(pod_uid))
        return loaded[0] if loaded else None

    def all(self) -> list[tuple[Sandbox, dict[str, str]]]:
        return [r for p in sorted(self.dir.glob("*.json")) if (r := self._load(p))]

    @staticmethod
    def _load(path: Path) -> tuple[Sandbox, dict[str, str]] | None:
        try:
            data = json.loads(path.read_text())
            return Sandbox(**data["sandbox"]), dict(data["extra"])
        except (OSError, ValueError, TypeError, KeyError):
            return None


class AddressPool:
    """A persisted IPAM over ``network`` (``<path>``: owner of each address and the last
    one handed out). Skips the network and broadcast addresses and ``reserved``.
    Allocation is round-robin after the last address handed out."""

    def __init__(self, path: Path, network: str,
                 reserved: Iterable[str] = ()) -> None:
        self.path = path
        self.network = ipaddress.IPv4Network(network)
        self._reserved = {ipaddress.IPv4Address(a) for a in reserved}
        self._owners: dict[str, str] = {}
        self._last = int(self.network.network_address)
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(path.read_text())
            self._owners = {str(k): str(v) for k, v in data["owners"].items()}
            self._last = int(ipaddress.IPv4Address(data["last"]))

    def _save(self) -> None:
        _write_json(self.path, {"owners": self._owners,
                                "last": str(ipaddress.IPv4Address(self._last))})

    def owned(self) -> dict[str, str]:
        """address → owner."""
        return dict(self._owners)

    def allocate(self, owner: str) -> str:
        """A free address for ``owner`` (its existing one if it has one). Raises
        RuntimeError when the network is full."""
        for ip, who in self._owners.items():
            if who == owner:
                return ip
        first = int(self.network.network_address) + 1
        last = int(self.network.broadcast_address) - 1
        size = last - first + 1
        for step in range(1, size + 1):
            cand = first + (self._last - first + step) % size
            addr = ipaddress.IPv4Address(cand)
            if str(addr) not in self._owners and addr not in self._reserved:
                self._owners[str(addr)] = owner
                self._last = cand
                self._save()
                return str(addr)
        raise RuntimeError(f"no free address left in {self.network}")

    def release(self, owner: str) -> None:
        """Free every address held by ``owner`` (no-op if none)."""
        kept = {ip: who for ip, who in self._owners.items() if who != owner}
        if kept != self._owners:
            self._owners = kept
            self._save()


# --------------------------------------------------------------------------- table


def container_env(sandbox: Sandbox, spec: ContainerSpec) -> dict[str, str]:
    """The environment of a container process: ``POD_IP`` and ``HOSTNAME`` (which the
    container's own env may override, as with a real runtime), then ``spec.env``, then
    the ``SVCNET_CONTAINER=<pod-uid>/<container>`` marker (always svcnet's)."""
    env = {"POD_IP": sandbox.ip, "HOSTNAME": sandbox.hostname}
    env.update(spec.env)
    env[MARKER_VAR] = f"{sandbox.pod_uid}/{spec.name}"
    return env


class ProcessTable:
    """The live container processes of one runtime, each recorded in
    :class:`ProcessRecords` from start until it has been reaped."""

    def __init__(self, state_dir: Path) -> None:
        self.records = ProcessRecords(state_dir)
        self._live: dict[str, dict[str, HostProcess]] = {}

    async def start(self, sandbox: Sandbox, spec: ContainerSpec,
                    argv_prefix: list[str]) -> HostProcess:
        """Start ``argv_prefix + spec.argv`` for ``sandbox`` (see :func:`start_process`)
        and record it."""
        uid, name = sandbox.pod_uid, spec.name

        def exited(proc: HostProcess) -> None:
            mine = self._live.get(uid, {})
            if mine.get(name) is proc:
                del mine[name]
                self.records.remove(uid, name)

        proc = await start_process(argv_prefix + spec.argv, container_env(sandbox, spec),
                                   spec.log_path, cwd=spec.working_dir, on_exit=exited)
        self._live.setdefault(uid, {})[name] = proc
        self.records.add(uid, name, proc.pid)
        return proc

    async def kill_pod(self, pod_uid: str, timeout: float = 5.0) -> None:
        """SIGKILL every container process group of ``pod_uid`` (live or only
        recorded) and wait up to ``timeout`` for the live ones to be reaped."""
        live = list(self._live.pop(pod_uid, {}).values())
        for proc in live:
            proc.signal(signal.SIGKILL)
        recorded = [r for r in self.records.all() if r.pod_uid == pod_uid]
        kill_recorded(recorded)
        for r in recorded:
            self.records.remove(r.pod_uid, r.container)
        if live:
            await asyncio.wait([asyncio.ensure_future(p.wait()) for p in live],
                               timeout=timeout)

    async def kill_all(self, timeout: float = 5.0) -> None:
        """:meth:`kill_pod` for every pod, live or recorded."""
        uids = set(self._live) | {r.pod_uid for r in self.records.all()}
        for uid in sorted(uids):
            await self.kill_pod(uid, timeout)
