"""Endpoints and EndpointSlice controllers, from Service selectors and pod readiness.

- Endpoints: pkg/controller/endpoint/endpoints_controller.go `syncService`. Pods without an IP,
  terminal pods and pods being deleted are left out (pkg/api/v1/endpoints... `ShouldPodBeInEndpoints`,
  unless `publishNotReadyAddresses`); ready pods go to `addresses`, the others to
  `notReadyAddresses`; each service port resolves its targetPort against the pod
  (pkg/api/v1/pod/util.go `FindPort`: a number as is, a name through the container ports).
- EndpointSlices: pkg/controller/endpointslice/reconciler.go and staging/src/k8s.io/endpointslice/utils.go
  `podToEndpoint`: terminating pods stay listed with conditions ready=false, serving=<pod ready>,
  terminating=true, so kube-proxy can fall back to them; slices are named `<service>-<random>`,
  labelled `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`, owned by the
  Service.
Services without a selector are left alone (their endpoints are the user's).

The world's ``endpoints_controller`` knob (False) runs without the Endpoints controller, as a
kube-controller-manager started with ``--controllers=*,-endpoints-controller`` (deprecated API since
1.33, KEP-4974): no Endpoints object is written. Past ``endpoints_max_capacity`` addresses (real:
``maxCapacity = 1000``) the controller truncates the object and annotates it
``endpoints.kubernetes.io/over-capacity: truncated`` (endpoints_controller.go ``syncService`` and
``truncateEndpoints``, which keeps ready addresses before not-ready ones and spreads the cut over the
subsets in proportion; here the cut walks the subsets in order, ready addresses first).

Each controller has its own ``lag`` (lag.py :class:`Lag`, seeded independently; the world's
``lag`` knob and ``set_lag``): the two are separate
controllers in kube-controller-manager with their own informers and work queues
(pkg/controller/endpoint/endpoints_controller.go and pkg/controller/endpointslice/
endpointslice_controller.go each ``queue.AddAfter``/``AddRateLimited`` a Service key and sync it from
their own listers), so in a loaded cluster one can write a Service's change seconds after the other.
Up to 1.36 the API server's service proxy routes by the Endpoints object (dataplane.py), kube-proxy
by the slices: with ``endpoints`` lagging, the slices already list the new pods while the proxy
still reaches the old ones. From 1.37 the proxy routes by the slices too (kubernetes#134860).
"""

from __future__ import annotations

import copy
from typing import Dict, List, Optional, Tuple

from . import resources as R
from .errors import ApiError
from .lag import Lag  # noqa: F401  (the controllers' `lag`; re-exported for callers of endpoints.Lag)
from .replicaset import pod_ready
from .selectors import label_selector_to_reqs, matches_labels

SVC = R.BY_KEY["core/services"]
EP = R.BY_KEY["core/endpoints"]
SLICE = R.BY_KEY["discovery.k8s.io/endpointslices"]
POD = R.BY_KEY["core/pods"]
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"  # staging/src/k8s.io/api/core/v1/annotation_key_constants.go
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"


def find_port(pod: dict, target) -> Optional[int]:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in pod["spec"].get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return p.get("containerPort")
    return None


def _selected_pods(store, svc: dict) -> List[dict]:
    selector = (svc.get("spec") or {}).get("selector")
    reqs = label_selector_to_reqs({"matchLabels": selector})
    return [p for p in store.list(POD.key, svc["metadata"]["namespace"])
            if matches_labels(reqs, p["metadata"].get("labels"))]


def _target_ref(pod: dict) -> dict:
    return {"kind": "Pod", "namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"],
            "uid": pod["metadata"]["uid"]}


def _terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class EndpointsController:
    def __init__(self, world) -> None:
        self.world = world
        self.reg = world.registry
        self.lag = world.lags["endpoints"]  # lag.py: one mechanism for every controller

    def sync(self) -> None:
        if not self.world.endpoints_controller:
            return  # disabled in kube-controller-manager: nothing writes (or deletes) Endpoints
        store = self.world.store
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in store.list(SVC.key)}
        for svc in services.values():
            if (svc.get("spec") or {}).get("selector"):
                self.sync_service(svc)
        for ep in store.list(EP.key):
            ident = (ep["metadata"]["namespace"], ep["metadata"]["name"])
            if ident not in services and (ep["metadata"].get("labels") or {}).get("endpoints.kubernetes.io/managed-by") \
                    == "endpoint-controller":
                self._delete(EP, ident)

    def _delete(self, res, ident) -> None:
        try:
            self.reg.delete(res, ident[0], ident[1])
        except ApiError as e:
            if e.code != 404:
                raise

    def sync_service(self, svc: dict) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        publish = (svc.get("spec") or {}).get("publishNotReadyAddresses", False)
        groups: Dict[Tuple, Dict[str, list]] = {}
        for pod in _selected_pods(self.world.store, svc):
            ip = (pod.get("status") or {}).get("podIP")
            if not ip or _terminal(pod) or (pod["metadata"].get("deletionTimestamp") and not publish):
                continue
            ports = []
            for sp in svc["spec"].get("ports") or []:
                num = find_port(pod, sp.get("targetPort", sp.get("port")))
                if num is None:
                    continue
                ports.append({"name": sp.get("name", ""), "port": num, "protocol": sp.get("protocol", "TCP")}
                             if sp.get("name") else {"port": num, "protocol": sp.get("protocol", "TCP")})
            if not ports:
                continue
            addr = {"ip": ip, "nodeName": pod["spec"].get("nodeName", ""), "targetRef": _target_ref(pod)}
            key = tuple(sorted((p.get("name", ""), p["port"]) for p in ports))
            group = groups.setdefault(key, {"ports": ports, "addresses": [], "notReadyAddresses": []})
            group["addresses" if publish or pod_ready(pod) else "notReadyAddresses"].append(addr)
        subsets = []
        for key in sorted(groups):
            g = groups[key]
            subset = {"ports": g["ports"]}
            for field in ("addresses", "notReadyAddresses"):
                if g[field]:
                    subset[field] = sorted(g[field], key=lambda a: (a["ip"], a["targetRef"]["uid"]))
            subsets.append(subset)
        truncated = _truncate(subsets, self.world.endpoints_max_capacity)
        labels = dict(svc["metadata"].get("labels") or {})
        labels["endpoints.kubernetes.io/managed-by"] = "endpoint-controller"
        due = self.lag.admit((ns, name), (subsets, labels, truncated))
        if due is None:
            return
        subsets, labels, truncated = due
        current = self.world.store.get(EP.key, ns, name)
        annotations = {OVER_CAPACITY: "truncated"} if truncated else {}
        want = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns, "labels": labels}}
        if annotations:
            want["metadata"]["annotations"] = annotations
        if subsets:
            want["subsets"] = subsets
        if current is None:
            self.reg.create(EP, ns, want)
            return
        had = dict(current["metadata"].get("annotations") or {})
        now = {k: v for k, v in had.items() if k != OVER_CAPACITY}
        now.update(annotations)
        if current.get("subsets") != want.get("subsets") or (current["metadata"].get("labels") or {}) != labels \
                or had != now:
            updated = copy.deepcopy(current)
            updated["metadata"]["labels"] = labels
            updated["metadata"]["annotations"] = now
            updated.pop("subsets", None)
            if subsets:
                updated["subsets"] = subsets
            self.reg.update(EP, ns, name, updated)


def _truncate(subsets: List[dict], capacity: int) -> bool:
    """Cut ``subsets`` (in place) to ``capacity`` addresses, ready ones first; whether it cut."""
    total = sum(len(ss.get("addresses") or []) + len(ss.get("notReadyAddresses") or []) for ss in subsets)
    if total <= capacity:
        return False
    left = capacity
    for field in ("addresses", "notReadyAddresses"):
        for ss in subsets:
            keep = (ss.get(field) or [])[:left]
            left -= len(keep)
            if keep:
                ss[field] = keep
            else:
                ss.pop(field, None)
    subsets[:] = [ss for ss in subsets if ss.get("addresses") or ss.get("notReadyAddresses")]
    return True


class EndpointSliceController:
    def __init__(self, world) -> None:
        self.world = world
        self.reg = world.registry
        self.lag = world.lags["endpointslice"]

    def sync(self) -> None:
        store = self.world.store
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in store.list(SVC.key)}
        owned: Dict[Tuple[str, str], List[dict]] = {}
        for s in store.list(SLICE.key):
            labels = s["metadata"].get("labels") or {}
            if labels.get(MANAGED_BY) == SLICE_CONTROLLER:
                owned.setdefault((s["metadata"]["namespace"], labels.get("kubernetes.io/service-name", "")), []).append(s)
        for ident, svc in services.items():
            if (svc.get("spec") or {}).get("selector"):
                self.sync_service(svc, owned.get(ident, []))
        for ident, slices in owned.items():
            if ident not in services:
                for s in slices:
                    try:
                        self.reg.delete(SLICE, s["metadata"]["namespace"], s["metadata"]["name"])
                    except ApiError as e:
                        if e.code != 404:
                            raise

    def sync_service(self, svc: dict, slices: List[dict]) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        by_ports: Dict[Tuple, dict] = {}
        for pod in _selected_pods(self.world.store, svc):
            ip = (pod.get("status") or {}).get("podIP")
            if not ip or _terminal(pod):
                continue
            ports = []
            for sp in svc["spec"].get("ports") or []:
                num = find_port(pod, sp.get("targetPort", sp.get("port")))
                if num is not None:
                    ports.append({"name": sp.get("name", ""), "port": num, "protocol": sp.get("protocol", "TCP")})
            key = tuple((p["name"], p["port"]) for p in ports)
            terminating = bool(pod["metadata"].get("deletionTimestamp"))
            ready = pod_ready(pod)
            ep = {"addresses": [ip],
                  "conditions": {"ready": ready and not terminating, "serving": ready, "terminating": terminating},
                  "nodeName": pod["spec"].get("nodeName", ""), "targetRef": _target_ref(pod)}
            by_ports.setdefault(key, {"ports": ports, "endpoints": []})["endpoints"].append(ep)
        wanted = [by_ports[k] for k in sorted(by_ports)] or [{"ports": [], "endpoints": []}]
        for want in wanted:
            want["endpoints"].sort(key=lambda e: (e["addresses"][0], e["targetRef"]["uid"]))
        labels = dict(svc["metadata"].get("labels") or {})
        labels.update({"kubernetes.io/service-name": name, MANAGED_BY: SLICE_CONTROLLER})
        due = self.lag.admit((ns, name), (wanted, labels))
        if due is None:
            return
        wanted, labels = due
        slices = sorted(slices, key=lambda s: s["metadata"]["name"])
        for i, want in enumerate(wanted):
            if i < len(slices):
                cur = slices[i]
                if cur.get("endpoints") != want["endpoints"] or cur.get("ports") != want["ports"] \
                        or (cur["metadata"].get("labels") or {}) != labels:
                    updated = copy.deepcopy(cur)
                    updated.update(endpoints=want["endpoints"], ports=want["ports"])
                    updated["metadata"]["labels"] = labels
                    self.reg.update(SLICE, ns, cur["metadata"]["name"], updated)
            else:
                self.reg.create(SLICE, ns, {
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                    "metadata": {"generateName": f"{name}-", "namespace": ns, "labels": labels,
                                 "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                                      "uid": svc["metadata"]["uid"], "controller": True,
                                                      "blockOwnerDeletion": True}]},
                    "endpoints": want["endpoints"], "ports": want["ports"]})
        for extra in slices[len(wanted):]:
            self.reg.delete(SLICE, ns, extra["metadata"]["name"])
