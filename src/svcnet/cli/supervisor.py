"""``svcnet up`` / ``svcnet down``: run the cluster's components as supervised processes.

The supervisor starts each component as its own OS process (``svcnet <component> ...``),
restarts one that dies (with back-off), and on SIGINT/SIGTERM stops them all: SIGTERM,
then SIGKILL after a grace period. Its PID is in ``<data-dir>/svcnet.pid`` so that
``svcnet down`` can stop a detached cluster.
"""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from svcnet.apiserver.pki import ensure_pki, write_kubeconfig

GRACE_SECONDS = 10.0


@dataclass
class Component:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    log_path: Path = field(default_factory=lambda: Path(os.devnull))

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the supervisor dies, even by SIGKILL,
    so no component outlives it (Linux; a no-op elsewhere)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _pid_file(data_dir: Path) -> Path:
    return data_dir / "svcnet.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(data_dir: Path) -> int | None:
    try:
        return int(_pid_file(data_dir).read_text().strip())
    except (OSError, ValueError):
        return None


def wait_ready(url: str, ca_file: Path, timeout: float = 30.0,
               proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Poll ``url`` (``/readyz``) until it answers 200; False on timeout or if ``proc``
    exits first."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


NETNS_SERVICE_CIDR = "10.96.0.0/12"
PROCESS_SERVICE_CIDR = "127.96.0.0/12"


def _service_cidr(args: argparse.Namespace) -> str:
    from svcnet.agent.main import default_runtime
    if args.service_cidr:
        return str(args.service_cidr)
    runtime = args.runtime or default_runtime()
    return NETNS_SERVICE_CIDR if runtime == "netns" else PROCESS_SERVICE_CIDR


def _component_argv(args: argparse.Namespace, data_dir: Path) -> list[Component]:
    from svcnet.apiserver.server import service_cidr_address
    py = [sys.executable, "-m", "svcnet.cli.main"]
    cidr = _service_cidr(args)
    verbose = ["-v"] if args.verbose else []
    return [
        Component("apiserver", [*py, "apiserver", "--data-dir", str(data_dir),
                                "--port", str(args.api_port),
                                "--service-cidr", cidr, *verbose],
                  log_path=data_dir / "logs" / "apiserver.log"),
        Component("controller-manager", [*py, "controller-manager", "--data-dir",
                                         str(data_dir), "--lb-pool", args.lb_pool, *verbose],
                  log_path=data_dir / "logs" / "controller-manager.log"),
        Component("agent", [*py, "agent", "--data-dir", str(data_dir),
                            "--port", str(args.agent_port),
                            "--cluster-dns", service_cidr_address(cidr, 10),
                            *(["--runtime", args.runtime] if args.runtime else []),
                            *(["--node-name", args.node_name] if args.node_name else []),
                            *verbose],
                  log_path=data_dir / "logs" / "agent.log"),
        Component("proxy", [*py, "proxy", "--data-dir", str(data_dir),
                            "--port", str(args.proxy_port),
                            "--proxy-mode", args.proxy_mode,
                            "--ipvs-scheduler", args.ipvs_scheduler,
                            *(["--runtime", args.runtime] if args.runtime else []),
                            *(["--node-name", args.node_name] if args.node_name else []),
                            *verbose],
                  log_path=data_dir / "logs" / "proxy.log"),
        Component("dns", [*py, "dns", "--data-dir", str(data_dir),
                          "--port", str(args.dns_port), "--metrics-port", "0",
                          *_dns_cluster_args(args), *verbose],
                  log_path=data_dir / "logs" / "dns.log"),
    ]


def _dns_cluster_args(args: argparse.Namespace) -> list[str]:
    """With the netns runtime, DNS also answers pods on the node's address in the node
    namespace (the kube-dns endpoints, reached through the proxy at 10.96.0.10); with the
    process runtime its host port is the endpoint (the proxy serves 127.96.0.10:53)."""
    from svcnet.agent.main import default_node_name, default_runtime
    from svcnet.agent.runtime.netns import node_netns_name
    if (args.runtime or default_runtime()) != "netns":
        return ["--publish-host"]
    node = args.node_name or default_node_name()
    return ["--cluster-netns", node_netns_name("svcnet", node)]


def _usage(data_dir: Path, port: int, dns_port: int) -> str:
    kc = data_dir / "kubeconfig"
    return (f"svcnet is running: API https://127.0.0.1:{port}\n"
            f"  export KUBECONFIG={kc}\n"
            f"  kubectl get nodes,namespaces,services -A\n"
            f"  dig @127.0.0.1 -p {dns_port} kubernetes.default.svc.cluster.local\n"
            f"Logs in {data_dir / 'logs'}.")


def up(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "logs").mkdir(exist_ok=True)
    pid = _read_pid(data_dir)
    if pid is not None and pid != os.getpid() and _alive(pid):
        print(f"svcnet is already running for {data_dir} (pid {pid}); "
              f"stop it with: svcnet down --data-dir {data_dir}", file=sys.stderr)
        return 1
    pki = ensure_pki(data_dir)
    write_kubeconfig(data_dir / "kubeconfig", pki, f"https://127.0.0.1:{args.api_port}")
    if args.detach:
        return _detach(args, data_dir)
    return Supervisor(_component_argv(args, data_dir), data_dir, args.api_port,
                      args.dns_port).run()


def _detach(args: argparse.Namespace, data_dir: Path) -> int:
    argv = [a for a in sys.argv[1:] if a != "--detach"]
    cmd = [sys.executable, "-m", "svcnet.cli.main", *argv]
    if "--data-dir" not in argv:
        cmd += ["--data-dir", str(data_dir)]
    log = open(data_dir / "logs" / "supervisor.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    url = f"https://127.0.0.1:{args.api_port}/readyz"
    if not wait_ready(url, data_dir / "pki" / "ca.crt", timeout=60.0, proc=proc):
        print(f"svcnet did not become ready; see {data_dir / 'logs'}", file=sys.stderr)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        return 1
    print(_usage(data_dir, args.api_port, args.dns_port))
    print(f"Stop it with: svcnet down --data-dir {data_dir}")
    return 0


def down(data_dir: Path) -> int:
    pid = _read_pid(data_dir)
    if pid is None or not _alive(pid):
        print(f"svcnet is not running for {data_dir}", file=sys.stderr)
        _pid_file(data_dir).unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    print(f"svcnet stopped ({data_dir})")
    return 0


class Supervisor:
    """Keeps the components running until told to stop."""

    def __init__(self, components: list[Component], data_dir: Path, api_port: int,
                 dns_port: int) -> None:
        self.components = components
        self.data_dir = data_dir
        self.api_port = api_port
        self.dns_port = dns_port
        self.stopping = False

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        _pid_file(self.data_dir).write_text(str(os.getpid()))
        try:
            api = self.components[0]
            api.start()
            if wait_ready(f"https://127.0.0.1:{self.api_port}/readyz",
                          self.data_dir / "pki" / "ca.crt", timeout=60.0, proc=api.proc):
                for c in self.components[1:]:
                    c.start()
                print(_usage(self.data_dir, self.api_port, self.dns_port), flush=True)
                print("Press Ctrl-C to stop.", flush=True)
            else:
                print(f"the API server did not become ready; see {self.data_dir / 'logs'}",
                      file=sys.stderr, flush=True)
            while not self.stopping:
                self._restart_dead()
                time.sleep(0.2)
        finally:
            self._stop_all()
            _pid_file(self.data_dir).unlink(missing_ok=True)
        return 0

    def _restart_dead(self) -> None:
        now = time.monotonic()
        for c in self.components:
            if c.proc is None and self.components[0].proc is not None and \
                    self.components[0].proc.poll() is None:
                c.start()  # the API server became ready late
                continue
            if c.proc is None or c.proc.poll() is None:
                continue
            if c.next_start == 0.0:
                delay = min(30.0, 0.5 * (2 ** min(c.restarts, 6)))
                c.next_start = now + delay
                print(f"{c.name} exited with {c.proc.returncode}; restarting in {delay:.1f}s",
                      file=sys.stderr, flush=True)
            elif now >= c.next_start:
                c.restarts += 1
                c.next_start = 0.0
                c.start()

    def _stop_all(self) -> None:
        live = [c.proc for c in self.components if c.proc and c.proc.poll() is None]
        for p in live:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for p in live:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
