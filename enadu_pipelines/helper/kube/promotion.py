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


MARK_MAX_CHARS = 4096  # a mark of ours is a few hundred characters


def json_annotation(dep: Optional[Dict[str, Any]], key: str) -> Optional[Dict[str, Any]]:
    """Annotation ``key`` of this object as a JSON object, or None: missing, too long, not JSON (nested
    past the parser's recursion limit included, as bluegreen.parse_history reads the history), or not
    an object. Annotations are untrusted input: whoever may update the object can write them."""
    text = ((dep or {}).get("metadata", {}).get("annotations") or {}).get(key)
    if not isinstance(text, str) or len(text) >= MARK_MAX_CHARS:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def held_mark(dep: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The held mark on this Deployment, or None (no mark, or one whose image does not validate)."""
    mark = json_annotation(dep, HELD)
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


def _live_since(mark: Dict[str, Any], history: List[Dict[str, Any]], colour: str) -> bool:
    """Whether a history entry at or after the mark's time made ``colour`` live (a mark whose time does
    not parse never is)."""
    at = _time(mark.get("at"))
    return at is not None and any(t is not None and t >= at
                                  for t in (_time(h.get("at")) for h in history if h.get("colour") == colour))


def pending(dep: Optional[Dict[str, Any]], history: List[Dict[str, Any]], colour: str) -> Optional[Dict[str, Any]]:
    """The mark of a held preview that never went live: a held mark with no history entry at or after
    its time that made ``colour`` live. A mark whose time does not parse counts as pending."""
    mark = held_mark(dep)
    if mark is None:
        return None
    return None if _live_since(mark, history, colour) else mark


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
        current["metadata"]["annotations"].pop(ABORTED, None)  # a new hold: an older failure is over
        current.pop("status", None)
        try:
            kube.replace_deployment(current)
        except Conflict:
            continue
        log(f"marked deployment {name} as held for promotion ({image})")
        return
    raise DeployFailed(f"deployment {name} kept changing under us; could not mark it as held")


# -- the aborted mark (README, "Abort scale-down delay") ------------------------------------------
#
# Argo Rollouts keeps an aborted update's preview ReplicaSet for abortScaleDownDelaySeconds and
# writes when it goes on the ReplicaSet (the ``argo-rollouts.argoproj.io/scale-down-deadline``
# annotation; rollout/replicaset.go ``reconcileNewReplicaSet``, utils/defaults/defaults.go
# ``GetAbortScaleDownDelaySecondsOrDefault``: 0 means "never scale down"). Here the colour a failed
# deploy or an abort keeps gets ``enadu.io/aborted``: image, time, why (``after``: "failed deploy" or
# "abort") and ``scale_down_at`` (null: kept until ``abort`` or the next deploy). Until a history entry
# newer than the mark puts that colour live, it is never promoted nor rolled back to.

ABORTED = "enadu.io/aborted"


ABORTED_AFTER = ("failed deploy", "abort")


def aborted_mark(dep: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The aborted mark on this Deployment, normalised, or None (no mark, or one whose time does not
    parse: without it the mark cannot be told older or newer than the history).

    The annotation is untrusted; every reader gets the same fields, each of its type: ``image`` a
    valid reference or None (missing, or not one: an image it cannot name, as abort writes for a
    colour whose image it does not know; the mark still counts), ``at``, ``scale_down_at`` (None
    when missing or not a time: kept until abort), ``after`` ("failed deploy" or "abort"),
    ``reason`` and ``build_url`` (text or None)."""
    mark = json_annotation(dep, ABORTED)
    if mark is None or _time(mark.get("at")) is None:
        return None
    image = mark.get("image")
    if not isinstance(image, str) or imageref.problem(image) is not None:
        image = None
    after = mark.get("after")
    text = {k: v[:300] if isinstance(v, str) else None for k, v in ((k, mark.get(k)) for k in ("reason", "build_url"))}
    return {"image": image, "at": mark["at"],
            "scale_down_at": mark["scale_down_at"] if _time(mark.get("scale_down_at")) is not None else None,
            "after": after if after in ABORTED_AFTER else "failed deploy", **text}


def kept(dep: Optional[Dict[str, Any]], history: List[Dict[str, Any]], colour: str) -> Optional[Dict[str, Any]]:
    """The aborted mark of a colour that failed (or was aborted) and has not been live since, else None.
    An aborted mark whose time does not parse is no mark (``aborted_mark``); ``mark_held`` removes the
    mark, so one found next to a held mark is the newer of the two."""
    mark = aborted_mark(dep)
    if mark is None:
        return None
    return None if _live_since(mark, history, colour) else mark


def preview_state(dep: Optional[Dict[str, Any]], history: List[Dict[str, Any]], colour: str,
                  now: Optional[dt.datetime] = None) -> Optional[Dict[str, Any]]:
    """What ``status`` says of an idle colour: ``held`` (promotable), ``hold-expired`` (a hold that
    can no longer be promoted: expired, or its spec changed) or ``kept`` (after a failed deploy or an
    abort), with the mark's fields; None when it is none of these or runs no pods."""
    if dep is None or int((dep.get("spec") or {}).get("replicas") or 0) < 1:
        return None
    failed = kept(dep, history, colour)
    if failed is not None:
        # overdue: the time it was to be scaled to 0 has passed and it still runs (whoever kept it stopped)
        until = _time(failed.get("scale_down_at"))
        overdue = until is not None and (now or dt.datetime.now(dt.timezone.utc)) > until
        return {"state": "kept", "image": failed["image"], "after": failed.get("after") or "failed deploy",
                "at": failed.get("at"), "scale_down_at": failed.get("scale_down_at"), "overdue": overdue,
                "reason": failed.get("reason"), "valid_until": None}
    mark = pending(dep, history, colour)
    if mark is None:
        return None
    problem = promotion_problem(dep, mark, now)
    return {"state": "held" if problem is None else "hold-expired", "image": mark["image"], "at": mark.get("at"),
            "valid_until": mark.get("valid_until"), "problem": problem, "after": None, "scale_down_at": None,
            "reason": None}


def mark_aborted(kube: Kube, name: str, image: Optional[str], build_url: str, after: str, reason: str,
                 delay: Optional[float], log: Callable[[str], None]) -> Optional[str]:
    """Write the aborted mark on Deployment ``name`` (metadata only, an update with its resourceVersion,
    as :func:`mark_held`). ``delay``: seconds until it is scaled down, None for never. Returns the
    ``scale_down_at`` written (None for never)."""
    at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    until = None if delay is None else (at + dt.timedelta(seconds=delay)).strftime(TIME_FORMAT)
    for _ in range(5):
        current = kube.get_deployment(name)
        if current is None:
            raise DeployFailed(f"deployment {name} disappeared before it could be marked as aborted")
        mark = json.dumps({"image": image, "build_url": build_url or None, "at": at.strftime(TIME_FORMAT),
                           "after": after, "reason": reason[:300], "scale_down_at": until}, sort_keys=True)
        current["metadata"].setdefault("annotations", {})[ABORTED] = mark
        current.pop("status", None)
        try:
            kube.replace_deployment(current)
        except Conflict:
            continue
        log(f"marked deployment {name} as aborted ({image or 'image unknown'}): it is never promoted nor rolled back to")
        return until
    raise DeployFailed(f"deployment {name} kept changing under us; could not mark it as aborted")
