"""Decide whether a service's paths changed since what is live (exit 0 changed, 10 not).

Compares GIT_COMMIT, in the checked-out repository with real git, with the first usable of: the
commit live in the service's namespace (the ``enadu.io/commit`` annotation ``deploy`` writes on the
colour the Service selects, read with the kubeconfig, see ``live.py``), GIT_PREVIOUS_SUCCESSFUL_COMMIT,
or nothing. A commit is usable when this clone has it and it is an ancestor of GIT_COMMIT. After a
rollback the live commit is older than the last successful build: a push touching only other
services still rebuilds this one, because the files changed since the live commit include its own.
Every changed path is matched against the service's globs (ENADU_PATHS, one per line; '*' and '?'
stay inside one path segment, '**' spans any number of them: 'backend/**', '**/*.gradle', '**').
A rename counts on both sides (moving a file out of backend/ changes backend); a deletion counts.

When there is nothing trustworthy to compare against, the answer is "changed", with the reason:
the first build (no previous successful commit), a previous commit this clone does not have
(shallow clone, or one a force-push threw away), or one that is no longer an ancestor of the
commit being built (history rewritten). Rebuilding too much is cheap; skipping a real change is not.
``compared_with`` says in one line what was compared with and why the live commit was not; a cluster
that cannot be read only warns (on stderr and in ``warnings``) and never fails the build.

Prints the matched files (or one JSON object with --output json) and writes the same JSON result to
ENADU_RESULT_FILE, which `notify` reads. Exit codes: 0 changed, 10 unchanged, 1 git failed, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import exitcodes
from .cli import UsageError, env_default, flag
from .report import printable

_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@^~{}-]{0,199}")  # a sha or a ref; never starts with '-'
_SERVICE = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")
_SHOWN = 200  # matched files listed in text output (all of them are in the JSON)


class GitError(Exception):
    """git failed or is missing; the message is one line."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Exit codes: 0 changed, 10 unchanged, 1 git failed, 2 usage."
    parser.add_argument("--service", default=env_default("ENADU_SERVICE", ""),
                        help="service name, for messages [ENADU_SERVICE]")
    parser.add_argument("--path", dest="paths", action="append", metavar="GLOB",
                        help="path glob relative to the repository root; repeat for more "
                             "[ENADU_PATHS, one glob per line]")
    parser.add_argument("--commit", default=env_default("GIT_COMMIT", "HEAD"),
                        help="commit being built (default HEAD) [GIT_COMMIT]")
    parser.add_argument("--previous", default=env_default("GIT_PREVIOUS_SUCCESSFUL_COMMIT", ""),
                        help="commit of the last successful build; empty for a first build "
                             "[GIT_PREVIOUS_SUCCESSFUL_COMMIT]")
    parser.add_argument("--repo", default=".", help="the checked-out repository (default: .)")
    parser.add_argument("--result-file", default=env_default("ENADU_RESULT_FILE"),
                        help="also write the JSON result to this file [ENADU_RESULT_FILE]")
    from . import live

    live.add_arguments(parser)
    parser.add_argument("--register-only", action="store_const", const="true",
                        default=env_default("ENADU_REGISTER_ONLY", ""),
                        help="a registration build (the first build `bootstrap` queues, so that pushes start the"
                             " job): answer 'unchanged' without comparing, so nothing is built or deployed"
                             " [ENADU_REGISTER_ONLY=true]")


# ---------------------------------------------------------------------------------------------
# globs


def glob_problem(pattern: str) -> Optional[str]:
    """Why ``pattern`` is not a path glob (the rules ``enadu.yaml`` validates too), or None."""
    segments = pattern.split("/")
    if any(s in ("", ".", "..") for s in segments):
        return "path segments may not be empty, '.' or '..'"
    if any("**" in s and s != "**" for s in segments):
        return "'**' must be a whole path segment, as in 'common/**'"
    return None


class PathGlob:
    """A path glob: '*' and '?' stay inside one path segment, '**' spans any number of them.

    Hand-written because the standard library has no '**' glob for plain strings before Python 3.13
    (``fnmatch``'s '*' crosses '/'; ``glob.translate`` is 3.13+), and the helper runs on 3.9. It does
    not translate to a regular expression: ``re`` backtracks, and ``*a*a*a*a*a*b`` against a long name
    took minutes. Both levels use the same greedy rule instead: split the pattern at its stars, anchor
    the first piece at the start and the last at the end, and place each middle piece at its leftmost
    fit (placing a piece further right never helps the pieces after it). Each piece is placed once, so
    a match costs at most about len(pattern) x len(path) steps, whatever the number of stars.

    A non-final '**' matches zero or more segments ('a/**/b' matches 'a/b'); a final one matches one
    or more ('backend/**' does not match 'backend' itself).
    """

    def __init__(self, pattern: str) -> None:
        problem = glob_problem(pattern)
        if problem:
            raise UsageError(f"path glob {pattern!r}: {problem}")
        self.pattern = pattern
        segments = pattern.split("/")
        if segments[-1] == "**":
            segments[-1:] = ["*", "**"]  # one segment of anything, then any number more
        self.segments = segments

    def fullmatch(self, path: str) -> bool:
        """Whether ``path`` (repository-relative, '/'-separated) matches the whole glob."""
        return _place(self.segments, path.split("/"), "**", _segment_matches)


def _place(pattern: Sequence, items: Sequence, star: object, fits: Callable[[Sequence, Sequence], bool]) -> bool:
    """Whether ``items`` match ``pattern``, in which ``star`` stands for any run of items."""
    pieces: List[Sequence] = []
    piece: List = []
    for element in pattern:
        if element == star:
            pieces.append(piece)
            piece = []
        else:
            piece.append(element)
    pieces.append(piece)
    if len(pieces) == 1:
        return len(items) == len(pattern) and fits(pattern, items)
    first, middle, last = pieces[0], pieces[1:-1], pieces[-1]
    end = len(items) - len(last)
    if end < len(first) or not fits(first, items[:len(first)]) or not fits(last, items[end:]):
        return False
    at = len(first)
    for piece in middle:
        while at + len(piece) <= end and not fits(piece, items[at:at + len(piece)]):
            at += 1
        if at + len(piece) > end:
            return False
        at += len(piece)
    return True


def _chars_fit(piece: Sequence[str], chars: Sequence[str]) -> bool:
    return all(p == "?" or p == c for p, c in zip(piece, chars))


def _segment_matches(patterns: Sequence[str], segments: Sequence[str]) -> bool:
    return all(_place(p, s, "*", _chars_fit) for p, s in zip(patterns, segments))


def compile_glob(pattern: str) -> PathGlob:
    """The matcher of one path glob (raises UsageError for a glob that breaks the rules)."""
    return PathGlob(pattern)


def _patterns(args: argparse.Namespace) -> List[str]:
    raw = args.paths if args.paths else (os.environ.get("ENADU_PATHS") or "").splitlines()
    patterns = [p.strip() for p in raw if p.strip()]
    if not patterns:
        raise UsageError("no path globs: set ENADU_PATHS (one glob per line) or give --path")
    return patterns


# ---------------------------------------------------------------------------------------------
# git


def _git(repo: str, *argv: str, codes: Sequence[int] = (0,)) -> subprocess.CompletedProcess:
    env = dict(os.environ, LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    try:
        proc = subprocess.run(["git", "-C", repo, *argv], capture_output=True, env=env, timeout=300, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed on this agent") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {argv[0]} took longer than 300 s") from None
    if proc.returncode not in codes:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = lines[0] if lines else f"exit {proc.returncode}"
        raise GitError(f"git {argv[0]} failed in {repo}: {detail[:300]}")
    return proc


def _resolve(repo: str, ref: str) -> Optional[str]:
    proc = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", codes=(0, 1, 128))
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def _diff(repo: str, previous: str, commit: str) -> List[Dict[str, str]]:
    """Changed files between two commits: [{"status": "M", "path": ...}, {"status": "R",
    "path": new, "old_path": old}, ...], from ``git diff --name-status -z -M``."""
    proc = _git(repo, "-c", "core.quotepath=false", "diff", "--no-ext-diff", "--no-textconv", "--name-status",
                "-z", "-M", previous, commit, "--")
    tokens = proc.stdout.split(b"\0")
    entries: List[Dict[str, str]] = []
    i = 0
    while i < len(tokens) and tokens[i]:
        status = tokens[i].decode("ascii", "replace")
        kind = status[:1]
        if kind in ("R", "C"):
            old, new = tokens[i + 1], tokens[i + 2]
            entries.append({"status": kind, "path": new.decode("utf-8", "backslashreplace"),
                            "old_path": old.decode("utf-8", "backslashreplace")})
            i += 3
        else:
            entries.append({"status": kind, "path": tokens[i + 1].decode("utf-8", "backslashreplace")})
            i += 2
    return entries


# ---------------------------------------------------------------------------------------------
# decision


def detect(repo: str, patterns: Sequence[str], commit: str, previous: str, *,
           live: Optional[Dict[str, Any]] = None, live_why: str = "") -> Dict[str, object]:
    """The change decision as a JSON-ready dict (keys: changed, basis, reason, against, compared_with,
    commit, previous, live, paths, matched, changed_files). Raises GitError when git cannot answer
    about ``commit``.

    What ``commit`` is compared with, in order: the commit live in the cluster (``live``, from
    :func:`live.read_live`) when this clone has it (an ancestor of ``commit`` or not: the trees are compared); else
    ``previous`` (GIT_PREVIOUS_SUCCESSFUL_COMMIT) under the same two conditions; else nothing, and
    everything counts as changed. ``live_why`` says why there is no live commit when ``live`` is None;
    ``compared_with`` says in one line what was used and why the ones before it were not."""
    compiled = [compile_glob(p) for p in patterns]
    _git(repo, "rev-parse", "--git-dir")
    head = _resolve(repo, commit)
    if head is None:
        raise GitError(f"commit {commit!r} is not in the repository at {repo}")
    result: Dict[str, object] = {"commit": head, "previous": previous or None, "live": live, "against": None,
                                 "paths": list(patterns), "matched": [], "changed_files": None}
    shallow = _git(repo, "rev-parse", "--is-shallow-repository").stdout.decode().strip() == "true"

    def changed(basis: str, reason: str, compared_with: str) -> Dict[str, object]:
        result.update(changed=True, basis=basis, reason=reason, compared_with=compared_with)
        return result

    if live:
        where = f"the commit live in {live['namespace']} ({str(live['commit'])[:12]}, {live['colour']})"
        base = _resolve(repo, str(live["commit"]))
        if base is None:
            live_why = f"{where} is not in this clone" + (" (shallow clone)" if shallow else "")
        else:
            # Not an ancestor (a hand deploy of another branch, a rewritten history, a newer commit live):
            # the cluster still said what runs, and the last successful build is not it, so the trees are
            # compared all the same; the pushed commit is what this job deploys.
            apart = _git(repo, "merge-base", "--is-ancestor", base, head, codes=(0, 1, 128)).returncode != 0
            return _compare(repo, result, compiled, patterns, base, head, "live", f"compared with {where}" + (
                f", which is not an ancestor of {head[:12]}: the trees are compared" if apart else ""))
    live_why = live_why or "no live commit"
    if not previous:
        return changed("first-build", "first build (no previous successful commit): everything counts as changed",
                       f"compared with nothing: {live_why}, and no previous successful build")
    base = _resolve(repo, previous)
    if base is None:
        why = "this shallow clone does not have it" if shallow else "it is not in this clone (force-push?)"
        return changed("previous-unknown", f"previous successful commit {previous[:12]} is unknown: {why}; "
                                           "everything counts as changed",
                       f"compared with nothing: {live_why}, and the previous successful commit is unknown")
    result["previous"] = base
    ancestry = _git(repo, "merge-base", "--is-ancestor", base, head, codes=(0, 1, 128))
    if ancestry.returncode != 0:
        why = ("the shallow clone's history does not reach it" if shallow
               else "history was rewritten (force-push?)")
        return changed("not-ancestor", f"previous successful commit {base[:12]} is not an ancestor of "
                                       f"{head[:12]}: {why}; everything counts as changed",
                       f"compared with nothing: {live_why}, and the previous successful commit is not an ancestor")
    return _compare(repo, result, compiled, patterns, base, head, "previous",
                    f"compared with the last successful build ({base[:12]}): {live_why}")


def _compare(repo: str, result: Dict[str, object], compiled: Sequence[PathGlob], patterns: Sequence[str], base: str,
             head: str, against: str, compared_with: str) -> Dict[str, object]:
    entries = _diff(repo, base, head)
    matched = [e for e in entries
               if any(rx.fullmatch(p) for rx in compiled for p in (e["path"], e.get("old_path")) if p)]
    result.update(matched=matched, changed_files=len(entries), basis="diff", against=against,
                  compared_with=compared_with)
    span = f"{base[:7]}..{head[:7]}"
    globs = ", ".join(patterns)
    if matched:
        result.update(changed=True, reason=f"{len(matched)} of {len(entries)} changed files match {globs} ({span})")
    else:
        result.update(changed=False, reason=f"none of the {len(entries)} changed files match {globs} ({span})")
    return result


def _write_result(path: str, result: Dict[str, object]) -> None:
    """Write ``result`` to ``path`` atomically (a reader never sees half a file)."""
    from .report import write_atomically

    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_atomically(path, json.dumps(result, indent=2) + "\n")
    except OSError as e:
        raise GitError(f"cannot write the result file {path}: {e.strerror or e}") from None


def _remove_stale(path: Optional[str]) -> None:
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise UsageError(f"cannot replace the result file {path}: {e.strerror or e}") from None


def safe_streams() -> None:
    """Never die printing a path or message the agent's locale cannot encode: escape it instead."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _decide(args: argparse.Namespace, service: str, log: Callable[[str], None]) -> Dict[str, object]:
    patterns = _patterns(args)
    if flag(args.register_only, "--register-only (ENADU_REGISTER_ONLY)"):
        return {"commit": args.commit or "HEAD", "previous": args.previous or None, "paths": list(patterns),
                "matched": [], "changed": False, "basis": "registration",
                "reason": "registration build: it records the repository so that pushes start this job;"
                          " nothing is built or deployed"}
    for name, value in (("GIT_COMMIT (--commit)", args.commit),
                        ("GIT_PREVIOUS_SUCCESSFUL_COMMIT (--previous)", args.previous)):
        if value and not _REF.fullmatch(value):
            raise UsageError(f"{name} {value[:60]!r} is not a commit id or ref")
    from .live import NoLiveCommit, read_live_bounded

    live: Optional[Dict[str, Any]] = None
    live_why, warnings = "no service name (ENADU_SERVICE)", []
    if service:
        try:
            live = read_live_bounded(args, service, log).as_json()
        except NoLiveCommit as e:
            live_why = e.reason
            if e.warning:  # a read failure never fails the build: say so, and fall back
                warnings.append(f"{e.reason}; falling back to the last successful build")
                log(f"warning: {warnings[-1]}")
    decision = detect(args.repo, patterns, args.commit or "HEAD", args.previous or "", live=live, live_why=live_why)
    decision["warnings"] = warnings
    return decision


def run(args: argparse.Namespace) -> int:
    safe_streams()
    service = (args.service or "").strip()
    if service and not _SERVICE.fullmatch(service):
        raise UsageError(f"ENADU_SERVICE (--service) {service[:60]!r} is not a service name")
    label = f"changes {service}" if service else "changes"
    _remove_stale(args.result_file)  # a result left by an earlier build must never be read as ours
    base: Dict[str, object] = {"service": service or None, "build_url": os.environ.get("BUILD_URL") or None}
    def log(line: str) -> None:  # progress and warnings on stderr: stdout is the decision (one JSON object)
        print(printable(f"{label}: {line}"), file=sys.stderr)

    try:
        try:
            decision = _decide(args, service, log)
            result = {"service": base["service"], "changed": decision.pop("changed"), "basis": decision.pop("basis"),
                      "reason": decision.pop("reason"), **decision, "build_url": base["build_url"]}
        except UsageError as e:
            if args.result_file:  # so notify says why, instead of "not reached"
                _write_result(args.result_file, {**base, "changed": None, "error": str(e)})
            raise
        except GitError as e:
            if args.result_file:
                _write_result(args.result_file, {**base, "changed": None, "error": str(e)})
            raise
        if args.result_file:
            _write_result(args.result_file, result)
    except GitError as e:
        if args.output == "json":
            print(json.dumps({**base, "changed": None, "error": str(e)}))
        print(printable(f"{label}: error: {e}"), file=sys.stderr)
        return exitcodes.FAILED
    if args.output == "json":
        print(json.dumps(result))
    else:
        print(printable(f"{label}: {'changed' if result['changed'] else 'unchanged'}: {result['reason']}"))
        if result.get("compared_with"):
            print(printable(f"  {result['compared_with']}"))
        matched: List[Dict[str, str]] = result["matched"]  # type: ignore[assignment]
        for entry in matched[:_SHOWN]:
            old = f"{entry['old_path']} -> " if entry.get("old_path") else ""
            print(printable(f"  {entry['status']}  {old}{entry['path']}"))
        if len(matched) > _SHOWN:
            print(f"  ... and {len(matched) - _SHOWN} more (all of them are in the JSON result)")
    return exitcodes.OK if result["changed"] else exitcodes.UNCHANGED
