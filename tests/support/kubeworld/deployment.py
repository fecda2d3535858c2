"""The deployment controller: a port of pkg/controller/deployment.

- deployment_controller.go `syncDeployment`: claim ReplicaSets, status-only sync while deleting,
  paused handling, scaling events, then the strategy;
- sync.go: `getNewReplicaSet` (create the pod-template-hash ReplicaSet, the revision annotations,
  the NewReplicaSetCreated / FoundNewReplicaSet conditions), `scale` (proportional scaling),
  `cleanupDeployment` (revisionHistoryLimit), `calculateStatus`, `isScalingEvent`;
- rolling.go: `rolloutRolling`, `reconcileNewReplicaSet`, `reconcileOldReplicaSets`,
  `cleanupUnhealthyReplicas`, `scaleDownOldReplicaSetsForRollingUpdate` (maxSurge/maxUnavailable);
- recreate.go: `rolloutRecreate`;
- progress.go: `syncRolloutStatus` (Progressing: ReplicaSetUpdated / NewReplicaSetAvailable /
  ProgressDeadlineExceeded; Available: MinimumReplicasAvailable / MinimumReplicasUnavailable;
  ReplicaFailure copied from the ReplicaSets by `getReplicaFailures`).
Events: "ScalingReplicaSet" with "Scaled up|down replica set X from A to B".
"""

from __future__ import annotations

import copy
from typing import List, Optional, Tuple

from . import depsutil as U
from . import resources as R
from .errors import ApiError
from .selectors import label_selector_to_reqs, matches_labels

DEP = R.BY_KEY["apps/deployments"]
RS = R.BY_KEY["apps/replicasets"]
POD = R.BY_KEY["core/pods"]


def controller_ref(obj: dict) -> Optional[dict]:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_ref(owner: dict) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


class DeploymentController:
    def __init__(self, world) -> None:
        self.world = world
        self.reg = world.registry

    def now(self) -> float:
        return self.reg.clock()

    def sync(self) -> None:
        for d in list(self.world.store.list(DEP.key)):
            fresh = self.world.store.get(DEP.key, d["metadata"]["namespace"], d["metadata"]["name"])
            if fresh is not None:
                self.sync_deployment(copy.deepcopy(fresh))

    # -- syncDeployment --

    def sync_deployment(self, d: dict) -> None:
        rs_list = self.claim_replicasets(d)
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss = self.get_all_rss(d, rs_list, False)
            self.sync_status(old_rss + [new_rs], new_rs, d)
            return
        d = self.check_paused_conditions(d)
        if d["spec"].get("paused"):
            self.sync_scale(d, rs_list)
            return
        if self.is_scaling_event(d, rs_list):
            self.sync_scale(d, rs_list)
            return
        if U.is_rolling(d):
            self.rollout_rolling(d, rs_list)
        else:
            self.rollout_recreate(d, rs_list)

    def claim_replicasets(self, d: dict) -> List[dict]:
        """ClaimReplicaSets: owned ones whose labels still match, plus adopted orphans."""
        ns = d["metadata"]["namespace"]
        reqs = label_selector_to_reqs(d["spec"].get("selector"))
        out = []
        for rs in self.world.store.list(RS.key, ns):
            ref = controller_ref(rs)
            labels = rs["metadata"].get("labels")
            if ref is not None:
                if ref.get("uid") == d["metadata"]["uid"]:
                    out.append(copy.deepcopy(rs))
                continue
            if reqs and matches_labels(reqs, labels) and not d["metadata"].get("deletionTimestamp") \
                    and not rs["metadata"].get("deletionTimestamp"):
                adopted = copy.deepcopy(rs)
                adopted["metadata"].setdefault("ownerReferences", []).append(owner_ref(d))
                out.append(self.reg.update(RS, ns, rs["metadata"]["name"], adopted))
        return out

    def check_paused_conditions(self, d: dict) -> dict:
        if not U.has_progress_deadline(d):
            return d
        st = d.setdefault("status", {})
        cond = U.get_condition(st, "Progressing")
        if cond and cond.get("reason") == U.TIMED_OUT_REASON:
            return d
        paused_exists = cond is not None and cond.get("reason") == U.PAUSED_REASON
        if d["spec"].get("paused") and not paused_exists:
            U.set_condition(st, U.new_condition("Progressing", "Unknown", U.PAUSED_REASON, "Deployment is paused", self.now()))
        elif not d["spec"].get("paused") and paused_exists:
            U.set_condition(st, U.new_condition("Progressing", "Unknown", U.RESUMED_REASON, "Deployment is resumed", self.now()))
        else:
            return d
        return self.update_status(d)

    def update_status(self, d: dict) -> dict:
        return self.reg.update(DEP, d["metadata"]["namespace"], d["metadata"]["name"], d, subresource="status")

    # -- new / old replica sets --

    def get_all_rss(self, d: dict, rs_list: List[dict], create: bool) -> Tuple[Optional[dict], List[dict]]:
        existing = U.find_new_rs(d, rs_list)
        old = [rs for rs in rs_list if existing is None or rs["metadata"]["uid"] != existing["metadata"]["uid"]]
        new_rs = self.get_new_rs(d, rs_list, old, create)
        return new_rs, old

    def get_new_rs(self, d: dict, rs_list: List[dict], old_rss: List[dict], create: bool) -> Optional[dict]:
        ns = d["metadata"]["namespace"]
        existing = U.find_new_rs(d, rs_list)
        new_revision = U.max_revision(old_rss) + 1
        if existing is not None:
            rs_copy = copy.deepcopy(existing)
            annotations_updated = U.set_new_rs_annotations(d, rs_copy, new_revision, True)
            min_ready_changed = rs_copy["spec"].get("minReadySeconds", 0) != d["spec"].get("minReadySeconds", 0)
            if annotations_updated or min_ready_changed:
                rs_copy["spec"]["minReadySeconds"] = d["spec"].get("minReadySeconds", 0)
                updated = self.reg.update(RS, ns, rs_copy["metadata"]["name"], rs_copy)
                existing.clear()
                existing.update(updated)  # keep the caller's list current for the rest of this sync
                return existing
            needs_update = self.set_revision(d, (rs_copy["metadata"].get("annotations") or {}).get(U.REVISION, ""))
            st = d.setdefault("status", {})
            if U.has_progress_deadline(d) and U.get_condition(st, "Progressing") is None:
                U.set_condition(st, U.new_condition("Progressing", "True", U.FOUND_NEW_RS_REASON,
                                                    f'Found new replica set "{rs_copy["metadata"]["name"]}"', self.now()))
                needs_update = True
            if needs_update:
                d.update(self.update_status(d))
            return rs_copy
        if not create:
            return None
        template = copy.deepcopy(d["spec"]["template"])
        pod_hash = U.compute_hash(template, (d.get("status") or {}).get("collisionCount"))
        template.setdefault("metadata", {}).setdefault("labels", {})[U.HASH_LABEL] = pod_hash
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[U.HASH_LABEL] = pod_hash
        new_rs = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{d['metadata']['name']}-{pod_hash}", "namespace": ns,
                         "ownerReferences": [owner_ref(d)], "labels": copy.deepcopy(template["metadata"]["labels"])},
            "spec": {"replicas": 0, "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                     "selector": selector, "template": template},
        }
        new_replicas = U.new_rs_new_replicas(d, old_rss + [new_rs], new_rs)
        new_rs["spec"]["replicas"] = new_replicas
        U.set_new_rs_annotations(d, new_rs, new_revision, False)
        try:
            created = self.reg.create(RS, ns, new_rs)
        except ApiError as e:
            if e.code != 409:
                raise
            # A hash collision (sync.go): an equal template means it is ours; else bump collisionCount.
            other = self.world.store.get(RS.key, ns, new_rs["metadata"]["name"])
            if other is not None and controller_ref(other) and controller_ref(other)["uid"] == d["metadata"]["uid"] \
                    and U.equal_ignore_hash(other["spec"]["template"], d["spec"]["template"]):
                return copy.deepcopy(other)
            st = d.setdefault("status", {})
            st["collisionCount"] = st.get("collisionCount", 0) + 1
            self.update_status(d)
            return None
        if new_replicas > 0:
            self.world.events.record(d, "Normal", "ScalingReplicaSet",
                                     f"Scaled up replica set {created['metadata']['name']} from 0 to {new_replicas}",
                                     "deployment-controller")
        needs_update = self.set_revision(d, str(new_revision))
        if U.has_progress_deadline(d):
            U.set_condition(d.setdefault("status", {}), U.new_condition(
                "Progressing", "True", U.NEW_RS_REASON, f'Created new replica set "{created["metadata"]["name"]}"', self.now()))
            needs_update = True
        if needs_update:
            d.update(self.update_status(d))
        return created

    @staticmethod
    def set_revision(d: dict, rev: str) -> bool:
        ann = d["metadata"].setdefault("annotations", {})
        if ann.get(U.REVISION) != rev:
            ann[U.REVISION] = rev
            return True
        return False

    # -- scaling --

    def is_scaling_event(self, d: dict, rs_list: List[dict]) -> bool:
        new_rs, old_rss = self.get_all_rss(d, rs_list, False)
        for rs in U.active(old_rss + [new_rs]):
            desired = U.desired_annotation(rs)
            if desired is not None and desired != U.replicas(d):
                return True
        return False

    def sync_scale(self, d: dict, rs_list: List[dict]) -> None:
        new_rs, old_rss = self.get_all_rss(d, rs_list, False)
        self.scale(d, new_rs, old_rss)
        if d["spec"].get("paused"):
            self.cleanup(old_rss, d)
        new_rs, old_rss = self._refresh(d, new_rs, old_rss)
        self.sync_status(old_rss + [new_rs], new_rs, d)

    def _refresh(self, d: dict, new_rs, old_rss):
        ns = d["metadata"]["namespace"]

        def fresh(rs):
            if rs is None:
                return None
            cur = self.world.store.get(RS.key, ns, rs["metadata"]["name"])
            return copy.deepcopy(cur) if cur is not None else None

        return fresh(new_rs), [r for r in (fresh(o) for o in old_rss) if r is not None]

    def scale(self, d: dict, new_rs: Optional[dict], old_rss: List[dict]) -> None:
        latest = self.find_active_or_latest(new_rs, old_rss)
        if latest is not None:
            if U.replicas(latest) != U.replicas(d):
                self.scale_rs_and_record(latest, U.replicas(d), d)
            return
        if U.is_saturated(d, new_rs):
            for old in U.active(old_rss):
                self.scale_rs_and_record(old, 0, d)
            return
        if not U.is_rolling(d):
            return
        all_rss = U.active(old_rss + [new_rs])
        allowed = U.replicas(d) + U.max_surge(d) if U.replicas(d) > 0 else 0
        to_add = allowed - U.replica_count(all_rss)
        operation = ""
        if to_add > 0:  # ReplicaSetsBySizeNewer
            all_rss.sort(key=lambda r: (-U.replicas(r), -(U.parse_time(r["metadata"]["creationTimestamp"]) or 0)))
            operation = "up"
        elif to_add < 0:  # ReplicaSetsBySizeOlder
            all_rss.sort(key=lambda r: (-U.replicas(r), U.parse_time(r["metadata"]["creationTimestamp"]) or 0))
            operation = "down"
        added, sizes = 0, {}
        for rs in all_rss:
            if to_add != 0:
                proportion = self.get_proportion(rs, d, to_add, added)
                sizes[rs["metadata"]["name"]] = U.replicas(rs) + proportion
                added += proportion
            else:
                sizes[rs["metadata"]["name"]] = U.replicas(rs)
        for i, rs in enumerate(all_rss):
            name = rs["metadata"]["name"]
            if i == 0 and to_add != 0:
                sizes[name] = max(0, sizes[name] + to_add - added)
            self.scale_rs(rs, sizes[name], d, operation)

    @staticmethod
    def find_active_or_latest(new_rs, old_rss):
        if new_rs is None and not old_rss:
            return None
        old_sorted = sorted(old_rss, key=lambda r: (U.parse_time(r["metadata"]["creationTimestamp"]) or 0,
                                                    r["metadata"]["name"]), reverse=True)
        all_active = U.active(old_sorted + [new_rs])
        if not all_active:
            return new_rs if new_rs is not None else old_sorted[0]
        if len(all_active) == 1:
            return all_active[0]
        return None

    @staticmethod
    def get_proportion(rs: dict, d: dict, to_add: int, added: int) -> int:
        if rs is None or U.replicas(rs) == 0 or to_add == 0 or to_add == added:
            return 0
        if U.replicas(d) == 0:
            fraction = -U.replicas(rs)
        else:
            dep_replicas = U.replicas(d) + U.max_surge(d)
            annotated = U.max_replicas_annotation(rs)
            if annotated is None:
                annotated = U.status_of(d, "replicas")
            fraction = int(round(U.replicas(rs) * dep_replicas / annotated)) - U.replicas(rs) if annotated else 0
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    def scale_rs_and_record(self, rs: dict, new_scale: int, d: dict) -> bool:
        if U.replicas(rs) == new_scale:
            return False
        return self.scale_rs(rs, new_scale, d, "up" if U.replicas(rs) < new_scale else "down")

    def scale_rs(self, rs: dict, new_scale: int, d: dict, operation: str) -> bool:
        size_changed = U.replicas(rs) != new_scale
        max_reps = U.replicas(d) + U.max_surge(d)
        if not (size_changed or U.replicas_annotations_need_update(rs, U.replicas(d), max_reps)):
            return False
        old = U.replicas(rs)
        rs_copy = copy.deepcopy(rs)
        rs_copy["spec"]["replicas"] = new_scale
        U.set_replicas_annotations(rs_copy, U.replicas(d), max_reps)
        updated = self.reg.update(RS, rs["metadata"]["namespace"], rs["metadata"]["name"], rs_copy)
        rs.clear()
        rs.update(updated)
        if size_changed:
            self.world.events.record(d, "Normal", "ScalingReplicaSet",
                                     f"Scaled {operation} replica set {rs['metadata']['name']} from {old} to {new_scale}",
                                     "deployment-controller")
        return size_changed

    # -- rolling update (rolling.go) --

    def rollout_rolling(self, d: dict, rs_list: List[dict]) -> None:
        new_rs, old_rss = self.get_all_rss(d, rs_list, True)
        if new_rs is None:
            return
        all_rss = old_rss + [new_rs]
        if self.reconcile_new_rs(all_rss, new_rs, d):
            new_rs, old_rss = self._refresh(d, new_rs, old_rss)
            self.sync_rollout_status(old_rss + [new_rs], new_rs, d)
            return
        if self.reconcile_old_rss(all_rss, U.active(old_rss), new_rs, d):
            new_rs, old_rss = self._refresh(d, new_rs, old_rss)
            self.sync_rollout_status(old_rss + [new_rs], new_rs, d)
            return
        new_rs, old_rss = self._refresh(d, new_rs, old_rss)
        if U.deployment_complete(d, d.get("status") or {}):
            self.cleanup(old_rss, d)
            new_rs, old_rss = self._refresh(d, new_rs, old_rss)
        self.sync_rollout_status(old_rss + [new_rs], new_rs, d)

    def reconcile_new_rs(self, all_rss: List[dict], new_rs: dict, d: dict) -> bool:
        if U.replicas(new_rs) == U.replicas(d):
            return False
        if U.replicas(new_rs) > U.replicas(d):
            return self.scale_rs_and_record(new_rs, U.replicas(d), d)
        return self.scale_rs_and_record(new_rs, U.new_rs_new_replicas(d, all_rss, new_rs), d)

    def reconcile_old_rss(self, all_rss: List[dict], old_rss: List[dict], new_rs: dict, d: dict) -> bool:
        if U.replica_count(old_rss) == 0:
            return False
        all_count = U.replica_count(all_rss)
        min_available = U.replicas(d) - U.max_unavailable(d)
        new_unavailable = U.replicas(new_rs) - U.status_of(new_rs, "availableReplicas")
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        old_rss, cleaned = self.cleanup_unhealthy(old_rss, d, max_scaled_down)
        scaled = self.scale_down_old_for_rolling(old_rss + [new_rs], old_rss, d)
        return cleaned + scaled > 0

    def cleanup_unhealthy(self, old_rss: List[dict], d: dict, max_cleanup: int) -> Tuple[List[dict], int]:
        total = 0
        for rs in U.by_creation(old_rss):
            if total >= max_cleanup:
                break
            if U.replicas(rs) == 0 or U.replicas(rs) == U.status_of(rs, "availableReplicas"):
                continue
            count = min(max_cleanup - total, U.replicas(rs) - U.status_of(rs, "availableReplicas"))
            self.scale_rs_and_record(rs, U.replicas(rs) - count, d)
            total += count
        return old_rss, total

    def scale_down_old_for_rolling(self, all_rss: List[dict], old_rss: List[dict], d: dict) -> int:
        min_available = U.replicas(d) - U.max_unavailable(d)
        available = U.available_count(all_rss)
        if available <= min_available:
            return 0
        total_down, done = available - min_available, 0
        for rs in U.by_creation(old_rss):
            if done >= total_down:
                break
            if U.replicas(rs) == 0:
                continue
            count = min(U.replicas(rs), total_down - done)
            self.scale_rs_and_record(rs, U.replicas(rs) - count, d)
            done += count
        return done

    # -- recreate (recreate.go) --

    def rollout_recreate(self, d: dict, rs_list: List[dict]) -> None:
        new_rs, old_rss = self.get_all_rss(d, rs_list, False)
        scaled = False
        for rs in U.active(old_rss):
            scaled = self.scale_rs_and_record(rs, 0, d) or scaled
        if scaled:
            new_rs, old_rss = self._refresh(d, new_rs, old_rss)
            self.sync_rollout_status(old_rss + [new_rs], new_rs, d)
            return
        old_uids = {rs["metadata"]["uid"] for rs in old_rss}
        for pod in self.world.store.list(POD.key, d["metadata"]["namespace"]):
            ref = controller_ref(pod)
            if ref and ref["uid"] in old_uids and (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                self.sync_rollout_status(old_rss + [new_rs], new_rs, d)
                return
        if new_rs is None:
            new_rs, old_rss = self.get_all_rss(d, rs_list, True)
        if new_rs is not None:
            self.scale_rs_and_record(new_rs, U.replicas(d), d)
        new_rs, old_rss = self._refresh(d, new_rs, old_rss)
        if U.deployment_complete(d, d.get("status") or {}):
            self.cleanup(old_rss, d)
        self.sync_rollout_status(old_rss + [new_rs], new_rs, d)

    # -- history cleanup and status --

    def cleanup(self, old_rss: List[dict], d: dict) -> None:
        limit = d["spec"].get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
        diff = len(alive) - limit
        if diff <= 0:
            return
        alive.sort(key=lambda r: (U.revision(r), U.parse_time(r["metadata"]["creationTimestamp"]) or 0))
        for rs in alive[:diff]:
            if U.status_of(rs, "replicas") != 0 or U.replicas(rs) != 0 or \
                    rs["metadata"].get("generation", 0) > U.status_of(rs, "observedGeneration"):
                continue
            try:
                self.reg.delete(RS, rs["metadata"]["namespace"], rs["metadata"]["name"])
            except ApiError as e:
                if e.code != 404:
                    raise

    def calculate_status(self, all_rss: List[Optional[dict]], new_rs: Optional[dict], d: dict) -> dict:
        rss = [rs for rs in all_rss if rs is not None]
        available = U.available_count(rss)
        total = U.replica_count(rss)
        st = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": U.actual_count(rss),
            "updatedReplicas": U.actual_count([new_rs]),
            "readyReplicas": U.ready_count(rss),
            "availableReplicas": available,
            "unavailableReplicas": max(total - available, 0),
            "conditions": copy.deepcopy((d.get("status") or {}).get("conditions") or []),
        }
        if (d.get("status") or {}).get("collisionCount") is not None:
            st["collisionCount"] = d["status"]["collisionCount"]
        if available >= U.replicas(d) - U.max_unavailable(d):
            U.set_condition(st, U.new_condition("Available", "True", U.MIN_AVAILABLE_REASON,
                                                "Deployment has minimum availability.", self.now()))
        else:
            U.set_condition(st, U.new_condition("Available", "False", U.MIN_UNAVAILABLE_REASON,
                                                "Deployment does not have minimum availability.", self.now()))
        return st

    def sync_status(self, all_rss, new_rs, d: dict) -> None:
        st = self.calculate_status(all_rss, new_rs, d)
        if _clean(d.get("status")) != _clean(st):
            d["status"] = st
            self.update_status(d)

    def sync_rollout_status(self, all_rss, new_rs, d: dict) -> None:
        st = self.calculate_status(all_rss, new_rs, d)
        if not U.has_progress_deadline(d):
            U.remove_condition(st, "Progressing")
        cond = U.get_condition(st, "Progressing")
        complete = (st["replicas"] == st["updatedReplicas"] and cond is not None
                    and cond.get("reason") == U.NEW_RS_AVAILABLE_REASON)
        if U.has_progress_deadline(d) and not complete and new_rs is not None:
            name = new_rs["metadata"]["name"]
            if U.deployment_complete(d, st):
                U.set_condition(st, U.new_condition("Progressing", "True", U.NEW_RS_AVAILABLE_REASON,
                                                    f'ReplicaSet "{name}" has successfully progressed.', self.now()))
            elif U.deployment_progressing(d, st):
                new_cond = U.new_condition("Progressing", "True", U.RS_UPDATED_REASON,
                                           f'ReplicaSet "{name}" is progressing.', self.now())
                if cond is not None:
                    if cond["status"] == "True":
                        new_cond["lastTransitionTime"] = cond["lastTransitionTime"]
                    U.remove_condition(st, "Progressing")
                U.set_condition(st, new_cond)
            elif U.deployment_timed_out(d, st, self.now(), self.world.time_scale):
                U.set_condition(st, U.new_condition("Progressing", "False", U.TIMED_OUT_REASON,
                                                    f'ReplicaSet "{name}" has timed out progressing.', self.now()))
        # progress.go syncRolloutStatus → getReplicaFailures: the new ReplicaSet's ReplicaFailure
        # condition, else any old one's, becomes the Deployment's (ReplicaSetToDeploymentCondition in
        # util/deployment_util.go: both times from the ReplicaSet condition's lastTransitionTime);
        # none: the Deployment's is removed. Only here: a scaling event's syncDeploymentStatus keeps it.
        failures = [c for rs in [new_rs] + [r for r in all_rss if r is not new_rs] if rs is not None
                    for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") == "ReplicaFailure"]
        if failures:
            c = failures[0]
            U.set_condition(st, {"type": "ReplicaFailure", "status": c.get("status", "True"),
                                 "lastUpdateTime": c.get("lastTransitionTime"),
                                 "lastTransitionTime": c.get("lastTransitionTime"),
                                 "reason": c.get("reason", ""), "message": c.get("message", "")})
        else:
            U.remove_condition(st, "ReplicaFailure")
        if _clean(d.get("status")) != _clean(st):
            d["status"] = st
            self.update_status(d)


def _clean(status: Optional[dict]) -> dict:
    st = dict(status or {})
    for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"):
        st.setdefault(k, 0)
    st.setdefault("conditions", [])
    return st
