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
