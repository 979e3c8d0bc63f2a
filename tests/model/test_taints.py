"""Toleration matching, the default tolerations and eviction times."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.model.taints import (
    NOT_READY,
    UNREACHABLE,
    add_default_tolerations,
    eviction_time,
    tolerates,
    untolerated,
)

TAINT = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}


@pytest.mark.parametrize(("toleration", "want"), [
    ({"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}, True),
    ({"key": "dedicated", "value": "db"}, True),  # Equal by default, any effect
    ({"key": "dedicated", "value": "web"}, False),
    ({"key": "dedicated", "operator": "Exists"}, True),
    ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),
    ({"key": "other", "operator": "Exists"}, False),
    ({"operator": "Exists"}, True),  # empty key + Exists tolerates everything
    ({"operator": "Exists", "effect": "NoExecute"}, False),
    ({"value": "db"}, False),  # an empty key needs Exists
])
def test_tolerates(toleration: dict[str, Any], want: bool) -> None:
    assert tolerates(toleration, TAINT) is want


def test_untolerated_only_counts_the_given_effects() -> None:
    soft = {"key": "soft", "effect": "PreferNoSchedule"}
    assert untolerated([], [TAINT, soft]) == [TAINT]
    assert untolerated([{"key": "dedicated", "operator": "Exists"}], [TAINT, soft]) == []


def test_default_tolerations_are_added_unless_already_tolerated() -> None:
    spec: dict[str, Any] = {}
    add_default_tolerations(spec)
    assert [(t["key"], t["tolerationSeconds"]) for t in spec["tolerations"]] == [
        (NOT_READY, 300), (UNREACHABLE, 300)]
    everything: dict[str, Any] = {"tolerations": [{"operator": "Exists"}]}
    add_default_tolerations(everything)
    assert everything["tolerations"] == [{"operator": "Exists"}]
    add_default_tolerations(spec)  # idempotent
    assert len(spec["tolerations"]) == 2


def no_exec(key: str, added: str | None = "2026-11-22T10:00:00Z") -> dict[str, Any]:
    t = {"key": key, "effect": "NoExecute"}
    if added:
        t["timeAdded"] = added
    return t


T0 = 1795341600.0  # 2026-11-22T10:00:00Z


def test_eviction_time() -> None:
    now = T0 + 5
    exists = {"operator": "Exists", "effect": "NoExecute"}
    assert eviction_time([], [TAINT], now) is None  # no NoExecute taint
    assert eviction_time([], [no_exec("a")], now) == now  # not tolerated: at once
    assert eviction_time([{**exists, "key": "a"}], [no_exec("a")], now) is None  # for ever
    limited = {**exists, "key": "a", "tolerationSeconds": 60}
    assert eviction_time([limited], [no_exec("a")], now) == T0 + 60
    # the shortest of the tolerations used; an unlimited one does not lengthen it
    assert eviction_time([limited, {**exists, "key": "a"}], [no_exec("a")], now) == T0 + 60
    # one untolerated taint among tolerated ones evicts at once
    assert eviction_time([limited], [no_exec("a"), no_exec("b")], now) == now
    # without timeAdded the time counts from now
    assert eviction_time([limited], [no_exec("a", None)], now) == now + 60
    # negative seconds count as zero
    assert eviction_time([{**limited, "tolerationSeconds": -5}], [no_exec("a")], now) == T0
