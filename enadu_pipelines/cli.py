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
@click.option("--no-cache", is_flag=True,
              help="Use nothing remembered in the user's cache directory (verified bundle, templates, renders):"
                   " for a --check gate that must not trust a cache others can write [ENADU_NO_CACHE=1].")
@click.option("--force", is_flag=True,
              help="Overwrite hand-written files (without the generated marker) found where generated files belong;"
                   " without it they stop the render (exit 5) before anything is written.")
@_handle_errors
def render(config_path: Path, out: Path | None, check: bool, show_diff: bool, rebuild_bundle: bool, quiet: bool,
           no_cache: bool, force: bool) -> None:
    """Render pipelines/, vars/ and resources/ from the configuration.

    Files are written only when their content changes; each is reported as created, updated,
    unchanged or removed (a generated file whose service left the configuration). A hand-written
    file where a generated one belongs is an error (exit 5, nothing written) unless --force.
    """
    from . import generate, usercache

    if no_cache:
        usercache.disable()
    out = out if out is not None else (config_path.parent if str(config_path.parent) else Path("."))
    if check and rebuild_bundle:
        raise click.UsageError("--check writes nothing, so it cannot be combined with --rebuild-bundle")
    result = generate.generate(config_path, out, write=not check, diff=show_diff, rebuild_bundle=rebuild_bundle,
                               force=force)
    for change in result.changes:
        if change.hand_written:
            click.echo(f"warning: {out / change.path}: hand-written, "
                       f"{'would be overwritten' if check else 'overwritten'} (--force)", err=True)
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
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
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
        from .errors import OutputError

        try:
            out.write_text(text, "utf-8")
        except OSError as e:
            raise OutputError(f"{out}: {e.strerror or type(e).__name__}") from None
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


@main.command()
@click.option("--url", required=True, help="Base URL of the Jenkins controller, such as https://jenkins.example.com/.")
@click.option("--user", default=None, help="Jenkins user the API token belongs to.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File holding the API token  [default: the JENKINS_API_TOKEN environment variable]")
@click.option("--folder", default=None, help="Folder that holds the jobs  [default: jenkins.folder from the configuration]")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default="enadu.yaml", show_default=True, help=CONFIG_HELP)
@click.option("--dry-run", is_flag=True, help="Print the plan (with an XML diff for each update) and write nothing.")
@click.option("--prune", is_flag=True, help="Delete jobs that carry our ownership marker but are no longer configured.")
@click.option("--first-build/--no-first-build", "first_builds", default=True, show_default=True,
              help="Queue one registration build (ENADU_REGISTER_ONLY=true) for each job that has never run, so"
                   " that GitHub pushes start it; that build checks the service out and deploys nothing.")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=600), default=30.0, show_default=True,
              help="Seconds each request to Jenkins may take, from the first byte sent to the last one read.")
@click.option("--allow-insecure-http", is_flag=True,
              help="Accept a plain http:// --url to a host other than this machine (the API token travels in clear).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_handle_errors
def bootstrap(url: str, user: str | None, token_file: Path | None, folder: str | None, config_path: Path,
              dry_run: bool, prune: bool, first_builds: bool, timeout: float, allow_insecure_http: bool,
              output: str) -> None:
    """Make a Jenkins folder hold exactly the pipeline jobs the configuration describes.

    Creates missing folders and jobs, rewrites jobs whose config.xml differs (edits made in the
    Jenkins UI included) and, with --prune, deletes jobs it manages that left the configuration.
    A job that has never run gets one registration build (see --first-build): until a Pipeline job
    has run, GitHub pushes to its service's repository do not start it.
    Exit codes: 0 converged, 1 bad configuration, 2 bad command line (a plain http:// --url to
    another host without --allow-insecure-http, a --token-file other users can access), 3 Jenkins
    unreachable, too slow, refused us or answered nonsense, 4 some jobs did not converge.
    """
    import os

    from .config import load
    from .errors import ConvergeError
    from .jenkins import bootstrap as core

    core.check_url(url, allow_insecure_http=allow_insecure_http)  # before reading the token or the config
    token = core.read_token(token_file, os.environ)
    if token and not user:
        raise click.UsageError("an API token needs --user (the Jenkins user it belongs to)")
    if user and not token:
        raise click.UsageError("--user needs an API token: set JENKINS_API_TOKEN or pass --token-file")
    project = load(config_path)
    err = functools.partial(click.echo, err=True)
    report = core.run(project, url=url, user=user, token=token, folder=folder, dry_run=dry_run, prune=prune,
                      first_builds=first_builds, timeout=timeout, allow_insecure_http=allow_insecure_http, log=err)
    if output == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in core.format_text(report):
            click.echo(line)
    if not report.converged:
        raise ConvergeError(f"{len(report.failed)} item(s) did not converge; see the errors above")


if __name__ == "__main__":  # pragma: no cover
    main()
