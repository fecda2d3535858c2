"""Manual promotion: the mark a held deploy leaves on the colour it prepared, and its checks.

Argo Rollouts pauses a blue/green rollout before the switch when ``autoPromotionEnabled`` is false
(argo-rollouts rollout/bluegreen.go ``needsBlueGreenControllerPause``/``reconcileBlueGreenPause``) and
resumes it on ``kubectl argo rollouts promote``; the pause lives in the Rollout's status. There is no
controller here: ``deploy --hold`` ends its process, so what it prepared is written on the prepared
colour's Deployment (annotation ``enadu.io/held``: image, build, time, ``valid_until`` and a digest
of the Deployment's spec without its replica count), and ``promote`` re-checks, under the deploy
lock, that the idle colour is that Deployment, runs exactly that image with the spec that was tested
(only ``spec.replicas`` may have changed: Argo's promotion scales the preview too), that the hold
has not expired, and that it is available before it switches. The annotation is read back as
untrusted input: only a JSON object whose ``image`` is a valid image reference counts.

The mark stays on the Deployment after a promotion; a mark counts as *pending* (a preview nobody
approved) only while no history entry newer than it put that colour live, which is what
``rollback`` refuses to switch to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, Callable, Dict, List, Optional

from .. import imageref
from ..errors import DeployFailed
from .client import Conflict, Kube

HELD = "enadu.io/held"


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # bluegreen.now_iso's


def held_mark(dep: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The held mark on this Deployment, or None (no mark, or one whose image does not validate)."""
    text = ((dep or {}).get("metadata", {}).get("annotations") or {}).get(HELD)
    try:
        mark = json.loads(text) if isinstance(text, str) and len(text) < 4096 else None
    except ValueError:
        return None
    image = mark.get("image") if isinstance(mark, dict) else None
    if not isinstance(image, str) or imageref.problem(image) is not None:
        return None
    return mark


def held_image(dep: Optional[Dict[str, Any]]) -> Optional[str]:
    """The image a held deploy prepared in this Deployment, or None (no mark, or one that does not validate)."""
    mark = held_mark(dep)
    return None if mark is None else mark["image"]


def _time(value: Any) -> Optional[dt.datetime]:
    try:
        return dt.datetime.strptime(value, TIME_FORMAT).replace(tzinfo=dt.timezone.utc) if isinstance(value, str) else None
    except ValueError:
        return None


def spec_digest(dep: Dict[str, Any]) -> str:
    """A digest of the Deployment's spec without ``replicas``: what was tested, whatever its scale."""
    spec = {k: v for k, v in (dep.get("spec") or {}).items() if k != "replicas"}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def pending(dep: Optional[Dict[str, Any]], history: List[Dict[str, Any]], colour: str) -> Optional[Dict[str, Any]]:
    """The mark of a held preview that never went live: a held mark with no history entry at or after
    its time that made ``colour`` live. A mark whose time does not parse counts as pending."""
    mark = held_mark(dep)
    if mark is None:
        return None
    at = _time(mark.get("at"))
    served = [t for h in history if h.get("colour") == colour for t in [_time(h.get("at"))] if t is not None]
    if at is not None and any(t >= at for t in served):
        return None
    return mark


def promotion_problem(dep: Dict[str, Any], mark: Dict[str, Any], now: Optional[dt.datetime] = None) -> Optional[str]:
    """Why the held mark no longer allows a promotion, or None: it expired (``valid_until``, written
    at hold time from ``--hold-valid-for``), or the Deployment's spec changed since it was held."""
    until = _time(mark.get("valid_until"))
    now = now or dt.datetime.now(dt.timezone.utc)
    if until is None:
        return "its hold records no valid_until"
    if now > until:
        return f"its hold expired at {mark['valid_until']} (held at {mark.get('at')})"
    if mark.get("spec") != spec_digest(dep):
        return "its pod template or spec changed since it was held"
    return None


def mark_held(kube: Kube, name: str, image: str, build_url: str, log: Callable[[str], None],
              valid_for: float = 3600.0) -> None:
    """Write the held mark on Deployment ``name`` (an update with its resourceVersion: the deployer's
    Role may update Deployments, not patch them). Metadata only: no new rollout."""
    at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    until = at + dt.timedelta(seconds=max(0.0, valid_for))
    for _ in range(5):
        current = kube.get_deployment(name)
        if current is None:
            raise DeployFailed(f"deployment {name} disappeared before it could be marked as held")
        mark = json.dumps({"image": image, "build_url": build_url or None, "at": at.strftime(TIME_FORMAT),
                           "valid_until": until.strftime(TIME_FORMAT), "spec": spec_digest(current)}, sort_keys=True)
        current["metadata"].setdefault("annotations", {})[HELD] = mark
        current.pop("status", None)
        try:
            kube.replace_deployment(current)
        except Conflict:
            continue
        log(f"marked deployment {name} as held for promotion ({image})")
        return
    raise DeployFailed(f"deployment {name} kept changing under us; could not mark it as held")
