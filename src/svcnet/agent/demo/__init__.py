"""Demo images: small programs the built-in image names run (see ``svcnet.agent.images``).

Each is run as ``python -m svcnet.agent.demo.<name>`` inside a pod. The shared contract,
implemented here:

* listen address: ``--address``/``--listen`` flag, else env ``SVCNET_BIND_ADDRESS``, else
  env ``POD_IP``, else ``0.0.0.0``; port: flag, else env ``PORT``, else the image's default;
* one line per request on stdout (what ``kubectl logs`` shows);
* SIGTERM or SIGINT stops the server and the process exits with status 0.

Stdlib only, so a pod starts in a fraction of a second.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


def split_listen(value: str) -> tuple[str | None, int | None]:
    """``":8080"`` → (None, 8080); ``"1.2.3.4:80"`` → ("1.2.3.4", 80); ``"[::1]:80"``;
    ``"8080"`` → (None, 8080); ``"1.2.3.4"`` → ("1.2.3.4", None)."""
    value = value.strip()
    if value.isdigit():
        return None, int(value)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host or None, int(rest[1:]) if rest.startswith(":") and rest[1:] else None
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host or None, int(port) if port else None
    return value or None, None


def listen_on(host_flag: str | None, port_flag: int | None, default_port: int) -> tuple[str, int]:
    """The address and port to bind, by the precedence in the module docstring."""
    host = (host_flag or os.environ.get("SVCNET_BIND_ADDRESS") or os.environ.get("POD_IP")
            or "0.0.0.0")
    port = port_flag
    if port is None:
        env_port = os.environ.get("PORT", "")
        port = int(env_port) if env_port.isdigit() else default_port
    return host, port


def pod_name() -> str:
    """The pod's name: ``HOSTNAME`` as the runtime sets it, else the host name."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


class DemoHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler base: ``reply`` always sends Content-Length; requests are logged
    to stdout."""

    protocol_version = "HTTP/1.1"
    server_version = "svcnet-demo"

    def log_message(self, format: str, *args: object) -> None:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S")
        sys.stdout.write(f"{stamp} {self.client_address[0]} {format % args}\n")
        sys.stdout.flush()

    def pod_ip(self) -> str:
        """``POD_IP``, else the local address this request arrived on."""
        return os.environ.get("POD_IP") or str(self.connection.getsockname()[0])

    def body(self) -> bytes:
        """The request body (by Content-Length)."""
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def reply(self, status: int, body: str | bytes,
              content_type: str = "text/plain; charset=utf-8") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def serve(handler: type[BaseHTTPRequestHandler], host: str, port: int, banner: str) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit status (0, or 1 if binding fails)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True
        allow_reuse_address = True

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        httpd = Server((host, port), handler)
    except OSError as err:
        print(f"{banner}: cannot listen on {host}:{port}: {err}", file=sys.stderr, flush=True)
        return 1
    print(f"{banner} listening on {host}:{port}", flush=True)
    worker = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                              daemon=True)
    worker.start()
    while not stop.wait(0.5):
        pass
    print(f"{banner} shutting down", flush=True)
    httpd.shutdown()
    httpd.server_close()
    return 0


def wait_for_signal() -> int:
    """Idle until SIGTERM/SIGINT; returns 0."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(3600):
        pass
    return 0
