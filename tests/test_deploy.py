"""The blue/green deploy helper against the Kubernetes test world (issue 5).

Each test runs the helper as a separate process, as the enaduDeploy step does, with an invariant
checked by the emulator after every change from any writer: the Service, once it exists, selects a
colour whose Deployment is fully available. Time in the world runs at 1/10 (probe periods etc.).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support import deployrun as d
from tests.support.deployrun import world, ok  # noqa: F401 (world is a fixture)
from tests.support.kubeworld.faults import Fault

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 5}
LAGGY = {"time_scale": 0.1, "propagation_lag": 1.0, "seed": 7}


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_first_deploy_then_blue_green_blue(world) -> None:
    first = ok(d.deploy(world, "v1"))
    assert (first["outcome"], first["colour"], first["previous_colour"]) == ("deployed", "blue", None)
    assert d.selected_colour(world) == "blue" and d.replicas(world, "blue") == 2

    second = ok(d.deploy(world, "v2"))
    assert (second["outcome"], second["colour"], second["previous_colour"]) == ("deployed", "green", "blue")
    assert second["previous_image"] == d.image("v1") and second["image"] == d.image("v2")
    assert d.selected_colour(world) == "green"
    assert d.replicas(world, "blue") == 0 and d.running_image(world, "blue") == d.image("v1")  # kept, scaled down

    third = ok(d.deploy(world, "v3"))
    assert (third["colour"], third["previous_colour"]) == ("blue", "green")
    assert d.selected_colour(world) == "blue" and d.replicas(world, "green") == 0
    assert [(h["colour"], h["image"], h["previous_image"]) for h in d.history(world)] == [
        ("blue", d.image("v3"), d.image("v2")), ("green", d.image("v2"), d.image("v1")), ("blue", d.image("v1"), None)]
    assert d.history(world)[0]["build_url"] == "https://ci.enadu.dev/job/enadu/job/backend/7/"
    assert world.get("leases", "enadu-deploy-backend", d.NAMESPACE) is None  # lock released


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rerun_with_the_same_image_changes_nothing(world) -> None:
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2"))
    before = len(d.helper_writes(world))
    again = ok(d.deploy(world, "v2"))
    assert (again["outcome"], again["colour"]) == ("unchanged", "green")
    writes = d.helper_writes(world)[before:]
    assert [(w.method, w.resource) for w in writes] == [("POST", "leases"), ("DELETE", "leases")]


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize("tag, reason", [
    ("v2-crashloop", "CrashLoopBackOff"),
    ("v2-errimagepull", "ErrImagePull"),
    ("v2-configerror", "CreateContainerConfigError"),
    ("v2-neverready", "timed out waiting for backend-green"),
])
def test_failing_images_abort_and_the_live_colour_keeps_serving(world, tag: str, reason: str) -> None:
    ok(d.deploy(world, "v1"))
    d.wait_serving(world)
    with world.load(world.service_url("backend", d.NAMESPACE), concurrency=3, rate=60) as load:
        load.wait_for_requests(20)
        # --fail-grace: CreateContainerConfigError fails once it lasts that long (60 s by default)
        failed = d.deploy(world, tag, "--timeout", "8s", "--fail-grace", "2s")
        load.wait_for_requests(load.summary()["total"] + 10)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    result = failed.result
    assert result["outcome"] == "failed" and reason in result["message"]
    assert "progress deadline" not in result["message"]
    assert d.selected_colour(world) == "blue" and d.running_image(world, "blue") == d.image("v1")
    assert d.replicas(world, "green") == 0
    summary = load.summary()
    assert summary["failed"] == 0 and set(summary["by_image"]) == {d.image("v1")}
    # the failure came from the pods, not from the Deployment's own deadline (300 s, 30 s scaled)
    conditions = d.deployment(world, "green").get("status", {}).get("conditions") or []
    assert not any(c.get("reason") == "ProgressDeadlineExceeded" for c in conditions)


@pytest.mark.parametrize("kubeworld", [LAGGY], indirect=True)
def test_switch_under_load_loses_no_request(world) -> None:
    ok(d.deploy(world, "v1"))
    d.wait_serving(world)
    with world.load(world.service_url("backend", d.NAMESPACE), concurrency=4, rate=120) as load:
        load.wait_for_requests(30)
        ok(d.deploy(world, "v2", "--scale-down-delay", "2s"))
        load.wait_for_requests(load.summary()["total"] + 30)
    summary = load.summary()
    print(f"switch under load with 1 s propagation lag: {summary['total']} requests, {summary['failed']} failed")
    assert summary["failed"] == 0
    assert summary["by_image"][d.image("v1")] > 0 and summary["by_image"][d.image("v2")] > 0


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_concurrent_deploys_take_turns(world) -> None:
    ok(d.deploy(world, "v1"))
    first = d.start(world, "deploy", "--image", d.image("v2"), "--scale-down-delay", "4s",
                    extra_env={"ENADU_LOCK_IDENTITY": "jenkins-enadu-backend-8"})
    try:
        world.wait_for(lambda w: (w.get("leases", "enadu-deploy-backend", d.NAMESPACE) or {}).get("spec", {})
                       .get("holderIdentity") == "jenkins-enadu-backend-8", timeout=30, what="first deploy holds the lock")
        refused = d.deploy(world, "v3", "--lock-timeout", "1s", extra_env={"ENADU_LOCK_IDENTITY": "jenkins-enadu-backend-9"})
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert refused.result["outcome"] == "lock-held"
        assert "held by jenkins-enadu-backend-8" in refused.result["message"]
        bodies = [(w.body or b"").decode("utf-8", "replace") for w in d.helper_writes(world)]
        assert not [b for b in bodies if "jenkins-enadu-backend-9" in b or d.image("v3") in b], \
            "the refused deploy must not write anything"
        waited = d.deploy(world, "v4", "--lock-timeout", "60s", extra_env={"ENADU_LOCK_IDENTITY": "jenkins-enadu-backend-10"})
    finally:
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert ok(waited)["colour"] == "blue"  # v2 went to green first, then v4 to blue
    assert d.selected_colour(world) == "blue" and d.running_image(world, "blue") == d.image("v4")
    switches = [w for w in d.helper_writes(world) if w.method == "PATCH" and w.path.endswith("/services/backend")]
    targets = ['"value": "green"' in w.body.decode() or '"value":"green"' in w.body.decode() for w in switches]
    assert targets == [True, False]  # v2 switched to green, then v4 (after waiting) to blue; v3 never switched


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_simultaneous_start_exactly_one_wins(world) -> None:
    ok(d.deploy(world, "v1"))
    procs = [d.start(world, "deploy", "--image", d.image(tag), "--lock-timeout", "0s", "--scale-down-delay", "3s",
                     extra_env={"ENADU_LOCK_IDENTITY": f"build-{tag}"}) for tag in ("v2", "v3")]
    codes = sorted(p.wait(timeout=120) for p in procs)
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert codes == [0, 3]
    assert d.selected_colour(world) == "green"


@pytest.mark.parametrize("kubeworld", [{**FAST, "seed": 11}], indirect=True)
def test_injected_faults_are_retried(world) -> None:
    ok(d.deploy(world, "v1"))
    world.faults.add(Fault(verb="*", resource="*", status=503, retry_after=1, probability=0.15))
    world.faults.add(Fault(verb="get", resource="services", status=429, retry_after=1, times=2))
    world.faults.add(Fault(verb="patch", resource="services", status=500, times=1))
    world.faults.add(Fault(verb="watch", cut_watch_after=2, probability=0.5))
    world.faults.add(Fault(verb="create", resource="deployments", status=500, phase="after", times=1))
    run = d.deploy(world, "v2")
    result = ok(run)
    assert result["outcome"] == "deployed" and d.selected_colour(world) == "green"
    assert "failed: HTTP 503; will retry" in run.stderr and "failed: HTTP 429; will retry in 1.0 s" in run.stderr
    assert len(world.faults.log) >= 5, world.faults.log


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_switch_that_keeps_failing_aborts_cleanly(world) -> None:
    ok(d.deploy(world, "v1"))
    world.faults.add(Fault(verb="patch", resource="services", name="backend", status=500))
    failed = d.deploy(world, "v2", extra_env={"ENADU_API_DEADLINE": "3"})
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "patch service backend: HTTP 500" in failed.result["message"]
    assert d.selected_colour(world) == "blue" and d.replicas(world, "green") == 0


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollback_restores_the_previous_colour_without_failed_requests(world) -> None:
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2"))
    assert d.replicas(world, "blue") == 0
    d.wait_serving(world)
    with world.load(world.service_url("backend", d.NAMESPACE), concurrency=3, rate=60) as load:
        load.wait_for_requests(20)
        back = ok(d.run(world, "rollback"))
        load.wait_for_requests(load.summary()["total"] + 20)
    assert (back["outcome"], back["colour"], back["image"]) == ("rolled-back", "blue", d.image("v1"))
    assert d.selected_colour(world) == "blue" and d.replicas(world, "green") == 0
    assert load.summary()["failed"] == 0
    assert d.history(world)[0]["reason"] == "rollback"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollback_after_delete_old_redeploys_the_previous_image(world) -> None:
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2", "--delete-old"))
    assert d.deployment(world, "blue") is None
    refused = d.run(world, "rollback", extra_env={"ENADU_MANIFEST": ""})
    assert refused.returncode == 2
    assert refused.result["message"] == f"backend-blue was deleted: pass --manifest to redeploy {d.image('v1')}"
    back = ok(d.run(world, "rollback", "--manifest", str(d.MANIFEST)))
    assert back["outcome"] == "rolled-back" and d.selected_colour(world) == "blue"
    assert d.running_image(world, "blue") == d.image("v1")


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_status_reports_colours_and_history(world) -> None:
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2"))
    status = ok(d.run(world, "status"))
    assert status["live"] == "green"
    assert status["colours"]["green"] == {"image": d.image("v2"), "commit": None, "replicas": 2, "ready": 2,
                                          "available": 2, "fully_available": True,
                                          "preview": None}  # live: no preview state; no GIT_COMMIT: no commit
    assert status["colours"]["blue"]["replicas"] == 0
    assert [h["image"] for h in status["history"]] == [d.image("v2"), d.image("v1")]
    text = subprocess.run(d.command("status"), env=d.env(world), capture_output=True, text=True, timeout=60)
    assert "service backend: live colour green" in text.stdout
    assert ("  live commit unknown (its Deployment names none: deployed without GIT_COMMIT, or before commits were "
            "recorded)") in text.stdout
    assert f"green  {d.image('v2')}  2/2 available  <- live" in text.stdout


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_abort_removes_the_idle_colour_and_never_the_live_one(world) -> None:
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2", "--keep-old"))
    # leave a half-finished idle colour behind, as an interrupted deploy would
    dep = d.deployment(world, "blue")
    assert dep is not None and d.replicas(world, "blue") == 0
    aborted = ok(d.run(world, "abort"))
    assert aborted["outcome"] == "aborted" and aborted["removed"] == ["blue"]
    assert d.deployment(world, "blue") is None and d.selected_colour(world) == "green"
    again = ok(d.run(world, "abort"))
    assert again["outcome"] == "unchanged"
    assert d.deployment(world, "green") is not None


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_dry_run_plans_and_writes_nothing(world) -> None:
    ok(d.deploy(world, "v1"))
    before = len(d.helper_writes(world))
    plan = ok(d.deploy(world, "v2", "--dry-run"))
    assert plan["outcome"] == "planned" and plan["dry_run"] is True
    assert plan["plan"] == [
        "take the deploy lock (lease enadu-deploy-backend)",
        f"create deployment backend-green with {d.image('v2')} at 2 replicas",
        "wait until it is fully available (at most 600 s)",
        "GET /actuator/health on it through service backend-preview",
        "switch service backend from blue to green",
        "keep backend-blue for 1 s, then scale it to 0",
    ]
    assert len(d.helper_writes(world)) == before and d.deployment(world, "green") is None


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_live_replicas_and_autoscaler_follow_the_switch(world, tmp_path) -> None:
    # the live colour runs 3 replicas (as an autoscaler would have made it), the manifest says 2
    bigger = tmp_path / "backend.yaml"
    bigger.write_text(d.MANIFEST.read_text().replace("  replicas: 2\n", "  replicas: 3\n", 1))
    ok(d.deploy(world, "v1", "--manifest", str(bigger)))
    assert d.replicas(world, "blue") == 3
    world.create({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                  "metadata": {"name": "backend", "namespace": d.NAMESPACE},
                  "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "backend-blue"},
                           "minReplicas": 2, "maxReplicas": 6,
                           "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                                          "target": {"type": "Utilization", "averageUtilization": 70}}}]}})
    ok(d.deploy(world, "v2"))
    assert d.replicas(world, "green") == 3  # no fewer than the live colour ran
    hpa = world.get("horizontalpodautoscalers", "backend", d.NAMESPACE)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "backend-green"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_result_file_for_notify(world, tmp_path) -> None:
    result_file = tmp_path / "deploy.json"
    result_file.write_text('{"outcome": "deployed", "build_url": "an older build"}')
    ok(d.deploy(world, "v1", "--result-file", str(result_file)))
    import json

    written = json.loads(result_file.read_text())
    assert written["outcome"] == "deployed" and written["colour"] == "blue"
    assert written["build_url"] == "https://ci.enadu.dev/job/enadu/job/backend/7/"
    failed = d.deploy(world, "v2-crashloop", "--result-file", str(result_file))
    assert failed.returncode == 1
    assert json.loads(result_file.read_text())["outcome"] == "failed"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_cluster_errors_and_usage_errors(world, tmp_path) -> None:
    bad_token = tmp_path / "bad-kubeconfig"
    world.write_kubeconfig(str(bad_token), token="not-the-token")
    refused = d.deploy(world, "v1", extra_env={"KUBECONFIG": str(bad_token)})
    assert refused.returncode == 4
    assert refused.result["message"] == "get lease enadu-deploy-backend: HTTP 401 Unauthorized: the cluster refused the credentials"
    assert "not-the-token" not in refused.stdout + refused.stderr

    closed = tmp_path / "closed-kubeconfig"
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = open(world.kubeconfig).read().replace(world.url, f"https://127.0.0.1:{port}")
    closed.write_text(config)
    unreachable = d.deploy(world, "v1", extra_env={"KUBECONFIG": str(closed), "ENADU_API_DEADLINE": "2"})
    assert unreachable.returncode == 4
    assert unreachable.result["message"].startswith("get lease enadu-deploy-backend: the API server is unreachable (")

    bad_image = d.run(world, "deploy", "--image", "Registry/Backend:latest")
    assert bad_image.returncode == 2
    assert bad_image.result["message"] == (
        "--image: 'Registry/Backend:latest' is not an image reference to deploy: its repository path must be"
        " lower-case (the rule: [host[:port]/]path[:tag][@digest] with a tag or a digest, as"
        " github.com/distribution/reference parses it)")
    no_manifest = d.deploy(world, "v1", extra_env={"ENADU_MANIFEST": str(tmp_path / "missing.yaml")})
    assert no_manifest.returncode == 2
    assert no_manifest.result["message"] == f"manifest {tmp_path / 'missing.yaml'}: cannot read (No such file or directory)"
    assert d.helper_writes(world) == []


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_interrupted_deploy_cleans_up_the_idle_colour(world) -> None:
    ok(d.deploy(world, "v1"))
    proc = d.start(world, "deploy", "--image", d.image("v2-slow30"), "--timeout", "60s")
    world.wait_for(lambda w: d.deployment(w, "green") is not None, timeout=30, what="idle colour created")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert "interrupted by signal SIGTERM" in out
    assert d.selected_colour(world) == "blue" and d.replicas(world, "green") == 0
    assert world.get("leases", "enadu-deploy-backend", d.NAMESPACE) is None


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_the_bundle_deploys_from_an_empty_virtualenv(world, tmp_path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    run = d.deploy(world, "v1", bundle=True, python=str(venv / "bin" / "python"),
                   extra_env={"PYTHONPATH": None})
    assert ok(run)["colour"] == "blue"
    assert d.selected_colour(world) == "blue"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_deploys_rollbacks_and_aborts_are_annotated_in_grafana(world) -> None:
    from support.fakegrafana import FakeGrafana

    token = "glsa_enadu_test_token_5f1e"
    with FakeGrafana(token=token) as grafana:
        board = {"ENADU_GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": token}
        ok(d.deploy(world, "v1", extra_env=board))
        ok(d.deploy(world, "v2", extra_env=board))
        ok(d.deploy(world, "v2", extra_env=board))  # unchanged: nothing to annotate
        ok(d.run(world, "rollback", extra_env=board))
        ok(d.run(world, "abort", extra_env=board))
        grafana.fail_next(500, times=20)
        failing = d.deploy(world, "v3", extra_env={**board, "ENADU_GRAFANA_URL": grafana.url})
        annotations = [a.body for a in grafana.annotations]
    assert ok(failing)["outcome"] == "deployed", "a Grafana failure never fails a deploy"
    assert "grafana: annotation 'deployed' not posted: HTTP 500" in failing.stderr
    assert [(a["tags"][1:], a["text"].split(" - ")[0]) for a in annotations] == [
        (["backend", "blue", d.image("v1"), "deployed"], f"backend: deployed {d.image('v1')} on blue"),
        (["backend", "green", d.image("v2"), "deployed"], f"backend: deployed {d.image('v2')} on green"),
        (["backend", "blue", d.image("v1"), "rolled-back"], f"backend: rolled-back {d.image('v1')} on blue"),
        (["backend", "green", "aborted"], "backend: aborted (no image) on green"),
    ]
    assert all(a["tags"][0] == "enadu" and a["timeEnd"] >= a["time"] for a in annotations)
    assert token not in failing.stdout + failing.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_an_autoscaler_the_deploy_may_not_touch_does_not_fail_it(world) -> None:
    ok(d.deploy(world, "v1"))
    world.faults.add(Fault(verb="list", resource="horizontalpodautoscalers", status=403))
    run = d.deploy(world, "v2")
    assert ok(run)["outcome"] == "deployed" and d.selected_colour(world) == "green"
    assert "warning: could not retarget horizontalpodautoscalers from blue to green: list horizontalpodautoscalers:" \
           " HTTP 403 Forbidden" in run.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_interrupted_after_the_switch_says_what_is_live(world) -> None:
    ok(d.deploy(world, "v1"))
    proc = d.start(world, "deploy", "--image", d.image("v2"), "--scale-down-delay", "60s")
    world.wait_for(lambda w: d.selected_colour(w) == "green", timeout=60, what="the switch")
    world.wait_for(lambda w: w.get("leases", "enadu-deploy-backend", d.NAMESPACE) is not None, timeout=5)
    import time as _time

    _time.sleep(1.0)  # into the scale-down delay
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 6, out + err
    result = d.Run(proc.returncode, out, err).result
    assert result["outcome"] == "interrupted"  # issue 12: an interruption is reported as such (exit 6 after the switch)
    assert result["message"] == (f"interrupted by signal SIGTERM after the switch: the Service selects green"
                                 f" ({d.image('v2')}); backend-blue still runs (run deploy again to retire it)")
    assert d.selected_colour(world) == "green" and d.replicas(world, "blue") == 2
    again = ok(d.deploy(world, "v2", "--scale-down-delay", "0s"))
    assert again["outcome"] == "unchanged" and d.replicas(world, "blue") == 0


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_no_switch_back_to_a_colour_that_is_gone(world) -> None:
    ok(d.deploy(world, "v1"))
    # after the switch the endpoint wait is refused, and by then backend-blue reads as gone
    world.faults.add(Fault(verb="list", resource="endpointslices", status=403))
    world.faults.add(Fault(verb="get", resource="deployments", name="backend-blue", status=404, after=2))
    run = d.deploy(world, "v2", extra_env={"ENADU_SMOKE_PATH": ""})
    assert run.returncode == 6, run.stdout + run.stderr
    message = run.result["message"]
    assert "switching back to blue failed (refusing to point service backend at blue: deployment backend-blue" \
           " does not exist): the Service still selects green" in message
    assert d.selected_colour(world) == "green"  # fully available, so the invariant holds


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_boolean_environment_values_are_parsed(world, tmp_path) -> None:
    ok(d.deploy(world, "v1", extra_env={"ENADU_DRY_RUN": "false"}))
    assert d.selected_colour(world) == "blue", "ENADU_DRY_RUN=false must deploy"
    bad = d.deploy(world, "v2", extra_env={"ENADU_DRY_RUN": "maybe"})
    assert bad.returncode == 2
    assert bad.result["message"] == ("--dry-run (ENADU_DRY_RUN): 'maybe' is not true or false"
                                     " (1/true/yes/on or 0/false/no/off)")
    nowhere = d.deploy(world, "v2", "--result-file", str(tmp_path / "missing" / "deploy.json"))
    assert nowhere.returncode == 2
    assert nowhere.result["message"] == f"--result-file {tmp_path}/missing/deploy.json: its directory does not exist"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_the_progress_line_names_the_context_and_server_never_the_kubeconfig_path(world, tmp_path) -> None:
    """Issue 12, defect 4: in Jenkins the kubeconfig's path is the file credential's value, shown as ****."""
    import yaml

    path = tmp_path / "secretFiles" / "c0ffee" / "kubeconfig"
    path.parent.mkdir(parents=True)
    world.write_kubeconfig(str(path))
    run = d.run(world, "status", extra_env={"KUBECONFIG": str(path)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"using kubeconfig context kubeworld (server {world.url})" in run.stderr
    assert str(path) not in run.stdout + run.stderr and "c0ffee" not in run.stdout + run.stderr

    # user info, a path and a query in the server URL are never printed
    config = world.kubeconfig_dict()
    host = world.url.split("://", 1)[1]
    config["clusters"][0]["cluster"]["server"] = f"https://deployer:s3cr3t-pw@{host}/k8s/clusters/c-1?token=t0k3n"
    config["contexts"][0]["name"] = config["current-context"] = "prod-eu"
    userinfo = tmp_path / "userinfo-kubeconfig"
    userinfo.write_text(yaml.safe_dump(config))
    run = d.run(world, "status", extra_env={"KUBECONFIG": str(userinfo), "ENADU_API_DEADLINE": "2"})
    assert f"using kubeconfig context prod-eu (server {world.url})" in run.stderr
    for secret in ("deployer", "s3cr3t-pw", "t0k3n", "c-1", str(userinfo)):
        assert secret not in run.stdout + run.stderr, secret
