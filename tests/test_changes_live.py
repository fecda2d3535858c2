"""`changes` against what is live (issue 16, part 1), with real git and the Kubernetes test world.

Deploys run the real helper as a separate process with GIT_COMMIT set, as enaduDeploy does; so does
`changes`, with the kubeconfig, namespace and manifest enaduChanges passes. The repository is a real
git repository with the Enadu layout. What must hold: a deploy records its commit on the colour it
makes live (``enadu.io/commit``), through scale-to-zero, scale-up and a rollback that recreates a
deleted colour; `changes` compares GIT_COMMIT with the live commit, so a push touching only batch/
after a rollback (or after a deploy that never switched) still rebuilds backend, and falls back to
GIT_PREVIOUS_SUCCESSFUL_COMMIT, each time saying why, when the live commit cannot be used.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import deployrun as d
from tests.support.deployrun import ok, world  # noqa: F401 (world is a fixture)
from tests.support.gitrepo import Repo

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 5}
BACKEND = "backend/**\ncommon/**"
COMMIT = "enadu.io/commit"


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "enadu")
    r.base = r.commit({"backend/src/App.java": "class App {}\n", "batch/src/Job.java": "class Job {}\n",
                       "common/src/Util.java": "class Util {}\n"}, "initial")
    return r


def deploy(world, tag: str, commit: str, *args: str) -> dict:
    return ok(d.deploy(world, tag, *args, extra_env={"GIT_COMMIT": commit}))


def changes(world, repo: Repo, commit: str, previous: str, tmp_path: Path, *, bundle: bool = False,
            **env: str) -> d.Run:
    """`changes` for backend as enaduChanges runs it (KUBECONFIG, ENADU_NAMESPACE, ENADU_MANIFEST)."""
    result_file = tmp_path / "changes.json"
    run = d.run(world, "changes", "--repo", str(repo.path), timeout=60, bundle=bundle, extra_env={
        "ENADU_PATHS": BACKEND, "GIT_COMMIT": commit, "GIT_PREVIOUS_SUCCESSFUL_COMMIT": previous,
        "ENADU_RESULT_FILE": str(result_file), **env})
    assert json.loads(result_file.read_text()) == run.result  # the file notify reads says the same
    return run


def annotated_commit(world, colour: str):
    return ((d.deployment(world, colour) or {}).get("metadata", {}).get("annotations") or {}).get(COMMIT)


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollback_then_unrelated_push_counts_as_changed(world, repo, tmp_path) -> None:
    a = repo.commit({"backend/src/App.java": "class App { int a; }\n"}, "A")
    deploy(world, "a-1", a)
    b = repo.commit({"backend/src/App.java": "class App { int b; }\n"}, "B")
    deploy(world, "b-2", b)
    assert (annotated_commit(world, "blue"), annotated_commit(world, "green")) == (a, b)
    assert d.replicas(world, "blue") == 0 and annotated_commit(world, "blue") == a  # kept through scale-to-zero
    back = ok(d.run(world, "rollback"))
    assert back["colour"] == "blue" and d.selected_colour(world) == "blue"
    assert annotated_commit(world, "blue") == a  # scaled up again: still names its own commit
    assert d.history(world)[0]["commit"] == a and d.history(world)[0]["previous_commit"] == b
    status = ok(d.run(world, "status"))
    assert status["commit"] == a and status["colours"]["green"]["commit"] == b
    text = subprocess.run(d.command("status"), env=d.env(world), capture_output=True, text=True, timeout=60)
    assert any(line.endswith(f"  live commit {a}") for line in text.stdout.splitlines())

    c = repo.commit({"batch/src/Job.java": "class Job { int c; }\n"}, "C: batch only")
    run = changes(world, repo, c, b, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr  # changed: A..C holds B's backend change
    result = run.result
    assert (result["changed"], result["basis"], result["against"]) == (True, "diff", "live")
    assert result["compared_with"] == f"compared with the commit live in {d.NAMESPACE} ({a[:12]}, blue)"
    assert result["matched"] == [{"status": "M", "path": "backend/src/App.java"}]
    assert result["live"] == {"namespace": d.NAMESPACE, "colour": "blue", "commit": a, "image": d.image("a-1"),
                              "build_url": d.BUILD_URL}
    assert result["warnings"] == []


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_the_old_comparison_would_have_said_unchanged(world, repo, tmp_path) -> None:
    """The defect, shown with the same repository: against the previous successful build only."""
    a = repo.commit({"backend/src/App.java": "class App { int a; }\n"}, "A")
    deploy(world, "a-1", a)
    b = repo.commit({"backend/src/App.java": "class App { int b; }\n"}, "B")
    deploy(world, "b-2", b)
    ok(d.run(world, "rollback"))
    c = repo.commit({"batch/src/Job.java": "class Job { int c; }\n"}, "C: batch only")
    blind = changes(world, repo, c, b, tmp_path, KUBECONFIG="")  # what `changes` could see before issue 16
    assert blind.returncode == 10 and blind.result["against"] == "previous"
    assert blind.result["compared_with"] == (f"compared with the last successful build ({b[:12]}): "
                                             "no cluster credentials (KUBECONFIG)")
    assert changes(world, repo, c, b, tmp_path).returncode == 0


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_deploy_that_failed_before_its_switch_leaves_the_old_commit_live(world, repo, tmp_path) -> None:
    a = repo.commit({"backend/src/App.java": "class App { int a; }\n"}, "A")
    deploy(world, "a-1", a)
    b = repo.commit({"backend/src/App.java": "class App { int b; }\n"}, "B")
    failed = d.deploy(world, "b-2-crashloop", extra_env={"GIT_COMMIT": b, "ENADU_FAIL_GRACE": "2s"})
    assert failed.returncode == 1 and d.selected_colour(world) == "blue"
    c = repo.commit({"batch/src/Job.java": "class Job { int c; }\n"}, "C: batch only")
    run = changes(world, repo, c, b, tmp_path)  # as if B's build had passed (its deploy aborted)
    assert run.returncode == 0 and run.result["against"] == "live"
    assert run.result["live"]["commit"] == a


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_live_equal_to_the_previous_build_is_the_normal_case(world, repo, tmp_path) -> None:
    a = repo.commit({"backend/src/App.java": "class App { int a; }\n"}, "A")
    deploy(world, "a-1", a)
    b = repo.commit({"backend/src/App.java": "class App { int b; }\n"}, "B")
    deploy(world, "b-2", b)
    c = repo.commit({"batch/src/Job.java": "class Job { int c; }\n"}, "C: batch only")
    run = changes(world, repo, c, b, tmp_path, bundle=True)  # the zipapp Jenkins runs, kubernetes client inside
    assert run.returncode == 10, run.stdout + run.stderr
    assert run.result["against"] == "live" and run.result["changed"] is False
    assert run.result["reason"] == f"none of the 1 changed files match backend/**, common/** ({b[:7]}..{c[:7]})"
    # a branch's first build (no previous successful commit) compares with what is live too
    first = changes(world, repo, c, "", tmp_path)
    assert first.returncode == 10 and first.result["against"] == "live"
    text = subprocess.run(d.command("changes", "--repo", str(repo.path)), capture_output=True, text=True, timeout=60,
                          env=d.env(world, ENADU_PATHS=BACKEND, GIT_COMMIT=c, GIT_PREVIOUS_SUCCESSFUL_COMMIT=b))
    assert text.returncode == 10
    assert text.stdout.splitlines()[1] == f"  compared with the commit live in {d.NAMESPACE} ({b[:12]}, green)"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_without_credentials_or_deploys_it_falls_back_and_says_why(world, repo, tmp_path) -> None:
    c = repo.commit({"batch/src/Job.java": "class Job { int c; }\n"}, "C: batch only")
    nothing = changes(world, repo, c, repo.base, tmp_path)
    assert nothing.returncode == 10 and nothing.result["against"] == "previous"
    assert nothing.result["compared_with"] == (f"compared with the last successful build ({repo.base[:12]}): nothing "
                                               f"is deployed in {d.NAMESPACE} yet (no Service backend)")
    first = changes(world, repo, c, "", tmp_path, KUBECONFIG="")
    assert first.returncode == 0 and first.result["basis"] == "first-build" and first.result["against"] is None
    assert first.result["compared_with"] == ("compared with nothing: no cluster credentials (KUBECONFIG), and no "
                                             "previous successful build")


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_live_commit_this_clone_lacks_falls_back_one_that_is_not_an_ancestor_is_compared(world, repo, tmp_path) -> None:
    stranger = "0123456789abcdef0123456789abcdef01234567"
    deploy(world, "x-1", stranger)
    c = repo.commit({"batch/src/Job.java": "class Job { int c; }\n"}, "C: batch only")
    run = changes(world, repo, c, repo.base, tmp_path)
    assert run.returncode == 10 and run.result["against"] == "previous"
    assert run.result["compared_with"] == (f"compared with the last successful build ({repo.base[:12]}): the commit "
                                           f"live in {d.NAMESPACE} ({stranger[:12]}, blue) is not in this clone")
    # Live on a side branch this commit does not descend from (a hand deploy of a hotfix): its backend
    # differs from the pushed commit's, so backend changed, although the push touched only batch/ and the
    # last successful build's comparison says unchanged (review of issue 16: that fallback left the
    # hotfix live with "build and deploy skipped").
    repo.git("checkout", "-q", "-b", "side", repo.base)
    side = repo.commit({"backend/src/App.java": "class App { int side; }\n"}, "side")
    repo.git("checkout", "-q", "main")
    deploy(world, "side-2", side)
    run = changes(world, repo, c, repo.base, tmp_path)
    assert run.returncode == 0 and run.result["against"] == "live", run.result
    assert run.result["compared_with"].endswith(f"({side[:12]}, green), which is not an ancestor of {c[:12]}: "
                                                "the trees are compared")
    assert [m["path"] for m in run.result["matched"]] == ["backend/src/App.java"]


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_an_unreachable_cluster_warns_and_falls_back(world, repo, tmp_path) -> None:
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = json.loads(json.dumps(world.kubeconfig_dict(namespace=d.NAMESPACE)))
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path = tmp_path / "unreachable"
    path.write_text(json.dumps(config))
    c = repo.commit({"backend/src/App.java": "class App { int c; }\n"}, "C: backend")
    started = time.monotonic()
    run = changes(world, repo, c, repo.base, tmp_path, KUBECONFIG=str(path))
    took = time.monotonic() - started
    assert run.returncode == 0 and run.result["against"] == "previous" and run.result["changed"] is True
    assert run.result["compared_with"].startswith(f"compared with the last successful build ({repo.base[:12]}): "
                                                  "the cluster could not be read: ")
    assert len(run.result["warnings"]) == 1 and "falling back to the last successful build" in run.result["warnings"][0]
    assert "changes backend: warning: the cluster could not be read" in run.stderr
    assert str(path) not in run.stdout + run.stderr  # the kubeconfig's path is the credential's value
    assert took < 30
    # unchanged stays unchanged (exit 10): a read failure never fails the build
    d2 = repo.commit({"batch/src/Job.java": "class Job { int d; }\n"}, "D: batch only")
    assert changes(world, repo, d2, c, tmp_path, KUBECONFIG=str(path)).returncode == 10


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_rollback_that_recreates_a_deleted_colour_writes_its_commit(world, repo) -> None:
    a = repo.commit({"backend/src/App.java": "class App { int a; }\n"}, "A")
    deploy(world, "a-1", a)
    b = repo.commit({"backend/src/App.java": "class App { int b; }\n"}, "B")
    deploy(world, "b-2", b, "--delete-old")
    assert d.deployment(world, "blue") is None
    back = ok(d.run(world, "rollback", "--manifest", str(d.MANIFEST)))
    assert back["outcome"] == "rolled-back" and d.selected_colour(world) == "blue"
    assert annotated_commit(world, "blue") == a


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_commit_that_is_not_a_full_sha_is_refused_before_anything_is_written(world) -> None:
    bad = d.deploy(world, "v1", extra_env={"GIT_COMMIT": "abc1234"})
    assert bad.returncode == 2 and "is not a full commit id" in bad.result["message"]
    assert d.helper_writes(world) == []


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_redeploying_an_image_from_another_commit_rewrites_the_commit(world, repo) -> None:
    """Same pod template, another commit: the idle colour's annotation is rewritten (no pod restart)."""
    a = repo.commit({"backend/src/App.java": "class App { int a; }\n"}, "A")
    deploy(world, "v1", a)
    b = repo.commit({"backend/src/App.java": "class App { int b; }\n"}, "B")
    deploy(world, "v2", b)
    c = repo.commit({"README.md": "c\n"}, "C")
    deploy(world, "v1", c)  # blue still holds v1's template, scaled to 0
    assert d.selected_colour(world) == "blue" and annotated_commit(world, "blue") == c


RBAC_MANIFEST = d.REPO / "resources" / "enadu" / "k8s" / "backend.rbac.yaml"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_the_deployer_role_is_enough_and_changes_only_reads(world, repo, tmp_path) -> None:
    """With the rendered deployer Role (RBAC enforced by the test world, tests/test_deployer_rbac.py)."""
    applied = world.kubectl("apply", "--server-side=false", "-f", str(RBAC_MANIFEST))
    assert applied.returncode == 0, applied.stderr
    token = world.service_account_token("enadu-deployer", d.NAMESPACE)
    kubeconfig = world.write_kubeconfig(str(tmp_path / "deployer"), token=token, namespace=d.NAMESPACE)
    a = repo.commit({"backend/src/App.java": "class App { int a; }\n"}, "A")
    ok(d.deploy(world, "a-1", extra_env={"GIT_COMMIT": a, "KUBECONFIG": kubeconfig}))
    c = repo.commit({"backend/src/App.java": "class App { int c; }\n"}, "C")
    before = len(world.requests.all(user_agent=d.USER_AGENT))
    run = changes(world, repo, c, "", tmp_path, KUBECONFIG=kubeconfig)
    assert run.returncode == 0 and run.result["against"] == "live" and run.result["warnings"] == []
    asked = [(r.method, r.path, r.answered) for r in world.requests.all(user_agent=d.USER_AGENT)[before:]]
    assert asked == [("GET", f"/api/v1/namespaces/{d.NAMESPACE}/services/backend", 200),
                     ("GET", f"/apis/apps/v1/namespaces/{d.NAMESPACE}/deployments/backend-blue", 200)]


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_commit_whose_image_was_changed_by_hand_is_not_used(world, repo, tmp_path) -> None:
    """`kubectl set image` on the live Deployment leaves its enadu.io/commit naming what no longer runs."""
    a = repo.commit({"backend/src/App.java": "class App { int a; }\n"}, "A")
    deploy(world, "a-1", a)
    # a person's rollout of the live colour: not the helper's, so the helper's invariant does not hold during it
    world.invariants.remove("backend always serves a fully available colour")
    patch = json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": d.image("hotfix-9")}])
    done = world.kubectl("-n", d.NAMESPACE, "patch", "deployment", "backend-blue", "--type=json", "-p", patch)
    assert done.returncode == 0, done.stderr
    c = repo.commit({"batch/src/Job.java": "class Job { int c; }\n"}, "C: batch only")
    run = changes(world, repo, c, a, tmp_path)
    assert run.result["against"] == "previous", run.result
    assert run.result["compared_with"] == (
        f"compared with the last successful build ({a[:12]}): the live Deployment backend-blue in {d.NAMESPACE} "
        f"runs {d.image('hotfix-9')}, not the image its {COMMIT} was recorded with")


def test_a_read_that_hangs_or_answers_garbage_falls_back_in_bounded_time(monkeypatch, tmp_path) -> None:
    """A server that accepts and never answers (or an exec plugin waiting for a login) and an answer of
    an unexpected shape: a warning and the fallback, within the bound (review of issue 16: nothing
    bounded the Changes stage's read, and an AttributeError failed the build)."""
    import argparse

    from enadu_pipelines.helper import live

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts into the backlog, never reads nor answers: the TLS handshake waits
    try:
        config = tmp_path / "kubeconfig"
        config.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            f"clusters: [{{name: k, cluster: {{server: 'https://127.0.0.1:{silent.getsockname()[1]}'}}}}]\n"
            "contexts: [{name: c, context: {cluster: k, user: u, namespace: enadu}}]\nusers: [{name: u, user: {token: t}}]\n")
        args = argparse.Namespace(kubeconfig=str(config), context=None, manifest=None, namespace=None, namespace_env=None)
        started = time.monotonic()
        with pytest.raises(live.NoLiveCommit) as hung:
            live.read_live_bounded(args, "backend", lambda line: None, limit=1.5)
        assert time.monotonic() - started < 5
        assert (hung.value.reason, hung.value.warning) == ("the cluster did not answer within 1.5 s", True)
    finally:
        silent.close()

    def garbled(*_args):
        return [].get("spec")  # what a proxy's JSON list does to the reader

    monkeypatch.setattr(live, "read_live", garbled)
    with pytest.raises(live.NoLiveCommit) as odd:
        live.read_live_bounded(args, "backend", lambda line: None)
    assert (odd.value.reason, odd.value.warning) == ("the cluster's answer could not be read (AttributeError)", True)
    monkeypatch.setattr(live, "read_live", lambda *a: (_ for _ in ()).throw(live.UsageProblem("bad flag")))
    with pytest.raises(live.UsageProblem):  # a flag wrong whatever the cluster is still the user's mistake
        live.read_live_bounded(args, "backend", lambda line: None)
