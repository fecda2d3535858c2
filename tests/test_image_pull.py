"""The kubeworld kubelet pulling from a real registry: a missing image is ErrImagePull, then
ImagePullBackOff, with kubelet's events; what a pulled image does comes from its
`io.enadu.test.kind` label; images of other hosts keep the name convention."""

from __future__ import annotations

import pytest

from support.kubeworld.kubelet import split_reference
from support.ociregistry import push_scratch_image
from support.ociregistry.fixtures import oci_registry  # noqa: F401  (fixture)
from tests.support.kubeworld.fixtures import kubeworld  # noqa: F401  (fixture)


def deployment(name: str, image: str) -> dict:
    labels = {"app": name}
    container = {"name": "app", "image": image, "ports": [{"name": "http", "containerPort": 8080}],
                 "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}}


def waiting_reasons(world, name: str) -> set:
    pods = world.list("pods", selector={"app": name})
    return {c["state"].get("waiting", {}).get("reason") for p in pods
            for c in (p.get("status") or {}).get("containerStatuses") or []}


def available(world, name: str) -> bool:
    return ((world.get("deployments", name) or {}).get("status") or {}).get("availableReplicas") == 1


def events_of(world, name: str) -> list[tuple[str, str, str]]:
    pods = {p["metadata"]["name"] for p in world.list("pods", selector={"app": name})}
    return [(e["type"], e["reason"], e["message"]) for e in world.list("events") if e["involvedObject"]["name"] in pods]


@pytest.mark.parametrize("reference, parts", [
    ("127.0.0.1:5000/enadu/backend:3f9c2a1-57", ("127.0.0.1:5000", "enadu/backend", "3f9c2a1-57")),
    ("localhost:5000/web@sha256:" + "a" * 64, ("localhost:5000", "web", "sha256:" + "a" * 64)),
    ("registry.example/shop/web", ("registry.example", "shop/web", "latest")),
    ("example/web:1-crashloop", ("docker.io", "example/web", "1-crashloop")),
    ("nginx", ("docker.io", "nginx", "latest")),
])
def test_references_split_like_distributions_reference_package(reference, parts):
    assert split_reference(reference) == parts


@pytest.mark.parametrize("kubeworld", [{"time_scale": 0.05}], indirect=True)
def test_registry_images_are_pulled_for_real_and_behave_as_their_label_says(kubeworld, oci_registry, tmp_path):
    push_scratch_image(oci_registry, "enadu/web", "good-1", tmp_path / "good")
    push_scratch_image(oci_registry, "enadu/web", "bad-1", tmp_path / "bad", labels={"io.enadu.test.kind": "crashloop"})
    oci_registry.attach(kubeworld)
    host = oci_registry.host
    missing = f"{host}/enadu/web:never-pushed"
    kubeworld.create(deployment("good", f"{host}/enadu/web:good-1"), deployment("crash", f"{host}/enadu/web:bad-1"),
                     deployment("missing", missing),
                     # the name convention still applies to other hosts, even a "crashloop" tag here is not one
                     deployment("elsewhere", "example/web:1"))

    seen = {"crash": set(), "missing": set()}

    def settled(w):
        for name in seen:
            seen[name] |= waiting_reasons(w, name)
        return (available(w, "good") and available(w, "elsewhere") and "CrashLoopBackOff" in seen["crash"]
                and {"ErrImagePull", "ImagePullBackOff"} <= seen["missing"])

    kubeworld.wait_for(settled, timeout=20, interval=0.005, what=f"every deployment to settle (seen: {seen})")

    pod = kubeworld.list("pods", selector={"app": "missing"})[0]
    assert pod["status"]["phase"] == "Pending"
    not_found = (f'rpc error: code = NotFound desc = failed to pull and unpack image "{missing}": '
                 f'failed to resolve reference "{missing}": {missing}: not found')
    events = events_of(kubeworld, "missing")
    assert ("Normal", "Pulling", f'Pulling image "{missing}"') in events
    assert ("Warning", "Failed", f'Failed to pull image "{missing}": {not_found}') in events
    assert ("Warning", "Failed", "Error: ErrImagePull") in events
    assert ("Normal", "BackOff", f'Back-off pulling image "{missing}"') in events
    assert ("Warning", "Failed", "Error: ImagePullBackOff") in events

    good_events = events_of(kubeworld, "good")
    assert any(r == "Pulled" and m.startswith(f'Successfully pulled image "{host}/enadu/web:good-1" in ')
               and not m.endswith("Image size: 0 bytes.") for _, r, m in good_events), good_events
    # the kubelet's pulls reached the registry: manifest, config and layer for each pushed image
    assert oci_registry.manifest_reads("enadu/web") >= 2 * 2  # HEAD + GET per pulled image
    assert not any(r.status == 401 and r.user_agent.startswith("Python") for r in oci_registry.requests())


@pytest.mark.parametrize("kubeworld", [{"time_scale": 0.05}], indirect=True)
def test_wrong_node_credentials_fail_the_pull(kubeworld, oci_registry, tmp_path):
    push_scratch_image(oci_registry, "enadu/web", "1", tmp_path)
    kubeworld.control.kubelet.use_registry(oci_registry.host, oci_registry.username, "wrong")
    image = f"{oci_registry.host}/enadu/web:1"
    kubeworld.create(deployment("web", image))
    kubeworld.wait_for(lambda w: "ImagePullBackOff" in waiting_reasons(w, "web"), timeout=10, what="ImagePullBackOff")
    failed = [m for _, r, m in events_of(kubeworld, "web") if r == "Failed" and m.startswith("Failed to pull")]
    assert failed and "pull access denied, repository does not exist or may require authorization" in failed[0]
    assert "401 Unauthorized" in failed[0] and "wrong" not in failed[0]


@pytest.mark.parametrize("kubeworld", [{"time_scale": 0.05}], indirect=True)
def test_an_image_pushed_after_the_failure_is_pulled_on_the_next_attempt(kubeworld, oci_registry, tmp_path):
    oci_registry.attach(kubeworld)
    image = f"{oci_registry.host}/enadu/web:late"
    kubeworld.create(deployment("web", image))
    kubeworld.wait_for(lambda w: "ImagePullBackOff" in waiting_reasons(w, "web"), timeout=10, what="ImagePullBackOff")
    push_scratch_image(oci_registry, "enadu/web", "late", tmp_path)
    kubeworld.wait_for(lambda w: available(w, "web"), timeout=20, what="the deployment to become available")
