"""status: the live colour, each colour's image and readiness, and the deploy history.

Reads only. The history is what deploy and rollback record on the Service (the ``enadu.io/history``
annotation, at most 10 entries): anyone who may patch the Service can write it, so only entries that
validate are shown (``bluegreen.parse_history``) and the others are named as left out.

With ``--output json`` prints one object (besides the fields every command has):

- ``live``: the colour the Service selects, or null; ``live_since``: when it became live (the newest
  history entry's ``at`` when that entry is for the live colour, else null: switched by other means);
- ``became_live``: per colour, the newest time it became live by the history, or null;
- ``colours``: per colour, null without a Deployment, else ``image``, ``replicas``, ``ready``,
  ``available``, ``fully_available``;
- ``history``: newest first, each entry with every key (null when not recorded): ``at`` (UTC,
  ``2026-01-31T12:00:00Z``), ``colour`` (made live), ``outcome`` (``deployed``; ``rolled-back``: the
  rollback command; ``switched-back``: a deploy that failed after its switch went back), ``image``,
  ``previous_colour``, ``previous_image``, ``by`` (the lock identity: the Jenkins build or the user),
  ``build_url``, ``reason``;
- ``history_left_out``: why entries were left out, one line each;
- ``pinned_to``: while a migration from the old script has pinned the Service to the hand-made pods
  (selector ``color=legacy``, ``live`` null), the hand-made Deployment they belong to, else null;
- ``handmade_left_running``: hand-made Deployments a migration switched away from but stopped before
  retiring, by name, with their replicas (``deploy`` again retires them), else ``{}``.

Text output is bounded: at most 10 history lines, each field cut to a fixed length (the JSON keeps
the validated values whole), every line printed through ``report.printable``.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional

from .cli import env_default
from .deploy import add_cluster_arguments, open_cluster, options, run_command
from .report import Reporter

ENTRY_KEYS = ("at", "colour", "outcome", "image", "previous_colour", "previous_image", "by", "build_url", "reason")
# How much of each field a text line shows (the history's own bounds are 256, 2000 and 300 characters).
TEXT_WIDTH = {"image": 120, "by": 60, "build_url": 100, "reason": 120}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_cluster_arguments(parser)
    parser.add_argument("--manifest", default=env_default("ENADU_MANIFEST"),
                        help="the service's rendered manifest: only its namespace is used [ENADU_MANIFEST]")
    for name, default in (("--timeout", "10m"), ("--scale-down-delay", "0s"), ("--lock-timeout", "0s"),
                          ("--lock-ttl", "60s")):
        parser.set_defaults(**{name[2:].replace("-", "_"): default})
    parser.set_defaults(old_colour="scale-to-zero", dry_run=True, build_url="")


def outcome_of(entry: Dict[str, Any]) -> str:
    """What an entry records, from the reason its writer gives: deploy's switch back after a failure
    records ``rolled back: <cause>`` (deploy.Deployer.switch_back), the rollback command ``rollback``
    or ``rollback: <--reason>`` (rollback.history_reason); a deploy records none."""
    reason = entry.get("reason") or ""
    if reason.startswith("rolled back: "):
        return "switched-back"
    if reason == "rollback" or reason.startswith("rollback: "):
        return "rolled-back"
    return "deployed"


def history_view(history: List[Dict[str, Any]], live: Optional[str]) -> Dict[str, Any]:
    """The ``history``, ``became_live`` and ``live_since`` of the JSON result."""
    from .kube.manifest import COLOURS

    entries = [{key: (outcome_of(e) if key == "outcome" else e.get(key)) for key in ENTRY_KEYS} for e in history]
    became = {c: next((e["at"] for e in entries if e["colour"] == c), None) for c in COLOURS}
    since = entries[0]["at"] if entries and live and entries[0]["colour"] == live else None
    return {"history": entries, "became_live": became, "live_since": since}


def _cut(value: Any, width: int) -> str:
    text = str(value)
    return text if len(text) <= width else text[:width] + "\u2026"


def history_line(entry: Dict[str, Any]) -> str:
    parts = [entry["at"], f"{entry['colour']:<5}", f"{entry['outcome']:<13}", _cut(entry["image"] or "(image unknown)",
                                                                                   TEXT_WIDTH["image"])]
    if entry["previous_colour"]:
        parts.append(f"(was {entry['previous_colour']})")
    if entry["by"]:
        parts.append(f"by {_cut(entry['by'], TEXT_WIDTH['by'])}")
    if entry["build_url"]:
        parts.append(_cut(entry["build_url"], TEXT_WIDTH["build_url"]))
    if entry["reason"]:
        parts.append(f"reason: {_cut(entry['reason'], TEXT_WIDTH['reason'])}")
    return "  " + "  ".join(parts)


def run(args: argparse.Namespace) -> int:
    def body(report: Reporter, result: Dict[str, Any]) -> Dict[str, Any]:
        from .kube import bluegreen as bg
        from .kube.manifest import COLOURS

        opts = options(args, needs_image=False)
        kube, opts = open_cluster(args, opts, report, result)
        state = bg.read_state(kube, opts.service)
        view = history_view(state.history, state.live)
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
        from .kube import migration

        pinned = migration.pinned_to(kube, state)
        configured = None  # only the configured hand-made Deployment is ever retired (kube/migration.py leftovers)
        if getattr(opts, "manifest_path", None):
            from .kube import manifest as manifests

            configured = manifests.load(opts.manifest_path, opts.service).migrate_from
        leftovers = [legacy for legacy, _ in migration.leftovers(kube, opts.service, state, configured)]
        if state.service is None:
            report.log(f"service {opts.service}: not deployed (no Service in namespace {opts.namespace})")
        elif pinned is not None:
            report.log(f"service {opts.service}: pinned to the hand-made deployment {pinned.name} (migration in progress)")
            report.log(f"  its {len(pinned.pods)} pods labelled {migration.LABEL}={migration.LEGACY} serve; no colour is "
                       "live yet: deploy again to finish the migration, or abort to give the Service its selector "
                       f"{pinned.selector_text(None)} back")
        else:
            since = f" since {view['live_since']}" if view["live_since"] else ""
            report.log(f"service {opts.service}: live colour {state.live or '(none)'}{since}")
        for legacy in leftovers:
            report.log(f"  deployment {legacy.name} (hand-made) still runs {legacy.replicas} replicas: a migration "
                       "stopped after its switch; deploy again retires it")
        for colour, info in colours.items():
            became = view["became_live"][colour]
            if colour == state.live:
                marker = "  <- live"
            else:
                marker = f"  (last live from {became})" if became else ""
            if info is None:
                report.log(f"  {colour:<5}  (no deployment){marker}")
            else:
                report.log(f"  {colour:<5}  {_cut(info['image'], TEXT_WIDTH['image'])}  "
                           f"{info['available']}/{info['replicas']} available"
                           f"{'' if info['fully_available'] or not info['replicas'] else ' (not fully available)'}{marker}")
        if state.service is not None:
            entries = view["history"]
            if entries:
                report.log(f"last {len(entries)} deploy{'s' if len(entries) > 1 else ''}, newest first "
                           f"(at most {bg.HISTORY_LIMIT} are kept):")
            else:
                report.log("no deploys recorded on the Service")
            for entry in entries:
                report.log(history_line(entry))
            problems = state.history_problems
            if problems:
                report.log(f"{len(problems)} history entr{'ies' if len(problems) > 1 else 'y'} left out "
                           "(they do not validate):")
                for problem in problems:
                    report.log(f"  {problem}")
        return {"outcome": "status", "live": state.live, "colours": colours, **view,
                "pinned_to": pinned.name if pinned is not None else None,
                "handmade_left_running": {legacy.name: legacy.replicas for legacy in leftovers},
                "history_left_out": list(state.history_problems), "colour": state.live,
                "image": state.image(state.live)}

    return run_command("status", args, body)
