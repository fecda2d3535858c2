"""The pipelines with the kubernetes agent, run in the harness through the same scenarios as `agent any`.

The Jenkinsfiles are rendered from the shipped enadu.yaml with `jenkins.agent: {kubernetes: ...}` (and so
buildah). The harness runs the Declarative kubernetes agent as the plugin's KubernetesDeclarativeAgentScript
does - podTemplate(yaml) > retry(kubernetesAgent(), nonresumable()) > node(POD_LABEL) > container('helper')
- and records which container each `sh` ran in. Every scenario test of tests/test_pipeline_services.py
that builds its run through ``run_service`` is run again here against these Jenkinsfiles, and each run is
checked for where its commands ran; then what only pods have: trusted and untrusted caches, a lost pod.
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
from pathlib import Path

import pytest
import test_pipeline_services as tps
import yaml
from click.testing import CliRunner
from test_kubernetes_agent import groovy_literals, render, with_kubernetes

from enadu_pipelines import config
from support.pipeline import scenarios as sc
from support.pipeline.client import PLUGINS, Run, harness

# Where each command of a scenario must run (its rule id -> container).
CONTAINER_OF = {"changes": "helper", "test": "build", "build": "build", "image": "builder", "deploy": "helper",
                "notify": "helper"}
PLUGIN_MAP = json.loads(PLUGINS.read_text("utf-8"))


@pytest.fixture(scope="module")
def k8s(tmp_path_factory) -> Path:
    return render(CliRunner(), tmp_path_factory.mktemp("k8s-pipelines"), with_kubernetes())


def scenario_for(name: str, **kwargs) -> dict:
    scenario = sc.service_scenario(tps.PROJECT, name, **kwargs)
    for rule in scenario["sh"]:
        if rule["id"] == "image":  # every service builds with buildah in agent pods
            rule["label"] = "^buildah build and push "
    return scenario


def run_k8s(root: Path, name: str, scenario: dict) -> Run:
    run = harness().run(root / "pipelines" / name / "Jenkinsfile", scenario=scenario, library=root)
    assert run.valid, run.errors
    return run


def check_containers(run: Run, root: Path, name: str) -> None:
    """The pod is the trusted one the Jenkinsfile names, every sh ran in its stage's container, and the
    checkout in jnlp."""
    [template] = run.steps("podTemplate")
    project = config.load(root.parent / "out.yaml")
    trusted, _ = groovy_literals((root / "pipelines" / name / "Jenkinsfile").read_text())
    assert template["args"]["yaml"] == trusted
    assert template["args"]["namespace"] == "jenkins-agents"
    assert template["containers"] == ["helper", "build", "builder", "jnlp"]
    label = template["label"]
    assert label == f"{project.jenkins.folder}_{name}_{sc.BUILD_NUMBER}-b0b0b"
    nodes = run.steps("node")
    assert nodes and all(n["args"]["label"] == label for n in nodes)
    for e in run.steps("sh"):
        assert e["container"] == CONTAINER_OF[e["rule"]], e
        assert e["env"]["POD_CONTAINER"] == e["container"] and e["env"]["POD_LABEL"] == label
    for e in run.steps("checkout"):
        assert next(c for c in reversed(run.steps("container")) if c["seq"] < e["seq"])["args"]["name"] == "jnlp"


_runs: dict[str, Run] = {}


@pytest.fixture
def as_kubernetes(k8s, monkeypatch):
    """tests/test_pipeline_services.py's run_service, answering with the kubernetes agent's run."""
    def run_service(name: str, **kwargs) -> Run:
        scenario = scenario_for(name, **kwargs)
        key = json.dumps([name, scenario], sort_keys=True)
        if key not in _runs:
            _runs[key] = run_k8s(k8s, name, scenario)
            check_containers(_runs[key], k8s, name)
        return _runs[key]

    monkeypatch.setattr(tps, "run_service", run_service)


def _reused() -> list:
    """Every test of test_pipeline_services that makes its runs with run_service, with its parameters."""
    cases = []
    for name, fn in inspect.getmembers(tps, inspect.isfunction):
        if not name.startswith("test_"):
            continue
        source = inspect.getsource(fn)
        if "run_service(" not in source or "harness()" in source:
            continue
        marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        axes = []
        for m in marks:
            argnames = [a.strip() for a in (m.args[0].split(",") if isinstance(m.args[0], str) else m.args[0])]
            values = [v if len(argnames) > 1 else (v,) for v in m.args[1]]
            axes.append([dict(zip(argnames, v)) for v in values])
        for combo in itertools.product(*axes) if axes else [()]:
            kwargs = {k: v for part in combo for k, v in part.items()}
            cases.append(pytest.param(fn, kwargs, id=f"{name}[{'-'.join(map(str, kwargs.values()))}]"))
    return cases


REUSED = _reused()


def test_the_scenarios_are_reused():
    names = {p.values[0].__name__ for p in REUSED}
    assert "test_success_tags_deploys_and_reports_the_same_image" in names
    assert "test_backend_unit_test_failure_stops_before_image_and_deploy" in names
    assert "test_no_secret_on_a_command_line_echo_or_file" in names
    assert len(REUSED) >= 40


@pytest.mark.parametrize("test, kwargs", REUSED)
def test_same_scenario_in_agent_pods(test, kwargs, as_kubernetes):
    test(**kwargs)


def test_the_agent_is_the_plugins_declarative_script(k8s):
    run = run_k8s(k8s, "backend", scenario_for("backend", changed_files=["backend/x"]))
    assert run.result == "SUCCESS", run.describe()
    order = [e["step"] for e in run.steps() if e["step"] in ("podTemplate", "retry", "node", "container")][:5]
    assert order == ["podTemplate", "retry", "node", "container", "container"]
    retry = run.steps("retry")[0]
    assert retry["args"]["count"] == 2
    assert [c["$symbol"] for c in retry["args"]["conditions"]] == ["kubernetesAgent", "nonresumable"]
    assert run.steps("podTemplate")[0]["args"]["inheritFrom"] == ""
    assert run.steps("container")[0]["args"] == {"name": "helper"}  # defaultContainer
    used = {PLUGIN_MAP["steps"][e["step"]] for e in run.steps() if not e.get("global")}
    assert "kubernetes" in used


def test_a_pull_request_build_gets_the_untrusted_pod(k8s):
    scenario = scenario_for("backend", changed_files=["backend/x"])
    scenario["env"] = {"CHANGE_ID": "42", "BRANCH_NAME": "PR-42"}
    run = run_k8s(k8s, "backend", scenario)
    assert run.result == "SUCCESS", run.describe()
    pod = yaml.safe_load(run.steps("podTemplate")[0]["args"]["yaml"])
    assert pod["metadata"]["labels"]["enadu.dev/cache"] == "untrusted"
    assert {"name": "cache", "emptyDir": {}} in pod["spec"]["volumes"]
    # another branch of a multibranch job is untrusted too; this job's branch is trusted
    for branch, use in (("feature-x", "untrusted"), ("be-dev", "trusted")):
        scenario["env"] = {"BRANCH_NAME": branch}
        run = run_k8s(k8s, "backend", scenario)
        assert yaml.safe_load(run.steps("podTemplate")[0]["args"]["yaml"])["metadata"]["labels"]["enadu.dev/cache"] == use


def test_a_lost_pod_reruns_the_pipeline_in_a_new_pod(k8s):
    """retries 2: the pod that disappears during the build is replaced and the whole pipeline runs again
    (KubernetesDeclarativeAgentScript's retry around node); the lost pod's own post steps fail with it."""
    scenario = scenario_for("batch", changed_files=["batch/x"])
    build = next(r for r in scenario["sh"] if r["id"] == "build")
    scenario["sh"].insert(scenario["sh"].index(build), {**build, "id": "lost", "agentLost": True, "times": 1})
    run = run_k8s(k8s, "batch", scenario)
    assert run.result == "SUCCESS", run.describe()
    nodes = [e["node"] for e in run.steps("node")]
    assert len(nodes) == 2 and nodes[0] != nodes[1]
    assert [e["rule"] for e in run.steps("sh")] == ["changes", "lost", "changes", "build", "image", "deploy", "notify"]
    assert "Retrying" in run.log
    assert len([e for e in run.steps("checkout")]) == 2


def test_without_retries_a_lost_pod_ends_the_build(k8s, tmp_path):
    root = render(CliRunner(), tmp_path, with_kubernetes(retries=1))
    assert "retries 1\n" in (root / "pipelines/batch/Jenkinsfile").read_text()
    scenario = scenario_for("batch", changed_files=["batch/x"])
    build = next(r for r in scenario["sh"] if r["id"] == "build")
    build["agentLost"] = True
    run = run_k8s(root, "batch", scenario)
    assert run.result == "ABORTED", run.describe()
    assert not run.steps("retry")
    assert len(run.steps("node")) == 1
    assert "notify" not in [e.get("rule") for e in run.steps("sh")]  # the pod was gone


def test_container_needs_a_pod_and_a_container_the_pod_has():
    base = "@Library('enadu') _\npipeline {\n    agent %s\n    stages {\n        stage('x') {\n            steps {\n" \
           "                container('%s') {\n                    sh 'true'\n                }\n            }\n" \
           "        }\n    }\n}\n"
    pod = "{\n        kubernetes {\n            yaml '''\\\nspec:\n  containers:\n  - name: tools\n    image: x\n'''\n" \
          "        }\n    }"
    run = harness().run(text=base % ("any", "tools"), scenario={})
    assert run.result == "FAILURE" and run.error["message"] == "Node is not a Kubernetes node: built-in"
    run = harness().run(text=base % (pod, "nope"), scenario={})
    assert run.result == "FAILURE" and re.fullmatch(r"container nope not found in pod .*-pod1", run.error["message"])
    run = harness().run(text=base % (pod, "tools"), scenario={})
    assert run.result == "SUCCESS", run.describe()
    [sh] = run.steps("sh")
    assert sh["container"] == "tools" and sh["env"]["POD_CONTAINER"] == "tools"
    run = harness().run(text=base.replace("container('%s') {", "dir('.') {") % (pod,), scenario={})
    assert run.steps("sh")[0]["container"] == "jnlp"  # no container step, no defaultContainer: the agent's own


def test_the_operations_job_runs_in_a_helper_only_pod(k8s):
    from test_ops_job import ops_scenario

    run = harness().run(k8s / "pipelines" / "backend" / "Jenkinsfile.ops",
                        scenario=ops_scenario({"ACTION": "rollback", "REASON": "bad release"}), library=k8s)
    assert run.valid, run.errors
    assert run.result == "SUCCESS", run.describe()
    [template] = run.steps("podTemplate")
    assert template["containers"] == ["helper", "jnlp"]
    assert [(e["container"], e["rule"]) for e in run.steps("sh")] == [("helper", "rollback"), ("helper", "notify")]
