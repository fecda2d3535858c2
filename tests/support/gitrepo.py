"""A real git repository in tmp_path for change-detection tests (tests/test_changes.py,
tests/test_changes_live.py): every commit is made with the git command line, no global config."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, Optional

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self.git("init", "-q", "-b", "main")

    def git(self, *argv: str) -> str:
        env = dict(os.environ, **GIT_ENV)
        proc = subprocess.run(["git", "-C", str(self.path), "-c", "commit.gpgsign=false", *argv], env=env,
                              capture_output=True, text=True, check=True, timeout=60)
        return proc.stdout.strip()

    def commit(self, files: Dict[str, Optional[str]], message: str = "change") -> str:
        """Write (or, with None, delete) files and commit them; returns the new sha."""
        for name, text in files.items():
            target = self.path / name
            if text is None:
                self.git("rm", "-q", name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                self.git("add", name)
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")
