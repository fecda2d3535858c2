"""Every step the generated Groovy calls belongs to a documented plugin (or to Jenkins core).

tests/support/pipeline/plugins.json maps each step, symbol, global variable, Declarative directive
and SCM class to the plugin that provides it. Two views are checked against it: what the
generated files call, read from their Groovy AST (so branches no scenario reaches count too), and
what the harness recorded while running every pipeline. The README's plugin list is
REQUIRED_PLUGINS below; this test fails when the generated Groovy starts needing another plugin.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.pipeline import scenarios as sc
from support.pipeline.client import PLUGINS, REPO, harness

PLUGIN_MAP = json.loads(PLUGINS.read_text("utf-8"))
GENERATED = sorted((REPO / "vars").glob("*.groovy")) + sorted((REPO / "pipelines").glob("*/Jenkinsfile*"))
VARS = {p.stem for p in (REPO / "vars").glob("*.groovy")}

REQUIRED_PLUGINS = {
    "core", "workflow-cps", "workflow-job", "workflow-basic-steps", "workflow-durable-task-step",
    "workflow-scm-step", "pipeline-stage-step", "pipeline-model-definition", "pipeline-groovy-lib", "git", "github",
    "credentials-binding", "timestamper", "junit", "pipeline-utility-steps",
    "pipeline-input-step",  # part of workflow-aggregator; `input` for manual promotion
}


def provider(name: str) -> str | None:
    for section in ("steps", "symbols", "globals", "declarative"):
        if name in PLUGIN_MAP[section]:
            return PLUGIN_MAP[section][name]
    return None


@pytest.fixture(scope="module")
def calls() -> dict:
    return harness().calls(GENERATED)


def test_plugins_json_names_only_documented_plugins():
    for section in ("steps", "symbols", "globals", "declarative", "classes"):
        unknown = {k: v for k, v in PLUGIN_MAP[section].items() if v not in PLUGIN_MAP["plugins"]}
        assert unknown == {}, section
    assert all(p["url"].startswith("https://") for p in PLUGIN_MAP["plugins"].values())


def test_the_harness_emulates_exactly_the_listed_steps_and_symbols():
    catalog = harness().request({"action": "catalog"})
    assert catalog["steps"] == sorted(PLUGIN_MAP["steps"])
    assert catalog["symbols"] == sorted(PLUGIN_MAP["symbols"])


def test_generated_groovy_calls_only_listed_steps(calls):
    unlisted = []
    used = set()
    for path, info in calls.items():
        assert "error" not in info, f"{path}: {info.get('error')}"
        own = set(info["methods"])
        for call in info["calls"]:
            name = call["name"]
            if name in own or name in VARS:
                continue
            plugin = provider(name)
            if plugin is None:
                unlisted.append(f"{Path(path).relative_to(REPO)}:{call['line']}: {name}()")
            else:
                used.add(plugin)
        for var in info["variables"]:
            name = var["name"]
            if name in VARS or name == "_":
                continue
            plugin = provider(name)
            if plugin is None:
                unlisted.append(f"{Path(path).relative_to(REPO)}:{var['line']}: {name}")
            else:
                used.add(plugin)
    assert unlisted == []
    assert used <= REQUIRED_PLUGINS


@pytest.mark.parametrize("name", ["backend", "batch", "frontend"])
def test_everything_a_pipeline_does_at_run_time_is_listed(name):
    project = sc.load_project()
    run = harness().run(REPO / "pipelines" / name / "Jenkinsfile",
                        scenario=sc.service_scenario(project, name, changed_files=[f"{name}/x"] if name != "frontend" else ["x"]))
    assert run.result == "SUCCESS", run.describe()
    used = set()
    for e in run.steps():
        if e.get("global"):
            assert e["step"] in VARS
            continue
        assert e["step"] in PLUGIN_MAP["steps"], e["step"]
        used.add(PLUGIN_MAP["steps"][e["step"]])
    for e in run.steps("checkout"):
        scm = e["args"]["scm"]
        classes = [scm["$class"]] + [ext["$class"] for ext in scm.get("extensions", [])]
        for cls in classes:
            assert cls in PLUGIN_MAP["classes"], cls
            used.add(PLUGIN_MAP["classes"][cls])
    for e in run.steps("withCredentials"):
        for binding in e["args"]["bindings"]:
            used.add(PLUGIN_MAP["symbols"][binding["$symbol"]])
    props = run.events("properties")[0]
    for item in props["options"] + props["triggers"]:
        used.add(PLUGIN_MAP["symbols"][item["$symbol"]])
    assert used <= REQUIRED_PLUGINS
    # The plugins DESIGN.md names all take part: Git, GitHub, Credentials Binding, Timestamper,
    # JUnit (backend), Pipeline Utility Steps (sha256), and the Pipeline suite.
    expected = {"git", "github", "credentials-binding", "timestamper", "pipeline-utility-steps",
                "workflow-durable-task-step", "workflow-basic-steps", "pipeline-groovy-lib", "workflow-scm-step"}
    if sc.service(project, name).junit and sc.service(project, name).test_enabled:
        expected.add("junit")
    assert expected <= used
