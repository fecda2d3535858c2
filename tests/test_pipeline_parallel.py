"""`services.<name>.test.parallel` (issue 15, Parallelism): Test beside Build, on an agent of its own.

The backend is rendered from the shipped enadu.yaml with ``test.parallel: true`` on each agent kind (`any`, a
label, kubernetes pods). Each render compiles under Groovy 2.4.21 and lints clean; the harness runs it
(tests/support/pipeline: Declarative's parallel stages and stage agents as ModelInterpreter runs them,
ParallelStep's failFast, the git plugin's SHA-1 checkout) and the tests check what Jenkins would do: where
each branch ran, at which commit, what runs after, and what the notification is told. Without the key every
file renders as before (tests/test_kubernetes_agent.py and `render --check` cover the shipped files).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import groovy_compile
from test_groovy import lint
from test_kubernetes_agent import load_error, render, shipped, with_kubernetes

from support.pipeline import scenarios as sc
from support.pipeline.client import Run, harness

from enadu_pipelines import config

KINDS = ["any", "label", "kubernetes"]
# A push that landed after this build's checkout: the branch's head when the Test branch checks out.
NEWER = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
BRANCH_STAGES = ["Test", "Build"]


def config_for(kind: str) -> dict:
    data = with_kubernetes() if kind == "kubernetes" else shipped()
    if kind == "label":
        data["jenkins"]["agent"] = "linux"
    data["services"]["backend"]["test"]["parallel"] = True
    return data


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> dict[str, Path]:
    runner = CliRunner()
    return {kind: render(runner, tmp_path_factory.mktemp(f"parallel-{kind}"), config_for(kind)) for kind in KINDS}


def scenario_for(root: Path, kind: str, **kwargs) -> dict:
    project = config.load(root.parent / "out.yaml")
    scenario = sc.service_scenario(project, "backend", **kwargs)
    if kind == "kubernetes":
        for rule in scenario["sh"]:
            if rule["id"] == "image":
                rule["label"] = "^buildah build and push "
    if kind == "label":
        scenario["agent"] = {"name": "agent-1", "labels": "linux"}
    # The branch moves on after the first checkout: a later checkout of the branch would get NEWER.
    svc = sc.service(project, "backend")
    [first] = [c for c in scenario["checkout"] if c["url"] == svc.repository]
    first["times"] = 1
    later = copy.deepcopy(first)
    del later["times"]
    later["returns"]["GIT_COMMIT"] = NEWER
    later["changeSet"][0]["commitId"] = NEWER
    scenario["checkout"].append(later)
    return scenario


def run_parallel(root: Path, kind: str, **kwargs) -> Run:
    run = harness().run(root / "pipelines" / "backend" / "Jenkinsfile", scenario=scenario_for(root, kind, **kwargs),
                        library=root)
    assert run.valid, run.errors
    return run


def stage_of(run: Run, seq: int) -> str:
    return next(e for e in run.trace if e["seq"] == seq)["stage"]


def test_parallel_renders_compile_and_lint_clean(renders) -> None:
    files = [renders[kind] / "pipelines" / "backend" / "Jenkinsfile" for kind in KINDS]
    for kind, path in zip(KINDS, files):
        text = path.read_text()
        assert "failFast true" in text and "parallel {" in text and "commit: env.GIT_COMMIT," in text, kind
        # batch and frontend (no key) keep their sequential stages
        assert "parallel {" not in (renders[kind] / "pipelines" / "batch" / "Jenkinsfile").read_text()
    result = groovy_compile(files)
    assert result.returncode == 0, result.stdout + result.stderr
    report = lint(files)
    problems = [f"{name}:{e['line']}: {e['severity']} {e['rule']}: {e['msg']}"
                for name, entry in report["files"].items() for e in entry.get("errors", [])
                if e["severity"] in ("error", "warning")]
    assert problems == []


@pytest.mark.parametrize("kind", KINDS)
def test_passing_tests_run_beside_the_build_on_an_agent_of_their_own_at_the_checked_out_commit(renders, kind):
    run = run_parallel(renders[kind], kind, changed_files=["backend/src/main/Api.java"])

    assert run.result == "SUCCESS", run.describe()
    for stage in ["Checkout", "Changes", "Test and Build", "Test", "Build", "Image", "Deploy"]:
        assert run.stages[stage] == "SUCCESS", stage
    [parallel] = run.steps("parallel")
    assert parallel["args"] == {"branches": ["Test", "Build"], "failFast": True}
    assert [e["name"] for e in run.events("branch")] == ["Test", "Build"]

    # Two agents: the pipeline's, and the Test stage's own (a node block inside the pipeline's).
    nodes = run.steps("node")
    assert [stage_of(run, n["seq"]) for n in nodes] == [None, "Test"]
    outer, inner = nodes
    if kind == "kubernetes":
        templates = run.steps("podTemplate")
        assert len(templates) == 2
        assert templates[0]["args"]["yaml"] == templates[1]["args"]["yaml"]  # the same pod, a second one of it
        assert templates[1]["args"]["inheritFrom"] == ""  # KubernetesDeclarativeAgentScript: no implicit parent
        assert templates[0]["label"] != templates[1]["label"]
        assert outer["args"]["label"] == templates[0]["label"] and inner["args"]["label"] == templates[1]["label"]
        assert outer["node"] != inner["node"]  # a second pod
        assert outer["workspace"] == inner["workspace"]  # same path, another pod's filesystem
    else:
        assert outer["node"] == inner["node"]  # one agent, two executors
        assert inner["workspace"] == outer["workspace"] + "@2"  # WorkspaceList: the second workspace
        assert outer["args"].get("label") == inner["args"].get("label") == ("linux" if kind == "label" else None)

    # Both checkouts got the commit the Checkout stage recorded, though the branch had moved on.
    first, second = run.steps("checkout")
    assert stage_of(run, first["seq"]) == "Checkout" and stage_of(run, second["seq"]) == "Test"
    assert first["returned"]["GIT_COMMIT"] == sc.COMMIT
    assert second["args"]["scm"]["branches"] == [{"name": sc.COMMIT}]
    assert second["args"]["changelog"] is False and second["args"]["poll"] is False
    assert second["returned"]["GIT_COMMIT"] == sc.COMMIT != NEWER
    assert run.raw["env"]["GIT_COMMIT"] == sc.COMMIT  # the build's own variables stay the Checkout stage's

    # The tests ran in the Test branch after its checkout, in its node; the build in the pipeline's workspace.
    by_rule = {e["rule"]: e for e in run.steps("sh")}
    assert stage_of(run, by_rule["test"]["seq"]) == "Test" and by_rule["test"]["seq"] > second["seq"]
    assert stage_of(run, by_rule["build"]["seq"]) == "Build"
    assert by_rule["test"]["env"]["NODE_NAME"] == inner["node"]
    assert by_rule["test"]["cwd"] == inner["workspace"]
    assert by_rule["build"]["env"]["NODE_NAME"] == outer["node"]
    assert by_rule["build"]["cwd"] == outer["workspace"]
    if kind == "kubernetes":
        assert by_rule["test"]["container"] == by_rule["build"]["container"] == "build"
        assert by_rule["test"]["env"]["POD_LABEL"] != by_rule["build"]["env"]["POD_LABEL"]
    # Image and Deploy after both branches; the image is tagged with the Checkout stage's commit.
    assert by_rule["image"]["seq"] > max(by_rule["test"]["seq"], by_rule["build"]["seq"])
    assert by_rule["deploy"]["seq"] > by_rule["image"]["seq"]
    assert run.raw["env"]["ENADU_IMAGE"].endswith(f":{sc.COMMIT[:7]}-{sc.BUILD_NUMBER}")
    assert run.helper("notify")["env"]["ENADU_BUILD_RESULT"] == "SUCCESS"
    assert run.helper("notify")["env"]["ENADU_TESTS_TOTAL"] == "120"


@pytest.mark.parametrize("kind", KINDS)
def test_failing_tests_stop_the_build_and_skip_image_and_deploy(renders, kind):
    run = run_parallel(renders[kind], kind, test_exit=1, failed_tests=3)

    assert run.result == "FAILURE", run.describe()
    assert run.error["message"] == "script returned exit code 1"  # the test's failure, not the interruption
    assert run.stages["Test"] == "FAILURE"
    assert run.stages["Build"] == "ABORTED"  # stopped by failFast (ParallelStep's FailFastCause)
    assert run.stages["Test and Build"] == "FAILURE"
    assert "Failed in branch Test" in run.log and "Failed in branch Build" in run.log
    for stage in ["Image", "Deploy"]:
        assert run.stages[stage] == "SKIPPED_FOR_FAILURE"
        assert f'Stage "{stage}" skipped due to earlier failure(s)' in run.log
    assert [e["rule"] for e in run.steps("sh")] == ["changes", "test", "notify"]
    assert not run.steps("enaduImage") and not run.steps("enaduDeploy")
    notify = run.helper("notify")["env"]
    assert notify["ENADU_BUILD_RESULT"] == "FAILURE"
    assert notify["ENADU_TESTS_FAILED"] == "3"


@pytest.mark.parametrize("kind", KINDS)
def test_unchanged_paths_run_neither_branch(renders, kind):
    run = run_parallel(renders[kind], kind, changed_files=["batch/src/main/Job.java"])

    assert run.result == "SUCCESS", run.describe()
    for stage in ["Test and Build", "Test", "Build", "Image", "Deploy"]:
        assert run.stages[stage] == "SKIPPED_FOR_CONDITIONAL", stage
    assert 'Stage "Test and Build" skipped due to when conditional' in run.log
    assert [e["rule"] for e in run.steps("sh")] == ["changes", "notify"]
    assert len(run.steps("node")) == 1 and len(run.steps("checkout")) == 1  # no second agent, no second checkout
    assert not run.steps("parallel")
    assert run.helper("notify")["env"]["ENADU_CHANGED"] == "false"


def test_a_commit_no_branch_reaches_fails_the_test_checkout(renders):
    """The Test branch never falls back to the branch's head: a commit the clone lacks fails its checkout."""
    root = renders["any"]
    scenario = scenario_for(root, "any")
    scenario["checkout"].pop()  # one answer (COMMIT) for every checkout of the service ...
    del scenario["checkout"][1]["times"]
    text = (root / "pipelines" / "backend" / "Jenkinsfile").read_text()
    # ... and the Test branch asks for a commit the repository does not have (a force-push removed it)
    gone = "0" * 40
    run = harness().run(text=text.replace("commit: env.GIT_COMMIT,", f"commit: '{gone}',"), scenario=scenario,
                        library=root)
    assert run.valid, run.errors
    assert run.result == "FAILURE"
    assert run.error["message"].startswith("Couldn't find any revision to build.")
    assert run.stages["Image"] == "SKIPPED_FOR_FAILURE"


def test_an_empty_commit_is_refused_not_taken_for_the_branch(renders):
    """enaduCheckout(commit: '') would otherwise check out the branch's head: the step's validation refuses it."""
    root = renders["any"]
    text = (root / "pipelines" / "backend" / "Jenkinsfile").read_text()
    run = harness().run(text=text.replace("commit: env.GIT_COMMIT,", "commit: '',"), scenario=scenario_for(root, "any"),
                        library=root)
    assert run.valid, run.errors
    assert run.result == "FAILURE"
    assert re.search(r"argument 'commit' does not match", run.error["message"]), run.error
    assert len(run.steps("checkout")) == 1


def test_parallel_without_tests_is_a_config_error(tmp_path):
    data = shipped()
    data["services"]["batch"]["test"] = {"parallel": True}
    message = load_error(tmp_path, data)
    assert len(message.splitlines()) == 1
    assert re.fullmatch(r".*enadu\.yaml:\d+: services\.batch\.test\.parallel: service batch runs no tests"
                        r" \(test\.enabled is false\): parallel tests need enabled: true", message), message


def test_parallel_is_in_the_schema_and_off_by_default():
    prop = config.json_schema()["$defs"]["TestSettings"]["properties"]["parallel"]
    assert prop["type"] == "boolean" and prop["default"] is False
    assert "failFast" in prop["description"] and "enabled: true" in prop["description"]
    assert all(not s.test_parallel for s in sc.load_project().services)
