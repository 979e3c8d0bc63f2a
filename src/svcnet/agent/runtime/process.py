"""The ``process`` runtime: the unprivileged fallback.

A pod is a set of plain processes sharing the host's network namespace; its identity is
a loopback address of its own from ``address_range`` (default ``127.32.0.0/16``; every
127/8 address is local on Linux, so nothing needs configuring) handed out by a
persisted IPAM. Containers learn it from ``POD_IP`` and must bind it — the documented
limit of this mode, as are: no per-pod resolv.conf or /etc/hosts, no hostname of its own
(only ``HOSTNAME`` in the environment). Commands run as they are
(:meth:`ProcessRuntime.exec_prefix` is empty; the caller passes the pod's environment).

Container processes and logs are the same as the ``netns`` runtime's
(:mod:`svcnet.agent.runtime.containers`). :meth:`ProcessRuntime.start` kills the
container processes an earlier run recorded and frees their addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

from svcnet.agent.runtime.base import ContainerProcess, ContainerSpec, Sandbox, SandboxSpec
from svcnet.agent.runtime.containers import AddressPool, ProcessTable, SandboxRecords

DEFAULT_ADDRESS_RANGE = "127.32.0.0/16"


class ProcessRuntime:
    """Pods as processes bound to their own loopback address."""

    name = "process"

    def __init__(self, state_dir: Path, node_name: str = "", prefix: str = "svcnet",
                 address_range: str = DEFAULT_ADDRESS_RANGE,
                 pod_cidr: str | None = None) -> None:
        """``pod_cidr`` is accepted so both runtimes take the same configuration, and
        ignored: addresses come from ``address_range``, which must be within 127/8."""
        net = ipaddress.IPv4Network(address_range)
        if not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise ValueError(f"address_range {address_range} is not a loopback range")
        self.node_name = node_name
        self.prefix = prefix
        self.state_dir = Path(state_dir)
        self.address_range = address_range
        self.node_ip = "127.0.0.1"
        self._ipam = AddressPool(self.state_dir / "ipam.json", address_range)
        self._records = SandboxRecords(self.state_dir)
        self._procs = ProcessTable(self.state_dir)

    async def start(self) -> None:
        """Kill the container processes an earlier run recorded; free its addresses."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for sandbox, _ in self._records.all():
            await self._remove(sandbox)
        await self._procs.kill_all()
        for owner in set(self._ipam.owned().values()):
            self._ipam.release(owner)

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox:
        """A loopback address for the pod (its existing one if it has a sandbox)."""
        ip = self._ipam.allocate(spec.pod_uid)
        sandbox = Sandbox(pod_uid=spec.pod_uid, namespace=spec.namespace, name=spec.name,
                          ip=ip, netns=None, hostname=spec.hostname)
        self._records.put(sandbox)
        return sandbox

    async def remove_sandbox(self, sandbox: Sandbox) -> None:
        """Kill the pod's container processes and free its address. Idempotent."""
        await self._remove(sandbox)

    async def _remove(self, sandbox: Sandbox) -> None:
        await self._procs.kill_pod(sandbox.pod_uid)
        self._ipam.release(sandbox.pod_uid)
        self._records.remove(sandbox.pod_uid)

    def exec_prefix(self, sandbox: Sandbox) -> list[str]:
        """Empty: commands run in the host's namespaces with the pod's environment."""
        return []

    async def start_container(self, sandbox: Sandbox, spec: ContainerSpec
                              ) -> ContainerProcess:
        return await self._procs.start(sandbox, spec, [])

    async def open_connection(self, sandbox: Sandbox, port: int, timeout: float = 5.0
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """TCP to the pod's loopback ``ip:port``."""
        return await asyncio.wait_for(asyncio.open_connection(sandbox.ip, port), timeout)

    async def shutdown(self, remove_all: bool) -> None:
        """``remove_all``: kill every pod's processes and free all addresses."""
        if not remove_all:
            return
        for sandbox, _ in self._records.all():
            await self._remove(sandbox)
        await self._procs.kill_all()
