"""Cluster DNS benchmark: svcnet's DNS server against dnsmasq, at 10,000 ClusterIP services
and 1,000 headless services with 10 endpoints each, on a real API server.

Measures
* throughput and latency: ``dnsperf`` (Debian package) replays one query mix (A on
  ClusterIP services, SRV on their named port, A on headless services, NXDOMAIN in the
  zone) against ``svcnet dns`` and against a private ``dnsmasq`` serving the same records
  (A from a hosts file; SRV from ``srv-host`` lines only with --dnsmasq-srv, as dnsmasq
  scans those linearly), alternately; QPS, mean/p50/p99
  latency per round and pooled, and the svcnet/dnsmasq ratios;
* memory: RSS of the ``svcnet dns`` process at that size (and of dnsmasq);
* change propagation: time from a Service create (the API call returning) until svcnet's
  DNS answers the new ClusterIP, and from an EndpointSlice update until a headless name
  answers the added address; p50/p99 over ``--writes`` writes each.

    python bench/dns/run.py [--services 10000] [--headless 1000] [--endpoints 10]
                            [--seconds 10] [--rounds 2] [--writes 100]

Needs ``dnsperf`` and ``dnsmasq`` on PATH (``apt-get install dnsperf dnsmasq-base``).
Every process it starts is stopped by its PID, also on failure; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from svcnet.testing.bench import APILoad, pct  # noqa: E402
from svcnet.testing.cluster import APIServerProcess, free_port, stop_process  # noqa: E402

NS = "bench"
ZONE = "cluster.local"



def ep_ip(svc: int, ep: int) -> str:
    n = svc * 16 + ep
    return f"10.244.{n // 250}.{n % 250 + 2}"


def fqdn(name: str) -> str:
    return f"{name}.{NS}.svc.{ZONE}"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_udp_tcp_port() -> int:
    """A loopback port free for both TCP and UDP right now."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port




class Bench(APILoad):
    def __init__(self, srv: APIServerProcess) -> None:
        super().__init__(srv)
        self.cluster_ips: dict[str, str] = {}

    async def create_service(self, s: aiohttp.ClientSession, name: str) -> str:
        """A selector-less ClusterIP service with a named port; returns its ClusterIP."""
        obj = await self.call(s, "POST", f"/api/v1/namespaces/{NS}/services", {
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80}]}})
        ip = str(obj["spec"]["clusterIP"])
        self.cluster_ips[name] = ip
        return ip

    @staticmethod
    def slice_body(name: str, ips: list[str]) -> dict[str, Any]:
        return {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-1", "labels": {
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "bench.svcnet.io"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
            "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]}

    async def create_headless(self, s: aiohttp.ClientSession, i: int, eps: int) -> None:
        name = f"hl-{i}"
        await self.call(s, "POST", f"/api/v1/namespaces/{NS}/services", {
            "metadata": {"name": name},
            "spec": {"clusterIP": "None",
                     "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]}})
        await self.call(s, "POST", f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices",
                        self.slice_body(name, [ep_ip(i, j) for j in range(eps)]))

    async def populate(self, services: int, headless: int, eps: int) -> float:
        t0 = time.perf_counter()
        async with self.session() as s:
            await self.call(s, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
            await self.gather_limited([self.create_service(s, f"svc-{i}")
                                       for i in range(services)])
            await self.gather_limited([self.create_headless(s, i, eps)
                                       for i in range(headless)])
        return time.perf_counter() - t0


async def query(port: int, name: str, rdtype: str = "A",
                timeout: float = 2.0) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=timeout)


def a_set(msg: dns.message.Message) -> set[str]:
    return {r.address for rr in msg.answer if rr.rdtype == dns.rdatatype.A for r in rr}


async def wait_answer(port: int, name: str, want: set[str], timeout: float) -> float:
    """Poll ``name`` A until the answer contains ``want``; seconds waited."""
    t0 = time.perf_counter()
    while True:
        try:
            msg = await query(port, name, timeout=0.5)
            if want <= a_set(msg):
                return time.perf_counter() - t0
        except dns.exception.Timeout:
            pass
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{name} never answered {sorted(want)}")
        await asyncio.sleep(0.0005)


def write_queries(path: Path, services: int, headless: int, n: int = 50_000) -> dict[str, int]:
    """The query mix: 60% A ClusterIP, 15% SRV, 15% A headless, 10% NXDOMAIN."""
    rng = random.Random(5)
    mix = {"A service": 0, "SRV service": 0, "A headless": 0, "NXDOMAIN": 0}
    lines = []
    for _ in range(n):
        r = rng.random()
        if r < 0.60:
            lines.append(f"{fqdn(f'svc-{rng.randrange(services)}')} A")
            mix["A service"] += 1
        elif r < 0.75:
            lines.append(f"_http._tcp.{fqdn(f'svc-{rng.randrange(services)}')} SRV")
            mix["SRV service"] += 1
        elif r < 0.90:
            lines.append(f"{fqdn(f'hl-{rng.randrange(headless)}')} A")
            mix["A headless"] += 1
        else:
            lines.append(f"{fqdn(f'missing-{rng.randrange(1_000_000)}')} A")
            mix["NXDOMAIN"] += 1
    path.write_text("\n".join(lines) + "\n")
    return mix


def start_dnsmasq(d: Path, b: Bench, headless: int, eps: int, srv: bool
                  ) -> tuple[subprocess.Popen[bytes], int]:
    """dnsmasq on 127.0.0.1 with a private config only: no /etc/dnsmasq.conf (-C), no
    /etc/hosts, no /etc/resolv.conf, no upstreams (cluster.local is local: unknown names
    are NXDOMAIN), no DHCP, in the foreground, its own pid file."""
    # dnsmasq drops to user nobody before reading its hosts file: a world-readable
    # directory of its own (the run's temporary directory is private).
    d = d / "dnsmasq"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    d.parent.chmod(0o711)
    hosts = d / "dnsmasq.hosts"
    lines = [f"{ip} {fqdn(name)}" for name, ip in b.cluster_ips.items()
             if name.startswith("svc-")]
    lines += [f"{ep_ip(i, j)} {fqdn(f'hl-{i}')}" for i in range(headless) for j in range(eps)]
    hosts.write_text("\n".join(lines) + "\n")
    conf = d / "dnsmasq.conf"
    # dnsmasq keeps srv-host records in a list it scans on every query, so 10,000 of them
    # slow every query down ~8x; by default it serves A only and answers the SRV
    # queries NOERROR/no data (--dnsmasq-srv adds them).
    conf.write_text("".join(f"srv-host=_http._tcp.{fqdn(name)},{fqdn(name)},80,0,100\n"
                            for name in b.cluster_ips if name.startswith("svc-"))
                    if srv else "")
    port = free_udp_tcp_port()
    log = open(d / "dnsmasq.log", "ab")  # noqa: SIM115
    p = subprocess.Popen(
        ["dnsmasq", f"--conf-file={conf}", "--no-resolv", "--no-hosts",
         f"--addn-hosts={hosts}", f"--port={port}", "--listen-address=127.0.0.1",
         "--bind-interfaces", "--keep-in-foreground", "--cache-size=10000",
         f"--pid-file={d / 'dnsmasq.pid'}", f"--local=/{ZONE}/",
         "--dhcp-leasefile=" + str(d / "dnsmasq.leases")],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return p, port


def dnsmasq_log(d: Path) -> str:
    try:
        return (d / "dnsmasq" / "dnsmasq.log").read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def start_svcnet_dns(d: Path, srv: APIServerProcess) -> tuple[subprocess.Popen[bytes], int]:
    port = free_udp_tcp_port()
    log = open(d / "dns.log", "ab")  # noqa: SIM115
    p = subprocess.Popen(
        [sys.executable, "-m", "svcnet.cli.main", "dns", "--kubeconfig", str(srv.kubeconfig),
         "--port", str(port), "--metrics-port", "0", "--upstream", "127.0.0.1:9"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return p, port


def dnsperf(port: int, qfile: Path, seconds: int, outfile: Path) -> dict[str, Any]:
    """One dnsperf run (UDP, 100 outstanding); -v gives every response's latency."""
    with open(outfile, "wb") as out:
        subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile),
                        "-l", str(seconds), "-q", "100", "-t", "2", "-v"],
                       stdout=out, stderr=subprocess.STDOUT, check=True)
    lat: list[float] = []
    rcodes: dict[str, int] = {}
    res: dict[str, Any] = {"lost": 0}
    for line in outfile.read_text(errors="replace").splitlines():
        s = line.strip()
        if s.startswith(">"):
            parts = s.split()
            rcodes[parts[1]] = rcodes.get(parts[1], 0) + 1
            lat.append(float(parts[-1]))
        elif s.startswith("Queries per second:"):
            res["qps"] = float(s.split(":")[1])
        elif s.startswith("Queries lost:"):
            res["lost"] = int(s.split(":")[1].split()[0])
        elif s.startswith("Queries completed:"):
            res["completed"] = int(s.split(":")[1].split()[0])
    if "qps" not in res:
        raise RuntimeError("dnsperf printed no summary:\n" + outfile.read_text()[-2000:])
    res["lat"] = lat
    res["rcodes"] = rcodes
    return res


async def propagation(b: Bench, port: int, writes: int, headless: int, eps: int
                      ) -> tuple[list[float], list[float]]:
    svc_lat: list[float] = []
    ep_lat: list[float] = []
    async with b.session() as s:
        for k in range(writes):
            ip = await b.create_service(s, f"prop-{k}")
            svc_lat.append(await wait_answer(port, fqdn(f"prop-{k}"), {ip}, 10.0))
            await asyncio.sleep(0.01)
        rng = random.Random(7)
        for k in range(writes):
            i = rng.randrange(headless)
            name = f"hl-{i}"
            new = f"10.250.{k // 250}.{k % 250 + 2}"
            body = b.slice_body(name, [ep_ip(i, j) for j in range(eps)] + [new])
            # resourceVersion omitted: an unconditional replace.
            await b.call(s, "PUT",
                         f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/"
                         f"{name}-1", body)
            ep_lat.append(await wait_answer(port, fqdn(name), {new}, 10.0))
            # Put the slice back so later picks of the same service start clean.
            await b.call(s, "PUT",
                         f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/"
                         f"{name}-1", b.slice_body(name, [ep_ip(i, j) for j in range(eps)]))
            await asyncio.sleep(0.01)
    return svc_lat, ep_lat


async def check_same(ports: dict[str, int], b: Bench, eps: int, srv: bool) -> None:
    """Both servers give the same A sets and rcodes for a few names of each kind."""
    names = [(fqdn("svc-0"), "A"), (fqdn("svc-1"), "A"), (fqdn("hl-0"), "A"),
             (fqdn("missing-1"), "A")] + \
        ([(f"_http._tcp.{fqdn('svc-0')}", "SRV")] if srv else [])
    for name, t in names:
        got = {}
        for who, port in ports.items():
            m = await query(port, name, t)
            targets = sorted(str(r.target) for rr in m.answer
                             if rr.rdtype == dns.rdatatype.SRV for r in rr)
            got[who] = (dns.rcode.to_text(m.rcode()), sorted(a_set(m)), targets)
        vals = list(got.values())
        if any(v != vals[0] for v in vals):
            raise RuntimeError(f"servers disagree on {name} {t}: {got}")
    hl = a_set(await query(ports["svcnet"], fqdn("hl-0")))
    if len(hl) != eps:
        raise RuntimeError(f"hl-0 has {len(hl)} addresses, want {eps}")


async def main_async(args: argparse.Namespace) -> None:
    for tool in ("dnsperf", "dnsmasq"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (apt-get install dnsperf dnsmasq-base)")
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-dns-") as tmp:
        d = Path(tmp)
        srv = APIServerProcess(d / "api")
        dns_proc: subprocess.Popen[bytes] | None = None
        masq: subprocess.Popen[bytes] | None = None
        srv.start()
        try:
            srv.start_controllers()
            b = Bench(srv)
            fill = await b.populate(args.services, args.headless, args.endpoints)
            print(f"populated in {fill:.1f}s", file=sys.stderr)
            t0 = time.perf_counter()
            dns_proc, dns_port = start_svcnet_dns(d, srv)
            last_svc = f"svc-{args.services - 1}"
            await wait_answer(dns_port, fqdn(last_svc), {b.cluster_ips[last_svc]}, 300)
            await wait_answer(dns_port, fqdn(f"hl-{args.headless - 1}"),
                              {ep_ip(args.headless - 1, j) for j in range(args.endpoints)},
                              300)
            synced = time.perf_counter() - t0
            print(f"svcnet dns answering everything after {synced:.1f}s", file=sys.stderr)
            masq, masq_port = start_dnsmasq(d, b, args.headless, args.endpoints,
                                            args.dnsmasq_srv)
            try:
                await wait_answer(masq_port, fqdn(last_svc), {b.cluster_ips[last_svc]}, 30)
            except TimeoutError:
                print(dnsmasq_log(d), file=sys.stderr)
                raise
            ports = {"svcnet": dns_port, "dnsmasq": masq_port}
            await check_same(ports, b, args.endpoints, args.dnsmasq_srv)
            rss_idle = rss_kib(dns_proc.pid)
            qfile = d / "queries.txt"
            mix = write_queries(qfile, args.services, args.headless)
            print("query mix: " + ", ".join(f"{k} {v}" for k, v in mix.items()),
                  file=sys.stderr)
            results: dict[str, list[dict[str, Any]]] = {"svcnet": [], "dnsmasq": []}
            for rnd in range(args.rounds):
                for who, port in ports.items():
                    r = dnsperf(port, qfile, args.seconds, d / f"dnsperf-{who}-{rnd}.txt")
                    results[who].append(r)
                    print(f"round {rnd + 1} {who:<8} {r['qps']:10.0f} qps  "
                          f"mean {statistics.fmean(r['lat']) * 1e3:.3f} ms  "
                          f"p50 {pct(r['lat'], 50) * 1e3:.3f} ms  "
                          f"p99 {pct(r['lat'], 99) * 1e3:.3f} ms  lost {r['lost']}  "
                          f"rcodes {r['rcodes']}")
            rss_after = rss_kib(dns_proc.pid)
            masq_rss = rss_kib(masq.pid)
            svc_lat, ep_lat = await propagation(b, dns_port, args.writes, args.headless,
                                                args.endpoints)

            def pooled(who: str) -> tuple[float, float, float, float]:
                rs = results[who]
                lat = [x for r in rs for x in r["lat"]]
                return (statistics.fmean(r["qps"] for r in rs), statistics.fmean(lat) * 1e3,
                        pct(lat, 50) * 1e3, pct(lat, 99) * 1e3)
            sv, dm = pooled("svcnet"), pooled("dnsmasq")
            n_names = args.services + args.headless
            rows = [
                (f"create {args.services} ClusterIP + {args.headless}x{args.endpoints} "
                 "headless, s", fill),
                ("svcnet dns start -> all names answered, s", synced),
                (f"svcnet QPS (mean of {args.rounds} x {args.seconds}s)", sv[0]),
                (f"dnsmasq QPS (mean of {args.rounds} x {args.seconds}s)", dm[0]),
                ("QPS ratio svcnet/dnsmasq", sv[0] / dm[0]),
                ("svcnet latency mean, ms", sv[1]),
                ("dnsmasq latency mean, ms", dm[1]),
                ("svcnet latency p50, ms", sv[2]),
                ("dnsmasq latency p50, ms", dm[2]),
                ("svcnet latency p99, ms", sv[3]),
                ("dnsmasq latency p99, ms", dm[3]),
                ("p99 ratio svcnet/dnsmasq", sv[3] / dm[3]),
                ("svcnet dns RSS after sync, MiB", rss_idle / 1024),
                ("svcnet dns RSS after dnsperf, MiB", rss_after / 1024),
                ("dnsmasq RSS, MiB", masq_rss / 1024),
                (f"CoreDNS rule of thumb 54 + {n_names}/1000 MiB (services only)",
                 54 + n_names / 1000),
                (f"Service create -> answered, p50 ms ({len(svc_lat)} writes)",
                 statistics.median(svc_lat) * 1e3),
                ("Service create -> answered, p99 ms", pct(svc_lat, 99) * 1e3),
                (f"EndpointSlice update -> answered, p50 ms ({len(ep_lat)} writes)",
                 statistics.median(ep_lat) * 1e3),
                ("EndpointSlice update -> answered, p99 ms", pct(ep_lat, 99) * 1e3),
            ]
            for k, v in rows:
                print(f"{k:<62} {v:12.3f}")
        finally:
            stop_process(masq)
            stop_process(dns_proc)
            srv.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--headless", type=int, default=1_000)
    p.add_argument("--endpoints", type=int, default=10)
    p.add_argument("--seconds", type=int, default=10, help="dnsperf -l per round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--writes", type=int, default=100)
    p.add_argument("--dnsmasq-srv", action="store_true",
                   help="also give dnsmasq the SRV records (srv-host lines)")
    args = p.parse_args()
    import uvloop  # a dependency of svcnet
    uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
