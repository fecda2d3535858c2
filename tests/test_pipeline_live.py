"""Live mode of the pipeline harness: real processes, workspace, credentials files, time and aborts.

Each test runs a small Jenkinsfile (with a tiny library in a temp directory) in its own harness
JVM; see tests/support/pipeline/README.md ("Live mode").
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from support.e2e import executor as ex
from support.e2e.executor import Executor
from support.pipeline.live import LiveBuild

LIB = "testlib"


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    (root / "vars").mkdir(parents=True)
    (root / "resources" / "testlib").mkdir(parents=True)
    (root / "resources" / "testlib" / "greeting.txt").write_text("hello from the library\n")
    # A tiny step that runs a real sh (as enaduNotify does in post).
    (root / "vars" / "report.groovy").write_text(textwrap.dedent("""\
        def call(String file) {
            withEnv(["SEEN_RESULT=${currentBuild.currentResult}"]) {
                sh('echo "post saw $SEEN_RESULT" > ' + file + '; cat ' + file)
            }
        }
        """))
    return root


def pipeline(body: str, *, post: str = "", options: str = "") -> str:
    return textwrap.dedent(f"""\
        @Library('{LIB}') _
        pipeline {{
          agent any
          options {{ {options} }}
          stages {{
        {textwrap.indent(textwrap.dedent(body), '    ')}
          }}
          post {{ {post} }}
        }}
        """).replace("options {  }", "").replace("post {  }", "")


def new_build(text: str, tmp_path: Path, library: Path, **kw) -> LiveBuild:
    scenario = kw.pop("scenario", {"job": {"name": "live/test", "buildNumber": 7}})
    return LiveBuild(text, library, scenario, tmp_path / "ws", library_name=LIB, **kw)


def run(text: str, tmp_path: Path, library: Path, timeout: float = 90, **kw):
    build = new_build(text, tmp_path, library, **kw).start()
    return build.wait(timeout)


def wait_for_log(build: LiveBuild, needle: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(needle in line for line in build.log):
            return
        if not build.running:
            break
        time.sleep(0.05)
    if not build.running:
        build.wait(5)
    raise AssertionError(f"{needle!r} never appeared in the log:\n" + "\n".join(build.log))


def cookie_processes(cookie: str) -> list[int]:
    return [pid for pid in ex._processes() if ex._environ(pid).get(ex.COOKIE) == cookie]


# ------------------------------------------------------------------------------------------------


def test_sh_runs_for_real_with_output_status_stdout_and_environment(tmp_path, library):
    text = pipeline("""\
        stage('Sh') {
          steps {
            sh 'echo "out on stdout"; echo "err on stderr" >&2'
            script {
              env.BLANK = ''
              String captured = sh(script: 'echo captured; echo to-the-log >&2', returnStdout: true)
              echo "captured=[${captured.trim()}]"
              int status = sh(script: 'exit 3', returnStatus: true)
              echo "status=${status}"
              withEnv(['FOO=bar baz', 'EMPTY=', 'HOME=', 'PATH+EXTRA=/opt/extra/bin', 'DOLLAR=$NOT_EXPANDED']) {
                sh 'env | sort > env.txt'
              }
              dir('sub') {
                sh 'pwd > where.txt; echo "$JENKINS_SERVER_COOKIE" > cookie.txt; ls -d "$(pwd)@tmp"/durable-* > control.txt'
              }
            }
            sh 'echo about to fail; exit 4'
          }
        }
        """)
    r = run(text, tmp_path, library)
    ws = tmp_path / "ws"
    assert r.result == "FAILURE", r.describe()
    assert r.error["message"] == "script returned exit code 4"
    assert "ERROR: script returned exit code 4" in r.log
    # stdout and stderr both reach the log; `sh -xe` traces each command
    assert "out on stdout" in r.log and "err on stderr" in r.log
    assert "+ echo about to fail" in r.log
    # returnStdout: stdout is returned, not logged; stderr still goes to the log
    assert "captured=[captured]" in r.log
    assert "captured" not in r.log and "to-the-log" in r.log
    assert "status=3" in r.log
    env = dict(line.split("=", 1) for line in (ws / "env.txt").read_text().splitlines() if "=" in line)
    assert env["FOO"] == "bar baz"
    assert "EMPTY" not in env and "BLANK" not in env  # EnvVars.override: an empty value removes
    assert env["HOME"] == os.environ["HOME"]  # ...but Launcher.inherit starts from the agent's environment
    assert env["PATH"].startswith("/opt/extra/bin" + os.pathsep)
    assert env["DOLLAR"] == "$NOT_EXPANDED"
    assert env["BUILD_NUMBER"] == "7" and env["JOB_NAME"] == "live/test" and env["WORKSPACE"] == str(ws)
    # dir(): the process runs there, with the cookie of that directory and a control dir beside it
    sub = ws / "sub"
    assert (sub / "where.txt").read_text().strip() == str(sub)
    assert (sub / "cookie.txt").read_text().strip() == "durable-" + hashlib.sha256(str(sub).encode()).hexdigest()
    control = Path((sub / "control.txt").read_text().strip())
    assert control.parent == Path(f"{sub}@tmp") and control.name.startswith("durable-")
    assert not control.exists()  # Controller.cleanup after the step
    sh = r.steps("sh")
    assert [e["status"] for e in sh] == [0, 0, 3, 0, 0, 4]
    assert sh[1]["stdout"] == "captured\n"
    assert r.stages == {"Sh": "FAILURE"}


def test_workspace_steps_use_the_real_directory(tmp_path, library):
    text = pipeline("""\
        stage('Files') {
          steps {
            writeFile file: 'a/b.txt', text: 'written'
            writeFile file: 'bin.dat', text: 'AAEC', encoding: 'Base64'
            script {
              echo "read=${readFile('a/b.txt')} exists=${fileExists('a/b.txt')} missing=${fileExists('nope')}"
              echo "sha=${sha256(file: 'a/b.txt')}"
              echo "tmp=${pwd(tmp: true)}"
              writeFile file: 'res.txt', text: libraryResource('testlib/greeting.txt')
              dir('gone') {
                writeFile file: 'x.txt', text: 'x'
                deleteDir()
              }
              sh 'test -f a/b.txt && cat res.txt'
            }
          }
        }
        """)
    r = run(text, tmp_path, library)
    ws = tmp_path / "ws"
    assert r.result == "SUCCESS", r.describe()
    assert (ws / "a" / "b.txt").read_text() == "written"
    assert (ws / "bin.dat").read_bytes() == b"\x00\x01\x02"
    assert "read=written exists=true missing=false" in r.log
    assert f"sha={hashlib.sha256(b'written').hexdigest()}" in r.log
    assert f"tmp={ws}@tmp" in r.log
    assert "hello from the library" in r.log
    assert not (ws / "gone").exists()
    assert set(r.files) == {f"{ws}/a/b.txt", f"{ws}/bin.dat", f"{ws}/res.txt"}


def test_file_credential_exists_inside_the_block_and_is_deleted_after(tmp_path, library):
    text = pipeline("""\
        stage('Creds') {
          steps {
            withCredentials([file(credentialsId: 'kubeconfig', variable: 'KUBECONFIG'),
                             string(credentialsId: 'token', variable: 'TOKEN')]) {
              sh '''
                echo "$KUBECONFIG" > secret-path.txt
                stat -c %a "$KUBECONFIG" > secret-mode.txt
                stat -c %a "$(dirname "$KUBECONFIG")" >> secret-mode.txt
                cp "$KUBECONFIG" copy.txt
                echo "token is $TOKEN"
              '''
            }
            sh 'test -z "$KUBECONFIG" && echo unbound'
          }
        }
        """)
    scenario = {"credentials": {"kubeconfig": {"type": "file", "content": "apiVersion: v1\n"},
                                "token": {"type": "string", "secret": "s3cr3t-value"}}}
    r = run(text, tmp_path, library, scenario=scenario)
    ws = tmp_path / "ws"
    assert r.result == "SUCCESS", r.describe()
    secret = Path((ws / "secret-path.txt").read_text().strip())
    assert secret.parent.parent == Path(f"{ws}@tmp/secretFiles")
    assert secret.name.startswith("file") and secret.name.endswith(".tmp")
    assert (ws / "secret-mode.txt").read_text().split() == ["400", "700"]
    assert (ws / "copy.txt").read_text() == "apiVersion: v1\n"
    assert not secret.exists() and not secret.parent.exists()
    assert "unbound" in r.log
    assert "token is ****" in r.log and not any("s3cr3t-value" in line for line in r.log)


def test_abort_stops_the_running_sh_its_trap_runs_and_post_sees_aborted(tmp_path, library):
    text = pipeline("""\
        stage('Long') {
          steps {
            withCredentials([file(credentialsId: 'kubeconfig', variable: 'KUBECONFIG')]) {
              sh '''
                echo "$KUBECONFIG" > secret-path.txt
                trap 'echo "caught TERM"; exit 42' TERM
                echo started
                while :; do sleep 0.2 || true; done
              '''
            }
          }
        }
        stage('Never') { steps { echo 'not reached' } }
        """, post="aborted { report('post.txt') }\n always { echo \"always: ${currentBuild.currentResult}\" }")
    scenario = {"credentials": {"kubeconfig": {"type": "file", "content": "x"}}}
    build = new_build(text, tmp_path, library, scenario=scenario).start()
    wait_for_log(build, "started")
    aborted_at = time.monotonic()
    build.abort("alice")
    r = build.wait(60)
    elapsed = time.monotonic() - aborted_at
    ws = tmp_path / "ws"
    assert r.result == "ABORTED", r.describe()
    assert elapsed < 10
    log = r.log
    assert "Aborted by alice" in log and "Sending interrupt signal to process" in log
    assert "caught TERM" in log  # SIGTERM reached the script's trap
    assert log.index("Sending interrupt signal to process") < log.index("caught TERM")
    sh = r.steps("sh", stage="Long")[0]
    assert sh["status"] == 42 and sh["interrupted"] == "Aborted by alice"
    assert not Path((ws / "secret-path.txt").read_text().strip()).exists()  # withCredentials unbound
    assert r.stages["Long"] == "ABORTED" and r.stages["Never"] == "SKIPPED_FOR_FAILURE"
    assert (ws / "post.txt").read_text() == "post saw ABORTED\n"  # a real sh in post, after the abort
    assert "always: ABORTED" in log and log[-1] == "Finished: ABORTED"
    assert not cookie_processes("durable-" + hashlib.sha256(str(ws).encode()).hexdigest())


def test_a_script_ignoring_sigterm_keeps_the_step_until_the_remote_timeout(tmp_path, library):
    text = pipeline("""\
        stage('Stubborn') {
          steps {
            sh '''
              trap '' TERM
              echo started
              sleep 60
            '''
          }
        }
        """, post="always { sh 'echo post ran > post.txt' }")
    executor = Executor(soft_kill_wait=0.5)
    build = new_build(text, tmp_path, library, executor=executor, remote_timeout=2).start()
    try:
        wait_for_log(build, "started")
        build.abort()
        t0 = time.monotonic()
        r = build.wait(60)
        elapsed = time.monotonic() - t0
        cookie = "durable-" + hashlib.sha256(str(tmp_path / "ws").encode()).hexdigest()
        assert r.result == "ABORTED", r.describe()
        assert "After 2s process did not stop" in r.log
        assert 2 <= elapsed < 10
        assert "status" not in r.steps("sh")[0] or r.steps("sh")[0]["status"] is None
        assert (tmp_path / "ws" / "post.txt").read_text() == "post ran\n"
        assert cookie_processes(cookie), "the SIGTERM-ignoring process lives on, as in Jenkins"
    finally:
        executor.close()
    assert not cookie_processes(cookie)


def test_jenkins_defaults_for_stopping_processes():
    assert ex.SOFT_KILL_WAIT_SECONDS == 5 and Executor().soft_kill_wait == 5
    assert ex.REMOTE_TIMEOUT_SECONDS == 20


def test_pipeline_timeout_aborts_the_build_and_post_runs(tmp_path, library):
    text = pipeline("""\
        stage('Slow') { steps { sh 'echo started; sleep 30' } }
        """, options="timeout(time: 2, unit: 'SECONDS')",
        post="always { sh 'echo \"post $BUILD_NUMBER\" > post.txt' }")
    t0 = time.monotonic()
    r = run(text, tmp_path, library)
    elapsed = time.monotonic() - t0
    assert r.result == "ABORTED", r.describe()
    assert 2 <= elapsed < 15
    log = r.log
    assert "Timeout set to expire in 2 sec" in log
    assert log.index("Cancelling nested steps due to timeout") < log.index("Sending interrupt signal to process")
    assert "Timeout has been exceeded" in log
    assert r.stages["Slow"] == "ABORTED"
    assert r.error["cause"] == "ExceededTimeout"
    assert (tmp_path / "ws" / "post.txt").read_text() == "post 7\n"
    assert r.duration_ms >= 2000


def test_a_timeout_is_not_an_actual_interruption_so_retry_retries_it(tmp_path, library):
    text = pipeline("""\
        stage('Retry') {
          steps {
            retry(2) {
              timeout(time: 1, unit: 'SECONDS') {
                sh 'sleep 20'
              }
            }
          }
        }
        """)
    r = run(text, tmp_path, library)
    assert r.result == "ABORTED", r.describe()
    assert len(r.steps("sh")) == 2  # RetryStepExecution retries a timeout's own interruption
    assert r.log.count("Cancelling nested steps due to timeout") == 2
    assert r.error["actualInterruption"] is False


def test_timeout_grace_period_fails_a_body_that_does_not_stop(tmp_path, library):
    text = pipeline("""\
        stage('Stuck') {
          steps {
            timeout(time: 1, unit: 'SECONDS') {
              sh "trap '' TERM; sleep 60"
            }
          }
        }
        """)
    executor = Executor(soft_kill_wait=0.2)
    try:
        t0 = time.monotonic()
        r = run(text, tmp_path, library, executor=executor, remote_timeout=60, timeout_grace=1)
        elapsed = time.monotonic() - t0
    finally:
        executor.close()
    assert r.result == "ABORTED", r.describe()
    assert "Body did not finish within grace period; terminating with extreme prejudice" in r.log
    assert not any("process did not stop" in line for line in r.log)
    assert elapsed < 20


def test_checkout_calls_back_with_the_scm_and_records_it(tmp_path, library):
    origin = tmp_path / "origin"
    origin.mkdir()
    git = ["git", "-c", "user.name=T", "-c", "user.email=t@example.test"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(origin)], check=True)
    (origin / "src").mkdir()
    (origin / "src" / "app.txt").write_text("app\n")
    subprocess.run([*git, "-C", str(origin), "add", "."], check=True)
    subprocess.run([*git, "-C", str(origin), "commit", "-q", "-m", "first"], check=True)
    head = subprocess.run(["git", "-C", str(origin), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    seen: list[dict] = []

    def checkout(args):
        seen.append(args)
        url = args["scm"]["userRemoteConfigs"][0]["url"]
        cwd = Path(args["cwd"])
        cwd.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", url, "."], cwd=cwd, check=True)
        return {"returns": {"GIT_COMMIT": head, "GIT_BRANCH": "origin/main", "GIT_URL": url},
                "changeSet": [{"commitId": head, "msg": "first", "author": "T", "affectedPaths": ["src/app.txt"]}]}

    text = textwrap.dedent("""\
        pipeline {
          agent any
          stages {
            stage('Changed') {
              when { changeset 'src/**' }
              steps { sh 'cat src/app.txt; echo "commit=$GIT_COMMIT"' }
            }
          }
        }
        """)
    scenario = {"job": {"name": "live/scm", "buildNumber": 3, "fromScm": True,
                        "scm": {"url": str(origin), "branch": "*/main", "credentialsId": "git-creds"}}}
    r = run(text, tmp_path, None, scenario=scenario, callbacks={"checkout": checkout})
    assert r.result == "SUCCESS", r.describe()
    assert len(seen) == 1
    assert seen[0]["cwd"] == str(tmp_path / "ws")
    assert seen[0]["scm"]["userRemoteConfigs"] == [{"url": str(origin), "credentialsId": "git-creds"}]
    assert seen[0]["env"]["BUILD_NUMBER"] == "3"
    assert "app" in r.log and f"commit={head}" in r.log
    assert r.stages == {"Declarative: Checkout SCM": "SUCCESS", "Changed": "SUCCESS"}
    assert r.raw["scms"] == [{"url": str(origin), "credentialsId": "git-creds", "branches": ["*/main"],
                              "poll": True, "changelog": True}]
    assert r.steps("checkout")[0]["returned"]["GIT_COMMIT"] == head


def test_a_failing_checkout_callback_fails_the_step(tmp_path, library):
    text = "pipeline { agent any\n stages { stage('S') { steps {\n" \
           "checkout([$class: 'GitSCM', userRemoteConfigs: [[url: 'https://example.test/x.git']]])\n} } } }"
    r = run(text, tmp_path, None, scenario={}, callbacks={"checkout": lambda args: {"error": "git fetch failed"}})
    assert r.result == "FAILURE"
    assert "ERROR: git fetch failed" in r.log


def test_junit_reads_real_reports(tmp_path, library):
    report = textwrap.dedent("""\
        <testsuite name="s" tests="3">
          <testcase classname="c" name="ok"/>
          <testcase classname="c" name="bad"><failure message="no"/></testcase>
          <testcase classname="c" name="skip"><skipped/></testcase>
        </testsuite>
        """)
    text = pipeline(f"""\
        stage('Test') {{
          steps {{
            writeFile file: 'build/test-results/TEST-s.xml', text: '''{report}'''
            script {{
              def s = junit(testResults: 'build/test-results/*.xml')
              echo "total=${{s.totalCount}} failed=${{s.failCount}} skipped=${{s.skipCount}}"
              junit(testResults: 'nothing/*.xml', allowEmptyResults: true)
            }}
          }}
        }}
        stage('Missing') {{ steps {{ junit 'nothing/*.xml' }} }}
        """)
    r = run(text, tmp_path, library)
    assert "total=3 failed=1 skipped=1" in r.log
    assert r.stages["Test"] == "UNSTABLE"
    assert r.result == "FAILURE"
    assert "ERROR: No test report files were found. Configuration error?" in r.log


def test_time_is_real_and_builds_run_concurrently(tmp_path, library):
    text = pipeline("""\
        stage('Wait') {
          steps {
            sleep 2
            echo "took ${currentBuild.duration >= 2000} ${currentBuild.durationString}"
          }
        }
        """)
    builds = [new_build(text, tmp_path / name, library) for name in ("one", "two")]
    t0 = time.monotonic()
    for b in builds:
        b.start()
    runs = [b.wait(60) for b in builds]
    elapsed = time.monotonic() - t0
    for r in runs:
        assert r.result == "SUCCESS", r.describe()
        assert "Sleeping for 2 sec" in r.log
        assert any(line.startswith("took true ") and line.endswith(" and counting") for line in r.log)
        assert r.duration_ms >= 2000
        sleep = r.steps("sleep")[0]
        echo = r.steps("echo")[0]
        assert echo["clock"] - sleep["clock"] >= 2000
    assert elapsed < 2 * 2 + 2 * builds[0].start_seconds + 3  # they overlapped


def test_abort_before_a_step_starts_interrupts_the_next_step(tmp_path, library):
    text = pipeline("""\
        stage('Loop') {
          steps {
            script {
              writeFile file: 'go', text: ''
              long end = System.currentTimeMillis() + 60000
              while (!fileExists('stop') && System.currentTimeMillis() < end) { }
              echo 'next step'
            }
          }
        }
        """)
    build = new_build(text, tmp_path, library).start()
    ws = tmp_path / "ws"
    deadline = time.monotonic() + 30
    while not (ws / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    build.abort()
    time.sleep(0.5)
    (ws / "stop").write_text("")
    r = build.wait(60)
    assert r.result == "ABORTED", r.describe()
    assert "next step" not in r.log
