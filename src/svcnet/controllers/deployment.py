"""The Deployment controller: ReplicaSets per pod template, rolled by strategy.

Pure core (tested with tables): the pod-template hash, maxSurge/maxUnavailable
resolution, which ReplicaSet is new, how many replicas the new one may have, which old
ones shrink and by how much (rolling update, proportional scaling, recreate), revision
annotations, history clean-up, and the status and conditions a Deployment reports. The
:class:`DeploymentController` reads the informer caches and writes what differs, in the
order upstream's deployment controller does (``syncDeployment``).

The pod-template hash: upstream hashes Go's printed form of the ``PodTemplateSpec``
(``DeepHashObject``), which depends on Go struct layout and cannot be reproduced from JSON.
svcnet hashes the canonical JSON of the template (sorted keys, no spaces) instead, then
follows upstream exactly: FNV-32a, the collision count appended as 8 little-endian bytes,
the decimal digits of the 32-bit sum mapped through ``SafeEncodeString``'s alphabet. Hash
values therefore differ from a real cluster's for the same template, but have the same
shape (up to 10 characters of ``bcdfghjklmnpqrstvwxz2456789``) and the same stability.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from svcnet.client.api import MERGE_PATCH, APIClient
from svcnet.client.events import EventRecorder
from svcnet.controllers.base import Controller
from svcnet.controllers.replicaset import (
    INDEX_CONTROLLER,
    PODS,
    REPLICASETS,
    Claimer,
    WrittenVersions,
    check_can_adopt,
    controller_ref,
    format_time,
    meta,
    now_utc,
    owner_reference,
    parse_time,
    spec_replicas,
)
from svcnet.informer.cache import by_controller_uid, object_key
from svcnet.informer.shared import InformerFactory
from svcnet.model import errors, kinds
from svcnet.model.selectors import LabelSelector, selector_from_label_selector_object

Obj = dict[str, Any]
RS = Mapping[str, Any]

DEPLOYMENTS = kinds.require("apps", "deployments")

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: Deployment annotations never copied to ReplicaSets.
SKIPPED_ANNOTATIONS = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                                 MAX_REPLICAS, ROLLBACK_TO})
MAX_REVISION_HISTORY_CHARS = 2000

# Condition types and reasons (upstream deploymentutil).
AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
FAILED_RS_CREATE = "ReplicaSetCreateError"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# --- the pod-template hash ------------------------------------------------------------------


def fnv32a(data: bytes) -> int:
    """The 32-bit FNV-1a hash of ``data``."""
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode_string(s: str) -> str:
    """Each character mapped into the no-vowel alphabet (upstream ``SafeEncodeString``)."""
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in s)


def normalized(value: Any) -> Any:
    """``value`` with null, empty-object and empty-list fields dropped at every depth.

    A typed API server cannot tell ``"creationTimestamp": null`` or ``"labels": {}`` from
    an absent field (clients such as kubectl send both when they echo a template back);
    comparing and hashing the normalized form gives the same answers it would."""
    if isinstance(value, dict):
        out = {k: normalized(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def compute_hash(template: Mapping[str, Any], collision_count: int | None) -> str:
    """The ``pod-template-hash`` of ``template`` (see the module docstring)."""
    data = json.dumps(normalized(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0"
    return safe_encode_string(str(fnv32a(data)))


def template_without_hash(template: Mapping[str, Any]) -> Obj:
    """The normalized template without the ``pod-template-hash`` label."""
    t: Obj = normalized(copy.deepcopy(dict(template)))
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return dict(normalized(t))


def equal_ignore_hash(t1: Mapping[str, Any], t2: Mapping[str, Any]) -> bool:
    """Templates equal apart from the ``pod-template-hash`` label (``EqualIgnoreHash``)."""
    return template_without_hash(t1) == template_without_hash(t2)


# --- strategy arithmetic -------------------------------------------------------------------


def resolve_int_or_percent(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString (``3`` or ``"25%"``) scaled against ``total``; percentages round up
    or down as asked (``GetScaledValueFromIntOrPercent``)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a "
                         f"percentage: {text!r}")
    pct = int(text[:-1])
    scaled = pct * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def is_rolling(d: Mapping[str, Any]) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") \
        == "RollingUpdate"


def _rolling_params(d: Mapping[str, Any]) -> Mapping[str, Any]:
    ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    return {"maxSurge": ru.get("maxSurge", "25%"),
            "maxUnavailable": ru.get("maxUnavailable", "25%")}


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """(surge, unavailable) for ``desired`` replicas; both zero becomes unavailable 1."""
    surge = resolve_int_or_percent(max_surge, desired, True)
    unavailable = resolve_int_or_percent(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Mapping[str, Any]) -> int:
    if not is_rolling(d):
        return 0
    p = _rolling_params(d)
    return resolve_fenceposts(p["maxSurge"], p["maxUnavailable"], spec_replicas(d))[0]


def max_unavailable(d: Mapping[str, Any]) -> int:
    replicas = spec_replicas(d)
    if not is_rolling(d) or replicas == 0:
        return 0
    p = _rolling_params(d)
    return min(resolve_fenceposts(p["maxSurge"], p["maxUnavailable"], replicas)[1], replicas)


# --- replica set accessors and orderings ------------------------------------------------------


def _status_int(rs: RS, name: str) -> int:
    return int((rs.get("status") or {}).get(name) or 0)


def available(rs: RS) -> int:
    return _status_int(rs, "availableReplicas")


def revision_of(obj: Mapping[str, Any]) -> int:
    """The revision annotation as an int (0 when missing or malformed)."""
    try:
        return int((meta(obj).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _created(rs: RS) -> tuple[dt.datetime, str]:
    t = parse_time(meta(rs).get("creationTimestamp")) or dt.datetime.min.replace(tzinfo=dt.UTC)
    return t, str(meta(rs).get("name", ""))


def by_creation(rses: Iterable[RS]) -> list[RS]:
    """Oldest first, names breaking ties (``ReplicaSetsByCreationTimestamp``)."""
    return sorted(rses, key=_created)


def filter_active(rses: Iterable[RS | None]) -> list[RS]:
    return [rs for rs in rses if rs is not None and spec_replicas(rs) > 0]


def find_new_rs(d: Mapping[str, Any], rses: Iterable[RS]) -> RS | None:
    """The oldest ReplicaSet whose template equals the Deployment's (ignoring the hash)."""
    template = (d.get("spec") or {}).get("template") or {}
    for rs in by_creation(rses):
        if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


def _int_annotation(obj: RS, key: str) -> int | None:
    try:
        return int((meta(obj).get("annotations") or {})[key])
    except (KeyError, ValueError, TypeError):
        return None


def replicas_annotations_need_update(rs: RS, desired: int, max_replicas: int) -> bool:
    ann = meta(rs).get("annotations") or {}
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(max_replicas)


def new_rs_annotations(d: Mapping[str, Any], rs_annotations: Mapping[str, str],
                       new_revision: int, exists: bool) -> tuple[dict[str, str], bool]:
    """The annotations of the new ReplicaSet and whether they changed
    (``SetNewReplicaSetAnnotations``): the Deployment's own annotations copied (except
    revision/replica bookkeeping and last-applied), the revision raised to
    ``new_revision`` (the previous one kept in revision-history), and for a ReplicaSet
    about to be created the desired/max replica annotations."""
    ann = dict(rs_annotations)
    changed = False
    for k, v in (meta(d).get("annotations") or {}).items():
        if k in SKIPPED_ANNOTATIONS or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    old_text = ann.get(REVISION)
    try:
        old = int(old_text) if old_text else 0
    except ValueError:
        return ann, changed
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old_text:
            ann[REVISION_HISTORY] = _append_history(ann.get(REVISION_HISTORY, ""), old_text)
    if not exists:
        replicas = spec_replicas(d)
        ann[DESIRED_REPLICAS] = str(replicas)
        ann[MAX_REPLICAS] = str(replicas + max_surge(d))
        changed = True
    return ann, changed


def _append_history(history: str, old_revision: str) -> str:
    if not history:
        return old_revision
    parts = history.split(",")
    total = len(history) + len(old_revision) + 1
    start = 0
    while total > MAX_REVISION_HISTORY_CHARS and start < len(parts):
        total -= len(parts[start]) + 1
        start += 1
    if total > MAX_REVISION_HISTORY_CHARS:
        return history
    return ",".join([*parts[start:], old_revision])


def build_new_rs(d: Mapping[str, Any], pod_hash: str, replicas: int, revision: int) -> Obj:
    """The ReplicaSet a Deployment creates for its current template."""
    dspec = d.get("spec") or {}
    template = copy.deepcopy(dspec.get("template") or {})
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: pod_hash}
    selector = copy.deepcopy(dspec.get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
    rs: Obj = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{meta(d).get('name')}-{pod_hash}",
                     "namespace": meta(d).get("namespace"),
                     "labels": dict(tmeta["labels"]),
                     "ownerReferences": [owner_reference(d, "apps/v1", "Deployment")]},
        "spec": {"replicas": replicas, "minReadySeconds": int(dspec.get("minReadySeconds") or 0),
                 "selector": selector, "template": template},
    }
    ann, _ = new_rs_annotations(d, {}, revision, exists=False)
    rs["metadata"]["annotations"] = ann
    return rs


# --- rollout planning (pure) ----------------------------------------------------------------

Step = tuple[RS, int]


def new_rs_new_replicas(d: Mapping[str, Any], all_rses: Iterable[RS], new_rs: RS) -> int:
    """How many replicas the new ReplicaSet may have now (``NewRSNewReplicas``)."""
    replicas = spec_replicas(d)
    if not is_rolling(d):
        return replicas
    surge = resolve_int_or_percent(_rolling_params(d)["maxSurge"], replicas, True)
    current = sum(spec_replicas(rs) for rs in all_rses)
    max_total = replicas + surge
    if current >= max_total:
        return spec_replicas(new_rs)
    scale_up = min(max_total - current, replicas - spec_replicas(new_rs))
    return spec_replicas(new_rs) + scale_up


def reconcile_new_rs_target(d: Mapping[str, Any], all_rses: Iterable[RS], new_rs: RS) -> int:
    """The size the new ReplicaSet should be scaled to (``reconcileNewReplicaSet``)."""
    replicas, current = spec_replicas(d), spec_replicas(new_rs)
    if current >= replicas:
        return replicas
    return new_rs_new_replicas(d, all_rses, new_rs)


def _with_replicas(rs: RS, n: int) -> Obj:
    out = dict(rs)
    out["spec"] = {**(rs.get("spec") or {}), "replicas": n}
    return out


def old_rs_scale_down_steps(d: Mapping[str, Any], new_rs: RS, old_rses: Sequence[RS]
                            ) -> list[Step]:
    """Old ReplicaSets to shrink in a rolling update (``reconcileOldReplicaSets``):
    first unhealthy replicas (oldest ReplicaSet first), then available ones down to
    ``replicas - maxUnavailable`` available pods. Steps are (ReplicaSet, new size) in
    the order upstream applies them; one ReplicaSet may appear twice."""
    old_count = sum(spec_replicas(rs) for rs in old_rses)
    if old_count == 0:
        return []
    all_count = old_count + spec_replicas(new_rs)
    min_available = spec_replicas(d) - max_unavailable(d)
    new_unavailable = spec_replicas(new_rs) - available(new_rs)
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return []
    steps: list[Step] = []
    current = {str(meta(rs).get("name")): rs for rs in old_rses}
    cleaned = 0
    for rs in by_creation(old_rses):
        if cleaned >= max_scaled_down:
            break
        n, avail = spec_replicas(rs), available(rs)
        if n == 0 or n == avail:
            continue
        down = min(max_scaled_down - cleaned, n - avail)
        steps.append((rs, n - down))
        current[str(meta(rs).get("name"))] = _with_replicas(rs, n - down)
        cleaned += down
    olds = list(current.values())
    available_count = sum(available(rs) for rs in [*olds, new_rs])
    if available_count <= min_available:
        return steps
    to_scale = available_count - min_available
    scaled = 0
    for rs in by_creation(olds):
        if scaled >= to_scale:
            break
        n = spec_replicas(rs)
        if n == 0:
            continue
        down = min(n, to_scale - scaled)
        steps.append((rs, n - down))
        scaled += down
    return steps


def find_active_or_latest(new_rs: RS | None, old_rses: Sequence[RS]) -> RS | None:
    """The one active ReplicaSet; with none active the new one or the newest old one;
    None when several are active (``FindActiveOrLatest``)."""
    if new_rs is None and not old_rses:
        return None
    newest_first = list(reversed(by_creation(old_rses)))
    active = filter_active([*newest_first, new_rs])
    if not active:
        return new_rs if new_rs is not None else newest_first[0]
    return active[0] if len(active) == 1 else None


def is_saturated(d: Mapping[str, Any], rs: RS | None) -> bool:
    """The ReplicaSet runs the Deployment's full, available, desired count."""
    if rs is None:
        return False
    replicas = spec_replicas(d)
    return (_int_annotation(rs, DESIRED_REPLICAS) == replicas and spec_replicas(rs) == replicas
            and available(rs) == replicas)


def _rs_fraction(rs: RS, d: Mapping[str, Any]) -> int:
    replicas = spec_replicas(d)
    if replicas == 0:
        return -spec_replicas(rs)
    deployment_replicas = replicas + max_surge(d)
    annotated = _int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = _status_int(d, "replicas")
    if annotated == 0:
        return 0
    size = spec_replicas(rs) * deployment_replicas / annotated
    return _round_half_away(size) - spec_replicas(rs)


def _round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def scale_steps(d: Mapping[str, Any], new_rs: RS | None, old_rses: Sequence[RS]
                ) -> list[Step]:
    """Resizes for a scaling event or a paused Deployment (upstream ``scale``): the single
    active ReplicaSet takes the full count; a saturated new one empties the old ones;
    otherwise, for rolling updates, the difference is shared proportionally, largest
    ReplicaSets first, leftovers to the first one."""
    replicas = spec_replicas(d)
    single = find_active_or_latest(new_rs, old_rses)
    if single is not None:
        return [] if spec_replicas(single) == replicas else [(single, replicas)]
    if is_saturated(d, new_rs):
        return [(rs, 0) for rs in filter_active(old_rses)]
    if not is_rolling(d):
        return []
    active = filter_active([*old_rses, new_rs])
    allowed = replicas + max_surge(d) if replicas > 0 else 0
    to_add = allowed - sum(spec_replicas(rs) for rs in active)
    if to_add > 0:  # ReplicaSetsBySizeNewer
        active.sort(key=lambda rs: (-spec_replicas(rs), _neg_created(rs)))
    elif to_add < 0:  # ReplicaSetsBySizeOlder
        active.sort(key=lambda rs: (-spec_replicas(rs), _created(rs)))
    sizes: list[int] = []
    added = 0
    for rs in active:
        proportion = 0
        if to_add != 0 and spec_replicas(rs) != 0 and to_add != added:
            fraction, allowed_left = _rs_fraction(rs, d), to_add - added
            proportion = min(fraction, allowed_left) if to_add > 0 else max(fraction,
                                                                            allowed_left)
        sizes.append(spec_replicas(rs) + proportion)
        added += proportion
    if active and to_add != 0:
        sizes[0] = max(0, sizes[0] + to_add - added)
    return [(rs, n) for rs, n in zip(active, sizes, strict=True)]


def _neg_created(rs: RS) -> tuple[float, tuple[int, ...]]:
    t, name = _created(rs)
    return -t.timestamp(), tuple(-ord(c) for c in name)


def is_scaling_event(d: Mapping[str, Any], rses: Iterable[RS | None]) -> bool:
    """An active ReplicaSet records a different desired count than the Deployment's."""
    replicas = spec_replicas(d)
    for rs in filter_active(rses):
        desired = _int_annotation(rs, DESIRED_REPLICAS)
        if desired is not None and desired != replicas:
            return True
    return False


def rses_to_clean_up(d: Mapping[str, Any], old_rses: Iterable[RS]) -> list[RS]:
    """Old ReplicaSets beyond ``revisionHistoryLimit`` that are empty, settled and not
    being deleted, lowest revision first (``cleanupDeployment``)."""
    limit = (d.get("spec") or {}).get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old_rses if not meta(rs).get("deletionTimestamp")]
    diff = len(alive) - int(limit)
    if diff <= 0:
        return []
    ordered = sorted(alive, key=lambda rs: (revision_of(rs), _created(rs)))
    out = []
    for rs in ordered[:diff]:
        settled = int(meta(rs).get("generation") or 0) <= _status_int(rs, "observedGeneration")
        if _status_int(rs, "replicas") == 0 and spec_replicas(rs) == 0 and settled:
            out.append(rs)
    return out


def old_pods_running(new_rs: RS | None, old_rses: Iterable[RS],
                     pods_by_rs_uid: Mapping[str, Iterable[Mapping[str, Any]]]) -> bool:
    """Recreate waits while old ReplicaSets report pods or own non-terminated pods."""
    if sum(_status_int(rs, "replicas") for rs in old_rses) > 0:
        return True
    new_uid = meta(new_rs).get("uid") if new_rs is not None else None
    for uid, pods in pods_by_rs_uid.items():
        if uid == new_uid:
            continue
        for p in pods:
            if (p.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False


# --- status and conditions (pure) ---------------------------------------------------------------


def new_condition(type_: str, status: str, reason: str, message: str,
                  now: dt.datetime) -> Obj:
    t = format_time(now)
    return {"type": type_, "status": status, "lastUpdateTime": t, "lastTransitionTime": t,
            "reason": reason, "message": message}


def get_condition(status: Mapping[str, Any], type_: str) -> Obj | None:
    for c in status.get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def set_condition(status: Obj, cond: Obj) -> None:
    """Upstream ``SetDeploymentCondition``: no change when status and reason match; the
    transition time is kept when only the reason changes; the condition moves last."""
    cur = get_condition(status, cond["type"])
    if cur is not None and cur.get("status") == cond["status"] and \
            cur.get("reason") == cond["reason"]:
        return
    if cur is not None and cur.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": cur.get("lastTransitionTime")}
    status["conditions"] = [*(c for c in status.get("conditions") or []
                              if c.get("type") != cond["type"]), cond]


def remove_condition(status: Obj, type_: str) -> None:
    conds = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)


def _drop_zero(status: Obj) -> Obj:
    return {k: v for k, v in status.items() if v not in (0, None, [], {}, "")}


def calculate_status(d: Mapping[str, Any], all_rses: list[RS], new_rs: RS | None,
                     now: dt.datetime) -> Obj:
    """Counts summed over the ReplicaSets and the Available condition
    (``calculateStatus``); zero counts are omitted as the API serialises them."""
    avail = sum(available(rs) for rs in all_rses)
    total = sum(spec_replicas(rs) for rs in all_rses)
    old = d.get("status") or {}
    status: Obj = {
        "observedGeneration": int(meta(d).get("generation") or 0),
        "replicas": sum(_status_int(rs, "replicas") for rs in all_rses),
        "updatedReplicas": _status_int(new_rs, "replicas") if new_rs is not None else 0,
        "readyReplicas": sum(_status_int(rs, "readyReplicas") for rs in all_rses),
        "availableReplicas": avail,
        "unavailableReplicas": max(total - avail, 0),
        "collisionCount": old.get("collisionCount"),
        "conditions": [dict(c) for c in old.get("conditions") or []],
    }
    if avail >= spec_replicas(d) - max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MIN_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.",
                                            now))
    return _drop_zero(status)


def has_progress_deadline(d: Mapping[str, Any]) -> bool:
    pds = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return pds is not None and int(pds) != 2**31 - 1


def deployment_complete(d: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    replicas = spec_replicas(d)
    return (int(status.get("updatedReplicas") or 0) == replicas
            and int(status.get("replicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) == replicas
            and int(status.get("observedGeneration") or 0) >= int(meta(d).get("generation") or 0))


def deployment_progressing(d: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    old = d.get("status") or {}

    def g(s: Mapping[str, Any], k: str) -> int:
        return int(s.get(k) or 0)
    return (g(new, "updatedReplicas") > g(old, "updatedReplicas")
            or g(new, "replicas") - g(new, "updatedReplicas")
            < g(old, "replicas") - g(old, "updatedReplicas")
            or g(new, "readyReplicas") > g(old, "readyReplicas")
            or g(new, "availableReplicas") > g(old, "availableReplicas"))


def deployment_timed_out(d: Mapping[str, Any], status: Mapping[str, Any],
                         now: dt.datetime) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    deadline = int((d.get("spec") or {}).get("progressDeadlineSeconds") or 0)
    return since is not None and since + dt.timedelta(seconds=deadline) < now


def replica_failure(all_rses: list[RS], new_rs: RS | None) -> Obj | None:
    """The first ReplicaFailure condition of the new, then the old ReplicaSets, as a
    Deployment condition."""
    ordered = ([new_rs] if new_rs is not None else []) + \
        [rs for rs in all_rses if rs is not new_rs]
    for rs in ordered:
        c = get_condition(rs.get("status") or {}, REPLICA_FAILURE)
        if c is not None:
            t = c.get("lastTransitionTime")
            return {"type": REPLICA_FAILURE, "status": c.get("status"), "lastUpdateTime": t,
                    "lastTransitionTime": t, "reason": c.get("reason"),
                    "message": c.get("message")}
    return None


def rollout_status(d: Mapping[str, Any], all_rses: list[RS], new_rs: RS | None,
                   now: dt.datetime) -> Obj:
    """The status to report while rolling out (``syncRolloutStatus``): counts, Available,
    and Progressing (NewReplicaSetAvailable when complete, ReplicaSetUpdated on progress,
    ProgressDeadlineExceeded past the deadline), plus ReplicaFailure."""
    status = calculate_status(d, all_rses, new_rs, now)
    if not has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
    cur = get_condition(d.get("status") or {}, PROGRESSING)
    complete = (int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
                and cur is not None and cur.get("reason") == NEW_RS_AVAILABLE)
    name = str(meta(new_rs).get("name")) if new_rs is not None else ""
    if has_progress_deadline(d) and not complete:
        if deployment_complete(d, status):
            msg = f'ReplicaSet "{name}" has successfully progressed.' if new_rs is not None \
                else ""
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now))
        elif deployment_progressing(d, status):
            msg = f'ReplicaSet "{name}" is progressing.' if new_rs is not None else \
                "Deployment is progressing."
            cond = new_condition(PROGRESSING, "True", RS_UPDATED, msg, now)
            if cur is not None:
                if cur.get("status") == "True":
                    cond["lastTransitionTime"] = cur.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(d, status, now):
            msg = f'ReplicaSet "{name}" has timed out progressing.'
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, msg, now))
    failure = replica_failure(all_rses, new_rs)
    if failure is not None:
        set_condition(status, failure)
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def paused_condition(d: Mapping[str, Any], now: dt.datetime) -> Obj | None:
    """The Progressing condition a pause/resume calls for, or None (``checkPausedConditions``)."""
    if not has_progress_deadline(d):
        return None
    cond = get_condition(d.get("status") or {}, PROGRESSING)
    if cond is not None and cond.get("reason") == TIMED_OUT:
        return None
    paused_exists = cond is not None and cond.get("reason") == PAUSED
    paused = bool((d.get("spec") or {}).get("paused"))
    if paused and not paused_exists:
        return new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now)
    if not paused and paused_exists:
        return new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now)
    return None


def status_differs(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    return _drop_zero(dict(current or {})) != _drop_zero(dict(desired))


def stuck_requeue_after(d: Mapping[str, Any], status: Mapping[str, Any],
                        now: dt.datetime) -> float | None:
    """Seconds until a rollout in progress would pass its deadline (None: no check due)."""
    if not has_progress_deadline(d):
        return None
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") != RS_UPDATED or deployment_complete(d, status):
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    deadline = int((d.get("spec") or {}).get("progressDeadlineSeconds") or 0)
    return max((since + dt.timedelta(seconds=deadline) - now).total_seconds(), 0.0) + 1.0


def selects_all(d: Mapping[str, Any]) -> bool:
    sel = (d.get("spec") or {}).get("selector")
    return isinstance(sel, dict) and not sel.get("matchLabels") and \
        not sel.get("matchExpressions")


# --- the controller ---------------------------------------------------------------------------


def _replace(target: Obj, new: Mapping[str, Any]) -> None:
    """Make ``target`` (a private copy) hold the server's latest version ``new``."""
    target.clear()
    target.update(copy.deepcopy(dict(new)))


class DeploymentController(Controller):
    """Rolls Deployments out through ReplicaSets."""

    name = "deployment"
    workers = 4

    def __init__(self, client: APIClient, factory: InformerFactory,
                 recorder: EventRecorder) -> None:
        super().__init__(client, recorder)
        self.d_informer = factory.informer(DEPLOYMENTS)
        self.rs_informer = factory.informer(REPLICASETS)
        self.pod_informer = factory.informer(PODS)
        self.rs_informer.add_indexer(INDEX_CONTROLLER, by_controller_uid)
        self.written = WrittenVersions()
        self.pod_informer.add_indexer(INDEX_CONTROLLER, by_controller_uid)
        self.d_informer.add_handlers(self.enqueue, lambda _o, n: self.enqueue(n),
                                     self.enqueue)
        self.rs_informer.add_handlers(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pod_informer.add_handlers(on_delete=self._pod_deleted)

    # --- handlers ----------------------------------------------------------------------

    def _owner_key(self, obj: Mapping[str, Any], ref: Mapping[str, Any] | None) -> str | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.d_informer.indexer.get_by(meta(obj).get("namespace"), ref.get("name", ""))
        if d is None or meta(d).get("uid") != ref.get("uid"):
            return None
        return object_key(d)

    def _enqueue_matching(self, rs: Mapping[str, Any]) -> None:
        labels = meta(rs).get("labels") or {}
        for d in self.d_informer.indexer.by_index("namespace", meta(rs).get("namespace", "")):
            try:
                sel = selector_from_label_selector_object((d.get("spec") or {}).get("selector"))
            except errors.APIError:
                continue
            if not sel.empty and sel.matches(labels):
                self.enqueue(d)

    def _rs_added(self, rs: Obj) -> None:
        ref = controller_ref(rs)
        if ref is None:
            if not meta(rs).get("deletionTimestamp"):
                self._enqueue_matching(rs)
            return
        key = self._owner_key(rs, ref)
        if key is not None:
            self.enqueue_key(key)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            key = self._owner_key(old, old_ref)
            if key is not None:
                self.enqueue_key(key)
        if new_ref is not None:
            key = self._owner_key(new, new_ref)
            if key is not None:
                self.enqueue_key(key)
            return
        if meta(old).get("labels") != meta(new).get("labels") or old_ref != new_ref:
            self._enqueue_matching(new)

    def _rs_deleted(self, rs: Obj) -> None:
        self.written.forget(object_key(rs))
        key = self._owner_key(rs, controller_ref(rs))
        if key is not None:
            self.enqueue_key(key)

    def _pod_deleted(self, pod: Obj) -> None:
        """Recreate waits for old pods to vanish: re-check their Deployment."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_informer.indexer.get_by(meta(pod).get("namespace"), ref.get("name", ""))
        if rs is None or meta(rs).get("uid") != ref.get("uid"):
            return
        key = self._owner_key(rs, controller_ref(rs))
        d = self.d_informer.indexer.get(key) if key else None
        if d is not None and not is_rolling(d):
            self.enqueue_key(object_key(d))

    # --- sync --------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        """One pass of upstream's ``syncDeployment`` for one Deployment."""
        cached = self.d_informer.indexer.get(key)
        if cached is None:
            self.written.forget(key)
            return
        if self.written.stale(cached):
            return
        d = copy.deepcopy(cached)
        if selects_all(d):
            self.recorder.event(d, "Warning", "SelectingAll", "This deployment is selecting "
                                "all pods. A non-empty selector is required.")
            gen = int(meta(d).get("generation") or 0)
            if int((d.get("status") or {}).get("observedGeneration") or 0) < gen:
                d.setdefault("status", {})["observedGeneration"] = gen
                await self._update_status(d)
            return
        try:
            selector = selector_from_label_selector_object((d.get("spec") or {}).get("selector"))
        except errors.APIError as e:
            self.log.warning("deployment %s: bad selector: %s", key, e.message)
            return
        rses = await self._claim_replica_sets(d, selector)
        if any(self.written.stale(rs) for rs in rses):
            return
        if meta(d).get("deletionTimestamp"):
            new_rs, olds = await self._all_rses(d, rses, create=False)
            await self._sync_status(d, [*olds, *([new_rs] if new_rs else [])], new_rs)
            return
        await self._check_paused(d)
        if (d.get("spec") or {}).get("paused"):
            await self._sync_scale(d, rses)
            return
        new_rs, olds = await self._all_rses(d, rses, create=False)
        if new_rs is not None:
            rses = [new_rs if meta(r).get("name") == meta(new_rs).get("name") else r
                    for r in rses]
        if is_scaling_event(d, [*olds, new_rs]):
            await self._sync_scale(d, rses)
            return
        if is_rolling(d):
            await self._rollout_rolling(d, rses)
        else:
            await self._rollout_recreate(d, rses)

    async def _claim_replica_sets(self, d: Obj, selector: LabelSelector) -> list[RS]:
        ns = meta(d).get("namespace", "")
        candidates = self.rs_informer.indexer.by_index("namespace", ns)
        claimer = Claimer(self.client, REPLICASETS, d, "apps/v1", "Deployment", selector,
                          lambda: check_can_adopt(self.client, DEPLOYMENTS, d))
        return await claimer.claim(candidates)

    # --- the new ReplicaSet and revisions --------------------------------------------------

    async def _all_rses(self, d: Obj, rses: list[RS], create: bool
                        ) -> tuple[RS | None, list[RS]]:
        """(new ReplicaSet or None, old ReplicaSets), syncing revision annotations and
        creating the new ReplicaSet when ``create`` (``getAllReplicaSetsAndSyncRevision``)."""
        existing = find_new_rs(d, rses)
        olds = [rs for rs in rses if rs is not existing]
        new_revision = max((revision_of(rs) for rs in olds), default=0) + 1
        if existing is not None:
            return await self._sync_existing_new_rs(d, existing, new_revision), olds
        if not create:
            return None, olds
        return await self._create_new_rs(d, olds, new_revision), olds

    async def _sync_existing_new_rs(self, d: Obj, rs: RS, new_revision: int) -> RS:
        ann, changed = new_rs_annotations(d, meta(rs).get("annotations") or {},
                                          new_revision, exists=True)
        want_mrs = int((d.get("spec") or {}).get("minReadySeconds") or 0)
        have_mrs = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        if changed or want_mrs != have_mrs:
            body = copy.deepcopy(dict(rs))
            body["metadata"]["annotations"] = ann
            body["spec"]["minReadySeconds"] = want_mrs
            return self._wrote(await self.client.update(REPLICASETS, body))
        await self._set_revision(d, (meta(rs).get("annotations") or {}).get(REVISION, ""))
        if has_progress_deadline(d) and get_condition(d.get("status") or {}, PROGRESSING) is None:
            status = copy.deepcopy(d.get("status") or {})
            set_condition(status, new_condition(PROGRESSING, "True", FOUND_NEW_RS,
                                                f'Found new replica set "{meta(rs)["name"]}"',
                                                now_utc()))
            d["status"] = status
            await self._update_status(d)
        return rs

    async def _set_revision(self, d: Obj, revision: str) -> None:
        """Record ``revision`` on the Deployment's annotations when it differs."""
        if not revision or (meta(d).get("annotations") or {}).get(REVISION) == revision:
            return
        m = meta(d)
        out = await self.client.patch(DEPLOYMENTS, m.get("namespace"), m["name"], {
            "metadata": {"annotations": {REVISION: revision},
                         "resourceVersion": m.get("resourceVersion")}}, MERGE_PATCH)
        _replace(d, self._wrote(out))

    async def _create_new_rs(self, d: Obj, olds: list[RS], new_revision: int) -> RS:
        collision = (d.get("status") or {}).get("collisionCount")
        pod_hash = compute_hash((d.get("spec") or {}).get("template") or {}, collision)
        rs = build_new_rs(d, pod_hash, 0, new_revision)
        replicas = new_rs_new_replicas(d, [*olds, rs], rs)
        rs = build_new_rs(d, pod_hash, replicas, new_revision)
        ns, name = meta(d).get("namespace"), rs["metadata"]["name"]
        try:
            created: RS = await self.client.create(REPLICASETS, ns, rs)
            already = False
        except errors.APIError as e:
            if e.code == 409 and e.reason == "AlreadyExists":
                created = await self._resolve_existing(d, name, e)
                already = True
            elif e.code == 403:
                raise
            else:
                await self._record_create_failure(d, name, e)
                raise
        if not already and replicas > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled up replica set {name} from 0 to {replicas}")
        await self._set_revision(d, str(new_revision))
        if not already and has_progress_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_CREATED,
                                                f'Created new replica set "{name}"', now_utc()))
            d["status"] = status
            await self._update_status(d)
        return created

    async def _resolve_existing(self, d: Obj, name: str, err: errors.APIError) -> RS:
        """A ReplicaSet named like the new one exists: ours with our template, or a hash
        collision (bump ``collisionCount`` and retry)."""
        existing = self.rs_informer.indexer.get_by(meta(d).get("namespace"), name)
        if existing is None:
            existing = await self.client.get(REPLICASETS, meta(d).get("namespace"), name)
        ref = controller_ref(existing)
        template = (d.get("spec") or {}).get("template") or {}
        if ref is not None and ref.get("uid") == meta(d).get("uid") and \
                equal_ignore_hash((existing.get("spec") or {}).get("template") or {}, template):
            return existing
        status = d.setdefault("status", {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self._update_status(d)
        raise err

    async def _record_create_failure(self, d: Obj, name: str, e: errors.APIError) -> None:
        msg = f'Failed to create new replica set "{name}": {e.message}'
        if has_progress_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            set_condition(status, new_condition(PROGRESSING, "False", FAILED_RS_CREATE, msg,
                                                now_utc()))
            d["status"] = status
            await self._update_status(d)
        self.recorder.event(d, "Warning", FAILED_RS_CREATE, msg)

    # --- writes ------------------------------------------------------------------------

    def _wrote(self, obj: Obj) -> Obj:
        self.written.record(obj)
        return obj

    async def _update_status(self, d: Obj) -> None:
        out = await self.client.update(DEPLOYMENTS, d, subresource="status")
        _replace(d, self._wrote(out))

    async def _scale(self, d: Obj, rs: RS, new_scale: int) -> RS:
        """Resize ``rs`` (and refresh its replica annotations); event on size changes."""
        replicas = spec_replicas(d)
        max_replicas = replicas + max_surge(d)
        old = spec_replicas(rs)
        if old == new_scale and not replicas_annotations_need_update(rs, replicas,
                                                                     max_replicas):
            return rs
        body = copy.deepcopy(dict(rs))
        body["spec"]["replicas"] = new_scale
        ann = body["metadata"].setdefault("annotations", {})
        ann[DESIRED_REPLICAS] = str(replicas)
        ann[MAX_REPLICAS] = str(max_replicas)
        out = self._wrote(await self.client.update(REPLICASETS, body))
        if old != new_scale:
            op = "up" if old < new_scale else "down"
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {op} replica set {meta(rs)['name']} from {old} to "
                                f"{new_scale}")
        return out

    async def _apply_steps(self, d: Obj, steps: list[Step], rses: list[RS]) -> bool:
        """Apply resizes in order, replacing ReplicaSets in ``rses`` by their new versions;
        True when any size changed."""
        changed = False
        for rs, n in steps:
            name = meta(rs).get("name")
            current = next((r for r in rses if meta(r).get("name") == name), rs)
            if spec_replicas(current) != n:
                changed = True
            out = await self._scale(d, current, n)
            rses[:] = [out if meta(r).get("name") == name else r for r in rses]
        return changed

    async def _cleanup(self, d: Obj, olds: list[RS]) -> None:
        for rs in rses_to_clean_up(d, olds):
            m = meta(rs)
            try:
                await self.client.delete(REPLICASETS, m.get("namespace"), m["name"],
                                         uid=str(m.get("uid", "")))
            except errors.APIError as e:
                if e.code not in (404, 409):
                    raise

    async def _sync_status(self, d: Obj, all_rses: list[RS], new_rs: RS | None) -> None:
        status = calculate_status(d, all_rses, new_rs, now_utc())
        if status_differs(d.get("status"), status):
            d["status"] = status
            await self._update_status(d)

    async def _sync_rollout_status(self, d: Obj, all_rses: list[RS], new_rs: RS | None) -> None:
        now = now_utc()
        status = rollout_status(d, all_rses, new_rs, now)
        if not status_differs(d.get("status"), status):
            after = stuck_requeue_after(d, status, now)
            if after is not None:
                self.queue.add_after(object_key(d), after)
            return
        d["status"] = status
        await self._update_status(d)

    # --- strategies ----------------------------------------------------------------------

    async def _check_paused(self, d: Obj) -> None:
        cond = paused_condition(d, now_utc())
        if cond is None:
            return
        status = copy.deepcopy(d.get("status") or {})
        set_condition(status, cond)
        d["status"] = status
        await self._update_status(d)

    async def _sync_scale(self, d: Obj, rses: list[RS]) -> None:
        """Scaling event or paused Deployment: resize proportionally, no rollout."""
        new_rs, olds = await self._all_rses(d, rses, create=False)
        everything = [*olds, *([new_rs] if new_rs is not None else [])]
        await self._apply_steps(d, scale_steps(d, new_rs, olds), everything)
        new_rs = self._current(everything, new_rs)
        olds = [r for r in everything if r is not new_rs]
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(d, olds)
        await self._sync_status(d, everything, new_rs)

    @staticmethod
    def _current(rses: list[RS], rs: RS | None) -> RS | None:
        if rs is None:
            return None
        return next((r for r in rses if meta(r).get("name") == meta(rs).get("name")), rs)

    async def _rollout_rolling(self, d: Obj, rses: list[RS]) -> None:
        new_rs, olds = await self._all_rses(d, rses, create=True)
        assert new_rs is not None
        everything = [*olds, new_rs]
        target = reconcile_new_rs_target(d, everything, new_rs)
        if target != spec_replicas(new_rs) or \
                replicas_annotations_need_update(new_rs, spec_replicas(d),
                                                 spec_replicas(d) + max_surge(d)):
            scaled_up = await self._apply_steps(d, [(new_rs, target)], everything)
            if scaled_up:
                await self._sync_rollout_status(d, everything, self._current(everything, new_rs))
                return
        new_rs = self._current(everything, new_rs)
        assert new_rs is not None
        olds = [r for r in everything if r is not new_rs]
        steps = old_rs_scale_down_steps(d, new_rs, filter_active(olds))
        if await self._apply_steps(d, steps, everything):
            await self._sync_rollout_status(d, everything, self._current(everything, new_rs))
            return
        if deployment_complete(d, d.get("status") or {}):
            await self._cleanup(d, [r for r in everything if r is not new_rs])
        await self._sync_rollout_status(d, everything, new_rs)

    def _pods_by_rs(self, rses: Iterable[RS]) -> dict[str, list[Obj]]:
        idx = self.pod_informer.indexer
        return {str(meta(rs).get("uid")): idx.by_index(INDEX_CONTROLLER, str(meta(rs).get("uid")))
                for rs in rses}

    async def _rollout_recreate(self, d: Obj, rses: list[RS]) -> None:
        new_rs, olds = await self._all_rses(d, rses, create=False)
        everything = [*olds, *([new_rs] if new_rs is not None else [])]
        downs = [(rs, 0) for rs in filter_active(olds)]
        if await self._apply_steps(d, downs, everything):
            await self._sync_rollout_status(d, everything, self._current(everything, new_rs))
            return
        olds = [r for r in everything if new_rs is None or
                meta(r).get("name") != meta(new_rs).get("name")]
        if old_pods_running(new_rs, olds, self._pods_by_rs(everything)):
            await self._sync_rollout_status(d, everything, self._current(everything, new_rs))
            return
        if new_rs is None:
            new_rs, olds = await self._all_rses(d, rses, create=True)
            assert new_rs is not None
            everything = [*olds, new_rs]
        await self._apply_steps(d, [(new_rs, spec_replicas(d))], everything)
        new_rs = self._current(everything, new_rs)
        if deployment_complete(d, d.get("status") or {}):
            await self._cleanup(d, [r for r in everything if r is not new_rs])
        await self._sync_rollout_status(d, everything, new_rs)

