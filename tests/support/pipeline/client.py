"""Drive the Groovy pipeline harness from Python.

The harness (``harness.groovy`` and ``src/pipelineharness/``) runs under Debian's Groovy 2.4.21.
Starting a JVM and compiling the harness costs a few seconds, so one harness process serves the
whole pytest session: requests and answers are JSON lines over its stdin/stdout. :func:`harness`
returns that shared process; :class:`Run` wraps one answer with helpers to read the trace.

Run by hand (see README.md next to this file)::

    .venv/bin/python tests/support/pipeline/client.py pipelines/backend/Jenkinsfile \\
        --scenario tests/support/pipeline/examples/backend-success.json
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
STUBS = HERE.parent / "groovy" / "stubs"
PLUGINS = HERE / "plugins.json"
# The last line of every helper run's sh script (vars/enaduHelper: the checked private copy, python3 -I).
HELPER_RUN = 'python3 -I "$d/ENADU_HELPER" '
START_TIMEOUT = 120.0  # the first request also starts the JVM and compiles the harness
REQUEST_TIMEOUT = 60.0


class HarnessError(RuntimeError):
    """The harness could not run a request (scenario mistake, unsupported feature, crash)."""


def _java_env() -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("JAVA_HOME") or not Path(env["JAVA_HOME"], "bin", "java").exists():
        java = shutil.which("java")
        if java:
            env["JAVA_HOME"] = str(Path(java).resolve().parent.parent)
    # A small, short-lived workload on a shared 2-core machine: serial GC, modest heap.
    env.setdefault("JAVA_OPTS", "-XX:+UseSerialGC -Xms64m -Xmx768m -Xss2m")
    return env


class Harness:
    """One harness JVM; requests are served one at a time."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self._next_id = 0
        self._started = False

    def _start(self) -> subprocess.Popen[str]:
        groovy = shutil.which("groovy")
        if groovy is None:
            raise HarnessError("groovy is not installed (scripts/test installs Debian's groovy 2.4.21)")
        cmd = [groovy, "-cp", f"{HERE / 'src'}{os.pathsep}{STUBS}", str(HERE / "harness.groovy"),
               "--plugins", str(PLUGINS), "--serve"]
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                text=True, encoding="utf-8", env=_java_env(), cwd=REPO)

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        self._next_id += 1
        payload = {**payload, "id": self._next_id}
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(payload) + "\n")
        self._proc.stdin.flush()
        timeout = REQUEST_TIMEOUT if self._started else START_TIMEOUT
        line = self._read_line(timeout)
        self._started = True
        answer = json.loads(line)
        if answer.get("id") != self._next_id:
            raise HarnessError(f"harness answered request {answer.get('id')}, expected {self._next_id}")
        if "harnessError" in answer:
            raise HarnessError(answer["harnessError"] + ("\n" + answer["stackTrace"] if "stackTrace" in answer else ""))
        return answer

    def _read_line(self, timeout: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.close()
                    raise HarnessError(f"harness did not answer within {timeout:.0f} s")
                if sel.select(remaining):
                    line = self._proc.stdout.readline()
                    if not line:
                        self._proc.wait(5)
                        raise HarnessError(f"harness exited ({self._proc.returncode}): {self.stderr_tail()}")
                    return line

    def stderr_tail(self, limit: int = 4000) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-limit:]

    def run(self, jenkinsfile: str | Path | None = None, *, text: str | None = None, scenario: dict[str, Any],
            library: str | Path | None = REPO, library_name: str = "enadu", implicit: bool = False) -> Run:
        """Compile, validate and run a Jenkinsfile (a path, or ``text``) against a library root."""
        payload: dict[str, Any] = {"action": "run", "scenario": scenario}
        if text is not None:
            payload["jenkinsfileText"] = text
        else:
            payload["jenkinsfile"] = str(Path(jenkinsfile).resolve())  # type: ignore[arg-type]
        if library is not None:
            payload["library"] = {"root": str(Path(library).resolve()), "name": library_name, "implicit": implicit}
        return Run(self.request(payload))

    def calls(self, files: list[Path]) -> dict[str, Any]:
        """For each Groovy file: the methods it calls on itself and the undeclared names it reads."""
        return self.request({"action": "calls", "files": [str(f.resolve()) for f in files]})["files"]

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.stdin.close()  # type: ignore[union-attr]
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None


_shared: Harness | None = None


def harness() -> Harness:
    """The harness process shared by every test of the session."""
    global _shared
    if _shared is None:
        _shared = Harness()
        atexit.register(_shared.close)
    return _shared


@dataclass
class Run:
    """One harness answer: the build result, stage statuses and the ordered trace."""

    raw: dict[str, Any]

    @property
    def valid(self) -> bool:
        return bool(self.raw["valid"])

    @property
    def errors(self) -> list[str]:
        return list(self.raw.get("errors", []))

    @property
    def result(self) -> str:
        return str(self.raw["result"])

    @property
    def error(self) -> dict[str, Any] | None:
        return self.raw.get("error")

    @property
    def stages(self) -> dict[str, str]:
        return {s["name"]: s["status"] for s in self.raw["stages"]}

    @property
    def trace(self) -> list[dict[str, Any]]:
        return list(self.raw["trace"])

    @property
    def log(self) -> list[str]:
        return list(self.raw["log"])

    @property
    def leaks(self) -> list[dict[str, Any]]:
        return list(self.raw["leaks"])

    @property
    def violations(self) -> list[dict[str, Any]]:
        return list(self.raw["violations"])

    @property
    def duration_ms(self) -> int:
        return int(self.raw["durationMs"])

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return dict(self.raw.get("files", {}))

    def steps(self, name: str | None = None, *, stage: str | None = None) -> list[dict[str, Any]]:
        """Step entries (not events), optionally of one step name and/or stage."""
        return [e for e in self.raw["trace"] if "step" in e and (name is None or e["step"] == name)
                and (stage is None or e["stage"] == stage)]

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.raw["trace"] if e.get("event") == kind]

    def helper_calls(self, command: str | None = None) -> list[dict[str, Any]]:
        """The ``sh`` entries that run the bundled helper, optionally of one command."""
        def last_line(e: dict[str, Any]) -> str:
            lines = e["args"]["script"].rstrip("\n").splitlines()
            return lines[-1] if lines else ""

        calls = [e for e in self.steps("sh") if last_line(e).startswith(HELPER_RUN)]
        if command is not None:
            calls = [e for e in calls if last_line(e) == HELPER_RUN + command]
        return calls

    def helper(self, command: str) -> dict[str, Any]:
        """The one ``sh`` entry of a helper command (fails if it ran zero or several times)."""
        calls = self.helper_calls(command)
        if len(calls) != 1:
            raise AssertionError(f"expected one '{command}' helper call, found {len(calls)}")
        return calls[0]

    def describe(self) -> str:
        """A readable listing of the trace: one line per step, indented by nesting."""
        lines = [f"result: {self.result}"]
        if self.error:
            lines.append(f"error: {self.error['type']}: {self.error['message']}")
        for e in self.raw["trace"]:
            pad = "  " * e["depth"]
            if "step" in e:
                shown = json.dumps(e["args"], ensure_ascii=False)
                if len(shown) > 160:
                    shown = shown[:157] + "..."
                extra = ""
                if e["step"] == "sh":
                    extra = f" -> exit {e['status']}"
                elif "returned" in e and e["returned"] is not None:
                    extra = f" -> {json.dumps(e['returned'], ensure_ascii=False)[:80]}"
                lines.append(f"{e['seq']:4} {pad}{e['step']} {shown}{extra}")
            else:
                data = {k: v for k, v in e.items() if k not in ("seq", "event", "stage", "depth", "clock")}
                lines.append(f"{e['seq']:4} {pad}[{e['event']}] {json.dumps(data, ensure_ascii=False)[:160]}")
        lines.append("stages: " + ", ".join(f"{k}={v}" for k, v in self.stages.items()))
        if self.leaks:
            lines.append(f"LEAKS: {self.leaks}")
        if self.violations:
            lines.append(f"VIOLATIONS: {self.violations}")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one Jenkinsfile in the pipeline harness and print its trace.")
    parser.add_argument("jenkinsfile", type=Path)
    parser.add_argument("--scenario", type=Path, required=True, help="JSON scenario (see README.md)")
    parser.add_argument("--library", type=Path, default=REPO, help="library root with vars/ and resources/")
    parser.add_argument("--json", type=Path, help="also write the whole answer (trace, log, files) here")
    args = parser.parse_args(argv)
    try:
        scenario = json.loads(args.scenario.read_text("utf-8"))
    except (OSError, ValueError) as e:
        print(f"error: cannot read scenario {args.scenario}: {e}", file=sys.stderr)
        return 2
    h = Harness()
    try:
        run = h.run(args.jenkinsfile, scenario=scenario, library=args.library)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        h.close()
    if args.json:
        args.json.write_text(json.dumps(run.raw, indent=2, ensure_ascii=False) + "\n", "utf-8")
    if not run.valid:
        print("\n".join(run.errors))
        return 1
    print(run.describe())
    print("\n".join(run.log))
    return 0 if run.result == "SUCCESS" and not run.leaks else 1


if __name__ == "__main__":
    sys.exit(main())
