package pipelineharness

/**
 * org.jenkinsci.plugins.workflow.steps.FlowInterruptedException: an interruption (abort, timeout)
 * that carries the build result it implies, usually ABORTED (BuildCondition.getCombinedResult uses
 * that result instead of FAILURE).
 */
class FlowInterruptedException extends InterruptedException {
    final String result

    FlowInterruptedException(String result, String message) {
        super(message)
        this.result = result
    }
}
