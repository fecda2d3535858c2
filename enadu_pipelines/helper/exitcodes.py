"""Exit codes of the helper, shared by the helper and the rendered ``vars/`` steps."""

OK = 0  # success; for ``changes``: the service's paths changed
FAILED = 1  # the command failed; for ``deploy``: the live colour is untouched and still serves
USAGE = 2  # bad arguments, environment or manifest; a namespace that does not exist or contradicts the manifest
LOCK_HELD = 3  # another deploy of the service holds its lock
CLUSTER = 4  # the cluster is unreachable or refused the credentials
ROLLED_BACK = 5  # ``deploy`` switched, then the new colour failed (or a rollback took over in the delay) and traffic went back
INCOMPLETE = 6  # ``deploy`` switched, then could not finish (see the message for which colour is live)
HELD = 7  # ``deploy --hold``: the new colour is ready behind the preview Service, not live; ``promote`` or ``abort`` next
UNCHANGED = 10  # ``changes``: none of the service's paths changed

DEPLOY_REASONS = {
    FAILED: "the deploy failed before the switch; the live colour still serves",
    USAGE: "bad deploy arguments or manifest, or a namespace that does not exist",
    LOCK_HELD: "another deploy of this service holds its lock",
    CLUSTER: "the cluster is unreachable or refused the credentials",
    ROLLED_BACK: "the new colour failed after the switch, or a rollback took over; traffic was switched back",
    INCOMPLETE: "the deploy switched the Service but did not finish; the log says which colour is live",
    HELD: "the new colour waits behind the preview Service for promotion; the live colour still serves",
}
