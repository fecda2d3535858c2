package pipelineharness

/** workflow-basic-steps-plugin org.jenkinsci.plugins.workflow.steps.TimeoutStepExecution.ExceededTimeout. */
class ExceededTimeout extends CauseOfInterruption {
    String getShortDescription() {
        'Timeout has been exceeded'
    }
}
