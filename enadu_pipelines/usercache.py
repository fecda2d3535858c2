"""The user's cache directory: where render keeps what it can do without next time.

Everything here only saves time: each entry is keyed by the content it stands for, and a missing,
unreadable, unwritable or garbled cache means doing the work again, never an error or a different
result. ``$XDG_CACHE_HOME/enadu-pipelines`` (else ``~/.cache/enadu-pipelines``) holds:

- ``wheels/``: the helper's hash-pinned wheels (:mod:`enadu_pipelines.bundle`);
- ``verified/``: helper bundles already verified against their inputs (:mod:`enadu_pipelines.bundle`);
- ``templates/``: Jinja2's compiled templates (:class:`enadu_pipelines.render.TemplateCache`);
- ``renders/``: whole renders, remembered by the digest of everything they are made from
  (:mod:`enadu_pipelines.memo`).

Deleting the directory is always safe. ``render --no-cache`` (or ``ENADU_NO_CACHE=1``) reads and
writes none of the remembered verdicts, templates and renders: for a gate that must not trust a cache
that someone else can write (the wheel cache stays: its files are checked against hash pins).
"""

from __future__ import annotations

import os
from pathlib import Path


_disabled = False


def disable() -> None:
    """Use no remembered result in this process (``render --no-cache``)."""
    global _disabled
    _disabled = True


def enabled() -> bool:
    """Whether remembered verdicts, templates and renders may be used (not ``--no-cache`` nor
    ``ENADU_NO_CACHE`` set to anything but empty or 0)."""
    return not _disabled and os.environ.get("ENADU_NO_CACHE", "") in ("", "0")


def private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) readable by the user only; raises OSError."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "enadu-pipelines"
