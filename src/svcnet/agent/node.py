"""The agent's Node object: registration, status and heartbeats (Node status + Lease).

The Node carries the address the API server uses to reach this agent for logs, exec and
port-forward, in the annotation ``svcnet.io/agent-endpoint`` (``127.0.0.1:<port>``), and
in ``status.daemonEndpoints.kubeletEndpoint.Port`` as the kubelet does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import platform
import uuid
from typing import Any

from svcnet._util import rfc3339
from svcnet.client.api import MERGE_PATCH, APIClient
from svcnet.model import errors, kinds

log = logging.getLogger("svcnet.agent.node")
Obj = dict[str, Any]
NODES = kinds.require("", "nodes")
LEASES = kinds.require("coordination.k8s.io", "leases")
AGENT_ENDPOINT = "svcnet.io/agent-endpoint"
VERSION = "v1.32.4-svcnet"


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _machine_id() -> str:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(p) as fh:
                return fh.read().strip()
        except OSError:
            continue
    return uuid.uuid4().hex


def _memory_kib() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def node_object(name: str, internal_ip: str, pod_cidr: str, agent_port: int,
                runtime: str) -> Obj:
    """The Node this agent registers (metadata, spec, status)."""
    now = rfc3339.now()
    capacity = {"cpu": str(os.cpu_count() or 1), "memory": f"{_memory_kib()}Ki",
                "pods": "110", "ephemeral-storage": "0"}
    conditions = [
        {"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": now,
         "lastTransitionTime": now}
        for t, r, m in (("MemoryPressure", "KubeletHasSufficientMemory",
                         "kubelet has sufficient memory available"),
                        ("DiskPressure", "KubeletHasNoDiskPressure",
                         "kubelet has no disk pressure"),
                        ("PIDPressure", "KubeletHasSufficientPID",
                         "kubelet has sufficient PID available"))]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "kubelet is posting ready status",
                       "lastHeartbeatTime": now, "lastTransitionTime": now})
    uname = platform.uname()
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name,
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64",
                                "beta.kubernetes.io/os": "linux",
                                "beta.kubernetes.io/arch": "amd64"},
                     "annotations": {AGENT_ENDPOINT: f"127.0.0.1:{agent_port}",
                                     "svcnet.io/runtime": runtime}},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {
            "capacity": capacity, "allocatable": dict(capacity),
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": internal_ip},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": agent_port}},
            "nodeInfo": {"machineID": _machine_id(), "systemUUID": _machine_id(),
                         "bootID": uuid.uuid4().hex, "kernelVersion": uname.release,
                         "osImage": _os_image(), "containerRuntimeVersion": f"svcnet://{runtime}",
                         "kubeletVersion": VERSION, "kubeProxyVersion": VERSION,
                         "operatingSystem": "linux", "architecture": "amd64"},
        },
    }


def _os_image() -> str:
    try:
        with open("/etc/os-release") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


class NodeAgent:
    """Registers the Node and keeps its Ready heartbeat and Lease fresh."""

    def __init__(self, client: APIClient, node: Obj, heartbeat: float = 10.0) -> None:
        self.client = client
        self.node = node
        self.name = node["metadata"]["name"]
        self.heartbeat = heartbeat

    async def register(self) -> None:
        """Create the Node, or take over an existing one of that name (status, spec)."""
        try:
            await self.client.create(NODES, None, self.node)
            log.info("registered node %s", self.name)
            return
        except errors.APIError as e:
            if e.code != 409:
                raise
        cur = await self.client.get(NODES, None, self.name)
        patch = {"metadata": {"labels": self.node["metadata"]["labels"],
                              "annotations": self.node["metadata"]["annotations"]},
                 "spec": self.node["spec"]}
        await self.client.patch(NODES, None, self.name, patch, MERGE_PATCH)
        status = dict(self.node["status"])
        await self.client.patch(NODES, None, self.name, {"status": status}, MERGE_PATCH,
                                subresource="status")
        log.info("re-registered node %s (was %s)", self.name,
                 (cur.get("metadata") or {}).get("resourceVersion"))

    async def beat_once(self) -> None:
        now = rfc3339.now()
        conds = []
        for c in self.node["status"]["conditions"]:
            c = dict(c)
            c["lastHeartbeatTime"] = now
            conds.append(c)
        self.node["status"]["conditions"] = conds
        await self.client.patch(NODES, None, self.name, {"status": {"conditions": conds}},
                                MERGE_PATCH, subresource="status")
        lease = {"metadata": {"name": self.name, "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40,
                          "renewTime": _micro_now()}}
        try:
            await self.client.patch(LEASES, "kube-node-lease", self.name,
                                    {"spec": lease["spec"]}, MERGE_PATCH)
        except errors.APIError as e:
            if e.code != 404:
                raise
            await self.client.create(LEASES, "kube-node-lease", lease)

    async def heartbeats(self) -> None:
        while True:
            try:
                await self.beat_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("node heartbeat failed: %s", e)
            await asyncio.sleep(self.heartbeat)
