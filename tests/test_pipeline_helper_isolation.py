"""The helper's sha256 check protects the run: what runs is what was checked, in an isolated python3.

A service's build runs as the agent user before the helper does, so it can plant a ``.pth`` file in
that user's site directory (Python runs every ``import`` line of one at start-up, site.addpackage)
or swap a file in the workspace between the step that checks it and the one that runs it. The
helper therefore runs as ``python3 -I`` (no user site, no ``PYTHON*`` variables) and each helper run
is one ``sh`` that copies the library resources into a fresh private directory, verifies their
sha256 there, runs the helper from there and removes the directory.

The first test runs the real ``vars/enaduHelper`` with the real bundle in the harness's live mode
(real ``sh`` processes, tests/support/pipeline/README.md "Live mode"); the others run the exact
``sh`` script a stub-mode run of a generated pipeline recorded, with real ``sh`` on this machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import textwrap
import zipfile
from pathlib import Path

from enadu_pipelines.render import RESOURCE_MISMATCH_EXIT
from support.pipeline import scenarios as sc
from support.pipeline.client import REPO, Run, harness
from support.pipeline.live import LiveBuild

def user_site(env: dict[str, str]) -> Path:
    """Where python3 looks for the user's .pth files under ``env`` (site.getusersitepackages)."""
    out = subprocess.run(["python3", "-c", "import site; print(site.getusersitepackages())"], env=env,
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def plant_pth(env: dict[str, str], marker: Path) -> None:
    site = user_site(env)
    site.mkdir(parents=True)
    (site / "evil.pth").write_text(
        f"import os; open({str(marker)!r}, 'a').write(os.environ.get('DISCORD_WEBHOOK_URL', 'ran') + '\\n')\n")


def test_a_pth_file_in_the_agent_users_site_directory_does_not_run_inside_the_helper(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    agent_env = dict(os.environ, HOME=str(home), PYTHONUSERBASE=str(home / ".local"))
    marker = tmp_path / "pth-ran.txt"
    plant_pth(agent_env, marker)
    # The planted file works: a plain python3 of the agent user runs it.
    subprocess.run(["python3", "-c", "pass"], env=agent_env, check=True)
    assert marker.read_text() == "ran\n"
    marker.unlink()
    webhook = "http://127.0.0.1:9/api/webhooks/1/FAKE-webhook-token-pth"
    text = textwrap.dedent("""\
        @Library('enadu') _
        pipeline {
          agent any
          stages {
            stage('Notify') {
              steps {
                script {
                  withCredentials([string(credentialsId: 'hook', variable: 'DISCORD_WEBHOOK_URL')]) {
                    int status = enaduHelper(command: 'notify', env: ['ENADU_SERVICE=backend', 'ENADU_NOTIFY_TIMEOUT=3'])
                    echo "helper status ${status}"
                  }
                }
              }
            }
          }
        }
        """)
    scenario = {"job": {"name": "enadu/backend", "buildNumber": 3},
                "credentials": {"hook": {"type": "string", "secret": webhook}}}
    build = LiveBuild(text, REPO, scenario, tmp_path / "ws", agent_env=agent_env).start()
    run = build.wait(120)
    assert run.result == "SUCCESS", run.describe()
    assert any(line.startswith("helper status ") for line in run.log)
    assert any("enadu-helper" in line or "notify" in line for line in run.log)
    assert not marker.exists(), "the planted .pth ran inside the helper (with the webhook URL in its environment)"
    assert [e["step"] for e in run.trace if e.get("step") == "sh"] == ["sh"]  # the one sh of the helper run


# ------------------------------------------------------------------------------------------------
# The recorded script, run by real sh


def helper_sh(run: Run, command: str) -> dict:
    """The one sh entry inside the ``enaduHelper`` call of ``command``."""
    trace = run.trace
    [i] = [i for i, e in enumerate(trace) if e.get("step") == "enaduHelper" and e["args"]["command"] == command]
    inner = []
    for e in trace[i + 1:]:
        if e["depth"] <= trace[i]["depth"]:
            break
        inner.append(e)
    [sh] = [e for e in inner if e.get("step") == "sh"]
    return sh


def backend_run() -> Run:
    scenario = sc.service_scenario(sc.load_project(), "backend", changed_files=["backend/src/main/Api.java"])
    run = harness().run(REPO / "pipelines" / "backend" / "Jenkinsfile", scenario=scenario)
    assert run.valid and run.result == "SUCCESS", run.describe()
    return run


def zipapp(main: str) -> bytes:
    buffer = io.BytesIO()
    buffer.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("__main__.py", main)
    return buffer.getvalue()


PROBE = """\
import json, os, stat, sys
here = os.path.dirname(os.path.abspath(sys.argv[0]))
out = {"argv0": sys.argv[0], "args": sys.argv[1:], "isolated": sys.flags.isolated,
       "mode": stat.S_IMODE(os.stat(here).st_mode), "listing": sorted(os.listdir(here)),
       "manifest": os.environ.get("ENADU_MANIFEST"), "manifest_text": None}
if out["manifest"]:
    out["manifest_text"] = open(out["manifest"]).read()
open(os.environ["PROBE_OUT"], "w").write(json.dumps(out))
sys.exit(7)
"""


def run_script(sh: dict, tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    """The recorded script with Jenkins' `sh -xe`, in the recorded environment plus ``overrides``."""
    env = {k: v for k, v in sh["env"].items() if "$" not in v}
    env.update(PATH=os.environ["PATH"], HOME=str(tmp_path), TMPDIR=str(tmp_path / "tmp"), **overrides)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    script = tmp_path / "script.sh"
    script.write_text(sh["args"]["script"])
    return subprocess.run(["sh", "-xe", str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)


def test_a_file_swapped_after_the_check_cannot_run(tmp_path: Path) -> None:
    """The workspace copy is replaced after any earlier check (a build's process did it): the sh copies it
    into its private directory, finds a sha256 that is not the rendered one, and runs nothing."""
    sh = helper_sh(backend_run(), "deploy")
    marker = tmp_path / "evil-ran.txt"
    evil = tmp_path / "ws@tmp" / "swapped.pyz"
    evil.parent.mkdir()
    evil.write_bytes(zipapp(f"open({str(marker)!r}, 'w').write('ran')\n"))
    manifest = tmp_path / "ws@tmp" / "manifest.yaml"
    manifest.write_text((REPO / "resources" / "enadu" / "k8s" / "backend.yaml").read_text())
    result = run_script(sh, tmp_path, ENADU_HELPER=str(evil), ENADU_MANIFEST=str(manifest))
    assert not marker.exists(), "the swapped file ran"
    names = [k for k in sh["env"] if k.startswith("ENADU_") and k.endswith("_SHA256")]
    assert sorted(names) == ["ENADU_HELPER_SHA256", "ENADU_MANIFEST_SHA256"]
    assert result.returncode == RESOURCE_MISMATCH_EXIT, result.stderr
    assert ("enaduHelper: enadu/enadu-helper.pyz (ENADU_HELPER) does not match its sha256 once copied to a"
            " private directory; nothing was run") in result.stderr
    assert not list((tmp_path / "tmp").iterdir())  # the private directory is gone


def test_a_swapped_manifest_is_refused_too(tmp_path: Path) -> None:
    sh = helper_sh(backend_run(), "deploy")
    marker = tmp_path / "helper-ran.txt"
    probe = tmp_path / "probe.pyz"
    probe.write_bytes(zipapp(f"open({str(marker)!r}, 'w').write('ran')\n"))
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: evil}\n")
    result = run_script(sh, tmp_path, ENADU_HELPER=str(probe), ENADU_MANIFEST=str(manifest),
                        ENADU_HELPER_SHA256=hashlib.sha256(probe.read_bytes()).hexdigest())
    assert result.returncode == RESOURCE_MISMATCH_EXIT, result.stderr
    assert "enadu/k8s/backend.yaml (ENADU_MANIFEST) does not match its sha256" in result.stderr
    assert not marker.exists()


def test_the_helper_runs_isolated_from_a_fresh_private_copy_that_is_removed_after(tmp_path: Path) -> None:
    sh = helper_sh(backend_run(), "deploy")
    probe = tmp_path / "ws@tmp" / "probe.pyz"
    probe.parent.mkdir()
    staged = zipapp(PROBE)  # zip entries carry their build time: compare with these very bytes
    probe.write_bytes(staged)
    manifest = tmp_path / "ws@tmp" / "manifest.yaml"
    manifest_text = (REPO / "resources" / "enadu" / "k8s" / "backend.yaml").read_text()
    manifest.write_text(manifest_text)
    out = tmp_path / "probe.json"
    result = run_script(sh, tmp_path, ENADU_HELPER=str(probe), PROBE_OUT=str(out),
                        ENADU_HELPER_SHA256=hashlib.sha256(probe.read_bytes()).hexdigest(),
                        ENADU_MANIFEST=str(manifest))
    assert result.returncode == 7, result.stderr  # the helper's own status is the step's
    seen = json.loads(out.read_text())
    private = Path(seen["argv0"]).parent
    assert private.parent == tmp_path / "tmp" and private != probe.parent  # mktemp -d, not the workspace
    assert seen["isolated"] == 1  # python3 -I
    assert seen["mode"] == 0o700
    assert seen["args"] == ["deploy"]
    assert Path(seen["manifest"]).parent == private and seen["manifest_text"] == manifest_text
    assert not private.exists()  # removed when the helper exited
    assert probe.read_bytes() == staged  # the workspace copy is only a source, left as it was
    assert "FAKE-" not in sh["args"]["script"]  # no secret on the command line


def test_an_abort_lets_the_helper_clean_up_first_then_removes_the_private_copy(tmp_path: Path) -> None:
    """Jenkins' abort sends SIGTERM to every process of the step (durable-task: the cookie's processes):
    the shell waits for the helper's own clean-up, keeps its exit status, and only then removes the
    directory the helper's modules are read from (zipimport reopens the archive on each import)."""
    import signal
    import time

    sh = helper_sh(backend_run(), "notify")
    started = tmp_path / "started"
    probe = tmp_path / "probe.pyz"
    probe.write_bytes(zipapp(textwrap.dedent(f"""\
        import os, signal, sys, time
        def stop(*_):
            time.sleep(0.5)  # a clean-up that takes a while
            open({str(tmp_path / 'cleaned')!r}, 'w').write(str(os.path.exists(sys.argv[0])))
            sys.exit(9)
        signal.signal(signal.SIGTERM, stop)
        open({str(started)!r}, 'w').write(os.path.dirname(os.path.abspath(sys.argv[0])))
        time.sleep(60)
        """)))
    env = {k: v for k, v in sh["env"].items() if "$" not in v}
    env.update(PATH=os.environ["PATH"], HOME=str(tmp_path), TMPDIR=str(tmp_path), ENADU_HELPER=str(probe),
               ENADU_HELPER_SHA256=hashlib.sha256(probe.read_bytes()).hexdigest())
    script = tmp_path / "script.sh"
    script.write_text(sh["args"]["script"])
    proc = subprocess.Popen(["sh", "-xe", str(script)], env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert started.exists(), proc.communicate(timeout=5)
    private = Path(started.read_text())
    os.killpg(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 9  # the helper's status, not the shell's death by signal
    assert (tmp_path / "cleaned").read_text() == "True"  # the copy was still there during the clean-up
    assert not private.exists()


def test_a_result_file_left_by_an_earlier_build_is_removed_even_when_the_helper_never_runs(tmp_path: Path) -> None:
    """enaduNotify reads the deploy's result file; the helper removes it as it starts (report.Reporter), but
    a helper that never starts (a bundle that fails its sha256 check here; no python3; a build killed
    before python runs) would leave the file of an earlier build of the same workspace to be read as this
    build's result. The step's one sh removes it first, from the environment value, before any check."""
    sh = helper_sh(backend_run(), "deploy")
    assert "ENADU_RESULT_FILE" in sh["env"]
    stale = tmp_path / "ws@tmp" / "enadu deploy 'backend'.json"  # a path the shell must not split or expand
    stale.parent.mkdir()
    stale.write_text(json.dumps({"command": "deploy", "outcome": "deployed", "image": "earlier-build"}))
    evil = tmp_path / "swapped.pyz"
    evil.write_bytes(zipapp("pass\n"))
    result = run_script(sh, tmp_path, ENADU_HELPER=str(evil), ENADU_RESULT_FILE=str(stale))
    assert result.returncode == RESOURCE_MISMATCH_EXIT, result.stderr
    assert "does not match its sha256" in result.stderr
    assert not stale.exists(), "the earlier build's result file is still there for enaduNotify to read"
    assert str(stale) not in sh["args"]["script"]  # an environment value, never on the command line
