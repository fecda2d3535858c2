package pipelineharness

/** pipeline-input-step-plugin org.jenkinsci.plugins.workflow.support.steps.input.Rejection: "Rejected by <user>". */
class Rejection extends CauseOfInterruption {
    final String user

    Rejection(String user) {
        this.user = user
    }

    String getShortDescription() {
        "Rejected by ${user}".toString()
    }
}
