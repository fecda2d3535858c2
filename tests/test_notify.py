"""`enadu-helper notify` end to end against the fake Discord: delivery, retries, bounds, exit codes.

Each test runs the helper's real command line (``main(["notify", ...])``) with the environment the
vars/enaduNotify step sets, over real HTTP to tests/support/fakediscord on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from enadu_pipelines.helper import retry, webhook
from enadu_pipelines.helper.cli import main
from support.fakediscord import Drop, FakeDiscord, RateLimited, ServerError, Slow, pings

ROOT = Path(__file__).resolve().parent.parent
JENKINS = ("JOB_NAME", "BUILD_NUMBER", "BUILD_URL", "GIT_COMMIT", "GIT_BRANCH", "GIT_URL", "DISCORD_WEBHOOK_URL")
BUILD_URL = "https://ci.enadu.dev/job/enadu/job/backend/42/"


@pytest.fixture
def env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("ENADU_") or name in JENKINS:
            monkeypatch.delenv(name)
    values = {"ENADU_SERVICE": "backend", "ENADU_TITLE": "Enadu backend API", "ENADU_BUILD_RESULT": "SUCCESS",
              "ENADU_DURATION_MS": "193000", "JOB_NAME": "enadu/backend", "BUILD_NUMBER": "42",
              "BUILD_URL": BUILD_URL, "GIT_BRANCH": "origin/be-dev", "ENADU_NOTIFY_TIMEOUT": "10"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return monkeypatch


@pytest.fixture
def fake(env):
    with FakeDiscord() as server:
        env.setenv("DISCORD_WEBHOOK_URL", server.url)
        yield server


def notify(capsys, *argv):
    code = main(["notify", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def fields(message):
    return {f["name"]: f["value"] for f in message["payload"]["embeds"][0]["fields"]}


def write(path: Path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# delivery


def test_posts_one_embed_with_every_fact_of_the_build(fake, env, capsys, tmp_path):
    env.setenv("ENADU_CHANGES_FILE", write(tmp_path / "c.json", {
        "changed": True, "basis": "diff", "paths": ["backend/**", "common/**"], "build_url": BUILD_URL,
        "matched": [{"status": "M", "path": "backend/src/App.java"},
                    {"status": "R", "path": "common/new.txt", "old_path": "common/old.txt"}]}))
    env.setenv("ENADU_DEPLOY_FILE", write(tmp_path / "d.json", {
        "outcome": "deployed", "colour": "green", "previous_colour": "blue", "build_url": BUILD_URL,
        "image": "registry.enadu.dev/enadu/backend:42", "previous_image": "registry.enadu.dev/enadu/backend:41"}))
    code, out, err = notify(capsys)
    assert (code, err) == (0, "")
    assert out == "notify: posted SUCCESS of enadu/backend #42 to Discord\n"
    [message] = fake.messages
    [request] = fake.requests
    assert request.query == {"wait": "true"}
    embed = message["payload"]["embeds"][0]
    assert embed["title"] == "enadu/backend #42" and embed["url"] == BUILD_URL
    assert embed["color"] == 0x2ECC71 and embed["author"] == {"name": "Enadu backend API"}
    assert embed["description"] == "\u2705 Build succeeded in 3 min 13 s"
    assert fields(message) == {
        "Result": "SUCCESS", "Duration": "3 min 13 s", "Branch": "`be-dev`", "Commit": "unknown",
        "Changes": "2 changed files in `backend/**`, `common/**`:\nM `backend/src/App.java`\n"
                   "R `common/old.txt` \u2192 `common/new.txt`",
        "Deploy": "`registry.enadu.dev/enadu/backend:42` is live on **green** "
                  "(was blue, `registry.enadu.dev/enadu/backend:41`)",
    }
    assert message["pings"] == {"everyone": False, "roles": [], "users": []}


def test_failure_pings_the_role_and_says_why_the_deploy_failed(fake, env, capsys, tmp_path):
    env.setenv("ENADU_BUILD_RESULT", "FAILURE")
    env.setenv("ENADU_MENTION_ROLE", "123456789012345678")
    env.setenv("ENADU_DEPLOY_FILE", write(tmp_path / "d.json", {
        "outcome": "rolled-back", "colour": "green", "previous_colour": "blue",
        "image": "registry.enadu.dev/enadu/backend:abc1234-42",
        "message": "endpoints never converged",
        "analysis": {"stage": "after switch", "outcome": "failed", "checks": [
            {"name": "success rate", "shown": "0.62", "comparison": ">=", "threshold": 0.99, "status": "failed"}]}}))
    assert notify(capsys)[0] == 0
    [message] = fake.messages
    assert message["pings"] == {"everyone": False, "roles": ["123456789012345678"], "users": []}
    assert message["payload"]["content"] == "<@&123456789012345678> enadu/backend #42 failed"
    assert fields(message)["Deploy"] == (
        "`registry.enadu.dev/enadu/backend:abc1234-42` failed on **green** and traffic went back to **blue**:"
        " endpoints never converged\nanalysis after switch: **failed** - success rate 0.62 (\\>= 0.99): failed")
    assert fields(message)["Changes"] == "not reached"


def test_a_deploy_pre_empted_by_a_rollback_names_who_rolled_it_back_and_why(fake, env, capsys, tmp_path):
    """A rollback that took over a deploy in its scale-down delay: the deploy did not fail, a person
    rolled it back; Discord says who and why (hostile text escaped, no ping)."""
    env.setenv("ENADU_BUILD_RESULT", "FAILURE")
    env.setenv("ENADU_DEPLOY_FILE", write(tmp_path / "d.json", {
        "outcome": "rolled-back", "colour": "green", "previous_colour": "blue",
        "image": "registry.enadu.dev/enadu/backend:abc1234-42", "rolled_back_by": "jenkins-enadu-backend-ops-3",
        "rollback_reason": "rollback: v2 breaks **checkout** @everyone",
        "message": "rolled back by jenkins-enadu-backend-ops-3 during the scale-down delay"}))
    assert notify(capsys)[0] == 0
    [message] = fake.messages
    assert fields(message)["Deploy"] == (
        "`registry.enadu.dev/enadu/backend:abc1234-42` was live on **green** until `jenkins-enadu-backend-ops-3`"
        " rolled it back (rollback: v2 breaks \\*\\*checkout\\*\\* @everyone); traffic is back on **blue**")
    assert message["pings"] == {"everyone": False, "roles": [], "users": []}


def test_commit_message_from_git_cannot_ping_and_links_to_github(fake, env, capsys, tmp_path):
    repo = tmp_path / "repo"
    subject = "@everyone <@&999999999999999999> **fix** \U0001F680 " + "long " * 400
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-q", "--allow-empty", "-m", subject + "\n\nbody"], check=True)
    sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.strip()
    env.setenv("GIT_COMMIT", sha)
    env.setenv("GIT_URL", "https://github.com/enadu/enadu.git")
    assert notify(capsys, "--repo", str(repo))[0] == 0
    [message] = fake.messages
    commit = fields(message)["Commit"]
    assert commit.startswith(f"[`{sha[:7]}`](https://github.com/enadu/enadu/commit/{sha}) @everyone \\<@&9999")
    assert commit.endswith("\u2026") and len(commit) <= 1024
    assert message["pings"] == {"everyone": False, "roles": [], "users": []}


def test_results_written_for_another_build_are_ignored(fake, env, capsys, tmp_path):
    env.setenv("ENADU_DEPLOY_FILE", write(tmp_path / "d.json", {
        "outcome": "deployed", "colour": "green", "build_url": "https://ci.enadu.dev/job/enadu/job/backend/41/"}))
    assert notify(capsys)[0] == 0
    # enaduDeploy set ENADU_DEPLOY_FILE as it started the helper, which left no result of this build
    assert fields(fake.messages[0])["Deploy"] == "**interrupted**: the deploy started but left no result\nlive: unknown"


def test_json_output_is_one_object(fake, capsys):
    code, out, _ = notify(capsys, "--output", "json")
    report = json.loads(out)
    assert code == 0
    assert report["delivered"] is True and report["status"] == 200 and report["attempts"] == 1
    assert report["message_id"] == fake.messages[0]["id"]


# ---------------------------------------------------------------------------------------------
# retries and bounds


@pytest.mark.parametrize("limit", [
    RateLimited(retry_after=0.05),  # JSON retry_after and Retry-After
    RateLimited(retry_after=0.05, in_body=False),  # Retry-After only
    RateLimited(retry_after=0.05, in_body=False, in_header=False),  # X-RateLimit-Reset-After only
    RateLimited(retry_after=0.05, scope="global"),
])
def test_a_429_is_retried(fake, capsys, limit):
    fake.script(limit)
    code, out, err = notify(capsys)
    assert code == 0 and "after 2 attempts" in out
    assert "attempt #1/7 failed: HTTP 429 rate limited" in err
    assert [r.status for r in fake.requests] == [429, 200] and len(fake.messages) == 1


def test_5xx_and_dropped_connections_are_retried_with_backoff(fake, capsys):
    fake.script(ServerError(502), Drop(), ServerError(500))
    code, out, err = notify(capsys)
    assert code == 0 and "after 4 attempts" in out
    lines = err.splitlines()
    assert lines[0] == "notify Discord: attempt #1/7 failed: HTTP 502 Internal Server Error; will retry in 0.5 s"
    assert lines[1].startswith("notify Discord: attempt #2/7 failed: connection failed: RemoteDisconnected")
    assert lines[2].endswith("will retry in 2.0 s")
    assert len(fake.messages) == 1


def test_the_wait_honours_retry_after_and_x_ratelimit_reset_after(fake):
    body = {"embeds": [{"title": "t"}], "allowed_mentions": {"parse": []}}
    for limit, expected in ((RateLimited(retry_after=3.25), 3.25),  # JSON wins over the rounded header (4)
                            (RateLimited(retry_after=3.25, in_body=False), 4.0),
                            (RateLimited(retry_after=3.25, in_body=False, in_header=False), 3.25)):
        fake.script(limit)
        waits = []
        delivery = webhook.deliver(webhook.prepare_url(fake.url), body, deadline=30, sleep=waits.append)
        assert delivery.attempts == 2 and waits == [expected]


def test_retry_after_parses_seconds_and_http_dates():
    assert webhook.retry_after({"retry_after": 1.5}, {"Retry-After": "9"}) == 1.5
    assert webhook.retry_after(None, {"Retry-After": "7"}) == 7.0
    assert webhook.retry_after(None, {"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"},
                               now=lambda: 1445412480.0) == 10.0
    assert webhook.retry_after({"retry_after": "soon"}, {"X-RateLimit-Reset-After": "0.25"}) == 0.25
    assert webhook.retry_after({}, {}) is None


def test_a_retry_after_beyond_the_bound_gives_up_at_once(fake, env, capsys):
    env.setenv("ENADU_NOTIFY_TIMEOUT", "5")
    fake.script(RateLimited(retry_after=60))
    code, out, err = notify(capsys)
    assert (code, out) == (0, "")
    assert err.splitlines()[-1] == ("notify: Discord message not delivered after 1 attempt(s): HTTP 429 rate "
                                    "limited (user), retry after 60 s; build result unchanged")
    assert len(fake.requests) == 1


def test_5xx_until_the_policy_runs_out(fake):
    fake.script(*[ServerError(503)] * 10)
    waits = []
    with pytest.raises(webhook.WebhookError) as caught:
        webhook.deliver(webhook.prepare_url(fake.url), {"content": "x"}, deadline=30, sleep=waits.append)
    assert str(caught.value) == "not delivered after 7 attempt(s): HTTP 503 Internal Server Error"
    assert waits == [0.5, 1, 2, 4, 8, 15] and len(fake.requests) == 7


def test_a_slow_answer_is_cut_by_the_bound(fake, env, capsys):
    env.setenv("ENADU_NOTIFY_TIMEOUT", "1")
    fake.script(Slow(4))
    code, out, err = notify(capsys)
    assert (code, out) == (0, "")
    assert "not delivered after 1 attempt(s): no answer in time; build result unchanged" in err


def test_strict_turns_a_lost_message_into_exit_1(fake, env, capsys):
    env.setenv("ENADU_STRICT", "1")
    env.setenv("ENADU_NOTIFY_TIMEOUT", "1")
    fake.script(Slow(4))
    code, _, err = notify(capsys)
    assert code == 1 and err.rstrip().endswith("failing the build (strict)")


def test_the_bound_holds_even_if_the_sending_thread_hangs(fake):
    fake.script(ServerError())
    release = threading.Event()
    try:  # a sleep that never returns and a clock that never moves: only the watchdog can end this
        with pytest.raises(webhook.WebhookError, match=r"^not delivered: no answer within the 0.5 s bound$"):
            webhook.deliver(webhook.prepare_url(fake.url), {"content": "x"}, deadline=0.5,
                            policy=retry.Policy(backoffs=(0.1,), deadline=0.5),
                            sleep=lambda seconds: release.wait(30), clock=lambda: 0.0)
    finally:
        release.set()
    assert len(fake.requests) == 1
    for thread in threading.enumerate():  # the abandoned sender ends once released ...
        if thread.name == "enadu-notify":
            thread.join(10)
    # ... and only then takes its log redaction off urllib3
    pool_filters = logging.getLogger("urllib3.connectionpool").filters
    assert not any(isinstance(f, webhook._RedactingFilter) for f in pool_filters)


@pytest.mark.parametrize(("url_of", "status", "said"), [
    (lambda f: f.url.rsplit("/", 1)[0] + "/wrong-token-" + "z" * 30, 401, "Invalid Webhook Token (code 50027)"),
    (lambda f: f"{f.base}/api/webhooks/42/{f.token}", 404, "Unknown Webhook (code 10015)"),
])
def test_a_refused_webhook_is_not_retried(fake, url_of, status, said):
    with pytest.raises(webhook.WebhookError) as caught:
        webhook.deliver(webhook.prepare_url(url_of(fake)), {"content": "x"}, deadline=10)
    assert str(caught.value) == (f"not delivered: the webhook refused the request: HTTP {status} {said}; "
                                 "check the webhook credential")
    assert caught.value.status == status and len(fake.requests) == 1


def test_a_rejected_payload_is_not_retried_and_discords_reason_is_shown(fake):
    with pytest.raises(webhook.WebhookError) as caught:
        webhook.deliver(webhook.prepare_url(fake.url), {"embeds": [{"title": "x" * 300}]}, deadline=10)
    assert str(caught.value) == ("not delivered: Discord rejected the message: HTTP 400 Invalid Form Body "
                                 "(code 50035): embeds.0.title: Must be 256 or fewer in length.")
    assert len(fake.requests) == 1


# ---------------------------------------------------------------------------------------------
# usage and dry run


@pytest.mark.parametrize(("name", "value", "said"), [
    ("ENADU_SERVICE", "", "ENADU_SERVICE (--service) is not set"),
    ("ENADU_SERVICE", "Back end", "is not a service name"),
    ("ENADU_BUILD_RESULT", "", "ENADU_BUILD_RESULT (--result) is not set"),
    ("ENADU_BUILD_RESULT", "GREEN", "is not one of SUCCESS, UNSTABLE, FAILURE, ABORTED, NOT_BUILT"),
    ("ENADU_DURATION_MS", "ten", "is not a number of milliseconds"),
    ("ENADU_MENTION_ROLE", "@devs", "is not a Discord role id"),
    ("ENADU_NOTIFY_TIMEOUT", "0", "is not a number of seconds"),
    ("ENADU_STRICT", "maybe", "ENADU_STRICT (--strict): 'maybe' is not true or false"),
])
def test_bad_environment_is_a_usage_error(fake, env, capsys, name, value, said):
    env.setenv(name, value)
    code, out, err = notify(capsys)
    assert code == 2 and out == ""
    assert err.startswith("enadu-helper notify: ") and said in err and len(err.splitlines()) == 1
    assert fake.requests == []


SECRET_TOKEN = "SeCrEtToKeN-" + "q" * 40


@pytest.mark.parametrize(("url", "said"), [
    (None, "DISCORD_WEBHOOK_URL is not set"),
    (f"ftp://discord.com/api/webhooks/1/{SECRET_TOKEN}", "is not an http(s) URL"),
    (f"http://discord.com/api/webhooks/1/{SECRET_TOKEN}", "must use https"),
    (f"https://user:{SECRET_TOKEN}@discord.com/api/webhooks/1/x", "must not contain a user name or password"),
    (f"https://discord.com/api/hooks/{SECRET_TOKEN}", "does not look like a webhook URL"),
])
def test_a_bad_webhook_url_is_a_usage_error_that_does_not_show_it(env, capsys, url, said):
    if url is None:
        env.delenv("DISCORD_WEBHOOK_URL", raising=False)
    else:
        env.setenv("DISCORD_WEBHOOK_URL", url)
    code, out, err = notify(capsys)
    assert code == 2 and said in err
    assert SECRET_TOKEN not in out + err


def test_the_webhook_url_cannot_be_given_on_the_command_line(fake, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["notify", "--webhook-url", fake.url])
    assert exited.value.code == 2
    assert fake.token not in capsys.readouterr().err


def test_dry_run_prints_the_payload_and_sends_nothing(fake, env, capsys):
    env.setenv("ENADU_BUILD_RESULT", "UNSTABLE")
    code, out, err = notify(capsys, "--dry-run")
    body = json.loads(out)
    assert (code, err) == (0, "")
    assert body["embeds"][0]["color"] == 0xF1C40F and body["allowed_mentions"] == {"parse": []}
    assert pings(body) == {"everyone": False, "roles": [], "users": []}
    assert fake.requests == []


def test_dry_run_imports_neither_kubernetes_nor_requests(tmp_path):
    script = ("import json, sys\n"
              "from enadu_pipelines.helper.cli import main\n"
              "code = main(['notify', '--dry-run'])\n"
              # a module whose code ran has __builtins__; the helper's lazy kubernetes packages
              # (enadu_pipelines/helper/kube/lazy.py) are in sys.modules, but none of their code ran
              "heavy = sorted(m for m, module in sys.modules.items()\n"
              "               if m.split('.')[0] in ('kubernetes', 'requests', 'urllib3') and '__builtins__' in vars(module))\n"
              "lazy = sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes')\n"
              "print(json.dumps({'code': code, 'heavy': heavy, 'lazy': lazy}))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENADU_") and k not in JENKINS}
    env.update(ENADU_SERVICE="backend", ENADU_BUILD_RESULT="SUCCESS", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=60, check=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": [], "lazy": ["kubernetes", "kubernetes.client", "kubernetes.client.api",
                                                       "kubernetes.client.models"]}


# ---------------------------------------------------------------------------------------------
# what the message says about the changes and the deploy


def dry_run_fields(capsys, *argv):
    code, out, _ = notify(capsys, "--dry-run", *argv)
    assert code == 0
    return {f["name"]: f["value"] for f in json.loads(out)["embeds"][0]["fields"]}


def test_the_changes_result_feeds_the_message(env, capsys, tmp_path):
    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for i in range(2):
        for n in range(12 if i else 1):
            (repo / "backend").mkdir(exist_ok=True)
            (repo / "backend" / f"F{n}_{i}.java").write_text(f"{n}\n")
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", f"commit {i}"], check=True)
    result = tmp_path / "changes.json"
    env.setenv("ENADU_PATHS", "backend/**")
    env.setenv("ENADU_RESULT_FILE", str(result))
    env.setenv("GIT_PREVIOUS_SUCCESSFUL_COMMIT", "HEAD~1")
    assert main(["changes", "--repo", str(repo), "--commit", "HEAD"]) == 0
    capsys.readouterr()
    env.setenv("ENADU_CHANGES_FILE", str(result))
    changes = dry_run_fields(capsys)["Changes"].splitlines()
    assert changes[0] == "12 changed files in `backend/**`:"
    # what was compared with, and why (no kubeconfig here: the last successful build)
    assert re.fullmatch(r"compared with the last successful build \([0-9a-f]{12}\): no cluster credentials "
                        r"\(KUBECONFIG\)", changes[1])
    assert changes[2] == "A `backend/F0_1.java`" and len(changes) == 13 and changes[-1] == "\u2026 and 2 more"


@pytest.mark.parametrize(("changes", "deploy", "said"), [
    ({"changed": False, "paths": ["backend/**"]}, None, "skipped: nothing changed"),
    ({"changed": True, "basis": "first-build", "reason": "first build"}, None, "not reached"),
    (None, {"outcome": "failed", "message": "ImagePullBackOff on backend-green"},
     "failed: ImagePullBackOff on backend-green; the live colour still serves"),
    (None, {"outcome": "unchanged", "image": "r/e/b:1", "colour": "blue"}, "`r/e/b:1` was already live on **blue**"),
    (None, {"outcome": "lock-held", "message": "held by build 41"}, "lock-held: held by build 41"),
    # issue 14: a deploy that retired the old colour before the proxies could see the switch says so
    (None, {"outcome": "deployed", "image": "r/e/b:2", "colour": "green", "previous_colour": "blue",
            "warnings": ["keeping the old colour only 1s after the switch", 7, "x\nFinished: SUCCESS"]},
     "`r/e/b:2` is live on **green** (was blue)\nwarning: keeping the old colour only 1s after the switch\n"
     "warning: x\\\\nFinished: SUCCESS"),  # shown as typed: an escaped backslash, then n
    (None, "{not json", "result file unreadable (JSONDecodeError)"),
    # review3 M3: a deploy of v3 that re-analysed v2's earlier switch and switched back deployed nothing
    (None, {"outcome": "rolled-back", "image": "r/e/b:2", "requested_image": "r/e/b:3", "colour": "green",
            "previous_colour": "blue", "message": "m"},
     "`r/e/b:3` was not deployed: `r/e/b:2`, live on **green** from an earlier deploy whose analysis never finished,"
     " failed its analysis now and traffic went back to **blue**: m"),
    # issue 12: a deploy that started and was cut short (an aborted or timed-out build)
    (None, {"state": "started", "image": "r/e/b:2"},
     "**interrupted**: the deploy of `r/e/b:2` started but did not finish (it left no final result)\nlive: unknown"),
    (None, {"state": "running", "image": "r/e/b:2", "colour": "green", "live_colour": "blue", "live_image": "r/e/b:1"},
     "**interrupted**: the deploy of `r/e/b:2` started but did not finish (it left no final result)\n"
     "live: **blue** `r/e/b:1` (when last seen)"),
    (None, {"state": "interrupted", "outcome": "interrupted", "image": "r/e/b:2", "live_colour": "blue",
            "live_image": "r/e/b:1", "cleanup_until": 1.0},
     "**interrupted**: the deploy of `r/e/b:2` was stopped; its clean-up did not report back\n"
     "live: **blue** `r/e/b:1` (when last seen)"),
    (None, {"state": "finished", "outcome": "interrupted", "image": "r/e/b:2", "live_colour": "green",
            "live_image": "r/e/b:2", "live_checked": True, "live_available": True,
            "message": "interrupted by signal SIGTERM after the switch: the Service selects green (r/e/b:2)"},
     "**interrupted**: interrupted by signal SIGTERM after the switch: the Service selects green (r/e/b:2)\n"
     "live: **green** `r/e/b:2`"),
    (None, {"state": "finished", "outcome": "interrupted", "live_colour": None, "live_checked": True,
            "message": "interrupted by signal SIGTERM before the switch: no colour is live yet"},
     "**interrupted**: interrupted by signal SIGTERM before the switch: no colour is live yet\nlive: no colour yet"),
])
def test_the_deploy_field(env, capsys, tmp_path, changes, deploy, said):
    for name, data in (("ENADU_CHANGES_FILE", changes), ("ENADU_DEPLOY_FILE", deploy)):
        if data is not None:
            path = tmp_path / f"{name}.json"
            path.write_text(data if isinstance(data, str) else json.dumps(data))
            env.setenv(name, str(path))
    assert dry_run_fields(capsys)["Deploy"] == said


def test_a_deploy_that_never_started_is_not_reached(env, capsys, tmp_path):
    env.setenv("ENADU_CHANGES_FILE", write(tmp_path / "c.json", {"changed": True, "basis": "diff", "matched": []}))
    assert dry_run_fields(capsys)["Deploy"] == "not reached"  # no ENADU_DEPLOY_FILE: enaduDeploy never ran


def test_an_interrupted_deploy_still_cleaning_up_is_waited_for(env, capsys, tmp_path):
    import time

    path = tmp_path / "d.json"
    write(path, {"state": "interrupted", "outcome": "interrupted", "build_url": BUILD_URL, "live_colour": "blue",
                 "cleanup_until": time.time() + 3})
    env.setenv("ENADU_DEPLOY_FILE", str(path))
    final = {"state": "finished", "outcome": "interrupted", "build_url": BUILD_URL, "live_colour": "blue",
             "live_image": "r/e/b:1", "live_checked": True, "message": "interrupted by signal SIGTERM before the switch"}
    writer = threading.Timer(0.5, lambda: os.replace(write(tmp_path / "new.json", final), path))  # atomic, as the helper
    writer.start()
    started = time.monotonic()
    said = dry_run_fields(capsys)["Deploy"]
    writer.join()
    assert said == "**interrupted**: interrupted by signal SIGTERM before the switch\nlive: **blue** `r/e/b:1`"
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize(("changes", "said"), [
    ({"changed": None, "error": "git is not installed on this agent"},
     "change detection failed: git is not installed on this agent"),
    ({"changed": False, "paths": ["backend/**", "common/**"]},
     "no change in `backend/**`, `common/**`; build and deploy skipped"),
    ({"changed": True, "basis": "not-ancestor", "reason": "previous successful commit 1234 is not an ancestor"},
     "previous successful commit 1234 is not an ancestor"),
    # issue 16: what "changed" was compared with, and why, in one line under the first
    ({"changed": True, "basis": "diff", "paths": ["backend/**"], "against": "live",
      "matched": [{"status": "M", "path": "backend/App.java"}],
      "compared_with": "compared with the commit live in enadu (0123456789ab, blue)"},
     "1 changed file in `backend/**`:\ncompared with the commit live in enadu (0123456789ab, blue)\n"
     "M `backend/App.java`"),
    ({"changed": False, "paths": ["backend/**"], "against": "previous",
      "compared_with": "compared with the last successful build (0123456789ab): no cluster credentials (KUBECONFIG)"},
     "no change in `backend/**`; build and deploy skipped\n"
     "compared with the last successful build (0123456789ab): no cluster credentials (KUBECONFIG)"),
    ({"changed": True, "basis": "first-build", "reason": "first build", "against": None,
      "compared_with": "compared with nothing: the cluster could not be read: " + "x" * 300},
     "first build\ncompared with nothing: the cluster could not be read: " + "x" * 105 + "\u2026"),
])
def test_the_changes_field(env, capsys, tmp_path, changes, said):
    env.setenv("ENADU_CHANGES_FILE", write(tmp_path / "c.json", changes))
    assert dry_run_fields(capsys)["Changes"] == said


def test_the_bundled_helper_delivers_with_its_own_dependencies(fake, tmp_path):
    """The zipapp Jenkins runs, with plain python3 and no site-packages: requests comes from the bundle."""
    bundle = ROOT / "resources" / "enadu" / "enadu-helper.pyz"
    env = {k: v for k, v in os.environ.items() if k.startswith(("ENADU_", "JOB_", "BUILD_", "GIT_", "DISCORD_"))}
    env.update(PATH=os.environ.get("PATH", "/usr/bin:/bin"), NO_PROXY="127.0.0.1", ENADU_BUILD_RESULT="ABORTED")
    fake.script(ServerError(503))
    proc = subprocess.run([sys.executable, "-I", "-S", str(bundle), "notify"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "notify: posted ABORTED of enadu/backend #42 to Discord after 2 attempts\n"
    assert fake.token not in proc.stdout + proc.stderr
    assert fake.messages[0]["payload"]["embeds"][0]["color"] == 0x95A5A6


# ---------------------------------------------------------------------------------------------
# operations builds (vars/enaduOps)


@pytest.mark.parametrize(("result", "said"), [
    # the REASON the operator typed (ENADU_ROLLBACK_REASON), shown as typed: markdown escaped, no ping, one line
    ({"outcome": "rolled-back", "message": "r/e/b:1 is live again in blue (was green)",
      "reason": "v2 breaks **checkout** @everyone <@&123456789012345678>\nFinished: SUCCESS"},
     "**rolled-back**: r/e/b:1 is live again in blue (was green)\n"
     "reason: v2 breaks \\*\\*checkout\\*\\* @everyone \\<@&123456789012345678\\>\\\\nFinished: SUCCESS"),
    # a rollback that failed still says why it was asked for
    ({"outcome": "lock-held", "message": "held by jenkins-enadu-backend-9", "reason": "v3 is not wanted"},
     "**lock-held**: held by jenkins-enadu-backend-9\nreason: v3 is not wanted"),
    ({"state": "interrupted", "outcome": "interrupted", "reason": "v3 is not wanted"},
     "**interrupted**: the rollback was stopped before it finished\nreason: v3 is not wanted"),
    # a result file is untrusted: a reason longer than the helper accepts is cut, a non-text one ignored
    ({"outcome": "rolled-back", "reason": "x" * 5000},
     "**rolled-back**\nreason: " + "x" * 279 + "\u2026"),
    ({"outcome": "rolled-back", "reason": {"not": "text"}}, "**rolled-back**"),
])
def test_an_ops_rollback_shows_its_reason(env, capsys, tmp_path, result, said):
    env.setenv("ENADU_ACTION", "rollback")
    env.setenv("ENADU_DEPLOY_FILE", write(tmp_path / "r.json", result))
    assert dry_run_fields(capsys)["Rollback"] == said


def test_the_reason_shown_is_bounded_as_the_helper_bounds_it():
    from enadu_pipelines.helper import notify as n
    from enadu_pipelines.helper.rollback import REASON_LIMIT

    assert n.REASON_SHOWN == REASON_LIMIT
