"""Wiring of ``svcnet agent``: configuration → Agent + its HTTP server."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Callable
from typing import Any

from svcnet.agent.agent import Agent, AgentConfig
from svcnet.agent.probing import probe_hooks_factory
from svcnet.agent.server import AgentServer
from svcnet.client.api import KubeConfig


def default_node_name() -> str:
    """The host name as a DNS-1123 label (what a kubelet registers by default)."""
    name = re.sub(r"[^a-z0-9-]", "-", socket.gethostname().lower().split(".")[0]).strip("-")
    return name[:63] or "svcnet-node"


def default_runtime() -> str:
    return "netns" if os.geteuid() == 0 and os.path.isdir("/proc/sys/net") else "process"


async def run(cfg: AgentConfig, stop_requested: Callable[[], bool] = lambda: False) -> None:
    """Run the agent; ``stop_requested`` says whether a stop came before the event loop's
    signal handlers were in place."""
    agent = Agent(cfg)
    token = KubeConfig.load(cfg.kubeconfig).token
    agent.probe_factory = probe_hooks_factory

    async def start_server(a: Agent) -> Any:
        srv = AgentServer(a, token)
        await srv.start(cfg.port)
        return srv

    stop = asyncio.Event()
    if stop_requested():
        stop.set()
    await agent.run(start_server, stop)
