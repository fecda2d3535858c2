"""Pod volumes: PersistentVolumeClaims bound by dynamic provisioning, the scheduler's volume check, and
where each volume of a pod lives on this machine.

PersistentVolumeClaims (core/v1 ``persistentvolumeclaims``) follow the real path of a claim in a
cluster with a default StorageClass whose ``volumeBindingMode`` is ``Immediate``:

- the ``DefaultStorageClass`` admission plugin (plugin/pkg/admission/storage/storageclass/setdefault
  ``admit.go``) writes ``spec.storageClassName`` of a claim created without one (``standard`` here,
  the world's ``default_storage_class``); defaulting of core/v1 (pkg/apis/core/v1/defaults.go
  ``SetDefaults_PersistentVolumeClaimSpec``) sets ``volumeMode: Filesystem``; a new claim's status is
  ``phase: Pending`` (pkg/registry/core/persistentvolumeclaim/strategy.go ``PrepareForCreate``);
- the PV controller with the class's provisioner (pkg/controller/volume/persistentvolume
  ``pv_controller.go`` ``provisionClaimOperation``, named ``pvc-<claim uid>`` by ``getProvisionedVolumeNameForClaim``)
  provisions a volume and binds it: ``spec.volumeName``, status ``Bound`` with the claim's access
  modes and the requested capacity, and the annotations ``pv.kubernetes.io/bind-completed`` and
  ``pv.kubernetes.io/bound-by-controller``; the events ``ProvisioningSucceeded``. No PersistentVolume
  objects are served: the claim's volume is a directory of the world (below) that lives as long as
  the world, whoever deletes the claim (reclaim policy ``Retain``). A claim that names a volume
  (``spec.volumeName``) stays Pending, as for a volume that does not exist (``syncUnboundClaim``);
- PVC protection (:class:`VolumeController`): a claim in use by a scheduled pod is only removed once
  that pod is gone, so a running pod's claim volume never disappears under it;
- the scheduler's VolumeBinding plugin (pkg/scheduler/framework/plugins/volumebinding/volume_binding.go
  ``PreFilter``/``podHasPVCs``) refuses a pod naming a claim that does not exist
  (``persistentvolumeclaim "<name>" not found``), a claim being deleted (``persistentvolumeclaim
  "<name>" is being deleted``) or an unbound immediate claim (``pod has unbound immediate
  PersistentVolumeClaims``) as UnschedulableAndUnresolvable: the pod stays Pending with condition
  PodScheduled False, reason ``Unschedulable``, and a ``FailedScheduling`` Warning event from
  ``default-scheduler`` whose message is the FitError's (pkg/scheduler/framework/types.go
  ``FitError.Error``: ``0/1 nodes are available: <prefilter message>. preemption: 0/1 nodes are
  available: 1 Preemption is not helpful for scheduling.``). The scheduler retries, so creating the
  claim later lets the pod start.

Where volumes live (:func:`pod_volume_dirs`, :func:`host_path`) — **a difference from a real
kubelet**: a kubelet mounts each volume into the container's mount namespace at its ``mountPath``;
nothing here can mount (no privileges) and the "containers" are processes of this machine (the e2e
world's ``sh`` steps). So each volume is a directory of the world's workdir, named as the kubelet
names it under ``/var/lib/kubelet`` (``pods/<pod uid>/volumes/kubernetes.io~empty-dir/<volume>``;
a claim's volume ``pv/<volume name>``), and a path *in a container* is translated to a path on this
machine by :func:`host_path`: the longest ``volumeMount.mountPath`` that is a prefix of it picks the
volume's directory (plus ``subPath``); any other path lands in the container's own writable layer,
``pods/<uid>/containers/<name>/rootfs/<path>``. Every directory is named by the world (the pod's and
the claim's server-assigned uids, a volume name the API server validated) and :func:`host_path`
refuses (ValueError) any result that resolves outside the directory it chose. The kubelet creates the emptyDir directories when it
admits the pod and removes the pod's directory when the pod is gone (emptyDir contents die with the
pod, as ``kubernetes.io/empty-dir`` does); claim directories are kept.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import resources as R

PVC = R.BY_KEY["core/persistentvolumeclaims"]
POD = R.BY_KEY["core/pods"]
PROTECTION = "kubernetes.io/pvc-protection"  # pkg/volume/util/finalizer.go PVCProtectionFinalizer
EMPTY_DIR = "kubernetes.io~empty-dir"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a volume's name (IsDNS1123Label)
PROVISIONER = "rancher.io/local-path"  # the kind/k3s default class's provisioner, named in the annotations


def volume_name_for(claim: dict) -> str:
    """pv_controller.go getProvisionedVolumeNameForClaim: "pvc-" + the claim's UID."""
    return "pvc-" + claim["metadata"]["uid"]


def pods_root(workdir: str) -> Path:
    return Path(workdir) / "kubelet" / "pods"


def pv_root(workdir: str) -> Path:
    return Path(workdir) / "kubelet" / "pv"


def pod_dir(workdir: str, pod: dict) -> Path:
    return pods_root(workdir) / pod["metadata"]["uid"]


def bound_volume(claim: Optional[dict]) -> Optional[str]:
    """The volume the world provisioned and bound for ``claim``, or None: only ever ``pvc-<claim uid>``
    (a name the world makes from the server-assigned uid) of a claim the controller bound; a
    ``spec.volumeName`` a user wrote names no directory here."""
    if not claim or (claim.get("status") or {}).get("phase") != "Bound":
        return None
    volume = volume_name_for(claim)
    return volume if (claim.get("spec") or {}).get("volumeName") == volume else None


def pod_volume_dirs(workdir: str, pod: dict, claims: Dict[str, dict]) -> Dict[str, Path]:
    """The directory on this machine of each volume of ``pod`` (emptyDir and persistentVolumeClaim;
    other kinds are not emulated and have none). ``claims``: the pod namespace's claims by name. A
    claim's volume has a directory only once the world bound it (:func:`bound_volume`)."""
    out: Dict[str, Path] = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        name = vol.get("name", "")
        if not _LABEL.fullmatch(name):
            continue  # the API server refuses such a pod (a volume's name is a DNS-1123 label): never a path
        if "emptyDir" in vol:
            out[name] = pod_dir(workdir, pod) / "volumes" / EMPTY_DIR / name
        elif "persistentVolumeClaim" in vol:
            volume = bound_volume(claims.get(vol["persistentVolumeClaim"].get("claimName", "")))
            if volume:
                out[name] = pv_root(workdir) / volume
    return out


_EXPANSION = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _sub_path(mount: dict, spec: dict) -> str:
    """The mount's subPath, or its subPathExpr expanded with the container's spec ``env`` (kubelet
    ``kubecontainer.ExpandContainerVolumeMounts``: ``$(VAR)`` of a defined variable replaced, any other
    left as written; the image's own environment, which no image supplies here, is not consulted)."""
    if mount.get("subPathExpr"):
        env = {e.get("name"): str(e.get("value", "")) for e in spec.get("env") or []}
        return _EXPANSION.sub(lambda m: env.get(m.group(1), m.group(0)), str(mount["subPathExpr"]))
    return str(mount.get("subPath") or "")


def _inside(base: Path, target: Path, what: str) -> Path:
    """``target`` if it stays inside ``base`` once resolved (``..`` and symbolic links followed), else
    ValueError: nothing is ever read or written outside the directory a volume or a layer has here."""
    root = base.resolve()
    real = target.resolve()
    if real != root and root not in real.parents:
        raise ValueError(f"{what} resolves to {real}, outside {root}: refused")
    return target


def host_path(workdir: str, pod: dict, container: str, path: str, claims: Dict[str, dict]) -> Path:
    """Where ``path`` inside ``container`` of ``pod`` is on this machine (see the module docstring):
    the volume mounted at the longest matching ``mountPath``, else the container's writable layer.

    Defence in depth beneath the API server's validation (strategies.py ``_validate_volume_mounts``):
    a ``subPath`` (or expanded ``subPathExpr``) that is absolute or has a ``..`` element, and any
    result that resolves outside the volume's directory or the container's layer (a symbolic link a
    container made), raise ValueError, as does a mount of a claim the world has not bound (the kubelet
    would not have started the pod; the path is never mapped to the writable layer instead)."""
    spec = next((c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") == container), None)
    if spec is None:
        raise KeyError(f"container {container} not found in pod {pod['metadata']['name']}")
    dirs = pod_volume_dirs(workdir, pod, claims)
    # the emulated volumes: those with a directory, and claims (refused below when they have none)
    emulated = set(dirs) | {v.get("name") for v in (pod.get("spec") or {}).get("volumes") or []
                            if "persistentVolumeClaim" in v}
    norm = os.path.normpath("/" + path.lstrip("/")) if path else "/"
    best: Optional[Tuple[str, dict]] = None
    for m in spec.get("volumeMounts") or []:
        mount = os.path.normpath(m.get("mountPath", ""))
        if (norm == mount or norm.startswith(mount.rstrip("/") + "/")) and m.get("name") in emulated:
            if best is None or len(mount) > len(best[0]):
                best = (mount, m)
    what = f"{path!r} in container {container} of pod {pod['metadata'].get('name')}"
    if best is not None:
        mount, m = best
        if m["name"] not in dirs:
            raise ValueError(f'volume "{m["name"]}" of {what} has no directory: its claim is not bound by the world')
        sub = _sub_path(m, spec)
        if sub.startswith("/") or ".." in sub.split("/"):
            raise ValueError(f"subPath {sub!r} of {what} leaves the volume (outside its directory): refused")
        rest = os.path.relpath(norm, mount)
        base = dirs[m["name"]] / sub
        return _inside(dirs[m["name"]], base if rest == "." else base / rest, what)
    layer = pod_dir(workdir, pod) / "containers" / container / "rootfs"
    return _inside(layer, layer / norm.lstrip("/"), what)


def unschedulable(pod: dict, claims: Dict[str, dict]) -> Optional[str]:
    """The VolumeBinding PreFilter's refusal of ``pod``, or None (volume_binding.go podHasPVCs + PreFilter)."""
    unbound = False
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if "persistentVolumeClaim" not in vol:
            continue
        name = vol["persistentVolumeClaim"].get("claimName", "")
        claim = claims.get(name)
        if claim is None:
            return f'persistentvolumeclaim "{name}" not found'
        if claim["metadata"].get("deletionTimestamp"):
            return f'persistentvolumeclaim "{name}" is being deleted'
        if (claim.get("status") or {}).get("phase") != "Bound":
            unbound = True
    return "pod has unbound immediate PersistentVolumeClaims" if unbound else None


def fit_error(reason: str, nodes: int = 1) -> str:
    """FitError.Error (pkg/scheduler/framework/types.go) for a PreFilter refusal on a one-node cluster."""
    return (f"0/{nodes} nodes are available: {reason}. preemption: 0/{nodes} nodes are available: "
            f"{nodes} Preemption is not helpful for scheduling.")


class VolumeController:
    """The PV controller with a dynamic provisioner (see the module docstring), and the PVC protection
    controller.

    Binding (pv_controller.go ``syncUnboundClaim``): a Pending claim of the default class without
    ``spec.volumeName`` gets a new volume directory, ``pvc-<claim uid>``. A claim whose ``spec.volumeName``
    a user set asks for that volume; none exists here (no PersistentVolume objects are served, and the
    world's own volumes are each bound to their claim), so it stays Pending ("volume requested and not
    found, will try again next time") with its volumeName as written: never overwritten, never a path.

    Protection (pkg/controller/volume/pvcprotection ``pvc_protection_controller.go``): every claim is
    created with the finalizer ``kubernetes.io/pvc-protection`` (the StorageObjectInUseProtection
    admission plugin, registry.py); a deleted claim keeps it, and so its volume, while a scheduled pod
    names it (``podUsesPVC``: ``spec.nodeName`` set, any phase, until the pod object is gone), then the
    finalizer is removed and the deletion completes."""

    def __init__(self, world) -> None:
        self.world = world

    def claims(self, namespace: str) -> Dict[str, dict]:
        return {c["metadata"]["name"]: c for c in self.world.store.list(PVC.key) if c["metadata"].get("namespace") == namespace}

    def _in_use(self, claim: dict) -> bool:
        ns, name = claim["metadata"].get("namespace"), claim["metadata"]["name"]
        for pod in self.world.store.list(POD.key):
            if pod["metadata"].get("namespace") != ns or not (pod.get("spec") or {}).get("nodeName"):
                continue
            if any((v.get("persistentVolumeClaim") or {}).get("claimName") == name
                   for v in (pod.get("spec") or {}).get("volumes") or []):
                return True
        return False

    def sync(self) -> None:
        for claim in self.world.store.list(PVC.key):
            meta = claim["metadata"]
            if meta.get("deletionTimestamp"):
                if PROTECTION in (meta.get("finalizers") or []) and not self._in_use(claim):
                    fresh = copy.deepcopy(claim)
                    fresh["metadata"]["finalizers"] = [f for f in meta["finalizers"] if f != PROTECTION]
                    if not fresh["metadata"]["finalizers"]:
                        fresh["metadata"].pop("finalizers")
                    self.world.registry.update(PVC, meta["namespace"], meta["name"], fresh)
                continue
            if (claim.get("status") or {}).get("phase") == "Bound":
                continue
            spec = claim.get("spec") or {}
            if spec.get("volumeName"):
                continue  # a volume asked for by name: not found, the claim stays Pending
            if spec.get("storageClassName") != self.world.default_storage_class:
                continue  # no provisioner for another class: the claim stays Pending (as with no such class)
            volume = volume_name_for(claim)
            (pv_root(self.world.workdir) / volume).mkdir(parents=True, exist_ok=True)
            bound = copy.deepcopy(claim)
            bound["spec"]["volumeName"] = volume
            bound["metadata"].setdefault("annotations", {}).update({BIND_COMPLETED: "yes", BOUND_BY_CONTROLLER: "yes",
                                                                    "volume.kubernetes.io/storage-provisioner": PROVISIONER})
            stored = self.world.registry.update(PVC, meta["namespace"], meta["name"], bound)
            status = copy.deepcopy(stored)
            status["status"] = {"phase": "Bound", "accessModes": list(spec.get("accessModes") or []),
                                "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage", "")}}
            stored = self.world.registry.update(PVC, meta["namespace"], meta["name"], status, subresource="status")
            self.world.events.record(stored, "Normal", "ProvisioningSucceeded",
                                     f"Successfully provisioned volume {volume}", f"{PROVISIONER}")


def remove_pod_dir(workdir: str, uid: str) -> None:
    """The kubelet's cleanup of an orphaned pod (kubelet_volumes.go cleanupOrphanedPodDirs): emptyDirs go."""
    shutil.rmtree(pods_root(workdir) / uid, ignore_errors=True)


def make_empty_dirs(workdir: str, pod: dict) -> List[Path]:
    made = []
    for name, path in pod_volume_dirs(workdir, pod, {}).items():
        path.mkdir(parents=True, exist_ok=True)
        made.append(path)
    return made
