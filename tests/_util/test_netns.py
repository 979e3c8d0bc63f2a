"""Sockets created inside a network namespace made by the test."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from svcnet._util.netns import socket_in_netns


def _can_netns() -> str:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs the ip command (iproute2)"
    return ""


pytestmark = pytest.mark.skipif(bool(_can_netns()), reason=_can_netns() or "ok")


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"svcnet-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", "10.250.0.1/32", "dev", "lo"],
                       check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_socket_lives_in_the_namespace(netns: str) -> None:
    # 10.250.0.1 exists only inside the test's namespace: binding it proves where the
    # socket lives, and nothing is sent outside that namespace.
    with socket_in_netns(netns) as srv:
        srv.bind(("10.250.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        with socket_in_netns(netns) as cli:
            cli.settimeout(5)
            cli.connect(("10.250.0.1", port))
            conn, _ = srv.accept()
            conn.sendall(b"hi")
            assert cli.recv(2) == b"hi"
            conn.close()
    with socket.socket() as host, pytest.raises(OSError):
        host.bind(("10.250.0.1", 0))  # not an address of the host's namespace


def test_missing_namespace_raises() -> None:
    with pytest.raises(OSError):
        socket_in_netns(f"svcnet-missing-{uuid.uuid4().hex[:6]}")
