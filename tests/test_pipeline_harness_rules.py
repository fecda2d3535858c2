"""Pipelines Jenkins rejects are rejected by the harness, with Jenkins' message.

Each case is a small Jenkinsfile that breaks one rule of pipeline-model-definition's ModelParser or
ModelValidatorImpl (jenkinsci/pipeline-model-definition-plugin, pipeline-model-definition/src/main/
groovy/.../parser/ModelParser.groovy and .../validator/ModelValidatorImpl.groovy). The citation
names the method that enforces the rule and, where there is one, the plugin's own test in
ValidatorTest.java (whose fixtures live in src/test/resources/errors/). The expected messages
are the plugin's Messages.properties texts.
"""

from __future__ import annotations

import textwrap

import pytest

from support.pipeline.client import harness

OK_STAGE = """
        stage('Build') {
            steps {
                echo 'building'
            }
        }"""


def pipeline(body: str) -> str:
    return "pipeline {\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n}\n"


def with_stages(extra: str = "", stages: str = OK_STAGE, agent: str = "agent any") -> str:
    return pipeline(f"{agent}\n{textwrap.dedent(extra).strip()}\nstages {{{stages}\n}}")


INVALID = [
    ("missing-agent", pipeline("stages {" + OK_STAGE + "\n}"),
     'Missing required section "agent"',
     "ModelValidatorImpl.validateElement(ModelASTPipelineDef); ValidatorTest#missingAgent"),
    ("missing-stages", pipeline("agent any"),
     'Missing required section "stages"',
     "ModelValidatorImpl.validateElement(ModelASTPipelineDef); ValidatorTest#missingStages"),
    ("steps-outside-steps-block", with_stages(stages="\n        stage('Build') {\n            echo 'hi'\n        }"),
     'Unknown stage section "echo". Starting with version 0.5, steps in a stage must be in a \u2018steps\u2019 block.',
     "ModelParser.parseStage; ValidatorTest#perStageConfigUnknownSection"),
    ("undefined-top-level-section", with_stages("banana {\n    echo 'x'\n}"),
     'Undefined section "banana"',
     "ModelParser.parsePipelineStep; ValidatorTest#undefinedSectionReferencesCorrectly"),
    ("section-twice", with_stages("options {\n    timestamps()\n}\noptions {\n    disableConcurrentBuilds()\n}"),
     "Multiple occurrences of the options section",
     "ModelParser.parsePipelineStep (sectionsSeen); errors/multipleTopLevelSections.groovy"),
    ("stage-without-steps", with_stages(stages="\n        stage('Build') {\n            when { branch 'main' }\n        }"),
     'Expected one of "steps", "stages", or "parallel" for stage "Build"',
     "ModelValidatorImpl.validateElement(ModelASTStage); ValidatorTest#perStageConfigMissingSteps"),
    ("empty-stages", with_stages(stages=""),
     "No stages specified",
     "ModelValidatorImpl.validateElement(ModelASTStages); ValidatorTest#emptyStages"),
    ("duplicate-stage-names", with_stages(stages=OK_STAGE + OK_STAGE),
     'Duplicate stage name: "Build"',
     "ModelValidatorImpl.validateElement(ModelASTStages); ValidatorTest#duplicateStageNames"),
    ("empty-steps", with_stages(stages="\n        stage('Build') {\n            steps {\n            }\n        }"),
     "No steps specified for branch",
     "ModelValidatorImpl.validateElement(ModelASTBranch); ValidatorTest#perStageConfigEmptySteps"),
    ("steps-and-stages", with_stages(stages="\n        stage('Build') {\n            steps { echo 'a' }\n            stages {"
                                     + OK_STAGE.replace("'Build'", "'Inner'") + "\n            }\n        }"),
     'Only one of "matrix", "parallel", "stages", or "steps" allowed for stage "Build"',
     "ModelValidatorImpl.validateElement(ModelASTStage, boolean); ValidatorTest#parallelStagesAndSteps"),
    ("invalid-post-condition", with_stages("post {\n    banana {\n        echo 'x'\n    }\n}"),
     'Invalid condition "banana" - valid conditions are [always, changed, fixed, regression, aborted, success,'
     ' unsuccessful, unstable, failure, notBuilt, cleanup]',
     "ModelValidatorImpl.validateElement(ModelASTBuildCondition); ValidatorTest#invalidBuildCondition"),
    ("duplicate-post-condition", with_stages("post {\n    always { echo 'a' }\n    always { echo 'b' }\n}"),
     'Duplicate build condition name: "always"',
     "ModelValidatorImpl.validateElement(ModelASTBuildConditionsContainer); ValidatorTest#duplicatePostBuildConditions"),
    ("empty-post", with_stages("post {\n}"),
     "post can not be empty",
     "ModelValidatorImpl.validateElement(ModelASTBuildConditionsContainer); ValidatorTest#emptyPostBuild"),
    ("post-content-without-block", with_stages("post {\n    echo 'x'\n}"),
     "The \u2018post\u2019 section can only contain build condition names with code blocks.",
     "ModelParser.parseBuildCondition; ValidatorTest#badPostContent"),
    ("unknown-when-condition", with_stages(stages="\n        stage('Build') {\n            when { banana 'x' }\n"
                                           "            steps { echo 'a' }\n        }"),
     "Unknown conditional banana. Valid conditionals are: allOf, anyOf, branch, buildingTag, changeRequest, changelog,"
     " changeset, environment, equals, expression, isRestartedRun, not, tag, triggeredBy",
     "ModelValidatorImpl.validateElement(ModelASTWhenCondition); ValidatorTest#unknownWhenConditional"),
    ("empty-when", with_stages(stages="\n        stage('Build') {\n            when {\n            }\n"
                               "            steps { echo 'a' }\n        }"),
     "Empty when closure, remove the property or add some content.",
     "ModelValidatorImpl.validateElement(ModelASTWhen); ValidatorTest#emptyWhen"),
    ("not-with-two-children", with_stages(stages="\n        stage('Build') {\n            when {\n                not {\n"
                                          "                    branch 'a'\n                    branch 'b'\n"
                                          "                }\n            }\n            steps { echo 'a' }\n        }"),
     'Nested when condition "not" requires exactly 1 child condition(s).',
     "ModelValidatorImpl.validateElement(ModelASTWhenCondition); ValidatorTest#whenNestedChildrenInvalid"),
    ("when-missing-parameter", with_stages(stages="\n        stage('Build') {\n            when { environment name: 'X' }\n"
                                           "            steps { echo 'a' }\n        }"),
     'Missing required parameter: "value"',
     "ModelValidatorImpl.validateDescribable; ValidatorTest#whenMissingRequiredParameter"),
    ("when-unknown-parameter", with_stages(stages="\n        stage('Build') {\n            when { environment nme: 'X', value: 'y' }\n"
                                           "            steps { echo 'a' }\n        }"),
     'Invalid parameter "nme", did you mean "name"?',
     "ModelValidatorImpl.isValidStepParameter; ValidatorTest#whenUnknownParameter"),
    ("when-children-with-arguments", with_stages(stages="\n        stage('Build') {\n            when {\n"
                                                 "                allOf(x: 1) { branch 'a' }\n            }\n"
                                                 "            steps { echo 'a' }\n        }"),
     'No additional arguments are allowed for children when condition "allOf".',
     "ModelValidatorImpl.validateElement(ModelASTWhenCondition); ValidatorTest#nestedWhenWithArgs"),
    ("unknown-agent-type", with_stages(agent="agent {\n    docker 'maven:3'\n}"),
     'Invalid agent type "docker" specified. Must be one of [any, kubernetes, label, none, node]',
     "ModelValidatorImpl.validateElement(ModelASTAgent); ValidatorTest#unknownAgentType"),
    ("unknown-bare-agent", with_stages(agent="agent anything"),
     'Only "agent none", "agent any" or "agent {...}" are allowed.',
     "ModelParser.parseAgent; ValidatorTest#unknownBareAgentType"),
    ("unknown-option", with_stages("options {\n    banana()\n}"),
     'Invalid option type "banana". Valid option types: [buildDiscarder, catchError, checkoutToSubdirectory,',
     "ModelValidatorImpl.validateElement(ModelASTOptions); ValidatorTest#invalidPropertiesType"),
    ("job-property-in-stage-options", with_stages(stages="\n        stage('Build') {\n            options {\n"
                                                  "                buildDiscarder(logRotator(numToKeepStr: '1'))\n"
                                                  "            }\n            steps { echo 'a' }\n        }"),
     'Invalid option type "buildDiscarder". Valid option types: [catchError, checkoutToSubdirectory, podTemplate, retry,',
     "ModelValidatorImpl.validateElement(ModelASTOptions) with inStage; errors/jobPropertyInStageOptions.groovy"),
    ("option-with-block", with_stages("options {\n    timeout(time: 5) {\n        echo 'x'\n    }\n}"),
     "Options definitions cannot have blocks",
     "ModelParser.parseOption; ValidatorTest#blockInJobProperties"),
    ("option-parameter-type", with_stages("options {\n    timeout(time: 'soon', unit: 'MINUTES')\n}"),
     'Expecting "int" for parameter "time" but got "soon" of type class java.lang.String instead',
     "ModelValidatorImpl.validateParameterType; ValidatorTest#invalidStepParameterType"),
    ("unknown-trigger", with_stages("triggers {\n    banana()\n}"),
     'Invalid trigger type "banana". Valid trigger types: [cron, githubPush, pollSCM, upstream]',
     "ModelValidatorImpl.validateElement(ModelASTTrigger); ValidatorTest#invalidTriggerType"),
    ("trigger-too-few-arguments", with_stages("triggers {\n    cron()\n}"),
     '"cron" should have 1 arguments but has 0 arguments instead.',
     "ModelValidatorImpl.validateElement(ModelASTMethodCall); ValidatorTest#tooFewMethodCallArgs"),
    ("environment-value-not-quoted", with_stages("environment {\n    FOO = env.BUILD_NUMBER\n}"),
     "Environment variable values must either be single quoted, double quoted, or function calls.",
     "ModelParser.parseEnvironment"),
    ("environment-empty", with_stages("environment {\n}"),
     "No variables specified for environment",
     "ModelValidatorImpl.validateElement(ModelASTEnvironment); ValidatorTest#emptyEnvironment"),
    ("environment-duplicate", with_stages("environment {\n    FOO = 'a'\n    FOO = 'b'\n}"),
     'Duplicate environment variable name: "FOO"',
     "ModelParser.parseEnvironment; ValidatorTest#duplicateEnvironment"),
    ("pipeline-not-at-top", "node {\n" + textwrap.indent(with_stages(), "    ") + "}\n",
     "pipeline block must be at the top-level, not within another block.",
     "ModelParser.checkForNestedPipelineStep; ValidatorTest#pipelineStepWithinOtherBlocksFailure"),
    ("statement-is-not-a-step", with_stages(stages="\n        stage('Build') {\n            steps {\n"
                                            "                def x = 1\n            }\n        }"),
     "Expected a step",
     "ModelParser.parseStep; ValidatorTest#globalLibraryNonStepBody"),
    ("method-call-on-object", with_stages(stages="\n        stage('Build') {\n            steps {\n"
                                          "                currentBuild.setDescription('x')\n            }\n        }"),
     'Method calls on objects not allowed outside "script" blocks.',
     "ModelParser.parseMethodName; ValidatorTest#globalLibraryObjectMethodCall"),
    ("stage-step-in-steps", with_stages(stages="\n        stage('Build') {\n            steps {\n"
                                        "                stage('inner') {\n                    echo 'x'\n"
                                        "                }\n            }\n        }"),
     'Invalid step "stage" used - not allowed in this context - The stage step cannot be used in Declarative Pipelines',
     "BlockedStepsAndMethodCalls.blockedInSteps; ValidatorTest#rejectStageInSteps"),
    ("parallel-mixed-with-steps", with_stages(stages="\n        stage('Build') {\n            steps {\n"
                                              "                echo 'first'\n                parallel a: { echo 'a' }, b: { echo 'b' }\n"
                                              "            }\n        }"),
     "The parallel step can only be used as the only top-level step in a stage's step block",
     "BlockedStepsAndMethodCalls.blockedInSteps; ValidatorTest#rejectParallelMixedInSteps"),
    ("parallel-inside-parallel", with_stages(stages="\n        stage('Tests') {\n            parallel {\n"
                                             "                stage('Outer') {\n                    parallel {" + OK_STAGE
                                             + "\n                    }\n                }\n            }\n        }"),
     '"matrix" or "parallel" cannot be nested inside another "matrix" or "parallel".',
     "ModelValidatorImpl.validateElement(ModelASTStage, isWithinParallel); errors/parallelStagesDeepNesting.groovy"),
    ("agent-on-parallel-parent", with_stages(stages="\n        stage('Tests') {\n            agent any\n            parallel {"
                                             + OK_STAGE + "\n            }\n        }"),
     '"agent" is not allowed in stage "Tests" as it contains parallel or matrix stages',
     "ModelValidatorImpl.validateElement(ModelASTStage); errors/parallelStagesAgentTools.groovy"),
    ("step-unknown-parameter", with_stages(stages="\n        stage('Build') {\n            steps {\n"
                                           "                sh(scirpt: 'make')\n            }\n        }"),
     'Invalid parameter "scirpt", did you mean "script"?',
     "ModelValidatorImpl.validateDescribable; ValidatorTest#unknownStepParameter"),
    ("step-missing-parameter", with_stages(stages="\n        stage('Build') {\n            steps {\n"
                                           "                timeout(unit: 'MINUTES') {\n                    echo 'x'\n"
                                           "                }\n            }\n        }"),
     'Missing required parameter: "time"',
     "ModelValidatorImpl.validateDescribable; ValidatorTest#missingRequiredStepParameters"),
    ("renamed-properties-section", with_stages("properties {\n    timestamps()\n}"),
     "The \u2018properties\u2019 section has been renamed as of version 0.8. Use \u2018options\u2019 instead.",
     "ModelParser.parsePipelineStep (Messages.ModelParser_RenamedProperties)"),
    ("unknown-library", "@Library('nope@v1') _\n" + with_stages(),
     "Could not find any definition of libraries [nope@v1]",
     "pipeline-groovy-lib LibraryDecorator (Messages: could_not_find_any_definition_of_librari)"),
    ("groovy-syntax-error", with_stages().replace("echo 'building'", "echo 'building"),
     "WorkflowScript: ",
     "Groovy 2.4 compilation (CpsFlowExecution parses the script before anything runs)"),
]


@pytest.mark.parametrize("text,message,rule", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_jenkins_would_reject(text, message, rule):
    run = harness().run(text=text, scenario={}, library=None)
    assert not run.valid, f"accepted, but Jenkins rejects it ({rule})"
    assert run.result == "FAILURE"
    assert any(message in e for e in run.errors), f"{rule}: expected {message!r} in {run.errors}"
    assert not run.trace  # nothing ran


def test_there_are_at_least_ten_rules_with_citations():
    assert len(INVALID) >= 10
    assert all(rule for *_, rule in INVALID)


def test_errors_name_the_line_and_column_like_jenkins():
    text = with_stages(stages="\n        stage('Build') {\n            echo 'hi'\n        }")
    run = harness().run(text=text, scenario={}, library=None)
    line, source = next((i, t) for i, t in enumerate(text.splitlines(), 1) if "stage('Build')" in t)
    column = source.index("stage") + 1
    # Jenkins reports both: the unknown section (ModelParser) and the stage left without steps (validator).
    assert run.errors == [
        f'WorkflowScript: {line}: Unknown stage section "echo". Starting with version 0.5, steps in a stage must be in'
        f" a \u2018steps\u2019 block. @ line {line}, column {column}.",
        f'WorkflowScript: {line}: Expected one of "steps", "stages", or "parallel" for stage "Build"'
        f" @ line {line}, column {column}.",
    ]


def test_every_section_jenkins_allows_is_accepted():
    text = """
pipeline {
    agent any
    environment {
        GREETING = 'hello'
        COMBINED = "${GREETING}-" + 'x'
    }
    options {
        skipDefaultCheckout()
        timeout(time: 5, unit: 'MINUTES')
        retry(2)
        timestamps()
        buildDiscarder(logRotator(numToKeepStr: '3'))
        disableConcurrentBuilds()
    }
    parameters {
        string(name: 'TARGET', defaultValue: 'staging', description: 'where')
        booleanParam(name: 'DRY', defaultValue: true)
    }
    triggers {
        githubPush()
        cron('H 4 * * 1-5')
    }
    stages {
        stage('Conditions') {
            when {
                beforeAgent true
                allOf {
                    anyOf {
                        branch 'main'
                        environment name: 'GREETING', value: 'hello'
                    }
                    not { changeset 'docs/**' }
                    expression { return params.TARGET == 'staging' }
                }
            }
            steps {
                echo "${env.COMBINED}"
            }
        }
        stage('Group') {
            stages {
                stage('Inner') {
                    options { timeout(time: 1, unit: 'MINUTES') }
                    steps { echo 'inner' }
                    post { success { echo 'inner ok' } }
                }
            }
        }
        stage('Fan out') {
            failFast true
            parallel {
                stage('A') { steps { echo 'a' } }
                stage('B') {
                    agent { label 'linux' }
                    steps { echo 'b' }
                }
            }
        }
    }
    post {
        always { echo 'always' }
        success { echo 'success' }
        failure { echo 'failure' }
        unstable { echo 'unstable' }
        aborted { echo 'aborted' }
        changed { echo 'changed' }
        fixed { echo 'fixed' }
        regression { echo 'regression' }
        cleanup { echo 'cleanup' }
    }
}
"""
    run = harness().run(text=text, scenario={"job": {"previousResult": "SUCCESS"}}, library=None)
    assert run.valid, run.errors
    assert run.result == "SUCCESS", run.describe()
    messages = [e["args"]["message"] for e in run.steps("echo")]
    assert messages == ["Warning, empty changelog. Probably because this is the first build.",  # changeset, no checkout
                        "hello-x", "inner", "inner ok", "a", "b", "always", "success", "cleanup"]
    assert run.stages == {"Conditions": "SUCCESS", "Group": "SUCCESS", "Inner": "SUCCESS", "Fan out": "SUCCESS",
                          "A": "SUCCESS", "B": "SUCCESS", "Declarative: Post Actions": "SUCCESS"}
    props = run.events("properties")[0]
    assert [o["$symbol"] for o in props["options"]] == ["buildDiscarder", "disableConcurrentBuilds"]
    assert [t["$symbol"] for t in props["triggers"]] == ["githubPush", "cron"]
    # Option wrappers nest in the order written, around the stages.
    assert [e["step"] for e in run.steps() if e["depth"] < 4][:4] == ["node", "withEnv", "timeout", "retry"]
