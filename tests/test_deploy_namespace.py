"""Which namespace the cluster commands work in (issue 14, defect 4).

As kubectl does: the flag (``--namespace``, or ``ENADU_NAMESPACE`` the way enaduDeploy passes it)
wins over the kubeconfig context's namespace; the namespace written in the manifest is used when no
flag is given, and a flag that names another one is an error (kubectl apply's "the namespace from
the provided object ... does not match the namespace ...": ``RequireNamespace`` in
staging/src/k8s.io/cli-runtime/pkg/resource/visitor.go, applied when the namespace was given on the
command line). Without either, the context's namespace, else ``default``. Every command says which
namespace it uses and why. A namespace that does not exist is an error (exit 2), never "not
deployed". Real helper processes against the Kubernetes test world.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support import deployrun as d
from tests.support.deployrun import world  # noqa: F401 (world is a fixture)

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 5}


def context_kubeconfig(world, tmp_path: Path, namespace: str) -> str:
    return world.write_kubeconfig(str(tmp_path / f"kubeconfig-{namespace}"), namespace=namespace)


def manifest_without_namespace(tmp_path: Path) -> str:
    docs = [doc for doc in yaml.safe_load_all(d.MANIFEST.read_text()) if doc]
    for doc in docs:
        doc["metadata"].pop("namespace", None)
    path = tmp_path / "backend.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_the_kubeconfig_context_names_the_namespace_when_nothing_else_does(world, tmp_path: Path) -> None:
    env = {"KUBECONFIG": context_kubeconfig(world, tmp_path, d.NAMESPACE), "ENADU_NAMESPACE": None,
           "ENADU_MANIFEST": manifest_without_namespace(tmp_path)}
    deployed = d.deploy(world, "v1", extra_env=env)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "namespace enadu (from the kubeconfig context kubeworld)" in deployed.stderr
    assert deployed.result["namespace"] == "enadu" and d.selected_colour(world) == "blue"
    status = d.run(world, "status", extra_env={**env, "ENADU_MANIFEST": None})
    assert status.returncode == 0, status.stdout + status.stderr
    assert "namespace enadu (from the kubeconfig context kubeworld)" in status.stderr
    assert status.result["live"] == "blue" and status.result["namespace"] == "enadu"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_the_manifest_beats_the_context(world, tmp_path: Path) -> None:
    # the context says default (the shell script's habit); the manifest says enadu, where the service runs
    env = {"KUBECONFIG": context_kubeconfig(world, tmp_path, "default"), "ENADU_NAMESPACE": None}
    deployed = d.deploy(world, "v1", extra_env=env)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "namespace enadu (from the manifest; the kubeconfig context kubeworld names default)" in deployed.stderr
    assert d.selected_colour(world) == "blue"
    assert world.get("services", "backend", "default") is None and world.get("deployments", "backend-blue", "default") is None
    for command in ("status", "rollback", "abort"):
        run = d.run(world, command, extra_env={**env, "ENADU_DRY_RUN": "1"})
        assert "namespace enadu (from the manifest" in run.stderr, (command, run.stdout + run.stderr)
    assert d.run(world, "status", extra_env=env).result["live"] == "blue"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_flag_that_contradicts_the_manifest_is_refused_before_any_request(world, how: str) -> None:
    world.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "staging"}})
    before = len(world.requests.all(d.USER_AGENT))
    args, env = (("--namespace", "staging"), {}) if how == "flag" else ((), {"ENADU_NAMESPACE": "staging"})
    refused = d.deploy(world, "v1", *args, extra_env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    source = "--namespace" if how == "flag" else "ENADU_NAMESPACE"
    message = refused.result["message"]
    assert f"namespace staging (from {source}) does not match namespace enadu in the manifest" in message, message
    assert len(refused.stderr.strip().splitlines()) <= 2  # the usual progress lines are not reached; one error line
    assert world.requests.all(d.USER_AGENT)[before:] == []
    assert world.get("services", "backend", "staging") is None and world.get("services", "backend", d.NAMESPACE) is None


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize("command", ["status", "rollback", "abort", "deploy"])
def test_a_namespace_that_does_not_exist_is_an_error_not_not_deployed(world, command: str, tmp_path: Path) -> None:
    ok = d.deploy(world, "v1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    args = ("--image", d.image("v2")) if command == "deploy" else ()
    manifest = manifest_without_namespace(tmp_path) if command == "deploy" else None
    run = d.run(world, command, *args, "--namespace", "enadu-stagin", extra_env={"ENADU_MANIFEST": manifest})
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.result["outcome"] == "error"
    assert "namespace enadu-stagin (from --namespace) does not exist" in run.result["message"], run.result["message"]
    assert "not deployed" not in run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert world.get("namespaces", "enadu-stagin", "") is None


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_with_the_deployer_role_not_deployed_is_told_by_a_dry_run_create_of_the_lock(world, tmp_path: Path) -> None:
    """The deployer's Role is namespaced: it may not GET the namespace (403), but may create the lock
    Lease; a dry-run create of it proves the namespace (nothing is stored), so "not deployed" is true."""
    rbac_manifest = d.REPO / "resources" / "enadu" / "k8s" / "backend.rbac.yaml"
    applied = world.kubectl("apply", "--server-side=false", "-f", str(rbac_manifest))
    assert applied.returncode == 0, applied.stderr
    token = world.service_account_token("enadu-deployer", d.NAMESPACE)
    kubeconfig = world.write_kubeconfig(str(tmp_path / "deployer"), token=token, namespace=d.NAMESPACE)
    before = len(world.requests.all(d.USER_AGENT))
    status = d.run(world, "status", extra_env={"KUBECONFIG": kubeconfig})
    assert status.returncode == 0, status.stdout + status.stderr
    assert "not deployed (no Service in namespace enadu)" in status.stderr
    probes = [(r.verb, r.resource, r.status, "dryRun=All" in r.query) for r in world.requests.all(d.USER_AGENT)[before:]
              if r.resource in ("namespaces", "leases")]
    assert probes == [("get", "namespaces", 403, False), ("create", "leases", 201, True)]
    assert world.get("leases", "enadu-deploy-backend", d.NAMESPACE) is None  # a dry run stores nothing


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_bad_namespaces_from_the_context_or_the_manifest_are_one_line_errors(world, tmp_path: Path) -> None:
    config = world.kubeconfig_dict(namespace="Not A\\nNamespace")
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    bad_context = d.run(world, "status", extra_env={"KUBECONFIG": str(path), "ENADU_NAMESPACE": None,
                                                                  "ENADU_MANIFEST": None})
    assert bad_context.returncode == 2, bad_context.stdout + bad_context.stderr
    assert "the kubeconfig context kubeworld names 'Not A\\\\nNamespace', which is not a namespace name" in \
        bad_context.result["message"], bad_context.result["message"]
    assert str(path) not in bad_context.stdout + bad_context.stderr  # the kubeconfig's path is never shown

    docs = [doc for doc in yaml.safe_load_all(d.MANIFEST.read_text()) if doc]
    next(doc for doc in docs if doc["kind"] == "Service")["metadata"]["namespace"] = "default"
    split = tmp_path / "backend.yaml"
    split.write_text(yaml.safe_dump_all(docs))
    before = len(world.requests.all(d.USER_AGENT))
    refused = d.deploy(world, "v1", extra_env={"ENADU_MANIFEST": str(split), "ENADU_NAMESPACE": None})
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "its objects name different namespaces (default, enadu)" in refused.result["message"]
    assert world.requests.all(d.USER_AGENT)[before:] == []
