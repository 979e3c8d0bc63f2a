"""Container probes: running them (httpGet, tcpSocket, exec) and the per-probe state machine.

Two layers:

* **Handlers** — :func:`probe_http`, :func:`probe_tcp`, :func:`probe_exec`,
  :func:`probe_grpc`, dispatched by :func:`run_probe`. Each runs one probe and returns a
  :class:`ProbeResult`: ``success``, ``failure`` or ``unknown`` (the prober itself could not
  run the probe — a port name that does not resolve, a command that cannot be started; such
  results are thrown away by the worker, as the kubelet does), plus a message worded as the
  kubelet words it (``HTTP probe failed with statuscode: 503``, ``Get "http://10.244.0.5:8080/
  ready": dial tcp 10.244.0.5:8080: connect: connection refused``, ``dial tcp 10.244.0.5:80:
  i/o timeout``, an exec probe's output). Connections are made through an injected
  :data:`Connector` — the agent passes one built from the runtime's ``open_connection`` (see
  :func:`sandbox_connector`) so probes reach the pod from inside the cluster network.

* **State machine** — :class:`ProbeWorker` applies Kubernetes semantics to a stream of probe
  results for one (pod, container, probe type): ``initialDelaySeconds`` counted from the
  container's start, ``periodSeconds``, ``successThreshold`` / ``failureThreshold`` counted as
  consecutive results, readiness starting as failure, liveness as success, startup as unknown
  (not started) and gating the other two. :class:`ProbeManager` owns the workers of one pod.
  Time comes from an injected clock and an injected sleep so tests drive it deterministically.

Facts followed (kubelet ``pkg/kubelet/prober``, ``pkg/probe/{http,tcp,exec}``): HTTP probes
send ``GET`` with ``User-Agent: kube-probe/<major>.<minor>`` and ``Accept: */*`` unless the
probe's headers set them (an empty ``Accept`` removes it; a ``Host`` header sets the request's
host), never ask for compression and close the connection; 200 <= status < 400 is success;
redirects are followed (at most 10) while they stay on the same host name, a redirect to
another host ends the chain and its 3xx response counts as success with a warning
(``Probe terminated redirects, Response body: ...``); at most 10 KiB of the body and of an exec
probe's output are kept; HTTPS is not verified; the whole HTTP exchange (redirects
included) shares one timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno as errno_mod
import ipaddress
import os
import signal
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "KUBE_PROBE_USER_AGENT",
    "MAX_OUTPUT_BYTES",
    "Clock",
    "Connector",
    "ExecAction",
    "GRPCAction",
    "HTTPGetAction",
    "PodProber",
    "ProbeManager",
    "ProbeResult",
    "ProbeRunner",
    "ProbeSpec",
    "ProbeType",
    "ProbeWorker",
    "Result",
    "Sleep",
    "StreamPair",
    "TCPSocketAction",
    "expand_command",
    "probe_exec",
    "probe_grpc",
    "probe_http",
    "probe_tcp",
    "resolve_port",
    "run_probe",
    "sandbox_connector",
    "tcp_connector",
]

KUBE_PROBE_USER_AGENT = "kube-probe/1.32"
"""The User-Agent HTTP probes send unless the probe's headers set one."""

MAX_OUTPUT_BYTES = 10 * 1024
"""How much of an HTTP body or of an exec probe's output is kept (the kubelet's 10 KiB)."""

MAX_REDIRECTS = 10
_MAX_HEADER_BYTES = 1 << 20
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Connector = Callable[[str, int, float], Awaitable[StreamPair]]
"""``connect(host, port, timeout) -> (reader, writer)``: a TCP connection to ``host:port``.
Raises ``OSError`` (e.g. ``ConnectionRefusedError``) or ``TimeoutError``."""

Clock = Callable[[], float]
"""Monotonic seconds."""

Sleep = Callable[[float], Awaitable[None]]
"""``await sleep(seconds)``; ``asyncio.sleep`` in production, a fake clock's in tests."""


# --------------------------------------------------------------------------------------------
# Results and specs
# --------------------------------------------------------------------------------------------


class Result(enum.Enum):
    """A probe's outcome. ``UNKNOWN``: the prober could not run the probe (kept out of the
    threshold counting); for a startup worker it is also the state "not started yet"."""

    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


class ProbeType(enum.Enum):
    """Which probe; the value is how kubelet events name it (``Readiness probe failed: ...``)."""

    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"


@dataclass(frozen=True)
class ProbeResult:
    """One probe's outcome and its message. ``warning`` marks a success the kubelet reports
    with a warning event (an HTTP probe that stopped at a redirect to another host)."""

    result: Result
    message: str = ""
    warning: bool = False

    @classmethod
    def success(cls, message: str = "", warning: bool = False) -> ProbeResult:
        return cls(Result.SUCCESS, message, warning)

    @classmethod
    def failure(cls, message: str) -> ProbeResult:
        return cls(Result.FAILURE, message)

    @classmethod
    def unknown(cls, message: str) -> ProbeResult:
        return cls(Result.UNKNOWN, message)


@dataclass(frozen=True)
class HTTPGetAction:
    """``httpGet``: ``port`` is a number or the name of one of the container's ports; ``host``
    empty means the pod IP; ``scheme`` ``HTTP`` or ``HTTPS``."""

    port: int | str
    path: str = ""
    host: str = ""
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TCPSocketAction:
    """``tcpSocket``: ``host`` empty means the pod IP."""

    port: int | str
    host: str = ""


@dataclass(frozen=True)
class ExecAction:
    """``exec``: the command, run inside the container (``$(VAR)`` expanded from its env)."""

    command: tuple[str, ...]


@dataclass(frozen=True)
class GRPCAction:
    """``grpc``: parsed so the pod is accepted, but probing it reports failure."""

    port: int
    service: str = ""


Handler = HTTPGetAction | TCPSocketAction | ExecAction | GRPCAction


@dataclass(frozen=True)
class ProbeSpec:
    """A container probe with the API server's defaults applied (zero or missing → default)."""

    handler: Handler
    initial_delay_seconds: float = 0
    timeout_seconds: float = 1
    period_seconds: float = 10
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period_seconds: int | None = None

    @classmethod
    def from_api(cls, probe: Mapping[str, Any]) -> ProbeSpec:
        """Parse a ``v1.Probe`` (camelCase JSON). Raises ``ValueError`` if it names no handler
        or more than one."""
        handlers: list[Handler] = []
        if (h := probe.get("httpGet")) is not None:
            headers = tuple((str(x.get("name", "")), str(x.get("value", "")))
                            for x in h.get("httpHeaders") or ())
            handlers.append(HTTPGetAction(
                port=_int_or_str(h.get("port")), path=str(h.get("path") or ""),
                host=str(h.get("host") or ""), scheme=str(h.get("scheme") or "HTTP"),
                headers=headers))
        if (t := probe.get("tcpSocket")) is not None:
            handlers.append(TCPSocketAction(port=_int_or_str(t.get("port")),
                                            host=str(t.get("host") or "")))
        if (e := probe.get("exec")) is not None:
            handlers.append(ExecAction(command=tuple(str(c) for c in e.get("command") or ())))
        if (g := probe.get("grpc")) is not None:
            handlers.append(GRPCAction(port=int(g.get("port") or 0),
                                       service=str(g.get("service") or "")))
        if len(handlers) != 1:
            raise ValueError(f"a probe needs exactly one handler, found {len(handlers)}")
        tgp = probe.get("terminationGracePeriodSeconds")
        return cls(
            handler=handlers[0],
            initial_delay_seconds=max(0, int(probe.get("initialDelaySeconds") or 0)),
            timeout_seconds=int(probe.get("timeoutSeconds") or 0) or 1,
            period_seconds=int(probe.get("periodSeconds") or 0) or 10,
            success_threshold=int(probe.get("successThreshold") or 0) or 1,
            failure_threshold=int(probe.get("failureThreshold") or 0) or 3,
            termination_grace_period_seconds=int(tgp) if tgp is not None else None,
        )


def _int_or_str(value: Any) -> int | str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return value
    return str(value)


def resolve_port(port: int | str, container_ports: Sequence[Mapping[str, Any]] = ()) -> int:
    """A probe's port as a number: an int as is; a string names one of the container's
    ``ports`` (``containerPort`` of the entry with that ``name``), else is parsed as a number.
    Raises ``ValueError`` (``port http not found`` / ``invalid port number: 0``)."""
    if isinstance(port, str):
        found = next((p for p in container_ports if p.get("name") == port), None)
        if found is not None:
            number = int(found.get("containerPort") or -1)
        else:
            try:
                number = int(port)
            except ValueError:
                raise ValueError(f"port {port} not found") from None
    else:
        number = port
    if 0 < number < 65536:
        return number
    raise ValueError(f"invalid port number: {number}")


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _syscall_error(exc: OSError) -> str:
    """An ``OSError`` as Go's syscall errors read (``connection refused``)."""
    if exc.errno is not None and exc.errno in errno_mod.errorcode:
        text = os.strerror(exc.errno)
        return text[:1].lower() + text[1:]
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------------------------
# Connectors
# --------------------------------------------------------------------------------------------


async def tcp_connector(host: str, port: int, timeout: float) -> StreamPair:
    """Connect from the agent's own network namespace (the process runtime, and tests)."""
    async with asyncio.timeout(timeout):
        return await asyncio.open_connection(host, port)


class _OpensConnections(Protocol):
    async def open_connection(self, sandbox: Any, port: int, timeout: float = 5.0
                              ) -> StreamPair: ...


def sandbox_connector(runtime: _OpensConnections, sandbox: Any,
                      fallback: Connector = tcp_connector) -> Connector:
    """A :data:`Connector` reaching the pod's own IP through ``runtime.open_connection``
    (inside the cluster network); any other host (a probe's explicit ``host``) through
    ``fallback``."""

    async def connect(host: str, port: int, timeout: float) -> StreamPair:
        if host == getattr(sandbox, "ip", None):
            return await runtime.open_connection(sandbox, port, timeout)
        return await fallback(host, port, timeout)

    return connect


# --------------------------------------------------------------------------------------------
# tcpSocket
# --------------------------------------------------------------------------------------------


async def probe_tcp(host: str, port: int, timeout: float, connect: Connector = tcp_connector
                    ) -> ProbeResult:
    """Success if a connection to ``host:port`` opens within ``timeout`` seconds (it is closed
    at once). Failure messages: ``dial tcp H:P: connect: connection refused``, ``dial tcp H:P:
    i/o timeout``."""
    addr = _join_host_port(host, port)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await connect(host, port, timeout)
    except TimeoutError:
        return ProbeResult.failure(f"dial tcp {addr}: i/o timeout")
    except OSError as exc:
        return ProbeResult.failure(f"dial tcp {addr}: connect: {_syscall_error(exc)}")
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return ProbeResult.success()


# --------------------------------------------------------------------------------------------
# httpGet
# --------------------------------------------------------------------------------------------


class _HTTPError(Exception):
    """A transport-level failure; ``str()`` is the text after ``Get "<url>": ``."""


class _BodyError(Exception):
    """The status line and headers arrived but the body could not be read."""


@dataclass
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


def _build_headers(action_headers: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]],
                                                                        str | None]:
    """The request headers (without Host) and the Host override, kubelet rules."""
    headers = [(k, v) for k, v in action_headers if k.lower() != "host"]
    host = next((v for k, v in action_headers if k.lower() == "host" and v), None)
    names = {k.lower() for k, _ in headers}
    if "user-agent" not in names:
        headers.append(("User-Agent", KUBE_PROBE_USER_AGENT))
    if "accept" not in names:
        headers.append(("Accept", "*/*"))
    elif all(v == "" for k, v in headers if k.lower() == "accept"):
        headers = [(k, v) for k, v in headers if k.lower() != "accept"]
    return headers, host


async def _read_response(reader: asyncio.StreamReader) -> _Response:
    """Status line, headers and up to :data:`MAX_OUTPUT_BYTES` of body (chunked,
    content-length or close-delimited). ``_HTTPError`` before the headers, ``_BodyError``
    after."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _HTTPError("EOF") from None
            raise _HTTPError("unexpected EOF") from None
        except asyncio.LimitOverrunError:
            raise _HTTPError("net/http: server response headers exceeded the limit") from None
        if len(head) > _MAX_HEADER_BYTES:
            raise _HTTPError("net/http: server response headers exceeded the limit")
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0]
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit() \
                or len(parts[1]) != 3:
            raise _HTTPError("net/http: HTTP/1.x transport connection broken: "
                             f"malformed HTTP response {status_line!r}")
        status = int(parts[1])
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise _HTTPError("net/http: HTTP/1.x transport connection broken: "
                                 f"malformed MIME header line: {line}")
            headers.append((name.strip(), value.strip()))
        if 100 <= status < 200 and status != 101:
            continue  # informational: the real response follows
        break
    response = _Response(status, headers, b"")
    if status in (204, 304) or 100 <= status < 200:
        return response
    try:
        response.body = await _read_body(reader, response)
    except (asyncio.IncompleteReadError, ValueError, OSError) as exc:
        raise _BodyError(str(exc) or "unexpected EOF") from exc
    return response


async def _read_body(reader: asyncio.StreamReader, response: _Response) -> bytes:
    te = (response.header("Transfer-Encoding") or "").lower()
    if "chunked" in te:
        body = bytearray()
        while len(body) < MAX_OUTPUT_BYTES:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            chunk = await reader.readexactly(size)
            await reader.readexactly(2)
            body += chunk
        return bytes(body[:MAX_OUTPUT_BYTES])
    length = response.header("Content-Length")
    if length is not None:
        return await reader.readexactly(min(int(length), MAX_OUTPUT_BYTES))
    body = bytearray()
    while len(body) < MAX_OUTPUT_BYTES:
        data = await reader.read(MAX_OUTPUT_BYTES - len(body))
        if not data:
            break
        body += data
    return bytes(body)


@dataclass
class _Phase:
    """Where an HTTP exchange is, so a timeout can be worded as Go's client words it."""

    dialing: str | None = None  # the address being dialled, while connecting


async def _http_exchange(url: urllib.parse.SplitResult, headers: Sequence[tuple[str, str]],
                         host_header: str | None, connect: Connector, timeout: float,
                         phase: _Phase) -> _Response:
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    addr = _join_host_port(host, port)
    phase.dialing = addr
    try:
        reader, writer = await connect(host, port, timeout)
    except TimeoutError:
        raise _HTTPError(f"dial tcp {addr}: i/o timeout "
                         "(Client.Timeout exceeded while awaiting headers)") from None
    except OSError as exc:
        raise _HTTPError(f"dial tcp {addr}: connect: {_syscall_error(exc)}") from None
    phase.dialing = None
    try:
        if url.scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            try:
                await writer.start_tls(ctx, server_hostname=None if _is_ip(host) else host)
            except (ssl.SSLError, OSError) as exc:
                raise _HTTPError(f"tls: {exc}") from None
        target = url.path or "/"
        if url.query:
            target += "?" + url.query
        lines = [f"GET {target} HTTP/1.1", f"Host: {host_header or url.netloc}"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines += ["Connection: close", "", ""]
        writer.write("\r\n".join(lines).encode("latin-1"))
        try:
            await writer.drain()
            return await _read_response(reader)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise _HTTPError(f"read tcp {addr}: read: {_syscall_error(exc)}") from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def probe_http(action: HTTPGetAction, pod_ip: str, timeout: float,
                     connect: Connector = tcp_connector,
                     container_ports: Sequence[Mapping[str, Any]] = ()) -> ProbeResult:
    """Run an ``httpGet`` probe against ``action.host or pod_ip``.

    Success for 200-299; 300-399 not followed (another host, no ``Location``, not a redirect
    code) is success with ``warning``; anything else is ``HTTP probe failed with statuscode:
    N``. Transport failures are failures worded as Go's client words them, e.g. ``Get
    "http://10.244.0.5:8080/ready": dial tcp 10.244.0.5:8080: connect: connection refused``
    or ``...: context deadline exceeded (Client.Timeout exceeded while awaiting headers)``.
    An unresolvable port, or a body that breaks off after the headers, is ``unknown``."""
    try:
        port = resolve_port(action.port, container_ports)
    except ValueError as exc:
        return ProbeResult.unknown(str(exc))
    scheme = action.scheme.lower()
    if scheme not in ("http", "https"):
        return ProbeResult.unknown(f"unsupported scheme: {action.scheme}")
    host = action.host or pod_ip
    path = action.path if action.path.startswith("/") else "/" + action.path
    url_text = f"{scheme}://{_join_host_port(host, port)}{path}"
    headers, host_header = _build_headers(action.headers)
    first_host = host
    url = urllib.parse.urlsplit(url_text)
    redirects = 0
    phase = _Phase()
    try:
        async with asyncio.timeout(timeout):
            while True:
                response = await _http_exchange(url, headers, host_header, connect, timeout,
                                                phase)
                location = response.header("Location")
                if response.status not in _REDIRECT_CODES or not location:
                    break
                next_url = urllib.parse.urlsplit(urllib.parse.urljoin(url_text, location))
                if next_url.scheme not in ("http", "https") \
                        or (next_url.hostname or "") != first_host:
                    break  # kubelet stops at a redirect off the probed host
                redirects += 1
                url_text = next_url.geturl()
                url = next_url
                if redirects >= MAX_REDIRECTS:
                    return ProbeResult.failure(
                        f'Get "{url_text}": stopped after {MAX_REDIRECTS} redirects')
                host_header = None
    except TimeoutError:
        if phase.dialing is not None:
            return ProbeResult.failure(
                f'Get "{url_text}": dial tcp {phase.dialing}: i/o timeout '
                "(Client.Timeout exceeded while awaiting headers)")
        return ProbeResult.failure(
            f'Get "{url_text}": context deadline exceeded '
            "(Client.Timeout exceeded while awaiting headers)")
    except _HTTPError as exc:
        return ProbeResult.failure(f'Get "{url_text}": {exc}')
    except _BodyError as exc:
        return ProbeResult.unknown(f"reading the response body of {url_text}: {exc}")
    body = response.body.decode("utf-8", errors="replace")
    if 200 <= response.status < 300:
        return ProbeResult.success(body)
    if 300 <= response.status < 400:
        return ProbeResult.success(f"Probe terminated redirects, Response body: {body}",
                                   warning=True)
    return ProbeResult.failure(f"HTTP probe failed with statuscode: {response.status}")


# --------------------------------------------------------------------------------------------
# exec and grpc
# --------------------------------------------------------------------------------------------


def expand_command(command: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Kubernetes ``$(VAR)`` expansion: ``$(NAME)`` becomes ``env[NAME]`` (left as written if
    unset), ``$$`` becomes ``$``, any other ``$`` is literal."""
    out: list[str] = []
    for arg in command:
        buf: list[str] = []
        i = 0
        while i < len(arg):
            ch = arg[i]
            if ch == "$" and i + 1 < len(arg):
                nxt = arg[i + 1]
                if nxt == "$":
                    buf.append("$")
                    i += 2
                    continue
                if nxt == "(":
                    close = arg.find(")", i + 2)
                    if close != -1:
                        name = arg[i + 2:close]
                        buf.append(env[name] if name in env else arg[i:close + 1])
                        i = close + 1
                        continue
            buf.append(ch)
            i += 1
        out.append("".join(buf))
    return out


def _format_seconds(seconds: float) -> str:
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds}s"


async def probe_exec(command: Sequence[str], timeout: float,
                     exec_prefix: Sequence[str] = (), env: Mapping[str, str] | None = None
                     ) -> ProbeResult:
    """Run ``exec_prefix + command`` (``$(VAR)`` expanded from ``env``) with ``env`` in the
    environment (``PATH`` from the agent's if ``env`` has none), stdout and stderr together,
    at most :data:`MAX_OUTPUT_BYTES` kept. Exit 0 → success with the output; another code →
    failure whose message is the output (or ``command 'ARGV' exited with N`` if there was
    none); past ``timeout`` seconds its process group is killed and the result is failure
    ``command timed out: "ARGV" timed out after Ns``. A command that cannot be started at
    all → unknown."""
    env = dict(env or {})
    argv = expand_command(command, env)
    run_env = {"PATH": os.environ.get("PATH", os.defpath)} | env
    joined = " ".join(argv)
    try:
        proc = await asyncio.create_subprocess_exec(
            *exec_prefix, *argv, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=run_env, start_new_session=True)
    except OSError as exc:
        return ProbeResult.unknown(f"starting {joined!r}: {exc}")
    assert proc.stdout is not None
    output = bytearray()

    async def collect() -> None:
        assert proc.stdout is not None
        while data := await proc.stdout.read(65536):
            if len(output) < MAX_OUTPUT_BYTES:
                output.extend(data[:MAX_OUTPUT_BYTES - len(output)])

    reader = asyncio.ensure_future(collect())
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            await proc.wait()
    except TimeoutError:
        timed_out = True
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        # A grandchild may hold the pipe open after the group is gone; don't wait for it.
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(reader, 1.0)
    text = output.decode("utf-8", errors="replace")
    if timed_out:
        return ProbeResult.failure(
            f'command timed out: "{joined}" timed out after {_format_seconds(timeout)}')
    code = proc.returncode
    if code == 0:
        return ProbeResult.success(text)
    return ProbeResult.failure(text or f"command '{joined}' exited with {code}")


async def probe_grpc(action: GRPCAction) -> ProbeResult:
    """gRPC probes are not implemented: always a failure saying so."""
    return ProbeResult.failure(
        f"gRPC probe on port {action.port} failed: gRPC probes are not supported by "
        "the svcnet node agent")


async def run_probe(spec: ProbeSpec, pod_ip: str, connect: Connector = tcp_connector,
                    exec_prefix: Sequence[str] = (), env: Mapping[str, str] | None = None,
                    container_ports: Sequence[Mapping[str, Any]] = ()) -> ProbeResult:
    """Run ``spec``'s handler once with ``spec.timeout_seconds``."""
    handler = spec.handler
    timeout = float(spec.timeout_seconds)
    if isinstance(handler, HTTPGetAction):
        return await probe_http(handler, pod_ip, timeout, connect, container_ports)
    if isinstance(handler, TCPSocketAction):
        try:
            port = resolve_port(handler.port, container_ports)
        except ValueError as exc:
            return ProbeResult.unknown(str(exc))
        return await probe_tcp(handler.host or pod_ip, port, timeout, connect)
    if isinstance(handler, ExecAction):
        return await probe_exec(handler.command, timeout, exec_prefix, env)
    return await probe_grpc(handler)


ProbeRunner = Callable[[str, ProbeType, ProbeSpec], Awaitable[ProbeResult]]
"""``await runner(container_name, probe_type, spec)``: run one probe of a container."""


@dataclass
class PodProber:
    """The :data:`ProbeRunner` of one pod: its IP, how to reach it (``connect``), how to run a
    command in it (``exec_prefix``), each container's resolved env and API ``ports``."""

    pod_ip: str
    connect: Connector = tcp_connector
    exec_prefix: Sequence[str] = ()
    env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ports: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)

    async def __call__(self, container: str, probe_type: ProbeType, spec: ProbeSpec
                       ) -> ProbeResult:
        return await run_probe(spec, self.pod_ip, self.connect, self.exec_prefix,
                               self.env.get(container, {}), self.ports.get(container, ()))


# --------------------------------------------------------------------------------------------
# The state machine
# --------------------------------------------------------------------------------------------

_INITIAL = {ProbeType.READINESS: Result.FAILURE, ProbeType.LIVENESS: Result.SUCCESS,
            ProbeType.STARTUP: Result.UNKNOWN}


class ProbeWorker:
    """One probe of one container, with Kubernetes semantics.

    ``result`` starts at the type's initial value (readiness FAILURE, liveness SUCCESS, startup
    UNKNOWN = not started) and only changes after ``success_threshold`` consecutive successes
    or ``failure_threshold`` consecutive failures (UNKNOWN results are discarded and do not
    break a run). ``on_result(probe_type, new_result)`` is called only when ``result`` changes.

    Nothing is probed while the container is not running (:meth:`container_started` not yet
    called, or :meth:`container_stopped`), during ``initial_delay_seconds`` after its start,
    while ``gate()`` is false (readiness and liveness wait for the startup probe), once a
    startup probe has succeeded, or after a liveness/startup FAILURE (the container is to be
    restarted: the worker holds until the next :meth:`container_started`, which resets it).
    A result that arrives after the container was restarted or stopped is discarded.
    ``success_threshold`` is forced to 1 for liveness and startup, as validation requires.
    """

    def __init__(self, probe_type: ProbeType, spec: ProbeSpec,
                 probe: Callable[[], Awaitable[ProbeResult]],
                 on_result: Callable[[ProbeType, Result], None] | None = None, *,
                 gate: Callable[[], bool] | None = None,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.probe_type = probe_type
        self.spec = spec
        self._probe = probe
        self._on_result = on_result
        self._gate = gate
        self._clock = clock
        self._sleep = sleep
        self.result = _INITIAL[probe_type]
        self.last: ProbeResult | None = None  # the most recent probe outcome, for messages
        self.started_at: float | None = None
        self.on_hold = False
        self._last_result: Result | None = None
        self._run = 0
        self._generation = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.parked = asyncio.Event()
        """Set while the loop waits with nothing due before its sleep ends or
        :meth:`trigger` is called (observable state for tests and diagnostics)."""

    @property
    def success_threshold(self) -> int:
        if self.probe_type is ProbeType.READINESS:
            return max(1, self.spec.success_threshold)
        return 1

    # -- container lifecycle -------------------------------------------------------------------

    def container_started(self, started_at: float) -> None:
        """A (new) container is running since ``started_at`` (clock time): reset counters and
        hold, set the initial result, and probe at once if due."""
        self._generation += 1
        self.started_at = started_at
        self.on_hold = False
        self._last_result = None
        self._run = 0
        self.last = None
        self._set(_INITIAL[self.probe_type])
        self.trigger()

    def container_stopped(self) -> None:
        """The container is not running: stop probing; readiness becomes FAILURE and startup
        UNKNOWN (not started). Liveness keeps its value (nothing to restart)."""
        self._generation += 1
        self.started_at = None
        self._last_result = None
        self._run = 0
        if self.probe_type is ProbeType.READINESS:
            self._set(Result.FAILURE)
        elif self.probe_type is ProbeType.STARTUP:
            self._set(Result.UNKNOWN)

    # -- one step ------------------------------------------------------------------------------

    def should_probe(self) -> bool:
        """Whether a probe is due now (ignoring the period)."""
        if self.started_at is None or self.on_hold:
            return False
        if self._clock() - self.started_at < self.spec.initial_delay_seconds:
            return False
        if self.probe_type is ProbeType.STARTUP:
            return self.result is not Result.SUCCESS
        return self._gate is None or self._gate()

    async def probe_once(self) -> Result | None:
        """Probe if due and apply the result; returns the new ``result`` if it changed."""
        if not self.should_probe():
            return None
        generation = self._generation
        outcome = await self._probe()
        if generation != self._generation:
            return None  # the container changed meanwhile
        return self.observe(outcome)

    def observe(self, outcome: ProbeResult) -> Result | None:
        """Apply one probe outcome to the thresholds; returns the new ``result`` if changed."""
        self.last = outcome
        result = outcome.result
        if result is Result.UNKNOWN:
            return None
        if result is self._last_result:
            self._run += 1
        else:
            self._last_result = result
            self._run = 1
        threshold = (self.spec.failure_threshold if result is Result.FAILURE
                     else self.success_threshold)
        if self._run < threshold:
            return None
        changed = self._set(result)
        if result is Result.FAILURE and self.probe_type is not ProbeType.READINESS:
            self.on_hold = True
            self._run = 0
        return result if changed else None

    def _set(self, result: Result) -> bool:
        if result is self.result:
            return False
        self.result = result
        if self._on_result is not None:
            self._on_result(self.probe_type, result)
        return True

    def next_delay(self) -> float | None:
        """Seconds until the next attempt; ``None``: nothing to do until :meth:`trigger`."""
        if self.started_at is None or self.on_hold:
            return None
        if self.probe_type is ProbeType.STARTUP and self.result is Result.SUCCESS:
            return None
        period = float(self.spec.period_seconds)
        remaining = self.started_at + self.spec.initial_delay_seconds - self._clock()
        if remaining > 0:
            return min(period, remaining)
        return period

    # -- the loop ------------------------------------------------------------------------------

    def trigger(self) -> None:
        """Wake the loop for an attempt now (it still checks :meth:`should_probe`)."""
        self._wake.set()
        self.parked.clear()

    def start(self) -> None:
        """Start the probing loop as an asyncio task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"probe-{self.probe_type.value.lower()}")

    async def stop(self) -> None:
        """Cancel the loop and wait for it to end."""
        task, self._task = self._task, None
        self.parked.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run(self) -> None:
        """Probe, then wait ``next_delay()`` (or until triggered), forever."""
        while True:
            self._wake.clear()
            await self.probe_once()
            await self._wait(self.next_delay())

    async def _wait(self, delay: float | None) -> None:
        if self._wake.is_set():
            return
        waker = asyncio.ensure_future(self._wake.wait())
        waiters: set[asyncio.Future[Any]] = {waker}
        if delay is None:
            self.parked.set()
        else:
            async def sleep() -> None:
                # Parked from the step that starts the sleep to the step it returns in, so
                # an observer never sees "parked" without the sleep having begun.
                self.parked.set()
                await self._sleep(delay)
                self.parked.clear()

            waiters.add(asyncio.ensure_future(sleep()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.parked.clear()
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)


ChangeCallback = Callable[[str, ProbeType, Result, "ProbeResult | None"], None]
"""``on_change(container, probe_type, new_result, last_probe_result)``: the agent updates the
pod's Ready condition on readiness changes and restarts the container on a liveness or startup
FAILURE."""


class ProbeManager:
    """The probe workers of one pod, keyed by container name and probe type.

    Built from the pod's ``spec.containers`` (API dicts); workers exist for every probe given
    and run only while their container runs: the agent calls :meth:`container_started` when a
    container (re)starts and :meth:`container_stopped` when it exits. ``ready()`` and
    ``started()`` answer as the kubelet fills ``containerStatuses[].ready`` / ``started``:
    not running → false; started = startup probe succeeded (true without one); ready = started
    and readiness result SUCCESS (true without a readiness probe)."""

    def __init__(self, containers: Sequence[Mapping[str, Any]], runner: ProbeRunner,
                 on_change: ChangeCallback | None = None, *,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._runner = runner
        self._on_change = on_change
        self._clock = clock
        self.workers: dict[tuple[str, ProbeType], ProbeWorker] = {}
        self._running: set[str] = set()
        self._closed = False
        fields = ((ProbeType.STARTUP, "startupProbe"), (ProbeType.READINESS, "readinessProbe"),
                  (ProbeType.LIVENESS, "livenessProbe"))
        for container in containers:
            name = str(container["name"])
            for probe_type, key in fields:
                if container.get(key):
                    spec = ProbeSpec.from_api(container[key])
                    self.workers[(name, probe_type)] = self._make_worker(
                        name, probe_type, spec, sleep)

    @classmethod
    def for_pod(cls, pod: Mapping[str, Any], runner: ProbeRunner,
                on_change: ChangeCallback | None = None, *,
                clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> ProbeManager:
        """A manager for a pod object (``spec.containers``)."""
        containers = (pod.get("spec") or {}).get("containers") or ()
        return cls(containers, runner, on_change, clock=clock, sleep=sleep)

    def _make_worker(self, name: str, probe_type: ProbeType, spec: ProbeSpec,
                     sleep: Sleep) -> ProbeWorker:
        def probe() -> Awaitable[ProbeResult]:
            return self._runner(name, probe_type, spec)

        def on_result(pt: ProbeType, result: Result) -> None:
            worker = self.workers.get((name, pt))
            if pt is ProbeType.STARTUP and result is Result.SUCCESS:
                for other in (ProbeType.READINESS, ProbeType.LIVENESS):
                    if (w := self.workers.get((name, other))) is not None:
                        w.trigger()
            if self._on_change is not None:
                self._on_change(name, pt, result, worker.last if worker else None)

        gate = None
        if probe_type is not ProbeType.STARTUP:
            def gate() -> bool:
                return self.started(name)
        return ProbeWorker(probe_type, spec, probe, on_result, gate=gate,
                           clock=self._clock, sleep=sleep)

    def _container_workers(self, name: str) -> list[ProbeWorker]:
        return [w for (c, _), w in self.workers.items() if c == name]

    def container_started(self, name: str, started_at: float | None = None) -> None:
        """Container ``name`` (re)started at ``started_at`` (default: now): reset its workers
        and make sure their loops run. Must be called from the event loop."""
        if self._closed:
            return
        self._running.add(name)
        at = self._clock() if started_at is None else started_at
        for worker in self._container_workers(name):
            worker.container_started(at)
            worker.start()

    def container_stopped(self, name: str) -> None:
        """Container ``name`` is not running (exited, being restarted)."""
        self._running.discard(name)
        for worker in self._container_workers(name):
            worker.container_stopped()

    def worker(self, name: str, probe_type: ProbeType) -> ProbeWorker | None:
        return self.workers.get((name, probe_type))

    def started(self, name: str) -> bool:
        if name not in self._running:
            return False
        w = self.workers.get((name, ProbeType.STARTUP))
        return w is None or w.result is Result.SUCCESS

    def ready(self, name: str) -> bool:
        if not self.started(name):
            return False
        w = self.workers.get((name, ProbeType.READINESS))
        return w is None or w.result is Result.SUCCESS

    def live(self, name: str) -> bool:
        """False once the liveness probe has failed and until the container restarts."""
        w = self.workers.get((name, ProbeType.LIVENESS))
        return w is None or w.result is not Result.FAILURE

    async def close(self) -> None:
        """Stop every worker's loop (the pod is going away)."""
        self._closed = True
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
