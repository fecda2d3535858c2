"""Crash consistency of every write the deploy helper makes (issue 5, test 4; issue 14).

What is crashed. The writes are not listed by hand: each scenario below (a first deploy, a switch,
a third deploy that rewrites an existing colour and deletes the old one, a deploy that scales an
existing colour back up, a migration from the hand-made Service, a deploy discarded by its smoke
test, a switch back after failed post-switch analysis, a rollback, a rollback pre-empting a deploy
in its scale-down delay, an abort) is run once in a reference world, and the writes its helper
process sent are read from the API server's request log
(tests/support/kubeworld/requestlog.py), each named by its *kind* — verb, resource, subresource and
role (which Service; a scale up or down; for the Lease: take, renew, mark or unmark pre-emptible,
pre-empt, release, told apart by the body and the process's earlier Lease writes) — and its
occurrence within that kind. A write path someone adds to the helper shows up as a new kind and is
crashed without editing this file.

How. For a crash point (kind, occurrence, before or after) a fresh world is brought to the
scenario's start, load runs through the Service (tests/support/kubeworld/load.py), and the helper
(a real process) is SIGKILLed: *after* — from the request log's write hook, once the write is
committed and before its answer leaves the server (the helper never learns it succeeded); *before*
— from a fault rule that matches that request, kills the process and drops the connection unhandled
(nothing written). Then the recovery runs as a NEW build (another lock identity, another user), so
it must wait out the crashed build's Lease (a 5 s TTL, the helper's minimum, keeps that short); it
is itself SIGKILLed right after its first write past taking the lock (or right before its release
when that is all it has to do), and a third build recovers once more. The recovery of a deploy is
the same deploy; of ``abort`` the same abort; of a ``rollback`` (which is relative: re-run after its
switch it would roll back again) a deploy of the image it rolled back to.

Checked continuously, after every committed change (tests/support/kubeworld/invariants.py): the
Service only selects pods of fully available Deployments; the Lease changes holder only after a
release, an expiry or the announced pre-emption; no Deployment is scaled to zero or deleted while
the Service selects it or within the proxies' propagation lag after it stopped. Load: 0 failed
requests. At the end: exactly one colour live, fully available, with the expected image; nothing
else runs; the last build released the Lease (one a crashed build left behind may remain when the last
build had nothing to write, as an abort with nothing left to remove: it expires by itself).

Bounds. Every (kind, occurrence, before/after) is a possible crash point; crashing them all would
take many minutes (each point waits out two Lease TTLs). So each kind is crashed once, its occurrence
and side drawn from ``random.Random`` seeded with ``SEED``/scenario/kind (deterministic), and a kind
the plain second deploy (the ``switch`` scenario) writes too is crashed there only (``BASE_KINDS``)
— except in the scenarios whose writes are on paths of their own (migration, discard, switch back,
rollback, abort: ``own_path``), which crash every kind but the lock's take/renew/release. A kind
nobody listed (a new write path) is crashed wherever it appears. Each scenario asserts that its
reference run still shows the paths it stands for (``shows``). The points of one scenario run in
parallel worlds (``PARALLEL``); scenarios are separate tests, for pytest-xdist.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import pytest

from enadu_pipelines.helper import exitcodes
from tests.support import deployrun as d
from tests.support.kubeworld.faults import Fault
from tests.support.kubeworld.invariants import (deployment_fully_available, lease_hand_over_only_when_free,
                                               retired_only_after_drain)
from tests.support.kubeworld.world import KubeWorld
from tests.test_deploy_migration import handmade_objects, selected_pods_belong_to_available_deployments

LAG = 0.3
WORLD = {"time_scale": 0.2, "propagation_lag": LAG, "seed": 3}
SEED = 14
PARALLEL = 5
TTL = "5s"  # the helper's minimum --lock-ttl: renewals every 1.7 s, a crashed build's lock free 5 s later
LEASE = f"enadu-deploy-{d.SERVICE}"
# What the switch scenario (a plain second deploy) writes: crashed there. The first deploy, the third one
# and the one scaling an existing colour crash only their other kinds; the scenarios whose every write is
# on another path (migration, discard, switch back, rollbacks, abort) crash all kinds but the lock's own
# take/renew/release. The switch scenario's ``shows`` checks that it still writes each of these.
BASE_KINDS = ("take leases", "renew leases", "release leases", "mark pre-emptible leases", "unmark pre-emptible leases",
              "create deployments", "patch services preview", "patch services live", "patch horizontalpodautoscalers",
              "patch deployments/scale to zero")
LOCK_KINDS = BASE_KINDS[:3]
# A Prometheus nobody listens on: every analysis round is inconclusive, and inconclusive fails (the default).
NO_PROMETHEUS = ("--analysis", "--prometheus-url", "http://127.0.0.1:9", "--analysis-window", "1s",
                 "--analysis-interval", "1s")


# -- builds: every helper run is its own Jenkins build, with its own lock identity and API user ----


def manifest(workdir: str) -> str:
    """The rendered backend manifest, its probes given a 10 s timeout (2 s at this time scale): several
    worlds share the test's process, and a world's loop starved of the CPU for a moment would time out
    the default 1 s (0.2 s here) probes of every pod at once — a flake no helper could avoid."""
    text = d.MANIFEST.read_text()
    probe = "            periodSeconds: 5\n            failureThreshold: 3\n"
    assert probe in text, "the rendered manifest's readinessProbe changed: adapt this test"
    path = os.path.join(workdir, "backend.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text.replace(probe, probe + "            timeoutSeconds: 10\n"))
    return path


class Builds:
    def __init__(self, world: KubeWorld, workdir: str) -> None:
        self.world, self.workdir, self.count = world, workdir, 0
        self.manifest = manifest(workdir)
        self.env: Dict[str, str] = {}  # the last build's
        self.background: List[subprocess.Popen] = []  # builds a scenario leaves running (not crashed)

    def next(self) -> Tuple[str, Dict[str, str]]:
        self.count += 1
        user = f"build-{self.count}"
        kubeconfig = self.world.write_kubeconfig(os.path.join(self.workdir, f"{user}.kubeconfig"),
                                                 self.world.add_token(user))
        self.env = {"KUBECONFIG": kubeconfig, "ENADU_MANIFEST": self.manifest, "ENADU_LOCK_IDENTITY": f"jenkins-enadu-backend-{self.count}",
                    "ENADU_LOCK_TTL": TTL, "ENADU_LOCK_TIMEOUT": "90s", "ENADU_TIMEOUT": "60s",
                    "BUILD_URL": f"https://ci.enadu.dev/job/enadu/job/backend/{self.count}/"}
        return user, self.env

    def run(self, *args: str) -> d.Run:
        _, env = self.next()
        return d.run(self.world, *args, extra_env=env, timeout=150)


# -- write kinds ----------------------------------------------------------------------------------


class Kinds:
    """Names the writes of one helper process, in order: ``(kind, occurrence)``."""

    def __init__(self) -> None:
        self.counts: Dict[str, int] = {}
        self.lease_writes = 0
        self.marked = False

    def name(self, info) -> str:
        what = info.resource + (f"/{info.subresource}" if info.subresource else "")
        if info.resource == "leases":
            return f"{self._lease(info)} leases"
        if info.resource == "services":
            name = info.name or (json.loads(info.body or b"{}").get("metadata") or {}).get("name", "")
            return f"{info.verb} {what} {'preview' if name.endswith('-preview') else 'live'}"
        if info.subresource == "scale":
            replicas = ((json.loads(info.body or b"{}").get("spec") or {}).get("replicas"))
            return f"{info.verb} {what} {'to zero' if replicas == 0 else 'up'}"
        return f"{info.verb} {what}"

    def _lease(self, info) -> str:
        self.lease_writes += 1
        if info.verb == "delete":
            return "release"
        if self.lease_writes == 1:
            body = json.loads(info.body or b"{}")
            preempting = "enadu.io/preempted" in ((body.get("metadata") or {}).get("annotations") or {})
            return "pre-empt" if preempting else "take"
        annotations = (json.loads(info.body or b"{}").get("metadata") or {}).get("annotations") or {}
        marked, self.marked = self.marked, bool(annotations.get("enadu.io/preemptible"))
        if self.marked != marked:
            return "mark pre-emptible" if self.marked else "unmark pre-emptible"
        return "renew"  # a renewal keeps what the Lease says

    def count(self, info) -> Tuple[str, int]:
        kind = self.name(info)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return kind, self.counts[kind]


def _is_write(info) -> bool:
    return info.write and "dryRun" not in info.query


def writes_of(world: KubeWorld, user: str) -> List[Tuple[str, int]]:
    kinds = Kinds()
    return [kinds.count(r) for r in world.requests.all() if r.user == user and _is_write(r)]


# -- killing a helper at a write ------------------------------------------------------------------


class Killer:
    """SIGKILLs the process of ``user`` at a write chosen by ``decide(kind, occurrence, phase)``,
    which returns True to kill: phase "before" (the request is then dropped unhandled) or "after"
    (the write is committed; its answer never leaves)."""

    def __init__(self, world: KubeWorld, user: str, decide: Callable[[str, int, str], bool]) -> None:
        self.world, self.user, self.decide = world, user, decide
        self.kinds = Kinds()
        self.named: Dict[int, Tuple[str, int]] = {}  # request seq -> (kind, occurrence)
        self.proc: Optional[subprocess.Popen] = None
        self.killed_at: Optional[Tuple[str, int, str]] = None
        self._mutex = threading.Lock()
        killer = self

        class KillBefore(Fault):
            def matches(self, info) -> bool:  # called by Faults.pick in the "before" phase only
                return killer._before(info)

        self.fault = world.faults.add(KillBefore(drop=True))
        self.remove_hook = world.requests.on_write(self._after)

    def _mine(self, info) -> bool:
        return info.user == self.user and _is_write(info) and self.proc is not None and self.killed_at is None

    def _kill(self, where: Tuple[str, int, str]) -> None:
        self.killed_at = where
        os.kill(self.proc.pid, signal.SIGKILL)

    def _before(self, info) -> bool:
        with self._mutex:
            if not self._mine(info):
                return False
            named = self.named[info.seq] = self.kinds.count(info)  # in order of arrival, as writes_of
            if self.decide(*named, "before"):
                self._kill((*named, "before"))
                return True
            return False

    def _after(self, info) -> None:
        with self._mutex:
            named = self.named.get(info.seq)
            if self._mine(info) and named is not None and self.decide(*named, "after"):
                self._kill((*named, "after"))

    def run(self, world: KubeWorld, env: Dict[str, str], *args: str) -> d.Run:
        self.proc = d.start(world, *args, extra_env=env)
        try:
            out, err = self.proc.communicate(timeout=150)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.communicate()
            self.remove_hook()
            self.world.faults.rules.remove(self.fault)
        return d.Run(self.proc.returncode, out, err)


# -- scenarios ------------------------------------------------------------------------------------


def _hpa(world: KubeWorld) -> None:
    world.create({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                  "metadata": {"name": d.SERVICE, "namespace": d.NAMESPACE},
                  "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "backend-blue"},
                           "minReplicas": 2, "maxReplicas": 6,
                           "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                               "type": "Utilization", "averageUtilization": 70}}}]}})


def _deployed(*tags: str, hpa: bool = False) -> Callable[[KubeWorld, Builds], None]:
    def setup(world: KubeWorld, builds: Builds) -> None:
        for i, tag in enumerate(tags):
            d.ok(builds.run("deploy", "--image", d.image(tag)))
            if i == 0 and hpa:
                _hpa(world)

    return setup


def _in_delay(world: KubeWorld, builds: Builds) -> None:
    """v1 live, and a deploy of v2 (another build, left running) waiting out its scale-down delay with
    its Lease marked pre-emptible: the rollback (the crashed command) takes the Lease over."""
    d.ok(builds.run("deploy", "--image", d.image("v1")))
    _, env = builds.next()
    builds.background.append(d.start(world, "deploy", "--image", d.image("v2"), "--scale-down-delay", "8s",
                                     extra_env=env))

    def marked(w: KubeWorld) -> bool:
        lease = w.get("leases", LEASE, d.NAMESPACE) or {}
        return (lease.get("metadata", {}).get("annotations") or {}).get("enadu.io/preemptible") == "scale-down-delay"

    world.wait_for(marked, timeout=90, what="the deploy of v2 in its scale-down delay")


def _handmade(world: KubeWorld, builds: Builds) -> None:
    objects = handmade_objects()
    objects[0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["timeoutSeconds"] = 10  # see manifest()
    world.create(*objects)
    world.wait_for(lambda w: deployment_fully_available(w.get("deployments", "backend", d.NAMESPACE)) is None,
                   timeout=30, what="the hand-made deployment available")


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Callable[[KubeWorld, Builds], None]
    command: Tuple[str, ...]
    # the acceptable end states: live colour, its image's tag, and every other Deployment's replicas (None: gone)
    ends: Tuple[Tuple[str, str, Dict[str, Optional[int]]], ...]
    recovery: Tuple[str, ...] = ()  # default: the command again
    codes: Tuple[int, ...] = (0,)  # acceptable exit codes of the last recovery
    hpa: bool = False
    own_path: bool = False  # every write is on a path of its own: crash all kinds but LOCK_KINDS
    shows: Tuple[str, ...] = ()  # kinds its reference run must show (the paths issue 14 names)


SCENARIOS = [
    Scenario("first", lambda w, b: None, ("deploy", "--image", d.image("v1")), (("blue", "v1", {"backend-green": None}),)),
    Scenario("switch", _deployed("v1", hpa=True), ("deploy", "--image", d.image("v2"), "--scale-down-delay", "3s"),
             (("green", "v2", {"backend-blue": 0}),), hpa=True, shows=BASE_KINDS),
    Scenario("third-delete-old", _deployed("v1", "v2", hpa=True), ("deploy", "--image", d.image("v3"), "--delete-old"),
             (("blue", "v3", {"backend-green": None}),), hpa=True,
             shows=("update deployments", "delete deployments")),
    Scenario("scale-existing", _deployed("v1", "v2"), ("deploy", "--image", d.image("v1")),
             (("blue", "v1", {"backend-green": 0}),), shows=("patch deployments/scale up",)),
    Scenario("migration", _handmade, ("deploy", "--image", d.image("v2")),
             (("blue", "v2", {"backend": 0, "backend-green": None}),), own_path=True,
             shows=("patch pods", "patch services live", "patch deployments/scale to zero")),
    Scenario("discard", _deployed("v1"), ("deploy", "--image", d.image("v2-errors")),
             (("blue", "v1", {"backend-green": 0}),), codes=(1,), own_path=True,
             shows=("patch deployments/scale to zero",)),
    # A re-run that finds the new colour live, its analysis never concluded (the crash came between the
    # switch and the verdict: the switch's history entry says the analysis is pending), analyses it then
    # (issue 12, M6): here it fails again, so every end is the previous colour (the crash point drawn
    # for the autoscaler's retarget, just after the switch, is such a crash).
    Scenario("switch-back", _deployed("v1", hpa=True), ("deploy", "--image", d.image("v2"), *NO_PROMETHEUS),
             (("blue", "v1", {"backend-green": 0}),), codes=(5,), hpa=True,
             own_path=True, shows=("patch services live", "patch horizontalpodautoscalers")),
    Scenario("rollback", _deployed("v1", "v2", hpa=True), ("rollback", "--reason", "crash test"),
             (("blue", "v1", {"backend-green": 0}),), recovery=("deploy", "--image", d.image("v1")), hpa=True,
             own_path=True, shows=("patch deployments/scale up", "patch services live", "patch horizontalpodautoscalers")),
    Scenario("rollback-pre-empting", _in_delay, ("rollback", "--reason", "crash test"),
             (("blue", "v1", {"backend-green": 0}),), recovery=("deploy", "--image", d.image("v1")), own_path=True,
             shows=("pre-empt leases", "patch services live")),
    Scenario("abort", _deployed("v1", "v2"), ("abort",), (("green", "v2", {"backend-blue": None}),), own_path=True,
             shows=("delete deployments",)),
]
BY_NAME = {s.name: s for s in SCENARIOS}


# -- one world --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    victim: Optional[Tuple[str, int, str]] = None  # where the first build was killed
    recovery: Optional[Tuple[str, int, str]] = None  # where the second build was killed
    final: Optional[d.Run] = None
    end: Tuple = ()
    others: Dict = field(default_factory=dict)
    load: Dict = field(default_factory=dict)
    violations: str = ""
    background: List[Tuple[int, str]] = field(default_factory=list)  # exit code and output of builds left running


class Crash:
    """A world brought to a scenario's start, with its checks and load."""

    def __init__(self, scenario: Scenario, workdir: str) -> None:
        os.makedirs(workdir, exist_ok=True)
        self.scenario, self.workdir = scenario, workdir
        self.world = KubeWorld(workdir=workdir, **WORLD).start()
        self.builds = Builds(self.world, workdir)
        self.load = None
        world = self.world
        world.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": d.NAMESPACE}})
        scenario.setup(world, self.builds)
        world.invariants.add("the Service only selects pods of fully available Deployments",
                             selected_pods_belong_to_available_deployments)
        world.invariants.add("one holder of the deploy lock at a time", lease_hand_over_only_when_free(LEASE, d.NAMESPACE))
        world.invariants.add("no colour retired before it drained", retired_only_after_drain(d.SERVICE, d.NAMESPACE, lag=LAG))
        self.start_load()

    def start_load(self) -> None:
        """Load through the Service from when it serves (a first deploy has none before)."""
        if self.load is not None or self.world.get("services", d.SERVICE, d.NAMESPACE) is None:
            return
        d.wait_serving(self.world)
        # A 10 s client timeout, not the generator's 2 s: this test runs three helper processes and a world
        # on two cores beside another xdist worker, and a request the starved event loop answers late is
        # not a lost one (a request to a retired pod is refused at once, so a real loss stays visible).
        self.load = self.world.load(self.world.service_url(d.SERVICE, d.NAMESPACE), concurrency=2, rate=30,
                                    max_seconds=600, timeout=10.0).start()
        self.load.wait_for_requests(5)

    def killed_run(self, decide: Callable[[str, int, str], bool], *args: str) -> Tuple[str, d.Run, Killer]:
        user, env = self.builds.next()
        killer = Killer(self.world, user, decide)
        return user, killer.run(self.world, env, *args), killer

    def stop(self) -> None:
        for proc in self.builds.background:
            if proc.returncode is None:  # not waited for: the test failed before
                proc.kill()
                proc.communicate()
        if self.load is not None:
            self.load.stop()
        self.world.stop()


def reference(scenario: Scenario, workdir: str) -> List[Tuple[str, int]]:
    crash = Crash(scenario, workdir)
    try:
        user, run, killer = crash.killed_run(lambda kind, n, phase: False, *scenario.command)
        assert run.returncode in scenario.codes, run.stdout + run.stderr
        crash.world.invariants.assert_ok()
        return writes_of(crash.world, user)
    finally:
        crash.stop()


def recovery_kill(kind: str, n: int, phase: str, _seen: Dict[str, bool]) -> bool:
    """The recovery's crash: right after its first write past taking the lock, or right before its
    release when releasing is all that is left."""
    if kind in ("take leases", "pre-empt leases") and not _seen:
        return False
    _seen["past"] = True
    return phase == "before" if kind == "release leases" else phase == "after"


def crash_point(scenario: Scenario, point: Tuple[str, int, str], workdir: str) -> Outcome:
    out = Outcome()
    crash = Crash(scenario, workdir)
    try:
        _, victim, first = crash.killed_run(lambda k, n, phase: (k, n, phase) == point, *scenario.command)
        out.victim = first.killed_at
        assert victim.returncode == -signal.SIGKILL, f"{point}: the helper finished first: {victim.stdout}{victim.stderr}"
        crash.start_load()
        again = scenario.recovery or scenario.command
        seen: Dict[str, bool] = {}
        _, recovery, killer = crash.killed_run(lambda k, n, phase: recovery_kill(k, n, phase, seen), *again)
        out.recovery = killer.killed_at
        if killer.named:  # a recovery with nothing to write (an abort already done) cannot be crashed at a write
            assert recovery.returncode == -signal.SIGKILL, f"{point}: the recovery finished: {recovery.stdout}{recovery.stderr}"
        crash.start_load()
        out.final = crash.builds.run(*again)
        for proc in crash.builds.background:
            stdout, stderr = proc.communicate(timeout=120)
            out.background.append((proc.returncode, stdout + stderr))
        crash.start_load()
        world = crash.world
        colour = d.selected_colour(world)
        dep = d.deployment(world, colour) if colour else None
        others = {n: (None if world.get("deployments", n, d.NAMESPACE) is None else
                      int(world.get("deployments", n, d.NAMESPACE)["spec"].get("replicas") or 0))
                  for n in ("backend-blue", "backend-green", "backend") if n != f"backend-{colour}"}
        hpa = world.get("horizontalpodautoscalers", d.SERVICE, d.NAMESPACE)
        out.end = (colour, d.running_image(world, colour) if colour else None,
                   "no such deployment" if dep is None else deployment_fully_available(dep),
                   ((world.get("leases", LEASE, d.NAMESPACE) or {}).get("spec") or {}).get("holderIdentity")
                   != crash.builds.env["ENADU_LOCK_IDENTITY"],
                   hpa["spec"]["scaleTargetRef"]["name"] if hpa else None)
        out.others = others
        if crash.load is not None:
            crash.load.wait_for_requests(len(crash.load.results) + 10, timeout=30)
            out.load = crash.load.summary()
        try:
            world.invariants.assert_ok()
        except AssertionError as e:
            out.violations = str(e)
        return out
    finally:
        crash.stop()


def crash_points(scenario: Scenario, writes: List[Tuple[str, int]]) -> List[Tuple[str, int, str]]:
    """One point per kind (BASE_KINDS says which), its occurrence and side drawn with a fixed seed."""
    by_kind: Dict[str, int] = {}
    for kind, n in writes:
        by_kind[kind] = max(by_kind.get(kind, 0), n)
    points = []
    for kind in sorted(by_kind):
        if scenario.name != "switch" and kind in (LOCK_KINDS if scenario.own_path else BASE_KINDS):
            continue
        rng = random.Random(f"{SEED}/{scenario.name}/{kind}")
        points.append((kind, rng.randint(1, by_kind[kind]), rng.choice(("before", "after"))))
    return points


def judge(scenario: Scenario, point: Tuple[str, int, str], out: Outcome) -> List[str]:
    """What is wrong with the end of one crash point (an empty list: nothing)."""
    colour, image, available, released, hpa = out.end
    where = f"crash {point} (recovery killed at {out.recovery})"
    problems = []
    if out.final.returncode not in scenario.codes:
        problems.append(f"{where}: the last recovery exited {out.final.returncode}: {out.final.stdout}{out.final.stderr}")
    ends = {(c, d.image(t)): others for c, t, others in scenario.ends}
    if (colour, image) not in ends:
        problems.append(f"{where}: live {colour} {image}, want one of {sorted(ends)}")
    elif out.others != {n: ends[(colour, image)].get(n) for n in out.others}:  # unnamed: must not exist
        problems.append(f"{where}: besides {colour}: {out.others}, want {ends[(colour, image)]}")
    if available is not None:
        problems.append(f"{where}: the live colour is not fully available: {available}")
    if not released:
        problems.append(f"{where}: the last build did not release the Lease")
    if scenario.hpa and hpa != f"backend-{colour}":
        problems.append(f"{where}: the autoscaler scales {hpa}, the live colour is {colour}")
    for code, output in out.background:  # the deploy a rollback pre-empted: rolled back, or done before it
        if code not in (0, exitcodes.ROLLED_BACK):
            problems.append(f"{where}: the deploy left running exited {code}: {output}")
    if out.load.get("failed"):
        problems.append(f"{where}: load {out.load}")
    if out.violations:
        problems.append(f"{where}: {out.violations}")
    return problems


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_every_write_survives_a_crash_and_a_crashed_recovery(name, tmp_path) -> None:
    scenario = BY_NAME[name]
    writes = reference(scenario, str(tmp_path / "reference"))
    missing = set(scenario.shows) - {kind for kind, _ in writes}
    assert not missing, f"the {name} scenario no longer reaches {sorted(missing)}: it wrote {writes}"
    points = crash_points(scenario, writes)
    assert points, writes
    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(lambda ip: crash_point(scenario, ip[1], str(tmp_path / f"crash-{ip[0]}")),
                                 enumerate(points)))
    problems = []
    for point, out in zip(points, outcomes):
        problems += judge(scenario, point, out)
    assert not problems, "\n".join(problems)


def test_the_lock_and_drain_checks_see_what_they_must() -> None:
    """The two stateful checks the crash test relies on do fire: a Lease taken while its holder
    still holds it, a colour scaled to zero while selected, and one retired within the lag."""
    import kubernetes

    def deployment(name: str) -> dict:
        labels = {"app": "web", "color": name.split("-")[1]}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "ns"},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                    "metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "example/web:1"}]}}}}

    def lease(holder: str, rv: Optional[str] = None, **annotations: str) -> dict:
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "lock", "annotations": annotations, **({"resourceVersion": rv} if rv else {})},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 5}}

    with KubeWorld(seed=1, time_scale=0.1) as world:
        world.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}})
        world.create(deployment("web-blue"), deployment("web-green"),
                     {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "ns"},
                      "spec": {"selector": {"app": "web", "color": "blue"}, "ports": [{"port": 80}]}})
        world.invariants.add("lock", lease_hand_over_only_when_free("lock", "ns"))
        world.invariants.add("drain", retired_only_after_drain("web", "ns", lag=0.5))
        api = kubernetes.config.new_client_from_config(config_file=world.kubeconfig)
        leases, apps, core = kubernetes.client.CoordinationV1Api(api), kubernetes.client.AppsV1Api(api), \
            kubernetes.client.CoreV1Api(api)

        rv = leases.create_namespaced_lease("ns", lease("a")).metadata.resource_version
        rv = leases.replace_namespaced_lease("lock", "ns", lease("a", rv)).metadata.resource_version  # a renewal
        leases.replace_namespaced_lease("lock", "ns", lease("b", rv))  # taken from a live holder: caught
        leases.delete_namespaced_lease("lock", "ns")
        rv = leases.create_namespaced_lease("ns", lease("c")).metadata.resource_version  # after a release: fine
        rv = leases.replace_namespaced_lease("lock", "ns", lease(
            "c", rv, **{"enadu.io/preemptible": "scale-down-delay"})).metadata.resource_version
        leases.replace_namespaced_lease("lock", "ns", lease("d", rv, **{"enadu.io/preempted": "c"}))  # announced

        core.patch_namespaced_service("web", "ns", {"spec": {"selector": {"app": "web", "color": "green"}}})
        apps.patch_namespaced_deployment_scale("web-blue", "ns", {"spec": {"replicas": 0}})  # within the lag: caught
        apps.patch_namespaced_deployment_scale("web-green", "ns", {"spec": {"replicas": 0}})  # selected: caught
        apps.patch_namespaced_deployment_scale("web-blue", "ns", {"spec": {"replicas": 1}})
        core.patch_namespaced_service("web", "ns", {"spec": {"selector": {"app": "web", "color": "blue"}}})
        time.sleep(0.6)
        apps.delete_namespaced_deployment("web-green", "ns")  # never selected again: fine
        found = [(v.check, v.message) for v in world.invariants.violations]
    assert [check for check, _ in found] == ["lock", "drain", "drain"], found
    assert "went from a to b" in found[0][1], found
    assert "retired 0." in found[1][1] and "web-blue" in found[1][1], found
    assert "web-green retired while service web selects it" in found[2][1], found


def test_worlds_started_at_once_share_one_certificate_authority(monkeypatch) -> None:
    """The crash points start worlds in parallel threads: each must serve the certificate the CA in
    its kubeconfig signed. Before the lock in tls.py, two threads making the first world's material
    at once each made a CA (19 rounds of 20 differed), and a helper got CERTIFICATE_VERIFY_FAILED."""
    import functools

    from tests.support.kubeworld import tls

    for _ in range(5):
        monkeypatch.setattr(tls, "_make", functools.lru_cache(maxsize=None)(tls._make.__wrapped__))
        barrier, made = threading.Barrier(6), []

        def make() -> None:
            barrier.wait()
            made.append(tls._material())

        threads = [threading.Thread(target=make) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(made) == 6 and len(set(made)) == 1
