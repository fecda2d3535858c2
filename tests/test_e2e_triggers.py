"""Which jobs a GitHub push starts, before and after the registration build (issue 12, defect 2).

A Pipeline job is matched against a push by ``WorkflowJob.getSCMs()``, which before the first build
holds only the definition's SCM — this library's repository — and then polled
(``WorkflowJob.poll``: a job that never built is "no previous build to compare to", so it builds).
Without a first build, a push to ``be-dev`` starts nothing and a push to the library starts every
job; bootstrap's registration build (ENADU_REGISTER_ONLY=true) turns that around without deploying.
"""

from __future__ import annotations

import pytest

from support.e2e.world import FOLDER, E2EWorld

JOBS = [f"{FOLDER}/{n}" for n in ("backend", "batch", "frontend")]


@pytest.fixture
def world(tmp_path):
    w = E2EWorld(tmp_path).start()
    try:
        yield w
    finally:
        w.stop()


def test_without_a_first_build_pushes_reach_the_wrong_jobs(world):
    report = world.bootstrap(first_builds=False)
    assert {i.name: i.first_build for i in report.items if i.kind == "job"} == {
        **{job: "skipped" for job in JOBS}, **{f"{job}-ops": "" for job in JOBS}}  # an operations job needs none
    for job in JOBS:
        assert [s.url for s in world.controller.get_scms(job)] == ["https://github.com/enadu/enadu-pipelines.git"]
    world.enadu.commit({"batch/src/main/App.java": "class BatchApp { int v = 9; }\n"}, "Batch change")
    assert world.controller.poked(world.enadu.push("be-dev")) == {}  # nothing starts
    world.library.commit({"README.md": "docs\n"}, "Docs")
    assert world.controller.poked(world.library.push("main")) == {job: True for job in JOBS}  # everything would
    assert world.controller.jobs[JOBS[0]].polling_log[-1] == "no previous build to compare to"


def test_after_the_registration_build_pushes_reach_the_services_jobs(world):
    report = world.bootstrap()
    assert {i.name: i.first_build for i in report.items if i.kind == "job"} == {
        **{job: "queued" for job in JOBS}, **{f"{job}-ops": "" for job in JOBS}}
    world.controller.wait_idle(300)
    assert [world.controller.build(job, 1).result for job in JOBS] == ["NOT_BUILT"] * 3
    assert world.service("backend") is None and world.service("batch") is None  # nothing deployed
    # A library push pokes every job (its definition lives there) but polling finds nothing to build:
    # the library checkout has no polling baseline (includeInChangesets: false), the services' did not move.
    world.library.commit({"README.md": "docs\n"}, "Docs")
    assert world.controller.poked(world.library.push("main")) == {job: False for job in JOBS}
    world.enadu.commit({"batch/src/main/App.java": "class BatchApp { int v = 9; }\n"}, "Batch change")
    assert world.controller.poked(world.enadu.push("be-dev")) == {JOBS[0]: True, JOBS[1]: True}
    # The operations jobs have no push trigger: no push pokes them, and bootstrap queued none of their builds.
    for job in JOBS:
        assert not world.controller.jobs[f"{job}-ops"].job.github_push
        assert world.controller.jobs[f"{job}-ops"].builds == []
