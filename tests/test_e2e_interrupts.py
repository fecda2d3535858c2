"""Aborts, timeouts and a library release, end to end on loopback (issue 12, scenarios 6, 7 and 9).

An abort is what the UI's button does (CpsFlowExecution.interrupt → DurableTaskStep.stop: SIGTERM to
the sh step's processes through ProcessTree, the step failed 20 s later whether or not they exited,
the credentials unbound, then `post`); a timeout is `options { timeout }` really expiring
(TimeoutStepExecution). The live harness and tests/support/e2e/executor.py do both with real
processes and real time; the helper inside is the real bundle.
"""

from __future__ import annotations

import time

import jenkins
import pytest

from support.e2e.world import FOLDER, JENKINS_TOKEN, NAMESPACE, E2EWorld

BACKEND = f"{FOLDER}/backend"
DOCKERFILE = "FROM scratch\nCOPY build/libs/app.jar /app.jar\n"


def start_world(tmp_path, **kwargs) -> E2EWorld:
    w = E2EWorld(tmp_path, **kwargs).start()
    w.bootstrap()
    w.controller.wait_idle(300)
    # the first real build of the backend deploys blue
    jenkins.Jenkins(w.fake.url, username="admin", password=JENKINS_TOKEN).build_job(BACKEND, {"ENADU_REGISTER_ONLY": "false"})
    w.controller.load_jobs(FOLDER)
    w.controller.wait_idle(300)
    assert w.controller.build(BACKEND, 2).result == "SUCCESS", w.controller.build(BACKEND, 2).text()
    assert w.live_colour("backend") == "blue"
    return w


@pytest.fixture
def world(request, tmp_path):
    w = start_world(tmp_path, **dict(getattr(request, "param", None) or {}))
    try:
        yield w
    finally:
        w.stop()


def wait_for_log(build, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in build.log):
        assert not build.done.is_set(), f"the build ended before {text!r}:\n" + build.text()
        assert time.monotonic() < deadline, f"no {text!r} in the log within {timeout} s:\n" + build.text()
        time.sleep(0.1)


def wait_for_idle_colour(world: E2EWorld, build, colour: str, timeout: float) -> None:
    """Until the deploy has created the idle colour's Deployment with the new image (its wait has begun)."""
    deadline = time.monotonic() + timeout
    while True:
        dep = world.deployment("backend", colour)
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"] if dep else ""
        if image.endswith(f"-{build.number}"):
            return
        assert not build.done.is_set(), "the build ended before the deploy started its wait:\n" + build.text()
        assert time.monotonic() < deadline, f"no {colour} Deployment of build {build.number} within {timeout} s"
        time.sleep(0.1)


def field(e: dict, name: str) -> str:
    return next(f["value"] for f in e["fields"] if f["name"] == name)


def embed(world, number: int) -> dict:
    [e] = [e for e in world.messages(BACKEND) if e["title"] == f"{BACKEND} #{number}"]
    return e


def assert_consistent_after_interrupt(world: E2EWorld, build, live: tuple) -> None:
    assert build.result == "ABORTED", build.text()
    assert build.stages["Deploy"] == "ABORTED"
    # The live colour still serves the image it served, fully available.
    assert (world.live_colour("backend"), world.live_image("backend")) == live
    dep = world.deployment("backend", live[0])
    assert dep["status"].get("availableReplicas") == dep["spec"]["replicas"] > 0
    # The lock is free: the helper released its Lease on the way out.
    assert world.kube.get("Lease", "enadu-deploy-backend", NAMESPACE) is None
    # Discord says the deploy was interrupted, and what is live.
    deploy = field(embed(world, build.number), "Deploy")
    assert "interrupted" in deploy and f"live: **{live[0]}**" in deploy, deploy
    assert field(embed(world, build.number), "Result") == "ABORTED"
    # The kubeconfig file was unbound, the registry login removed: nothing secret left behind.
    assert world.leaks() == []


def push_backend(world: E2EWorld, dockerfile: str, message: str) -> None:
    world.enadu.commit({"backend/Dockerfile": dockerfile, "backend/src/main/App.java": f"class BackendApp {{ String m = \"{message}\"; }}\n"},
                       message)
    assert world.controller.push(world.enadu.push("be-dev")) == [BACKEND, f"{FOLDER}/batch"]


# ------------------------------------------------------------------------------------------------
# 6. abort during the deploy's wait


def test_6_abort_during_the_deploy_wait(world):
    live = (world.live_colour("backend"), world.live_image("backend"))
    push_backend(world, DOCKERFILE + 'LABEL io.enadu.test.kind="slow120"\n', "Backend: slow start")
    build = None
    deadline = time.monotonic() + 120
    while build is None or build.number != 3:
        build = world.controller.jobs[BACKEND].running
        assert time.monotonic() < deadline
        time.sleep(0.1)
    wait_for_log(build, "[Pipeline] sh (deploy backend", 120)
    wait_for_idle_colour(world, build, "green", 60)  # inside the availability wait: the new colour starts slowly
    aborted_at = time.monotonic()
    world.controller.abort(BACKEND)
    assert build.done.wait(25), "the build did not end within 25 s of the abort:\n" + build.text()
    assert time.monotonic() - aborted_at < 25
    world.controller.wait_idle(120)
    assert_consistent_after_interrupt(world, build, live)
    # The next push deploys normally.
    push_backend(world, DOCKERFILE, "Backend: fast start again")
    world.controller.wait_idle(300)
    after = world.controller.build(BACKEND, 4)
    assert after.result == "SUCCESS", after.text()
    assert world.live_colour("backend") != live[0]


# ------------------------------------------------------------------------------------------------
# 7. the whole build times out while the deploy waits: the same guarantees


@pytest.mark.parametrize("world", [{"timeout_minutes": 1}], indirect=True)
def test_7_whole_build_timeout_during_the_deploy(world):
    live = (world.live_colour("backend"), world.live_image("backend"))
    push_backend(world, DOCKERFILE + 'LABEL io.enadu.test.kind="slow300"\n', "Backend: slower start")
    world.controller.wait_idle(180)
    build = world.controller.build(BACKEND, 3)
    assert any("Timeout has been exceeded" in line for line in build.log), build.text()
    assert build.duration < 60 + 30  # the timeout, the helper's bounded clean-up and post
    assert_consistent_after_interrupt(world, build, live)


# ------------------------------------------------------------------------------------------------
# 9. a release of the library: new tag, library.version bumped, render, bootstrap


def test_9_a_library_release_reaches_the_jobs(world):
    marker = "echo('enaduCheckout of release v0.2.0')"
    step = (world.library.path / "vars" / "enaduCheckout.groovy").read_text("utf-8")
    assert marker not in step
    patched = step.replace("    Map remote = [url: a.repository]", f"    {marker}\n    Map remote = [url: a.repository]", 1)
    assert patched != step
    world.release("v0.2.0", edit={"vars/enaduCheckout.groovy": patched})
    report = world.bootstrap()
    jobs = {i.name: i for i in report.items if i.kind == "job"}
    assert {name: (i.action, i.first_build) for name, i in jobs.items()} == {
        f"{FOLDER}/{n}": ("update", "") for n in ("backend", "batch", "frontend", "backend-ops", "batch-ops",
                                                  "frontend-ops")}
    assert "refs/tags/v0.2.0" in jobs[BACKEND].diff
    push_backend(world, DOCKERFILE, "Backend: after the library release")
    world.controller.wait_idle(300)
    build = world.controller.build(BACKEND, 3)
    assert build.result == "SUCCESS", build.text()
    assert "Loading library enadu@v0.2.0" in build.log
    assert "enaduCheckout of release v0.2.0" in build.log
    assert build.library.ref == "refs/tags/v0.2.0"
    earlier = world.controller.build(BACKEND, 2)
    assert "enaduCheckout of release v0.2.0" not in earlier.log
