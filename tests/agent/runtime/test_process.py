"""The process runtime: pods as plain processes on their own loopback address.

Needs no privileges. Each test draws its own /24 inside 127/8 so parallel runs do not
hand out the same address; every process is killed by pid in a finaliser.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from svcnet.agent.runtime import RUNTIMES, default_runtime_name, get_runtime
from svcnet.agent.runtime.base import ContainerSpec, Sandbox, SandboxSpec
from svcnet.agent.runtime.containers import ProcessRecords, proc_state
from svcnet.agent.runtime.process import ProcessRuntime

PY = sys.executable
SERVER = ("import os, socket\n"
          "s = socket.socket()\n"
          "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind((os.environ['POD_IP'], 8080))\n"
          "s.listen()\n"
          "print('listening', flush=True)\n"
          "while True:\n"
          "    c, _ = s.accept()\n"
          "    c.sendall(f\"{os.environ['HOSTNAME']} {os.environ['POD_IP']}\".encode())\n"
          "    c.close()\n")
CLIENT = ("import socket, sys\n"
          "c = socket.create_connection((sys.argv[1], 8080), timeout=5)\n"
          "print(c.recv(100).decode())\n")


def _range() -> str:
    return f"127.{random.randint(33, 254)}.{random.randint(0, 255)}.0/24"


def gone(pid: int) -> bool:
    return proc_state(pid) in (None, "Z")


async def wait_for(cond: object, timeout: float = 10.0) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.fixture
def pids() -> Iterator[list[int]]:
    found: list[int] = []
    yield found
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    runtime = ProcessRuntime(tmp_path / "state", node_name="n", address_range=_range())
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.shutdown(remove_all=True)


def _spec(i: int) -> SandboxSpec:
    return SandboxSpec(f"uid-{i}-{random.getrandbits(32):08x}", "default", f"p{i}", f"p{i}")


# ------------------------------------------------------------------ construction


def test_registry(tmp_path: Path) -> None:
    assert set(RUNTIMES) == {"netns", "process"}
    assert default_runtime_name() in RUNTIMES
    # The agent passes the same configuration to either runtime.
    runtime = get_runtime("process", node_name="n", pod_cidr="10.244.0.0/24",
                          state_dir=tmp_path)
    assert isinstance(runtime, ProcessRuntime) and runtime.name == "process"
    with pytest.raises(ValueError, match="unknown pod runtime 'nope'"):
        get_runtime("nope")


@pytest.mark.parametrize(("name", "address_range", "ok"), [
    ("default range", "127.32.0.0/16", True),
    ("small loopback range", "127.9.9.0/28", True),
    ("pod network is refused", "10.244.0.0/24", False),
    ("host network is refused", "192.168.0.0/16", False),
])
def test_address_range_must_be_loopback(name: str, address_range: str, ok: bool,
                                        tmp_path: Path) -> None:
    if ok:
        ProcessRuntime(tmp_path, address_range=address_range)
    else:
        with pytest.raises(ValueError, match="not a loopback range"):
            ProcessRuntime(tmp_path, address_range=address_range)


# ------------------------------------------------------------------ pods


async def test_pods_on_their_own_loopback_addresses(rt: ProcessRuntime,
                                                    tmp_path: Path) -> None:
    a = await rt.create_sandbox(_spec(1))
    b = await rt.create_sandbox(_spec(2))
    net = ipaddress.IPv4Network(rt.address_range)
    assert a.ip != b.ip and {ipaddress.IPv4Address(a.ip), ipaddress.IPv4Address(b.ip)} <= \
        set(net.hosts())
    assert (a.netns, rt.exec_prefix(a)) == (None, [])
    log = tmp_path / "srv.log"
    server = await rt.start_container(b, ContainerSpec("srv", [PY, "-c", SERVER], {},
                                                       log_path=log))
    await wait_for(lambda: log.exists() and b"listening" in log.read_bytes())

    client = await asyncio.create_subprocess_exec(
        *rt.exec_prefix(a), PY, "-c", CLIENT, b.ip, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(client.communicate(), 15)
    assert (client.returncode, out.decode().strip()) == (0, f"p2 {b.ip}")

    reader, writer = await rt.open_connection(b, 8080)
    assert await asyncio.wait_for(reader.read(), 5) == f"p2 {b.ip}".encode()
    writer.close()
    server.signal(signal.SIGTERM)
    assert await server.wait() == 143
    assert "stdout F listening" in log.read_text()


async def test_remove_sandbox_kills_and_frees(rt: ProcessRuntime, tmp_path: Path) -> None:
    sb = await rt.create_sandbox(_spec(1))
    assert await rt.create_sandbox(SandboxSpec(sb.pod_uid, "default", "p1", "p1")) == sb
    proc = await rt.start_container(sb, ContainerSpec("c", ["sleep", "60"], {},
                                                      log_path=tmp_path / "c.log"))
    await rt.remove_sandbox(sb)
    assert proc.returncode == 137
    assert ProcessRecords(rt.state_dir).all() == []
    await rt.remove_sandbox(sb)  # idempotent
    assert (await rt.create_sandbox(_spec(2))).ip != sb.ip  # round robin


CRASH = """
import asyncio, json, sys
from pathlib import Path
from svcnet.agent.runtime.process import ProcessRuntime
from svcnet.agent.runtime.base import ContainerSpec, SandboxSpec

async def main() -> None:
    state, out, address_range = sys.argv[1:4]
    rt = ProcessRuntime(Path(state), address_range=address_range)
    await rt.start()
    leaders = []
    for i in range(2):
        sb = await rt.create_sandbox(SandboxSpec(f"crash-{i}", "default", f"c{i}", f"c{i}"))
        gc = Path(out) / f"gc{i}.pid"
        proc = await rt.start_container(sb, ContainerSpec(
            "main", ["sh", "-c", f"sleep 300 & echo $! > {gc}; wait"], {},
            log_path=Path(out) / f"c{i}.log"))
        leaders.append(proc.pid)
    print(json.dumps(leaders), flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


async def test_cleanup_after_agent_crash(tmp_path: Path, pids: list[int]) -> None:
    """kill -9 of the agent: containers die with it; their grandchildren are found by
    the next start() (same state dir) through the recorded markers."""
    state, address_range = tmp_path / "state", _range()
    agent = await asyncio.create_subprocess_exec(
        PY, "-c", CRASH, str(state), str(tmp_path), address_range,
        stdout=asyncio.subprocess.PIPE)
    pids.append(agent.pid)
    assert agent.stdout is not None
    leaders = json.loads(await asyncio.wait_for(agent.stdout.readline(), 60) or b"[]")
    pids.extend(leaders)
    gc_files = [tmp_path / "gc0.pid", tmp_path / "gc1.pid"]
    await wait_for(lambda: all(f.exists() and f.read_text().strip() for f in gc_files))
    grandchildren = [int(f.read_text()) for f in gc_files]
    pids.extend(grandchildren)

    agent.kill()
    await agent.wait()
    for leader in leaders:
        await wait_for(lambda leader=leader: gone(leader))
    assert not any(gone(g) for g in grandchildren)

    again = ProcessRuntime(state, address_range=address_range)
    await again.start()
    try:
        for g in grandchildren:
            await wait_for(lambda g=g: gone(g))
        assert ProcessRecords(state).all() == []
    finally:
        await again.shutdown(remove_all=True)


async def test_shutdown_remove_all(tmp_path: Path) -> None:
    runtime = ProcessRuntime(tmp_path / "state", address_range=_range())
    await runtime.start()
    procs = []
    sandboxes: list[Sandbox] = []
    for i in range(2):
        sandboxes.append(await runtime.create_sandbox(_spec(i)))
        procs.append(await runtime.start_container(sandboxes[-1], ContainerSpec(
            "c", ["sleep", "60"], {}, log_path=tmp_path / f"c{i}.log")))
    await runtime.shutdown(remove_all=True)
    assert [p.returncode for p in procs] == [137, 137]
    assert ProcessRecords(tmp_path / "state").all() == []
    assert json.loads((tmp_path / "state" / "ipam.json").read_text())["owners"] == {}
