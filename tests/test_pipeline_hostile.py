"""Hostile-but-valid configuration values stay literal data from enadu.yaml to the commands.

A configuration whose values are valid but full of Groovy and shell syntax (quotes, `${...}`,
`$(...)`, backslashes, unicode escapes, spaces) is rendered with `enadu-pipelines render` into a
temporary directory and the result is run in the pipeline harness. Every value must arrive where
it is used - the notification title, the branch checked out, the commands run, the credential
ids - exactly as written, never evaluated by Groovy or a shell.
"""

from __future__ import annotations

import shutil

import pytest
import yaml
from click.testing import CliRunner

from enadu_pipelines import config
from enadu_pipelines.cli import main
from support.pipeline import scenarios as sc
from support.pipeline.client import REPO, harness

DESCRIPTIONS = {
    "backend": "Enadu \"backend\" API's  ${env.JOB_NAME} - $(id) `whoami` \\u0027 back\\slash",
    "batch": "Batch 'jobs' ${currentBuild.result} \"${BUILD_NUMBER}\" %s %n {{ x }}",
    "frontend": "Fr\u00f6ntend \u2014 'web' ${params.X} $HOME \\\\ \u00fcber",
}
BRANCH = "release/2024.1_rc-1"
COMMIT_MESSAGE = "Fix \"quoted\" 'thing' ${env.DISCORD_WEBHOOK_URL} $(rm -rf /) `id` \\\" done"
CREDENTIAL_IDS = {"git": "enadu.github_ci-1", "registry": "enadu.registry-ci_1", "kube": "kube.enadu-prod_2",
                  "discord": "discord.builds-1", "grafana": "grafana.annotations_3"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile")
    data = yaml.safe_load((REPO / "enadu.yaml").read_text("utf-8"))
    data["jenkins"]["git_credentials_id"] = CREDENTIAL_IDS["git"]
    data["registry"]["credentials_id"] = CREDENTIAL_IDS["registry"]
    data["kubernetes"]["credentials_id"] = CREDENTIAL_IDS["kube"]
    data["discord"]["credentials_id"] = CREDENTIAL_IDS["discord"]
    data["monitoring"]["grafana"]["credentials_id"] = CREDENTIAL_IDS["grafana"]
    for name, text in DESCRIPTIONS.items():
        data["services"][name]["description"] = text
    backend = data["services"]["backend"]
    backend["branch"] = BRANCH
    backend["paths"] = ["backend/**", "common/**", "docs/api-?.md"]
    backend["test"]["commands"] = ["./gradlew --no-daemon :backend:test -Pmode=ci,fast -Dlocale=en_US@x%y+z"]
    backend["build"] = {"commands": ["./gradlew --no-daemon :backend:bootJar -x test --build-cache"]}
    cfg = out / "enadu.yaml"
    cfg.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
    # Reuse the committed helper bundle so render does not rebuild it (it would need the network).
    (out / "resources" / "enadu").mkdir(parents=True)
    shutil.copy2(REPO / "resources" / "enadu" / "enadu-helper.pyz", out / "resources" / "enadu" / "enadu-helper.pyz")
    result = CliRunner().invoke(main, ["render", "--config", str(cfg), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "rebuilding" not in result.output
    return out, config.load(cfg)


def credentials() -> dict:
    ids = {"enadu-github": CREDENTIAL_IDS["git"], "enadu-registry": CREDENTIAL_IDS["registry"],
           "enadu-kubeconfig": CREDENTIAL_IDS["kube"], "enadu-discord-webhook": CREDENTIAL_IDS["discord"],
           "enadu-grafana-token": CREDENTIAL_IDS["grafana"]}
    return {ids[k]: v for k, v in sc.CREDENTIALS.items()}


@pytest.fixture(scope="module")
def runs(rendered):
    out, project = rendered
    results = {}
    for name in DESCRIPTIONS:
        changed = ["docs/api-1.md"] if name == "backend" else ([f"{name}/x"] if name == "batch" else ["src/x.ts"])
        scenario = sc.service_scenario(project, name, changed_files=changed, commit_message=COMMIT_MESSAGE)
        scenario["credentials"] = credentials()
        results[name] = harness().run(out / "pipelines" / name / "Jenkinsfile", scenario=scenario, library=out)
    return results


@pytest.mark.parametrize("name", list(DESCRIPTIONS))
def test_hostile_values_build_and_deploy_normally(runs, name):
    run = runs[name]
    assert run.valid, run.errors
    assert run.result == "SUCCESS", run.describe()
    assert run.stages["Deploy"] == "SUCCESS"
    assert run.leaks == [] and run.violations == []


@pytest.mark.parametrize("name", list(DESCRIPTIONS))
def test_the_description_reaches_the_notification_literally(runs, name):
    notify = runs[name].helper("notify")
    assert notify["env"]["ENADU_TITLE"] == DESCRIPTIONS[name]
    assert runs[name].steps("enaduNotify")[0]["args"]["title"] == DESCRIPTIONS[name]


def test_branch_paths_and_commands_arrive_unchanged(runs, rendered):
    _, project = rendered
    backend = sc.service(project, "backend")
    run = runs["backend"]
    checkout = run.steps("checkout")[0]["args"]["scm"]
    assert checkout["branches"] == [{"name": f"refs/heads/{BRANCH}"}]
    assert checkout["extensions"] == [{"$class": "LocalBranch", "localBranch": BRANCH}]
    assert checkout["userRemoteConfigs"] == [{"url": backend.repository, "credentialsId": CREDENTIAL_IDS["git"]}]
    assert run.helper("changes")["env"]["ENADU_PATHS"] == "backend/**\ncommon/**\ndocs/api-?.md"
    assert run.helper("changes")["status"] == 0  # docs/api-1.md matched docs/api-?.md
    commands = [e["args"]["script"] for e in run.steps("sh") if e["rule"] in ("test", "build")]
    assert commands == list(backend.test_commands) + list(backend.build_commands)
    assert [e["args"]["label"] for e in run.steps("sh") if e["rule"] in ("test", "build")] == commands


def test_credential_ids_arrive_unchanged(runs):
    bound = [b["credentialsId"] for e in runs["backend"].steps("withCredentials") for b in e["args"]["bindings"]]
    # the kubeconfig twice: Changes reads the live commit with it, Deploy deploys with it
    assert bound == [CREDENTIAL_IDS["kube"], CREDENTIAL_IDS["registry"], CREDENTIAL_IDS["kube"], CREDENTIAL_IDS["grafana"],
                     CREDENTIAL_IDS["discord"]]


@pytest.mark.parametrize("name", list(DESCRIPTIONS))
def test_the_commit_message_never_reaches_groovy_strings_or_commands(runs, name):
    run = runs[name]
    assert run.steps("checkout")[0]["returned"]["GIT_COMMIT"] == sc.COMMIT
    texts = [e["args"]["script"] for e in run.steps("sh")] + [str(e["args"]) for e in run.steps() if e["step"] != "checkout"]
    assert not any("$(rm -rf /)" in t or "Fix \"quoted\"" in t for t in texts + run.log)
