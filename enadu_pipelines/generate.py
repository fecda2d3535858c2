"""``render`` from end to end: load the config, get the helper bundle, render, sync to disk.

The bundle is the one generated file that is expensive to rebuild (pip fetches pinned wheels), so
render reuses the existing bundle while its recorded fingerprint matches its inputs, and rebuilds
it only when they changed (or when asked). ``--check`` never builds: a bundle whose inputs changed
is reported stale without knowing its new bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import bundle, config, render, writer


@dataclass
class Result:
    changes: list[writer.Change]
    notes: list[str] = field(default_factory=list)



def generate(config_path: Path, out: Path, *, write: bool, diff: bool = False, rebuild_bundle: bool = False) -> Result:
    project = config.load(config_path)
    notes: list[str] = []
    current = writer.read(out / render.HELPER_RESOURCE)
    fresh = current is not None and bundle.bundled_fingerprint(current) == bundle.fingerprint()
    bundle_stale = False
    if fresh and not rebuild_bundle:
        helper = current
    elif write:
        notes.append("rebuilding the helper bundle" + ("" if rebuild_bundle else " (its inputs changed)"))
        helper = bundle.build()
    else:
        helper = current if current is not None else b""
        bundle_stale = True
        notes.append("the helper bundle is missing or older than its inputs (helper sources, helper.lock, version)")
    files = render.render_files(project, helper)
    changes = writer.sync(files, out, write=write, diff=diff)
    if bundle_stale:
        status = writer.Status.CREATED if current is None else writer.Status.UPDATED
        changes = [writer.Change(c.path, status) if c.path == render.HELPER_RESOURCE else c for c in changes]
    return Result(changes, notes)
