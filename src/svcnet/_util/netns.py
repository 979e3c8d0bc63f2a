"""Sockets inside a network namespace, from a process that lives in another.

``socket_in_netns("svcnet-node-a", AF_INET, SOCK_STREAM)`` creates the socket in a
short-lived thread that has joined the named namespace (``/run/netns/<name>``, as
``ip netns add`` makes them); a socket keeps the namespace it was created in, so the
caller can then bind, listen or connect with it from any thread. The calling thread and
the rest of the process stay in their own namespace — this is how svcnet components
that run in the host's namespace reach cluster addresses only from inside namespaces
svcnet made.

Linux only; needs CAP_SYS_ADMIN (root).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, nstype: int) -> None:
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def exists(name: str) -> bool:
    return netns_path(name).exists()


def socket_in_netns(name: str, family: int = socket.AF_INET,
                    type_: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
    """A new socket that belongs to network namespace ``name``. Raises OSError if the
    namespace does not exist or cannot be joined."""
    result: list[socket.socket | BaseException] = []

    def work() -> None:
        try:
            fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                # Only this private thread joins the namespace; it ends right after, so
                # no other code ever runs in it.
                _setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
            result.append(socket.socket(family, type_, proto))
        except BaseException as e:  # handed to the caller
            result.append(e)

    t = threading.Thread(target=work, name=f"netns-{name}", daemon=True)
    t.start()
    t.join()
    out = result[0]
    if isinstance(out, BaseException):
        raise out
    return out


class NetnsSockets:
    """Fast socket creation in one network namespace, for hot paths (a proxy dialing a
    backend per connection).

    :meth:`socket` switches the *calling* thread into the namespace, creates the socket and
    switches back before returning (two ``setns`` calls, a few microseconds, against about
    100 µs for :func:`socket_in_netns`'s thread). Both namespace files stay open until
    :meth:`close`. If switching back ever fails the process can no longer trust which
    namespace its thread is in, so that raises :class:`SystemExit`.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._target = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
        self._home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net",
                             os.O_RDONLY | os.O_CLOEXEC)

    def socket(self, family: int = socket.AF_INET, type_: int = socket.SOCK_STREAM,
               proto: int = 0) -> socket.socket:
        _setns(self._target, CLONE_NEWNET)
        try:
            return socket.socket(family, type_, proto)
        finally:
            try:
                _setns(self._home, CLONE_NEWNET)
            except OSError as e:  # pragma: no cover - would need a vanished namespace
                raise SystemExit(
                    f"cannot return to the original network namespace: {e}") from e

    def close(self) -> None:
        for fd in (self._target, self._home):
            with contextlib.suppress(OSError):
                os.close(fd)


async def first_global_ipv4(name: str) -> str | None:
    """The first global IPv4 address of network namespace ``name`` on an interface other
    than ``lo`` (a node namespace's pod-bridge address), or ``None`` when it has none or
    does not exist."""
    import asyncio
    import json
    proc = await asyncio.create_subprocess_exec(
        "ip", "-n", name, "-j", "-4", "addr", "show", "scope", "global",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        return None
    for link in json.loads(out or b"[]"):
        if link.get("ifname") == "lo":
            continue
        for a in link.get("addr_info") or []:
            if a.get("local"):
                return str(a["local"])
    return None
