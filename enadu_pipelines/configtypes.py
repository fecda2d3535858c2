"""Pattern types of ``enadu.yaml``: every value that can reach Groovy, shell, YAML or XML.

Each type is a string checked against a strict regular expression when the file is loaded, so
`be-dev'; sh 'x` or `$(id)` never reaches a template; its JSON Schema carries the same pattern for
editors. Free text (a description, a PromQL query) is the exception: any printable characters on
one line, escaped by the renderer for the context it lands in. ``_Model`` is the strict base of
every section (unknown keys are errors, "2" never becomes 2).
"""

from __future__ import annotations

import re
import typing
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, WithJsonSchema

from .helper import analysis

# --------------------------------------------------------------------------------------------
# Pattern types. Each names what it accepts so a rejection says why.


def _pattern(regex: str, what: str, *, max_len: int = 200, extra: typing.Callable[[str], str | None] | None = None,
             schema_regex: str | None = None, shown: typing.Callable[[str], str] | None = None):
    compiled = re.compile(regex)
    show = shown or _show

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{show(value)} is not {what}")
        if len(value) > max_len:
            raise ValueError(f"{show(value)} is not {what}: longer than {max_len} characters")
        if extra is not None:
            problem = extra(value)
            if problem:
                raise ValueError(f"{show(value)} is not {what}: {problem}")
        return value

    return Annotated[
        str,
        AfterValidator(check),
        WithJsonSchema({"type": "string", "pattern": f"^(?:{schema_regex or regex})$", "maxLength": max_len, "description": what}),
    ]


def _show(value: str) -> str:
    shown = value if len(value) <= 60 else value[:57] + "..."
    return repr(shown)


def _url_shown(value: str) -> str:
    """A rejected URL or host without what could be a secret: user info (``user:token@``, with or
    without a scheme; ``git@`` is kept), query and fragment are replaced by ``...``."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "", value
    userinfo, at, host = rest.rpartition("@")
    hidden = bool(at) and userinfo != "git"
    if hidden:
        rest = host
    if re.search(r"[?#]", rest):
        rest, hidden = re.split(r"[?#]", rest, maxsplit=1)[0], True
    return _show(scheme + sep + rest + ("..." if hidden else ""))


def _branch_problem(value: str) -> str | None:
    # git check-ref-format rules that a character class cannot express.
    if ".." in value or "//" in value or value.endswith((".", "/", ".lock")) or "/." in value:
        return "git does not allow '..', '//', '/.' or a trailing '.', '/' or '.lock'"
    return None


def _glob_problem(value: str) -> str | None:
    parts = value.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "path segments may not be empty, '.' or '..'"
    if any("**" in p and p != "**" for p in parts):
        return "'**' must be a whole path segment, as in 'common/**'"
    return None


def _relpath_problem(value: str) -> str | None:
    if value == ".":
        return None
    parts = value.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "use a relative path without '..' or empty segments"
    return None


Name = _pattern(
    r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?",
    "a service name (lower-case letters, digits and '-', starting with a letter, at most 40 characters)",
    max_len=40,
)
DnsLabel = _pattern(
    r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
    "a Kubernetes name (lower-case letters, digits and '-', at most 63 characters)",
    max_len=63,
)
Branch = _pattern(
    r"[A-Za-z0-9][A-Za-z0-9._/-]*",
    "a git branch name (letters, digits and . _ / -)",
    max_len=100,
    extra=_branch_problem,
)
GitRef = _pattern(
    r"[A-Za-z0-9][A-Za-z0-9._/-]*",
    "a git tag or branch (letters, digits and . _ / -)",
    max_len=100,
    extra=_branch_problem,
)
Glob = _pattern(
    r"[A-Za-z0-9_.*?/-]+",
    "a path glob relative to the repository root (letters, digits, . _ - / and the wildcards * ** ?)",
    extra=_glob_problem,
)
RelPath = _pattern(
    r"[A-Za-z0-9_.][A-Za-z0-9_./-]*",  # no leading '-': the value is a command-line argument of the builder
    "a relative path (letters, digits and . _ - /, not starting with '-')",
    extra=_relpath_problem,
)
Command = _pattern(
    r"[A-Za-z0-9_./:=@%+,-][A-Za-z0-9_./:=@%+, -]*",
    "a simple command (words of letters, digits and . _ / : = @ % + , - separated by spaces;"
    " no quotes, $, ;, |, &, redirections or backticks)",
    max_len=300,
)
CredentialId = _pattern(
    r"[A-Za-z0-9][A-Za-z0-9._-]*",
    "a Jenkins credentials id (letters, digits and . _ -)",
    max_len=128,
)
ImageName = _pattern(
    r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*",
    "a Docker image repository name (lower-case path components such as 'enadu/backend', no tag)",
    max_len=200,
)
RegistryHost = _pattern(
    r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?",
    "a registry host name with an optional port (such as 'registry.example.com:5000')",
    max_len=253,
    shown=_url_shown,
)
# A registry that the agent reaches on its own loopback interface: the only kind `registry.insecure`
# accepts (vars/enaduImage.groovy checks the same pattern).
LOOPBACK_REGISTRY = r"(localhost|127([.][0-9]{1,3}){3})(:[0-9]{1,5})?"


def is_loopback_registry(host: str) -> bool:
    return re.fullmatch(LOOPBACK_REGISTRY, host) is not None and all(
        int(part) <= 255 for part in host.split(":")[0].split(".")[1:])


RepoUrl = _pattern(
    r"(https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/|ssh://git@[A-Za-z0-9.-]+(:[0-9]{1,5})?/|git@[A-Za-z0-9.-]+:)"
    r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*",
    "a git repository URL (https://host/org/repo.git, ssh://git@host/org/repo.git or git@host:org/repo.git)",
    max_len=300,
    shown=_url_shown,
)
FolderPath = _pattern(
    r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*",
    "a Jenkins folder path such as 'enadu' or 'teams/enadu' (letters, digits and . _ -)",
    max_len=200,
)
AgentLabel = _pattern(
    r"[A-Za-z0-9][A-Za-z0-9._-]*",
    "a Jenkins agent label (letters, digits and . _ -)",
    max_len=100,
)
LibraryName = _pattern(
    r"[A-Za-z0-9][A-Za-z0-9._-]*",
    "a Jenkins library name (letters, digits and . _ -)",
    max_len=100,
)
HttpPath = _pattern(
    r"/[A-Za-z0-9._~/-]*",
    "an HTTP path starting with '/' (letters, digits and . _ ~ / -)",
    max_len=200,
)
Quantity = _pattern(
    r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?",
    "a Kubernetes quantity such as '250m', '1', '512Mi' or '1Gi'",
    max_len=20,
)
Duration = _pattern(
    r"[0-9]{1,6}(s|m|h)",
    "a duration such as '30s', '10m' or '1h'",
    max_len=7,
)


def duration_seconds(duration: str) -> int:
    """Seconds in a validated Duration ('30s', '10m', '1h')."""
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


RoleId = _pattern(r"[0-9]{17,20}", "a Discord role id (17 to 20 digits)", max_len=20)
HttpUrl = _pattern(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?",
    "an http(s) URL such as 'https://prometheus.example.com:9090' (no credentials, query or fragment)",
    max_len=300,
    shown=_url_shown,
)


def _free_text_problem(value: str) -> str | None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "control characters (including newlines) are not allowed"
    return None


FreeText = _pattern(r"(?s).*", "text on one line", max_len=200, extra=_free_text_problem,
                    schema_regex=r"[^\x00-\x1f\x7f]*")


def _query_problem(value: str) -> str | None:
    problem = _free_text_problem(value)
    if problem:
        return problem
    if not value.strip():
        return "the query is empty"
    unknown = sorted(set(_PLACEHOLDER.findall(value)) - set(analysis.PLACEHOLDERS))
    if unknown:
        return f"unknown placeholder {{{unknown[0]}}} (known: " + ", ".join("{" + p + "}" for p in analysis.PLACEHOLDERS) + ")"
    return None


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Free text too (PromQL has quotes, braces, brackets): the renderer escapes it as a Groovy literal,
# and the vars/ step hands it to the helper as an environment value, never through a shell.
PromQL = _pattern(r"(?s).*", "a PromQL query template on one line", max_len=analysis.MAX_QUERY,
                  extra=_query_problem, schema_regex=r"[^\x00-\x1f\x7f]*")


# --------------------------------------------------------------------------------------------
# The file's model. ``extra="forbid"`` makes unknown keys errors; ``strict`` stops "2" from
# quietly becoming 2.


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
