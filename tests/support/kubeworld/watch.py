"""Watch streams: `GET ...?watch=true`, answered as a chunked stream of JSON events.

Semantics from https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
and staging/src/k8s.io/apiserver/pkg/endpoints/handlers/watch.go (`serveWatch`, `WatchServer.HandleHTTP`):
- `resourceVersion` unset or "0": synthetic ADDED events for every matching object, then changes;
  a specific version: every change after it; too old: one ERROR event carrying a 410 Expired
  Status ("too old resource version: X (Y)") and the end of the stream, as the watch cache answers;
- `allowWatchBookmarks=true`: BOOKMARK events whose object carries only kind, apiVersion and
  metadata.resourceVersion (the real server sends them about once a minute; here every
  `bookmark_interval` seconds);
- `sendInitialEvents=true` (watch-list, KEP-3157): the initial ADDED events end with a BOOKMARK
  annotated `k8s.io/initial-events-end: "true"`;
- `timeoutSeconds`: the server ends the stream cleanly after that long (default: the server's
  min-request-timeout, 1800 s);
- a selector change makes objects enter (ADDED) and leave (DELETED) the watched set (store.py).
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from typing import List, Optional

from aiohttp import web

from . import tables
from .errors import ApiError
from .selectors import make_filter

DEFAULT_TIMEOUT = 1800.0


def _true(value) -> bool:
    return value in ("true", "True", "1")


def _event(etype: str, obj: dict) -> bytes:
    return (json.dumps({"type": etype, "object": obj}) + "\n").encode()


async def serve_watch(server, request, res, namespace: Optional[str], query: dict, info, cuts: List) -> web.StreamResponse:
    world = server.world
    store = world.store
    name = info.name
    field_selector = query.get("fieldSelector", "")
    if name:  # watching one object: GET .../deployments/NAME?watch=true
        field_selector = ",".join(x for x in (field_selector, f"metadata.name={name}") if x)
    accept = make_filter(query.get("labelSelector", ""), field_selector, res.key)
    as_table = "as=Table" in request.headers.get("Accept", "")
    rv_text = query.get("resourceVersion", "")
    initial: List[dict] = []
    since: Optional[int]
    if rv_text in ("", "0") or _true(query.get("sendInitialEvents")):
        initial = [copy.deepcopy(o) for o in store.list(res.key, namespace) if accept(o)]
        since = store.rv
    else:
        try:
            since = int(rv_text)
        except ValueError:
            raise ApiError.bad_request(f"invalid resource version: {rv_text}") from None
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                       "Transfer-Encoding": "chunked"})
    try:
        watcher = store.open_watch(res.key, namespace, accept, since)
    except LookupError as e:
        await response.prepare(request)
        gone = ApiError.expired(f"too old resource version: {since} ({e.args[0]})").status()
        await response.write(_event("ERROR", gone))
        await response.write_eof()
        return response

    def shape(obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        if as_table:
            return tables.to_table(res, [obj], "Object", {}, world.registry.clock())
        return obj

    timeout = float(query.get("timeoutSeconds") or DEFAULT_TIMEOUT)
    deadline = time.monotonic() + timeout
    bookmarks = _true(query.get("allowWatchBookmarks"))
    cut_after = min((r.cut_watch_after for r in cuts if r.cut_watch_after is not None), default=None)
    cut_at = min((time.monotonic() + r.cut_watch_seconds for r in cuts if r.cut_watch_seconds is not None), default=None)
    sent = 0
    task = asyncio.current_task()
    server.watch_tasks.add(task)
    try:
        await response.prepare(request)
        for obj in initial:
            await response.write(_event("ADDED", shape(obj)))
            sent += 1
            if cut_after is not None and sent >= cut_after:
                return _cut(request, response, info)
        if _true(query.get("sendInitialEvents")) and bookmarks:
            mark = {"kind": res.kind, "apiVersion": res.api_version,
                    "metadata": {"resourceVersion": str(since), "annotations": {"k8s.io/initial-events-end": "true"}}}
            await response.write(_event("BOOKMARK", mark))
        next_bookmark = time.monotonic() + world.bookmark_interval
        while not server.closing:
            now = time.monotonic()
            if cut_at is not None and now >= cut_at:
                return _cut(request, response, info)
            wake = min(deadline, next_bookmark if bookmarks else deadline, cut_at or deadline)
            if now >= deadline:
                break
            try:
                if watcher.queue.empty():
                    async with asyncio.timeout(max(0.0, wake - now)):  # not wait_for: see control.py
                        event = await watcher.queue.get()
                else:
                    event = watcher.queue.get_nowait()
            except TimeoutError:
                if bookmarks and time.monotonic() >= next_bookmark and watcher.queue.empty():
                    mark = {"kind": res.kind, "apiVersion": res.api_version,
                            "metadata": {"resourceVersion": str(store.rv)}}
                    await response.write(_event("BOOKMARK", mark))
                    next_bookmark = time.monotonic() + world.bookmark_interval
                continue
            if event is None:  # the server is shutting down
                break
            etype, obj = event
            await response.write(_event(etype, shape(obj)))
            sent += 1
            if cut_after is not None and sent >= cut_after:
                return _cut(request, response, info)
        await response.write_eof()
        return response
    except (ConnectionResetError, asyncio.CancelledError):
        return response
    finally:
        store.close_watch(watcher)
        server.watch_tasks.discard(task)


def _cut(request, response, info) -> web.StreamResponse:
    """End the stream without the terminating chunk, as a dropped connection looks to a client."""
    info.faults.append("cut-watch")
    if request.transport is not None:
        request.transport.abort()
    return response
