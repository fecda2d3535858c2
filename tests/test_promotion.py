"""Issue 14, manual promotion: ``deploy --hold``, ``promote`` and ``abort`` of a held preview, and
``--preview-replicas``, in the Kubernetes test world and in the pipeline harness (the ``input`` step).

Named after Argo Rollouts' BlueGreenStrategy (argo-rollouts pkg/apis/rollouts/v1alpha1/types.go):
``autoPromotionEnabled: false`` pauses before the switch (rollout/bluegreen.go
``needsBlueGreenControllerPause``, ``reconcileBlueGreenPause``); ``previewReplicaCount`` runs the
preview at that count and scales it to full only once promoted, before the switch
(``calculateScaleUpPreviewCheckPoint``).
"""

from __future__ import annotations

import json

import pytest

from enadu_pipelines.helper import exitcodes
from tests.support import deployrun as d
from tests.support.deployrun import world, ok  # noqa: F401 (world is a fixture)

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 21}
RATE = 20.0


def held(world) -> dict:
    dep = d.deployment(world, "green") or {}
    return json.loads((dep.get("metadata", {}).get("annotations") or {}).get("enadu.io/held", "null") or "null")


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_no_production_request_reaches_the_preview_before_promotion(world) -> None:
    ok(d.deploy(world, "v1"))
    d.wait_serving(world)
    with world.load(world.service_url(d.SERVICE, d.NAMESPACE), concurrency=2, rate=RATE) as load:
        load.wait_for_requests(int(RATE))
        hold = d.deploy(world, "v2", "--hold", "--preview-replicas", "1")
        assert hold.returncode == exitcodes.HELD, hold.stdout + hold.stderr
        assert hold.result["outcome"] == "held" and hold.result["colour"] == "green"
        assert hold.result["preview_replicas"] == 1
        assert d.selected_colour(world) == "blue"
        assert d.replicas(world, "green") == 1 and d.running_image(world, "green") == d.image("v2")
        assert held(world)["image"] == d.image("v2")
        # the preview waits: production traffic keeps going to v1 only
        load.wait_for_requests(load.summary()["total"] + int(RATE * 2), timeout=30)
        before = load.summary()
        assert before["failed"] == 0, before
        assert before["by_image"].get(d.image("v2"), 0) == 0, before  # the figure: 0 before promotion
        promoted = d.run(world, "promote", "--image", d.image("v2"))
        result = ok(promoted)
        load.wait_for_requests(load.summary()["total"] + int(RATE * 2), timeout=30)
        after = load.summary()
    assert result["outcome"] == "promoted" and result["colour"] == "green", result
    assert d.selected_colour(world) == "green"
    assert d.replicas(world, "green") == 2  # scaled from the preview count to full before the switch
    assert "scaled deployment backend-green from 1 to 2" in promoted.stderr
    assert d.replicas(world, "blue") == 0
    assert after["failed"] == 0, after
    assert after["by_image"].get(d.image("v2"), 0) > 0, after
    print(f"FIGURE promotion: {before['by_image'].get(d.image('v2'), 0)} of {before['total']} production requests "
          f"reached the preview before promotion; {after['failed']} failed across the promotion")


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_abort_of_a_held_preview_leaves_live_untouched(world) -> None:
    ok(d.deploy(world, "v1"))
    blue_before = d.deployment(world, "blue")
    hold = d.deploy(world, "v2", "--hold")
    assert hold.returncode == exitcodes.HELD, hold.stdout + hold.stderr
    assert d.replicas(world, "green") == 2  # no preview count: the preview runs at full
    aborted = ok(d.run(world, "abort", "--keep-old"))
    assert aborted["outcome"] == "aborted"
    assert d.selected_colour(world) == "blue" and d.replicas(world, "green") == 0
    blue_after = d.deployment(world, "blue")
    assert blue_after["metadata"]["resourceVersion"] == blue_before["metadata"]["resourceVersion"]
    # nothing held any more: promote refuses, and the live colour stays
    refused = d.run(world, "promote", "--image", d.image("v2"))
    assert refused.returncode == exitcodes.FAILED, refused.stdout + refused.stderr
    assert "not running and fully available" in refused.result["message"]
    assert d.selected_colour(world) == "blue"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_promote_refuses_an_idle_colour_that_runs_another_image(world) -> None:
    ok(d.deploy(world, "v1"))
    assert d.deploy(world, "v2", "--hold").returncode == exitcodes.HELD
    refused = d.run(world, "promote", "--image", d.image("v3"))
    assert refused.returncode == exitcodes.FAILED, refused.stdout + refused.stderr
    message = refused.result["message"]
    assert f"refusing to promote {d.image('v3')}" in message and d.image("v2") in message, message
    assert d.selected_colour(world) == "blue" and d.replicas(world, "green") == 2  # nothing changed
    # another held deploy replaced the preview meanwhile: the approval of v2 does not promote v4
    assert d.deploy(world, "v4", "--hold").returncode == exitcodes.HELD
    assert held(world)["image"] == d.image("v4")
    refused = d.run(world, "promote", "--image", d.image("v2"))
    assert refused.returncode == exitcodes.FAILED and "runs " + d.image("v4") in refused.result["message"]
    assert d.selected_colour(world) == "blue"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_promote_without_a_held_colour_and_dry_run(world) -> None:
    ok(d.deploy(world, "v1"))
    refused = d.run(world, "promote", "--image", d.image("v2"))
    assert refused.returncode == exitcodes.FAILED and "nothing to promote" in refused.result["message"]
    assert d.deploy(world, "v2", "--hold", "--preview-replicas", "1").returncode == exitcodes.HELD
    writes = len(d.helper_writes(world))
    plan = ok(d.run(world, "promote", "--dry-run"))  # without --image: the held one
    assert plan["outcome"] == "planned" and plan["image"] == d.image("v2")
    assert any("from 1 to 2 replicas" in line for line in plan["plan"]), plan["plan"]
    assert len(d.helper_writes(world)) == writes
    assert ok(d.run(world, "promote"))["outcome"] == "promoted"
    again = ok(d.run(world, "promote", "--image", d.image("v2")))
    assert again["outcome"] == "unchanged"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_preview_replica_count_with_auto_promotion_scales_to_full_before_the_switch(world) -> None:
    ok(d.deploy(world, "v1"))
    run = d.deploy(world, "v2", "--preview-replicas", "1")
    assert ok(run)["outcome"] == "deployed"
    text = run.stderr
    assert text.index("with registry.enadu.dev/enadu/backend:v2 at 1 replicas") < text.index("from 1 to 2 replicas") \
        < text.index("switched service backend"), text
    assert d.replicas(world, "green") == 2 and d.selected_colour(world) == "green"


def test_bad_preview_replicas_is_a_usage_error(kubeworld) -> None:
    d.prepare(kubeworld)
    run = d.deploy(kubeworld, "v2", "--preview-replicas", "lots")
    assert run.returncode == exitcodes.USAGE
    assert "--preview-replicas (ENADU_PREVIEW_REPLICAS): 'lots' is not a number from 1 to 100" in run.result["message"]


# -- the pipeline: enaduDeploy with auto_promotion_enabled false, in the harness --------------------
# The harness's `input` follows pipeline-input-step-plugin InputStepExecution (tests/support/pipeline/
# src/pipelineharness/Dsl.groovy step_input): proceed, abort (Rejection), or the timeout's ExceededTimeout.

MANUAL = """
      auto_promotion_enabled: false
      auto_promotion_seconds: 900
      preview_replica_count: 1
      promotion_submitter: "release-managers, alice"
"""


def manual_jenkinsfile(tmp_path) -> str:
    from pathlib import Path

    from enadu_pipelines import config
    from enadu_pipelines.render import render_files

    text = (Path(__file__).resolve().parents[1] / "enadu.yaml").read_text()
    marker = "    kubernetes:\n      replicas: 1\n"
    assert text.count(marker) == 1
    text = text.replace(marker, marker + MANUAL.lstrip("\n"), 1)
    path = tmp_path / "enadu.yaml"
    path.write_text(text)
    project = config.load(path)
    services = [s.name for s in project.services if not s.auto_promotion_enabled]
    assert len(services) == 1
    return services[0], render_files(project, b"")[f"pipelines/{services[0]}/Jenkinsfile"].decode()


def manual_scenario(name: str, answers: list) -> dict:
    from tests.support.pipeline import scenarios as sc

    project = sc.load_project()
    scenario = sc.service_scenario(project, name, deploy_exit=exitcodes.HELD,
                                   deploy_outcome={"outcome": "held", "service": name, "colour": "green"})
    sh = scenario["sh"]
    at = next(i for i, rule in enumerate(sh) if rule["id"] == "deploy")
    sh[at:at] = [sc.helper_rule("promote", durationMs=20_000, writes={"$ENADU_RESULT_FILE": json.dumps(
                     {"outcome": "promoted", "service": name, "colour": "green"})}),
                 sc.helper_rule("abort", durationMs=5_000, writes={"$ENADU_RESULT_FILE": json.dumps(
                     {"outcome": "aborted", "service": name, "message": "removed idle colour(s): green"})})]
    scenario["input"] = answers
    return scenario


def helper_commands(run) -> list:
    import re

    return [m.group(1) for e in run.trace if e.get("step") == "sh"
            for m in [re.search(r'python3 -I "\$d/ENADU_HELPER" (\w+)', e["args"]["script"])] if m]


def test_the_rendered_pipeline_waits_in_input_and_promotes_on_proceed(tmp_path) -> None:
    from tests.support.pipeline.client import harness

    name, jenkinsfile = manual_jenkinsfile(tmp_path)
    assert "autoPromotion: false," in jenkinsfile and "previewReplicas: 1," in jenkinsfile
    assert "promotionSubmitter: 'release-managers, alice'," in jenkinsfile
    run = harness().run(text=jenkinsfile, scenario=manual_scenario(name, [
        {"answer": "proceed", "user": "mallory"},  # not a submitter: Jenkins refuses, the input waits on
        {"answer": "proceed", "user": "bob", "groups": ["release-managers"]}]))
    assert run.result == "SUCCESS", run.log
    assert helper_commands(run)[-3:] == ["deploy", "promote", "notify"], helper_commands(run)
    asked = [e for e in run.trace if e.get("step") == "input"]
    assert len(asked) == 1 and asked[0]["args"]["ok"] == "Promote"
    assert asked[0]["args"]["submitter"] == "release-managers, alice"
    assert asked[0]["args"]["message"].startswith(f"Promote {name} `")
    timeouts = [e for e in run.trace if e.get("step") == "timeout" and e["args"].get("time") == 900]
    assert timeouts and timeouts[0]["args"]["unit"] == "SECONDS"
    deploy_sh = next(e for e in run.trace if e.get("step") == "sh" and '" deploy\n' in e["args"]["script"])
    assert deploy_sh["env"]["ENADU_HOLD"] == "true" and deploy_sh["env"]["ENADU_PREVIEW_REPLICAS"] == "1"
    log = run.log if isinstance(run.log, str) else "\n".join(run.log)
    assert "Approved by bob" in log and "mallory may not answer this input" in log


@pytest.mark.parametrize("answer", ["abort", "timeout"])
def test_the_rendered_pipeline_aborts_the_preview_on_no_or_timeout(tmp_path, answer) -> None:
    from tests.support.pipeline.client import harness

    name, jenkinsfile = manual_jenkinsfile(tmp_path)
    run = harness().run(text=jenkinsfile, scenario=manual_scenario(name, [{"answer": answer, "user": "alice"}]))
    assert run.result == "ABORTED", run.log
    commands = helper_commands(run)
    assert "promote" not in commands and commands[-2:] == ["abort", "notify"], commands


@pytest.mark.parametrize("answer", ["abort", "timeout"])
def test_a_failed_abort_of_the_preview_fails_the_build_and_says_what_to_do(tmp_path, answer) -> None:
    """The preview may still run: the build must not end ABORTED as after a clean abort."""
    from tests.support.pipeline.client import harness

    name, jenkinsfile = manual_jenkinsfile(tmp_path)
    scenario = manual_scenario(name, [{"answer": answer, "user": "alice"}])
    rule = next(r for r in scenario["sh"] if r["id"] == "abort")
    rule.update(status=exitcodes.LOCK_HELD, writes={"$ENADU_RESULT_FILE": json.dumps(
        {"outcome": "lock-held", "service": name, "message": "held by jenkins-enadu-backend-ops-3"})})
    run = harness().run(text=jenkinsfile, scenario=scenario)
    assert run.result == "FAILURE", run.log
    assert run.error["message"] == (
        f"enaduDeploy: the promotion was not given and removing the preview of {name} failed (helper exit "
        f"{exitcodes.LOCK_HELD}): it may still run behind {name}-preview; run the {name}-ops job with ACTION"
        " abort to remove it")
    commands = helper_commands(run)
    assert "promote" not in commands and commands[-2:] == ["abort", "notify"], commands


@pytest.mark.parametrize("answer, delay", [("abort", "30s"), ("timeout", "30s"), ("stop", "0s"), ("outer-timeout", "0s")])
def test_a_stopped_build_removes_the_preview_at_once_a_no_or_timeout_after_the_delay(tmp_path, answer, delay) -> None:
    """The Stop button while the build waits in the input (WorkflowRun.doStop -> Executor.interrupt with
    CauseOfInterruption.UserInterruption; the input fails with it, InputStepExecution.stop) must not
    hold the build for the abort scale-down delay: someone is waiting for the build to end. A "no"
    (InputStepExecution.doAbort: Rejection) or the timeout step's expiry (TimeoutStepExecution:
    ExceededTimeout) keeps the preview for the configured delay, for a look at it. review4 M2: the
    Jenkinsfile's whole-build timeout cancels the input with an ExceededTimeout too, but not the input's
    own timeout's (actualInterruption still set, TimeoutStepExecution.Callback.onFailure): that build
    is ending (its sh killed 60 s later), so the abort acts at once."""
    from tests.support.pipeline.client import harness

    name, jenkinsfile = manual_jenkinsfile(tmp_path)
    assert "abortScaleDownDelay: '30s'," in jenkinsfile
    run = harness().run(text=jenkinsfile, scenario=manual_scenario(name, [{"answer": answer, "user": "alice"}]))
    assert run.result == "ABORTED", run.log
    assert helper_commands(run)[-3:] == ["deploy", "abort", "notify"], helper_commands(run)
    [deploy_sh] = [e for e in run.trace if e.get("step") == "sh" and '" deploy\n' in e["args"]["script"]]
    [abort_sh] = [e for e in run.trace if e.get("step") == "sh" and '" abort\n' in e["args"]["script"]]
    assert deploy_sh["env"]["ENADU_ABORT_SCALE_DOWN_DELAY"] == "30s"
    assert abort_sh["env"]["ENADU_ABORT_SCALE_DOWN_DELAY"] == delay
    log = run.log if isinstance(run.log, str) else "\n".join(run.log)
    said = {"abort": "Rejected by alice", "timeout": "Timeout has been exceeded", "stop": "Aborted by alice",
            "outer-timeout": "Timeout has been exceeded"}
    assert said[answer] in log


def test_auto_promotion_unset_or_true_renders_the_same_pipelines(tmp_path) -> None:
    from pathlib import Path

    from enadu_pipelines import config
    from enadu_pipelines.render import render_files

    shipped = Path(__file__).resolve().parents[1] / "enadu.yaml"
    text = shipped.read_text()
    assert "auto_promotion" not in text and "preview_replica_count" not in text
    explicit = tmp_path / "enadu.yaml"
    explicit.write_text(text.replace("  scale_down_delay: 30s\n", "  scale_down_delay: 30s\n  auto_promotion_enabled: true\n", 1))
    default, forced = render_files(config.load(shipped), b""), render_files(config.load(explicit), b"")
    pipelines = [k for k in default if k.startswith("pipelines/") and k.endswith("/Jenkinsfile")]
    assert pipelines and all(default[k] == forced[k] for k in pipelines)
    assert all(b"autoPromotion" not in default[k] for k in pipelines)
    for k in pipelines:  # and what is committed is that render
        assert (shipped.parent / k).read_bytes() == default[k], k


# -- review2 (9b54e9e): H1, M3, L1 ---------------------------------------------------------------


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollback_refuses_a_held_preview_and_leaves_live_untouched(world) -> None:
    """H1: during the approval wait the idle colour *is* the held preview; rollback must not put it live."""
    ok(d.deploy(world, "v1"))
    hold = d.deploy(world, "v2", "--hold", "--preview-replicas", "1")
    assert hold.returncode == exitcodes.HELD, hold.stdout + hold.stderr
    blue, green = d.deployment(world, "blue"), d.deployment(world, "green")
    refused = d.run(world, "rollback", "--reason", "v1 misbehaves")
    assert refused.returncode == exitcodes.USAGE, refused.stdout + refused.stderr
    message = refused.result["message"]
    assert "held" in message and "promote" in message and "abort" in message and d.image("v2") in message, message
    assert "\n" not in message
    assert d.selected_colour(world) == "blue"
    assert d.deployment(world, "blue")["metadata"]["resourceVersion"] == blue["metadata"]["resourceVersion"]
    assert d.deployment(world, "green")["metadata"]["resourceVersion"] == green["metadata"]["resourceVersion"]
    assert not any(h.get("reason", "").startswith("rollback") for h in d.history(world))
    # once promoted, the mark is history: a rollback goes back to v1 as usual
    assert ok(d.run(world, "promote"))["outcome"] == "promoted"
    back = ok(d.run(world, "rollback"))
    assert back["outcome"] == "rolled-back" and d.selected_colour(world) == "blue"
    assert d.running_image(world, "blue") == d.image("v1")


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollback_refuses_a_colour_whose_image_never_served_before(world) -> None:
    """H1: the target must run the image the history records as live before the current colour."""
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2"))
    assert d.selected_colour(world) == "green" and d.history(world)[0]["previous_image"] == d.image("v1")
    changed = world.kubectl("-n", d.NAMESPACE, "set", "image", f"deployment/{d.SERVICE}-blue", f"*={d.image('v9')}")
    assert changed.returncode == 0, changed.stderr
    refused = d.run(world, "rollback")
    assert refused.returncode == exitcodes.USAGE, refused.stdout + refused.stderr
    assert d.image("v9") in refused.result["message"] and d.image("v1") in refused.result["message"]
    assert d.selected_colour(world) == "green"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_promote_refuses_an_expired_hold(world) -> None:
    """M3: the hold's validity is written into the mark; an old hold is not promoted days later."""
    ok(d.deploy(world, "v1"))
    hold = d.deploy(world, "v2", "--hold", "--hold-valid-for", "2s")
    assert hold.returncode == exitcodes.HELD, hold.stdout + hold.stderr
    assert held(world)["valid_until"] >= held(world)["at"]
    import time

    time.sleep(3)
    refused = d.run(world, "promote", "--image", d.image("v2"))
    assert refused.returncode == exitcodes.FAILED, refused.stdout + refused.stderr
    assert "expired" in refused.result["message"] and "abort" in refused.result["message"], refused.result
    assert d.selected_colour(world) == "blue"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_promote_refuses_a_template_changed_since_the_hold(world) -> None:
    """L1: the approval covers the pod template that was tested, not just the image annotation."""
    ok(d.deploy(world, "v1"))
    assert d.deploy(world, "v2", "--hold").returncode == exitcodes.HELD
    changed = world.kubectl("-n", d.NAMESPACE, "set", "env", f"deployment/{d.SERVICE}-green", "DEBUG=1")
    assert changed.returncode == 0, changed.stderr
    import time

    deadline = time.monotonic() + 60  # the changed template rolls out and is available again: only the mark can tell
    while time.monotonic() < deadline:
        dep = d.deployment(world, "green")
        st = dep.get("status") or {}
        if st.get("observedGeneration") == dep["metadata"]["generation"] and \
                st.get("updatedReplicas") == st.get("availableReplicas") == st.get("replicas") == 2:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the changed template did not roll out: {dep.get('status')}")
    refused = d.run(world, "promote", "--image", d.image("v2"))
    assert refused.returncode == exitcodes.FAILED, refused.stdout + refused.stderr
    assert "changed since it was held" in refused.result["message"], refused.result
    assert d.selected_colour(world) == "blue"
