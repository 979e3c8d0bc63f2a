"""Demo image programs as real processes on loopback: answers, probe toggles, request
logging, and a clean exit on SIGTERM. Every process is stopped by its PID."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_address() -> tuple[str, int]:
    """A 127.0.1.x address (never 127.0.0.53, the host resolver) with a free port."""
    host = f"127.0.1.{random.randrange(2, 250)}"
    with socket.socket() as s:
        s.bind((host, 0))
        return host, int(s.getsockname()[1])


@dataclass
class App:
    proc: subprocess.Popen[bytes]
    base: str
    host: str
    port: int
    log: Path

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str]:
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


@contextmanager
def run_app(tmp_path: Path, module: str, *args: str,
            env: dict[str, str] | None = None,
            listens_on: tuple[str, int] | None = None) -> Iterator[App]:
    """Start a demo module with POD_IP/PORT set to a free loopback address; wait until it
    accepts connections there (or on ``listens_on`` when flags move it)."""
    host, port = free_address()
    log = tmp_path / f"{module}-{port}.log"
    full_env = {**os.environ, "POD_IP": host, "PORT": str(port), "HOSTNAME": "pod-under-test",
                **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", f"svcnet.agent.demo.{module}", *args],
                                env=full_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                socket.create_connection(listens_on or (host, port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "app did not start listening"
                time.sleep(0.05)
        yield App(proc, f"http://{host}:{port}", host, port, log)
    finally:
        stop(proc)


Step = tuple[str, str, int, str]  # method, path, status, substring of the body

SCRIPT_CASES: list[tuple[str, str, list[str], dict[str, str], list[Step]]] = [
    ("kuard page and info", "kuard", [], {"SVCNET_IMAGE_VERSION": "blue", "MARK": "m-1"}, [
        ("GET", "/", 200, "Pod: pod-under-test"),
        ("GET", "/", 200, "Version: blue"),
        ("GET", "/", 200, "MARK=m-1"),
        ("GET", "/hostname", 200, "pod-under-test"),
        ("GET", "/nope", 404, "not found"),
    ]),
    ("kuard readiness toggles", "kuard", [], {}, [
        ("GET", "/ready", 200, "ok"),
        ("POST", "/ready/fail", 200, '"failNext": -1'),
        ("GET", "/ready", 500, "fail, permanent"),
        ("GET", "/ready", 500, "fail, permanent"),
        ("GET", "/healthy", 200, "ok"),
        ("POST", "/ready/ok", 200, '"failNext": 0'),
        ("GET", "/ready", 200, "ok"),
        ("GET", "/ready/fail?count=2", 200, '"failNext": 2'),
        ("GET", "/ready", 500, "fail, 1 left"),
        ("GET", "/ready", 500, "fail, 0 left"),
        ("GET", "/ready", 200, "ok"),
    ]),
    ("kuard liveness toggles", "kuard", [], {}, [
        ("GET", "/healthy/fail", 200, '"probePath": "/healthy"'),
        ("GET", "/healthy", 500, "fail, permanent"),
        ("GET", "/ready", 200, "ok"),
        ("POST", "/healthy/ok", 200, '"failNext": 0'),
        ("GET", "/healthy", 200, "ok"),
        ("GET", "/healthy/api", 200, '"code": 200'),
    ]),
    ("echo answers with pod name and IP", "echo", [], {}, [
        ("GET", "/some/path?q=1", 200, "Hostname: pod-under-test"),
        ("GET", "/some/path?q=1", 200, "real path=/some/path"),
        ("DELETE", "/x", 200, "method=DELETE"),
        ("GET", "/", 200, "Pod IP: 127.0.1."),
    ]),
    ("http-echo text", "echo", ["-text=hello world"], {}, [
        ("GET", "/", 200, "hello world\n"),
        ("GET", "/anything", 200, "hello world\n"),
        ("GET", "/health", 200, '{"status":"ok"}'),
    ]),
    ("hello-app", "echo", ["--mode=hello"], {"SVCNET_IMAGE_VERSION": "2.0.0"}, [
        ("GET", "/", 200, "Hello, world!\nVersion: 2.0.0\nHostname: pod-under-test\n"),
    ]),
    ("numbers api fails after N calls and resets", "echo", ["--mode=numbers-api"],
     {"FailAfterCallCount": "2"}, [
         ("GET", "/healthz", 200, "Ok"),
         ("GET", "/rng", 200, ""),
         ("GET", "/sixeyed/kiamol/master/ch03/numbers/rng", 200, ""),
         ("GET", "/rng", 500, "Unhealthy"),
         ("GET", "/healthz", 500, "Unhealthy"),
         ("GET", "/reset", 200, "Ok"),
         ("GET", "/rng", 200, ""),
     ]),
]


@pytest.mark.parametrize(("module", "args", "env", "steps"), [c[1:] for c in SCRIPT_CASES],
                         ids=[c[0] for c in SCRIPT_CASES])
def test_request_script(tmp_path: Path, module: str, args: list[str], env: dict[str, str],
                        steps: list[Step]) -> None:
    with run_app(tmp_path, module, *args, env=env) as app:
        for i, (method, path, status, fragment) in enumerate(steps):
            got_status, body = app.request(method, path)
            assert (got_status, fragment in body) == (status, True), \
                f"step {i} {method} {path}: {got_status} {body!r}"


def test_kuard_api_put_and_env_json(tmp_path: Path) -> None:
    with run_app(tmp_path, "kuard", env={"MARK": "m-2"}) as app:
        status, body = app.request("PUT", "/ready/api", json.dumps({"failNext": 1}).encode(),
                                   {"Content-Type": "application/json"})
        assert status == 200 and json.loads(body)["failNext"] == 1
        assert app.request("GET", "/ready")[0] == 500
        assert app.request("GET", "/ready")[0] == 200
        status, body = app.request("GET", "/env")
        assert status == 200 and json.loads(body)["MARK"] == "m-2"
        status, body = app.request("GET", "/", headers={"Accept": "text/html"})
        assert status == 200 and body.startswith("<!doctype html>") and "pod-under-test" in body


def test_numbers_web_fetches_from_the_api(tmp_path: Path) -> None:
    with run_app(tmp_path, "echo", "--mode=numbers-api") as api:
        env = {"RngApi__Url": api.base + "/rng"}
        with run_app(tmp_path, "echo", "--mode=numbers-web", env=env) as web:
            assert "Get a random number" in web.request("GET", "/")[1]
            status, body = web.request("POST", "/", b"")
            assert status == 200 and "Here it is: " in body
    with run_app(tmp_path, "echo", "--mode=numbers-web",
                 env={"RngApi__Url": "http://127.0.0.1:9/rng"}) as web:
        assert "RNG service unavailable!" in web.request("POST", "/", b"")[1]


@pytest.mark.parametrize("module", ["kuard", "echo"])
def test_sigterm_exits_cleanly_and_requests_were_logged(tmp_path: Path, module: str) -> None:
    with run_app(tmp_path, module) as app:
        app.request("GET", "/logged-path")
        os.kill(app.proc.pid, signal.SIGTERM)
        assert app.proc.wait(5) == 0
        log = app.log.read_text()
    assert f"listening on {app.host}:{app.port}" in log
    assert '"GET /logged-path HTTP/1.1"' in log


def test_flags_override_port_env(tmp_path: Path) -> None:
    host, port = free_address()
    with run_app(tmp_path, "kuard", f"--address={host}:{port}",
                 listens_on=(host, port)) as app:
        assert app.port != port
        assert urllib.request.urlopen(f"http://{host}:{port}/healthy", timeout=5).read() == b"ok"


def test_bind_failure_exits_1(tmp_path: Path) -> None:
    with run_app(tmp_path, "echo") as app:
        second = subprocess.run(
            [sys.executable, "-m", "svcnet.agent.demo.echo", f"--port={app.port}"],
            env={**os.environ, "POD_IP": app.host}, capture_output=True, timeout=15)
    assert second.returncode == 1
    assert b"cannot listen" in second.stderr


SHELL_CASES: list[tuple[str, list[str], int, str]] = [
    ("runs the given command", ["sh", "-c", "echo from-host-tool"], 0, "from-host-tool"),
    ("exit status passes through", ["sh", "-c", "exit 3"], 3, ""),
    ("missing command", ["no-such-command-svcnet"], 127, "exec no-such-command-svcnet"),
]


@pytest.mark.parametrize(("args", "code", "output"), [c[1:] for c in SHELL_CASES],
                         ids=[c[0] for c in SHELL_CASES])
def test_shell_runs_command(args: list[str], code: int, output: str) -> None:
    done = subprocess.run([sys.executable, "-m", "svcnet.agent.demo.shell", *args],
                          capture_output=True, text=True, timeout=15)
    assert done.returncode == code
    assert output in done.stdout + done.stderr


def test_shell_idles_until_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "svcnet.agent.demo.shell"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(0.5)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        stop(proc)
