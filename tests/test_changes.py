"""`enadu-helper changes` on real git repositories built in tmp_path.

The repositories have the Enadu layout (backend/, batch/, frontend/, common/) and the services'
real filters from enadu.yaml; every scenario runs the helper's command line and checks the exit code
(0 changed, 10 unchanged, 1 error, 2 usage), the printed lines and the JSON result file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enadu_pipelines.helper.changes import compile_glob
from enadu_pipelines.helper.cli import main
from tests.support.gitrepo import GIT_ENV, Repo

FILTERS = {"backend": ["backend/**", "common/**"], "batch": ["batch/**", "common/**"], "frontend": ["**"]}
@pytest.fixture
def repo(tmp_path):
    r = Repo(tmp_path / "enadu")
    r.base = r.commit({"backend/src/App.java": "class App {}\n" * 20, "batch/src/Job.java": "class Job {}\n" * 20,
                       "frontend/src/app.ts": "export {}\n" * 20, "common/src/Util.java": "class Util {}\n" * 20,
                       "README.md": "enadu\n"}, "initial")
    return r


@pytest.fixture
def run(monkeypatch, capsys, tmp_path):
    for name in list(os.environ):
        if name.startswith("ENADU_") or name.startswith("GIT_") or name in ("BUILD_URL", "KUBECONFIG",
                                                                            "KUBERNETES_SERVICE_HOST"):
            monkeypatch.delenv(name)
    result_file = tmp_path / "tmp" / "changes.json"

    def run(repo: Repo, service: str, commit: str, previous: Optional[str], *argv: str, paths=None):
        monkeypatch.setenv("ENADU_SERVICE", service)
        monkeypatch.setenv("ENADU_PATHS", "\n".join(paths if paths is not None else FILTERS[service]))
        monkeypatch.setenv("ENADU_RESULT_FILE", str(result_file))
        monkeypatch.setenv("GIT_COMMIT", commit)
        monkeypatch.setenv("GIT_PREVIOUS_SUCCESSFUL_COMMIT", previous or "")
        code = main(["changes", "--repo", str(repo.path), *argv])
        out, err = capsys.readouterr()
        result = json.loads(result_file.read_text()) if result_file.exists() else None
        return code, out, err, result

    run.result_file = result_file
    return run


# ---------------------------------------------------------------------------------------------
# decisions


def test_each_service_sees_only_its_own_paths(repo, run):
    head = repo.commit({"batch/src/Job.java": "class Job { int x; }\n"})
    assert run(repo, "backend", head, repo.base)[0] == 10
    code, out, err, result = run(repo, "batch", head, repo.base)
    assert (code, err) == (0, "")
    assert out == (f"changes batch: changed: 1 of 1 changed files match batch/**, common/** "
                   f"({repo.base[:7]}..{head[:7]})\n"
                   f"  compared with the last successful build ({repo.base[:12]}): no cluster credentials (KUBECONFIG)\n"
                   f"  M  batch/src/Job.java\n")
    assert result["changed"] is True and result["basis"] == "diff" and result["against"] == "previous"
    assert result["matched"] == [{"status": "M", "path": "batch/src/Job.java"}]
    assert result["commit"] == head and result["previous"] == repo.base
    assert run(repo, "frontend", head, repo.base)[0] == 0  # '**' matches anything


def test_common_changes_rebuild_both_gradle_services(repo, run):
    head = repo.commit({"common/src/Util.java": "class Util { }\n"})
    assert run(repo, "backend", head, repo.base)[0] == 0
    assert run(repo, "batch", head, repo.base)[0] == 0


def test_unchanged_says_so_and_writes_the_result(repo, run):
    head = repo.commit({"frontend/src/app.ts": "export const x = 1\n", "README.md": "more\n"})
    code, out, _, result = run(repo, "backend", head, repo.base)
    assert code == 10
    assert out == (f"changes backend: unchanged: none of the 2 changed files match backend/**, common/** "
                   f"({repo.base[:7]}..{head[:7]})\n"
                   f"  compared with the last successful build ({repo.base[:12]}): no cluster credentials (KUBECONFIG)\n")
    assert result["changed"] is False and result["matched"] == [] and result["changed_files"] == 2
    assert result["service"] == "backend" and result["paths"] == ["backend/**", "common/**"]


def test_a_rename_counts_on_both_sides(repo, run):
    out_of_backend = repo.commit({"backend/src/App.java": None, "tools/App.java": "class App {}\n" * 20})
    code, _, _, result = run(repo, "backend", out_of_backend, repo.base)
    assert code == 0
    assert result["matched"] == [{"status": "R", "path": "tools/App.java", "old_path": "backend/src/App.java"}]
    into_batch = repo.commit({"tools/App.java": None, "batch/src/App.java": "class App {}\n" * 20})
    code, _, _, result = run(repo, "batch", into_batch, out_of_backend)
    assert code == 0
    assert result["matched"] == [{"status": "R", "path": "batch/src/App.java", "old_path": "tools/App.java"}]
    assert run(repo, "backend", into_batch, out_of_backend)[0] == 10


def test_a_deletion_counts(repo, run):
    head = repo.commit({"common/src/Util.java": None})
    code, out, _, result = run(repo, "backend", head, repo.base)
    assert code == 0 and "  D  common/src/Util.java" in out
    assert result["matched"] == [{"status": "D", "path": "common/src/Util.java"}]


def test_changes_over_several_commits_are_all_seen(repo, run):
    repo.commit({"backend/src/A.java": "a\n"})
    repo.commit({"backend/src/A.java": None})  # added then removed: no net change
    head = repo.commit({"batch/src/B.java": "b\n"})
    assert run(repo, "backend", head, repo.base)[0] == 10
    assert run(repo, "batch", head, repo.base)[0] == 0


def test_first_build_is_changed(repo, run):
    code, out, _, result = run(repo, "backend", repo.base, None)
    assert code == 0
    assert out == ("changes backend: changed: first build (no previous successful commit): everything counts as changed\n"
                   "  compared with nothing: no cluster credentials (KUBECONFIG), and no previous successful build\n")
    assert result["basis"] == "first-build" and result["previous"] is None


@pytest.mark.parametrize("how", ["env", "flag"])
def test_a_registration_build_is_unchanged_even_as_a_first_build(repo, run, monkeypatch, how):
    # The first build bootstrap queues only records the checkout (so pushes start the job); with no
    # previous successful commit it would otherwise count as changed and redeploy production.
    if how == "env":
        monkeypatch.setenv("ENADU_REGISTER_ONLY", "true")
    code, out, _, result = run(repo, "backend", repo.base, None, *(["--register-only"] if how == "flag" else []))
    assert code == 10
    assert out.startswith("changes backend: unchanged: registration build:")
    assert result["changed"] is False and result["basis"] == "registration" and result["matched"] == []


def test_register_only_must_be_a_boolean(repo, run, monkeypatch):
    monkeypatch.setenv("ENADU_REGISTER_ONLY", "maybe")
    code, _, err, _ = run(repo, "backend", repo.base, None)
    assert code == 2
    assert "ENADU_REGISTER_ONLY" in err and "maybe" in err


def test_a_force_push_that_dropped_the_previous_commit_is_changed(repo, run):
    dropped = repo.commit({"frontend/src/app.ts": "v2\n"})
    repo.git("reset", "-q", "--hard", repo.base)
    head = repo.commit({"README.md": "rewritten\n"})
    code, _, _, result = run(repo, "backend", head, dropped)  # the old commit is still in the object store
    assert code == 0 and result["basis"] == "not-ancestor"
    assert "is not an ancestor of" in result["reason"] and "force-push" in result["reason"]
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "-q", "--prune=now")
    code, _, _, result = run(repo, "backend", head, dropped)  # now it is gone altogether
    assert code == 0 and result["basis"] == "previous-unknown"
    assert result["reason"].startswith(f"previous successful commit {dropped[:12]} is unknown")


def test_a_shallow_clone_without_the_previous_commit_is_changed(repo, run, tmp_path):
    middle = repo.commit({"frontend/src/app.ts": "v2\n"})
    head = repo.commit({"frontend/src/app.ts": "v3\n"})
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo.path}", str(clone)], check=True,
                   env=dict(os.environ, **GIT_ENV), timeout=60)
    shallow = Repo.__new__(Repo)
    shallow.path = clone
    code, out, _, result = run(shallow, "backend", head, middle)
    assert code == 0 and result["basis"] == "previous-unknown"
    assert "this shallow clone does not have it" in out
    assert run(shallow, "backend", head, head)[0] == 10  # the same commit: nothing to rebuild


def test_an_unknown_commit_id_for_this_build_is_an_error(repo, run):
    code, out, err, result = run(repo, "backend", "0" * 40, repo.base)
    assert code == 1 and out == ""
    assert err == f"changes backend: error: commit '{'0' * 40}' is not in the repository at {repo.path}\n"
    assert result["changed"] is None and "is not in the repository" in result["error"]


def test_not_a_repository_is_an_error(tmp_path, run, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # even if tmp_path sits inside a repo
    folder = Repo.__new__(Repo)
    folder.path = tmp_path / "plain"
    folder.path.mkdir()
    code, _, err, _ = run(folder, "backend", "HEAD", None)
    assert code == 1 and "git rev-parse failed" in err and "not a git repository" in err


def test_a_stale_result_file_is_replaced_even_on_error(repo, run):
    run.result_file.parent.mkdir(parents=True, exist_ok=True)
    run.result_file.write_text(json.dumps({"changed": True, "basis": "diff", "matched": []}))
    code, _, _, result = run(repo, "backend", repo.base, "-bad")
    assert code == 2 and result == {"service": "backend", "build_url": None, "changed": None, "error":
                                    "GIT_PREVIOUS_SUCCESSFUL_COMMIT (--previous) '-bad' is not a commit id or ref"}


@pytest.mark.parametrize(("paths", "said"), [
    ([], "no path globs: set ENADU_PATHS"),
    (["backend/**x"], "'**' must be a whole path segment"),
    (["../secrets/**"], "segments may not be empty, '.' or '..'"),
    (["/abs/**"], "segments may not be empty, '.' or '..'"),
])
def test_bad_globs_are_usage_errors(repo, run, paths, said):
    code, out, err, _ = run(repo, "backend", repo.base, None, paths=paths)
    assert code == 2 and out == "" and said in err and err.startswith("enadu-helper changes: ")


def test_flags_override_the_environment_and_json_is_one_object(repo, run):
    head = repo.commit({"docs/guide.md": "hi\n"})
    code, out, _, _ = run(repo, "backend", "HEAD", "HEAD~1", "--path", "docs/**", "--output", "json")
    result = json.loads(out)
    assert code == 0 and result["paths"] == ["docs/**"] and result["commit"] == head
    assert result["matched"] == [{"status": "A", "path": "docs/guide.md"}]


def test_unusual_file_names_match_and_print(repo, run):
    head = repo.commit({"backend/src/ünï cödé [1].txt": "x\n", "backend/src/tab\there.txt": "y\n"})
    code, out, _, result = run(repo, "backend", head, repo.base)
    assert code == 0
    assert sorted(m["path"] for m in result["matched"]) == ["backend/src/tab\there.txt",
                                                            "backend/src/ünï cödé [1].txt"]
    assert "backend/src/ünï cödé [1].txt" in out


# ---------------------------------------------------------------------------------------------
# globs


@pytest.mark.parametrize(("pattern", "yes", "no"), [
    ("backend/**", ["backend/a", "backend/src/main/A.java"], ["backend", "backendx/a", "common/backend/a"]),
    ("**", ["a", "a/b/c"], []),
    ("**/*.gradle", ["build.gradle", "backend/build.gradle", "a/b/settings.gradle"], ["build.gradle.kts"]),
    ("backend/*.txt", ["backend/a.txt"], ["backend/x/a.txt", "backend/.txt/b"]),
    ("a/**/b", ["a/b", "a/x/b", "a/x/y/b"], ["a/xb", "ab"]),
    ("src/?.py", ["src/a.py"], ["src/ab.py", "src//.py"]),
    ("docs/a+b.md", ["docs/a+b.md"], ["docs/aab.md"]),
])
def test_glob_semantics(pattern, yes, no):
    rx = compile_glob(pattern)
    assert [p for p in yes if not rx.fullmatch(p)] == []
    assert [p for p in no if rx.fullmatch(p)] == []


def _regex_reference(pattern: str):
    """The regular-expression translation the helper used before issue 13 (finding 8): the semantics
    the linear matcher keeps. Fine for the short inputs below; exponential on long ones."""
    import re

    out = []
    segments = pattern.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        out.append("".join("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch) for ch in segment))
        if not last:
            out.append("/")
    return re.compile("".join(out), re.DOTALL)


_SEGMENT = st.lists(st.sampled_from(["a", "b", "*", "?", "ab"]), min_size=1, max_size=4).map("".join).filter(
    lambda s: "**" not in s)
_GLOB = st.lists(st.one_of(_SEGMENT, st.just("**")), min_size=1, max_size=4).map("/".join)
_PATH = st.lists(st.text(alphabet="ab", min_size=1, max_size=5), min_size=1, max_size=5).map("/".join)


@settings(max_examples=400, deadline=None)
@given(pattern=_GLOB, path=_PATH)
def test_the_linear_matcher_agrees_with_the_regex_translation(pattern, path):
    assert compile_glob(pattern).fullmatch(path) == bool(_regex_reference(pattern).fullmatch(path))


def test_pathological_globs_match_in_linear_time():
    """``*a*a*a*a*a*b`` against a 200-character name took 173 s with the regex translation (finding 8).
    The matcher uses no regular expression at all, and these cases, each far beyond minutes for a
    backtracking regex, finish well inside a generous 20 s subprocess timeout."""
    import enadu_pipelines.helper.changes as changes

    assert not isinstance(compile_glob("*a*b"), re.Pattern)
    script = (
        "from enadu_pipelines.helper.changes import compile_glob\n"
        "assert not compile_glob('*a' * 30 + '*b').fullmatch('a' * 5000)\n"
        "assert compile_glob('*a' * 30 + '*b').fullmatch('a' * 5000 + 'b')\n"
        "assert not compile_glob('**/a/' * 20 + 'b').fullmatch('a/' * 2000 + 'c')\n"
        "assert not compile_glob('x/' + '**/*a*/' * 10 + 'b').fullmatch('x/' + 'aaaa/' * 400 + 'c')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=20,
                   env={**os.environ, "PYTHONPATH": str(Path(changes.__file__).parents[2])})
