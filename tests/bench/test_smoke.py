"""The benchmarks in ``bench/`` still run, at a small scale (the parts that need anchors
such as nginx, haproxy, wrk, dnsperf or dnsmasq run only under ``make bench``). Keeps
the benchmarks from drifting from the code they measure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(name: str, *args: str) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / name / "run.py"), *args],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_proxy_bench_sync_runs_at_small_scale() -> None:
    out = run_bench("proxy", "--skip-http", "--skip-udp", "--services", "20",
                    "--changes", "3")
    assert "sync at 20 services (20 listeners)" in out
    assert "one endpoint change at 20 services (median of 3)" in out


def test_endpoints_bench_runs_at_small_scale() -> None:
    out = run_bench("endpoints", "--services", "10", "--pods", "2", "--flips", "5")
    assert "Ready flip -> slice event, p50 ms (5 flips)" in out


def test_api_bench_runs_at_small_scale() -> None:
    out = run_bench("api", "--creates", "20", "--services", "20", "--watchers", "2",
                    "--events", "10", "--rates", "100")
    assert "2 watchers @ 100 writes/s: events delivered            20.000" in out
