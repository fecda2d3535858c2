#!/usr/bin/env python3
"""Benchmark: HTTP requests and writes of `enadu-pipelines bootstrap` vs Jenkins Job Builder 6.5.0.

Both tools run against the same fake Jenkins (tests/support/fakejenkins), which logs every request,
for N = 20 and N = 200 pipeline jobs in one folder and four scenarios: the first run, a re-run with
nothing to do, a run after one job's configuration changed, and a run after someone edited one job
in the Jenkins UI. JJB is measured with its default local cache and with --ignore-cache; its cache
is what lets it skip jobs without asking Jenkins, and also why it cannot see the UI edit.
It also times generating the N job configs: ours (load enadu.yaml, render N config.xml files)
against `jenkins-jobs test`, each in a fresh interpreter, median of 3.

JJB is installed with pip into a temporary virtual environment for this script only; it is never
a project dependency. Usage:

    .venv/bin/python benchmarks/bootstrap.py [--sizes 20,200] [--jjb-venv DIR] [--no-jjb]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from enadu_pipelines import config  # noqa: E402
from enadu_pipelines.helper import retry  # noqa: E402
from enadu_pipelines.jenkins import bootstrap, jobs  # noqa: E402
from support.fakejenkins import FakeJenkins, User, projects  # noqa: E402

JJB_VERSION = "6.5.0"
TOKEN = "bench-token"
SCENARIOS = ("first run", "no-op re-run", "one job changed", "edited behind our back")
EDITED_SCRIPT = "someone/else/Jenkinsfile"


@dataclass
class Measure:
    requests: int
    writes: int
    edit_reverted: bool | None = None  # only for the behind-our-back scenario


def _users() -> dict[str, User]:
    return {"admin": User("admin-password", (TOKEN,))}


def _edit(fake: FakeJenkins, name: str) -> None:
    fake.edit(name, lambda root: setattr(root.find("definition/scriptPath"), "text", EDITED_SCRIPT))


def _reverted(fake: FakeJenkins, name: str) -> bool:
    return ET.fromstring(fake.config(name)).findtext("definition/scriptPath") != EDITED_SCRIPT


def _take(fake: FakeJenkins) -> tuple[int, int]:
    counts = len(fake.log), len(fake.writes())
    fake.clear_log()
    return counts


# --------------------------------------------------------------------------------------------
# Ours


def measure_ours(n: int, workdir: Path) -> dict[str, Measure]:
    """Run bootstrap for the four scenarios; requests and writes as the fake Jenkins logged them."""
    path = projects.write(workdir, projects.enadu_yaml(n))
    policy = retry.Policy(backoffs=(0.1, 0.2), deadline=5.0)
    out: dict[str, Measure] = {}
    with FakeJenkins(_users()) as fake:
        def once(cfg: Path) -> None:
            # Like for like with JJB, which queues no builds: --no-first-build (the registration
            # builds cost one request per new job on top).
            report = bootstrap.run(config.load(cfg), url=fake.url, user="admin", token=TOKEN, policy=policy,
                                   first_builds=False)
            if not report.converged:
                raise SystemExit(f"bootstrap did not converge: {report.failed[0].error}")

        once(path)
        out["first run"] = Measure(*_take(fake))
        once(path)
        out["no-op re-run"] = Measure(*_take(fake))
        changed = projects.write(workdir, projects.enadu_yaml(n).replace('"Service svc-001"', '"Service svc-001 v2"'))
        once(changed)
        out["one job changed"] = Measure(*_take(fake))
        _edit(fake, "enadu/svc-002")
        fake.clear_log()
        once(changed)
        requests, writes = _take(fake)
        out["edited behind our back"] = Measure(requests, writes, _reverted(fake, "enadu/svc-002"))
    return out


# --------------------------------------------------------------------------------------------
# Jenkins Job Builder


def jjb_yaml(n: int, *, changed: bool = False) -> str:
    """Job YAML equivalent to our jobs: a folder and, per service, its pipeline-scm job and its
    parameterised operations job (``<service>-ops``), with the same settings."""
    parts = ["- job:\n    name: enadu\n    project-type: folder\n    description: 'Enadu pipelines'\n"]
    for i in range(1, n + 1):
        name = f"svc-{i:03d}"
        description = f"Service {name}" + (" v2" if changed and i == 1 else "")
        parts.append(f"""- job:
    name: 'enadu/{name}'
    project-type: pipeline
    description: '{description}'
    disabled: false
    concurrent: false
    properties:
      - build-discarder:
          num-to-keep: 30
    triggers:
      - github
    pipeline-scm:
      scm:
        - git:
            url: https://github.com/enadu/enadu-pipelines.git
            branches: ['v0.1.0']
            wipe-workspace: false
      script-path: 'pipelines/{name}/Jenkinsfile'
      lightweight-checkout: true
- job:
    name: 'enadu/{name}-ops'
    project-type: pipeline
    description: 'Operations for {name}'
    disabled: false
    concurrent: false
    properties:
      - build-discarder:
          num-to-keep: 30
    parameters:
      - choice:
          name: ACTION
          choices: [status, rollback, abort, promote]
      - string:
          name: REASON
    pipeline-scm:
      scm:
        - git:
            url: https://github.com/enadu/enadu-pipelines.git
            branches: ['v0.1.0']
            wipe-workspace: false
      script-path: 'pipelines/{name}/Jenkinsfile.ops'
      lightweight-checkout: true
""")
    return "".join(parts)


def ensure_jjb(venv: Path) -> Path:
    binary = venv / "bin" / "jenkins-jobs"
    if binary.exists():
        return binary
    print(f"installing jenkins-job-builder=={JJB_VERSION} into {venv} (benchmark only) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    f"jenkins-job-builder=={JJB_VERSION}"], check=True)
    return binary


def _jjb(binary: Path, workdir: Path, url: str, *args: str) -> None:
    ini = workdir / "jjb.ini"
    ini.write_text(f"[jenkins]\nurl={url}\nuser=admin\npassword={TOKEN}\n", "utf-8")
    env = dict(os.environ, XDG_CACHE_HOME=str(workdir / "cache"), HOME=str(workdir))
    result = subprocess.run([str(binary), "--conf", str(ini), *args], cwd=workdir, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"jenkins-jobs {' '.join(args)} failed:\n{result.stderr[-2000:]}")


def measure_jjb(n: int, workdir: Path, binary: Path, *, ignore_cache: bool) -> dict[str, Measure]:
    flags = ["--ignore-cache"] if ignore_cache else []
    plain = workdir / "jobs.yaml"
    plain.write_text(jjb_yaml(n), "utf-8")
    changed = workdir / "jobs-changed.yaml"
    changed.write_text(jjb_yaml(n, changed=True), "utf-8")
    shutil.rmtree(workdir / "cache", ignore_errors=True)
    out: dict[str, Measure] = {}
    with FakeJenkins(_users()) as fake:
        _jjb(binary, workdir, fake.url, *flags, "update", str(plain))
        out["first run"] = Measure(*_take(fake))
        _jjb(binary, workdir, fake.url, *flags, "update", str(plain))
        out["no-op re-run"] = Measure(*_take(fake))
        _jjb(binary, workdir, fake.url, *flags, "update", str(changed))
        out["one job changed"] = Measure(*_take(fake))
        _edit(fake, "enadu/svc-002")
        _jjb(binary, workdir, fake.url, *flags, "update", str(changed))
        requests, writes = _take(fake)
        out["edited behind our back"] = Measure(requests, writes, _reverted(fake, "enadu/svc-002"))
    return out


# --------------------------------------------------------------------------------------------
# Generation time

OURS_GENERATE = """
import sys
from pathlib import Path
from enadu_pipelines import config
from enadu_pipelines.jenkins import jobs
project = config.load(sys.argv[1])
out = Path(sys.argv[2])
for service in project.services:
    (out / service.name).mkdir(parents=True, exist_ok=True)
    (out / service.name / "config.xml").write_bytes(jobs.render_job(project, service))
"""


def _median_seconds(argv: list[str], env: dict[str, str] | None = None, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_generation(n: int, workdir: Path, binary: Path | None) -> tuple[float, float | None]:
    cfg = projects.write(workdir, projects.enadu_yaml(n))
    ours = _median_seconds([sys.executable, "-c", OURS_GENERATE, str(cfg), str(workdir / "ours-out")])
    theirs = None
    if binary is not None:
        jobs_yaml = workdir / "jobs.yaml"
        jobs_yaml.write_text(jjb_yaml(n), "utf-8")
        env = dict(os.environ, XDG_CACHE_HOME=str(workdir / "cache"), HOME=str(workdir))
        theirs = _median_seconds([str(binary), "test", str(jobs_yaml), "-o", str(workdir / "jjb-out"), "--config-xml"],
                                 env=env)
    return ours, theirs


# --------------------------------------------------------------------------------------------
# Report


def _cell(m: Measure | None) -> str:
    if m is None:
        return "-"
    text = f"{m.requests} req / {m.writes} wr"
    if m.edit_reverted is not None:
        text += ", reverted" if m.edit_reverted else ", NOT detected"
    return text


def table(n: int, ours: dict[str, Measure], jjb: dict[str, Measure] | None, jjb_nc: dict[str, Measure] | None) -> str:
    head = ["scenario", "ours", "JJB (default cache)", "JJB --ignore-cache", "requests JJB/ours"]
    rows = [head]
    for s in SCENARIOS:
        ratio = "-"
        if jjb is not None:
            ratio = f"{jjb[s].requests / ours[s].requests:.2f} / {jjb_nc[s].requests / ours[s].requests:.2f}"
        rows.append([s, _cell(ours[s]), _cell(jjb and jjb[s]), _cell(jjb_nc and jjb_nc[s]), ratio])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"N = {n} jobs (targets: first run <= {2 * n + 3} requests; no-op re-run <= {n + 2} requests, 0 writes)"]
    for i, row in enumerate(rows):
        lines.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,200", help="comma-separated job counts")
    parser.add_argument("--jjb-venv", type=Path, default=None, help="reuse (or create) JJB's virtualenv here")
    parser.add_argument("--no-jjb", action="store_true", help="measure ours only")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="enadu-bench-"))
    try:
        binary = None
        if not args.no_jjb:
            binary = ensure_jjb(args.jjb_venv or scratch / "jjb-venv")
        for n in sizes:
            work = scratch / f"n{n}"
            for sub in ("ours", "jjb", "jjb-nc", "gen"):
                (work / sub).mkdir(parents=True)
            ours = measure_ours(n, work / "ours")
            jjb = measure_jjb(n, work / "jjb", binary, ignore_cache=False) if binary else None
            jjb_nc = measure_jjb(n, work / "jjb-nc", binary, ignore_cache=True) if binary else None
            print(table(n, ours, jjb, jjb_nc))
            ours_s, jjb_s = time_generation(n, work / "gen", binary)
            line = f"generating {n} job configs: ours {ours_s:.2f} s"
            if jjb_s is not None:
                line += f", jenkins-jobs test {jjb_s:.2f} s (JJB/ours {jjb_s / ours_s:.2f}x)"
            print(line + " (wall time, fresh interpreter each, median of 3)\n")
        print(f"marker that bootstrap puts in each job's description: {jobs.MARKER!r}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
