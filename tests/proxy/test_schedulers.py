"""IPVS schedulers: each one's selection formula checked exactly against the kernel rules,
plus distribution, consistency and weight-annotation parsing."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from svcnet.proxy.schedulers import (
    SCHEDULERS,
    Destination,
    MaglevHash,
    Scheduler,
    make_scheduler,
    parse_weights,
)

VIP = "10.96.0.10"


def dests(*weights: int) -> list[Destination]:
    """Destinations a, b, c, ... as 10.0.0.1:80, 10.0.0.2:80, ... with the given weights."""
    return [Destination(f"10.0.0.{i + 1}", 80, weight=w) for i, w in enumerate(weights)]


def name_of(d: Destination | None) -> str | None:
    return None if d is None else "abcdefghij"[int(d.ip.rsplit(".", 1)[1]) - 1]


def sched(
    name: str, ds: list[Destination], *, sh_port: bool = False, mh_port: bool = True
) -> Scheduler:
    s = make_scheduler(name, sh_port=sh_port, mh_port=mh_port)
    s.update(ds)
    return s


def picks(s: Scheduler, n: int) -> list[str | None]:
    return [name_of(s.pick("192.168.0.1", 40000, VIP)) for _ in range(n)]


def random_sources(n: int, seed: int = 7) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [
        (".".join(str(rng.randrange(256)) for _ in range(4)), rng.randrange(1024, 65536))
        for _ in range(n)
    ]


def assert_shares(counts: Counter[str | None], shares: dict[str, float], total: int) -> None:
    assert set(counts) == set(shares)
    for key, share in shares.items():
        assert abs(counts[key] / total - share) <= 0.15 * share, (key, counts)


# --------------------------------------------------------------------------- common rules


def test_destination_address() -> None:
    assert Destination("10.0.0.1", 80).address == "10.0.0.1:80"
    assert Destination("fd00::1", 8080).address == "[fd00::1]:8080"


def test_unknown_scheduler_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="lblc") as err:
        make_scheduler("lblc")
    assert "rr, wrr, lc, wlc, sed, nq, sh, dh, mh" in str(err.value)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_scheduler_has_its_name(name: str) -> None:
    assert make_scheduler(name).name == name


@pytest.mark.parametrize("name", SCHEDULERS)
def test_no_destinations_gives_none(name: str) -> None:
    s = make_scheduler(name)
    assert s.pick("1.2.3.4", 1234, VIP) is None
    s.update([])
    assert s.pick("1.2.3.4", 1234, VIP) is None


@pytest.mark.parametrize("name", SCHEDULERS)
def test_all_unavailable_gives_none(name: str) -> None:
    s = sched(name, dests(0, 0, 0))
    for ip, port in random_sources(200):
        assert s.pick(ip, port, VIP) is None


@pytest.mark.parametrize("name", SCHEDULERS)
def test_weight_zero_never_picked(name: str) -> None:
    ds = dests(0, 1, 0, 1)
    s = sched(name, ds)
    seen = Counter(
        name_of(s.pick(ip, port, f"10.96.0.{port % 250}")) for ip, port in random_sources(500)
    )
    assert "a" not in seen and "c" not in seen
    assert seen.keys() & {"b", "d"}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_live_weight_zero_is_unavailable_without_update(name: str) -> None:
    """Weights are read live for availability: draining a destination in place stops it at
    once, even before the scheduler is told."""
    ds = dests(1, 1)
    s = sched(name, ds)
    ds[0].weight = 0
    for ip, port in random_sources(200):
        assert name_of(s.pick(ip, port, f"10.96.0.{port % 250}")) in ("b", None)
    ds[1].weight = 0
    assert s.pick("1.2.3.4", 5, VIP) is None


# --------------------------------------------------------------------------- rr


def test_rr_cycles_in_list_order() -> None:
    assert picks(sched("rr", dests(1, 1, 1)), 7) == ["a", "b", "c", "a", "b", "c", "a"]


def test_rr_ignores_weights_except_zero() -> None:
    assert picks(sched("rr", dests(5, 0, 1, 2)), 6) == ["a", "c", "d", "a", "c", "d"]


@pytest.mark.parametrize(
    ("first", "new", "expected"),
    [
        # position stays on the last chosen destination (b): continue after it
        (2, [1, 2, 3, 4], ["c", "d", "a"]),
        # b removed: the position moves to its predecessor a, so c comes next
        (2, [1, 3], ["c", "a", "c"]),
        # a (first in the list) removed: back to the head
        (1, [2, 3], ["b", "c", "b"]),
        # b and its predecessor a removed: head again
        (2, [3, 4], ["c", "d", "c"]),
        # list reordered: continue after b wherever it now is
        (2, [2, 4, 1, 3], ["d", "a", "c"]),
    ],
)
def test_rr_position_survives_updates(first: int, new: list[int], expected: list[str]) -> None:
    s = sched("rr", dests(1, 1, 1))
    picks(s, first)
    s.update([Destination(f"10.0.0.{i}", 80) for i in new])
    assert picks(s, 3) == expected


def test_rr_identical_update_keeps_position_and_rebinds_objects() -> None:
    s = sched("rr", dests(1, 1, 1))
    assert picks(s, 1) == ["a"]
    fresh = dests(1, 1, 1)
    s.update(fresh)
    got = s.pick("1.1.1.1", 1, VIP)
    assert got is fresh[1]


# --------------------------------------------------------------------------- wrr


def test_wrr_kernel_interleaving_4_3_2() -> None:
    # di = gcd = 1, mw = 4, cw starts at 4:
    #   cw=4: a | wrap cw=3: a b | wrap cw=2: a b c | wrap cw=1: a b c | wrap cw=0 -> 4: a ...
    expected = ["a", "a", "b", "a", "b", "c", "a", "b", "c"]
    s = sched("wrr", dests(4, 3, 2))
    assert picks(s, 9) == expected
    assert picks(s, 9) == expected


def test_wrr_gcd_step_4_2() -> None:
    # di = 2, mw = 4 - (2 - 1) = 3: cw=3: a | wrap cw=1: a b | wrap cw=-1 -> 3: a ...
    assert picks(sched("wrr", dests(4, 2)), 6) == ["a", "a", "b", "a", "a", "b"]


def test_wrr_skips_zero_weight() -> None:
    # di = 2, mw = 3: cw=3: a | cw=1: a c | ...
    assert picks(sched("wrr", dests(4, 0, 2)), 6) == ["a", "a", "c", "a", "a", "c"]


def test_wrr_equal_weights_is_rr() -> None:
    assert picks(sched("wrr", dests(3, 3, 3)), 6) == ["a", "b", "c", "a", "b", "c"]


def test_wrr_update_rewinds_to_head_and_keeps_cw() -> None:
    s = sched("wrr", dests(4, 3, 2))
    assert picks(s, 3) == ["a", "a", "b"]  # now cw = 3, position b
    s.update(dests(4, 3, 2, 3))  # changed: back to the head, cw stays 3
    assert picks(s, 4) == ["a", "b", "d", "a"]


def test_wrr_update_clamps_cw_to_new_max() -> None:
    s = sched("wrr", dests(8, 1))
    assert picks(s, 1) == ["a"]  # cw = 8
    s.update(dests(2, 1))  # mw = 2 < cw: cw = 2
    assert picks(s, 3) == ["a", "a", "b"]


def test_wrr_update_aligns_cw_to_gcd() -> None:
    s = sched("wrr", dests(5, 1))
    assert picks(s, 2) == ["a", "a"]  # cw = 4
    s.update(dests(6, 2))  # di = 2, mw = 5; cw = (4 // 2) * 2 + 1 = 5
    # cw=5: a | wrap cw=3: a | wrap cw=1: a b | wrap cw=-1 -> 5: a
    assert picks(s, 5) == ["a", "a", "a", "b", "a"]


# --------------------------------------------------------------------------- lc / wlc / sed / nq

Row = list[tuple[int, int, int]]  # (weight, active, inactive) per destination


def counters(rows: Row) -> list[Destination]:
    ds = dests(*(w for w, _, _ in rows))
    for d, (_, active, inactive) in zip(ds, rows, strict=True):
        d.active, d.inactive = active, inactive
    return ds


@pytest.mark.parametrize(
    ("name", "rows", "expected"),
    [
        # lc: least 256*A + I, weight only excludes 0
        ("lc", [(1, 0, 0), (1, 0, 0)], "a"),  # tie keeps the earlier
        ("lc", [(1, 1, 0), (1, 0, 255)], "b"),  # 256 > 255
        ("lc", [(1, 1, 0), (1, 0, 256)], "a"),  # 256 == 256: tie
        ("lc", [(1, 0, 5), (9, 0, 6), (1, 0, 4)], "c"),  # weight ignored
        ("lc", [(0, 0, 0), (1, 3, 7)], "b"),  # weight 0 skipped
        # wlc: least (256*A + I) / W by cross-multiplication
        ("wlc", [(1, 1, 0), (2, 1, 0)], "b"),  # 256/1 > 256/2
        ("wlc", [(1, 1, 0), (2, 2, 0)], "a"),  # 256/1 == 512/2: tie
        ("wlc", [(2, 2, 0), (1, 1, 0)], "a"),
        ("wlc", [(3, 1, 10), (1, 0, 100)], "a"),  # 266/3 < 100/1
        ("wlc", [(3, 1, 60), (1, 0, 100)], "b"),  # 316/3 > 100/1
        ("wlc", [(1, 0, 0), (4, 0, 0)], "a"),  # 0 == 0: tie
        ("wlc", [(0, 0, 0), (1, 5, 0)], "b"),
        # sed: least (A + 1) / W, inactive ignored
        ("sed", [(1, 0, 0), (2, 0, 0)], "b"),  # 1/1 > 1/2
        ("sed", [(1, 0, 0), (2, 1, 0)], "a"),  # 1/1 == 2/2: tie
        ("sed", [(1, 0, 0), (3, 1, 0)], "b"),  # 1/1 > 2/3
        ("sed", [(1, 0, 1000), (1, 1, 0)], "a"),  # 1 < 2 whatever the inactive count
        ("sed", [(0, 0, 0), (1, 9, 0)], "b"),
        # nq: first idle (A == 0) available destination, else sed
        ("nq", [(1, 2, 0), (1, 0, 0), (1, 0, 0)], "b"),
        ("nq", [(10, 1, 0), (1, 0, 50)], "b"),  # idle wins although sed prefers a
        ("nq", [(1, 2, 0), (2, 3, 0)], "b"),  # no idle: 3/1 > 4/2
        ("nq", [(2, 3, 0), (1, 2, 0)], "a"),  # 4/2 < 3/1
        ("nq", [(1, 1, 0), (2, 3, 0)], "a"),  # 2/1 == 4/2: tie
        ("nq", [(0, 0, 0), (1, 1, 0)], "b"),  # idle but weight 0
    ],
)
def test_connection_schedulers(name: str, rows: Row, expected: str) -> None:
    assert name_of(sched(name, counters(rows)).pick("1.2.3.4", 1, VIP)) == expected


def test_connection_schedulers_read_counters_live() -> None:
    ds = dests(1, 1)
    s = sched("lc", ds)
    assert name_of(s.pick("1.2.3.4", 1, VIP)) == "a"
    ds[0].active += 1
    assert name_of(s.pick("1.2.3.4", 1, VIP)) == "b"
    ds[1].active += 1
    ds[1].inactive += 1
    assert name_of(s.pick("1.2.3.4", 1, VIP)) == "a"


# --------------------------------------------------------------------------- sh


def sh_bucket(fold: int, port: int = 0) -> int:
    """hash_32(port + fold, 8): top 8 bits of (port + fold) * 0x61C88647 mod 2**32."""
    return (((port + fold) & 0xFFFFFFFF) * 0x61C88647 & 0xFFFFFFFF) >> 24


def test_sh_hash_values() -> None:
    assert sh_bucket(0x0A000001) == 39  # 10.0.0.1
    assert sh_bucket(0xC0A8014D) == 144  # 192.168.1.77
    assert sh_bucket(0x0A000001, 40000) == 203
    assert sh_bucket(0x20010DB8 ^ 0 ^ 0 ^ 1) == 63  # 2001:db8::1 folded


@pytest.mark.parametrize(
    ("weights", "src", "port", "sh_port", "expected"),
    [
        # equal weights: bucket i belongs to destination i mod n
        ([1, 1, 1, 1], "10.0.0.1", 1, False, "d"),  # bucket 39
        ([1, 1, 1, 1], "192.168.1.77", 1, False, "a"),  # bucket 144
        ([1, 1, 1, 1], "2001:db8::1", 1, False, "d"),  # bucket 63
        ([1, 1, 1, 1], "10.0.0.1", 40000, True, "d"),  # bucket 203
        ([1, 1, 1], "10.0.0.1", 40000, True, "c"),  # bucket 203
        # weights 3,2,1: buckets run a a a b b c, repeating
        ([3, 2, 1], "10.0.0.1", 1, False, "b"),  # 39 % 6 == 3
        ([3, 2, 1], "192.168.1.77", 1, False, "a"),  # 144 % 6 == 0
        # a weight-0 destination still owns one bucket per round: its sources get nothing
        ([0, 1], "10.0.0.1", 1, False, "b"),  # bucket 39 (odd)
        ([0, 1], "192.168.1.77", 1, False, None),  # bucket 144 (even) -> a, unavailable
    ],
)
def test_sh_bucket_owner(
    weights: list[int], src: str, port: int, sh_port: bool, expected: str | None
) -> None:
    s = sched("sh", dests(*weights), sh_port=sh_port)
    assert name_of(s.pick(src, port, VIP)) == expected


def test_sh_same_source_same_destination() -> None:
    s = sched("sh", dests(1, 1, 1, 1, 1))
    for ip, _ in random_sources(300):
        first = s.pick(ip, 1000, VIP)
        assert all(s.pick(ip, p, "10.96.7.7") is first for p in (1, 2, 65535))


def test_sh_port_flag_spreads_one_source() -> None:
    s = sched("sh", dests(1, 1, 1, 1), sh_port=True)
    assert len({name_of(s.pick("10.1.2.3", p, VIP)) for p in range(1000, 1100)}) == 4


def test_sh_spreads_by_weight() -> None:
    s = sched("sh", dests(3, 2, 1))
    sources = random_sources(10_000)
    counts = Counter(name_of(s.pick(ip, port, VIP)) for ip, port in sources)
    assert_shares(counts, {"a": 3 / 6, "b": 2 / 6, "c": 1 / 6}, len(sources))


def test_sh_rejects_bad_address() -> None:
    s = sched("sh", dests(1))
    with pytest.raises(ValueError, match="invalid IP"):
        s.pick("not-an-ip", 1, VIP)


# --------------------------------------------------------------------------- dh


@pytest.mark.parametrize(
    ("vip", "expected"),
    [
        ("10.0.0.1", "a"),  # 0x0A000001 * 2654435761 & 255 == 177; 177 % 3 == 0
        ("192.168.1.77", "b"),  # 61 % 3 == 1
        ("2001:db8::1", "c"),  # fold 0x20010DB9 -> 233; 233 % 3 == 2
    ],
)
def test_dh_bucket_owner(vip: str, expected: str) -> None:
    assert (0x0A000001 * 2654435761) & 255 == 177
    s = sched("dh", dests(5, 1, 1))  # weights are not used by dh
    for src, port in random_sources(50):
        assert name_of(s.pick(src, port, vip)) == expected


def test_dh_unavailable_owner_gives_none() -> None:
    s = sched("dh", dests(0, 1, 1))
    assert s.pick("1.2.3.4", 1, "10.0.0.1") is None  # bucket 177 -> a


# --------------------------------------------------------------------------- mh


def mh_counts(s: Scheduler, sources: list[tuple[str, int]]) -> Counter[str | None]:
    return Counter(name_of(s.pick(ip, port, VIP)) for ip, port in sources)


def test_mh_table_is_balanced_exactly() -> None:
    """With equal weights each destination claims one slot per round, so slot counts differ
    by at most one; with weights 2:1 the heavier takes two slots per round."""
    s = MaglevHash(table_size=4093)
    s.update(dests(1, 1, 1, 1, 1))
    slots = Counter(s._table)
    assert max(slots.values()) - min(slots.values()) <= 1
    assert sum(slots.values()) == 4093
    s.update(dests(2, 1))
    slots = Counter(s._table)
    assert slots[0] == 2729 and slots[1] == 1364  # 1364 rounds of a a b, then a


def test_mh_same_source_same_destination_across_instances() -> None:
    one = sched("mh", dests(1, 1, 1, 1))
    two = sched("mh", dests(1, 1, 1, 1))
    for ip, port in random_sources(300):
        assert name_of(one.pick(ip, port, VIP)) == name_of(two.pick(ip, port, "10.96.1.1"))


def test_mh_port_flag() -> None:
    with_port = sched("mh", dests(1, 1, 1, 1))  # kube-proxy's setting (mh-port)
    assert len({name_of(with_port.pick("10.1.2.3", p, VIP)) for p in range(1000, 1100)}) == 4
    without = sched("mh", dests(1, 1, 1, 1), mh_port=False)
    assert len({name_of(without.pick("10.1.2.3", p, VIP)) for p in range(1000, 1100)}) == 1


def test_mh_spreads_evenly() -> None:
    sources = random_sources(10_000)
    counts = mh_counts(sched("mh", dests(1, 1, 1, 1, 1)), sources)
    assert_shares(counts, dict.fromkeys("abcde", 1 / 5), len(sources))


def test_mh_spreads_by_weight() -> None:
    sources = random_sources(10_000)
    counts = mh_counts(sched("mh", dests(2, 1, 1)), sources)
    assert_shares(counts, {"a": 1 / 2, "b": 1 / 4, "c": 1 / 4}, len(sources))


def test_mh_removal_moves_about_one_nth() -> None:
    n = 5
    ds = dests(*[1] * n)
    s = sched("mh", ds)
    sources = random_sources(10_000)
    before = [s.pick(ip, port, VIP) for ip, port in sources]
    s.update(ds[:2] + ds[3:])  # remove c
    after = [s.pick(ip, port, VIP) for ip, port in sources]
    moved = sum(b is not a for b, a in zip(before, after, strict=True))
    assert moved / len(sources) < 1 / n + 0.1
    assert all(a is not ds[2] and a is not None for a in after)


def test_mh_drained_destination_keeps_its_slots() -> None:
    """Weight 0 after a positive weight keeps the destination's table slots (its last
    non-zero weight is used): its sources get nothing and nobody else moves."""
    ds = dests(1, 1, 1)
    s = sched("mh", ds)
    sources = random_sources(2_000)
    before = [name_of(s.pick(ip, port, VIP)) for ip, port in sources]
    ds[1].weight = 0
    s.update(ds)
    after = [name_of(s.pick(ip, port, VIP)) for ip, port in sources]
    assert after == [None if b == "b" else b for b in before]


def test_mh_added_with_weight_zero_takes_no_slots() -> None:
    s = sched("mh", dests(1, 0))
    assert set(mh_counts(s, random_sources(500))) == {"a"}


@pytest.mark.parametrize("size", [0, 1, 4, 4095, 131101])
def test_mh_table_size_must_be_a_supported_prime(size: int) -> None:
    with pytest.raises(ValueError, match="prime"):
        make_scheduler("mh", mh_table_size=size)


def test_mh_small_table_and_too_many_destinations() -> None:
    s = make_scheduler("mh", mh_table_size=7)
    s.update(dests(1, 1, 1))
    assert {name_of(s.pick(ip, p, VIP)) for ip, p in random_sources(200)} == {"a", "b", "c"}
    with pytest.raises(ValueError, match="do not fit"):
        s.update([Destination(f"10.0.1.{i}", 80) for i in range(8)])


# --------------------------------------------------------------------------- parse_weights


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("   ", ()),
        ("web-0=3", (("web-0", 3),)),
        ("web-0=3,10.0.0.7=0", (("web-0", 3), ("10.0.0.7", 0))),
        (" web-0 = 3 , fd00::7=2 ,", (("web-0", 3), ("fd00::7", 2))),
        ("a=65535", (("a", 65535),)),
        ("a=007", (("a", 7),)),
    ],
)
def test_parse_weights(text: str, expected: tuple[tuple[str, int], ...]) -> None:
    assert parse_weights(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web-0", "missing '='"),
        ("web-0=1,web-1", "missing '='"),
        ("=3", "empty pod name"),
        ("web 0=3", "whitespace"),
        ("web-0=-1", "negative"),
        ("web-0=1.5", "not an integer"),
        ("web-0=", "not an integer"),
        ("web-0=x", "not an integer"),
        ("web-0=+2", "not an integer"),
        ("web-0=1=2", "not an integer"),
        ("web-0=65536", "exceeds 65535"),
        ("web-0=1" + "0" * 5000, "exceeds 65535"),
        ("web-0=1,web-0=2", "duplicate"),
    ],
)
def test_parse_weights_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_weights(text)
