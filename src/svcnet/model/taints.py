"""Taints and tolerations: matching, the default tolerations every pod gets, and when a
``NoExecute`` taint evicts a pod.

Semantics follow upstream ``v1.Toleration.ToleratesTaint`` and the taint eviction
controller:

* a toleration matches a taint when its ``effect`` is empty or equal, its ``key`` is empty
  (with ``operator: Exists``: every key) or equal, and either ``operator: Exists`` or
  (``Equal``, the default) its ``value`` equals the taint's;
* the DefaultTolerationSeconds admission plugin gives a new pod
  ``node.kubernetes.io/not-ready`` and ``node.kubernetes.io/unreachable`` ``NoExecute``
  tolerations for 300 s unless it already tolerates those taints;
* a pod on a node with ``NoExecute`` taints is evicted at once if one of them is not
  tolerated; otherwise after the shortest ``tolerationSeconds`` among the tolerations
  used (never if none of them has one), counted from the taint's ``timeAdded`` (upstream
  counts from when the controller first saw the pod on the tainted node; the taint's time
  gives the same answer for pods already there and survives a controller restart).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from svcnet._util import rfc3339

Obj = dict[str, Any]

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
NO_EXECUTE = "NoExecute"
NO_SCHEDULE = "NoSchedule"
DEFAULT_TOLERATION_SECONDS = 300


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Whether ``toleration`` tolerates ``taint``."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if not key:
        return False  # an empty key is only valid with Exists
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def tolerated(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def untolerated(tolerations: Iterable[Mapping[str, Any]], taints: Iterable[Mapping[str, Any]],
                effects: frozenset[str] = frozenset({NO_SCHEDULE, NO_EXECUTE})
                ) -> list[Mapping[str, Any]]:
    """The taints with one of ``effects`` that no toleration tolerates."""
    tols = list(tolerations)
    return [t for t in taints if t.get("effect") in effects and not tolerated(tols, t)]


def add_default_tolerations(spec: Obj) -> None:
    """DefaultTolerationSeconds: the not-ready and unreachable ``NoExecute`` tolerations
    (300 s), each unless the pod already tolerates that taint."""
    tols = spec.get("tolerations")
    if not isinstance(tols, list):
        tols = []
    added = []
    for key in (NOT_READY, UNREACHABLE):
        if not tolerated(tols, {"key": key, "effect": NO_EXECUTE}):
            added.append({"key": key, "operator": "Exists", "effect": NO_EXECUTE,
                          "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
    if added:
        spec["tolerations"] = tols + added


# When the caller first saw a taint that has no timeAdded (None: not known).
TaintClock = Callable[[Mapping[str, Any]], float | None]


def eviction_time(tolerations: Iterable[Mapping[str, Any]],
                  taints: Iterable[Mapping[str, Any]], now: float,
                  seen_since: TaintClock | None = None) -> float | None:
    """When a pod with ``tolerations`` on a node with ``taints`` is to be evicted (Unix
    time; ``now`` if at once), or ``None`` for never (no ``NoExecute`` taint, or only ones
    tolerated without a time limit). A taint's time counts from its ``timeAdded``; for
    one without, from ``seen_since(taint)`` if that knows it, else from ``now``."""
    tols = list(tolerations)
    due: float | None = None
    for taint in taints:
        if taint.get("effect") != NO_EXECUTE:
            continue
        matching = [t for t in tols if tolerates(t, taint)]
        if not matching:
            return now
        limits = [t["tolerationSeconds"] for t in matching
                  if t.get("tolerationSeconds") is not None]
        if not limits:
            continue  # tolerated for ever
        seconds = min(max(int(s), 0) for s in limits)
        added = rfc3339.to_unix(taint.get("timeAdded"))
        if added is None and seen_since is not None:
            added = seen_since(taint)
        when = (now if added is None else added) + seconds
        due = when if due is None else min(due, when)
    return due
