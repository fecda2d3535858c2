"""The API request log: every HTTP request the emulated API server saw, in order.

Tests use it to count what a client did ("how many API requests did the deploy make?"), to
enumerate the writes a client makes (crash-consistency tests kill the client after each one), and to
run code at the exact moment a write is committed, before its answer leaves the server
(`on_write`). The verb is the Kubernetes verb the real server's RequestInfoFactory derives
(staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go `NewRequestInfo`): get, list, watch,
create, update, patch, delete, deletecollection; requests outside the resource tree are "get" with
`resource == ""`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, List, Optional

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass
class RequestInfo:
    seq: int
    time: float  # seconds since the world started
    method: str
    path: str
    query: str
    verb: str
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    api_group: str = ""
    user_agent: str = ""
    user: str = ""
    content_type: str = ""
    body: bytes = b""
    status: int = 0  # the status the server's handler produced (0 while in flight or if never handled)
    answered: int = 0  # the status the client saw (differs after an injected fault; -1: dropped)
    faults: List[str] = field(default_factory=list)

    @property
    def write(self) -> bool:
        """True for requests that may change state (proxied requests are not API writes)."""
        return (self.verb in WRITE_VERBS and self.subresource != "proxy"
                and self.resource not in ("selfsubjectaccessreviews",))  # a question, stored nowhere

    @property
    def committed(self) -> bool:
        """A write the server applied (2xx), whether or not the client got the answer."""
        return self.write and 200 <= self.status < 300

    def describe(self) -> str:
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"#{self.seq} {self.verb} {what} {where} -> {self.answered}"


WriteHook = Callable[[RequestInfo], None]


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: List[RequestInfo] = []
        self._hooks: List[WriteHook] = []
        self._seq = 0

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def add(self, info: RequestInfo) -> None:
        with self._lock:
            self.entries.append(info)

    def on_write(self, hook: WriteHook) -> Callable[[], None]:
        """Call `hook(info)` on the server's thread right after each committed API write, before
        the answer is sent. Returns a function that removes the hook."""
        with self._lock:
            self._hooks.append(hook)

        def remove() -> None:
            with self._lock:
                if hook in self._hooks:
                    self._hooks.remove(hook)

        return remove

    def fire_write_hooks(self, info: RequestInfo) -> None:
        with self._lock:
            hooks = list(self._hooks)
        for hook in hooks:
            hook(info)

    # -- queries (copies, safe from any thread) --

    def all(self, user_agent: Optional[str] = None) -> List[RequestInfo]:
        with self._lock:
            items = list(self.entries)
        if user_agent is not None:
            items = [i for i in items if user_agent in i.user_agent]
        return items

    def writes(self, user_agent: Optional[str] = None) -> List[RequestInfo]:
        return [i for i in self.all(user_agent) if i.write]

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()
