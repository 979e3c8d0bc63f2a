"""``svcnet agent``: the node agent (what the kubelet is to Kubernetes).

It registers a Node, watches the pods bound to it, and runs each through a
:class:`~svcnet.agent.pods.PodWorker` on the configured :class:`PodRuntime`. It builds each
container's command (image map) and environment (pod env, ConfigMaps, Secrets, service
variables) from informer caches, writes pod status, finishes graceful deletions, and
serves logs, exec and port-forward for the API server (:mod:`svcnet.agent.server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from svcnet.agent import env as envmod
from svcnet.agent import images
from svcnet.agent.node import NodeAgent, node_object
from svcnet.agent.pods import ContainerConfigError, LaunchPlan, PodWorker, ProbeHooks
from svcnet.agent.runtime import get_runtime
from svcnet.agent.runtime.base import DNSSettings, PodRuntime
from svcnet.client.api import MERGE_PATCH, APIClient
from svcnet.client.events import EventRecorder
from svcnet.informer.shared import InformerFactory
from svcnet.model import errors, kinds

log = logging.getLogger("svcnet.agent")
Obj = dict[str, Any]

PODS = kinds.require("", "pods")
SERVICES = kinds.require("", "services")
CONFIGMAPS = kinds.require("", "configmaps")
SECRETS = kinds.require("", "secrets")


@dataclass
class AgentConfig:
    node_name: str
    data_dir: Path
    kubeconfig: Path
    runtime: str = "netns"
    pod_cidr: str = "10.244.0.0/24"
    port: int = 10250
    cluster_dns: str = "10.96.0.10"
    cluster_domain: str = "cluster.local"
    image_map_file: Path | None = None
    runtime_options: dict[str, Any] = field(default_factory=dict)
    node_status_update_frequency: float = 10.0  # seconds between heartbeats


def _load_image_map(path: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return data if isinstance(data, dict) else {}


class Agent:
    """The PodHost every worker uses, plus the loops that keep workers in step."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.node_name = cfg.node_name
        self.logs_dir = cfg.data_dir / "logs"
        self.client = APIClient.from_kubeconfig(cfg.kubeconfig, user_agent="svcnet-agent")
        self.factory = InformerFactory(self.client)
        self.pods = self.factory.informer(PODS, field_selector=f"spec.nodeName={cfg.node_name}")
        self.services = self.factory.informer(SERVICES)
        self.configmaps = self.factory.informer(CONFIGMAPS)
        self.secrets = self.factory.informer(SECRETS)
        self.runtime: PodRuntime = get_runtime(
            cfg.runtime, node_name=cfg.node_name, pod_cidr=cfg.pod_cidr,
            state_dir=cfg.data_dir / "runtime", **cfg.runtime_options)
        self.host_ip = "127.0.0.1"
        self.workers: dict[str, PodWorker] = {}
        self.image_map = _load_image_map(cfg.image_map_file)
        self._changed: asyncio.Queue[str] = asyncio.Queue()
        self.pods.add_handlers(on_add=self._pod_event,
                               on_update=lambda _o, n: self._pod_event(n),
                               on_delete=self._pod_event)
        self.probe_factory: Any = None
        self.recorder = EventRecorder(self.client, "kubelet", cfg.node_name)

    def record_event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.recorder.event(obj, type_, reason, message)

    # --- PodHost -----------------------------------------------------------------------

    def plan_container(self, pod: Obj, container: Obj) -> LaunchPlan:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        ns = meta.get("namespace", "")
        masters = [s for s in self.services.indexer.by_index("namespace", "default")
                   if (s.get("metadata") or {}).get("name") == "kubernetes"]
        svc_vars = envmod.service_env(self.services.indexer.by_index("namespace", ns), ns,
                                      spec.get("enableServiceLinks", True), masters)
        try:
            pairs = envmod.container_env(
                container, pod, svc_vars,
                lambda n, name: self.configmaps.indexer.get_by(n, name),
                lambda n, name: self.secrets.indexer.get_by(n, name))
        except envmod.ContainerConfigError as e:
            raise ContainerConfigError(e.reason, str(e)) from None
        env = dict(pairs)
        try:
            img = images.resolve_image(container.get("image", ""),
                                       envmod.expand_all(container.get("command"), env) or None,
                                       envmod.expand_all(container.get("args"), env) or None,
                                       self.image_map)
        except images.ImageNotFound as e:
            raise ContainerConfigError("ErrImagePull", str(e)) from None
        full_env = {**img.default_env, **env}
        full_env.setdefault("HOSTNAME", spec.get("hostname") or meta.get("name", ""))
        if self.cfg.runtime == "netns":
            # The pod has a network namespace of its own: the demo images listen on every
            # address in it (as their real counterparts do), loopback included.
            full_env.setdefault("SVCNET_BIND_ADDRESS", "0.0.0.0")
        port = next((p.get("containerPort") for p in container.get("ports") or []
                     if p.get("containerPort")), None)
        if port and "PORT" not in full_env:
            full_env["PORT"] = str(port)
        return LaunchPlan(argv=img.argv, env=full_env, image_id=img.image_id,
                          working_dir=container.get("workingDir"))

    def dns_settings(self, pod: Obj) -> DNSSettings | None:
        spec = pod.get("spec") or {}
        ns = (pod.get("metadata") or {}).get("namespace", "default")
        policy = spec.get("dnsPolicy", "ClusterFirst")
        cfg = spec.get("dnsConfig") or {}
        if spec.get("hostNetwork") and policy == "ClusterFirst":
            policy = "Default"
        if policy == "Default" and not cfg:
            return None
        d = self.cfg.cluster_domain
        servers: list[str] = []
        searches: list[str] = []
        options: list[str] = []
        if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
            servers = [self.cfg.cluster_dns]
            searches = [f"{ns}.svc.{d}", f"svc.{d}", d]
            options = ["ndots:5"]
        servers += [s for s in cfg.get("nameservers") or [] if s not in servers]
        searches += [s for s in cfg.get("searches") or [] if s not in searches]
        for o in cfg.get("options") or []:
            text = o.get("name", "") + (f":{o['value']}" if o.get("value") else "")
            options = [x for x in options if x.split(":")[0] != o.get("name")] + [text]
        return DNSSettings(tuple(servers[:3]), tuple(searches[:32]), tuple(options))

    async def write_status(self, pod: Obj, status: Obj) -> None:
        m = pod.get("metadata") or {}
        try:
            await self.client.patch(PODS, m.get("namespace"), m["name"], {"status": status},
                                    MERGE_PATCH, subresource="status")
        except errors.APIError as e:
            if e.code != 404:
                log.warning("status of %s/%s not written: %s", m.get("namespace"),
                            m.get("name"), e)

    async def finish_deletion(self, pod: Obj) -> None:
        m = pod.get("metadata") or {}
        try:
            await self.client.delete(PODS, m.get("namespace"), m["name"],
                                     grace_period_seconds=0, uid=m.get("uid", ""))
        except errors.APIError as e:
            if e.code not in (404, 409):
                raise

    def make_probes(self, worker: PodWorker) -> ProbeHooks | None:
        if self.probe_factory is None:
            return None
        hooks: ProbeHooks = self.probe_factory(self, worker)
        return hooks

    # --- workers -----------------------------------------------------------------------

    def _pod_event(self, pod: Obj) -> None:
        m = pod.get("metadata") or {}
        self._changed.put_nowait(f"{m.get('namespace')}/{m.get('name')}")

    def _sync_pod(self, key: str) -> None:
        pod = self.pods.indexer.get(key)
        worker = self.workers.get(key)
        if pod is None:
            if worker is not None:  # deleted without us (forced): stop what runs
                self.workers.pop(key, None)
                asyncio.get_running_loop().create_task(worker.stop())
            return
        uid = (pod.get("metadata") or {}).get("uid")
        if worker is not None and worker.uid != uid:
            self.workers.pop(key, None)
            asyncio.get_running_loop().create_task(worker.stop())
            worker = None
        if worker is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and \
                    not (pod.get("metadata") or {}).get("deletionTimestamp"):
                return
            worker = PodWorker(self, pod)
            self.workers[key] = worker
            worker.task = asyncio.get_running_loop().create_task(self._run_worker(key, worker))
        else:
            worker.update(pod)

    async def _run_worker(self, key: str, worker: PodWorker) -> None:
        try:
            await worker.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s failed", key)
        finally:
            if self.workers.get(key) is worker:
                del self.workers[key]

    async def _dispatch(self) -> None:
        while True:
            key = await self._changed.get()
            self._sync_pod(key)

    # --- run ---------------------------------------------------------------------------

    async def run(self, server_start: Any = None, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (SIGTERM/SIGINT set it too). Whatever was started is
        stopped and removed on the way out, however early the stop comes."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        tasks: list[asyncio.Task[None]] = []
        server = None
        try:
            await self.runtime.start()
            self.host_ip = getattr(self.runtime, "node_ip", "127.0.0.1")
            node = NodeAgent(self.client, node_object(
                self.node_name, self.host_ip, self.cfg.pod_cidr, self.cfg.port,
                self.cfg.runtime), heartbeat=self.cfg.node_status_update_frequency)
            if server_start is not None:
                server = await server_start(self)
            await node.register()
            self.factory.start()
            await self.factory.wait_for_sync(60)
            tasks = [loop.create_task(node.heartbeats()), loop.create_task(self._dispatch())]
            for key in list(self.pods.indexer.keys()):  # noqa: SIM118 - not a dict
                self._sync_pod(key)
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*(w.stop() for w in list(self.workers.values())),
                                 return_exceptions=True)
            await self.runtime.shutdown(remove_all=True)
            if server is not None:
                await server.cleanup()
            await self.factory.stop()
            await self.client.close()
