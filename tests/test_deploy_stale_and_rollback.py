"""Issue 14, defects 3 and 5, against the Kubernetes test world (helper run as a process, as in
tests/test_deploy.py).

3. A stale ``ProgressDeadlineExceeded`` left on an idle colour by an earlier run must not fail the
   next deploy of a good image. The real deployment controller keeps the Progressing condition when
   it syncs a scaling event (kubernetes/kubernetes pkg/controller/deployment/sync.go: ``sync`` →
   ``syncDeploymentStatus`` → ``calculateStatus`` copies ``d.Status.Conditions``; only
   ``syncRolloutStatus`` resets Progressing, and only once it sees progress — ``DeploymentTimedOut``
   in pkg/controller/deployment/util/deployment_util.go returns true for a condition that already has
   that reason). So a status with ``observedGeneration`` equal to the generation we wrote can still
   carry the old verdict until the ReplicaSet controller creates pods. The test holds the
   replicaset controller (a slow ReplicaSet queue) to make that window deterministic.
5. A rollback that re-creates a deleted colour runs the deploy's smoke test before switching and
   records why in the history.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.support import deployrun as d
from tests.support.deployrun import world, ok  # noqa: F401 (world is a fixture)
from tests.support.kubeworld import depsutil as U
from tests.support.kubeworld import resources as R

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 5}


def _inject_deadline_exceeded(world, colour: str) -> None:
    """Write the condition the controller writes when a rollout times out (syncRolloutStatus,
    ``util.TimedOutReason``) into the colour's status, keeping observedGeneration current."""
    name = f"{d.SERVICE}-{colour}"

    def go():
        dep = world.store.get(R.by_kind("apps/v1", "Deployment").key, d.NAMESPACE, name)
        import copy

        dep = copy.deepcopy(dep)
        st = dep.setdefault("status", {})
        st["observedGeneration"] = dep["metadata"]["generation"]
        U.remove_condition(st, "Progressing")
        U.set_condition(st, U.new_condition("Progressing", "False", U.TIMED_OUT_REASON,
                                            f'ReplicaSet "{name}-old" has timed out progressing.', world.registry.clock()))
        return world.registry.update(R.by_kind("apps/v1", "Deployment"), d.NAMESPACE, name, dep, subresource="status")

    world.call(go)


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_stale_progress_deadline_on_the_idle_colour_does_not_fail_a_good_deploy(world) -> None:
    ok(d.deploy(world, "v1"))
    # The earlier, aborted attempt: the good but slow image did not become available within the
    # command's timeout, so the idle colour was scaled to zero with that template.
    aborted = d.deploy(world, "v2-slow3", "--timeout", "1s")
    assert aborted.returncode == 1, aborted.stdout + aborted.stderr
    assert d.replicas(world, "green") == 0 and d.running_image(world, "green") == d.image("v2-slow3")

    # The leftover carries a ProgressDeadlineExceeded verdict; the controllers are slow to act on
    # the next write (the deployment controller at first, then the replicaset controller).
    world.pause("deployment", "replicaset")
    _inject_deadline_exceeded(world, "green")
    stale_seen = threading.Event()

    def controllers() -> None:
        world.wait_for(lambda w: d.replicas(w, "green") == 2, timeout=60, what="the deploy scaling green")
        world.resume("deployment")  # observes the new generation (a scaling event), keeps the condition
        world.wait_for(lambda w: (d.deployment(w, "green")["status"].get("observedGeneration")
                                  == d.deployment(w, "green")["metadata"]["generation"]), timeout=10,
                       what="the controller observing the new generation")
        conditions = d.deployment(world, "green")["status"].get("conditions") or []
        if any(c.get("reason") == "ProgressDeadlineExceeded" for c in conditions):
            stale_seen.set()
        time.sleep(1.5)  # the window in which a watch sees the observed generation with the old verdict
        world.resume("replicaset")

    helper = threading.Thread(target=controllers, daemon=True)
    helper.start()
    try:
        good = d.deploy(world, "v2-slow3", "--timeout", "60s")
    finally:
        helper.join(timeout=90)
        world.resume("deployment", "replicaset")
    assert stale_seen.is_set(), "the world did not reproduce the stale condition"
    result = ok(good)
    assert (result["outcome"], result["colour"]) == ("deployed", "green")
    assert d.selected_colour(world) == "green"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollback_recreating_a_colour_whose_image_fails_the_smoke_test_does_not_switch(world) -> None:
    # v1 answers 500 to everything but its probes; it went live before smoke tests were configured.
    ok(d.deploy(world, "v1-errors", extra_env={"ENADU_SMOKE_PATH": None}))
    ok(d.deploy(world, "v2", "--delete-old"))
    assert d.deployment(world, "blue") is None
    d.wait_serving(world)
    history_before = d.history(world)
    with world.load(world.service_url("backend", d.NAMESPACE), concurrency=2, rate=40) as load:
        load.wait_for_requests(10)
        refused = d.run(world, "rollback", "--manifest", str(d.MANIFEST))
        load.wait_for_requests(load.summary()["total"] + 10)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    result = refused.result
    assert result["outcome"] == "failed"
    assert "smoke test GET /actuator/health on the new colour blue failed" in result["message"]
    assert d.selected_colour(world) == "green" and d.running_image(world, "green") == d.image("v2")
    assert d.replicas(world, "green") == 2 and d.replicas(world, "blue") == 0
    assert d.history(world) == history_before
    summary = load.summary()
    assert summary["failed"] == 0 and set(summary["by_image"]) == {d.image("v2")}


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollback_recreating_a_deleted_colour_smoke_tests_it_and_records_the_reason(world) -> None:
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2", "--delete-old"))
    assert d.deployment(world, "blue") is None
    back = ok(d.run(world, "rollback", "--manifest", str(d.MANIFEST), "--reason", "v2 breaks the login page"))
    assert back["outcome"] == "rolled-back" and d.selected_colour(world) == "blue"
    assert d.running_image(world, "blue") == d.image("v1")
    smoked = [r for r in world.requests.all(user_agent=d.USER_AGENT)
              if r.subresource == "proxy" and r.path.endswith("/actuator/health")]
    assert smoked, "the rollback did not smoke-test the re-created colour"
    entry = d.history(world)[0]
    assert (entry["colour"], entry["image"], entry["reason"]) == ("blue", d.image("v1"),
                                                                  "rollback: v2 breaks the login page")
    assert back["reason"] == "v2 breaks the login page"  # in the result too: enaduNotify shows it


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollback_reason_is_one_bounded_line(world) -> None:
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2"))
    bad = d.run(world, "rollback", "--reason", "line one\nline two")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert bad.result["message"].startswith("--reason: ")
    assert "Traceback" not in bad.stderr
    back = ok(d.run(world, "rollback"))  # no --reason: the entry still says it was a rollback
    assert back["outcome"] == "rolled-back" and d.history(world)[0]["reason"] == "rollback"
    assert "reason" not in back


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollback_refuses_a_colour_whose_newest_entry_failed_its_analysis(world) -> None:
    """review4 M3: a colour whose newest history entry records ``analysis: failed: …`` failed its
    analysis after its switch (the switch back wrote that verdict in the same write that put the
    previous colour live); it is never a rollback target, even when it runs what the history expects,
    as when an interrupted switch back landed after all and the advice "run rollback" is followed."""
    import json

    from enadu_pipelines.helper import exitcodes

    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2"))
    ok(d.deploy(world, "v3"))
    assert d.selected_colour(world) == "blue"
    entries = d.history(world)
    assert entries[1]["colour"] == "green"
    entries[1]["analysis"] = "failed: error rate 0.5 > 0.01"
    done = world.kubectl("-n", d.NAMESPACE, "annotate", "--overwrite", "service", d.SERVICE,
                         "enadu.io/history=" + json.dumps(entries))
    assert done.returncode == 0, done.stderr
    for args in (("rollback", "--dry-run"), ("rollback",)):
        run = d.run(world, *args)
        assert run.returncode == exitcodes.USAGE, (args, run.stdout, run.stderr)
        assert run.result["message"] == (
            f"refusing to roll back to backend-green: its switch at {entries[1]['at']} failed its analysis "
            "(failed: error rate 0.5 > 0.01); deploy the image you want with deploy --image"), run.result
    assert d.selected_colour(world) == "blue"
