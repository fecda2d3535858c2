"""kubeworld's pod volumes: PersistentVolumeClaims bound by the default class's provisioner, the scheduler's
VolumeBinding refusal of a pod whose claim is missing or unbound, volume directories on this machine
(emptyDir per pod, a claim's volume kept), and the validation of claims, volumes and mounts in the real
server's words (tests/support/kubeworld/volumes.py and strategies.py cite the sources).
"""

from __future__ import annotations

import json
import time

import kubernetes
import pytest
import yaml

from tests.support.kubeworld import volumes
from tests.support.kubeworld.fixtures import kubeworld  # noqa: F401  (fixture)

FAST = {"time_scale": 0.1, "namespaces": ("default", "agents")}
NS = "agents"


def claim(name: str = "cache", **spec) -> dict:
    body = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "20Gi"}}}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NS}, "spec": body}


def pod(name: str, claim_name: str = "cache") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [{"name": "build", "image": "example/build:1",
                                     "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": False},
                                     "env": [{"name": "GRADLE_USER_HOME", "value": "/home/jenkins/cache/gradle"}],
                                     "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
                                     "volumeMounts": [{"name": "cache", "mountPath": "/home/jenkins/cache"},
                                                      {"name": "home", "mountPath": "/home/enadu"}]}],
                     "volumes": [{"name": "cache", "persistentVolumeClaim": {"claimName": claim_name}},
                                 {"name": "home", "emptyDir": {}}]}}


def phase(world, kind: str, name: str) -> str:
    return ((world.get(kind, name, NS) or {}).get("status") or {}).get("phase", "")


def claims(world) -> dict:
    return world.call(lambda: world.control.controllers["volumes"].claims(NS))


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_claim_is_bound_and_its_volume_outlives_pods(kubeworld, tmp_path):
    (tmp_path / "pvc.yaml").write_text(yaml.safe_dump(claim()))
    applied = kubeworld.kubectl("apply", "--server-side=false", "-f", str(tmp_path / "pvc.yaml"))
    assert applied.returncode == 0, applied.stderr
    kubeworld.wait_for(lambda w: phase(w, "PersistentVolumeClaim", "cache") == "Bound", 5, what="claim bound")
    bound = kubeworld.get("PersistentVolumeClaim", "cache", NS)
    assert bound["spec"]["storageClassName"] == "standard"  # the DefaultStorageClass admission plugin
    assert bound["spec"]["volumeName"] == "pvc-" + bound["metadata"]["uid"]
    assert bound["status"] == {"phase": "Bound", "accessModes": ["ReadWriteMany"], "capacity": {"storage": "20Gi"}}
    got = kubeworld.kubectl("get", "pvc", "-n", NS).stdout.splitlines()
    assert got[0].split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS",
                              "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert got[1].split()[:7] == ["cache", "Bound", bound["spec"]["volumeName"], "20Gi", "RWX", "standard", "<unset>"]
    events = [e for e in kubeworld.list("Event", NS) if e["involvedObject"]["name"] == "cache"]
    assert [e["reason"] for e in events] == ["ProvisioningSucceeded"]

    kubeworld.create(pod("one"))
    kubeworld.wait_for(lambda w: phase(w, "Pod", "one") == "Running", 5, what="pod running")
    one = kubeworld.get("Pod", "one", NS)
    cache = volumes.host_path(kubeworld.workdir, one, "build", "/home/jenkins/cache/gradle/caches/x", claims(kubeworld))
    home = volumes.host_path(kubeworld.workdir, one, "build", "/home/enadu/.profile", claims(kubeworld))
    layer = volumes.host_path(kubeworld.workdir, one, "build", "/etc/hostname", claims(kubeworld))
    assert cache == volumes.pv_root(kubeworld.workdir) / bound["spec"]["volumeName"] / "gradle" / "caches" / "x"
    assert home.parent == volumes.pod_dir(kubeworld.workdir, one) / "volumes" / volumes.EMPTY_DIR / "home"
    assert home.parent.is_dir()  # the kubelet made the emptyDir before the containers started
    assert layer == volumes.pod_dir(kubeworld.workdir, one) / "containers" / "build" / "rootfs" / "etc" / "hostname"
    cache.parent.mkdir(parents=True)
    cache.write_text("from pod one\n")
    home.write_text("export X=1\n")

    kubeworld.delete("Pod", "one", NS)
    kubeworld.wait_for(lambda w: w.get("Pod", "one", NS) is None, 5, what="pod one gone")
    assert not volumes.pod_dir(kubeworld.workdir, one).exists()  # emptyDirs die with the pod
    kubeworld.create(pod("two"))
    kubeworld.wait_for(lambda w: phase(w, "Pod", "two") == "Running", 5, what="pod two running")
    two = kubeworld.get("Pod", "two", NS)
    again = volumes.host_path(kubeworld.workdir, two, "build", "/home/jenkins/cache/gradle/caches/x", claims(kubeworld))
    assert again.read_text() == "from pod one\n"  # the claim's volume is kept
    assert not volumes.host_path(kubeworld.workdir, two, "build", "/home/enadu/.profile", claims(kubeworld)).exists()


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_pod_with_a_missing_claim_stays_pending_until_the_claim_exists(kubeworld):
    kubeworld.create(pod("waits", "later"))
    message = ('0/1 nodes are available: persistentvolumeclaim "later" not found. preemption: 0/1 nodes are '
               'available: 1 Preemption is not helpful for scheduling.')

    def refused(w) -> bool:
        conds = (w.get("Pod", "waits", NS).get("status") or {}).get("conditions") or []
        return any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conds)

    kubeworld.wait_for(refused, 5, what="pod refused by the scheduler")
    waiting = kubeworld.get("Pod", "waits", NS)
    assert waiting["status"]["phase"] == "Pending" and not waiting["spec"].get("nodeName")
    [cond] = waiting["status"]["conditions"]
    assert (cond["status"], cond["message"]) == ("False", message)
    failed = [e for e in kubeworld.list("Event", NS) if e["reason"] == "FailedScheduling"]
    assert [(e["type"], e["message"], e["source"]["component"]) for e in failed] == [("Warning", message, "default-scheduler")]
    kubeworld.create(claim("later"))
    kubeworld.wait_for(lambda w: phase(w, "Pod", "waits") == "Running", 5, what="pod scheduled once the claim exists")
    assert kubeworld.get("Pod", "waits", NS)["spec"]["nodeName"] == "kubeworld-node"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_claim_of_a_class_without_provisioner_stays_pending_and_so_does_its_pod(kubeworld):
    kubeworld.create(claim("manual", storageClassName="manual"))
    kubeworld.create(pod("waits", "manual"))
    kubeworld.wait_for(lambda w: (w.get("Pod", "waits", NS).get("status") or {}).get("conditions"), 5)
    time_left = kubeworld.get("Pod", "waits", NS)
    assert "pod has unbound immediate PersistentVolumeClaims" in time_left["status"]["conditions"][0]["message"]
    assert phase(kubeworld, "PersistentVolumeClaim", "manual") == "Pending"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_claims_volumes_and_mounts_are_validated(kubeworld):
    api = kubernetes.config.new_client_from_config(config_file=kubeworld.kubeconfig)
    core = kubernetes.client.CoreV1Api(api)
    try:
        def refused(call, body) -> list:
            with pytest.raises(kubernetes.client.ApiException) as e:
                call(NS, body)
            assert e.value.status == 422
            return [f"{c['field']}: {c['message']}" for c in json.loads(e.value.body)["details"]["causes"]]

        bad = claim("bad")
        bad["spec"] = {"accessModes": ["ReadWriteSometimes"]}
        assert refused(core.create_namespaced_persistent_volume_claim, bad) == [
            'spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", '
            '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
            "spec.resources[storage]: Required value"]
        bad["spec"] = {"resources": {"requests": {"storage": "1Gi"}}}
        assert refused(core.create_namespaced_persistent_volume_claim, bad) == [
            "spec.accessModes: Required value: at least 1 access mode is required"]

        p = pod("bad")
        p["spec"]["volumes"] = [{"name": "cache"}, {"name": "home", "emptyDir": {}, "persistentVolumeClaim": {}}]
        p["spec"]["containers"][0]["volumeMounts"].append({"name": "nope", "mountPath": "/home/enadu"})
        assert refused(core.create_namespaced_pod, p) == [
            "spec.volumes[0]: Required value: must specify a volume type",
            "spec.volumes[1].persistentVolumeClaim: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[1].persistentVolumeClaim.claimName: Required value",
            'spec.containers[0].volumeMounts[2].name: Not found: "nope"',
            'spec.containers[0].volumeMounts[2].mountPath: Invalid value: "/home/enadu": must be unique']
    finally:
        api.close()


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_sub_paths_are_validated_as_the_real_server_does(kubeworld):
    """ValidateVolumeMounts + validateLocalDescendingPath (pkg/apis/core/validation/validation.go): a subPath
    or subPathExpr must be relative and have no '..' element, and not both at once. The real server names
    the subPath field without the mount's index (``fldPath.Child("subPath")``), and so does this one."""
    api = kubernetes.config.new_client_from_config(config_file=kubeworld.kubeconfig)
    core = kubernetes.client.CoreV1Api(api)
    try:
        p = pod("escapes")
        p["spec"]["containers"][0]["volumeMounts"] = [
            {"name": "home", "mountPath": "/home/build", "subPath": "/etc"},
            {"name": "cache", "mountPath": "/cache", "subPath": "../../../../escape"},
            {"name": "home", "mountPath": "/a", "subPath": "ok/sub", "subPathExpr": "$(POD)/x"},
            {"name": "home", "mountPath": "/b", "subPathExpr": "/$(POD)/../x"}]
        with pytest.raises(kubernetes.client.ApiException) as e:
            core.create_namespaced_pod(NS, p)
        assert e.value.status == 422
        causes = [f"{c['field']}: {c['message']}" for c in json.loads(e.value.body)["details"]["causes"]]
        mounts = "spec.containers[0].volumeMounts"
        assert causes == [
            f'{mounts}.subPath: Invalid value: "/etc": must be a relative path',
            f"{mounts}.subPath: Invalid value: \"../../../../escape\": must not contain '..'",
            f'{mounts}[2].subPathExpr: Invalid value: "$(POD)/x": subPathExpr and subPath are mutually exclusive',
            f'{mounts}.subPathExpr: Invalid value: "/$(POD)/../x": must be a relative path',
            f"{mounts}.subPathExpr: Invalid value: \"/$(POD)/../x\": must not contain '..'"]
        assert kubeworld.get("Pod", "escapes", NS) is None
        ok = pod("fine")
        ok["spec"]["containers"][0]["volumeMounts"][1]["subPath"] = "a/..b/c"  # '..b' is no '..' element
        core.create_namespaced_pod(NS, ok)
    finally:
        api.close()


def bare_pod(uid: str, mounts: list, volumes_: list) -> dict:
    return {"metadata": {"name": "p", "namespace": NS, "uid": uid},
            "spec": {"containers": [{"name": "c", "volumeMounts": mounts}], "volumes": volumes_}}


def test_host_path_never_leaves_the_volume_or_the_containers_layer(tmp_path):
    """Defence in depth below the API's validation: whatever the pod says, host_path refuses a path
    outside the directory it chose (an absolute or climbing subPath, a symbolic link out of a volume),
    and a claim's directory is only ever the world's ``pvc-<uid>`` of a claim the world bound."""
    work = str(tmp_path / "world")
    home = {"name": "home", "emptyDir": {}}
    for sub in ("/etc", "../../../../escape", "a/../../.."):
        p = bare_pod("u1", [{"name": "home", "mountPath": "/home/build", "subPath": sub}], [home])
        with pytest.raises(ValueError, match="outside"):
            volumes.host_path(work, p, "c", "/home/build/.config/containers/storage.conf", {})
    climbing = bare_pod("u1", [], [{"name": "../../../../escape", "emptyDir": {}}])
    assert volumes.pod_volume_dirs(work, climbing, {}) == {} and volumes.make_empty_dirs(work, climbing) == []
    p = bare_pod("u1", [{"name": "home", "mountPath": "/home/build"}], [home])
    inside = volumes.host_path(work, p, "c", "/home/build/x", {})
    assert inside == volumes.pod_dir(work, p) / "volumes" / volumes.EMPTY_DIR / "home" / "x"
    inside.parent.mkdir(parents=True)
    (inside.parent / "link").symlink_to(tmp_path)  # a link the "container" made, out of its volume
    with pytest.raises(ValueError, match="outside"):
        volumes.host_path(work, p, "c", "/home/build/link/owned", {})
    # A claim the world did not bind (a user-set volumeName, a Bound status written by hand) has no
    # directory: its mounts are refused, never mapped to that name nor silently to the writable layer.
    forged = {"metadata": {"name": "cache", "namespace": NS, "uid": "c1"},
              "spec": {"volumeName": "../../../../escape"}, "status": {"phase": "Bound"}}
    p = bare_pod("u2", [{"name": "cache", "mountPath": "/cache"}],
                 [{"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}}])
    assert volumes.pod_volume_dirs(work, p, {"cache": forged}) == {}
    with pytest.raises(ValueError, match='volume "cache" .* has no directory'):
        volumes.host_path(work, p, "c", "/cache/x", {"cache": forged})
    bound = {**forged, "spec": {"volumeName": "pvc-c1"}}
    assert volumes.host_path(work, p, "c", "/cache/x", {"cache": bound}) == volumes.pv_root(work) / "pvc-c1" / "x"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_claim_naming_a_volume_that_does_not_exist_stays_pending(kubeworld):
    """pv_controller.go syncUnboundClaim: a claim whose spec.volumeName names a volume that does not exist
    stays Pending ("volume requested and not found, will try again next time"); the controller does not
    overwrite the name nor make that directory, and a pod using the claim is not scheduled."""
    kubeworld.create(claim("named", volumeName="../../../../escape"))
    kubeworld.create(claim("plain"))
    kubeworld.wait_for(lambda w: phase(w, "PersistentVolumeClaim", "plain") == "Bound", 5, what="the other claim bound")
    kubeworld.create(pod("waits", "named"))
    kubeworld.wait_for(lambda w: (w.get("Pod", "waits", NS).get("status") or {}).get("conditions"), 5)
    named = kubeworld.get("PersistentVolumeClaim", "named", NS)
    assert (named["spec"]["volumeName"], named["status"]["phase"]) == ("../../../../escape", "Pending")
    assert volumes.BIND_COMPLETED not in (named["metadata"].get("annotations") or {})
    assert not (volumes.pv_root(kubeworld.workdir) / "../../../../escape").exists()
    assert sorted(p.name for p in volumes.pv_root(kubeworld.workdir).iterdir()) == [
        kubeworld.get("PersistentVolumeClaim", "plain", NS)["spec"]["volumeName"]]
    assert "pod has unbound immediate PersistentVolumeClaims" in \
        kubeworld.get("Pod", "waits", NS)["status"]["conditions"][0]["message"]
    assert [e["reason"] for e in kubeworld.list("Event", NS) if e["involvedObject"]["name"] == "named"] == []


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_claim_in_use_is_kept_until_its_pods_are_gone(kubeworld):
    """StorageObjectInUseProtection admission + the pvcprotection controller (volumes.VolumeController):
    a claim deleted while a scheduled pod names it stays, Terminating, with its volume mapped, and goes
    when the pod does; a claim no pod uses goes at once."""
    kubeworld.create(claim())
    kubeworld.wait_for(lambda w: phase(w, "PersistentVolumeClaim", "cache") == "Bound", 5, what="claim bound")
    assert kubeworld.get("PersistentVolumeClaim", "cache", NS)["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    kubeworld.create(pod("user"))
    kubeworld.wait_for(lambda w: phase(w, "Pod", "user") == "Running", 5, what="pod running")
    user = kubeworld.get("Pod", "user", NS)
    before = volumes.host_path(kubeworld.workdir, user, "build", "/home/jenkins/cache/x", claims(kubeworld))
    kubeworld.delete("PersistentVolumeClaim", "cache", NS)
    time.sleep(0.5)  # several controller rounds
    kept = kubeworld.get("PersistentVolumeClaim", "cache", NS)
    assert kept is not None and kept["metadata"].get("deletionTimestamp"), kept
    assert volumes.host_path(kubeworld.workdir, user, "build", "/home/jenkins/cache/x", claims(kubeworld)) == before
    got = kubeworld.kubectl("get", "pvc", "cache", "-n", NS).stdout.splitlines()
    assert got[1].split()[:2] == ["cache", "Terminating"]
    kubeworld.delete("Pod", "user", NS)
    kubeworld.wait_for(lambda w: w.get("PersistentVolumeClaim", "cache", NS) is None, 5, what="claim gone with its pod")
    kubeworld.create(claim("unused"))
    kubeworld.wait_for(lambda w: phase(w, "PersistentVolumeClaim", "unused") == "Bound", 5, what="claim bound")
    kubeworld.delete("PersistentVolumeClaim", "unused", NS)
    kubeworld.wait_for(lambda w: w.get("PersistentVolumeClaim", "unused", NS) is None, 5, what="unused claim gone")
