"""An aborted or timed-out build: SIGTERM to a deploy in progress (issue 12, defect 3).

Jenkins sends SIGTERM to the `sh` step's processes and waits up to `SoftKillWaitSeconds` (5 s by
default) for them to exit (hudson.util.ProcessTree; core sends no SIGKILL after that, see
tests/support/e2e/executor.py), deletes the kubeconfig file credential and runs the pipeline's `post`
(enaduNotify).
So the helper must: have written a result as soon as it started; write `interrupted` at once on the
signal; clean up only what keeps the cluster consistent and release the deploy lock, within its
grace (interrupt.DEFAULT_GRACE); say in its final result what is live; and all that without its
kubeconfig file. Each test runs the helper as a real process against the Kubernetes test world,
whose invariant (the Service selects a fully available colour) is checked after every change, and
the notification that follows goes to the fake Discord.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enadu_pipelines.helper import interrupt
from tests.support import deployrun as d
from tests.support.deployrun import world, ok  # noqa: F401 (world is a fixture)

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 11}
BOUND = interrupt.DEFAULT_GRACE + 1.0  # the grace, plus the interpreter's start-up slack in a busy test run
NEXT_BUILD = {"ENADU_LOCK_IDENTITY": "jenkins-enadu-backend-8", "ENADU_LOCK_TIMEOUT": "3s"}


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def state_of(path: Path) -> str:
    try:
        return str(read(path).get("state"))
    except (OSError, ValueError):
        return ""


def wait_until(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)
    return time.monotonic() - started


def terminate(proc: subprocess.Popen, result_file: Path) -> tuple:
    """SIGTERM; returns (seconds until the result file said interrupted, seconds until the exit, out, err)."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    said = wait_until(lambda: state_of(result_file) in ("interrupted", "finished"), 2.0, "the interrupted result")
    out, err = proc.communicate(timeout=30)
    return said, time.monotonic() - sent, out, err


def notify(fake, result_file: Path) -> str:
    """The Deploy field of the message enaduNotify posts for the aborted build."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(d.REPO), "NO_PROXY": "127.0.0.1",
           "DISCORD_WEBHOOK_URL": fake.url, "ENADU_SERVICE": "backend", "ENADU_BUILD_RESULT": "ABORTED",
           "ENADU_DEPLOY_FILE": str(result_file), "BUILD_URL": d.BUILD_URL,
           "JOB_NAME": "enadu/backend", "BUILD_NUMBER": "7", "ENADU_NOTIFY_TIMEOUT": "10"}
    proc = subprocess.run([sys.executable, "-m", "enadu_pipelines.helper.cli", "notify"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    [message] = fake.messages[-1:]
    embed = message["payload"]["embeds"][0]
    return {f["name"]: f["value"] for f in embed["fields"]}["Deploy"]


@pytest.fixture
def fake():
    from support.fakediscord import FakeDiscord

    with FakeDiscord() as server:
        yield server


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_sigterm_during_the_availability_wait(world, tmp_path, fake) -> None:
    ok(d.deploy(world, "v1"))
    result_file = tmp_path / "deploy.json"
    proc = d.start(world, "deploy", "--image", d.image("v2-slow60"), "--timeout", "120s",
                   "--result-file", str(result_file))
    world.wait_for(lambda w: d.deployment(w, "green") is not None, timeout=30, what="idle colour created")
    running = read(result_file)  # written as the deploy started, before any result
    assert (running["state"], running["live_colour"], running["live_image"], running["colour"]) == (
        "running", "blue", d.image("v1"), "green")
    assert (running["service"], running["namespace"], running["image"]) == ("backend", d.NAMESPACE, d.image("v2-slow60"))

    said, exited, out, err = terminate(proc, result_file)
    assert said < 1.0, f"the interrupted result took {said:.2f} s"
    assert exited < BOUND, f"the helper took {exited:.2f} s to exit after SIGTERM"
    assert proc.returncode == 1, out + err
    final = read(result_file)
    assert (final["state"], final["outcome"], final["exit_code"]) == ("finished", "interrupted", 1)
    assert (final["live_colour"], final["live_image"], final["live_checked"], final["switched"]) == (
        "blue", d.image("v1"), True, False)
    assert final["message"] == "interrupted by signal SIGTERM before the switch: the Service selects blue" \
                               f" ({d.image('v1')})"
    assert d.selected_colour(world) == "blue" and d.replicas(world, "green") == 0 and d.replicas(world, "blue") == 2
    assert world.get("leases", "enadu-deploy-backend", d.NAMESPACE) is None

    deploy_field = notify(fake, result_file)
    assert deploy_field.startswith("**interrupted**: interrupted by signal SIGTERM before the switch")
    assert deploy_field.endswith(f"live: **blue** `{d.image('v1')}`")

    following = d.deploy(world, "v2", extra_env=NEXT_BUILD)  # another build: it must not wait for the lock
    assert ok(following)["outcome"] == "deployed" and d.selected_colour(world) == "green"
    assert "waiting for the deploy lock" not in following.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_sigterm_during_the_scale_down_delay(world, tmp_path, fake) -> None:
    ok(d.deploy(world, "v1"))
    result_file = tmp_path / "deploy.json"
    proc = d.start(world, "deploy", "--image", d.image("v2"), "--scale-down-delay", "60s",
                   "--result-file", str(result_file))
    world.wait_for(lambda w: d.selected_colour(w) == "green", timeout=60, what="the switch")
    wait_until(lambda: read(result_file).get("live_colour") == "green", 5, "the switch in the result file")
    time.sleep(0.5)  # into the scale-down delay

    said, exited, out, err = terminate(proc, result_file)
    assert said < 1.0, f"the interrupted result took {said:.2f} s"
    assert exited < BOUND, f"the helper took {exited:.2f} s to exit after SIGTERM"
    assert proc.returncode == 6, out + err
    final = read(result_file)
    assert (final["state"], final["outcome"], final["exit_code"]) == ("finished", "interrupted", 6)
    assert (final["live_colour"], final["live_image"], final["live_available"], final["switched"]) == (
        "green", d.image("v2"), True, True)
    assert final["message"] == (f"interrupted by signal SIGTERM after the switch: the Service selects green"
                                f" ({d.image('v2')}); backend-blue still runs (run deploy again to retire it)")
    # the old colour keeps running (an instant rollback target) as after any unfinished deploy
    assert d.selected_colour(world) == "green" and d.replicas(world, "blue") == 2
    assert world.get("leases", "enadu-deploy-backend", d.NAMESPACE) is None

    deploy_field = notify(fake, result_file)
    assert deploy_field.startswith("**interrupted**: interrupted by signal SIGTERM after the switch")
    assert deploy_field.endswith(f"live: **green** `{d.image('v2')}`")

    following = d.deploy(world, "v2", "--scale-down-delay", "0s", extra_env=NEXT_BUILD)
    assert ok(following)["outcome"] == "unchanged" and d.replicas(world, "blue") == 0
    assert "waiting for the deploy lock" not in following.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_the_clean_up_survives_the_kubeconfig_file_being_deleted(world, tmp_path) -> None:
    """Jenkins unbinds the file credential (deletes the kubeconfig) as soon as the aborted step fails."""
    ok(d.deploy(world, "v1"))
    credential = tmp_path / "secretFiles" / "kubeconfig"
    credential.parent.mkdir()
    shutil.copyfile(world.kubeconfig, credential)
    result_file = tmp_path / "deploy.json"
    proc = d.start(world, "deploy", "--image", d.image("v2-slow60"), "--timeout", "120s",
                   "--result-file", str(result_file), extra_env={"KUBECONFIG": str(credential)})
    world.wait_for(lambda w: d.deployment(w, "green") is not None, timeout=30, what="idle colour created")
    proc.send_signal(signal.SIGTERM)
    shutil.rmtree(credential.parent)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, out + err
    final = read(result_file)
    assert (final["outcome"], final["live_colour"], final["live_checked"]) == ("interrupted", "blue", True)
    assert "could not" not in err, err
    assert d.replicas(world, "green") == 0
    assert world.get("leases", "enadu-deploy-backend", d.NAMESPACE) is None


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_more_signals_during_the_clean_up_do_not_corrupt_the_result(world, tmp_path) -> None:
    ok(d.deploy(world, "v1"))
    result_file = tmp_path / "deploy.json"
    proc = d.start(world, "deploy", "--image", d.image("v2-slow60"), "--timeout", "120s",
                   "--result-file", str(result_file))
    world.wait_for(lambda w: d.deployment(w, "green") is not None, timeout=30, what="idle colour created")
    from tests.support.kubeworld.faults import Fault

    world.faults.add(Fault(verb="patch", resource="deployments/scale", latency=1.0))  # a clean-up that takes a while
    seen = []
    for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        proc.send_signal(sig)
        for _ in range(5):
            seen.append(read(result_file)["state"])  # always one whole JSON object
            time.sleep(0.01)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, out + err
    assert set(seen) <= {"running", "interrupted", "finished"} and "interrupted" in seen + [read(result_file)["state"]]
    final = read(result_file)
    assert (final["state"], final["outcome"], final["live_colour"]) == ("finished", "interrupted", "blue")
    assert "SIGINT again: still cleaning up" in err
    assert d.replicas(world, "green") == 0 and world.get("leases", "enadu-deploy-backend", d.NAMESPACE) is None


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_clean_up_that_cannot_finish_is_cut_at_the_grace(world, tmp_path) -> None:
    """An API server that stops answering: the watchdog writes the final result and exits at the grace."""
    from tests.support.kubeworld.faults import Fault

    ok(d.deploy(world, "v1"))
    result_file = tmp_path / "deploy.json"
    proc = d.start(world, "deploy", "--image", d.image("v2-slow60"), "--timeout", "120s",
                   "--result-file", str(result_file), extra_env={"ENADU_INTERRUPT_GRACE": "2s"})
    world.wait_for(lambda w: d.deployment(w, "green") is not None, timeout=30, what="idle colour created")
    world.faults.add(Fault(verb="get", resource="services", latency=6))
    world.faults.add(Fault(verb="get", resource="deployments", latency=6))
    said, exited, out, err = terminate(proc, result_file)
    assert said < 1.0 and exited < 2.0 + 1.0, (said, exited)
    final = read(result_file)
    assert (final["state"], final["outcome"]) == ("finished", "interrupted")
    assert d.selected_colour(world) == "blue"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_an_interruption_while_switching_back_advises_rollback_not_deploy(world, tmp_path, monkeypatch) -> None:
    """Issue 12 M1. The new colour failed after the switch (its endpoints: the EndpointSlice list is
    refused) and the helper is switching back when the signal lands, in the switch-back request: the
    Service still selects the failed colour. "Run deploy again" would keep it; going back is rollback's.
    The signal is raised in that request (in process: a real SIGTERM cannot be timed to one request)."""
    from enadu_pipelines.helper.cli import main
    from enadu_pipelines.helper.errors import Interrupted
    from enadu_pipelines.helper.kube import bluegreen as bg
    from tests.support.kubeworld.faults import Fault

    ok(d.deploy(world, "v1"))
    world.faults.add(Fault(verb="list", resource="endpointslices", status=403))
    real, switched = bg.switch, []

    def switch(kube, service, state, colour, *args, **kw):
        switched.append(colour)
        if len(switched) == 2:  # the switch back to blue
            raise Interrupted("SIGTERM")
        return real(kube, service, state, colour, *args, **kw)

    monkeypatch.setattr(bg, "switch", switch)
    for name, value in d.env(world, ENADU_SMOKE_PATH="").items():
        monkeypatch.setenv(name, value)
    result_file = tmp_path / "deploy.json"
    code = main(["deploy", "--image", d.image("v2"), "--result-file", str(result_file)])
    assert switched == ["green", "blue"]
    assert code == 6
    final = read(result_file)
    assert d.selected_colour(world) == "green" and d.replicas(world, "blue") == 2
    # review4 M3: the switch-back request was in flight: it may still land (blue live), and a rollback
    # then would go back to green, the colour that failed; status first
    assert final["switch_back_in_flight"] is True
    assert final["message"] == (
        f"interrupted by signal SIGTERM after the switch: the Service selects green ({d.image('v2')}); "
        "backend-blue still runs (green failed after the switch and the switch back to blue was interrupted in "
        "flight and may still land: run status; if green is still live, run rollback)")


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_an_interruption_during_the_switch_request_leaves_the_idle_colour_running(world, tmp_path, monkeypatch) -> None:
    """Issue 12 M2. The signal arrives while the switch's PATCH is in flight; the API server commits it
    only after the clean-up has read the Service (a slow server: the fault holds the request before
    handling it). The clean-up cannot know whether that request will land, so it must not scale the
    idle colour down (the Service would select a colour with no pods): it leaves it running and says
    the switch may have landed. The signal is raised in process while the request goes on in its own
    thread, as urllib3's connection would after the client stopped waiting for it."""
    import threading

    from enadu_pipelines.helper.cli import main
    from enadu_pipelines.helper.errors import Interrupted
    from enadu_pipelines.helper.kube import client
    from tests.support.kubeworld.faults import Fault

    ok(d.deploy(world, "v1"))
    world.faults.add(Fault(verb="patch", resource="services", latency=1.5, times=1))
    real, requests = client.Kube.json_patch_service, []

    def patch(self, name, ops):
        request = threading.Thread(target=real, args=(self, name, ops), daemon=True)
        request.start()  # sent; the server holds it
        requests.append(request)
        time.sleep(0.2)
        raise Interrupted("SIGTERM")

    monkeypatch.setattr(client.Kube, "json_patch_service", patch)
    for name, value in d.env(world, ENADU_SMOKE_PATH="").items():
        monkeypatch.setenv(name, value)
    result_file = tmp_path / "deploy.json"
    code = main(["deploy", "--image", d.image("v2"), "--result-file", str(result_file)])
    [request] = requests
    request.join(10)
    assert not request.is_alive()
    assert d.selected_colour(world) == "green"  # the request landed after the clean-up's read
    assert d.replicas(world, "green") == 2, "the Service selects green, which the clean-up scaled down"
    assert d.replicas(world, "blue") == 2
    final = read(result_file)
    assert code == 6
    assert (final["state"], final["outcome"]) == ("finished", "interrupted")
    assert final["switch_in_flight"] is True
    assert "the switch to green was in flight" in final["message"]
    assert "run status, then abort if green is not live or deploy again if it is" in final["message"]
