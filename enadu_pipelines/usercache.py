"""The user's cache directory: where render keeps what it can do without next time.

Everything here only saves time: each entry is keyed by the content it stands for, and a missing,
unreadable, unwritable or garbled cache means doing the work again, never an error or a different
result. ``$XDG_CACHE_HOME/enadu-pipelines`` (else ``~/.cache/enadu-pipelines``) holds:

- ``wheels/``: the helper's hash-pinned wheels (:mod:`enadu_pipelines.bundle`);
- ``verified/``: helper bundles already verified against their inputs (:mod:`enadu_pipelines.bundle`);
- ``templates/``: Jinja2's compiled templates (:class:`enadu_pipelines.render.TemplateCache`);
- ``renders/``: whole renders, remembered by the digest of everything they are made from
  (:mod:`enadu_pipelines.memo`).

Deleting the directory is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "enadu-pipelines"
