"""status: the live colour, each colour's image and readiness, and the deploy history.

Reads only. The history is what deploy and rollback record on the Service (the ``enadu.io/history``
annotation, at most 10 entries): anyone who may patch the Service can write it, so only entries that
validate are shown (``bluegreen.parse_history``) and the others are named as left out.

With ``--output json`` prints one object (besides the fields every command has):

- ``live``: the colour the Service selects, or null; ``live_since``: when it became live (the newest
  history entry's ``at`` when that entry is for the live colour, else null: switched by other means);
- ``became_live``: per colour, the newest time it became live by the history, or null;
- ``commit``: the commit the live colour was deployed from (its Deployment's ``enadu.io/commit``,
  which ``changes`` compares with), or null when it names none;
- ``colours``: per colour, null without a Deployment, else ``image``, ``commit``, ``replicas``, ``ready``,
  ``available``, ``fully_available`` and ``preview``: null, or for an idle colour that runs pods an
  object (kube/promotion.py ``preview_state``) whose ``state`` is ``held`` (a ``deploy --hold``
  preview that ``promote`` may switch to until ``valid_until``), ``hold-expired`` (it may no longer be
  promoted: ``problem`` says why; ``abort`` removes it) or ``kept`` (after a failed deploy or an abort,
  ``after`` says which, with ``--abort-scale-down-delay``: ``scale_down_at``, or null for never, and
  ``overdue``: that time has passed and it still runs, because the deploy that kept it was stopped: run
  ``abort``; it is never promoted nor rolled back to), with ``image`` (null when abort could not name
  it) and ``at``;
- ``history``: newest first, each entry with every key (null when not recorded): ``at`` (UTC,
  ``2026-01-31T12:00:00Z``), ``colour`` (made live), ``outcome`` (``deployed``; ``rolled-back``: the
  rollback command; ``switched-back``: a deploy that failed after its switch went back), ``image``,
  ``previous_colour``, ``previous_image``, ``by`` (the lock identity: the Jenkins build or the user),
  ``build_url``, ``reason``, ``analysis`` (the analysis after that switch: ``pending`` until its verdict,
  then ``passed: ...``, ``failed: ...`` or ``not analysed: ...``; null when none was asked for),
  ``commit`` and ``previous_commit`` (the ``enadu.io/commit`` of the colour made live and of the one before);
- ``analysis_pending_since``: when the live colour's switch still has its analysis pending (the deploy
  stopped before the verdict; ``deploy`` again analyses it), the switch's time, else null;
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

ENTRY_KEYS = ("at", "colour", "outcome", "image", "previous_colour", "previous_image", "by", "build_url", "reason",
              "analysis", "commit", "previous_commit")
# How much of each field a text line shows (the history's own bounds are 256, 2000 and 300 characters).
TEXT_WIDTH = {"image": 120, "by": 60, "build_url": 100, "reason": 120, "analysis": 120}


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


def analysis_pending_since(view: Dict[str, Any]) -> Optional[str]:
    """The live colour's switch time when its entry still says the analysis after it is pending
    (deploy.Deployer.pending_analysis reads the same mark), else None."""
    from .kube.bluegreen import ANALYSIS_PENDING

    entries = view["history"]
    if view["live_since"] and entries and entries[0]["analysis"] == ANALYSIS_PENDING:
        return view["live_since"]
    return None


def preview_line(preview: Dict[str, Any]) -> str:
    """One line on an idle colour that is a held preview, an expired hold, or kept after a failure."""
    image = _cut(preview["image"] or "image unknown", TEXT_WIDTH["image"])
    if preview["state"] == "held":
        return f"held for promotion ({image}, valid until {preview['valid_until']}): promote switches to it"
    if preview["state"] == "hold-expired":
        problem = preview.get("problem") or ""
        if problem.startswith("its hold expired at "):
            return f"hold expired at {preview['valid_until']} (cannot be promoted; abort removes it): image {image}"
        return f"held no more: {_cut(problem, 120)} (cannot be promoted; abort removes it): image {image}"
    if preview.get("overdue"):  # the deploy (or abort) that kept it was killed: nobody will scale it down
        until = f"overdue since {preview['scale_down_at']}: the deploy that kept it stopped; run abort"
    elif preview.get("scale_down_at"):
        until = f"scaled to 0 at {preview['scale_down_at']}"
    else:
        until = "until abort or the next deploy"
    return (f"kept after a{'n abort' if preview.get('after') == 'abort' else ' failed deploy'} (image {image}): "
            f"since {preview.get('at')}, {until}; never promoted nor rolled back to")


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
    if entry["analysis"]:
        parts.append(f"analysis: {_cut(entry['analysis'], TEXT_WIDTH['analysis'])}")
    return "  " + "  ".join(parts)


def run(args: argparse.Namespace) -> int:
    def body(report: Reporter, result: Dict[str, Any]) -> Dict[str, Any]:
        from .kube import bluegreen as bg
        from .kube.manifest import COLOURS
        from .kube.promotion import preview_state

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
            colours[colour] = {"image": state.image(colour), "commit": state.commit(colour),
                               "replicas": int(dep["spec"].get("replicas") or 0),
                               "ready": int(status.get("readyReplicas") or 0),
                               "available": int(status.get("availableReplicas") or 0),
                               "fully_available": bg.fully_available(dep),
                               "preview": None if colour == state.live else preview_state(dep, state.history, colour)}
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
            if state.live:
                commit = state.commit(state.live)
                report.log(f"  live commit {commit}" if commit else "  live commit unknown (its Deployment names none: "
                           "deployed without GIT_COMMIT, or before commits were recorded)")
        pending = analysis_pending_since(view)
        if pending:
            report.log(f"  analysis pending since {pending}: the deploy that switched to {state.live} stopped before "
                       "its analysis' verdict; deploy again to analyse it (while the previous colour runs)")
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
                if info["preview"] is not None:
                    report.log(f"         {preview_line(info['preview'])}")
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
                "analysis_pending_since": analysis_pending_since(view),
                "handmade_left_running": {legacy.name: legacy.replicas for legacy in leftovers},
                "history_left_out": list(state.history_problems), "colour": state.live,
                "image": state.image(state.live), "commit": state.commit(state.live)}

    return run_command("status", args, body)
