"""A real svcnet API server in a child process, for tests and benchmarks.

``APIServerProcess`` starts ``svcnet apiserver`` on a free loopback port with its own data
directory, writes a kubeconfig, waits for ``/readyz`` and stops the process by its PID.
``kubectl()`` runs the machine's kubectl against it with a private HOME, so cached
discovery from another server is never reused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from svcnet.apiserver.pki import ensure_pki, write_kubeconfig
from svcnet.cli.supervisor import wait_ready


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(p: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM,
                 timeout: float = 10.0) -> None:
    """Send ``sig`` to ``p`` by its PID and wait; SIGKILL if it outlives ``timeout``.
    Nothing happens for ``None`` or a process that already ended."""
    if p is None or p.poll() is not None:
        return
    p.send_signal(sig)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def log_tail(path: Path, n: int = 60) -> str:
    """The last ``n`` lines of a log file ("" if it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-n:])


@dataclass
class KubectlResult:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class APIServerProcess:
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="svcnet-home-")))
    extra_args: list[str] = field(default_factory=list)
    controllers: subprocess.Popen[bytes] | None = None
    agent: subprocess.Popen[bytes] | None = None
    # Other components by subcommand name (proxy, dns): see start_component.
    components: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    proxy_port: int = 0
    dns_port: int = 0

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    @property
    def token(self) -> str:
        return (self.data_dir / "pki" / "admin.token").read_text().strip()

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pki = ensure_pki(self.data_dir)
        write_kubeconfig(self.kubeconfig, pki, self.url)
        log = open(self.data_dir / "apiserver.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "svcnet.cli.main", "apiserver", "--data-dir",
             str(self.data_dir), "--port", str(self.port), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        if not wait_ready(self.url + "/readyz", self.ca_file, timeout, self.proc):
            self.stop()
            raise RuntimeError("apiserver did not become ready:\n" + self.log_tail())

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = (self.data_dir / "apiserver.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop the server (and the controller-manager, if started) by PID: SIGTERM,
        SIGKILL after ``timeout``."""
        for name in list(self.components):
            self.stop_component(name)
        self.stop_agent()
        self.stop_controllers()
        p, self.proc = self.proc, None
        stop_process(p, sig, timeout)

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["HOME"] = str(self.home)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env.pop("KUBECTL_EXTERNAL_DIFF", None)
        return env

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 60.0,
                env: dict[str, str] | None = None) -> KubectlResult:
        """Run ``kubectl ARGS`` against this server."""
        res = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True,
                             timeout=timeout, env={**self.env(), **(env or {})})
        return KubectlResult(res.returncode, res.stdout, res.stderr)

    # --- the controller-manager ---------------------------------------------------------

    def start_controllers(self, *extra_args: str) -> subprocess.Popen[bytes]:
        """Start ``svcnet controller-manager`` (with ``extra_args``) against this server
        (stopped by :meth:`stop_controllers` or :meth:`stop`)."""
        log = open(self.data_dir / "controller-manager.log", "ab")  # noqa: SIM115
        self.controllers = subprocess.Popen(
            [sys.executable, "-m", "svcnet.cli.main", "controller-manager", "--kubeconfig",
             str(self.kubeconfig), "-v", "--pod-gc-quarantine", "2", *extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return self.controllers

    def stop_controllers(self, sig: int = signal.SIGTERM) -> None:
        p, self.controllers = self.controllers, None
        stop_process(p, sig, 10)

    # --- the node agent -----------------------------------------------------------------

    def start_agent(self, runtime: str, node_name: str = "node-1",
                    port: int | None = None, *extra_args: str) -> subprocess.Popen[bytes]:
        """Start ``svcnet agent`` (stopped by :meth:`stop_agent` or :meth:`stop`)."""
        self.agent_port = port or free_port()
        log = open(self.data_dir / "agent.log", "ab")  # noqa: SIM115
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "svcnet.cli.main", "agent", "--data-dir",
             str(self.data_dir), "--kubeconfig", str(self.kubeconfig), "--runtime", runtime,
             "--node-name", node_name, "--port", str(self.agent_port), "-v", *extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return self.agent

    def stop_agent(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Stop the agent by PID; SIGTERM makes it remove its pods' namespaces."""
        p, self.agent = self.agent, None
        stop_process(p, sig, timeout)

    def start_component(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``svcnet <name> --kubeconfig ... <args>`` logging to ``<name>.log``
        (stopped by :meth:`stop_component` or :meth:`stop`, before the agent)."""
        self.stop_component(name)
        log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115
        self.components[name] = subprocess.Popen(
            [sys.executable, "-m", "svcnet.cli.main", name, "--data-dir", str(self.data_dir),
             "--kubeconfig", str(self.kubeconfig), "-v", *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return self.components[name]

    def start_proxy(self, runtime: str, node_name: str = "node-1", *args: str
                    ) -> subprocess.Popen[bytes]:
        """``svcnet proxy`` for ``node_name``; its status port is :attr:`proxy_port`."""
        self.proxy_port = free_port()
        return self.start_component("proxy", "--runtime", runtime, "--node-name", node_name,
                                    "--port", str(self.proxy_port), *args)

    def start_dns(self, *args: str) -> subprocess.Popen[bytes]:
        """``svcnet dns`` on a free loopback port (:attr:`dns_port`)."""
        self.dns_port = free_port()
        return self.start_component("dns", "--port", str(self.dns_port), "--metrics-port",
                                    "0", *args)

    def stop_component(self, name: str, sig: int = signal.SIGTERM,
                       timeout: float = 20.0) -> None:
        stop_process(self.components.pop(name, None), sig, timeout)

    def component_log(self, name: str, n: int = 60) -> str:
        return log_tail(self.data_dir / f"{name}.log", n)

    def agent_log(self, n: int = 60) -> str:
        return log_tail(self.data_dir / "agent.log", n)

    def controllers_log(self, n: int = 60) -> str:
        return log_tail(self.data_dir / "controller-manager.log", n)

    def __enter__(self) -> APIServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop every process and remove the private kubectl HOME."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


# --- network namespaces ------------------------------------------------------------------

def netns_names() -> set[str]:
    """The network namespaces ``ip netns list`` shows."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def remove_new_namespaces(before: set[str]) -> set[str]:
    """Remove svcnet network namespaces made since ``before`` (by name, killing their
    processes by PID); returns their names so the caller can fail on leftovers."""
    left = {n for n in netns_names() - before if n.startswith("svcnet-")}
    for name in left:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "delete", name], check=False)
    return left
