"""Live mode of the pipeline harness: one Jenkinsfile run the way a Jenkins controller runs it.

The build runs in its own harness JVM (``harness.groovy --live``) with a real workspace directory,
real time, ``sh`` steps run by an :class:`~support.e2e.executor.Executor` (durable-task's way),
``checkout`` answered by a Python callback that does real git, and aborts that stop the running step
as Jenkins does. See README.md ("Live mode") for the protocol and what is emulated::

    build = LiveBuild(text, library_root=REPO, scenario={"job": {"name": "enadu/backend"}},
                      workspace=tmp / "ws", callbacks={"checkout": my_git_checkout})
    build.start()
    ...
    build.abort()                 # the UI's abort button
    run = build.wait(120)         # a client.Run: result, trace, stages, log, env, scms, ...
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from support.e2e.executor import Executor, ShTask
from support.pipeline.client import HERE, PLUGINS, REPO, STUBS, HarnessError, Run, _java_env

START_TIMEOUT = 120.0
_compile_lock = threading.Lock()
_compiled: Path | None = None


def _groovy_home() -> Path:
    groovy = shutil.which("groovy")
    if groovy is None:
        raise HarnessError("groovy is not installed (scripts/test installs Debian's groovy 2.4.21)")
    return Path(os.path.realpath(groovy)).parent.parent


def _sources() -> list[Path]:
    return sorted((HERE / "src").rglob("*.groovy")) + sorted(STUBS.rglob("*.groovy")) + [HERE / "harness.groovy"]


def compiled_harness() -> Path:
    """The harness compiled by groovyc, cached by the sources' digest (in the temp directory, shared
    by concurrent sessions: built aside and renamed into place). A live build then starts a plain
    ``java`` instead of ``groovy harness.groovy``, which compiles every time (about 2.5x faster)."""
    global _compiled
    with _compile_lock:
        if _compiled is not None and _compiled.is_dir():
            return _compiled
        digest = hashlib.sha256()
        for src in _sources():
            digest.update(src.relative_to(REPO).as_posix().encode() + b"\0" + src.read_bytes() + b"\0")
        target = Path(tempfile.gettempdir()) / f"enadu-harness-classes-{digest.hexdigest()[:16]}"
        if not (target / "harness.class").is_file():
            work = Path(tempfile.mkdtemp(prefix="enadu-harness-build-"))
            groovyc = _groovy_home() / "bin" / "groovyc"
            proc = subprocess.run([str(groovyc), "-cp", f"{HERE / 'src'}{os.pathsep}{STUBS}", "-d", str(work),
                                   *map(str, _sources())], capture_output=True, text=True, env=_java_env(), timeout=300)
            if proc.returncode != 0:
                shutil.rmtree(work, ignore_errors=True)
                raise HarnessError(f"groovyc failed:\n{proc.stdout}\n{proc.stderr}")
            try:
                work.rename(target)
            except OSError:  # another session won the race
                shutil.rmtree(work, ignore_errors=True)
        _compiled = target
        return target


def _command() -> list[str]:
    classes = compiled_harness()
    java = Path(_java_env()["JAVA_HOME"]) / "bin" / "java"
    return [str(java), "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xms32m", "-Xmx512m", "-Xss2m",
            "-cp", f"{classes}{os.pathsep}{_groovy_home() / 'lib' / '*'}", "harness",
            "--plugins", str(PLUGINS), "--live"]


class LiveBuild:
    """One live build (one harness JVM).

    ``scenario`` keeps the stub mode's keys for job, credentials, params, causes, agent and env; its
    ``sh``/``checkout``/``junit`` answers are not used. ``workspace`` is the real workspace directory
    (``scenario.job.workspace`` is set to it). ``callbacks["checkout"](args) -> {"returns": {...},
    "changeSet": [...]}`` (or ``{"error": "..."}``) does the checkout; ``args`` has ``scm`` (the
    checkout's scm map), ``cwd`` (where to check out) and ``env`` (the build's environment there).
    ``remote_timeout`` (DurableTaskStep.REMOTE_TIMEOUT, 20 s) and ``timeout_grace``
    (TimeoutStepExecution.GRACE_PERIOD, 60 s) may be shortened for tests. ``on_log`` is called with
    each console line as it is written. Agent pods (``agent { kubernetes { } }``): ``callbacks["podStart"]``,
    ``["podStop"]`` and ``["podExec"]`` (an ``sh`` in a pod: returns its args with the container's
    ``baseEnv``, the environment the executor starts from) are the cloud's (tests/support/e2e/pods.py).
    """

    def __init__(self, jenkinsfile_text: str, library_root: Path | str | None, scenario: Mapping[str, Any],
                 workspace: Path | str, callbacks: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
                 executor: Executor | None = None, *, library_name: str = "enadu", implicit: bool = False,
                 remote_timeout: float | None = None, timeout_grace: float | None = None,
                 agent_env: Mapping[str, str] | None = None, node_name: str = "built-in",
                 on_log: Callable[[str], None] | None = None) -> None:
        self.workspace = Path(workspace).resolve()
        self.executor = executor if executor is not None else Executor(agent_env=agent_env)
        self.callbacks = dict(callbacks or {})
        self.on_log = on_log
        scenario = json.loads(json.dumps(scenario))  # a copy
        scenario.setdefault("job", {})["workspace"] = str(self.workspace)
        live: dict[str, Any] = {"agentEnv": dict(self.executor.agent_env if agent_env is None else agent_env),
                                "nodeName": node_name}
        if remote_timeout is not None:
            live["remoteTimeoutSeconds"] = remote_timeout
        if timeout_grace is not None:
            live["timeoutGraceSeconds"] = timeout_grace
        self._request: dict[str, Any] = {"action": "run", "jenkinsfileText": jenkinsfile_text, "scenario": scenario,
                                         "live": live}
        if library_root is not None:
            self._request["library"] = {"root": str(Path(library_root).resolve()), "name": library_name,
                                        "implicit": implicit}
        self._proc: subprocess.Popen[str] | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self._write_lock = threading.Lock()
        self._done = threading.Event()
        self._answer: dict[str, Any] | None = None
        self._failure: str | None = None
        self._tasks: dict[int, ShTask] = {}
        self._tasks_ready: dict[int, threading.Event] = {}
        self._kinds: dict[int, str] = {}
        self._log: list[str] = []
        self._reader: threading.Thread | None = None
        self.started_at: float | None = None
        self.start_seconds: float | None = None  # JVM start to first line from the build

    # ------------------------------------------------------------------------------------------

    def start(self) -> LiveBuild:
        if self._proc is not None:
            raise HarnessError("this live build was already started")
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        self._proc = subprocess.Popen(_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                      text=True, encoding="utf-8", env=_java_env(), cwd=REPO, start_new_session=True)
        self._send(self._request)
        self._reader = threading.Thread(target=self._read, daemon=True, name="live-build-reader")
        self._reader.start()
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and not self._done.is_set()

    @property
    def log(self) -> list[str]:
        """The console so far."""
        return list(self._log)

    def abort(self, user: str = "anonymous") -> None:
        """The abort button (Executor.interrupt(ABORTED, UserInterruption))."""
        if self.running:
            self._send({"control": "abort", "user": user})

    def wait(self, timeout: float | None = None) -> Run:
        """The build's answer (a client.Run; live extras in ``run.raw``: scms, startTime)."""
        if self._proc is None:
            raise HarnessError("the live build was not started")
        if not self._done.wait(timeout):
            raise TimeoutError(f"the live build did not finish within {timeout} s")
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        if self._answer is None:
            raise HarnessError(self._failure or f"harness exited ({self._proc.returncode}): {self.stderr_tail()}")
        if "harnessError" in self._answer:
            raise HarnessError(self._answer["harnessError"] + ("\n" + self._answer["stackTrace"] if "stackTrace" in self._answer else ""))
        return Run(self._answer)

    def kill(self) -> None:
        """Ends the harness JVM (not a Jenkins action: for test teardown)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._done.set()

    def stderr_tail(self, limit: int = 4000) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-limit:]

    # ------------------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        with self._write_lock:
            try:
                self._proc.stdin.write(json.dumps(message) + "\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass  # the JVM is gone; wait() reports it

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            for line in self._proc.stdout:
                if self.start_seconds is None and self.started_at is not None:
                    self.start_seconds = time.monotonic() - self.started_at
                try:
                    message = json.loads(line)
                except ValueError:
                    print(f"live harness: not JSON: {line!r}", file=sys.stderr)
                    continue
                if "log" in message and len(message) == 1:
                    self._log.append(message["log"])
                    if self.on_log is not None:
                        self.on_log(message["log"])
                elif "callback" in message:
                    self._kinds[int(message["cb"])] = message["callback"]
                    threading.Thread(target=self._callback, args=(message,), daemon=True,
                                     name=f"live-callback-{message.get('cb')}").start()
                elif "signal" in message:
                    threading.Thread(target=self._signal, args=(message,), daemon=True).start()
                else:
                    self._answer = message
                    break
        except Exception as e:  # noqa: BLE001
            self._failure = f"live harness reader failed: {e!r}"
        finally:
            if self._answer is None and self._failure is None:
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
                self._failure = f"harness exited ({self._proc.returncode}) without an answer: {self.stderr_tail()}"
            self._done.set()

    def _callback(self, message: dict[str, Any]) -> None:
        cb = int(message["cb"])
        kind = message["callback"]
        args = message.get("args") or {}
        try:
            if kind == "sh":
                ready = self._tasks_ready.setdefault(cb, threading.Event())
                if args.get("pod"):
                    # in an agent pod: the container's environment and paths (callbacks["podExec"])
                    if "podExec" not in self.callbacks:
                        raise RuntimeError("live harness: an sh in an agent pod needs a 'podExec' callback")
                    args = self.callbacks["podExec"](args)
                task = self.executor.start(args, lambda lines: self._send({"output": cb, "lines": lines}))
                self._tasks[cb] = task
                ready.set()
                answer = task.wait()
            elif kind in self.callbacks:
                answer = self.callbacks[kind](args)
            else:
                answer = {"error": f"live harness: no '{kind}' callback was given to LiveBuild"}
        except Exception as e:  # noqa: BLE001 - the step fails with it, as a failing plugin would
            answer = {"error": f"{type(e).__name__}: {e}"}
        self._send({"cb": cb, "answer": answer})

    def _signal(self, message: dict[str, Any]) -> None:
        target = int(message["target"])
        if self._kinds.get(target) != "sh":
            return  # a checkout callback: its answer will simply be ignored
        ready = self._tasks_ready.setdefault(target, threading.Event())
        if not ready.wait(30):
            return
        task = self._tasks.get(target)
        if task is None:
            return
        if message["signal"] == "stop":
            self.executor.stop(task)
        elif message["signal"] == "abandon":
            self.executor.abandon(task)
