"""``bench/proxy/run.py`` still runs: its sync measurement at a small scale (the HTTP and
UDP parts need nginx, haproxy, wrk, dnsperf and dnsmasq and run only under ``make
bench``). Keeps the benchmark from drifting from the dataplane's API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_proxy_bench_sync_runs_at_small_scale() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench/proxy/run.py"), "--skip-http", "--skip-udp",
         "--services", "20", "--changes", "3"],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "sync at 20 services (20 listeners)" in out.stdout
    assert "one endpoint change at 20 services (median of 3)" in out.stdout
