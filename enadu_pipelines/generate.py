"""``render`` from end to end: load the config, get the helper bundle, render, sync to disk.

The bundle is the one generated file that is expensive to rebuild (pip fetches pinned wheels), so
render reuses the existing bundle while its recorded fingerprint matches its inputs *and* every entry
matches its source or hash-pinned wheel (:func:`bundle.verify`, whose successes are remembered in the
user's cache keyed by the archive's and the inputs' digests), and rebuilds it otherwise (or when
asked). ``--check`` writes nothing: a bundle whose inputs changed is reported stale without knowing
its new bytes; one whose fingerprint matches but whose entries do not is compared with a build.
With such a bundle, a render of the same configuration by the same code is recalled from the user's
cache (:mod:`memo`) instead of being redone, and compared with the disk the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import bundle, memo, writer
from .errors import OutputError


@dataclass
class Result:
    changes: list[writer.Change]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the configuration's (config.Project.warnings)



def generate(config_path: Path, out: Path, *, write: bool, diff: bool = False, rebuild_bundle: bool = False,
             force: bool = False) -> Result:
    memo_key = None
    if not rebuild_bundle:
        try:
            current = writer.read(out / writer.HELPER_RESOURCE)
        except OutputError:
            current = None  # reported below, after the configuration's own problems
        if current is not None and bundle.remembered(current):
            # The usual re-render: a bundle verified before (these very bytes against these very inputs)
            # and, often, a render of the same configuration by the same code (memo's key says so).
            memo_key = memo.key(config_path, current)
            recalled = memo.recall(memo_key)
            if recalled is not None:
                files, warnings = recalled
                changes = writer.sync({**files, writer.HELPER_RESOURCE: current}, out, write=write, diff=diff,
                                      force=force)
                return Result(changes, [], warnings)
    from . import config, render  # pydantic, PyYAML, Jinja2: most of a small render's time

    project = config.load(config_path)
    notes: list[str] = []
    current = writer.read(out / render.HELPER_RESOURCE)
    bundle_stale = False
    if current is not None and not rebuild_bundle and bundle.remembered(current):
        # Verified before, these very bytes against these very inputs (the usual re-render).
        fresh, problem = True, None
    else:
        fresh = current is not None and bundle.bundled_fingerprint(current) == bundle.fingerprint()
        problem = bundle.verify(current) if fresh and not rebuild_bundle else None
    verified = fresh and not rebuild_bundle and problem is None
    if verified:
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
    if verified:
        memo.remember(memo_key or memo.key(config_path, helper),
                      {k: v for k, v in files.items() if k != render.HELPER_RESOURCE}, list(project.warnings))
    changes = writer.sync(files, out, write=write, diff=diff, force=force)
    if bundle_stale:
        status = writer.Status.CREATED if current is None else writer.Status.UPDATED
        changes = [writer.Change(c.path, status) if c.path == render.HELPER_RESOURCE else c for c in changes]
    return Result(changes, notes, list(project.warnings))
