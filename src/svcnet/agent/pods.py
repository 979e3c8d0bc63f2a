"""Pod workers: one asyncio task per pod bound to this node, carrying it through its life.

A worker creates the pod's sandbox, starts its containers (image → command, env, service
variables), restarts them per ``restartPolicy`` with the kubelet's back-off (10 s doubling
to 5 min, reset after 10 min of running), runs probes, writes the pod's status through the
``status`` subresource whenever it changes, and on deletion stops the containers
(SIGTERM, then SIGKILL after the grace period), removes the sandbox and finishes the
deletion. Everything it knows comes from the informer caches the :class:`PodHost` gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from svcnet._util import rfc3339
from svcnet.agent import logs as logfiles
from svcnet.agent.runtime.base import (
    ContainerProcess,
    ContainerSpec,
    DNSSettings,
    PodRuntime,
    Sandbox,
    SandboxSpec,
)
from svcnet.agent.status import ContainerRun, pod_status

log = logging.getLogger("svcnet.agent.pods")
Obj = dict[str, Any]

BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET_AFTER = 600.0


class ContainerConfigError(Exception):
    """The container cannot be configured (reason, message as the kubelet reports)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class LaunchPlan:
    argv: list[str]
    env: dict[str, str]
    image_id: str
    working_dir: str | None


class PodHost(Protocol):
    """What a worker needs from the agent (informer-backed, so no API calls)."""

    runtime: PodRuntime
    node_name: str
    host_ip: str
    logs_dir: Path

    def plan_container(self, pod: Obj, container: Obj) -> LaunchPlan:
        """Image, command and environment; raises ContainerConfigError."""
        ...

    def dns_settings(self, pod: Obj) -> DNSSettings | None: ...

    async def write_status(self, pod: Obj, status: Obj) -> None: ...

    async def finish_deletion(self, pod: Obj) -> None: ...

    def make_probes(self, worker: PodWorker) -> ProbeHooks | None: ...


class ProbeHooks(Protocol):
    """Probe integration for one pod (see :mod:`svcnet.agent.probes`)."""

    def container_started(self, container: Obj, sandbox: Sandbox) -> None: ...

    def container_stopped(self, name: str) -> None: ...

    def ready(self, name: str) -> bool | None:
        """Readiness; None when the container has no readiness probe."""
        ...

    def started(self, name: str) -> bool | None: ...

    async def stop(self) -> None: ...


def _container_id(pod: Obj, name: str, restart: int) -> str:
    uid = (pod.get("metadata") or {}).get("uid", "")
    return f"svcnet://{uid[:8]}-{name}-{restart}"


class PodWorker:
    """Runs one pod. ``update(pod)`` feeds newer versions; ``task`` is the worker task."""

    def __init__(self, host: PodHost, pod: Obj) -> None:
        self.host = host
        self.pod = pod
        meta = pod.get("metadata") or {}
        self.key = f"{meta.get('namespace')}/{meta.get('name')}"
        self.uid = meta.get("uid", "")
        self.sandbox: Sandbox | None = None
        self.runs: dict[str, ContainerRun] = {}
        self.procs: dict[str, ContainerProcess] = {}
        self.started_mono: dict[str, float] = {}
        self.backoff: dict[str, float] = {}
        self.next_start: dict[str, float] = {}
        self.start_time = ""
        self._wake = asyncio.Event()
        self._restart_now: set[str] = set()
        self._last_status: Obj | None = None
        self.probes: ProbeHooks | None = None
        self.task: asyncio.Task[None] | None = None

    # --- inputs ------------------------------------------------------------------------

    def update(self, pod: Obj) -> None:
        self.pod = pod
        if self._last_status is not None and \
                _condition_states(pod.get("status") or {}) != \
                _condition_states(self._last_status):
            # Someone else changed the conditions the agent owns (the node lifecycle
            # controller marks pods not ready on a silent node): report them again.
            self._last_status = None
        self._wake.set()

    def poke(self) -> None:
        """Something changed (a probe result): recompute status."""
        self._wake.set()

    def restart_container(self, name: str) -> None:
        """Liveness failed: kill the container; the restart policy brings it back."""
        self._restart_now.add(name)
        self._wake.set()

    def container_running(self, name: str) -> bool:
        run = self.runs.get(name)
        return run is not None and run.state == "running"

    def log_path(self, name: str, restart: int) -> Path:
        m = self.pod.get("metadata") or {}
        return logfiles.log_file(self.host.logs_dir, m.get("namespace", ""), m.get("name", ""),
                                 self.uid, name, restart)

    # --- the loop ----------------------------------------------------------------------

    @property
    def deleting(self) -> bool:
        return bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))

    async def run(self) -> None:
        try:
            if not self.deleting:
                await self._setup()
                while not self.deleting:
                    self._wake.clear()
                    await self._step()
                    await self._publish()
                    if self.deleting:
                        break
                    await self._sleep_until_next()
            await self._teardown()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s: worker failed", self.key)
            raise

    async def _sleep_until_next(self) -> None:
        loop = asyncio.get_running_loop()
        waits = [t - loop.time() for t in self.next_start.values()]
        timeout = max(0.05, min(waits)) if waits else 30.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _setup(self) -> None:
        spec = self.pod.get("spec") or {}
        meta = self.pod.get("metadata") or {}
        self.start_time = rfc3339.now()
        for c in spec.get("containers") or []:
            self.runs[c["name"]] = ContainerRun(c["name"], c.get("image", ""))
        await self._publish()
        self.sandbox = await self.host.runtime.create_sandbox(SandboxSpec(
            pod_uid=self.uid, namespace=meta.get("namespace", ""), name=meta.get("name", ""),
            hostname=spec.get("hostname") or meta.get("name", ""),
            subdomain=spec.get("subdomain", ""), dns=self.host.dns_settings(self.pod),
            host_aliases=tuple((a.get("ip", ""), tuple(a.get("hostnames") or []))
                               for a in spec.get("hostAliases") or [])))
        self.probes = self.host.make_probes(self)

    async def _step(self) -> None:
        loop = asyncio.get_running_loop()
        for name in list(self._restart_now):
            self._restart_now.discard(name)
            proc = self.procs.get(name)
            if proc is not None and proc.returncode is None:
                await self._stop_container(name, self._grace())
        for c in (self.pod.get("spec") or {}).get("containers") or []:
            name = c["name"]
            if name in self.procs:
                continue
            when = self.next_start.get(name)
            if when is not None and loop.time() < when:
                continue
            if self.runs[name].state == "terminated":
                continue  # exited for good under the restart policy
            await self._start_container(c)
        self._refresh_readiness()

    def _should_restart(self, run: ContainerRun) -> bool:
        policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
        return policy == "Always" or (policy == "OnFailure" and run.exit_code != 0)

    async def _start_container(self, c: Obj) -> None:
        assert self.sandbox is not None
        name = c["name"]
        run = self.runs[name]
        try:
            plan = self.host.plan_container(self.pod, c)
        except ContainerConfigError as e:
            run.state, run.reason, run.message = "waiting", e.reason, e.message
            self._schedule_retry(name)
            return
        restart = run.restart_count + (1 if run.extra.get("pending_restart") else 0)
        path = self.log_path(name, restart)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            proc = await self.host.runtime.start_container(self.sandbox, ContainerSpec(
                name=name, argv=plan.argv, env=plan.env, working_dir=plan.working_dir,
                log_path=path, stdin=bool(c.get("stdin")), tty=bool(c.get("tty"))))
        except (OSError, RuntimeError) as e:
            run.state, run.reason = "waiting", "RunContainerError"
            run.message = str(e)
            self._schedule_retry(name)
            return
        if run.extra.pop("pending_restart", False):
            run.restart_count += 1
        self.procs[name] = proc
        run.state, run.reason, run.message = "running", "", ""
        run.image_id, run.container_id = plan.image_id, _container_id(self.pod, name, restart)
        run.started_at = rfc3339.now()
        run.started = True
        self.started_mono[name] = asyncio.get_running_loop().time()
        self.next_start.pop(name, None)
        if self.probes is not None:
            self.probes.container_started(c, self.sandbox)
        asyncio.get_running_loop().create_task(self._watch_exit(name, proc))

    def _schedule_retry(self, name: str) -> float:
        """Back off the next start of ``name``: 10 s doubling to 5 min. Returns the delay."""
        loop = asyncio.get_running_loop()
        delay = self.backoff.get(name, 0.0)
        delay = BACKOFF_INITIAL if delay == 0.0 else min(BACKOFF_MAX, delay * 2)
        self.backoff[name] = delay
        self.next_start[name] = loop.time() + delay
        return delay

    async def _watch_exit(self, name: str, proc: ContainerProcess) -> None:
        code = await proc.wait()
        if self.procs.get(name) is not proc:
            return
        del self.procs[name]
        run = self.runs[name]
        run.state, run.exit_code = "terminated", code
        run.reason = "Completed" if code == 0 else "Error"
        run.finished_at = rfc3339.now()
        run.ready = False
        if self.probes is not None:
            self.probes.container_stopped(name)
        loop = asyncio.get_running_loop()
        if loop.time() - self.started_mono.get(name, loop.time()) >= BACKOFF_RESET_AFTER:
            self.backoff.pop(name, None)
        if self._should_restart(run) and not self.deleting:
            run.last_terminated = run.state_dict()["terminated"]
            run.extra["pending_restart"] = True
            if name in self.backoff:
                # Repeated exits back off (the first restart happens at once).
                delay = self._schedule_retry(name)
                m = self.pod.get("metadata") or {}
                run.state, run.reason = "waiting", "CrashLoopBackOff"
                run.message = (f"back-off {int(delay)}s restarting failed container={name} "
                               f"pod={m.get('name')}_{m.get('namespace')}({self.uid})")
            else:
                self.backoff[name] = 0.0
                run.state, run.reason, run.message = "waiting", "ContainerCreating", ""
        self._wake.set()

    def _refresh_readiness(self) -> None:
        for name, run in self.runs.items():
            if run.state != "running":
                run.ready = False
                continue
            if self.probes is None:
                run.ready = True
                continue
            ready = self.probes.ready(name)
            started = self.probes.started(name)
            run.started = started if started is not None else True
            run.ready = bool(run.started) and (ready if ready is not None else True)

    def _status(self) -> Obj:
        return pod_status(self.pod, list(self.runs.values()),
                          self.sandbox.ip if self.sandbox else "", self.host.host_ip,
                          self.start_time, rfc3339.now())

    async def _publish(self) -> None:
        self._refresh_readiness()
        status = self._status()
        comparable = _without_times(status)
        if self._last_status is not None and comparable == self._last_status:
            return
        await self.host.write_status(self.pod, status)
        self._last_status = comparable

    # --- deletion ----------------------------------------------------------------------

    def _grace(self) -> float:
        m = self.pod.get("metadata") or {}
        g = m.get("deletionGracePeriodSeconds")
        if g is None:
            g = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        return float(g)

    async def _stop_container(self, name: str, grace: float) -> None:
        proc = self.procs.get(name)
        if proc is None:
            return
        proc.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), max(grace, 0.0))
        except TimeoutError:
            proc.signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(proc.wait()), 5)

    async def _teardown(self) -> None:
        grace = self._grace()
        await asyncio.gather(*(self._stop_container(n, grace) for n in list(self.procs)))
        if self.probes is not None:
            await self.probes.stop()
        if self.sandbox is not None:
            await self.host.runtime.remove_sandbox(self.sandbox)
        if self.deleting:
            await self.host.finish_deletion(self.pod)

    async def stop(self) -> None:
        """Stop the pod's processes and sandbox without touching the API object (agent
        shutdown)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await asyncio.gather(*(self._stop_container(n, 2.0) for n in list(self.procs)),
                             return_exceptions=True)
        if self.probes is not None:
            await self.probes.stop()
        if self.sandbox is not None:
            with contextlib.suppress(Exception):
                await self.host.runtime.remove_sandbox(self.sandbox)


def _condition_states(status: Obj) -> list[tuple[str, str]]:
    return sorted((str(c.get("type")), str(c.get("status")))
                  for c in status.get("conditions") or [])


def _without_times(status: Obj) -> Obj:
    out = dict(status)
    out["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                         for c in status.get("conditions") or []]
    return out


PodFilter = Callable[[Obj], bool]
