"""Probes: the threshold state machine (tables of outcome sequences), the loop's timing under a
fake clock, the per-pod manager (startup gating, liveness restarts), and real httpGet /
tcpSocket / exec probes against servers and processes on this machine (loopback only)."""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from svcnet.agent.probes import (
    KUBE_PROBE_USER_AGENT,
    MAX_OUTPUT_BYTES,
    ExecAction,
    GRPCAction,
    HTTPGetAction,
    PodProber,
    ProbeManager,
    ProbeResult,
    ProbeSpec,
    ProbeType,
    ProbeWorker,
    Result,
    StreamPair,
    TCPSocketAction,
    expand_command,
    probe_exec,
    probe_http,
    probe_tcp,
    resolve_port,
    run_probe,
    sandbox_connector,
    tcp_connector,
)

S, F, U = Result.SUCCESS, Result.FAILURE, Result.UNKNOWN
R, L, ST = ProbeType.READINESS, ProbeType.LIVENESS, ProbeType.STARTUP
WAIT = 5.0  # upper bound for waiting on an event; never a sleep


# --------------------------------------------------------------------------------------------
# A fake clock whose sleep only returns when the test advances time
# --------------------------------------------------------------------------------------------


class FakeClock:
    """Time that only moves when the test says so. ``sleep`` registers its deadline in the
    step it starts in; :meth:`drive` waits until every worker loop is parked (nothing runs
    until time moves), then jumps to the earliest deadline."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._resuming = 0  # woken sleeps whose sleeper has not run yet
        self._resumed = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.now + delay, fut)
        self._sleepers.append(entry)
        try:
            await fut
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)
            elif not fut.cancelled():
                self._resuming -= 1
                self._resumed.set()

    async def settle(self, workers: Callable[[], Sequence[ProbeWorker]]) -> None:
        """Wait (bounded) until no worker can act before time moves."""
        async with asyncio.timeout(WAIT):
            while True:
                busy = [w for w in workers() if w.running and not w.parked.is_set()]
                if busy:
                    await busy[0].parked.wait()
                elif self._resuming:
                    self._resumed.clear()
                    await self._resumed.wait()
                else:
                    return

    def advance_to_next(self) -> None:
        """Jump to the earliest deadline and wake every sleep due."""
        self.now = max(self.now, min(d for d, _ in self._sleepers))
        for entry in [e for e in self._sleepers if e[0] <= self.now]:
            self._sleepers.remove(entry)
            entry[1].set_result(None)
            self._resuming += 1

    async def drive(self, workers: Callable[[], Sequence[ProbeWorker]],
                    until: Callable[[], bool], max_steps: int = 200) -> None:
        """Settle, check ``until()``, advance; repeat. Returns early if nothing sleeps
        (nothing can happen any more)."""
        for _ in range(max_steps):
            await self.settle(workers)
            if until() or not self._sleepers:
                return
            self.advance_to_next()
        raise AssertionError(f"condition not reached by t={self.now}")


def spec(handler: Any = None, **kw: Any) -> ProbeSpec:
    return ProbeSpec(handler=handler or ExecAction(("true",)), **kw)


@dataclass
class Script:
    """A fake probe: returns scripted results in order (then the last one forever) and records
    the clock time of each call."""

    results: list[Result]
    clock: FakeClock | None = None
    calls: list[float] = field(default_factory=list)

    async def __call__(self) -> ProbeResult:
        self.calls.append(self.clock.now if self.clock else 0.0)
        i = min(len(self.calls) - 1, len(self.results) - 1)
        return ProbeResult(self.results[i], f"call {len(self.calls)}")


# --------------------------------------------------------------------------------------------
# State machine: outcome sequences → emitted results
# --------------------------------------------------------------------------------------------

# name, probe type, spec overrides, outcomes fed one per attempt,
# expected [(attempt index, emitted result)], expected final result, expected probes run
SM_CASES: list[tuple[str, ProbeType, dict[str, Any], list[Result],
                     list[tuple[int, Result]], Result, int]] = [
    ("readiness: one success makes it ready",
     R, {}, [S], [(0, S)], S, 1),
    ("readiness starts failing: failures emit nothing",
     R, {}, [F, F, F, F], [], F, 4),
    ("readiness successThreshold 3 needs 3 in a row",
     R, {"success_threshold": 3}, [S, S, F, S, S, S], [(5, S)], S, 6),
    ("readiness failureThreshold 3: two failures are not enough, a success resets the run",
     R, {}, [S, F, F, S, F, F, F], [(0, S), (6, F)], F, 7),
    ("readiness recovers after failing",
     R, {"failure_threshold": 1}, [S, F, S], [(0, S), (1, F), (2, S)], S, 3),
    ("unknown results are discarded and do not break a run",
     R, {}, [S, F, U, F, U, F], [(0, S), (5, F)], F, 6),
    ("unknown alone never changes anything",
     R, {}, [U, U, U], [], F, 3),
    ("liveness starts succeeding: successes emit nothing",
     L, {}, [S, S], [], S, 2),
    ("liveness fails after failureThreshold, then holds (no more probes)",
     L, {}, [F, F, F, S, S], [(2, F)], F, 3),
    ("liveness failureThreshold 1",
     L, {"failure_threshold": 1}, [F, S], [(0, F)], F, 1),
    ("liveness successThreshold is forced to 1",
     L, {"success_threshold": 4, "failure_threshold": 2}, [F, S, F, F], [(3, F)], F, 4),
    ("startup starts unknown; a success emits and ends probing",
     ST, {"success_threshold": 3}, [F, S, S, S], [(1, S)], S, 2),
    ("startup failing failureThreshold times emits failure and holds",
     ST, {"failure_threshold": 2}, [F, F, S], [(1, F)], F, 2),
]


@pytest.mark.parametrize("name,ptype,overrides,outcomes,emitted,final,probes", SM_CASES,
                         ids=[c[0] for c in SM_CASES])
async def test_state_machine(name: str, ptype: ProbeType, overrides: dict[str, Any],
                             outcomes: list[Result], emitted: list[tuple[int, Result]],
                             final: Result, probes: int) -> None:
    clock = FakeClock()
    script = Script(outcomes, clock)
    seen: list[tuple[int, Result]] = []

    def on_result(pt: ProbeType, result: Result) -> None:
        assert pt is ptype
        seen.append((len(script.calls) - 1, result))  # index of the probe that flipped it

    worker = ProbeWorker(ptype, spec(**overrides), script, on_result, clock=clock,
                         sleep=clock.sleep)
    worker.container_started(0.0)
    for _ in outcomes:
        await worker.probe_once()
    assert seen == emitted
    assert worker.result is final
    assert len(script.calls) == probes


# name, probe type, initial delay, period, expected times of the first three probes
TIMING_CASES: list[tuple[str, ProbeType, float, float, list[float]]] = [
    ("no delay: at start, then every period", R, 0, 10, [0, 10, 20]),
    ("delay shorter than the period", R, 5, 10, [5, 15, 25]),
    ("delay longer than the period", L, 25, 10, [25, 35, 45]),
    ("period 2", R, 0, 2, [0, 2, 4]),
]


@pytest.mark.parametrize("name,ptype,delay,period,times", TIMING_CASES,
                         ids=[c[0] for c in TIMING_CASES])
async def test_loop_timing(name: str, ptype: ProbeType, delay: float, period: float,
                           times: list[float]) -> None:
    clock = FakeClock(100.0)
    script = Script([S], clock)
    worker = ProbeWorker(ptype, spec(initial_delay_seconds=delay, period_seconds=period),
                         script, clock=clock, sleep=clock.sleep)
    worker.container_started(100.0)
    worker.start()
    try:
        await clock.drive(lambda: [worker], lambda: len(script.calls) >= len(times))
        assert [t - 100.0 for t in script.calls] == times
    finally:
        await worker.stop()
    assert not worker.running


async def test_worker_idle_until_container_starts_and_stale_result_discarded() -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    entered = asyncio.Event()
    calls = 0

    async def slow_probe() -> ProbeResult:
        nonlocal calls
        calls += 1
        entered.set()
        if calls == 1:
            await gate.wait()
            return ProbeResult.success("stale")  # from the container that was replaced
        return ProbeResult.failure("fresh")

    changes: list[Result] = []
    worker = ProbeWorker(R, spec(), slow_probe, lambda _pt, r: changes.append(r),
                         clock=clock, sleep=clock.sleep)
    assert worker.next_delay() is None and not worker.should_probe()
    worker.start()
    try:
        worker.container_started(0.0)
        await asyncio.wait_for(entered.wait(), WAIT)
        worker.container_started(0.0)  # restarted while the probe ran
        gate.set()
        await clock.settle(lambda: [worker])
        # The stale success was dropped; the new container's probe ran and failed.
        assert calls == 2
        assert changes == [] and worker.result is F
        assert worker.last == ProbeResult.failure("fresh")
    finally:
        await worker.stop()


# --------------------------------------------------------------------------------------------
# The manager: startup gating, liveness restart, ready/started
# --------------------------------------------------------------------------------------------


def container(name: str = "app", **probes: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "image": "x", **probes}


EXEC = {"exec": {"command": ["true"]}}


def mgr_workers(mgr: ProbeManager) -> Callable[[], list[ProbeWorker]]:
    return lambda: list(mgr.workers.values())


@dataclass
class Runner:
    """Scripted results per probe type; records (time, probe type) of each call."""

    clock: FakeClock
    scripts: dict[ProbeType, list[Result]]
    calls: list[tuple[float, ProbeType]] = field(default_factory=list)

    async def __call__(self, name: str, pt: ProbeType, sp: ProbeSpec) -> ProbeResult:
        n = sum(1 for _, p in self.calls if p is pt)
        self.calls.append((self.clock.now, pt))
        script = self.scripts[pt]
        return ProbeResult(script[min(n, len(script) - 1)], f"{pt.value} {n}")

    def times(self, pt: ProbeType) -> list[float]:
        return [t for t, p in self.calls if p is pt]


async def test_startup_gates_readiness_and_liveness() -> None:
    clock = FakeClock()
    runner = Runner(clock, {ST: [F, F, S], R: [S], L: [S]})
    changes: list[tuple[str, ProbeType, Result]] = []
    c = container(startupProbe={**EXEC, "periodSeconds": 1, "failureThreshold": 5},
                  readinessProbe={**EXEC, "periodSeconds": 3},
                  livenessProbe={**EXEC, "periodSeconds": 3})
    mgr = ProbeManager([c], runner, lambda n, pt, r, _last: changes.append((n, pt, r)),
                       clock=clock, sleep=clock.sleep)
    assert not mgr.started("app") and not mgr.ready("app")
    mgr.container_started("app")
    try:
        await clock.drive(mgr_workers(mgr), lambda: mgr.ready("app"))
        assert runner.times(ST) == [0, 1, 2]
        # Readiness/liveness ran nothing before startup succeeded at t=2, then at once.
        assert runner.times(R)[0] == 2 and runner.times(L)[0] == 2
        assert changes == [("app", ST, S), ("app", R, S)]
        assert mgr.started("app") and mgr.live("app")
        await clock.drive(mgr_workers(mgr), lambda: clock.now >= 10)
        assert len(runner.times(ST)) == 3  # startup stops once it has succeeded
    finally:
        await mgr.close()


async def test_liveness_failure_holds_then_restart_resets() -> None:
    clock = FakeClock()
    runner = Runner(clock, {L: [F, F, S], R: [S]})
    changes: list[tuple[ProbeType, Result, str]] = []

    def on_change(name: str, pt: ProbeType, r: Result, last: ProbeResult | None) -> None:
        changes.append((pt, r, last.message if last else ""))

    c = container(livenessProbe={**EXEC, "periodSeconds": 1, "failureThreshold": 2},
                  readinessProbe={**EXEC, "periodSeconds": 1})
    mgr = ProbeManager([c], runner, on_change, clock=clock, sleep=clock.sleep)
    mgr.container_started("app")
    try:
        await clock.drive(mgr_workers(mgr), lambda: not mgr.live("app"))
        assert changes == [(R, S, "Readiness 0"), (L, F, "Liveness 1")]
        assert runner.times(L) == [0, 1]
        # On hold: time passes, liveness is not probed until the container restarts.
        await clock.drive(mgr_workers(mgr), lambda: clock.now >= 5)
        assert runner.times(L) == [0, 1]
        mgr.container_stopped("app")
        assert not mgr.ready("app") and changes[-1] == (R, F, "Readiness 5")
        mgr.container_started("app")
        assert (L, S, "") in changes  # reset to the initial value
        await clock.drive(mgr_workers(mgr), lambda: mgr.ready("app"))
        assert runner.times(L)[2:3] == [clock.now] and mgr.live("app")
    finally:
        await mgr.close()


# name, containers, events ("start"/"stop" of app), script, expected (started, ready)
READY_CASES: list[tuple[str, dict[str, Any], list[str], dict[ProbeType, list[Result]],
                        tuple[bool, bool]]] = [
    ("no probes: ready once running", {}, ["start"], {}, (True, True)),
    ("no probes, stopped", {}, ["start", "stop"], {}, (False, False)),
    ("never started", {}, [], {}, (False, False)),
    ("readiness failing", {"readinessProbe": EXEC}, ["start"], {R: [F]}, (True, False)),
    ("readiness passing", {"readinessProbe": EXEC}, ["start"], {R: [S]}, (True, True)),
    ("startup failing gates readiness", {"startupProbe": EXEC, "readinessProbe": EXEC},
     ["start"], {ST: [F], R: [S]}, (False, False)),
    ("startup passing, no readiness", {"startupProbe": EXEC}, ["start"], {ST: [S]},
     (True, True)),
]


@pytest.mark.parametrize("name,probes,events,scripts,expected", READY_CASES,
                         ids=[c[0] for c in READY_CASES])
async def test_ready_and_started(name: str, probes: dict[str, Any], events: list[str],
                                 scripts: dict[ProbeType, list[Result]],
                                 expected: tuple[bool, bool]) -> None:
    clock = FakeClock()
    runner = Runner(clock, scripts)
    mgr = ProbeManager([container(**probes)], runner, clock=clock, sleep=clock.sleep)
    try:
        for ev in events:
            if ev == "start":
                mgr.container_started("app")
                if mgr.workers:
                    await clock.drive(mgr_workers(mgr), lambda: clock.now >= 30)
            else:
                mgr.container_stopped("app")
        assert (mgr.started("app"), mgr.ready("app")) == expected
    finally:
        await mgr.close()


# --------------------------------------------------------------------------------------------
# Parsing, ports, expansion
# --------------------------------------------------------------------------------------------

SPEC_CASES: list[tuple[str, dict[str, Any], ProbeSpec | None]] = [
    ("defaults", {"tcpSocket": {"port": 80}}, ProbeSpec(TCPSocketAction(80))),
    ("zeros mean defaults", {"tcpSocket": {"port": "http"}, "periodSeconds": 0,
                             "timeoutSeconds": 0, "failureThreshold": 0},
     ProbeSpec(TCPSocketAction("http"))),
    ("everything", {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTPS",
                                "host": "10.0.0.1",
                                "httpHeaders": [{"name": "X-A", "value": "1"}]},
                    "initialDelaySeconds": 5, "periodSeconds": 2, "timeoutSeconds": 3,
                    "successThreshold": 2, "failureThreshold": 4},
     ProbeSpec(HTTPGetAction(8080, "/ready", "10.0.0.1", "HTTPS", (("X-A", "1"),)),
               initial_delay_seconds=5, period_seconds=2, timeout_seconds=3,
               success_threshold=2, failure_threshold=4)),
    ("exec", {"exec": {"command": ["cat", "/tmp/healthy"]}},
     ProbeSpec(ExecAction(("cat", "/tmp/healthy")))),
    ("grpc", {"grpc": {"port": 9000}}, ProbeSpec(GRPCAction(9000))),
    ("no handler", {"periodSeconds": 3}, None),
    ("two handlers", {"tcpSocket": {"port": 1}, "exec": {"command": ["x"]}}, None),
]


@pytest.mark.parametrize("name,api,expected", SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_spec_from_api(name: str, api: dict[str, Any], expected: ProbeSpec | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            ProbeSpec.from_api(api)
    else:
        assert ProbeSpec.from_api(api) == expected


PORTS = [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}]
PORT_CASES: list[tuple[str, int | str, int | str]] = [
    ("number", 80, 80),
    ("name", "http", 8080),
    ("other name", "metrics", 9090),
    ("number as string", "8081", 8081),
    ("unknown name", "admin", "port admin not found"),
    ("zero", 0, "invalid port number: 0"),
    ("too big", 70000, "invalid port number: 70000"),
]


@pytest.mark.parametrize("name,port,expected", PORT_CASES, ids=[c[0] for c in PORT_CASES])
def test_resolve_port(name: str, port: int | str, expected: int | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            resolve_port(port, PORTS)
    else:
        assert resolve_port(port, PORTS) == expected


EXPAND_CASES: list[tuple[str, list[str], list[str]]] = [
    ("plain", ["sh", "-c", "echo hi"], ["sh", "-c", "echo hi"]),
    ("defined", ["echo", "$(FOO)", "x$(FOO)y"], ["echo", "bar", "xbary"]),
    ("undefined stays", ["echo", "$(NOPE)"], ["echo", "$(NOPE)"]),
    ("escaped", ["echo", "$$(FOO)", "$$"], ["echo", "$(FOO)", "$"]),
    ("shell vars untouched", ["sh", "-c", "echo $FOO ${FOO} $"], ["sh", "-c",
                                                                   "echo $FOO ${FOO} $"]),
    ("unclosed", ["echo", "$(FOO"], ["echo", "$(FOO"]),
]


@pytest.mark.parametrize("name,argv,expected", EXPAND_CASES, ids=[c[0] for c in EXPAND_CASES])
def test_expand_command(name: str, argv: list[str], expected: list[str]) -> None:
    assert expand_command(argv, {"FOO": "bar"}) == expected


# --------------------------------------------------------------------------------------------
# Real HTTP probes against an aiohttp server on loopback
# --------------------------------------------------------------------------------------------


@dataclass
class App:
    port: int
    status: int = 200
    requests: list[dict[str, str]] = field(default_factory=list)
    hang: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def app() -> AsyncIterator[App]:
    state = App(port=0)

    async def ready(request: web.Request) -> web.Response:
        state.requests.append({k.lower(): v for k, v in request.headers.items()})
        return web.Response(status=state.status, text=f"status {state.status}")

    async def redirect(request: web.Request) -> web.Response:
        state.requests.append({k.lower(): v for k, v in request.headers.items()})
        target = request.query["to"]
        return web.Response(status=302, headers={"Location": target}, text="moved")

    async def loop(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/loop"})

    async def big(request: web.Request) -> web.Response:
        return web.Response(text="a" * (5 * MAX_OUTPUT_BYTES))

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"hello ", b"chunked ", b"world"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    async def hang(request: web.Request) -> web.Response:
        await state.hang.wait()
        return web.Response(text="late")

    web_app = web.Application()
    web_app.add_routes([web.get("/ready", ready), web.get("/redirect", redirect),
                        web.get("/loop", loop), web.get("/big", big),
                        web.get("/chunked", chunked), web.get("/hang", hang)])
    runner = web.AppRunner(web_app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = int(runner.addresses[0][1])
    try:
        yield state
    finally:
        state.hang.set()
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def never_connects(host: str, port: int, timeout: float) -> StreamPair:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


# name, action (port None → the app's port), timeout, connector,
# expected result, expected message ({port}/{url} substituted; prefix match if it ends in …),
# expected warning
HTTP_CASES: list[tuple[str, HTTPGetAction, float, Any, Result, str, bool]] = [
    ("200 is success with the body", HTTPGetAction(0, "/ready"), 1, tcp_connector,
     S, "status 200", False),
    ("named port", HTTPGetAction("http", "/ready"), 1, tcp_connector, S, "status 200", False),
    ("unknown named port is unknown", HTTPGetAction("admin", "/ready"), 1, tcp_connector,
     U, "port admin not found", False),
    ("redirect to the same host is followed",
     HTTPGetAction(0, "/redirect?to=/ready"), 1, tcp_connector, S, "status 200", False),
    ("redirect to another host ends the chain: success with a warning",
     HTTPGetAction(0, "/redirect?to=http://elsewhere.invalid/x"), 1, tcp_connector,
     S, "Probe terminated redirects, Response body: moved", True),
    ("redirect loop stops after 10",
     HTTPGetAction(0, "/loop"), 2, tcp_connector,
     F, 'Get "http://127.0.0.1:{port}/loop": stopped after 10 redirects', False),
    ("chunked body", HTTPGetAction(0, "/chunked"), 1, tcp_connector,
     S, "hello chunked world", False),
    ("connection refused",
     HTTPGetAction(-1, "/ready"), 1, tcp_connector,
     F, 'Get "http://127.0.0.1:{port}/ready": dial tcp 127.0.0.1:{port}: connect: '
        "connection refused", False),
    ("server never answers",
     HTTPGetAction(0, "/hang"), 0.3, tcp_connector,
     F, 'Get "http://127.0.0.1:{port}/hang": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)", False),
    ("dial never completes",
     HTTPGetAction(0, "ready"), 0.2, never_connects,
     F, 'Get "http://127.0.0.1:{port}/ready": dial tcp 127.0.0.1:{port}: i/o timeout '
        "(Client.Timeout exceeded while awaiting headers)", False),
]


@pytest.mark.parametrize("name,action,timeout,connect,result,message,warning", HTTP_CASES,
                         ids=[c[0] for c in HTTP_CASES])
async def test_http_probe(app: App, name: str, action: HTTPGetAction, timeout: float,
                          connect: Any, result: Result, message: str, warning: bool) -> None:
    port = app.port
    if action.port == -1:
        port = closed_port()
        action = HTTPGetAction(port, action.path)
    elif action.port == 0:
        action = HTTPGetAction(port, action.path)
    started = time.monotonic()
    got = await probe_http(action, "127.0.0.1", timeout, connect,
                           [{"name": "http", "containerPort": app.port}])
    assert (got.result, got.message, got.warning) == (result, message.format(port=port),
                                                      warning)
    assert time.monotonic() - started < timeout + 1


async def test_http_status_toggles(app: App) -> None:
    seen = []
    for status in (200, 204, 302, 399, 400, 503, 200):
        app.status = status
        got = await probe_http(HTTPGetAction(app.port, "/ready"), "127.0.0.1", 1)
        seen.append((status, got.result, got.message if got.result is F else ""))
    assert seen == [
        (200, S, ""), (204, S, ""), (302, S, ""), (399, S, ""),
        (400, F, "HTTP probe failed with statuscode: 400"),
        (503, F, "HTTP probe failed with statuscode: 503"), (200, S, "")]


async def test_http_body_limited(app: App) -> None:
    got = await probe_http(HTTPGetAction(app.port, "/big"), "127.0.0.1", 1)
    assert got.result is S and got.message == "a" * MAX_OUTPUT_BYTES


# name, probe headers, expected subset of the headers the server sees, headers it must not see
HEADER_CASES: list[tuple[str, tuple[tuple[str, str], ...], dict[str, str], list[str]]] = [
    ("defaults", (), {"user-agent": KUBE_PROBE_USER_AGENT, "accept": "*/*",
                      "connection": "close"}, ["accept-encoding"]),
    ("custom headers pass through", (("X-Custom", "yes"), ("X-Other", "1")),
     {"x-custom": "yes", "x-other": "1", "user-agent": KUBE_PROBE_USER_AGENT}, []),
    ("own user agent wins", (("User-Agent", "mine/1"),), {"user-agent": "mine/1"}, []),
    ("own accept wins", (("Accept", "text/plain"),), {"accept": "text/plain"}, []),
    ("empty accept removes it", (("Accept", ""),), {"user-agent": KUBE_PROBE_USER_AGENT},
     ["accept"]),
    ("host header overrides", (("Host", "app.example"),), {"host": "app.example"}, []),
]


@pytest.mark.parametrize("name,headers,expected,absent", HEADER_CASES,
                         ids=[c[0] for c in HEADER_CASES])
async def test_http_headers_sent(app: App, name: str, headers: tuple[tuple[str, str], ...],
                                 expected: dict[str, str], absent: list[str]) -> None:
    got = await probe_http(HTTPGetAction(app.port, "/ready", headers=headers), "127.0.0.1", 1)
    assert got.result is S
    sent = app.requests[-1]
    assert {k: sent.get(k) for k in expected} == expected
    assert [k for k in absent if k in sent] == []
    if "host" not in expected:
        assert sent["host"] == f"127.0.0.1:{app.port}"


async def test_http_redirect_keeps_headers(app: App) -> None:
    action = HTTPGetAction(app.port, "/redirect?to=/ready", headers=(("X-Custom", "yes"),))
    got = await probe_http(action, "127.0.0.1", 1)
    assert got.result is S
    assert [r.get("x-custom") for r in app.requests] == ["yes", "yes"]


# --------------------------------------------------------------------------------------------
# tcpSocket
# --------------------------------------------------------------------------------------------

TCP_CASES: list[tuple[str, str, Any, Result, str]] = [
    ("open port", "open", tcp_connector, S, ""),
    ("closed port", "closed", tcp_connector, F,
     "dial tcp 127.0.0.1:{port}: connect: connection refused"),
    ("dial never completes", "open", never_connects, F, "dial tcp 127.0.0.1:{port}: i/o timeout"),
]


@pytest.mark.parametrize("name,which,connect,result,message", TCP_CASES,
                         ids=[c[0] for c in TCP_CASES])
async def test_tcp_probe(app: App, name: str, which: str, connect: Any, result: Result,
                         message: str) -> None:
    port = app.port if which == "open" else closed_port()
    got = await probe_tcp("127.0.0.1", port, 0.3, connect)
    assert (got.result, got.message) == (result, message.format(port=port))


async def test_tcp_named_port_via_run_probe(app: App) -> None:
    sp = ProbeSpec.from_api({"tcpSocket": {"port": "web"}})
    ok = await run_probe(sp, "127.0.0.1", container_ports=[{"name": "web",
                                                            "containerPort": app.port}])
    missing = await run_probe(sp, "127.0.0.1")
    assert (ok.result, missing.result, missing.message) == (S, U, "port web not found")


@dataclass
class FakeSandbox:
    ip: str


class FakeRuntime:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def open_connection(self, sandbox: Any, port: int, timeout: float = 5.0
                              ) -> StreamPair:
        self.calls.append((sandbox.ip, port))
        return await asyncio.open_connection("127.0.0.1", port)


async def test_sandbox_connector_routes_pod_ip_through_runtime(app: App) -> None:
    runtime = FakeRuntime()
    fallback_calls: list[tuple[str, int]] = []

    async def fallback(host: str, port: int, timeout: float) -> StreamPair:
        fallback_calls.append((host, port))
        return await tcp_connector("127.0.0.1", port, timeout)

    connect = sandbox_connector(runtime, FakeSandbox("10.244.0.5"), fallback)
    pod = await probe_http(HTTPGetAction(app.port, "/ready"), "10.244.0.5", 1, connect)
    other = await probe_tcp("127.0.0.9", app.port, 1, connect)
    assert (pod.result, other.result) == (S, S)
    assert runtime.calls == [("10.244.0.5", app.port)]
    assert fallback_calls == [("127.0.0.9", app.port)]
    assert app.requests[-1]["host"] == f"10.244.0.5:{app.port}"


# --------------------------------------------------------------------------------------------
# exec
# --------------------------------------------------------------------------------------------

# name, command, exec prefix, env, timeout, expected result, expected message
EXEC_CASES: list[tuple[str, list[str], list[str], dict[str, str], float, Result, str]] = [
    ("exit 0", ["sh", "-c", "exit 0"], [], {}, 1, S, ""),
    ("exit 0 with output", ["sh", "-c", "echo ok"], [], {}, 1, S, "ok\n"),
    ("exit 1: the output is the message", ["sh", "-c", "echo not yet >&2; exit 1"], [], {}, 1,
     F, "not yet\n"),
    ("exit 1 without output", ["sh", "-c", "exit 1"], [], {}, 1,
     F, "command 'sh -c exit 1' exited with 1"),
    ("timeout kills it", ["sh", "-c", "sleep 5"], [], {}, 1,
     F, 'command timed out: "sh -c sleep 5" timed out after 1s'),
    ("container env", ["sh", "-c", "echo $GREETING"], [], {"GREETING": "hi"}, 1, S, "hi\n"),
    ("$(VAR) expanded", ["echo", "$(GREETING)"], [], {"GREETING": "hi"}, 1, S, "hi\n"),
    ("exec prefix", ["sh", "-c", "echo $PREFIXED"], ["env", "PREFIXED=yes"], {}, 1,
     S, "yes\n"),
    ("missing command via prefix fails", ["no-such-command-xyz"], ["env"], {}, 1,
     F, "…no-such-command-xyz"),
    ("cannot start at all is unknown", ["/nonexistent/probe-binary"], [], {}, 1,
     U, "…/nonexistent/probe-binary"),
]


@pytest.mark.parametrize("name,command,prefix,env,timeout,result,message", EXEC_CASES,
                         ids=[c[0] for c in EXEC_CASES])
async def test_exec_probe(name: str, command: list[str], prefix: list[str],
                          env: dict[str, str], timeout: float, result: Result,
                          message: str) -> None:
    started = time.monotonic()
    got = await probe_exec(command, timeout, prefix, env)
    assert got.result is result
    if message.startswith("…"):
        assert message[1:] in got.message
    else:
        assert got.message == message
    assert time.monotonic() - started < timeout + 1.5


async def test_exec_timeout_kills_the_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    got = await probe_exec(["sh", "-c", f"echo $$$$ > {pidfile}; exec sleep 30"], 1)
    assert got.result is F
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_exec_output_limited() -> None:
    got = await probe_exec(["sh", "-c", "head -c 50000 /dev/zero | tr '\\0' a"], 2)
    assert got.result is S and got.message == "a" * MAX_OUTPUT_BYTES


async def test_grpc_is_unsupported() -> None:
    got = await run_probe(ProbeSpec.from_api({"grpc": {"port": 9000}}), "127.0.0.1")
    assert got.result is F and "not supported" in got.message


# --------------------------------------------------------------------------------------------
# End to end: a readiness probe against a real server, flipped 200 → 503 → 200
# --------------------------------------------------------------------------------------------

# name, readiness probe fields, status per probe, expected ready() after each probe
FLIP_CASES: list[tuple[str, dict[str, Any], Sequence[int], list[bool]]] = [
    ("periodSeconds 2, failureThreshold 3",
     {"periodSeconds": 2, "failureThreshold": 3},
     [200, 503, 503, 503, 200], [True, True, True, False, True]),
    ("successThreshold 2", {"periodSeconds": 1, "successThreshold": 2, "failureThreshold": 1},
     [200, 200, 503, 200, 200], [False, True, False, False, True]),
]


@pytest.mark.parametrize("name,fields,statuses,expected", FLIP_CASES,
                         ids=[c[0] for c in FLIP_CASES])
async def test_readiness_follows_server(app: App, name: str, fields: dict[str, Any],
                                        statuses: Sequence[int], expected: list[bool]) -> None:
    clock = FakeClock()
    prober = PodProber("127.0.0.1", ports={"app": [{"name": "http",
                                                     "containerPort": app.port}]})
    changes: list[tuple[ProbeType, Result, str]] = []
    c = container(readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, **fields})
    mgr = ProbeManager([c], prober,
                       lambda n, pt, r, last: changes.append((pt, r, last.message if last
                                                              else "")),
                       clock=clock, sleep=clock.sleep)
    period = float(fields["periodSeconds"])
    observed: list[bool] = []
    try:
        mgr.container_started("app")
        for i, status in enumerate(statuses):
            app.status = status
            await clock.drive(mgr_workers(mgr), lambda: len(app.requests) > i)  # noqa: B023
            observed.append(mgr.ready("app"))
            if i + 1 < len(statuses):
                assert clock.now == i * period
        assert observed == expected
        fails = [m for pt, r, m in changes if r is F]
        assert all(m == "HTTP probe failed with statuscode: 503" for m in fails)
        assert all(r["user-agent"] == KUBE_PROBE_USER_AGENT for r in app.requests)
    finally:
        await mgr.close()


# --------------------------------------------------------------------------------------------
# HTTPS: certificates are not verified
# --------------------------------------------------------------------------------------------


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-pod")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


# name, status the server answers, expected result
HTTPS_CASES: list[tuple[str, int, Result]] = [
    ("self-signed 200 is success", 200, S),
    ("self-signed 500 is failure", 500, F),
]


@pytest.mark.parametrize("name,status,expected", HTTPS_CASES, ids=[c[0] for c in HTTPS_CASES])
async def test_https_probe_skips_verification(tmp_path: Path, name: str, status: int,
                                              expected: Result) -> None:
    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("User-Agent", ""))
        return web.Response(status=status, text="secure")

    web_app = web.Application()
    web_app.add_routes([web.get("/healthz", handler)])
    runner = web.AppRunner(web_app, shutdown_timeout=0.1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        port = int(runner.addresses[0][1])
        got = await probe_http(HTTPGetAction(port, "/healthz", scheme="HTTPS"), "127.0.0.1", 2)
        assert got.result is expected
        assert seen == [KUBE_PROBE_USER_AGENT]
    finally:
        await runner.cleanup()
