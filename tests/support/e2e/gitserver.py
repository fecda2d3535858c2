"""The GitHub side of the end-to-end world: bare repositories on disk behind their github.com URLs.

Every repository lives as a bare repository under ``<root>/github/<owner>/<name>.git``. A git
configuration file (``GIT_CONFIG_GLOBAL``) rewrites ``https://github.com/`` to that directory with
``url.<base>.insteadOf`` (git-config(1)), so the rendered files keep the URLs a team really uses
(``https://github.com/enadu/enadu.git``) and every git command, ours or the pipelines', reaches the
local repository. A push is a real ``git push`` from a working clone; the world then delivers the
webhook a GitHub push sends (``repository.html_url``, ``ref``, ``before``, ``after``), which is what
the GitHub plugin's ``DefaultPushGHEventSubscriber`` reads.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

GITHUB = "https://github.com/"


class GitFailed(RuntimeError):
    """A git command failed; the message carries git's stderr."""


@dataclass(frozen=True)
class PushEvent:
    """The parts of a GitHub ``push`` webhook payload the GitHub plugin uses."""

    html_url: str  # repository.html_url, e.g. https://github.com/enadu/enadu
    ref: str  # refs/heads/be-dev or refs/tags/v0.2.0
    before: str
    after: str
    pusher: str = "enadu-dev"


class GitServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.repos = root / "github"
        self.repos.mkdir(parents=True, exist_ok=True)
        self.gitconfig = root / "gitconfig"
        self.gitconfig.write_text(
            "[user]\n\tname = Enadu Dev\n\temail = dev@enadu.example\n"
            f"[url \"file://{self.repos}/\"]\n\tinsteadOf = {GITHUB}\n"
            "[init]\n\tdefaultBranch = main\n"
            "[advice]\n\tdetachedHead = false\n"
            "[protocol \"file\"]\n\tallow = always\n",
            encoding="utf-8",
        )

    def env(self, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """An environment in which git sees this world's configuration and nothing of the machine's."""
        env = dict(base if base is not None else os.environ)
        env.update(GIT_CONFIG_GLOBAL=str(self.gitconfig), GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
        return env

    def git(self, *argv: str, cwd: Optional[Path] = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["git", *argv], cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise GitFailed(f"git {' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def url(self, owner_name: str) -> str:
        return f"{GITHUB}{owner_name}.git"

    def create(self, owner_name: str) -> Path:
        bare = self.repos / f"{owner_name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        self.git("init", "--bare", "--quiet", str(bare))
        return bare

    def clone(self, owner_name: str, dest: Path) -> "WorkingCopy":
        self.git("clone", "--quiet", self.url(owner_name), str(dest))
        return WorkingCopy(self, owner_name, dest)

    def heads(self, owner_name: str) -> Dict[str, str]:
        out = self.git("ls-remote", "--heads", "--tags", self.url(owner_name)).stdout
        return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines() if line)}


class WorkingCopy:
    """A developer's clone: write files, commit, push (each push returns the webhook event)."""

    def __init__(self, server: GitServer, owner_name: str, path: Path) -> None:
        self.server, self.owner_name, self.path = server, owner_name, path

    def git(self, *argv: str) -> str:
        return self.server.git(*argv, cwd=self.path).stdout.strip()

    def write(self, files: Dict[str, Optional[str]]) -> None:
        for rel, text in files.items():
            target = self.path / rel
            if text is None:
                self.git("rm", "-q", "-r", "--", rel)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            if rel.endswith((".sh", "gradlew")):
                target.chmod(0o755)

    def commit(self, files: Dict[str, Optional[str]], message: str) -> str:
        self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def push(self, branch: str) -> PushEvent:
        before = self.server.heads(self.owner_name).get(f"refs/heads/{branch}", "0" * 40)
        self.git("push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        after = self.git("rev-parse", "HEAD")
        return PushEvent(f"{GITHUB}{self.owner_name}", f"refs/heads/{branch}", before, after)

    def tag(self, name: str) -> PushEvent:
        self.git("tag", "-a", "-m", f"release {name}", name)
        self.git("push", "-q", "origin", f"refs/tags/{name}")
        return PushEvent(f"{GITHUB}{self.owner_name}", f"refs/tags/{name}", "0" * 40, self.git("rev-parse", "HEAD"))
