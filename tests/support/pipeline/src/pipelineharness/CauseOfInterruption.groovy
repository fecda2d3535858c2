package pipelineharness

/**
 * jenkins.model.CauseOfInterruption (Jenkins core): why a build or step was interrupted, carried by
 * FlowInterruptedException#getCauses (workflow-step-api). The harness's causes keep the real classes'
 * simple names, which is what a pipeline can tell them apart by without importing plugin classes:
 * UserInterruption (core CauseOfInterruption.UserInterruption: the Stop button, Executor.doStopBuild),
 * Rejection (pipeline-input-step InputStepExecution.doAbort) and ExceededTimeout
 * (workflow-basic-steps TimeoutStepExecution.ExceededTimeout).
 */
abstract class CauseOfInterruption implements Serializable {
    abstract String getShortDescription()

    /** CauseOfInterruption.UserInterruption: "Aborted by <user>" (Messages.CauseOfInterruption_ShortDescription). */
    static class UserInterruption extends CauseOfInterruption {
        final String user

        UserInterruption(String user) {
            this.user = user
        }

        String getUserId() {
            user
        }

        String getShortDescription() {
            "Aborted by ${user}".toString()
        }
    }

    /** ParallelStep.FailFastCause (workflow-cps): another branch of a failFast parallel failed. */
    static class FailFastCause extends CauseOfInterruption {
        final String failingBranch

        FailFastCause(String failingBranch) {
            this.failingBranch = failingBranch
        }

        String getShortDescription() {
            "Failed in branch ${failingBranch}".toString()
        }
    }

    /** The cause for a causeType, given with the message the harness logged for it. */
    static List<CauseOfInterruption> of(String causeType, String message) {
        String user = message?.replaceFirst(/^(Aborted|Rejected) by /, '') ?: 'anonymous'
        switch (causeType) {
            case 'UserInterruption': return [new UserInterruption(user)]
            case 'Rejection': return [new Rejection(user)]
            case 'ExceededTimeout': return [new ExceededTimeout()]
            case 'FailFastCause': return [new FailFastCause(message?.replaceFirst(/^Failed in branch /, ''))]
            default: return []
        }
    }
}
