"""Image references: the one rule for every image the helper is asked to run.

Kubernetes passes a container's ``image`` to the kubelet, which parses it with
``reference.ParseNormalizedNamed`` of github.com/distribution/reference (short names such as
``nginx:1.27`` become ``docker.io/library/nginx:1.27``). The grammar below is that package's
``regexp.go`` (``ReferenceRegexp``: ``name [":" tag] ["@" digest]``, ``NameTotalLengthMax = 255`` in
``reference.go``), transcribed with ASCII classes (Go's ``\\w`` and ``[[:xdigit:]]`` are ASCII, Python's
``\\w`` is not). Our one addition: a deploy needs a tag or a digest, so the image cannot change
under the same reference (an untagged name means ``:latest``, which a re-run would call "unchanged").

The same rule checks ``deploy --image`` and the images a ``rollback`` takes from the Service's
history annotation (``PINNED`` is a plain regular expression that Java's ``==~`` reads the same way).
The generated ``enaduDeploy`` step checks only ``CHARACTERS`` (the characters the grammar uses, at a
bounded length): the full pattern would make a 450-character Groovy line, and the helper, which the
step runs next, refuses a bad reference with the reason and the rule.
"""

from __future__ import annotations

import re
from typing import Optional

_ALNUM = "[a-z0-9]+"
_SEPARATOR = "(?:[._]|__|[-]+)"
_PATH_COMPONENT = f"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = f"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
NAME = f"(?:{_DOMAIN_AND_PORT}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
# ParseNormalizedNamed then hands the digest to github.com/opencontainers/go-digest's Parse, which
# knows these algorithms and wants their lower-case hex of exactly this length (algorithm.go).
KNOWN_DIGEST = "(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})"

#: the grammar with a tag, a digest or both required (a full match is a deployable reference)
PINNED = f"{NAME}(?::{TAG}(?:@{KNOWN_DIGEST})?|@{KNOWN_DIGEST})"
#: what the enaduDeploy step checks before the helper applies the rule: the grammar's characters
CHARACTERS = r"[A-Za-z0-9\[][A-Za-z0-9._:/@\[\]-]{0,999}"
NAME_MAX = 255  # distribution/reference: NameTotalLengthMax
LENGTH_MAX = 1000  # far above name + tag + a sha512 digest; checked before any regular expression runs
RULE = "[host[:port]/]path[:tag][@digest] with a tag or a digest, as github.com/distribution/reference parses it"

_DIGEST_PROBLEM = "its digest is not sha256:, sha384: or sha512: with 64, 96 or 128 lower-case hex digits"
_PINNED = re.compile(PINNED)
_REFERENCE = re.compile(f"({NAME})(?::({TAG}))?(?:@({DIGEST}))?")
_NAME = re.compile(NAME)
_TAG = re.compile(TAG)
_DIGEST = re.compile(DIGEST)
_KNOWN_DIGEST = re.compile(KNOWN_DIGEST)


def problem(ref: object) -> Optional[str]:
    """Why ``ref`` is not a deployable image reference, as a phrase, or None when it is one."""
    if not isinstance(ref, str):
        return f"it is a {type(ref).__name__}, not a string"
    if not ref:
        return "it is empty"
    if len(ref) > LENGTH_MAX:
        return f"it is longer than {LENGTH_MAX} characters"
    if any(not ch.isascii() or not ch.isprintable() or ch.isspace() for ch in ref):
        return "it contains a space, a control character or a non-ASCII character"
    match = _REFERENCE.fullmatch(ref)
    if match:
        if len(match.group(1)) > NAME_MAX:
            return f"its name is longer than {NAME_MAX} characters"
        if _PINNED.fullmatch(ref):
            return None
        if match.group(3) and not _KNOWN_DIGEST.fullmatch(match.group(3)):
            return _DIGEST_PROBLEM
        return "it has no tag or digest (':<tag>' or '@sha256:<hex>'; an untagged name means ':latest')"
    # Say which part breaks the grammar.
    name, _, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = name[colon + 1:] if colon > slash else None
    if tag is not None:
        name = name[:colon]
    if digest and not _KNOWN_DIGEST.fullmatch(digest):
        return _DIGEST_PROBLEM
    if tag is not None and not _TAG.fullmatch(tag):
        return "its tag is not 1-128 letters, digits, '_', '.' or '-' starting with a letter, digit or '_'"
    if not _NAME.fullmatch(name) and _NAME.fullmatch(_lower_path(name)):
        return "its repository path must be lower-case"
    return "its name is not [host[:port]/]path with path components of lower-case letters and digits"


def _lower_path(name: str) -> str:
    """``name`` with its path (not its registry host) in lower case."""
    head, sep, rest = name.partition("/")
    if sep and ("." in head or ":" in head or head == "localhost" or head != head.lower()):
        return head + "/" + rest.lower()
    return name.lower()


def repository(ref: object) -> Optional[str]:
    """The name part of a reference (registry host and path, no tag or digest), or None."""
    match = _REFERENCE.fullmatch(ref) if isinstance(ref, str) and len(ref) <= LENGTH_MAX else None
    return match.group(1) if match else None


def check(ref: object, what: str) -> Optional[str]:
    """The one-line message for an image reference that breaks the rule, or None."""
    why = problem(ref)
    if why is None:
        return None
    shown = ref[:200] + "..." if isinstance(ref, str) and len(ref) > 200 else ref
    return f"{what}: {shown!r} is not an image reference to deploy: {why} (the rule: {RULE})"
