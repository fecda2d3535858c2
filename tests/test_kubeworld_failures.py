"""The Kubernetes test world's failure knobs, each against what the real component does:

- pod creation refused (quota, pod security): FailedCreate event, ReplicaSet condition
  ReplicaFailure, copied to the Deployment (pkg/controller/replicaset/replica_set.go,
  replica_set_utils.go ``calculateStatus``; pkg/controller/deployment/progress.go
  ``getReplicaFailures``), and removed once creations succeed;
- transient image pulls: ErrImagePull, ImagePullBackOff in between, then the pull succeeds
  (pkg/kubelet/images/image_manager.go ``EnsureImageExists``);
- a ConfigMap created late: CreateContainerConfigError, then the container starts
  (kubelet_pods.go ``makeEnvironmentVariables``; kuberuntime_container.go ``startContainer``);
- init containers: the pod is not Ready until they complete; a failing one crash-loops in
  ``initContainerStatuses`` (kuberuntime_manager.go ``computePodActions``).
"""

from __future__ import annotations

import pytest

from tests.support.kubeworld.fixtures import kubeworld  # noqa: F401  (fixture)
from tests.support.kubeworld.replicaset import POD_SECURITY, QUOTA

FAST = {"time_scale": 0.05}


def deployment(name="web", image="example/web:1", replicas=2, container=None, init=None):
    pod_spec = {"containers": [dict({"name": "app", "image": image}, **(container or {}))]}
    if init:
        pod_spec["initContainers"] = init
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}},
    }


def pods(world, app="web"):
    return [p for p in world.list("pods", "default") if (p["metadata"].get("labels") or {}).get("app") == app]


def waiting(pod, init=False):
    statuses = (pod.get("status") or {}).get("initContainerStatuses" if init else "containerStatuses") or []
    return [((s.get("state") or {}).get("waiting") or {}).get("reason") for s in statuses]


def condition(obj, ctype):
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)


def available(world, name="web"):
    dep = world.get("deployments", name, "default")
    return dep is not None and (dep.get("status") or {}).get("availableReplicas") == dep["spec"]["replicas"]


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_refused_pod_creations_become_replica_failure_on_the_replicaset_and_the_deployment(kubeworld):
    lift = kubeworld.control.controllers["replicaset"].reject_pods(QUOTA)
    kubeworld.create(deployment())
    kubeworld.wait_for(lambda w: condition(w.get("deployments", "web", "default"), "ReplicaFailure"), timeout=10,
                       what="the Deployment's ReplicaFailure condition")
    rs = kubeworld.list("replicasets", "default")[0]
    rs_failure = condition(rs, "ReplicaFailure")
    assert (rs_failure["status"], rs_failure["reason"]) == ("True", "FailedCreate")
    assert rs_failure["message"].startswith(f'pods "{rs["metadata"]["name"]}-')
    assert rs_failure["message"].endswith('is forbidden: exceeded quota: compute-resources, requested: pods=1, '
                                          'used: pods=0, limited: pods=0')
    dep_failure = condition(kubeworld.get("deployments", "web", "default"), "ReplicaFailure")
    assert {k: dep_failure[k] for k in ("status", "reason", "message")} == \
        {k: rs_failure[k] for k in ("status", "reason", "message")}
    assert dep_failure["lastUpdateTime"] == dep_failure["lastTransitionTime"] == rs_failure["lastTransitionTime"]
    events = [e for e in kubeworld.list("events", "default") if e["reason"] == "FailedCreate"]
    assert events and all(e["type"] == "Warning" and e["message"].startswith("Error creating: pods ") for e in events)
    assert pods(kubeworld) == []

    lift()
    kubeworld.wait_for(lambda w: available(w), timeout=20, what="web available once pods may be created")
    kubeworld.wait_for(lambda w: condition(w.get("deployments", "web", "default"), "ReplicaFailure") is None,
                       timeout=10, what="the Deployment's ReplicaFailure removed")
    assert condition(kubeworld.list("replicasets", "default")[0], "ReplicaFailure") is None


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_pod_security_refusal_names_the_container(kubeworld):
    kubeworld.control.controllers["replicaset"].reject_pods(POD_SECURITY, namespace="default")
    kubeworld.create(deployment(replicas=1))
    kubeworld.wait_for(lambda w: condition(w.get("deployments", "web", "default"), "ReplicaFailure"), timeout=10,
                       what="ReplicaFailure")
    message = condition(kubeworld.get("deployments", "web", "default"), "ReplicaFailure")["message"]
    assert message.endswith('is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true '
                            '(pod or container "app" must set securityContext.runAsNonRoot=true)')


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_the_replicaset_knob_is_the_admission_chain_so_api_pods_are_refused_too(kubeworld):
    """One pod-refusal mechanism: ``reject_pods`` on the replicaset controller adds an admission hook
    (admission.py), so a pod created through the API is refused as a quota refuses any pod, under
    the name the registry generated (what a real plugin sees), and lifting it lifts both."""
    import kubernetes

    lift = kubeworld.control.controllers["replicaset"].reject_pods(QUOTA, namespace="default", times=1)
    api = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=kubeworld.kubeconfig))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "bare-", "namespace": "default"},
           "spec": {"containers": [{"name": "app", "image": "example/web:1"}]}}
    with pytest.raises(kubernetes.client.ApiException) as refused:
        api.create_namespaced_pod("default", pod)
    assert refused.value.status == 403
    [(verb, resource, namespace, name, message)] = kubeworld.admission.log
    assert (verb, resource, namespace) == ("create", "pods", "default") and name.startswith("bare-")
    assert message == (f'pods "{name}" is forbidden: exceeded quota: compute-resources, requested: pods=1, '
                       "used: pods=0, limited: pods=0")
    assert name in refused.value.body
    created = api.create_namespaced_pod("default", pod)  # times=1: the next one is admitted
    assert created.metadata.name.startswith("bare-")
    kubeworld.control.controllers["replicaset"].reject_pods(POD_SECURITY)
    lift()
    with pytest.raises(kubernetes.client.ApiException):
        api.create_namespaced_pod("default", pod)  # the other refusal still stands
    assert kubeworld.admission.log[-1][4].endswith('(pod or container "app" must set securityContext.runAsNonRoot=true)')


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_transient_pull_failures_back_off_then_succeed(kubeworld):
    image = "registry.example/web:flaky-1"
    kubeworld.control.kubelet.fail_pulls(image, times=2, status=503)
    seen = []
    kubeworld.create(deployment(image=image, replicas=1))

    def watch(w):
        for p in pods(w):
            reason = waiting(p)[0] if waiting(p) else None
            if reason and (not seen or seen[-1] != reason):
                seen.append(reason)
        return available(w)

    kubeworld.wait_for(watch, timeout=30, what="web available after two failed pulls")
    assert seen[seen.index("ErrImagePull"):] == ["ErrImagePull", "ImagePullBackOff", "ErrImagePull",
                                                 "ImagePullBackOff", "ContainerCreating"][:len(seen) - seen.index("ErrImagePull")]
    assert seen.count("ErrImagePull") == 2 and "ImagePullBackOff" in seen
    failed = [e["message"] for e in kubeworld.list("events", "default") if e["message"].startswith("Failed to pull")]
    assert failed and failed[0].endswith(
        "unexpected status from HEAD request to https://registry.example/v2/web/manifests/flaky-1: "
        "503 Service Unavailable")
    pulled = [e for e in kubeworld.list("events", "default") if e["reason"] == "Pulled"]
    assert pulled and pulled[-1]["message"].startswith(f'Successfully pulled image "{image}"')
    pod = pods(kubeworld)[0]
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_configmap_created_late_lets_the_container_start(kubeworld):
    env = {"envFrom": [{"configMapRef": {"name": "web-settings"}}],
           "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "web-flags", "key": "mode"}}},
                   {"name": "EXTRA", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "x",
                                                                        "optional": True}}}]}
    kubeworld.create(deployment(replicas=1, container=env))
    kubeworld.wait_for(lambda w: any(waiting(p) == ["CreateContainerConfigError"] for p in pods(w)), timeout=10,
                       what="CreateContainerConfigError")
    status = pods(kubeworld)[0]["status"]["containerStatuses"][0]["state"]["waiting"]
    assert status["message"] == 'configmap "web-settings" not found'
    assert pods(kubeworld)[0]["status"]["phase"] == "Pending"

    kubeworld.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-settings", "namespace": "default"},
                      "data": {"A": "1"}},
                     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-flags", "namespace": "default"},
                      "data": {"other": "1"}})
    kubeworld.wait_for(lambda w: any("couldn't find key" in str(p["status"]) for p in pods(w)), timeout=10,
                       what="the missing key reported")
    assert pods(kubeworld)[0]["status"]["containerStatuses"][0]["state"]["waiting"]["message"] == \
        "couldn't find key mode in ConfigMap default/web-flags"
    flags = kubeworld.get("configmaps", "web-flags", "default")
    flags["data"]["mode"] = "fast"
    kubeworld.call(lambda: kubeworld.registry.update(
        __import__("tests.support.kubeworld.resources", fromlist=["BY_KEY"]).BY_KEY["core/configmaps"],
        "default", "web-flags", flags))
    kubeworld.wait_for(lambda w: available(w), timeout=10, what="web available once its ConfigMaps exist")


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_init_containers_complete_before_the_app_starts(kubeworld):
    init = [{"name": "migrate", "image": "example/migrate:1-slow0.5"}, {"name": "warm", "image": "example/warm:1"}]
    kubeworld.create(deployment(replicas=1, init=init))
    kubeworld.wait_for(lambda w: pods(w) and (pods(w)[0].get("status") or {}).get("initContainerStatuses"), timeout=5,
                       what="init container statuses")
    pod = pods(kubeworld)[0]
    initialized = condition(pod, "Initialized")
    assert (initialized["status"], initialized["reason"]) == ("False", "ContainersNotInitialized")
    assert initialized["message"] == "containers with incomplete status: [migrate warm]"
    assert waiting(pod) == ["PodInitializing"] and pod["status"]["phase"] == "Pending"
    assert condition(pod, "Ready")["status"] == "False"
    kubeworld.wait_for(lambda w: available(w), timeout=10, what="web available after its init containers")
    pod = pods(kubeworld)[0]
    assert [s["state"]["terminated"]["reason"] for s in pod["status"]["initContainerStatuses"]] == ["Completed"] * 2
    assert [s["ready"] for s in pod["status"]["initContainerStatuses"]] == [True, True]
    assert condition(pod, "Initialized")["status"] == "True" and condition(pod, "Ready")["status"] == "True"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_failing_init_container_crash_loops_and_the_app_never_starts(kubeworld):
    kubeworld.create(deployment(replicas=1, init=[{"name": "migrate", "image": "example/migrate:1-crashloop"}]))
    kubeworld.wait_for(lambda w: pods(w) and waiting(pods(w)[0], init=True) == ["CrashLoopBackOff"], timeout=10,
                       what="Init:CrashLoopBackOff")
    pod = pods(kubeworld)[0]
    assert pod["status"]["initContainerStatuses"][0]["restartCount"] >= 1
    assert pod["status"]["initContainerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
    assert waiting(pod) == ["PodInitializing"] and pod["status"]["phase"] == "Pending"
    assert not available(kubeworld)
