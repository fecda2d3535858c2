"""The Changes stage reads what is live (issue 16, part 1), in the pipeline harness.

The generated enaduChanges binds the deploy's kubeconfig credential (a secret file, as enaduDeploy
does) only around the helper's one `sh`, and hands the helper the namespace and the checked manifest
copy, all as environment values; a registration build binds nothing. What `changes` writes reaches
the real `notify`, whose Discord payload says what "changed" was compared with and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from enadu_pipelines.helper import exitcodes
from support.pipeline import scenarios as sc
from support.pipeline.client import REPO, harness

PROJECT = sc.load_project()
SERVICES = ["backend", "batch", "frontend"]
LIVE = "0123456789abcdef0123456789abcdef01234567"


def changes_result(name: str) -> dict:
    """A result as the real helper writes it after a rollback (tests/test_changes_live.py asserts the shape)."""
    ns = sc.service(PROJECT, name).namespace
    return {"service": name, "changed": True, "basis": "diff", "reason": "1 of 1 changed files match backend/**",
            "commit": sc.COMMIT, "previous": sc.PREVIOUS_COMMIT, "against": "live",
            "compared_with": f"compared with the commit live in {ns} ({LIVE[:12]}, blue)",
            "live": {"namespace": ns, "colour": "blue", "commit": LIVE, "image": None, "build_url": None},
            "paths": list(sc.service(PROJECT, name).paths), "warnings": [],
            "matched": [{"status": "M", "path": f"{name}/src/main/App.java"}], "changed_files": 1, "build_url": None}


def run_with(name: str, **kwargs):
    scenario = sc.service_scenario(PROJECT, name, changed_files=[f"{name}/src/main/App.java"], **kwargs)
    return scenario


@pytest.mark.parametrize("name", SERVICES)
def test_the_changes_stage_binds_the_kubeconfig_for_the_helper_by_environment_only(name):
    svc = sc.service(PROJECT, name)
    scenario = run_with(name)
    scenario["sh"][0]["writes"] = {"$ENADU_RESULT_FILE": json.dumps(changes_result(name))}
    run = harness().run(REPO / "pipelines" / name / "Jenkinsfile", scenario=scenario)
    assert run.result == "SUCCESS", run.describe()
    step = run.steps("enaduChanges")[0]
    assert step["args"]["namespace"] == svc.namespace
    assert step["args"]["credentialsId"] == PROJECT.kubernetes_credentials_id
    # the first withCredentials of the build is the Changes stage's, around the changes helper only
    first = run.steps("withCredentials")[0]
    assert first["args"]["bindings"] == [{"$symbol": "file", "credentialsId": PROJECT.kubernetes_credentials_id,
                                          "variable": "KUBECONFIG"}]
    changes = run.helper("changes")
    assert changes["status"] == exitcodes.OK
    env = changes["env"]
    assert env["KUBECONFIG"].startswith(f"/home/jenkins/agent/workspace/enadu/{name}@tmp/secretFiles/")
    assert env["KUBECONFIG"] not in run.files  # gone after withCredentials
    assert env["ENADU_NAMESPACE"] == svc.namespace
    manifest = (REPO / "resources" / "enadu" / "k8s" / f"{name}.yaml").read_bytes()
    assert env["ENADU_MANIFEST_SHA256"] == hashlib.sha256(manifest).hexdigest()
    script = changes["args"]["script"]
    assert "KUBECONFIG" not in script and env["KUBECONFIG"] not in script and "ENADU_NAMESPACE" not in script
    token = "FAKE-kube-token-5e2f11"  # in the credential's content (scenarios.CREDENTIALS)
    assert token in sc.CREDENTIALS[PROJECT.kubernetes_credentials_id]["content"]
    assert not any(token in line for line in run.log) and token not in script and token not in json.dumps(env)
    # deploy records the commit it deploys (enadu.io/commit) from the build's GIT_COMMIT
    assert run.helper("deploy")["env"]["GIT_COMMIT"] == sc.COMMIT == env["GIT_COMMIT"]
    # the shell that checks the tests and the build see no kubeconfig
    assert [e["rule"] for e in run.steps("sh") if "KUBECONFIG" in e["env"]] == ["changes", "deploy"]


@pytest.mark.parametrize("name", SERVICES)
def test_a_registration_build_binds_no_kubeconfig(name):
    scenario = sc.service_scenario(PROJECT, name, build_number=1, previous_result=None)
    scenario["params"] = {"ENADU_REGISTER_ONLY": True}
    scenario["sh"].insert(0, sc.helper_rule("changes", env={"ENADU_REGISTER_ONLY": "true"}, status=exitcodes.UNCHANGED))
    run = harness().run(REPO / "pipelines" / name / "Jenkinsfile", scenario=scenario)
    assert run.result == "NOT_BUILT", run.describe()
    assert "KUBECONFIG" not in run.helper("changes")["env"]
    assert all(b["variable"] != "KUBECONFIG" for w in run.steps("withCredentials") for b in w["args"]["bindings"]
               if "variable" in b)


@pytest.mark.parametrize("name", ["backend"])
def test_the_discord_message_says_what_changed_was_compared_with(name, tmp_path):
    written = changes_result(name)
    scenario = run_with(name)
    scenario["sh"][0]["writes"] = {"$ENADU_RESULT_FILE": json.dumps(written)}
    run = harness().run(REPO / "pipelines" / name / "Jenkinsfile", scenario=scenario)
    assert run.result == "SUCCESS", run.describe()
    notify = run.helper("notify")
    path = notify["env"]["ENADU_CHANGES_FILE"]
    assert path == run.helper("changes")["env"]["ENADU_RESULT_FILE"]
    assert run.files[path]["sha256"] == hashlib.sha256(json.dumps(written).encode()).hexdigest()
    # the real notify, with the environment the pipeline gave it and the file changes wrote
    local = tmp_path / "changes.json"
    local.write_text(json.dumps(written))
    env = {k: v for k, v in notify["env"].items() if k not in ("ENADU_DEPLOY_FILE", "PATH", "HOME")}
    env.update(ENADU_CHANGES_FILE=str(local), PATH=os.environ.get("PATH", ""), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "enadu_pipelines.helper.cli", "notify", "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    fields = {f["name"]: f["value"] for f in json.loads(proc.stdout)["embeds"][0]["fields"]}
    assert fields["Changes"].splitlines()[1] == written["compared_with"]
