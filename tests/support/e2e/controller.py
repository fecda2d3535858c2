"""The controller: jobs, queue, builds and their history, strung together the way Jenkins does.

Parts and the Jenkins classes they follow (see the module docstrings for details):

* jobs come from the ``config.xml`` that ``enadu-pipelines bootstrap`` wrote to the fake Jenkins
  (:mod:`.jobs`, ``WorkflowJob``); builds ``bootstrap`` queued there (``buildWithParameters``) are
  taken from its queue;
* the queue folds a request into an equal waiting item (``Queue.schedule2``) and, for a job with
  ``DisableConcurrentBuildsJobProperty``, starts the next build only when the running one is done;
* a build (``WorkflowRun``) reads its Jenkinsfile through the definition's lightweight checkout
  (``CpsScmFlowDefinition.create`` + ``GitSCMFileSystem``, :mod:`.scm`), retrieves the library the
  Jenkinsfile asks for (``SCMSourceRetriever``, :mod:`.library`) and runs in the pipeline harness's
  live mode (real workspace, ``sh`` as a durable task, real time; tests/support/pipeline/live.py),
  whose ``checkout`` calls come back here for real git with build data, and whose agent pods
  (``agent { kubernetes { } }``) are made, run and deleted by the plugin's cloud (:mod:`.pods`) in the
  Kubernetes test world;
* ``getSCMs``, ``poll`` and the GitHub push subscriber follow ``WorkflowJob.getSCMs/poll`` and
  github-plugin's ``DefaultPushGHEventSubscriber`` + ``GitHubRepositoryNameContributor.FromSCM``
  (:mod:`.triggers`).
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from support.pipeline.live import LiveBuild

from . import jobs as jobmod
from . import library as libmod
from . import scm as scmmod
from .gitserver import GitServer, PushEvent


@dataclass
class Checkout:
    """``WorkflowRun.SCMCheckout``: the SCM and whether it has a polling baseline (poll || changelog)."""

    scm: scmmod.GitScm
    polling_baseline: bool
    sha: str = ""


@dataclass
class Build(scmmod.RunView):
    job: str
    number: int
    params: Dict[str, object]
    causes: List[Dict[str, str]]
    result: Optional[str] = None
    build_data: List[scmmod.BuildData] = field(default_factory=list)
    checkouts: List[Checkout] = field(default_factory=list)
    log: List[str] = field(default_factory=list)
    answer: Optional[Dict[str, Any]] = None
    error: Optional[str] = None
    library: Optional[libmod.Retrieved] = None
    live: Optional[LiveBuild] = None
    started: float = 0.0
    finished: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def duration(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def stages(self) -> Dict[str, str]:
        return {s["name"]: s["status"] for s in (self.answer or {}).get("stages", [])}

    def text(self) -> str:
        return "\n".join(self.log)


@dataclass
class JobState:
    job: jobmod.Job
    builds: List[Build] = field(default_factory=list)
    queue: List[Dict[str, Any]] = field(default_factory=list)  # {"params", "causes"}
    running: Optional[Build] = None
    polling_log: List[str] = field(default_factory=list)

    def last(self, pred: Callable[[Build], bool]) -> Optional[Build]:
        for b in reversed(self.builds):
            if pred(b):
                return b
        return None


# Run.getPreviousSuccessfulBuild / Permalink.LAST_SUCCESSFUL_BUILD: "successful" is SUCCESS or UNSTABLE
# (a result no worse than UNSTABLE); GitSCM's GIT_PREVIOUS_SUCCESSFUL_COMMIT starts from that build.
SUCCESSFUL = ("SUCCESS", "UNSTABLE")


class Controller:
    def __init__(self, root: Path, git: GitServer, *, casc_text: str, credentials: Dict[str, Any],
                 agent_env: Dict[str, str], jenkins_url: str = "https://jenkins.enadu.dev/",
                 executor: Any = None, remote_timeout: Optional[float] = None, fake_jenkins: Any = None,
                 cloud: Any = None) -> None:
        self.root = root
        self.git = git
        self.library = libmod.load_casc(casc_text)
        self.credentials = credentials
        self.agent_env = agent_env
        self.jenkins_url = jenkins_url
        self.executor = executor
        self.remote_timeout = remote_timeout
        self.fake = fake_jenkins
        self.cloud = cloud  # the Kubernetes plugin's cloud (support/e2e/pods.py), for agent { kubernetes { } }
        self.jobs: Dict[str, JobState] = {}
        self._lock = threading.RLock()
        self._threads: List[threading.Thread] = []
        self.events: List[str] = []

    # -- jobs (from the fake Jenkins bootstrap wrote to) ---------------------------------------

    def load_jobs(self, folder: str) -> List[str]:
        """(Re)load every job of ``folder`` from the fake Jenkins' config.xml, and take its queue."""
        node = self.fake.item(folder)
        names = []
        with self._lock:
            for name in node.children:
                full = f"{folder}/{name}"
                job = jobmod.load(full, self.fake.config(full))
                state = self.jobs.get(full)
                if state is None:
                    self.jobs[full] = JobState(job)
                else:
                    state.job = job
                names.append(full)
                for values in self.fake.take_queued(full):
                    self.schedule(full, job.parameter_values(values), [{"_class": "hudson.model.Cause$UserIdCause",
                                                                       "userId": "admin"}])
        return names

    # -- the queue --------------------------------------------------------------------------

    def schedule(self, full: str, params: Optional[Dict[str, object]], causes: List[Dict[str, str]]) -> bool:
        """``ParameterizedJobMixIn.scheduleBuild2`` → ``Queue.schedule2``: an equal waiting item absorbs it."""
        with self._lock:
            state = self.jobs[full]
            values = params if params is not None else state.job.default_parameters()
            for item in state.queue:
                if item["params"] == values:
                    item["causes"].extend(causes)
                    return False
            state.queue.append({"params": values, "causes": list(causes)})
            self.events.append(f"queued {full} {values}")
        self._dispatch()
        return True

    def _dispatch(self) -> None:
        with self._lock:
            for full, state in self.jobs.items():
                if not state.queue:
                    continue
                if state.running is not None and not state.job.concurrent:
                    continue  # DisableConcurrentBuildsJobProperty: the next waits in the queue
                item = state.queue.pop(0)
                number = (state.builds[-1].number if state.builds else 0) + 1
                build = Build(full, number, item["params"], item["causes"], started=time.monotonic())
                state.builds.append(build)
                state.running = build
                t = threading.Thread(target=self._run, args=(state, build), name=f"build {full}#{number}", daemon=True)
                self._threads.append(t)
                t.start()

    # -- one build ---------------------------------------------------------------------------

    def _previous(self, build: scmmod.RunView) -> Optional[Build]:
        state = self.jobs[build.job]  # type: ignore[attr-defined]
        earlier = [b for b in state.builds if b.number < build.number]
        return earlier[-1] if earlier else None

    def _run(self, state: JobState, build: Build) -> None:
        try:
            self._execute(state, build)
        except scmmod.ScmFailure as e:  # fails before the pipeline starts: the controller's own message
            build.log.append(str(e))
            build.error = str(e)
            build.result = "FAILURE"
        except Exception as e:  # a bug of the world, not of the pipeline: keep it visible
            build.log.append(f"e2e world error: {type(e).__name__}: {e}")
            build.error = f"{type(e).__name__}: {e}"
            build.result = "FAILURE"
            raise
        finally:
            build.finished = time.monotonic()
            if build.result is None:
                build.result = "FAILURE"
            with self._lock:
                state.running = None
                if self.fake is not None and self.fake.item(build.job) is not None:
                    self.fake.add_build(build.job, build.number, build.result)
            build.done.set()
            self._dispatch()

    def _execute(self, state: JobState, build: Build) -> None:
        job = state.job
        workdir = self.root / "jenkins" / "jobs" / job.full_name.replace("/", "_") / "builds" / str(build.number)
        workdir.mkdir(parents=True, exist_ok=True)
        # CpsScmFlowDefinition.create: lightweight read, no fallback on failure.
        if not job.lightweight:
            raise scmmod.ScmFailure(f"{job.full_name}: heavyweight definition checkout is not modelled")
        cache = self.root / "jenkins" / "caches" / ("git-" + re.sub(r"[^A-Za-z0-9]", "_", job.definition_scm.url))
        script = scmmod.lightweight_read(self.git, job.definition_scm, job.script_path, cache)
        build.log.append(f"Obtained {job.script_path} from {job.definition_scm.key}")
        # The library the Jenkinsfile asks for (LibraryDecorator → LibraryAdder → SCMSourceRetriever).
        version = libmod.requested(script, self.library)
        build.library = libmod.retrieve(self.git, self.library, version, workdir / "libs" / self.library.name)
        build.log.append(f"Loading library {self.library.name}@{version}")
        # The library checkout is recorded (SCMBasedRetriever.doRetrieve), with a polling baseline
        # only when includeInChangesets (changelog) is on.
        build.checkouts.append(Checkout(scmmod.GitScm(self.library.remote, version), self.library.include_in_changesets,
                                        build.library.sha))
        previous_completed = state.last(lambda b: b.number < build.number and b.result is not None)
        workspace = self.root / "agent" / "workspace" / job.full_name
        scenario = {
            "job": {"name": job.full_name, "buildNumber": build.number, "jenkinsUrl": self.jenkins_url,
                    "previousResult": previous_completed.result if previous_completed else None, "fromScm": True,
                    "scm": {"url": job.definition_scm.url, "branch": job.definition_scm.branch}},
            "credentials": self.credentials,
            "params": build.params,
            "causes": build.causes,
            "agent": {"name": "built-in"},
        }
        callbacks: Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]] = {"checkout": lambda a: self._checkout(build, a)}
        if self.cloud is not None:
            callbacks.update(podStart=self.cloud.start, podStop=self.cloud.stop, podExec=self.cloud.exec_args)
        live = LiveBuild(script, build.library.root, scenario, workspace, callbacks,
                         executor=self.executor, library_name=self.library.name, agent_env=self.agent_env,
                         remote_timeout=self.remote_timeout, on_log=build.log.append)
        build.live = live
        live.start()
        run = live.wait(3600)
        build.answer = run.raw if hasattr(run, "raw") else run
        build.result = build.answer.get("result") or "FAILURE"

    def _checkout(self, build: Build, args: Dict[str, Any]) -> Dict[str, Any]:
        """The ``checkout`` step: GitSCM on the agent, build data on the build."""
        git = scmmod.parse_scm(args["scm"])
        state = self.jobs[build.job]
        prev_built = state.last(lambda b: b.number < build.number and b.result not in (None, "NOT_BUILT"))
        prev_ok = state.last(lambda b: b.number < build.number and b.result in SUCCESSFUL)
        try:
            result = scmmod.checkout(self.git, git, Path(args["cwd"]), build, self._previous, prev_built, prev_ok)
        except scmmod.ScmFailure as e:
            return {"error": str(e)}
        build.build_data.append(result.build_data)
        poll = bool(args.get("poll", True)) or bool(args.get("changelog", True))
        build.checkouts.append(Checkout(git, poll, result.sha))
        return {"returns": result.env, "changeSet": result.changeset}

    # -- triggers ------------------------------------------------------------------------------

    def get_scms(self, full: str) -> List[scmmod.GitScm]:
        """``WorkflowJob.getSCMs``: the last successful (else completed) build's checkouts, plus the definition's."""
        state = self.jobs[full]
        b = state.last(lambda r: r.result in SUCCESSFUL) or state.last(lambda r: r.result is not None)
        if b is None:
            return [state.job.definition_scm]
        scms: Dict[str, scmmod.GitScm] = {}
        for co in b.checkouts:
            scms[co.scm.key] = co.scm
        scms[state.job.definition_scm.key] = state.job.definition_scm
        return list(scms.values())

    def poll(self, full: str) -> bool:
        """``WorkflowJob.poll``."""
        state = self.jobs[full]
        log = state.polling_log
        if not state.builds:
            log.append("no previous build to compare to")
            return not state.queue  # Queue.contains(job) ? NO_CHANGES : BUILD_NOW
        b = state.last(lambda r: r.result in SUCCESSFUL) or state.builds[-1]
        for co in b.checkouts:
            if not co.polling_baseline:
                log.append(f"no polling baseline for {co.scm.key}")
                continue
            data = scmmod._build_data_for(co.scm.url, state.builds[-1], self._previous)
            if scmmod.poll_changes(self.git, co.scm, data, log):
                return True
        return False

    def poked(self, event: PushEvent) -> Dict[str, bool]:
        """The jobs a push webhook pokes (DefaultPushGHEventSubscriber: a GitHubPushTrigger and a
        repository among ``getSCMs()``), each with what its polling answers (True: build)."""
        pushed = repo_name(event.html_url)
        out: Dict[str, bool] = {}
        with self._lock:
            for full, state in self.jobs.items():
                if not state.job.github_push:
                    continue
                names = {repo_name(s.url) for s in self.get_scms(full)}
                if pushed in names:
                    out[full] = self.poll(full)
        return out

    def push(self, event: PushEvent) -> List[str]:
        """A GitHub push webhook: the jobs it pokes that then build (GitHubPushTrigger.onPost → poll)."""
        started = []
        with self._lock:
            for full, changed in self.poked(event).items():
                self.events.append(f"poked {full} for {event.ref}")
                if changed:
                    started.append(full)
                    self.schedule(full, None, [{"_class": "com.cloudbees.jenkins.GitHubPushCause",
                                                "shortDescription": f"Started by GitHub push by {event.pusher}"}])
        return started

    # -- waiting and aborting ----------------------------------------------------------------------

    def wait_idle(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                busy = [f for f, s in self.jobs.items() if s.running is not None or s.queue]
            if not busy:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"builds still running or queued after {timeout:.0f} s: {busy}")
            time.sleep(0.1)

    def build(self, full: str, number: int) -> Build:
        return next(b for b in self.jobs[full].builds if b.number == number)

    def last_build(self, full: str) -> Optional[Build]:
        builds = self.jobs[full].builds
        return builds[-1] if builds else None

    def abort(self, full: str) -> Build:
        """The build's abort button (``WorkflowRun.doStop``)."""
        build = self.jobs[full].running
        assert build is not None and build.live is not None, f"{full} is not running"
        build.live.abort()
        return build

    def cleanup(self) -> None:
        for state in self.jobs.values():
            if state.running is not None and state.running.live is not None:
                state.running.live.abort()
        for t in self._threads:
            t.join(timeout=60)
        shutil.rmtree(self.root / "agent", ignore_errors=True)


_REPO_NAME = re.compile(r"^https?://([^/]+)/([^/]+)/([^/]+?)(?:\.git)?/?$")


def repo_name(url: str) -> Optional[tuple]:
    """``GitHubRepositoryName.create``: (host, owner, name), compared exactly (case-sensitive)."""
    m = _REPO_NAME.match(url)
    return (m.group(1), m.group(2), m.group(3)) if m else None
