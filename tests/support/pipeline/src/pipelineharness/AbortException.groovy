package pipelineharness

/**
 * hudson.AbortException: a failure whose message is the whole story (Jenkins prints "ERROR: <message>"
 * without a stack trace). Thrown by the `error` step and by `sh` on a non-zero exit
 * (DurableTaskStep: "script returned exit code N").
 */
class AbortException extends IOException {
    AbortException(String message) {
        super(message)
    }
}
