"""Command line of the helper that runs inside Jenkins builds.

The helper uses argparse, not click: it is bundled into a zipapp that starts on every pipeline step,
so every dependency it does not need costs start-up time and bundle size. Each command lives in its
own module with ``add_arguments(parser)`` and ``run(args) -> int``; this module imports a command's
module when building the parser, and the module imports its heavy dependencies (kubernetes,
requests) inside ``run`` only.

Every option can also be given as an ``ENADU_*`` environment variable (the ``vars/`` steps pass
values that way, so no value is ever parsed by a shell); a flag on the command line wins.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import re
import sys
from typing import Optional, Sequence

from .. import __version__
from . import exitcodes
from .errors import HelperError, UsageProblem
from .report import printable

# command name -> module (relative to this package) providing add_arguments() and run()
COMMANDS = {
    "changes": ".changes",
    "deploy": ".deploy",
    "status": ".status",
    "rollback": ".rollback",
    "promote": ".promote",
    "abort": ".abort",
    "notify": ".notify",
}


# One error tree: a bad flag or environment value is the helper's UsageProblem (exit 2).
UsageError = UsageProblem


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse echoes unrecognized arguments; a URL given by mistake may carry a token
        # (a Discord webhook URL does), so URLs are never echoed.
        message = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", "<URL not shown>", message)
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {printable(message)}\n")
        sys.exit(exitcodes.USAGE)


def bundle_sha256() -> Optional[str]:
    """sha256 of the zipapp we run from, or None when not running from one."""
    archive = getattr(sys.modules.get("__main__"), "__loader__", None)
    path = getattr(archive, "archive", None)
    if not path or not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Version(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):  # noqa: ANN001
        super().__init__(option_strings, dest, nargs=0, help="print the version and the bundle's sha256, then exit")

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        sha = bundle_sha256()
        print(f"enadu-helper {__version__} (bundle sha256 {sha})" if sha else f"enadu-helper {__version__} (not bundled)")
        parser.exit(0)


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def flag(value: object, what: str) -> bool:
    """A boolean flag or environment value: 1/true/yes/on or empty/0/false/no/off, else a UsageError."""
    text = str(value if value is not None else "").strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise UsageError(f"{what}: {value!r} is not true or false (1/true/yes/on or 0/false/no/off)")


def env_default(name: str, default: Optional[str] = None) -> Optional[str]:
    """The value of environment variable ``name`` if set and not empty, else ``default``."""
    value = os.environ.get(name)
    return value if value else default


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="enadu-helper",
        description="Runs inside the Enadu Jenkins pipelines: change detection, blue/green deploys and Discord notifications.",
        epilog="Exit codes: 0 success, 1 failed, 2 usage, 3 lock held, 4 cluster unreachable or refused, "
        "5 rolled back, 6 incomplete, 7 held for promotion (deploy --hold), 10 unchanged (changes).",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name, __package__)
        doc = (module.__doc__ or "").strip().splitlines()
        command = sub.add_parser(name, help=doc[0] if doc else None, description=(module.__doc__ or "").strip(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.add_argument("--output", choices=("text", "json"), default=env_default("ENADU_OUTPUT", "text"),
                             help="text progress lines (default), or one JSON result object on stdout [ENADU_OUTPUT]")
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .kube import lazy

    lazy.install()  # the kubernetes client's ~820 modules would cost every command 0.6 s of CPU (5 s bundled)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except HelperError as e:
        print(printable(f"enadu-helper {args.command}: {e}"), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"enadu-helper {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
