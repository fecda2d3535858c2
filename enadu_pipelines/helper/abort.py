"""abort: remove a colour that is not live (a deploy that failed or was interrupted).

Refuses to touch the live colour. Without a Service, every colour is idle and is removed. Takes the
deploy lock like deploy does, so it never races a running deploy (it waits up to --lock-timeout).
The default is to delete the idle Deployment; --keep-old scales it to zero instead.

While a migration from the old script has pinned the Service to the hand-made pods (selector
``color=legacy``: a migrating deploy stopped before its switch, kube/migration.py), abort also gives
the Service its colourless selector back, once the idle colours' pods are gone (``migration.unpin``,
as a deploy failing before its switch does): the hand-made Deployment serves, as before. If that does
not land it exits 1 with the kubectl command to do it by hand.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict

from .cli import env_default
from .deploy import add_cluster_arguments, add_switch_arguments, open_cluster, options, run_command
from .errors import DeployFailed
from .report import Reporter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_cluster_arguments(parser)
    parser.add_argument("--manifest", default=env_default("ENADU_MANIFEST"),
                        help="the service's rendered manifest: only its namespace is used [ENADU_MANIFEST]")
    add_switch_arguments(parser, default_old="delete")


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
        with holding(kube, opts.service, ttl=opts.lock_ttl, timeout=opts.lock_timeout, log=report.log):
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
