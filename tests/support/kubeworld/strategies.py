"""Per-resource defaulting, validation and create/update preparation.

What the real API server does between decoding a request and writing it:
- defaulting: pkg/apis/apps/v1/defaults.go (`SetDefaults_Deployment`, `SetDefaults_ReplicaSet`),
  pkg/apis/core/v1/defaults.go (`SetDefaults_PodSpec`, `SetDefaults_Container`, `SetDefaults_Probe`,
  `SetDefaults_Service`, `SetDefaults_ServicePort`, `SetDefaults_Namespace`),
  pkg/apis/autoscaling/v2/defaults.go (`SetDefaults_HorizontalPodAutoscaler`);
- strategies: pkg/registry/<group>/<resource>/strategy.go `PrepareForCreate` (status cleared,
  generation 1) and `PrepareForUpdate` (status kept from the stored object; deployments bump the
  generation on spec *or annotation* changes, replicasets on spec changes);
- validation: the main checks of pkg/apis/apps/validation, pkg/apis/core/validation,
  pkg/apis/coordination/validation and apimachinery's ObjectMeta validation (names, labels,
  annotations, selectors, containers, ports, resources, probes, volumes and volume mounts,
  persistent volume claims, strategies, services, leases, immutable selector and clusterIP) with the real paths and messages; values the Go types
  cannot decode (quantities, times) are refused with 400 first (`check_decodable`).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

from . import validation as V
from .errors import ApiError
from .resources import Resource
from .selectors import label_selector_to_reqs, matches_labels



# --- defaulting ----------------------------------------------------------------------------

def _default_probe(probe: Optional[dict]) -> None:
    if not probe:
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if "httpGet" in probe:
        probe["httpGet"].setdefault("path", "/")
        probe["httpGet"].setdefault("scheme", "HTTP")


def _default_container(c: dict) -> None:
    image = c.get("image", "")
    tag = image.rsplit("/", 1)[-1]
    # SetDefaults_Container: Always for ":latest" or no tag (and no digest), else IfNotPresent.
    if "imagePullPolicy" not in c:
        c["imagePullPolicy"] = "Always" if ("@" not in tag and (":" not in tag or tag.endswith(":latest"))) else "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for key in ("readinessProbe", "livenessProbe", "startupProbe"):
        _default_probe(c.get(key))


def default_pod_spec(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in spec.get("initContainers") or []:
        _default_container(c)
    for c in spec.get("containers") or []:
        _default_container(c)


def _default_template(spec: dict) -> None:
    tmpl = spec.setdefault("template", {})
    tmpl.setdefault("metadata", {})
    default_pod_spec(tmpl.setdefault("spec", {}))


def apply_defaults(res: Resource, obj: dict) -> None:
    spec = obj.get("spec")
    if res.kind == "Deployment":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        _default_template(spec)
    elif res.kind == "ReplicaSet":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        _default_template(spec)
    elif res.kind == "Pod":
        default_pod_spec(obj.setdefault("spec", {}))
        obj["spec"].setdefault("enableServiceLinks", True)
    elif res.kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] in ("ClusterIP", "NodePort", "LoadBalancer"):
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
    elif res.kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    elif res.kind == "PersistentVolumeClaim":
        obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")  # SetDefaults_PersistentVolumeClaimSpec
    elif res.kind == "HorizontalPodAutoscaler" and spec is not None:
        spec.setdefault("minReplicas", 1)
    elif res.kind == "Endpoints":
        for subset in obj.get("subsets") or []:
            for p in subset.get("ports") or []:
                p.setdefault("protocol", "TCP")


# --- validation ----------------------------------------------------------------------------
# Ports of pkg/apis/core/validation/validation.go (ValidatePodSpec, validateContainers,
# validateContainerPorts, ValidateResourceRequirements, validateProbe, ValidateService),
# pkg/apis/apps/validation/validation.go (ValidateDeploymentSpec, ValidateReplicaSetSpec,
# ValidatePodTemplateSpecForReplicaSet, ValidateDeploymentStrategy, ValidateRollingUpdateDeployment),
# pkg/apis/coordination/validation/validation.go (ValidateLeaseSpec) and
# apimachinery/pkg/api/validation/objectmeta.go (ValidateObjectMeta), with the primitives of
# validation.py. Field paths and messages are the real ones (`resources.limits[cpu]`, map keys in
# brackets, as field.Path.Key renders them).

_cause = V.invalid
_required = V.required

# The name validator each registry strategy passes to ValidateObjectMeta.
NAME_VALIDATORS = {
    "Service": V.is_dns1035_label,          # core/validation ValidateServiceName = NameIsDNS1035Label
    "Namespace": V.is_dns1123_label,        # ValidateNamespaceName = NameIsDNSLabel
}


def _path_segment_name(name: str) -> List[str]:
    # apimachinery/pkg/api/validation/path/name.go IsValidPathSegmentName (RBAC objects' names)
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _validate_object_meta(res: Resource, meta: dict, path: str = "metadata") -> List[dict]:
    fn = NAME_VALIDATORS.get(res.kind, V.is_dns1123_subdomain)
    if res.group == "rbac.authorization.k8s.io":
        fn = _path_segment_name
    causes: List[dict] = []
    if meta.get("generateName"):
        causes += [_cause(f"{path}.generateName", meta["generateName"], m)
                   for m in V.validate_name(fn, meta["generateName"], prefix=True)]
    name = meta.get("name", "")
    if not name:
        causes.append(_required(f"{path}.name", "name or generateName is required"))
    else:
        causes += [_cause(f"{path}.name", name, m) for m in V.validate_name(fn, name, prefix=False)]
    causes += V.validate_labels(meta.get("labels"), f"{path}.labels")
    causes += V.validate_annotations(meta.get("annotations"), f"{path}.annotations")
    return causes


def _nonnegative(value, path: str) -> List[dict]:
    # ValidateNonnegativeField
    return [_cause(path, value, "must be greater than or equal to 0")] if isinstance(value, int) and value < 0 else []


def _port_num_or_name(value, path: str) -> List[dict]:
    # core/validation ValidatePortNumOrName
    if isinstance(value, int):
        return [_cause(path, value, m) for m in V.is_valid_port_num(value)]
    if isinstance(value, str):
        if not value:
            return [_required(path)]
        return [_cause(path, value, m) for m in V.is_valid_port_name(value)]
    return [_cause(path, value, "must be an int or a string")]


STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def _validate_resources(req: Optional[dict], path: str) -> List[dict]:
    """ValidateResourceRequirements (pkg/apis/core/validation/validation.go)."""
    causes: List[dict] = []
    req = req or {}
    parsed = {}
    for part in ("limits", "requests"):
        for name in sorted(req.get(part) or {}):
            fld = f"{path}.{part}[{name}]"
            if "/" not in name and name not in STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
                causes.append(_cause(fld, name, "must be a standard resource for containers"))
                continue
            try:
                q = V.parse_quantity(req[part][name])
            except V.QuantityError:
                continue  # a decode error, reported before validation
            parsed[(part, name)] = q
            if q.value < 0:
                causes.append(_cause(fld, str(q), "must be greater than or equal to 0"))
    for (part, name), q in sorted(parsed.items()):
        limit = parsed.get(("limits", name))
        if part == "requests" and limit is not None:
            if name.startswith("hugepages-") and q.value != limit.value:
                causes.append(_cause(f"{path}.requests", str(q), f"must be equal to {name} limit of {limit}"))
            elif q.value > limit.value:
                causes.append(_cause(f"{path}.requests", str(q), f"must be less than or equal to {name} limit of {limit}"))
    return causes


def _validate_probe(probe: Optional[dict], path: str, liveness_like: bool) -> List[dict]:
    if not probe:
        return []
    causes: List[dict] = []
    handlers = [k for k in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(k) is not None]
    if not handlers:
        causes.append(_required(path, "must specify a handler type"))
    elif len(handlers) > 1:
        causes.append(V.forbidden(f"{path}.{handlers[1]}", "may not specify more than 1 handler type"))
    if probe.get("httpGet") is not None:
        causes += _port_num_or_name(probe["httpGet"].get("port"), f"{path}.httpGet.port")
        scheme = probe["httpGet"].get("scheme", "HTTP")
        if scheme not in ("HTTP", "HTTPS"):
            causes.append(V.not_supported(f"{path}.httpGet.scheme", scheme, ["HTTP", "HTTPS"]))
    if probe.get("tcpSocket") is not None:
        causes += _port_num_or_name(probe["tcpSocket"].get("port"), f"{path}.tcpSocket.port")
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        causes += _nonnegative(probe.get(key), f"{path}.{key}")
    if liveness_like and probe.get("successThreshold") not in (None, 1):
        causes.append(_cause(f"{path}.successThreshold", probe["successThreshold"], "must be 1"))
    return causes


def _unique_label(name: Any, path: str, seen: set) -> List[dict]:
    """A container's or volume's name (validation.go validateContainers / ValidateVolumes): required, a
    DNS-1123 label, and unique among its siblings (``seen`` collects them)."""
    if not name:
        return [_required(path)]
    causes = [_cause(path, name, m) for m in V.is_dns1123_label(name)]
    if name in seen:
        causes.append(V.duplicate(path, name))
    seen.add(name)
    return causes


def _validate_containers(containers: List[dict], path: str) -> List[dict]:
    causes: List[dict] = []
    seen: set = set()
    for i, c in enumerate(containers):
        p = f"{path}[{i}]"
        causes += _unique_label(c.get("name"), f"{p}.name", seen)
        if not c.get("image"):
            causes.append(_required(f"{p}.image"))
        policy = c.get("imagePullPolicy")
        if policy is not None and policy not in ("Always", "IfNotPresent", "Never"):
            causes.append(V.not_supported(f"{p}.imagePullPolicy", policy, ["Always", "IfNotPresent", "Never"]))
        port_names = set()
        for j, port in enumerate(c.get("ports") or []):
            pp = f"{p}.ports[{j}]"
            if port.get("name"):
                msgs = V.is_valid_port_name(port["name"])
                causes += [_cause(f"{pp}.name", port["name"], m) for m in msgs]
                if not msgs and port["name"] in port_names:
                    causes.append(V.duplicate(f"{pp}.name", port["name"]))
                port_names.add(port["name"])
            if not port.get("containerPort"):
                causes.append(_required(f"{pp}.containerPort"))
            else:
                causes += [_cause(f"{pp}.containerPort", port["containerPort"], m)
                           for m in V.is_valid_port_num(port["containerPort"])]
            if port.get("hostPort"):
                causes += [_cause(f"{pp}.hostPort", port["hostPort"], m) for m in V.is_valid_port_num(port["hostPort"])]
            proto = port.get("protocol", "TCP")
            if proto not in ("SCTP", "TCP", "UDP"):
                causes.append(V.not_supported(f"{pp}.protocol", proto, ["SCTP", "TCP", "UDP"]))
        causes += _validate_resources(c.get("resources"), f"{p}.resources")
        causes += _validate_probe(c.get("readinessProbe"), f"{p}.readinessProbe", False)
        causes += _validate_probe(c.get("livenessProbe"), f"{p}.livenessProbe", True)
        causes += _validate_probe(c.get("startupProbe"), f"{p}.startupProbe", True)
    return causes


# Volume sources this world knows by name (core/v1 VolumeSource); emptyDir and persistentVolumeClaim are
# the ones the kubelet gives a directory (volumes.py).
VOLUME_SOURCES = ("hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
                  "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
                  "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
                  "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
                  "image")


def _validate_volumes(volumes: List[dict], path: str) -> List[dict]:
    """ValidateVolumes + validateVolumeSource (pkg/apis/core/validation/validation.go): names are DNS-1123
    labels, unique; exactly one source ("must specify a volume type", "may not specify more than 1 volume
    type"); a persistentVolumeClaim names its claim."""
    causes: List[dict] = []
    seen: set = set()
    for i, vol in enumerate(volumes):
        p = f"{path}[{i}]"
        causes += _unique_label(vol.get("name"), f"{p}.name", seen)
        sources = [k for k in VOLUME_SOURCES if k in vol]
        if not sources:
            causes.append(_required(p, "must specify a volume type"))
        for extra in sources[1:]:
            causes.append(V.forbidden(f"{p}.{extra}", "may not specify more than 1 volume type"))
        if "persistentVolumeClaim" in vol and not (vol["persistentVolumeClaim"] or {}).get("claimName"):
            causes.append(_required(f"{p}.persistentVolumeClaim.claimName"))
    return causes


def _local_descending_path(target: str, path: str) -> List[dict]:
    """validateLocalDescendingPath + validatePathNoBacksteps (pkg/apis/core/validation/validation.go): not
    absolute ("must be a relative path"), no element ``..`` ("must not contain '..'", once)."""
    causes = [_cause(path, target, "must be a relative path")] if target.startswith("/") else []
    if ".." in target.split("/"):
        causes.append(_cause(path, target, "must not contain '..'"))
    return causes


def _validate_volume_mounts(containers: List[dict], volumes: List[dict], path: str) -> List[dict]:
    """ValidateVolumeMounts: each mount names a volume of the pod ("Not found"), has a mountPath, unique per
    container; a subPath or subPathExpr is a local descending path, and not both ("subPathExpr and subPath
    are mutually exclusive"). As in the real code, the path errors of subPath and subPathExpr are reported at
    ``<container>.volumeMounts.subPath`` (``fldPath.Child("subPath")``, without the mount's index), the
    exclusion at the mount's own ``subPathExpr``."""
    names = {v.get("name") for v in volumes}
    causes: List[dict] = []
    for i, c in enumerate(containers):
        points = set()
        for j, m in enumerate(c.get("volumeMounts") or []):
            p = f"{path}[{i}].volumeMounts[{j}]"
            if not m.get("name"):
                causes.append(_required(f"{p}.name"))
            elif m["name"] not in names:
                causes.append(V.not_found(f"{p}.name", m["name"]))
            if not m.get("mountPath"):
                causes.append(_required(f"{p}.mountPath"))
            elif m["mountPath"] in points:
                causes.append(_cause(f"{p}.mountPath", m["mountPath"], "must be unique"))
            points.add(m.get("mountPath"))
            sub, expr = str(m.get("subPath") or ""), str(m.get("subPathExpr") or "")
            if sub:
                causes += _local_descending_path(sub, f"{path}[{i}].volumeMounts.subPath")
            if expr:
                if sub:
                    causes.append(_cause(f"{p}.subPathExpr", expr, "subPathExpr and subPath are mutually exclusive"))
                causes += _local_descending_path(expr, f"{path}[{i}].volumeMounts.subPathExpr")
    return causes


ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]


def _validate_pvc(obj: dict) -> List[dict]:
    """ValidatePersistentVolumeClaimSpec: at least one access mode, each supported, a storage request."""
    spec = obj.get("spec") or {}
    causes: List[dict] = []
    modes = spec.get("accessModes") or []
    if not modes:
        causes.append(_required("spec.accessModes", "at least 1 access mode is required"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            causes.append(V.not_supported("spec.accessModes", mode, ACCESS_MODES))
    if "storage" not in ((spec.get("resources") or {}).get("requests") or {}):
        causes.append(_required("spec.resources[storage]"))
    return causes


def _validate_pod_spec(spec: Optional[dict], path: str) -> List[dict]:
    if not spec:
        return [_required(path)]
    causes = []
    volumes = spec.get("volumes") or []
    causes += _validate_volumes(volumes, f"{path}.volumes")
    containers = spec.get("containers") or []
    if not containers:
        causes.append(_required(f"{path}.containers"))
    causes += _validate_containers(containers, f"{path}.containers")
    causes += _validate_volume_mounts(containers, volumes, f"{path}.containers")
    causes += _validate_containers(spec.get("initContainers") or [], f"{path}.initContainers")
    causes += _validate_volume_mounts(spec.get("initContainers") or [], volumes, f"{path}.initContainers")
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in ("Always", "OnFailure", "Never"):
        causes.append(V.not_supported(f"{path}.restartPolicy", policy, ["Always", "OnFailure", "Never"]))
    causes += _nonnegative(spec.get("activeDeadlineSeconds"), f"{path}.activeDeadlineSeconds")
    return causes


def _go_intstr(value) -> str:
    if isinstance(value, str):
        return f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:{V.go_quote(value)}}}'
    return f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}'


def _int_or_percent(value, path: str) -> List[dict]:
    # apps/validation ValidatePositiveIntOrPercent and IsNotMoreThan100Percent
    if isinstance(value, str):
        msgs = V.is_valid_percent(value)
        if msgs:
            return [{"field": path, "reason": "FieldValueInvalid", "message": f"Invalid value: {_go_intstr(value)}: {m}"}
                    for m in msgs]
        if int(value[:-1]) > 100:
            return [{"field": path, "reason": "FieldValueInvalid",
                     "message": f"Invalid value: {_go_intstr(value)}: must not be greater than 100%"}]
        return []
    return _nonnegative(value, path)


def _validate_strategy(strategy: dict, path: str) -> List[dict]:
    stype = strategy.get("type")
    if stype == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            return [V.forbidden(f"{path}.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if stype != "RollingUpdate":
        return [V.not_supported(f"{path}.type", stype, ["Recreate", "RollingUpdate"])]
    ru = strategy.get("rollingUpdate") or {}
    p = f"{path}.rollingUpdate"
    causes = _int_or_percent(ru.get("maxUnavailable"), f"{p}.maxUnavailable")
    causes += _int_or_percent(ru.get("maxSurge"), f"{p}.maxSurge")
    if not causes:
        def zero(v):
            return v in (0, "0%")
        if zero(ru.get("maxUnavailable")) and zero(ru.get("maxSurge")):
            causes.append({"field": f"{p}.maxUnavailable", "reason": "FieldValueInvalid",
                           "message": f"Invalid value: {_go_intstr(ru['maxUnavailable'])}: may not be 0 when `maxSurge` is 0"})
    return causes


def _validate_workload(res: Resource, obj: dict) -> List[dict]:
    spec = obj.get("spec") or {}
    causes = []
    causes += _nonnegative(spec.get("replicas"), "spec.replicas")
    if res.kind == "ReplicaSet":  # ValidateReplicaSetSpec checks it right after replicas
        causes += _nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    sel = spec.get("selector")
    if sel is None:
        causes.append(_required("spec.selector"))
    else:
        causes += V.validate_label_selector(sel, "spec.selector")
        if not (sel.get("matchLabels") or sel.get("matchExpressions")):
            causes.append({"field": "spec.selector", "reason": "FieldValueInvalid", "message":
                           "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
                           "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"})
    tmpl = spec.get("template") or {}
    tmeta = tmpl.get("metadata") or {}
    labels = tmeta.get("labels") or {}
    if sel and (sel.get("matchLabels") or sel.get("matchExpressions")):
        if not matches_labels(label_selector_to_reqs(sel), labels):
            causes.append({"field": "spec.template.metadata.labels", "reason": "FieldValueInvalid",
                           "message": f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`"})
    causes += V.validate_labels(tmeta.get("labels"), "spec.template.metadata.labels")
    causes += V.validate_annotations(tmeta.get("annotations"), "spec.template.metadata.annotations")
    tspec = tmpl.get("spec")
    causes += _validate_pod_spec(tspec, "spec.template.spec")
    policy = (tspec or {}).get("restartPolicy")
    if policy not in (None, "Always") and policy in ("OnFailure", "Never"):
        causes.append(V.not_supported("spec.template.spec.restartPolicy", policy, ["Always"]))
    if (tspec or {}).get("activeDeadlineSeconds") is not None:
        causes.append(V.forbidden("spec.template.spec.activeDeadlineSeconds",
                                  "activeDeadlineSeconds in ReplicaSet is not Supported"))
    if res.kind == "Deployment":  # ValidateDeploymentSpec's order: ..., template, strategy, minReadySeconds, ...
        causes += _validate_strategy(spec.get("strategy") or {}, "spec.strategy")
        causes += _nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
        causes += _nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
        pds, mrs = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
        if pds is not None:
            causes += _nonnegative(pds, "spec.progressDeadlineSeconds")
            if pds <= mrs:
                causes.append(_cause("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"))
    return causes


def _validate_service(obj: dict, old: Optional[dict]) -> List[dict]:
    spec = obj.get("spec") or {}
    causes: List[dict] = []
    stype = spec.get("type", "ClusterIP")
    if stype not in ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort"):
        causes.append(V.not_supported("spec.type", stype, ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]))
    ports = spec.get("ports") or []
    if stype != "ExternalName" and not ports and spec.get("clusterIP") != "None":
        causes.append(_required("spec.ports"))
    names = set()
    for i, p in enumerate(ports):
        pp = f"spec.ports[{i}]"
        if len(ports) > 1 and not p.get("name"):
            causes.append(_required(f"{pp}.name"))
        elif p.get("name"):
            causes += [_cause(f"{pp}.name", p["name"], m) for m in V.is_dns1123_label(p["name"])]
            if p["name"] in names:
                causes.append(V.duplicate(f"{pp}.name", p["name"]))
            names.add(p["name"])
        causes += [_cause(f"{pp}.port", p.get("port"), m) for m in V.is_valid_port_num(p.get("port"))]
        proto = p.get("protocol", "TCP")
        if proto not in ("SCTP", "TCP", "UDP"):
            causes.append(V.not_supported(f"{pp}.protocol", proto, ["SCTP", "TCP", "UDP"]))
        if "targetPort" in p:
            causes += _port_num_or_name(p["targetPort"], f"{pp}.targetPort")
    if stype != "ExternalName" and spec.get("selector"):
        causes += V.validate_labels(spec["selector"], "spec.selector")
    if old is not None:
        before = (old.get("spec") or {}).get("clusterIP")
        if spec.get("clusterIP") and before and spec["clusterIP"] != before:
            causes.append({"field": "spec.clusterIPs[0]", "reason": "FieldValueInvalid",
                           "message": f'Invalid value: []string{{"{spec["clusterIP"]}"}}: may not change once set'})
    return causes


def _validate_lease(obj: dict) -> List[dict]:
    spec = obj.get("spec") or {}
    causes = []
    dur = spec.get("leaseDurationSeconds")
    if isinstance(dur, int) and dur <= 0:
        causes.append(_cause("spec.leaseDurationSeconds", dur, "must be greater than 0"))
    causes += _nonnegative(spec.get("leaseTransitions"), "spec.leaseTransitions")
    return causes


def _go_map(labels: Dict[str, str]) -> str:
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
    return "map[string]string{" + inner + "}"


def check_decodable(res: Resource, obj: dict) -> None:
    """400 BadRequest when a field's value cannot be decoded into its Go type (a malformed
    quantity or time), as the create and update handlers answer (handlers/rest.go
    `transformDecodeError`)."""
    err = V.decode_error(obj, res.schema_ref) if res.schema_ref else None
    if err:
        raise ApiError.bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: {err}')


def validate(res: Resource, obj: dict, old: Optional[dict]) -> None:
    """Raise ApiError(422 Invalid) listing what is wrong, as NewInvalid would."""
    name = obj["metadata"].get("name", "")
    causes = _validate_object_meta(res, obj["metadata"])
    if res.kind in ("Deployment", "ReplicaSet"):
        causes += _validate_workload(res, obj)
        # the immutable selector is the REST strategy's check (pkg/registry/apps/deployment/strategy.go and
        # replicaset/strategy.go ValidateUpdate: apivalidation.ValidateImmutableField), not apps validation's
        if old is not None and (obj.get("spec") or {}).get("selector") != (old.get("spec") or {}).get("selector"):
            causes.append({"field": "spec.selector", "reason": "FieldValueInvalid", "message":
                           f"Invalid value: {_go_selector(obj['spec'].get('selector'))}: field is immutable"})
    elif res.kind == "Pod":
        causes += _validate_pod_spec(obj.get("spec"), "spec")
    elif res.kind == "Service":
        causes += _validate_service(obj, old)
    elif res.kind == "Lease":
        causes += _validate_lease(obj)
    elif res.kind == "PersistentVolumeClaim":
        causes += _validate_pvc(obj)
    if causes:
        raise ApiError.invalid(res, name, causes)


def _go_selector(sel) -> str:
    return f"v1.LabelSelector{{MatchLabels:{_go_map((sel or {}).get('matchLabels') or {})}}}"


# --- strategies ----------------------------------------------------------------------------

STATUS_ON_CREATE = {
    "Deployment": {},
    "ReplicaSet": {"replicas": 0},
    "Pod": {"phase": "Pending", "qosClass": "BestEffort"},
    "Service": {"loadBalancer": {}},
    "Namespace": {"phase": "Active"},
    "PersistentVolumeClaim": {"phase": "Pending"},
    "HorizontalPodAutoscaler": {"currentReplicas": 0, "desiredReplicas": 0},
}


def prepare_for_create(res: Resource, obj: dict) -> None:
    if res.kind in STATUS_ON_CREATE:
        obj["status"] = copy.deepcopy(STATUS_ON_CREATE[res.kind])
    if res.has_generation:
        obj["metadata"]["generation"] = 1
    else:
        obj["metadata"].pop("generation", None)


def prepare_for_update(res: Resource, obj: dict, old: dict) -> None:
    if res.kind in STATUS_ON_CREATE:
        if "status" in old:
            obj["status"] = copy.deepcopy(old["status"])
        else:
            obj.pop("status", None)
    meta, old_meta = obj["metadata"], old["metadata"]
    if res.has_generation:
        gen = old_meta.get("generation", 1)
        changed = obj.get("spec") != old.get("spec")
        if res.kind == "Deployment":
            changed = changed or (meta.get("annotations") or {}) != (old_meta.get("annotations") or {})
        meta["generation"] = gen + 1 if changed else gen
    else:
        meta.pop("generation", None)


def prepare_for_status_update(res: Resource, obj: dict, old: dict) -> dict:
    """Status subresource writes change status (and, as the deployment controller relies on,
    annotations) and nothing else: pkg/registry/apps/deployment/strategy.go
    `deploymentStatusStrategy.PrepareForUpdate` keeps spec and labels from the stored object."""
    out = copy.deepcopy(old)
    out["status"] = copy.deepcopy(obj.get("status") or {})
    if res.kind in ("Deployment", "ReplicaSet", "Pod") and "annotations" in obj.get("metadata", {}):
        out["metadata"]["annotations"] = copy.deepcopy(obj["metadata"]["annotations"])
    return out
