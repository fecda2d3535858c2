"""The ``enadu-pipelines`` command: the only module that imports click.

Subcommands map their flags onto core functions and turn ``EnaduError`` into one line on stderr and
the error's exit code (see the README's "Exit codes"). Anything else escaping a command is a bug
and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import EnaduError

CONFIG_HELP = "Configuration file."


def _handle_errors(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EnaduError as e:
            for line in str(e).splitlines() or [type(e).__name__]:
                click.echo(f"error: {line}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="enadu-pipelines")
def main() -> None:
    """Generate and operate the Enadu team's Jenkins pipelines from enadu.yaml."""


@main.command()
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default="enadu.yaml", show_default=True, help=CONFIG_HELP)
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory to write into  [default: the configuration file's directory]")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any generated file is stale or missing.")
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff of every change.")
@click.option("--rebuild-bundle", is_flag=True,
              help="Rebuild the helper bundle even if its inputs did not change (needs pip and the package index).")
@click.option("-q", "--quiet", is_flag=True, help="Print only changes and problems, not unchanged files.")
@_handle_errors
def render(config_path: Path, out: Path | None, check: bool, show_diff: bool, rebuild_bundle: bool, quiet: bool) -> None:
    """Render pipelines/, vars/ and resources/ from the configuration.

    Files are written only when their content changes; each is reported as created, updated,
    unchanged or removed (a generated file whose service left the configuration).
    """
    from . import generate

    out = out if out is not None else (config_path.parent if str(config_path.parent) else Path("."))
    if check and rebuild_bundle:
        raise click.UsageError("--check writes nothing, so it cannot be combined with --rebuild-bundle")
    result = generate.generate(config_path, out, write=not check, diff=show_diff, rebuild_bundle=rebuild_bundle)
    for change in result.changes:
        if quiet and change.status.value == "unchanged":
            continue
        verb = change.status.value if not check else {"created": "missing", "updated": "stale",
                                                       "removed": "obsolete"}.get(change.status.value, "up to date")
        click.echo(f"{verb:>10}  {change.path}")
        if change.diff:
            click.echo(change.diff, nl=False)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if check:
        stale = [c for c in result.changes if c.status.value != "unchanged"]
        if stale:
            click.echo(f"error: {len(stale)} generated file(s) are stale or missing; run `enadu-pipelines render`",
                       err=True)
            sys.exit(1)


@main.command()
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the schema to this file instead of standard output.")
@_handle_errors
def schema(out: Path | None) -> None:
    """Print the JSON Schema of enadu.yaml (for editor completion and checks)."""
    from .config import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, "utf-8")
        click.echo(f"wrote {out}", err=True)


@main.command()
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Repository root; the bundle goes to resources/enadu/enadu-helper.pyz under it.")
@click.option("--check", is_flag=True, help="Rebuild in memory and exit 1 if the committed bundle differs.")
@_handle_errors
def bundle(out: Path, check: bool) -> None:
    """Build the helper zipapp from the pinned lock file (reproducible: same inputs, same bytes)."""
    import hashlib

    from . import bundle as bundler
    from . import writer
    from .render import HELPER_RESOURCE

    data = bundler.build()
    [change] = writer.sync({HELPER_RESOURCE: data}, out, write=not check, roots=())
    sha = hashlib.sha256(data).hexdigest()
    click.echo(f"{change.status.value:>10}  {HELPER_RESOURCE}  ({len(data)} bytes, sha256 {sha})")
    if check and change.status.value != "unchanged":
        click.echo("error: the committed helper bundle differs from a fresh build", err=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
