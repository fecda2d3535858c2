"""The helper bundle: reproducible bytes, clean contents, and it runs with nothing but python3."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import BUNDLE, REPO

from enadu_pipelines import bundle
from enadu_pipelines.cli import main
from enadu_pipelines.helper.cli import COMMANDS


def build_in(directory: Path, cache: Path, *, tz: str, umask: str) -> bytes:
    """Run `enadu-pipelines bundle` in a fresh process, directory, wheel cache, time zone and umask."""
    directory.mkdir(parents=True)
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), TZ=tz)
    env.pop("SOURCE_DATE_EPOCH", None)
    code = f"import os, sys; os.umask({umask}); from enadu_pipelines.cli import main; sys.argv=['x', 'bundle', '--out', '.']; main()"
    result = subprocess.run([sys.executable, "-c", code], cwd=directory, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    return (directory / "resources" / "enadu" / "enadu-helper.pyz").read_bytes()


def test_bundle_is_reproducible(tmp_path: Path) -> None:
    first = build_in(tmp_path / "one", tmp_path / "cache-one", tz="UTC", umask="0o022")
    second = build_in(tmp_path / "deep" / "two", tmp_path / "cache-two", tz="Asia/Seoul", umask="0o077")
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()
    assert first == BUNDLE.read_bytes(), "the committed bundle is not what a fresh build produces"


def test_bundle_check_command(runner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["bundle", "--check", "--out", str(REPO)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(" unchanged  resources/enadu/enadu-helper.pyz")
    (tmp_path / "resources" / "enadu").mkdir(parents=True)
    (tmp_path / "resources" / "enadu" / "enadu-helper.pyz").write_bytes(b"stale")
    result = runner.invoke(main, ["bundle", "--check", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == "error: the committed helper bundle differs from a fresh build\n"
    assert (tmp_path / "resources" / "enadu" / "enadu-helper.pyz").read_bytes() == b"stale"


def test_archive_contents() -> None:
    with zipfile.ZipFile(BUNDLE) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        meta = json.loads(zf.read("enadu_bundle.json"))
        main_py = zf.read("__main__.py").decode()
    assert BUNDLE.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o644}
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".so", ".pyd"))]
    assert "from enadu_pipelines.helper.cli import main" in main_py
    for package in ("kubernetes/client/__init__.py", "requests/__init__.py", "urllib3/__init__.py",
                    "certifi/cacert.pem", "yaml/__init__.py", "tenacity/__init__.py",
                    "enadu_pipelines/helper/cli.py", "enadu_pipelines/helper/retry.py"):
        assert package in names
    assert meta["fingerprint"] == bundle.fingerprint()
    assert meta["packages"] == [f"{p.name}=={p.version}" for p in bundle.read_lock()]
    assert BUNDLE.stat().st_size < 8 * 1024 * 1024


def test_lock_pins_every_file_by_hash() -> None:
    pins = bundle.read_lock()
    assert {p.name.lower().replace("_", "-") for p in pins} >= {"kubernetes", "requests", "urllib3", "certifi",
                                                                "pyyaml", "tenacity"}
    assert all(len(p.hashes) == 1 and len(p.hashes[0]) == 64 for p in pins)


def test_tampered_hash_fails_the_build(tmp_path: Path, runner, monkeypatch) -> None:
    lock = tmp_path / "helper.lock"
    text = bundle.lock_path().read_text()
    pin = bundle.read_lock()[0]
    lock.write_text(text.replace(pin.hashes[0], "0" * 64))
    monkeypatch.setattr(bundle, "lock_path", lambda: lock)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = runner.invoke(main, ["bundle", "--out", str(tmp_path)])
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: pip could not fetch the pinned helper dependencies: ")
    assert not (tmp_path / "resources").exists()


def test_broken_lock_file(tmp_path: Path, runner, monkeypatch) -> None:
    lock = tmp_path / "helper.lock"
    lock.write_text("kubernetes>=35\n")
    monkeypatch.setattr(bundle, "lock_path", lambda: lock)
    result = runner.invoke(main, ["bundle", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == f"error: {lock}: not a pinned requirement with hashes: 'kubernetes>=35'\n"


@pytest.fixture(scope="module")
def empty_venv(tmp_path_factory) -> Path:
    """A virtual environment with no site-packages at all (no pip either)."""
    path = tmp_path_factory.mktemp("empty") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    bare = subprocess.run([str(python), "-I", "-c", "import requests"], capture_output=True, text=True)
    assert bare.returncode == 1 and "No module named 'requests'" in bare.stderr, "the venv must be empty"
    return python


def run_bundle(python: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-I", str(BUNDLE), *args], capture_output=True, text=True, timeout=120,
                          env=env if env is not None else {"PATH": os.environ["PATH"]})


def test_bundle_runs_isolated_version(empty_venv: Path) -> None:
    result = run_bundle(empty_venv, "--version")
    assert result.returncode == 0, result.stderr
    sha = hashlib.sha256(BUNDLE.read_bytes()).hexdigest()
    assert result.stdout == f"enadu-helper 0.1.0 (bundle sha256 {sha})\n"


def test_bundle_runs_isolated_help(empty_venv: Path) -> None:
    result = run_bundle(empty_venv, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: enadu-helper ")
    for command in COMMANDS:
        assert f"    {command}" in result.stdout
        sub = run_bundle(empty_venv, command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert sub.stdout.startswith(f"usage: enadu-helper {command} ")


def test_bundled_dependencies_import_without_native_code(empty_venv: Path) -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kubernetes.client, kubernetes.config, kubernetes.watch;"
            " import requests, yaml, tenacity, certifi;"
            " print(yaml.__with_libyaml__, kubernetes.client.__file__.startswith(sys.argv[1]), certifi.where() != '')")
    result = subprocess.run([str(empty_venv), "-I", "-c", code, str(BUNDLE)], capture_output=True, text=True,
                            timeout=120, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False True True\n"


def test_bundle_usage_error_exit_code(empty_venv: Path) -> None:
    result = run_bundle(empty_venv, "no-such-command")
    assert result.returncode == 2
    assert "invalid choice: 'no-such-command'" in result.stderr


MIN_PYTHON = "3.9"  # the oldest python3 the README promises on Jenkins agents


def test_helper_code_needs_no_newer_python_than_promised() -> None:
    """Our own code in the bundle, checked by vermin (a static minimum-version detector)."""
    vermin = Path(sys.executable).parent / "vermin"  # the console script (the package has no __main__)
    result = subprocess.run([str(vermin), f"-t={MIN_PYTHON}-", "--violations", "--no-tips",
                             "--eval-annotations", "enadu_pipelines/helper", "enadu_pipelines/__init__.py"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Minimum required versions: 3." in result.stdout


def test_every_bundled_dependency_supports_the_promised_python(tmp_path: Path) -> None:
    """The lock is resolved for the oldest promised python3; each wheel's own Requires-Python says so."""
    from packaging.specifiers import SpecifierSet

    wheels = bundle.download(bundle.read_lock(), bundle.cache_dir())
    assert len(wheels) == len(bundle.read_lock())
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            [meta] = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
            requires = [line.split(":", 1)[1].strip() for line in zf.read(meta).decode().splitlines()
                        if line.startswith("Requires-Python:")]
        for spec in requires:
            assert SpecifierSet(spec).contains(f"{MIN_PYTHON}.0"), f"{wheel.name} requires Python {spec}"
