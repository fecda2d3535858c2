"""Issue 14, "Operate from Jenkins": each service's operations job ``<service>-ops``.

Bootstrap writes it next to the service's job (parameters ACTION and REASON, no concurrent builds, no
trigger, no registration build); render writes its pipeline (pipelines/<service>/Jenkinsfile.ops), which
runs the helper through vars/enaduOps with the deploy's credential and namespace, and reports to Discord
with the action in the title. REASON is untrusted text: it reaches the helper only as an environment
value, after a one-line, bounded check.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO

from enadu_pipelines import config
from enadu_pipelines.helper import notify
from enadu_pipelines.helper.retry import Policy
from enadu_pipelines.jenkins import bootstrap, jobs
from enadu_pipelines.steps import OPS_ACTIONS
from support.e2e import jobs as e2e_jobs
from support.fakejenkins import FakeJenkins, User, projects
from support.pipeline import scenarios as sc
from support.pipeline.client import harness

TOKEN = "ops-token-77c1"
SERVICES = ("backend", "batch", "frontend")
OPS_FILES = [REPO / "pipelines" / s / "Jenkinsfile.ops" for s in SERVICES]
PROPS = "properties/"


# -- render ---------------------------------------------------------------------------------------


def test_each_service_has_an_ops_pipeline_that_compiles_and_lints() -> None:
    """Compiled and linted with every other generated file by tests/test_groovy.py
    (test_every_generated_file_compiles, test_generated_groovy_lints_clean): here, that those tests
    do see the ops pipelines and their step, and what the ops pipeline must and must not contain."""
    from conftest import generated_groovy

    files = OPS_FILES + [REPO / "vars" / "enaduOps.groovy"]
    assert all(f.is_file() for f in files)
    assert set(files) <= set(generated_groovy(REPO))
    text = OPS_FILES[0].read_text()
    assert "githubPush" not in text and "triggers" not in text  # only a person starts it
    assert "disableConcurrentBuilds()" in text
    assert OPS_ACTIONS[0] == "status" and {"status", "rollback", "abort"} <= set(OPS_ACTIONS)


# -- bootstrap --------------------------------------------------------------------------------------


@pytest.fixture
def fake():
    with FakeJenkins({"admin": User("pw", (TOKEN,))}) as f:
        yield f


def run_bootstrap(fake, path: Path, **kw) -> bootstrap.Report:
    return bootstrap.run(config.load(path), url=fake.url, user="admin", token=TOKEN,
                         policy=Policy(backoffs=(0.0,), deadline=5.0), **kw)


def test_bootstrap_writes_the_ops_job_with_parameters_no_trigger_and_no_first_build(fake, tmp_path) -> None:
    path = projects.write(tmp_path, projects.enadu_yaml(["api"]))
    plan = run_bootstrap(fake, path, dry_run=True)
    assert [(i.name, i.action, i.first_build) for i in plan.items if i.kind == "job"] == [
        ("enadu/api", "create", "queue"), ("enadu/api-ops", "create", "")]
    assert "enadu/api-ops" in "\n".join(bootstrap.format_text(plan))
    report = run_bootstrap(fake, path)
    assert report.converged
    # Only the service's job got a registration build: an ops build runs an action.
    queued = [w.path.split("?")[0] for w in fake.writes() if "buildWithParameters" in w.path]
    assert queued == ["/job/enadu/job/api/buildWithParameters"]
    root = ET.fromstring(fake.config("enadu/api-ops"))
    assert root.findtext("definition/scriptPath") == "pipelines/api/Jenkinsfile.ops"
    assert root.findtext("definition/scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url") == \
        ET.fromstring(fake.config("enadu/api")).findtext(
            "definition/scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url")  # only the library's SCM
    assert root.find(PROPS + "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty") is None
    assert root.find("triggers") is not None and len(root.find("triggers")) == 0
    assert root.find(PROPS + "org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty") \
        is not None
    defs = root.findall(PROPS + "hudson.model.ParametersDefinitionProperty/parameterDefinitions/*")
    assert [(d.tag, d.findtext("name")) for d in defs] == [
        ("hudson.model.ChoiceParameterDefinition", "ACTION"), ("hudson.model.StringParameterDefinition", "REASON")]
    assert [c.text for c in defs[0].findall("choices/string")] == list(OPS_ACTIONS)
    assert jobs.is_ours(root.findtext("description"))
    # As the end-to-end controller loads it: no push trigger, no concurrent builds, default ACTION status.
    job = e2e_jobs.load("enadu/api-ops", fake.config("enadu/api-ops"))
    assert not job.github_push and not job.concurrent
    assert job.default_parameters() == {"ACTION": "status", "REASON": ""}
    # A second run finds nothing to change; --prune keeps both jobs.
    again = run_bootstrap(fake, path, prune=True)
    assert again.counts()["unchanged"] == 2 and again.writes == 0


def test_a_service_named_like_another_services_ops_job_is_refused(tmp_path) -> None:
    from enadu_pipelines.errors import ConfigError

    path = projects.write(tmp_path, projects.enadu_yaml(["api", "api-ops"]))
    with pytest.raises(ConfigError, match="api-ops.*operations job"):
        config.load(path)


# -- the pipeline in the harness (stub mode) -------------------------------------------------------

HOSTILE_REASONS = [
    "it's \"broken\" $(touch /tmp/enadu-pwned) `id` ${env.DISCORD_WEBHOOK_URL} \\ ; rm -rf / #",
    "'; sh 'id'; '",
]


def ops_scenario(params: dict, *, status: int = 0, outcome: dict | None = None) -> dict:
    project = sc.load_project()
    result = outcome or {"command": params.get("ACTION", "status"), "outcome": "rolled-back", "service": "backend",
                         "state": "finished", "message": "img is live again in blue (was green)"}
    rules = [sc.helper_rule(a, status=status, writes={"$ENADU_RESULT_FILE": json.dumps(result)}) for a in OPS_ACTIONS]
    return {
        "job": {"name": f"{project.jenkins.folder}/backend-ops", "buildNumber": 3,
                "jenkinsUrl": "https://jenkins.enadu.dev/", "fromScm": True,
                "scm": {"url": project.library.repository, "branch": project.library.version}},
        "credentials": sc.CREDENTIALS,
        "params": params,
        "sh": rules + [sc.helper_rule("notify")],
        "strictSh": True,
    }


def run_ops(params: dict, **kw):
    return harness().run(REPO / "pipelines" / "backend" / "Jenkinsfile.ops", scenario=ops_scenario(params, **kw))


@pytest.mark.parametrize("reason", HOSTILE_REASONS)
def test_a_hostile_reason_reaches_the_helper_as_data_only(reason) -> None:
    run = run_ops({"ACTION": "rollback", "REASON": reason})
    assert run.valid, run.errors
    assert run.result == "SUCCESS", run.describe()
    call = run.helper("rollback")
    assert call["env"]["ENADU_ROLLBACK_REASON"] == reason
    assert call["env"]["KUBECONFIG"]  # the deploy's kubeconfig credential, bound as a file
    assert call["env"]["ENADU_NAMESPACE"] == "enadu" and call["env"]["ENADU_SERVICE"] == "backend"
    assert call["env"]["ENADU_MANIFEST"]
    for entry in run.steps("sh"):
        assert reason not in entry["args"]["script"] and reason not in entry["args"].get("label", "")
    assert run.leaks == [] and run.violations == []
    notify_env = run.helper("notify")["env"]
    assert notify_env["ENADU_ACTION"] == "rollback"
    assert notify_env["ENADU_DEPLOY_FILE"] == call["env"]["ENADU_RESULT_FILE"]


@pytest.mark.parametrize("reason, why", [
    ("first line\n$(touch /tmp/enadu-pwned)", "does not match"),
    ("x" * 281, "does not match"),
    ("", "needs a REASON"),
    ("   ", "needs a REASON"),
])
def test_a_rollback_without_a_valid_reason_runs_nothing(reason, why) -> None:
    run = run_ops({"ACTION": "rollback", "REASON": reason})
    assert run.result == "FAILURE", run.describe()
    assert why in run.error["message"]
    assert run.helper_calls("rollback") == []
    assert run.helper("notify")["env"]["ENADU_ACTION"] == "rollback"  # the channel still hears of it


def test_a_build_without_parameters_runs_status_which_only_reads() -> None:
    run = run_ops({}, outcome={"command": "status", "outcome": "status", "live": "blue", "state": "finished",
                               "colours": {"blue": {"image": "r/b:1", "fully_available": True}, "green": None}})
    assert run.result == "SUCCESS", run.describe()
    assert [c["args"]["script"].splitlines()[-1] for c in run.helper_calls()][0].endswith(" status")
    assert run.helper_calls("rollback") == [] and run.helper_calls("abort") == []


def test_a_failed_action_fails_the_build_with_the_reason_of_its_exit_code() -> None:
    run = run_ops({"ACTION": "abort"}, status=3, outcome={"command": "abort", "outcome": "lock-held"})
    assert run.result == "FAILURE"
    assert run.error["message"] == ("enaduOps: abort backend: a deploy or another action of this service holds its"
                                    " lock (helper exit 3)")
    assert run.helper("abort")["env"]["ENADU_OLD_COLOUR"] == "delete"


# -- the Discord message -----------------------------------------------------------------------------


def test_the_discord_message_names_the_action_and_its_result(tmp_path) -> None:
    result = tmp_path / "ops.json"
    result.write_text(json.dumps({"command": "rollback", "outcome": "rolled-back", "state": "finished",
                                  "message": "r/b:1 is live again in blue (was green)"}))
    opts = {"action": "rollback", "service": "backend", "title": "Backend", "result": "SUCCESS",
            "duration_ms": 4200, "role": None, "timeout": 5.0, "strict": False}
    env = {"JOB_NAME": "enadu/backend-ops", "BUILD_NUMBER": "3", "BUILD_URL": "https://j/job/enadu/job/backend-ops/3/"}
    from enadu_pipelines.helper import embed as embedmod

    payload = embedmod.payload(notify.build_message(opts, env, str(tmp_path), None, str(result)))
    [embed] = payload["embeds"]
    assert embed["title"] == "enadu/backend-ops #3: rollback"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert set(fields) == {"Result", "Duration", "Rollback"}
    assert fields["Rollback"] == "**rolled-back**: r/b:1 is live again in blue (was green)"


def test_the_e2e_loader_reads_both_forms_jenkins_writes_for_choices() -> None:
    """jenkinsci/jenkins core/src/main/java/hudson/model/ChoiceParameterDefinition.java: the field is
    ``List<String> choices``; an ``ArrayList`` (setChoices(List), the String[] constructor) is written as a
    plain ``<choices><string>`` list, the ``Arrays.asList`` of setChoicesText (a save from the job's form) as
    ``<choices class="java.util.Arrays$ArrayList"><a class="string-array">``. XStream reads either into the
    field, so the rendered plain form is valid, and the loader must read both."""
    saved = ("<flow-definition><properties><hudson.model.ParametersDefinitionProperty><parameterDefinitions>"
             "<hudson.model.ChoiceParameterDefinition><name>ACTION</name>"
             "<choices class=\"java.util.Arrays$ArrayList\"><a class=\"string-array\">"
             "<string>status</string><string>rollback</string></a></choices>"
             "</hudson.model.ChoiceParameterDefinition></parameterDefinitions>"
             "</hudson.model.ParametersDefinitionProperty></properties>"
             "<definition class=\"org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition\">"
             "<scm class=\"hudson.plugins.git.GitSCM\"><userRemoteConfigs><hudson.plugins.git.UserRemoteConfig>"
             "<url>https://git.example/enadu.git</url></hudson.plugins.git.UserRemoteConfig></userRemoteConfigs>"
             "<branches><hudson.plugins.git.BranchSpec><name>*/main</name></hudson.plugins.git.BranchSpec>"
             "</branches></scm><scriptPath>pipelines/api/Jenkinsfile.ops</scriptPath></definition>"
             "</flow-definition>")
    job = e2e_jobs.load("enadu/api-ops", saved)
    assert job.parameters == (("ACTION", "choice", "status"),) and job.default_parameters()["ACTION"] == "status"


# -- review2 M1: the ops job's promote asks the configured submitter, naming the held image ------------


def _manual_ops(tmp_path, submitter: str):
    from enadu_pipelines.render import render_files

    text = (REPO / "enadu.yaml").read_text()
    marker = "    kubernetes:\n      replicas: 1\n"
    assert text.count(marker) == 1
    extra = "      auto_promotion_enabled: false\n      auto_promotion_seconds: 900\n"
    if submitter:
        extra += f'      promotion_submitter: "{submitter}"\n'
    path = tmp_path / "enadu.yaml"
    path.write_text(text.replace(marker, marker + extra, 1))
    project = config.load(path)
    name = next(s.name for s in project.services if not s.auto_promotion_enabled)
    return name, render_files(project, b"")[f"pipelines/{name}/Jenkinsfile.ops"].decode()


def _promote_scenario(name: str, answers: list) -> dict:
    scenario = ops_scenario({"ACTION": "promote"}, outcome={
        "command": "promote", "outcome": "planned", "service": name, "state": "finished",
        "image": "registry.enadu.dev/enadu/backend:v2", "message": "dry run: nothing was changed"})
    scenario["job"]["name"] = scenario["job"]["name"].replace("backend-ops", f"{name}-ops")
    scenario["input"] = answers
    return scenario


def test_ops_promote_asks_the_promotion_submitter_and_promotes_the_image_it_showed(tmp_path) -> None:
    name, text = _manual_ops(tmp_path, "release-managers")
    run = harness().run(text=text, scenario=_promote_scenario(name, [
        {"answer": "proceed", "user": "mallory"},
        {"answer": "proceed", "user": "bob", "groups": ["release-managers"]}]))
    assert run.result == "SUCCESS", run.describe()
    asked = run.steps("input")
    assert len(asked) == 1 and asked[0]["args"]["submitter"] == "release-managers"
    assert "registry.enadu.dev/enadu/backend:v2" in asked[0]["args"]["message"]
    calls = run.helper_calls("promote")
    assert [c["env"].get("ENADU_DRY_RUN") or "" for c in calls] == ["true", ""], calls
    assert calls[1]["env"]["ENADU_IMAGE"] == "registry.enadu.dev/enadu/backend:v2"


def test_ops_promote_refused_by_the_submitter_promotes_nothing(tmp_path) -> None:
    name, text = _manual_ops(tmp_path, "release-managers")
    run = harness().run(text=text, scenario=_promote_scenario(name, [{"answer": "abort", "user": "alice",
                                                                      "groups": ["release-managers"]}]))
    assert run.result == "ABORTED", run.describe()
    assert len(run.helper_calls("promote")) == 1  # the dry run that read the held image only


def test_ops_promote_without_a_submitter_runs_at_once(tmp_path) -> None:
    name, text = _manual_ops(tmp_path, "")
    run = harness().run(text=text, scenario=_promote_scenario(name, []))
    assert run.result == "SUCCESS", run.describe()
    assert run.steps("input") == [] and len(run.helper_calls("promote")) == 1
