#!/usr/bin/env python3
"""Rollback inside the scale-down delay: ours now vs our previous behaviour, in one run.

The scene of issue 14, defect 1: v1 runs in blue; a deploy switches to v2 in green and waits out a
long scale-down delay; one second later someone runs `rollback`. Now the rollback takes over the
deploy's lock (the deploy marked it pre-emptible for its delay) and switches back at once; before,
it waited for the lock, the deploy scaled blue to zero at the end of its delay, and the rollback
scaled it back up before switching. The previous behaviour is the helper as it was at a git commit
(`--baseline`, default the commit before the change), extracted with `git archive` and run against
the same Kubernetes test world (tests/support/kubeworld), under the same load through the Service.

For each we report: seconds from the rollback command to the Service selecting blue (wall time, the
helper's start-up included), the API time from the rollback's first request to its switch (the
world's request log; the rollback runs as its own user so its requests can be told apart), its API
requests before the switch, how the deploy ended, whether blue was ever scaled down, and failed
requests under load from the rollback command until both commands ended.

Usage: .venv/bin/python benchmarks/rollback.py [--lag 1.0] [--rate 100] [--delay 20s] [--baseline cf2475a]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from tests.support import deployrun as d  # noqa: E402
from tests.support.kubeworld.world import KubeWorld  # noqa: E402

BASELINE = "cf2475a"  # the last commit before rollbacks pre-empted the scale-down delay
OPS_USER = "enadu-ops"
LEASE = f"enadu-deploy-{d.SERVICE}"


def extract(commit: str, into: Path) -> Path:
    """The helper package as it was at ``commit``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "enadu_pipelines"], check=True,
                             capture_output=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=60)
    return into


def run(world: KubeWorld, code: str, *args: str, extra_env: dict) -> subprocess.Popen:
    """Start the helper from ``code`` (its directory is the working directory too: ``python -m``
    puts that first on sys.path, ahead of PYTHONPATH and the editable install)."""
    return subprocess.Popen(d.command(*args, "--output", "json"), cwd=code,
                            env=d.env(world, **{**extra_env, "PYTHONPATH": code}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def in_delay(world: KubeWorld) -> bool:
    lease = world.get("leases", LEASE, d.NAMESPACE) or {}
    return (lease.get("metadata", {}).get("annotations") or {}).get("enadu.io/preemptible") == "scale-down-delay"


def measure(name: str, pythonpath: str, args: argparse.Namespace, workdir: Path) -> dict:
    with KubeWorld(seed=1, time_scale=0.1, propagation_lag=args.lag, workdir=str(workdir)) as world:
        d.prepare(world)
        first = finish(run(world, pythonpath, "deploy", "--image", d.image("v1"), extra_env={}))
        assert first[0] == 0, first[2][-2000:]
        d.wait_serving(world)
        ops = {"ENADU_LOCK_IDENTITY": "jenkins-enadu-backend-ops-3",
               "KUBECONFIG": world.write_kubeconfig(str(workdir / "ops.kubeconfig"), world.add_token(OPS_USER))}
        with world.load(world.service_url(d.SERVICE, d.NAMESPACE), concurrency=4, rate=args.rate,
                        max_seconds=600) as load:
            load.wait_for_requests(20)
            deploy = run(world, pythonpath, "deploy", "--image", d.image("v2"), "--scale-down-delay", args.delay,
                         extra_env={})
            world.wait_for(lambda w: d.selected_colour(w) == "green", timeout=120, what="the deploy's switch")
            switched = time.monotonic()
            world.wait_for(lambda w: in_delay(w) or time.monotonic() > switched + 3, timeout=10, what="the delay")
            time.sleep(1)
            first_result = len(load.results)
            command = time.monotonic()
            back_code, _, back_err = finish(run(world, pythonpath, "rollback", "--scale-down-delay",
                                                args.rollback_delay, extra_env=ops))
            deploy_code, out, _ = finish(deploy)
            load.wait_for_requests(len(load.results) + int(args.rate))
        requests = world.requests.all()
        mine = [r for r in requests if r.user == OPS_USER]
        if back_code != 0:
            raise SystemExit(f"{name}: rollback exit {back_code}: {back_err[-2000:]}")
        switch = next(r for r in mine if r.resource == "services" and r.committed and b'"blue"' in r.body)
        green_switch = next(r for r in requests if r.resource == "services" and r.committed and b'"green"' in r.body
                            and b"/spec/selector/color" in r.body)
        scaled_blue = [r for r in requests if r.resource == "deployments" and r.name == f"{d.SERVICE}-blue"
                       and r.committed and r.seq > green_switch.seq]
        window = load.results[first_result:]
        deploy_result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        return {
            "name": name,
            "rollback_exit": back_code,
            "command_to_switch": world.started_at + switch.time - command,
            "api_time": switch.time - mine[0].time,
            "requests_before_switch": sum(1 for r in mine if r.seq < switch.seq),
            "deploy": f"exit {deploy_code} ({deploy_result.get('outcome', '?')})",
            "blue_scaled_down": bool(scaled_blue),
            "failed": sum(1 for r in window if not r.ok),
            "total": len(window),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lag", type=float, default=1.0, help="Service proxy propagation lag, seconds")
    parser.add_argument("--rate", type=float, default=100, help="requests per second through the Service")
    parser.add_argument("--delay", default="20s", help="the deploy's scale-down delay")
    parser.add_argument("--rollback-delay", default="3s", help="the rollback's scale-down delay (must exceed the lag)")
    parser.add_argument("--baseline", default=BASELINE, help="git commit whose helper is 'previous'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rollback-") as tmp:
        root = Path(tmp)
        (root / "previous").mkdir()
        previous = extract(args.baseline, root / "previous")
        results = []
        for name, path in (("ours (pre-empts the delay)", str(REPO)),
                           (f"previous ({args.baseline}: waits for the lock)", str(previous))):
            work = root / f"world-{len(results)}"
            work.mkdir()
            results.append(measure(name, path, args, work))
    ours, before = results
    print(f"rollback 1 s after a switch, deploy's scale-down delay {args.delay}, lag {args.lag:g} s, "
          f"{args.rate:g} requests/s through the Service")
    print(f"{'':44} {'command→switched':>17} {'API time':>9} {'API req.':>8} {'failed/total':>13}  deploy ended; blue scaled down?")
    for r in results:
        print(f"{r['name']:44} {r['command_to_switch']:>15.2f} s {r['api_time']:>7.3f} s {r['requests_before_switch']:>8}"
              f" {r['failed']:>6}/{r['total']:<6}  {r['deploy']}; {'yes' if r['blue_scaled_down'] else 'no'}")
    print(f"ratio previous/ours: command→switched {before['command_to_switch'] / ours['command_to_switch']:.1f}x, "
          f"API time {before['api_time'] / max(ours['api_time'], 1e-3):.0f}x")
    return 0 if ours["failed"] == 0 and not ours["blue_scaled_down"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
