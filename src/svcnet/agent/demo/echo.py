"""HTTP echo-style demo apps, one per ``--mode``:

* ``echo`` (default; nginx, echoserver): every request is answered with the pod name,
  pod IP, the request line, headers and body, as text.
  With ``-text=X`` (hashicorp/http-echo) every request is answered ``X`` + newline, and
  ``/health`` with ``{"status":"ok"}``.
* ``numbers-api`` (kiamol/ch03-numbers-api): ``/rng`` (and the path the real image also
  serves, ``/sixeyed/kiamol/master/ch03/numbers/rng``) answers a random number 0–99;
  after ``FailAfterCallCount`` calls (env, 0 = never) it turns unhealthy and answers 500;
  ``/healthz`` (or ``/health``) reports health, ``/reset`` makes it healthy again.
* ``numbers-web`` (kiamol/ch03-numbers-web): ``GET /`` shows a form; ``POST /`` fetches a
  number from env ``RngApi__Url`` and shows it, or ``RNG service unavailable!``.
* ``hello`` (google-samples/hello-app): ``Hello, world!``, ``Version:`` (env
  ``SVCNET_IMAGE_VERSION``, default 1.0.0) and ``Hostname:``.

Flags: ``--port``, ``-listen``/``--listen`` (``:5678`` form), ``--default-port`` (the
image's port, below env ``PORT``). Go-style single-dash flags are accepted.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from svcnet.agent.demo import DemoHandler, listen_on, pod_name, serve, split_listen

RNG_URL_ENV = "RngApi__Url"  # ASP.NET config key RngApi:Url, as the real image reads it
RNG_PATHS = ("/rng", "/sixeyed/kiamol/master/ch03/numbers/rng")


class EchoHandler(DemoHandler):
    """Answers every method through ``mode_<mode>``; ``mode`` and ``text`` are set per
    process by ``main``."""

    text: str | None = None
    mode = "echo"

    def handle_any(self) -> None:
        handler: Callable[[], None] = getattr(self, "mode_" + self.mode.replace("-", "_"))
        handler()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any

    def mode_echo(self) -> None:
        body = self.body()
        if self.text is not None:
            if urlsplit(self.path).path == "/health":
                self.reply(200, '{"status":"ok"}\n', "application/json")
            else:
                self.reply(200, self.text + "\n")
            return
        host = self.headers.get("Host", "")
        lines = [f"Hostname: {pod_name()}", f"Pod IP: {self.pod_ip()}", "",
                 "Request Information:",
                 f"\tclient_address={self.client_address[0]}",
                 f"\tmethod={self.command}",
                 f"\treal path={urlsplit(self.path).path}",
                 f"\tquery={urlsplit(self.path).query}",
                 f"\trequest_version={self.request_version.removeprefix('HTTP/')}",
                 f"\trequest_uri=http://{host}{self.path}", "", "Request Headers:"]
        lines += [f"\t{k.lower()}={v}" for k, v in sorted(self.headers.items())]
        lines += ["", "Request Body:",
                  "\t" + (body.decode(errors="replace") if body else "-no body in request-")]
        self.reply(200, "\n".join(lines) + "\n")

    def mode_hello(self) -> None:
        version = os.environ.get("SVCNET_IMAGE_VERSION") or "1.0.0"
        self.reply(200, f"Hello, world!\nVersion: {version}\nHostname: {pod_name()}\n")

    def mode_numbers_api(self) -> None:
        path = urlsplit(self.path).path
        if path in RNG_PATHS:
            code, body = NUMBERS.next_number()
            self.reply(code, body, "application/json; charset=utf-8")
        elif path.lower() in ("/healthz", "/health"):
            ok = NUMBERS.healthy
            self.reply(200 if ok else 500, "Ok" if ok else '{"message":"Unhealthy"}')
        elif path.lower() == "/reset":
            NUMBERS.reset()
            self.reply(200, "Ok")
        else:
            self.reply(404, "")

    def mode_numbers_web(self) -> None:
        if urlsplit(self.path).path != "/":
            self.reply(404, "")
            return
        self.body()
        if self.command == "POST":
            number = fetch_number(os.environ.get(RNG_URL_ENV, ""))
            inner = (f"<p>Here it is: {number}</p>" if number is not None
                     else "<p>RNG service unavailable!</p>")
        else:
            inner = ('<form method="post"><p>Get a random number</p>'
                     '<input type="submit" value="Go!"/></form>')
        page = ("<!doctype html><html><head><title>KIAMOL</title></head><body>"
                f"<h1>KIAMOL Random Number Generator</h1>{inner}</body></html>\n")
        self.reply(200, page, "text/html; charset=utf-8")


class Numbers:
    """The numbers API's state: healthy until ``fail_after`` calls (0 = never)."""

    def __init__(self, fail_after: int) -> None:
        self.fail_after = fail_after
        self.calls = 0
        self.healthy = True
        self._lock = threading.Lock()

    def next_number(self) -> tuple[int, str]:
        with self._lock:
            self.calls += 1
            if not self.healthy:
                return 500, '{"message":"Unhealthy"}'
            if self.fail_after > 0 and self.calls >= self.fail_after:
                self.healthy = False
            return 200, str(random.randrange(100))

    def reset(self) -> None:
        with self._lock:
            self.healthy = True


def _int_env(name: str) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.lstrip("-").isdigit() else 0


NUMBERS = Numbers(_int_env("FailAfterCallCount"))


def fetch_number(url: str, timeout: float = 5.0) -> int | None:
    """GET ``url`` and parse an integer; ``None`` on any failure."""
    if not url:
        return None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.read().decode().strip())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="echo", allow_abbrev=False)
    parser.add_argument("--mode", default="echo",
                        choices=["echo", "numbers-api", "numbers-web", "hello"])
    parser.add_argument("-text", "--text")
    parser.add_argument("-listen", "--listen", "--address")
    parser.add_argument("--port", type=int)
    parser.add_argument("--default-port", type=int, default=80)
    opts, _unknown = parser.parse_known_args(argv)
    host, port = split_listen(opts.listen) if opts.listen else (None, None)
    bind_host, bind_port = listen_on(host, opts.port or port, opts.default_port)
    handler = type("Handler", (EchoHandler,), {"mode": opts.mode, "text": opts.text})
    banner = "http-echo" if opts.text is not None else opts.mode
    return serve(handler, bind_host, bind_port, banner)


if __name__ == "__main__":
    sys.exit(main())
