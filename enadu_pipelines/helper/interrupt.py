"""The clean-up bound after SIGTERM: how long an interrupted command may still talk to the cluster.

When Jenkins aborts a build (or its ``timeout`` fires) it sends SIGTERM to the ``sh`` step's
processes (core's ProcessTree waits ``SoftKillWaitSeconds``, 5 s by default, then runs only plugin
``ProcessKiller``s: core sends no SIGKILL); the step itself is failed 20 s later
(``DurableTaskStep.REMOTE_TIMEOUT``) whether or not the process exited, the
credentials are unbound (the kubeconfig file is deleted) and the pipeline's ``post`` runs. So an
interrupted command writes its ``interrupted`` result at once, then gets ``DEFAULT_GRACE`` seconds
(``--interrupt-grace``, ``ENADU_INTERRUPT_GRACE``; at most ``MAX_GRACE``) for the clean-up that keeps
the cluster consistent, after which a watchdog writes the final result and exits.

While a clean-up runs, every API request (``kube.client.Kube.call``) is bounded by what is left of
the grace: shorter timeouts and backoffs, and no request is started once it has run out.
``limit(share)`` gives one clean-up step only part of what is left, so the lock's release always
keeps its turn.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator, List, Optional

DEFAULT_GRACE = 4.0  # seconds from the signal to the exit; below Jenkins' default SoftKillWaitSeconds (5)
MAX_GRACE = 15.0  # well under the 20 s after which Jenkins abandons the step and unbinds credentials
FINAL_WRITE = 0.5  # of the grace, kept back for writing the final result and exiting

_deadlines: List[float] = []  # the clean-up's deadline, then any narrower step limits (monotonic)


def begin(grace: float) -> float:
    """Start the clean-up clock; returns its deadline (``time.monotonic()`` based)."""
    deadline = time.monotonic() + max(0.1, grace - FINAL_WRITE)
    _deadlines[:] = [deadline]
    return deadline


def active() -> bool:
    return bool(_deadlines)


def remaining() -> Optional[float]:
    """Seconds left for the clean-up (0 when it ran out), or None when nothing was interrupted."""
    if not _deadlines:
        return None
    return max(0.0, min(_deadlines) - time.monotonic())


@contextlib.contextmanager
def limit(share: float) -> Iterator[None]:
    """Within the block, allow only ``share`` (0..1) of the clean-up time that is left."""
    left = remaining()
    if left is None:
        yield
        return
    _deadlines.append(time.monotonic() + left * share)
    try:
        yield
    finally:
        _deadlines.pop()


def reset() -> None:
    """For tests: forget an interruption."""
    _deadlines.clear()
