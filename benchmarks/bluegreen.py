#!/usr/bin/env python3
"""Blue/green switch: our deploy helper vs the seed's shell flow, in one run, against the same world.

The seed (the script the team ran over SSH on the Kubernetes master) did, with kubectl: create the
other colour, `kubectl rollout status`, patch the Service's selector, delete the old colour at once.
Both flows deploy v1 -> v2 of the backend into the Kubernetes test world (tests/support/kubeworld)
with the same propagation lag between an EndpointSlice change and the Service proxies, under the same
continuous load through the Service. For each we report failed/total requests during the switch, the
time from the new colour being fully available to the Service switched, wall time, and API requests
made; and we save a plot of successful requests per second by image and failures over time.

Usage: .venv/bin/python benchmarks/bluegreen.py [--lag 1.0] [--rate 100] [--plot docs/bluegreen.png]
(matplotlib is needed for the plot: pip install matplotlib)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from enadu_pipelines.helper.kube.manifest import load as load_manifest  # noqa: E402
from tests.support import deployrun as d  # noqa: E402
from tests.support.kubeworld.invariants import deployment_fully_available  # noqa: E402
from tests.support.kubeworld.world import KubeWorld  # noqa: E402


class Watch(threading.Thread):
    """Records when green first becomes fully available and when the Service first selects green."""

    def __init__(self, world: KubeWorld) -> None:
        super().__init__(daemon=True)
        self.world, self.stop, self.available, self.switched = world, threading.Event(), None, None

    def run(self) -> None:
        while not self.stop.wait(0.01):
            now = time.monotonic()
            dep = d.deployment(self.world, "green")
            if self.available is None and dep is not None and deployment_fully_available(dep) is None:
                self.available = now
            if self.switched is None and d.selected_colour(self.world) == "green":
                self.switched = now


def seed_flow(world: KubeWorld, workdir: Path) -> None:
    """The old deploy script, step for step, with the real kubectl."""
    manifest = load_manifest(str(d.MANIFEST), "backend")
    green = manifest.coloured_deployment("green", d.image("v2"), 2, "")
    green["metadata"]["namespace"] = d.NAMESPACE
    path = workdir / "green.yaml"
    path.write_text(yaml.safe_dump(green))
    kubectl = ["kubectl", "--kubeconfig", world.kubeconfig, "-n", d.NAMESPACE]
    for args in (["apply", "--server-side=false", "-f", str(path)],
                 ["rollout", "status", "deployment/backend-green", "--timeout=120s"],
                 ["patch", "service", "backend", "-p", '{"spec":{"selector":{"color":"green"}}}'],
                 ["delete", "deployment", "backend-blue"]):
        subprocess.run(kubectl + args, check=True, capture_output=True, timeout=180)


def our_flow(world: KubeWorld, delay: str) -> None:
    run = d.deploy(world, "v2", "--scale-down-delay", delay)
    if run.returncode != 0:
        raise SystemExit(f"deploy failed: {run.stderr[-2000:]}")


def measure(name: str, flow, args: argparse.Namespace, workdir: Path) -> dict:
    with KubeWorld(seed=1, time_scale=0.1, propagation_lag=args.lag, workdir=str(workdir)) as world:
        d.prepare(world)
        assert d.deploy(world, "v1").returncode == 0
        before = len(world.requests.all())
        watch = Watch(world)
        d.wait_serving(world)
        with world.load(world.service_url("backend", d.NAMESPACE), concurrency=4, rate=args.rate) as load:
            load.wait_for_requests(int(args.rate))  # a second of steady traffic first
            watch.start()
            started = time.monotonic()
            flow(world)
            wall = time.monotonic() - started
            load.wait_for_requests(load.summary()["total"] + int(args.rate * 2))
        watch.stop.set()
        watch.join()
        requests = world.requests.all()[before:]
        summary = load.summary()
        return {"name": name, "failed": summary["failed"], "total": summary["total"],
                "available_to_switch": (watch.switched - watch.available) if watch.switched and watch.available else None,
                "wall": wall, "api_requests": len(requests), "api_writes": sum(1 for r in requests if r.write),
                "timeline": load.timeline(0.25)}


def plot(results: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(12, 4), sharey=True)
    for ax, result in zip(axes, results):
        rows = result["timeline"]
        t = [r["t"] for r in rows]
        for image, colour in ((d.image("v1"), "#3b82f6"), (d.image("v2"), "#16a34a")):
            ax.plot(t, [r["by_image"].get(image, 0) * 4 for r in rows], color=colour, label=f"ok: {image.split(':')[-1]}")
        ax.bar(t, [r["failed"] * 4 for r in rows], width=0.25, color="#dc2626", label="failed", align="edge")
        ax.set_title(f"{result['name']}: {result['failed']} of {result['total']} requests failed")
        ax.set_xlabel("seconds since load started")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("requests per second")
    axes[0].legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lag", type=float, default=1.0, help="Service proxy propagation lag, seconds")
    parser.add_argument("--rate", type=float, default=100, help="requests per second through the Service")
    parser.add_argument("--delay", default="3s", help="our scale-down delay (must exceed the lag)")
    parser.add_argument("--plot", type=Path, default=None, help="save the plot here (PNG)")
    args = parser.parse_args()
    os.environ.setdefault("ENADU_API_DEADLINE", "20")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "ours").mkdir()
        (Path(tmp) / "seed").mkdir()
        results = [measure("enadu-pipelines deploy", lambda w: our_flow(w, args.delay), args, Path(tmp) / "ours"),
                   measure("seed shell flow (kubectl)", lambda w: seed_flow(w, Path(tmp) / "seed"), args,
                           Path(tmp) / "seed")]
    print(f"# propagation lag {args.lag} s, {args.rate:.0f} requests/s through the Service, time scale 0.1")
    print(f"{'flow':<28} {'failed/total':>13} {'available->switched':>20} {'wall s':>7} {'API requests':>13} {'writes':>7}")
    for r in results:
        gap = f"{r['available_to_switch']:.2f} s" if r["available_to_switch"] is not None else "-"
        print(f"{r['name']:<28} {r['failed']:>6}/{r['total']:<6} {gap:>20} {r['wall']:7.2f} {r['api_requests']:>13} "
              f"{r['api_writes']:>7}")
    print("# our wall time includes the scale-down delay; the seed deletes the old colour at once")
    if args.plot:
        plot(results, args.plot)
        print(f"# plot saved to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
