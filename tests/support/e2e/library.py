"""The shared library as pipeline-groovy-lib registers and retrieves it.

* :func:`load_casc` reads the ``unclassified.globalLibraries.libraries`` entry that ``render`` writes to
  ``jenkins/casc.yaml`` (JCasC binds it to ``LibraryConfiguration``: ``name``, ``defaultVersion``,
  ``implicit``, ``allowVersionOverride``, ``includeInChangesets``, ``retriever.modernSCM.scm.git.remote``).
* :func:`requested` finds ``@Library('name@version')`` in a Jenkinsfile (``LibraryDecorator`` reads
  the annotation, ``LibraryAdder.parse`` splits it at ``@``). ``LibraryConfiguration.defaultedVersion``
  (jenkinsci/pipeline-groovy-lib-plugin, read at 5cc6888) decides: a missing version takes
  ``defaultVersion``; *any* explicit version, even one equal to ``defaultVersion``, needs
  ``allowVersionOverride`` and is otherwise refused with "Version override not permitted for library <name>".
* :func:`retrieve` is ``SCMSourceRetriever`` over a ``GitSCMSource``: the version is resolved by
  ``AbstractGitSCMSource.retrieve(String)`` — a branch head of that name, else a tag of that name
  (annotated tags peeled), else a commit — and checked out into the build's library directory. The
  checkout is recorded on the build with ``changelog = includeInChangesets`` and ``poll = false``
  (``SCMBasedRetriever.doRetrieve``), so with ``includeInChangesets: false`` it has no polling baseline.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from .gitserver import GitServer
from .scm import R_HEADS, R_TAGS, ScmFailure


@dataclass(frozen=True)
class LibraryConfiguration:
    name: str
    default_version: str
    implicit: bool
    allow_version_override: bool
    include_in_changesets: bool
    remote: str


def load_casc(text: str) -> LibraryConfiguration:
    data = yaml.safe_load(text)
    [lib] = data["unclassified"]["globalLibraries"]["libraries"]
    return LibraryConfiguration(
        lib["name"], str(lib.get("defaultVersion") or ""), bool(lib.get("implicit", False)),
        bool(lib.get("allowVersionOverride", True)),
        bool(lib.get("includeInChangesets", True)),  # LibraryConfiguration: includeInChangesets = true by default
        lib["retriever"]["modernSCM"]["scm"]["git"]["remote"],
    )


_ANNOTATION = re.compile(r"@Library\(\s*'([^'@]+)(?:@([^']+))?'\s*\)")


def requested(jenkinsfile: str, lib: LibraryConfiguration) -> str:
    m = _ANNOTATION.search(jenkinsfile)
    if m is None:
        raise ScmFailure("the Jenkinsfile loads no library")
    name, version = m.group(1), m.group(2)
    if name != lib.name:
        raise ScmFailure(f"No library named {name} found")
    if version is None:
        if not lib.default_version:
            raise ScmFailure(f"No version specified for library {name}")
        return lib.default_version
    if not lib.allow_version_override:
        raise ScmFailure(f"Version override not permitted for library {name}")
    return version


@dataclass(frozen=True)
class Retrieved:
    root: Path
    version: str
    sha: str
    ref: str  # what the version resolved to


def retrieve(server: GitServer, lib: LibraryConfiguration, version: str, dest: Path) -> Retrieved:
    """Check the library out at ``version`` into ``dest`` (a fresh directory per build)."""
    refs = _ls_remote(server, lib.remote)
    for ref in (R_HEADS + version, R_TAGS + version):
        if ref in refs:
            break
    else:
        if re.fullmatch(r"[0-9a-f]{40}", version):
            ref = version
        else:
            raise ScmFailure(f"No version {version} found for library {lib.name}")
    dest.mkdir(parents=True, exist_ok=True)
    _run(server, dest, "init", "--quiet", ".")
    _run(server, dest, "fetch", "--quiet", "--tags", "--force", "--", lib.remote, f"+{ref}:refs/enadu/lib" if "/" in ref else ref)
    target = "refs/enadu/lib" if "/" in ref else version
    _run(server, dest, "checkout", "--quiet", "-f", f"{target}^{{commit}}")
    sha = _run(server, dest, "rev-parse", "HEAD").strip()
    return Retrieved(dest, version, sha, ref)


def _ls_remote(server: GitServer, url: str) -> dict:
    out = _run(server, None, "ls-remote", url)
    return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines() if line)}


def _run(server: GitServer, cwd: Optional[Path], *argv: str) -> str:
    proc = subprocess.run(["git", *argv], cwd=cwd, env=server.env(), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise ScmFailure(f"git {' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout
