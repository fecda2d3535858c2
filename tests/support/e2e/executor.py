"""The agent side of a live build: runs ``sh`` steps the way Jenkins runs them, and stops them the way
Jenkins stops them.

Sources (jenkinsci repositories, read at the commits noted in tests/support/pipeline/README.md):

* durable-task-plugin ``BourneShellScript.launchWithCookie`` / ``scriptLauncherCmd``: the script is
  written to ``script.sh`` in a control directory, copied to ``script.sh.copy`` (JENKINS-70874) and
  run as ``'sh' -xe script.sh.copy`` - or directly, made executable, when it starts with ``#!`` -
  in the step's directory, its output going to ``jenkins-log.txt`` (with ``returnStdout``, stdout
  to ``output.txt`` and stderr to the log), the exit status to ``jenkins-result.txt``. The
  process gets ``JENKINS_SERVER_COOKIE=durable-<sha256 of the directory path>``
  (``FileMonitoringTask.cookieFor``); the control directory is
  ``<dir>@tmp/durable-<first 8 hex of md5(random UUID)>`` (``FileMonitoringController.setupControlDir``,
  ``WorkspaceList.tempDir``) and is deleted when the step ends (``Controller.cleanup``).
* durable-task ``FileMonitoringTask.escape`` + jenkins core ``Launcher.inherit`` /
  ``EnvVars.overrideExpandingAll``: the process environment is the agent's own environment
  overridden by the step's, where an empty value *removes* the variable (``EnvVars.override``) and
  values are literal (``$`` is escaped before the expansion).
* workflow-durable-task-step-plugin ``DurableTaskStep.Execution.stop``: "Sending interrupt signal
  to process", ``Controller.stop`` -> ``Launcher.kill({JENKINS_SERVER_COOKIE: cookie})`` ->
  jenkins core ``hudson.util.ProcessTree.killAll``, and after ``REMOTE_TIMEOUT`` (20 s) the step
  fails whether or not the process is gone (the harness JVM keeps that timer; see Live.groovy).
* jenkins core ``hudson/util/ProcessTree.java``: ``killAll`` walks every process (``/proc``) whose
  environment carries the model variables (``OSProcess.hasMatchingEnvVars``) and calls
  ``killRecursively`` on it: children first, each ``UnixProcess.kill(deadline)`` sends SIGTERM
  (``ProcessHandle.destroy``) and polls ``/proc/<pid>/status`` (10 ms doubling to 1 s) until the
  process is gone or the deadline - ``SoftKillWaitSeconds`` (default 5) after the start of that
  ``killRecursively`` - passes, then ``killByKiller()``, which only runs ``ProcessKiller``
  extensions: core has none, so there is **no SIGKILL**. A process that ignores SIGTERM survives.

Differences: the wrapper ``nohup sh -c '(...) &'`` is not used (this executor is the process'
parent and notices its exit at once, where DurableTaskStep polls every 250 ms backing off to 15 s);
the output is read from ``jenkins-log.txt`` every ``poll_interval`` seconds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOFT_KILL_WAIT_SECONDS = 5.0
"""hudson.util.ProcessTree.softKillWaitSeconds: Integer.getInteger("SoftKillWaitSeconds", 5)."""
REMOTE_TIMEOUT_SECONDS = 20.0
"""DurableTaskStep.REMOTE_TIMEOUT: System property ...DurableTaskStep.REMOTE_TIMEOUT, default "20"."""
COOKIE = "JENKINS_SERVER_COOKIE"


def cookie_for(directory: str) -> str:
    """FileMonitoringTask.cookieFor(workspace, false): "durable-" + SHA-256 hex of the remote path."""
    return "durable-" + hashlib.sha256(directory.encode("utf-8")).hexdigest()


def process_env(agent_env: Mapping[str, str], step_env: Mapping[str, str]) -> dict[str, str]:
    """Launcher.inherit: the agent's environment, then EnvVars.override of each step variable
    (empty value: removed; ``PATH+X=v``: prepended to PATH)."""
    env = dict(agent_env)
    for key, value in step_env.items():
        if value is None or value == "":
            env.pop(key, None)
            continue
        if "+" in key[1:]:
            real = key[: key.index("+", 1)]
            env[real] = value if real not in env else value + os.pathsep + env[real]
            continue
        env[key] = value
    return env


# ----------------------------------------------------------------------------------------------
# hudson.util.ProcessTree (Linux: /proc)


def _processes() -> dict[int, int]:
    """pid -> ppid of every process (ProcessTree.Linux's snapshot of /proc)."""
    out: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
            # pid (comm) state ppid ...: comm may contain spaces and parentheses
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry)] = ppid
    return out


def _environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return {}
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        if b"=" in item:
            k, _, v = item.partition(b"=")
            env[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
    return env


def _kill(pid: int, deadline: float) -> None:
    """UnixProcess.kill(deadline): SIGTERM, then wait for /proc/<pid>/status to go, until the deadline."""
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    sleep = 0.01
    status = Path(f"/proc/{pid}/status")
    while True:
        if not status.exists():
            break
        time.sleep(sleep)
        sleep = min(sleep * 2, 1.0)
        if time.monotonic() >= deadline:
            break
    # killByKiller(): ProcessKiller extensions only; Jenkins core registers none.


def _kill_recursively(pid: int, tree: dict[int, int], deadline: float) -> None:
    for child in [p for p, pp in tree.items() if pp == pid]:
        _kill_recursively(child, tree, deadline)
    _kill(pid, deadline)


def kill_all(model_env: Mapping[str, str], soft_kill_wait: float = SOFT_KILL_WAIT_SECONDS) -> list[int]:
    """ProcessTree.Unix.killAll: killRecursively every process whose environment has the model
    variables (each with its own SoftKillWaitSeconds deadline). Returns the pids it signalled."""
    if not model_env:
        return []  # hasMatchingEnvVars: "sanity check so that we don't start rampage"
    tree = _processes()
    matched = [pid for pid in sorted(tree) if pid != os.getpid()
               and all(_environ(pid).get(k) == v for k, v in model_env.items())]
    for pid in matched:
        _kill_recursively(pid, tree, time.monotonic() + soft_kill_wait)
    return matched


# ----------------------------------------------------------------------------------------------


@dataclass
class ShTask:
    """One running ``sh`` step."""

    cookie: str
    control_dir: Path
    process: subprocess.Popen[bytes]
    return_stdout: bool
    started: float
    abandoned: bool = False
    answer: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    signalled: list[int] = field(default_factory=list)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        if not self.done.wait(timeout):
            raise TimeoutError(f"sh in {self.control_dir} still running")
        assert self.answer is not None
        return self.answer


class Executor:
    """Runs the ``sh`` steps of live builds on this machine (an agent with ``agent_env``)."""

    def __init__(self, *, shell: str = "sh", soft_kill_wait: float = SOFT_KILL_WAIT_SECONDS,
                 poll_interval: float = 0.1, agent_env: Mapping[str, str] | None = None) -> None:
        self.shell = shell
        self.soft_kill_wait = soft_kill_wait
        self.poll_interval = poll_interval
        self.agent_env = dict(os.environ if agent_env is None else agent_env)
        self._tasks: list[ShTask] = []
        self._lock = threading.Lock()

    def start(self, args: Mapping[str, Any], on_output: Callable[[list[str]], None] | None = None) -> ShTask:
        """Launches one ``sh`` step: ``args`` are the harness callback's (script, cwd, env,
        returnStdout, ...). ``on_output`` gets the log lines as they come."""
        cwd = Path(str(args["cwd"]))
        cwd.mkdir(parents=True, exist_ok=True)  # FileMonitoringController.setupControlDir: ws.mkdirs()
        control = Path(f"{cwd}@tmp") / ("durable-" + hashlib.md5(str(uuid.uuid4()).encode()).hexdigest()[:8])
        control.mkdir(parents=True)
        script = str(args["script"])
        script_file = control / "script.sh"
        script_file.write_text(script, encoding="utf-8")
        copy = control / "script.sh.copy"
        if script.startswith("#!"):
            script_file.chmod(0o755)
            shutil.copy(script_file, copy)
            cmd = [str(copy)]
        else:
            shutil.copy(script_file, copy)
            cmd = [self.shell, "-xe", str(copy)]
        cookie = cookie_for(str(cwd))
        base = args.get("baseEnv")  # an agent pod's container: its own environment (support/e2e/pods.py)
        env = process_env(self.agent_env if base is None else base, dict(args.get("env") or {}))
        env[COOKIE] = cookie
        log_path = control / "jenkins-log.txt"
        log = open(log_path, "wb")
        out = open(control / "output.txt", "wb") if args.get("returnStdout") else None
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out or log,
                                    stderr=log, start_new_session=True, close_fds=True)
        finally:
            log.close()
            if out is not None:
                out.close()
        task = ShTask(cookie=cookie, control_dir=control, process=proc, return_stdout=bool(args.get("returnStdout")),
                      started=time.monotonic())
        with self._lock:
            self._tasks.append(task)
        threading.Thread(target=self._monitor, args=(task, log_path, on_output), daemon=True,
                         name=f"sh-{proc.pid}").start()
        return task

    def run(self, args: Mapping[str, Any], on_output: Callable[[list[str]], None] | None = None) -> dict[str, Any]:
        """start() and wait for the answer."""
        return self.start(args, on_output).wait()

    def _monitor(self, task: ShTask, log_path: Path, on_output: Callable[[list[str]], None] | None) -> None:
        pending = b""
        try:
            with open(log_path, "rb") as log:
                while True:
                    exited = task.process.poll() is not None
                    chunk = log.read()
                    if chunk:
                        pending += chunk
                        *lines, pending = pending.split(b"\n")
                        if lines and on_output is not None and not task.abandoned:
                            on_output([ln.decode("utf-8", "replace") for ln in lines])
                    if exited:
                        break
                    time.sleep(self.poll_interval)
            if pending and on_output is not None and not task.abandoned:
                on_output([pending.decode("utf-8", "replace")])
            status = task.process.returncode
            # sh reports death by signal N as 128+N ($? in the wrapper); Popen says -N.
            status = 128 - status if status < 0 else status
            answer: dict[str, Any] = {"status": status, "cookie": task.cookie, "controlDir": str(task.control_dir),
                                      "pid": task.process.pid, "durationMs": int((time.monotonic() - task.started) * 1000)}
            if task.return_stdout:
                try:
                    answer["stdout"] = (task.control_dir / "output.txt").read_bytes().decode("utf-8", "replace")
                except OSError:
                    answer["stdout"] = ""
            try:
                (task.control_dir / "jenkins-result.txt").write_text(f"{status}\n")
            except OSError:
                pass
        except Exception as e:  # noqa: BLE001 - reported to the build as the step's failure
            answer = {"error": f"executor: {e}"}
        shutil.rmtree(task.control_dir, ignore_errors=True)  # Controller.cleanup
        task.answer = answer
        task.done.set()

    def stop(self, task: ShTask) -> list[int]:
        """Controller.stop: Launcher.kill({JENKINS_SERVER_COOKIE: cookie}) -> ProcessTree.killAll.
        Blocks while ProcessTree waits (up to soft_kill_wait per matched process)."""
        pids = kill_all({COOKIE: task.cookie}, self.soft_kill_wait)
        task.signalled.extend(pids)
        return pids

    def abandon(self, task: ShTask) -> None:
        """The step gave up on the process (after REMOTE_TIMEOUT): Controller.cleanup deletes the
        control directory; the process, if alive, runs on (as in Jenkins); its output is dropped."""
        task.abandoned = True
        shutil.rmtree(task.control_dir, ignore_errors=True)

    def running(self) -> list[ShTask]:
        with self._lock:
            return [t for t in self._tasks if not t.done.is_set()]

    def close(self) -> None:
        """Test hygiene (not Jenkins): SIGKILL whatever is left of this executor's processes."""
        for task in self.running():
            kill_tree = [pid for pid in _processes() if _environ(pid).get(COOKIE) == task.cookie]
            for pid in kill_tree:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                task.process.kill()
            except ProcessLookupError:
                pass
            task.done.wait(5)
