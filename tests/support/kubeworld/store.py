"""The object store: what etcd plus the API server's watch cache are to a real cluster.

One global resourceVersion counter (etcd's revision), objects kept as JSON-shaped dicts, and a
bounded per-resource event history that watches replay from. Watch semantics follow
https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes and the
cacher (staging/src/k8s.io/apiserver/pkg/storage/cacher/cacher.go, watch_cache.go):
- a watch from resourceVersion N gets every event after N, in order;
- a watch from a version older than the retained window fails with 410 "too old resource version";
- a watcher with a selector sees an object that stops matching as DELETED and one that starts
  matching as ADDED (cacher.go `filterWithAttrsFunction`, `cacheWatcher.convertToWatchEvent`).

Everything here runs on the world's event loop thread; nothing locks.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Set, Tuple

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"

Listener = Callable[[str, str, dict, Optional[dict]], None]


class Watcher:
    """One open watch: a queue the HTTP handler drains, and the filter it was opened with."""

    def __init__(self, key: str, namespace: Optional[str], accept: Callable[[dict], bool]) -> None:
        self.key = key
        self.namespace = namespace
        self.accept = accept
        self.queue: asyncio.Queue = asyncio.Queue()
        self.closed = False

    def _in_scope(self, obj: Optional[dict]) -> bool:
        if obj is None:
            return False
        if self.namespace and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.accept(obj)

    def translate(self, etype: str, obj: dict, prev: Optional[dict]) -> Optional[Tuple[str, dict]]:
        now, before = self._in_scope(obj), self._in_scope(prev)
        if etype == DELETED:
            return (DELETED, obj) if now or before else None
        if now and before:
            return MODIFIED, obj
        if now:
            return ADDED, obj
        if before:
            return DELETED, obj
        return None

    def offer(self, etype: str, obj: dict, prev: Optional[dict]) -> None:
        if self.closed:
            return
        event = self.translate(etype, obj, prev)
        if event:
            self.queue.put_nowait(event)


class Store:
    def __init__(self, history_limit: int = 1000) -> None:
        self.rv = 100  # a fresh etcd starts low; any positive integer is a valid opaque version
        self.history_limit = history_limit
        self.objects: Dict[str, Dict[Tuple[str, str], dict]] = {}
        self.history: Dict[str, Deque[Tuple[int, str, dict, Optional[dict]]]] = {}
        self.compacted: Dict[str, int] = {}
        self.watchers: Dict[str, Set[Watcher]] = {}
        self.listeners: List[Listener] = []

    # -- reads (return the stored dict: callers copy before changing it) --

    def get(self, key: str, namespace: str, name: str) -> Optional[dict]:
        return self.objects.get(key, {}).get((namespace or "", name))

    def list(self, key: str, namespace: Optional[str] = None) -> List[dict]:
        items = self.objects.get(key, {})
        out = [o for (ns, _), o in items.items() if not namespace or ns == namespace]
        out.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return out

    # -- writes --

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def put(self, key: str, obj: dict) -> dict:
        """Store `obj` (ADDED or MODIFIED), stamping a new resourceVersion; returns a copy."""
        meta = obj["metadata"]
        ident = (meta.get("namespace", ""), meta["name"])
        prev = self.objects.setdefault(key, {}).get(ident)
        meta["resourceVersion"] = str(self.next_rv())
        stored = copy.deepcopy(obj)
        self.objects[key][ident] = stored
        self._commit(key, MODIFIED if prev is not None else ADDED, stored, prev)
        return copy.deepcopy(stored)

    def remove(self, key: str, namespace: str, name: str) -> Optional[dict]:
        prev = self.objects.get(key, {}).pop((namespace or "", name), None)
        if prev is None:
            return None
        gone = copy.deepcopy(prev)
        gone["metadata"]["resourceVersion"] = str(self.next_rv())
        self._commit(key, DELETED, gone, prev)
        return copy.deepcopy(gone)

    def _commit(self, key: str, etype: str, obj: dict, prev: Optional[dict]) -> None:
        hist = self.history.setdefault(key, deque())
        hist.append((int(obj["metadata"]["resourceVersion"]), etype, obj, prev))
        while len(hist) > self.history_limit:
            rv, *_ = hist.popleft()
            self.compacted[key] = rv
        for w in list(self.watchers.get(key, ())):
            w.offer(etype, obj, prev)
        for fn in list(self.listeners):
            fn(key, etype, obj, prev)

    # -- watches --

    def open_watch(self, key: str, namespace: Optional[str], accept: Callable[[dict], bool],
                   since: Optional[int]) -> Watcher:
        """Register a watcher; replay history after `since` (None: no replay).

        Raises LookupError(oldest) when `since` is older than the retained window.
        """
        w = Watcher(key, namespace, accept)
        if since is not None:
            floor = self.compacted.get(key, 0)
            if since < floor:
                raise LookupError(floor + 1)
            for rv, etype, obj, prev in self.history.get(key, ()):
                if rv > since:
                    w.offer(etype, obj, prev)
        self.watchers.setdefault(key, set()).add(w)
        return w

    def close_watch(self, w: Watcher) -> None:
        w.closed = True
        self.watchers.get(w.key, set()).discard(w)

    def compact(self) -> int:
        """Forget every retained event (etcd compaction); older versions now answer 410."""
        for key in set(self.history) | set(self.objects):
            self.history[key] = deque()
            self.compacted[key] = self.rv
        return self.rv

    def snapshot(self) -> Dict[str, List[dict]]:
        return {key: copy.deepcopy(self.list(key)) for key in sorted(self.objects)}
