#!/usr/bin/env python3
"""Image build + push of the same commit on an empty agent: cold vs warm registry layer cache, in one run.

An ephemeral pod agent starts with empty containers storage, so buildah's local `--layers` cache is
always empty there; the registry cache (`--cache-from`/`--cache-to <image>/cache`) is what survives.
Each pair starts a fresh registry (Debian's docker-registry on loopback, htpasswd auth) holding only
a base image, then runs the generated `enaduImage` buildah script (taken from the pipeline harness's
trace, as tests/test_image_cache.py does, and run with `sh -xe` as Jenkins runs it) twice for the same
commit, each time in a new, empty store: "cold" with an empty cache repository, "warm" with the cache
the cold build stored. Pairs are interleaved; we report medians of wall time (login, build, cache
traffic, push and `rmi` included) and the bytes each build uploaded to the registry (blobs whose
upload completed, sized from the registry's storage; a blob found with HEAD or mounted is not sent).

The workload stands in for a service image: a base image (dash and its libraries, pushed to the
registry beforehand), a dependencies layer (`COPY deps/`, incompressible files), a `RUN` step that
computes for a few seconds and writes its output (the stand-in for a compile; its cost is CPU, as a
Gradle or npm build's is), and the application layer (`COPY app.bin`).

Usage: .venv/bin/python benchmarks/image_cache.py [--pairs 3] [--deps-mib 48] [--run-seconds 3]
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from support.ociregistry import buildah_env  # noqa: E402
from support.ociregistry.registry import OciRegistry  # noqa: E402
from test_image_cache import run_step  # noqa: E402  (the generated step, traced by the harness)

IMAGE = "enadu/backend"
CACHE = "enadu/backend/cache"
BASE = "enadu/base:1"


def push_base(registry: OciRegistry, work: Path) -> None:
    """A tiny base image with a shell (dash and the libraries it links), pushed before timing."""
    root = work / "base-rootfs"
    for path in ("/bin/dash", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"):
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), target)
    os.symlink("dash", root / "bin" / "sh")
    (work / "base.Dockerfile").write_text("FROM scratch\nCOPY base-rootfs/ /\n")
    env = buildah_env(work / "base-store")
    env["REGISTRY_AUTH_FILE"] = str(work / "base-auth.json")
    ref = f"{registry.host}/{BASE}"
    for argv, stdin in ((["login", "--tls-verify=false", "--username", registry.username, "--password-stdin",
                          registry.host], registry.password),
                        (["bud", "--isolation", "chroot", "--file", str(work / "base.Dockerfile"), "--tag", ref,
                          str(work)], None),
                        (["push", "--tls-verify=false", ref], None)):
        subprocess.run(["buildah", *argv], env=env, input=stdin, text=True, check=True, capture_output=True,
                       timeout=300)
    (work / "base-auth.json").unlink()


def workspace(work: Path, registry: OciRegistry, deps_mib: int, run_seconds: float) -> Path:
    ws = work / "workspace"
    deps = ws / "app" / "deps"
    deps.mkdir(parents=True)
    for i in range(deps_mib // 4):
        (deps / f"lib-{i:02}.jar").write_bytes(os.urandom(4 * 1024 * 1024))
    (ws / "app" / "app.bin").write_bytes(os.urandom(1024 * 1024))
    # about run_seconds of shell arithmetic (calibrated below), then its output as a file
    loops = calibrate(run_seconds)
    (ws / "app" / "Dockerfile").write_text(
        f"FROM {registry.host}/{BASE}\n"
        "COPY deps/ /app/deps/\n"
        f"RUN i=0; s=0; while [ $i -lt {loops} ]; do s=$(((s * 31 + i) % 1000003)); i=$((i + 1)); done;"
        " echo $s > /app/compiled.txt\n"
        "COPY app.bin /app/app.bin\n")
    return ws


def calibrate(seconds: float) -> int:
    loops = 200_000
    began = time.perf_counter()
    subprocess.run(["dash", "-c", f"i=0; s=0; while [ $i -lt {loops} ]; do s=$(((s * 31 + i) % 1000003));"
                    " i=$((i + 1)); done"], check=True)
    return max(1000, int(loops * seconds / (time.perf_counter() - began)))


def build(registry: OciRegistry, entry: dict, ws: Path, root: Path) -> tuple[float, int, str]:
    """One run of the step's script on a new agent (empty store, HOME, TMPDIR): wall seconds, bytes
    uploaded, output."""
    root.mkdir()
    (root / "home").mkdir()
    (root / "tmp").mkdir()
    store = buildah_env(root / "containers", base={})
    script = root / "script.sh"
    script.write_text(entry["args"]["script"])
    env = dict(entry["env"], HOME=str(root / "home"), TMPDIR=str(root / "tmp"), WORKSPACE=str(ws),
               PATH=os.environ.get("PATH", "/usr/bin:/bin"), CONTAINERS_STORAGE_CONF=store["CONTAINERS_STORAGE_CONF"])
    before = len(registry.uploaded_blobs())
    began = time.perf_counter()
    proc = subprocess.run(["/bin/sh", "-xe", str(script)], cwd=ws, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - began
    if proc.returncode:
        raise SystemExit(f"build failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    sent = sum(size for _, _, size in registry.uploaded_blobs()[before:])
    shutil.rmtree(root / "containers", ignore_errors=True)  # vfs stores are large; the pod is gone
    return wall, sent, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--deps-mib", type=int, default=48)
    parser.add_argument("--run-seconds", type=float, default=3.0)
    args = parser.parse_args()

    results = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="enadu-image-cache-") as tmp:
        for pair in range(args.pairs):
            work = Path(tmp) / f"pair{pair}"
            work.mkdir()
            with OciRegistry(work / "registry") as registry:
                push_base(registry, work)
                ws = workspace(work, registry, args.deps_mib, args.run_seconds)
                step = {"image": f"{registry.host}/{IMAGE}", "context": "app", "dockerfile": "app/Dockerfile",
                        "builder": "buildah", "insecure": True, "cache": f"{registry.host}/{CACHE}"}
                for kind, number in (("cold", 100 + pair), ("warm", 200 + pair)):
                    run = run_step(step, registry, number)
                    assert run.valid and run.result == "SUCCESS", run.describe()
                    (entry,) = run.steps("sh")
                    wall, sent, out = build(registry, entry, ws, work / kind)
                    hits = out.count("--> Using cache ")
                    results[kind].append((wall, sent, hits))
                    print(f"pair {pair + 1}: {kind}: {wall:6.2f} s, {sent / 2**20:7.2f} MiB uploaded, {hits} steps"
                          " from the registry cache", flush=True)
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{args.pairs} pairs, dependencies layer {args.deps_mib} MiB, RUN step ~{args.run_seconds:g} s, buildah "
          + subprocess.run(["buildah", "--version"], capture_output=True, text=True).stdout.split()[2])
    print(f"{'build + push on an empty store':<34} {'median s':>9} {'min s':>7} {'max s':>7} {'MiB uploaded':>13}")
    med = {}
    for kind in ("cold", "warm"):
        walls = [w for w, _, _ in results[kind]]
        sent = statistics.median(s for _, s, _ in results[kind])
        med[kind] = (statistics.median(walls), sent)
        print(f"{kind + (' (empty cache)' if kind == 'cold' else ' (registry cache)'):<34} {med[kind][0]:9.2f}"
              f" {min(walls):7.2f} {max(walls):7.2f} {sent / 2**20:13.2f}")
    print(f"ratio cold/warm wall time: {med['cold'][0] / med['warm'][0]:.2f}x; bytes uploaded: "
          f"{med['cold'][1]:,} vs {med['warm'][1]:,}")


if __name__ == "__main__":
    main()
