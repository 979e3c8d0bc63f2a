"""Pod status as the kubelet reports it, computed from the agent's view of its containers.

Pure functions: :class:`ContainerRun` records what the agent knows about one container;
:func:`pod_status` turns the runs of a pod into ``status`` (phase, conditions, container
statuses, IPs) following the kubelet's rules (``getPhase``, condition generation), keeping
``lastTransitionTime`` of conditions that did not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass
class ContainerRun:
    """The agent's record of one container of a pod (mutated by the pod worker)."""

    name: str
    image: str
    image_id: str = ""
    container_id: str = ""
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int = 0
    started_at: str = ""
    finished_at: str = ""
    restart_count: int = 0
    last_terminated: Obj | None = None
    ready: bool = False
    started: bool = False
    extra: Obj = field(default_factory=dict)

    def state_dict(self) -> Obj:
        if self.state == "running":
            return {"running": {"startedAt": self.started_at}}
        if self.state == "terminated":
            term: Obj = {"exitCode": self.exit_code, "reason": self.reason,
                         "startedAt": self.started_at or None,
                         "finishedAt": self.finished_at or None,
                         "containerID": self.container_id}
            if self.message:
                term["message"] = self.message
            return {"terminated": term}
        waiting: Obj = {"reason": self.reason}
        if self.message:
            waiting["message"] = self.message
        return {"waiting": waiting}

    def status(self) -> Obj:
        out: Obj = {"name": self.name, "image": self.image, "imageID": self.image_id,
                    "ready": self.ready, "restartCount": self.restart_count,
                    "started": self.started and self.state == "running",
                    "state": self.state_dict(),
                    "lastState": ({"terminated": self.last_terminated}
                                  if self.last_terminated else {})}
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def phase(runs: list[ContainerRun], restart_policy: str) -> str:
    """The kubelet's ``getPhase`` for regular containers."""
    running = waiting = stopped = succeeded = 0
    for r in runs:
        if r.state == "running":
            running += 1
        elif r.state == "terminated":
            stopped += 1
            if r.exit_code == 0:
                succeeded += 1
        elif r.last_terminated is not None:
            stopped += 1
            if r.last_terminated.get("exitCode") == 0:
                succeeded += 1
        else:
            waiting += 1
    failed = stopped - succeeded
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if restart_policy == "Always":
            return "Running"
        if restart_policy == "OnFailure" and failed > 0:
            return "Running"
        return "Failed" if failed > 0 else "Succeeded"
    return "Pending"


def _condition(prev: list[Obj], ctype: str, ok: bool, now: str, reason: str = "",
               message: str = "") -> Obj:
    status = "True" if ok else "False"
    old = next((c for c in prev if c.get("type") == ctype), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else now
    c: Obj = {"type": ctype, "status": status, "lastProbeTime": None,
              "lastTransitionTime": since}
    if not ok and reason:
        c["reason"] = reason
        if message:
            c["message"] = message
    return c


def pod_status(pod: Obj, runs: list[ContainerRun], pod_ip: str, host_ip: str,
               start_time: str, now: str) -> Obj:
    """The full ``status`` the agent writes for ``pod``."""
    old = pod.get("status") or {}
    prev = old.get("conditions") or []
    spec = pod.get("spec") or {}
    not_ready = [r.name for r in runs if not r.ready]
    containers_ready = not not_ready
    gates = [g.get("conditionType") for g in spec.get("readinessGates") or []]
    gates_ok = all(any(c.get("type") == g and c.get("status") == "True" for c in prev)
                   for g in gates)
    msg = f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else ""
    conditions = [
        _condition(prev, "PodReadyToStartContainers", bool(pod_ip), now),
        _condition(prev, "Initialized", True, now),
        _condition(prev, "Ready", containers_ready and gates_ok, now, "ContainersNotReady",
                   msg),
        _condition(prev, "ContainersReady", containers_ready, now, "ContainersNotReady", msg),
        _condition(prev, "PodScheduled", True, now),
    ]
    # Conditions owned by others (readiness gates) are kept as they are.
    known = {c["type"] for c in conditions}
    conditions += [c for c in prev if c.get("type") not in known]
    status: Obj = {
        "phase": phase(runs, spec.get("restartPolicy", "Always")),
        "conditions": conditions,
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}] if host_ip else [],
        "startTime": start_time,
        "containerStatuses": [r.status() for r in runs],
        "qosClass": old.get("qosClass", "BestEffort"),
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
