"""A small cluster as API dicts, shared by the record, wire and server tests."""

from __future__ import annotations

import socketserver
import struct
import threading
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from svcnet.dns.records import Zone

Obj = dict[str, Any]


def ns(name: str) -> Obj:
    return {"metadata": {"name": name}}


def svc(namespace: str, name: str, cluster_ip: str | None = None, *,
        ips: list[str] | None = None, ports: list[Obj] | None = None,
        external: str | None = None) -> Obj:
    spec: Obj = {"ports": ports or []}
    if external is not None:
        spec.update(type="ExternalName", externalName=external)
    else:
        spec.update(type="ClusterIP", clusterIP=cluster_ip,
                    clusterIPs=ips or ([cluster_ip] if cluster_ip else []))
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


def eps(namespace: str, service: str, slice_name: str, endpoints: list[Obj],
        ports: list[Obj] | None = None) -> Obj:
    return {"metadata": {"namespace": namespace, "name": slice_name,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": ports or []}


def pod(namespace: str, name: str, ip: str) -> Obj:
    return {"metadata": {"namespace": namespace, "name": name},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}


def http(port: int, name: str = "http", protocol: str = "TCP") -> Obj:
    return {"name": name, "port": port, "protocol": protocol}


def cluster_objects() -> dict[str, list[Obj]]:
    return {
        "namespaces": [ns("default"), ns("prod"), ns("kube-system")],
        "services": [
            svc("default", "alpaca-prod", "10.96.0.20",
                ports=[http(8080), {"port": 9090, "protocol": "TCP"}]),
            svc("default", "dual", "10.96.0.30", ips=["10.96.0.30", "fd00::30"],
                ports=[http(80)]),
            svc("default", "empty", "10.96.0.40"),
            svc("prod", "web", "None", ports=[http(80)]),
            svc("default", "none-ready", "None", ports=[http(80)]),
            svc("default", "ext", external="www.example.com"),
            svc("default", "ext-in", external="alpaca-prod.default.svc.cluster.local"),
            svc("default", "loop-a", external="loop-b.default.svc.cluster.local"),
            svc("default", "loop-b", external="loop-a.default.svc.cluster.local"),
            svc("kube-system", "kube-dns", "10.96.0.10",
                ports=[http(53, "dns", "UDP"), http(53, "dns-tcp")]),
        ],
        "endpointslices": [
            eps("default", "alpaca-prod", "alpaca-prod-abc",
                [{"addresses": ["10.244.0.9"], "conditions": {"ready": True}}],
                [http(8080)]),
            eps("prod", "web", "web-abc", [
                {"addresses": ["10.244.0.5"], "hostname": "web-0",
                 "conditions": {"ready": True}},
                {"addresses": ["10.244.0.6"]},  # ready absent counts as ready
                {"addresses": ["10.244.0.7"], "conditions": {"ready": False}},
            ], [http(8080)]),
            eps("default", "none-ready", "none-ready-abc",
                [{"addresses": ["10.244.0.8"], "conditions": {"ready": False}}], [http(80)]),
        ],
        "pods": [pod("default", "alpaca-1", "10.244.0.9")],
    }


def build_zone(ttl: int = 30, pods: str = "insecure") -> Zone:
    z = Zone("cluster.local", ttl=ttl, pods=pods)
    objs = cluster_objects()
    for o in objs["namespaces"]:
        z.set_namespace(o)
    for o in objs["services"]:
        z.set_service(o)
    for o in objs["endpointslices"]:
        z.set_slice(o)
    for o in objs["pods"]:
        z.set_pod(o)
    return z


class FakeUpstream:
    """Answers A for *.example.com with 192.0.2.1 (TTL 60), PTR for 4.3.2.1.in-addr.arpa,
    NXDOMAIN otherwise; counts the queries it saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        upstream = self

        def respond(data: bytes) -> bytes:
            q = dns.message.from_wire(data)
            name = q.question[0].name.to_text().lower()
            upstream.seen.append(name)
            r = dns.message.make_response(q)
            if name.endswith("example.com.") and q.question[0].rdtype == dns.rdatatype.A:
                r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A",
                                                    "192.0.2.1"))
            elif name == "4.3.2.1.in-addr.arpa.":
                r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "PTR",
                                                    "host.example.com."))
            else:
                r.set_rcode(dns.rcode.NXDOMAIN)
            return r.to_wire()

        class UDP(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(respond(data), self.client_address)

        class TCP(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                n = struct.unpack("!H", self.request.recv(2))[0]
                data = b""
                while len(data) < n:
                    data += self.request.recv(n - len(data))
                out = respond(data)
                self.request.sendall(struct.pack("!H", len(out)) + out)

        for _ in range(20):  # the same port number for UDP and TCP
            self.udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), UDP)
            port = self.udp.server_address[1]
            try:
                self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), TCP)
                break
            except OSError:
                self.udp.server_close()
        else:
            raise OSError("no free port pair")
        self.port = port
        for s in (self.udp, self.tcp):
            threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        for s in (self.udp, self.tcp):
            s.shutdown()
            s.server_close()
