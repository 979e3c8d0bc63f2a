"""Helpers shared by the end-to-end tests: polling with a deadline, and kubectl calls that
fail the test with kubectl's own message."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from svcnet.testing.cluster import APIServerProcess

T = TypeVar("T")


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 30.0,
             on_timeout: Callable[[], str] = lambda: "", interval: float = 0.05) -> T:
    """Call ``fn`` until it returns something truthy and return that; fail the test
    naming ``what`` (and the last value) at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})\n{on_timeout()}")


def ok(srv: APIServerProcess, *args: str, input: str | None = None) -> str:
    """``kubectl args`` must succeed; its stdout."""
    res = srv.kubectl(*args, input=input)
    assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}"
    return res.stdout


def get_json(srv: APIServerProcess, *args: str) -> Any:
    """``kubectl get args -o json``, decoded."""
    return json.loads(ok(srv, "get", *args, "-o", "json"))


def netns_skip_reason() -> str:
    """Why the netns runtime cannot run here ("" when it can)."""
    import os
    import shutil
    if os.geteuid() != 0:
        return "the netns runtime needs root"
    if shutil.which("ip") is None:
        return "the netns runtime needs iproute2 (ip)"
    if shutil.which("kubectl") is None:
        return "kubectl is not installed"
    return ""


def running_pods(srv: APIServerProcess, selector: str, n: int,
                 timeout: float = 60.0) -> list[dict[str, Any]]:
    """Wait until exactly ``n`` pods matching ``selector`` are Running and ready."""
    def check() -> list[dict[str, Any]] | None:
        items = [p for p in get_json(srv, "pods", "-l", selector)["items"]
                 if p["status"].get("phase") == "Running"
                 and not p["metadata"].get("deletionTimestamp")
                 and all(c.get("ready") for c in p["status"].get("containerStatuses", []))]
        return items if len(items) == n else None
    return wait_for(f"{n} running pods {selector}", check, timeout,
                    on_timeout=lambda: srv.agent_log())
