"""Fixtures for the proxy tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.proxy.userspace_support import CLIENT_IPS, EP_IPS, delete_netns, make_netns


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh node namespace with the endpoint and client addresses on its ``lo``,
    deleted by name afterwards (also on failure)."""
    name = make_netns((*EP_IPS, *CLIENT_IPS, "10.244.0.1"))
    try:
        yield name
    finally:
        delete_netns(name)
