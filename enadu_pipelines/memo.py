"""Whole renders remembered by the digest of everything they are made from.

Rendering is a pure function: the same configuration file, the same package (its Python sources,
data files and templates), the same verified helper bundle and the same libraries give the same
bytes. Importing pydantic, Jinja2 and PyYAML and validating the configuration is most of a small
render, so a render remembers its files (all but the bundle, which is on disk already) and the
configuration's warnings under a key that is the sha256 of all of those inputs; the next render with
the same key compares the remembered files with the disk and imports none of them.

The key covers: the configuration file's bytes and the path it was given as; every file of the
``enadu_pipelines`` package and of the templates directory beside it (contents, not timestamps); the
bundle's sha256 (render writes it into ``vars/enaduHelper.groovy``; the memo is used only for a
bundle :func:`bundle.remembered` as verified); the Python build and the installed versions of the
libraries that shape the output. Render reads nothing else (no environment variables, no other
files). Anything else about the cache (a garbled entry, a missing or unwritable directory) means
rendering the usual way. Kept in ``$XDG_CACHE_HOME/enadu-pipelines/renders`` (see :mod:`usercache`),
the newest :data:`KEEP` entries.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import marshal
import os
import sys
import tempfile
from pathlib import Path

from . import usercache

FORMAT = 1  # bump when what is stored changes
KEEP = 8
# The distributions whose code runs while rendering and can change its bytes (validation defaults,
# template semantics, YAML parsing, JSON encoding).
LIBRARIES = ("jinja2", "markupsafe", "pydantic", "pydantic-core", "pyyaml", "orjson")


def package_root() -> Path:
    return Path(__file__).resolve().parent


def key(config_path: Path, helper: bytes) -> str | None:
    """The digest of everything a render of ``config_path`` with the bundle ``helper`` is made of, or
    None when one of them cannot be read (then there is nothing to remember or recall)."""
    digest = hashlib.sha256(f"enadu-pipelines render memo {FORMAT}\n{sys.version}\n".encode())
    try:
        for name in LIBRARIES:
            digest.update(f"{name}=={importlib.metadata.version(name)}\n".encode())
        digest.update(f"config {config_path}\n".encode() + hashlib.sha256(config_path.read_bytes()).digest())
        root = package_root()
        # The templates are inside an installed wheel's package, else beside it in a source checkout
        # (render.templates_dir()'s order).
        bases = [root] if (root / "templates").is_dir() else [root, root.parent / "templates"]
        for base in bases:
            for path in _files(base):
                digest.update(f"\n{path.relative_to(root.parent).as_posix()}\0".encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    except (OSError, importlib.metadata.PackageNotFoundError):
        return None
    digest.update(b"\nbundle " + hashlib.sha256(helper).digest())
    return digest.hexdigest()


def _files(directory: Path) -> list[Path]:
    """Every file under ``directory``, sorted, without ``__pycache__`` (compiled copies of the sources).

    Symbolic links to directories are followed (Jinja2 reads templates through them), each real
    directory once, so a link cycle ends."""
    found = []
    seen = set()
    for parent, dirs, names in os.walk(directory, followlinks=True):
        real = os.path.realpath(parent)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        found.extend(Path(parent, name) for name in sorted(names))
    return found


def recall(memo_key: str | None) -> tuple[dict[str, bytes], list[str]] | None:
    """The files and warnings remembered under ``memo_key``, or None."""
    if memo_key is None or not usercache.enabled():
        return None
    try:
        stored = marshal.loads((usercache.root() / "renders" / memo_key).read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not (isinstance(stored, tuple) and len(stored) == 3 and stored[0] == memo_key):
        return None
    _, files, warnings = stored
    if not (isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, bytes) for k, v in files.items())
            and isinstance(warnings, list) and all(isinstance(w, str) for w in warnings)):
        return None
    return files, warnings


def remember(memo_key: str | None, files: dict[str, bytes], warnings: list[str]) -> None:
    """Store a render (atomically; a cache that cannot be written is no error) and keep the newest :data:`KEEP`."""
    if memo_key is None or not usercache.enabled():
        return
    directory = usercache.root() / "renders"
    try:
        usercache.private_dir(directory)
        fd, tmp = tempfile.mkstemp(prefix=".render.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(marshal.dumps((memo_key, dict(files), list(warnings))))
            os.replace(tmp, directory / memo_key)
        except BaseException:
            os.unlink(tmp)
            raise
        entries = sorted((e for e in os.scandir(directory) if not e.name.startswith(".")),
                         key=lambda e: e.stat().st_mtime_ns, reverse=True)
        for entry in entries[KEEP:]:
            os.unlink(entry.path)
    except OSError:
        pass
