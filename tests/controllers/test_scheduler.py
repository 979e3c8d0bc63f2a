"""Node choice: readiness, schedulability, nodeSelector, spreading, and the message
when no node fits."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.controllers.scheduler import choose_node, needs_scheduling


def node(name: str, ready: bool = True, unschedulable: bool = False,
         **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"unschedulable": unschedulable} if unschedulable else {},
            "status": {"conditions": [{"type": "Ready",
                                       "status": "True" if ready else "False"}]}}


def pod(**selector: str) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"nodeSelector": selector} if selector else {}}


@pytest.mark.parametrize(
    ("p", "nodes", "load", "want"),
    [
        (pod(), [node("a"), node("b")], {"a": 2, "b": 1}, ("b", "")),
        (pod(), [node("a"), node("b")], {}, ("a", "")),
        (pod(), [node("a", ready=False), node("b")], {"b": 9}, ("b", "")),
        (pod(disk="ssd"), [node("a"), node("b", disk="ssd")], {"b": 5}, ("b", "")),
        (pod(), [node("a", ready=False), node("b", ready=False)], {},
         ("", "0/2 nodes are available: 2 node(s) were not ready.")),
        (pod(), [node("a", unschedulable=True), node("b", ready=False)], {},
         ("", "0/2 nodes are available: 1 node(s) were not ready, "
              "1 node(s) were unschedulable.")),
        (pod(), [], {}, ("", "0/0 nodes are available.")),
    ],
    ids=["least-loaded", "tie-by-name", "skip-not-ready", "node-selector", "none-ready",
         "mixed-reasons", "no-nodes"],
)
def test_choose_node(p: dict[str, Any], nodes: list[dict[str, Any]], load: dict[str, int],
                     want: tuple[str, str]) -> None:
    assert choose_node(p, nodes, load) == want


@pytest.mark.parametrize(
    ("p", "want"),
    [({"spec": {}}, True), ({"spec": {"nodeName": "a"}}, False),
     ({"spec": {"schedulerName": "other"}}, False),
     ({"spec": {}, "metadata": {"deletionTimestamp": "x"}}, False),
     ({"spec": {}, "status": {"phase": "Succeeded"}}, False)],
    ids=["unassigned", "assigned", "other-scheduler", "deleting", "finished"],
)
def test_needs_scheduling(p: dict[str, Any], want: bool) -> None:
    assert needs_scheduling(p) is want
