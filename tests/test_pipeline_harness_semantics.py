"""What the pipeline harness does when a build runs: results, stages, post, when, env, secrets, vars.

Each test runs a small Jenkinsfile and compares the outcome with what Jenkins documents or its
sources do (cited per test). These pin down the harness itself, so that the tests of the
generated pipelines (test_pipeline_services.py) can trust it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from support.pipeline.client import HarnessError, harness


def jenkinsfile(stages: str, *, post: str = "", extra: str = "", agent: str = "agent any") -> str:
    body = f"{agent}\n{textwrap.dedent(extra).strip()}\nstages {{\n{textwrap.dedent(stages).strip()}\n}}\n"
    if post:
        body += f"post {{\n{textwrap.dedent(post).strip()}\n}}\n"
    return "pipeline {\n" + textwrap.indent(body, "    ") + "}\n"


def run(text: str, scenario: dict | None = None, **kwargs):
    result = harness().run(text=text, scenario=scenario or {}, library=kwargs.pop("library", None), **kwargs)
    assert result.valid, result.errors
    return result


def echoes(r) -> list[str]:
    return [e["args"]["message"] for e in r.steps("echo")]


ALL_POST = """
    cleanup { echo 'cleanup' }
    failure { echo 'failure' }
    success { echo 'success' }
    unstable { echo 'unstable' }
    unsuccessful { echo 'unsuccessful' }
    aborted { echo 'aborted' }
    regression { echo 'regression' }
    fixed { echo 'fixed' }
    changed { echo 'changed' }
    always { echo "always ${currentBuild.currentResult} ${currentBuild.result}" }
"""


# ------------------------------------------------------------------------------------------------
# Results, skipped stages and post conditions (ModelInterpreter, model/conditions/*.groovy)


def test_failure_skips_later_stages_and_post_runs_in_jenkins_order():
    r = run(jenkinsfile("""
        stage('One') { steps { error 'boom' } }
        stage('Two') { steps { echo 'never' } }
    """, post=ALL_POST), {"job": {"previousResult": "SUCCESS"}})
    assert r.result == "FAILURE"
    assert (r.error["type"], r.error["message"]) == ("pipelineharness.AbortException", "boom")
    assert r.stages["One"] == "FAILURE"
    assert r.stages["Two"] == "SKIPPED_FOR_FAILURE"
    assert 'Stage "Two" skipped due to earlier failure(s)' in r.log
    # currentResult reads FAILURE in post although the error has not reached the build yet.
    assert echoes(r) == ["always FAILURE FAILURE", "changed", "regression", "unsuccessful", "failure", "cleanup"]
    assert r.log[-2:] == ["ERROR: boom", "Finished: FAILURE"]


def test_fixed_and_changed_compare_with_the_previous_build():
    r = run(jenkinsfile("stage('One') { steps { echo 'ok' } }", post=ALL_POST), {"job": {"previousResult": "FAILURE"}})
    assert r.result == "SUCCESS"
    # runPostConditions sets the run's result to the logical result while a condition runs.
    assert echoes(r) == ["ok", "always SUCCESS SUCCESS", "changed", "fixed", "success", "cleanup"]


def test_a_first_build_counts_as_changed_but_not_fixed():
    r = run(jenkinsfile("stage('One') { steps { echo 'ok' } }", post=ALL_POST), {"job": {"previousResult": None}})
    assert echoes(r) == ["ok", "always SUCCESS SUCCESS", "changed", "success", "cleanup"]


def test_unstable_marks_build_and_stage_but_later_stages_run():
    r = run(jenkinsfile("""
        stage('Flaky') { steps { unstable 'two tests flaked' } }
        stage('Next') { steps { echo 'still runs' } }
    """, post=ALL_POST), {"job": {"previousResult": "UNSTABLE"}})
    assert r.result == "UNSTABLE"
    assert r.stages == {"Flaky": "UNSTABLE", "Next": "SUCCESS", "Declarative: Post Actions": "SUCCESS"}
    assert echoes(r) == ["still runs", "always UNSTABLE UNSTABLE", "unsuccessful", "unstable", "cleanup"]
    assert "WARNING: two tests flaked" in r.log


def test_skip_stages_after_unstable():
    r = run(jenkinsfile("""
        stage('Flaky') { steps { unstable 'flaky' } }
        stage('Next') { steps { echo 'skipped' } }
    """, extra="options { skipStagesAfterUnstable() }"))
    assert r.stages["Next"] == "SKIPPED_FOR_UNSTABLE"
    assert 'Stage "Next" skipped due to earlier stage(s) marking the build as unstable' in r.log


def test_catch_error_sets_build_and_stage_results_and_the_build_goes_on():
    r = run(jenkinsfile("""
        stage('Lint') {
            steps {
                catchError(buildResult: 'UNSTABLE', stageResult: 'FAILURE') {
                    sh 'lint'
                }
            }
        }
        stage('Default') { steps { catchError { error 'caught' } } }
        stage('After') { steps { echo 'after' } }
    """), {"sh": [{"script": "^lint$", "status": 3}]})
    assert r.stages["Lint"] == "FAILURE"
    assert r.stages["Default"] == "SUCCESS"  # stageResult defaults to SUCCESS (CatchErrorStep)
    assert r.stages["After"] == "SUCCESS"
    assert r.result == "FAILURE"  # buildResult defaults to FAILURE
    assert "ERROR: script returned exit code 3" in r.log


def test_sh_exit_status_stdout_and_failure():
    r = run(jenkinsfile("""
        stage('Sh') {
            steps {
                script {
                    int status = sh(script: 'probe', returnStatus: true)
                    String out = sh(script: 'version', returnStdout: true).trim()
                    echo "status=${status} out=${out}"
                    sh 'make'
                    echo 'unreachable'
                }
            }
        }
    """), {"sh": [{"script": "probe", "status": 4}, {"script": "version", "stdout": "1.2.3\n"},
                  {"script": "make", "status": 2}]})
    assert echoes(r) == ["status=4 out=1.2.3"]
    assert r.result == "FAILURE"
    assert r.error["message"] == "script returned exit code 2"
    assert [e["status"] for e in r.steps("sh")] == [4, 0, 2]


def test_an_interrupted_command_aborts_the_build():
    r = run(jenkinsfile("stage('Slow') { steps { timeout(time: 1, unit: 'MINUTES') { sh 'slow' } } }", post=ALL_POST),
            {"job": {"previousResult": "ABORTED"}, "sh": [{"script": "slow", "interrupt": "ABORTED"}]})
    assert r.result == "ABORTED"
    assert r.stages["Slow"] == "ABORTED"
    assert echoes(r) == ["always ABORTED ABORTED", "aborted", "unsuccessful", "cleanup"]


def test_retry_runs_the_body_again():
    r = run(jenkinsfile("stage('Push') { steps { retry(3) { sh 'push' } } }"),
            {"sh": [{"script": "push", "status": 1, "times": 2}, {"script": "push", "status": 0}]})
    assert r.result == "SUCCESS"
    assert [e["status"] for e in r.steps("sh")] == [1, 1, 0]
    assert r.log.count("Retrying") == 2


def test_duration_is_the_time_spent_so_far():
    r = run(jenkinsfile("""
        stage('Work') { steps { sh 'a'; sh 'b' } }
    """, post="always { echo \"took ${currentBuild.duration}\" }"),
        {"sh": [{"script": "^a$", "durationMs": 1500}, {"script": "^b$", "durationMs": 2500}]})
    assert echoes(r) == ["took 4000"]
    assert r.duration_ms == 4000


# ------------------------------------------------------------------------------------------------
# when (ModelInterpreter.WhenEvaluator, when/impl/*ConditionalScript.groovy)


def test_when_conditions():
    text = jenkinsfile("""
        stage('Release branch') { when { branch 'release/*' } steps { echo 'release' } }
        stage('Main only') { when { branch 'main' } steps { echo 'main' } }
        stage('Docs changed') { when { changeset 'docs/**' } steps { echo 'docs' } }
        stage('Case') { when { environment name: 'MODE', value: 'FAST', ignoreCase: true } steps { echo 'fast' } }
        stage('Expr') { when { expression { return env.MODE == 'nope' } } steps { echo 'expr' } }
        stage('Nested') {
            when {
                allOf {
                    not { branch 'main' }
                    anyOf { environment name: 'MODE', value: 'x'; environment name: 'MODE', value: 'fast' }
                }
            }
            steps { echo 'nested' }
        }
        stage('Early') {
            agent { label 'special' }
            when { beforeAgent true; branch 'main' }
            steps { echo 'early' }
        }
    """).replace("} steps {", "}\n steps {")
    scenario = {"env": {"BRANCH_NAME": "release/1.2", "MODE": "fast"},
                "job": {"fromScm": False},
                "checkout": [{"url": "https://example.test/app.git", "changeSet": [{"msg": "docs", "affectedPaths": ["docs/guide/intro.md"]}]}]}
    text = text.replace("stage('Release branch') {", "stage('Checkout') {\n steps { checkout([$class: 'GitSCM', userRemoteConfigs: [[url: 'https://example.test/app.git']]]) }\n }\n stage('Release branch') {", 1)
    r = run(text, scenario)
    assert echoes(r) == ["release", "docs", "fast", "nested"]
    assert r.stages["Main only"] == "SKIPPED_FOR_CONDITIONAL"
    assert r.stages["Expr"] == "SKIPPED_FOR_CONDITIONAL"
    assert r.stages["Early"] == "SKIPPED_FOR_CONDITIONAL"
    assert [e["args"].get("label") for e in r.steps("node")] == [None]  # beforeAgent: no agent for 'Early'


# ------------------------------------------------------------------------------------------------
# Steps: lookup and arguments (CpsScript.invokeMethod, DSL.invokeMethod, DescribableModel)


def test_an_unknown_step_fails_like_no_such_dsl_method():
    r = run(jenkinsfile("stage('X') { steps { deployEverything 'now' } }"))
    assert r.result == "FAILURE"
    assert r.error["type"] == "java.lang.NoSuchMethodError"
    assert r.error["message"].startswith("No such DSL method 'deployEverything' found among steps [catchError, checkout,")
    assert r.error["message"].endswith("or globals [currentBuild, env, params, pipeline, scm]")


def test_an_unknown_step_parameter_fails_the_step():
    r = run(jenkinsfile("stage('X') { steps { script { sh(script: 'make', bogus: true) } } }"))
    assert r.result == "FAILURE"
    assert r.error["message"] == ("WARNING: Unknown parameter(s) found for class type "
                                  "'org.jenkinsci.plugins.workflow.steps.durable_task.ShellStep': bogus")


def test_workspace_steps_need_a_node():
    r = run(jenkinsfile("stage('X') { steps { sh 'make' } }", agent="agent none"))
    assert r.result == "FAILURE"
    assert r.error["message"].startswith("Attempted to execute a step that requires a node context while \u2018agent none\u2019")
    ok = run(jenkinsfile("stage('X') { steps { script { node { sh 'make' } } } }", agent="agent none"))
    assert ok.result == "SUCCESS"


# ------------------------------------------------------------------------------------------------
# Environment (EnvActionImpl, EnvStep, EnvironmentExpander.getEffectiveEnvironment, EnvVars.override)


def test_environment_precedence_and_empty_values():
    r = run(jenkinsfile("""
        stage('Env') {
            steps {
                script {
                    env.FOO = 'global'
                    withEnv(['FOO=block', 'BUILD_URL=']) {
                        echo "${env.FOO}"
                        env.FOO = 'changed'
                        echo "${env.FOO}"
                        sh 'show'
                    }
                    echo "${env.FOO} ${BUILD_NUMBER} ${env.nothing}"
                    env.NOTHING = null
                    echo env.NOTHING
                }
            }
        }
    """), {"job": {"buildNumber": 7}})
    assert echoes(r) == ["block", "block", "changed 7 null", "null"]
    shown = r.steps("sh")[0]["env"]
    assert shown["FOO"] == "block"
    assert "BUILD_URL" not in shown  # an empty withEnv value removes the variable
    assert shown["BUILD_NUMBER"] == "7" and shown["JOB_NAME"] == "enadu/backend"


def test_declarative_environment_and_credentials():
    r = run(jenkinsfile("stage('X') { steps { sh 'login' } }",
                        extra="environment {\n REG = credentials('reg')\n MODE = \"fast-${env.BUILD_NUMBER}\"\n}"),
            {"credentials": {"reg": {"type": "usernamePassword", "username": "ci", "password": "FAKE-pass-1"}}})
    env = r.steps("sh")[0]["env"]
    assert (env["REG"], env["REG_USR"], env["REG_PSW"], env["MODE"]) == ("ci:FAKE-pass-1", "ci", "FAKE-pass-1", "fast-1")
    assert r.leaks == []


def test_implicit_checkout_shadows_env_assignments():
    """CheckoutScript.checkoutAndRun wraps the build in withEnv(<checkout variables>), and a
    withEnv value wins over env.X = ... (EnvironmentExpander.getEffectiveEnvironment)."""
    text = jenkinsfile("stage('X') { steps { script { env.GIT_COMMIT = 'mine'; echo env.GIT_COMMIT } } }")
    scenario = {"job": {"fromScm": True, "scm": {"url": "https://example.test/jenkinsfiles.git"}},
                "checkout": [{"url": "https://example.test/jenkinsfiles.git", "returns": {"GIT_COMMIT": "c0ffee"}}]}
    r = run(text, scenario)
    assert r.stages["Declarative: Checkout SCM"] == "SUCCESS"
    assert echoes(r) == ["c0ffee"]
    skipped = run(text.replace("agent any", "agent any\n    options { skipDefaultCheckout() }"), scenario)
    assert "Declarative: Checkout SCM" not in skipped.stages
    assert echoes(skipped) == ["mine"]


# ------------------------------------------------------------------------------------------------
# Secrets (credentials-binding; DSL.logInterpolationWarnings)


SECRET = {"tok": {"type": "string", "secret": "FAKE-token-0f9e8d"}}


@pytest.mark.parametrize("body,field", [
    ('sh "curl -H \'Authorization: ${TOKEN}\' https://x"', "args"),
    ('echo "token is ${TOKEN}"', "args"),
    ("writeFile file: 'cfg', text: TOKEN", "text"),
    ("script { env.KEEP = TOKEN }", "value"),
    ("sh(script: 'true', label: \"deploy with ${TOKEN}\")", "args"),
])
def test_a_secret_in_a_command_line_echo_file_or_env_is_reported(body, field):
    r = run(jenkinsfile(f"stage('X') {{ steps {{ withCredentials([string(credentialsId: 'tok', variable: 'TOKEN')]) {{ {body} }} }} }}"),
            {"credentials": SECRET})
    assert [(leak["field"], leak["credentialsId"]) for leak in r.leaks] == [(field, "tok")]
    assert not any("FAKE-token-0f9e8d" in line for line in r.log)  # the log is masked, as Jenkins does


def test_a_secret_passed_through_the_environment_is_not_a_leak():
    r = run(jenkinsfile("stage('X') { steps { withCredentials([string(credentialsId: 'tok', variable: 'TOKEN')]) "
                        "{ sh 'curl -H \"Authorization: $TOKEN\" https://x' } } }"), {"credentials": SECRET})
    assert r.leaks == []
    assert r.steps("sh")[0]["env"]["TOKEN"] == "FAKE-token-0f9e8d"


def test_credential_lookup_errors():
    missing = run(jenkinsfile("stage('X') { steps { withCredentials([string(credentialsId: 'nope', variable: 'T')]) { echo 'x' } } }"))
    assert missing.error["message"] == "Could not find credentials entry with ID 'nope'"
    wrong = run(jenkinsfile("stage('X') { steps { withCredentials([usernamePassword(credentialsId: 'tok', "
                            "usernameVariable: 'U', passwordVariable: 'P')]) { echo 'x' } } }"), {"credentials": SECRET})
    assert wrong.error["message"] == "Credentials 'tok' is of type 'Secret text' where 'Username with password' was expected"


# ------------------------------------------------------------------------------------------------
# Shared library: vars/ as global variables, libraryResource, @NonCPS (pipeline-groovy-lib)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lib")
    files = {
        "vars/greet.groovy": """
            def call(Map args = [:]) {
                env.GREETED = args.name
                echo "hello ${args.name}"
                return shout(args.name)
            }

            @NonCPS
            private static String shout(String s) {
                return s.toUpperCase()
            }
        """,
        "vars/twice.groovy": """
            def call(String name) {
                return [greet(name: name), greet(name: name + '!')]
            }
        """,
        "vars/util.groovy": """
            def version() {
                return libraryResource('version.txt').trim()
            }
        """,
        "vars/sneaky.groovy": """
            def call() {
                inner()
            }

            @NonCPS
            def inner() {
                echo 'a step inside @NonCPS'
            }
        """,
        "resources/version.txt": "1.4.2\n",
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(textwrap.dedent(text).lstrip(), "utf-8")
    return root


def test_vars_are_global_variables_calling_each_other(library):
    text = "@Library('shared@v1') _\n" + jenkinsfile("""
        stage('Vars') {
            steps {
                script {
                    def shouted = twice('ada')
                    echo "${shouted} ${env.GREETED} ${util.version()}"
                }
            }
        }
    """)
    r = run(text, library=library, library_name="shared")
    assert r.result == "SUCCESS", r.describe()
    assert echoes(r) == ["hello ada", "hello ada!", "[ADA, ADA!] ada! 1.4.2"]
    assert [e["step"] for e in r.steps() if e.get("global")] == ["twice", "greet", "greet"]
    assert r.events("library") == [{**r.events("library")[0], "name": "shared", "version": "v1"}]
    assert r.violations == []


def test_a_step_inside_a_noncps_method_is_reported(library):
    r = run("@Library('shared') _\n" + jenkinsfile("stage('X') { steps { sneaky() } }"), library=library,
            library_name="shared")
    assert [v["kind"] for v in r.violations] == ["step-in-noncps"]
    assert "sneaky.inner" in r.violations[0]["message"]


def test_vars_need_the_library_to_be_loaded(library):
    r = run(jenkinsfile("stage('X') { steps { greet name: 'x' } }"), library=library, library_name="shared")
    assert r.error["message"].startswith("No such DSL method 'greet'")


def test_a_missing_library_resource(library):
    r = run("@Library('shared') _\n" + jenkinsfile("stage('X') { steps { libraryResource 'nope.txt' } }"),
            library=library, library_name="shared")
    assert r.error["message"] == "No such library resource nope.txt could be found."


# ------------------------------------------------------------------------------------------------
# Parallel, scripted pipelines, scenario mistakes


def test_parallel_branches_all_run_and_the_failure_propagates():
    r = run(jenkinsfile("""
        stage('Fan out') {
            parallel {
                stage('A') { steps { error 'a failed' } }
                stage('B') { steps { echo 'b ran' } }
            }
        }
        stage('After') { steps { echo 'never' } }
    """))
    assert r.stages["A"] == "FAILURE" and r.stages["B"] == "SUCCESS"
    assert r.stages["Fan out"] == "FAILURE"
    assert r.stages["After"] == "SKIPPED_FOR_FAILURE"
    assert echoes(r) == ["b ran"]


def test_a_scripted_pipeline_runs_too():
    r = run("node {\n    stage('Build') {\n        sh 'make'\n    }\n}\n", {"sh": [{"script": "make", "status": 1}]})
    assert r.stages == {"Build": "FAILURE"}
    assert r.result == "FAILURE"


def test_strict_scenarios_refuse_unexpected_commands():
    with pytest.raises(HarnessError, match="no sh rule in the scenario matches: rm -rf /"):
        run(jenkinsfile("stage('X') { steps { sh 'rm -rf /' } }"), {"strictSh": True, "sh": [{"script": "^make$"}]})


def test_a_checkout_without_an_answer_is_a_scenario_mistake():
    with pytest.raises(HarnessError, match="no checkout answer for https://example.test/x.git"):
        run(jenkinsfile("stage('X') { steps { checkout([$class: 'GitSCM', userRemoteConfigs: [[url: 'https://example.test/x.git']]]) } }"))


# ------------------------------------------------------------------------------------------------
# Running one pipeline by hand (README.md in tests/support/pipeline)


def test_the_command_line_runs_the_readme_example(tmp_path, capsys):
    from support.pipeline import client

    out = tmp_path / "trace.json"
    code = client.main([str(client.REPO / "pipelines" / "backend" / "Jenkinsfile"),
                        "--scenario", str(client.HERE / "examples" / "backend-success.json"), "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert printed.startswith("result: SUCCESS\n")
    assert "stages: Checkout=SUCCESS, Changes=SUCCESS, Test=SUCCESS, Build=SUCCESS, Image=SUCCESS, Deploy=SUCCESS" in printed
    answer = __import__("json").loads(out.read_text("utf-8"))
    assert answer["result"] == "SUCCESS" and answer["trace"][0]["event"] == "library"


def test_the_command_line_reports_an_unreadable_scenario(tmp_path, capsys):
    from support.pipeline import client

    bad = tmp_path / "bad.json"
    bad.write_text("{not json", "utf-8")
    assert client.main(["pipelines/backend/Jenkinsfile", "--scenario", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot read scenario {bad}:")


# ------------------------------------------------------------------------------------------------
# Workspace steps and tools


def test_workspace_steps_share_one_workspace():
    r = run(jenkinsfile("""
        stage('Files') {
            steps {
                dir('out') {
                    writeFile file: 'a.txt', text: 'alpha'
                    echo "${pwd()} ${fileExists('a.txt')} ${readFile('a.txt')}"
                    stash name: 'out', includes: '*.txt'
                    deleteDir()
                    echo "${fileExists('a.txt')}"
                    unstash 'out'
                    echo "${readFile('a.txt')}"
                }
                echo "${fileExists('out/a.txt')} ${pwd(tmp: true)}"
            }
        }
    """), {"job": {"workspace": "/ws/job"}})
    assert echoes(r) == ["/ws/job/out true alpha", "false", "alpha", "true /ws/job@tmp"]


def test_tools_are_installed_and_put_on_the_path():
    text = jenkinsfile("stage('Build') { steps { sh 'java -version' } }", extra="tools {\n jdk 'jdk17'\n}")
    r = run(text, {"tools": {"jdk": ["jdk17", "jdk21"]}})
    assert r.stages["Declarative: Tool Install"] == "SUCCESS"
    # ModelInterpreter installs the pipeline's tools once more in each stage (toolsBlock with rootTools).
    assert [e["args"] for e in r.steps("tool")] == [{"name": "jdk17", "type": "jdk"}] * 2
    env = r.steps("sh")[0]["env"]
    assert env["JAVA_HOME"] == "/home/jenkins/tools/jdk/jdk17"
    assert env["PATH"] == "/home/jenkins/tools/jdk/jdk17/bin:" * 2 + "/usr/local/bin:/usr/bin:/bin"
    invalid = harness().run(text=text, scenario={"tools": {"jdk": ["jdk21"]}}, library=None)
    assert len(invalid.errors) == 1
    assert 'Tool type "jdk" does not have an install of "jdk17" configured - did you mean "jdk21"?' in invalid.errors[0]
