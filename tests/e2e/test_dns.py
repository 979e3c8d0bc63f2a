"""`svcnet dns` against a real API server and controller-manager, queried over loopback UDP
and TCP with dnspython and with `dig`.

Pods do not run here: the test plays the node agent, giving pods IPs and readiness through
the ``status`` subresource (pods are bound to a Node object, ``node-1``, that no agent runs). Names outside the cluster go to a fake
upstream resolver on 127.0.0.1; no real resolver is ever contacted.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from svcnet.testing.cluster import APIServerProcess, free_port
from tests.dns.fixtures import FakeUpstream

pytestmark = pytest.mark.usefixtures("kubectl_available")

T = TypeVar("T")
NS = "default"
Z = "cluster.local."
IMAGE = "gcr.io/kuar-demo/kuard-amd64:blue"
TIMEOUT = 3.0

MANIFEST = """
apiVersion: v1
kind: Service
metadata: {name: alpaca-prod}
spec:
  selector: {app: alpaca}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: lonely}
spec:
  clusterIP: None
  selector: {app: nobody}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: www.example.com
"""


@dataclass
class DNSProcess:
    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log: Path

    def query(self, qname: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
        m = dns.message.make_query(qname, rdtype)
        if tcp:
            return dns.query.tcp(m, "127.0.0.1", port=self.port, timeout=TIMEOUT)
        return dns.query.udp(m, "127.0.0.1", port=self.port, timeout=TIMEOUT)

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL after 10 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 20.0,
             on_timeout: Callable[[], str] = lambda: "") -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as e:  # the server may not be listening yet
            last = None
            err = e
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what} (last: {last!r}, {locals().get('err')})\n"
                f"{on_timeout()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    with APIServerProcess(tmp_path_factory.mktemp("dns")) as srv:
        srv.start_controllers()
        yield srv


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    u = FakeUpstream()
    try:
        yield u
    finally:
        u.close()


def start_dns(kubeconfig: Path, upstream_port: int, log_path: Path) -> DNSProcess:
    """Start ``svcnet dns`` on free loopback ports; stop it with :meth:`DNSProcess.stop`."""
    port, mport = free_port(), free_port()
    log = open(log_path, "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "svcnet.cli.main", "dns", "-v", "--kubeconfig",
         str(kubeconfig), "--port", str(port), "--upstream", f"127.0.0.1:{upstream_port}",
         "--metrics-port", str(mport)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return DNSProcess(proc, port, mport, log_path)


@pytest.fixture(scope="module")
def dns_server(cluster: APIServerProcess, upstream: FakeUpstream) -> Iterator[DNSProcess]:
    d = start_dns(cluster.kubeconfig, upstream.port, cluster.data_dir / "dns.log")
    try:
        # Synced once the zone answers (before sync every zone name is SERVFAIL).
        wait_for("dns synced", lambda: d.query("dns-version." + Z, "TXT").rcode()
                 == dns.rcode.NOERROR)
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def objects(cluster: APIServerProcess, dns_server: DNSProcess) -> dict[str, str]:
    """Create the services and pods; return the ClusterIP of alpaca-prod."""
    from kubernetes import client, config
    res = cluster.kubectl("apply", "-f", "-", input=MANIFEST)
    assert res.returncode == 0, res.stderr
    c = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core: Any = client.CoreV1Api(c)
    try:
        # Pods are bound to a node up front so the scheduler leaves their status alone.
        core.create_node({"metadata": {"name": "node-1"}, "status": {
            "conditions": [{"type": "Ready", "status": "True"}]}})
        pods: list[tuple[str, str, str, bool, str]] = [
            ("alpaca-1", "alpaca", "10.244.0.9", True, ""),
            ("web-0", "web", "10.244.0.5", True, "web-0"),
            ("web-1", "web", "10.244.0.6", True, ""),
            ("web-2", "web", "10.244.0.7", False, ""),
        ]
        for name, app, ip, ready, hostname in pods:
            spec: dict[str, Any] = {"nodeName": "node-1", "containers": [
                {"name": "app", "image": IMAGE, "ports": [{"name": "http",
                                                          "containerPort": 8080}]}]}
            if hostname:
                spec["hostname"], spec["subdomain"] = hostname, "web"
            core.create_namespaced_pod(NS, {"metadata": {"name": name, "labels": {"app": app}},
                                            "spec": spec})
            core.patch_namespaced_pod_status(name, NS, {"status": {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})
        cip = str(core.read_namespaced_service("alpaca-prod", NS).spec.cluster_ip)
    finally:
        c.close()
    # Propagation: the headless service answers both ready endpoints.
    wait_for("headless answers", lambda: len(_data(dns_server.query("web.default.svc." + Z)))
             == 2, on_timeout=lambda: cluster.kubectl("get", "endpointslices,pods", "-o",
                                                      "yaml").stdout
             + dns_server.log_tail() + cluster.controllers_log())
    wait_for("alpaca answers", lambda: _data(dns_server.query("alpaca-prod.default.svc." + Z)))
    return {"cip": cip, "rev": ".".join(reversed(cip.split("."))) + ".in-addr.arpa."}


def _data(m: dns.message.Message) -> list[str]:
    return sorted(f"{dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}"
                  for rrset in m.answer for rd in rrset)


@dataclass
class Case:
    name: str
    qname: str
    rdtype: str
    rcode: str
    answer: list[str] = field(default_factory=list)  # "TYPE rdata", sorted; {cip} expands
    soa: bool = False


AP = "alpaca-prod.default.svc." + Z
WEB = "web.default.svc." + Z
CASES = [
    Case("clusterip A", AP, "A", "NOERROR", ["A {cip}"]),
    Case("clusterip AAAA is NODATA", AP, "AAAA", "NOERROR", [], soa=True),
    Case("SRV named port", "_http._tcp." + AP, "SRV", "NOERROR", [f"SRV 0 100 8080 {AP}"]),
    Case("SRV bare name", AP, "SRV", "NOERROR", [f"SRV 0 100 8080 {AP}"]),
    Case("SRV unknown port", "_grpc._tcp." + AP, "SRV", "NXDOMAIN", [], soa=True),
    Case("PTR of the cluster IP", "{rev}", "PTR", "NOERROR", [f"PTR {AP}"]),
    Case("headless A, ready only", WEB, "A", "NOERROR", ["A 10.244.0.5", "A 10.244.0.6"]),
    Case("headless hostname", "web-0." + WEB, "A", "NOERROR", ["A 10.244.0.5"]),
    Case("headless dashed IP", "10-244-0-6." + WEB, "A", "NOERROR", ["A 10.244.0.6"]),
    Case("headless SRV", "_http._tcp." + WEB, "SRV", "NOERROR",
         [f"SRV 0 50 8080 10-244-0-6.{WEB}", f"SRV 0 50 8080 web-0.{WEB}"]),
    Case("headless PTR by hostname", "5.0.244.10.in-addr.arpa.", "PTR", "NOERROR",
         [f"PTR web-0.{WEB}"]),
    Case("headless without ready endpoints", "lonely.default.svc." + Z, "A", "NXDOMAIN",
         [], soa=True),
    Case("externalname chased upstream", "ext.default.svc." + Z, "A", "NOERROR",
         ["A 192.0.2.1", "CNAME www.example.com."]),
    Case("pod record", "10-244-0-9.default.pod." + Z, "A", "NOERROR", ["A 10.244.0.9"]),
    Case("dns-version", "dns-version." + Z, "TXT", "NOERROR", ['TXT "1.1.0"']),
    Case("apex SOA", Z, "SOA", "NOERROR", ["SOA"]),
    Case("unknown service", "nope.default.svc." + Z, "A", "NXDOMAIN", [], soa=True),
    Case("existing namespace is NODATA", "default.svc." + Z, "A", "NOERROR", [], soa=True),
    Case("kubernetes service", "kubernetes.default.svc." + Z, "A", "NOERROR", ["A 10.96.0.1"]),
    Case("forwarded to upstream", "www.example.com.", "A", "NOERROR", ["A 192.0.2.1"]),
    Case("reverse fallthrough to upstream", "4.3.2.1.in-addr.arpa.", "PTR", "NOERROR",
         ["PTR host.example.com."]),
]


def _expand(s: str, objs: dict[str, str]) -> str:
    return s.format(**objs)


def _check(case: Case, objs: dict[str, str], rcode: str, data: list[str],
           authority_types: list[str]) -> None:
    assert rcode == case.rcode
    want = sorted(_expand(a, objs) for a in case.answer)
    if want == ["SOA"]:
        assert [d.split()[0] for d in data] == ["SOA"]
    else:
        assert data == want
    if case.soa:
        assert authority_types == ["SOA"]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_dnspython(dns_server: DNSProcess, objects: dict[str, str], case: Case,
                   tcp: bool) -> None:
    m = dns_server.query(_expand(case.qname, objects), case.rdtype, tcp=tcp)
    _check(case, objects, dns.rcode.to_text(m.rcode()), _data(m),
           [dns.rdatatype.to_text(r.rdtype) for r in m.authority])
    if case.qname.endswith(Z) and case.rcode != "SERVFAIL":
        assert m.flags & dns.flags.AA


@pytest.mark.parametrize("tcp", [False, True], ids=["notcp", "tcp"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_dig(dns_server: DNSProcess, objects: dict[str, str], case: Case, tcp: bool) -> None:
    if shutil.which("dig") is None:
        pytest.skip("dig is not installed (apt-get install dnsutils)")
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(dns_server.port), _expand(case.qname, objects),
         case.rdtype, "+tcp" if tcp else "+notcp", "+noall", "+comments", "+answer",
         "+authority", "+time=3", "+tries=1"],
        capture_output=True, text=True, timeout=15).stdout
    status = next(line.split("status: ")[1].split(",")[0] for line in out.splitlines()
                  if "status: " in line)
    sections: dict[str, list[list[str]]] = {"ANSWER": [], "AUTHORITY": []}
    current = ""
    for line in out.splitlines():
        if line.startswith(";; ") and "SECTION:" in line:
            current = line.split()[1]
        elif line and not line.startswith(";") and current in sections:
            sections[current].append(line.split())
    data = sorted(f"{f[3]} {' '.join(f[4:])}" for f in sections["ANSWER"])
    _check(case, objects, status, data, [f[3] for f in sections["AUTHORITY"]])


def test_live_change_and_metrics(cluster: APIServerProcess, dns_server: DNSProcess,
                                 objects: dict[str, str]) -> None:
    res = cluster.kubectl("patch", "service", "ext", "-p",
                          '{"spec":{"externalName":"bar.example.com"}}')
    assert res.returncode == 0, res.stderr
    wait_for("new CNAME", lambda: "CNAME bar.example.com." in _data(
        dns_server.query("ext.default.svc." + Z, "CNAME")))
    res = cluster.kubectl("delete", "service", "lonely")
    assert res.returncode == 0, res.stderr
    wait_for("deleted service gone", lambda: dns_server.query(
        "lonely.default.svc." + Z).rcode() == dns.rcode.NXDOMAIN)
    with urllib.request.urlopen(f"http://127.0.0.1:{dns_server.metrics_port}/metrics",
                                timeout=5) as r:
        text = r.read().decode()
    assert "coredns_dns_requests_total{" in text
    assert 'rcode="NXDOMAIN"' in text
    assert "coredns_dns_request_duration_seconds_bucket{" in text
    assert dns_server.proc.poll() is None, dns_server.log_tail()


def test_servfail_until_synced(cluster: APIServerProcess, upstream: FakeUpstream,
                              tmp_path: Path) -> None:
    """A DNS server whose API server is unreachable never syncs: every cluster name is
    SERVFAIL (so resolvers retry rather than cache a negative answer), forwarding works."""
    dead = free_port()
    kc = tmp_path / "kubeconfig"
    kc.write_text(cluster.kubeconfig.read_text().replace(
        f"https://127.0.0.1:{cluster.port}", f"https://127.0.0.1:{dead}"))
    d = start_dns(kc, upstream.port, tmp_path / "dns.log")
    try:
        wait_for("forwarding works", lambda: _data(d.query("www.example.com."))
                 == ["A 192.0.2.1"])
        for tcp in (False, True):
            for name in ("kubernetes.default.svc." + Z, "nope.default.svc." + Z):
                assert d.query(name, tcp=tcp).rcode() == dns.rcode.SERVFAIL, d.log_tail()
        assert d.proc.poll() is None, d.log_tail()
    finally:
        d.stop()


def test_externalname_becomes_clusterip(cluster: APIServerProcess, dns_server: DNSProcess,
                                        objects: dict[str, str]) -> None:
    """As the conformance e2e does: an ExternalName service turned into a ClusterIP one."""
    res = cluster.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Service
metadata: {name: flip}
spec: {type: ExternalName, externalName: foo.example.com}
""")
    assert res.returncode == 0, res.stderr
    name = "flip.default.svc." + Z
    wait_for("CNAME", lambda: "CNAME foo.example.com." in _data(dns_server.query(name)))
    res = cluster.kubectl("patch", "service", "flip", "-p", json.dumps({"spec": {
        "type": "ClusterIP", "externalName": None, "ports": [{"port": 80}]}}))
    assert res.returncode == 0, res.stderr
    cip = json.loads(cluster.kubectl("get", "service", "flip", "-o", "json").stdout)[
        "spec"]["clusterIP"]
    wait_for("A record", lambda: _data(dns_server.query(name)) == [f"A {cip}"])
