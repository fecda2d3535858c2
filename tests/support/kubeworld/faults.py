"""Seeded, reproducible fault injection for the emulated API server.

A real control plane fails in a handful of ways a deploy tool must survive: 500 from an etcd
hiccup, 503 while an apiserver restarts, 429 from API Priority and Fairness with a `Retry-After`
header (https://kubernetes.io/docs/concepts/cluster-administration/flow-control/), 409 when another
writer won the race, slow answers, dropped connections, and watch streams that end mid-way (every
watch does at its timeout; load balancers cut them sooner). Each rule matches requests by verb,
resource, name and path, fires with a probability drawn from one seeded RNG (so a run is
reproducible request by request), and can fire before the request is handled (nothing was written)
or after (the write happened but the client never learns it: the ambiguous failure idempotent code
must handle).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import List, Optional

from .errors import ApiError


@dataclass
class Fault:
    """One rule. `status` 0 with `drop=False` and only `latency` set just slows requests."""

    verb: str = "*"  # get, list, watch, create, update, patch, delete, deletecollection, proxy, or "*"
    resource: str = "*"  # plural ("deployments"), "deployments/status", or "*"
    name: str = "*"
    path: str = ""  # a regular expression searched in the request path, "" for any
    namespace: str = "*"
    status: int = 0  # 409, 429, 500, 503 (or any code): answer this error
    retry_after: Optional[int] = None  # seconds, for 429/503 (header and details.retryAfterSeconds)
    latency: float = 0.0  # seconds to wait before handling
    drop: bool = False  # close the connection without an answer
    cut_watch_after: Optional[int] = None  # watches: close the stream abruptly after this many events
    cut_watch_seconds: Optional[float] = None  # watches: close the stream abruptly after this long
    phase: str = "before"  # "before" handling (nothing written) or "after" (written, answer lost)
    probability: float = 1.0
    times: Optional[int] = None  # fire at most this many times (None: unlimited)
    after: int = 0  # let this many matching requests through first
    fired: int = field(default=0, init=False)
    seen: int = field(default=0, init=False)

    def matches(self, info) -> bool:
        if self.verb != "*" and self.verb != info.verb:
            return False
        if self.resource != "*":
            want = self.resource
            have = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
            if want != have and not (("/" not in want) and want == info.resource and not info.subresource):
                return False
        if self.name != "*" and self.name != info.name:
            return False
        if self.namespace != "*" and self.namespace != info.namespace:
            return False
        if self.path and not re.search(self.path, info.path):
            return False
        return True

    def error(self) -> ApiError:
        if self.status == 429:
            return ApiError.too_many_requests(self.retry_after or 1)
        if self.status == 503:
            return ApiError.service_unavailable(retry_after=self.retry_after)
        if self.status == 500:
            return ApiError.internal("etcdserver: request timed out")
        if self.status == 409:
            return ApiError(409, "Conflict", "Operation cannot be fulfilled: the object has been modified; "
                            "please apply your changes to the latest version and try again")
        if self.status == 504:
            return ApiError(504, "Timeout", "Timeout: request did not complete within the allotted timeout")
        return ApiError(self.status, "InternalError", f"injected fault {self.status}")


class Faults:
    """The rule set; thread-safe, since tests add rules while the server answers."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.rules: List[Fault] = []
        self.log: List[tuple] = []  # (request seq, rule index, what) for every fired fault

    def add(self, fault: Optional[Fault] = None, **kw) -> Fault:
        rule = fault or Fault(**kw)
        if rule.phase not in ("before", "after"):
            raise ValueError(f"Fault.phase must be 'before' or 'after', not {rule.phase!r}")
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def pick(self, info, phase: str) -> List[Fault]:
        """The rules that fire for this request in this phase (consuming their budgets)."""
        fired = []
        with self._lock:
            for i, rule in enumerate(self.rules):
                acts_in = rule.phase if (rule.status or rule.drop) else "before"
                if acts_in != phase:
                    continue
                if not rule.matches(info):
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                fired.append(rule)
                self.log.append((info.seq, i, phase))
        return fired
