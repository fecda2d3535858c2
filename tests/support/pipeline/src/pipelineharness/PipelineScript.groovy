package pipelineharness

/**
 * Base class of the Jenkinsfile (compiled as class WorkflowScript) and of every vars/<name>.groovy
 * (compiled as class <name>), standing in for workflow-cps' CpsScript: a call to anything the
 * script does not define goes to CpsScript.invokeMethod's lookup (global variables, then steps,
 * then symbols), a missing property to CpsScript.getProperty's (global variables, then environment
 * variables), and println/sleep are the echo/sleep steps as in CpsScript.
 */
abstract class PipelineScript extends Script {
    private Build pipelineBuild

    void bindBuild(Build b) {
        pipelineBuild = b
    }

    Build boundBuild() { pipelineBuild }

    def methodMissing(String name, Object args) {
        pipelineBuild.dsl.invoke(this, name, args)
    }

    def propertyMissing(String name) {
        pipelineBuild.dsl.property(this, name)
    }

    /** ModelStepLoader: the `pipeline` global variable runs a Declarative Pipeline. */
    def pipeline(Closure body) {
        pipelineBuild.declarative.run(this, body)
    }

    void println(Object value) {
        pipelineBuild.dsl.invoke(this, 'echo', [String.valueOf(value)] as Object[])
    }

    void println() {
        pipelineBuild.dsl.invoke(this, 'echo', [''] as Object[])
    }

    void print(Object value) {
        pipelineBuild.dsl.invoke(this, 'echo', [String.valueOf(value)] as Object[])
    }

    /** CpsScript.sleep: the sleep step, not DefaultGroovyStaticMethods.sleep. */
    Object sleep(long time) {
        pipelineBuild.dsl.invoke(this, 'sleep', [time] as Object[])
    }
}
