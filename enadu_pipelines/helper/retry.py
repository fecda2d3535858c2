"""Retries are data: one policy type and one runner for every client we talk through.

The Kubernetes API, the Discord webhook and the Jenkins REST API all fail the same transient ways
(connection errors, timeouts, 429, 5xx) and all get the same treatment, after kopf: a tuple of
backoffs, a hard deadline for the whole operation, a server's ``Retry-After`` honoured when it
asks for longer than our backoff, and one log line per failed attempt ("attempt #2/7 failed: ...;
will retry in 1.0 s") plus one when giving up. Callers decide what is transient by passing a
*classifier*; everything else is raised at once.

Built on tenacity (a small pure-Python library, bundled into the helper zipapp).

Every HTTP request the helper makes (Prometheus, Grafana, Discord) goes through :func:`request`,
which bounds the *request*, not each read: ``requests`` has no total timeout (its ``timeout`` bounds
the connect and each socket read, so a server trickling one byte per second holds a call for as
long as it likes), so the request runs with ``stream=True`` on a worker thread and the caller waits
for it at most until the wall-clock deadline; at the deadline the connection's socket is shut down
(which ends the worker's blocked read) and the caller gets :class:`OutOfTime`. The body is read up
to a size cap (decoded bytes, so a compressed bomb counts as what it expands to): a larger answer is
refused with :class:`TooLarge`. Hand-written on top of requests/urllib3: no well-kept pure-Python
client offers a total deadline (httpx's and urllib3's timeouts are per operation too).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, TypeVar

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
    if isinstance(exc, (requests.Timeout, OutOfTime)):
        return Transient("timed out")
    if isinstance(exc, requests.ConnectionError) and _read_timeout(exc):
        # requests' Response.iter_content re-raises urllib3's ReadTimeoutError, met while streaming the
        # body, as a ConnectionError (requests/models.py ``generate``): it is a timeout all the same.
        return Transient("timed out")
    if isinstance(exc, requests.ConnectionError):
        return Transient("connection failed")
    return None


def _read_timeout(exc: BaseException) -> bool:
    from urllib3.exceptions import ReadTimeoutError

    return any(isinstance(arg, ReadTimeoutError) for arg in exc.args)


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


# -- one bounded HTTP request ---------------------------------------------------------------------

MAX_ANSWER = 1 << 20  # bytes of an answer body we accept unless the caller says otherwise
CHUNK = 16 << 10


class OutOfTime(Exception):
    """No complete answer within the request's wall-clock bound (transient to ``classify_requests``)."""


class TooLarge(Exception):
    """The answer's body is larger than the cap; never retried (the same server would say it again)."""


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer: status, headers and the whole (capped) body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.content.decode("utf-8", errors="replace"))


_current = threading.local()  # the worker thread's box: its connection is registered there


def tracking_pools() -> Dict[str, Any]:
    """urllib3 connection-pool classes whose connections register themselves with the running
    :func:`bounded` call, so it can cut them at its deadline; for a PoolManager's documented
    ``pool_classes_by_scheme`` ("Locally set the pool classes ... so other PoolManagers can override them")."""
    from urllib3 import connection, connectionpool

    class Tracking:
        def getresponse(self, *args: Any, **kwargs: Any) -> Any:  # runs on the worker thread
            box = getattr(_current, "box", None)
            if box is not None:
                box["connection"] = self
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]

    class Tracked(Tracking, connection.HTTPConnection):
        pass

    class TrackedTLS(Tracking, connection.HTTPSConnection):
        pass

    class Pool(connectionpool.HTTPConnectionPool):
        ConnectionCls = Tracked

    class TLSPool(connectionpool.HTTPSConnectionPool):
        ConnectionCls = TrackedTLS

    return {"http": Pool, "https": TLSPool}


def session() -> Any:
    """A ``requests.Session`` whose connections :func:`request` can cut at its deadline, whatever
    phase the request is in (connected, reading the status line, the headers or the body)."""
    import requests
    from requests.adapters import HTTPAdapter

    pools = tracking_pools()

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

    http = requests.Session()
    http.mount("http://", Adapter())
    http.mount("https://", Adapter())
    return http


def _cut(box: Dict[str, Any]) -> None:
    """End a request that ran out of time: shut its socket down, so the worker's read returns."""
    conn = box.get("connection")
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def request(http: Any, method: str, url: str, *, timeout: float, max_bytes: int = MAX_ANSWER,
            connect_timeout: float = 3.05, **kwargs: Any) -> Answer:
    """One HTTP request through ``http`` (a requests session, best made by :func:`session`), bounded
    by ``timeout`` seconds of wall-clock time from start to the last byte of the body, and by
    ``max_bytes`` of body. Raises :class:`OutOfTime`, :class:`TooLarge`, or what requests raises.
    Redirects are not followed unless ``allow_redirects`` says so."""
    kwargs.setdefault("allow_redirects", False)
    end = time.monotonic() + max(0.0, timeout)
    box: Dict[str, Any] = {}

    def fetch() -> Answer:
        left = max(0.05, end - time.monotonic())
        response = http.request(method, url, stream=True, timeout=(min(connect_timeout, left), left), **kwargs)
        box["connection"] = getattr(response.raw, "connection", None) or box.get("connection")
        try:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(f"the answer is larger than {max_bytes} bytes")
            chunks, size = [], 0
            for chunk in response.iter_content(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"the answer is larger than {max_bytes} bytes")
                if time.monotonic() > end:
                    raise OutOfTime(f"no complete answer within {timeout:g} s")
                chunks.append(chunk)
            return Answer(response.status_code, response.headers, b"".join(chunks))
        finally:
            response.close()

    return bounded(fetch, timeout, end=end, box=box)


def bounded(fetch: Callable[[], T], timeout: float, *, end: Optional[float] = None,
            box: Optional[Dict[str, Any]] = None) -> T:
    """``fetch()`` (one HTTP exchange over connections from :func:`tracking_pools`) on a worker
    thread, bounded by ``timeout`` seconds of wall-clock time: at the deadline its connection is shut
    down, whatever phase it is in, and :class:`OutOfTime` is raised."""
    end = time.monotonic() + max(0.0, timeout) if end is None else end
    box = {} if box is None else box
    done = threading.Event()

    def work() -> None:
        _current.box = box
        try:
            box["answer"] = fetch()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = e
        finally:
            _current.box = None
            done.set()

    worker = threading.Thread(target=work, name="enadu-http", daemon=True)
    worker.start()
    if not done.wait(max(0.0, end - time.monotonic())):
        box["abandoned"] = True
        _cut(box)
        raise OutOfTime(f"no complete answer within {timeout:g} s")
    if "error" in box:
        error = box.pop("error")
        if box.get("abandoned"):
            raise OutOfTime(f"no complete answer within {timeout:g} s")
        raise error
    return box["answer"]
