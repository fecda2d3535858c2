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
    """The deploy switched, the new colour then failed, and traffic went back to the old one."""

    exit_code = exitcodes.ROLLED_BACK


class Incomplete(HelperError):
    """The deploy switched the Service, then could not finish (retire the old colour, converge, or
    switch back); the message says which colour the Service selects."""

    exit_code = exitcodes.INCOMPLETE
