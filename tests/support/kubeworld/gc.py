"""The garbage collector and the namespace controller.

Garbage collection by owner references
(https://kubernetes.io/docs/concepts/architecture/garbage-collection/, pkg/controller/garbagecollector):
- an object all of whose owners are gone is deleted (what Background propagation relies on);
- an owner marked with the `foregroundDeletion` finalizer waits until its dependents are gone
  (they are deleted first), then the finalizer is removed and the owner goes;
- an owner with the `orphan` finalizer has its references removed from its dependents, then goes.
Namespace deletion (pkg/controller/namespace/deletion/namespaced_resources_deleter.go): every object
in a Terminating namespace is deleted, then the `kubernetes` finalizer is dropped and the namespace
disappears.
"""

from __future__ import annotations

import copy

from . import resources as R
from .errors import ApiError

NS = R.BY_KEY["core/namespaces"]


class GarbageCollector:
    def __init__(self, world) -> None:
        self.world = world
        self.reg = world.registry

    def _delete(self, res, obj: dict, policy: str = "Background") -> None:
        try:
            self.reg.delete(res, obj["metadata"].get("namespace", ""), obj["metadata"]["name"],
                            {"propagationPolicy": policy})
        except ApiError as e:
            if e.code != 404:
                raise

    def _drop_finalizer(self, res, obj: dict, finalizer: str) -> None:
        fresh = copy.deepcopy(obj)
        fresh["metadata"]["finalizers"] = [f for f in fresh["metadata"].get("finalizers") or [] if f != finalizer]
        if not fresh["metadata"]["finalizers"]:
            fresh["metadata"].pop("finalizers")
        self.reg.update(res, obj["metadata"].get("namespace", ""), obj["metadata"]["name"], fresh)

    def sync(self) -> None:
        store = self.world.store
        dependents = {}
        for res in R.RESOURCES:
            for obj in store.list(res.key):
                for ref in obj["metadata"].get("ownerReferences") or []:
                    dependents.setdefault(ref.get("uid"), []).append((res, obj))
        # Owners being deleted with a finalizer the collector handles.
        for res in R.RESOURCES:
            for obj in list(store.list(res.key)):
                meta = obj["metadata"]
                if not meta.get("deletionTimestamp"):
                    continue
                finalizers = meta.get("finalizers") or []
                deps = [d for d in dependents.get(meta["uid"], [])
                        if store.get(d[0].key, d[1]["metadata"].get("namespace", ""), d[1]["metadata"]["name"]) is not None]
                if "orphan" in finalizers:
                    for dres, dep in deps:
                        fresh = copy.deepcopy(dep)
                        fresh["metadata"]["ownerReferences"] = [r for r in fresh["metadata"].get("ownerReferences") or []
                                                                if r.get("uid") != meta["uid"]]
                        if not fresh["metadata"]["ownerReferences"]:
                            fresh["metadata"].pop("ownerReferences")
                        self.reg.update(dres, dep["metadata"].get("namespace", ""), dep["metadata"]["name"], fresh)
                    self._drop_finalizer(res, store.get(res.key, meta.get("namespace", ""), meta["name"]), "orphan")
                elif "foregroundDeletion" in finalizers:
                    if deps:
                        for dres, dep in deps:
                            if not dep["metadata"].get("deletionTimestamp"):
                                self._delete(dres, dep, "Foreground")
                    else:
                        self._drop_finalizer(res, obj, "foregroundDeletion")
                elif res.kind == "Namespace" and finalizers == ["kubernetes"]:
                    self._finalize_namespace(obj)
        # Dependents whose owners are all gone.
        for owner_uid, deps in dependents.items():
            if self.reg.exists_uid(owner_uid):
                continue
            for dres, dep in deps:
                current = store.get(dres.key, dep["metadata"].get("namespace", ""), dep["metadata"]["name"])
                if current is None or current["metadata"].get("deletionTimestamp"):
                    continue
                refs = current["metadata"].get("ownerReferences") or []
                if refs and all(not self.reg.exists_uid(r.get("uid")) for r in refs):
                    self._delete(dres, current)

    def _finalize_namespace(self, ns_obj: dict) -> None:
        name = ns_obj["metadata"]["name"]
        left = 0
        for res in R.RESOURCES:
            if not res.namespaced:
                continue
            for obj in list(self.world.store.list(res.key, name)):
                left += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete(res, obj)
        if left == 0:
            self._drop_finalizer(NS, ns_obj, "kubernetes")
