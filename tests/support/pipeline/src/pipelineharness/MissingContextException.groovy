package pipelineharness

/**
 * org.jenkinsci.plugins.workflow.steps.MissingContextVariableException: a step that needs a
 * workspace (FilePath) ran outside `node`. Declarative turns it into its "agent none" message
 * (ModelInterpreter.catchRequiredContextForNode).
 */
class MissingContextException extends IllegalStateException {
    MissingContextException(String type) {
        super("Required context class ${type} is missing\nPerhaps you forgot to surround the code with a step that provides this, such as: node".toString())
    }
}
