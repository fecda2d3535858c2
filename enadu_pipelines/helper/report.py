"""How a helper command talks: timestamped progress lines, then one result.

In text mode, progress goes to stdout and the result is a last line; with ``--output json``
progress goes to stderr and stdout carries exactly one JSON object, so a script can parse it. The
same JSON object is written to the ``--result-file`` (``ENADU_RESULT_FILE``) when given: that is how
``enaduNotify`` learns what ``enaduDeploy`` did. Lines never contain secrets.

The result file is not only written at the end: ``checkpoint`` writes what is known so far with
``"state": "started"`` or ``"running"`` (so a build aborted mid-deploy can tell "the deploy started"
from "not reached"), ``interrupted`` writes ``"state": "interrupted"`` the moment a SIGTERM arrives,
and ``finish`` writes the final object with ``"state": "finished"``. Every write replaces the file
atomically; once interrupted, later checkpoints are dropped, and only the first ``finish`` counts.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import sys
import tempfile
import threading
import time
from typing import Any, Dict, Optional, TextIO


# What must never reach a console line raw (issue 13, finding 9): C0 and C1 controls (newline, carriage
# return, ESC of ANSI sequences, NEL), DEL, the Unicode line and paragraph separators, and the bidi
# embedding/override/isolate controls that reorder what a reader sees ("Trojan Source", CVE-2021-42574).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: object) -> str:
    """``text`` as one console line: every control character shown as a Python-style escape
    (``\\n``, ``\\x1b``, ``\\u2028``), so a file name or history entry holding "\\nFinished: SUCCESS"
    or an ANSI colour code prints as the visible characters, never as a line or colour of its own.

    The one mechanism for every text line the helper prints: ``Reporter.log`` (progress and result
    lines of deploy, status, rollback, abort), ``changes``' lines, ``notify``'s lines and the CLI's
    error line all go through it. JSON output needs none: ``json.dumps`` escapes controls itself.
    """
    return _UNPRINTABLE.sub(lambda m: _NAMED.get(m.group()) or (
        f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}"), str(text))


class Reporter:
    def __init__(self, command: str, output: str = "text", result_file: Optional[str] = None,
                 stream: Optional[TextIO] = None) -> None:
        self.command = command
        self.output = output
        self.result_file = result_file
        self.progress = stream or (sys.stdout if output == "text" else sys.stderr)
        self.started = time.monotonic()
        # Re-entrant: a signal handler runs on the main thread, possibly inside log() or a write.
        self._lock = threading.RLock()
        self._interrupted = False
        self._finished = False
        if result_file:
            from .errors import UsageProblem

            directory = os.path.dirname(os.path.abspath(result_file))
            if not os.path.isdir(directory):
                raise UsageProblem(f"--result-file {result_file}: its directory does not exist")
            # A result left by an earlier build must never be read as this build's (notify reads it).
            try:
                os.unlink(result_file)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise UsageProblem(f"--result-file {result_file}: cannot replace it ({e.strerror})") from None

    def log(self, message: str) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            self.progress.write(f"{stamp} {printable(message)}\n")
            self.progress.flush()

    def _snapshot(self, result: Dict[str, Any], state: str) -> Dict[str, Any]:
        snapshot = {"command": self.command, **result, "state": state,
                    "duration_seconds": round(time.monotonic() - self.started, 1)}
        if os.environ.get("BUILD_URL"):
            snapshot.setdefault("build_url", os.environ["BUILD_URL"])
        return snapshot

    def _write(self, snapshot: Dict[str, Any]) -> None:
        if not self.result_file:
            return
        try:
            write_atomically(self.result_file, json.dumps(snapshot, sort_keys=True) + "\n")
        except OSError as e:  # the command goes on: say so
            self.log(f"could not write the result file {self.result_file} ({e.strerror})")

    def checkpoint(self, result: Dict[str, Any], state: str = "running") -> None:
        """Write what is known so far (``state`` "started" or "running"); a no-op once interrupted
        or finished, so an older snapshot never replaces the ``interrupted`` one."""
        with self._lock:
            if not (self._interrupted or self._finished):
                self._write(self._snapshot(result, state))

    def interrupted(self, result: Dict[str, Any]) -> None:
        """Write the ``interrupted`` snapshot at once (from the signal handler)."""
        with self._lock:
            self._interrupted = True
            if not self._finished:
                self._write(self._snapshot({**result, "outcome": "interrupted"}, "interrupted"))

    def finish(self, result: Dict[str, Any], exit_code: int) -> int:
        """Write and print the final result (the first call only: the watchdog of an interrupted
        command and the command itself may both get here)."""
        with self._lock:
            if self._finished:
                return exit_code
            self._finished = True
            result = {**self._snapshot(result, "finished"), "exit_code": exit_code}
            text = json.dumps(result, sort_keys=True)
            self._write(result)
            if self.output == "json":
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
            elif result.get("message"):
                self.log(result["message"])
        return exit_code


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".enadu-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


MAX_DURATION = 366 * 24 * 3600.0  # longer is a typo, and time.sleep/timedelta overflow on 1e300


def parse_duration(text: str, what: str) -> float:
    """'30s', '10m', '1h', '1500ms' or a plain number of seconds: finite, at most a year."""
    from .errors import UsageProblem

    value = text.strip()
    units = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    for suffix, factor in units:
        if value.endswith(suffix) and not (suffix == "s" and value.endswith("ms")):
            number = value[: -len(suffix)]
            break
    else:
        number, factor = value, 1.0
    try:
        seconds = float(number) * factor
    except ValueError:
        raise UsageProblem(f"{what}: {text!r} is not a duration such as 30s, 10m or 1h") from None
    if not math.isfinite(seconds):
        raise UsageProblem(f"{what}: {text[:40]!r} is not a finite duration such as 30s, 10m or 1h")
    if seconds < 0:
        raise UsageProblem(f"{what}: {text[:40]!r} must not be negative")
    if seconds > MAX_DURATION:
        raise UsageProblem(f"{what}: {text[:40]!r} is longer than a year")
    return seconds
