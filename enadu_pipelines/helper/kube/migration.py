"""Migrating from the hand-made era: the old deploy script's Service and Deployment.

The old script left a Service selecting ``app=<service>`` (no colour) and a Deployment whose pods
carry ``app=<service>``. A colour's pods carry ``app=<service>`` too, so that Service would send
production traffic to a new colour as soon as its pods turn ready — before it is smoke-tested. So
before any colour starts, the Service is *pinned* to the old pods:

1. label each old pod ``color=legacy`` (a metadata-only patch: the pod keeps running and serving);
2. add ``color=legacy`` to the Service's selector, in a patch that tests its resourceVersion; the
   set of endpoints does not change (the same pods), so no request is lost;
3. then deploy blue/green as usual: the new colour's pods carry ``color=blue``, which the pinned
   selector never matches; the switch replaces ``legacy`` by ``blue``.

Why the pods and not the old Deployment's template: any change to a Deployment's pod template,
a label included, makes the controller start a new ReplicaSet and replace every pod (kubernetes
pkg/controller/deployment/util/deployment_util.go ``FindNewReplicaSet``/``EqualIgnoreHash``: the new
ReplicaSet is the one whose template equals the Deployment's; sync.go ``getNewReplicaSet`` creates
it, named ``<deployment>-<pod-template-hash>``) — a restart of production, and with a ``Recreate``
strategy an outage. A label added to a pod does not change who owns it: the ReplicaSet keeps a pod
while its selector matches the pod's labels (pkg/controller/controller_ref_manager.go ``ClaimPods``:
``match`` is ``Selector.Matches(pod.Labels)``; extra labels still match), so nothing is replaced.

The price: a pod the old ReplicaSet creates later (a crash, an eviction) is made from its template
(pkg/controller/replicaset/replica_set.go ``manageReplicas`` → ``CreatePods`` with
``rs.Spec.Template``) and lacks the label, so the pinned Service would not send it traffic. While
the deploy runs, :class:`KeepPinned` watches the old pods and labels each newcomer; a deploy that
fails before the switch removes the pin again (the Service selects ``app=<service>`` as before), only
once nothing of a colour is left for the colourless selector to reach (:func:`unpin`), and the
labeller runs until then. When the un-pin cannot be done (the colour's pods outlive the bound, or a
SIGTERM's grace is too short) every message says so (:func:`pinned_note`): nothing keeps the label
up any more, so the next deploy or an abort must end the pin.

Only the Deployment ``services.<service>.migrate_from_handmade`` names (the manifest's annotation
``enadu.io/migrate-from``) is migrated from; it is also the only one the migration Role names.

Anything else reachable through the colourless selector — pods of another Deployment, bare pods, a
ReplicaSet of its own — is refused with the steps to take by hand: we would not know how to retire it.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import DeployFailed, HelperError
from .client import Conflict, Invalid, Kube
from .manifest import COLOURS, LABEL, Manifest

LEGACY = "legacy"  # the colour label the old pods get while the Service is pinned to them
HASH_LABEL = "pod-template-hash"  # set by the deployment controller on its ReplicaSets' pods (sync.go)


@dataclass
class Legacy:
    """The hand-made era's objects behind a Service without a colour."""

    name: str  # the old Deployment
    deployment: Optional[Dict[str, Any]]
    selector: Dict[str, str]  # the Service's selector without the colour key
    pods: List[Dict[str, Any]] = field(default_factory=list)  # its running pods the selector reaches
    pinned: bool = False  # the Service selects color=legacy already (an earlier run pinned it)

    @property
    def image(self) -> Optional[str]:
        containers = ((self.deployment or {}).get("spec", {}).get("template", {}).get("spec") or {}).get("containers")
        return (containers or [{}])[0].get("image")

    @property
    def replicas(self) -> int:
        dep = self.deployment or {}
        return max(int(dep.get("spec", {}).get("replicas") or 0), int((dep.get("status") or {}).get("replicas") or 0))

    def selector_text(self, colour: Optional[str] = LEGACY) -> str:
        labels = dict(self.selector, **({LABEL: colour} if colour else {}))
        return ",".join(f"{k}={v}" for k, v in labels.items())

    def describe(self, old_deployment: str) -> Dict[str, Any]:
        return {"deployment": self.name, "image": self.image, "pods_pinned": len(self.pods),
                "old_deployment": old_deployment}


def _labels(obj: Dict[str, Any]) -> Dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def _controller(obj: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    return next((r for r in obj.get("metadata", {}).get("ownerReferences") or [] if r.get("controller")), None)


def owner_deployment(pod: Dict[str, Any]) -> Optional[str]:
    """The Deployment a pod's ReplicaSet belongs to, by the controller's naming rule: a Deployment's
    ReplicaSet is ``<deployment>-<pod-template-hash>`` and labels its pods with that hash (sync.go
    ``getNewReplicaSet``). None for pods no Deployment's ReplicaSet made."""
    ref, pod_hash = _controller(pod), _labels(pod).get(HASH_LABEL)
    if not ref or ref.get("kind") != "ReplicaSet" or not pod_hash \
            or not str(ref.get("name", "")).endswith("-" + pod_hash):
        return None
    return str(ref["name"])[: -len(pod_hash) - 1] or None


def _selects(selector: Dict[str, str], labels: Dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def list_pods(kube: Kube, selector: Dict[str, str]) -> List[Dict[str, Any]]:
    text = ",".join(f"{k}={v}" for k, v in selector.items())
    listing = kube.call(f"list pods {text}", kube.core.list_namespaced_pod, kube.namespace, label_selector=text)
    return [p for p in listing.get("items") or [] if not p.get("metadata", {}).get("deletionTimestamp")]


def refusal(service: str, problem: str, selector: str) -> DeployFailed:
    return DeployFailed(
        f"service {service} selects {selector} without a colour, and {problem}: not migrated, nothing changed. "
        f"By hand: point service {service} at the pods that should serve (kubectl label pod <pod> {LABEL}={LEGACY}, "
        f"then kubectl patch service {service} -p '{{\"spec\":{{\"selector\":{{\"{LABEL}\":\"{LEGACY}\"}}}}}}'), "
        f"remove the others, and run deploy again")


def detect(kube: Kube, service: str, state: Any, manifest: Manifest) -> Optional[Legacy]:
    """The hand-made objects behind ``state``'s Service, when it selects no colour; else None.

    Only a Service without a colour (or pinned by an earlier run) costs requests: a pod list by its
    selector, and a get of the Deployment those pods come from."""
    svc = state.service
    if svc is None:
        return None
    full = svc.get("spec", {}).get("selector") or {}
    if full.get(LABEL) in COLOURS:
        return None
    selector = {k: str(v) for k, v in full.items() if k != LABEL}
    shown = ",".join(f"{k}={v}" for k, v in full.items()) or "nothing"
    if not selector:
        raise refusal(service, "its selector is empty (its endpoints are managed by hand)", shown)
    template = manifest.deployment["spec"]["template"]["metadata"].get("labels") or {}
    if not _selects(selector, template):
        raise refusal(service, f"the manifest's pods (labels {','.join(f'{k}={v}' for k, v in template.items())}) "
                               "would not match it after the switch", shown)
    reached = list_pods(kube, selector)
    if full.get(LABEL) is None:  # not pinned yet: production reaches every pod the selector matches
        coloured = sorted((p["metadata"]["name"], _labels(p)[LABEL], owner_deployment(p)) for p in reached
                          if _labels(p).get(LABEL) in COLOURS)
        if coloured:  # someone mixed the eras: un-pinning after a failure would re-expose these pods
            pod, colour, owner = coloured[0]
            stop = f"kubectl scale deployment {owner} --replicas=0" if owner else f"kubectl delete pod {pod}"
            raise refusal(service, f"it also sends production traffic to pod {pod} ({LABEL}={colour}, "
                                   f"{'deployment ' + owner if owner else 'no Deployment'}), a colour no switch ever "
                                   f"selected (stop it first: {stop})", shown)
    pods = [p for p in reached if _labels(p).get(LABEL) not in COLOURS]
    odd = sorted(p["metadata"]["name"] for p in pods if _labels(p).get(LABEL) not in (None, LEGACY))
    if odd:
        raise refusal(service, f"pod {odd[0]} carries a {LABEL} label that is neither blue, green nor {LEGACY}", shown)
    owners = {owner_deployment(p) for p in pods}
    if None in owners:
        stray = sorted(p["metadata"]["name"] for p in pods if owner_deployment(p) is None)
        raise refusal(service, f"pod {stray[0]} is not run by a Deployment", shown)
    names = sorted(n for n in owners if n)
    if len(names) > 1:
        raise refusal(service, f"its pods come from several Deployments ({', '.join(names)})", shown)
    configured = manifest.migrate_from  # services.<service>.migrate_from_handmade in enadu.yaml
    if not names and configured is None:
        return None  # nothing runs behind it, and no migration configured: an ordinary first deploy
    name = names[0] if names else str(configured)
    if name in (f"{service}-{c}" for c in COLOURS):
        raise refusal(service, f"pods of deployment {name} lack their {LABEL} label", shown)
    if name != configured:
        said = (f"enadu.yaml's services.{service}.migrate_from_handmade names {configured}" if configured else
                f"migration from the hand-made era is off for service {service}")
        raise DeployFailed(
            f"service {service} selects {shown} without a colour and its pods belong to the hand-made deployment "
            f"{name}, but {said}: not migrated, nothing changed. Set services.{service}.migrate_from_handmade: "
            f"{name} in enadu.yaml, run enadu-pipelines render, apply resources/enadu/k8s/{service}.rbac.yaml "
            f"(its migration Role names that deployment), and run deploy again")
    deployment = kube.get_deployment(name)
    if deployment is None and not pods:
        return None  # a Service with no colour and nothing behind it: an ordinary first deploy
    if deployment is None:
        raise refusal(service, f"the ReplicaSet of its pods names deployment {name}, which does not exist", shown)
    dep_selector = (deployment.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    if any(not _selects(dep_selector, _labels(p)) for p in pods):
        raise refusal(service, f"deployment {name}'s selector does not match its pods", shown)
    return Legacy(name, deployment, selector, pods, pinned=full.get(LABEL) == LEGACY)


# -- writes -------------------------------------------------------------------------------------


def label_pod(kube: Kube, name: str) -> bool:
    """Add color=legacy to a pod's labels (a strategic merge patch of metadata only: the pod keeps
    running). False when the pod is gone."""
    from .client import NotFound

    try:
        kube.call(f"label pod {name} {LABEL}={LEGACY}", kube.core.patch_namespaced_pod, name, kube.namespace,
                  {"metadata": {"labels": {LABEL: LEGACY}}})
        return True
    except NotFound:
        return False


def pin(kube: Kube, service: str, legacy: Legacy, log: Callable[[str], None]) -> None:
    """Label the old pods, then make the Service select only them (idempotent)."""
    for pod in legacy.pods:
        if _labels(pod).get(LABEL) != LEGACY:
            label_pod(kube, pod["metadata"]["name"])
    log(f"labelled the {len(legacy.pods)} pods of deployment {legacy.name} (hand-made) {LABEL}={LEGACY}")
    for _ in range(5):
        svc = kube.get_service(service)
        selector = (svc or {}).get("spec", {}).get("selector") or {}
        if svc is None or {k: v for k, v in selector.items() if k != LABEL} != legacy.selector \
                or selector.get(LABEL) not in (None, LEGACY):
            raise DeployFailed(f"service {service} changed during the migration; nothing was switched")
        if selector.get(LABEL) == LEGACY:
            break
        try:
            kube.json_patch_service(service, [
                {"op": "test", "path": "/metadata/resourceVersion", "value": svc["metadata"]["resourceVersion"]},
                {"op": "add", "path": f"/spec/selector/{LABEL}", "value": LEGACY}])
            log(f"pinned service {service} to the pods of deployment {legacy.name} (selector {legacy.selector_text()})")
            break
        except (Conflict, Invalid):
            continue
    else:
        raise DeployFailed(f"service {service} kept changing under us; did not pin it")
    # A pod the old ReplicaSet made between our list and the pin lacks the label: label it too.
    for pod in list_pods(kube, legacy.selector):
        if _labels(pod).get(LABEL) is None and owner_deployment(pod) == legacy.name:
            if label_pod(kube, pod["metadata"]["name"]):
                log(f"labelled pod {pod['metadata']['name']} {LABEL}={LEGACY} (new since the list)")
    legacy.pinned = True


def pinned_note(service: str, deployment: str, selector: str = "") -> str:
    """What a Service left pinned means and what ends it, in one phrase (messages, result, log)."""
    shown = f" (selector {selector})" if selector else ""
    return (f"service {service} stays pinned to the pods of the hand-made deployment {deployment}{shown}, and "
            f"nothing labels the pods its ReplicaSet replaces, so they get no traffic: run deploy again to finish "
            f"the migration, or abort to undo it")


UNPIN_MARGIN = 30.0  # seconds beyond the colours' termination grace for the kubelet and the controllers


def colours_counting_down(kube: Kube, service: str) -> Tuple[Optional[str], float]:
    """(why a colour of ``service`` may still run or start a pod, None when none can; the longest
    termination grace period of their pod templates, seconds). A Deployment counted down to 0 has
    ``spec.replicas`` 0, has observed that generation, and counts no pod (``status.replicas``, the sum
    of its ReplicaSets' active pods: pkg/controller/deployment/sync.go ``calculateStatus``,
    pkg/controller/replicaset/replica_set_utils.go ``calculateStatus`` over ``FilterActivePods``);
    after that its ReplicaSets create nothing more (replica_set.go ``manageReplicas`` only creates
    while fewer pods than ``spec.replicas`` run)."""
    why, grace = None, 30.0
    for colour in COLOURS:
        dep = kube.get_deployment(f"{service}-{colour}")
        if dep is None:
            continue
        spec, status, meta = dep.get("spec") or {}, dep.get("status") or {}, dep.get("metadata") or {}
        pod_spec = (spec.get("template") or {}).get("spec") or {}
        grace = max(grace, float(pod_spec.get("terminationGracePeriodSeconds") or 30))
        if why is not None:
            continue
        if int(spec.get("replicas") or 0):
            why = f"deployment {service}-{colour} still wants {spec.get('replicas')} replicas"
        elif int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0) \
                or int(status.get("replicas") or 0):
            why = f"deployment {service}-{colour} has not counted its pods down to 0 yet"
    return why, grace


def unpin(kube: Kube, service: str, legacy: Legacy, idle: str, log: Callable[[str], None], *,
          seconds: Optional[float] = None) -> bool:
    """After a failure before the switch (or an abort): give the Service its colourless selector back
    once nothing of a colour can get its traffic. True when done; False (said in the log) when it stays
    pinned.

    The colourless selector reaches every colour's pods, not only ``idle``'s, so it waits until (1) no
    pod of either colour exists, terminating ones included (a terminating pod still answers until its
    grace ends), and (2) both colours' Deployments have counted down to 0 (:func:`colours_counting_down`),
    so no create of theirs is in flight; then (3) a fresh list confirms (1). The bound is ``seconds``,
    else the colours' longest termination grace period plus a margin (at least 60 s); after an
    interruption, what is left of its clean-up time. Residual: a pod someone else creates with a
    colour's labels between (3) and the patch would get traffic, as it would without us."""
    from .. import interrupt
    from .watching import Informer

    wait_for = legacy.selector_text(None) + f",{LABEL} in ({','.join(COLOURS)})"
    pending: List[str] = []

    def check(caches: Dict[str, Dict[str, Dict[str, Any]]]) -> Tuple[bool, str]:
        left = len(caches["pods"])
        return left == 0, ("" if left == 0 else f"waiting for the {left} pods of {idle} to go before unpinning "
                           f"service {service}")

    try:
        why, grace = colours_counting_down(kube, service)
        bound = seconds if seconds is not None else max(60.0, grace + UNPIN_MARGIN)
        left = interrupt.remaining()  # after a SIGTERM: only what is left of the clean-up time
        deadline = time.monotonic() + (bound if left is None else min(bound, left))
        with Informer(kube, log) as informer:
            informer.watch("pods", kube.core.list_namespaced_pod, label_selector=wait_for)
            while True:
                informer.wait(check, deadline=deadline,
                              timeout_message=lambda last: DeployFailed(f"the pods of {idle} did not go: {last}"))
                why, _ = colours_counting_down(kube, service)
                if why is None:
                    listing = kube.call(f"list pods {wait_for}", kube.core.list_namespaced_pod, kube.namespace,
                                        label_selector=wait_for)
                    left = [p["metadata"]["name"] for p in listing.get("items") or []]
                    if not left:
                        break
                    why = f"pod {sorted(left)[0]} appeared"
                if why not in pending:
                    pending.append(why)
                    log(f"not unpinning service {service} yet: {why}")
                if time.monotonic() >= deadline:
                    raise DeployFailed(f"{why} within {bound:.0f} s")
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        for _ in range(5):
            svc = kube.get_service(service)
            selector = (svc or {}).get("spec", {}).get("selector") or {}
            if selector.get(LABEL) != LEGACY:
                return selector.get(LABEL) is None
            try:
                kube.json_patch_service(service, [
                    {"op": "test", "path": "/metadata/resourceVersion", "value": svc["metadata"]["resourceVersion"]},
                    {"op": "test", "path": f"/spec/selector/{LABEL}", "value": LEGACY},
                    {"op": "remove", "path": f"/spec/selector/{LABEL}"}])
                log(f"service {service} selects {legacy.selector_text(None)} again, as before the migration")
                return True
            except (Conflict, Invalid):
                continue
        raise DeployFailed(f"service {service} kept changing under us")
    except HelperError as e:
        log(f"warning: not unpinned ({e}): {pinned_note(service, legacy.name, legacy.selector_text())}; or by hand, "
            f"once no pod of a colour is left: kubectl patch service {service} --type json -p "
            f"'[{{\"op\":\"remove\",\"path\":\"/spec/selector/{LABEL}\"}}]'")
        return False


class KeepPinned:
    """While the deploy runs, label each pod the old ReplicaSet creates, so the pinned Service keeps
    its capacity (a replacement pod is made from the ReplicaSet's template, without our label)."""

    def __init__(self, kube: Kube, legacy: Legacy, log: Callable[[str], None]) -> None:
        self.kube, self.legacy, self.log = kube, legacy, log
        self.stop_event = threading.Event()
        self.labelled: set = set()
        self.thread = threading.Thread(target=self.run, name="keep-pinned", daemon=True)

    def __enter__(self) -> "KeepPinned":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)

    def check(self, caches: Dict[str, Dict[str, Dict[str, Any]]]) -> Tuple[bool, str]:
        for name, pod in sorted(caches["pods"].items()):
            if self.stop_event.is_set():
                return True, ""
            if name in self.labelled or pod["metadata"].get("deletionTimestamp") or LABEL in _labels(pod) \
                    or owner_deployment(pod) != self.legacy.name:
                continue
            self.labelled.add(name)
            if label_pod(self.kube, name):
                self.log(f"labelled pod {name} {LABEL}={LEGACY}: deployment {self.legacy.name}'s ReplicaSet "
                         "replaced a pod, and the pinned Service now sends it traffic too")
        return self.stop_event.is_set(), ""

    def run(self) -> None:
        from .watching import Informer

        class Tick(HelperError):
            """No pod changed within the period: look at the stop flag again."""

        try:
            with Informer(self.kube, lambda line: None) as informer:
                informer.watch("pods", self.kube.core.list_namespaced_pod,
                               label_selector=self.legacy.selector_text(None))
                while not self.stop_event.is_set():
                    try:
                        informer.wait(self.check, deadline=time.monotonic() + 0.5, timeout_message=lambda last: Tick())
                    except Tick:
                        continue
        except HelperError as e:
            self.log(f"warning: stopped watching the pods of deployment {self.legacy.name}: {e}")
        except BaseException:  # noqa: BLE001 - a daemon thread must never print a traceback
            pass


def retire(kube: Kube, legacy: Legacy, how: str, log: Callable[[str], None]) -> str:
    """Scale the old Deployment to zero (kept) or delete it; returns what happened, as one phrase."""
    if how == "delete":
        kube.delete_deployment(legacy.name)
        log(f"deployment {legacy.name} (hand-made): deleted after the scale-down delay")
        return "deleted after the scale-down delay (--delete-old)"
    if int((legacy.deployment or {}).get("spec", {}).get("replicas") or 0) != 0:
        kube.scale_deployment(legacy.name, 0)
    log(f"deployment {legacy.name} (hand-made): scaled to 0 after the scale-down delay; kept (delete it with "
        f"kubectl delete deployment {legacy.name}, or deploy with --delete-old)")
    return f"scaled to 0 after the scale-down delay (kept; delete it with kubectl delete deployment {legacy.name})"


def amend_history(kube: Kube, service: str, entry: Dict[str, Any], reason: str, history_key: str) -> bool:
    """Set ``reason`` on the history entry of our switch (``entry``, found by its time and colour:
    the newest, unless a later deploy's re-run retires what an interrupted migration left), in a
    write that tests the Service's resourceVersion (bluegreen.amend_entry). False when the entry is
    no longer there. ``history_key`` is the history's annotation, bluegreen.HISTORY, the one it writes."""
    from . import bluegreen

    del history_key  # kept for the callers: bluegreen.amend_entry writes bluegreen.HISTORY
    return bluegreen.amend_entry(kube, service, entry, {"reason": reason})


# -- after the switch, and while pinned: what status, rollback, abort and a re-run must know -------

MIGRATED = "migrated from the hand-made deployment "  # how the switch's history entry starts its reason
PENDING = "; it keeps running for "  # ... until the old Deployment's fate is recorded (Deployer.migration_reason)
# a DNS-1123 subdomain, the rule for Deployment names (apimachinery validation.IsDNS1123Subdomain)
DEPLOYMENT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def pending_migrations(history: List[Dict[str, Any]]) -> List[Tuple[str, Dict[str, Any]]]:
    """(hand-made Deployment, history entry) for each recorded switch whose old Deployment's fate
    was never recorded: the deploy stopped between its switch and retiring it."""
    found = []
    for entry in history:
        reason = str(entry.get("reason") or "")
        if reason.startswith(MIGRATED) and PENDING in reason:
            name = reason[len(MIGRATED):reason.index(PENDING)]
            if DEPLOYMENT_NAME.fullmatch(name):  # the history is untrusted: only a name a Deployment may have
                found.append((name, entry))
    return found


def leftovers(kube: Kube, service: str, state: Any, migrate_from: Optional[str],
              log: Callable[[str], None] = lambda line: None) -> List[Tuple[Legacy, Dict[str, Any]]]:
    """Hand-made Deployments a migration switched away from but did not retire, with the history
    entry of that switch. Empty unless a colour is live and ``migrate_from`` (the manifest's
    ``enadu.io/migrate-from``, from ``services.<service>.migrate_from_handmade``) names one.

    The history annotation and pod labels are written by anyone who may patch the Service or label
    pods, so neither chooses what is retired: only the configured Deployment is, and only the very
    object the migration pinned. The switch's entry records its ``metadata.uid`` (read when it was
    pinned, written in the same patch as the switch, so it survives any crash after it); the API
    server gives every created object a new uid, so a Deployment deleted and created again under the
    configured name — or one whose entry records no uid, or another — is left alone, said in the log.
    The pin label alone (pods ``color=legacy``) names nothing: its entry tells. One whose fate is
    recorded (scaled up again by hand on purpose, say) is not touched either."""
    svc = state.service
    if svc is None or state.live not in COLOURS or not migrate_from:
        return []
    selector = {k: str(v) for k, v in (svc.get("spec", {}).get("selector") or {}).items() if k != LABEL}
    if not selector or migrate_from in (f"{service}-{c}" for c in COLOURS):
        return []
    entry = next((e for name, e in pending_migrations(state.history) if name == migrate_from), None)
    if entry is None:
        return []
    deployment = kube.get_deployment(migrate_from)
    if deployment is None:
        return []
    uid = (deployment.get("metadata") or {}).get("uid")
    if not uid or entry.get("migrated_uid") != uid:
        log(f"deployment {migrate_from} (uid {uid}) is not the one the migration pinned "
            f"(uid {entry.get('migrated_uid') or 'not recorded'}): left alone; if it is the old script's, "
            f"retire it by hand (kubectl scale deployment {migrate_from} --replicas=0)")
        return []
    template = ((deployment.get("spec") or {}).get("template", {}).get("metadata") or {}).get("labels") or {}
    if not _selects(selector, template) or template.get(LABEL) in COLOURS:
        return []
    return [(Legacy(migrate_from, deployment, selector), entry)]


def pinned_to(kube: Kube, state: Any) -> Optional[Legacy]:
    """While the Service is pinned (``state.pinned``): the hand-made Deployment its pods belong to
    (by the pin label and the ReplicaSet naming rule), or one named like the Service when no pod
    carries the label any more. None when not pinned."""
    if not state.pinned or state.service is None:
        return None
    full = state.service.get("spec", {}).get("selector") or {}
    selector = {k: str(v) for k, v in full.items() if k != LABEL}
    pods = list_pods(kube, dict(selector, **{LABEL: LEGACY})) if selector else []
    owners = sorted({n for n in (owner_deployment(p) for p in pods) if n})
    name = owners[0] if len(owners) == 1 else state.service["metadata"]["name"]
    if len(owners) > 1:
        name = ", ".join(owners)
    deployment = kube.get_deployment(name) if len(owners) <= 1 else None
    return Legacy(name, deployment, selector, pods, pinned=True)

