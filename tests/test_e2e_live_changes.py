"""End to end (issue 16, part 1): after a rollback, a push that touches only batch/ redeploys backend.

One world of tests/support/e2e (real git, buildah, the registry, the bundled helper, the Kubernetes
test world): backend deploys A, then B; the backend-ops job rolls back to A; then a push touching only
batch/ starts backend's job, whose Changes stage compares with the commit live in the namespace (A,
recorded on the live colour as enadu.io/commit) rather than with the last successful build (B), so
backend builds and deploys again instead of leaving the rolled-back A live without a word.
"""

from __future__ import annotations

import jenkins
import pytest

from support.e2e.world import FOLDER, JENKINS_TOKEN, NAMESPACE, E2EWorld

JOBS = {name: f"{FOLDER}/{name}" for name in ("backend", "batch", "frontend")}
COMMIT = "enadu.io/commit"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = E2EWorld(tmp_path_factory.mktemp("e2e-live")).start()
    try:
        yield w
    finally:
        w.stop()


def field(world: E2EWorld, name: str, number: int, key: str) -> str:
    found = [e for e in world.messages(JOBS[name]) if e["title"] == f"{JOBS[name]} #{number}"]
    assert len(found) == 1, f"expected one Discord message for {JOBS[name]} #{number}, got {len(found)}"
    return next(f["value"] for f in found[0]["fields"] if f["name"] == key)


def live_commit(world: E2EWorld, name: str) -> str:
    dep = world.deployment(name, world.live_colour(name)) or {}
    return (dep.get("metadata", {}).get("annotations") or {}).get(COMMIT)


def test_rollback_then_an_unrelated_push_redeploys_the_service(world):
    world.bootstrap()
    world.controller.wait_idle(600)
    api = jenkins.Jenkins(world.fake.url, username="admin", password=JENKINS_TOKEN)
    api.build_job(JOBS["backend"], {"ENADU_REGISTER_ONLY": "false"})  # day one: the first real build
    world.controller.load_jobs(FOLDER)
    world.controller.wait_idle(600)
    first = world.controller.build(JOBS["backend"], 2)
    assert first.result == "SUCCESS", first.text()
    a = first.answer["env"]["GIT_COMMIT"]
    assert (world.live_colour("backend"), live_commit(world, "backend")) == ("blue", a)

    world.enadu.commit({"backend/src/main/App.java": "class App { int version = 2; }\n"}, "Backend: v2")
    world.controller.push(world.enadu.push("be-dev"))
    world.controller.wait_idle(600)
    second = world.controller.build(JOBS["backend"], 3)
    assert second.result == "SUCCESS", second.text()
    b = second.answer["env"]["GIT_COMMIT"]
    assert (world.live_colour("backend"), live_commit(world, "backend")) == ("green", b)
    assert f"compared with the commit live in {NAMESPACE} ({a[:12]}, blue)" in field(world, "backend", 3, "Changes")

    api.build_job(f"{JOBS['backend']}-ops", {"ACTION": "rollback", "REASON": "v2 breaks the search page"})
    world.controller.load_jobs(FOLDER)
    world.controller.wait_idle(600)
    assert (world.live_colour("backend"), live_commit(world, "backend")) == ("blue", a)

    world.enadu.commit({"batch/src/main/App.java": "class BatchApp { int exportVersion = 9; }\n"}, "Batch only")
    world.controller.push(world.enadu.push("be-dev"))
    world.controller.wait_idle(600)
    third = world.controller.build(JOBS["backend"], 4)
    assert third.result == "SUCCESS", third.text()
    c = third.answer["env"]["GIT_COMMIT"]
    assert third.stages["Deploy"] == "SUCCESS", third.text()  # before issue 16: skipped, A stayed live
    assert (world.live_colour("backend"), live_commit(world, "backend")) == ("green", c)
    changes = field(world, "backend", 4, "Changes")
    assert f"compared with the commit live in {NAMESPACE} ({a[:12]}, blue)" in changes
    assert "backend/src/main/App.java" in changes  # B's change, which A..C holds
    assert world.leaks() == []
