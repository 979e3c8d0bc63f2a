"""ClientIP affinity table: whole-second expiry, refresh on use, pruning and sweeping."""

from __future__ import annotations

import pytest

from svcnet.proxy.affinity import AffinityTable


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_timeout_zero_means_default(clock: FakeClock) -> None:
    table = AffinityTable(0, clock)
    assert table.timeout == 10800
    table.set("10.1.0.1", "10.0.0.1:80")
    clock.now += 10799.999
    assert table.get("10.1.0.1") == "10.0.0.1:80"
    clock.now += 10800
    assert table.get("10.1.0.1") is None


def test_negative_timeout_rejected() -> None:
    with pytest.raises(ValueError):
        AffinityTable(-1)


def test_default_clock_is_usable() -> None:
    table = AffinityTable(60)
    table.set("10.1.0.1", "10.0.0.1:80")
    assert table.get("10.1.0.1") == "10.0.0.1:80"


@pytest.mark.parametrize(
    ("timeout", "elapsed", "hit"),
    [
        (10, 0.0, True),
        (10, 9.0, True),
        (10, 9.999, True),  # 9 whole seconds < 10
        (10, 10.0, False),  # 10 whole seconds: expired
        (10, 10.5, False),
        (1, 0.999, True),
        (1, 1.0, False),
    ],
)
def test_expiry_at_whole_second_boundary(
    clock: FakeClock, timeout: int, elapsed: float, hit: bool
) -> None:
    table = AffinityTable(timeout, clock)
    table.set("10.1.0.1", "10.0.0.1:80")
    clock.now += elapsed
    assert table.get("10.1.0.1") == ("10.0.0.1:80" if hit else None)
    assert len(table) == (1 if hit else 0)  # an expired entry is removed by get()


def test_get_refreshes_last_use(clock: FakeClock) -> None:
    table = AffinityTable(10, clock)
    table.set("10.1.0.1", "10.0.0.1:80")
    clock.now += 9.5
    assert table.get("10.1.0.1") == "10.0.0.1:80"
    clock.now += 9.5  # 19 s after set, 9.5 s after last use
    assert table.get("10.1.0.1") == "10.0.0.1:80"
    clock.now += 10
    assert table.get("10.1.0.1") is None


def test_unknown_client(clock: FakeClock) -> None:
    assert AffinityTable(10, clock).get("10.1.0.9") is None


def test_set_replaces_address_and_time(clock: FakeClock) -> None:
    table = AffinityTable(10, clock)
    table.set("10.1.0.1", "10.0.0.1:80")
    clock.now += 8
    table.set("10.1.0.1", "[fd00::2]:80")
    clock.now += 8
    assert table.get("10.1.0.1") == "[fd00::2]:80"
    assert len(table) == 1


def test_forget_missing(clock: FakeClock) -> None:
    table = AffinityTable(10, clock)
    table.set("10.1.0.1", "10.0.0.1:80")
    table.set("10.1.0.2", "10.0.0.2:80")
    table.set("10.1.0.3", "10.0.0.1:80")
    table.forget_missing(["10.0.0.1:80", "10.0.0.3:80"])
    assert len(table) == 2
    assert table.get("10.1.0.2") is None
    assert table.get("10.1.0.1") == table.get("10.1.0.3") == "10.0.0.1:80"
    table.forget_missing(set())
    assert len(table) == 0


def test_sweep(clock: FakeClock) -> None:
    table = AffinityTable(10, clock)
    table.set("10.1.0.1", "10.0.0.1:80")
    clock.now += 5
    table.set("10.1.0.2", "10.0.0.2:80")
    clock.now += 4.5
    assert table.sweep() == 0
    clock.now += 0.5  # first entry exactly 10 s old
    assert table.sweep() == 1
    assert len(table) == 1
    assert table.get("10.1.0.2") == "10.0.0.2:80"  # refreshed at t+10
    clock.now += 9.75
    assert table.sweep() == 0
    clock.now += 0.25
    assert table.sweep() == 1
    assert len(table) == 0
    assert table.sweep() == 0
