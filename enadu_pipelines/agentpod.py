"""Agent pods of the Jenkins Kubernetes plugin: the pod spec a pipeline's ``agent { kubernetes { yaml ... } }``
names, and the manifests of the agents' namespace (ServiceAccount, the controller's Role, cache PVCs).

The pod is built here as data and serialized with PyYAML (never pasted together in a template), then
written into the Jenkinsfile as a Groovy string by :func:`escaping.groovy_multiline`. How the plugin
treats it (kubernetes-plugin, PodTemplateBuilder.build and pod/decorator/DefaultWorkspaceVolume):

- the YAML is the pod; the plugin adds the agent container ``jnlp`` (jenkins/inbound-agent) unless the
  YAML names one, gives every container without a ``workingDir`` the agent's (``/home/jenkins/agent``)
  and mounts the ``workspace-volume`` emptyDir there in each, so all containers share the workspace;
- ``container('name') { ... }`` runs the block's ``sh`` steps in that container (ContainerStep,
  ContainerExecDecorator: ``kubectl exec``-style, ``cd`` into the workspace, the build's environment
  exported), so each container needs ``sh`` and must stay up: ``sleep 99d`` as its command, as the
  plugin's README does.

Containers: ``build`` (the kind's toolchain, with the build cache), ``builder`` (buildah, unprivileged:
see :func:`builder_container`) and ``helper`` (python3 + git for checkout, changes, deploy and notify).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from .config import KubernetesAgent, Service

WORKSPACE = "/home/jenkins/agent"  # ContainerTemplate.DEFAULT_WORKING_DIR
CACHE_MOUNT = "/home/jenkins/cache"
HOME = "/home/enadu"  # HOME of the build and helper containers: an emptyDir the pod's user can write
BUILDAH_STORAGE = "/home/build/.local/share/containers"  # the buildah image's `build` user's storage
AGENT_UID = 1000  # jenkins/inbound-agent's `jenkins` and quay.io/buildah/stable's `build` user
CONTAINERS = ("helper", "build", "builder")  # the helper is the default container

# Requests and limits when enadu.yaml gives none: Gradle and npm builds want memory, buildah's vfs
# copies layers (CPU and disk), the helper is small.
DEFAULT_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "build": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
    "builder": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    "helper": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
}

# Where each build kind keeps its caches, under the cache mount (Gradle's user home holds its
# dependency cache, the wrapper's distributions and the local build cache; npm's cache is cacache).
CACHE_ENV = {
    "gradle": {"GRADLE_USER_HOME": f"{CACHE_MOUNT}/gradle"},
    "node": {"npm_config_cache": f"{CACHE_MOUNT}/npm"},
}


def _resources(agent: KubernetesAgent, container: str) -> dict[str, dict[str, str]]:
    given = getattr(agent.resources, container)
    if given is None:
        return DEFAULT_RESOURCES[container]
    out = {}
    for section in ("requests", "limits"):
        values = getattr(given, section).model_dump(exclude_none=True)
        if values:
            out[section] = values
    return out


def _env(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def builder_container(agent: KubernetesAgent, storage_driver: str) -> dict[str, Any]:
    """buildah without privileges and without a Docker socket, as buildah's own tutorial runs it in a
    pod (buildah docs/tutorials/05-openshift-rootless-build.md) and as its image is made
    (containers/image_build buildah/Containerfile): the image's non-root ``build`` user (uid 1000)
    has /etc/subuid and /etc/subgid ranges, so buildah maps them into a user namespace of its own with
    newuidmap/newgidmap, which are installed with file capabilities - hence SETUID and SETGID are the
    only capabilities kept, and privilege escalation must stay allowed (no_new_privs would disable the
    file capabilities). Inside that namespace RUN steps use chroot isolation (BUILDAH_ISOLATION, and
    enaduImage passes --isolation chroot): no OCI runtime, no nested cgroups. The vfs storage driver
    needs no overlay mounts nor /dev/fuse (overlay is faster where the node's kernel allows rootless
    overlay); the storage is an emptyDir, not the container's writable layer."""
    return {
        "name": "builder",
        "image": agent.images.builder,
        "command": ["sleep"],
        "args": ["99d"],
        "env": _env({"BUILDAH_ISOLATION": "chroot", "STORAGE_DRIVER": storage_driver}),
        "resources": _resources(agent, "builder"),
        "securityContext": {
            "runAsUser": AGENT_UID,
            "runAsGroup": AGENT_UID,
            "runAsNonRoot": True,
            "privileged": False,
            "allowPrivilegeEscalation": True,
            "capabilities": {"drop": ["ALL"], "add": ["SETUID", "SETGID"]},
        },
        "volumeMounts": [{"name": "buildah-storage", "mountPath": BUILDAH_STORAGE}],
    }


def pod(service: Service, *, trusted: bool) -> dict[str, Any]:
    """The agent pod of ``service`` (which runs on a kubernetes agent): the trusted build's, whose build
    container mounts the trusted cache PVC, or any other build's (the untrusted PVC, or an emptyDir)."""
    agent = service.agent.kubernetes
    assert agent is not None
    cache_claim = agent.cache.trusted if trusted else agent.cache.untrusted
    small = {"drop": ["ALL"]}
    containers: list[dict[str, Any]] = []
    if agent.images.jnlp:
        containers.append({"name": "jnlp", "image": agent.images.jnlp,
                           "securityContext": {"allowPrivilegeEscalation": False, "capabilities": small}})
    containers += [
        {
            "name": "helper",
            "image": agent.images.helper,
            "command": ["sleep"],
            "args": ["99d"],
            "env": _env({"HOME": HOME}),
            "resources": _resources(agent, "helper"),
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": small},
            "volumeMounts": [{"name": "home", "mountPath": HOME}],
        },
        {
            "name": "build",
            "image": getattr(agent.images, service.kind),
            "command": ["sleep"],
            "args": ["99d"],
            "env": _env({"HOME": HOME, **CACHE_ENV[service.kind]}),
            "resources": _resources(agent, "build"),
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": small},
            "volumeMounts": [{"name": "home", "mountPath": HOME}, {"name": "cache", "mountPath": CACHE_MOUNT}],
        },
        builder_container(agent, service.storage_driver or "vfs"),
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "home", "emptyDir": {}},
        {"name": "cache", **({"persistentVolumeClaim": {"claimName": cache_claim}} if cache_claim else {"emptyDir": {}})},
        {"name": "buildah-storage", "emptyDir": {}},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "namespace": agent.namespace,
            "labels": {"app.kubernetes.io/part-of": "enadu-pipelines", "enadu.dev/service": service.name,
                       "enadu.dev/cache": "trusted" if trusted else "untrusted"},
        },
        "spec": {
            "serviceAccountName": agent.service_account,
            # the agents need no API access: deploys use the kubeconfig credential (DESIGN: an explicit
            # credential wins, so a pod never deploys as its own service account)
            "automountServiceAccountToken": False,
            "securityContext": {"runAsUser": AGENT_UID, "runAsGroup": AGENT_UID, "runAsNonRoot": True,
                                "fsGroup": AGENT_UID},
            "containers": containers,
            "volumes": volumes,
        },
    }


def ops_pod(service: Service) -> dict[str, Any]:
    """The operations job's pod: only the helper (status, rollback, abort, promote), no caches."""
    full = pod(service, trusted=False)
    spec = full["spec"]
    spec["containers"] = [c for c in spec["containers"] if c["name"] in ("jnlp", "helper")]
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] == "home"]
    full["metadata"]["labels"].pop("enadu.dev/cache")
    return full


class _Dumper(yaml.SafeDumper):
    """Block style with keys in the order built; lists of scalars on one line (``[sleep]``); no anchors
    and aliases (each container's settings are written out where they apply)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(item, (str, int, bool)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump(document: dict[str, Any]) -> str:
    """YAML text of ``document`` (readable in the Jenkinsfile)."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=False,
                     width=120)


def namespace_manifests(agent: KubernetesAgent, services: list[str]) -> list[dict[str, Any]]:
    """What the agents' namespace needs before the first pod: the namespace (Pod Security "baseline":
    the builder keeps SETUID/SETGID and may escalate, which "restricted" forbids), the pods'
    ServiceAccount (no token mounted, no rights), the Role the controller's ServiceAccount needs to run
    agent pods there (the plugin's src/main/kubernetes/service-account.yml) and the cache PVCs."""
    ns = agent.namespace
    labels = {"app.kubernetes.io/part-of": "enadu-pipelines"}
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": ns, "labels": {**labels, "pod-security.kubernetes.io/enforce": "baseline"}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": False,
         "metadata": {"name": agent.service_account, "namespace": ns, "labels": labels}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "enadu-jenkins-agents", "namespace": ns, "labels": labels},
         "rules": [
             {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "get", "list", "patch", "update",
                                                                  "watch"]},
             {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "delete", "get", "list", "patch",
                                                                       "update", "watch"]},
             {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list", "watch"]},
             {"apiGroups": [""], "resources": ["events"], "verbs": ["watch"]},
             {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "enadu-jenkins-agents", "namespace": ns, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "enadu-jenkins-agents"},
         "subjects": [{"kind": "ServiceAccount", "name": agent.controller_service_account,
                       "namespace": agent.controller_namespace}]},
    ]
    cache = agent.cache
    for claim, use in ((cache.trusted, "trusted"), (cache.untrusted, "untrusted")):
        if claim is None:
            continue
        spec: dict[str, Any] = {"accessModes": [cache.access_mode], "resources": {"requests": {"storage": cache.size}}}
        if cache.storage_class:
            spec["storageClassName"] = cache.storage_class
        docs.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": {"name": claim, "namespace": ns,
                                  "labels": {**labels, "enadu.dev/cache": use},
                                  "annotations": {"enadu.dev/services": ",".join(services)}},
                     "spec": spec})
    return docs
