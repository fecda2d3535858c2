"""status: the live colour, each colour's image and readiness, and the deploy history.

Reads only. With ``--output json`` prints one object: ``live``, ``colours`` (per colour: image,
replicas, ready, available, fully_available) and ``history`` (newest first, as recorded on the
Service by deploy and rollback).
"""

from __future__ import annotations

import argparse
from typing import Any, Dict

from .cli import env_default
from .deploy import add_cluster_arguments, open_cluster, options, run_command
from .report import Reporter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_cluster_arguments(parser)
    parser.add_argument("--manifest", default=env_default("ENADU_MANIFEST"),
                        help="the service's rendered manifest: only its namespace is used [ENADU_MANIFEST]")
    for name, default in (("--timeout", "10m"), ("--scale-down-delay", "0s"), ("--lock-timeout", "0s"),
                          ("--lock-ttl", "60s")):
        parser.set_defaults(**{name[2:].replace("-", "_"): default})
    parser.set_defaults(old_colour="scale-to-zero", dry_run=True, build_url="")


def run(args: argparse.Namespace) -> int:
    def body(report: Reporter, result: Dict[str, Any]) -> Dict[str, Any]:
        from .kube import bluegreen as bg
        from .kube.manifest import COLOURS

        opts = options(args, needs_image=False)
        kube, opts = open_cluster(args, opts, report, result)
        state = bg.read_state(kube, opts.service)
        colours = {}
        for colour in COLOURS:
            dep = state.deployments[colour]
            if dep is None:
                colours[colour] = None
                continue
            status = dep.get("status") or {}
            colours[colour] = {"image": state.image(colour), "replicas": int(dep["spec"].get("replicas") or 0),
                               "ready": int(status.get("readyReplicas") or 0),
                               "available": int(status.get("availableReplicas") or 0),
                               "fully_available": bg.fully_available(dep)}
        if state.service is None:
            report.log(f"service {opts.service}: not deployed (no Service in namespace {opts.namespace})")
        else:
            report.log(f"service {opts.service}: live colour {state.live or '(none)'}")
        for colour, info in colours.items():
            if info is None:
                report.log(f"  {colour:<5}  (no deployment)")
            else:
                marker = "  <- live" if colour == state.live else ""
                report.log(f"  {colour:<5}  {info['image']}  {info['available']}/{info['replicas']} available"
                           f"{'' if info['fully_available'] or not info['replicas'] else ' (not fully available)'}{marker}")
        for entry in state.history:
            report.log(f"  history: {entry.get('at')} {entry.get('colour')} {entry.get('image')}"
                       f" (was {entry.get('previous_colour') or '-'} {entry.get('previous_image') or '-'})"
                       f" by {entry.get('by') or '?'} {entry.get('build_url') or ''}".rstrip()
                       + (f" [{entry['reason']}]" if entry.get("reason") else ""))
        return {"outcome": "status", "live": state.live, "colours": colours, "history": state.history,
                "colour": state.live, "image": state.image(state.live)}

    return run_command("status", args, body)
