"""Retries are data: one policy type and one runner for every client we talk through.

The Kubernetes API, the Discord webhook and the Jenkins REST API all fail the same transient ways
(connection errors, timeouts, 429, 5xx) and all get the same treatment, after kopf: a tuple of
backoffs, a hard deadline for the whole operation, a server's ``Retry-After`` honoured when it
asks for longer than our backoff, and one log line per failed attempt ("attempt #2/7 failed: ...;
will retry in 1.0 s") plus one when giving up. Callers decide what is transient by passing a
*classifier*; everything else is raised at once.

Built on tenacity (a small pure-Python library, bundled into the helper zipapp).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, TypeVar

import tenacity

T = TypeVar("T")


@dataclass(frozen=True)
class Transient:
    """What a classifier says of a failure that is worth retrying."""

    reason: str  # short text for the log line, e.g. "HTTP 503" (never a URL or a secret)
    retry_after: Optional[float] = None  # the server's own wait, in seconds, if it gave one


Classifier = Callable[[BaseException], Optional[Transient]]


class TransientHTTP(Exception):
    """Raised by an attempt for an HTTP answer worth another try (429, 5xx)."""

    def __init__(self, status: int, retry_after: Optional[float] = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def classify_requests(exc: BaseException) -> Optional[Transient]:
    """The classifier of clients built on ``requests``: TransientHTTP, timeouts, connection errors."""
    import requests

    if isinstance(exc, TransientHTTP):
        return Transient(str(exc), retry_after=exc.retry_after)
    if isinstance(exc, requests.Timeout):
        return Transient("timed out")
    if isinstance(exc, requests.ConnectionError):
        return Transient("connection failed")
    return None


@dataclass(frozen=True)
class Policy:
    """How long and how often to retry.

    ``backoffs`` are the waits between attempts (so at most ``len(backoffs) + 1`` attempts);
    ``deadline`` bounds the whole operation in seconds: no wait is started that would end past it.
    A ``Retry-After`` longer than the planned backoff is honoured (within the deadline).
    """

    backoffs: Tuple[float, ...] = (0.5, 1, 2, 3, 5, 8)
    deadline: float = 30.0
    max_retry_after: float = 60.0

    @property
    def attempts(self) -> int:
        return len(self.backoffs) + 1


class GaveUp(Exception):
    """Every attempt failed transiently, or the deadline left no room for another; ``last`` is the
    final failure and ``attempts`` how many were made."""

    def __init__(self, what: str, attempts: int, last: BaseException, reason: str) -> None:
        super().__init__(f"{what}: gave up after {attempts} attempt(s): {reason}")
        self.what = what
        self.attempts = attempts
        self.last = last
        self.reason = reason


def run(
    fn: Callable[[], T],
    *,
    what: str,
    classify: Classifier,
    policy: Policy = Policy(),
    log: Callable[[str], None] = lambda line: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn`` until it succeeds, a failure is not transient, or the policy runs out.

    Non-transient failures propagate unchanged; running out raises ``GaveUp`` chained to the last
    failure.
    """
    start = clock()
    verdicts: dict[int, Transient] = {}

    def transient(exc: BaseException) -> bool:
        verdict = classify(exc)
        if verdict is None:
            return False
        verdicts[id(exc)] = verdict
        return True

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception()
        planned = policy.backoffs[min(state.attempt_number, len(policy.backoffs)) - 1]
        verdict = verdicts.get(id(exc))
        if verdict is not None and verdict.retry_after is not None:
            planned = max(planned, min(verdict.retry_after, policy.max_retry_after))
        return planned

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.attempts:
            return True
        return clock() - start + wait(state) > policy.deadline

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception()
        verdict = verdicts.get(id(exc))
        log(f"{what}: attempt #{state.attempt_number}/{policy.attempts} failed: "
            f"{verdict.reason if verdict else type(exc).__name__}; will retry in {state.next_action.sleep:.1f} s")

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(transient),
        wait=wait,
        stop=stop,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=False,
    )
    try:
        return retrying(fn)
    except tenacity.RetryError as e:
        last = e.last_attempt.exception()
        verdict = verdicts.get(id(last))
        reason = verdict.reason if verdict else type(last).__name__
        attempts = e.last_attempt.attempt_number
        log(f"{what}: attempt #{attempts}/{policy.attempts} failed: {reason}; escalating")
        raise GaveUp(what, attempts, last, reason) from last
