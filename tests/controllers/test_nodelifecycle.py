"""Pure rules of the node lifecycle controller."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.controllers.nodelifecycle import (
    NOT_READY,
    UNREACHABLE,
    last_sign_of_life,
    lifecycle_taints,
    parse_time,
    unknown_conditions,
)


def node(*conds: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "n"}, "status": {"conditions": list(conds)}}


@pytest.mark.parametrize(("lease_time", "heartbeat", "want"), [
    ("2026-11-22T10:00:05.123456Z", "2026-11-22T10:00:01Z", "2026-11-22T10:00:05.123456Z"),
    ("2026-11-22T10:00:01.000000Z", "2026-11-22T10:00:09Z", "2026-11-22T10:00:09Z"),
    (None, "2026-11-22T10:00:09Z", "2026-11-22T10:00:09Z"),
    ("2026-11-22T10:00:01.5Z", None, "2026-11-22T10:00:01.5Z"),
    (None, None, None),
], ids=["lease newer", "heartbeat newer", "no lease", "no heartbeat", "nothing"])
def test_last_sign_of_life_is_the_newest(lease_time: str | None, heartbeat: str | None,
                                         want: str | None) -> None:
    lease = {"spec": {"renewTime": lease_time}} if lease_time else None
    conds = [{"type": "Ready", "status": "True", "lastHeartbeatTime": heartbeat}] \
        if heartbeat else []
    assert last_sign_of_life(node(*conds), lease) == parse_time(want)


def test_conditions_become_unknown_keeping_transition_times_of_unknown_ones() -> None:
    out = unknown_conditions(node(
        {"type": "Ready", "status": "True", "lastTransitionTime": "old"},
        {"type": "MemoryPressure", "status": "Unknown", "lastTransitionTime": "older"}),
        "now")
    assert [(c["type"], c["status"], c["reason"], c["lastTransitionTime"]) for c in out] == [
        ("Ready", "Unknown", "NodeStatusUnknown", "now"),
        ("MemoryPressure", "Unknown", "NodeStatusUnknown", "older")]
    assert out[0]["message"] == "Kubelet stopped posting node status."


def test_condition_taints_are_added_once_swapped_and_removed() -> None:
    other = {"key": "dedicated", "effect": "NoSchedule", "value": "x"}
    once = lifecycle_taints([other], UNREACHABLE, "now")
    assert once == [other, {"key": UNREACHABLE, "effect": "NoSchedule", "timeAdded": "now"},
                    {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "now"}]
    assert lifecycle_taints(once, UNREACHABLE, "later") == once
    swapped = lifecycle_taints(once, NOT_READY, "later")
    assert swapped == [other, {"key": NOT_READY, "effect": "NoSchedule", "timeAdded": "later"},
                       {"key": NOT_READY, "effect": "NoExecute", "timeAdded": "later"}]
    assert lifecycle_taints(swapped, None, "end") == [other]
