"""The real kubectl (v1.32) against the emulated cluster: get, describe, apply, rollout status."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.kubeworld.fixtures import kubeworld  # noqa: F401  (fixture)

FAST = {"time_scale": 0.1}


def manifest(name: str, image: str, replicas: int = 2, progress_deadline: int = 600) -> str:
    return yaml.safe_dump_all([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
         "spec": {"replicas": replicas, "progressDeadlineSeconds": progress_deadline,
                  "selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{
                      "name": "app", "image": image, "ports": [{"name": "http", "containerPort": 8080}],
                      "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
         "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
    ])


def apply(world, tmp_path, text: str):
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    return world.kubectl("apply", "--server-side=false", "-f", str(path))


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_apply_get_describe_and_rollout_status_of_a_good_image(kubeworld, tmp_path):
    created = apply(kubeworld, tmp_path, manifest("web", "example/web:1"))
    assert created.returncode == 0, created.stderr
    assert created.stdout.splitlines() == ["deployment.apps/web created", "service/web created"]
    status = kubeworld.kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[-1] == 'deployment "web" successfully rolled out'

    get = kubeworld.kubectl("get", "deployments,pods,services")
    assert get.returncode == 0, get.stderr
    lines = get.stdout.splitlines()
    deploy_row = next(line for line in lines if line.startswith("deployment.apps/web"))
    assert deploy_row.split()[:4] == ["deployment.apps/web", "2/2", "2", "2"]
    pod_rows = [line.split() for line in lines if line.startswith("pod/web-")]
    assert len(pod_rows) == 2 and all(r[1:3] == ["1/1", "Running"] for r in pod_rows)
    as_json = json.loads(kubeworld.kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert as_json["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert "kubectl.kubernetes.io/last-applied-configuration" in as_json["metadata"]["annotations"]

    # a second apply with a new image is a strategic merge patch; an unchanged one writes nothing
    changed = apply(kubeworld, tmp_path, manifest("web", "example/web:2"))
    assert changed.stdout.splitlines() == ["deployment.apps/web configured", "service/web unchanged"]
    patches = [r for r in kubeworld.requests.writes("kubectl") if r.verb == "patch"]
    assert [(r.resource, r.content_type.split(";")[0]) for r in patches] == [
        ("deployments", "application/strategic-merge-patch+json")]
    status = kubeworld.kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    assert status.returncode == 0 and "successfully rolled out" in status.stdout
    revision = kubeworld.get("deployments", "web")["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
    assert revision == "2"

    describe = kubeworld.kubectl("describe", "deployment", "web")
    assert describe.returncode == 0, describe.stderr
    text = describe.stdout
    assert "Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable" in text
    assert "Available      True    MinimumReplicasAvailable" in text
    assert "Progressing    True    NewReplicaSetAvailable" in text
    assert "Scaled up replica set web-" in text and "Scaled down replica set web-" in text
    svc = kubeworld.kubectl("describe", "service", "web").stdout
    assert "TargetPort:               http/TCP" in svc and svc.count("127.244.") >= 2


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollout_status_reports_the_progress_deadline_of_a_crash_loop(kubeworld, tmp_path):
    assert apply(kubeworld, tmp_path, manifest("bad", "example/web:1-crashloop", progress_deadline=20)).returncode == 0

    def crash_looping(world):
        return any(c["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
                   for p in world.list("pods", selector={"app": "bad"})
                   for c in (p.get("status") or {}).get("containerStatuses") or [])

    kubeworld.wait_for(crash_looping, what="a pod in CrashLoopBackOff")
    before = len(kubeworld.requests.all())
    status = kubeworld.kubectl("rollout", "status", "deployment/bad", "--timeout=30s")
    assert status.returncode == 1
    assert status.stderr.strip() == 'error: deployment "bad" exceeded its progress deadline'
    # kubectl 1.32 lists no pods while it waits (the "(Warning: CrashLoopBackOff ...)" suffix of
    # polymorphichelpers/rollout_status.go `appendWarning` came later): only the deployment is read.
    assert {(r.verb, r.resource) for r in kubeworld.requests.all()[before:] if r.resource} == {
        ("get", "deployments"), ("list", "deployments"), ("watch", "deployments")}
    dep = kubeworld.get("deployments", "bad")
    progressing = next(c for c in dep["status"]["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    rows = [line.split() for line in kubeworld.kubectl("get", "pods", "-l", "app=bad").stdout.splitlines()[1:]]
    assert len(rows) == 2 and all(r[1] == "0/1" and int(r[3]) >= 1 for r in rows)  # READY 0/1, RESTARTS


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_rollout_status_waits_for_a_slow_starter(kubeworld, tmp_path):
    assert apply(kubeworld, tmp_path, manifest("slow", "example/web:1-slow2s", replicas=1)).returncode == 0
    early = kubeworld.kubectl("rollout", "status", "deployment/slow", "--timeout=1s")
    assert early.returncode == 1
    assert "Waiting for deployment \"slow\" rollout to finish: 0 of 1 updated replicas are available..." in early.stdout
    assert "timed out waiting for the condition" in early.stderr
    late = kubeworld.kubectl("rollout", "status", "deployment/slow", "--timeout=20s")
    assert late.returncode == 0 and late.stdout.splitlines()[-1] == 'deployment "slow" successfully rolled out'


def test_kubectl_with_a_wrong_token_is_refused(kubeworld, tmp_path):
    path = kubeworld.write_kubeconfig(str(tmp_path / "wrong"), token="wrong-token")
    result = kubeworld.kubectl("get", "pods", kubeconfig=path)
    assert result.returncode == 1
    assert "You must be logged in to the server" in result.stderr
    assert kubeworld.token not in result.stderr + result.stdout


def test_apply_validates_fields_on_the_server(kubeworld, tmp_path):
    text = manifest("web", "example/web:1").replace("progressDeadlineSeconds: 600", "progressDeadlineSecond: 600")
    result = apply(kubeworld, tmp_path, text)
    assert result.returncode == 1
    assert 'strict decoding error: unknown field "spec.progressDeadlineSecond"' in result.stderr
    posts = [r for r in kubeworld.requests.all() if r.method == "POST" and r.resource == "deployments"]
    assert posts and "fieldValidation=Strict" in posts[0].query
    assert kubeworld.get("deployments", "web") is None


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_get_events_and_scale(kubeworld, tmp_path):
    assert apply(kubeworld, tmp_path, manifest("web", "example/web:1", replicas=1)).returncode == 0
    scaled = kubeworld.kubectl("scale", "deployment/web", "--replicas=3")
    assert scaled.returncode == 0 and scaled.stdout.strip() == "deployment.apps/web scaled"
    assert kubeworld.kubectl("rollout", "status", "deployment/web", "--timeout=20s").returncode == 0
    events = kubeworld.kubectl("get", "events", "--field-selector", "involvedObject.kind=Deployment")
    assert events.returncode == 0, events.stderr
    rows = [line.split(None, 4) for line in events.stdout.splitlines()[1:]]
    assert [r[4] for r in rows if r[2] == "ScalingReplicaSet"][-1].startswith("Scaled up replica set web-")
    assert all(r[3] == "deployment/web" for r in rows)
