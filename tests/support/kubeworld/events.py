"""Events the controllers and the kubelet record, as `kubectl describe` shows them.

Shape and naming follow client-go tools/record (event.go `makeEvent`: name `<object>.<hex unix
nanos>`, firstTimestamp/lastTimestamp/count) and its correlator's aggregation of repeats
(events_cache.go `EventCorrelator`: the same source, object, type, reason and message bump `count`
on the existing Event instead of creating a new one). Reasons and messages are those of the real
components, cited where each is recorded.
"""

from __future__ import annotations

import time
from typing import Dict, Tuple

from . import resources as R
from .registry import rfc3339


class EventRecorder:
    def __init__(self, world) -> None:
        self.world = world
        self._seen: Dict[Tuple[str, str, str, str], str] = {}  # (uid, reason, message, component) -> event name

    def record(self, obj: dict, etype: str, reason: str, message: str, component: str) -> None:
        world = self.world
        res_events = R.BY_KEY["core/events"]
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        key = (meta.get("uid", ""), reason, message, component)
        now = rfc3339(world.registry.clock())
        existing_name = self._seen.get(key)
        if existing_name:
            ev = world.store.get(res_events.key, ns, existing_name)
            if ev is not None:
                ev = dict(ev)
                ev["count"] = ev.get("count", 1) + 1
                ev["lastTimestamp"] = now
                world.store.put(res_events.key, ev)
                return
        name = f"{meta['name']}.{time.time_ns():x}"
        res = R.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {"kind": obj.get("kind", res.kind if res else ""), "namespace": ns, "name": meta["name"],
                               "uid": meta.get("uid", ""), "apiVersion": obj.get("apiVersion", ""),
                               "resourceVersion": meta.get("resourceVersion", "")},
            "reason": reason, "message": message, "type": etype,
            "source": {"component": component, **({"host": "kubeworld-node"} if component == "kubelet" else {})},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "eventTime": None, "reportingComponent": component, "reportingInstance": "",
        }
        try:
            world.registry.create(res_events, ns, event)
        except Exception:  # an event is best effort, as in client-go (a full namespace drops it)
            return
        self._seen[key] = name
