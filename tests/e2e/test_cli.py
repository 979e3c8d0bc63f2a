"""``svcnet up`` / ``svcnet down`` as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from svcnet.cli.supervisor import wait_ready
from svcnet.testing.cluster import free_port


def svcnet(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "svcnet.cli.main", *args],
                          capture_output=True, text=True, timeout=timeout)


def kubectl(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    home = tempfile.mkdtemp(prefix="svcnet-home-")
    env = {**os.environ, "HOME": home, "KUBECONFIG": str(data / "kubeconfig")}
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_up_detach_down_keeps_state(tmp_path: Path) -> None:
    data, port = tmp_path / "d", free_port()
    res = svcnet("up", "--data-dir", str(data), "--api-port", str(port), "--dns-port", str(free_port()),
                 "--detach")
    try:
        assert res.returncode == 0, res.stderr
        assert f"export KUBECONFIG={data / 'kubeconfig'}" in res.stdout
        assert kubectl(data, "create", "namespace", "kept").returncode == 0
        again = svcnet("up", "--data-dir", str(data), "--api-port", str(port), "--dns-port", str(free_port()),
                 "--detach")
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = svcnet("down", "--data-dir", str(data))
    assert down.returncode == 0, down.stderr
    assert not (data / "svcnet.pid").exists()
    res = svcnet("up", "--data-dir", str(data), "--api-port", str(port), "--dns-port", str(free_port()),
                 "--detach")
    try:
        assert res.returncode == 0, res.stderr
        out = kubectl(data, "get", "namespace", "kept", "-o", "name")
        assert out.stdout.strip() == "namespace/kept"
    finally:
        svcnet("down", "--data-dir", str(data))


def test_foreground_up_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    data, port = tmp_path / "d", free_port()
    proc = subprocess.Popen([sys.executable, "-m", "svcnet.cli.main", "up", "--data-dir",
                             str(data), "--api-port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The CA exists once up has written the kubeconfig; then wait for readiness.
        for _ in range(100):
            if (data / "pki" / "ca.crt").exists():
                break
            proc.poll()
            assert proc.returncode is None
            import time
            time.sleep(0.1)
        assert wait_ready(f"https://127.0.0.1:{port}/readyz", data / "pki" / "ca.crt", 60,
                          None)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        assert proc.returncode == 0
        assert not (data / "svcnet.pid").exists()
        assert not wait_ready(f"https://127.0.0.1:{port}/readyz", data / "pki" / "ca.crt",
                              1, None)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(t) for t in text]
    return out


def test_components_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    import time
    data, port = tmp_path / "d", free_port()
    proc = subprocess.Popen([sys.executable, "-m", "svcnet.cli.main", "up", "--data-dir",
                             str(data), "--api-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not (data / "pki" / "ca.crt").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert wait_ready(f"https://127.0.0.1:{port}/readyz", data / "pki" / "ca.crt", 60,
                          None)
        kids = _children(proc.pid)
        assert kids
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{k}").exists() for k in kids) and time.monotonic() < deadline:
            time.sleep(0.1)
        # An exited child of a dead parent is reaped by init; a zombie has no cmdline.
        alive = [k for k in kids if Path(f"/proc/{k}/cmdline").exists()
                 and Path(f"/proc/{k}/cmdline").read_bytes()]
        assert not alive
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for k in kids:
            if Path(f"/proc/{k}/cmdline").exists() and Path(f"/proc/{k}/cmdline").read_bytes():
                os.kill(k, signal.SIGKILL)


def test_up_with_dns_port_serves_cluster_names(tmp_path: Path) -> None:
    import time

    import dns.message
    import dns.query
    data, port, dns_port = tmp_path / "d", free_port(), free_port()
    res = svcnet("up", "--data-dir", str(data), "--api-port", str(port), "--agent-port",
                 str(free_port()), "--dns-port", str(dns_port), "--runtime", "process",
                 "--detach")
    try:
        assert res.returncode == 0, res.stderr
        q = dns.message.make_query("kube-dns.kube-system.svc.cluster.local", "A")
        deadline = time.monotonic() + 30
        answer: list[str] = []
        while time.monotonic() < deadline and not answer:
            try:
                r = dns.query.udp(q, "127.0.0.1", port=dns_port, timeout=1)
                answer = [rd.address for rrset in r.answer for rd in rrset]
            except Exception:  # noqa: BLE001 - the server is still starting
                time.sleep(0.2)
        assert answer == ["127.96.0.10"]  # the process runtime's loopback service range
    finally:
        svcnet("down", "--data-dir", str(data))
