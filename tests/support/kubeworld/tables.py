"""Server-side printing: meta.k8s.io/v1 Tables for `kubectl get`.

kubectl get asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints whatever columns the
server returns. The columns and cell formats here are those of pkg/printers/internalversion/printers.go
(`AddHandlers`: podColumnDefinitions, deploymentColumnDefinitions, replicaSetColumnDefinitions,
serviceColumnDefinitions, endpointColumnDefinitions, endpointSliceColumnDefinitions,
namespaceColumnDefinitions, eventColumnDefinitions, leaseColumnDefinitions,
persistentVolumeClaimColumnDefinitions,
horizontalPodAutoscalerColumnDefinitions; `printPod` for the STATUS reason), and ages are rendered
like apimachinery/pkg/util/duration `HumanDuration`.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

from .registry import parse_time
from .selectors import selector_string


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 60 * 2:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 60 * 3:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    return f"{h // 24}d"


def _age(obj: dict, now: float) -> str:
    created = parse_time(obj["metadata"].get("creationTimestamp"))
    return human_duration(now - created) if created else "<unknown>"


def _pod_status(pod: dict) -> Tuple[str, str, int]:
    """(ready "x/y", STATUS reason, restarts) after printPod."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(c.get("restartCount", 0) for c in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    has_running = False
    for c in reversed(statuses):
        state = c.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            t = state["terminated"]
            reason = t.get("reason") or (f"Signal:{t['signal']}" if t.get("signal") else f"ExitCode:{t.get('exitCode')}")
        elif state.get("running") and c.get("ready"):
            has_running = True
    if reason == "Completed" and has_running:
        reason = "Running"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return f"{ready}/{total}", reason, restarts


def _images(spec: dict) -> Tuple[str, str]:
    cs = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _ports(svc: dict) -> str:
    out = []
    for p in (svc.get("spec") or {}).get("ports") or []:
        text = f"{p.get('port')}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort"):
            text = f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        out.append(text)
    return ",".join(out) or "<none>"


def _endpoints(ep: dict) -> str:
    addrs = []
    for subset in ep.get("subsets") or []:
        for a in subset.get("addresses") or []:
            for p in subset.get("ports") or [{}]:
                addrs.append(f"{a['ip']}:{p.get('port')}" if p.get("port") else a["ip"])
    if not addrs:
        return "<none>"
    return ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")


Column = Tuple[str, str, str, int]  # name, type, format, priority
Printer = Tuple[List[Column], Callable[[dict, float], list]]


ACCESS_MODE_ABBREVIATIONS = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                             "ReadWriteOncePod": "RWOP"}


def _cols(*names, wide=()) -> List[Column]:
    out = [(n, "integer" if n in ("Restarts", "Desired", "Current", "Ready#", "MinPods", "MaxPods", "Replicas")
            else "string", "name" if n == "Name" else "", 0) for n in names]
    out += [(n, "string", "", 1) for n in wide]
    return out


PRINTERS: Dict[str, Printer] = {
    "Pod": (_cols("Name", "Ready", "Status", "Restarts", "Age", wide=("IP", "Node", "Nominated Node", "Readiness Gates")),
            lambda o, now: [o["metadata"]["name"], *_pod_status(o), _age(o, now),
                            (o.get("status") or {}).get("podIP") or "<none>", (o.get("spec") or {}).get("nodeName") or "<none>",
                            "<none>", "<none>"]),
    "Deployment": (_cols("Name", "Ready", "Up-to-date", "Available", "Age", wide=("Containers", "Images", "Selector")),
                   lambda o, now: [o["metadata"]["name"],
                                   f"{(o.get('status') or {}).get('readyReplicas', 0)}/{o['spec'].get('replicas', 0)}",
                                   (o.get("status") or {}).get("updatedReplicas", 0),
                                   (o.get("status") or {}).get("availableReplicas", 0), _age(o, now),
                                   *_images(o["spec"]), selector_string(o["spec"].get("selector") or {})]),
    "ReplicaSet": (_cols("Name", "Desired", "Current", "Ready", "Age", wide=("Containers", "Images", "Selector")),
                   lambda o, now: [o["metadata"]["name"], o["spec"].get("replicas", 0),
                                   (o.get("status") or {}).get("replicas", 0),
                                   (o.get("status") or {}).get("readyReplicas", 0), _age(o, now),
                                   *_images(o["spec"]), selector_string(o["spec"].get("selector") or {})]),
    "Service": (_cols("Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", wide=("Selector",)),
                lambda o, now: [o["metadata"]["name"], o["spec"].get("type", "ClusterIP"),
                                o["spec"].get("clusterIP") or "<none>", "<none>", _ports(o), _age(o, now),
                                ",".join(f"{k}={v}" for k, v in sorted((o["spec"].get("selector") or {}).items())) or "<none>"]),
    "Endpoints": (_cols("Name", "Endpoints", "Age"),
                  lambda o, now: [o["metadata"]["name"], _endpoints(o), _age(o, now)]),
    "EndpointSlice": (_cols("Name", "AddressType", "Ports", "Endpoints", "Age"),
                      lambda o, now: [o["metadata"]["name"], o.get("addressType", "IPv4"),
                                      ",".join(str(p.get("port")) for p in o.get("ports") or []) or "<unset>",
                                      ",".join(a for e in o.get("endpoints") or [] for a in e.get("addresses", [])) or "<unset>",
                                      _age(o, now)]),
    "Namespace": (_cols("Name", "Status", "Age"),
                  lambda o, now: [o["metadata"]["name"], (o.get("status") or {}).get("phase", "Active"), _age(o, now)]),
    "Event": (_cols("Last Seen", "Type", "Reason", "Object", "Message"),
              lambda o, now: [human_duration(now - (parse_time(o.get("lastTimestamp")) or now)), o.get("type", ""),
                              o.get("reason", ""),
                              f"{(o.get('involvedObject') or {}).get('kind', '').lower()}/{(o.get('involvedObject') or {}).get('name', '')}",
                              (o.get("message") or "").strip()]),
    # printPersistentVolumeClaim: Terminating while deleted, the capacity only once bound, access modes
    # as helper.GetAccessModesAsString abbreviates them, "<unset>" without a VolumeAttributesClass
    "PersistentVolumeClaim": (
        _cols("Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass", "VolumeAttributesClass", "Age",
              wide=("VolumeMode",)),
        lambda o, now: [o["metadata"]["name"],
                        "Terminating" if o["metadata"].get("deletionTimestamp") else (o.get("status") or {}).get("phase", ""),
                        (o.get("spec") or {}).get("volumeName", ""),
                        ((o.get("status") or {}).get("capacity") or {}).get("storage", "")
                        if (o.get("spec") or {}).get("volumeName") else "",
                        ",".join(ACCESS_MODE_ABBREVIATIONS.get(m, m) for m in (o.get("status") or {}).get("accessModes") or []),
                        (o.get("spec") or {}).get("storageClassName") or "",
                        (o.get("spec") or {}).get("volumeAttributesClassName") or "<unset>",
                        _age(o, now), (o.get("spec") or {}).get("volumeMode", "")]),
    "Lease": (_cols("Name", "Holder", "Age"),
              lambda o, now: [o["metadata"]["name"], (o.get("spec") or {}).get("holderIdentity") or "", _age(o, now)]),
    "HorizontalPodAutoscaler": (
        _cols("Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"),
        lambda o, now: [o["metadata"]["name"],
                        f"{o['spec']['scaleTargetRef'].get('kind')}/{o['spec']['scaleTargetRef'].get('name')}",
                        "<unknown>", o["spec"].get("minReplicas", 1), o["spec"].get("maxReplicas"),
                        (o.get("status") or {}).get("currentReplicas", 0), _age(o, now)]),
}


def to_table(res, items: List[dict], include: str, list_meta: dict, now: float) -> dict:
    cols, row_fn = PRINTERS.get(res.kind, (_cols("Name", "Age"), lambda o, n: [o["metadata"]["name"], _age(o, n)]))
    rows = []
    for obj in items:
        row = {"cells": row_fn(obj, now)}
        if include == "Object":
            full = dict(obj)
            full.setdefault("apiVersion", res.api_version)
            full.setdefault("kind", res.kind)
            row["object"] = full
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        rows.append(row)
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {k: v for k, v in list_meta.items() if k in ("resourceVersion", "continue", "remainingItemCount")},
        "columnDefinitions": [{"name": n, "type": t, "format": f, "description": n, "priority": p} for n, t, f, p in cols],
        "rows": rows,
    }
