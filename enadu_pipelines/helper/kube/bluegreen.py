"""The blue/green operations, each idempotent: read state first, write only what differs.

The live colour is the Service's selector (``app=<service>, color=<colour>``). The operations here
are the steps of the contract in DESIGN.md; ``helper/deploy.py`` strings them together and decides
what to undo when one fails.

Readiness follows kubectl's ``rollout status`` (kubectl/pkg/polymorphichelpers/rollout_status.go,
``DeploymentStatusViewer.Status``): the controller has observed the latest generation, the Progressing
condition did not time out (reason ProgressDeadlineExceeded), every replica is updated, no old replica
is left, and every updated replica is available, plus our own rule that availableReplicas equals
spec.replicas and is above zero.

The wait fails before the progress deadline only on failures that persist (:class:`FailFast`):
a kubelet reports a registry's passing 429/5xx as ErrImagePull and a ConfigMap created a moment late
as CreateContainerConfigError, and both heal by themselves. See :class:`FailFast` for the rules and
the kubelet sources they follow; a ReplicaFailure condition (pods the API server refuses: quota,
pod security) fails the wait at once.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import DeployFailed, HelperError, UsageProblem
from .client import Conflict, Invalid, Kube
from .manifest import COLOURS, COMMIT, COMMIT_PATTERN, IMAGE, LABEL, SPEC_HASH, Manifest
from .promotion import ABORTED
from .watching import Informer

HISTORY = "enadu.io/history"
HISTORY_LIMIT = 10
PULL_ATTEMPTS = 3  # failed pulls of one container before its pull failure counts as persistent
RESTARTS = 3  # restarts of one container in CrashLoopBackOff before its crash counts as persistent
DEFAULT_FAIL_GRACE = 60.0  # seconds a state the kubelet retries without back-off may last
# The counts above decide only once the first failure seen is this old (or the fail grace, if shorter):
# about what the default back-off (10 s, then 20 s) takes to give three tries (see FailFast).
FAIL_COUNTS_AFTER = 30.0


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class State:
    """What the cluster holds for one service."""

    service: Optional[Dict[str, Any]]
    deployments: Dict[str, Optional[Dict[str, Any]]]
    live: Optional[str] = None
    history: List[Dict[str, Any]] = field(default_factory=list)  # only entries that validate, newest first
    history_problems: List[str] = field(default_factory=list)  # why the others did not
    pinned: bool = False  # the Service selects color=legacy: the old script's pods, during a migration (kube/migration.py)

    def image(self, colour: Optional[str]) -> Optional[str]:
        dep = self.deployments.get(colour) if colour else None
        if not dep:
            return None
        containers = dep["spec"]["template"]["spec"].get("containers") or [{}]
        return (dep["metadata"].get("annotations") or {}).get(IMAGE) or containers[0].get("image")

    def commit(self, colour: Optional[str]) -> Optional[str]:
        """The commit the colour's Deployment was deployed from (its ``enadu.io/commit`` annotation),
        or None: none recorded, or a value that is not a full commit id (40 hex digits)."""
        dep = self.deployments.get(colour) if colour else None
        return commit_of(dep)

    def replicas(self, colour: Optional[str]) -> int:
        dep = self.deployments.get(colour) if colour else None
        return int((dep or {}).get("spec", {}).get("replicas") or 0)


def commit_of(deployment: Optional[Dict[str, Any]]) -> Optional[str]:
    """A Deployment's ``enadu.io/commit`` when it is a full commit id, else None (anyone who may patch
    Deployments can write it: it is checked like every annotation we read back)."""
    value = ((deployment or {}).get("metadata", {}).get("annotations") or {}).get(COMMIT)
    return value if isinstance(value, str) and COMMIT_PATTERN.fullmatch(value) else None


def read_state(kube: Kube, service_name: str) -> State:
    service = kube.get_service(service_name)
    deployments = {c: kube.get_deployment(f"{service_name}-{c}") for c in COLOURS}
    state = State(service, deployments)
    if service is not None:
        colour = (service.get("spec", {}).get("selector") or {}).get(LABEL)
        if colour == "legacy":  # pinned to the hand-made pods by a migration (kube/migration.py): no colour is live
            state.pinned, colour = True, None
        if colour is not None and colour not in COLOURS:
            raise UsageProblem(f"service {service_name} selects {LABEL}={colour}, which is not blue or green")
        state.live = colour
        state.history, state.history_problems = parse_history((service["metadata"].get("annotations") or {}).get(HISTORY))
    return state


# -- the history annotation ----------------------------------------------------------------------
#
# Anyone who may patch the Service can write this annotation: a much weaker right than deploying.
# So it is untrusted input. Every field of every entry is checked (images by the same rule as
# ``deploy --image``, colours, the timestamp's format, bounded printable text); an entry that does
# not validate is left out, and the reason kept for whoever acts on the history (rollback refuses).

HISTORY_MAX_CHARS = 64 * 1024  # ten entries of ours are a few kilobytes
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TEXT_LIMITS = {"by": 256, "build_url": 2000, "reason": 300, "migrated_uid": 64, "analysis": 300}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _entry_problem(entry: Any) -> Optional[str]:
    from .. import imageref

    if not isinstance(entry, dict):
        return "is not an object"
    at = entry.get("at")
    if not isinstance(at, str) or len(at) != 20:
        return f"at {_shown(at)} is not a time such as 2026-01-31T12:00:00Z"
    try:
        dt.datetime.strptime(at, TIME_FORMAT)
    except ValueError:
        return f"at {_shown(at)} is not a time such as 2026-01-31T12:00:00Z"
    if entry.get("colour") not in COLOURS:
        return f"colour {_shown(entry.get('colour'))} is not blue or green"
    if entry.get("previous_colour") is not None and entry.get("previous_colour") not in COLOURS:
        return f"previous_colour {_shown(entry.get('previous_colour'))} is not blue, green or null"
    for key in ("commit", "previous_commit"):
        value = entry.get(key)
        if value is not None and not (isinstance(value, str) and COMMIT_PATTERN.fullmatch(value)):
            return f"{key} {_shown(value)} is not a commit id (40 hex digits) or null"
    for key in ("image", "previous_image"):
        value = entry.get(key)
        if value is not None and imageref.problem(value) is not None:
            return f"{key} {_shown(value)} is not an image reference to deploy: {imageref.problem(value)}"
    for key, limit in _TEXT_LIMITS.items():
        value = entry.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > limit or not value.isprintable():
            return f"{key} {_shown(value)} is not one line of printable text of at most {limit} characters"
    return None


def parse_history(text: Any) -> Tuple[List[Dict[str, Any]], List[str]]:
    """The entries of a history annotation that validate (known keys only), and why others did not."""
    if text is None or text == "":
        return [], []
    if not isinstance(text, str) or len(text) > HISTORY_MAX_CHARS:
        return [], [f"the {HISTORY} annotation is longer than {HISTORY_MAX_CHARS} characters"]
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        return [], [f"the {HISTORY} annotation is not JSON"]
    if not isinstance(raw, list):
        return [], [f"the {HISTORY} annotation is not a JSON list"]
    entries, problems = [], []
    for number, entry in enumerate(raw[:HISTORY_LIMIT], 1):
        problem = _entry_problem(entry)
        if problem:
            problems.append(f"{HISTORY} entry {number}: {problem}")
        else:
            entries.append({k: entry.get(k) for k in HISTORY_KEYS if k in entry})
    return entries, problems


# -- readiness ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """What our own write of a colour's Deployment set: the status is judged against it.

    ``generation`` is ``metadata.generation`` in the answer to our create or update (0 after a
    scale: the Scale answer carries none, and the watch that follows lists the Deployment after our
    write, so its own generation is at least ours). ``stale_progress`` is the Progressing condition
    the object carried before our write when it said ProgressDeadlineExceeded: the controller keeps
    that condition when it syncs a scaling event or finds an existing ReplicaSet for the template
    (kubernetes pkg/controller/deployment/sync.go ``calculateStatus`` copies the conditions; only
    ``syncRolloutStatus`` replaces Progressing, once it sees progress), so until the condition
    changes it is a verdict on an earlier rollout, not on ours."""

    generation: int = 0
    stale_progress: Optional[Dict[str, Any]] = None
    stale_failure: Optional[Dict[str, Any]] = None  # the ReplicaFailure condition from before our write


def progress_condition(dep: Optional[Dict[str, Any]], kind: str = "Progressing") -> Optional[Dict[str, Any]]:
    for cond in ((dep or {}).get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def written_over(current: Optional[Dict[str, Any]], answer: Optional[Dict[str, Any]] = None) -> Written:
    """The :class:`Written` for a write to ``current`` (the object as read before) answered by ``answer``."""
    before = progress_condition(current)
    stale = dict(before) if before and before.get("reason") == "ProgressDeadlineExceeded" else None
    generation = int(((answer or {}).get("metadata") or {}).get("generation") or 0) if \
        (answer or {}).get("kind", "Deployment") == "Deployment" else 0
    failure = progress_condition(current, "ReplicaFailure")
    return Written(generation, stale, dict(failure) if failure else None)


def rollout_status(dep: Dict[str, Any], written: Optional[Written] = None) -> Tuple[bool, str]:
    """kubectl's rollout-status verdict for a Deployment, plus available == replicas > 0.

    As kubectl (pkg/polymorphichelpers/rollout_status.go, ``DeploymentStatusViewer.Status``), the
    status is judged only once ``status.observedGeneration`` reaches the generation: the object's
    own, and the one our write got back (``written``). A ProgressDeadlineExceeded condition that is
    the same one the object carried before our write is an earlier rollout's verdict: it is not
    judged (we wait for the controller to replace it, or for our own timeout)."""
    name = dep["metadata"]["name"]
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    written = written or Written()
    wanted_generation = max(int(dep["metadata"].get("generation") or 0), written.generation)
    if wanted_generation > int(status.get("observedGeneration") or 0):
        return False, f"deployment {name}: waiting for the controller to observe the new spec"
    failure = progress_condition(dep, "ReplicaFailure")
    if failure is not None and failure.get("status") == "True" and failure != written.stale_failure:
        # pkg/controller/replicaset/replica_set_utils.go calculateStatus sets it when creating (or
        # deleting) pods fails; deployment/progress.go getReplicaFailures copies it here. The
        # controller retries, but an admission refusal (quota, pod security) does not heal by itself.
        detail = " ".join(str(failure.get("message") or "").split())[:300]
        raise DeployFailed(f"deployment {name} cannot create its pods (ReplicaFailure "
                           f"{str(failure.get('reason') or '')[:40]}): {detail}")
    cond = progress_condition(dep)
    if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
        if written.stale_progress is not None and cond == written.stale_progress:
            return False, (f"deployment {name}: waiting for the controller to judge the new rollout "
                           f"(its ProgressDeadlineExceeded condition is from before our write)")
        raise DeployFailed(f"deployment {name} exceeded its progress deadline")
    want = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < want:
        return False, f"deployment {name}: {updated} of {want} new replicas updated"
    if total > updated:
        return False, f"deployment {name}: {total - updated} old replicas pending termination"
    if available < updated or available != want or want == 0:
        return False, f"deployment {name}: {available} of {want} updated replicas available"
    return True, f"deployment {name}: {available} of {want} replicas available"


def fully_available(dep: Optional[Dict[str, Any]]) -> bool:
    if not dep:
        return False
    try:
        return rollout_status(dep)[0]
    except DeployFailed:
        return False


def rollout_status_line(dep: Dict[str, Any]) -> str:
    try:
        return "is not fully available (" + rollout_status(dep)[1].split(": ", 1)[-1] + ")"
    except DeployFailed as e:
        return f"is not available ({e})"


class FailFast:
    """Which container failures among the new colour's pods persist, judged over the watch.

    What the kubelet reports, and which states heal by themselves:

    - Image pulls (pkg/kubelet/images/image_manager.go ``EnsureImageExists``): a failed pull is
      ErrImagePull with the runtime's error, for a missing image as for a registry's passing 429/5xx;
      it calls ``backOff.Next`` for the pod and image, and until that back-off (10 s doubling to
      300 s) expires every sync answers ImagePullBackOff without pulling. So one ErrImagePull, and
      the ImagePullBackOff after it, prove nothing: the pull counts as failing for good after
      ``PULL_ATTEMPTS`` failed pulls of one container (each ErrImagePull seen after another state
      is one; an ImagePullBackOff first seen counts for one).
    - Crashes (pkg/kubelet/container/sync_result.go ``ErrCrashLoopBackOff``; kuberuntime's
      ``doBackOff``): CrashLoopBackOff is the back-off between restarts; after ``RESTARTS`` restarts
      (``restartCount``) it counts as persistent.
    - States without a back-off of their own: CreateContainerConfigError
      (kuberuntime_container.go ``startContainer``, ``ErrCreateContainerConfig``: a ConfigMap or
      Secret or key not there yet), CreateContainerError, RunContainerError, the hook errors,
      ErrImageNeverPull and ImageInspectError are retried by the pod worker on every sync
      (pod_workers.go, ``backOffPeriod`` 10 s); they count after lasting ``grace`` seconds.
    - InvalidImageName (``applyDefaultImageTag`` cannot parse the reference) cannot heal: at once.

    The counts decide only once the container's first failure seen (a failed pull, a crash loop, a
    restart) is ``min(grace, FAIL_COUNTS_AFTER)`` old. pkg/kubelet/kubelet.go starts the crash
    back-off at ``initialCrashLoopBackOff`` (10 s, doubling to ``MaxCrashLoopBackOff``, 300 s), so
    three restarts used to take 30 s at least; under the ReduceDefaultCrashLoopBackOffDecay gate
    (1.33+) it is ``reducedInitialCrashLoopBackOff`` 1 s up to ``reducedMaxCrashLoopBackOff`` 60 s,
    and the kubelet's ``crashLoopBackOff.maxContainerRestartPeriod`` (KubeletCrashLoopBackOffMax) can
    cap it at 1 s: three restarts in 2-3 s, before a container waiting for a slow dependency had a
    chance. Pulls keep ``imageBackOffPeriod`` 10 s up to ``MaxImageBackOff`` 300 s, so for them the
    minimum rarely adds anything; it is one rule for both.

    Init containers are judged the same way. A pod being deleted is not judged.
    """

    PULL = {"ErrImagePull", "RegistryUnavailable"}  # a failed pull (image_manager.go's errors)
    PULL_BACKOFF = {"ImagePullBackOff"}
    GRACE = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PreStartHookError",
             "PostStartHookError", "ErrImageNeverPull", "ImageInspectError"}
    AT_ONCE = {"InvalidImageName"}

    def __init__(self, image: str, grace: float = DEFAULT_FAIL_GRACE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.image = image
        self.grace = grace
        self.counts_after = min(grace, FAIL_COUNTS_AFTER)
        self.clock = clock
        self.seen: Dict[Tuple[str, str], Dict[str, Any]] = {}  # (pod uid, container) -> what we saw

    def check(self, pods: Dict[str, Dict[str, Any]]) -> Optional[str]:
        """The first persisting failure among ``pods`` (one line), or None; call after every change."""
        for name in sorted(pods):
            pod = pods[name]
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            spec = pod.get("spec") or {}
            if self.image not in {c.get("image") for c in spec.get("containers") or [] if isinstance(c, dict)}:
                continue
            status = pod.get("status") or {}
            for kind, key in (("init container", "initContainerStatuses"), ("container", "containerStatuses")):
                for cs in status.get(key) or []:
                    if isinstance(cs, dict):
                        verdict = self._judge(name, (pod.get("metadata") or {}).get("uid") or name, kind, cs)
                        if verdict:
                            return verdict
        return None

    def _judge(self, pod: str, uid: str, kind: str, cs: Dict[str, Any]) -> Optional[str]:
        container = str(cs.get("name") or "")
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        message = " ".join(str(waiting.get("message") or "").split())
        seen = self.seen.setdefault((uid, f"{kind}/{container}"),
                                    {"reason": "", "pulls": 0, "pull_error": "", "since": 0.0, "failed": None})
        restarts = int(cs.get("restartCount") or 0)
        if seen["failed"] is None and (reason in self.PULL | self.PULL_BACKOFF or reason == "CrashLoopBackOff"
                                       or restarts > 0):
            seen["failed"] = self.clock()  # the first failure seen: the counts need it min(grace, 30 s) old
        counted = seen["failed"] is not None and self.clock() - seen["failed"] >= self.counts_after
        changed = reason != seen["reason"]
        if changed:
            seen["since"] = self.clock()
            if reason in self.PULL or (reason in self.PULL_BACKOFF and seen["pulls"] == 0):
                seen["pulls"] += 1
        if reason in self.PULL and message:
            seen["pull_error"] = message
        seen["reason"] = reason
        image = str(cs.get("image") or self.image)
        where = f"pod {pod} {kind} {container}"
        if reason in self.AT_ONCE:
            return f"{where}: {reason}" + (f" ({_cut(message)})" if message else "")
        if reason in self.PULL | self.PULL_BACKOFF and seen["pulls"] >= PULL_ATTEMPTS and counted:
            why = seen["pull_error"] or message
            return (f"{where}: image {image} could not be pulled ({seen['pulls']} attempts; {reason}"
                    + (f": {_cut(why)}" if why else "") + ")")
        if reason == "CrashLoopBackOff" and restarts >= RESTARTS and counted:
            last = ((cs.get("lastState") or {}).get("terminated") or {})
            exit_code = f", last exit code {last.get('exitCode')}" if last.get("exitCode") is not None else ""
            return f"{where}: CrashLoopBackOff after {restarts} restarts{exit_code}"
        if reason in self.GRACE and self.clock() - seen["since"] >= self.grace:
            return (f"{where}: {reason} for {self.grace:g} s" + (f" ({_cut(message)})" if message else ""))
        return None


def _cut(text: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters; a long runtime error keeps its end, where the
    reason is (``...: not found``, ``...: 503 Service Unavailable``)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit // 3] + " ... " + text[-(limit - limit // 3 - 5):]


def pod_ready(pod: Dict[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def wait_available(kube: Kube, service_name: str, colour: str, image: str, *, deadline: float,
                   log: Callable[[str], None], written: Optional[Written] = None,
                   fail_grace: float = DEFAULT_FAIL_GRACE) -> None:
    """Watch the colour's Deployment and pods until it is fully available, or fail fast on a
    failure that persists (:class:`FailFast`, ReplicaFailure in :func:`rollout_status`).

    ``written`` (what :func:`ensure_colour` returned) keeps an earlier rollout's verdict out."""
    name = f"{service_name}-{colour}"
    judge = FailFast(image, fail_grace)

    def check(caches: Dict[str, Dict[str, Dict[str, Any]]]) -> Tuple[bool, str]:
        failure = judge.check(caches["pods"])
        if failure:
            raise DeployFailed(f"the new colour {colour} cannot start: {failure}")
        dep = caches["deployments"].get(name)
        if dep is None:
            return False, f"deployment {name}: waiting for it to exist"
        return rollout_status(dep, written)

    with Informer(kube, log) as informer:
        informer.watch("deployments", kube.apps.list_namespaced_deployment, field_selector=f"metadata.name={name}")
        informer.watch("pods", kube.core.list_namespaced_pod,
                       label_selector=f"app={service_name},{LABEL}={colour}")
        informer.wait(check, deadline=deadline, recheck=max(0.5, min(fail_grace / 4, 5.0)),
                      timeout_message=lambda last: DeployFailed(f"timed out waiting for {name}: {last or 'no status'}"))


# kubernetes/kubernetes#134860 ("Port service/proxy subresource from Endpoints to EndpointSlice",
# first released in v1.37.0-alpha.2): from 1.37 the API server's service proxy picks a pod from the
# Service's EndpointSlices; before, from the legacy Endpoints object.
PROXY_BY_SLICES_SINCE = (1, 37)
# How long a missing Endpoints object is waited for before the slices alone are trusted.
ENDPOINTS_APPEAR = 10.0
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"


def server_minor(info: Dict[str, Any]) -> Optional[Tuple[int, int]]:
    """(major, minor) of a /version answer: from ``gitVersion`` ("v1.34.2", "v1.30.4-eks-1a2b"), else
    from ``major``/``minor`` (which managed clusters write as "30+"); None when neither parses."""
    m = re.match(r"^v?(\d+)\.(\d+)", str(info.get("gitVersion") or ""))
    if m:
        return int(m.group(1)), int(m.group(2))
    major, minor = (re.match(r"^(\d+)", str(info.get(k) or "")) for k in ("major", "minor"))
    return (int(major.group(1)), int(minor.group(1))) if major and minor else None


def proxy_route(kube: Kube, log: Callable[[str], None]) -> Tuple[bool, str]:
    """Whether the API server's service proxy routes by EndpointSlices (else by Endpoints), and why,
    from GET /version. A version that cannot be read counts as older (Endpoints, with the fallback)."""
    try:
        info = kube.server_version()
    except HelperError as e:
        log(f"warning: could not read the server version ({e}): assuming its service proxy routes by "
            "the Endpoints object, as before Kubernetes 1.37")
        return False, "server version unknown"
    version = server_minor(info)
    said = str(info.get("gitVersion") or f"{info.get('major')}.{info.get('minor')}")[:40]
    if version is None:
        log(f"warning: the server version {said!r} does not parse: assuming its service proxy routes by "
            "the Endpoints object, as before Kubernetes 1.37")
        return False, f"Kubernetes {said}"
    if version >= PROXY_BY_SLICES_SINCE:
        return True, f"Kubernetes {said}, since 1.37: kubernetes#134860"
    return False, f"Kubernetes {said}, before 1.37"


def wait_endpoints(kube: Kube, service: str, app: str, colour: str, *, deadline: float,
                   log: Callable[[str], None], proxy: bool = False,
                   endpoints_appear: float = ENDPOINTS_APPEAR) -> None:
    """Watch until the Service's EndpointSlices list exactly the ready pods of ``colour``.

    ``proxy``: before a request through the API server's service proxy, wait for what it routes by
    (:func:`proxy_route`, from the server's version). From 1.37 that is the EndpointSlices
    (kubernetes/kubernetes#134860). Up to 1.36 it is the legacy Endpoints object
    (pkg/registry/core/service/storage/storage.go, ``ResourceLocation``: ``r.endpoints.Get(ctx,
    svcName, ...)``), which a separate controller writes (pkg/controller/endpoint/endpoints_controller.go)
    and which can lag the slices: until it has caught up, a smoke request could be answered by the
    pods the Service selected before. So it is waited for too, unless it cannot converge: no object
    within ``endpoints_appear`` seconds (the Endpoints controller can be disabled: the API is
    deprecated since 1.33, KEP-4974), or an object cut at 1000 addresses (annotation
    ``endpoints.kubernetes.io/over-capacity: truncated``); then the slices alone, with a warning.
    The smoke test's ``X-Enadu-Image`` check still tells which image answered."""
    by_slices, why = proxy_route(kube, log) if proxy else (False, "")
    slice_note = f"EndpointSlices, which the API server's service proxy routes by ({why})" if by_slices \
        else "EndpointSlices"
    proxy_note = f"Endpoints, which the API server's service proxy routes by ({why})"
    started = time.monotonic()
    fallback: List[str] = []  # why the Endpoints are not waited for, once decided

    def check(caches: Dict[str, Dict[str, Dict[str, Any]]]) -> Tuple[bool, str]:
        pods = caches["pods"]
        wanted = {n for n, p in pods.items() if (p["metadata"].get("labels") or {}).get(LABEL) == colour and pod_ready(p)}

        def split(refs: List[Tuple[Optional[str], bool]]) -> Tuple[set, set]:
            ready, other_pods = set(), set()
            for ref, is_ready in refs:
                colour_of = (pods.get(ref or "", {}).get("metadata", {}).get("labels") or {}).get(LABEL)
                if colour_of != colour:
                    other_pods.add(ref)
                elif is_ready:
                    ready.add(ref)
            return ready, other_pods

        ready, other_pods = split([((ep.get("targetRef") or {}).get("name"),
                                    (ep.get("conditions") or {}).get("ready") is not False)
                                   for eps in caches["endpointslices"].values() for ep in eps.get("endpoints") or []])
        done = bool(wanted) and ready == wanted and not other_pods
        if not proxy or by_slices or fallback:
            return done, (f"service {service}: {slice_note} are the {len(ready)} ready pods of {colour}" if done else
                          f"service {service}: {len(ready)} of {len(wanted)} {colour} pods in {slice_note}, "
                          f"{len(other_pods)} other")
        legacy = caches["endpoints"].get(service)
        if legacy is None and time.monotonic() - started >= endpoints_appear:
            fallback.append(f"no Endpoints object for service {service} appeared within {endpoints_appear:.0f} s "
                            "(is the Endpoints controller disabled? the API is deprecated since Kubernetes 1.33)")
        elif legacy is not None and (legacy["metadata"].get("annotations") or {}).get(OVER_CAPACITY):
            fallback.append(f"the Endpoints object of service {service} is truncated ({OVER_CAPACITY}), "
                            "so it cannot list every pod")
        if fallback:
            log(f"warning: {fallback[0]}; waiting for the EndpointSlices only, although the API server's service "
                f"proxy routes by Endpoints ({why}); the smoke answer's image header still tells who answered")
            return check(caches)
        # Only ``addresses`` are routed to; ``notReadyAddresses`` never are.
        legacy_ready, legacy_other = split([((a.get("targetRef") or {}).get("name"), True)
                                            for eps in caches["endpoints"].values()
                                            for subset in eps.get("subsets") or [] for a in subset.get("addresses") or []])
        legacy_done = bool(wanted) and legacy_ready == wanted and not legacy_other
        if done and legacy_done:
            return True, f"service {service}: EndpointSlices and {proxy_note}, are the {len(ready)} ready pods of {colour}"
        return False, (f"service {service}: {len(ready)} of {len(wanted)} {colour} pods in EndpointSlices, "
                       f"{len(other_pods)} other; {proxy_note}: {len(legacy_ready)} of {len(wanted)}, "
                       f"{len(legacy_other)} other")

    with Informer(kube, log) as informer:
        informer.watch("endpointslices", kube.discovery.list_namespaced_endpoint_slice,
                       label_selector=f"kubernetes.io/service-name={service}")
        informer.watch("pods", kube.core.list_namespaced_pod, label_selector=f"app={app}")
        if proxy and not by_slices:
            informer.watch("endpoints", kube.core.list_namespaced_endpoints, field_selector=f"metadata.name={service}")
        informer.wait(check, deadline=deadline, recheck=1.0 if proxy and not by_slices else 0.0,
                      timeout_message=lambda last: DeployFailed(f"endpoints of service {service} did not converge: {last}"))


# -- writes ------------------------------------------------------------------------------------


def ensure_colour(kube: Kube, manifest: Manifest, state: State, colour: str, image: str, replicas: int,
                  build_url: str, log: Callable[[str], None], commit: str = "") -> Written:
    """Make ``<service>-<colour>`` run ``image`` at ``replicas``, writing only what differs.

    ``commit`` (when known) is recorded as the Deployment's ``enadu.io/commit``: a colour that runs
    the same pod template but names another commit is replaced (metadata only: no pod restarts), so
    the annotation always names the commit of the deploy that last wrote the colour.

    Returns what the write set (:class:`Written`), for :func:`wait_available` to judge by."""
    desired = manifest.coloured_deployment(colour, image, replicas, build_url, commit)
    name = desired["metadata"]["name"]
    current = state.deployments.get(colour)
    for _ in range(5):
        if current is None:
            desired["metadata"].pop("resourceVersion", None)  # set for an update we gave up on
            try:
                answer = kube.create_deployment(desired)
                log(f"created deployment {name} with {image} at {replicas} replicas")
                return written_over(None, answer)
            except Conflict:
                current = kube.get_deployment(name)  # created meanwhile (or by our lost request)
                continue
        same_spec = (current["metadata"].get("annotations") or {}).get(SPEC_HASH) == \
            desired["metadata"]["annotations"][SPEC_HASH] and (not commit or commit_of(current) == commit)
        if same_spec and ABORTED in (current["metadata"].get("annotations") or {}):
            # a deploy takes the kept colour over: its aborted mark goes (a replace below drops it too, as
            # ``desired`` carries only the manifest's annotations), not judged by times from other clocks
            current = {**current, "metadata": {**current["metadata"], "annotations": {
                k: v for k, v in current["metadata"]["annotations"].items() if k != ABORTED}}}
            current.pop("status", None)
            try:
                current = kube.replace_deployment(current)
                log(f"removed the aborted mark of deployment {name}: this deploy takes it over")
            except Conflict:
                current = kube.get_deployment(name)
            continue
        if same_spec and int(current["spec"].get("replicas") or 0) == replicas:
            log(f"deployment {name} already runs {image} at {replicas} replicas")
            # Nothing written: a verdict the object carries is about exactly this spec.
            return Written(int(current["metadata"].get("generation") or 0))
        if same_spec:
            answer = kube.scale_deployment(name, replicas)
            log(f"scaled deployment {name} to {replicas}")
            return written_over(current, answer)
        desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        try:
            answer = kube.replace_deployment(desired)
            log(f"updated deployment {name} to {image} at {replicas} replicas")
            return written_over(current, answer)
        except Conflict:
            current = kube.get_deployment(name)
        except Invalid as e:
            if not e.immutable_selector():
                # Any other refusal is about what we asked for: the idle colour stays as it is.
                raise DeployFailed(f"the API server refused the update of deployment {name} (422 Invalid): "
                                   f"{e.first_cause() or e}; deployment {name} was kept, not replaced") from e
            # The selector (immutable: the Deployment strategy's ValidateUpdate refuses a change, see
            # client.Invalid.immutable_selector) differs from an older template: the colour is idle, so
            # replace the object instead.
            kube.delete_deployment(name)
            log(f"deleted deployment {name}: its selector no longer matches the manifest")
            current = None
            _wait_gone(kube, name)
    raise DeployFailed(f"deployment {name} kept changing under us; gave up updating it")


def _wait_gone(kube: Kube, name: str, seconds: float = 60) -> None:
    """Watch until the Deployment ``name`` no longer exists."""

    def check(caches: Dict[str, Dict[str, Dict[str, Any]]]) -> Tuple[bool, str]:
        gone = name not in caches["deployments"]
        return gone, f"deployment {name}: {'deleted' if gone else 'waiting for its deletion'}"

    with Informer(kube, lambda line: None) as informer:
        informer.watch("deployments", kube.apps.list_namespaced_deployment, field_selector=f"metadata.name={name}")
        informer.wait(check, deadline=time.monotonic() + seconds,
                      timeout_message=lambda last: DeployFailed(f"deployment {name} was not deleted within {seconds:.0f} s"))


def live_replicas(state: State, colour: Optional[str]) -> int:
    """What a colour runs now: the larger of its spec and status (an autoscaler may have moved both)."""
    dep = state.deployments.get(colour) if colour else None
    if not dep:
        return 0
    return max(int(dep["spec"].get("replicas") or 0), int((dep.get("status") or {}).get("replicas") or 0))


HISTORY_KEYS = ("at", "colour", "image", "previous_colour", "previous_image", "build_url", "by", "reason",
                "migrated_uid",  # the hand-made Deployment's metadata.uid a migration switched away from
                "analysis",  # the analysis after the switch: ANALYSIS_PENDING until its verdict is recorded
                # the enadu.io/commit of the colour made live and of the one before (rollback redeploys a deleted
                # colour with the previous image and writes its previous_commit back on it)
                "commit", "previous_commit")
# A switch made with an analysis after it to come records this; the verdict replaces it ("passed: <line>",
# "failed: <line>", "not analysed: <why>"). Still there on the live colour's entry: the deploy stopped
# between its switch and its verdict (Deployer.pending_analysis).
ANALYSIS_PENDING = "pending"


def history_entry(state: State, colour: str, image: str, build_url: str, by: str) -> Dict[str, Any]:
    entry = {"at": now_iso(), "colour": colour, "image": image or None, "previous_colour": state.live,
             "previous_image": state.image(state.live), "build_url": build_url or None, "by": by}
    commits = {"commit": state.commit(colour), "previous_commit": state.commit(state.live)}
    entry.update({k: v for k, v in commits.items() if v})  # recorded only when known: older entries have neither
    return entry


def _recordable(entry: Dict[str, Any]) -> Dict[str, Any]:
    """``entry`` as it must read back: an image outside the rule (a Deployment made by other tools)
    is recorded as unknown, text is cut to its bound with control characters replaced."""
    from .. import imageref

    clean = {k: entry.get(k) for k in HISTORY_KEYS if k in entry}
    for key in ("image", "previous_image"):
        if clean.get(key) is not None and imageref.problem(clean[key]) is not None:
            clean[key] = None
    for key, limit in _TEXT_LIMITS.items():
        if clean.get(key) is not None:
            clean[key] = "".join(ch if ch.isprintable() else "?" for ch in str(clean[key]).strip())[:limit] or None
    return clean


def switch(kube: Kube, name: str, state: State, colour: str, entry: Dict[str, Any],
           log: Callable[[str], None], manifest: Optional[Manifest] = None) -> None:
    """Point the Service at ``colour`` and record ``entry`` in its history, in one checked write.

    An existing Service is changed with a JSON patch whose first operation tests its
    resourceVersion, so a switch never lands on a Service someone else changed since we read it;
    if the test fails we read again, and a Service already selecting ``colour`` (our own earlier,
    unacknowledged write) counts as done.
    """
    target = state.deployments.get(colour)
    if not fully_available(target):
        problem = "does not exist" if target is None else rollout_status_line(target)
        raise DeployFailed(f"refusing to point service {name} at {colour}: deployment {name}-{colour} {problem}")
    if state.history_problems:
        log(f"warning: the Service's history keeps only the entries that validate; left out: "
            f"{'; '.join(state.history_problems[:3])}")
    history = json.dumps(([_recordable(entry)] + state.history)[:HISTORY_LIMIT], separators=(",", ":"))
    service = state.service
    for _ in range(5):
        if service is None:
            if manifest is None:
                raise UsageProblem(f"service {name} does not exist; deploy creates it from the manifest")
            body = manifest.coloured_service(manifest.service, colour)
            body["metadata"].setdefault("annotations", {})[HISTORY] = history
            try:
                kube.create_service(body)
                log(f"created service {name} selecting {LABEL}={colour}")
                return
            except Conflict:
                service = kube.get_service(name)
                continue
        selector = service["spec"].get("selector") or {}
        if selector.get(LABEL) == colour:
            log(f"service {name} already selects {LABEL}={colour}")
            return
        if selector.get(LABEL) != ("legacy" if state.pinned else state.live):
            raise DeployFailed(f"service {name} changed during the deploy (now selects {LABEL}={selector.get(LABEL)})")
        ops: List[Dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": service["metadata"]["resourceVersion"]},
            {"op": "replace" if LABEL in selector else "add", "path": f"/spec/selector/{LABEL}", "value": colour},
        ]
        if service["metadata"].get("annotations"):
            ops.append({"op": "add", "path": "/metadata/annotations/" + HISTORY.replace("/", "~1"), "value": history})
        else:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {HISTORY: history}})
        try:
            kube.json_patch_service(name, ops)
            log(f"switched service {name} from {LABEL}={selector.get(LABEL)} to {LABEL}={colour}")
            return
        except (Conflict, Invalid):
            service = kube.get_service(name)
    raise DeployFailed(f"service {name} kept changing under us; did not switch")


def mark_entry(history: List[Dict[str, Any]], entry: Dict[str, Any], changes: Dict[str, str]) -> bool:
    """Set ``changes`` (each cut to its bound) on the entry of ``history`` with ``entry``'s time and
    colour, for a write of that history (:func:`switch`); False when it has none."""
    for old in history:
        if (old.get("at"), old.get("colour")) == (entry.get("at"), entry.get("colour")):
            old.update(_recordable(dict(changes)))
            return True
    return False


def amend_entry(kube: Kube, name: str, entry: Dict[str, Any], changes: Dict[str, str]) -> bool:
    """Set ``changes`` on the history entry ``entry`` (found by its time and colour) of Service
    ``name``, in a JSON patch whose first operation tests the Service's resourceVersion, as
    :func:`switch` writes (kopf's patching with a resourceVersion test); on a conflict it reads
    again. Other entries are kept as they are. False when the entry is no longer there (or the
    annotation no longer reads as a list); the Service kept changing: False too."""
    for _ in range(5):
        svc = kube.get_service(name)
        raw = ((svc or {}).get("metadata", {}).get("annotations") or {}).get(HISTORY)
        try:
            entries = json.loads(raw) if raw else []
        except (ValueError, RecursionError):
            return False
        at = next((i for i, e in enumerate(entries if isinstance(entries, list) else [])
                   if isinstance(e, dict) and (e.get("at"), e.get("colour")) == (entry.get("at"), entry.get("colour"))),
                  None)
        if at is None:
            return False
        entries[at].update(_recordable(dict(changes)))  # the changed keys only, each cut to its bound
        try:
            kube.json_patch_service(name, [
                {"op": "test", "path": "/metadata/resourceVersion", "value": svc["metadata"]["resourceVersion"]},
                {"op": "replace", "path": "/metadata/annotations/" + HISTORY.replace("/", "~1"),
                 "value": json.dumps(entries, separators=(",", ":"))}])
            return True
        except (Conflict, Invalid):
            continue
    return False


def point_preview(kube: Kube, manifest: Manifest, colour: str, log: Callable[[str], None]) -> str:
    """Make the preview Service select ``colour``; returns its name."""
    name = manifest.preview_name()
    template = manifest.preview or {**manifest.service, "metadata": {**manifest.service["metadata"], "name": name}}
    for _ in range(5):
        current = kube.get_service(name)
        if current is None:
            try:
                kube.create_service(manifest.coloured_service(template, colour))
                log(f"created preview service {name} selecting {LABEL}={colour}")
                return name
            except Conflict:
                continue
        selector = current["spec"].get("selector") or {}
        if selector.get(LABEL) == colour:
            return name
        ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": current["metadata"]["resourceVersion"]},
               {"op": "replace" if LABEL in selector else "add", "path": f"/spec/selector/{LABEL}", "value": colour}]
        try:
            kube.json_patch_service(name, ops)
            log(f"pointed preview service {name} at {LABEL}={colour}")
            return name
        except (Conflict, Invalid):
            continue
    raise DeployFailed(f"preview service {name} kept changing under us")


def retarget_hpas(kube: Kube, service_name: str, source: str, target: str, log: Callable[[str], None]) -> None:
    """HorizontalPodAutoscalers scaling the ``source`` colour's Deployment now scale ``target``'s."""
    old, new = f"{service_name}-{source}", f"{service_name}-{target}"
    for hpa in kube.list_hpas().get("items") or []:
        ref = hpa.get("spec", {}).get("scaleTargetRef") or {}
        if ref.get("kind") != "Deployment" or ref.get("name") != old:
            continue
        name = hpa["metadata"]["name"]
        try:
            kube.json_patch_hpa(name, [
                {"op": "test", "path": "/metadata/resourceVersion", "value": hpa["metadata"]["resourceVersion"]},
                {"op": "replace", "path": "/spec/scaleTargetRef/name", "value": new}])
            log(f"horizontalpodautoscaler {name} now scales {new}")
        except (Conflict, Invalid):
            log(f"horizontalpodautoscaler {name} changed meanwhile; left as it is")


def retire(kube: Kube, service_name: str, state: State, colour: str, how: str, log: Callable[[str], None]) -> None:
    """Scale a colour to zero or delete it (a no-op when already so)."""
    name = f"{service_name}-{colour}"
    current = state.deployments.get(colour)
    if current is None:
        return
    if how == "delete":
        kube.delete_deployment(name)
        log(f"deleted deployment {name}")
    elif int(current["spec"].get("replicas") or 0) != 0:
        kube.scale_deployment(name, 0)
        log(f"scaled deployment {name} to 0")


def switched_at(state: State) -> Optional[float]:
    """Seconds since the last recorded switch, if the history has one.

    The time is someone's clock, written where anyone who may patch the Service can change it:
    a time in the future counts as "just now" (0 s), so a wait computed from it never exceeds the
    wait it shortens."""
    if not state.history:
        return None
    try:
        at = dt.datetime.strptime(state.history[0]["at"], TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
    except (KeyError, ValueError, TypeError):
        return None
    return max(0.0, (dt.datetime.now(dt.timezone.utc) - at).total_seconds())
