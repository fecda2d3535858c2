#!/usr/bin/env python3
"""Render time for the three Enadu services and for a generated 500-service configuration, side by
side with Jenkins Job Builder's `jenkins-jobs test` on as many jobs, in one run (see _measure.py for
the method: whole processes, interleaved, after one warm-up, medians).

Each size is timed twice per tool: into a fresh output directory (removed before every run; ours is
seeded with the helper bundle, which render reuses, so every other file is created) and as a
steady-state re-render into the directory the previous run left (ours then compares and writes
nothing; JJB writes every file again, it has no such mode). Ours runs with the user's cache directory
as a developer has it after one render (the bundle's verification, the compiled templates and the
render itself remembered: see enadu_pipelines/usercache.py); one more series shows the first render
with an empty cache (the pinned wheels linked in, so nothing is downloaded), which verifies the 3 MB
bundle from its sources and wheels and renders from scratch.

JJB 6.5.0 is pip-installed into a virtual environment for this script only (as benchmarks/bootstrap.py
does; it is never a project dependency), with job YAML equivalent to our Jenkins jobs: a folder and N
pipeline jobs. Usage: benchmarks/render.py [--runs N] [--jjb-venv DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import Series, measure, table  # noqa: E402
from bootstrap import JJB_VERSION, ensure_jjb, jjb_yaml  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "resources" / "enadu" / "enadu-helper.pyz"
TARGETS = {3: 2.0, 500: 3.0}  # issue 15: render at least this many times faster than `jenkins-jobs test`


def big_config(path: Path, count: int) -> None:
    data = yaml.safe_load((REPO / "enadu.yaml").read_text())
    template = data["services"]["backend"]
    data["services"] = {}
    for i in range(count):
        service = dict(template, paths=[f"svc{i:03d}/**", "common/**"], image={"name": f"enadu/svc-{i:03d}"})
        data["services"][f"svc-{i:03d}"] = service
    path.write_text(yaml.safe_dump(data))


def seeded(out: Path, bundle: Path):
    """Setup for a fresh output directory: only the helper bundle in it."""
    def setup() -> None:
        shutil.rmtree(out, ignore_errors=True)
        (out / "resources" / "enadu").mkdir(parents=True)
        shutil.copyfile(bundle, out / "resources" / "enadu" / "enadu-helper.pyz")
    return setup


def emptied(out: Path):
    return lambda: shutil.rmtree(out, ignore_errors=True)


def cold_cache(cache: Path, out: Path, bundle: Path):
    """Setup for a first render: an empty user cache but for the pinned wheels (linked, not fetched)."""
    wheels = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "enadu-pipelines" / "wheels"
    seed = seeded(out, bundle)

    def setup() -> None:
        shutil.rmtree(cache, ignore_errors=True)
        (cache / "enadu-pipelines").mkdir(parents=True)
        (cache / "enadu-pipelines" / "wheels").symlink_to(wheels)
        seed()
    return setup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--jjb-venv", type=Path, default=None, help="reuse (or create) JJB's virtualenv here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="enadu-bench-"))
    try:
        jjb = str(ensure_jjb(args.jjb_venv or work / "jjb-venv"))
        jjb_env = dict(os.environ, XDG_CACHE_HOME=str(work / "jjb-cache"), HOME=str(work))
        configs = {3: REPO / "enadu.yaml", 500: work / "big.yaml"}
        big_config(configs[500], 500)
        exe = shutil.which("enadu-pipelines", path=str(Path(sys.executable).parent)) or "enadu-pipelines"
        # The reference rendering: the committed bundle, rebuilt first if the working tree's helper sources
        # moved on (so no timed run rebuilds it); the --check series checks this directory.
        reference = work / "reference"
        seeded(reference, BUNDLE)()
        subprocess.run([exe, "render", "-q", "--config", str(configs[3]), "--out", str(reference)], check=True,
                       stdout=subprocess.DEVNULL)
        bundle = reference / "resources" / "enadu" / "enadu-helper.pyz"

        baseline = Series("python3 -c pass", [sys.executable, "-c", "pass"])
        series = [baseline]
        pairs: dict[tuple[int, str], tuple[Series, Series]] = {}
        for n, config in configs.items():
            jobs = work / f"jobs{n}.yaml"
            jobs.write_text(jjb_yaml(n), "utf-8")
            ours_argv = [exe, "render", "-q", "--config", str(config)]
            jjb_argv = [jjb, "test", str(jobs), "--config-xml"]
            for mode in ("fresh", "steady"):
                ours_out, jjb_out = work / f"ours-{n}-{mode}", work / f"jjb-{n}-{mode}"
                ours = Series(f"render: {n} services, {mode}", ours_argv + ["--out", str(ours_out)],
                              setup=seeded(ours_out, bundle) if mode == "fresh" else None)
                theirs = Series(f"jenkins-jobs test: {n} jobs, {mode}", jjb_argv + ["-o", str(jjb_out)],
                                env=jjb_env, setup=emptied(jjb_out) if mode == "fresh" else None)
                if mode == "steady":
                    seeded(ours_out, bundle)()  # the warm-up run renders the rest
                pairs[(n, mode)] = (ours, theirs)
                series += [ours, theirs]
        cold_out, cold_home = work / "ours-3-cold", work / "cold-cache"
        cold = Series("render: 3 services, fresh, empty cache",
                      [exe, "render", "-q", "--config", str(configs[3]), "--out", str(cold_out)],
                      env=dict(os.environ, XDG_CACHE_HOME=str(cold_home)), setup=cold_cache(cold_home, cold_out, bundle))
        check = Series("render --check: 3 services",
                       [exe, "render", "--check", "-q", "--config", str(configs[3]), "--out", str(reference)])
        series += [cold, check]
        measure(series, runs=args.runs)

        print(f"# {platform.python_implementation()} {platform.python_version()}, jenkins-job-builder {JJB_VERSION}, "
              f"{args.runs} runs each, interleaved, after one warm-up")
        print(table(series, baseline))
        print()
        print(f"{'jenkins-jobs test / render (medians)':<40} {'wall':>6} {'cpu':>6} {'target':>7}")
        for (n, mode), (ours, theirs) in pairs.items():
            wall = statistics.median(theirs.walls) / statistics.median(ours.walls)
            cpu = statistics.median(theirs.cpus) / statistics.median(ours.cpus)
            verdict = "ok" if wall >= TARGETS[n] else "MISSED"
            print(f"{f'{n} services, {mode} output directory':<40} {wall:5.2f}x {cpu:5.2f}x {TARGETS[n]:5.1f}x  {verdict}")
        print("# cpu: user + system time of the process; less sensitive than wall time to other load on the machine")
        for n in configs:
            ours_files = sum(1 for p in (work / f"ours-{n}-fresh").rglob("*") if p.is_file())
            jjb_files = sum(1 for p in (work / f"jjb-{n}-fresh").rglob("*") if p.is_file())
            print(f"# {n} services: render writes {ours_files} files, jenkins-jobs test {jjb_files}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
