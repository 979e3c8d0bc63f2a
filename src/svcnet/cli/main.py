"""``svcnet`` command line: argument parsing and wiring only."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from svcnet.cli import supervisor

DEFAULT_DATA_DIR = Path(os.environ.get("SVCNET_DATA_DIR", "./data"))


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="state, credentials and kubeconfig live here (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svcnet", description=(
        "Kubernetes Service networking: an API server, controllers, DNS and proxies that "
        "the real kubectl drives."))
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start a one-node cluster")
    _add_common(up)
    up.add_argument("--api-port", type=int, default=6443)
    up.add_argument("--dns-port", type=int, default=10053,
                    help="host loopback port of the cluster DNS (default: %(default)s)")
    up.add_argument("--runtime", choices=("netns", "process"), default=None,
                    help="pod runtime (default: netns as root on Linux, else process)")
    up.add_argument("--proxy-mode", default="userspace", choices=("userspace",),
                    help="service proxy dataplane (default: %(default)s)")
    up.add_argument("--ipvs-scheduler", default="rr",
                    help="the proxy's default scheduler (default: %(default)s)")
    up.add_argument("--proxy-port", type=int, default=10249,
                    help="127.0.0.1 port of the proxy's /metrics and /status")
    up.add_argument("--service-cidr", default=None,
                    help="ClusterIP range (default: 10.96.0.0/12 with the netns runtime; "
                         "127.96.0.0/12 with the process runtime, whose pods are host "
                         "processes: cluster IPs are then loopback addresses the proxy "
                         "serves on the host)")
    up.add_argument("--lb-pool", default="127.240.0.0/24",
                    help="addresses given to LoadBalancer services; loopback by default so "
                         "the host reaches them (default: %(default)s)")
    up.add_argument("--agent-port", type=int, default=10250,
                    help="loopback port of the node agent (logs, exec, port-forward)")
    up.add_argument("--node-name", default=None, help="default: the host name")
    up.add_argument("--detach", action="store_true",
                    help="run in the background; stop with `svcnet down`")

    down = sub.add_parser("down", help="stop a cluster started with --detach")
    _add_common(down)

    api = sub.add_parser("apiserver", help="run the API server alone")
    _add_common(api)
    api.add_argument("--port", type=int, default=6443)
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--service-cidr", default="10.96.0.0/12")
    api.add_argument("--compaction-interval", type=float, default=300.0,
                     help="seconds of history kept for watches resuming from an older "
                          "resourceVersion (default: %(default)s)")
    api.add_argument("--bookmark-interval", type=float, default=60.0,
                     help="seconds between BOOKMARK events on watches that ask for them")
    cm = sub.add_parser("controller-manager", help="run the controllers alone")
    _add_common(cm)
    cm.add_argument("--kubeconfig", type=Path, default=None,
                    help="default: <data-dir>/kubeconfig")
    cm.add_argument("--lb-pool", default="127.240.0.0/24",
                    help="addresses given to LoadBalancer services (default: %(default)s)")
    cm.add_argument("--node-monitor-grace-period", type=float, default=40.0,
                    help="seconds without a node heartbeat before the node is marked "
                         "Unknown and its pods not ready")
    cm.add_argument("--node-monitor-period", type=float, default=5.0)
    cm.add_argument("--pod-gc-quarantine", type=float, default=40.0,
                    help="seconds before pods bound to a missing node are deleted")
    ag = sub.add_parser("agent", help="run the node agent alone")
    _add_common(ag)
    ag.add_argument("--kubeconfig", type=Path, default=None,
                    help="default: <data-dir>/kubeconfig")
    ag.add_argument("--node-name", default=None, help="default: the host name")
    ag.add_argument("--runtime", choices=("netns", "process"), default=None,
                    help="default: netns as root on Linux, else process")
    ag.add_argument("--pod-cidr", default="10.244.0.0/24")
    ag.add_argument("--port", type=int, default=10250,
                    help="loopback port the API server reaches the agent on")
    ag.add_argument("--cluster-dns", default="10.96.0.10")
    ag.add_argument("--node-status-update-frequency", type=float, default=10.0,
                    help="seconds between the node's heartbeats (Lease and status)")
    ag.add_argument("--image-map", type=Path, default=None,
                    help="YAML file mapping image names to commands "
                         "(default: <data-dir>/images.yaml)")
    dn = sub.add_parser("dns", help="run the cluster DNS server alone")
    _add_common(dn)
    dn.add_argument("--kubeconfig", type=Path, default=None,
                    help="default: <data-dir>/kubeconfig")
    dn.add_argument("--port", type=int, default=53,
                    help="UDP+TCP port on 127.0.0.1 (default: %(default)s)")
    dn.add_argument("--upstream", action="append", default=[], metavar="IP[:PORT]",
                    help="resolver for names outside the cluster (repeatable; "
                         "default: nameservers of /etc/resolv.conf)")
    dn.add_argument("--ttl", type=int, default=30)
    dn.add_argument("--metrics-port", type=int, default=9153,
                    help="Prometheus /metrics on 127.0.0.1 (0: off)")
    dn.add_argument("--cluster-netns", default=None,
                    help="also listen on the node's address (port 53, metrics on 9153) "
                         "inside this network namespace and publish it as the kube-dns "
                         "endpoints")
    dn.add_argument("--publish-host", action="store_true",
                    help="publish --host:--port as the kube-dns endpoints (the process "
                         "runtime, whose cluster IPs are loopback addresses)")
    dn.add_argument("--cluster-ip", default=None,
                    help="with --cluster-netns, also listen on this service VIP directly "
                         "(for a cluster without a service proxy)")
    px = sub.add_parser("proxy", help="run the node's service proxy alone; "
                                      "`svcnet proxy status` shows what it serves")
    _add_common(px)
    px.add_argument("action", nargs="?", choices=("run", "status"), default="run")
    px.add_argument("--kubeconfig", type=Path, default=None,
                    help="default: <data-dir>/kubeconfig")
    px.add_argument("--node-name", default=None, help="default: the host name")
    px.add_argument("--runtime", choices=("netns", "process"), default=None,
                    help="the node's pod runtime (default: netns as root on Linux, else "
                         "process); with netns the proxy works in the node's namespace")
    px.add_argument("--proxy-mode", default="userspace", help="dataplane (userspace, fake)")
    px.add_argument("--ipvs-scheduler", default="rr",
                    help="default scheduler (rr wrr lc wlc sed nq sh dh mh); a service "
                         "picks its own with the svcnet.io/ipvs-scheduler annotation")
    px.add_argument("--udp-timeout", type=float, default=0.25,
                    help="idle seconds before a UDP flow is forgotten (default %(default)s)")
    px.add_argument("--min-sync-period", type=float, default=1.0)
    px.add_argument("--sync-period", type=float, default=30.0)
    px.add_argument("--port", type=int, default=10249,
                    help="127.0.0.1 port for /healthz, /metrics and /status")
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _install_loop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_apiserver(args: argparse.Namespace) -> int:
    from svcnet.apiserver.server import APIServerConfig, serve
    _install_loop()
    cfg = APIServerConfig(data_dir=args.data_dir.resolve(), host=args.host, port=args.port,
                          service_cidr=args.service_cidr,
                          compaction_interval=args.compaction_interval,
                          bookmark_interval=args.bookmark_interval)
    asyncio.run(serve(cfg))
    return 0


def run_controller_manager(args: argparse.Namespace) -> int:
    from svcnet.controllers.manager import run
    _install_loop()
    asyncio.run(run(args.kubeconfig or args.data_dir.resolve() / "kubeconfig",
                    pod_gc_quarantine=args.pod_gc_quarantine, lb_pool=args.lb_pool,
                    node_grace=args.node_monitor_grace_period,
                    node_monitor_period=args.node_monitor_period))
    return 0


def run_agent(args: argparse.Namespace) -> int:
    # A stop asked for while the agent is still importing and starting must still clean up
    # what it made: catch SIGTERM from here on and hand it to the agent.
    early_stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _f: early_stop.append(signum))
    from svcnet.agent import main as agent_main
    from svcnet.agent.agent import AgentConfig
    _install_loop()
    data = args.data_dir.resolve()
    name = args.node_name or agent_main.default_node_name()
    cfg = AgentConfig(node_name=name, data_dir=data / "nodes" / name,
                      kubeconfig=args.kubeconfig or data / "kubeconfig",
                      runtime=args.runtime or agent_main.default_runtime(),
                      pod_cidr=args.pod_cidr, port=args.port, cluster_dns=args.cluster_dns,
                      image_map_file=args.image_map or data / "images.yaml",
                      node_status_update_frequency=args.node_status_update_frequency)
    asyncio.run(agent_main.run(cfg, stop_requested=lambda: bool(early_stop)))
    return 0


def run_dns(args: argparse.Namespace) -> int:
    from svcnet.dns.server import DNSConfig, parse_upstream, run
    _install_loop()
    cfg = DNSConfig(kubeconfig=args.kubeconfig or args.data_dir.resolve() / "kubeconfig",
                    port=args.port, upstreams=[parse_upstream(u) for u in args.upstream],
                    ttl=args.ttl, metrics_port=args.metrics_port,
                    cluster_netns=args.cluster_netns, cluster_ip=args.cluster_ip,
                    publish_host=args.publish_host)
    asyncio.run(run(cfg))
    return 0


def run_proxy(args: argparse.Namespace) -> int:
    from svcnet.proxy import main as proxy_main
    if args.action == "status":
        try:
            print(proxy_main.format_status(proxy_main.fetch_status(args.port)))
        except OSError as e:
            print(f"no proxy answering on 127.0.0.1:{args.port}: {e}", file=sys.stderr)
            return 1
        return 0
    from svcnet.agent.main import default_node_name, default_runtime
    from svcnet.agent.runtime.netns import node_netns_name
    _install_loop()
    node = args.node_name or default_node_name()
    runtime = args.runtime or default_runtime()
    cfg = proxy_main.ProxyConfig(
        kubeconfig=args.kubeconfig or args.data_dir.resolve() / "kubeconfig",
        node_name=node, mode=args.proxy_mode,
        netns=node_netns_name("svcnet", node) if runtime == "netns" else None,
        scheduler=args.ipvs_scheduler, udp_timeout=args.udp_timeout,
        min_sync_period=args.min_sync_period, sync_period=args.sync_period, port=args.port)
    asyncio.run(proxy_main.run(cfg))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    if args.command == "apiserver":
        return run_apiserver(args)
    if args.command == "agent":
        return run_agent(args)
    if args.command == "dns":
        return run_dns(args)
    if args.command == "controller-manager":
        return run_controller_manager(args)
    if args.command == "proxy":
        return run_proxy(args)
    if args.command == "up":
        return supervisor.up(args)
    if args.command == "down":
        return supervisor.down(args.data_dir.resolve())
    return 2


if __name__ == "__main__":
    sys.exit(main())
