"""deploy: start the idle colour with an image, wait until it is fully available, switch the Service.

The blue/green contract (README, "Blue/green deploys"): take the service's deploy lock (a Lease);
read the Service and both colours; start the idle colour from the rendered manifest with the image,
at no fewer replicas than the live colour runs; wait with watches until it is fully available
(failing fast on hopeless pods); optionally smoke-test it through the preview Service via the API
server's proxy; switch the Service's selector with a resourceVersion precondition; wait until its
endpoints are exactly the new colour's ready pods; keep the old colour for the scale-down delay, then
scale it to zero or delete it. A failure before the switch leaves the live colour untouched and scales
the idle one to zero (exit 1) after --abort-scale-down-delay (Argo Rollouts' abortScaleDownDelaySeconds;
``never`` leaves it running, marked so it is never promoted nor rolled back to: ``Deployer.keep_failed``); a failure after it switches back (exit 5). Every step reads first and
writes only what differs, so re-running after a crash at any point converges.

SIGTERM or SIGINT (an aborted or timed-out build) writes an ``interrupted`` result at once, then
cleans up within ``--interrupt-grace`` (see ``interrupt``): before the switch the idle colour is
scaled to zero (the live one is never touched); during the switch's request (which the API server may
still commit after any read) nothing is scaled down; after it the Service stays on the new colour and the
old one keeps running, as after any unfinished deploy; then the lock is released, what is live is
read back, and the final ``interrupted`` result says it (exit 1 before the switch, 6 during or after it).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import exitcodes, imageref, interrupt
from .cli import env_default, flag
from .errors import DeployFailed, HelperError, Incomplete, Interrupted, RolledBack, UsageProblem
from .kube.manifest import COMMIT_PATTERN, NAMESPACE_PATTERN
from .report import Reporter, parse_duration

NAME_PATTERN = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")
OUTCOMES = {exitcodes.FAILED: "failed", exitcodes.USAGE: "error", exitcodes.LOCK_HELD: "lock-held",
            exitcodes.CLUSTER: "error", exitcodes.ROLLED_BACK: "rolled-back", exitcodes.INCOMPLETE: "incomplete"}


# -- arguments shared by deploy, status, rollback and abort --------------------------------------


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", default=env_default("ENADU_SERVICE"), help="service name [ENADU_SERVICE]")
    parser.add_argument("--namespace", default=None,
                        help="namespace; must agree with the manifest's (default: the manifest's, else the kubeconfig "
                             "context's, else default) [ENADU_NAMESPACE]")
    parser.set_defaults(namespace_env=env_default("ENADU_NAMESPACE"))
    parser.add_argument("--kubeconfig", default=None,
                        help="kubeconfig file [KUBECONFIG]; without one, the in-cluster service account is used")
    parser.add_argument("--context", default=env_default("ENADU_KUBE_CONTEXT"),
                        help="kubeconfig context (default: its current context) [ENADU_KUBE_CONTEXT]")
    parser.add_argument("--result-file", default=env_default("ENADU_RESULT_FILE"),
                        help="also write the JSON result to this file, from the start on [ENADU_RESULT_FILE]")
    parser.add_argument("--interrupt-grace", default=env_default("ENADU_INTERRUPT_GRACE", f"{interrupt.DEFAULT_GRACE:g}s"),
                        help=f"after SIGTERM, exit within this long, clean-up included (default "
                             f"{interrupt.DEFAULT_GRACE:g}s, at most {interrupt.MAX_GRACE:g}s) [ENADU_INTERRUPT_GRACE]")


def add_switch_arguments(parser: argparse.ArgumentParser, *, default_old: str, abort_delay: str = "30s") -> None:
    parser.add_argument("--timeout", default=env_default("ENADU_TIMEOUT", "10m"),
                        help="bound on waiting for the new colour, the smoke test and the switch (default 10m) [ENADU_TIMEOUT]")
    parser.add_argument("--fail-grace", default=env_default("ENADU_FAIL_GRACE", "60s"),
                        help="how long a container state the kubelet retries without back-off (CreateContainerConfigError, "
                             "CreateContainerError, ...) may last before the deploy fails (default 60s) [ENADU_FAIL_GRACE]")
    parser.add_argument("--scale-down-delay", default=env_default("ENADU_SCALE_DOWN_DELAY", "30s"),
                        help="how long the old colour keeps running after the switch (default 30s) [ENADU_SCALE_DOWN_DELAY]")
    add_floor_argument(parser)
    parser.set_defaults(abort_scale_down_delay_default=abort_delay)  # what an empty value means (abort_delay)
    parser.add_argument("--abort-scale-down-delay", default=env_default("ENADU_ABORT_SCALE_DOWN_DELAY", abort_delay),
                        help="how long the idle colour of a deploy that failed before its switch (or that abort "
                             "removes) keeps running first, under the lock: a duration of at most 5m (0s: at once; a deploy "
                             "or abort started meanwhile waits for it) or never (kept, unlocked, until abort or the "
                             "next deploy); an interruption always removes it at once (Argo's "
                             f"abortScaleDownDelaySeconds; default {abort_delay}) [ENADU_ABORT_SCALE_DOWN_DELAY]")
    old = parser.add_mutually_exclusive_group()
    default = env_default("ENADU_OLD_COLOUR", default_old)
    old.add_argument("--keep-old", dest="old_colour", action="store_const", const="scale-to-zero", default=default,
                     help="scale the old colour to zero after the delay, keeping its Deployment [ENADU_OLD_COLOUR=scale-to-zero]")
    old.add_argument("--delete-old", dest="old_colour", action="store_const", const="delete",
                     help="delete the old colour's Deployment after the delay [ENADU_OLD_COLOUR=delete]")
    parser.add_argument("--lock-timeout", default=env_default("ENADU_LOCK_TIMEOUT", "5m"),
                        help="how long to wait for another deploy of the service to finish (default 5m) [ENADU_LOCK_TIMEOUT]")
    parser.add_argument("--lock-ttl", default=env_default("ENADU_LOCK_TTL", "60s"),
                        help="the lock expires this long after its holder stops renewing it (default 60s) [ENADU_LOCK_TTL]")
    parser.add_argument("--dry-run", action="store_const", const="true", default=env_default("ENADU_DRY_RUN", ""),
                        help="read the cluster and print the plan; write nothing [ENADU_DRY_RUN]")
    parser.add_argument("--build-url", default=env_default("BUILD_URL", ""),
                        help="recorded in the Service's deploy history [BUILD_URL]")
    from . import grafana

    grafana.add_arguments(parser)


# Argo Rollouts' default scaleDownDelaySeconds and its advice: "A minimum of 30 seconds is recommended to
# ensure IP table propagation across the nodes in a cluster" (argo-rollouts pkg/apis/rollouts/v1alpha1/types.go,
# utils/defaults/defaults.go DefaultScaleDownDelaySeconds, docs/features/bluegreen.md). Until every node's
# proxy has seen the switch it still sends new connections to the old colour, which must be running.
RECOMMENDED_SCALE_DOWN_DELAY = 30.0
# Argo Rollouts' DefaultAbortScaleDownDelaySeconds (utils/defaults/defaults.go): how long the preview of an
# aborted update keeps running before it is scaled down.
ABORT_SCALE_DOWN_DELAY = 30.0
# The abort delay holds the deploy lock: at most the default --lock-timeout, so a deploy or abort started
# meanwhile gets the lock in time (review3 M2); ``never`` keeps the colour longer without the lock.
MAX_ABORT_SCALE_DOWN_DELAY = 300.0


def add_floor_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale-down-delay-floor", default=env_default("ENADU_SCALE_DOWN_DELAY_FLOOR", "30s"),
                        help="a shorter --scale-down-delay is raised to this (default 30s); lower it only where "
                             "losing requests is fine [ENADU_SCALE_DOWN_DELAY_FLOOR]")


def _seconds(value: float) -> str:
    return f"{value:g}s"


def delay_warnings(opts: "Options") -> List[str]:
    """What the scale-down delay risks, one line each (empty for the default): a delay raised to the
    floor, and a delay (after the floor) shorter than proxies may need to see a switch."""
    warnings = []
    if opts.requested_scale_down_delay < opts.scale_down_delay_floor:
        why = (", the time Service proxies may need to see it"
               if opts.scale_down_delay >= RECOMMENDED_SCALE_DOWN_DELAY else "")
        warnings.append(f"--scale-down-delay {_seconds(opts.requested_scale_down_delay)} is below the floor of "
                        f"{_seconds(opts.scale_down_delay_floor)} (--scale-down-delay-floor, ENADU_SCALE_DOWN_DELAY_FLOOR):"
                        f" keeping the old colour {_seconds(opts.scale_down_delay)} after the switch{why}")
    if opts.scale_down_delay < RECOMMENDED_SCALE_DOWN_DELAY:
        warnings.append(f"keeping the old colour only {_seconds(opts.scale_down_delay)} after the switch "
                        f"(--scale-down-delay-floor {_seconds(opts.scale_down_delay_floor)}), less than the "
                        f"{_seconds(RECOMMENDED_SCALE_DOWN_DELAY)} Service proxies may need to see it: requests they "
                        "still send to the old colour will fail")
    return warnings


def warn_about_delay(opts: "Options", log: Callable[[str], None], result: Dict[str, Any]) -> None:
    """Log :func:`delay_warnings` and keep them in the result (``warnings``)."""
    for line in delay_warnings(opts):
        log(f"warning: {line}")
        result.setdefault("warnings", []).append(line)


def lossy_delay_note(opts: "Options") -> str:
    """A suffix for the final message of a command that retired a colour too soon for the proxies."""
    if opts.scale_down_delay >= RECOMMENDED_SCALE_DOWN_DELAY:
        return ""
    return f"; warning: {delay_warnings(opts)[-1]}"


def add_smoke_argument(parser: argparse.ArgumentParser, *, when: str = "") -> None:
    parser.add_argument("--smoke-path", default=env_default("ENADU_SMOKE_PATH", ""),
                        help=f"{when}GET this path on the new colour through its preview Service before switching "
                             "[ENADU_SMOKE_PATH]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_cluster_arguments(parser)
    parser.add_argument("--image", default=env_default("ENADU_IMAGE"), help="image reference to deploy [ENADU_IMAGE]")
    parser.add_argument("--manifest", default=env_default("ENADU_MANIFEST"),
                        help="the service's rendered manifest (resources/enadu/k8s/<service>.yaml) [ENADU_MANIFEST]")
    parser.add_argument("--commit", default=env_default("GIT_COMMIT", ""),
                        help="the commit the image was built from (40 hex digits, or 64), recorded on the colour as "
                             "enadu.io/commit for `changes`; empty: none recorded [GIT_COMMIT]")
    add_smoke_argument(parser)
    add_switch_arguments(parser, default_old="scale-to-zero")
    add_promotion_arguments(parser)
    from . import analysis

    analysis.add_arguments(parser)


def add_promotion_arguments(parser: argparse.ArgumentParser) -> None:
    """Manual promotion (README, "Manual promotion"), named after Argo Rollouts' BlueGreenStrategy
    (argo-rollouts pkg/apis/rollouts/v1alpha1/types.go: ``autoPromotionEnabled``, ``previewReplicaCount``)."""
    parser.add_argument("--hold", action="store_const", const="true", default=env_default("ENADU_HOLD", ""),
                        help="stop before the switch: leave the new colour ready behind the preview Service, release "
                             "the lock and exit 7 (held); `promote` switches to it, `abort` removes it "
                             "(Argo's autoPromotionEnabled: false) [ENADU_HOLD]")
    parser.add_argument("--preview-replicas", default=env_default("ENADU_PREVIEW_REPLICAS", ""),
                        help="start the new colour at this many replicas; it is scaled to full (and waited for) only "
                             "on promotion, before the switch (Argo's previewReplicaCount) [ENADU_PREVIEW_REPLICAS]")
    parser.add_argument("--hold-valid-for", default=env_default("ENADU_HOLD_VALID_FOR", "3600s"),
                        help="with --hold: how long the held preview may be promoted; the time is written into its "
                             "mark and promote refuses it afterwards (the pipeline passes auto_promotion_seconds; "
                             "default 3600s) [ENADU_HOLD_VALID_FOR]")


@dataclass(frozen=True)
class Options:
    service: str
    namespace: str
    timeout: float
    scale_down_delay: float
    old_colour: str
    lock_timeout: float
    lock_ttl: int
    dry_run: bool
    build_url: str
    image: str = ""
    manifest_path: str = ""
    smoke_path: str = ""
    analysis: Any = None  # analysis.Settings, or None when no metric analysis was asked for
    history_reason: str = ""  # recorded as the history entry's reason (rollback's redeploy sets it)
    commit: str = ""  # deploy --commit (GIT_COMMIT): written on the colour it deploys as enadu.io/commit
    # scale_down_delay is what is kept: the larger of the delay asked for and the floor
    requested_scale_down_delay: float = RECOMMENDED_SCALE_DOWN_DELAY
    scale_down_delay_floor: float = RECOMMENDED_SCALE_DOWN_DELAY
    fail_grace: float = 60.0  # see bluegreen.FailFast
    hold: bool = False  # deploy --hold: stop before the switch (manual promotion)
    promote: bool = False  # promote: switch to the colour a held deploy prepared
    preview_replicas: int = 0  # deploy --preview-replicas: the new colour's count until promotion (0: full)
    hold_valid_for: float = 3600.0  # deploy --hold-valid-for: written into the held mark as valid_until
    # --abort-scale-down-delay: seconds a colour that failed before its switch keeps running; None: never
    abort_scale_down_delay: Optional[float] = ABORT_SCALE_DOWN_DELAY


def abort_delay(args: argparse.Namespace) -> Optional[float]:
    """``--abort-scale-down-delay``: seconds, or None for ``never``. Argo Rollouts'
    abortScaleDownDelaySeconds (utils/defaults/defaults.go ``GetAbortScaleDownDelaySecondsOrDefault``)
    says "never" with 0; here 0s means at once, as every other delay of ours does. An empty value is
    the command's own default (``add_switch_arguments``: 0s for abort, 30s for deploy and promote)."""
    default = getattr(args, "abort_scale_down_delay_default", None) or f"{ABORT_SCALE_DOWN_DELAY:g}s"
    text = (str(getattr(args, "abort_scale_down_delay", None) or "").strip() or default).strip()
    if text == "never":
        return None
    what = "--abort-scale-down-delay (ENADU_ABORT_SCALE_DOWN_DELAY)"
    try:
        seconds = parse_duration(text, what)
    except UsageProblem:
        raise UsageProblem(f"{what}: {text[:40]!r} is not a duration such as 30s, 10m or 1h, or never") from None
    if seconds > MAX_ABORT_SCALE_DOWN_DELAY:  # the config's bound too (configtypes.py DurationOrNever)
        raise UsageProblem(f"{what}: {text[:40]!r} must be at most 5m: the deploy lock is held for the whole "
                           "delay (a deploy or abort waits 5m for it, the default --lock-timeout); use never to keep "
                           "the colour longer")
    return seconds


def options(args: argparse.Namespace, *, needs_image: bool) -> Options:
    if not args.service or not NAME_PATTERN.fullmatch(args.service):
        raise UsageProblem(f"--service: {args.service!r} is not a service name" if args.service
                           else "--service (or ENADU_SERVICE) is required")
    given, source = namespace_flag(args)
    if given is not None and not NAMESPACE_PATTERN.fullmatch(given):
        raise UsageProblem(f"{source}: {given!r} is not a namespace name")
    image = getattr(args, "image", None) or ""
    if needs_image and not image:
        raise UsageProblem("--image (or ENADU_IMAGE) is required")
    bad_image = imageref.check(image, "--image") if image else None
    if bad_image:
        raise UsageProblem(bad_image)
    commit = (getattr(args, "commit", None) or "").strip()
    if commit and not COMMIT_PATTERN.fullmatch(commit):
        raise UsageProblem(f"--commit (or GIT_COMMIT): {commit[:60]!r} is not a full commit id (40 lowercase hex "
                           "digits, or 64 in a SHA-256 repository, as git rev-parse prints it)")
    manifest = getattr(args, "manifest", None) or ""
    if needs_image and not manifest:
        raise UsageProblem("--manifest (or ENADU_MANIFEST) is required")
    smoke = getattr(args, "smoke_path", "") or ""
    if smoke and not re.fullmatch(r"/[A-Za-z0-9._~/-]*", smoke):
        raise UsageProblem(f"--smoke-path: {smoke!r} is not an HTTP path")
    if args.old_colour not in ("scale-to-zero", "delete"):
        raise UsageProblem(f"ENADU_OLD_COLOUR: {args.old_colour!r} is not scale-to-zero or delete")
    ttl = parse_duration(args.lock_ttl, "--lock-ttl")
    if ttl < 5:
        raise UsageProblem("--lock-ttl: must be at least 5s")
    checks = None
    if hasattr(args, "analysis"):
        from . import analysis

        checks = analysis.settings(args)
        if checks is not None and checks.before_switch and not smoke:
            raise UsageProblem("--analysis-before-switch needs --smoke-path: the smoke requests are the traffic it measures")
    delay = parse_duration(args.scale_down_delay, "--scale-down-delay")
    floor = parse_duration(getattr(args, "scale_down_delay_floor", None) or f"{RECOMMENDED_SCALE_DOWN_DELAY:g}s",
                           "--scale-down-delay-floor")
    hold = flag(getattr(args, "hold", ""), "--hold (ENADU_HOLD)")
    preview = str(getattr(args, "preview_replicas", "") or "").strip()
    if preview and not (preview.isdigit() and 1 <= int(preview) <= 100):
        raise UsageProblem(f"--preview-replicas (ENADU_PREVIEW_REPLICAS): {preview[:40]!r} is not a number from 1 to 100")
    return Options(service=args.service, namespace=given or "", timeout=parse_duration(args.timeout, "--timeout"),
                   scale_down_delay=max(delay, floor), requested_scale_down_delay=delay, scale_down_delay_floor=floor,
                   old_colour=args.old_colour, lock_timeout=parse_duration(args.lock_timeout, "--lock-timeout"),
                   lock_ttl=int(ttl), dry_run=flag(args.dry_run, "--dry-run (ENADU_DRY_RUN)"), build_url=args.build_url or "",
                   image=image, manifest_path=manifest, smoke_path=smoke, analysis=checks, commit=commit,
                   fail_grace=parse_duration(getattr(args, "fail_grace", None) or "60s", "--fail-grace"),
                   hold=hold, preview_replicas=int(preview) if preview else 0,
                   hold_valid_for=parse_duration(getattr(args, "hold_valid_for", None) or "3600s", "--hold-valid-for"),
                   abort_scale_down_delay=abort_delay(args))


class Guard:
    """The signal handling of one cluster command.

    The first SIGTERM or SIGINT while the command's body runs writes the ``interrupted`` result at
    once, starts the clean-up clock (``interrupt.begin``) and a watchdog that writes a final result
    and exits when the grace runs out whatever the clean-up is doing, then raises ``Interrupted``
    into the body. Any later signal only logs: it must not cut the clean-up short or leave a
    half-written result (every write is atomic, and ``Reporter.finish`` counts once)."""

    def __init__(self, report: Reporter, result: Dict[str, Any], grace: float) -> None:
        self.report = report
        self.result = result
        self.grace = grace
        self.raising = False  # True while the body runs: a signal then raises Interrupted into it
        self.signalled = ""
        self.code = exitcodes.FAILED

    def handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.signalled:
            left = interrupt.remaining()
            self.report.log(f"{name} again: still cleaning up" + (f" (at most {left:.1f} s more)" if left else ""))
            return
        self.signalled = name
        if not self.raising:  # the body is done (or not begun): the result is being written; bound the exit
            self.watch()
            return
        interrupt.begin(self.grace)
        self.report.interrupted({**self.result, "message": f"interrupted by signal {name}; cleaning up",
                                 "cleanup_until": round(time.time() + self.grace, 3)})
        self.report.log(f"interrupted by signal {name}: cleaning up for at most {self.grace:g} s")
        self.watch()
        raise Interrupted(name)

    def watch(self) -> None:
        threading.Thread(target=self._expire, name="interrupt-watchdog", daemon=True).start()

    def _expire(self) -> None:
        time.sleep(self.grace)
        code = exitcodes.INCOMPLETE if self.result.get("switched") else self.code
        final = dict(self.result)
        if self.raising or final.get("outcome") is None:
            final.update(outcome="interrupted", message=f"interrupted by signal {self.signalled}; the clean-up did "
                         f"not finish within {self.grace:g} s" + _last_seen(final))
        # finish() may wait for the main thread's hold on the reporter: never past one more second
        threading.Timer(1.0, os._exit, (code,)).start()
        try:
            self.report.log(f"the clean-up did not finish within {self.grace:g} s: exiting")
            self.report.finish(final, code)
        finally:
            os._exit(code)


def _last_seen(result: Dict[str, Any]) -> str:
    pinned = ""
    if result.get("pinned_to"):  # a migration pinned the Service and has not un-pinned it (Deployer.pin)
        from .kube.migration import pinned_note

        pinned = f"; {pinned_note(str(result.get('service')), str(result['pinned_to']))}"
    if not result.get("live_colour"):
        return pinned
    image = f" ({result['live_image']})" if result.get("live_image") else ""
    return f"; the Service selected {result['live_colour']}{image} when last seen{pinned}"


def grace_of(args: argparse.Namespace) -> float:
    grace = parse_duration(str(getattr(args, "interrupt_grace", None) or f"{interrupt.DEFAULT_GRACE:g}s"),
                           "--interrupt-grace (ENADU_INTERRUPT_GRACE)")
    if not 1 <= grace <= interrupt.MAX_GRACE:
        raise UsageProblem(f"--interrupt-grace (ENADU_INTERRUPT_GRACE): must be between 1s and {interrupt.MAX_GRACE:g}s")
    return grace


def run_command(command: str, args: argparse.Namespace, body: Callable[[Reporter, Dict[str, Any]], Dict[str, Any]]) -> int:
    """Common frame of the cluster commands: signals, connect, report, map errors to exit codes."""
    result: Dict[str, Any] = {"service": args.service, "namespace": namespace_flag(args)[0]}
    image = getattr(args, "image", None)
    if image and imageref.problem(image) is None:
        result["image"] = image
    try:
        report = Reporter(command, args.output, args.result_file)
    except HelperError as e:  # the result file itself is the problem: report without it
        return Reporter(command, args.output).finish({**result, "outcome": "error", "message": str(e)}, e.exit_code)
    try:
        grace = grace_of(args)
    except HelperError as e:
        return report.finish({**result, "outcome": "error", "message": str(e)}, e.exit_code)

    guard = Guard(report, result, grace)
    previous: Dict[int, Any] = {}
    started_ms = int(time.time() * 1000)
    try:
        try:
            guard.raising = True
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    previous[sig] = signal.signal(sig, guard.handle)
                report.checkpoint(result, "started")
                outcome = body(report, result)
            finally:
                guard.raising = False
            result.update(outcome)
            code = exitcodes.HELD if outcome.get("outcome") == "held" else exitcodes.OK
        except Interrupted as e:
            result["outcome"] = "interrupted"
            result["message"] = getattr(e, "message", None) or str(e)
            code = e.exit_code
        except HelperError as e:
            result.setdefault("outcome", OUTCOMES.get(e.exit_code, "failed"))
            if isinstance(e, RolledBack):
                result["outcome"] = "rolled-back"
            result["message"] = str(e)
            code = e.exit_code
        guard.code = code
        if guard.signalled:
            if getattr(args, "grafana_url", ""):
                report.log("grafana: annotation not posted: the command was interrupted")
        else:
            annotate(args, report, result, started_ms)
        return report.finish(result, code)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def annotate(args: argparse.Namespace, report: Reporter, result: Dict[str, Any], started_ms: int) -> None:
    """One Grafana annotation per deploy, rollback or abort that changed or failed something;
    never fails the command (grafana.annotate logs and swallows every problem)."""
    if not getattr(args, "grafana_url", "") or result.get("outcome") in ("planned", "unchanged", "status", None):
        return
    from . import grafana

    try:
        board = grafana.settings(args)
    except HelperError as e:
        report.log(f"grafana: annotation not posted: {e}")
        return
    grafana.annotate(board, service=str(result.get("service") or ""), colour=str(result.get("colour") or ""),
                     image=str(result.get("image") or ""), outcome=str(result["outcome"]),
                     build_url=str(getattr(args, "build_url", "") or ""), message=str(result.get("message") or ""),
                     start_ms=started_ms, log=report.log)


def namespace_flag(args: argparse.Namespace) -> Tuple[Optional[str], str]:
    """The namespace given explicitly (``--namespace``, else ``ENADU_NAMESPACE``) and which of the two."""
    if getattr(args, "namespace", None):
        return args.namespace, "--namespace"
    if getattr(args, "namespace_env", None):
        return args.namespace_env, "ENADU_NAMESPACE"
    return None, ""


def pinned_namespace(args: argparse.Namespace, manifest: Any) -> Optional[Tuple[str, str]]:
    """The namespace fixed before connecting, and why: the flag, else the manifest's.

    As kubectl: a namespace given on the command line must agree with the one the objects name
    (``RequireNamespace`` in staging/src/k8s.io/cli-runtime/pkg/resource/visitor.go: "the namespace
    from the provided object ... does not match the namespace ..."), while the context's namespace
    is only a default (``kubectl apply`` enforces the match only when the namespace was a flag)."""
    given, source = namespace_flag(args)
    written = getattr(manifest, "namespace", None)
    if given and written and given != written:
        raise UsageProblem(f"namespace {given} (from {source}) does not match namespace {written} in the manifest "
                           f"(metadata.namespace): pass {written}, or the manifest rendered for {given}")
    if given:
        return given, f"from {source}"
    if written:
        return written, "from the manifest"
    return None


def open_cluster(args: argparse.Namespace, opts: Options, report: Reporter, result: Dict[str, Any],
                 manifest: Any = None) -> Tuple[Any, Options]:
    """Connect, settle the namespace (flag, else manifest, else kubeconfig context, else
    ``default``; a flag that contradicts the manifest is refused before any request) and say which
    one and why. Returns the client and the options with the namespace filled in."""
    from dataclasses import replace

    from .kube.client import Kube, connect
    from .kube.lock import lease_name

    if manifest is None and getattr(args, "manifest", None):
        from .kube import manifest as manifests

        manifest = manifests.load(args.manifest, opts.service)
    pinned = pinned_namespace(args, manifest)
    api_client, how, context = connect(args.kubeconfig, args.context)
    report.log(f"using {how}")
    if context is not None and not NAMESPACE_PATTERN.fullmatch(context[0]):
        raise UsageProblem(f"{context[1]} names {context[0][:70]!r}, which is not a namespace name")
    if pinned is not None:
        namespace, origin = pinned
        if context is not None and context[0] != namespace and origin == "from the manifest":
            origin += f"; {context[1]} names {context[0]}"
    elif context is not None:
        namespace, origin = context[0], f"from {context[1]}"
    else:
        namespace, origin = "default", "none named: no --namespace, none in the manifest or the credentials"
    report.log(f"namespace {namespace} ({origin})")
    result["namespace"] = namespace
    kube = Kube(api_client, namespace, log=report.log, origin=origin.split(";")[0], probe_lease=lease_name(opts.service))
    return kube, replace(opts, namespace=namespace)


def run(args: argparse.Namespace) -> int:
    def body(report: Reporter, result: Dict[str, Any]) -> Dict[str, Any]:
        opts = options(args, needs_image=True)
        result["image"] = opts.image
        warn_about_delay(opts, report.log, result)
        from .kube import manifest as manifests

        manifest = manifests.load(opts.manifest_path, opts.service)
        kube, opts = open_cluster(args, opts, report, result, manifest)
        return Deployer(kube, manifest, opts, report.log, result, lambda: report.checkpoint(result)).run()

    return run_command("deploy", args, body)


# -- the deploy itself ---------------------------------------------------------------------------


class Deployer:
    def __init__(self, kube: Any, manifest: Any, opts: Options, log: Callable[[str], None],
                 result: Dict[str, Any], checkpoint: Optional[Callable[[], None]] = None) -> None:
        from .kube.lock import default_identity

        self.kube = kube
        self.manifest = manifest
        self.opts = opts
        self.log = log
        self.result = result  # filled in as we go, so a failure still reports what was reached
        self.checkpoint = checkpoint or (lambda: None)  # writes ``result`` to the result file so far
        self.identity = default_identity()
        self.lock: Any = None  # the held deploy lock, once the switch is done
        self.switch_entry: Optional[Dict[str, Any]] = None  # the history entry of the switch this run judges
        self.switch_in_flight = False  # True while the switch request is sent and not answered
        self.verdict_line = ""  # the analysis after that switch, once it has a verdict
        self.pending_note = ""  # what became of an earlier switch's pending analysis, for the final message
        self.switching_back_pending = False  # analysing an earlier switch: switch_back re-checks its target

    def run(self) -> Dict[str, Any]:
        from .kube.bluegreen import read_state
        from .kube.lock import holding

        if self.opts.dry_run:
            return self.plan(read_state(self.kube, self.opts.service))
        try:
            with holding(self.kube, self.opts.service, identity=self.identity, ttl=self.opts.lock_ttl,
                         timeout=self.opts.lock_timeout, log=self.log) as lock:
                return self.deploy(lock)
        except Interrupted as e:
            self.after_interruption(e)  # the clean-up is done and the lock released: say what is live
            raise

    def seen_live(self, colour: Optional[str], image: Optional[str]) -> None:
        self.result.update(live_colour=colour, live_image=image)
        self.checkpoint()

    def after_interruption(self, e: Interrupted) -> None:
        """Read back what the Service selects and put it in the result and the message."""
        from .kube import bluegreen as bg
        from .kube.manifest import COLOURS, other

        opts, result = self.opts, self.result
        switched = bool(result.get("switched"))
        try:
            state = bg.read_state(self.kube, opts.service)
        except (HelperError, KeyError, TypeError) as problem:
            result["live_checked"] = False
            self.log(f"could not read what is live after the interruption ({problem})")
            e.exit_code = exitcodes.INCOMPLETE if switched else exitcodes.FAILED
            e.message = f"{e} {'after' if switched else 'before'} the switch{_last_seen(result)}"
            return
        live = state.live
        image = state.image(live)
        available = bg.fully_available(state.deployments.get(live)) if live else False
        result.update(live_colour=live, live_image=image, live_available=available, live_checked=True)
        switched = bool(live) and live == result.get("colour") and live != result.get("previous_colour")
        result["switched"] = switched
        e.exit_code = exitcodes.INCOMPLETE if switched else exitcodes.FAILED
        if live:
            serving = f"the Service selects {live} ({image or 'no image'})" + ("" if available else
                                                                              ", which is not fully available")
        else:
            serving = "no colour is live yet"
        todo = "run deploy again to retire it" if switched else "run abort to remove it"
        if result.get("switch_in_flight") and not switched:
            # Not seen yet, but the request may still be committed: neither "untouched" (exit 1) nor done.
            idle = result.get("colour")
            e.exit_code = exitcodes.INCOMPLETE
            e.message = (f"{e} while switching: the switch to {idle} was in flight and may have landed since"
                         f" (the Service selected {live or 'no colour'} when read); {opts.service}-{idle} is left"
                         f" running: run status, then abort if {idle} is not live or deploy again if it is"
                         + self.pin_note(state))
            return
        failed = getattr(self, "failed_colour", None)
        if switched and failed == live and result.get("switch_back_in_flight"):
            # the switch-back request may still land (review4 M3): "run rollback" would then go back to
            # the failed colour, which rollback refuses only once its analysis verdict is recorded
            todo = (f"{live} failed after the switch and the switch back to {other(live)} was interrupted in flight "
                    f"and may still land: run status; if {live} is still live, run rollback")
        elif switched and failed == live:  # interrupted while switching back from a colour that failed
            todo = (f"{live} failed after the switch and the switch back was interrupted: run rollback to go back "
                    f"to {other(live)}")
        leftovers = [f"; {opts.service}-{c} still runs ({todo})" for c in COLOURS
                     if c != live and state.replicas(c) > 0]
        e.message = f"{e} {'after' if switched else 'before'} the switch: {serving}{''.join(leftovers)}" \
            + self.pin_note(state)

    def pin_note(self, state: Any) -> str:
        """After an interrupted migration: whether the Service stays pinned (and what ends that), or
        was un-pinned within the grace."""
        from .kube import migration

        legacy = getattr(self, "legacy", None)
        if legacy is None:
            return ""
        if state.pinned:
            self.result["pinned_to"] = legacy.name
            return "; " + migration.pinned_note(self.opts.service, legacy.name, legacy.selector_text())
        self.result.pop("pinned_to", None)
        unpinned = getattr(self, "unpinned", "")
        if unpinned:
            return f"; {unpinned}: the hand-made deployment {legacy.name} serves, as before the migration"
        return ""

    def plan(self, state: Any) -> Dict[str, Any]:
        from .kube.bluegreen import fully_available
        from .kube.manifest import other

        if self.opts.promote:
            return self.plan_promotion(state)
        live, image = state.live, self.opts.image
        legacy = self.find_legacy(state)
        lines = []
        if live and state.image(live) == image and fully_available(state.deployments[live]):
            lines.append(f"{image} already serves from {live}: nothing to deploy")
            idle = None
        else:
            idle = other(live) if live else "blue"
            replicas = self.wanted_replicas(state, live)
            verb = "create" if state.deployments[idle] is None else "update"
            lines.append(f"take the deploy lock (lease enadu-deploy-{self.opts.service})")
            if legacy is not None:
                lines += [f"label the {len(legacy.pods)} pods of the hand-made deployment {legacy.name} color=legacy",
                          f"pin service {self.opts.service} to them (selector {legacy.selector_text()})"]
            lines += [f"{verb} deployment {self.opts.service}-{idle} with {image} at {replicas} replicas",
                      f"wait until it is fully available (at most {self.opts.timeout:.0f} s)"]
            if self.opts.smoke_path:
                lines.append(f"GET {self.opts.smoke_path} on it through service {self.manifest.preview_name()}")
            was = live or (f"legacy (the pods of deployment {legacy.name})" if legacy is not None else "(none)")
            lines.append(f"switch service {self.opts.service} from {was} to {idle}" if state.service
                         else f"create service {self.opts.service} selecting {idle}")
            if live:
                lines.append(f"keep {self.opts.service}-{live} for {self.opts.scale_down_delay:.0f} s, then "
                             + ("delete it" if self.opts.old_colour == "delete" else "scale it to 0"))
            elif legacy is not None:
                lines.append(f"keep deployment {legacy.name} (hand-made) for {self.opts.scale_down_delay:.0f} s, then "
                             + ("delete it" if self.opts.old_colour == "delete" else "scale it to 0"))
        pending = self.pending_analysis(state)
        if pending is not None:
            lines.insert(0, f"analyse {live} first: the analysis after its switch at {pending['at']} never got a "
                            f"verdict; switch back to {pending.get('previous_colour')} if it fails (while that still runs)")
        from .kube import migration

        for left, _ in migration.leftovers(self.kube, self.opts.service, state, self.manifest.migrate_from, self.log):
            lines.append(f"{'delete' if self.opts.old_colour == 'delete' else 'scale to 0'} deployment {left.name} "
                         f"(hand-made, {left.replicas} replicas), which an interrupted migration left running")
        for line in lines:
            self.log(f"plan: {line}")
        return {"outcome": "planned", "dry_run": True, "colour": idle, "previous_colour": live,
                "previous_image": state.image(live) or (legacy.image if legacy is not None else None),
                "plan": lines, "message": "dry run: nothing was changed",
                **({"migration": legacy.describe("not migrated: dry run")} if legacy is not None else {})}

    def plan_promotion(self, state: Any) -> Dict[str, Any]:
        """``promote --dry-run``: the same checks as a promotion (a refusal is reported as such), then its plan."""
        opts = self.check_promotable(state, state.live)
        live, idle = state.live, ("green" if state.live == "blue" else "blue")
        if live and state.image(live) == opts.image:
            lines = [f"{opts.image} already serves from {live}: nothing to promote"]
        else:
            lines = [f"take the deploy lock (lease enadu-deploy-{opts.service}) and check {opts.service}-{idle} again",
                     f"scale {opts.service}-{idle} from {state.replicas(idle)} to {self.wanted_replicas(state, live)} "
                     "replicas and wait until it is fully available"]
            if opts.smoke_path:
                lines.append(f"GET {opts.smoke_path} on it through service {self.manifest.preview_name()}")
            lines.append(f"switch service {opts.service} from {live or '(none)'} to {idle}")
            if live:
                lines.append(f"keep {opts.service}-{live} for {opts.scale_down_delay:.0f} s, then "
                             + ("delete it" if opts.old_colour == "delete" else "scale it to 0"))
        for line in lines:
            self.log(f"plan: {line}")
        return {"outcome": "planned", "dry_run": True, "colour": idle, "previous_colour": live, "image": opts.image,
                "plan": lines, "message": "dry run: nothing was changed"}

    def wanted_replicas(self, state: Any, live: Optional[str]) -> int:
        from .kube.bluegreen import live_replicas

        legacy = getattr(self, "legacy", None)
        return max(self.manifest.replicas, live_replicas(state, live), legacy.replicas if legacy is not None else 0, 1)

    # -- migration from the old deploy script (kube/migration.py) ----------------------------------

    def find_legacy(self, state: Any) -> Any:
        """The hand-made Deployment behind a Service without a colour (recorded in the result), or None."""
        from .kube import migration

        self.legacy = legacy = migration.detect(self.kube, self.opts.service, state, self.manifest)
        if legacy is not None:
            self.log(f"service {self.opts.service} selects {legacy.selector_text(None)} without a colour"
                     + (" (pinned by an earlier run)" if legacy.pinned else "")
                     + f": migrating from the hand-made deployment {legacy.name} ({legacy.image}, "
                     f"{len(legacy.pods)} pods)")
            self.result["migration"] = legacy.describe(f"untouched: still runs {legacy.replicas} replicas")
            self.result["previous_image"] = self.result.get("previous_image") or legacy.image
        return legacy

    def pin(self, legacy: Any) -> None:
        """Point the Service at the old pods only, and keep newcomers of the old ReplicaSet labelled."""
        from .kube import migration

        # From the first write on, a result (the watchdog's too) says the Service may be left pinned.
        self.result["pinned_to"] = legacy.name
        migration.pin(self.kube, self.opts.service, legacy, self.log)
        self.keeper = migration.KeepPinned(self.kube, legacy, self.log).__enter__()

    def stop_keeping(self) -> None:
        keeper, self.keeper = getattr(self, "keeper", None), None
        if keeper is not None:
            keeper.__exit__(None, None, None)

    def after_failed_migration(self, legacy: Any, idle: str, e: HelperError) -> None:
        """A failure before the switch, the idle colour discarded: give the Service its colourless
        selector back, and say so. The old pods' labeller (KeepPinned) must still run: the caller
        stops it only after this, so every old pod keeps the pin label until the un-pin has landed."""
        where = self.try_unpin(legacy, idle)
        e.args = (f"{e}; the hand-made deployment {legacy.name} still serves ({legacy.replicas} replicas, untouched) "
                  f"and {where}",)

    def try_unpin(self, legacy: Any, idle: str) -> str:
        """Un-pin (kube/migration.py ``unpin``); returns what the Service selects now, as one phrase."""
        from .kube import migration

        if not legacy.pinned:
            self.result.pop("pinned_to", None)
            return f"service {self.opts.service} was not changed"
        if migration.unpin(self.kube, self.opts.service, legacy, idle, self.log):
            self.result.pop("pinned_to", None)
            return f"service {self.opts.service} selects {legacy.selector_text(None)} again"
        return migration.pinned_note(self.opts.service, legacy.name, legacy.selector_text())

    def migration_reason(self, legacy: Any, outcome: Optional[str]) -> str:
        then = outcome or (f"it keeps running for {self.opts.scale_down_delay:.0f} s, then is "
                           + ("deleted" if self.opts.old_colour == "delete" else "scaled to 0"))
        return f"migrated from the hand-made deployment {legacy.name}; {then}"

    def retire_legacy(self, legacy: Any, entry: Optional[Dict[str, Any]], already: float = 0.0) -> None:
        """After the switch: the scale-down delay, then the old Deployment scaled to 0 or deleted,
        said in the log, the result and the history entry of the switch."""
        from .kube import migration
        from .kube.bluegreen import HISTORY

        wait = max(0.0, self.opts.scale_down_delay - already)
        if wait:
            self.log(f"keeping deployment {legacy.name} (hand-made) for {wait:.0f} s so connections drain")
            time.sleep(wait)
        lock = getattr(self, "lock", None)
        if lock is not None and not lock.held():
            self.result["migration"]["old_deployment"] = f"still runs {legacy.replicas} replicas (lost the deploy lock)"
            raise Incomplete(f"lost the deploy lock during the scale-down delay; deployment {legacy.name} "
                             "was not retired")
        self.result["migration"]["old_deployment"] = migration.retire(self.kube, legacy, self.opts.old_colour, self.log)
        done = "deleted" if self.opts.old_colour == "delete" else "scaled to 0"
        reason = self.migration_reason(legacy, f"it was {done} after the scale-down delay")
        if entry is None:  # found by the pin label alone (kube/migration.py leftovers): no entry to amend
            return
        if not migration.amend_history(self.kube, self.opts.service, entry, reason, HISTORY):
            self.log("warning: the history entry of the switch was not updated with what became of the old deployment")

    def migrated_note(self, legacy: Any) -> str:
        if legacy is None:
            return ""
        return f" (migrated from the hand-made deployment {legacy.name}: {self.result['migration']['old_deployment']})"

    def deploy(self, lock: Any) -> Dict[str, Any]:
        from .kube import bluegreen as bg
        from .kube.manifest import other

        opts, kube, log = self.opts, self.kube, self.log
        self.lock = lock
        state = bg.read_state(kube, opts.service)
        live = state.live
        self.result.update(previous_colour=live, previous_image=state.image(live), switched=False)
        self.seen_live(live, state.image(live))
        legacy = self.find_legacy(state)  # the old script's Service and Deployment: migrate (kube/migration.py)
        if (opts.hold or opts.promote) and legacy is not None:
            raise DeployFailed(f"manual promotion cannot start from the hand-made deployment {legacy.name}: deploy "
                               "once without --hold to migrate (README, \"Migrating from the old deploy script\")")
        pending = self.pending_analysis(state)
        if pending is not None:  # an earlier deploy stopped between its switch and its analysis' verdict
            state = self.analyse_pending(state, pending)
            live = state.live
            self.result.pop("colour", None)
            self.result.update(previous_colour=live, previous_image=state.image(live), switched=False)
            self.seen_live(live, state.image(live))
        if opts.promote:
            opts = self.check_promotable(state, live)
        if live and state.image(live) == opts.image and bg.fully_available(state.deployments[live]):
            log(f"{opts.image} already serves from {live}: nothing to deploy")
            note = self.settle(state, live)
            self.result.update(previous_colour=None, previous_image=None)
            return {"outcome": "unchanged", "colour": live,
                    "message": f"{opts.image} already live in {live}{self.pending_note}{note}"}
        idle = other(live) if live else "blue"
        self.result["colour"] = idle
        self.checkpoint()
        deadline = time.monotonic() + opts.timeout
        try:
            if legacy is not None:
                self.pin(legacy)  # before any pod of the new colour exists
            full = start = self.wanted_replicas(state, live)
            if opts.promote:  # the held colour, from its preview count to full, before it is tested again
                self.scale_to_full(live, idle, deadline)
            else:
                start = min(opts.preview_replicas, full) if opts.preview_replicas else full
                written = bg.ensure_colour(kube, self.manifest, state, idle, opts.image, start, opts.build_url, log,
                                           opts.commit)
                bg.wait_available(kube, opts.service, idle, opts.image, deadline=deadline, log=log, written=written,
                                  fail_grace=opts.fail_grace)
            if opts.smoke_path:
                self.smoke(idle, deadline)
            if opts.analysis is not None and opts.analysis.before_switch and not opts.promote:
                self.analyse_before_switch(idle, deadline)
            if opts.hold:
                return self.hold(live, idle, start)
            if start < full:  # Argo: the preview is scaled to full once promoted, before the switch
                self.scale_to_full(live, idle, deadline)
            if not lock.held():
                raise DeployFailed("lost the deploy lock before the switch")
            state = bg.read_state(kube, opts.service)
            if state.live != live:
                raise DeployFailed(f"service {opts.service} was switched to {state.live} by someone else during the deploy")
            entry = bg.history_entry(state, idle, opts.image, opts.build_url, self.identity)
            if opts.history_reason:
                entry["reason"] = opts.history_reason
            if legacy is not None:
                entry.update(previous_image=legacy.image, reason=self.migration_reason(legacy, None),
                             migrated_uid=((legacy.deployment or {}).get("metadata") or {}).get("uid"))
            if live and opts.analysis is not None and opts.analysis.after_switch:
                # until the verdict replaces it: a re-run finding it still there analyses (pending_analysis)
                entry["analysis"] = bg.ANALYSIS_PENDING
            self.switch_entry = entry
            # While its request is in flight an interruption cannot know whether the API server will still
            # commit it after any read: the clean-up then leaves the idle colour running (issue 12 M2).
            self.switch_in_flight = True
            bg.switch(kube, opts.service, state, idle, entry, log, self.manifest)
            self.switch_in_flight = False
            switched = time.monotonic()  # the switch this run observed: no history time shortens a drain after it
            self.result.pop("pinned_to", None)
            self.stop_keeping()
        except Interrupted as e:
            # Before the switch (or with its answer lost): the live colour is untouched; stop the idle
            # one with part of the grace, so the lock's release (on the way out) keeps its turn. A
            # migration then un-pins with most of what is left, if the idle pods go in time; the old
            # pods' labeller runs until then.
            try:
                if self.switch_in_flight:
                    # Scaling it down could leave the Service selecting a colour without pods, should the
                    # request land after this; un-pinning races it too. Both colours keep serving.
                    self.result["switch_in_flight"] = True
                    self.log(f"deploy interrupted while switching service {opts.service} to {idle}: the request "
                             f"may still land, so {opts.service}-{idle} is left running")
                    raise
                with interrupt.limit(0.6):
                    if self.discard(idle, e):
                        self.result["switched"] = True
                        self.result.pop("pinned_to", None)  # the switch replaced the pin
                if legacy is not None and not self.result.get("switched"):
                    with interrupt.limit(0.8):
                        self.unpinned = self.try_unpin(legacy, idle)
            finally:
                self.stop_keeping()
            raise
        except HelperError as e:
            try:
                if self.discard(idle, e):  # reads the Service first: a switch that did land is never undone
                    self.result.pop("pinned_to", None)
                    raise Incomplete(f"{e}; but the switch to {idle} had landed: the Service selects {idle}, "
                                     f"{live or 'no other colour'} still runs (run deploy again to finish)") from e
                if legacy is not None:
                    self.after_failed_migration(legacy, idle, e)
            finally:
                self.stop_keeping()  # only now: the un-pin has landed, or failed and said so
            raise
        self.lock = lock
        self.result["switched"] = True
        self.seen_live(idle, opts.image)
        # An interruption from here on leaves the Service on the new colour and the old one running, as
        # any unfinished deploy does (exit 6): Interrupted is no HelperError, so it passes the handlers below.
        # From here on traffic is on the new colour: a failure either switches back (RolledBack) or
        # is reported as Incomplete, naming the colour the Service selects. Never as "before the switch".
        try:
            if live:
                self.retarget(live, idle)
            try:
                bg.wait_endpoints(kube, opts.service, opts.service, idle,
                                  deadline=max(deadline, time.monotonic() + min(60.0, opts.timeout)), log=log)
            except HelperError as e:
                if not live:
                    raise Incomplete(f"the Service selects {idle}, but its endpoints did not converge: {e}") from e
                self.switch_back(live, idle, e)
            analysed = 0.0
            if opts.analysis is not None and opts.analysis.after_switch:
                if live:
                    analysed = self.analyse_after_switch(live, idle)
                else:
                    log("first deploy: no previous colour to go back to, so no metric analysis")
            leftover = ""
            if live:
                self.retire_after_delay(live, already=analysed, preemptible=True)
                leftover = self.retire_leftovers(bg.read_state(kube, opts.service),
                                                  since=time.monotonic() - switched)
            elif legacy is not None:
                self.retire_legacy(legacy, entry, already=analysed)
        except (RolledBack, Incomplete):
            raise
        except HelperError as e:
            leftover = f"; {opts.service}-{live} still runs (run deploy again to retire it)" if live else ""
            raise Incomplete(f"{opts.image} is live in {idle}, but the deploy did not finish: {e}{leftover}") from e
        return {"outcome": "deployed", "colour": idle,
                "message": f"{opts.image} is live in {idle}" + self.migrated_note(legacy) + self.pending_note
                + (f" (was {live}){lossy_delay_note(opts)}" if live else "") + leftover}

    # -- manual promotion (kube/promotion.py; README, "Manual promotion") ----------------------------

    def hold(self, live: Optional[str], idle: str, replicas: int) -> Dict[str, Any]:
        """``deploy --hold``: the new colour passed its checks; mark it and stop before the switch.
        The lock is released on the way out; ``promote`` re-checks everything under it again."""
        from .kube.promotion import mark_held

        opts = self.opts
        mark_held(self.kube, f"{opts.service}-{idle}", opts.image, opts.build_url, self.log, opts.hold_valid_for)
        preview = self.manifest.preview_name()
        self.result.update(preview_service=preview, preview_replicas=replicas)
        was = f"{live} still serves" if live else "nothing serves yet"
        return {"outcome": "held", "colour": idle,
                "message": f"{opts.image} is ready in {idle} ({replicas} replicas, service {preview}), not live: "
                           f"{was}; run promote to switch to it, or abort to remove it"}

    def check_promotable(self, state: Any, live: Optional[str]) -> "Options":
        """Before anything is written: the idle colour is the one a held deploy prepared, runs exactly
        the image to promote (the held one when none was named) and is available. Returns the
        options with the image filled in."""
        from dataclasses import replace

        from .kube import bluegreen as bg
        from .kube.manifest import other
        from .kube.promotion import held_image, held_mark, kept, promotion_problem

        opts = self.opts
        idle = other(live) if live else "blue"
        name = f"{opts.service}-{idle}"
        dep = state.deployments.get(idle)
        held = held_image(dep)
        running = state.image(idle)
        if live and opts.image and state.image(live) == opts.image:
            return opts  # already promoted: the caller reports it unchanged
        if dep is None or held is None:
            raise DeployFailed(f"nothing to promote: deployment {name} was not prepared by deploy --hold")
        failed = kept(dep, state.history, idle)  # mark_held clears an older one: any left is newer than the hold
        if failed is not None:
            raise DeployFailed(f"refusing to promote: deployment {name} ({failed['image'] or 'image unknown'}) was aborted at "
                               f"{failed.get('at')} (after a {failed.get('after') or 'failed deploy'}): it is never "
                               "promoted; run abort to remove it and deploy again; the live colour is untouched")
        wanted = opts.image or held
        if running != wanted or held != wanted:
            raise DeployFailed(f"refusing to promote {wanted}: deployment {name} runs {running} (held: {held}); "
                               "the live colour is untouched")
        problem = promotion_problem(dep, held_mark(dep) or {})
        if problem:
            raise DeployFailed(f"refusing to promote {wanted}: deployment {name} is held no more: {problem}; run abort "
                               "to remove it and deploy again; the live colour is untouched")
        if state.replicas(idle) < 1 or not bg.fully_available(dep):
            raise DeployFailed(f"refusing to promote {wanted}: deployment {name} is not running and fully available "
                               f"({bg.rollout_status_line(dep)}); the live colour is untouched")
        self.opts = replace(opts, image=wanted)
        self.result["image"] = wanted
        self.log(f"promoting {wanted}: deployment {name} is the held colour, available at {state.replicas(idle)} replicas")
        return self.opts

    def scale_to_full(self, live: Optional[str], idle: str, deadline: float) -> None:
        """Scale the new colour from its preview count to what the live colour runs now (an autoscaler
        may have moved it), and wait until it is fully available. Only the scale subresource is
        written: the pod template stays the one that was tested."""
        from .kube import bluegreen as bg

        opts = self.opts
        state = bg.read_state(self.kube, opts.service)
        full = self.wanted_replicas(state, live)
        dep = state.deployments.get(idle)
        if dep is None or state.image(idle) != opts.image:
            raise DeployFailed(f"deployment {opts.service}-{idle} changed under us: it no longer runs {opts.image}")
        if state.replicas(idle) >= full:
            if bg.fully_available(dep):
                return
            written = bg.Written(int(dep["metadata"].get("generation") or 0))
        else:
            answer = self.kube.scale_deployment(f"{opts.service}-{idle}", full)
            self.log(f"scaled deployment {opts.service}-{idle} from {state.replicas(idle)} to {full} replicas for the switch")
            written = bg.written_over(dep, answer)
        bg.wait_available(self.kube, opts.service, idle, opts.image, deadline=deadline, log=self.log,
                          written=written, fail_grace=opts.fail_grace)

    def retarget(self, source: str, target: str) -> None:
        """Autoscalers follow the live colour; a failure here (often RBAC) must not fail the switch."""
        from .kube import bluegreen as bg

        try:
            bg.retarget_hpas(self.kube, self.opts.service, source, target, self.log)
        except HelperError as e:
            self.log(f"warning: could not retarget horizontalpodautoscalers from {source} to {target}: {e}")

    def smoke(self, colour: str, deadline: float) -> None:
        """GET the smoke path on the idle colour through its preview Service and the API server's
        service proxy, once what the proxy routes by (EndpointSlices from Kubernetes 1.37, the
        Endpoints before; :func:`bluegreen.wait_endpoints`) lists exactly that colour's ready pods.
        An answer naming another image in ``X-Enadu-Image`` fails it (the header is optional)."""
        from .kube import bluegreen as bg
        from .kube.client import IMAGE_HEADER, AppAnswered, ApiFailure, PodsUnreachable

        path = self.opts.smoke_path
        preview = bg.point_preview(self.kube, self.manifest, colour, self.log)
        bg.wait_endpoints(self.kube, preview, self.opts.service, colour, deadline=deadline, log=self.log, proxy=True)
        try:
            answer = self.kube.service_proxy_answer(preview, self.manifest.port_name, path)
        except AppAnswered as e:
            raise DeployFailed(f"smoke test GET {path} on the new colour {colour} failed: {e.reason} "
                               f"(through the API server's proxy to service {preview})") from e
        except (ApiFailure, PodsUnreachable) as e:
            raise DeployFailed(f"smoke test GET {path} on the new colour {colour} failed: {e}") from e
        if answer.image is not None and answer.image != self.opts.image:
            raise DeployFailed(f"smoke test GET {path} on the new colour {colour}: the app answered as {answer.image} "
                               f"({IMAGE_HEADER}), not {self.opts.image}: the request did not reach the image "
                               "being deployed")
        said = f" (answered by {answer.image}, per {IMAGE_HEADER})" if answer.image is not None else ""
        self.log(f"smoke test GET {path} on {colour}: ok{said}")

    def analyse_after_switch(self, live: str, idle: str, what: str = "metric analysis") -> float:
        """Judge the new colour by its metrics while the old one still runs; switch back on a
        failure (the switch's history entry says ``failed: ...`` in the same write), else record
        ``passed: ...`` in that entry before anything is retired. Returns the seconds spent (they
        count towards the scale-down delay)."""
        from . import analysis

        started = time.monotonic()
        checks = self.opts.analysis
        verdict = analysis.analyse(checks, service=self.opts.service, namespace=self.opts.namespace, colour=idle,
                                   deadline=started + checks.window + 60, log=self.log, stage="after switch")
        self.result["analysis"] = verdict.to_dict()
        self.log(verdict.line())
        self.verdict_line = verdict.line()
        if not verdict.passed:
            self.switch_back(live, idle, DeployFailed(f"{what}: {verdict.line()}"))
        self.record_analysis(f"passed: {verdict.line()}")
        return time.monotonic() - started

    def record_analysis(self, text: str) -> None:
        """Replace the pending mark of this run's switch entry by ``text`` (bluegreen.amend_entry, a
        write conditional on the Service's resourceVersion). A failure only warns: a re-run then
        analyses the colour again, or says it cannot."""
        from .kube import bluegreen as bg

        entry = self.switch_entry
        if entry is None or entry.get("analysis") != bg.ANALYSIS_PENDING:
            return
        try:
            done = bg.amend_entry(self.kube, self.opts.service, entry, {"analysis": text})
        except HelperError as e:
            done = False
            self.log(f"could not read or write service {self.opts.service}: {e}")
        if done:
            entry["analysis"] = text
        else:
            self.log(f"warning: the analysis verdict was not recorded in the history entry of the switch to "
                     f"{entry.get('colour')} at {entry.get('at')}: it still says the analysis is pending")

    def pending_analysis(self, state: Any) -> Optional[Dict[str, Any]]:
        """The live colour's history entry (the newest one, for the colour the Service selects) when it
        still says its analysis after the switch is pending: the deploy that switched stopped (killed,
        its agent lost) before the verdict. None otherwise. The history is untrusted: a forged mark only
        makes this deploy analyse the live colour, or say it cannot."""
        from .kube import bluegreen as bg

        entry = state.history[0] if state.history else None
        if (entry is None or state.live is None or entry.get("colour") != state.live
                or entry.get("analysis") != bg.ANALYSIS_PENDING):
            return None
        return entry

    def analyse_pending(self, state: Any, entry: Dict[str, Any]) -> Any:
        """Finish the analysis after an earlier switch that never got its verdict (``entry``, pending):
        while the previous colour still runs fully available and is one rollback would go back to
        (rollback.py ``check_target``: not a held preview nor a colour kept after a failed deploy or an
        abort, and running the ``previous_image`` the entry recorded; the history is untrusted),
        retarget the autoscalers, analyse the live colour now (the window counts from now) and switch
        back on failure (RolledBack; switch_back checks the target again under the same rule), or
        record the pass. Without such a colour to go back to (or without analysis settings), say
        that the live colour was never analysed after its switch (a warning) and record it. A switch
        back reports the analysed image as ``image`` and this deploy's as ``requested_image``: it was
        never deployed. Returns
        the state read afterwards; the caller then goes on as for any live colour (a re-run of the
        same image settles it: the previous colour is retired after what is left of the delay)."""
        from .kube import bluegreen as bg
        from .kube.manifest import COLOURS

        opts = self.opts
        live, previous, since = state.live, entry.get("previous_colour"), entry.get("at")
        self.switch_entry = dict(entry)
        by = f" by {entry['by']}" if entry.get("by") else ""
        self.log(f"the switch to {live} at {since}{by} left its analysis after the switch pending: that deploy "
                 "stopped before the verdict")
        runs = previous in COLOURS and previous != live and state.replicas(previous) > 0 \
            and bg.fully_available(state.deployments.get(previous))
        refused = self.refusal(state, live, previous) if runs else None
        checks = opts.analysis
        if not runs or refused or checks is None or not checks.after_switch:
            if refused:
                why = f"{opts.service}-{previous} is no colour to go back to ({refused})"
            elif not runs:
                why = (f"{opts.service}-{previous} no longer runs fully available, so there is nothing to go back to"
                       if previous in COLOURS and previous != live else "no previous colour was recorded")
            else:
                why = "this deploy has no analysis after the switch configured (--analysis, ENADU_ANALYSIS)"
            line = f"the new colour {live} was never analysed after its switch at {since}: {why}"
            self.log(f"warning: {line}")
            self.result.setdefault("warnings", []).append(line)
            self.pending_note = f"; warning: {line}"
            self.record_analysis(f"not analysed: {why}")
            return bg.read_state(self.kube, opts.service)
        self.log(f"{opts.service}-{previous} still runs: analysing {live} now")
        self.result.update(colour=live, previous_colour=previous, previous_image=state.image(previous), switched=True)
        self.checkpoint()
        self.retarget(previous, live)
        self.switching_back_pending = True  # switch_back checks its target again (check_target)
        analysed = state.image(live)
        try:
            try:
                bg.wait_endpoints(self.kube, opts.service, opts.service, live,
                                  deadline=time.monotonic() + min(60.0, opts.timeout), log=self.log)
            except HelperError as e:
                self.switch_back(previous, live, e)
            self.analyse_after_switch(previous, live, what=f"metric analysis (of the switch at {since}, "
                                                           "whose verdict never landed)")
        except RolledBack as e:
            # what failed is the earlier deploy's image; this deploy's never went anywhere (review3 M3)
            if analysed:
                self.result["image"] = analysed
            self.result["requested_image"] = opts.image
            e.args = (f"{e}; {opts.image} was not deployed: this deploy first judged {analysed or live} from the "
                      f"switch at {since}, whose analysis never finished; run deploy again to deploy {opts.image}",)
            raise
        except Incomplete:
            raise
        except HelperError as e:
            raise Incomplete(f"{live} is live, but its analysis after the switch at {since} did not finish: {e}; "
                             f"{opts.service}-{previous} still runs (run deploy again)") from e
        self.switching_back_pending = False
        self.pending_note = f"; {live}'s analysis after its switch at {since}, which that deploy never finished, passed now"
        return bg.read_state(self.kube, opts.service)

    def analyse_before_switch(self, idle: str, deadline: float) -> None:
        """Judge the idle colour by its metrics under smoke traffic sent through the preview Service."""
        import threading

        from . import analysis
        from .kube.client import ApiFailure

        stop = threading.Event()
        preview = self.manifest.preview_name()

        def traffic() -> None:
            while not stop.wait(0.25):
                try:
                    self.kube.service_proxy_get(preview, self.manifest.port_name, self.opts.smoke_path, quiet=True)
                except (ApiFailure, HelperError):
                    pass  # a failing request is exactly what the analysis is there to see

        sender = threading.Thread(target=traffic, name="smoke-traffic", daemon=True)
        sender.start()
        try:
            checks = self.opts.analysis
            verdict = analysis.analyse(checks, service=self.opts.service, namespace=self.opts.namespace, colour=idle,
                                       deadline=min(deadline, time.monotonic() + checks.window + 60), log=self.log,
                                       stage="before switch")
        finally:
            stop.set()
            left = interrupt.remaining()
            sender.join(timeout=10 if left is None else min(10.0, left))
        self.result["analysis_before_switch"] = verdict.to_dict()
        self.log(verdict.line())
        if not verdict.passed:
            raise DeployFailed(f"metric analysis before the switch: {verdict.line()}")

    def discard(self, idle: str, cause: BaseException) -> bool:
        """After a failure before the switch: the live colour was never touched; stop the idle one.

        A failure (not an interruption) first keeps the idle colour for --abort-scale-down-delay
        (:meth:`keep_failed`; ``never``: it is left running, and nothing is stopped here). Returns True
        when the Service turns out to select ``idle`` after all (the switch landed but its answer was
        lost): then nothing is stopped. A SIGTERM arriving during this clean-up (the delay included)
        scales it down at once, within the clean-up bound, then is raised."""
        from .kube import bluegreen as bg

        self.log(f"deploy {'interrupted' if isinstance(cause, Interrupted) else 'failed'} before the switch: {cause}")
        stopped: Optional[Interrupted] = None
        note = ""
        if not isinstance(cause, Interrupted):
            try:
                landed_or_kept, note = self.keep_failed(idle, cause)
            except Interrupted as e:
                stopped = e
                self.log(f"interrupted during the abort scale-down delay: scaling {self.opts.service}-{idle} to 0 at once")
                self.result.pop("kept", None)
            else:
                if landed_or_kept is not None:
                    self.amend(cause, note)
                    return landed_or_kept
        landed = False
        name = f"{self.opts.service}-{idle}"
        for _ in range(2):
            try:
                with interrupt.limit(0.6):  # bounds it only once interrupted
                    state = bg.read_state(self.kube, self.opts.service)
                    landed = self.our_switch(state, idle)
                    if state.live == idle and not landed:
                        note = self.not_ours(idle)
                    elif not landed and not self.still_locked():
                        note = (f"; {name} was left running: this deploy lost the deploy lock, so it is not ours to "
                                "scale down (run abort to remove it)")
                        self.log(f"lost the deploy lock: not scaling {name} down")
                    elif not landed:
                        bg.retire(self.kube, self.opts.service, state, idle, "scale-to-zero", self.log)
                break
            except Interrupted as e:
                stopped = e
            except HelperError as e:
                self.log(f"could not scale down {self.opts.service}-{idle} ({e}); run abort to remove it")
                note = f"; {self.opts.service}-{idle} could not be scaled down ({e}): run abort to remove it"
                break
        if stopped is not None:
            if landed:
                self.result["switched"] = True
            raise stopped
        self.result.pop("kept", None)
        self.amend(cause, note)
        return landed

    def still_locked(self) -> bool:
        lock = getattr(self, "lock", None)
        return lock is None or lock.held()

    def our_switch(self, state: Any, idle: str) -> bool:
        """The Service selects ``idle`` because of this deploy's switch: its newest history entry is the
        one this deploy wrote (same time, colour and lock identity), not someone else's (review3 M4).
        Compared as the history records them (bluegreen ``_recordable`` strips, cuts and replaces
        control characters in the identity: a long BUILD_TAG is recorded cut)."""
        from .kube.bluegreen import _recordable

        entry = getattr(self, "switch_entry", None)
        newest = state.history[0] if state.history else None
        if state.live != idle or entry is None or newest is None or entry.get("colour") != idle:
            return False
        recorded = _recordable(entry)
        return all(newest.get(k) == recorded.get(k) for k in ("at", "colour", "by"))

    def not_ours(self, idle: str) -> str:
        name = f"{self.opts.service}-{idle}"
        self.log(f"service {self.opts.service} selects {idle}, but not by this deploy's switch: {name} is live and "
                 "is left as it is")
        return (f"; the Service was switched to {idle} by someone else (its newest history entry is not this "
                f"deploy's): {name} is live and was left running")

    @staticmethod
    def amend(cause: BaseException, note: str) -> None:
        if note and isinstance(cause, HelperError):
            cause.args = (f"{cause}{note}",)

    def keep_failed(self, idle: str, cause: BaseException) -> Tuple[Optional[bool], str]:
        """Argo Rollouts' abortScaleDownDelaySeconds for a deploy that failed before its switch: the
        failed colour keeps running (its pods can be inspected) for --abort-scale-down-delay while
        this deploy holds the lock, marked so that it is never promoted nor rolled back to
        (kube/promotion.py ``mark_aborted``), as Argo's controller keeps the preview ReplicaSet until
        its ``scale-down-deadline`` annotation (rollout/replicaset.go ``reconcileNewReplicaSet``).

        Returns (None, note) when the caller is to scale it to 0 now (the delay is over, or there is
        none, or nothing runs), the note saying so for the message; (False, note) when it is left
        running (``never``, or the lock was lost meanwhile); (True, "") when the switch had landed.
        During a migration it is not kept: un-pinning the Service (its colourless selector) waits for
        the idle colour's pods to be gone. An interruption during the delay raises, and the caller
        scales it down at once."""
        from .kube import bluegreen as bg
        from .kube.promotion import mark_aborted

        opts, delay = self.opts, self.opts.abort_scale_down_delay
        name = f"{opts.service}-{idle}"
        if delay == 0:
            return None, ""
        if getattr(self, "legacy", None) is not None:
            self.log(f"not keeping {name} (--abort-scale-down-delay): the Service is un-pinned from the hand-made "
                     "deployment only once its pods are gone")
            return None, ""
        try:
            state = bg.read_state(self.kube, opts.service)
        except HelperError:
            return None, ""
        if state.live == idle:
            return (True, "") if self.our_switch(state, idle) else (False, self.not_ours(idle))
        if state.replicas(idle) < 1:
            return None, ""
        if not self.still_locked():  # whoever holds the lock now may be using this colour: write nothing
            self.log(f"lost the deploy lock: neither marking nor scaling {name} down")
            return False, (f"; {name} was left running: this deploy lost the deploy lock, so it is not ours to mark "
                           "or scale down (run abort to remove it)")
        image = state.image(idle) or opts.image
        try:
            until = mark_aborted(self.kube, name, image, opts.build_url, "failed deploy", str(cause), delay, self.log)
        except HelperError as e:
            self.log(f"could not mark {name} as aborted ({e}): scaling it to 0 at once")
            return None, ""
        self.result["kept"] = {"colour": idle, "image": image, "scale_down_at": until}
        self.checkpoint()
        if delay is None:
            self.log(f"keeping {name} running (--abort-scale-down-delay never) so its pods can be inspected: it is "
                     "never promoted nor rolled back to; abort removes it, the next deploy replaces it")
            return False, (f"; {name} ({image}) was kept running (--abort-scale-down-delay never): run abort to "
                           "remove it")
        self.log(f"keeping {name} for {delay:g} s (--abort-scale-down-delay) so its pods can be inspected; the deploy "
                 "lock stays held until it is scaled to 0")
        time.sleep(delay)
        lock = self.lock
        if lock is not None and not lock.held():
            self.log(f"lost the deploy lock during the abort scale-down delay: not scaling {name} down")
            return False, f"; {name} still runs (the deploy lock was lost during the abort scale-down delay): run abort"
        return None, f"; {name} ({image}) was kept for inspection, then scaled to 0 after {delay:g} s " \
                     "(--abort-scale-down-delay)"

    def switch_back(self, live: str, idle: str, cause: HelperError) -> None:
        """Traffic back to ``live`` while it still runs; raises RolledBack, or Incomplete when going
        back is impossible (``live`` no longer fully available, or, for an earlier switch analysed now,
        no longer a colour rollback would go back to: :meth:`refusal`) or fails."""
        from .kube import bluegreen as bg

        opts = self.opts
        self.failed_colour = idle  # an interruption from here on must not advise keeping it (after_interruption)
        self.log(f"the new colour {idle} failed after the switch: {cause}; switching back to {live}")
        try:
            state = bg.read_state(self.kube, opts.service)
        except HelperError as e:
            raise Incomplete(f"{cause}; switching back to {live} failed ({e}): the Service still selects {idle}") from e
        refused = self.refusal(state, idle, live) if self.switching_back_pending else None
        if refused:
            self.record_analysis(f"failed: {self.verdict_line}" if self.verdict_line
                                 else f"not analysed: {cause}; not switched back")
            raise Incomplete(f"{cause}; not switching back to {live}: {refused}; the Service still selects {idle}")
        try:
            entry = bg.history_entry(state, live, state.image(live) or "", opts.build_url, self.identity)
            entry["reason"] = f"rolled back: {cause}"[:300]
            judged = self.switch_entry
            if judged is not None and judged.get("analysis") == bg.ANALYSIS_PENDING:  # the verdict, in this write
                bg.mark_entry(state.history, judged, {"analysis": f"failed: {self.verdict_line}" if self.verdict_line
                                                      else f"not analysed: switched back ({cause})"})
            # in flight until answered: an interruption cannot know whether it lands (after_interruption)
            self.result["switch_back_in_flight"] = True
            bg.switch(self.kube, opts.service, state, live, entry, self.log, self.manifest)
            self.result.pop("switch_back_in_flight", None)
        except HelperError as e:
            self.result.pop("switch_back_in_flight", None)
            raise Incomplete(f"{cause}; switching back to {live} failed ({e}): the Service still selects {idle}") from e
        self.result["switched"] = False
        self.seen_live(live, state.image(live))
        self.retarget(idle, live)
        try:
            bg.wait_endpoints(self.kube, opts.service, opts.service, live, deadline=time.monotonic() + 60, log=self.log)
        except HelperError as e:
            self.log(f"warning: the Service selects {live} again, but its endpoints did not converge: {e}")
        # The failed colour may still get requests from proxies that have not seen the switch back
        # yet: it drains for the scale-down delay like any old colour, then scales to zero.
        self.retire_after_delay(idle, how="scale-to-zero")
        raise RolledBack(f"{cause}; traffic is back on {live}")

    def refusal(self, state: Any, live: str, target: str) -> Optional[str]:
        """Why ``target`` is no colour to send traffic back to from ``live`` (rollback.py ``check_target``,
        the one rule: a held preview, a colour kept after a failed deploy or an abort, or one not
        running the image the history recorded before ``live``), or None."""
        from .rollback import check_target

        try:
            check_target(state, self.opts.service, live, target)
        except UsageProblem as e:
            return str(e)
        return None

    def retire_after_delay(self, old: str, already: float = 0.0, how: Optional[str] = None,
                           preemptible: bool = False) -> None:
        """Keep ``old`` for the scale-down delay, then retire it. ``preemptible``: ``old`` is the colour
        a rollback would go back to, and a rollback may take this deploy's lock over meanwhile
        (:meth:`wait_preemptible`)."""
        from .kube import bluegreen as bg

        wait = max(0.0, self.opts.scale_down_delay - already)
        lock = getattr(self, "lock", None)
        if wait:
            self.log(f"keeping {self.opts.service}-{old} for {wait:.0f} s so connections drain and a rollback stays instant")
            if preemptible and lock is not None:
                self.wait_preemptible(lock, old, wait)
            else:
                time.sleep(wait)
        if lock is not None and not lock.held():
            raise Incomplete(f"lost the deploy lock during the scale-down delay; {self.opts.service}-{old} was not retired")
        state = bg.read_state(self.kube, self.opts.service)
        if state.live == old:
            self.log(f"{old} is live again (rolled back meanwhile); not retiring it")
            return
        bg.retire(self.kube, self.opts.service, state, old, how or self.opts.old_colour, self.log)

    def wait_preemptible(self, lock: Any, old: str, wait: float) -> None:
        """The scale-down delay, the one phase a rollback may pre-empt (kube/lock.py explains the
        hand-over). The Lease says so while we wait and watch it; leaving the delay takes the marker
        back with an update conditional on the Lease's resourceVersion, and only once that landed
        does the caller retire anything. Raises RolledBack when a rollback took the lock over."""
        from .kube.lock import LockLost

        started = time.monotonic()
        try:
            lock.mark_preemptible(old)
            self.log(f"until then a rollback to {old} may take over the deploy lock (lease {lock.name} says so)")
        except LockLost as e:
            self.preempted(lock, e.lease, old)
        except HelperError as e:  # the mark may have landed with its answer lost: leave the delay the same way
            self.log(f"warning: could not mark the deploy lock pre-emptible ({e}); a rollback waits for this deploy")
        try:
            lock.wait_while_ours(time.monotonic() + wait)
        except HelperError as e:  # the Lease could not be read: the checked update below decides
            self.log(f"warning: could not follow the deploy lock during the delay ({e})")
            time.sleep(max(0.0, wait - (time.monotonic() - started)))
        taken = lock.end_preemptible()  # an API failure here raises: nothing is retired without it
        if taken is not None:
            self.preempted(lock, taken, old)

    def preempted(self, lock: Any, lease: Dict[str, Any], old: str) -> None:
        """The Lease is no longer ours during the delay: nothing is retired. A rollback that took it
        over (the Lease names us as the pre-empted holder) ends this deploy as rolled back, once the
        Service selects ``old`` again (or after a bounded wait, saying it had not yet)."""
        from .kube import bluegreen as bg
        from .kube.lock import PREEMPT_REASON, PREEMPTED, lease_text

        lock.lost.set()  # not ours: never renewed nor deleted by us again
        service = self.opts.service
        by = lease_text(lease, "holderIdentity")
        if not by or lease_text(lease, PREEMPTED) != self.identity:
            raise Incomplete(f"lost the deploy lock during the scale-down delay; {service}-{old} was not retired")
        reason = lease_text(lease, PREEMPT_REASON) or "rollback"
        self.result.update(rolled_back_by=by, rollback_reason=reason)
        self.log(f"{by} took over the deploy lock during the scale-down delay to roll back to {old} ({reason}); "
                 "stopping without retiring anything")
        live = self.await_selector(old, deadline=time.monotonic() + min(10.0, float(self.opts.lock_ttl)))
        if live == old:
            self.result["switched"] = False
            try:
                self.seen_live(old, bg.read_state(self.kube, service).image(old))
            except HelperError:
                self.seen_live(old, self.result.get("previous_image"))
            where = f"traffic is back on {old}"
        else:
            where = f"the Service still selected {live} when this deploy stopped; the rollback switches it to {old}"
        raise RolledBack(f"rolled back by {by} during the scale-down delay (reason: {reason}): {where}")

    def await_selector(self, colour: str, *, deadline: float) -> Optional[str]:
        """What the Service selects, once it selects ``colour`` or at ``deadline``. The rollback
        switches a moment after its takeover; the deployer's Role may only get the Service (no
        watch), so this looks a few times a second, within the bound."""
        from .kube.manifest import LABEL

        selected: Optional[str] = None
        while True:
            try:
                svc = self.kube.get_service(self.opts.service) or {}
                selected = ((svc.get("spec") or {}).get("selector") or {}).get(LABEL)
            except HelperError:
                pass
            if selected == colour or time.monotonic() >= deadline:
                return selected
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))

    def settle(self, state: Any, live: str) -> str:
        """For a re-run: finish what a deploy (or rollback) stopped after its switch left undone —
        the endpoints converged, the autoscalers on the live colour, the other colour retired, and
        a hand-made Deployment an interrupted migration left running retired (:meth:`retire_leftovers`).
        Returns a note for the final message (empty when there was none of the latter)."""
        from .kube import bluegreen as bg
        from .kube.manifest import other

        bg.wait_endpoints(self.kube, self.opts.service, self.opts.service, live,
                          deadline=time.monotonic() + min(self.opts.timeout, 120), log=self.log)
        # A run killed between its switch and its retarget left them on the old colour: they would scale
        # the retired colour back up and leave the live one unscaled (retarget_hpas patches only those).
        self.retarget(other(live), live)
        leftover = state.deployments.get(other(live))
        if leftover is not None and (self.opts.old_colour == "delete" or int(leftover["spec"].get("replicas") or 0) > 0):
            self.retire_after_delay(other(live), already=bg.switched_at(state) or 0.0, preemptible=True)
        return self.retire_leftovers(state)

    def retire_leftovers(self, state: Any, since: Optional[float] = None) -> str:
        """A migration stopped between its switch and retiring the old script's Deployment left that
        running (kube/migration.py ``leftovers`` says how it is recognised, and what is never touched):
        keep it for what is left of the scale-down delay since that switch, then scale it to 0 or
        delete it, and record its fate in the switch's history entry, as :meth:`retire_legacy` does.

        ``since``: seconds since a later switch this run made itself (the old pods got no traffic
        from the Service since at least then). Without it only the history's times tell, and anyone
        who may patch the Service writes them: the younger of the newest switch and the migration's
        entry counts, and a time in the future or unreadable counts as "just now" (the whole delay).
        Returns a note for the final message."""
        import datetime as dt

        from .kube import bluegreen as bg
        from .kube import migration

        notes = []
        for legacy, entry in migration.leftovers(self.kube, self.opts.service, state, self.manifest.migrate_from,
                                                 self.log):
            if since is None:
                ages = [bg.switched_at(state) or 0.0]
                try:
                    at = dt.datetime.strptime(entry["at"], bg.TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
                    ages.append(max(0.0, (dt.datetime.now(dt.timezone.utc) - at).total_seconds()))
                except (KeyError, TypeError, ValueError):
                    ages.append(0.0)
                # the history's times have whole seconds: count one less, so the drain is never cut short
                drained = max(0.0, min(ages) - 1.0)
            else:
                drained = since
            self.log(f"deployment {legacy.name} (hand-made) still runs {legacy.replicas} replicas: a migration "
                     f"switched service {self.opts.service} away from it but stopped before retiring it; retiring it now")
            self.result["migration"] = legacy.describe(f"untouched: still runs {legacy.replicas} replicas")
            self.retire_legacy(legacy, entry, already=min(drained, self.opts.scale_down_delay))
            notes.append(f"; the hand-made deployment {legacy.name}, which an interrupted migration left running: "
                         f"{self.result['migration']['old_deployment']}")
        return "".join(notes)

