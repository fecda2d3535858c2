"""Post the build's result to Discord: one embed with result, duration, branch, commit, changes and deploy.

Reads everything from the environment the vars/enaduNotify step sets (a flag overrides an
ENADU_* variable); the webhook URL is read from DISCORD_WEBHOOK_URL only, never from the command
line, and never shown. Jenkins' own JOB_NAME, BUILD_NUMBER, BUILD_URL, GIT_COMMIT, GIT_BRANCH and
GIT_URL fill the title and the commit; the JSON results of `changes` (ENADU_CHANGES_FILE) and
`deploy` (ENADU_DEPLOY_FILE) fill the last two fields. No ENADU_DEPLOY_FILE means the deploy was not
reached (enaduDeploy sets it as it starts the helper); a deploy file that is missing, or that still
says "started"/"running" or "interrupted", means the deploy started and was cut short (an aborted
or timed-out build): the field says "interrupted" and what was live. While an interrupted deploy
is still cleaning up (its file names the time it will be done by), notify waits for its final
result, up to that time.

A message that cannot be delivered prints one line and exits 0, so the build result stays what
the build earned; with --strict (ENADU_STRICT=1) it exits 1. Exit 2: bad flags or environment.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import stat
import subprocess
import sys
import time
from typing import Dict, Optional, Tuple

from .. import __version__
from . import embed, exitcodes
from .cli import UsageError, env_default, flag
from .report import printable

_SERVICE = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")
_ROLE = re.compile(r"[0-9]{17,20}")
_SHA = re.compile(r"[0-9a-fA-F]{4,64}")
_GITHUB = re.compile(r"^(?:https?://(?:[^@/]+@)?|ssh://(?:[^@/]+@)?|[^@/]+@)github\.com[:/]"
                     r"(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$")
_FILES_SHOWN = 10
# A result file of changes or deploy is a few kilobytes (changes lists every matched file: thousands
# of paths at most); what is read of one is bounded in size and nesting, so a damaged or hostile file
# (an endless stream, "[[[[...", a gigabyte) costs a bounded read and an "unreadable" line, never the message.
RESULT_MAX_BYTES = 4 << 20
RESULT_MAX_DEPTH = 32
_URL = re.compile(r"https?://[!#-;=?-~]+")  # one http(s) URL of printable ASCII without space, quote, < or >
# What an operations job (vars/enaduOps) may run: helper commands that act on a deployed service.
OPS_ACTIONS = ("status", "rollback", "abort", "promote")
# The most of a rollback's reason shown: rollback.REASON_LIMIT, what the helper accepts (a test holds them equal;
# notify does not import rollback, which would load the deploy machinery for a message).
REASON_SHOWN = 280
_CLEANUP_WAIT_MAX = 16.0  # seconds notify waits at most for an interrupted deploy's clean-up (its bound is <= 15 s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("The webhook URL is read from DISCORD_WEBHOOK_URL only. Also read: JOB_NAME, "
                     "BUILD_NUMBER, BUILD_URL, GIT_COMMIT, GIT_BRANCH, GIT_URL. Exit codes: 0 delivered (or not "
                     "delivered without --strict), 1 not delivered with --strict, 2 usage.")
    parser.add_argument("--service", default=env_default("ENADU_SERVICE"), help="service name [ENADU_SERVICE]")
    parser.add_argument("--title", default=env_default("ENADU_TITLE"),
                        help="human-readable service name shown above the title [ENADU_TITLE]")
    parser.add_argument("--result", default=env_default("ENADU_BUILD_RESULT"),
                        help="build result: " + ", ".join(embed.RESULTS) + " [ENADU_BUILD_RESULT]")
    parser.add_argument("--duration-ms", default=env_default("ENADU_DURATION_MS"),
                        help="build duration in milliseconds [ENADU_DURATION_MS]")
    parser.add_argument("--mention-role", default=env_default("ENADU_MENTION_ROLE"),
                        help="Discord role id to ping when the result is FAILURE [ENADU_MENTION_ROLE]")
    parser.add_argument("--timeout", default=env_default("ENADU_NOTIFY_TIMEOUT", "30"),
                        help="seconds for the whole notification, retries included (default 30) [ENADU_NOTIFY_TIMEOUT]")
    parser.add_argument("--strict", action="store_const", const="1", default=env_default("ENADU_STRICT", ""),
                        help="exit 1 when the message is not delivered [ENADU_STRICT=1]")
    parser.add_argument("--changes-file", default=env_default("ENADU_CHANGES_FILE"),
                        help="JSON result of the changes command [ENADU_CHANGES_FILE]")
    parser.add_argument("--deploy-file", default=env_default("ENADU_DEPLOY_FILE"),
                        help="JSON result of the deploy command [ENADU_DEPLOY_FILE]")
    parser.add_argument("--action", default=env_default("ENADU_ACTION", ""),
                        help="the operations action the build ran (" + ", ".join(OPS_ACTIONS) + "): the title names it and"
                        " the message reports its result (from --deploy-file) instead of changes and deploy [ENADU_ACTION]")
    parser.add_argument("--repo", default=".", help="git repository to read the commit message from (default: .)")
    parser.add_argument("--dry-run", action="store_true", help="print the JSON payload instead of sending it")


# ---------------------------------------------------------------------------------------------
# options


def _options(args: argparse.Namespace) -> Dict[str, object]:
    service = (args.service or "").strip()
    if not service:
        raise UsageError("ENADU_SERVICE (--service) is not set")
    if not _SERVICE.fullmatch(service):
        raise UsageError(f"ENADU_SERVICE (--service) {service[:60]!r} is not a service name "
                         "(lower-case letters, digits and '-', starting with a letter)")
    result = (args.result or "").strip().upper()
    if not result:
        raise UsageError("ENADU_BUILD_RESULT (--result) is not set")
    if result not in embed.RESULTS:
        raise UsageError(f"ENADU_BUILD_RESULT (--result) {args.result[:40]!r} is not one of {', '.join(embed.RESULTS)}")
    duration: Optional[int] = None
    if args.duration_ms not in (None, ""):
        try:
            duration = int(str(args.duration_ms).strip())
        except ValueError:
            duration = -1
        if duration < 0:
            raise UsageError(f"ENADU_DURATION_MS (--duration-ms) {str(args.duration_ms)[:40]!r} is not a "
                             "number of milliseconds")
    role = (args.mention_role or "").strip()
    if role and not _ROLE.fullmatch(role):
        raise UsageError(f"ENADU_MENTION_ROLE (--mention-role) {role[:40]!r} is not a Discord role id (17-20 digits)")
    try:
        timeout = float(str(args.timeout).strip())
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 3600:
        raise UsageError(f"ENADU_NOTIFY_TIMEOUT (--timeout) {str(args.timeout)[:40]!r} is not a number of "
                         "seconds between 0 and 3600")
    action = (getattr(args, "action", "") or "").strip()
    if action and action not in OPS_ACTIONS:
        raise UsageError(f"ENADU_ACTION (--action) {action[:40]!r} is not one of {', '.join(OPS_ACTIONS)}")
    return {
        "action": action,
        "service": service,
        "title": (args.title or "").strip() or service,
        "result": result,
        "duration_ms": duration,
        "role": role or None,
        "timeout": timeout,
        "strict": flag(args.strict, "ENADU_STRICT (--strict)"),
    }


# ---------------------------------------------------------------------------------------------
# facts


def human_duration(ms: Optional[int]) -> str:
    """'850 ms', '4.2 s', '42 s', '3 min 12 s', '1 h 05 min'."""
    if ms is None:
        return "unknown"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 10:
        return f"{seconds:.1f} s"
    total = int(round(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    return f"{total // 3600} h {total % 3600 // 60:02d} min"


def read_result(path: Optional[str], build_url: Optional[str]) -> Tuple[str, Dict[str, object]]:
    """('missing' | 'unreadable' | 'ok', data) for a result file; a file written for another build
    (its ``build_url`` differs from ours) counts as missing."""
    if not path:
        return "missing", {}
    try:
        # O_NONBLOCK: opening a FIFO without a writer must not hang; helpers write regular files only
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return "unreadable", {"error": "not a regular file"}
            raw = f.read(RESULT_MAX_BYTES + 1)  # never more: the file may be huge
    except FileNotFoundError:
        return "missing", {}
    except OSError as e:
        return "unreadable", {"error": f"{type(e).__name__}"}
    if len(raw) > RESULT_MAX_BYTES:
        return "unreadable", {"error": f"larger than {RESULT_MAX_BYTES >> 20} MiB"}
    if _nesting(raw) > RESULT_MAX_DEPTH:  # json.loads would recurse once per level: RecursionError
        return "unreadable", {"error": f"nested deeper than {RESULT_MAX_DEPTH} levels"}
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as e:
        return "unreadable", {"error": f"{type(e).__name__}"}
    if not isinstance(data, dict):
        return "unreadable", {"error": "not a JSON object"}
    if build_url and data.get("build_url") and str(data.get("build_url")).strip() != build_url.strip():
        return "missing", {}
    return "ok", data


def _nesting(raw: bytes) -> int:
    """The deepest nesting of JSON arrays and objects in ``raw`` (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _guarded(build, state: str, data: Dict[str, object], *extra: object) -> str:  # noqa: ANN001
    """A field built from a result file, or the "unreadable" line when the file's values have types
    no helper writes (a number where a list belongs, ...): the message is posted either way."""
    try:
        return build(state, data, *extra)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError):
        return "result file unreadable (unexpected structure)"


def read_deploy_result(path: Optional[str], build_url: Optional[str], *, patience: float) -> Tuple[str, Dict[str, object]]:
    """The deploy's result; when it says the deploy was interrupted and is still cleaning up (until
    its ``cleanup_until``), wait for the final one, at most ``patience`` seconds."""
    state, data = read_result(path, build_url)
    now = time.time()
    until = data.get("cleanup_until") if state == "ok" and data.get("state") == "interrupted" else None
    if not isinstance(until, (int, float)) or until <= now:
        return state, data
    deadline = time.monotonic() + max(0.0, min(float(until) - now + 0.5, patience, _CLEANUP_WAIT_MAX))
    while time.monotonic() < deadline:
        time.sleep(0.1)
        state, data = read_result(path, build_url)
        if state != "ok" or data.get("state") != "interrupted":
            break
    return state, data


def commit_subject(repo: str, commit: Optional[str]) -> Optional[str]:
    """First line of the commit's message, or None when there is no repository or commit."""
    if not commit or not _SHA.fullmatch(commit):
        return None
    try:
        proc = subprocess.run(["git", "-C", repo, "log", "-1", "--format=%B", commit, "--"],
                              capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    lines = proc.stdout.decode("utf-8", errors="replace").strip().splitlines()
    return lines[0] if lines else None


def _plain(text: object) -> str:
    """Text shown as typed: Discord's markdown would turn 'fix user_id in note_service' into italics
    and '<@&123>' into a role pill; a backslash escapes any such punctuation. Control characters are
    shown as escapes first (``printable``): a value is one line in the message too."""
    return re.sub(r"([\\*_~`|<>\[\]#])", r"\\\1", printable(text))


def _code(text: object) -> str:
    """Inline code, so markdown in paths and images ('__init__.py') shows as typed."""
    return "`" + printable(text).replace("`", "'") + "`"


def _changes_field(state: str, data: Dict[str, object]) -> str:
    if state == "missing":
        return "not reached"
    if state == "unreadable":
        return f"result file unreadable ({data.get('error')})"
    if data.get("error"):
        return f"change detection failed: {_plain(data['error'])}"
    # globs in code spans: 'backend/**, common/**' would otherwise render as bold in Discord's markdown
    patterns = ", ".join(_code(p) for p in data.get("paths", []) or []) or "the configured paths"
    if data.get("basis") == "registration":
        return _plain(data.get("reason") or "registration build")
    against = _against_line(data)
    if not data.get("changed"):
        return f"no change in {patterns}; build and deploy skipped" + against
    matched = data.get("matched") or []
    if data.get("basis") != "diff" or not isinstance(matched, list):
        return _plain(data.get("reason") or "changed") + against
    lines = [f"{len(matched)} changed file{'s' if len(matched) != 1 else ''} in {patterns}:" + against]
    for entry in matched[:_FILES_SHOWN]:
        if isinstance(entry, dict):
            old = f"{_code(entry['old_path'])} \u2192 " if entry.get("old_path") else ""
            lines.append(f"{entry.get('status', '?')} {old}{_code(entry.get('path', '?'))}")
    if len(matched) > _FILES_SHOWN:
        lines.append(f"\u2026 and {len(matched) - _FILES_SHOWN} more")
    return "\n".join(lines)


_AGAINST_SHOWN = 160  # characters of the "compared with" line (a cluster's error can be long)


def _against_line(data: Dict[str, object]) -> str:
    """What `changes` compared with and why (its ``compared_with``: the commit live in the namespace,
    else the last successful build, else nothing), as one short line under the first; empty for
    results written before it existed."""
    text = data.get("compared_with")
    if not isinstance(text, str) or not text:
        return ""
    text = text if len(text) <= _AGAINST_SHOWN else text[:_AGAINST_SHOWN - 1] + "\u2026"
    return "\n" + _plain(text)


def _live_text(data: Dict[str, object]) -> str:
    """What the Service selects, as the deploy last saw it."""
    colour, image = data.get("live_colour"), data.get("live_image")
    seen = "" if data.get("live_checked") else " (when last seen)"
    if colour:
        what = f"**{_plain(colour)}**" + (f" {_code(image)}" if image else "")
        if data.get("live_checked") and data.get("live_available") is False:
            what += " (not fully available)"
        return f"live: {what}{seen}"
    if data.get("live_checked") or "live_colour" in data:
        return f"live: no colour yet{seen}"
    return "live: unknown"


def _interrupted_field(state: str, data: Dict[str, object]) -> str:
    """A deploy that started and was cut short: say so, and what is live."""
    target = f" of {_code(data['image'])}" if data.get("image") else ""
    if state == "missing":
        return f"**interrupted**: the deploy{target} started but left no result\nlive: unknown"
    phase = str(data.get("state") or "")
    if phase in ("started", "running"):
        why = f"the deploy{target} started but did not finish (it left no final result)"
    elif phase == "interrupted":
        why = f"the deploy{target} was stopped; its clean-up did not report back"
    else:
        why = _plain(data.get("message") or f"the deploy{target} was stopped")
    return f"**interrupted**: {why}\n{_live_text(data)}"


def _deploy_field(state: str, data: Dict[str, object], changes: Tuple[str, Dict[str, object]],
                  started: bool = False) -> str:
    if state == "missing":
        if started:  # the deploy step ran (it set ENADU_DEPLOY_FILE) but the helper left nothing
            return _interrupted_field(state, data)
        skipped = changes[0] == "ok" and changes[1].get("changed") is False and not changes[1].get("error")
        return "skipped: nothing changed" if skipped else "not reached"
    if state == "unreadable":
        return f"result file unreadable ({data.get('error')})"
    if data.get("state") in ("started", "running", "interrupted") or data.get("outcome") == "interrupted":
        return _interrupted_field(state, data) + _analysis_text(data)
    outcome = str(data.get("outcome") or "unknown")
    image = _code(data["image"]) if data.get("image") else "the new image"
    colour = f"**{data['colour']}**" if data.get("colour") else "the idle colour"
    message = f": {_plain(data['message'])}" if data.get("message") else ""
    before = []
    if data.get("previous_colour"):
        before.append(str(data["previous_colour"]))
    if data.get("previous_image"):
        before.append(_code(data["previous_image"]))
    was = f" (was {', '.join(before)})" if before else ""
    if outcome in ("deployed", "promoted"):
        text = f"{image} is live on {colour}{was}" + (" (promoted by hand)" if outcome == "promoted" else "")
    elif outcome == "aborted":  # enaduDeploy's answer to a promotion input refused or timed out
        text = f"not promoted{message}; the live colour still serves"
    elif outcome == "unchanged":
        text = f"{image} was already live on {colour}"
    elif outcome == "rolled-back" and data.get("rolled_back_by"):
        # a rollback took over the deploy in its scale-down delay (lock.py): nothing failed; who and why
        back = f"**{data['previous_colour']}**" if data.get("previous_colour") else "the previous colour"
        reason = f" ({_reason(data['rollback_reason'])})" if _reason(data.get("rollback_reason")) else ""
        text = (f"{image} was live on {colour} until {_code(str(data['rolled_back_by']))} rolled it back"
                f"{reason}; traffic is back on {back}")
    elif outcome == "rolled-back" and data.get("requested_image"):
        # the deploy judged an earlier switch first (its analysis never finished) and went back: `image`
        # is that switch's image, `requested_image` this build's, which was never deployed (review3 M3)
        back = f"**{data['previous_colour']}**" if data.get("previous_colour") else "the previous colour"
        text = (f"{_code(data['requested_image'])} was not deployed: {image}, live on {colour} from an earlier deploy"
                f" whose analysis never finished, failed its analysis now and traffic went back to {back}{message}")
    elif outcome == "rolled-back":
        # deploy's result names the colour it tried in `colour`; traffic went back to `previous_colour`
        back = f"**{data['previous_colour']}**" if data.get("previous_colour") else "the previous colour"
        text = f"{image} failed on {colour} and traffic went back to {back}{message}"
    elif outcome == "failed":
        text = f"failed{message}; the live colour still serves"
    elif outcome == "incomplete":
        text = f"switched to {colour} but did not finish{message}"
    else:
        text = f"{outcome}{message}"
    return text + _warnings_text(data) + _analysis_text(data)


def _ops_field(state: str, data: Dict[str, object], action: str, started: bool) -> str:
    """What an operations action (vars/enaduOps) did, from its result file (the helper's JSON result)."""
    if state == "missing":
        return f"**interrupted**: the {action} started but left no result" if started else "not reached"
    if state == "unreadable":
        return f"result file unreadable ({data.get('error')})"
    # a rollback's REASON (the helper's result says it whatever the outcome): why it was asked for
    why = f"\nreason: {_reason(data.get('reason'))}" if _reason(data.get("reason")) else ""
    if data.get("state") in ("started", "running", "interrupted") or data.get("outcome") == "interrupted":
        return f"**interrupted**: the {action} was stopped before it finished" + why
    outcome = _plain(str(data.get("outcome") or "unknown"))
    if action == "status" and data.get("outcome") == "status":
        return _status_text(data)
    message = f": {_plain(data['message'])}" if data.get("message") else ""
    return f"**{outcome}**{message}{why}" + _warnings_text(data)


def _reason(value: object) -> str:
    """A rollback's reason from a result file (untrusted): shown as typed, at most ``REASON_SHOWN``
    characters (cut with an ellipsis); '' when it is not text."""
    if not isinstance(value, str) or not value.strip():
        return ""
    text = value.strip()
    return _plain(text if len(text) <= REASON_SHOWN else text[:REASON_SHOWN - 1] + "\u2026")


def _status_text(data: Dict[str, object]) -> str:
    """status: the live colour, each colour's image and readiness, and the newest history entry."""
    live = data.get("live")
    colours = data.get("colours") if isinstance(data.get("colours"), dict) else {}
    lines = [f"live: **{_plain(live)}**" if live else "live: no colour"]
    for colour, info in sorted(colours.items()):  # type: ignore[union-attr]
        if isinstance(info, dict):
            ready = "fully available" if info.get("fully_available") else \
                f"{info.get('available')}/{info.get('replicas')} available"
            lines.append(f"{_plain(colour)}: {_code(info.get('image') or '(image unknown)')} {ready}")
    history = data.get("history")
    if isinstance(history, list) and history and isinstance(history[0], dict):
        last = history[0]
        why = f" ({_plain(last['reason'])})" if last.get("reason") else ""
        lines.append(f"last: {_plain(last.get('outcome'))} to {_plain(last.get('colour'))} at {_plain(last.get('at'))}{why}")
    return "\n".join(lines)


def _warnings_text(data: Dict[str, object]) -> str:
    """The deploy's warnings (a scale-down delay too short for the proxies, ...), one line each."""
    warnings = data.get("warnings")
    if not isinstance(warnings, list):
        return ""
    return "".join(f"\nwarning: {_plain(w)}" for w in warnings[:3] if isinstance(w, str))


def _analysis_text(data: Dict[str, object]) -> str:
    """The metric analysis verdicts recorded by ``deploy --analysis``, one line each."""
    lines = []
    for key in ("analysis_before_switch", "analysis"):
        verdict = data.get(key)
        if not isinstance(verdict, dict):
            continue
        checks = []
        for check in verdict.get("checks") or []:
            if isinstance(check, dict):
                checks.append(f"{check.get('name')} {check.get('shown') or 'no data'} "
                              f"({check.get('comparison')} {check.get('threshold')}): {check.get('status')}")
        stage = str(verdict.get("stage") or "")
        lines.append(f"\nanalysis {_plain(stage)}: **{_plain(str(verdict.get('outcome')))}**"
                     + (f" - {_plain('; '.join(checks))}" if checks else ""))
    return "".join(lines)


def tests_text(env: Dict[str, str]) -> str:
    """'2 tests, 1 failed' from the JUnit counts enaduTest exports; '' when there were none or they are not numbers."""
    counts = []
    for key in ("ENADU_TESTS_TOTAL", "ENADU_TESTS_FAILED", "ENADU_TESTS_SKIPPED"):
        value = (env.get(key) or "").strip()
        if not value.isdigit() or len(value) > 9:
            return ""
        counts.append(int(value))
    total, failed, skipped = counts
    if total == 0:
        return ""
    text = f"{total} test{'s' if total != 1 else ''}, {failed} failed"
    return text + (f", {skipped} skipped" if skipped else "")


def build_message(opts: Dict[str, object], env: Dict[str, str], repo: str, changes_file: Optional[str],
                  deploy_file: Optional[str], now: Optional[datetime.datetime] = None,
                  patience: float = 0.0) -> embed.Message:
    """The notification for this build, from options, Jenkins' environment and the result files."""
    result = str(opts["result"])
    job, number = env.get("JOB_NAME"), env.get("BUILD_NUMBER")
    # Jenkins' BUILD_URL ends up in the embed's link: surrounding whitespace (a trailing newline from a
    # misconfigured root URL) is dropped, and anything else that is not one URL means no link, not a
    # message Discord rejects (issue 13, finding 13c).
    build_url = (env.get("BUILD_URL") or "").strip() or None
    name = job or str(opts["service"])
    title = f"{name} #{number}" if number else name
    action = str(opts.get("action") or "")
    if action:
        title = f"{title}: {action}"
    duration = human_duration(opts["duration_ms"])  # type: ignore[arg-type]

    commit = (env.get("GIT_COMMIT") or "").strip()
    subject = commit_subject(repo, commit)
    if commit:
        short = _code(commit[:7])
        github = _GITHUB.match(env.get("GIT_URL") or "")
        if github and _SHA.fullmatch(commit):
            short = f"[{short}](https://github.com/{github.group('repo')}/commit/{commit})"
        commit_text = f"{short} {_plain(subject)}" if subject else short
    else:
        commit_text = "unknown"
    branch = re.sub(r"^(refs/heads/|origin/)", "", (env.get("GIT_BRANCH") or "").strip()) or "unknown"

    changes = read_result(changes_file, build_url)
    deploy = read_deploy_result(deploy_file, build_url, patience=patience)
    if action:  # an operations build: no checkout, no changes; what the action did is the news
        fields = [
            embed.Field("Result", result, inline=True),
            embed.Field("Duration", duration, inline=True),
            embed.Field(action.capitalize(), _guarded(_ops_field, *deploy, action, bool(deploy_file))),
        ]
    else:
        fields = _build_fields(result, duration, commit_text, branch, changes, deploy, env, bool(deploy_file))
    return _message(opts, result, title, build_url, duration, fields, now)


def _build_fields(result: str, duration: str, commit_text: str, branch: str, changes: Tuple[str, Dict[str, object]],
                  deploy: Tuple[str, Dict[str, object]], env: Dict[str, str], started: bool) -> list:
    fields = [
        embed.Field("Result", result, inline=True),
        embed.Field("Duration", duration, inline=True),
        embed.Field("Branch", _code(branch), inline=True),
        embed.Field("Commit", commit_text),
        embed.Field("Changes", _guarded(_changes_field, *changes)),
    ]
    tests = tests_text(env)
    if tests:
        fields.append(embed.Field("Tests", tests, inline=True))
    fields.append(embed.Field("Deploy", _guarded(_deploy_field, *deploy, changes, started)))
    return fields


def _message(opts: Dict[str, object], result: str, title: str, build_url: Optional[str], duration: str,
             fields: list, now: Optional[datetime.datetime]) -> embed.Message:
    role = opts["role"] if result == "FAILURE" else None
    url = build_url if build_url and _URL.fullmatch(build_url) and len(build_url) <= 2000 else None
    when = (now or datetime.datetime.now(datetime.timezone.utc)).isoformat(timespec="seconds")
    return embed.Message(
        title=title,
        url=url,
        description=f"{embed.HEADLINES[result]} in {duration}" if opts["duration_ms"] is not None
        else embed.HEADLINES[result],
        colour=embed.COLOURS[result],
        fields=fields,
        author=str(opts["title"]),
        footer=f"enadu-pipelines {__version__} \u00b7 {opts['service']}",
        timestamp=when,
        content=f"<@&{role}> {title} failed" if role else None,
        ping_role=str(role) if role else None,
    )


# ---------------------------------------------------------------------------------------------
# command


def _write(stream, text: str, *, json_text: bool = False) -> None:  # noqa: ANN001
    """Print one line (control characters escaped, see ``report.printable``), or JSON text whose
    newlines are its own layout (JSON escapes the controls inside strings; C1 controls and U+2028,
    which ``ensure_ascii=False`` leaves raw, are escaped line by line)."""
    text = "\n".join(printable(line) for line in text.split("\n")) if json_text else printable(text)
    try:
        stream.write(text + "\n")
    except UnicodeEncodeError:  # an agent whose locale cannot print the emoji: escape, do not fail
        encoding = stream.encoding or "ascii"
        stream.write(text.encode(encoding, "backslashreplace").decode(encoding) + "\n")
    stream.flush()


def _json(obj: object) -> str:
    try:
        text = json.dumps(obj, ensure_ascii=False, indent=2)
        text.encode(sys.stdout.encoding or "utf-8")
        return text
    except UnicodeEncodeError:
        return json.dumps(obj, indent=2)


def run(args: argparse.Namespace) -> int:
    opts = _options(args)
    started = time.monotonic()
    # An interrupted deploy may still be cleaning up: wait for its final result, within half our own bound.
    message = build_message(opts, dict(os.environ), args.repo, args.changes_file, args.deploy_file,
                            patience=float(opts["timeout"]) / 2)
    body = embed.payload(message)
    if args.dry_run:
        _write(sys.stdout, _json(body), json_text=True)
        return exitcodes.OK

    from . import webhook  # requests is imported only when we really send

    try:
        url = webhook.prepare_url(os.environ.get("DISCORD_WEBHOOK_URL"))
    except webhook.WebhookURLError as e:
        raise UsageError(str(e)) from None

    def log(line: str) -> None:
        if not line.endswith("; escalating"):  # the summary line below says the same, once
            _write(sys.stderr, line)

    report: Dict[str, object] = {"service": opts["service"], "result": opts["result"], "strict": opts["strict"]}
    try:
        # ENADU_NOTIFY_TIMEOUT bounds the whole command: what reading the results took is not given twice
        timeout = float(opts["timeout"])  # type: ignore[arg-type]
        left = max(min(timeout, 1.0), timeout - (time.monotonic() - started))
        delivery = webhook.deliver(url, body, deadline=left, log=log)
    except webhook.WebhookError as e:
        report.update(delivered=False, attempts=e.attempts, status=e.status, error=str(e))
        if args.output == "json":
            _write(sys.stdout, json.dumps(report), json_text=True)
        consequence = "failing the build (strict)" if opts["strict"] else "build result unchanged"
        _write(sys.stderr, f"notify: Discord message {e}; {consequence}")
        return exitcodes.FAILED if opts["strict"] else exitcodes.OK
    report.update(delivered=True, attempts=delivery.attempts, status=delivery.status,
                  message_id=delivery.message_id)
    if args.output == "json":
        _write(sys.stdout, json.dumps(report), json_text=True)
    else:
        tries = f" after {delivery.attempts} attempts" if delivery.attempts > 1 else ""
        _write(sys.stdout, f"notify: posted {opts['result']} of {message.title} to Discord{tries}")
    return exitcodes.OK
