"""Per-resource defaulting, validation and create/update preparation.

What the real API server does between decoding a request and writing it:
- defaulting: pkg/apis/apps/v1/defaults.go (`SetDefaults_Deployment`, `SetDefaults_ReplicaSet`),
  pkg/apis/core/v1/defaults.go (`SetDefaults_PodSpec`, `SetDefaults_Container`, `SetDefaults_Probe`,
  `SetDefaults_Service`, `SetDefaults_ServicePort`, `SetDefaults_Namespace`),
  pkg/apis/autoscaling/v2/defaults.go (`SetDefaults_HorizontalPodAutoscaler`);
- strategies: pkg/registry/<group>/<resource>/strategy.go `PrepareForCreate` (status cleared,
  generation 1) and `PrepareForUpdate` (status kept from the stored object; deployments bump the
  generation on spec *or annotation* changes, replicasets on spec changes);
- validation: a subset of pkg/apis/apps/validation and pkg/apis/core/validation (required fields,
  selector/template agreement, immutable selector and clusterIP) with the real messages.
"""

from __future__ import annotations

import copy
import re
from typing import Dict, List, Optional

from .errors import ApiError
from .resources import Resource
from .selectors import label_selector_to_reqs, matches_labels

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


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
    elif res.kind == "HorizontalPodAutoscaler" and spec is not None:
        spec.setdefault("minReplicas", 1)
    elif res.kind == "Endpoints":
        for subset in obj.get("subsets") or []:
            for p in subset.get("ports") or []:
                p.setdefault("protocol", "TCP")


# --- validation ----------------------------------------------------------------------------

def _cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict:
    return {"field": field, "message": message, "reason": reason}


def _required(field: str) -> dict:
    return _cause(field, "Required value", "FieldValueRequired")


def _validate_name(res: Resource, name: str) -> List[dict]:
    if res.kind in ("Service",):
        ok, what = DNS1035_LABEL.match(name), "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"
    elif res.kind == "Namespace":
        ok, what = DNS1123_LABEL.match(name), "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
    else:
        ok, what = DNS1123_SUBDOMAIN.match(name), "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
    if ok and len(name) <= (63 if res.kind in ("Service", "Namespace") else 253):
        return []
    return [_cause("metadata.name", f'Invalid value: "{name}": {what}')]


def _validate_pod_spec(spec: Optional[dict], path: str) -> List[dict]:
    if not spec:
        return [_required(path)]
    causes = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append(_required(f"{path}.containers"))
    seen = set()
    for i, c in enumerate(containers):
        if not c.get("name"):
            causes.append(_required(f"{path}.containers[{i}].name"))
        elif c["name"] in seen:
            causes.append(_cause(f"{path}.containers[{i}].name", f'Duplicate value: "{c["name"]}"', "FieldValueDuplicate"))
        seen.add(c.get("name"))
        if not c.get("image"):
            causes.append(_required(f"{path}.containers[{i}].image"))
    return causes


def _validate_workload(obj: dict) -> List[dict]:
    spec = obj.get("spec") or {}
    causes = []
    sel = spec.get("selector")
    if sel is None:
        causes.append(_required("spec.selector"))
    elif not (sel.get("matchLabels") or sel.get("matchExpressions")):
        causes.append(_cause("spec.selector", "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
                             "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"))
    tmpl = spec.get("template") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    if sel and (sel.get("matchLabels") or sel.get("matchExpressions")):
        if not matches_labels(label_selector_to_reqs(sel), labels):
            causes.append(_cause("spec.template.metadata.labels",
                                 f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`"))
    if (spec.get("replicas") or 0) < 0:
        causes.append(_cause("spec.replicas", f"Invalid value: {spec['replicas']}: must be greater than or equal to 0"))
    causes += _validate_pod_spec(tmpl.get("spec"), "spec.template.spec")
    pds, mrs = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
    if pds is not None and pds <= mrs:
        causes.append(_cause("spec.progressDeadlineSeconds", f"Invalid value: {pds}: must be greater than minReadySeconds"))
    return causes


def _go_map(labels: Dict[str, str]) -> str:
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
    return "map[string]string{" + inner + "}"


def validate(res: Resource, obj: dict, old: Optional[dict]) -> None:
    """Raise ApiError(422 Invalid) listing what is wrong, as NewInvalid would."""
    name = obj["metadata"].get("name", "")
    causes = _validate_name(res, name) if name else [_cause("metadata.name", "Required value", "FieldValueRequired")]
    # apimachinery/pkg/api/validation/objectmeta.go ValidateAnnotations: 256 KiB in total
    size = sum(len(k) + len(v or "") for k, v in (obj["metadata"].get("annotations") or {}).items())
    if size > 262144:
        causes.append(_cause("metadata.annotations", "Too long: must have at most 262144 bytes", "FieldValueTooLong"))
    if res.kind in ("Deployment", "ReplicaSet"):
        causes += _validate_workload(obj)
        if old is not None and (obj.get("spec") or {}).get("selector") != (old.get("spec") or {}).get("selector"):
            causes.append(_cause("spec.selector", f"Invalid value: {_go_selector(obj['spec'].get('selector'))}: field is immutable"))
    elif res.kind == "Pod":
        causes += _validate_pod_spec(obj.get("spec"), "spec")
    elif res.kind == "Service":
        spec = obj.get("spec") or {}
        if spec.get("type") != "ExternalName" and not spec.get("ports") and spec.get("clusterIP") != "None":
            causes.append(_required("spec.ports"))
        for i, p in enumerate(spec.get("ports") or []):
            if not isinstance(p.get("port"), int) or not 0 < p["port"] < 65536:
                causes.append(_cause(f"spec.ports[{i}].port", f"Invalid value: {p.get('port')}: must be between 1 and 65535, inclusive"))
            if len(spec.get("ports")) > 1 and not p.get("name"):
                causes.append(_required(f"spec.ports[{i}].name"))
        if old is not None:
            before = (old.get("spec") or {}).get("clusterIP")
            if spec.get("clusterIP") and before and spec["clusterIP"] != before:
                causes.append(_cause("spec.clusterIPs[0]", f'Invalid value: []string{{"{spec["clusterIP"]}"}}: may not change once set'))
    elif res.kind == "Lease":
        dur = (obj.get("spec") or {}).get("leaseDurationSeconds")
        if dur is not None and dur <= 0:
            causes.append(_cause("spec.leaseDurationSeconds", f"Invalid value: {dur}: must be greater than 0"))
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
