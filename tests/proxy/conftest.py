"""Fixtures for the proxy tests."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from types import ModuleType

import pytest

from svcnet.proxy.dataplanes import _pyrelay, _relay, _tcp
from tests.proxy.userspace_support import CLIENT_IPS, EP_IPS, delete_netns, make_netns


def load_core(name: str) -> ModuleType:
    """The relay core ``name`` ("c" or "python"). The C one must have been built (it is by
    ``pip install -e .`` where gcc and the Python headers are, as on CI); it is skipped
    only when ``SVCNET_NO_EXTENSIONS`` turns it off."""
    if name == "python":
        return _pyrelay
    if os.environ.get("SVCNET_NO_EXTENSIONS"):
        pytest.skip("SVCNET_NO_EXTENSIONS is set: the C relay core is not used")
    try:
        return importlib.import_module("svcnet.proxy.dataplanes._relaycore")
    except ImportError as e:  # pragma: no cover - a build without a C compiler
        pytest.fail(f"the C relay core was not built ({e}); `pip install -e .` builds it "
                    "with gcc and the Python headers")


@pytest.fixture(params=["c", "python"])
def core(request: pytest.FixtureRequest) -> ModuleType:
    """Each relay core in turn."""
    return load_core(request.param)


@pytest.fixture(params=["c", "python"])
def relay_core(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with each relay core in turn under the userspace dataplane."""
    mod = load_core(request.param)
    monkeypatch.setattr(_tcp, "Relay", mod.Relay)
    monkeypatch.setattr(_relay, "Counters", mod.Counters)
    return str(request.param)


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh node namespace with the endpoint and client addresses on its ``lo``,
    deleted by name afterwards (also on failure)."""
    name = make_netns((*EP_IPS, *CLIENT_IPS, "10.244.0.1"))
    try:
        yield name
    finally:
        delete_netns(name)
