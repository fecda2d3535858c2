"""Invariants checked after every committed change, so no transient state slips between polls.

A check is `fn(view) -> None | str`: it returns a description of what is wrong, or None. Checks run
on the world's loop right after each store write (from any writer: API clients, controllers, the
kubelet), which is the only way to prove statements like "at no moment did the Service select a
colour that was not fully available" — polling from a test would miss a state that lasted a
millisecond.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from . import resources as R
from .selectors import label_selector_to_reqs, matches_labels


class View:
    """Read-only access to the store for checks (objects are the stored dicts: do not modify)."""

    def __init__(self, store) -> None:
        self._store = store

    def get(self, kind: str, name: str, namespace: str = "default") -> Optional[dict]:
        res = _res(kind)
        return self._store.get(res.key, namespace if res.namespaced else "", name)

    def list(self, kind: str, namespace: Optional[str] = "default", labels: Optional[Dict[str, str]] = None) -> List[dict]:
        res = _res(kind)
        items = self._store.list(res.key, namespace if res.namespaced else None)
        if labels is None:
            return items
        reqs = label_selector_to_reqs({"matchLabels": labels})
        return [o for o in items if matches_labels(reqs, o["metadata"].get("labels"))]

    @property
    def resource_version(self) -> int:
        return self._store.rv


def _res(kind: str) -> R.Resource:
    for r in R.RESOURCES:
        if kind in (r.kind, r.plural, r.singular) or kind in r.short_names:
            return r
    raise ValueError(f"kubeworld does not serve {kind!r}")


@dataclass
class Violation:
    check: str
    message: str
    resource_version: int
    time: float  # seconds since the world started
    change: str  # what write exposed it: "MODIFIED apps/deployments default/web-green"


Check = Callable[[View], Optional[str]]


class Invariants:
    def __init__(self, world) -> None:
        self.world = world
        self._checks: Dict[str, Check] = {}
        self._lock = threading.Lock()
        self.violations: List[Violation] = []
        self.evaluations = 0
        world.store.listeners.append(self._on_change)

    def add(self, name: str, check: Check) -> None:
        """Register a check; it is evaluated at once and after every later change."""
        def install():
            self._checks[name] = check
            self._evaluate({name: check}, "registered")

        on_loop = threading.current_thread() is getattr(self.world, "_thread", None)
        if self.world.loop is not None and not on_loop:
            self.world.call(install)
        else:
            install()

    def remove(self, name: str) -> None:
        self.world.call(self._checks.pop, name, None)

    def _on_change(self, key: str, etype: str, obj: dict, prev) -> None:
        if self._checks:
            meta = obj["metadata"]
            self._evaluate(self._checks, f"{etype} {key} {meta.get('namespace', '')}/{meta['name']}")

    def _evaluate(self, checks: Dict[str, Check], change: str) -> None:
        view = View(self.world.store)
        for name, check in list(checks.items()):
            self.evaluations += 1
            try:
                problem = check(view)
            except Exception as e:  # a broken check is a finding too, never a crashed server
                problem = f"check raised {type(e).__name__}: {e}"
            if problem:
                with self._lock:
                    self.violations.append(Violation(name, problem, self.world.store.rv,
                                                     time.monotonic() - self.world.started_at, change))

    def assert_ok(self) -> None:
        with self._lock:
            found = list(self.violations)
        if found:
            lines = [f"{v.check} @rv{v.resource_version} t={v.time:.3f}s after {v.change}: {v.message}" for v in found[:20]]
            more = f"\n... and {len(found) - 20} more" if len(found) > 20 else ""
            raise AssertionError(f"{len(found)} invariant violation(s):\n" + "\n".join(lines) + more)


# --- ready-made checks ---------------------------------------------------------------------

def deployment_fully_available(dep: dict) -> Optional[str]:
    """None if the Deployment is fully available: kubectl `rollout status` would say "successfully
    rolled out" (polymorphichelpers/rollout_status.go) and availableReplicas == spec.replicas > 0."""
    spec, status, meta = dep.get("spec") or {}, dep.get("status") or {}, dep["metadata"]
    want = spec.get("replicas", 1)
    name = meta["name"]
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return f"deployment {name}: spec update not observed yet"
    if want <= 0:
        return f"deployment {name}: scaled to zero"
    for field in ("updatedReplicas", "availableReplicas", "replicas"):
        if status.get(field, 0) != want:
            return f"deployment {name}: {field}={status.get(field, 0)}, want {want}"
    return None


def service_selects_available(service: str, namespace: str = "default") -> Check:
    """The Service exists with a non-empty selector, and every Deployment whose pods it selects is
    fully available (see `deployment_fully_available`), and at least one does."""
    def check(view: View) -> Optional[str]:
        svc = view.get("services", service, namespace)
        if svc is None:
            return None  # not created yet (first deploy) or deleted: nothing is selected
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not selector:
            return f"service {service} has an empty selector (selects nothing)"
        reqs = label_selector_to_reqs({"matchLabels": selector})
        selected = [d for d in view.list("deployments", namespace)
                    if matches_labels(reqs, ((d["spec"].get("template") or {}).get("metadata") or {}).get("labels"))]
        if not selected:
            return f"service {service} selects {selector}, which no Deployment's pods carry"
        for dep in selected:
            problem = deployment_fully_available(dep)
            if problem:
                return f"service {service} selects {selector}: {problem}"
        return None

    return check


def frozen(view: View, kind: str, namespace: str = "default") -> List[dict]:
    """A deep copy of what a check saw, for messages and later comparison."""
    return copy.deepcopy(view.list(kind, namespace))


def _stamp(view: View) -> float:
    """Now, on the clock the checks share (evaluations run synchronously right after each commit)."""
    return time.monotonic()


def lease_hand_over_only_when_free(name: str, namespace: str = "default") -> Check:
    """The Lease ``name`` never changes holder while its holder still holds it: a new holder takes
    it only after it was deleted (released), or after ``leaseDurationSeconds`` passed without any
    write to it (expired), or by the one announced pre-emption (the holder marked it
    ``enadu.io/preemptible`` and the new holder names it in ``enadu.io/preempted``).

    This is client-go's rule for a candidate (tools/leaderelection/leaderelection.go
    ``tryAcquireOrRenew``: another holder's record may be taken only when ``observedTime +
    LeaseDuration`` has passed by the candidate's own clock since it last saw the record change, so
    at least ``LeaseDuration`` after the holder's last write). A stateful check: it remembers the
    Lease as of the previous evaluation and when it last changed."""
    seen: Dict[str, Any] = {"rv": None, "holder": None, "at": 0.0, "duration": 0.0, "annotations": {}}

    def check(view: View) -> Optional[str]:
        lease = view.get("leases", name, namespace)
        now = _stamp(view)
        if lease is None:
            seen.update(rv=None, holder=None)  # released (or never taken): anyone may create it
            return None
        rv = lease["metadata"].get("resourceVersion")
        if rv == seen["rv"]:
            return None
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        annotations = lease["metadata"].get("annotations") or {}
        before, problem = dict(seen), None
        seen.update(rv=rv, holder=holder, at=now, duration=float(spec.get("leaseDurationSeconds") or 0),
                    annotations=dict(annotations))
        if before["rv"] is None or not before["holder"] or holder == before["holder"]:
            return None
        quiet = now - before["at"]
        preempted = (before["annotations"].get("enadu.io/preemptible") == "scale-down-delay"
                     and annotations.get("enadu.io/preempted") == before["holder"])
        if quiet < before["duration"] and not preempted:
            problem = (f"lease {name} went from {before['holder']} to {holder} {quiet:.2f} s after "
                       f"{before['holder']}'s last write, within its {before['duration']:g} s duration: two holders")
        return problem

    return check


def retired_only_after_drain(service: str, namespace: str = "default", *, lag: float = 0.0) -> Check:
    """No Deployment is scaled to zero or deleted while the Service ``service`` still selects its
    pods, nor less than ``lag`` seconds (how long Service proxies take to see a selector change)
    after the Service stopped selecting them: connections the proxies still send there would fail.
    A Deployment counts as selected when the selector matches its pod template's labels or the
    labels of any of its pods (a migration pins a Service to labels put on pods, not templates).

    Stateful: it keeps the Service's selector history (with the time of each change) and each
    Deployment's replicas as of the previous evaluation. Kube-proxy programs a Service's rules
    from EndpointSlices, one propagation later (pkg/proxy/endpointslicecache.go,
    pkg/proxy/runner.go), which is why Argo Rollouts keeps the old ReplicaSet for
    ``scaleDownDelaySeconds`` after the switch (argo-rollouts rollout/bluegreen.go)."""
    selectors: List[tuple] = []  # (time, selector dict or None)
    replicas: Dict[str, int] = {}
    shapes: Dict[str, List[Dict[str, str]]] = {}  # deployment -> label sets of its template and pods

    def label_sets(view: View, dep: dict) -> List[Dict[str, str]]:
        name = dep["metadata"]["name"]
        sets = [((dep["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}]
        sets_of_rs = {rs["metadata"]["name"] for rs in view.list("replicasets", namespace)
                      if any(ref.get("controller") and ref.get("name") == name
                             for ref in rs["metadata"].get("ownerReferences") or [])}
        for pod in view.list("pods", namespace):
            if any(ref.get("controller") and ref.get("name") in sets_of_rs
                   for ref in pod["metadata"].get("ownerReferences") or []):
                sets.append(pod["metadata"].get("labels") or {})
        return sets

    def judge(name: str, now: float) -> Optional[str]:
        def matches(selector: Optional[dict]) -> bool:
            if not selector:
                return False
            reqs = label_selector_to_reqs({"matchLabels": selector})
            return any(matches_labels(reqs, labels) for labels in shapes.get(name) or [])

        last = max((i for i, (_, sel) in enumerate(selectors) if matches(sel)), default=None)
        if last is None:
            return None
        if last == len(selectors) - 1:
            return f"deployment {name} retired while service {service} selects it ({selectors[-1][1]})"
        drained = now - selectors[last + 1][0]
        if drained < lag:
            return (f"deployment {name} retired {drained:.3f} s after service {service} stopped selecting it, "
                    f"less than the {lag:g} s the proxies take to see that")
        return None

    def check(view: View) -> Optional[str]:
        now = _stamp(view)
        svc = view.get("services", service, namespace)
        selector = ((svc or {}).get("spec") or {}).get("selector") or None
        if not selectors or selectors[-1][1] != selector:
            selectors.append((now, copy.deepcopy(selector)))
        problems = []
        current = {d["metadata"]["name"]: d for d in view.list("deployments", namespace)}
        for name, dep in current.items():
            want = int((dep.get("spec") or {}).get("replicas") or 0)
            if replicas.get(name, 0) > 0 and want == 0:
                problems.append(judge(name, now))
            replicas[name] = want
            if want > 0:
                shapes[name] = label_sets(view, dep)
        for name in [n for n in replicas if n not in current]:
            if replicas.pop(name) > 0:
                problems.append(judge(name, now))
        return "; ".join(p for p in problems if p) or None

    return check
