"""Pattern types of ``enadu.yaml``: every value that can reach Groovy, shell, YAML or XML.

Each type is a string checked against a strict regular expression when the file is loaded, so
`be-dev'; sh 'x` or `$(id)` never reaches a template, plus *rules*: regular expressions a value may
not contain, each with the reason a rejection gives. The JSON Schema of the type is built from the
same regular expressions (the rules as negative lookaheads), so editors and the loader agree
(tests/test_schema.py checks it with Hypothesis). One rule holds for every type that can reach a
command line: no value begins with '-'. Free text (a description, a PromQL query) is the exception:
any characters on one line but the unsafe ones that :mod:`enadu_pipelines.yamlsource` refuses in
every value, escaped by the renderer for the context it lands in. ``_Model`` is the strict base of
every section (unknown keys are errors, "2" never becomes 2).
"""

from __future__ import annotations

import re
import typing
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, WithJsonSchema

from .helper import analysis
from .yamlsource import UNSAFE_CLASS

# --------------------------------------------------------------------------------------------
# Pattern types. Each names what it accepts so a rejection says why.


Rule = tuple[str, str]  # (a regular expression a value may not contain, why); "%s" in why is what matched

NOT_AN_OPTION: Rule = (r"^-", "it may not begin with '-' (a command would read it as an option)")
# Ports are 1-65535 wherever a host may carry one: after "scheme://[user@]host" or a bare "host".
PORT_RANGE: Rule = (r"^(?:[a-z]+://[^/]*|[^/@]*):(?:0[0-9]*|6553[6-9]|655[4-9][0-9]|65[6-9][0-9]{2}|6[6-9][0-9]{3}"
                    r"|[7-9][0-9]{4}|[1-9][0-9]{5,})(?:/|$)", "a port is a number from 1 to 65535")


def _pattern(regex: str, what: str, *, max_len: int = 200, rules: typing.Sequence[Rule] = (), argument: bool = True,
             extra: typing.Callable[[str], str | None] | None = None, schema_forbid: typing.Sequence[str] = (),
             shown: typing.Callable[[str], str] | None = None):
    """A string type: ``regex`` must match the whole value, no rule may match in it, at most
    ``max_len`` characters. ``argument`` (every type but free text): the value may reach a command line,
    so it may not begin with '-'. ``extra`` is a check written in Python (its message is given as is);
    ``schema_forbid`` must then say the same as regular expressions, for the schema."""
    compiled = re.compile(regex)
    checks = [(re.compile(r), why) for r, why in ([NOT_AN_OPTION] if argument else []) + list(rules)]
    show = shown or _show

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{show(value)} is not {what}")
        if len(value) > max_len:
            raise ValueError(f"{show(value)} is not {what}: longer than {max_len} characters")
        for rule, why in checks:
            found = rule.search(value)
            if found:
                raise ValueError(f"{show(value)} is not {what}: {why.replace('%s', found.group())}")
        if extra is not None:
            problem = extra(value)
            if problem:
                raise ValueError(f"{show(value)} is not {what}: {problem}")
        return value

    # JSON Schema's "pattern" is searched, not matched, and Python's "$" also matches before a final
    # newline: anchor at both ends and refuse that newline.
    lookaheads = "".join(f"(?![\\s\\S]*?(?:{rule.pattern}))" for rule, _ in checks)
    lookaheads += "".join(f"(?![\\s\\S]*?(?:{r}))" for r in schema_forbid)
    return Annotated[
        str,
        AfterValidator(check),
        WithJsonSchema({"type": "string", "pattern": f"^{lookaheads}(?:{regex})$(?!\\n)", "maxLength": max_len,
                        "description": what}),
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


# git check-ref-format rules that a character class cannot express.
BRANCH_RULES: list[Rule] = [(r"\.\.|//|/\.|[./]$|\.lock$",
                             "git does not allow '..', '//', '/.' or a trailing '.', '/' or '.lock'")]


def _glob_problem(value: str) -> str | None:
    # the helper's rule, so the loader and `changes` agree on what a glob is
    from .helper.changes import glob_problem

    return glob_problem(value)


# A relative path: '.' alone, or segments none of which is empty, '.' or '..' (so never absolute).
RELPATH_RULES: list[Rule] = [(r"^/|^\.(?=/)|^\.\.(?=/|$)|/\.{0,2}(?=/|$)", "use a relative path without '..' or empty segments")]
# _glob_problem as regular expressions, for the schema (tests/test_schema.py checks that they agree).
GLOB_FORBID = (r"(?:^|/)\.{0,2}(?:/|$)", r"[^/]\*\*|\*\*[^/]")


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
    rules=BRANCH_RULES,
)
GitRef = _pattern(
    r"[A-Za-z0-9][A-Za-z0-9._/-]*",
    "a git tag or branch (letters, digits and . _ / -)",
    max_len=100,
    rules=BRANCH_RULES,
)
LibraryVersion = _pattern(
    r"[A-Za-z0-9][A-Za-z0-9._/-]*",
    "a git tag or branch (letters, digits and . _ / -)",
    max_len=100,
    rules=[*BRANCH_RULES, (r"^(?:refs|origin)/", "give the bare tag or branch name (such as v0.1.0) and set library.ref"
                                                 " to 'tag' or 'branch'; the rendered files qualify it as refs/tags/..."
                                                 " or refs/heads/...")],
)
Glob = _pattern(
    r"[A-Za-z0-9_.*?/-]+",
    "a path glob relative to the repository root (letters, digits, . _ - / and the wildcards * ** ?)",
    extra=_glob_problem,
    schema_forbid=GLOB_FORBID,
)
RelPath = _pattern(
    r"[A-Za-z0-9_./-]+",
    "a relative path (letters, digits and . _ - /)",
    rules=RELPATH_RULES,
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
    rules=[PORT_RANGE],
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
    rules=[PORT_RANGE],
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
# An image pinned by digest (an agent pod's containers): what runs is exactly what was reviewed, whatever a
# tag points at later. [registry[:port]/]repository@sha256:<64 hex>; no tag (it would be ignored anyway).
PinnedImage = _pattern(
    r"([a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"@sha256:[0-9a-f]{64}",
    "an image pinned by digest, such as 'docker.io/library/python@sha256:<64 hex digits>' (no tag)",
    max_len=300,
    rules=[PORT_RANGE],
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
# InputStep.submitter: comma-separated user ids or group names (pipeline-input-step-plugin
# InputStepExecution.canSettle splits on ',' and trims); kept to plain names here.
Submitters = _pattern(
    r"[A-Za-z0-9][A-Za-z0-9._@-]*(, ?[A-Za-z0-9][A-Za-z0-9._@-]*)*",
    "Jenkins user ids or group names, separated by commas (letters, digits and . _ @ -)",
    max_len=200,
)

Duration = _pattern(
    r"[0-9]{1,6}(s|m|h)",
    "a duration such as '30s', '10m' or '1h'",
    max_len=7,
)


# kubernetes.abort_scale_down_delay: a Duration of at most 5m, or never (Argo Rollouts'
# abortScaleDownDelaySeconds: 0). The deploy holds its lock for the whole delay, and a deploy or abort
# started meanwhile waits for it --lock-timeout (default 5m, helper/deploy.py); the helper's flag has
# the same bound (deploy.py ``abort_delay``, ``MAX_ABORT_SCALE_DOWN_DELAY``).
ABORT_DELAY_LIMIT = "the deploy lock is held for the whole delay (a deploy or abort waits 5m for it); use never to" \
                    " keep the colour longer"
DurationOrNever = _pattern(
    r"never|[0-9]{1,6}(s|m|h)",
    "a duration of at most 5m such as '30s' or '5m', or 'never'",
    max_len=7,
    rules=[(r"^0*(?:[1-9][0-9]*h|(?:[6-9]|[1-9][0-9]+)m|(?:30[1-9]|3[1-9][0-9]|[4-9][0-9]{2}|[1-9][0-9]{3,})s)$",
            ABORT_DELAY_LIMIT)],
)


def duration_seconds(duration: str) -> int:
    """Seconds in a validated Duration ('30s', '10m', '1h')."""
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


RoleId = _pattern(r"[0-9]{17,20}", "a Discord role id (17 to 20 digits)", max_len=20)
HttpUrl = _pattern(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?",
    "an http(s) URL such as 'https://prometheus.example.com:9090' (no credentials, query or fragment)",
    max_len=300,
    rules=[PORT_RANGE],
    shown=_url_shown,
)


# Free text: any characters but the unsafe ones (which yamlsource refuses in every value, with the
# position), on one line; not a command-line argument, so it may begin with '-'.
FreeText = _pattern(f"[^{UNSAFE_CLASS}]*", "text on one line", max_len=200, argument=False)

# Free text too (PromQL has quotes, braces, brackets): the renderer escapes it as a Groovy literal,
# and the vars/ step hands it to the helper as an environment value, never through a shell.
PromQL = _pattern(
    f"[^{UNSAFE_CLASS}]*", "a PromQL query template on one line", max_len=analysis.MAX_QUERY, argument=False,
    rules=[(r"^\s*$", "the query is empty"),
           (r"\{(?!(?:" + "|".join(analysis.PLACEHOLDERS) + r")\})[A-Za-z_][A-Za-z0-9_]*\}",
            "unknown placeholder %s (known: " + ", ".join("{" + p + "}" for p in analysis.PLACEHOLDERS) + ")")],
)


# --------------------------------------------------------------------------------------------
# The file's model. ``extra="forbid"`` makes unknown keys errors; ``strict`` stops "2" from
# quietly becoming 2.


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
