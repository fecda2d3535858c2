"""Shared fixtures: the repository, real tools (Groovy 2.4.21, npm-groovy-lint), config files.

Tools are installed by scripts/test; a missing tool fails the tests that need it (never a skip).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "resources" / "enadu" / "enadu-helper.pyz"
GROOVY_SUPPORT = REPO / "tests" / "support" / "groovy"
LINT_BIN = REPO / "tests" / "lint" / "node_modules" / ".bin" / "npm-groovy-lint"


def java_env() -> dict[str, str]:
    """The environment with JAVA_HOME pointing at the JDK that `java` on PATH belongs to."""
    env = dict(os.environ)
    if not env.get("JAVA_HOME") or not Path(env["JAVA_HOME"], "bin", "java").exists():
        java = shutil.which("java")
        assert java, "java is not installed (scripts/test installs it)"
        env["JAVA_HOME"] = str(Path(os.path.realpath(java)).parent.parent)
    return env


def groovy_compile(paths: list[Path]) -> subprocess.CompletedProcess:
    """Compile Pipeline scripts with Groovy 2.4.21 as Jenkins does; see tests/support/groovy."""
    groovy = shutil.which("groovy")
    assert groovy, "groovy is not installed (scripts/test installs Debian's groovy 2.4.21)"
    return subprocess.run(
        [groovy, str(GROOVY_SUPPORT / "compile.groovy"), str(GROOVY_SUPPORT / "stubs"), *map(str, paths)],
        capture_output=True, text=True, env=java_env(), timeout=300,
    )


def run_groovy(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "script.groovy"
    path.write_text(script, "utf-8")
    return subprocess.run([shutil.which("groovy") or "groovy", str(path)], capture_output=True, text=True,
                          env=java_env(), timeout=120)


def generated_groovy(root: Path) -> list[Path]:
    return sorted(root.glob("vars/*.groovy")) + sorted(root.glob("pipelines/*/Jenkinsfile*"))


def seed_bundle(out: Path) -> None:
    """Put the committed helper bundle under ``out`` so render reuses it instead of rebuilding."""
    target = out / "resources" / "enadu" / "enadu-helper.pyz"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(BUNDLE, target)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def shipped_config_text() -> str:
    return (REPO / "enadu.yaml").read_text("utf-8")


@pytest.fixture
def python() -> str:
    return sys.executable

# The Kubernetes test world's fixture (`kubeworld`), available to every test module.
pytest_plugins = ["tests.support.kubeworld.fixtures"]


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory):
    """A real Prometheus on loopback (tests/support/prometheus), shared by the session; tests add
    targets with ``add_target`` and should use service names of their own so series never mix."""
    from support.prometheus import Prometheus

    server = Prometheus(tmp_path_factory.mktemp("prometheus")).start()
    try:
        yield server
    finally:
        server.stop()
