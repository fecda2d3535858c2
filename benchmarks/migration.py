#!/usr/bin/env python3
"""Migration from the old deploy script's Service: ours vs our previous behaviour vs the seed's shell flow.

Each flow starts from the hand-made era's state in the Kubernetes test world (tests/support/kubeworld):
a Service ``backend`` selecting ``app=backend`` (no colour) and a Deployment ``backend`` serving
``:handmade``, with propagation lag between an EndpointSlice change and the Service proxies, under
continuous load through the Service. Each deploys a good image (``:v2``) and, in a fresh world, a
failing one (``:v2-errors``: passes its probes, answers 500 to everything else). Reported per flow:
failed/total requests across the whole migration, and requests answered by the new image before the
Service was switched to it (production traffic on an untested colour).

- ours: the bundled deploy helper of this checkout (pins the Service to the old pods first; run
  ``enadu-pipelines render`` first so the bundle is current);
- previous: the bundled helper as committed at git HEAD (``git show HEAD:resources/enadu/enadu-helper.pyz``),
  which took the Service without a colour for a first deploy;
- seed: the old script's flow with the real kubectl: apply backend-blue, ``rollout status``, patch
  the selector to color=blue, delete the old Deployment at once.

Usage: .venv/bin/python benchmarks/migration.py [--lag 1.0] [--rate 100] [--delay 3s] [--ref HEAD]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BUNDLE = "resources/enadu/enadu-helper.pyz"
sys.path.insert(0, str(REPO))
from enadu_pipelines.helper.kube.manifest import load as load_manifest  # noqa: E402
from tests.support import deployrun as d  # noqa: E402
from tests.support.kubeworld.invariants import deployment_fully_available  # noqa: E402
from tests.support.kubeworld.world import KubeWorld  # noqa: E402
from tests.test_deploy_migration import HANDMADE, handmade_objects  # noqa: E402


def helper_flow(bundle: Path, delay: str):
    """The helper as Jenkins runs it: ``python3 -I`` on a bundle (so no installed copy can stand in)."""
    def flow(world: KubeWorld, tag: str, _workdir: Path) -> int:
        done = subprocess.run([sys.executable, "-I", str(bundle), "deploy", "--image", d.image(tag),
                               "--scale-down-delay", delay, "--output", "json"],
                              env=d.env(world, ENADU_SCALE_DOWN_DELAY_FLOOR="0s"), capture_output=True, timeout=300)
        return done.returncode

    return flow


def seed_flow(world: KubeWorld, tag: str, workdir: Path) -> int:
    """The old deploy script, step for step, with the real kubectl."""
    manifest = load_manifest(str(d.MANIFEST), "backend")
    blue = manifest.coloured_deployment("blue", d.image(tag), 2, "")
    blue["metadata"]["namespace"] = d.NAMESPACE
    path = workdir / "blue.yaml"
    path.write_text(yaml.safe_dump(blue))
    kubectl = ["kubectl", "--kubeconfig", world.kubeconfig, "-n", d.NAMESPACE]
    for args in (["apply", "--server-side=false", "-f", str(path)],
                 ["rollout", "status", "deployment/backend-blue", "--timeout=120s"],
                 ["patch", "service", "backend", "-p", '{"spec":{"selector":{"color":"blue"}}}'],
                 ["delete", "deployment", "backend"]):
        done = subprocess.run(kubectl + args, capture_output=True, timeout=180)
        if done.returncode:
            return done.returncode
    return 0


def switched_at(world: KubeWorld, load) -> float:
    """When the Service first selected blue, in the load's clock (from the request log)."""
    for r in world.requests.writes():
        if r.resource == "services" and r.name == "backend" and b'"blue"' in (r.body or b""):
            return world.started_at + r.time - load.started
    return float("inf")


def measure(flow, tag: str, args: argparse.Namespace, workdir: Path) -> dict:
    with KubeWorld(seed=1, time_scale=0.1, propagation_lag=args.lag, workdir=str(workdir)) as world:
        world.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": d.NAMESPACE}})
        world.create(*handmade_objects())
        world.wait_for(lambda w: deployment_fully_available(w.get("deployments", "backend", d.NAMESPACE)) is None,
                       timeout=30, what="the hand-made deployment")
        d.wait_serving(world)
        with world.load(world.service_url("backend", d.NAMESPACE), concurrency=4, rate=args.rate) as load:
            load.wait_for_requests(int(args.rate))
            started = time.monotonic()
            code = flow(world, tag, workdir)
            wall = time.monotonic() - started
            load.wait_for_requests(len(load.results) + int(args.rate * 2))
        switch = switched_at(world, load)
        summary = load.summary()
        early = sum(1 for r in load.results if r.image == d.image(tag) and r.t < switch)
        return {"exit": code, "failed": summary["failed"], "total": summary["total"], "early": early, "wall": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lag", type=float, default=1.0, help="Service proxy propagation lag, seconds")
    parser.add_argument("--rate", type=float, default=100, help="requests per second through the Service")
    parser.add_argument("--delay", default="3s", help="the helpers' scale-down delay (must exceed the lag)")
    parser.add_argument("--ref", default="HEAD", help="git ref of the previous behaviour")
    args = parser.parse_args()
    os.environ.setdefault("ENADU_API_DEADLINE", "20")
    with tempfile.TemporaryDirectory() as tmp:
        previous = Path(tmp) / "previous.pyz"
        previous.write_bytes(subprocess.run(["git", "-C", str(REPO), "show", f"{args.ref}:{BUNDLE}"],
                                            capture_output=True, check=True).stdout)
        flows = [("ours (pin, then blue/green)", helper_flow(d.BUNDLE, args.delay)),
                 (f"previous helper ({args.ref})", helper_flow(previous, args.delay)),
                 ("seed shell flow (kubectl)", seed_flow)]
        rows = []
        for name, flow in flows:
            for tag in ("v2", "v2-errors"):
                workdir = Path(tmp) / f"{len(rows)}"
                workdir.mkdir()
                rows.append((name, tag, measure(flow, tag, args, workdir)))
    print(f"# migration from the hand-made Service (selector app=backend) and Deployment backend ({HANDMADE})")
    print(f"# propagation lag {args.lag} s, {args.rate:.0f} requests/s through the Service, time scale 0.1")
    print(f"{'flow':<30} {'image':<10} {'exit':>4} {'failed/total':>13} {'new image before switch':>24} {'wall s':>7}")
    for name, tag, r in rows:
        print(f"{name:<30} {tag:<10} {r['exit']:>4} {r['failed']:>6}/{r['total']:<6} {r['early']:>24} {r['wall']:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
