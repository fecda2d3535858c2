"""A day of Enadu releases, end to end, on loopback (issue 12): bootstrap, pushes, builds, the cluster,
the registry and the Discord channel, with real git, real processes, a real registry and buildah.

The module is one story told in order (one world, its state carried from scenario to scenario, as a
team's day carries it): each test is one scenario of the issue and asserts on the cluster, the
registry, the images and the messages. Aborts, timeouts and a library release get worlds of their own
(tests/test_e2e_interrupts.py). See tests/support/e2e/ for the parts and the Jenkins classes they follow.
"""

from __future__ import annotations

import time

import jenkins
import pytest

from support.e2e.world import FOLDER, JENKINS_TOKEN, LIBRARY, E2EWorld

JOBS = {name: f"{FOLDER}/{name}" for name in ("backend", "batch", "frontend")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = E2EWorld(tmp_path_factory.mktemp("e2e-day")).start()
    try:
        yield w
    finally:
        w.stop()


def build(world: E2EWorld, name: str, number: int):
    return world.controller.build(JOBS[name], number)


def embed(world: E2EWorld, name: str, number: int) -> dict:
    found = [e for e in world.messages(JOBS[name]) if e["title"] == f"{JOBS[name]} #{number}"]
    assert len(found) == 1, f"expected one Discord message for {JOBS[name]} #{number}, got {len(found)}"
    return found[0]


def field(e: dict, name: str) -> str:
    return next(f["value"] for f in e["fields"] if f["name"] == name)


def image_of(world: E2EWorld, name: str, number: int) -> str:
    b = build(world, name, number)
    commit = b.answer["env"]["GIT_COMMIT"]
    return f"{world.registry.host}/enadu/{name}:{commit[:7]}-{number}"


def assert_no_secret(world: E2EWorld, *texts: str) -> None:
    for name, secret in world.secrets().items():
        for text in texts:
            assert secret not in text, name


def wait(world: E2EWorld, timeout: float = 600) -> None:
    world.controller.wait_idle(timeout)


# ------------------------------------------------------------------------------------------------
# 1. bootstrap, registration builds, then the first builds: all three deploy blue


def test_1_bootstrap_registers_then_first_builds_deploy_blue(world):
    report = world.bootstrap()
    # each service's job gets a registration build; its operations job none (it must not act on creation)
    assert [(i.name, i.action, i.first_build) for i in report.items if i.kind == "job"] == [
        item for name in ("backend", "batch", "frontend")
        for item in ((JOBS[name], "create", "queued"), (f"{JOBS[name]}-ops", "create", ""))]
    wait(world)
    for name in JOBS:
        b = build(world, name, 1)
        # The registration build checks the service out and stops: nothing built, pushed or deployed.
        assert b.result == "NOT_BUILT", b.text()
        assert b.stages["Checkout"] == "SUCCESS"
        assert {b.stages[s] for s in ("Build", "Image", "Deploy")} == {"SKIPPED_FOR_CONDITIONAL"}
        assert world.service(name) is None
        # ... and from now on WorkflowJob.getSCMs() lists the service's repository, so pushes start it.
        urls = {s.url for s in world.controller.get_scms(JOBS[name])}
        assert next(s for s in world.project().services if s.name == name).repository in urls
        assert "registration build" in field(embed(world, name, 1), "Changes")
    assert world.registry.tags("enadu/backend") == []

    # Day one: an administrator starts each job once ("Build with Parameters", registration off).
    api = jenkins.Jenkins(world.fake.url, username="admin", password=JENKINS_TOKEN)
    for name in JOBS:
        api.build_job(JOBS[name], {"ENADU_REGISTER_ONLY": "false"})
    world.controller.load_jobs(FOLDER)
    wait(world)
    for name in JOBS:
        b = build(world, name, 2)
        assert b.result == "SUCCESS", b.text()
        image = image_of(world, name, 2)
        assert world.live_colour(name) == "blue"
        assert world.live_image(name) == image
        tag = image.rsplit(":", 1)[1]
        assert world.registry.has_manifest(f"enadu/{name}", tag)
        e = embed(world, name, 2)
        assert field(e, "Result") == "SUCCESS"
        assert "blue" in field(e, "Deploy") and tag in field(e, "Deploy")
        assert_no_secret(world, b.text(), str(e))


# ------------------------------------------------------------------------------------------------
# 2. a push touching only batch/: batch deploys, backend builds and skips, frontend is not started


def test_2_batch_only_push_deploys_batch_alone(world):
    world.enadu.commit({"batch/src/main/App.java": "class BatchApp { int exportVersion = 2; }\n"}, "Batch: export v2")
    started = world.controller.push(world.enadu.push("be-dev"))
    assert sorted(started) == [JOBS["backend"], JOBS["batch"]]  # the frontend's repository was not pushed
    backend_live = world.live_image("backend")
    wait(world)
    backend, batch = build(world, "backend", 3), build(world, "batch", 3)
    assert backend.result == "SUCCESS" and batch.result == "SUCCESS", backend.text() + batch.text()
    assert {backend.stages[s] for s in ("Test", "Build", "Image", "Deploy")} == {"SKIPPED_FOR_CONDITIONAL"}
    assert world.live_image("backend") == backend_live
    assert world.live_colour("batch") == "green"
    assert world.live_image("batch") == image_of(world, "batch", 3)
    assert len(world.controller.jobs[JOBS["frontend"]].builds) == 2
    assert "batch/src/main/App.java" in field(embed(world, "batch", 3), "Changes")
    assert "skipped" in field(embed(world, "backend", 3), "Deploy")


# ------------------------------------------------------------------------------------------------
# 3. a push touching common/: backend and batch deploy at once, under load, without a failed request


def test_3_common_push_deploys_backend_and_batch_concurrently_without_failed_requests(world):
    loads = [world.kube.load(world.kube.service_url(name, "enadu"), path="/", concurrency=2, rate=20.0,
                             max_seconds=300).start() for name in ("backend", "batch")]
    try:
        time.sleep(1.0)
        world.enadu.commit({"common/src/main/Util.java": "class Util { static int v = 3; }\n"}, "Common: shared v3")
        started = world.controller.push(world.enadu.push("be-dev"))
        assert sorted(started) == [JOBS["backend"], JOBS["batch"]]
        wait(world)
        time.sleep(1.0)
    finally:
        for load in loads:
            load.stop()
    backend, batch = build(world, "backend", 4), build(world, "batch", 4)
    assert backend.result == "SUCCESS" and batch.result == "SUCCESS", backend.text() + batch.text()
    assert backend.started < batch.finished and batch.started < backend.finished  # they ran at the same time
    assert world.live_colour("backend") == "green" and world.live_colour("batch") == "blue"
    assert world.live_image("backend") == image_of(world, "backend", 4)
    assert world.live_image("batch") == image_of(world, "batch", 4)
    for load in loads:
        assert len(load.results) > 20
        failed = [r for r in load.results if not r.ok]
        assert failed == [], failed[:3]


# ------------------------------------------------------------------------------------------------
# 4. a failing unit test: no image, no deploy, Discord says FAILURE with the test count


def test_4_failing_unit_test_stops_before_the_image(world):
    live = world.live_image("backend")
    world.enadu.commit({"backend/src/test/SearchTest.test": "fail\n", "backend/src/main/App.java": "class BackendApp { int v = 5; }\n"},
                       "Backend: search ranking")
    world.controller.push(world.enadu.push("be-dev"))
    wait(world)
    b = build(world, "backend", 5)
    assert b.result == "FAILURE", b.text()
    assert b.stages["Test"] == "FAILURE"
    assert {b.stages[s] for s in ("Build", "Image", "Deploy")} == {"SKIPPED_FOR_FAILURE"}
    assert not world.registry.has_manifest("enadu/backend", image_of(world, "backend", 5).rsplit(":", 1)[1])
    assert world.live_image("backend") == live
    e = embed(world, "backend", 5)
    assert field(e, "Result") == "FAILURE"
    assert "2 tests, 1 failed" in field(e, "Tests")


# ------------------------------------------------------------------------------------------------
# 5. a new image that crash-loops: the live colour keeps serving; Discord says what failed


def test_5_crash_looping_image_leaves_the_live_colour_serving(world):
    live_colour, live = world.live_colour("backend"), world.live_image("backend")
    world.enadu.commit({"backend/src/test/SearchTest.test": "pass\n",
                        "backend/Dockerfile": "FROM scratch\nCOPY build/libs/app.jar /app.jar\n"
                                              "LABEL io.enadu.test.kind=\"crashloop\"\n"}, "Backend: new runtime")
    world.controller.push(world.enadu.push("be-dev"))
    wait(world)
    b = build(world, "backend", 6)
    assert b.result == "FAILURE", b.text()
    assert b.stages["Image"] == "SUCCESS" and b.stages["Deploy"] == "FAILURE"
    assert world.registry.has_manifest("enadu/backend", image_of(world, "backend", 6).rsplit(":", 1)[1])
    assert (world.live_colour("backend"), world.live_image("backend")) == (live_colour, live)
    deploy = field(embed(world, "backend", 6), "Deploy")
    assert "CrashLoopBackOff" in deploy, deploy
    # Heal it for the rest of the day.
    world.enadu.commit({"backend/Dockerfile": "FROM scratch\nCOPY build/libs/app.jar /app.jar\n"}, "Backend: revert runtime")
    world.controller.push(world.enadu.push("be-dev"))
    wait(world)
    assert build(world, "backend", 7).result == "SUCCESS"


# ------------------------------------------------------------------------------------------------
# 8. a push to this library's repository: no service deploys


def test_8_library_push_starts_nothing(world):
    before = {name: len(world.controller.jobs[JOBS[name]].builds) for name in JOBS}
    world.library.commit({"README.md": "enadu-pipelines\n"}, "Docs")
    started = world.controller.push(world.library.push("main"))
    assert started == []
    assert {name: len(world.controller.jobs[JOBS[name]].builds) for name in JOBS} == before
    # Every job was poked (its definition is in this repository) and polled nothing new:
    for name in JOBS:
        assert f"poked {JOBS[name]} for refs/heads/main" in world.controller.events


# ------------------------------------------------------------------------------------------------
# All day long: no secret in a log, a build's answer, a Discord message or a file left on the agent


def test_no_secret_leaked_all_day(world):
    assert sum(len(s.builds) for s in world.controller.jobs.values()) >= 12
    assert world.leaks() == []
