"""One error tree for everything the ``enadu-pipelines`` command reports.

Core modules raise these; only ``cli.py`` turns them into a message on stderr and an exit code, so
a user's mistake is one line and never a traceback. Each class carries the exit code the CLI uses;
the codes are documented in the README ("Exit codes").
"""

from __future__ import annotations


class EnaduError(Exception):
    """Root of every error enadu-pipelines reports to its user."""

    exit_code = 1


class UsageProblem(EnaduError):
    """A command-line value that cannot work (a malformed --url, an empty --token-file)."""

    exit_code = 2


class OutputError(EnaduError):
    """A generated file or directory cannot be read or written where it belongs."""

    exit_code = 1


class HandWrittenFile(OutputError):
    """A file without the generated marker sits where a generated file belongs (render --force overwrites it)."""

    exit_code = 5


class ConfigError(EnaduError):
    """The configuration file is missing, unreadable, not YAML, or fails validation."""

    exit_code = 1


class TemplateError(EnaduError):
    """A template could not be rendered (a bug in a template, never in the user's config)."""

    exit_code = 70


class BundleError(EnaduError):
    """The helper bundle could not be built (missing lock file, wheel or hash mismatch)."""

    exit_code = 1


class JenkinsError(EnaduError):
    """The Jenkins controller is unreachable, refused our credentials or answered nonsense."""

    exit_code = 3


class ConvergeError(EnaduError):
    """Bootstrap reached Jenkins but at least one job did not converge to the rendered config."""

    exit_code = 4
