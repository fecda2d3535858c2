"""Manual promotion: the mark a held deploy leaves on the colour it prepared, and its checks.

Argo Rollouts pauses a blue/green rollout before the switch when ``autoPromotionEnabled`` is false
(argo-rollouts rollout/bluegreen.go ``needsBlueGreenControllerPause``/``reconcileBlueGreenPause``) and
resumes it on ``kubectl argo rollouts promote``; the pause lives in the Rollout's status. There is no
controller here: ``deploy --hold`` ends its process, so what it prepared is written on the prepared
colour's Deployment (annotation ``enadu.io/held``: image, build, time), and ``promote`` re-checks,
under the deploy lock, that the idle colour is that Deployment, runs exactly that image and is
available before it switches. The annotation is read back as untrusted input: only a JSON object
whose ``image`` is a valid image reference counts.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Optional

from .. import imageref
from ..errors import DeployFailed
from .bluegreen import now_iso
from .client import Conflict, Kube

HELD = "enadu.io/held"


def held_image(dep: Optional[Dict[str, Any]]) -> Optional[str]:
    """The image a held deploy prepared in this Deployment, or None (no mark, or one that does not validate)."""
    text = ((dep or {}).get("metadata", {}).get("annotations") or {}).get(HELD)
    try:
        mark = json.loads(text) if isinstance(text, str) and len(text) < 4096 else None
    except ValueError:
        return None
    image = mark.get("image") if isinstance(mark, dict) else None
    if not isinstance(image, str) or imageref.problem(image) is not None:
        return None
    return image


def mark_held(kube: Kube, name: str, image: str, build_url: str, log: Callable[[str], None]) -> None:
    """Write the held mark on Deployment ``name`` (an update with its resourceVersion: the deployer's
    Role may update Deployments, not patch them). Metadata only: no new rollout."""
    mark = json.dumps({"image": image, "build_url": build_url or None, "at": now_iso()}, sort_keys=True)
    for _ in range(5):
        current = kube.get_deployment(name)
        if current is None:
            raise DeployFailed(f"deployment {name} disappeared before it could be marked as held")
        current["metadata"].setdefault("annotations", {})[HELD] = mark
        current.pop("status", None)
        try:
            kube.replace_deployment(current)
        except Conflict:
            continue
        log(f"marked deployment {name} as held for promotion ({image})")
        return
    raise DeployFailed(f"deployment {name} kept changing under us; could not mark it as held")
