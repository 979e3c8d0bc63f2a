"""Container processes, CRI logs and state records shared by the runtimes.

Processes started here are plain children of the test (no namespaces, no root); each is
killed by its own pid/process group in a finaliser.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from svcnet.agent.runtime.base import ContainerSpec, Sandbox
from svcnet.agent.runtime.containers import (
    AddressPool,
    HostProcess,
    LineSplitter,
    ProcessRecords,
    ProcessTable,
    cri_record,
    cri_timestamp,
    exit_code,
    kill_recorded,
    marked_pids,
    proc_start_time,
    proc_state,
    start_process,
)

PY = sys.executable
CRI_LINE = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) ([FP]) (.*)$")


def gone(pid: int) -> bool:
    return proc_state(pid) in (None, "Z")


async def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        await asyncio.sleep(0.02)
    return gone(pid)


@pytest.fixture
def pgroups() -> Iterator[list[int]]:
    """Process groups (= leader pids) and pids the test started; killed at the end."""
    started: list[int] = []
    yield started
    for pid in started:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)


def parse_log(path: Path) -> list[tuple[str, str, bytes]]:
    out = []
    for line in path.read_bytes().splitlines():
        m = CRI_LINE.match(line)
        assert m, f"not a CRI log line: {line[:80]!r}"
        out.append((m.group(2).decode(), m.group(3).decode(), m.group(4)))
    return out


# ------------------------------------------------------------------ pure pieces


@pytest.mark.parametrize(("name", "chunks", "max_line", "want"), [
    ("one full line", [b"hello\n"], 16, [("F", b"hello")]),
    ("line split over reads", [b"hel", b"lo\nwor", b"ld\n"], 16,
     [("F", b"hello"), ("F", b"world")]),
    ("empty line", [b"\n"], 16, [("F", b"")]),
    ("unterminated tail at eof", [b"a\nrest"], 16, [("F", b"a"), ("F", b"rest")]),
    ("long line cut into partials", [b"x" * 10 + b"\n"], 4,
     [("P", b"xxxx"), ("P", b"xxxx"), ("F", b"xx")]),
    ("line of exactly max then newline", [b"abcd\n"], 4, [("P", b"abcd"), ("F", b"")]),
    ("long unterminated tail", [b"abcdef"], 4, [("P", b"abcd"), ("F", b"ef")]),
])
def test_line_splitter(name: str, chunks: list[bytes], max_line: int,
                       want: list[tuple[str, bytes]]) -> None:
    split = LineSplitter(max_line)
    got = [rec for c in chunks for rec in split.feed(c)] + split.finish()
    assert got == want, name


@pytest.mark.parametrize(("name", "ns", "want"), [
    ("epoch", 0, "1970-01-01T00:00:00.000000000Z"),
    ("nanoseconds kept", 1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456789Z"),
    ("trailing zeros kept", 1_700_000_000_100_000_000, "2023-11-14T22:13:20.100000000Z"),
])
def test_cri_timestamp(name: str, ns: int, want: str) -> None:
    assert cri_timestamp(ns) == want, name


def test_cri_record_shape() -> None:
    assert cri_record(0, "stderr", "P", b"x y") == b"1970-01-01T00:00:00.000000000Z stderr P x y\n"


@pytest.mark.parametrize(("name", "status", "want"), [
    ("exit 0", 0, 0),
    ("exit 3", 3 << 8, 3),
    ("killed by SIGTERM", signal.SIGTERM, 143),
    ("killed by SIGKILL", signal.SIGKILL, 137),
])
def test_exit_code(name: str, status: int, want: int) -> None:
    assert exit_code(status) == want, name


def test_address_pool_round_robin_persisted(tmp_path: Path) -> None:
    path = tmp_path / "ipam.json"
    pool = AddressPool(path, "10.1.0.0/29", reserved=["10.1.0.1"])
    a, b = pool.allocate("a"), pool.allocate("b")
    assert (a, b) == ("10.1.0.2", "10.1.0.3")
    assert pool.allocate("a") == a  # same owner, same address
    pool.release("a")
    again = AddressPool(path, "10.1.0.0/29", reserved=["10.1.0.1"])
    assert again.owned() == {b: "b"}
    # Round robin: the address freed just now is not the next one handed out.
    assert again.allocate("c") == "10.1.0.4"
    assert [again.allocate(x) for x in "def"] == ["10.1.0.5", "10.1.0.6", "10.1.0.2"]
    with pytest.raises(RuntimeError, match="no free address"):
        again.allocate("g")  # .0 network, .1 reserved, .7 broadcast, .2-.6 taken


# ------------------------------------------------------------------ processes


@pytest.mark.parametrize(("name", "script", "send", "want"), [
    ("clean exit", "import sys; sys.exit(0)", None, 0),
    ("exit status 3", "import sys; sys.exit(3)", None, 3),
    ("SIGTERM", "import time; print('up', flush=True); time.sleep(60)", signal.SIGTERM, 143),
    ("SIGKILL", "import time; print('up', flush=True); time.sleep(60)", signal.SIGKILL, 137),
])
async def test_wait_returns_exit_code(name: str, script: str, send: int | None, want: int,
                                      tmp_path: Path, pgroups: list[int]) -> None:
    log = tmp_path / "c.log"
    proc = await start_process([PY, "-c", script], {}, log)
    pgroups.append(proc.pid)
    if send is not None:
        await _wait_for_log(log, b"up")
        proc.signal(send)
    assert await asyncio.wait_for(proc.wait(), 10) == want, name
    assert proc.returncode == want
    proc.signal(signal.SIGTERM)  # no-op once reaped


async def _wait_for_log(log: Path, needle: bytes, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_bytes():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{needle!r} not in {log}")


async def test_logs_in_cri_format(tmp_path: Path, pgroups: list[int]) -> None:
    log = tmp_path / "sub" / "c.log"
    script = ("import sys\n"
              "print('to stdout', flush=True)\n"
              "print('to stderr', file=sys.stderr, flush=True)\n"
              "sys.stdout.write('x' * 20000 + '\\n')\n"
              "sys.stdout.write('no newline at end')\n")
    proc = await start_process([PY, "-c", script], {}, log)
    pgroups.append(proc.pid)
    assert await proc.wait() == 0
    records = parse_log(log)
    assert ("stdout", "F", b"to stdout") in records
    assert ("stderr", "F", b"to stderr") in records
    stdout = [r for r in records if r[0] == "stdout"]
    assert stdout[1:] == [("stdout", "P", b"x" * 16384), ("stdout", "F", b"x" * 3616),
                          ("stdout", "F", b"no newline at end")]


async def test_environment_and_working_dir(tmp_path: Path, pgroups: list[int]) -> None:
    log = tmp_path / "c.log"
    script = "import os; print(os.getcwd(), os.environ['FOO'], os.environ['PATH'] != '')"
    proc = await start_process([PY, "-c", script], {"FOO": "bar"}, log, cwd=str(tmp_path))
    pgroups.append(proc.pid)
    assert await proc.wait() == 0
    assert parse_log(log)[0][2] == f"{tmp_path} bar True".encode()


async def test_parent_death_signal_is_sigkill(tmp_path: Path, pgroups: list[int]) -> None:
    log = tmp_path / "c.log"
    script = ("import ctypes; v = ctypes.c_int(); "
              "ctypes.CDLL(None).prctl(2, ctypes.byref(v), 0, 0, 0); print(v.value)")
    proc = await start_process([PY, "-c", script], {}, log)
    pgroups.append(proc.pid)
    assert await proc.wait() == 0
    assert parse_log(log)[0][2] == str(int(signal.SIGKILL)).encode()


async def test_own_process_group_and_signal_reaches_grandchild(
        tmp_path: Path, pgroups: list[int]) -> None:
    log = tmp_path / "c.log"
    gc_file = tmp_path / "gc.pid"
    # The shell ignores SIGTERM; only its grandchild (which restores the default action)
    # can end it, by dying of the signal.
    ready = tmp_path / "ready"
    child = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_DFL); "
             'open(sys.argv[1], "w").close(); time.sleep(60)')
    script = f"trap '' TERM; {PY} -c '{child}' {ready} & echo $! > {gc_file}; wait $!; exit 7"
    proc = await start_process(["sh", "-c", script], {}, log)
    pgroups.append(proc.pid)
    await _wait_for_file(gc_file)
    grandchild = int(gc_file.read_text())
    pgroups.append(grandchild)
    assert os.getpgid(proc.pid) == proc.pid
    assert os.getpgid(grandchild) == proc.pid
    await _wait_for_file(ready, empty_ok=True)  # SIGTERM's default action is back
    proc.signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 10) == 7
    assert await wait_gone(grandchild)


async def test_group_killed_when_main_process_exits(tmp_path: Path,
                                                    pgroups: list[int]) -> None:
    gc_file = tmp_path / "gc.pid"
    proc = await start_process(["sh", "-c", f"sleep 60 & echo $! > {gc_file}; exit 0"],
                               {}, tmp_path / "c.log")
    pgroups.append(proc.pid)
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    grandchild = int(gc_file.read_text())
    pgroups.append(grandchild)
    assert await wait_gone(grandchild)


async def _wait_for_file(path: Path, timeout: float = 10.0, empty_ok: bool = False) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (empty_ok or path.read_text().strip()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never written")


async def test_missing_command_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        await start_process([str(tmp_path / "no-such-binary")], {}, tmp_path / "c.log")


# ------------------------------------------------------------------ records


async def test_records_and_kill_recorded(tmp_path: Path, pgroups: list[int]) -> None:
    """A recorded process is killed; a record whose start time does not match (a reused
    pid) is left alone; a marked process that left its group is still found."""
    table = ProcessTable(tmp_path / "state")
    sandbox = Sandbox(pod_uid="uid-rec", namespace="default", name="p", ip="127.0.0.1",
                      netns=None, hostname="p")
    gc_file = tmp_path / "gc.pid"
    spec = ContainerSpec(name="c", argv=["sh", "-c",
                                         f"setsid sleep 60 & echo $! > {gc_file}; exec sleep 60"],
                         env={}, log_path=tmp_path / "c.log")
    proc = await table.start(sandbox, spec, [])
    pgroups.append(proc.pid)
    await _wait_for_file(gc_file)
    escaped = int(gc_file.read_text())
    pgroups.append(escaped)
    deadline = time.monotonic() + 5
    while os.getpgid(escaped) == proc.pid and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # until setsid has run
    assert os.getpgid(escaped) != proc.pid

    records = ProcessRecords(tmp_path / "state")
    (rec,) = records.all()
    assert (rec.pod_uid, rec.container, rec.pid) == ("uid-rec", "c", proc.pid)
    assert rec.start_time == proc_start_time(proc.pid)
    assert marked_pids({"uid-rec/c"}) == {proc.pid: "uid-rec/c", escaped: "uid-rec/c"}

    stale = type(rec)(rec.pod_uid, "other", proc.pid, rec.start_time + 1)
    assert kill_recorded([stale]) == []  # wrong start time, no marker for "other"
    assert not gone(proc.pid)

    killed = kill_recorded([rec])
    assert set(killed) >= {proc.pid, escaped}
    assert await asyncio.wait_for(proc.wait(), 10) == 137
    assert await wait_gone(escaped)
    assert records.all() == []  # removed once reaped


async def test_table_kill_pod(tmp_path: Path, pgroups: list[int]) -> None:
    table = ProcessTable(tmp_path)
    sb = Sandbox(pod_uid="uid-k", namespace="d", name="p", ip="127.0.0.1", netns=None,
                 hostname="p")
    procs: list[HostProcess] = []
    for c in ("a", "b"):
        procs.append(await table.start(sb, ContainerSpec(
            name=c, argv=["sleep", "60"], env={}, log_path=tmp_path / f"{c}.log"), []))
        pgroups.append(procs[-1].pid)
    assert len(table.records.all()) == 2
    await table.kill_pod("uid-k")
    assert [p.returncode for p in procs] == [137, 137]
    assert table.records.all() == []
