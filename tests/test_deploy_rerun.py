"""Re-running a deploy after a crash between its switch and the end (found by tests/test_deploy_crash.py).

A deploy SIGKILLed right after its Service switch committed (the helper never learns it) leaves work
undone: the autoscaler still names the old colour, or, in a migration from the hand-made era, the old
script's Deployment still runs. The re-run, a new build with another lock identity, finds the new colour
live and fully available and has "nothing to deploy"; it must still finish that work. And while a
migration has pinned the Service to the hand-made pods (selector ``color=legacy``), ``status``,
``rollback`` and ``abort`` must know it.

Each test kills the helper from the API server's write hook (tests/support/kubeworld/requestlog.py
``on_write``: after the write is committed, before its answer leaves), as the crash test does.
"""

from __future__ import annotations

import os
import signal
from typing import Callable, Optional

import pytest

from tests.support import deployrun as d
from tests.support.deployrun import ok, world  # noqa: F401 (world is a fixture)
from tests.support.kubeworld.invariants import deployment_fully_available
from tests.test_deploy_migration import HANDMADE, handmade_objects

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 11}
# a new build each time: another lock identity, so a re-run must wait out the killed build's Lease
TTL = {"ENADU_LOCK_TTL": "5s", "ENADU_LOCK_TIMEOUT": "60s"}


def build(n: int) -> dict:
    return {**TTL, "ENADU_LOCK_IDENTITY": f"jenkins-enadu-backend-{n}",
            "BUILD_URL": f"https://ci.enadu.dev/job/enadu/job/backend/{n}/"}


def killed_at(world, when: Callable, *args: str, n: int, env: Optional[dict] = None) -> None:
    """Run the helper and SIGKILL it right after the first committed write ``when(info)`` picks."""
    proc: dict = {}

    def hook(info) -> None:
        if info.user_agent == d.USER_AGENT and "p" in proc and not proc.get("killed") and when(info):
            proc["killed"] = True
            os.kill(proc["p"].pid, signal.SIGKILL)

    remove = world.requests.on_write(hook)
    try:
        proc["p"] = d.start(world, *args, extra_env={**(env or {}), **build(n)})
        out, err = proc["p"].communicate(timeout=150)
    finally:
        remove()
        if proc["p"].poll() is None:
            proc["p"].kill()
    assert proc["p"].returncode == -signal.SIGKILL, f"the helper finished before the crash point: {out}{err}"


def patches_live_service(colour: str) -> Callable:
    def when(info) -> bool:
        return (info.resource == "services" and info.name == d.SERVICE and info.verb == "patch"
                and f'"{colour}"' in (info.body or b"").decode("utf-8", "replace"))

    return when


def hpa(world, target: str) -> None:
    world.create({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                  "metadata": {"name": d.SERVICE, "namespace": d.NAMESPACE},
                  "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                           "minReplicas": 2, "maxReplicas": 6}})


def hpa_target(world) -> str:
    return world.get("horizontalpodautoscalers", d.SERVICE, d.NAMESPACE)["spec"]["scaleTargetRef"]["name"]


# -- 1. the autoscaler follows the live colour on a re-run ----------------------------------------


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_rerun_after_a_crash_between_switch_and_autoscaler_retargets_it(world) -> None:
    ok(d.run(world, "deploy", "--image", d.image("v1"), extra_env=build(1)))
    hpa(world, "backend-blue")
    killed_at(world, patches_live_service("green"), "deploy", "--image", d.image("v2"), n=2)
    assert d.selected_colour(world) == "green" and hpa_target(world) == "backend-blue"  # the crash's state
    result = ok(d.run(world, "deploy", "--image", d.image("v2"), extra_env=build(3)))
    assert result["outcome"] == "unchanged", result
    assert hpa_target(world) == "backend-green", "the autoscaler still scales the retired colour"
    assert d.replicas(world, "blue") == 0


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_deploy_recovering_a_crashed_rollback_retargets_the_autoscaler(world) -> None:
    """A rollback killed after its switch is recovered by deploying the image it rolled back to."""
    ok(d.run(world, "deploy", "--image", d.image("v1"), extra_env=build(1)))
    hpa(world, "backend-blue")
    ok(d.run(world, "deploy", "--image", d.image("v2"), extra_env=build(2)))
    assert hpa_target(world) == "backend-green"
    killed_at(world, patches_live_service("blue"), "rollback", "--keep-old", n=3)
    assert d.selected_colour(world) == "blue" and hpa_target(world) == "backend-green"
    result = ok(d.run(world, "deploy", "--image", d.image("v1"), extra_env=build(4)))
    assert result["outcome"] == "unchanged", result
    assert hpa_target(world) == "backend-blue"
    assert d.replicas(world, "green") == 0


# -- 2. a migration interrupted after its switch --------------------------------------------------


@pytest.fixture
def handmade(kubeworld):
    kubeworld.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": d.NAMESPACE}})
    kubeworld.create(*handmade_objects())
    kubeworld.wait_for(lambda w: deployment_fully_available(w.get("deployments", "backend", d.NAMESPACE)) is None,
                       timeout=30, what="the hand-made deployment available")
    return kubeworld


def old_replicas(world, name: str = "backend"):
    dep = world.get("deployments", name, d.NAMESPACE)
    return None if dep is None else int(dep["spec"].get("replicas") or 0)


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize("old_pods", ["labelled", "replaced"])
def test_a_rerun_after_a_migration_crashed_after_its_switch_retires_the_handmade_deployment(handmade, old_pods) -> None:
    """``replaced``: the old ReplicaSet replaced every pod after the crash, so none carries the pin
    label any more; the switch's history entry still names the hand-made Deployment."""
    world = handmade
    killed_at(world, patches_live_service("blue"), "deploy", "--image", d.image("v2"), n=1)
    assert d.selected_colour(world) == "blue" and old_replicas(world) == 2
    if old_pods == "replaced":
        old = [p["metadata"]["name"] for p in world.list("pods", d.NAMESPACE)
               if (p["metadata"].get("labels") or {}).get("color") == "legacy"]
        for name in old:
            world.delete("pods", name, d.NAMESPACE)
        world.wait_for(lambda w: deployment_fully_available(w.get("deployments", "backend", d.NAMESPACE)) is None
                       and not any((p["metadata"].get("labels") or {}).get("color") == "legacy"
                                   for p in w.list("pods", d.NAMESPACE)), timeout=30, what="new old pods")
    run = d.run(world, "deploy", "--image", d.image("v2"), extra_env=build(2))
    result = ok(run)
    assert result["outcome"] == "unchanged", result
    assert old_replicas(world) == 0, "the hand-made deployment still runs after the re-run"
    assert "hand-made deployment backend" in result["message"] and "scaled to 0" in result["message"], result
    assert result["migration"]["old_deployment"].startswith("scaled to 0"), result
    entry = d.history(world)[0]
    assert entry["colour"] == "blue" and entry["reason"] == (
        "migrated from the hand-made deployment backend; it was scaled to 0 after the scale-down delay"), entry
    # once recorded, later runs leave it alone
    again = ok(d.run(world, "deploy", "--image", d.image("v2"), extra_env=build(3)))
    assert "hand-made" not in again["message"], again


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_deployment_of_the_app_nobody_migrated_from_is_left_alone(handmade) -> None:
    """Only a Deployment the history says we migrated from, or whose pods carry our pin label, is
    retired: a Deployment someone runs beside the colours (its pods also ``app=backend``) is not ours."""
    world = handmade
    ok(d.run(world, "deploy", "--image", d.image("v2"), extra_env=build(1)))
    assert old_replicas(world) == 0
    stray = handmade_objects(replicas=1)[0]
    stray["metadata"]["name"] = "backend-debug"
    world.create(stray)
    world.wait_for(lambda w: deployment_fully_available(w.get("deployments", "backend-debug", d.NAMESPACE)) is None,
                   timeout=30, what="the stray deployment available")
    scaled = world.kubectl("-n", d.NAMESPACE, "scale", "deployment/backend", "--replicas=1")  # up again by hand
    assert scaled.returncode == 0, scaled.stderr
    result = ok(d.run(world, "deploy", "--image", d.image("v2"), extra_env=build(2)))
    assert result["outcome"] == "unchanged" and "hand-made" not in result["message"], result
    assert old_replicas(world, "backend-debug") == 1 and old_replicas(world) == 1


# -- 3. status, rollback and abort while the Service is pinned -------------------------------------


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_status_rollback_and_abort_while_a_migration_has_pinned_the_service(handmade) -> None:
    world = handmade
    # killed once the new colour exists: the Service is pinned, backend-blue is starting or running
    killed_at(world, lambda info: info.resource == "deployments" and info.verb == "create",
              "deploy", "--image", d.image("v2"), n=1)
    assert world.get("services", d.SERVICE, d.NAMESPACE)["spec"]["selector"] == {"app": "backend", "color": "legacy"}

    status = d.run(world, "status", extra_env=build(2))
    assert status.returncode == 0, status.stdout + status.stderr
    assert ("service backend: pinned to the hand-made deployment backend (migration in progress)"
            in status.stderr), status.stderr
    assert status.result["pinned_to"] == "backend" and status.result["live"] is None, status.result

    rollback = d.run(world, "rollback", extra_env=build(3))
    assert rollback.returncode == 2, rollback.stdout + rollback.stderr
    message = rollback.result["message"]
    assert "\n" not in message and "pinned to the hand-made deployment backend" in message, message
    assert "nothing to roll back to" in message and "abort" in message, message
    assert world.get("services", d.SERVICE, d.NAMESPACE)["spec"]["selector"]["color"] == "legacy"

    abort = d.run(world, "abort", extra_env=build(4))
    result = ok(abort)
    assert world.get("services", d.SERVICE, d.NAMESPACE)["spec"]["selector"] == {"app": "backend"}
    assert d.deployment(world, "blue") is None
    assert old_replicas(world) == 2
    assert "selects app=backend again" in result["message"], result
    d.wait_serving(world)  # the old pods serve through the colourless selector, as before the migration
    again = d.run(world, "abort", extra_env=build(5))
    assert ok(again)["outcome"] == "unchanged", again.result
    template = world.get("deployments", "backend", d.NAMESPACE)["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == HANDMADE  # never restarted: its template untouched


# -- 4. a switch whose analysis verdict never landed (issue 12, M6) --------------------------------

# analysis after the switch, against a Prometheus nobody listens on: the crashed run dies at its switch,
# before any query; a re-run that did analyse would find it unreachable (tests/test_deploy_analysis.py
# runs the analysis itself against a real Prometheus)
UNANALYSABLE = {"ENADU_SMOKE_PATH": "", "ENADU_ANALYSIS": "true", "ENADU_PROMETHEUS_URL": "http://127.0.0.1:9",
                "ENADU_ANALYSIS_WINDOW": "1s", "ENADU_ANALYSIS_INTERVAL": "1s"}


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_rerun_says_the_new_colour_was_never_analysed_when_the_previous_one_is_gone(world) -> None:
    """The deploy is killed right after its switch, before its analysis' verdict; then someone scales
    the previous colour to 0. Nothing is left to go back to: the re-run keeps the new colour, says in
    its log and result that it was never analysed after its switch (a warning, not a failure), and
    records that in the switch's history entry, so status no longer shows the analysis pending."""
    ok(d.run(world, "deploy", "--image", d.image("v1"), extra_env=build(1)))
    killed_at(world, patches_live_service("green"), "deploy", "--image", d.image("v2"), n=2, env=UNANALYSABLE)
    assert d.history(world)[0]["analysis"] == "pending", d.history(world)[0]
    status = d.run(world, "status", extra_env=build(3))
    entry = d.history(world)[0]
    assert f"analysis pending since {entry['at']}" in status.stderr, status.stderr
    assert status.result["analysis_pending_since"] == entry["at"], status.result
    scaled = world.kubectl("-n", d.NAMESPACE, "scale", "deployment/backend-blue", "--replicas=0")
    assert scaled.returncode == 0, scaled.stderr
    run = d.run(world, "deploy", "--image", d.image("v2"), extra_env={**UNANALYSABLE, **build(4)})
    result = ok(run)
    assert result["outcome"] == "unchanged" and d.selected_colour(world) == "green", result
    said = "the new colour green was never analysed after its switch"
    assert said in run.stderr and any(said in w for w in result.get("warnings", [])), run.stderr
    assert said in result["message"], result
    assert "analysis" not in result  # nothing was queried
    assert d.history(world)[0]["analysis"].startswith("not analysed: "), d.history(world)[0]
    again = d.run(world, "status", extra_env=build(5))
    assert "analysis pending" not in again.stderr and again.result["analysis_pending_since"] is None, again.stderr


def forge_pending(world, **fields) -> None:
    """Make the Service's newest history entry say its analysis is pending (the history is untrusted:
    anyone who may patch the Service can write it)."""
    import json

    entries = d.history(world)
    entries[0].update(analysis="pending", **fields)
    done = world.kubectl("-n", d.NAMESPACE, "annotate", "--overwrite", "service", d.SERVICE,
                         "enadu.io/history=" + json.dumps(entries))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize("why", ["kept", "other-image"])
def test_a_rerun_never_switches_back_to_a_colour_rollback_would_refuse(world, why) -> None:
    """review3 H1: a pending analysis whose previous colour is one rollback refuses (kube/promotion.py
    ``kept``: a failed deploy's colour; or one that does not run the entry's previous_image) is not
    analysed against it: a failed analysis would put that colour live and scale the good one to 0.
    The deploy warns that the live colour was never analysed and goes on (here: nothing to deploy)."""
    ok(d.run(world, "deploy", "--image", d.image("v1"), extra_env=build(1)))
    failed = d.run(world, "deploy", "--image", d.image("v2-errors"),
                   extra_env={**build(2), "ENADU_ABORT_SCALE_DOWN_DELAY": "never"})
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert d.replicas(world, "green") == 2 and d.selected_colour(world) == "blue"
    if why == "kept":
        forge_pending(world, previous_colour="green")
    else:  # not kept any more, but not what the entry says served before blue either
        gone = world.kubectl("-n", d.NAMESPACE, "annotate", "deployment", "backend-green", "enadu.io/aborted-")
        assert gone.returncode == 0, gone.stderr
        forge_pending(world, previous_colour="green", previous_image=d.image("v0"))
    run = d.run(world, "deploy", "--image", d.image("v1"), extra_env={**UNANALYSABLE, **build(3)})
    assert d.selected_colour(world) == "blue", run.stdout + run.stderr
    result = ok(run)
    assert result["outcome"] == "unchanged", result
    said = "the new colour blue was never analysed after its switch"
    assert any(said in w and "refusing" in w for w in result.get("warnings", [])), result
    assert "analysis" not in result  # nothing was queried
    assert d.history(world)[0]["analysis"].startswith("not analysed: "), d.history(world)[0]
    assert d.replicas(world, "blue") == 2 and d.running_image(world, "blue") == d.image("v1")


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_deploy_that_switches_back_an_earlier_switch_names_the_image_it_judged(world) -> None:
    """review3 M3: a deploy of v3 that finds v2's switch still pending analyses v2 and switches back:
    its result names v2 as the image that failed and v3 as ``requested_image``, never deployed."""
    ok(d.run(world, "deploy", "--image", d.image("v1"), extra_env=build(1)))
    killed_at(world, patches_live_service("green"), "deploy", "--image", d.image("v2"), n=2, env=UNANALYSABLE)
    run = d.run(world, "deploy", "--image", d.image("v3"), extra_env={**UNANALYSABLE, **build(3)})
    assert run.returncode == 5, run.stdout + run.stderr
    result = run.result
    assert d.selected_colour(world) == "blue"
    assert (result["outcome"], result["image"], result["requested_image"]) == (
        "rolled-back", d.image("v2"), d.image("v3")), result
    assert f"{d.image('v3')} was not deployed" in result["message"] and "deploy again" in result["message"], result
    assert (result["colour"], result["previous_colour"]) == ("green", "blue"), result
