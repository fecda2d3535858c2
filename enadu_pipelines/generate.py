"""``render`` from end to end: load the config, get the helper bundle, render, sync to disk.

The bundle is the one generated file that is expensive to rebuild (pip fetches pinned wheels), so
render reuses the existing bundle while its recorded fingerprint matches its inputs *and* every entry
matches its source or hash-pinned wheel (:func:`bundle.verify`), and rebuilds it otherwise (or when
asked). ``--check`` writes nothing: a bundle whose inputs changed is reported stale without knowing
its new bytes; one whose fingerprint matches but whose entries do not is compared with a build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import bundle, config, render, writer


@dataclass
class Result:
    changes: list[writer.Change]
    notes: list[str] = field(default_factory=list)



def generate(config_path: Path, out: Path, *, write: bool, diff: bool = False, rebuild_bundle: bool = False,
             force: bool = False) -> Result:
    project = config.load(config_path)
    notes: list[str] = []
    current = writer.read(out / render.HELPER_RESOURCE)
    fresh = current is not None and bundle.bundled_fingerprint(current) == bundle.fingerprint()
    bundle_stale = False
    problem = bundle.verify(current) if fresh and not rebuild_bundle else None
    if fresh and not rebuild_bundle and problem is None:
        helper = current
    elif problem is not None:
        # The recorded fingerprint matches, yet an entry or byte differs: never trust the archive;
        # render writes (and --check compares against) a build from the sources and pinned wheels.
        hint = "rebuilding it" if write else "run `enadu-pipelines render`"
        notes.append(f"{render.HELPER_RESOURCE}: {problem} ({hint})")
        helper = bundle.expected()
    elif write:
        notes.append("rebuilding the helper bundle" + ("" if rebuild_bundle else " (its inputs changed)"))
        helper = bundle.build()
    else:
        helper = current if current is not None else b""
        bundle_stale = True
        notes.append("the helper bundle is missing or older than its inputs (helper sources, helper.lock, version)")
    files = render.render_files(project, helper)
    changes = writer.sync(files, out, write=write, diff=diff, force=force)
    if bundle_stale:
        status = writer.Status.CREATED if current is None else writer.Status.UPDATED
        changes = [writer.Change(c.path, status) if c.path == render.HELPER_RESOURCE else c for c in changes]
    return Result(changes, notes)
