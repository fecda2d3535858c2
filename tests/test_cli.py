"""The command line: help, version, usage errors and their exit codes."""

from __future__ import annotations

from enadu_pipelines import __version__
from enadu_pipelines.cli import main


def test_help_lists_commands(runner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("render", "schema", "bundle"):
        assert f"  {command} " in result.stdout


def test_render_help_documents_flags(runner) -> None:
    result = runner.invoke(main, ["render", "--help"])
    assert result.exit_code == 0
    for flag in ("--config", "--out", "--check", "--diff", "--rebuild-bundle", "--quiet", "--force"):
        assert flag in result.stdout


def test_version(runner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"enadu-pipelines, version {__version__}\n"


def test_unknown_option_is_a_usage_error(runner) -> None:
    result = runner.invoke(main, ["render", "--chek"])
    assert result.exit_code == 2
    assert "No such option '--chek'" in result.stderr and "'--check'" in result.stderr


def test_unknown_command_is_a_usage_error(runner) -> None:
    result = runner.invoke(main, ["rendr"])
    assert result.exit_code == 2
    assert "No such command 'rendr'" in result.stderr
