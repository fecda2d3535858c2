"""Issue 14, ``abortScaleDownDelaySeconds``: what happens to the idle colour (the preview) of a deploy
that failed or was aborted before its switch, and what ``status`` says about previews.

Argo Rollouts keeps an aborted update's preview ReplicaSet for ``abortScaleDownDelaySeconds``
(default 30, utils/defaults/defaults.go ``DefaultAbortScaleDownDelaySeconds``) before scaling it
down (rollout/replicaset.go ``reconcileNewReplicaSet``/``shouldDelayScaleDownOnAbort``, the
``scale-down-deadline`` annotation), and its 0 leaves it running for good
(docs/features/scaledown-aborted-rs.md). Ours is ``--abort-scale-down-delay``: a duration (``0s`` at
once) or ``never``. Assertions are on the Deployments and the Lease in the Kubernetes test world,
not on wall-clock times.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from enadu_pipelines.helper import exitcodes
from tests.support import deployrun as d
from tests.support.deployrun import ok, world  # noqa: F401 (world is a fixture)

FAST = {"time_scale": 0.1, "propagation_lag": 0.2, "seed": 33}
LEASE = f"enadu-deploy-{d.SERVICE}"
BROKEN = "v2-errors"  # passes its probes, answers 500: the smoke test fails, the pods keep running


def aborted_mark(world, colour: str = "green") -> dict:
    dep = d.deployment(world, colour) or {}
    return json.loads((dep.get("metadata", {}).get("annotations") or {}).get("enadu.io/aborted", "null") or "null")


def lease_holder(world) -> str:
    lease = world.get("leases", LEASE, d.NAMESPACE) or {}
    return (lease.get("spec") or {}).get("holderIdentity") or ""


def status_text(world) -> str:
    proc = subprocess.run(d.command("status"), env=d.env(world), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_failed_deploy_keeps_its_colour_for_the_delay_under_the_lock(world) -> None:
    ok(d.deploy(world, "v1"))
    # 15 s: long enough that the reads below land inside the delay even on a starved 2-core host
    proc = d.start(world, "deploy", "--image", d.image(BROKEN), extra_env={"ENADU_ABORT_SCALE_DOWN_DELAY": "15s"})
    try:
        world.wait_for(lambda w: aborted_mark(w) is not None, timeout=60, what="the aborted mark on backend-green")
        # inside the delay: the failed colour still runs, the deploy still holds the lock
        assert d.replicas(world, "green") == 2
        assert lease_holder(world) == "jenkins-enadu-backend-7"
        assert aborted_mark(world)["image"] == d.image(BROKEN)
        assert aborted_mark(world)["scale_down_at"]
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == exitcodes.FAILED, out + err
    result = json.loads(out.strip().splitlines()[-1])
    assert d.replicas(world, "green") == 0 and d.selected_colour(world) == "blue"
    assert "keeping backend-green" in err and "abort-scale-down-delay" in err, err
    assert "smoke test" in result["message"] and "scaled to 0 after" in result["message"], result


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_never_keeps_the_failed_colour_until_abort_and_it_is_never_promoted_or_rolled_back_to(world) -> None:
    ok(d.deploy(world, "v1"))
    failed = d.deploy(world, BROKEN, extra_env={"ENADU_ABORT_SCALE_DOWN_DELAY": "never"})
    assert failed.returncode == exitcodes.FAILED, failed.stdout + failed.stderr
    message = failed.result["message"]
    assert "kept" in message and "abort" in message, message
    assert failed.result["kept"] == {"colour": "green", "image": d.image(BROKEN), "scale_down_at": None}
    assert d.replicas(world, "green") == 2 and d.selected_colour(world) == "blue"
    assert lease_holder(world) == ""  # the lock is released: only the colour is kept
    # status says what the idle colour is
    text = status_text(world)
    assert f"kept after a failed deploy (image {d.image(BROKEN)})" in text, text
    status = ok(d.run(world, "status"))
    assert status["colours"]["green"]["preview"]["state"] == "kept", status
    assert status["colours"]["green"]["preview"]["image"] == d.image(BROKEN)
    # a kept failed colour is never put live: not by rollback (the history names no previous image
    # here, so only the mark stands between it and the Service) ...
    refused = d.run(world, "rollback")
    assert refused.returncode == exitcodes.USAGE, refused.stdout + refused.stderr
    assert "failed" in refused.result["message"] and "abort" in refused.result["message"], refused.result
    # ... nor by promote
    refused = d.run(world, "promote", "--image", d.image(BROKEN))
    assert refused.returncode == exitcodes.FAILED, refused.stdout + refused.stderr
    assert d.selected_colour(world) == "blue" and d.replicas(world, "green") == 2
    # a person's abort removes it at once
    aborted = ok(d.run(world, "abort", "--keep-old"))
    assert aborted["removed"] == ["green"]
    assert d.replicas(world, "green") == 0


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_an_interruption_during_the_delay_scales_down_at_once(world) -> None:
    ok(d.deploy(world, "v1"))
    proc = d.start(world, "deploy", "--image", d.image(BROKEN),
                   extra_env={"ENADU_ABORT_SCALE_DOWN_DELAY": "5m", "ENADU_INTERRUPT_GRACE": "10s"})
    try:
        world.wait_for(lambda w: aborted_mark(w) is not None, timeout=60, what="the aborted mark on backend-green")
        assert d.replicas(world, "green") == 2
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)  # the grace bounds it, not the 5 minutes
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == exitcodes.FAILED, out + err
    assert d.replicas(world, "green") == 0 and d.selected_colour(world) == "blue"
    assert json.loads(out.strip().splitlines()[-1])["outcome"] == "interrupted"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_an_interrupted_deploy_discards_at_once_whatever_the_delay(world) -> None:
    ok(d.deploy(world, "v1"))
    proc = d.start(world, "deploy", "--image", d.image("v2-slow30"),
                   extra_env={"ENADU_ABORT_SCALE_DOWN_DELAY": "never", "ENADU_INTERRUPT_GRACE": "10s"})
    try:
        world.wait_for(lambda w: (d.replicas(w, "green") or 0) > 0, timeout=60, what="backend-green started")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == exitcodes.FAILED, out + err
    assert d.replicas(world, "green") == 0 and aborted_mark(world) is None


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_status_shows_held_and_expired_previews_and_the_pipelines_abort_honours_the_delay(world) -> None:
    ok(d.deploy(world, "v1"))
    hold = d.deploy(world, "v2", "--hold", "--hold-valid-for", "1h")
    assert hold.returncode == exitcodes.HELD, hold.stdout + hold.stderr
    text = status_text(world)
    assert f"held for promotion ({d.image('v2')}, valid until " in text, text
    preview = ok(d.run(world, "status"))["colours"]["green"]["preview"]
    assert preview["state"] == "held" and preview["image"] == d.image("v2") and preview["valid_until"], preview
    # the pipeline's abort after a "no" passes the configured delay: never keeps the preview, marked
    aborted = ok(d.run(world, "abort", "--keep-old", extra_env={"ENADU_ABORT_SCALE_DOWN_DELAY": "never"}))
    assert aborted["outcome"] == "aborted" and aborted["kept"] == ["green"], aborted
    assert "abort" in aborted["message"] and "kept" in aborted["message"], aborted
    assert d.replicas(world, "green") == 2 and d.selected_colour(world) == "blue"
    assert f"kept after an abort (image {d.image('v2')})" in status_text(world)
    refused = d.run(world, "promote", "--image", d.image("v2"))
    assert refused.returncode == exitcodes.FAILED, refused.stdout + refused.stderr
    assert "aborted" in refused.result["message"], refused.result
    # a delay: kept, then scaled to 0 by the same command
    aborted = ok(d.run(world, "abort", "--keep-old", "--abort-scale-down-delay", "2s"))
    assert aborted["removed"] == ["green"] and d.replicas(world, "green") == 0, aborted


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_status_shows_an_expired_hold(world) -> None:
    ok(d.deploy(world, "v1"))
    hold = d.deploy(world, "v2", "--hold", "--hold-valid-for", "0s")
    assert hold.returncode == exitcodes.HELD, hold.stdout + hold.stderr
    time.sleep(1.5)
    text = status_text(world)
    assert "hold expired at " in text and "(cannot be promoted; abort removes it)" in text, text
    preview = ok(d.run(world, "status"))["colours"]["green"]["preview"]
    assert preview["state"] == "hold-expired", preview


def test_a_bad_abort_delay_is_a_usage_error(kubeworld) -> None:
    run = d.deploy(kubeworld, "v1", extra_env={"ENADU_ABORT_SCALE_DOWN_DELAY": "soon"})
    assert run.returncode == exitcodes.USAGE, run.stdout + run.stderr
    assert run.result["message"].startswith("--abort-scale-down-delay (ENADU_ABORT_SCALE_DOWN_DELAY): 'soon'"), \
        run.result


# -- review3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize("annotation", ["enadu.io/aborted", "enadu.io/held"])
def test_a_garbled_mark_is_no_mark_and_no_traceback(world, annotation) -> None:
    """review3 M1: a mark nested deeper than json's recursion limit, under the size cap, is read as no
    mark (as bluegreen.parse_history reads such a history), never a traceback."""
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2"))
    deep = "[" * 1500 + "]" * 1500
    done = world.kubectl("-n", d.NAMESPACE, "annotate", "--overwrite", "deployment", "backend-blue", f"{annotation}={deep}")
    assert done.returncode == 0, done.stderr
    for args in (("status",), ("rollback", "--dry-run"), ("rollback",)):
        run = d.run(world, *args)
        assert "Traceback" not in run.stdout + run.stderr and "RecursionError" not in run.stdout + run.stderr, args
        assert run.returncode == 0, (args, run.stdout, run.stderr)
    assert d.selected_colour(world) == "blue"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize("mark", [{"at": "2099-01-01T00:00:00Z"},
                                  {"at": "2099-01-01T00:00:00Z", "image": ["x"], "after": {"a": 1}, "reason": 7,
                                   "scale_down_at": 3}])
def test_an_aborted_mark_without_a_valid_image_still_counts_and_no_traceback(world, mark) -> None:
    """review4 M1: an aborted mark with a valid time but no (or an invalid) image, or fields of the
    wrong type, is a mark of a colour whose image is unknown (as abort writes for a colour it cannot
    name): status shows it kept, rollback and promote refuse it with one line, never a traceback."""
    ok(d.deploy(world, "v1"))
    held = d.deploy(world, "v2", "--hold")
    assert held.returncode == exitcodes.HELD, held.stdout + held.stderr
    done = world.kubectl("-n", d.NAMESPACE, "annotate", "--overwrite", "deployment", "backend-green",
                         "enadu.io/aborted=" + json.dumps(mark))
    assert done.returncode == 0, done.stderr
    status = d.run(world, "status")
    assert "Traceback" not in status.stdout + status.stderr, status.stderr
    preview = ok(status)["colours"]["green"]["preview"]
    assert preview["state"] == "kept" and preview["image"] is None, preview
    assert "image unknown" in status_text(world)
    promote = d.run(world, "promote")
    assert "Traceback" not in promote.stdout + promote.stderr, promote.stderr
    assert promote.returncode == exitcodes.FAILED, promote.stdout + promote.stderr
    assert "(image unknown) was aborted at 2099-01-01T00:00:00Z" in promote.result["message"], promote.result
    # without the held mark (which rollback checks first), the aborted mark alone refuses the rollback
    gone = world.kubectl("-n", d.NAMESPACE, "annotate", "deployment", "backend-green", "enadu.io/held-")
    assert gone.returncode == 0, gone.stderr
    for args in (("rollback", "--dry-run"), ("rollback",)):
        run = d.run(world, *args)
        assert "Traceback" not in run.stdout + run.stderr, (args, run.stderr)
        assert run.returncode == exitcodes.USAGE, (args, run.stdout, run.stderr)
        message = run.result["message"]
        assert "it runs an image it does not name, kept after a failed deploy at 2099-01-01T00:00:00Z" in message, message
        assert "\n" not in message, message
    assert d.selected_colour(world) == "blue"


@pytest.mark.parametrize("value", ["1h", "301s", "6m", "inf", "1e300s", "nan", "1e15"])
def test_an_abort_delay_beyond_five_minutes_or_not_finite_is_a_usage_error(kubeworld, value) -> None:
    """review3 M2, L1: the delay holds the deploy lock, so it is at most 5m (the default --lock-timeout:
    a deploy or abort started meanwhile gets the lock in time); ``never`` keeps it longer, unlocked.
    Values that are not finite are refused by parse_duration, for every duration flag."""
    run = d.deploy(kubeworld, "v1", extra_env={"ENADU_ABORT_SCALE_DOWN_DELAY": value})
    assert run.returncode == exitcodes.USAGE, run.stdout + run.stderr
    message = run.result["message"]
    assert message.startswith("--abort-scale-down-delay (ENADU_ABORT_SCALE_DOWN_DELAY): "), message
    assert "\n" not in message and "Traceback" not in run.stderr, run.stderr
    if value in ("1h", "301s", "6m"):
        assert "at most 5m" in message and "never" in message, message
    assert d.deployment(kubeworld, "blue") is None


def test_a_duration_that_is_not_finite_is_refused_everywhere() -> None:
    from enadu_pipelines.helper.errors import UsageProblem
    from enadu_pipelines.helper.report import parse_duration

    for text in ("inf", "-inf", "nan", "infs", "1e300s", "1e400", "1e15h"):
        with pytest.raises(UsageProblem, match=r"^--x: "):
            parse_duration(text, "--x")
    assert parse_duration("1.5m", "--x") == 90.0


def steal_lease(world, holder: str = "ops-9") -> None:
    lease = world.get("leases", LEASE, d.NAMESPACE)
    assert lease is not None
    done = world.kubectl("-n", d.NAMESPACE, "patch", "lease", LEASE, "--type=merge",
                         "-p", json.dumps({"spec": {"holderIdentity": holder}}))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_deploy_that_lost_its_lock_neither_marks_nor_scales_the_idle_colour(world) -> None:
    """review3 M4: "lost the deploy lock before the switch": the idle colour is no longer this deploy's
    to mark or scale (whoever holds the lock may be using it); it says so."""
    ok(d.deploy(world, "v1"))
    proc = d.start(world, "deploy", "--image", d.image("v2-slow15"),
                   extra_env={"ENADU_ABORT_SCALE_DOWN_DELAY": "5m", "ENADU_LOCK_TTL": "5s"})
    try:
        world.wait_for(lambda w: (d.replicas(w, "green") or 0) > 0, timeout=60, what="backend-green started")
        steal_lease(world)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == exitcodes.FAILED, out + err
    result = json.loads(out.strip().splitlines()[-1])
    assert "lost the deploy lock" in result["message"], result
    assert "left running" in result["message"], result
    assert aborted_mark(world) is None and "kept" not in result, result
    assert d.replicas(world, "green") == 2 and d.selected_colour(world) == "blue"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_someone_elses_switch_to_the_idle_colour_is_not_taken_for_ours(world) -> None:
    """review3 M4: a failed deploy that finds the Service on its idle colour claims the switch only when
    the Service's newest history entry is its own; someone else's is neither reported as ours nor
    scaled down (it is live)."""
    ok(d.deploy(world, "v1"))
    proc = d.start(world, "deploy", "--image", d.image("v2-slow15"), extra_env={"ENADU_ABORT_SCALE_DOWN_DELAY": "5m"})
    try:
        world.wait_for(lambda w: (d.replicas(w, "green") or 0) > 0, timeout=60, what="backend-green started")
        # someone else's switch to a colour not yet available: what the world's invariant forbids of us
        world.invariants.remove(f"{d.SERVICE} always serves a fully available colour")
        done = world.kubectl("-n", d.NAMESPACE, "patch", "service", d.SERVICE, "--type=merge",
                             "-p", json.dumps({"spec": {"selector": {"color": "green"}}}))
        assert done.returncode == 0, done.stderr
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == exitcodes.FAILED, out + err
    assert "someone else" in result["message"] and "had landed" not in result["message"], result
    assert d.selected_colour(world) == "green" and d.replicas(world, "green") == 2
    assert aborted_mark(world) is None


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_status_says_a_passed_scale_down_time_is_overdue(world) -> None:
    """review3 L2: the deploy that kept a colour was killed; its scale_down_at has passed and nothing
    will scale it down: status says so and names abort."""
    ok(d.deploy(world, "v1"))
    assert d.deploy(world, BROKEN, extra_env={"ENADU_ABORT_SCALE_DOWN_DELAY": "never"}).returncode == exitcodes.FAILED
    mark = {**aborted_mark(world), "scale_down_at": "2001-01-01T00:00:00Z"}
    done = world.kubectl("-n", d.NAMESPACE, "annotate", "--overwrite", "deployment", "backend-green",
                         "enadu.io/aborted=" + json.dumps(mark))
    assert done.returncode == 0, done.stderr
    text = status_text(world)
    assert "overdue since 2001-01-01T00:00:00Z: the deploy that kept it stopped; run abort" in text, text


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_the_aborted_mark_goes_when_the_colour_is_rewritten(world) -> None:
    """review3 L3: the next deploy rewrites the kept colour (ensure_colour): the mark goes with it, not
    by comparing times written by different machines."""
    ok(d.deploy(world, "v1"))
    assert d.deploy(world, BROKEN, extra_env={"ENADU_ABORT_SCALE_DOWN_DELAY": "never"}).returncode == exitcodes.FAILED
    assert aborted_mark(world) is not None
    held = d.deploy(world, "v3", "--hold")
    assert held.returncode == exitcodes.HELD, held.stdout + held.stderr
    assert aborted_mark(world) is None
    ok(d.run(world, "promote", "--image", d.image("v3")))
    assert d.selected_colour(world) == "green" and aborted_mark(world) is None


def test_an_aborted_colour_without_an_image_stays_unpromotable() -> None:
    """review3 L4: abort marks a colour whose image it cannot name with a null image (abort.py); that
    mark still counts: the colour is never promoted nor rolled back to, and status says it is kept."""
    from enadu_pipelines.helper.kube.promotion import aborted_mark as read_mark, kept, preview_state

    dep = {"metadata": {"annotations": {"enadu.io/aborted": json.dumps(
        {"image": None, "at": "2030-01-01T00:00:00Z", "after": "abort", "reason": "aborted", "scale_down_at": None})}},
        "spec": {"replicas": 2}}
    assert read_mark(dep) is not None and read_mark(dep)["image"] is None
    assert kept(dep, [], "green") is not None
    assert preview_state(dep, [], "green")["state"] == "kept"
    bad = {"metadata": {"annotations": {"enadu.io/aborted": json.dumps({"image": "Not An Image", "at": "2030-01-01T00:00:00Z"})}}}
    # review4 M1: an image that is no valid reference is an image it cannot name; the mark still counts
    assert read_mark(bad)["image"] is None and kept(bad, [], "green") is not None
    assert read_mark({"metadata": {"annotations": {"enadu.io/aborted": json.dumps({"image": None, "at": "soon"})}}}) is None


def test_a_deploy_knows_its_own_switch_by_its_recorded_identity() -> None:
    """review4 L-a: the history records ``by`` as bluegreen ``_recordable`` makes it (stripped, control
    characters replaced, cut to 256): a long or unusual lock identity (BUILD_TAG) still finds its own
    switch, and someone else's still is not taken for it."""
    from types import SimpleNamespace

    from enadu_pipelines.helper.deploy import Deployer
    from enadu_pipelines.helper.kube import bluegreen as bg

    identity = " jenkins-" + "enadu-backend-" * 30 + "7\tre-run "
    deployer = object.__new__(Deployer)
    deployer.switch_entry = {"at": "2030-01-01T00:00:00Z", "colour": "green", "image": d.image("v2"), "by": identity}
    recorded = bg._recordable(deployer.switch_entry)
    assert recorded["by"] != identity and len(recorded["by"]) == 256
    assert deployer.our_switch(SimpleNamespace(live="green", history=[recorded]), "green")
    other = {**recorded, "by": "jenkins-enadu-backend-8"}
    assert not deployer.our_switch(SimpleNamespace(live="green", history=[other]), "green")


@pytest.mark.parametrize("command, seconds", [("abort", 0.0), ("deploy", 30.0), ("promote", 30.0)])
def test_an_empty_abort_delay_is_that_commands_default(command, seconds, monkeypatch) -> None:
    """review4 L-f: ``--abort-scale-down-delay ""`` (an empty ENADU_ABORT_SCALE_DOWN_DELAY already falls
    back) is the command's own default: 0s for abort, 30s for deploy and promote."""
    from enadu_pipelines.helper.cli import build_parser
    from enadu_pipelines.helper.deploy import abort_delay

    monkeypatch.delenv("ENADU_ABORT_SCALE_DOWN_DELAY", raising=False)
    args = build_parser().parse_args([command, "--service", "backend", "--abort-scale-down-delay", ""])
    assert abort_delay(args) == seconds
