package pipelineharness

/**
 * A mistake in the scenario or a pipeline feature the harness does not emulate. It is an Error so
 * that no catch block in pipeline code (catchError, try/catch Exception, retry) can swallow it: the
 * run stops and the test sees the message instead of a misleading build result.
 */
class HarnessError extends Error {
    HarnessError(String message) {
        super(message)
    }
}
