"""The resource types the emulated API server serves, and the discovery documents built from them.

One table drives routing, discovery, the OpenAPI documents and the request log, so a resource
added here is served consistently everywhere. Names, short names, categories, verbs and
subresources are those a real v1.32 API server reports in its discovery documents
(`kubectl api-resources -o wide` on a real cluster; the definitions live in
kubernetes/kubernetes pkg/registry/<group>/<resource>/storage/storage.go, `ShortNames()` and
`Categories()` of each REST storage).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

def server_version(git_version: str = "v1.32.0") -> dict:
    """The ``/version`` answer of an API server built as ``git_version`` ("v1.34.2", "v1.30.4-eks-1a2b3c").

    staging/src/k8s.io/apimachinery/pkg/version/types.go ``Info``: ``major``/``minor`` and the build
    fields; since 1.33 (compatibility versions, KEP-4330) also ``emulationMajor``/``emulationMinor``
    (the binary's own version unless ``--emulated-version`` is set) and
    ``minCompatibilityMajor``/``minCompatibilityMinor`` (one minor lower), all ``omitempty``, as
    real 1.33+ servers answer."""
    m = re.match(r"^v(\d+)\.(\d+)\.(\d+)", git_version)
    if not m:
        raise ValueError(f"kubeworld: server_version {git_version!r} is not a gitVersion like v1.34.0")
    major, minor = m.group(1), m.group(2)
    info = {"major": major, "minor": minor}
    if (int(major), int(minor)) >= (1, 33):
        info.update(emulationMajor=major, emulationMinor=minor, minCompatibilityMajor=major,
                    minCompatibilityMinor=str(int(minor) - 1))
    info.update({
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
    return info


# The version this emulator claims to be by default (GET /version; the world's ``server_version``
# knob changes it). kubectl 1.32 is the client under test; the skew policy
# (https://kubernetes.io/releases/version-skew-policy/) allows +-1 minor.
SERVER_VERSION = server_version("v1.32.0")

RW_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    """One REST resource: where it lives, what it is called and what it supports."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: Tuple[str, ...] = ()
    categories: Tuple[str, ...] = ()
    subresources: Tuple[str, ...] = ()  # "status", "scale", "proxy"
    schema_ref: str = ""  # definition name in the OpenAPI schemas (kubernetes-validate's copy)
    has_generation: bool = False  # whether the registry strategy maintains metadata.generation
    singular: str = ""

    @property
    def key(self) -> str:
        """Store key, e.g. "apps/deployments" or "core/pods"."""
        return f"{self.group or 'core'}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """The "deployments.apps" form used in Status messages (schema.GroupResource.String())."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


def _r(group, version, plural, kind, **kw) -> Resource:
    kw.setdefault("singular", kind.lower())
    return Resource(group, version, plural, kind, **kw)


# Generation is maintained by the strategies of deployments and replicasets
# (pkg/registry/apps/deployment/strategy.go and pkg/registry/apps/replicaset/strategy.go,
# PrepareForCreate/PrepareForUpdate); the other resources served here leave it unset.
RESOURCES: List[Resource] = [
    _r("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",),
       subresources=("status",), schema_ref="io.k8s.api.core.v1.Namespace"),
    _r("", "v1", "services", "Service", short_names=("svc",), categories=("all",),
       subresources=("status", "proxy"), schema_ref="io.k8s.api.core.v1.Service"),
    _r("", "v1", "pods", "Pod", short_names=("po",), categories=("all",),
       subresources=("status", "proxy"), schema_ref="io.k8s.api.core.v1.Pod"),
    _r("", "v1", "endpoints", "Endpoints", short_names=("ep",), schema_ref="io.k8s.api.core.v1.Endpoints",
       singular="endpoints"),
    _r("", "v1", "events", "Event", short_names=("ev",), schema_ref="io.k8s.api.core.v1.Event"),
    # ConfigMaps are stored; the kubelet resolves a container's env references to them (kubelet.py)
    _r("", "v1", "configmaps", "ConfigMap", short_names=("cm",), schema_ref="io.k8s.api.core.v1.ConfigMap"),
    # claims are bound by dynamic provisioning and mounted by the kubelet (volumes.py)
    _r("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",), subresources=("status",),
       schema_ref="io.k8s.api.core.v1.PersistentVolumeClaim"),
    _r("apps", "v1", "deployments", "Deployment", short_names=("deploy",), categories=("all",),
       subresources=("status", "scale"), schema_ref="io.k8s.api.apps.v1.Deployment", has_generation=True),
    _r("apps", "v1", "replicasets", "ReplicaSet", short_names=("rs",), categories=("all",),
       subresources=("status", "scale"), schema_ref="io.k8s.api.apps.v1.ReplicaSet", has_generation=True),
    _r("coordination.k8s.io", "v1", "leases", "Lease", schema_ref="io.k8s.api.coordination.v1.Lease"),
    _r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice",
       schema_ref="io.k8s.api.discovery.v1.EndpointSlice"),
    _r("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", short_names=("hpa",),
       categories=("all",), subresources=("status",),
       schema_ref="io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler", has_generation=False),
    # RBAC objects are stored and enforced for the tokens that ask for it (rbac.py)
    _r("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",),
       schema_ref="io.k8s.api.core.v1.ServiceAccount"),
    _r("rbac.authorization.k8s.io", "v1", "roles", "Role", schema_ref="io.k8s.api.rbac.v1.Role"),
    _r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding",
       schema_ref="io.k8s.api.rbac.v1.RoleBinding"),
    # `kubectl auth can-i` asks this (create only, answered and not stored: apiserver.py)
    _r("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", namespaced=False,
       schema_ref="io.k8s.api.authorization.v1.SelfSubjectAccessReview"),
]

BY_KEY: Dict[str, Resource] = {r.key: r for r in RESOURCES}
BY_KIND: Dict[Tuple[str, str], Resource] = {(r.api_version, r.kind): r for r in RESOURCES}


def find(group: str, version: str, plural: str) -> Optional[Resource]:
    for r in RESOURCES:
        if r.group == group and r.version == version and r.plural == plural:
            return r
    return None


def by_kind(api_version: str, kind: str) -> Optional[Resource]:
    return BY_KIND.get((api_version, kind))


def groups() -> Dict[str, List[str]]:
    """Non-core groups and their versions, in the order discovery lists them."""
    out: Dict[str, List[str]] = {}
    for r in RESOURCES:
        if r.group and r.version not in out.setdefault(r.group, []):
            out[r.group].append(r.version)
    return out


# --- discovery documents -------------------------------------------------------------------
# Shapes follow staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go (APIVersions, APIGroupList,
# APIGroup, APIResourceList, APIResource). Legacy (unaggregated) discovery is served; clients that ask
# for the aggregated form (apidiscovery.k8s.io/v2) fall back to it when the response's content type
# is plain application/json (client-go discovery/discovery_client.go, `downloadAPIs`).


def api_versions(server_address: str) -> dict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group(name: str) -> dict:
    versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in groups()[name]]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group(g) for g in groups()]}


def _verbs(r: Resource) -> List[str]:
    if r.kind == "SelfSubjectAccessReview":
        return ["create"]
    return list(RW_VERBS)


def api_resource_list(group: str, version: str) -> Optional[dict]:
    items = [r for r in RESOURCES if r.group == group and r.version == version]
    if not items:
        return None
    out = []
    for r in items:
        entry = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": _verbs(r),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        out.append(entry)
        for sub in r.subresources:
            if sub == "scale":
                out.append({"name": f"{r.plural}/scale", "singularName": "", "namespaced": r.namespaced,
                            "group": "autoscaling", "version": "v1", "kind": "Scale",
                            "verbs": ["get", "patch", "update"]})
            elif sub == "status":
                out.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": ["get", "patch", "update"]})
            elif sub == "proxy":
                out.append({"name": f"{r.plural}/proxy", "singularName": "", "namespaced": r.namespaced,
                            "kind": f"{r.kind}ProxyOptions",
                            "verbs": ["create", "delete", "get", "patch", "update"]})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}
