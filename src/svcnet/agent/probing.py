"""Probes wired to pod workers: a :class:`ProbeManager` per pod whose results set
container readiness and restart containers whose liveness (or startup) probe fails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from svcnet.agent.pods import ContainerConfigError, PodWorker
from svcnet.agent.probes import (
    PodProber,
    ProbeManager,
    ProbeResult,
    ProbeType,
    Result,
    sandbox_connector,
)
from svcnet.agent.runtime.base import Sandbox

if TYPE_CHECKING:
    from svcnet.agent.agent import Agent

Obj = dict[str, Any]


class PodProbes:
    """The ProbeHooks of one pod worker (see :class:`svcnet.agent.pods.ProbeHooks`)."""

    def __init__(self, agent: Agent, worker: PodWorker) -> None:
        self.agent = agent
        self.worker = worker
        self.manager: ProbeManager | None = None

    def _build(self, sandbox: Sandbox) -> ProbeManager:
        pod = self.worker.pod
        containers = (pod.get("spec") or {}).get("containers") or []
        env: dict[str, dict[str, str]] = {}
        for c in containers:
            try:
                env[c["name"]] = self.agent.plan_container(pod, c).env
            except ContainerConfigError:
                env[c["name"]] = {}
        prober = PodProber(sandbox.ip, sandbox_connector(self.agent.runtime, sandbox),
                           tuple(self.agent.runtime.exec_prefix(sandbox)), env,
                           {c["name"]: c.get("ports") or [] for c in containers})
        return ProbeManager.for_pod(pod, prober, self._on_change)

    def container_started(self, container: Obj, sandbox: Sandbox) -> None:
        if self.manager is None:
            self.manager = self._build(sandbox)
        self.manager.container_started(container["name"])

    def container_stopped(self, name: str) -> None:
        if self.manager is not None:
            self.manager.container_stopped(name)

    def ready(self, name: str) -> bool | None:
        return self.manager.ready(name) if self.manager is not None else None

    def started(self, name: str) -> bool | None:
        return self.manager.started(name) if self.manager is not None else None

    def _on_change(self, name: str, probe_type: ProbeType, result: Result,
                   last: ProbeResult | None) -> None:
        if result is Result.FAILURE and last is not None and last.result is Result.FAILURE:
            # A failed probe (not a readiness reset because the container stopped).
            self.agent.record_event(self.worker.pod, "Warning", "Unhealthy",
                                    f"{probe_type.value} probe failed: {last.message}")
            if probe_type in (ProbeType.LIVENESS, ProbeType.STARTUP):
                self.agent.record_event(
                    self.worker.pod, "Normal", "Killing",
                    f"Container {name} failed {probe_type.value.lower()} probe, will be "
                    "restarted")
                self.worker.restart_container(name)
        self.worker.poke()

    async def stop(self) -> None:
        if self.manager is not None:
            await self.manager.close()


def probe_hooks_factory(agent: Agent, worker: PodWorker) -> PodProbes:
    return PodProbes(agent, worker)
