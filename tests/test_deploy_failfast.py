"""Issue 14, defect 6: fail fast only on failures that persist, and judge a 422 by its cause.

Against the Kubernetes test world (helper run as a process, as in tests/test_deploy.py), with the
world's failure knobs (tests/support/kubeworld: kubelet.py ``fail_pulls``, ConfigMaps resolved by the
kubelet, replicaset.py ``reject_pods``):

- a registry that fails a pull twice (ErrImagePull, ImagePullBackOff, ErrImagePull, then the pull
  works, as pkg/kubelet/images/image_manager.go reports it) must not fail the deploy;
- a pull that keeps failing fails it well before the progress deadline, naming image and reason;
- a ConfigMap created a moment after the pods (CreateContainerConfigError, then the container
  starts: the kubelet retries without a back-off state) must not fail it;
- a 422 on the idle Deployment's update whose cause is not the immutable selector is one line naming
  the field, and the idle colour is kept; the immutable-selector 422 still recreates it;
- pods the API server refuses (quota, pod security) fail the deploy at once on the ReplicaSet's
  ReplicaFailure condition (FailedCreate), copied to the Deployment by the controller.
"""

from __future__ import annotations

import threading
import time

import pytest
import yaml

from tests.support import deployrun as d
from tests.support.deployrun import ok, world  # noqa: F401 (world is a fixture)
from tests.support.kubeworld.replicaset import QUOTA

FAST = {"time_scale": 0.1, "propagation_lag": 0.2, "seed": 14}


def manifest(tmp_path, change) -> str:
    """The rendered backend manifest with ``change(deployment)`` applied, written to tmp_path."""
    docs = list(yaml.safe_load_all(d.MANIFEST.read_text()))
    change(next(doc for doc in docs if doc["kind"] == "Deployment"))
    path = tmp_path / "backend.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def one_line(run: d.Run) -> str:
    message = run.result["message"]
    assert "\n" not in message and "Traceback" not in run.stderr, run.stdout + run.stderr
    return message


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_pull_that_fails_twice_then_works_does_not_fail_the_deploy(world) -> None:
    ok(d.deploy(world, "v1"))
    world.control.kubelet.fail_pulls(d.image("v2"), times=2, status=503)
    started = time.monotonic()
    result = ok(d.deploy(world, "v2", "--timeout", "60s"))
    assert (result["outcome"], result["colour"]) == ("deployed", "green")
    assert d.selected_colour(world) == "green"
    failed = [e for e in world.list("events", d.NAMESPACE) if e["message"].startswith(f'Failed to pull image "{d.image("v2")}"')]
    assert failed, "the world did not fail the pulls"
    assert time.monotonic() - started < 40


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_pull_that_keeps_failing_fails_fast_naming_image_and_reason(world) -> None:
    ok(d.deploy(world, "v1"))
    started = time.monotonic()
    # the fail grace in this world's time (60 s x 0.1): the counts decide once the first failure is 6 s old
    failed = d.deploy(world, "v2-nosuchimage", "--timeout", "60s", "--fail-grace", "6s")
    took = time.monotonic() - started
    assert failed.returncode == 1, failed.stdout + failed.stderr
    message = one_line(failed)
    assert d.image("v2-nosuchimage") in message
    assert "ErrImagePull" in message or "ImagePullBackOff" in message
    assert "not found" in message  # the runtime's reason
    # the progress deadline is 300 s x 0.1 = 30 s in this world
    assert took < 15, f"took {took:.1f} s"
    assert d.selected_colour(world) == "blue"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_configmap_created_late_does_not_fail_the_deploy(world, tmp_path) -> None:
    def with_config(dep):
        dep["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "backend-settings"}}]

    path = manifest(tmp_path, with_config)
    ok(_first_with_config(world, path))

    def create_late() -> None:
        world.wait_for(lambda w: any("CreateContainerConfigError" in str(p.get("status")) for p in w.list("pods", d.NAMESPACE)
                                     if p["spec"]["containers"][0]["image"] == d.image("v2")),
                       timeout=60, what="v2's pods waiting for their ConfigMap")
        time.sleep(0.5)
        world.create({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "backend-settings", "namespace": d.NAMESPACE}, "data": {"MODE": "v2"}})

    world.delete("configmaps", "backend-settings", d.NAMESPACE)
    creator = threading.Thread(target=create_late, daemon=True)
    creator.start()
    run = d.deploy(world, "v2", "--timeout", "60s", extra_env={"ENADU_MANIFEST": path})
    creator.join(timeout=60)
    result = ok(run)
    assert (result["outcome"], result["colour"]) == ("deployed", "green")


def _first_with_config(world, path: str) -> d.Run:
    world.create({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "backend-settings", "namespace": d.NAMESPACE}, "data": {"MODE": "v1"}})
    return d.deploy(world, "v1", extra_env={"ENADU_MANIFEST": path})


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_422_that_is_not_the_selector_is_one_line_and_keeps_the_idle_colour(world, tmp_path) -> None:
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2"))  # blue is now the idle colour, scaled to zero
    idle_uid = d.deployment(world, "blue")["metadata"]["uid"]

    def invalid(dep):  # accepted by our manifest checks, refused by the API server's validation
        dep["spec"]["minReadySeconds"] = 400  # progressDeadlineSeconds is 300

    failed = d.deploy(world, "v3", extra_env={"ENADU_MANIFEST": manifest(tmp_path, invalid)})
    assert failed.returncode != 0, failed.stdout + failed.stderr
    message = one_line(failed)
    assert "spec.progressDeadlineSeconds" in message and "must be greater than minReadySeconds" in message
    blue = d.deployment(world, "blue")
    assert blue is not None and blue["metadata"]["uid"] == idle_uid, "the idle colour was deleted"
    assert d.running_image(world, "blue") == d.image("v1")
    assert d.selected_colour(world) == "green"
    deletes = [r for r in d.helper_writes(world) if r.method == "DELETE" and r.resource == "deployments"]
    assert deletes == []


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_an_immutable_selector_422_recreates_the_idle_colour(world, tmp_path) -> None:
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2"))
    idle_uid = d.deployment(world, "blue")["metadata"]["uid"]

    def new_selector(dep):
        dep["spec"]["selector"]["matchLabels"]["tier"] = "api"
        dep["spec"]["template"]["metadata"]["labels"]["tier"] = "api"

    result = ok(d.deploy(world, "v3", extra_env={"ENADU_MANIFEST": manifest(tmp_path, new_selector)}))
    assert (result["outcome"], result["colour"]) == ("deployed", "blue")
    blue = d.deployment(world, "blue")
    assert blue["metadata"]["uid"] != idle_uid
    assert blue["spec"]["selector"]["matchLabels"] == {"app": "backend", "tier": "api", "color": "blue"}


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_pods_the_api_server_refuses_fail_the_deploy_on_replica_failure(world) -> None:
    ok(d.deploy(world, "v1"))
    world.control.controllers["replicaset"].reject_pods(QUOTA, namespace=d.NAMESPACE)
    started = time.monotonic()
    failed = d.deploy(world, "v2", "--timeout", "60s")
    took = time.monotonic() - started
    assert failed.returncode == 1, failed.stdout + failed.stderr
    message = one_line(failed)
    assert "ReplicaFailure" in message and "FailedCreate" in message
    assert "is forbidden: exceeded quota: compute-resources" in message
    assert took < 15, f"took {took:.1f} s (the progress deadline is 30 s here)"
    assert d.selected_colour(world) == "blue"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_configmap_that_never_comes_fails_after_the_grace(world, tmp_path) -> None:
    def with_config(dep):
        dep["spec"]["template"]["spec"]["containers"][0]["env"] = [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "backend-flags", "key": "mode"}}}]

    ok(d.deploy(world, "v1"))
    started = time.monotonic()
    failed = d.deploy(world, "v2", "--timeout", "60s", "--fail-grace", "3s",
                      extra_env={"ENADU_MANIFEST": manifest(tmp_path, with_config)})
    took = time.monotonic() - started
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert one_line(failed).endswith('CreateContainerConfigError for 3 s (configmap "backend-flags" not found)')
    assert 3 <= took < 15, f"took {took:.1f} s"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_an_init_container_that_keeps_crashing_fails_fast(world, tmp_path) -> None:
    def with_init(dep):
        dep["spec"]["template"]["spec"]["initContainers"] = [
            {"name": "migrate", "image": "registry.enadu.dev/enadu/migrate:1-crashloop"}]

    ok(d.deploy(world, "v1"))
    failed = d.deploy(world, "v2", "--timeout", "60s", "--fail-grace", "6s",
                      extra_env={"ENADU_MANIFEST": manifest(tmp_path, with_init)})
    assert failed.returncode == 1, failed.stdout + failed.stderr
    message = one_line(failed)
    assert "init container migrate: CrashLoopBackOff after 3 restarts, last exit code 1" in message


# -- the rules, without a world --------------------------------------------------------------------

def _pod(reason="", message="", restarts=0, uid="u1", init=False):
    state = {"waiting": {"reason": reason, **({"message": message} if message else {})}} if reason else {"running": {}}
    cs = {"name": "backend", "image": "img:1", "state": state, "restartCount": restarts,
          "lastState": {"terminated": {"exitCode": 1}} if restarts else {}}
    status = {"initContainerStatuses" if init else "containerStatuses": [cs]}
    return {"p": {"metadata": {"name": "p", "uid": uid}, "spec": {"containers": [{"image": "img:1"}]}, "status": status}}


def test_fail_fast_rules() -> None:
    from enadu_pipelines.helper.kube.bluegreen import FailFast

    now = [0.0]
    judge = FailFast("img:1", grace=10, clock=lambda: now[0])
    # two failed pulls with the back-off between them, then the pull works: never a verdict
    for reason in ("ContainerCreating", "ErrImagePull", "ImagePullBackOff", "ErrImagePull", "ImagePullBackOff", ""):
        assert judge.check(_pod(reason, "rpc error: ... 503 Service Unavailable")) is None
    # the third failed pull of one container is one too many; the runtime's reason is kept
    judge = FailFast("img:1", grace=10, clock=lambda: now[0])
    long_error = "rpc error: code = NotFound desc = " + "x" * 400 + ": img:1: not found"
    verdicts = []
    for r in ("ErrImagePull", "ImagePullBackOff") * 3:
        verdicts.append(judge.check(_pod(r, long_error if r == "ErrImagePull" else "Back-off pulling image")))
        now[0] += 5  # the kubelet's image back-off: 10 s, then 20 s (kubelet.go imageBackOffPeriod)
    assert verdicts[:4] == [None] * 4
    assert verdicts[4].startswith("pod p container backend: image img:1 could not be pulled (3 attempts; ErrImagePull: ")
    assert verdicts[4].endswith(": img:1: not found)") and len(verdicts[4]) < 400
    # a crash loop counts after three restarts (and the minimum time, see below)
    judge = FailFast("img:1", clock=lambda: now[0])
    assert judge.check(_pod("CrashLoopBackOff", restarts=2)) is None
    now[0] += 30
    assert judge.check(_pod("CrashLoopBackOff", restarts=3)) == \
        "pod p container backend: CrashLoopBackOff after 3 restarts, last exit code 1"
    # a config error counts once it lasted the grace; a new state starts the clock again
    now[0] = 0.0
    judge = FailFast("img:1", grace=10, clock=lambda: now[0])
    assert judge.check(_pod("CreateContainerConfigError", 'configmap "c" not found')) is None
    now[0] = 9.9
    assert judge.check(_pod("CreateContainerConfigError", 'configmap "c" not found')) is None
    now[0] = 10.0
    assert judge.check(_pod("CreateContainerConfigError", 'configmap "c" not found')) == \
        'pod p container backend: CreateContainerConfigError for 10 s (configmap "c" not found)'
    # init containers are judged too; an unparsable image at once; other images' pods not at all
    assert FailFast("img:1").check(_pod("InvalidImageName", init=True)) == "pod p init container backend: InvalidImageName"
    assert FailFast("other:2").check(_pod("InvalidImageName")) is None


@pytest.mark.parametrize(("grace", "least"), [(60.0, 30.0), (10.0, 10.0)])
def test_fail_fast_counts_need_a_minimum_time_since_the_first_failure(grace, least) -> None:
    """A kubelet with a shortened crash back-off (pkg/kubelet/kubelet.go: reducedInitialCrashLoopBackOff
    1 s under ReduceDefaultCrashLoopBackOffDecay, or crashLoopBackOff.maxContainerRestartPeriod as low as
    1 s) restarts three times in a few seconds; a container waiting out a slow dependency must get the
    time the default back-off (10 s, then 20 s) gives it: the counts decide only once the first failure
    seen is min(--fail-grace, 30 s) old. Time is the judge's clock, not the wall."""
    from enadu_pipelines.helper.kube.bluegreen import FailFast

    now = [100.0]
    judge = FailFast("img:1", grace=grace, clock=lambda: now[0])
    for restarts in range(1, 6):  # a restart a second
        assert judge.check(_pod("CrashLoopBackOff", restarts=restarts)) is None
        now[0] += 1
    now[0] = 100.0 + least - 0.1
    assert judge.check(_pod("CrashLoopBackOff", restarts=6)) is None
    now[0] = 100.0 + least
    assert judge.check(_pod("CrashLoopBackOff", restarts=6)) == \
        "pod p container backend: CrashLoopBackOff after 6 restarts, last exit code 1"

    # pulls the same way; the time runs from the first failure seen, not from the last state change
    now = [0.0]
    judge = FailFast("img:1", grace=grace, clock=lambda: now[0])
    for reason in ("ErrImagePull", "ImagePullBackOff") * 3:
        assert judge.check(_pod(reason, "not found")) is None
        now[0] += 0.5
    now[0] = least
    assert judge.check(_pod("ImagePullBackOff", "not found")).startswith(
        "pod p container backend: image img:1 could not be pulled (3 attempts;")

    # the minimum never delays what cannot heal
    assert FailFast("img:1", grace=grace, clock=lambda: 0.0).check(_pod("InvalidImageName")) == \
        "pod p container backend: InvalidImageName"
