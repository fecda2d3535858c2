package pipelineharness

/**
 * org.jenkinsci.plugins.workflow.steps.FlowInterruptedException: an interruption (abort, timeout)
 * that carries the build result it implies, usually ABORTED (BuildCondition.getCombinedResult uses
 * that result instead of FAILURE).
 *
 * In live mode it also carries its CauseOfInterruption: `causeType` is 'UserInterruption' (the abort
 * button) or 'ExceededTimeout' (a timeout step; `scope` is that step's block), and
 * actualInterruption, which TimeoutStepExecution.Callback.onFailure clears when the interruption
 * came from its own timeout (so retry retries it and catchError(catchInterruptions: false) catches
 * it, as RetryStepExecution and CatchErrorStep check isActualInterruption()).
 * `causes` (FlowInterruptedException#getCauses) are CauseOfInterruption objects made from it, with the
 * real classes' simple names (CauseOfInterruption.groovy); one without a causeType has none.
 */
class FlowInterruptedException extends InterruptedException {
    final String result
    String causeType
    Object scope
    boolean actualInterruption = true

    FlowInterruptedException(String result, String message) {
        super(message)
        this.result = result
    }

    FlowInterruptedException(String result, String message, String cause, Object scope) {
        this(result, message)
        this.causeType = cause
        this.scope = scope
    }

    /**
     * The agent pod went away under a running step (the kubernetes plugin's Reaper deletes the node;
     * workflow-durable-task-step ExecutorStepExecution.RemovedNodeListener ends the node block with
     * FlowInterruptedException(ABORTED, false, new RemovedNodeCause()): not an actual interruption, so
     * retry with the kubernetesAgent() condition may run the body again).
     */
    static FlowInterruptedException agentRemoved(String node) {
        // RemovedNodeCause.getShortDescription(): "Agent was removed" (ExecutorStepExecution Messages)
        FlowInterruptedException e = new FlowInterruptedException('ABORTED', 'Agent was removed', 'RemovedNodeCause', null)
        e.actualInterruption = false
        e
    }

    /**
     * A failFast parallel stops the other branches when one fails (workflow-cps ParallelStep.ResultHandler
     * .Callback.checkAllDone: stop(new FlowInterruptedException(Result.ABORTED, true, new
     * FailFastCause(name))); FailFastCause.getShortDescription(): "Failed in branch <name>").
     */
    static FlowInterruptedException failFast(String failingBranch) {
        new FlowInterruptedException('ABORTED', "Failed in branch ${failingBranch}".toString(), 'FailFastCause', null)
    }

    List<CauseOfInterruption> getCauses() {
        CauseOfInterruption.of(causeType, message)
    }
}
