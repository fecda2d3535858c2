"""Rendered Kubernetes manifests are valid for Kubernetes 1.31 (kubernetes-validate ships the real
OpenAPI schemas), for the shipped configuration and for a stress configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml
from conftest import REPO, seed_bundle
from support.crds import SERVICE_MONITOR_SCHEMA

from enadu_pipelines.cli import main

VALIDATE = [sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version", "1.31.0"]


def validate(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([*VALIDATE, *map(str, paths)], capture_output=True, text=True, timeout=300)


def documents(paths: list[Path]) -> int:
    return sum(1 for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc is not None)


def test_shipped_manifests_validate_strictly() -> None:
    paths = sorted((REPO / "resources" / "enadu" / "k8s").glob("*.yaml"))
    assert [p.name for p in paths] == ["backend.rbac.yaml", "backend.yaml", "batch.rbac.yaml", "batch.yaml",
                                       "frontend.rbac.yaml", "frontend.yaml"]
    result = validate(paths)
    assert result.returncode == 0, result.stdout + result.stderr
    # every document reported valid: three per file (Deployment and two Services; ServiceAccount, Role
    # and RoleBinding), and the migration Role and RoleBinding of a service that opts in (backend)
    assert result.stdout.count("INFO") == documents(paths) == 20, result.stdout


def test_validation_can_fail(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((REPO / "resources/enadu/k8s/backend.yaml").read_text()))
    wrong_type, unknown_field = tmp_path / "type.yaml", tmp_path / "field.yaml"
    docs[0]["spec"]["replicas"] = "two"
    wrong_type.write_text(yaml.safe_dump(docs[0]))
    docs[0]["spec"]["replicas"] = 2
    docs[0]["spec"]["template"]["spec"]["containers"][0]["colour"] = "blue"  # rejected in strict mode only
    unknown_field.write_text(yaml.safe_dump(docs[0]))
    for path, problem in ((wrong_type, "spec.replicas: 'two' is not of type 'integer'"), (unknown_field, "colour")):
        result = validate([path])
        assert result.returncode != 0
        assert result.stdout.startswith(f"ERROR {path} did not validate for resource deployment/backend")
        assert problem in result.stdout


def test_every_option_combination_validates(tmp_path: Path, runner) -> None:
    data = yaml.safe_load((REPO / "enadu.yaml").read_text())
    data["kubernetes"].pop("resources")  # no resources at all for gradle services
    data["services"]["frontend"]["kubernetes"]["resources"] = {"limits": {"memory": "64Mi"}}  # limits only
    data["services"]["batch"]["kubernetes"] = {"namespace": "batch-jobs", "replicas": 7, "container_port": 65535,
                                               "health_path": "/", "deploy_timeout": "1h"}
    data["monitoring"]["service_monitor"] = True  # a CRD document per service, next to the manifests
    data["services"]["frontend"]["monitoring"] = {"metrics_port": 9113}  # an extra container and Service port
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    seed_bundle(tmp_path)
    assert runner.invoke(main, ["render", "--config", str(tmp_path / "c.yaml")]).exit_code == 0
    rendered = sorted((tmp_path / "resources" / "enadu" / "k8s").glob("*.yaml"))
    # kubernetes-validate knows no CRDs: the ServiceMonitors (and only they) are checked against the
    # CRD's schema instead
    monitors = [p for p in rendered if p.name.endswith(".servicemonitor.yaml")]
    paths = [p for p in rendered if p not in monitors]
    assert len(monitors) == 3 and len(paths) == 6  # and a .rbac.yaml per service
    for path in monitors:
        [doc] = list(yaml.safe_load_all(path.read_text()))
        jsonschema.validate(doc, SERVICE_MONITOR_SCHEMA)
    result = validate(paths)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("INFO") == documents(paths), result.stdout
    role = [doc for doc in yaml.safe_load_all((tmp_path / "resources/enadu/k8s/batch.rbac.yaml").read_text())][1]
    assert role["metadata"] == {"name": "enadu-deployer-batch", "namespace": "batch-jobs",
                                "labels": {"app": "batch", "app.kubernetes.io/managed-by": "enadu-pipelines"}}
    batch = list(yaml.safe_load_all((tmp_path / "resources/enadu/k8s/batch.yaml").read_text()))[0]
    assert batch["metadata"]["namespace"] == "batch-jobs" and batch["spec"]["replicas"] == 7
    assert batch["spec"]["progressDeadlineSeconds"] == 1800  # half of deploy_timeout 1h
    assert "resources" not in batch["spec"]["template"]["spec"]["containers"][0]
