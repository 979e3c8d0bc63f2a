"""Fixtures that run a real svcnet API server for end-to-end tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from svcnet.testing.cluster import APIServerProcess


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    """One API server per test module, stopped by PID at the end."""
    data = tmp_path_factory.mktemp("svcnet")
    with APIServerProcess(data) as srv:
        yield srv


@pytest.fixture(scope="module")
def kubectl_available() -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed on this machine")


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p
