"""rollback: send traffic back to the previous colour.

If the previous colour still runs and is fully available (within the scale-down delay, or kept by
--keep-old and scaled back up), the Service switches back at once: no pod has to start. If it was
scaled to zero, it is scaled up to the live colour's replica count first. If it was deleted, its
previous image (from the Service's history) is deployed again, which needs --manifest: that is a
deploy in all but name, so it runs deploy's checks before the switch too (the smoke test with
--smoke-path / ENADU_SMOKE_PATH, the metric analysis before the switch when asked for), and a
failing check leaves the live colour untouched (exit 1). The lock, the checked switch, the endpoint
wait and the retirement of the colour rolled back from are the same as deploy's, with one difference:
a deploy that is only waiting out its scale-down delay, keeping the colour we go back to, is not
waited for. Its Lease says so, and the rollback takes the lock over at once (kube/lock.py: a
resourceVersion-checked hand-over), switches back and retires the deploy's colour after its own
delay; the deploy sees the takeover and ends as rolled back (exit 5) without scaling anything down.
In any other phase the deploy is waited for as before (up to --lock-timeout, then exit 3); if it
switched the Service meanwhile, what we were asked to undo is no longer live, so we change nothing
(exit 1) and say so. While a migration from the old script has pinned the Service to the hand-made
pods (kube/migration.py) no colour has served yet: there is nothing to roll back to, and rollback
refuses (exit 2) naming ``abort`` and ``deploy``. Nor does it go back to a colour that never served before the live
one (``check_target``, exit 2): a preview held for promotion and never approved (its
``enadu.io/held`` mark, kube/promotion.py ``pending``: use ``promote`` or ``abort``), a colour kept
after a failed deploy or an abort (its ``enadu.io/aborted`` mark, kube/promotion.py ``kept``), or a colour
whose image is not the ``previous_image`` the history recorded when the live colour went live. Every rollback records ``reason: "rollback"`` (``"rollback: <--reason>"`` when one is given) in the history entry,
and a given --reason is in the JSON result as ``reason`` too, whatever the outcome (enaduNotify shows it).

The history annotation is untrusted input (anyone who may patch the Service can write it): an image
taken from it must validate by the ``--image`` rule and come from the live image's repository, and
the command says which image it is about to run and where that came from.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict, Optional, Tuple

from .deploy import Deployer, Options, add_cluster_arguments, add_switch_arguments, open_cluster, options, run_command
from .deploy import add_smoke_argument, lossy_delay_note, warn_about_delay
from .errors import DeployFailed, UsageProblem
from .cli import env_default
from .report import Reporter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_cluster_arguments(parser)
    parser.add_argument("--manifest", default=env_default("ENADU_MANIFEST"),
                        help="needed only when the previous colour was deleted and must be redeployed [ENADU_MANIFEST]")
    parser.add_argument("--reason", default=env_default("ENADU_ROLLBACK_REASON", ""),
                        help=f"why, recorded in the Service's history as 'rollback: REASON' (one line, at most "
                             f"{REASON_LIMIT} characters) [ENADU_ROLLBACK_REASON]")
    add_smoke_argument(parser, when="when the previous colour was deleted and is redeployed, ")
    add_switch_arguments(parser, default_old="scale-to-zero")
    from . import analysis

    analysis.add_arguments(parser)


REASON_LIMIT = 280  # the history's reason is at most 300 characters, "rollback: " included


def history_reason(text: str) -> str:
    """The history entry's reason: ``rollback``, or ``rollback: <text>`` for a valid ``--reason``."""
    text = (text or "").strip()
    if not text:
        return "rollback"
    if len(text) > REASON_LIMIT or not text.isprintable():
        raise UsageProblem(f"--reason: must be one line of printable text of at most {REASON_LIMIT} characters")
    return f"rollback: {text}"


def run(args: argparse.Namespace) -> int:
    def body(report: Reporter, result: Dict[str, Any]) -> Dict[str, Any]:
        from .kube import bluegreen as bg
        from .kube.lock import KEEPS, PREEMPTIBLE, SCALE_DOWN_DELAY, default_identity, holding, lease_text
        from .kube.manifest import other

        opts = options(args, needs_image=False)
        reason = history_reason(args.reason)
        if reason != "rollback":  # the operator's words, for enaduNotify's "reason:" line (whatever the outcome)
            result["reason"] = reason[len("rollback: "):]
        warn_about_delay(opts, report.log, result)
        kube, opts = open_cluster(args, opts, report, result)
        state = bg.read_state(kube, opts.service)
        if state.pinned:
            from .kube import migration

            pinned = migration.pinned_to(kube, state)
            raise UsageProblem(f"service {opts.service} is pinned to the hand-made deployment {pinned.name} (migration "
                               "in progress): nothing to roll back to yet; run abort to give the Service its selector "
                               "back, or deploy again to finish the migration")
        if state.live is None:
            raise UsageProblem(f"service {opts.service} has no live colour: nothing to roll back")
        live, previous = state.live, other(state.live)
        result.update(previous_colour=live, previous_image=state.image(live), colour=previous)
        dep = state.deployments[previous]
        if dep is None:
            image, source, commit = image_from_history(state, opts.service, live)
            if not args.manifest:
                raise UsageProblem(f"{opts.service}-{previous} was deleted: pass --manifest to redeploy {image}")
            from .kube import manifest as manifests

            report.log(f"{opts.service}-{previous} was deleted; deploying {image} again, {source}")
            # the commit the history recorded for that image goes back on the colour (enadu.io/commit)
            redeploy = Options(**{**opts.__dict__, "image": image, "manifest_path": args.manifest,
                                  "history_reason": reason, "commit": commit or ""})
            if not opts.smoke_path:
                report.log(f"warning: no --smoke-path (ENADU_SMOKE_PATH): {opts.service}-{previous} goes live "
                           "without a smoke test")
            result.update(image=image, image_source="history")
            outcome = Deployer(kube, manifests.load(args.manifest, opts.service), redeploy, report.log, result).run()
            return {**outcome, "outcome": "rolled-back" if outcome["outcome"] == "deployed" else outcome["outcome"]}
        # a held preview is refused at once (its deploy has released the lock); the image rule waits for
        # the lock: a deploy still rolling out the idle colour may switch meanwhile, and that is reported
        check_target(state, opts.service, live, previous, images=opts.dry_run)
        image = state.image(previous)
        result.update(image=image, image_source="deployment")
        report.log(f"rolling back to {image or '(an image it does not name)'}, which deployment "
                   f"{opts.service}-{previous} runs (it served before {live})")
        if opts.dry_run:
            steps = ([] if bg.fully_available(dep) else [f"scale {opts.service}-{previous} up and wait for it"]) + [
                f"switch service {opts.service} from {live} to {previous}",
                f"then retire {opts.service}-{live} after {opts.scale_down_delay:.0f} s"]
            for line in steps:
                report.log(f"plan: {line}")
            return {"outcome": "planned", "dry_run": True, "plan": steps, "message": "dry run: nothing was changed"}
        identity = default_identity()

        def preemptible(lease: Dict[str, Any]) -> bool:
            """A deploy only waiting out its scale-down delay, keeping the colour we go back to."""
            return lease_text(lease, PREEMPTIBLE) == SCALE_DOWN_DELAY and lease_text(lease, KEEPS) == previous

        with holding(kube, opts.service, identity=identity, ttl=opts.lock_ttl, timeout=opts.lock_timeout,
                     log=report.log, preempt=preemptible, reason=reason) as lock:
            if lock.preempted:
                result["preempted"] = lock.preempted
            deployer = Deployer(kube, None, opts, report.log, result)
            state = bg.read_state(kube, opts.service)
            if state.live != live:  # a deploy switched while we waited for its lock: our target is stale
                raise DeployFailed(f"service {opts.service} was switched from {live} to {state.live} while this "
                                   f"rollback waited for the deploy lock; nothing was changed: run rollback again "
                                   f"to go back from {state.live}")
            check_target(state, opts.service, live, previous)
            if not bg.fully_available(state.deployments[previous]):
                replicas = max(1, bg.live_replicas(state, live))
                answer = kube.scale_deployment(f"{opts.service}-{previous}", replicas)
                report.log(f"scaled {opts.service}-{previous} to {replicas} to roll back to it")
                bg.wait_available(kube, opts.service, previous, image or "", deadline=time.monotonic() + opts.timeout,
                                  log=report.log, written=bg.written_over(state.deployments[previous], answer),
                                  fail_grace=opts.fail_grace)
                state = bg.read_state(kube, opts.service)
            entry = bg.history_entry(state, previous, image or "", opts.build_url, identity)
            entry["reason"] = reason
            bg.switch(kube, opts.service, state, previous, entry, report.log)
            bg.retarget_hpas(kube, opts.service, live, previous, report.log)
            bg.wait_endpoints(kube, opts.service, opts.service, previous, deadline=time.monotonic() + opts.timeout,
                              log=report.log)
            deployer.retire_after_delay(live)
        took = (f"; took over the deploy lock from {result['preempted']}, which was waiting out its scale-down delay "
                "and stopped without retiring anything") if result.get("preempted") else ""
        return {"outcome": "rolled-back",
                "message": f"{image} is live again in {previous} (was {live}){took}{lossy_delay_note(opts)}"}

    return run_command("rollback", args, body)


def check_target(state: Any, service: str, live: str, previous: str, *, images: bool = True) -> None:
    """Refuse (exit 2) a colour that would put live what never served before the live one: a preview
    held for promotion (``deploy --hold``, kube/promotion.py) that was never promoted, or a
    Deployment whose image (its annotation or its pod template's) is not the one the history records
    as live before ``live``, or one whose newest history entry records that it failed its analysis
    after its switch. Without a recorded previous image only the marks and that verdict are checked."""
    from .kube.promotion import kept, pending

    dep = state.deployments.get(previous)
    name = f"{service}-{previous}"
    if dep is None:
        raise UsageProblem(f"refusing to roll back to {name}: it was deleted")
    mark = pending(dep, state.history, previous)
    if mark is not None:
        raise UsageProblem(f"refusing to roll back to {name}: it is the preview of {mark['image']} held for promotion "
                           f"since {mark.get('at')}, never approved; run promote to put it live or abort to remove it")
    failed = kept(dep, state.history, previous)
    if failed is not None:
        raise UsageProblem(f"refusing to roll back to {name}: it runs {failed['image'] or 'an image it does not name'}, kept after a "
                           f"{failed.get('after') or 'failed deploy'} at {failed.get('at')} and never live since; run "
                           "abort to remove it, or deploy the image you want with deploy --image")
    newest = next((h for h in state.history if h.get("colour") == previous), None)
    verdict = (newest or {}).get("analysis") or ""
    if verdict.startswith("failed: "):  # review4 M3: a colour that failed its analysis is never a target
        raise UsageProblem(f"refusing to roll back to {name}: its switch at {newest.get('at')} failed its analysis "
                           f"({verdict}); deploy the image you want with deploy --image")
    if not images:
        return
    entry = next((h for h in state.history if h.get("colour") == live), None)
    expected = (entry or {}).get("previous_image")
    containers = ((dep.get("spec") or {}).get("template", {}).get("spec", {}).get("containers") or [{}])
    running = {state.image(previous), containers[0].get("image")}
    if expected and running != {expected}:
        shown = ", ".join(sorted(str(i) for i in running))
        raise UsageProblem(f"refusing to roll back to {name}: it runs {shown}, not {expected}, which the Service's "
                           f"history records as live before {live}; deploy the image you want with deploy --image")


def image_from_history(state: Any, service: str, live: str) -> Tuple[str, str, Optional[str]]:
    """The image to redeploy for a deleted colour, from the Service's history annotation, a
    phrase saying where it came from, and the commit the history recorded for it (``previous_commit``
    of the entry that made ``live`` live; None in entries written before commits were recorded).

    The annotation is untrusted (whoever may patch the Service can write it): every entry must
    validate (``bluegreen.parse_history``), and the image must come from the repository the live
    colour runs, so the history can pick another version, never another image."""
    from . import imageref
    from .kube.bluegreen import HISTORY
    from .kube.manifest import other

    if state.history_problems:
        raise DeployFailed(f"refusing to roll back from the Service's history: {state.history_problems[0]}; "
                           f"deploy the image you want with deploy --image")
    entry = next((h for h in state.history if h.get("colour") == live), None)
    image = (entry or {}).get("previous_image")
    if not image:
        raise DeployFailed(f"{service}-{other(live)} is gone and the history names no previous image")
    live_image = state.image(live)
    if imageref.problem(live_image) is not None:
        raise DeployFailed(f"refusing to roll back to {image}: the live colour's image is unknown, so the history's "
                           "image cannot be checked against it; deploy the image you want with deploy --image")
    if imageref.repository(image) != imageref.repository(live_image):
        raise DeployFailed(f"refusing to roll back to {image}: the Service's history names a repository other than "
                           f"the live image's {imageref.repository(live_image)}; deploy it with deploy --image if "
                           "it is wanted")
    by = f" by {entry['by']}" if entry.get("by") else ""
    build = f" ({entry['build_url']})" if entry.get("build_url") else ""
    return image, (f"the previous image recorded in the Service's {HISTORY} annotation when {live} went live "
                   f"at {entry['at']}{by}{build}"), entry.get("previous_commit")
