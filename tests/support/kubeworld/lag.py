"""Per-controller lag: each controller reacts to a change after its own seeded random delay.

In a cluster every controller learns of a change through its own informer and workqueue
(client-go tools/cache reflector and DeltaFIFO, util/workqueue), the kubelet reports pod status
through its status manager (pkg/kubelet/status/status_manager.go: a channel and a periodic
`syncBatch`), and every kube-proxy programs its rules on its own schedule
(pkg/proxy/runner.go BoundedFrequencyRunner, `--iptables-min-sync-period`). So kubelet status,
Endpoints, EndpointSlices and proxy rules change at different moments, in an order that varies
from run to run. Here each of those actors has a `Lag`: a fixed delay or a uniform draw from
[low, high], from a `random.Random` seeded by (world seed, controller name) — the same seed gives
the same sequence of delays, and changing one controller's lag never changes another's draws.

Names: deployment, replicaset, kubelet (the status write), endpoints, endpointslice, gc, proxies.
All default to 0 (react in the same pass) except `proxies`, which is the world's `propagation_lag`.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, Hashable, List, Optional, Tuple, Union

LagSpec = Union[float, int, Tuple[float, float]]

CONTROLLERS = ("deployment", "replicaset", "kubelet", "endpoints", "endpointslice", "gc", "proxies")


class Lag:
    """One actor's delay: `admit` (what it computed now is written after the delay, in order) for
    the endpoints, endpointslice and kubelet-status writers and the proxies; `due_after_change`
    (it reacts only once the delay has passed since a change) for the deployment, replicaset and
    gc controllers, whose syncs are several dependent writes.

    `set(2.0)` fixes the delay, `set((0.1, 0.5))` draws it uniformly, `set(1.0, jitter=0.5)` draws
    from [1.0, 1.5]."""

    def __init__(self, name: str, seed: int, spec: LagSpec = 0.0) -> None:
        self.name = name
        self.rng = random.Random(f"kubeworld-lag/{seed}/{name}")  # a str seed is hashed (SHA-512): stable
        self.draws: List[float] = []
        self._lock = threading.Lock()
        self.pending: Dict[Hashable, Deque[Tuple[float, Any]]] = {}
        self.last: Dict[Hashable, Any] = {}  # the last state queued, per key
        self.due: Optional[float] = None  # due_after_change: when the pending reaction may run
        self.set(spec)

    def set(self, spec: LagSpec, jitter: float = 0.0) -> None:
        if isinstance(spec, (tuple, list)):
            low, high = float(spec[0]), float(spec[1])
        else:
            low = float(spec)
            high = low + float(jitter)
        if not 0 <= low <= high:
            raise ValueError(f"lag of {self.name}: want 0 <= low <= high seconds, got {spec!r}"
                             + (f" with jitter {jitter!r}" if jitter else ""))
        with self._lock:
            self.low, self.high = low, high

    @property
    def seconds(self) -> float:
        return self.low

    @property
    def spec(self) -> LagSpec:
        return self.low if self.low == self.high else (self.low, self.high)

    @property
    def zero(self) -> bool:
        return self.high == 0

    def draw(self) -> float:
        """The next delay in seconds (recorded in `draws`)."""
        with self._lock:
            value = self.low if self.low == self.high else self.rng.uniform(self.low, self.high)
            self.draws.append(value)
            return value

    def admit(self, key: Hashable, want: Any, now: Optional[float] = None) -> Optional[Any]:
        """Queue `want` for `key` (if it differs from the last one queued) to be released after a
        drawn delay, never before an earlier one (a work queue hands a key to one worker at a time);
        return the latest state due now, or None. With a zero lag and nothing queued: `want` at once."""
        queue = self.pending.setdefault(key, deque())
        if self.zero and not queue:
            self.pending.pop(key, None)
            self.last[key] = want  # so that a lag set later queues (and draws for) changes only
            return want
        now = time.monotonic() if now is None else now
        if self.last.get(key, _NOTHING) != want:
            due = now + self.draw()
            if queue:
                due = max(due, queue[-1][0])
            self.last[key] = copy.deepcopy(want)
            queue.append((due, self.last[key]))
        latest = _NOTHING
        while queue and queue[0][0] <= now:
            latest = queue.popleft()[1]
        if not queue:
            self.pending.pop(key, None)  # `last` stays: the same state again is not queued again
        return copy.deepcopy(latest) if latest is not _NOTHING else None

    def next_due(self) -> Optional[float]:
        """The earliest time a queued state is due (monotonic clock), if any."""
        dues = [q[0][0] for q in self.pending.values() if q]
        return min(dues) if dues else None

    def changed(self, now: Optional[float] = None) -> None:
        """due_after_change: a change was seen; the reaction waits for a fresh draw unless one is pending."""
        if self.zero:
            return
        if self.due is None:
            self.due = (time.monotonic() if now is None else now) + self.draw()

    def may_run(self, now: Optional[float] = None) -> bool:
        """due_after_change: whether the actor may sync now (no pending change, or its delay passed)."""
        if self.due is None or self.zero:
            self.due = None
            return True
        if (time.monotonic() if now is None else now) >= self.due:
            self.due = None
            return True
        return False


_NOTHING = object()
