"""git-plugin, as a controller and an agent use it: lightweight reads, checkouts, build data, polling.

Each function follows one piece of jenkinsci/git-plugin (read at add6e4dc; notes in the README of
this package), with real git doing the work:

* :func:`lightweight_read` — ``jenkins.plugins.git.GitSCMFileSystem``: ``BuilderImpl.supports`` (which
  branch specs it accepts), ``HeadNameResult.calculate`` (a bare name is a *branch*:
  ``refs/heads/<name>``; only ``refs/tags/…`` is a tag) and ``BuilderImpl.build`` (one fetch of
  ``+<prefix><head>:refs/remotes/origin/<head>`` with ``--tags --force --prune``). A missing ref fails
  the fetch; ``SCMFileSystem.of`` rethrows it and ``CpsScmFlowDefinition.create`` does not fall back to
  a full checkout (it falls back only when no builder supports the SCM).
* :func:`checkout` — ``hudson.plugins.git.GitSCM``: fetch ``+refs/heads/*:refs/remotes/origin/*`` with
  tags, choose the revision (``DefaultBuildChooser``: ``refs/heads/x`` → ``refs/remotes/origin/x``),
  check it out (``LocalBranch`` → ``checkout -B``), record :class:`BuildData` (cloned from the previous
  build's, ``saveBuild`` per branch name) and compute ``GIT_*`` as ``GitSCM.buildEnvironment`` does:
  ``GIT_PREVIOUS_COMMIT`` from the previous *built* build (result not NOT_BUILT),
  ``GIT_PREVIOUS_SUCCESSFUL_COMMIT`` from the previous successful build (``Run.getPreviousSuccessfulBuild``:
  SUCCESS or UNSTABLE), each walking back to the newest
  build data that references the same remote URL, then looking the same branch up in it.
* :func:`remote_heads` / :func:`poll_changes` — ``GitSCM.compareRemoteRevisionWithImpl``: ``git
  ls-remote -h`` (heads only: a tag never polls as changed), heads matching the branch spec whose sha
  is not in the build data are changes.
"""

from __future__ import annotations

import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .gitserver import GitServer

R_HEADS, R_TAGS, R_REMOTES = "refs/heads/", "refs/tags/", "refs/remotes/"
REMOTE = "origin"


class ScmFailure(RuntimeError):
    """What the controller would print when an SCM operation fails (the build then fails)."""


@dataclass(frozen=True)
class GitScm:
    """A ``hudson.plugins.git.GitSCM`` with one remote and one branch spec (what our jobs and steps use)."""

    url: str
    branch: str
    credentials_id: Optional[str] = None
    local_branch: Optional[str] = None  # the LocalBranch extension

    @property
    def key(self) -> str:
        return "git " + self.url  # GitSCM.getKey(): no branch in the key


def _git(server: GitServer, *argv: str, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *argv], cwd=cwd, env=server.env(), capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------------------------------
# Lightweight checkout (GitSCMFileSystem)


def lightweight_supported(scm: GitScm) -> bool:
    """``GitSCMFileSystem.BuilderImpl.supports``: one remote, one branch spec, not '*', of a known shape."""
    name = scm.branch
    if name == "*":
        return False
    shapes = (rf"^(({re.escape(R_HEADS)}.*)|([^/]+)|(\*/[^/*]+(/[^/*]+)*))$",
              rf"^(({re.escape(R_TAGS)}.*)|([^/]+)|(\*/[^/*]+(/[^/*]+)*))$")
    return any(re.match(shape, name) for shape in shapes)


def head_name(branch_spec: str) -> tuple[str, str]:
    """``HeadNameResult.calculate`` with no revision: (prefix, head name)."""
    prefix = R_TAGS if branch_spec.startswith(R_TAGS) else R_HEADS
    if branch_spec.startswith(prefix):
        return prefix, branch_spec[len(prefix):]
    if branch_spec.startswith("*/"):
        return prefix, branch_spec[2:]
    return prefix, branch_spec


def lightweight_read(server: GitServer, scm: GitScm, path: str, cache: Path) -> str:
    """The content of ``path`` at the SCM's branch spec, read the way a lightweight checkout reads it.

    Raises :class:`ScmFailure` with git's message when the fetch fails (the build fails: no fallback),
    and ``Unable to find <path> from git <url>`` when the file is missing.
    """
    if not lightweight_supported(scm):
        raise NotImplementedError(f"{scm.branch!r}: CpsScmFlowDefinition would fall back to a full checkout")
    prefix, head = head_name(scm.branch)
    with _cache_lock(cache):  # AbstractGitSCMSource.getCacheLock: one user of a cache directory at a time
        return _lightweight_read(server, scm, path, cache, prefix, head)


_CACHE_LOCKS: Dict[str, threading.Lock] = {}
_CACHE_LOCKS_GUARD = threading.Lock()


def _cache_lock(cache: Path) -> threading.Lock:
    with _CACHE_LOCKS_GUARD:
        return _CACHE_LOCKS.setdefault(str(cache), threading.Lock())


def _lightweight_read(server: GitServer, scm: GitScm, path: str, cache: Path, prefix: str, head: str) -> str:
    if not (cache / "HEAD").exists():
        cache.mkdir(parents=True, exist_ok=True)
        _git(server, "init", "--bare", "--quiet", str(cache))
    refspec = f"+{prefix}{head}:{R_REMOTES}{REMOTE}/{head}"
    fetch = ["fetch", "--tags", "--force", "--progress", "--prune", "--", scm.url, refspec]
    proc = _git(server, *fetch, cwd=cache)
    if proc.returncode != 0:
        raise ScmFailure(f"Command \"git {' '.join(fetch)}\" returned status code {proc.returncode}:\n"
                         f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}")
    shown = _git(server, "show", f"{R_REMOTES}{REMOTE}/{head}^{{commit}}:{path}", cwd=cache)
    if shown.returncode != 0:
        raise ScmFailure(f"Unable to find {path} from {scm.key}")
    return shown.stdout


# ------------------------------------------------------------------------------------------------
# Build data (hudson.plugins.git.util.BuildData) and the build history it is read from


@dataclass
class BuildData:
    """Cumulative per remote URL: the last build of each branch, and every sha built."""

    remote_url: str
    builds_by_branch: Dict[str, str] = field(default_factory=dict)  # branch name -> sha
    built: Dict[str, int] = field(default_factory=dict)  # sha -> build number (BuildData.buildsBySha1)

    def clone(self) -> "BuildData":
        return BuildData(self.remote_url, dict(self.builds_by_branch), dict(self.built))


class RunView:
    """What GitSCM asks of a build: its number, result, and build data (newest last)."""

    number: int
    result: Optional[str]  # None while it runs
    build_data: List[BuildData]


def _build_data_for(url: str, start: Optional[RunView], previous: Callable[[RunView], Optional[RunView]]) -> Optional[BuildData]:
    """``GitSCM.getBuildData(Run)``: walk back from ``start`` to the newest build data for ``url``."""
    run = start
    while run is not None:
        for data in reversed(run.build_data):
            if data.remote_url == url:
                return data
        run = previous(run)
    return None


@dataclass
class CheckoutResult:
    env: Dict[str, str]
    changeset: List[Dict[str, object]]
    build_data: BuildData
    branch_name: str
    sha: str


def checkout(server: GitServer, scm: GitScm, workspace: Path, run: RunView,
             previous: Callable[[RunView], Optional[RunView]],
             previous_built: Optional[RunView], previous_successful: Optional[RunView]) -> CheckoutResult:
    """``GitSCM.checkout`` + ``buildEnvironment`` into ``workspace`` for the build ``run``."""
    workspace.mkdir(parents=True, exist_ok=True)
    if not (workspace / ".git").exists():
        _must(server, workspace, "init", "--quiet", str(workspace))
    _must(server, workspace, "config", f"remote.{REMOTE}.url", scm.url)
    _must(server, workspace, "config", f"remote.{REMOTE}.fetch", f"+{R_HEADS}*:{R_REMOTES}{REMOTE}/*")
    _must(server, workspace, "fetch", "--tags", "--force", "--progress", "--", scm.url,
          f"+{R_HEADS}*:{R_REMOTES}{REMOTE}/*")
    # DefaultBuildChooser.getCandidateRevisions
    if scm.branch.startswith(R_HEADS):
        branch_name = f"{R_REMOTES}{REMOTE}/{scm.branch[len(R_HEADS):]}"
    elif scm.branch.startswith("*/"):
        branch_name = f"{R_REMOTES}{REMOTE}/{scm.branch[2:]}"
    elif "/" not in scm.branch:
        branch_name = f"{R_REMOTES}{REMOTE}/{scm.branch}"
    else:
        branch_name = scm.branch
    resolved = _git(server, "rev-parse", "--verify", "--quiet", f"{branch_name}^{{commit}}", cwd=workspace)
    if resolved.returncode != 0:
        raise ScmFailure("ERROR: Couldn't find any revision to build. Verify the repository and branch configuration"
                         " for this job.")
    sha = resolved.stdout.strip()
    _must(server, workspace, "checkout", "-f", sha)
    if scm.local_branch:
        _must(server, workspace, "checkout", "-B", scm.local_branch, sha)
    # Build data: a copy of the previous build's (any result), with this branch saved.
    prior = _build_data_for(scm.url, previous(run), previous)
    data = prior.clone() if prior is not None else BuildData(scm.url)
    previous_sha = prior.builds_by_branch.get(branch_name) if prior is not None else None
    data.builds_by_branch[branch_name] = sha
    data.built[sha] = run.number
    env = {"GIT_COMMIT": sha, "GIT_BRANCH": branch_name[len(R_REMOTES):] if branch_name.startswith(R_REMOTES) else branch_name,
           "GIT_URL": scm.url}
    if scm.local_branch:
        env["GIT_LOCAL_BRANCH"] = scm.local_branch
    for var, base in (("GIT_PREVIOUS_COMMIT", previous_built), ("GIT_PREVIOUS_SUCCESSFUL_COMMIT", previous_successful)):
        found = _build_data_for(scm.url, base, previous) if base is not None else None
        if found is not None and branch_name in found.builds_by_branch:
            env[var] = found.builds_by_branch[branch_name]
    return CheckoutResult(env, _changeset(server, workspace, previous_sha, sha), data, branch_name, sha)


def _changeset(server: GitServer, workspace: Path, since: Optional[str], sha: str) -> List[Dict[str, object]]:
    """The changelog GitSCM computes against the previous build of this branch (GitChangeSet entries)."""
    if not since or since == sha:
        return []
    proc = _git(server, "log", "--format=%H%x1f%an%x1f%s", "--name-only", f"{since}..{sha}", cwd=workspace)
    if proc.returncode != 0:
        return []
    entries: List[Dict[str, object]] = []
    for block in proc.stdout.strip().split("\n\n"):
        lines = [line for line in block.splitlines() if line]
        if not lines or "\x1f" not in lines[0]:
            if entries and lines:
                entries[-1]["affectedPaths"] = list(entries[-1]["affectedPaths"]) + lines  # type: ignore[arg-type]
            continue
        commit, author, msg = lines[0].split("\x1f", 2)
        entries.append({"commitId": commit, "author": author, "msg": msg, "affectedPaths": lines[1:]})
    return entries


def _must(server: GitServer, cwd: Path, *argv: str) -> str:
    proc = _git(server, *argv, cwd=cwd)
    if proc.returncode != 0:
        raise ScmFailure(f"Command \"git {' '.join(argv)}\" returned status code {proc.returncode}:\n"
                         f"stderr: {proc.stderr.strip()}")
    return proc.stdout


# ------------------------------------------------------------------------------------------------
# Polling (GitSCM.compareRemoteRevisionWithImpl, the single-branch path that needs no workspace)


def remote_heads(server: GitServer, url: str) -> Dict[str, str]:
    """``git ls-remote -h <url>``: branch heads only (tags are never seen by polling)."""
    proc = _git(server, "ls-remote", "-h", url)
    if proc.returncode != 0:
        return {}
    return {ref: sha for sha, ref in (line.split("\t") for line in proc.stdout.splitlines() if line)}


def branch_spec_matches(spec: str, head: str) -> bool:
    """``BranchSpec.matches`` for the shapes we use: refs/heads/x, */x, x (against refs/heads/<x>)."""
    if spec.startswith(R_HEADS):
        return head == spec
    if spec.startswith("*/"):
        return head == R_HEADS + spec[2:]
    if spec.startswith(R_TAGS):
        return False
    return head == R_HEADS + spec


def poll_changes(server: GitServer, scm: GitScm, data: Optional[BuildData], log: List[str]) -> bool:
    heads = remote_heads(server, scm.url)
    if not heads:
        log.append("[poll] Couldn't get remote head revision")
        return True
    for head, sha in sorted(heads.items()):
        if not branch_spec_matches(scm.branch, head):
            continue
        if data is not None and sha in data.built:
            log.append(f"[poll] Latest remote head revision on {head} is: {sha} - already built by {data.built[sha]}")
            continue
        log.append(f"[poll] Latest remote head revision on {head} is: {sha}")
        return True
    return False


def parse_scm(scm_arg: Dict[str, object]) -> GitScm:
    """The ``[$class: 'GitSCM', ...]`` map the ``checkout`` step receives (as enaduCheckout builds it)."""
    remotes: Sequence[Dict[str, object]] = scm_arg.get("userRemoteConfigs") or []  # type: ignore[assignment]
    branches: Sequence[Dict[str, object]] = scm_arg.get("branches") or []  # type: ignore[assignment]
    if len(remotes) != 1 or len(branches) != 1:
        raise ScmFailure(f"the e2e world supports one remote and one branch spec, got {scm_arg!r}")
    local = None
    for ext in scm_arg.get("extensions") or []:  # type: ignore[union-attr]
        if isinstance(ext, dict) and ext.get("$class") == "LocalBranch":
            local = str(ext.get("localBranch") or "")
    return GitScm(str(remotes[0]["url"]), str(branches[0]["name"]),
                  str(remotes[0].get("credentialsId")) if remotes[0].get("credentialsId") else None, local or None)
