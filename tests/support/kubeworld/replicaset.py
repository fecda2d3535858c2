"""The replicaset controller: a port of pkg/controller/replicaset/replica_set.go.

- `syncReplicaSet`: active pods (controller.FilterActivePods: not terminal, not being deleted),
  claimed by controller reference or adopted when orphaned and matching;
- `manageReplicas`: create the missing pods from the template (controller_utils.go
  `GetPodFromTemplate`: generateName "<rs>-", labels, owner reference) or delete the surplus,
  choosing victims with `getPodsToDelete` / controller_utils.go `ActivePodsWithRanks.Less`
  (unassigned < pending < running, not ready < ready, recently ready < long ready, more restarts <
  fewer, newer < older);
- `calculateStatus`: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas
  (podutil.IsPodAvailable: ready for at least minReadySeconds), observedGeneration.
Events: SuccessfulCreate "Created pod: X", SuccessfulDelete "Deleted pod: X".

Failed creations (`reject_pods`, a refusal by the API server's admission chain, admission.py, as
the ResourceQuota and PodSecurity admission plugins answer 403 Forbidden): the pod control records a
Warning event FailedCreate "Error creating: <error>" (controller_utils.go `RealPodControl.createPods`),
`manageReplicas` returns the error (slowStartBatch stops at the first failure), and
replica_set_utils.go `calculateStatus` adds the condition ReplicaFailure=True with reason FailedCreate
and the error as message when the status has none (an existing one is kept as it is), and removes it
after a sync whose manageReplicas succeeded. The failed key is retried with the controller queue's
per-item exponential back-off (client-go util/workqueue `DefaultControllerRateLimiter`: 5 ms doubling
to 1000 s, scaled by the world's time_scale); meanwhile the pending error keeps the condition.
"""

from __future__ import annotations

import copy
import time
from typing import Callable, Dict, List, Optional, Tuple

from . import resources as R
from .deployment import controller_ref, owner_ref
from .errors import ApiError
from .registry import parse_time, rfc3339
from .selectors import label_selector_to_reqs, matches_labels

RS = R.BY_KEY["apps/replicasets"]
POD = R.BY_KEY["core/pods"]
PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def pod_ready(pod: dict) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def ready_since(world, pod: dict) -> Optional[float]:
    """When the pod last became Ready: the kubelet's precise record, else the condition's time."""
    precise = world.control.kubelet.ready_since(pod["metadata"].get("uid"))
    if precise is not None:
        return precise
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            return parse_time(c.get("lastTransitionTime"))
    return None


def pod_available(world, pod: dict, min_ready_seconds: int, now: float) -> bool:
    if not pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = ready_since(world, pod)
    return since is not None and since + min_ready_seconds * world.time_scale < now


QUOTA = ("exceeded quota: compute-resources, requested: pods=1, used: pods={used}, limited: pods={used}")
POD_SECURITY = ('violates PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "{container}" '
                "must set securityContext.runAsNonRoot=true)")


def is_active(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and \
        not pod["metadata"].get("deletionTimestamp")


class ReplicaSetController:
    def __init__(self, world) -> None:
        self.world = world
        self.reg = world.registry
        self._failures: Dict[str, Tuple[int, float, int]] = {}  # rs uid -> (failures, retry at, generation)

    def reject_pods(self, why: str = QUOTA, *, namespace: Optional[str] = None,
                    times: Optional[int] = None) -> Callable[[], None]:
        """Refuse pod creations (quota or pod security, `QUOTA`/`POD_SECURITY` or any text) through the
        world's admission chain (admission.py), the one pod-refusal mechanism: 403 `pods "<generated
        name>" is forbidden: <why>`, for this controller's creations and pods created through the API
        alike, as the ResourceQuota and PodSecurity plugins refuse any pod. `{used}` is filled in with
        the active pods of the same owner (of the namespace for a pod without one), `{container}` with
        the first container's name. Returns a function that lifts the refusal."""
        left = [times]

        def hook(attrs) -> None:
            if namespace not in (None, attrs.namespace) or (left[0] is not None and left[0] <= 0):
                return
            if left[0] is not None:
                left[0] -= 1
            owner = (controller_ref(attrs.obj) or {}).get("uid")
            used = sum(1 for p in self.world.store.list(POD.key, attrs.namespace)
                       if is_active(p) and (owner is None or (controller_ref(p) or {}).get("uid") == owner))
            containers = ((attrs.obj.get("spec") or {}).get("containers") or [{}])
            raise attrs.forbid(why.format(used=used, container=containers[0].get("name", "")))

        lift = self.world.admission.add(hook, verbs=("create",), resource="pods")

        def remove() -> None:
            lift()
            self.world.control._changed()
        return remove

    def sync(self) -> None:
        for rs in list(self.world.store.list(RS.key)):
            fresh = self.world.store.get(RS.key, rs["metadata"]["namespace"], rs["metadata"]["name"])
            if fresh is not None:
                self.sync_rs(copy.deepcopy(fresh))

    def claim_pods(self, rs: dict) -> List[dict]:
        ns = rs["metadata"]["namespace"]
        reqs = label_selector_to_reqs(rs["spec"].get("selector")) or []
        out = []
        for pod in self.world.store.list(POD.key, ns):
            if not is_active(pod):
                continue
            ref = controller_ref(pod)
            if ref is not None:
                if ref.get("uid") == rs["metadata"]["uid"]:
                    out.append(pod)
                continue
            if reqs and matches_labels(reqs, pod["metadata"].get("labels")) and not rs["metadata"].get("deletionTimestamp"):
                adopted = copy.deepcopy(pod)
                adopted["metadata"].setdefault("ownerReferences", []).append(owner_ref(rs))
                out.append(self.reg.update(POD, ns, pod["metadata"]["name"], adopted))
        return out

    def sync_rs(self, rs: dict) -> None:
        pods = self.claim_pods(rs)
        error: Optional[str] = None
        uid, generation = rs["metadata"]["uid"], rs["metadata"].get("generation", 1)
        failures, retry_at, failed_generation = self._failures.get(uid, (0, 0.0, 0))
        if failures and time.time() < retry_at and generation == failed_generation:
            error = ""  # still queued for a rate-limited retry: the failure stands
        elif not rs["metadata"].get("deletionTimestamp"):
            error = self.manage_replicas(pods, rs)
            pods = self.claim_pods(rs)
            if error is None:
                self._failures.pop(uid, None)
            else:
                delay = min(1000.0, 0.005 * 2 ** failures) * self.world.time_scale
                self._failures[uid] = (failures + 1, time.time() + delay, generation)
        self.update_status(rs, pods, error)

    def manage_replicas(self, pods: List[dict], rs: dict) -> Optional[str]:
        """Create or delete pods; the first creation error's message (None when all went well)."""
        ns = rs["metadata"]["namespace"]
        diff = len(pods) - int(rs["spec"].get("replicas", 0))
        if diff < 0:
            for _ in range(-diff):
                pod = self.pod_from_template(rs)
                try:
                    created = self.reg.create(POD, ns, pod)
                except ApiError as e:
                    self.world.events.record(rs, "Warning", "FailedCreate", f"Error creating: {e.message}",
                                             "replicaset-controller")
                    return e.message
                self.world.events.record(rs, "Normal", "SuccessfulCreate",
                                         f"Created pod: {created['metadata']['name']}", "replicaset-controller")
        elif diff > 0:
            for pod in self.pods_to_delete(pods, diff):
                try:
                    self.reg.delete(POD, ns, pod["metadata"]["name"])
                except ApiError as e:
                    if e.code != 404:
                        raise
                    continue
                self.world.events.record(rs, "Normal", "SuccessfulDelete",
                                         f"Deleted pod: {pod['metadata']['name']}", "replicaset-controller")
        return None

    @staticmethod
    def pod_from_template(rs: dict) -> dict:
        tmpl = copy.deepcopy(rs["spec"].get("template") or {})
        meta = tmpl.get("metadata") or {}
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": f"{rs['metadata']['name']}-", "namespace": rs["metadata"]["namespace"],
                         "labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {},
                         "ownerReferences": [owner_ref(rs)], **({"finalizers": meta["finalizers"]} if meta.get("finalizers") else {})},
            "spec": tmpl.get("spec") or {},
        }

    def pods_to_delete(self, pods: List[dict], diff: int) -> List[dict]:
        now = self.reg.clock()

        def rank(p: dict):
            ready = pod_ready(p)
            since = ready_since(self.world, p) if ready else None
            restarts = max((c.get("restartCount", 0) for c in (p.get("status") or {}).get("containerStatuses") or []), default=0)
            created = parse_time(p["metadata"].get("creationTimestamp")) or now
            cost = int((p["metadata"].get("annotations") or {}).get("controller.kubernetes.io/pod-deletion-cost", "0") or 0)
            return (bool(p["spec"].get("nodeName")), PHASE_ORDER.get((p.get("status") or {}).get("phase"), 1), ready,
                    cost, -(since or 0), -restarts, -created, p["metadata"]["name"])

        return sorted(pods, key=rank)[:diff]

    def update_status(self, rs: dict, pods: List[dict], error: Optional[str] = None) -> None:
        now = self.reg.clock()
        template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        mrs = rs["spec"].get("minReadySeconds", 0)
        labeled = sum(1 for p in pods if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items()))
        ready = sum(1 for p in pods if pod_ready(p))
        available = sum(1 for p in pods if pod_available(self.world, p, mrs, now))
        status = dict(rs.get("status") or {})
        status.update({"replicas": len(pods), "fullyLabeledReplicas": labeled, "readyReplicas": ready,
                       "availableReplicas": available, "observedGeneration": rs["metadata"].get("generation", 1)})
        for key in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            if not status[key]:
                status.pop(key)  # omitempty, as the real JSON encoding drops zero counts
        # replica_set_utils.go calculateStatus: ReplicaFailure is added once (kept while failures go
        # on) and removed after a sync without error. error "" = a failure still pending a retry.
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        failure = next((c for c in status.get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
        if error and failure is None:
            diff = len(pods) - int(rs["spec"].get("replicas", 0))
            failure = {"type": "ReplicaFailure", "status": "True", "lastTransitionTime": rfc3339(now),
                       "reason": "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else "", "message": error}
        if error is not None and failure is not None:
            conditions.append(failure)
        if conditions:
            status["conditions"] = conditions
        else:
            status.pop("conditions", None)
        if status != (rs.get("status") or {}):
            rs["status"] = status
            self.reg.update(RS, rs["metadata"]["namespace"], rs["metadata"]["name"], rs, subresource="status")
