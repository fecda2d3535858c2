"""The emulated API server through the official Python client: CRUD, patch, watch, errors, faults."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.support.kubeworld import Fault
from tests.support.kubeworld.fixtures import kubeworld  # noqa: F401  (fixture)
from tests.support.kubeworld.tls import ca_pem

FAST = {"time_scale": 0.05}


def deployment(name="web", image="example/web:1", replicas=2, **spec):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": image,
                                                       "ports": [{"name": "http", "containerPort": 8080}],
                                                       "env": [{"name": "A", "value": "1"}]}]}},
                 **spec},
    }


@pytest.fixture
def api(kubeworld):
    return config.new_client_from_config(config_file=kubeworld.kubeconfig)


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


def _ca_file(world) -> str:
    path = world.workdir + "/ca.pem"
    with open(path, "wb") as fh:
        fh.write(ca_pem())
    return path


def test_bearer_token_is_required(kubeworld):
    ca = _ca_file(kubeworld)
    anonymous = requests.get(kubeworld.url + "/api/v1/namespaces", verify=ca, timeout=5)
    wrong = requests.get(kubeworld.url + "/api/v1/namespaces", verify=ca, timeout=5,
                         headers={"Authorization": "Bearer not-the-token"})
    right = requests.get(kubeworld.url + "/api/v1/namespaces", verify=ca, timeout=5,
                         headers={"Authorization": f"Bearer {kubeworld.token}"})
    assert (anonymous.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert anonymous.json()["reason"] == "Unauthorized"
    assert [n["metadata"]["name"] for n in right.json()["items"]] == ["default"]


def test_read_only_token_is_forbidden_to_write(kubeworld, tmp_path):
    token = kubeworld.add_token("viewer", write=False)
    path = kubeworld.write_kubeconfig(str(tmp_path / "viewer"), token=token)
    apps = client.AppsV1Api(config.new_client_from_config(config_file=path))
    assert apps.list_namespaced_deployment("default").items == []
    with pytest.raises(ApiException) as e:
        apps.create_namespaced_deployment("default", deployment())
    assert e.value.status == 403
    assert status_of(e.value)["message"] == (
        'deployments.apps is forbidden: User "viewer" cannot create resource "deployments" in API group "apps" '
        'in the namespace "default"')


def test_create_get_list_delete_and_real_error_statuses(kubeworld, api):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    created = apps.create_namespaced_deployment("default", deployment())
    assert created.metadata.generation == 1
    assert created.metadata.uid and created.metadata.resource_version
    # defaults applied as SetDefaults_Deployment does
    assert (created.spec.strategy.type, created.spec.strategy.rolling_update.max_surge,
            created.spec.revision_history_limit, created.spec.progress_deadline_seconds) == ("RollingUpdate", "25%", 10, 600)
    assert created.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"

    with pytest.raises(ApiException) as dup:
        apps.create_namespaced_deployment("default", deployment())
    assert dup.value.status == 409 and status_of(dup.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as missing:
        apps.read_namespaced_deployment("nope", "default")
    assert status_of(missing.value)["message"] == 'deployments.apps "nope" not found'
    assert status_of(missing.value)["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}
    with pytest.raises(ApiException) as no_ns:
        apps.create_namespaced_deployment("elsewhere", deployment())
    assert status_of(no_ns.value)["message"] == 'namespaces "elsewhere" not found'
    bad = deployment()
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as invalid:
        apps.create_namespaced_deployment("default", bad)
    assert invalid.value.status == 422
    assert "`selector` does not match template `labels`" in status_of(invalid.value)["message"]

    pod = core.create_namespaced_pod("default", {"metadata": {"generateName": "one-off-"},
                                                 "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}})
    assert pod.metadata.name.startswith("one-off-") and len(pod.metadata.name) == len("one-off-") + 5
    assert pod.status.phase == "Pending"

    names = [d.metadata.name for d in apps.list_namespaced_deployment("default").items]
    assert names == ["web"]
    gone = apps.delete_namespaced_deployment("web", "default")
    assert gone.status == "Success" and gone.details.name == "web"
    kubeworld.wait_for(lambda w: not w.list("replicasets") and not w.list("pods", selector={"app": "web"}),
                       what="garbage collection of the deployment's replicasets and pods")


def test_update_conflicts_on_stale_resource_version_and_noop_keeps_it(kubeworld, api):
    core = client.CoreV1Api(api)
    svc = core.create_namespaced_service("default", {"metadata": {"name": "web"},
                                                     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert svc.spec.cluster_ip.startswith("127.96.") and svc.spec.ports[0].target_port == 80
    svc.metadata.labels = {"tier": "front"}
    updated = core.replace_namespaced_service("web", "default", svc)
    assert int(updated.metadata.resource_version) > int(svc.metadata.resource_version)
    svc.metadata.labels = {"tier": "back"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_service("web", "default", svc)
    assert e.value.status == 409 and status_of(e.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(e.value)["message"]
    again = core.replace_namespaced_service("web", "default", updated)
    assert again.metadata.resource_version == updated.metadata.resource_version  # nothing changed, nothing written


def test_generation_moves_on_spec_and_annotations_only(kubeworld, api):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", deployment())
    labelled = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1
    annotated = apps.patch_namespaced_deployment("web", "default", {"metadata": {"annotations": {"note": "a"}}})
    assert annotated.metadata.generation == 2  # deployment strategy: annotations are copied to replicasets
    scaled = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    assert scaled.spec.replicas == 3
    assert apps.read_namespaced_deployment("web", "default").metadata.generation == 3
    # status writes never touch spec, spec writes never touch status (controllers paused so the
    # test is the only writer)
    kubeworld.pause("deployment", "replicaset")
    current = apps.read_namespaced_deployment_status("web", "default")
    current.spec.replicas = 9
    current.status.replicas = 42
    written = apps.replace_namespaced_deployment_status("web", "default", current)
    assert (written.spec.replicas, written.status.replicas, written.metadata.generation) == (3, 42, 3)


def test_three_patch_types(kubeworld, api):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", deployment())
    # strategic merge: containers merge by name, env by name; a sidecar is added, not replacing
    smp = apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "example/web:2", "env": [{"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "example/side:1"}]}}}})
    containers = smp.spec.template.spec.containers
    assert [c.name for c in containers] == ["app", "sidecar"]
    assert containers[0].image == "example/web:2" and containers[0].ports[0].container_port == 8080
    assert [e.name for e in containers[0].env] == ["A", "B"]
    # $patch: delete removes one element by its merge key
    deleted = apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "$patch": "delete"}]}}}})
    assert [c.name for c in deleted.spec.template.spec.containers] == ["app"]

    def raw_patch(content_type, body, name="web"):
        return api.call_api(f"/apis/apps/v1/namespaces/default/deployments/{name}", "PATCH",
                            header_params={"Content-Type": content_type, "Accept": "application/json"},
                            body=body, auth_settings=["BearerToken"], response_type="object", _return_http_data_only=True)

    # JSON merge patch replaces lists whole
    merged = raw_patch("application/merge-patch+json", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "example/web:3"}]}}}})
    assert merged["spec"]["template"]["spec"]["containers"][0].get("env") is None
    # JSON patch with a passing and a failing test op
    rv = merged["metadata"]["resourceVersion"]
    ok = raw_patch("application/json-patch+json", [
        {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": "example/web:3"},
        {"op": "replace", "path": "/spec/replicas", "value": 4}])
    assert ok["spec"]["replicas"] == 4
    with pytest.raises(ApiException) as e:
        raw_patch("application/json-patch+json", [{"op": "test", "path": "/spec/replicas", "value": 1},
                                                  {"op": "replace", "path": "/spec/replicas", "value": 0}])
    assert e.value.status == 422 and status_of(e.value)["reason"] == "Invalid"
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 4
    # annotations are bounded as on a real server (256 KiB)
    with pytest.raises(ApiException) as big:
        apps.patch_namespaced_deployment("web", "default", {"metadata": {"annotations": {"h": "x" * 262144}}})
    assert big.value.status == 422 and "must have at most 262144 bytes" in status_of(big.value)["message"]
    # a resourceVersion inside a patch is a precondition
    with pytest.raises(ApiException) as stale:
        raw_patch("application/merge-patch+json", {"metadata": {"resourceVersion": rv}, "spec": {"replicas": 1}})
    assert stale.value.status == 409


def test_selectors_and_pagination(kubeworld, api):
    core = client.CoreV1Api(api)
    for name, labels in [("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "web", "env": "dev"}),
                         ("c", {"tier": "db"}), ("d", {})]:
        core.create_namespaced_service("default", {"metadata": {"name": name, "labels": labels},
                                                   "spec": {"ports": [{"port": 80}]}})

    def names(**kw):
        return [s.metadata.name for s in core.list_namespaced_service("default", **kw).items]

    assert names(label_selector="tier=web") == ["a", "b"]
    assert names(label_selector="tier!=web") == ["c", "d"]  # != also matches objects without the key
    assert names(label_selector="env in (prod,dev),tier") == ["a", "b"]
    assert names(label_selector="env notin (prod)") == ["b", "c", "d"]
    assert names(label_selector="!env") == ["c", "d"]
    assert names(field_selector="metadata.name=c") == ["c"]
    assert names(field_selector="metadata.name!=c") == ["a", "b", "d"]
    with pytest.raises(ApiException) as e:
        names(field_selector="spec.type=ClusterIP")
    assert e.value.status == 400 and status_of(e.value)["message"] == "field label not supported: spec.type"
    first = core.list_namespaced_service("default", limit=3)
    assert [s.metadata.name for s in first.items] == ["a", "b", "c"] and first.metadata.remaining_item_count == 1
    rest = core.list_namespaced_service("default", limit=3, _continue=first.metadata._continue)
    assert [s.metadata.name for s in rest.items] == ["d"] and not rest.metadata._continue


@pytest.mark.parametrize("kubeworld", [{"bookmark_interval": 0.2}], indirect=True)
def test_watch_resumes_bookmarks_times_out_and_expires(kubeworld, api):
    core = client.CoreV1Api(api)
    core.create_namespaced_service("default", {"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}})
    listed = core.list_namespaced_service("default")
    start_rv = listed.metadata.resource_version
    core.patch_namespaced_service("a", "default", {"metadata": {"labels": {"v": "2"}}})
    core.create_namespaced_service("default", {"metadata": {"name": "b"}, "spec": {"ports": [{"port": 80}]}})
    core.delete_namespaced_service("a", "default")
    seen = [(e["type"], e["object"].metadata.name)
            for e in watch.Watch().stream(core.list_namespaced_service, "default", resource_version=start_rv,
                                          timeout_seconds=1)]
    assert seen == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]

    # a selector turns label changes into ADDED/DELETED for the watcher
    got = []

    def watch_selected():
        for e in watch.Watch().stream(core.list_namespaced_service, "default", label_selector="pick=yes",
                                      timeout_seconds=2):
            got.append((e["type"], e["object"].metadata.name))
            if len(got) == 2:
                return

    t = threading.Thread(target=watch_selected)
    t.start()
    kubeworld.wait_for(lambda w: w.store.watchers.get("core/services"), what="the watch to be open")
    core.patch_namespaced_service("b", "default", {"metadata": {"labels": {"pick": "yes"}}})
    core.patch_namespaced_service("b", "default", {"metadata": {"labels": {"pick": "no"}}})
    t.join(5)
    assert got == [("ADDED", "b"), ("DELETED", "b")]

    # bookmarks carry only the resourceVersion
    resp = core.list_namespaced_service("default", watch=True, allow_watch_bookmarks=True, timeout_seconds=1,
                                        resource_version=core.list_namespaced_service("default").metadata.resource_version,
                                        _preload_content=False)
    lines = [json.loads(line) for line in resp.read().decode().splitlines() if line]
    assert lines and all(e["type"] == "BOOKMARK" for e in lines)
    assert set(lines[0]["object"]["metadata"]) == {"resourceVersion"}

    # after compaction an old resourceVersion is 410 Gone inside the stream
    kubeworld.compact()
    resp = core.list_namespaced_service("default", watch=True, resource_version=start_rv, timeout_seconds=1,
                                        _preload_content=False)
    events = [json.loads(line) for line in resp.read().decode().splitlines() if line]
    assert [e["type"] for e in events] == ["ERROR"]
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    assert events[0]["object"]["message"].startswith(f"too old resource version: {start_rv} (")


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_delete_propagation_policies(kubeworld, api):
    apps = client.AppsV1Api(api)
    for name in ("bg", "orphan", "fg"):
        apps.create_namespaced_deployment("default", deployment(name, replicas=1))
    kubeworld.wait_for(lambda w: len(w.list("pods")) == 3, what="three pods")
    apps.delete_namespaced_deployment("orphan", "default", propagation_policy="Orphan")
    kubeworld.wait_for(lambda w: w.get("deployments", "orphan") is None, what="orphaning delete")
    rs = kubeworld.list("replicasets", selector={"app": "orphan"})
    assert len(rs) == 1 and not rs[0]["metadata"].get("ownerReferences")
    kubeworld.pause("gc")
    apps.delete_namespaced_deployment("fg", "default", propagation_policy="Foreground")
    pending = kubeworld.get("deployments", "fg")
    assert pending["metadata"]["finalizers"] == ["foregroundDeletion"] and pending["metadata"]["deletionTimestamp"]
    kubeworld.resume("gc")
    kubeworld.wait_for(lambda w: w.get("deployments", "fg") is None and not w.list("replicasets", selector={"app": "fg"}),
                       what="foreground deletion")
    apps.delete_namespaced_deployment("bg", "default")
    kubeworld.wait_for(lambda w: not w.list("pods", selector={"app": "bg"}), what="background deletion")
    assert kubeworld.list("pods", selector={"app": "orphan"})  # orphaned pods keep running


def test_faults_are_seeded_and_reported_like_a_server(kubeworld, api):
    core = client.CoreV1Api(api)
    kubeworld.faults.add(Fault(verb="list", resource="services", status=429, retry_after=1, times=1))
    raw = requests.get(kubeworld.url + "/api/v1/namespaces/default/services", verify=_ca_file(kubeworld), timeout=5,
                       headers={"Authorization": f"Bearer {kubeworld.token}"})
    assert raw.status_code == 429 and raw.headers["Retry-After"] == "1"
    assert raw.json()["reason"] == "TooManyRequests" and raw.json()["details"]["retryAfterSeconds"] == 1
    assert core.list_namespaced_service("default").items == []  # `times=1` is spent

    # The official client's urllib3 pool retries a 429/503 that carries Retry-After by itself
    # (urllib3 Retry.RETRY_AFTER_STATUS_CODES): the caller sees only the final answer.
    kubeworld.faults.add(Fault(verb="list", resource="services", status=503, retry_after=1, times=1))
    assert core.list_namespaced_service("default").items == []
    answers = [r.answered for r in kubeworld.requests.all() if r.verb == "list"]
    assert answers == [429, 200, 503, 200]

    # phase="after": the write happens but the client gets a 503
    kubeworld.faults.add(Fault(verb="create", resource="services", status=503, phase="after", times=1))
    with pytest.raises(ApiException) as e:
        core.create_namespaced_service("default", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
    assert e.value.status == 503
    assert kubeworld.get("services", "s") is not None
    create = [r for r in kubeworld.requests.writes() if r.resource == "services"][-1]
    assert (create.status, create.answered, create.committed) == (201, 503, True)

    # a dropped connection is no answer at all; urllib3 retries it (Retry(total=3)) before giving up
    rule = kubeworld.faults.add(Fault(verb="get", name="s", drop=True))
    with pytest.raises(Exception) as dropped:
        core.read_namespaced_service("s", "default", _request_timeout=5)
    assert not isinstance(dropped.value, ApiException)
    assert rule.fired == 4
    assert [r.answered for r in kubeworld.requests.all() if r.verb == "get" and r.name == "s"] == [-1] * 4


def test_request_log_and_write_hook(kubeworld, api):
    core = client.CoreV1Api(api)
    seen_at_commit = []
    kubeworld.requests.on_write(lambda info: seen_at_commit.append((info.verb, info.name, kubeworld.store.rv)))
    core.create_namespaced_service("default", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
    core.read_namespaced_service("s", "default")
    core.patch_namespaced_service("s", "default", {"metadata": {"labels": {"a": "b"}}})
    core.delete_namespaced_service("s", "default")
    log = [(r.method, r.verb, r.resource, r.name, r.write) for r in kubeworld.requests.all() if r.resource == "services"]
    assert log == [("POST", "create", "services", "", True), ("GET", "get", "services", "s", False),
                   ("PATCH", "patch", "services", "s", True), ("DELETE", "delete", "services", "s", True)]
    assert [v for v, _, _ in seen_at_commit] == ["create", "patch", "delete"]
    assert all("OpenAPI-Generator" in r.user_agent for r in kubeworld.requests.all())


def test_watch_cut_mid_stream_and_latency_faults(kubeworld, api):
    core = client.CoreV1Api(api)
    for name in ("a", "b", "c"):
        core.create_namespaced_service("default", {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}})
    kubeworld.faults.add(Fault(verb="watch", resource="services", cut_watch_after=2, times=1))
    got = []
    with pytest.raises(Exception) as cut:
        for e in watch.Watch().stream(core.list_namespaced_service, "default", timeout_seconds=5):
            got.append(e["object"].metadata.name)
    assert got == ["a", "b"]
    assert "ended" in str(cut.value).lower() or "protocol" in type(cut.value).__name__.lower()
    assert [r.faults for r in kubeworld.requests.all() if r.verb == "watch"] == [["before:cut-watch", "cut-watch"]]

    kubeworld.faults.add(Fault(verb="get", resource="services", latency=0.3, times=1))
    import time
    started = time.monotonic()
    core.read_namespaced_service("a", "default")
    assert time.monotonic() - started >= 0.3


def test_lease_contention_is_decided_by_resource_version(kubeworld, api):
    coord = client.CoordinationV1Api(api)
    lease = coord.create_namespaced_lease("default", {"metadata": {"name": "deploy-web"},
                                                      "spec": {"leaseDurationSeconds": 30}})
    first, second = coord.read_namespaced_lease("deploy-web", "default"), coord.read_namespaced_lease("deploy-web", "default")
    first.spec.holder_identity = "pipeline-1"
    second.spec.holder_identity = "pipeline-2"
    won = coord.replace_namespaced_lease("deploy-web", "default", first)
    with pytest.raises(ApiException) as lost:
        coord.replace_namespaced_lease("deploy-web", "default", second)
    assert lost.value.status == 409
    assert won.spec.holder_identity == "pipeline-1" and won.metadata.resource_version != lease.metadata.resource_version
    assert kubeworld.get("leases", "deploy-web")["spec"]["holderIdentity"] == "pipeline-1"


def test_hpa_is_stored_and_served(kubeworld, api):
    hpa = client.AutoscalingV2Api(api).create_namespaced_horizontal_pod_autoscaler("default", {
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-blue"},
                 "maxReplicas": 5}})
    assert hpa.spec.min_replicas == 1  # defaulted
    patched = client.AutoscalingV2Api(api).patch_namespaced_horizontal_pod_autoscaler(
        "web", "default", {"spec": {"scaleTargetRef": {"name": "web-green"}}})
    assert patched.spec.scale_target_ref.name == "web-green" and patched.spec.scale_target_ref.kind == "Deployment"


def test_same_seed_same_world(tmp_path):
    from tests.support.kubeworld import KubeWorld

    def run(seed):
        with KubeWorld(seed=seed, time_scale=0.05, workdir=str(tmp_path / str(seed))) as world:
            world.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                                   "template": {"metadata": {"labels": {"app": "web"}},
                                                "spec": {"containers": [{"name": "a", "image": "i:1"}]}}}})
            world.wait_for(lambda w: len(w.list("pods")) == 3, what="three pods")
            return sorted((p["metadata"]["name"], p["metadata"]["uid"]) for p in world.list("pods"))

    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_paused_controllers_leave_state_alone(kubeworld, api):
    kubeworld.pause("replicaset")
    client.AppsV1Api(api).create_namespaced_deployment("default", deployment(replicas=2))
    kubeworld.wait_for(lambda w: w.list("replicasets"), what="the replicaset")
    import time
    time.sleep(0.2)
    assert kubeworld.list("pods") == []
    kubeworld.resume("replicaset")
    kubeworld.wait_for(lambda w: len(w.list("pods")) == 2, what="pods after resuming")
