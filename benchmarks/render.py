#!/usr/bin/env python3
"""Render time for the three Enadu services and for a generated 500-service configuration,
side by side with `python3 -c pass`, in one run (see _measure.py for the method).

Each render writes into a fresh output directory (seeded with the committed helper bundle, which
render reuses), so every run creates all files. Usage: benchmarks/render.py [--runs N]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import Series, measure, table  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "resources" / "enadu" / "enadu-helper.pyz"


def big_config(path: Path, count: int) -> None:
    data = yaml.safe_load((REPO / "enadu.yaml").read_text())
    template = data["services"]["backend"]
    data["services"] = {}
    for i in range(count):
        service = dict(template, paths=[f"svc{i:03d}/**", "common/**"], image={"name": f"enadu/svc-{i:03d}"})
        data["services"][f"svc-{i:03d}"] = service
    path.write_text(yaml.safe_dump(data))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="enadu-bench-"))
    try:
        big = work / "big.yaml"
        big_config(big, 500)
        exe = shutil.which("enadu-pipelines", path=str(Path(sys.executable).parent)) or "enadu-pipelines"

        def fresh(out: Path):
            def setup() -> None:
                shutil.rmtree(out, ignore_errors=True)
                (out / "resources" / "enadu").mkdir(parents=True)
                shutil.copyfile(BUNDLE, out / "resources" / "enadu" / "enadu-helper.pyz")
            return setup

        baseline = Series("python3 -c pass", [sys.executable, "-c", "pass"])
        small = Series("render: 3 services (enadu.yaml)",
                       [exe, "render", "-q", "--config", str(REPO / "enadu.yaml"), "--out", str(work / "o3")],
                       setup=fresh(work / "o3"))
        large = Series("render: 500 services (generated)",
                       [exe, "render", "-q", "--config", str(big), "--out", str(work / "o500")],
                       setup=fresh(work / "o500"))
        check = Series("render --check: 3 services (repository)",
                       [exe, "render", "--check", "-q", "--config", str(REPO / "enadu.yaml")])
        series = [baseline, small, large, check]
        measure(series, runs=args.runs)
        print(f"# {platform.python_implementation()} {platform.python_version()}, {args.runs} runs each, "
              f"interleaved, after one warm-up")
        print(table(series, baseline))
        files = sum(1 for p in (work / "o500").rglob("*") if p.is_file())
        print(f"# 500-service render wrote {files} files")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
