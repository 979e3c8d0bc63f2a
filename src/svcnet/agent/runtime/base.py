"""The ``PodRuntime`` protocol: where and how a pod's processes run.

A runtime gives each pod a *sandbox* (its network identity: IP, network namespace,
hostname, resolv.conf) and starts container processes inside it. It knows nothing about
the Kubernetes API: the agent's pod workers decide what to run and when; the runtime
carries it out and reports processes' exits.

Two implementations, looked up by name (:func:`svcnet.agent.runtime.get_runtime`):
``netns`` (root on Linux: a network namespace per node with a bridge, one per pod with a
veth and an IP from the node's pod CIDR) and ``process`` (unprivileged: pods bind a
unique loopback address).

Every namespace, interface, file and process a runtime makes carries the runtime's
prefix and is recorded in its state directory, so a later start (after a crash or
``kill -9``) finds and removes exactly what an earlier run left (:meth:`cleanup`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class DNSSettings:
    """What goes into a pod's resolv.conf (already resolved from dnsPolicy/dnsConfig)."""

    nameservers: tuple[str, ...]
    searches: tuple[str, ...]
    options: tuple[str, ...]


@dataclass(frozen=True)
class SandboxSpec:
    pod_uid: str
    namespace: str
    name: str
    hostname: str  # pod name, or spec.hostname
    subdomain: str = ""
    dns: DNSSettings | None = None  # None: keep the host's resolv.conf (hostNetwork/Default)
    host_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Sandbox:
    """A pod's network identity. ``netns`` is the network namespace's name (None for the
    process runtime)."""

    pod_uid: str
    namespace: str
    name: str
    ip: str
    netns: str | None
    hostname: str


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    working_dir: str | None = None
    log_path: Path = field(default_factory=lambda: Path("/dev/null"))
    stdin: bool = False
    tty: bool = False


class ContainerProcess(Protocol):
    """A running container process (its own process group)."""

    pid: int

    async def wait(self) -> int:
        """The exit code (128+N for signal N, as container runtimes report)."""
        ...

    def signal(self, sig: int) -> None:
        """Signal the container's whole process group; no-op once it has exited."""
        ...

    @property
    def returncode(self) -> int | None: ...


class PodRuntime(Protocol):
    name: str

    async def start(self) -> None:
        """Node-level set-up (node namespace, bridge, addresses); removes what an earlier
        run of this node left behind (namespaces, interfaces, processes, files)."""
        ...

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox:
        ...

    async def remove_sandbox(self, sandbox: Sandbox) -> None:
        """Kill any process left in the sandbox and remove its namespace, veth, files."""
        ...

    async def start_container(self, sandbox: Sandbox, spec: ContainerSpec
                              ) -> ContainerProcess:
        """Start ``spec.argv`` inside the sandbox with ``spec.env`` (plus POD_IP,
        HOSTNAME), stdout/stderr appended to ``spec.log_path`` in the CRI log format
        (``<RFC3339Nano> stdout|stderr F|P <line>``)."""
        ...

    def exec_prefix(self, sandbox: Sandbox) -> list[str]:
        """argv prefix that runs a command inside the sandbox (for exec and exec probes)."""
        ...

    async def open_connection(self, sandbox: Sandbox, port: int, timeout: float = 5.0
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to the pod's ``ip:port``, made from inside the cluster network
        (never from the host's namespace). Used by probes and port-forward."""
        ...

    async def shutdown(self, remove_all: bool) -> None:
        """Stop. ``remove_all``: also remove every sandbox and the node's namespace."""
        ...
