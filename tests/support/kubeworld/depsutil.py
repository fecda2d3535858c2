"""Deployment helpers: a port of pkg/controller/deployment/util/deployment_util.go.

Function names map one to one onto the Go ones (`resolve_fenceposts` is `ResolveFenceposts`, ...)
so the controller in deployment.py reads like the original. Objects are JSON-shaped dicts.
"""

from __future__ import annotations

import copy
import json
import math
from typing import List, Optional, Tuple

from .registry import parse_time, rfc3339

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"  # apps/v1 DefaultDeploymentUniqueLabelKey
SKIP_COPY = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
             MAX_REPLICAS, "deprecated.deployment.rollback.to"}

# Condition reasons (deployment_util.go constants).
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
MIN_AVAILABLE_REASON = "MinimumReplicasAvailable"
MIN_UNAVAILABLE_REASON = "MinimumReplicasUnavailable"

ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def replicas(obj: Optional[dict]) -> int:
    return int(((obj or {}).get("spec") or {}).get("replicas", 0) or 0)


def status_of(obj: Optional[dict], field: str) -> int:
    return int(((obj or {}).get("status") or {}).get(field, 0) or 0)


def scaled_value(value, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        pct = int(text[:-1])
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)


def resolve_fenceposts(d: dict) -> Tuple[int, int]:
    ru = ((d["spec"].get("strategy") or {}).get("rollingUpdate") or {})
    want = replicas(d)
    surge = scaled_value(ru.get("maxSurge", "25%"), want, True)
    unavailable = scaled_value(ru.get("maxUnavailable", "25%"), want, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # "Validation should never allow the user to explicitly use zero values for both"
    return surge, unavailable


def is_rolling(d: dict) -> bool:
    return (d["spec"].get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def max_unavailable(d: dict) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    _, unavailable = resolve_fenceposts(d)
    return min(unavailable, replicas(d))


def max_surge(d: dict) -> int:
    if not is_rolling(d):
        return 0
    surge, _ = resolve_fenceposts(d)
    return surge


def revision(obj: dict) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(rss: List[dict]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def compute_hash(template: dict, collision_count: Optional[int]) -> str:
    """controller.ComputeHash: FNV-32a of the template (+ collision count), SafeEncodeString'd.

    The real hash runs over a spew dump of the Go struct; this one runs over canonical JSON, so
    the values differ from a real cluster's but have the same form and stability."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += int(collision_count).to_bytes(8, "little")
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return "".join(ALPHANUMS[ord(c) % len(ALPHANUMS)] for c in str(h))


def _without_hash(template: dict) -> dict:
    t = copy.deepcopy(template or {})
    (t.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return t


def equal_ignore_hash(t1: dict, t2: dict) -> bool:
    return _without_hash(t1) == _without_hash(t2)


def by_creation(rss: List[dict]) -> List[dict]:
    """ReplicaSetsByCreationTimestamp (ties broken by name)."""
    return sorted(rss, key=lambda r: (parse_time(r["metadata"].get("creationTimestamp")) or 0, r["metadata"]["name"]))


def find_new_rs(d: dict, rss: List[dict]) -> Optional[dict]:
    for rs in by_creation(rss):
        if equal_ignore_hash(rs["spec"].get("template"), d["spec"].get("template")):
            return rs
    return None


def active(rss: List[Optional[dict]]) -> List[dict]:
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def replica_count(rss) -> int:
    return sum(replicas(rs) for rs in rss if rs is not None)


def actual_count(rss) -> int:
    return sum(status_of(rs, "replicas") for rs in rss if rs is not None)


def ready_count(rss) -> int:
    return sum(status_of(rs, "readyReplicas") for rs in rss if rs is not None)


def available_count(rss) -> int:
    return sum(status_of(rs, "availableReplicas") for rs in rss if rs is not None)


def get_condition(status: dict, ctype: str) -> Optional[dict]:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def new_condition(ctype: str, status: str, reason: str, message: str, now: float) -> dict:
    ts = rfc3339(now)
    return {"type": ctype, "status": status, "lastUpdateTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message}


def set_condition(status: dict, cond: dict) -> None:
    """SetDeploymentCondition: no-op when status and reason are unchanged; keeps the transition
    time when only the reason changes."""
    current = get_condition(status, cond["type"])
    if current and current["status"] == cond["status"] and current.get("reason") == cond.get("reason"):
        return
    if current and current["status"] == cond["status"]:
        cond = dict(cond, lastTransitionTime=current["lastTransitionTime"])
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]] + [cond]


def remove_condition(status: dict, ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


def has_progress_deadline(d: dict) -> bool:
    pds = d["spec"].get("progressDeadlineSeconds")
    return pds is not None and pds != 2147483647


def deployment_complete(d: dict, st: dict) -> bool:
    want = replicas(d)
    return (st.get("updatedReplicas", 0) == want and st.get("replicas", 0) == want
            and st.get("availableReplicas", 0) == want
            and st.get("observedGeneration", 0) >= d["metadata"].get("generation", 0))


def deployment_progressing(d: dict, st: dict) -> bool:
    old = d.get("status") or {}
    old_old = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_old = st.get("replicas", 0) - st.get("updatedReplicas", 0)
    return (st.get("updatedReplicas", 0) > old.get("updatedReplicas", 0) or new_old < old_old
            or st.get("readyReplicas", 0) > old.get("readyReplicas", 0)
            or st.get("availableReplicas", 0) > old.get("availableReplicas", 0))


def deployment_timed_out(d: dict, st: dict, now: float, scale: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(st, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == TIMED_OUT_REASON:
        return True
    start = parse_time(cond.get("lastUpdateTime"))
    return start is not None and start + d["spec"]["progressDeadlineSeconds"] * scale < now


def set_replicas_annotations(rs: dict, desired: int, max_replicas: int) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: dict, desired: int, max_replicas: int) -> bool:
    ann = rs["metadata"].get("annotations") or {}
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(max_replicas)


def set_new_rs_annotations(d: dict, rs: dict, new_revision: int, exists: bool) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for k, v in (d["metadata"].get("annotations") or {}).items():
        if k in SKIP_COPY or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    old_text = ann.get(REVISION)
    old = int(old_text) if old_text and old_text.isdigit() else 0
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old_text:
            hist = ann.get(REVISION_HISTORY)
            ann[REVISION_HISTORY] = f"{hist},{old_text}" if hist else old_text
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


def desired_annotation(rs: dict) -> Optional[int]:
    v = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
    return int(v) if v is not None and v.lstrip("-").isdigit() else None


def max_replicas_annotation(rs: dict) -> Optional[int]:
    v = (rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS)
    return int(v) if v is not None and v.isdigit() else None


def is_saturated(d: dict, rs: Optional[dict]) -> bool:
    if rs is None:
        return False
    return (replicas(rs) == replicas(d) and desired_annotation(rs) == replicas(d)
            and status_of(rs, "availableReplicas") == replicas(d))


def new_rs_new_replicas(d: dict, all_rss: List[dict], new_rs: dict) -> int:
    """NewRSNewReplicas for the RollingUpdate strategy (Recreate: the full count)."""
    if not is_rolling(d):
        return replicas(d)
    current = replica_count(all_rss)
    max_total = replicas(d) + max_surge(d)
    if current >= max_total:
        return replicas(new_rs)
    scale_up = min(max_total - current, replicas(d) - replicas(new_rs))
    return replicas(new_rs) + scale_up
