"""Wait for cluster state with watches, not sleep-polling.

A deploy waits on conditions that span several objects (a Deployment *and* its pods; a Service's
EndpointSlices *and* the pods they point at). Each kind is followed by one :class:`Watcher` thread
doing what client-go's reflector does: list, then watch from the list's resourceVersion, and list
again when the watch expires (410 Gone), is cut, or times out. Every watch is bounded by
``timeoutSeconds`` and ``_request_timeout`` (a watch without them can hang forever). The threads feed
one queue; :class:`Informer` keeps a cache per kind and re-evaluates the caller's condition after
every change, so the wait ends as soon as the state allows, and never later than the deadline.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Dict, Tuple

from .. import retry
from ..errors import ClusterError, HelperError
from .client import Kube, api_failure, classify

WATCH_SECONDS = 20  # server-side bound of one watch request; the thread then re-watches


class Watcher(threading.Thread):
    """Lists then watches one kind of object, putting ``(source, type, payload)`` on a queue.

    ``type`` is ``SYNC`` (payload: the full list of items), ``ADDED``/``MODIFIED``/``DELETED``
    (payload: the object) or ``ERROR`` (payload: a HelperError; the thread then ends).
    """

    def __init__(self, kube: Kube, source: str, list_fn: Callable[..., Any], events: "queue.Queue",
                 stop: threading.Event, **selectors: str) -> None:
        super().__init__(name=f"watch-{source}", daemon=True)
        self.kube = kube
        self.source = source
        self.list_fn = list_fn
        self.events = events
        self.stop_event = stop
        self.selectors = selectors

    def run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        failures = 0
        while not self.stop_event.is_set():
            try:
                listing = self.kube.call(f"list {self.source}", self.list_fn, self.kube.namespace, **self.selectors)
                self.events.put((self.source, "SYNC", listing.get("items") or []))
                version = listing["metadata"]["resourceVersion"]
                failures = 0
                while not self.stop_event.is_set():
                    stream = watch.Watch()
                    for event in stream.stream(self.list_fn, self.kube.namespace, resource_version=version,
                                               timeout_seconds=WATCH_SECONDS, allow_watch_bookmarks=True,
                                               _request_timeout=(5, WATCH_SECONDS + 5), **self.selectors):
                        obj = event["raw_object"]
                        version = obj.get("metadata", {}).get("resourceVersion", version)
                        if event["type"] != "BOOKMARK":
                            self.events.put((self.source, event["type"], obj))
                        if self.stop_event.is_set():
                            stream.stop()
                            break
            except HelperError as e:  # from kube.call: already retried and translated
                self.events.put((self.source, "ERROR", e))
                return
            except ApiException as e:
                if e.status == 410 or classify(e) is not None:
                    failures += 1  # expired or transient: list again (after a backoff if it keeps failing)
                else:
                    self.events.put((self.source, "ERROR", api_failure(e, f"watch {self.source}")))
                    return
            except Exception as e:  # noqa: BLE001 - a cut stream surfaces as many urllib3/http types
                if classify(e) is None and not isinstance(e, (ValueError, KeyError)):
                    self.events.put((self.source, "ERROR", ClusterError(f"watch {self.source}: {type(e).__name__}")))
                    return
                failures += 1
            if failures:
                backoffs = retry.Policy().backoffs
                self.stop_event.wait(backoffs[min(failures, len(backoffs)) - 1])


class Informer:
    """Caches of watched objects, by source and name, and a wait loop over them."""

    def __init__(self, kube: Kube, log: Callable[[str], None]) -> None:
        self.kube = kube
        self.log = log
        self.events: "queue.Queue[Tuple[str, str, Any]]" = queue.Queue()
        self.stop_event = threading.Event()
        self.caches: Dict[str, Dict[str, Dict[str, Any]]] = {}
        self.synced: set = set()

    def watch(self, source: str, list_fn: Callable[..., Any], **selectors: str) -> "Informer":
        self.caches[source] = {}
        Watcher(self.kube, source, list_fn, self.events, self.stop_event, **selectors).start()
        return self

    def __enter__(self) -> "Informer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_event.set()  # threads end after their current watch request (bounded)

    def _apply(self, source: str, kind: str, payload: Any) -> None:
        cache = self.caches[source]
        if kind == "SYNC":
            cache.clear()
            for obj in payload:
                cache[obj["metadata"]["name"]] = obj
            self.synced.add(source)
        elif kind == "DELETED":
            cache.pop(payload["metadata"]["name"], None)
        elif kind == "ERROR":
            raise payload
        else:
            cache[payload["metadata"]["name"]] = payload

    def wait(self, check: Callable[[Dict[str, Dict[str, Dict[str, Any]]]], Tuple[bool, str]], *, deadline: float,
             timeout_message: Callable[[str], HelperError], recheck: float = 0.0) -> str:
        """Call ``check(caches)`` after every change until it returns ``(True, message)``.

        ``recheck`` (seconds, 0 for never): also call it when nothing changed for that long, for a
        ``check`` that judges how long a state has lasted.

        ``check`` returns ``(done, status line)`` or raises to fail fast; the status line is logged
        whenever it changes. Past ``deadline`` (a ``time.monotonic()`` value), raises
        ``timeout_message(last status line)``.
        """
        last = ""
        while True:
            remaining = deadline - time.monotonic()
            try:
                wait = min(remaining, recheck) if recheck > 0 and self.synced == set(self.caches) else remaining
                source, kind, payload = self.events.get(timeout=max(0.0, wait))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise timeout_message(last) from None
                source, kind, payload = "", "", None  # nothing changed: judge again
            if source:
                self._apply(source, kind, payload)
            while not self.events.empty():  # apply everything already queued before judging
                self._apply(*self.events.get_nowait())
            if self.synced != set(self.caches):
                continue
            done, status = check(self.caches)
            if status and status != last:
                self.log(status)
                last = status
            if done:
                return status
            if time.monotonic() >= deadline:  # a steady stream of events must not carry us past it
                raise timeout_message(last)
