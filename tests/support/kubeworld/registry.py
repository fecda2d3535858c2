"""REST semantics of the generic registry: create, get, list, update, patch, delete.

A port of the parts of staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go
(`Create`, `Update`, `Delete`, `updateForGracefulDeletionAndFinalizers`, `deletionFinalizersForGarbageCollection`)
and staging/src/k8s.io/apiserver/pkg/registry/rest/{create,update,delete}.go (`BeforeCreate`,
`BeforeUpdate`, `BeforeDelete`) that clients can observe:
- create: 409 AlreadyExists; `generateName` + 5 random characters (apiserver/pkg/storage/names);
  a set resourceVersion is refused ("resourceVersion should not be set on objects to be created");
- update: optimistic concurrency, 409 Conflict on a stale resourceVersion, an empty one means
  unconditional; an unchanged object is not rewritten (etcd3 store `GuaranteedUpdate` skips
  identical data, so the resourceVersion does not move);
- patch: applied to the current object; a resourceVersion inside the patch is a precondition;
- delete: preconditions, graceful deletion of pods (pkg/registry/core/pod/strategy.go
  `CheckGracefulDelete`), finalizers and propagation policies (Foreground adds
  `foregroundDeletion`, Orphan adds `orphan`, Background deletes now and lets the garbage
  collector remove dependents).
The same methods serve the HTTP handlers and the in-process controllers, so both see one set of rules.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import time
import uuid
from datetime import datetime, timezone
from typing import Callable, Dict, Optional, Tuple

from . import resources as R
from . import strategies, validation
from .errors import ApiError
from .patch import apply_patch
from .resources import Resource
from .selectors import make_filter, selector_string
from .store import Store

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery/pkg/util/rand `alphanums`


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Optional[str]) -> Optional[float]:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


class Registry:
    def __init__(self, store: Store, rng: random.Random, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.rng = rng
        self.clock = clock
        self.by_uid: Dict[str, Tuple[str, str, str]] = {}
        self.service_ips: Dict[str, str] = {}
        self.admission = None  # admission.Admission, set by the world: validating admission after validation
        self.default_storage_class = "standard"  # the StorageClass annotated as the default (volumes.py)
        self._next_ip = 10
        store.listeners.append(self._index)

    def _index(self, key: str, etype: str, obj: dict, prev: Optional[dict]) -> None:
        meta = obj["metadata"]
        if etype == "DELETED":
            self.by_uid.pop(meta.get("uid"), None)
        else:
            self.by_uid[meta["uid"]] = (key, meta.get("namespace", ""), meta["name"])

    # -- helpers --

    def now(self) -> str:
        return rfc3339(self.clock())

    def random_suffix(self, n: int = 5) -> str:
        return "".join(self.rng.choice(NAME_ALPHABET) for _ in range(n))

    def new_uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _need(self, res: Resource, ns: str, name: str) -> dict:
        obj = self.store.get(res.key, ns if res.namespaced else "", name)
        if obj is None:
            raise ApiError.not_found(res, name)
        return obj

    def _check_namespace(self, res: Resource, ns: str) -> None:
        if res.namespaced and self.store.get(R.BY_KEY["core/namespaces"].key, "", ns) is None:
            raise ApiError.namespace_not_found(ns)

    @staticmethod
    def _stamp(res: Resource, obj: dict) -> dict:
        obj["apiVersion"] = res.api_version
        obj["kind"] = res.kind
        return obj

    # -- reads --

    def get(self, res: Resource, ns: str, name: str) -> dict:
        return self._stamp(res, copy.deepcopy(self._need(res, ns, name)))

    def list(self, res: Resource, ns: Optional[str], label_selector: str = "", field_selector: str = "",
             limit: int = 0, continue_token: str = "") -> dict:
        accept = make_filter(label_selector, field_selector, res.key)
        items = [o for o in self.store.list(res.key, ns if res.namespaced else None) if accept(o)]
        rv = str(self.store.rv)
        meta: dict = {"resourceVersion": rv}
        if continue_token:
            try:
                state = json.loads(base64.b64decode(continue_token))
                start = tuple(state["start"])
            except (ValueError, KeyError, TypeError):
                raise ApiError.bad_request("invalid continue token") from None
            if int(state.get("rv", 0)) < self.store.compacted.get(res.key, 0):
                raise ApiError.gone("The provided continue parameter is too old to display a consistent list "
                                    "result. You can start a new list without the continue parameter.")
            items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start]
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            token = {"rv": rv, "start": [last.get("namespace", ""), last["name"]]}
            meta["continue"] = base64.b64encode(json.dumps(token).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        out = [copy.deepcopy(o) for o in items]
        for o in out:  # list items carry no apiVersion/kind in the real JSON encoding
            o.pop("apiVersion", None)
            o.pop("kind", None)
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": out}

    # -- create --

    def create(self, res: Resource, ns: str, body: dict, dry_run: bool = False) -> dict:
        obj = copy.deepcopy(body)
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise ApiError.bad_request("the body of the request was in an unknown format")
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise ApiError.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ns
            self._check_namespace(res, ns)
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise ApiError.internal("resourceVersion should not be set on objects to be created")
        strategies.check_decodable(res, obj)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + self.random_suffix()
        strategies.apply_defaults(res, obj)
        if res.kind == "PersistentVolumeClaim" and self.default_storage_class \
                and (obj.get("spec") or {}).get("storageClassName") is None:
            # the DefaultStorageClass mutating admission plugin (setdefault/admit.go): only a nil class
            obj["spec"]["storageClassName"] = self.default_storage_class
        if res.kind == "PersistentVolumeClaim" and "kubernetes.io/pvc-protection" not in (meta.get("finalizers") or []):
            # the StorageObjectInUseProtection mutating admission plugin (plugin/pkg/admission/storage/
            # storageobjectinuseprotection/admission.go): every new claim gets the protection finalizer
            meta["finalizers"] = list(meta.get("finalizers") or []) + ["kubernetes.io/pvc-protection"]
        strategies.prepare_for_create(res, obj)
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"):
            meta.pop(k, None)
        strategies.validate(res, obj, None)
        self._admit("create", res, ns, obj, None, "", dry_run)
        if self.store.get(res.key, ns if res.namespaced else "", meta["name"]) is not None:
            raise ApiError.already_exists(res, meta["name"])
        meta["uid"] = self.new_uid()
        meta["creationTimestamp"] = self.now()
        if res.kind == "Service":
            self._allocate_cluster_ip(obj)
        self._stamp(res, obj)
        if dry_run:
            return obj
        return self.store.put(res.key, obj)

    def _admit(self, verb: str, res: Resource, ns: str, obj: dict, old: Optional[dict], subresource: str,
               dry_run: bool) -> None:
        if self.admission is not None:
            from .admission import Attributes

            self.admission.admit(Attributes(verb, res, ns if res.namespaced else "", obj["metadata"].get("name", ""),
                                            obj, old, subresource, dry_run))

    def _allocate_cluster_ip(self, svc: dict) -> None:
        # Cluster IPs come from a loopback block (127.96.0.0/16) instead of 10.96.0.0/12 so that a
        # client that tries one by mistake stays on this machine (it finds nothing listening).
        spec = svc["spec"]
        if spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        elif not spec.get("clusterIP"):
            self._next_ip += 1
            spec["clusterIP"] = f"127.96.{self._next_ip // 250}.{self._next_ip % 250 + 1}"
            spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")

    # -- update / patch --

    def update(self, res: Resource, ns: str, name: str, body: dict, subresource: str = "",
               dry_run: bool = False) -> dict:
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body of the request was in an unknown format")
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise ApiError.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        strategies.check_decodable(res, body)
        current = self.store.get(res.key, ns if res.namespaced else "", name)
        if current is None:
            if res.kind in ("Endpoints", "Event") and not subresource:  # AllowCreateOnUpdate
                return self.create(res, ns, body, dry_run)
            raise ApiError.not_found(res, name)
        want_rv = meta.get("resourceVersion")
        if want_rv and want_rv != current["metadata"]["resourceVersion"]:
            raise ApiError.conflict(res, name)
        if meta.get("uid") and meta["uid"] != current["metadata"]["uid"]:
            raise ApiError.conflict(res, name, f"Precondition failed: UID in precondition: {meta['uid']}, "
                                    f"UID in object meta: {current['metadata']['uid']}")
        return self._write_update(res, current, copy.deepcopy(body), subresource, dry_run)

    def patch(self, res: Resource, ns: str, name: str, content_type: str, raw: bytes, subresource: str = "",
              dry_run: bool = False) -> dict:
        current = self._need(res, ns, name)
        base = self._stamp(res, copy.deepcopy(current))
        patched = apply_patch(content_type, base, raw, res.schema_ref)
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise ApiError.unprocessable("patched object has no metadata")
        undecodable = validation.decode_error(patched, res.schema_ref) if res.schema_ref else None
        if undecodable:
            raise ApiError.patch_invalid(content_type, raw, patched, undecodable)
        pmeta = patched["metadata"]
        if pmeta.get("name", name) != name:
            raise ApiError.bad_request(f"the name of the object ({pmeta.get('name')}) does not match the name on the URL ({name})")
        want_rv = pmeta.get("resourceVersion")
        if want_rv and want_rv != current["metadata"]["resourceVersion"]:
            raise ApiError.conflict(res, name)
        if pmeta.get("uid") and pmeta["uid"] != current["metadata"]["uid"]:
            raise ApiError.conflict(res, name, "Precondition failed: UID in precondition: "
                                    f"{pmeta['uid']}, UID in object meta: {current['metadata']['uid']}")
        return self._write_update(res, current, patched, subresource, dry_run)

    def _write_update(self, res: Resource, current: dict, obj: dict, subresource: str, dry_run: bool) -> dict:
        old_meta = current["metadata"]
        if subresource == "status":
            obj = strategies.prepare_for_status_update(res, obj, current)
        else:
            meta = obj.setdefault("metadata", {})
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace",
                      "generateName"):
                if k in old_meta:
                    meta[k] = old_meta[k]
                else:
                    meta.pop(k, None)
            meta["name"] = old_meta["name"]
            meta.pop("managedFields", None)
            meta.pop("selfLink", None)
            strategies.apply_defaults(res, obj)
            strategies.prepare_for_update(res, obj, current)
            strategies.validate(res, obj, current)
        self._admit("update", res, old_meta.get("namespace", ""), obj, current, subresource, dry_run)
        obj["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        self._stamp(res, obj)
        if self._same(obj, current):
            return self._stamp(res, copy.deepcopy(current))
        if dry_run:
            return obj
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers") \
                and res.kind != "Pod":
            # The last finalizer went away: the pending deletion completes (store.go `Update`).
            return self._stamp(res, self.store.remove(res.key, old_meta.get("namespace", ""), old_meta["name"]))
        return self.store.put(res.key, obj)

    @staticmethod
    def _same(a: dict, b: dict) -> bool:
        a2, b2 = dict(a), dict(b)
        a2.pop("apiVersion", None), a2.pop("kind", None), b2.pop("apiVersion", None), b2.pop("kind", None)
        return a2 == b2

    # -- scale subresource (autoscaling/v1 Scale; pkg/registry/apps/deployment/storage/storage.go ScaleREST) --

    def get_scale(self, res: Resource, ns: str, name: str) -> dict:
        obj = self._need(res, ns, name)
        return {
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": name, "namespace": ns, "uid": obj["metadata"]["uid"],
                         "resourceVersion": obj["metadata"]["resourceVersion"],
                         "creationTimestamp": obj["metadata"]["creationTimestamp"]},
            "spec": {"replicas": obj["spec"].get("replicas", 0)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": selector_string(obj["spec"].get("selector") or {})},
        }

    def update_scale(self, res: Resource, ns: str, name: str, scale: dict, dry_run: bool = False) -> dict:
        obj = copy.deepcopy(self._need(res, ns, name))
        want_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != obj["metadata"]["resourceVersion"]:
            raise ApiError.conflict(res, name)
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                           f"{replicas}: must be greater than or equal to 0")
        obj["spec"]["replicas"] = replicas
        obj["metadata"].pop("resourceVersion", None)
        self._write_update(res, self.store.get(res.key, ns, name), obj, "", dry_run)
        return self.get_scale(res, ns, name) if not dry_run else scale

    def patch_scale(self, res: Resource, ns: str, name: str, content_type: str, raw: bytes,
                    dry_run: bool = False) -> dict:
        current = self.get_scale(res, ns, name)
        patched = apply_patch(content_type, current, raw, "io.k8s.api.autoscaling.v1.Scale")
        return self.update_scale(res, ns, name, patched, dry_run)

    # -- delete --

    def delete(self, res: Resource, ns: str, name: str, options: Optional[dict] = None,
               dry_run: bool = False) -> Tuple[dict, bool]:
        """Returns (response body, deleted now)."""
        options = options or {}
        current = self._need(res, ns, name)
        meta = current["metadata"]
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            raise ApiError.conflict(res, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                    f"UID in object meta: {meta['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise ApiError.conflict(res, name, "Precondition failed: ResourceVersion in precondition: "
                                    f"{pre['resourceVersion']}, ResourceVersion in object meta: {meta['resourceVersion']}")
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy not in (None, "Foreground", "Background", "Orphan"):
            raise ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported '
                           f'value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"')
        obj = copy.deepcopy(current)
        finalizers = list(obj["metadata"].get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if dry_run:
            return self._stamp(res, obj), False
        if res.kind == "Pod":
            grace = self._pod_grace(obj, options)
            if grace > 0 or finalizers:
                return self._stamp(res, self._mark_deleting(res, obj, finalizers, grace)), False
        elif res.kind == "Namespace":
            return self._stamp(res, self._mark_deleting(res, obj, finalizers or ["kubernetes"], 0,
                                                        phase="Terminating")), False
        elif finalizers:
            return self._stamp(res, self._mark_deleting(res, obj, finalizers, 0)), False
        gone = self.store.remove(res.key, meta.get("namespace", ""), name)
        if res.kind in ("Pod", "Service"):  # these storages set ReturnDeletedObject
            return self._stamp(res, gone), True
        return self.success_status(res, gone), True

    def _pod_grace(self, pod: dict, options: dict) -> int:
        meta = pod["metadata"]
        if options.get("gracePeriodSeconds") is not None:
            grace = int(options["gracePeriodSeconds"])
        else:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        if not pod["spec"].get("nodeName") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            grace = 0
        if meta.get("deletionGracePeriodSeconds") is not None:
            grace = min(grace, int(meta["deletionGracePeriodSeconds"]))  # can only be shortened
        return max(grace, 0)

    def _mark_deleting(self, res: Resource, obj: dict, finalizers, grace: int, phase: str = "") -> dict:
        meta = obj["metadata"]
        now = self.clock()
        if not meta.get("deletionTimestamp") or grace < int(meta.get("deletionGracePeriodSeconds") or 0):
            meta["deletionTimestamp"] = rfc3339(now + grace)
            meta["deletionGracePeriodSeconds"] = grace
        if finalizers:
            meta["finalizers"] = finalizers
        if phase:
            obj.setdefault("status", {})["phase"] = phase
        if self._same(obj, self.store.get(res.key, meta.get("namespace", ""), meta["name"])):
            return copy.deepcopy(obj)
        return self.store.put(res.key, obj)

    def finish_delete(self, res: Resource, ns: str, name: str) -> Optional[dict]:
        """Remove an object whose graceful deletion or finalizers are done (kubelet, GC)."""
        return self.store.remove(res.key, ns if res.namespaced else "", name)

    @staticmethod
    def success_status(res: Resource, gone: dict) -> dict:
        meta = gone["metadata"]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": meta["name"], "group": res.group, "kind": res.plural, "uid": meta["uid"]}}

    def delete_collection(self, res: Resource, ns: Optional[str], label_selector: str, field_selector: str,
                          options: Optional[dict], dry_run: bool = False) -> dict:
        listed = self.list(res, ns, label_selector, field_selector)
        items = []
        for item in listed["items"]:
            m = item["metadata"]
            try:
                body, _ = self.delete(res, m.get("namespace", ""), m["name"], options, dry_run)
            except ApiError as e:
                if e.code != 404:
                    raise
                continue
            if body.get("kind") != "Status":
                items.append(body)
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)}, "items": items}

    # -- lookups used by controllers --

    def by_owner(self, key: str, ns: str, owner_uid: str):
        for o in self.store.list(key, ns):
            for ref in o["metadata"].get("ownerReferences") or []:
                if ref.get("uid") == owner_uid:
                    yield o
                    break

    def exists_uid(self, uid: str) -> bool:
        return uid in self.by_uid
