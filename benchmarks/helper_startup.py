#!/usr/bin/env python3
"""Start-up cost of the bundled helper, side by side with `python3 -c pass`, in one run.

Runs the committed resources/enadu/enadu-helper.pyz exactly as a Jenkins agent does (`python3 -I`,
no site-packages needed): `--version`, `notify --dry-run` (must not import kubernetes) and
`deploy --help`, and prints the bundle's size. Targets: notify --dry-run within 0.35 s of
`python3 -c pass`; bundle under 8 MB.

Then what every cluster command (deploy, status, rollback, abort, promote) pays before its first
request: importing the kubernetes client from the bundle, reading a kubeconfig and making the API
objects (enadu_pipelines/helper/kube/client.py ``connect`` and ``Kube``), with the client imported
lazily (enadu_pipelines/helper/kube/lazy.py, what the helper does) and whole (``import
kubernetes.client`` first, as before). zipimport compiles each module from source on every run, so
the whole client costs seconds there. Usage: benchmarks/helper_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import Series, measure, table  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "resources" / "enadu" / "enadu-helper.pyz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    python = sys.executable
    env = {"PATH": os.environ.get("PATH", ""), "DISCORD_WEBHOOK_URL": "https://discord.invalid/api/webhooks/1/x",
           "ENADU_SERVICE": "backend", "ENADU_BUILD_RESULT": "SUCCESS", "ENADU_DURATION_MS": "61000",
           "JOB_NAME": "enadu/backend", "BUILD_NUMBER": "7", "BUILD_URL": "https://jenkins.invalid/job/enadu/job/backend/7/"}
    baseline = Series("python3 -c pass", [python, "-I", "-c", "pass"], env=env)
    series = [baseline,
              Series("enadu-helper.pyz --version", [python, "-I", str(BUNDLE), "--version"], env=env),
              Series("enadu-helper.pyz notify --dry-run", [python, "-I", str(BUNDLE), "notify", "--dry-run"], env=env),
              Series("enadu-helper.pyz deploy --help", [python, "-I", str(BUNDLE), "deploy", "--help"], env=env)]
    measure(series, runs=args.runs)
    print(f"# {args.runs} runs each, interleaved, after one warm-up; python3 -I, as on a Jenkins agent")
    print(table(series, baseline))
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp, "kubeconfig")
        kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                              "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:9'}}]\n"
                              "contexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {token: t}}]\n")
        connect = ("import sys; sys.path.insert(0, sys.argv[1])\n"
                   "{first}\n"
                   "from enadu_pipelines.helper.kube import client, lazy; lazy.install()\n"
                   "api, _, _ = client.connect(sys.argv[2], None)\n"
                   "client.Kube(api, 'enadu', log=print)\n")
        whole = Series("whole client: import, connect, API objects",
                       [python, "-I", "-c", connect.format(first="import kubernetes.client"), str(BUNDLE), str(kubeconfig)],
                       env=env)
        lazy = Series("lazy client (the helper): the same",
                      [python, "-I", "-c", connect.format(first=""), str(BUNDLE), str(kubeconfig)], env=env)
        measure([baseline, whole, lazy], runs=args.runs)
        print(f"# from the bundle, {args.runs} runs each, interleaved; CPU is user + system seconds")
        print(table([baseline, whole, lazy], baseline))
        cpu = {s.name: statistics.median(s.cpus) for s in (whole, lazy)}
        print(f"# connect: whole client {statistics.median(whole.walls):.2f} s wall / {cpu[whole.name]:.2f} s CPU, "
              f"lazy {statistics.median(lazy.walls):.2f} s / {cpu[lazy.name]:.2f} s CPU: "
              f"{statistics.median(whole.walls) / statistics.median(lazy.walls):.1f}x faster")
    size = BUNDLE.stat().st_size
    notify = statistics.median(series[2].walls) - statistics.median(baseline.walls)
    print(f"# bundle size: {size} bytes ({size / 1e6:.2f} MB; target < 8 MB)")
    print(f"# notify --dry-run over python3 -c pass: +{notify:.3f} s (target <= 0.35 s): "
          f"{'met' if notify <= 0.35 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
