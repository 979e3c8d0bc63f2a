"""Userspace service proxy benchmark: svcnet's userspace dataplane against haproxy.

Measures
* HTTP throughput and latency through each proxy: two ``nginx`` backends on 127.0.0.1
  (private config, small static answer, no access log); ``haproxy`` in TCP mode,
  round robin over them, on a 127.0.0.1 port; svcnet's :class:`UserspaceDataplane` in
  process mode (no network namespace) under uvloop in a process of its own, serving a
  ClusterIP on a loopback VIP (127.96.0.10) round robin over the same backends. ``wrk``
  (``-t1 -c50 -d<seconds>s --latency``) drives each proxy alternately for ``--rounds``
  rounds, with keep-alive and with a new connection per request
  (``Connection: close``). Requests/s, p99 and each proxy's CPU time per request (user
  and system, from /proc) per round; medians and svcnet/haproxy ratios.
* UDP: DNS queries (dnsperf) to a private dnsmasq directly and through svcnet's UDP
  frontend (ClusterIP 127.96.0.10 in front of it), alternately; the ratio is what relaying
  costs (no UDP anchor proxy in Debian's haproxy). Needs dnsperf and dnsmasq.
* sync time: a dataplane holding ``--services`` service ports (10,000 listeners on
  loopback VIPs 127.96.x.y, two endpoints each) syncs one endpoint change; the median of
  ``--changes`` such syncs (and the initial and a no-change full sync, once each).

    python bench/proxy/run.py [--seconds 10] [--rounds 3] [--services 10000]
                              [--changes 9] [--haproxy-threads 1]

svcnet relays TCP with its C relay core when it was built (``SVCNET_NO_EXTENSIONS=1``
measures the pure-Python one); the header line says which.

Both proxies get one CPU thread (haproxy ``nbthread 1``, svcnet is one event loop) unless
``--haproxy-threads`` says otherwise. Needs ``nginx``, ``haproxy`` and ``wrk`` on PATH
(Debian: ``apt-get install nginx-light haproxy wrk``). Every process it starts is
stopped by its PID, also on failure; all traffic is on loopback.

``run.py serve-svcnet`` is the svcnet proxy process the benchmark starts.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from svcnet.proxy.dataplane import ProxyState  # noqa: E402
from svcnet.proxy.dataplanes import _core as relay_core  # noqa: E402
from svcnet.proxy.dataplanes.userspace import UserspaceDataplane  # noqa: E402
from svcnet.proxy.types import EndpointInfo, ServicePortInfo, ServicePortName  # noqa: E402
from svcnet.testing.cluster import free_port, stop_process  # noqa: E402

VIP = "127.96.0.10"
TOOLS = ("nginx", "haproxy", "wrk")
BODY = "svcnet bench backend {i}\n"




def raise_nofile(n: int = 64000) -> int:
    """Raise RLIMIT_NOFILE to ``n`` (the hard limit too when allowed); the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limits in ((n, max(n, hard)), (min(n, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def wait_port(host: str, port: int, proc: subprocess.Popen[bytes], what: str,
              timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {host}:{port} in {timeout:.0f}s")




# --- processes -----------------------------------------------------------------------------

def start_nginx(d: Path, i: int, port: int) -> subprocess.Popen[bytes]:
    """One nginx (master + one worker) on 127.0.0.1:port answering a small static body."""
    root = d / f"nginx-{i}"
    root.mkdir()
    conf = root / "nginx.conf"
    temps = "\n".join(f"  {k}_temp_path {root}/{k};"
                      for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    body = BODY.format(i=i).replace("\n", "\\n")
    conf.write_text(f"""daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
{temps}
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ default_type text/plain; return 200 "{body}"; }}
  }}
}}
""")
    return subprocess.Popen(["nginx", "-p", str(root), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_haproxy(d: Path, port: int, backends: list[int], threads: int
                  ) -> subprocess.Popen[bytes]:
    conf = d / "haproxy.cfg"
    servers = "\n".join(f"  server s{i} 127.0.0.1:{p}" for i, p in enumerate(backends))
    conf.write_text(f"""global
  maxconn 8000
  nbthread {threads}
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:{port}
  default_backend be
backend be
  balance roundrobin
{servers}
""")
    return subprocess.Popen(["haproxy", "-db", "-f", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_svcnet(port: int, backends: list[int], protocol: str = "TCP"
                 ) -> subprocess.Popen[bytes]:
    args = [sys.executable, str(Path(__file__).resolve()), "serve-svcnet",
            "--vip", VIP, "--port", str(port), "--protocol", protocol,
            "--backends", ",".join(str(p) for p in backends)]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=None)


def one_service_state(vip: str, port: int, backends: list[int], protocol: str = "TCP"
                      ) -> ProxyState:
    name = ServicePortName("bench", "web", "http", protocol)
    info = ServicePortInfo(name, "ClusterIP", (vip,), port)
    eps = tuple(sorted((EndpointInfo("127.0.0.1", p) for p in backends),
                       key=lambda e: e.address))
    return ProxyState(node_name="bench", node_ips=("127.0.0.1",), services={name: info},
                      endpoints={name: eps})


def serve_svcnet(vip: str, port: int, backends: list[int], protocol: str = "TCP") -> None:
    """The svcnet proxy process: one service port, until stdin closes or SIGTERM."""
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        dp = UserspaceDataplane(netns=None)
        state = one_service_state(vip, port, backends, protocol)
        await dp.sync(state, set(state.services), full=True)
        try:
            await stop.wait()
        finally:
            await dp.close()

    uvloop.run(main())


def process_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds used so far by process ``pid`` (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


# --- wrk -----------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(url: str, seconds: int, close: bool, connections: int = 50) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if close:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(rps.group(1)) if rps else 0.0,
            "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
            "errors": (errors.group(1) if errors else "") +
                      (f" non2xx {non2xx.group(1)}" if non2xx else "")}


# --- UDP -----------------------------------------------------------------------------------

UDP_VIP_PORT = 53


def measure_udp(d: Path, seconds: int, rounds: int, procs: list[subprocess.Popen[bytes]]
                ) -> dict[str, list[float]]:
    """DNS queries/s from dnsperf (4 client sockets, 100 in flight) to a private dnsmasq
    directly and through svcnet's UDP frontend (a ClusterIP on 127.96.0.10), alternately;
    plus svcnet's CPU time per query. Started processes are appended to ``procs``."""
    root = d / "dnsmasq"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    d.chmod(0o711)  # dnsmasq reads its hosts file as nobody
    (root / "hosts").write_text("10.0.0.1 web.bench.svc.cluster.local\n")
    (root / "hosts").chmod(0o644)
    queries = d / "queries"
    queries.write_text("web.bench.svc.cluster.local A\n")
    dport, sport = free_port(), free_port()
    procs.append(subprocess.Popen(
        ["dnsmasq", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
         f"--addn-hosts={root / 'hosts'}", f"--port={dport}", "--listen-address=127.0.0.1",
         "--bind-interfaces", "--keep-in-foreground", f"--pid-file={root / 'pid'}",
         "--cache-size=1000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
    procs.append(start_svcnet(sport, [dport], "UDP"))
    proxy = procs[-1]
    time.sleep(1.0)
    targets = {"direct": ("127.0.0.1", dport), "svcnet": (VIP, sport)}
    out: dict[str, list[float]] = {"direct": [], "svcnet": [], "svcnet_cpu_us": []}
    for r in range(rounds):
        order = ("direct", "svcnet") if r % 2 == 0 else ("svcnet", "direct")
        for name in order:
            host, port = targets[name]
            cpu0 = process_cpu(proxy.pid)
            text = subprocess.run(
                ["dnsperf", "-s", host, "-p", str(port), "-d", str(queries), "-l",
                 str(seconds), "-c", "4", "-q", "100"],
                capture_output=True, text=True, timeout=seconds + 60).stdout
            cpu1 = process_cpu(proxy.pid)
            m = re.search(r"Queries per second:\s+([0-9.]+)", text)
            qps = float(m.group(1)) if m else 0.0
            out[name].append(qps)
            if name == "svcnet" and qps:
                out["svcnet_cpu_us"].append(
                    (cpu1[0] + cpu1[1] - cpu0[0] - cpu0[1]) / (qps * seconds) * 1e6)
            print(f"round {r + 1} udp dns       {name:8} {qps:10.0f} queries/s", flush=True)
    return out


# --- sync at scale -------------------------------------------------------------------------

def svc_name(i: int) -> ServicePortName:
    return ServicePortName("bench", f"svc-{i}", "http", "TCP")


def scale_state(n: int, backends: list[int]) -> ProxyState:
    """``n`` ClusterIP service ports on 127.96.x.y:80 with two endpoints each."""
    s = ProxyState(node_name="bench", node_ips=("127.0.0.1",))
    eps = tuple(sorted((EndpointInfo("127.0.0.1", p) for p in backends),
                       key=lambda e: e.address))
    for i in range(n):
        name = svc_name(i)
        vip = f"127.96.{1 + i // 250}.{1 + i % 250}"
        s.services[name] = ServicePortInfo(name, "ClusterIP", (vip,), 80)
        s.endpoints[name] = eps
    return s


def with_extra_endpoint(base: ProxyState, i: int) -> ProxyState:
    """``base`` with a third endpoint for service ``i``."""
    s = dataclasses.replace(base, endpoints=dict(base.endpoints))
    name = svc_name(i)
    s.endpoints[name] = tuple(sorted((*base.endpoints[name], EndpointInfo("127.0.0.2", 8080)),
                                     key=lambda e: e.address))
    return s


def measure_sync(n: int, changes: int, backends: list[int]) -> dict[str, Any]:
    import uvloop

    async def main() -> dict[str, Any]:
        dp = UserspaceDataplane(netns=None)
        try:
            base = scale_state(n, backends)
            t0 = time.perf_counter()
            await dp.sync(base, set(base.services), full=True)
            initial = time.perf_counter() - t0
            t0 = time.perf_counter()
            await dp.sync(base, set(), full=True)
            full = time.perf_counter() - t0
            times = []
            for k in range(changes):
                # add an endpoint to one service, then take it away again
                i = (k // 2 * 7919) % n
                nxt = with_extra_endpoint(base, i) if k % 2 == 0 else base
                t0 = time.perf_counter()
                await dp.sync(nxt, {svc_name(i)}, full=False)
                times.append(time.perf_counter() - t0)
            listeners = sum(len(p["frontends"]) for p in dp.status()["service_ports"].values())
            return {"initial_s": initial, "full_s": full,
                    "change_ms": [t * 1e3 for t in times],
                    "median_change_ms": statistics.median(times) * 1e3,
                    "listeners": listeners}
        finally:
            await dp.close()

    return uvloop.run(main())


# --- main ----------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    sv = sub.add_parser("serve-svcnet")
    sv.add_argument("--vip", default=VIP)
    sv.add_argument("--port", type=int, required=True)
    sv.add_argument("--backends", required=True)
    sv.add_argument("--protocol", default="TCP", choices=("TCP", "UDP"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--services", type=int, default=10_000)
    ap.add_argument("--changes", type=int, default=9)
    ap.add_argument("--haproxy-threads", type=int, default=1)
    ap.add_argument("--skip-sync", action="store_true")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--skip-udp", action="store_true")
    args = ap.parse_args()
    if args.cmd == "serve-svcnet":
        raise_nofile()
        serve_svcnet(args.vip, args.port, [int(p) for p in args.backends.split(",")],
                     args.protocol)
        return 0

    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        print(f"bench/proxy: needs {', '.join(missing)} on PATH "
              "(apt-get install nginx-light haproxy wrk)", file=sys.stderr)
        return 2
    raise_nofile()
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        m: {"haproxy": [], "svcnet": []} for m in ("keep-alive", "per-connection")}
    sync: dict[str, Any] | None = None
    udp: dict[str, list[float]] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="svcnet-bench-proxy-") as tmp:
            d = Path(tmp)
            backends = [free_port(), free_port()]
            if not args.skip_http:
                for i, p in enumerate(backends):
                    procs.append(start_nginx(d, i, p))
                    wait_port("127.0.0.1", p, procs[-1], f"nginx {i}")
                hport, sport = free_port(), free_port()
                procs.append(start_haproxy(d, hport, backends, args.haproxy_threads))
                wait_port("127.0.0.1", hport, procs[-1], "haproxy")
                procs.append(start_svcnet(sport, backends))
                wait_port(VIP, sport, procs[-1], "svcnet")
                urls = {"haproxy": f"http://127.0.0.1:{hport}/",
                        "svcnet": f"http://{VIP}:{sport}/"}
                pids = {"haproxy": procs[-2].pid, "svcnet": procs[-1].pid}
                print(f"nginx x{len(backends)} on {backends}; haproxy {urls['haproxy']} "
                      f"(nbthread {args.haproxy_threads}); svcnet {urls['svcnet']} "
                      f"(userspace, uvloop, {relay_core.IMPLEMENTATION} relay core); "
                      f"wrk -t1 -c{args.connections} "
                      f"-d{args.seconds}s", flush=True)
                for url in urls.values():  # warm-up
                    run_wrk(url, 1, False, args.connections)
                for r in range(args.rounds):
                    for mode in ("keep-alive", "per-connection"):
                        order = ("haproxy", "svcnet") if r % 2 == 0 else ("svcnet", "haproxy")
                        for name in order:
                            cpu0 = process_cpu(pids[name])
                            res = run_wrk(urls[name], args.seconds, mode != "keep-alive",
                                          args.connections)
                            cpu1 = process_cpu(pids[name])
                            n = max(res["rps"] * args.seconds, 1.0)
                            res["user_us"] = (cpu1[0] - cpu0[0]) / n * 1e6
                            res["sys_us"] = (cpu1[1] - cpu0[1]) / n * 1e6
                            results[mode][name].append(res)
                            print(f"round {r + 1} {mode:14} {name:8} "
                                  f"{res['rps']:10.0f} req/s  p99 {res['p99_ms']:8.2f} ms  "
                                  f"CPU/req user {res['user_us']:5.2f} us "
                                  f"sys {res['sys_us']:5.2f} us"
                                  + (f"  errors: {res['errors']}" if res["errors"] else ""),
                                  flush=True)
            if not args.skip_udp:
                if shutil.which("dnsperf") and shutil.which("dnsmasq"):
                    udp = measure_udp(d, args.seconds, args.rounds, procs)
                else:
                    print("bench/proxy: UDP skipped: needs dnsperf and dnsmasq "
                          "(apt-get install dnsperf dnsmasq-base)", flush=True)
            if not args.skip_sync:
                sync = measure_sync(args.services, args.changes, backends)
                print(f"sync at {args.services} services ({sync['listeners']} listeners): "
                      f"initial {sync['initial_s']:.2f} s, no-change full "
                      f"{sync['full_s'] * 1e3:.0f} ms, one endpoint change "
                      f"median {sync['median_change_ms']:.2f} ms "
                      f"(all: {', '.join(f'{t:.2f}' for t in sync['change_ms'])})", flush=True)
    finally:
        for p in reversed(procs):
            stop_process(p)

    print("\n| measure | haproxy | svcnet | svcnet/haproxy |")
    print("|---|---|---|---|")
    for mode, by in results.items():
        if not by["haproxy"]:
            continue
        h = statistics.median(x["rps"] for x in by["haproxy"])
        s = statistics.median(x["rps"] for x in by["svcnet"])
        hp = statistics.median(x["p99_ms"] for x in by["haproxy"])
        sp = statistics.median(x["p99_ms"] for x in by["svcnet"])
        print(f"| {mode} req/s (median of {len(by['svcnet'])}) | {h:.0f} | {s:.0f} | "
              f"{s / h:.2f}x |")
        print(f"| {mode} p99 ms (median) | {hp:.2f} | {sp:.2f} | {sp / hp:.2f}x |")
        for part in ("user", "sys"):
            hc = statistics.median(x[f"{part}_us"] for x in by["haproxy"])
            sc = statistics.median(x[f"{part}_us"] for x in by["svcnet"])
            print(f"| {mode} {part} CPU us/request (median) | {hc:.2f} | {sc:.2f} | "
                  f"{sc / hc:.2f}x |")
    if udp is not None and udp["direct"] and udp["svcnet"]:
        direct, proxied = statistics.median(udp["direct"]), statistics.median(udp["svcnet"])
        print(f"| UDP DNS queries/s, direct to dnsmasq vs through svcnet (median of "
              f"{len(udp['svcnet'])}) | {direct:.0f} (direct) | {proxied:.0f} | "
              f"{proxied / direct:.2f}x |")
        if udp["svcnet_cpu_us"]:
            print(f"| UDP svcnet CPU us/query (median) | | "
                  f"{statistics.median(udp['svcnet_cpu_us']):.2f} | |")
    if sync is not None:
        print(f"| sync, one endpoint change at {args.services} services (median of "
              f"{len(sync['change_ms'])}) | | {sync['median_change_ms']:.2f} ms | |")
        print(f"| sync, initial / no-change full at {args.services} services | | "
              f"{sync['initial_s']:.2f} s / {sync['full_s']:.2f} s | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
