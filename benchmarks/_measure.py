"""Shared by the benchmark scripts: time whole processes side by side, in one invocation.

Each command runs ``runs`` times after one warm-up, interleaved (A B C A B C ...) so drift in the
machine's speed hits every command alike; we report the median wall time, its ratio to the
baseline's median, and the peak resident memory of the largest run (from the kernel's own
accounting via wait4). These machines are noisy: read ratios, not absolute seconds.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field


@dataclass
class Series:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    cwd: str | None = None
    setup: object = None  # callable run before each run (not timed)
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)  # user + system CPU seconds of each run (less load-sensitive)
    peak_kib: int = 0

    def run_once(self) -> float:
        if callable(self.setup):
            self.setup()
        start = time.perf_counter()
        proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{self.name}: exit {proc.returncode}: {proc.stderr.read().decode()[-500:]}")
        proc.stderr.close()
        self.peak_kib = max(self.peak_kib, usage.ru_maxrss)
        self.cpus.append(usage.ru_utime + usage.ru_stime)
        return wall


def measure(series: list[Series], runs: int = 7) -> None:
    for s in series:
        s.run_once()  # warm-up: caches, .pyc files
        s.cpus.clear()
    for _ in range(runs):
        for s in series:
            s.walls.append(s.run_once())


def table(series: list[Series], baseline: Series) -> str:
    base = statistics.median(baseline.walls)
    lines = [f"{'command':<44} {'median s':>9} {'min s':>7} {'max s':>7} {'x baseline':>10} {'+s vs base':>10} {'peak MiB':>9}"]
    for s in series:
        med = statistics.median(s.walls)
        lines.append(f"{s.name:<44} {med:9.3f} {min(s.walls):7.3f} {max(s.walls):7.3f} {med / base:10.2f} "
                     f"{med - base:10.3f} {s.peak_kib / 1024:9.1f}")
    return "\n".join(lines)
