"""``enadu-pipelines bootstrap`` against the fake Jenkins: convergence, idempotence, drift, pruning,
failures, and the one-line errors with their exit codes."""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

from enadu_pipelines import config  # noqa: E402
from enadu_pipelines.cli import main  # noqa: E402
from enadu_pipelines.errors import JenkinsError  # noqa: E402
from enadu_pipelines.helper import retry  # noqa: E402
from enadu_pipelines.jenkins import bootstrap, jobs  # noqa: E402
from enadu_pipelines.jenkins.client import Client, HttpFailure  # noqa: E402
from support.fakejenkins import FakeJenkins, User, projects  # noqa: E402

TOKEN = "s3cret-token-4f2a9c"
PASSWORD = "hunter2-password"
FAST = retry.Policy(backoffs=(0.0, 0.0, 0.0), deadline=5.0)


@pytest.fixture
def fake():
    with FakeJenkins({"admin": User(PASSWORD, (TOKEN,)), "viewer": User("v", ("viewer-token",),
                                                                      frozenset({"read"}))}) as f:
        yield f


def cli(fake_url: str, cfg: Path, *args: str, token: str | None = TOKEN, user: str | None = "admin"):
    argv = ["bootstrap", "--url", fake_url, "--config", str(cfg), *args]
    if user:
        argv += ["--user", user]
    env = {"JENKINS_API_TOKEN": token} if token else {"JENKINS_API_TOKEN": ""}
    result = CliRunner().invoke(main, argv, env=env)
    assert TOKEN not in result.stdout + result.stderr  # never printed, whatever happened
    return result


def cfg(tmp_path: Path, services=3, **kwargs) -> Path:
    return projects.write(tmp_path, projects.enadu_yaml(services, **kwargs))


def run(fake: FakeJenkins, path: Path, **kwargs) -> bootstrap.Report:
    kwargs.setdefault("policy", FAST)
    return bootstrap.run(config.load(path), url=fake.url, user="admin", token=TOKEN, **kwargs)


def test_first_run_creates_folder_and_jobs_then_a_rerun_writes_nothing(fake, tmp_path):
    path = cfg(tmp_path, ["api", "web"])
    first = cli(fake.url, path)
    assert first.exit_code == 0, first.stdout + first.stderr
    assert "create  enadu/\n" in first.stdout
    assert "create  enadu/api" in first.stdout and "create  enadu/web" in first.stdout
    assert fake.item("enadu").is_folder
    for name in ("api", "web"):
        root = ET.fromstring(fake.config(f"enadu/{name}"))
        assert root.findtext("definition/scriptPath") == f"pipelines/{name}/Jenkinsfile"
        assert jobs.is_ours(root.findtext("description"))
    # crumb, listing, folder, 4 creates and 4 read-backs (each service's job and its -ops job), 2 registration
    # builds (none for the operations jobs)
    assert len(fake.log) <= 2 * 2 * 2 + 2 + 3
    fake.clear_log()
    again = cli(fake.url, path)
    assert again.exit_code == 0
    assert "unchanged  enadu/api" in again.stdout
    assert fake.writes() == []  # the registration builds still wait in the queue: none is queued again
    assert len(fake.log) <= 2 + 2 * 2


def test_first_run_queues_one_registration_build_per_new_job(fake, tmp_path):
    # Until a Pipeline job has run, WorkflowJob.getSCMs() lists only the library's repository, so a
    # push to the service's repository would start nothing: bootstrap queues one build that only
    # checks the service out (ENADU_REGISTER_ONLY=true), and says so.
    path = cfg(tmp_path, ["api", "web"])
    first = cli(fake.url, path)
    assert first.exit_code == 0, first.stdout + first.stderr
    assert first.stdout.count("first build: queued a registration build (ENADU_REGISTER_ONLY=true") == 2
    assert "2 registration build(s) queued" in first.stdout
    builds = [w for w in fake.writes() if "buildWithParameters" in w.path]
    assert [(w.path.split("?")[0], w.status) for w in builds] == [
        ("/job/enadu/job/api/buildWithParameters", 201), ("/job/enadu/job/web/buildWithParameters", 201)]
    for name in ("api", "web"):
        assert fake.take_queued(f"enadu/{name}") == [{"ENADU_REGISTER_ONLY": "true"}]
    # Taken by an executor and run: a job with a build gets no second registration build.
    fake.add_build("enadu/api", 1)
    fake.clear_log()
    again = cli(fake.url, path)
    assert again.exit_code == 0
    assert "queued a registration build" not in again.stdout.split("enadu/web")[0]
    assert [w.path.split("?")[0] for w in fake.writes()] == ["/job/enadu/job/web/buildWithParameters"]


@pytest.mark.parametrize("results, requeued", [
    ({1: "FAILURE"}, True),  # perhaps it never reached the checkout: pushes would not start the job
    ({1: "ABORTED"}, True),
    ({1: "NOT_BUILT"}, False),  # a registration build that did its work
    ({1: "NOT_BUILT", 2: "FAILURE"}, True),  # harmless: another registration build deploys nothing
    ({1: "SUCCESS", 2: "FAILURE"}, False),
    ({1: "UNSTABLE"}, False),
    ({1: None}, False),  # running now
])
def test_a_job_whose_builds_all_failed_gets_another_registration_build(fake, tmp_path, results, requeued):
    path = cfg(tmp_path, ["api"])
    run(fake, path)
    fake.take_queued("enadu/api")
    for number, result in results.items():
        fake.add_build("enadu/api", number, result)
    fake.clear_log()
    again = cli(fake.url, path)
    assert again.exit_code == 0, again.stdout + again.stderr
    queued = [w.path.split("?")[0] for w in fake.writes()]
    assert queued == (["/job/enadu/job/api/buildWithParameters"] if requeued else [])
    assert ("queued a registration build" in again.stdout) is requeued


def test_no_first_build_queues_nothing_and_says_what_that_means(fake, tmp_path):
    path = cfg(tmp_path, ["api"])
    result = cli(fake.url, path, "--no-first-build")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "first build: none queued (--no-first-build); pushes to the service's repository will not start" \
        in result.stdout
    assert not [w for w in fake.writes() if "buildWithParameters" in w.path]
    assert len(fake.log) <= 2 * 2 + 3


def test_dry_run_plans_the_registration_build_without_queueing(fake, tmp_path):
    result = cli(fake.url, cfg(tmp_path, ["api"]), "--dry-run", "--output", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    job, ops = [i for i in json.loads(result.stdout)["items"] if i["kind"] == "job"]
    assert job["first_build"] == "queue"
    assert (ops["name"], ops["action"], ops["first_build"]) == ("enadu/api-ops", "create", "")
    assert fake.writes() == []


def test_a_job_without_the_build_permission_reports_the_registration_build_failure(tmp_path):
    no_build = frozenset({"read", "create", "configure", "delete"})
    with FakeJenkins({"admin": User(PASSWORD, (TOKEN,), no_build)}) as f:
        result = cli(f.url, cfg(tmp_path, ["api"]))
    assert result.exit_code == 4
    assert "enadu/api: could not queue its registration build" in result.stdout + result.stderr


def test_edit_in_the_ui_is_shown_by_dry_run_and_reverted(fake, tmp_path):
    path = cfg(tmp_path, ["api", "web"])
    run(fake, path)
    fake.edit("enadu/api", lambda root: setattr(root.find("definition/scriptPath"), "text", "evil/Jenkinsfile"))
    fake.clear_log()
    plan = cli(fake.url, path, "--dry-run")
    assert plan.exit_code == 0
    assert "update  enadu/api" in plan.stdout
    assert "-    <scriptPath>evil/Jenkinsfile</scriptPath>" in plan.stdout
    assert "+    <scriptPath>pipelines/api/Jenkinsfile</scriptPath>" in plan.stdout
    assert "unchanged  enadu/web" in plan.stdout
    assert fake.writes() == []
    applied = cli(fake.url, path)
    assert applied.exit_code == 0
    assert ET.fromstring(fake.config("enadu/api")).findtext("definition/scriptPath") == "pipelines/api/Jenkinsfile"
    assert [(w.method, w.path) for w in fake.writes()] == [("POST", "/job/enadu/job/api/config.xml")]


def test_a_changed_configuration_updates_every_job_and_keeps_plugin_actions(fake, tmp_path):
    run(fake, cfg(tmp_path, ["api", "web"]))
    tracker = ("<org.jenkinsci.plugins.pipeline.modeldefinition.actions.DeclarativeJobPropertyTrackerAction>"
               "<jobProperties><string>x</string></jobProperties>"
               "</org.jenkinsci.plugins.pipeline.modeldefinition.actions.DeclarativeJobPropertyTrackerAction>")
    fake.edit("enadu/api", lambda root: root.find("actions").append(ET.fromstring(tracker)))
    assert run(fake, cfg(tmp_path, ["api", "web"])).counts()["unchanged"] == 4  # a build's actions are no drift
    report = run(fake, cfg(tmp_path, ["api", "web"], builds_to_keep=5))
    assert report.converged and report.counts()["update"] == 4
    root = ET.fromstring(fake.config("enadu/api"))
    assert root.findtext(".//numToKeep") == "5"
    assert root.find("actions/org.jenkinsci.plugins.pipeline.modeldefinition.actions."
                     "DeclarativeJobPropertyTrackerAction") is not None


def test_prune_deletes_only_jobs_carrying_the_marker(fake, tmp_path):
    run(fake, cfg(tmp_path, ["api", "web", "old"]))
    fake.put("enadu/handmade", b"<flow-definition><description>made by hand</description></flow-definition>")
    kept = cli(fake.url, cfg(tmp_path, ["api", "web"]))
    assert kept.exit_code == 0
    assert "keep  enadu/old  (no longer in enadu.yaml; --prune deletes it)" in kept.stdout
    assert fake.item("enadu/old") is not None
    plan = cli(fake.url, cfg(tmp_path, ["api", "web"]), "--prune", "--dry-run")
    assert "delete  enadu/old" in plan.stdout and fake.item("enadu/old") is not None
    pruned = cli(fake.url, cfg(tmp_path, ["api", "web"]), "--prune")
    assert pruned.exit_code == 0, pruned.stdout
    assert fake.item("enadu/old") is None
    assert fake.item("enadu/handmade") is not None
    assert "handmade" not in pruned.stdout


def test_nested_folders_are_created_parents_first(fake, tmp_path):
    report = run(fake, cfg(tmp_path, ["api"]), folder="teams/enadu")
    assert [i.name for i in report.items] == ["teams", "teams/enadu", "teams/enadu/api", "teams/enadu/api-ops"]
    assert report.converged
    creates = [w.path for w in fake.writes()]
    assert creates[:2] == ["/createItem?name=teams", "/job/teams/createItem?name=enadu"]


def test_existing_jobs_are_adopted_and_other_item_types_reported(fake, tmp_path):
    fake.put("enadu", jobs.render_folder())
    fake.put("enadu/api", b"<flow-definition><description>old api</description></flow-definition>")
    fake.put("enadu/web", b"<project><description>freestyle</description></project>")
    result = cli(fake.url, cfg(tmp_path, ["api", "web", "db"]))
    assert result.exit_code == 4
    assert "update  enadu/api  (adopting a job without the ownership marker)" in result.stdout
    assert "enadu/web exists but is a hudson.model.FreeStyleProject, not a Pipeline job" in result.stdout
    assert fake.item("enadu/db") is not None  # the others still converged
    assert result.stderr.strip() == "error: 1 item(s) did not converge; see the errors above"


def test_a_failing_job_does_not_stop_the_others(fake, tmp_path):
    fake.fail_next(1, status=500, method="POST", path_contains="createItem?name=api")
    result = cli(fake.url, cfg(tmp_path, ["api", "web"]))
    assert result.exit_code == 4
    lines = [line for line in result.stdout.splitlines() if "error:" in line]
    assert len(lines) == 1 and "enadu/api" in lines[0] and "HTTP 500" in lines[0]
    assert fake.item("enadu/web") is not None
    assert cli(fake.url, cfg(tmp_path, ["api", "web"])).exit_code == 0  # and the next run converges


def test_missing_plugin_dropping_the_trigger_is_named(fake, tmp_path):
    del fake.plugins["github"]
    report = run(fake, cfg(tmp_path, ["api"]))
    [folder, job, ops] = report.items
    assert not report.converged
    assert "dropped com.cloudbees.jenkins.GitHubPushTrigger" in job.error
    assert not ops.error  # the operations job has no trigger to drop
    assert "github plugin installed" in job.error


def test_missing_plugin_refusing_the_job_is_named(fake, tmp_path):
    del fake.plugins["workflow-job"]
    result = cli(fake.url, cfg(tmp_path, ["api"]))
    assert result.exit_code == 4
    assert "plugin(s) workflow-job not installed or not active" in result.stdout


def test_transient_failures_are_retried(fake, tmp_path):
    fake.fail_next(2, status=503, path_contains="config.xml", retry_after="0")
    fake.fail_next(1, status=502, path_contains="/job/enadu/api/json")
    lines: list[str] = []
    report = run(fake, cfg(tmp_path, ["api"]), log=lines.append)
    assert report.converged
    assert any("attempt #1/4 failed: HTTP 502" in line for line in lines)
    assert any("HTTP 503" in line for line in lines)


def test_json_output(fake, tmp_path):
    result = cli(fake.url, cfg(tmp_path, ["api"]), "--output", "json", "--dry-run")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["dry_run"] is True and data["converged"] is True
    assert [(i["name"], i["kind"], i["action"]) for i in data["items"]] == [
        ("enadu", "folder", "create"), ("enadu/api", "job", "create"), ("enadu/api-ops", "job", "create")]
    assert data["jenkins_version"] == "2.504.1"


@pytest.mark.parametrize("token, user, message", [
    ("wrong-token", "admin", "rejected the credentials (HTTP 401): use your user name with an API token"),
    (None, None, "requires authentication (HTTP 403 as anonymous)"),
])
def test_credential_problems_are_one_line_with_exit_3(fake, tmp_path, token, user, message):
    result = cli(fake.url, cfg(tmp_path, ["api"]), token=token, user=user)
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "wrong-token" not in result.stdout + result.stderr
    assert fake.writes() == []


def test_missing_permission_is_named(fake, tmp_path):
    report = bootstrap.run(config.load(cfg(tmp_path, ["api"])), url=fake.url, user="viewer",
                           token="viewer-token", policy=FAST)
    assert "missing permission hudson.model.Item.Create" in report.items[0].error


def test_csrf_rejection_hints_at_api_tokens(fake):
    client = Client(fake.url, user="admin", token=PASSWORD, policy=FAST)  # a password needs crumbs
    client.list_folder("")  # fetches the crumb under this session
    fake._salt = "controller restarted"  # every crumb issued so far is now invalid
    with pytest.raises(HttpFailure) as caught:
        client.create("x", jobs.render_folder())
    text = bootstrap.describe(caught.value, fake.url)
    assert "no valid CSRF crumb" in text and "API token" in text


def test_token_file(fake, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)  # others may not read it (tests/test_bootstrap_hostile.py)
    result = cli(fake.url, cfg(tmp_path, ["api"]), "--token-file", str(token_file), token=None)
    assert result.exit_code == 0, result.stderr
    token_file.write_text("\n")
    empty = cli(fake.url, cfg(tmp_path, ["api"]), "--token-file", str(token_file), token=None)
    assert empty.exit_code == 2 and "is empty" in empty.stderr
    no_user = cli(fake.url, cfg(tmp_path, ["api"]), user=None)
    assert no_user.exit_code == 2 and "needs --user" in no_user.stderr


@pytest.mark.parametrize("url, message", [
    ("ftp://jenkins.example.com/", "must be an http:// or https:// URL"),
    ("jenkins.example.com", "must be an http:// or https:// URL"),
    ("https://admin:pa55word@jenkins.example.com/", "must not contain credentials"),
    ("https://jenkins.example.com:99999/", "not a valid URL"),
    ("https://jenkins.example.com/?x=1", "without '?' or '#'"),
])
def test_bad_urls(tmp_path, url, message):
    result = cli(url, cfg(tmp_path, ["api"]))
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert "pa55word" not in result.stderr


def test_unreachable_controller(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again on exit: nothing listens there
    with pytest.raises(JenkinsError, match=r"cannot reach Jenkins at http://127\.0\.0\.1:\d+/: connection failed "
                                           r"\(gave up after 4 attempts\)"):
        bootstrap.run(config.load(cfg(tmp_path, ["api"])), url=f"http://127.0.0.1:{port}/", user="admin",
                      token=TOKEN, policy=FAST)


def test_something_that_is_not_jenkins(tmp_path):
    class Plain(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Plain)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = cli(f"http://127.0.0.1:{server.server_address[1]}/", cfg(tmp_path, ["api"]))
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 3
    assert "does not answer like Jenkins" in result.stderr


def test_folder_that_is_a_job(fake, tmp_path):
    fake.put("enadu", b"<flow-definition><description>x</description></flow-definition>")
    result = cli(fake.url, cfg(tmp_path, ["api"]))
    assert result.exit_code == 3
    assert "'enadu' on" in result.stderr and "is a org.jenkinsci.plugins.workflow.job.WorkflowJob, not a folder" \
        in result.stderr


def test_missing_folder_plugin_fails_the_folder_and_its_jobs(fake, tmp_path):
    del fake.plugins["cloudbees-folder"]
    report = run(fake, cfg(tmp_path, ["api"]))
    [folder, job, ops] = report.items
    assert "plugin(s) cloudbees-folder not installed or not active" in folder.error
    assert job.error == "enadu/api: not created because folder 'enadu' could not be"
    assert ops.error == "enadu/api-ops: not created because folder 'enadu' could not be"
    assert [w.path for w in fake.writes()] == ["/createItem?name=enadu"]
