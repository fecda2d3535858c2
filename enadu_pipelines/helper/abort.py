"""abort: remove a colour that is not live (a deploy that failed or was interrupted).

Refuses to touch the live colour. Without a Service, every colour is idle and is removed. Takes the
deploy lock like deploy does, so it never races a running deploy (it waits up to --lock-timeout).
The default is to delete the idle Deployment; --keep-old scales it to zero instead.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict

from .cli import env_default
from .deploy import add_cluster_arguments, add_switch_arguments, open_cluster, options, run_command
from .report import Reporter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_cluster_arguments(parser)
    parser.add_argument("--manifest", default=env_default("ENADU_MANIFEST"),
                        help="the service's rendered manifest: only its namespace is used [ENADU_MANIFEST]")
    add_switch_arguments(parser, default_old="delete")


def run(args: argparse.Namespace) -> int:
    def body(report: Reporter, result: Dict[str, Any]) -> Dict[str, Any]:
        from .kube import bluegreen as bg
        from .kube.lock import holding
        from .kube.manifest import COLOURS

        opts = options(args, needs_image=False)
        kube, opts = open_cluster(args, opts, report, result)
        state = bg.read_state(kube, opts.service)
        idle = [c for c in COLOURS if c != state.live and state.deployments[c] is not None
                and (opts.old_colour == "delete" or state.replicas(c) > 0)]
        result["colour"] = ",".join(idle) if idle else state.live  # what the abort removes
        if not idle:
            return {"outcome": "unchanged", "message": "no idle colour to remove"}
        how = "delete" if opts.old_colour == "delete" else "scale to 0"
        if opts.dry_run:
            plan = [f"{how} {opts.service}-{c}" for c in idle]
            for line in plan:
                report.log(f"plan: {line}")
            return {"outcome": "planned", "dry_run": True, "plan": plan, "message": "dry run: nothing was changed"}
        with holding(kube, opts.service, ttl=opts.lock_ttl, timeout=opts.lock_timeout, log=report.log):
            state = bg.read_state(kube, opts.service)
            for colour in idle:
                if colour != state.live:
                    bg.retire(kube, opts.service, state, colour, opts.old_colour, report.log)
        return {"outcome": "aborted", "removed": idle, "message": f"removed idle colour(s): {', '.join(idle)}"}

    return run_command("abort", args, body)
