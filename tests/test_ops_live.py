"""The operations job live: the rendered ``pipelines/backend/Jenkinsfile.ops`` run by the pipeline harness
in live mode (tests/support/pipeline/README.md, "Live mode": real ``sh`` processes, workspace, file and
string credentials), with the real ``vars/enaduOps``, ``vars/enaduHelper`` and the bundled helper
(``python3 -I`` on its sha256-checked private copy) against the Kubernetes test world, and ``enaduNotify``
posting to the fake Discord (tests/support/fakediscord).

The build's parameters (ACTION, REASON) come from the job's config.xml in Jenkins; here they are the
scenario's ``params``. The rendered text is run as is except for the scale-down delay and its floor
(30 s each in enadu.yaml): the world's proxies lag well under a second, so they are lowered to 1 s and 0 s
as tests/support/deployrun.py does for every helper run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from enadu_pipelines.helper import exitcodes
from support.fakediscord import FakeDiscord
from support.pipeline.client import REPO, Run
from support.pipeline.live import LiveBuild
from tests.support import deployrun as d
from tests.support.deployrun import ok, world  # noqa: F401 (world is a fixture)

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 11}
OPS = REPO / "pipelines" / "backend" / "Jenkinsfile.ops"
JOB = "enadu/backend-ops"
KUBECONFIG_ID = "enadu-kubeconfig"
WEBHOOK_ID = "enadu-discord-webhook"


def hostile_reason(tmp_path: Path) -> str:
    """One printable line (what enaduOps and the helper accept) that a shell, a Groovy GString or a
    Discord client would act on if it were ever interpreted."""
    # Relative names: a shell would run them in the workspace, under tmp_path (searched afterwards).
    return ("v2 breaks logins $(touch dollar-ran) `touch tick-ran`; echo pwned > semi-ran & "
            "${env.KUBECONFIG} ${KUBECONFIG} \"'\\ @everyone <@&123> **bold** ||x|| \u00e9 \U0001f680")


def ops_text() -> str:
    text = OPS.read_text()
    for old, new in (("scaleDownDelay: '30s'", "scaleDownDelay: '1s'"),
                     ("scaleDownDelayFloor: '30s'", "scaleDownDelayFloor: '0s'")):
        assert text.count(old) == 1, f"{OPS} no longer says {old}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def fake():
    with FakeDiscord() as server:
        yield server


def ops_build(world, fake, tmp_path: Path, action: str, reason: str = "", number: int = 12,
              extra_env: dict | None = None) -> LiveBuild:
    scenario = {
        "job": {"name": JOB, "buildNumber": number},
        "params": {"ACTION": action, "REASON": reason},
        "credentials": {KUBECONFIG_ID: {"type": "file", "content": Path(world.kubeconfig).read_text()},
                        WEBHOOK_ID: {"type": "string", "secret": fake.url}},
    }
    agent_env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
                     **(extra_env or {}))
    agent_env.pop("KUBECONFIG", None)
    return LiveBuild(ops_text(), REPO, scenario, tmp_path / f"ws-{number}", agent_env=agent_env)


def run_ops(world, fake, tmp_path: Path, action: str, reason: str = "", number: int = 12, **kw) -> Run:
    return ops_build(world, fake, tmp_path, action, reason, number, **kw).start().wait(240)


def payload(fake) -> dict:
    [message] = fake.messages[-1:]
    return message["payload"]


def fields(embed: dict) -> dict:
    return {f["name"]: f["value"] for f in embed["fields"]}


def assert_no_secret(world, fake, run: Run, *texts: str) -> None:
    """Neither the webhook URL (nor its token), the kubeconfig's token, nor the credential file's path."""
    secrets = [fake.url, fake.token, world.token, "secretFiles"]
    for text in ("\n".join(run.log), *texts):
        for secret in secrets:
            assert secret not in text, f"a secret ({secret[:12]}...) leaked"


def deployed_twice(world) -> None:
    """blue served v1, green serves v2: a rollback goes back to blue (scaled to zero after the delay)."""
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2"))
    assert d.selected_colour(world) == "green" and d.replicas(world, "blue") == 0


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollback_from_the_ops_job_switches_back_and_records_the_reason_intact(world, fake, tmp_path) -> None:
    deployed_twice(world)
    reason = hostile_reason(tmp_path)
    run = run_ops(world, fake, tmp_path, "rollback", reason)
    assert run.result == "SUCCESS", run.describe()

    # The Service is back on the previous colour, which runs the previous image; green is retired.
    assert d.selected_colour(world) == "blue" and d.running_image(world, "blue") == d.image("v1")
    world.wait_for(lambda w: d.replicas(w, "green") == 0, timeout=30, what="green retired")
    newest = d.history(world)[0]
    assert (newest["colour"], newest["previous_colour"], newest["image"]) == ("blue", "green", d.image("v1"))
    assert newest["reason"] == f"rollback: {reason}"  # intact, byte for byte
    assert newest["by"] == "jenkins-enadu-backend-ops-12"  # the ops build holds the lock (its BUILD_TAG)

    # Never executed: no shell ran any part of it, and it is on no command line.
    assert not list(tmp_path.rglob("*-ran"))
    scripts = [e["args"]["script"] for e in run.trace if e.get("step") == "sh"]
    assert scripts and not any("touch" in s or "v2 breaks" in s for s in scripts)

    message = payload(fake)
    [embed] = message["embeds"]
    assert embed["title"] == f"{JOB} #12: rollback"
    assert embed["description"].startswith("\u2705 Build succeeded")
    got = fields(embed)
    assert got["Result"] == "SUCCESS"
    assert got["Rollback"].startswith(f"**rolled-back**: {d.image('v1')} is live again in blue (was green)")
    # the REASON shown as typed: Discord's markdown escaped, so the text reads as the operator typed it
    shown = re.sub(r"([\\*_~`|<>\[\]#])", r"\\\1", reason)
    assert got["Rollback"].splitlines()[1] == f"reason: {shown}", got["Rollback"]
    assert message.get("allowed_mentions", {}).get("parse") == []  # the reason's @everyone pings nobody
    assert fake.messages[-1]["pings"] == {"everyone": False, "roles": [], "users": []} \
        or not any(fake.messages[-1]["pings"].values())
    assert_no_secret(world, fake, run, json.dumps(message))


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_status_then_held_deploy_promoted_from_the_ops_job(world, fake, tmp_path) -> None:
    deployed_twice(world)
    status = run_ops(world, fake, tmp_path, "status", number=20)
    assert status.result == "SUCCESS", status.describe()
    [embed] = payload(fake)["embeds"]
    assert embed["title"] == f"{JOB} #20: status"
    text = fields(embed)["Status"]
    assert text.startswith("live: **green**")
    assert f"`{d.image('v2')}` fully available" in text
    assert_no_secret(world, fake, status, json.dumps(payload(fake)))

    held = d.deploy(world, "v3", "--hold", "--preview-replicas", "1")
    assert held.returncode == exitcodes.HELD and held.result["outcome"] == "held", held.stdout + held.stderr
    assert d.selected_colour(world) == "green"
    promote = run_ops(world, fake, tmp_path, "promote", number=21)
    assert promote.result == "SUCCESS", promote.describe()
    assert d.selected_colour(world) == "blue" and d.running_image(world, "blue") == d.image("v3")
    assert d.replicas(world, "blue") == 2  # scaled from the preview count to full before the switch
    [embed] = payload(fake)["embeds"]
    assert embed["title"] == f"{JOB} #21: promote"
    assert fields(embed)["Promote"].startswith("**promoted**")
    assert_no_secret(world, fake, promote, json.dumps(payload(fake)))


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollback_while_a_deploy_holds_the_lock_fails_with_exit_3_and_discord_says_so(world, fake, tmp_path) -> None:
    deployed_twice(world)
    result_file = tmp_path / "deploy.json"
    # A deploy of the service (the service's job, build 9) waiting for its new colour: not in its delay.
    deploy = d.start(world, "deploy", "--image", d.image("v3-slow60"), "--timeout", "120s",
                     "--result-file", str(result_file), extra_env={"ENADU_LOCK_IDENTITY": "jenkins-enadu-backend-9"})
    try:
        world.wait_for(lambda w: w.get("leases", "enadu-deploy-backend", d.NAMESPACE) is not None, timeout=30,
                       what="the deploy's lock")
        world.wait_for(lambda w: d.deployment(w, "blue") is not None
                       and d.running_image(w, "blue") == d.image("v3-slow60"), timeout=30, what="the new colour")
        # The agent's environment lowers how long the helper waits for the lock (5 min by default).
        run = run_ops(world, fake, tmp_path, "rollback", "v3 is not wanted", number=13,
                      extra_env={"ENADU_LOCK_TIMEOUT": "3s"})
        assert deploy.poll() is None, "the deploy ended before the rollback asked for the lock"
    finally:
        deploy.send_signal(signal.SIGTERM)
        deploy.communicate(timeout=60)
    assert run.result == "FAILURE", run.describe()
    assert run.error["message"] == ("enaduOps: rollback backend: a deploy or another action of this service holds"
                                    " its lock (helper exit 3)")
    log = "\n".join(run.log)
    assert "jenkins-enadu-backend-9" in log  # who holds it
    assert d.selected_colour(world) == "green"  # nothing switched
    assert not any(e.get("reason") == "rollback: v3 is not wanted" for e in d.history(world))

    message = payload(fake)
    [embed] = message["embeds"]
    assert embed["title"] == f"{JOB} #13: rollback"
    assert embed["description"].startswith("\u274c Build failed")
    got = fields(embed)
    assert got["Result"] == "FAILURE"
    assert got["Rollback"].startswith("**lock-held**") or "lock" in got["Rollback"], got["Rollback"]
    assert "jenkins-enadu-backend-9" in got["Rollback"]
    assert_no_secret(world, fake, run, json.dumps(message))
    time.sleep(0)  # the world's invariants are checked by the fixture


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize("odd", ["\u00a0", "\u202e", "\u200b", "\ufeff"])
def test_a_reason_the_helper_would_refuse_is_refused_by_the_step_first(world, fake, tmp_path, odd) -> None:
    """enaduOps and the helper apply one rule (Python's str.isprintable, which rollback.history_reason uses):
    a no-break space, a bidi override, a zero-width space or a BOM fails the step with its own message, not
    the helper's generic exit 2 after the kubeconfig was bound."""
    ok(d.deploy(world, "v1"))
    run = run_ops(world, fake, tmp_path, "rollback", f"spoofed{odd}reason", number=14)
    assert run.result == "FAILURE", run.describe()
    assert run.error["message"].startswith("enaduOps: argument 'reason' does not match"), run.error
    assert not [e for e in run.trace if e.get("step") == "withCredentials"
                and any(b.get("credentialsId") == KUBECONFIG_ID for b in e["args"].get("bindings", []))]
    assert d.selected_colour(world) == "blue"
