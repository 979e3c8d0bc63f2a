"""A kuard-like demo app (image ``gcr.io/kuar-demo/kuard-amd64``), port 8080.

Endpoints:

* ``/`` — pod name, IP, image version, request line, headers and environment; HTML
  when the client accepts ``text/html`` (a browser), plain text otherwise (curl).
* ``/ready``, ``/healthy`` — probe targets: 200 ``ok``, or 500 ``fail, N left`` /
  ``fail, permanent`` while set to fail (as kuard's debug probes).
* ``/ready/fail``, ``/ready/ok``, ``/healthy/fail``, ``/healthy/ok`` (POST or GET) —
  flip a probe: ``fail`` fails permanently, ``fail?count=N`` fails the next N calls,
  ``ok`` succeeds again. Answers with the probe's JSON status.
* ``/ready/api``, ``/healthy/api`` — kuard's API: GET the status
  ``{"probePath", "failNext", "history"}``; PUT ``{"failNext": N}`` (-1 = permanent).
* ``/env`` — the environment as a JSON object; ``/env/api`` — kuard's
  ``{"commandLine": [...], "env": {...}}``.
* ``/hostname`` — the pod name as text.

Flags: ``--address`` (``host:port`` or ``:port``, kuard's form) and ``--port``.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from svcnet.agent.demo import DemoHandler, listen_on, pod_name, serve, split_listen

MAX_HISTORY = 20


class Probe:
    """A probe endpoint's state: ``fail_next`` > 0 fails that many calls, < 0 fails
    permanently, 0 succeeds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fail_next = 0
        self.history: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._last_id = 0

    def call(self) -> tuple[int, str]:
        """Answer one probe request; records it in the history."""
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                code, message = 500, f"fail, {self.fail_next} left"
            elif self.fail_next < 0:
                code, message = 500, "fail, permanent"
            else:
                code, message = 200, "ok"
            self._last_id += 1
            self.history.append({"id": self._last_id, "when": time.strftime(
                "%Y-%m-%dT%H:%M:%S%z"), "code": code})
            del self.history[:-MAX_HISTORY]
            return code, message

    def set(self, fail_next: int) -> None:
        with self._lock:
            self.fail_next = fail_next

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"probePath": self.path, "failNext": self.fail_next,
                    "history": list(reversed(self.history))}


PROBES = {"ready": Probe("/ready"), "healthy": Probe("/healthy")}
VERSION = os.environ.get("SVCNET_IMAGE_VERSION", "")


class KuardHandler(DemoHandler):
    server_version = "kuard-svcnet"

    def do_GET(self) -> None:
        self.route("GET")

    def do_HEAD(self) -> None:
        self.route("GET")

    def do_POST(self) -> None:
        self.route("POST")

    def do_PUT(self) -> None:
        self.route("PUT")

    def route(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        if not parts:
            self.page()
        elif parts[0] in PROBES and len(parts) <= 2:
            self.probe(PROBES[parts[0]], parts[1] if len(parts) == 2 else "", method,
                       parse_qs(url.query))
        elif parts == ["env"]:
            self.json(200, dict(os.environ))
        elif parts == ["env", "api"]:
            self.json(200, {"commandLine": sys.argv, "env": dict(os.environ)})
        elif parts == ["hostname"]:
            self.reply(200, pod_name() + "\n")
        else:
            self.reply(404, "404 page not found\n")

    def json(self, status: int, doc: Any) -> None:
        self.reply(status, json.dumps(doc, indent=2, sort_keys=True) + "\n",
                   "application/json")

    def probe(self, probe: Probe, action: str, method: str,
              query: dict[str, list[str]]) -> None:
        if action == "":
            code, message = probe.call()
            self.reply(code, message)
        elif action == "api" and method == "PUT":
            try:
                doc = json.loads(self.body() or b"{}")
                probe.set(int(doc.get("failNext", 0)))
            except (ValueError, TypeError, AttributeError) as err:
                self.reply(400, f"{err}\n")
                return
            self.json(200, probe.status())
        elif action == "api":
            self.json(200, probe.status())
        elif action in ("fail", "ok"):
            self.body()
            count = query.get("count", ["-1"])[0]
            probe.set((int(count) if count.lstrip("-").isdigit() else -1)
                      if action == "fail" else 0)
            self.json(200, probe.status())
        else:
            self.reply(404, "404 page not found\n")

    def page(self) -> None:
        facts = [("Pod", pod_name()), ("IP", self.pod_ip()),
                 ("Version", VERSION or "svcnet"),
                 ("Request", self.requestline), ("Client", self.client_address[0])]
        headers = sorted(self.headers.items())
        env = sorted(os.environ.items())
        if "text/html" in self.headers.get("Accept", ""):
            self.reply(200, _html(facts, headers, env), "text/html; charset=utf-8")
            return
        lines = ["kuard (svcnet demo)", ""]
        lines += [f"{k}: {v}" for k, v in facts]
        lines += ["", "Request headers:"] + [f"  {k}: {v}" for k, v in headers]
        lines += ["", "Environment:"] + [f"  {k}={v}" for k, v in env]
        self.reply(200, "\n".join(lines) + "\n")


def _html(facts: list[tuple[str, str]], headers: list[tuple[str, str]],
          env: list[tuple[str, str]]) -> str:
    def table(title: str, rows: list[tuple[str, str]]) -> str:
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                       for k, v in rows)
        return f"<h2>{html.escape(title)}</h2><table>{body}</table>"

    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>KUAR Demo - {html.escape(pod_name())}</title></head><body>"
            f"<h1>KUAR Demo</h1>{table('Pod', facts)}{table('Request headers', headers)}"
            f"{table('Environment', env)}<p>Probes: <a href='/ready'>/ready</a> "
            "<a href='/healthy'>/healthy</a></p></body></html>\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kuard", allow_abbrev=False)
    parser.add_argument("--address", help="host:port or :port to serve on (default :8080)")
    parser.add_argument("--port", type=int)
    opts, _unknown = parser.parse_known_args(argv)
    host, port = split_listen(opts.address) if opts.address else (None, None)
    bind_host, bind_port = listen_on(host, opts.port or port, 8080)
    return serve(KuardHandler, bind_host, bind_port, "kuard")


if __name__ == "__main__":
    sys.exit(main())
