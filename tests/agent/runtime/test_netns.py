"""The netns runtime against the real kernel: node namespace and bridge, pods talking
across it, each pod's hostname/resolv.conf/hosts, container processes, crash clean-up.

Every test uses its own prefix (``svt<hex4>``) and node name, so parallel runs never
meet; a finaliser deletes the namespaces carrying that prefix by name (after killing the
processes ``ip netns pids`` lists in them) and their /etc/netns directories, also when
the test fails. Cluster addresses are only used from inside those namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from svcnet.agent.runtime import get_runtime
from svcnet.agent.runtime.base import ContainerSpec, DNSSettings, Sandbox, SandboxSpec
from svcnet.agent.runtime.containers import ProcessRecords, proc_state
from svcnet.agent.runtime.netns import (
    BRIDGE,
    CommandError,
    NetnsRuntime,
    hosts_file,
    node_netns_name,
    pod_netns_name,
    resolv_conf,
    short_uid,
    veth_name,
)

PY = sys.executable
POD_CIDR = "10.244.77.0/24"
GATEWAY = "10.244.77.1"
DNS = DNSSettings(nameservers=("10.96.0.10",),
                  searches=("default.svc.cluster.local", "svc.cluster.local",
                            "cluster.local"),
                  options=("ndots:5",))
SERVER = ("import os, socket\n"
          "s = socket.socket()\n"
          "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind((os.environ['POD_IP'], 8080))\n"
          "s.listen()\n"
          "print('listening', flush=True)\n"
          "while True:\n"
          "    c, _ = s.accept()\n"
          "    c.sendall(f\"{socket.gethostname()} {os.environ['POD_IP']}\".encode())\n"
          "    c.close()\n")
CLIENT = ("import socket, sys\n"
          "c = socket.create_connection((sys.argv[1], 8080), timeout=5)\n"
          "print(c.recv(100).decode())\n")


def _why_not() -> str:
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "unshare", "sysctl", "hostname"):
        if shutil.which(tool) is None:
            return f"needs the {tool} command"
    return ""


needs_netns = pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "ok")


# ------------------------------------------------------------------ pure pieces


@pytest.mark.parametrize(("name", "got", "want"), [
    ("node namespace", node_netns_name("svcnet", "node-a"), "svcnet-node-node-a"),
    ("long node name is trimmed", len(node_netns_name("svcnet", "n" * 300)), 64),
    ("pod namespace from a UUID",
     pod_netns_name("svcnet", "3F2A9C1B-7D4E-4b0a-9c1d-0123456789ab"), "svcnet-3f2a9c1b7d4e"),
    ("non-UUID uid is hashed", len(short_uid("pod/with/slashes")), 12),
    ("veth fits IFNAMSIZ", len(veth_name("3f2a9c1b-7d4e-4b0a-9c1d-0123456789ab", "s")), 15),
    ("veth differs per pod", veth_name("a", "s") != veth_name("b", "s"), True),
    ("veth differs per sandbox", veth_name("a", "s1") != veth_name("a", "s2"), True),
])
def test_names(name: str, got: object, want: object) -> None:
    assert got == want, name


@pytest.mark.parametrize(("name", "dns", "want"), [
    ("cluster first", DNS,
     "search default.svc.cluster.local svc.cluster.local cluster.local\n"
     "nameserver 10.96.0.10\noptions ndots:5\n"),
    ("two nameservers, no search, no options",
     DNSSettings(("1.1.1.1", "8.8.8.8"), (), ()), "nameserver 1.1.1.1\nnameserver 8.8.8.8\n"),
])
def test_resolv_conf(name: str, dns: DNSSettings, want: str) -> None:
    assert resolv_conf(dns) == want, name


HOSTS_HEAD = ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
              "::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
              "fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")


@pytest.mark.parametrize(("name", "spec", "want_tail"), [
    ("plain pod", SandboxSpec("u", "default", "web", "web"), "10.0.0.5\tweb\n"),
    ("hostname and subdomain", SandboxSpec("u", "ns1", "web-0", "web-0", subdomain="h"),
     "10.0.0.5\tweb-0.h.ns1.svc.example.org\tweb-0\n"),
    ("host aliases", SandboxSpec("u", "default", "web", "web", host_aliases=(
        ("127.0.0.1", ("foo.local", "bar.local")), ("10.1.2.3", ("foo.remote",)))),
     "10.0.0.5\tweb\n\n# Entries added by HostAliases.\n"
     "127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"),
])
def test_hosts_file(name: str, spec: SandboxSpec, want_tail: str) -> None:
    assert hosts_file(spec, "10.0.0.5", "example.org") == HOSTS_HEAD + want_tail, name


# ------------------------------------------------------------------ fixtures


def _purge(prefix: str) -> None:
    """Delete the namespaces named ``<prefix>-…`` (killing what runs in them by pid)."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(prefix + "-"):
            continue
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    prefix, node = f"svt{secrets.token_hex(2)}", f"n{secrets.token_hex(2)}"
    try:
        yield prefix, node
    finally:
        _purge(prefix)


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Pids the test learnt; SIGKILLed (one by one) at the end."""
    found: list[int] = []
    yield found
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
async def rt(names: tuple[str, str], tmp_path: Path) -> AsyncIterator[NetnsRuntime]:
    prefix, node = names
    runtime = NetnsRuntime(node, POD_CIDR, tmp_path / "state", prefix=prefix)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.shutdown(remove_all=True)


def _uid() -> str:
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


async def run_in(rt: NetnsRuntime, sb: Sandbox, *cmd: str, timeout: float = 15.0
                 ) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *rt.exec_prefix(sb), *cmd, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def wait_for(cond: object, timeout: float = 10.0) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def gone(pid: int) -> bool:
    return proc_state(pid) in (None, "Z")


def netns_list() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.split()}


def run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


# ------------------------------------------------------------------ node


@needs_netns
async def test_node_namespace(rt: NetnsRuntime) -> None:
    ns = rt.node_netns
    assert ns in netns_list()
    assert f"inet {GATEWAY}/24" in run("ip", "-n", ns, "-4", "-o", "addr", "show", BRIDGE)
    assert "state UP" in run("ip", "-n", ns, "link", "show", BRIDGE) or \
        ",UP" in run("ip", "-n", ns, "link", "show", BRIDGE)
    sysctl = ["ip", "netns", "exec", ns, "sysctl", "-n"]
    assert run(*sysctl, "net.ipv4.ip_forward").strip() == "1"
    if Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        assert run(*sysctl, "net.bridge.bridge-nf-call-iptables").strip() == "0"
    else:
        assert rt.notes  # says br_netfilter is missing


@needs_netns
def test_get_runtime_builds_netns(tmp_path: Path) -> None:
    runtime = get_runtime("netns", node_name="x", pod_cidr=POD_CIDR, state_dir=tmp_path)
    assert isinstance(runtime, NetnsRuntime) and runtime.name == "netns"
    with pytest.raises(ValueError, match="unknown pod runtime"):
        get_runtime("docker")


# ------------------------------------------------------------------ pods


@needs_netns
async def test_pod_to_pod_across_the_bridge(rt: NetnsRuntime, tmp_path: Path) -> None:
    a = await rt.create_sandbox(SandboxSpec(_uid(), "default", "pa", "pa", dns=DNS))
    b = await rt.create_sandbox(SandboxSpec(_uid(), "default", "pb", "pb", dns=DNS))
    assert a.ip != b.ip
    assert {a.ip, b.ip} <= {f"10.244.77.{i}" for i in range(2, 255)}
    server = await rt.start_container(b, ContainerSpec(
        "srv", [PY, "-c", SERVER], {}, log_path=tmp_path / "srv.log"))
    await wait_for(lambda: b"listening" in (tmp_path / "srv.log").read_bytes()
                   if (tmp_path / "srv.log").exists() else False)

    rc, out = await run_in(rt, a, PY, "-c", CLIENT, b.ip)
    assert (rc, out.strip()) == (0, f"pb {b.ip}")  # from pod A, across the bridge

    reader, writer = await rt.open_connection(b, 8080)  # from the node namespace
    assert await asyncio.wait_for(reader.read(), 5) == f"pb {b.ip}".encode()
    writer.close()

    # Nothing of the pods appears in the host's namespace; bridge ports hairpin.
    host_links = run("ip", "-o", "link", "show")
    for sb in (a, b):
        veth = rt.host_veth(sb)
        assert veth is not None and veth not in host_links
        details = run("ip", "-n", rt.node_netns, "-d", "link", "show", veth)
        assert "hairpin on" in details and f"master {BRIDGE}" in details
    server.signal(signal.SIGTERM)
    assert await server.wait() == 143


@needs_netns
async def test_sandbox_identity(rt: NetnsRuntime) -> None:
    spec = SandboxSpec(_uid(), "shop", "web-0", "web-0", subdomain="web", dns=DNS,
                       host_aliases=(("10.1.2.3", ("foo.remote", "bar.remote")),))
    sb = await rt.create_sandbox(spec)
    checks = [
        ("hostname", ["hostname"], "web-0\n"),
        ("/etc/hostname", ["cat", "/etc/hostname"], "web-0\n"),
        ("resolv.conf", ["cat", "/etc/resolv.conf"], resolv_conf(DNS)),
        ("hosts", ["cat", "/etc/hosts"], hosts_file(spec, sb.ip, "cluster.local")),
        ("default route", ["ip", "route", "show", "default"],
         f"default via {GATEWAY} dev eth0 \n"),
    ]
    for name, cmd, want in checks:
        assert await run_in(rt, sb, *cmd) == (0, want), name
    rc, out = await run_in(rt, sb, "ip", "-4", "-o", "addr", "show")
    assert rc == 0
    assert f"eth0    inet {sb.ip}/24" in out and "lo    inet 127.0.0.1/8" in out
    # The host's own files are untouched.
    assert Path("/etc/hosts").read_text() != hosts_file(spec, sb.ip, "cluster.local")


@needs_netns
async def test_dns_none_keeps_host_resolv_conf(rt: NetnsRuntime) -> None:
    sb = await rt.create_sandbox(SandboxSpec(_uid(), "default", "h", "h", dns=None))
    assert sb.netns is not None
    assert not (Path("/etc/netns") / sb.netns / "resolv.conf").exists()
    assert (Path("/etc/netns") / sb.netns / "hosts").exists()


@needs_netns
@pytest.mark.parametrize(("name", "argv", "send", "want"), [
    ("exit 0", ["sh", "-c", "echo out; echo err >&2"], None, 0),
    ("exit 3", ["sh", "-c", "exit 3"], None, 3),
    ("SIGTERM", [PY, "-c", "import time; print('up', flush=True); time.sleep(60)"],
     signal.SIGTERM, 143),
])
async def test_container_exit_codes(name: str, argv: list[str], send: int | None, want: int,
                                    rt: NetnsRuntime, tmp_path: Path) -> None:
    sb = await rt.create_sandbox(SandboxSpec(_uid(), "default", "p", "p"))
    log = tmp_path / "c.log"
    proc = await rt.start_container(sb, ContainerSpec(name="c", argv=argv, env={},
                                                      log_path=log))
    if send is not None:
        await wait_for(lambda: log.exists() and b"up" in log.read_bytes())
        proc.signal(send)
    assert await asyncio.wait_for(proc.wait(), 15) == want, name
    if want == 0:
        lines = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
        assert lines == ["stdout F out", "stderr F err"]


@needs_netns
async def test_container_process_and_environment(rt: NetnsRuntime, tmp_path: Path) -> None:
    sb = await rt.create_sandbox(SandboxSpec(_uid(), "default", "envpod", "envpod"))
    assert sb.netns is not None
    log = tmp_path / "c.log"
    script = ("import os, socket, time; e = os.environ; "
              "print(e['POD_IP'], e['HOSTNAME'], e['SVCNET_CONTAINER'], e['MINE'], "
              "socket.gethostname(), os.getcwd(), flush=True); time.sleep(60)")
    proc = await rt.start_container(sb, ContainerSpec(
        name="app", argv=[PY, "-c", script], env={"MINE": "yes"}, working_dir="/tmp",
        log_path=log))
    await wait_for(lambda: log.exists() and log.read_bytes().strip() != b"")
    assert log.read_text().split(" ", 3)[3].strip() == \
        f"{sb.ip} envpod {sb.pod_uid}/app yes envpod /tmp"
    # The pid we hold is the container's own process (every wrapper exec'd it), and
    # it lives in the pod's network namespace.
    assert "python" in Path(f"/proc/{proc.pid}/comm").read_text()
    assert os.stat(f"/proc/{proc.pid}/ns/net").st_ino == \
        os.stat(f"/run/netns/{sb.netns}").st_ino
    proc.signal(signal.SIGKILL)
    assert await proc.wait() == 137


@needs_netns
async def test_signal_reaches_grandchild(rt: NetnsRuntime, tmp_path: Path,
                                         pids: list[int]) -> None:
    sb = await rt.create_sandbox(SandboxSpec(_uid(), "default", "g", "g"))
    gc_file = tmp_path / "gc.pid"
    ready = tmp_path / "ready"
    child = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_DFL); "
             'open(sys.argv[1], "w").close(); time.sleep(60)')
    proc = await rt.start_container(sb, ContainerSpec(
        name="c", argv=["sh", "-c",
                        f"trap '' TERM; {PY} -c '{child}' {ready} & echo $! > {gc_file}; "
                        "wait $!; exit 9"],
        env={}, log_path=tmp_path / "c.log"))
    await wait_for(lambda: gc_file.exists() and gc_file.read_text().strip() != "")
    grandchild = int(gc_file.read_text())
    pids.append(grandchild)
    await wait_for(ready.exists)  # the grandchild has restored SIGTERM's default
    proc.signal(signal.SIGTERM)  # the shell ignores it; its grandchild does not
    assert await asyncio.wait_for(proc.wait(), 15) == 9
    await wait_for(lambda: gone(grandchild))


@needs_netns
async def test_remove_sandbox_removes_everything(rt: NetnsRuntime, tmp_path: Path,
                                                 pids: list[int]) -> None:
    sb = await rt.create_sandbox(SandboxSpec(_uid(), "default", "r", "r", dns=DNS))
    assert sb.netns is not None
    await rt.start_container(sb, ContainerSpec("c", ["sleep", "60"], {},
                                               log_path=tmp_path / "c.log"))
    # A process started in the pod but not as a container (as exec does) goes too.
    stray = subprocess.Popen([*rt.exec_prefix(sb), "sleep", "60"])
    pids.append(stray.pid)
    await wait_for(lambda: str(stray.pid) in run("ip", "netns", "pids", sb.netns or ""))
    veth = rt.host_veth(sb)
    assert veth is not None and veth in run("ip", "-n", rt.node_netns, "-o", "link")
    await rt.remove_sandbox(sb)
    assert stray.wait(5) == -signal.SIGKILL
    assert sb.netns not in netns_list()
    assert not (Path("/etc/netns") / sb.netns).exists()
    # The kernel removes a deleted namespace's links asynchronously.
    await wait_for(lambda: veth not in run("ip", "-n", rt.node_netns, "-o", "link"))
    assert ProcessRecords(rt.state_dir).all() == []
    await rt.remove_sandbox(sb)  # idempotent
    # Its address can be handed out again (after the others: round robin).
    nxt = await rt.create_sandbox(SandboxSpec(_uid(), "default", "r2", "r2"))
    assert nxt.ip != sb.ip


@needs_netns
async def test_failed_create_leaves_nothing(rt: NetnsRuntime) -> None:
    run("ip", "-n", rt.node_netns, "link", "del", BRIDGE)  # attaching the veth must fail
    uid = _uid()
    ns = pod_netns_name(rt.prefix, uid)
    with pytest.raises(CommandError, match=BRIDGE):
        await rt.create_sandbox(SandboxSpec(uid, "default", "f", "f", dns=DNS))
    assert ns not in netns_list()
    assert not (Path("/etc/netns") / ns).exists()
    assert not list((rt.state_dir / "sandboxes").glob("*.json"))
    assert json.loads((rt.state_dir / "ipam.json").read_text())["owners"] == {}


CRASH = """
import asyncio, json, sys
from pathlib import Path
from svcnet.agent.runtime.netns import NetnsRuntime
from svcnet.agent.runtime.base import ContainerSpec, SandboxSpec

async def main() -> None:
    prefix, node, state, out = sys.argv[1:5]
    rt = NetnsRuntime(node, "10.244.77.0/24", Path(state), prefix=prefix)
    await rt.start()
    info = {"netns": [], "leaders": []}
    for i in range(2):
        sb = await rt.create_sandbox(SandboxSpec(f"crash-{i}", "default", f"c{i}", f"c{i}"))
        gc = Path(out) / f"gc{i}.pid"
        proc = await rt.start_container(sb, ContainerSpec(
            "main", ["sh", "-c", f"sleep 300 & echo $! > {gc}; wait"], {},
            log_path=Path(out) / f"c{i}.log"))
        info["netns"].append(sb.netns)
        info["leaders"].append(proc.pid)
    print(json.dumps(info), flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


@needs_netns
async def test_cleanup_after_agent_crash(names: tuple[str, str], tmp_path: Path,
                                         pids: list[int]) -> None:
    """kill -9 of the process owning the runtime: its containers die with it (parent
    death signal); what they left (grandchildren, namespaces, files) is removed by the
    next start() with the same state dir and prefix."""
    prefix, node = names
    state = tmp_path / "state"
    agent = await asyncio.create_subprocess_exec(
        PY, "-c", CRASH, prefix, node, str(state), str(tmp_path),
        stdout=asyncio.subprocess.PIPE)
    pids.append(agent.pid)
    assert agent.stdout is not None
    info = json.loads(await asyncio.wait_for(agent.stdout.readline(), 60) or b"{}")
    pids.extend(info["leaders"])
    gc_files = [tmp_path / "gc0.pid", tmp_path / "gc1.pid"]
    await wait_for(lambda: all(f.exists() and f.read_text().strip() for f in gc_files))
    grandchildren = [int(f.read_text()) for f in gc_files]
    pids.extend(grandchildren)

    agent.kill()
    await agent.wait()
    for leader in info["leaders"]:
        await wait_for(lambda leader=leader: gone(leader))  # PR_SET_PDEATHSIG
    assert not any(gone(g) for g in grandchildren)  # left behind, for start() to find
    assert set(info["netns"]) <= netns_list()

    again = NetnsRuntime(node, POD_CIDR, state, prefix=prefix)
    await again.start()
    try:
        for g in grandchildren:
            await wait_for(lambda g=g: gone(g))
        assert not set(info["netns"]) & netns_list()
        assert not any((Path("/etc/netns") / ns).exists() for ns in info["netns"])
        assert ProcessRecords(state).all() == []
        assert again.node_netns in netns_list()  # the node namespace is kept
    finally:
        await again.shutdown(remove_all=True)


@needs_netns
async def test_shutdown_remove_all(names: tuple[str, str], tmp_path: Path) -> None:
    prefix, node = names
    runtime = NetnsRuntime(node, POD_CIDR, tmp_path / "state", prefix=prefix)
    await runtime.start()
    procs = []
    for i in range(2):
        sb = await runtime.create_sandbox(SandboxSpec(_uid(), "default", f"s{i}", f"s{i}"))
        procs.append(await runtime.start_container(sb, ContainerSpec(
            "c", ["sleep", "60"], {}, log_path=tmp_path / f"c{i}.log")))
    assert len([n for n in netns_list() if n.startswith(prefix + "-")]) == 3
    await runtime.shutdown(remove_all=True)
    assert [n for n in netns_list() if n.startswith(prefix + "-")] == []
    assert [p.returncode for p in procs] == [137, 137]
    assert not list(Path("/etc/netns").glob(f"{prefix}-*")) \
        if Path("/etc/netns").exists() else True


@needs_netns
async def test_sandbox_create_remove_time(rt: NetnsRuntime) -> None:
    """Measured: create + remove of one sandbox, p50 over 20 (printed; bound is loose)."""
    times = []
    for i in range(20):
        t0 = time.perf_counter()
        sb = await rt.create_sandbox(SandboxSpec(_uid(), "default", f"t{i}", f"t{i}",
                                                 dns=DNS))
        t1 = time.perf_counter()
        await rt.remove_sandbox(sb)
        times.append((t1 - t0, time.perf_counter() - t1))
    create = statistics.median(t for t, _ in times)
    remove = statistics.median(r for _, r in times)
    total = statistics.median(t + r for t, r in times)
    print(f"\nnetns sandbox p50 over 20: create {create * 1000:.1f} ms, "
          f"remove {remove * 1000:.1f} ms, create+remove {total * 1000:.1f} ms")
    assert total < 2.0
