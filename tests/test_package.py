"""The wheel carries the templates and the lock file: a non-editable install renders from anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, seed_bundle


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "-w", str(dist), str(REPO)], check=True, capture_output=True, timeout=600)
    [path] = dist.glob("enadu_pipelines-*.whl")
    return path


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("enadu_pipelines/templates/pipelines/Jenkinsfile.j2", "enadu_pipelines/templates/vars/_step.groovy.j2",
                     "enadu_pipelines/templates/k8s/service.yaml.j2", "enadu_pipelines/helper.lock",
                     "enadu_pipelines/helper/cli.py", "enadu_pipelines/cli.py"):
        assert required in names
    assert not any(n.startswith(("tests/", "pipelines/", "vars/", "resources/")) for n in names)


def test_installed_wheel_renders_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    target, work = tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=600)
    (work / "enadu.yaml").write_text((REPO / "enadu.yaml").read_text())
    seed_bundle(work / "out")
    env = dict(os.environ, PYTHONPATH=str(target))
    code = ("import sys, enadu_pipelines, enadu_pipelines.cli as c; print(enadu_pipelines.__file__, file=sys.stderr);"
            " sys.argv = ['enadu-pipelines'] + sys.argv[1:]; c.main()")
    result = subprocess.run([sys.executable, "-c", code, "render", "--config", "enadu.yaml", "--out", "out"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0].startswith(str(target)), "the installed copy must be the one running"
    assert "   created  pipelines/backend/Jenkinsfile" in result.stdout.splitlines()
    assert (work / "out" / "pipelines" / "frontend" / "Jenkinsfile").read_bytes() == \
        (REPO / "pipelines" / "frontend" / "Jenkinsfile").read_bytes()
