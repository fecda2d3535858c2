"""The helper's error tree. Each class maps to one exit code (``exitcodes``); ``cli.main`` prints the
message as one line and exits with it. Messages never contain secrets or URLs with credentials."""

from __future__ import annotations

from . import exitcodes


class HelperError(Exception):
    """Root of every error the helper reports to its user."""

    exit_code = exitcodes.FAILED


class UsageProblem(HelperError):
    """Bad arguments, environment variables or manifest."""

    exit_code = exitcodes.USAGE


class NamespaceMissing(UsageProblem):
    """The namespace the command works in (from the flag, the manifest or the kubeconfig context)
    does not exist."""


class ClusterError(HelperError):
    """The cluster is unreachable, timed out, or refused our credentials."""

    exit_code = exitcodes.CLUSTER


class LockHeld(HelperError):
    """Another deploy of the same service holds its lock past our lock timeout."""

    exit_code = exitcodes.LOCK_HELD


class DeployFailed(HelperError):
    """The deploy failed before the switch; the live colour is untouched."""

    exit_code = exitcodes.FAILED


class RolledBack(HelperError):
    """The deploy switched, then the new colour failed or a rollback pre-empted the scale-down delay,
    and traffic went back to the old one."""

    exit_code = exitcodes.ROLLED_BACK


class Incomplete(HelperError):
    """The deploy switched the Service, then could not finish (retire the old colour, converge, or
    switch back); the message says which colour the Service selects."""

    exit_code = exitcodes.INCOMPLETE


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived (an aborted or timed-out Jenkins build).

    A BaseException, like KeyboardInterrupt: no ``except HelperError`` or ``except Exception`` on
    the way (a retry loop, a watch, a warning that swallows a failure) may absorb it; only the
    places that own the clean-up (``deploy.run_command``, ``Deployer``, ``kube.lock``) catch it.
    ``exit_code`` is raised to INCOMPLETE once the Service's switch has landed."""

    exit_code = exitcodes.FAILED

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by signal {signal_name}")
        self.signal_name = signal_name
