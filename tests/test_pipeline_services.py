"""The generated pipelines of backend, batch and frontend, run in the pipeline harness.

Each test runs pipelines/<service>/Jenkinsfile with the real generated vars/ steps and
resources/ through the Groovy harness (tests/support/pipeline), with a scenario saying what git,
the build tools, docker and the helper answer, and checks what Jenkins would do: which stages run
or are skipped, what each command sees in its environment, and what the Discord notification is
told. Expected values come from enadu.yaml and the scenario, never from a previous run.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from enadu_pipelines.helper import exitcodes
from support.pipeline import scenarios as sc
from support.pipeline.client import REPO, Run, harness

PROJECT = sc.load_project()
SERVICES = ["backend", "batch", "frontend"]
BUILD_STAGES = ["Build", "Image", "Deploy"]
_runs: dict[str, Run] = {}

# A change only in another service's paths. The frontend has a repository of its own and
# rebuilds on any change there ('**'), so its "nothing of mine changed" case is a build of the
# same commit (a manual rebuild): no changed file at all.
OTHER_SERVICE_CHANGE = {"backend": ["batch/src/main/Job.java"], "batch": ["backend/src/main/Api.java"], "frontend": []}
OWN_CHANGE = {"backend": ["backend/src/main/Api.java"], "batch": ["batch/src/main/Job.java"], "frontend": ["src/App.vue"]}


def run_service(name: str, **kwargs) -> Run:
    scenario = sc.service_scenario(PROJECT, name, **kwargs)
    key = json.dumps([name, scenario], sort_keys=True)
    if key not in _runs:
        run = harness().run(REPO / "pipelines" / name / "Jenkinsfile", scenario=scenario)
        assert run.valid, run.errors
        _runs[key] = run
    return _runs[key]


def stages_of(name: str) -> list[str]:
    svc = sc.service(PROJECT, name)
    return ["Checkout", "Changes"] + (["Test"] if svc.test_enabled else []) + BUILD_STAGES


def expected_image(name: str) -> str:
    return f"{sc.service(PROJECT, name).image}:{sc.COMMIT[:7]}-{sc.BUILD_NUMBER}"


def rule_duration(scenario_rule_id: str) -> int:
    return sc.DURATIONS[scenario_rule_id]


# ------------------------------------------------------------------------------------------------
# 1. A change only in another service's paths


@pytest.mark.parametrize("name", SERVICES)
def test_unrelated_change_runs_detection_then_skips_build_and_still_notifies(name):
    run = run_service(name, changed_files=OTHER_SERVICE_CHANGE[name])

    assert run.result == "SUCCESS", run.describe()
    assert run.stages["Checkout"] == "SUCCESS"
    assert run.stages["Changes"] == "SUCCESS"
    for stage in stages_of(name)[2:]:
        assert run.stages[stage] == "SKIPPED_FOR_CONDITIONAL", stage
        assert f'Stage "{stage}" skipped due to when conditional' in run.log
    changes = run.helper("changes")
    assert changes["status"] == exitcodes.UNCHANGED
    assert changes["env"]["ENADU_PATHS"].split("\n") == list(sc.service(PROJECT, name).paths)
    assert [e["rule"] for e in run.steps("sh")] == ["changes", "notify"]
    notify = run.helper("notify")
    assert notify["env"]["ENADU_BUILD_RESULT"] == "SUCCESS"
    assert notify["env"]["ENADU_CHANGED"] == "false"
    assert "ENADU_DEPLOY_FILE" not in notify["env"]
    assert "ENADU_IMAGE" not in notify["env"]


# ------------------------------------------------------------------------------------------------
# 2. A change in common/** rebuilds backend and batch (and anything rebuilds the frontend)


@pytest.mark.parametrize("name", ["backend", "batch"])
def test_common_change_builds_and_deploys_backend_and_batch(name):
    run = run_service(name, changed_files=["common/src/main/Shared.java"])

    assert run.result == "SUCCESS", run.describe()
    assert {stage: run.stages[stage] for stage in stages_of(name)} == {stage: "SUCCESS" for stage in stages_of(name)}
    assert run.helper("changes")["status"] == exitcodes.OK
    deploy = run.helper("deploy")
    assert deploy["env"]["ENADU_SERVICE"] == name
    assert deploy["env"]["ENADU_IMAGE"] == expected_image(name)


def test_common_change_is_not_the_frontends_business():
    frontend = sc.service(PROJECT, "frontend")
    assert frontend.repository != sc.service(PROJECT, "backend").repository
    run = run_service("frontend", changed_files=OWN_CHANGE["frontend"])
    assert run.stages["Deploy"] == "SUCCESS", run.describe()
    assert run.helper("changes")["env"]["ENADU_PATHS"] == "**"


# ------------------------------------------------------------------------------------------------
# 3. Unit tests fail (backend): no image, no deploy, the notification says FAILURE


def test_backend_unit_test_failure_stops_before_image_and_deploy():
    run = run_service("backend", test_exit=1, failed_tests=3)

    assert run.result == "FAILURE"
    assert run.error["message"] == "script returned exit code 1"
    assert run.stages["Test"] == "FAILURE"
    for stage in BUILD_STAGES:
        assert run.stages[stage] == "SKIPPED_FOR_FAILURE"
        assert f'Stage "{stage}" skipped due to earlier failure(s)' in run.log
    assert [e["rule"] for e in run.steps("sh")] == ["changes", "test", "notify"]
    junit = run.steps("junit")
    assert len(junit) == 1 and junit[0]["returned"]["failCount"] == 3  # published although the tests failed
    assert run.helper("notify")["env"]["ENADU_BUILD_RESULT"] == "FAILURE"
    # the JUnit counts reach the Discord message
    assert junit[0]["returned"]["totalCount"] == int(run.helper("notify")["env"]["ENADU_TESTS_TOTAL"])
    assert run.helper("notify")["env"]["ENADU_TESTS_FAILED"] == "3"
    assert not run.steps("enaduImage") and not run.steps("enaduDeploy")


@pytest.mark.parametrize("name", ["batch", "frontend"])
def test_services_without_a_test_gate_have_no_test_stage(name):
    run = run_service(name, changed_files=OWN_CHANGE[name])
    assert "Test" not in run.stages
    assert not run.steps("enaduTest") and not run.steps("junit")


# ------------------------------------------------------------------------------------------------
# 4. Image push fails; deploy fails


@pytest.mark.parametrize("name", SERVICES)
def test_failed_push_skips_deploy_and_notifies_failure(name):
    run = run_service(name, changed_files=OWN_CHANGE[name], push_exit=1)

    assert run.result == "FAILURE"
    assert run.stages["Image"] == "FAILURE"
    assert run.stages["Deploy"] == "SKIPPED_FOR_FAILURE"
    assert not run.helper_calls("deploy")
    notify = run.helper("notify")
    assert notify["env"]["ENADU_BUILD_RESULT"] == "FAILURE"
    assert "ENADU_IMAGE" not in notify["env"]  # nothing was pushed
    assert "ENADU_DEPLOY_FILE" not in notify["env"]


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("exit_code", sorted(exitcodes.DEPLOY_REASONS))
def test_failed_deploy_fails_the_build_and_the_notification_carries_its_outcome(name, exit_code):
    outcome = {"outcome": "failed", "service": name, "exit": exit_code}
    run = run_service(name, changed_files=OWN_CHANGE[name], deploy_exit=exit_code, deploy_outcome=outcome)

    assert run.result == "FAILURE"
    assert run.stages["Deploy"] == "FAILURE"
    assert run.error["message"] == f"enaduDeploy: {exitcodes.DEPLOY_REASONS[exit_code]} (helper exit {exit_code})"
    deploy = run.helper("deploy")
    notify = run.helper("notify")
    assert notify["env"]["ENADU_BUILD_RESULT"] == "FAILURE"
    assert notify["env"]["ENADU_DEPLOY_FILE"] == deploy["env"]["ENADU_RESULT_FILE"]
    assert notify["env"]["ENADU_IMAGE"] == expected_image(name)
    written = run.files[deploy["env"]["ENADU_RESULT_FILE"]]
    assert written["sha256"] == hashlib.sha256(json.dumps(outcome).encode()).hexdigest()


# ------------------------------------------------------------------------------------------------
# 5. Success: the image tag, the deployed image and what the notification is told


@pytest.mark.parametrize("name", SERVICES)
def test_success_tags_deploys_and_reports_the_same_image(name):
    run = run_service(name, changed_files=OWN_CHANGE[name])
    image = expected_image(name)

    assert run.result == "SUCCESS", run.describe()
    assert [run.stages[s] for s in stages_of(name)] == ["SUCCESS"] * len(stages_of(name))
    assert run.steps("enaduImage")[0]["returned"] == image
    docker = next(e for e in run.steps("sh") if e["rule"] == "image")
    assert docker["env"]["ENADU_IMAGE_REF"] == image
    assert docker["env"]["GIT_COMMIT"] == sc.COMMIT
    deploy = run.helper("deploy")
    assert deploy["env"]["ENADU_IMAGE"] == image
    assert run.steps("enaduDeploy")[0]["args"]["image"] == image

    notify = run.helper("notify")
    assert notify["env"]["ENADU_BUILD_RESULT"] == "SUCCESS"
    assert notify["env"]["ENADU_IMAGE"] == image
    assert notify["env"]["ENADU_DEPLOY_FILE"] == deploy["env"]["ENADU_RESULT_FILE"]
    assert notify["env"]["GIT_COMMIT"] == sc.COMMIT
    assert notify["env"]["GIT_PREVIOUS_SUCCESSFUL_COMMIT"] == sc.PREVIOUS_COMMIT
    assert notify["env"]["BUILD_URL"] == f"https://jenkins.enadu.dev/job/enadu/job/{name}/{sc.BUILD_NUMBER}/"
    # Everything that took time before the notification, on the scenario's clock.
    before = [e["rule"] for e in run.steps("sh") if e["seq"] < notify["seq"]]
    expected_ms = sc.DURATIONS["checkout"] + sum(sc.DURATIONS[r] for r in before)
    assert int(notify["env"]["ENADU_DURATION_MS"]) == expected_ms


@pytest.mark.parametrize("name", SERVICES)
def test_the_job_does_not_check_out_the_pipelines_repository_into_the_workspace(name):
    """Jenkins reads the Jenkinsfile from the pipelines repository; Declarative's implicit
    `checkout scm` would clone it into the workspace and wrap the build in withEnv(GIT_COMMIT=<its
    commit>), which shadows enaduCheckout's env.GIT_COMMIT (CheckoutScript.checkoutAndRun)."""
    run = run_service(name, changed_files=OWN_CHANGE[name])
    assert "Declarative: Checkout SCM" not in run.stages
    urls = [e["args"]["scm"]["userRemoteConfigs"][0]["url"] for e in run.steps("checkout")]
    assert urls == [sc.service(PROJECT, name).repository]
    assert all(e["env"]["GIT_COMMIT"] == sc.COMMIT for e in run.steps("sh") if e["rule"] != "changes")


# ------------------------------------------------------------------------------------------------
# 6. Secrets never reach a command line, an echo, a label or a written file


SCENARIOS = [
    ("unrelated", lambda n: {"changed_files": OTHER_SERVICE_CHANGE[n]}),
    ("success", lambda n: {"changed_files": OWN_CHANGE[n]}),
    ("push-fails", lambda n: {"changed_files": OWN_CHANGE[n], "push_exit": 1}),
    ("deploy-fails", lambda n: {"changed_files": OWN_CHANGE[n], "deploy_exit": 5}),
    ("notify-fails", lambda n: {"changed_files": OWN_CHANGE[n], "notify_exit": 1}),
]


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("case", [c[0] for c in SCENARIOS])
def test_no_secret_on_a_command_line_echo_or_file(name, case):
    run = run_service(name, **dict(SCENARIOS)[case](name))

    assert run.leaks == []
    recorded = []
    for e in run.steps():
        if e["step"] == "sh":
            recorded += [e["args"]["script"], e["args"].get("label") or ""]
        else:
            recorded.append(json.dumps(e["args"]))
    recorded += run.log
    for secret in sc.secret_values():
        assert not any(secret in text for text in recorded)


@pytest.mark.parametrize("name", SERVICES)
def test_each_secret_is_bound_only_for_the_command_that_needs_it(name):
    run = run_service(name, changed_files=OWN_CHANGE[name])
    holders: dict[str, set[str]] = {}
    for e in run.steps("sh"):
        for variable in ("ENADU_REGISTRY_PASSWORD", "KUBECONFIG", "DISCORD_WEBHOOK_URL"):
            if variable in e["env"]:
                holders.setdefault(variable, set()).add(e["rule"])
    # changes reads the live commit with the deploy's kubeconfig (issue 16): bound for it too, and only then
    assert holders == {"ENADU_REGISTRY_PASSWORD": {"image"}, "KUBECONFIG": {"changes", "deploy"},
                       "DISCORD_WEBHOOK_URL": {"notify"}}
    assert run.helper("notify")["env"]["DISCORD_WEBHOOK_URL"] == sc.CREDENTIALS["enadu-discord-webhook"]["secret"]
    for command in ("changes", "deploy"):
        kubeconfig = run.helper(command)["env"]["KUBECONFIG"]
        assert kubeconfig.startswith(f"/home/jenkins/agent/workspace/enadu/{name}@tmp/secretFiles/")
        assert kubeconfig not in run.files  # the secret file is gone after withCredentials


def test_a_failed_notification_does_not_change_the_result():
    run = run_service("backend", changed_files=OWN_CHANGE["backend"], notify_exit=1)
    assert run.result == "SUCCESS"
    assert "enaduNotify: the Discord message was not delivered (helper exit 1); build result unchanged" in run.log


# ------------------------------------------------------------------------------------------------
# The helper: one sh per command that copies, checks by sha256 and runs the private copies


@pytest.mark.parametrize("name", SERVICES)
def test_every_helper_run_is_one_sh_that_checks_what_it_runs(name):
    run = run_service(name, changed_files=OWN_CHANGE[name])
    bundle = (REPO / "resources" / "enadu" / "enadu-helper.pyz").read_bytes()
    digest = hashlib.sha256(bundle).hexdigest()
    manifest_digest = hashlib.sha256((REPO / "resources" / "enadu" / "k8s" / f"{name}.yaml").read_bytes()).hexdigest()
    trace = run.trace
    calls = [i for i, e in enumerate(trace) if e.get("step") == "enaduHelper"]
    assert [trace[i]["args"]["command"] for i in calls] == ["changes", "deploy", "notify"]
    for i in calls:
        depth = trace[i]["depth"]
        command = trace[i]["args"]["command"]
        inner = []
        for e in trace[i + 1:]:
            if e["depth"] <= depth:
                break
            inner.append(e)
        shs = [e for e in inner if e.get("step") == "sh"]
        assert len(shs) == 1
        script = shs[0]["args"]["script"].splitlines()
        names = ["ENADU_HELPER"] + (["ENADU_MANIFEST"] if command in ("changes", "deploy") else [])
        if "ENADU_RESULT_FILE" in shs[0]["env"]:  # an earlier build's result goes first, before any check
            assert command in ("changes", "deploy")
            assert script.pop(1) == ("""rm -f -- "$ENADU_RESULT_FILE" || { echo 'enaduHelper: the result file of an"""
                                     """ earlier run (ENADU_RESULT_FILE) could not be removed; nothing was run' >&2;"""
                                     """ exit 97; }""")
        assert script[:5] == ['set +x', 'd="$(mktemp -d)" || exit 97', """trap 'rm -rf "$d"' EXIT""",
                              "trap : HUP INT TERM", 'chmod 700 "$d"']
        for var in names:  # copied, checked and used from the private directory, in this order
            copy = script.index(f'cp "${var}" "$d/{var}" || exit 97')
            check = next(n for n, line in enumerate(script) if line.startswith(f'[ "$(sha256sum < "$d/{var}")" = '))
            use = script.index(f'{var}="$d/{var}"; export {var}')
            assert copy < check < use
        assert script[-1] == f'python3 -I "$d/ENADU_HELPER" {command}'
        assert shs[0]["args"]["returnStatus"] is True
        env = shs[0]["env"]
        assert env["ENADU_HELPER_SHA256"] == digest
        assert env.get("ENADU_MANIFEST_SHA256") == (manifest_digest if command in ("changes", "deploy") else None)
        assert trace[i]["returned"] == shs[0]["status"]
    # The bundle is written from the library once (a source copy only; the sh checks what it runs).
    writes = run.steps("writeFile")
    assert [w["args"]["sha256"] for w in writes if w["args"]["file"].endswith(".pyz")] == [digest]
    resources = [e["args"]["resource"] for e in run.steps("libraryResource")]
    assert [r for r in resources if r == "enadu/enadu-helper.pyz" or r.startswith("enadu/k8s/")] == [
        "enadu/enadu-helper.pyz", f"enadu/k8s/{name}.yaml"]  # the bundle once, the manifest once


# ------------------------------------------------------------------------------------------------
# The registration build: the first build bootstrap queues (ENADU_REGISTER_ONLY=true) checks the
# service out, so that WorkflowJob.getSCMs() lists its repository and GitHub pushes start the job,
# and deploys nothing, although with no previous build everything would count as changed.


@pytest.mark.parametrize("name", SERVICES)
def test_a_registration_build_checks_out_and_deploys_nothing(name):
    scenario = sc.service_scenario(PROJECT, name, build_number=1, previous_result=None)
    scenario["params"] = {"ENADU_REGISTER_ONLY": True}
    # What the real helper answers with ENADU_REGISTER_ONLY=true (tests/test_changes.py); a rule that
    # asks for exactly that environment, so a pipeline that does not pass it falls to "changed".
    scenario["sh"].insert(0, sc.helper_rule("changes", env={"ENADU_REGISTER_ONLY": "true"}, status=exitcodes.UNCHANGED))
    run = harness().run(REPO / "pipelines" / name / "Jenkinsfile", scenario=scenario)
    # NOT_BUILT: the next real build has no previous SUCCESS, so it still deploys everything.
    assert run.result == "NOT_BUILT", run.describe()
    assert run.stages["Checkout"] == "SUCCESS"
    for stage in stages_of(name)[2:]:
        assert run.stages[stage] == "SKIPPED_FOR_CONDITIONAL", stage
    assert [e["rule"] for e in run.steps("sh")] == ["changes", "notify"]
    assert any("registration build (ENADU_REGISTER_ONLY)" in line for line in run.log)
    assert run.helper("notify")["env"]["ENADU_CHANGED"] == "false"


@pytest.mark.parametrize("name", SERVICES)
def test_an_ordinary_build_is_not_a_registration_build(name):
    run = run_service(name, changed_files=OWN_CHANGE[name])
    assert "ENADU_REGISTER_ONLY" not in run.helper("changes")["env"]  # an empty value unsets it (EnvVars.override)
    assert run.helper("deploy")["env"]["ENADU_SERVICE"] == name


# ------------------------------------------------------------------------------------------------
# Issue 13, finding 3: a Jenkinsfile that pairs a credential with another host than the one the
# library pins (resources/enadu/credential-hosts.txt) is refused before the credential is bound.

MISPAIRED = """@Library('enadu') _
pipeline {
    agent any
    options { skipDefaultCheckout() }
    stages {
        stage('Mispaired') {
            steps {
                %s
            }
        }
    }
}
"""


@pytest.mark.parametrize("call, message", [
    ("enaduImage(image: 'collector.evil.example/enadu/backend', credentialsId: 'enadu-registry', tag: 'v1')",
     "enaduImage: credential 'enadu-registry' may be sent only to registry.enadu.dev, not collector.evil.example"),
    ("enaduImage(image: 'registry.enadu.dev/enadu/backend', credentialsId: 'enadu-discord-webhook', tag: 'v1')",
     "enaduImage: credential 'enadu-discord-webhook' may be sent only to no host, not registry.enadu.dev"),
    ("enaduDeploy(service: 'backend', image: 'registry.enadu.dev/enadu/backend:v1', namespace: 'enadu',"
     " credentialsId: 'enadu-kubeconfig', grafanaUrl: 'https://grafana.enadu.dev',"
     " grafanaCredentialsId: 'enadu-discord-webhook')",
     "enaduDeploy: credential 'enadu-discord-webhook' may be sent only to no host, not grafana.enadu.dev"),
    ("enaduDeploy(service: 'backend', image: 'registry.enadu.dev/enadu/backend:v1', namespace: 'enadu',"
     " credentialsId: 'enadu-kubeconfig', grafanaUrl: 'https://Collector.Evil.example:8443/x',"
     " grafanaCredentialsId: 'enadu-grafana-token')",
     "enaduDeploy: credential 'enadu-grafana-token' may be sent only to grafana.enadu.dev, not collector.evil.example:8443"),
    ("enaduCheckout(repository: 'https://git.evil.example/enadu/enadu.git', branch: 'be-dev',"
     " credentialsId: 'enadu-github')",
     "enaduCheckout: credential 'enadu-github' may be sent only to github.com, not git.evil.example"),
    ("enaduCheckout(repository: 'git@Git.Evil.example:enadu/enadu.git', branch: 'be-dev',"
     " credentialsId: 'enadu-github')",
     "enaduCheckout: credential 'enadu-github' may be sent only to github.com, not git.evil.example"),
    ("enaduCheckout(repository: 'https://github.com/enadu/enadu.git', branch: 'be-dev',"
     " credentialsId: 'enadu-registry')",
     "enaduCheckout: credential 'enadu-registry' may be sent only to registry.enadu.dev, not github.com"),
], ids=["registry-login-elsewhere", "webhook-as-registry-login", "webhook-as-grafana-token", "grafana-token-elsewhere",
        "git-credential-elsewhere", "git-credential-scp-elsewhere", "registry-login-as-git-credential"])
def test_a_step_refuses_a_credential_with_a_host_it_is_not_pinned_to(call, message):
    run = harness().run(text=MISPAIRED % call, scenario={})
    assert run.valid, run.errors
    assert run.result == "FAILURE"
    assert any(message in line for line in run.log), run.describe()
    # refused before anything is bound, checked out or run
    assert not run.steps("withCredentials") and not run.steps("sh") and not run.steps("checkout")
