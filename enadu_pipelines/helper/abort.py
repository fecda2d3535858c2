"""abort: remove a colour that is not live (a deploy that failed or was interrupted).

Refuses to touch the live colour. Without a Service, every colour is idle and is removed. Takes the
deploy lock like deploy does, so it never races a running deploy (it waits up to --lock-timeout).
The default is to delete the idle Deployment; --keep-old scales it to zero instead.

While a migration from the old script has pinned the Service to the hand-made pods (selector
``color=legacy``: a migrating deploy stopped before its switch, kube/migration.py), abort also gives
the Service its colourless selector back, once the idle colours' pods are gone (``migration.unpin``,
as a deploy failing before its switch does): the hand-made Deployment serves, as before. If that does
not land it exits 1 with the kubectl command to do it by hand.

``--abort-scale-down-delay`` (ENADU_ABORT_SCALE_DOWN_DELAY; default ``0s``: at once) is Argo Rollouts'
abortScaleDownDelaySeconds (rollout/replicaset.go ``reconcileNewReplicaSet``, docs/features/bluegreen.md):
the pipeline passes the configured value when its promotion input is answered "no" or times out. The idle
colour is then marked aborted (kube/promotion.py ``mark_aborted``: never promoted nor rolled back to),
kept running for the delay under the lock, and removed; with ``never`` it is left running, marked, and a
later ``abort`` without the flag removes it. An interruption during the delay removes it at once. While
a migration pins the Service there is no delay (the un-pin waits for the idle pods to be gone).
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, Dict, List

from .cli import env_default
from .deploy import add_cluster_arguments, add_switch_arguments, open_cluster, options, run_command
from .errors import DeployFailed, Interrupted
from .report import Reporter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_cluster_arguments(parser)
    parser.add_argument("--manifest", default=env_default("ENADU_MANIFEST"),
                        help="the service's rendered manifest: only its namespace is used [ENADU_MANIFEST]")
    add_switch_arguments(parser, default_old="delete", abort_delay="0s")


def run(args: argparse.Namespace) -> int:
    def body(report: Reporter, result: Dict[str, Any]) -> Dict[str, Any]:
        from .kube import bluegreen as bg
        from .kube import migration
        from .kube.lock import holding
        from .kube.manifest import COLOURS

        opts = options(args, needs_image=False)
        kube, opts = open_cluster(args, opts, report, result)
        state = bg.read_state(kube, opts.service)
        idle = [c for c in COLOURS if c != state.live and state.deployments[c] is not None
                and (opts.old_colour == "delete" or state.replicas(c) > 0)]
        result["colour"] = ",".join(idle) if idle else state.live  # what the abort removes
        pinned = migration.pinned_to(kube, state)
        if not idle and pinned is None:
            return {"outcome": "unchanged", "message": "no idle colour to remove"}
        how = "delete" if opts.old_colour == "delete" else "scale to 0"
        if opts.dry_run:
            plan = [f"{how} {opts.service}-{c}" for c in idle]
            if pinned is not None:
                plan.append(f"once their pods are gone, make service {opts.service} select "
                            f"{pinned.selector_text(None)} again (unpin it from the hand-made deployment {pinned.name})")
            for line in plan:
                report.log(f"plan: {line}")
            return {"outcome": "planned", "dry_run": True, "plan": plan, "message": "dry run: nothing was changed"}
        unpinned = ""
        with holding(kube, opts.service, ttl=opts.lock_ttl, timeout=opts.lock_timeout, log=report.log) as lock:
            state = bg.read_state(kube, opts.service)
            kept = keep_aborted(kube, opts, state, [c for c in idle if c != state.live],
                                pinned=migration.pinned_to(kube, state) is not None, lock=lock, log=report.log,
                                result=result)
            if kept:
                result["colour"] = ",".join(kept)
                return {"outcome": "aborted", "removed": [], "kept": kept,
                        "message": f"kept idle colour(s) {', '.join(kept)} running (--abort-scale-down-delay never): "
                                   "marked aborted, so never promoted nor rolled back to; run abort again without "
                                   "the delay to remove them"}
            state = bg.read_state(kube, opts.service)
            for colour in idle:
                if colour != state.live:
                    bg.retire(kube, opts.service, state, colour, opts.old_colour, report.log)
            pinned = migration.pinned_to(kube, state)
            if pinned is not None:  # a migrating deploy stopped before its switch: undo the pin, as it would have
                removed = f"removed idle colour(s): {', '.join(idle)}; " if idle else ""
                if not migration.unpin(kube, opts.service, pinned, ",".join(idle) or "any colour", report.log,
                                       seconds=min(opts.timeout, 120)):
                    raise DeployFailed(f"{removed}service {opts.service} stays pinned to the hand-made deployment "
                                       f"{pinned.name} (see the warning above for the command); run abort again")
                unpinned = (f"; service {opts.service} selects {pinned.selector_text(None)} again: the hand-made "
                            f"deployment {pinned.name} serves, as before the migration")
        if not idle:
            return {"outcome": "aborted", "removed": [], "message": f"no idle colour to remove{unpinned}"}
        return {"outcome": "aborted", "removed": idle, "message": f"removed idle colour(s): {', '.join(idle)}{unpinned}"}

    return run_command("abort", args, body)


def keep_aborted(kube: Any, opts: Any, state: Any, idle: List[str], *, pinned: bool, lock: Any,
                 log: Callable[[str], None], result: Dict[str, Any]) -> List[str]:
    """--abort-scale-down-delay: mark each running idle colour aborted, then keep them for the delay
    (returns []: the caller removes them now) or, with ``never``, leave them running (returns them).
    An interruption during the delay is raised after they are scaled to 0 at once."""
    import time

    from .kube import bluegreen as bg
    from .kube.promotion import mark_aborted

    delay = opts.abort_scale_down_delay
    running = [c for c in idle if state.replicas(c) > 0]
    if delay == 0 or not running or pinned:
        return []
    for colour in running:
        mark_aborted(kube, f"{opts.service}-{colour}", state.image(colour), opts.build_url, "abort",
                     "aborted", delay, log)
    if delay is None:
        for colour in running:
            log(f"keeping {opts.service}-{colour} running (--abort-scale-down-delay never); abort without the delay "
                "removes it")
        return running
    log(f"keeping {', '.join(opts.service + '-' + c for c in running)} for {delay:g} s (--abort-scale-down-delay) "
        "before removing it; the deploy lock stays held")
    try:
        time.sleep(delay)
    except Interrupted:
        if not lock.held():  # whoever holds the lock now decides about these colours
            log("interrupted during the abort scale-down delay after losing the deploy lock: removing nothing")
            raise
        log("interrupted during the abort scale-down delay: removing at once")
        from . import interrupt

        with interrupt.limit(0.6):
            now = bg.read_state(kube, opts.service)
            for colour in running:
                if colour != now.live:
                    bg.retire(kube, opts.service, now, colour, opts.old_colour, log)
        result["removed"] = running
        raise
    if not lock.held():
        raise DeployFailed(f"lost the deploy lock during the abort scale-down delay; "
                           f"{', '.join(opts.service + '-' + c for c in running)} still run: run abort again")
    return []
