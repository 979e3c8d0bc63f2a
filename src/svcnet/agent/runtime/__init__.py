"""Pod runtimes by name: ``get_runtime("netns", node_name=..., pod_cidr=...,
state_dir=...)`` or ``get_runtime("process", state_dir=...)``.

The protocol is in :mod:`svcnet.agent.runtime.base`; :func:`default_runtime_name` picks
``netns`` where it can work (Linux, root, iproute2) and ``process`` elsewhere.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

from svcnet.agent.runtime.base import PodRuntime
from svcnet.agent.runtime.netns import NetnsRuntime
from svcnet.agent.runtime.process import ProcessRuntime

RUNTIMES: dict[str, Callable[..., PodRuntime]] = {
    "netns": NetnsRuntime,
    "process": ProcessRuntime,
}


def get_runtime(name: str, **config: Any) -> PodRuntime:
    """A new runtime ``name`` built with ``config`` (its constructor's keywords).
    Raises ValueError for an unknown name."""
    try:
        factory = RUNTIMES[name]
    except KeyError:
        raise ValueError(f"unknown pod runtime {name!r} (known: "
                         f"{', '.join(sorted(RUNTIMES))})") from None
    return factory(**config)


def default_runtime_name() -> str:
    """``netns`` on Linux as root with ``ip`` installed, else ``process``."""
    if sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("ip"):
        return "netns"
    return "process"


__all__ = ["RUNTIMES", "NetnsRuntime", "PodRuntime", "ProcessRuntime",
           "default_runtime_name", "get_runtime"]
