"""Issue 14, defect 7: the smoke test must test the new colour, and say clearly why it failed.

The helper smoke-tests the idle colour through the API server's service proxy, which picks a pod
from the legacy Endpoints object (kubernetes/kubernetes pkg/registry/core/service/storage/storage.go,
``GenericREST.ResourceLocation``: ``r.endpoints.Get(ctx, svcName, ...)``), while the helper's
endpoint wait follows the EndpointSlices. The two are written by separate controllers, so the
Endpoints can lag: the test world's endpoints controller is given a lag
(tests/support/kubeworld/endpoints.py, ``Lag``) and its pods name their image in ``X-Enadu-Image``
(dataplane.py), so a test can see which image answered the smoke request
(``DataPlane.proxy_log``).

Also: an app answering 401/404 on the smoke path is the app's answer, not the cluster refusing the
credentials; and an API server that cannot reach the pods (a private cluster; the proxy answers 503
``error trying to reach service: ...``, as staging/src/k8s.io/apimachinery/pkg/util/proxy/transport.go
does) fails the smoke test with a message that says so.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support import deployrun as d
from tests.support.deployrun import ok, world  # noqa: F401 (world is a fixture)
from tests.support.kubeworld import resources as R

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 7}
PREVIEW = f"{d.SERVICE}-preview"
SMOKE_PATH = "/actuator/health"  # what deployrun passes as ENADU_SMOKE_PATH


def lag_endpoints(world, seconds: float) -> None:
    world.call(lambda: world.control.controllers["endpoints"].lag.set(seconds))


def smoke_answers(world, since: float) -> list:
    """Who answered the requests the API server's proxy delivered to the preview Service."""
    return [e for e in list(world.dataplane.proxy_log)
            if e["name"] == PREVIEW and e["path"] == SMOKE_PATH and e["at"] >= since]


def message(run: d.Run) -> str:
    return run.result.get("message", "")


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_the_test_world_endpoints_can_lag_the_slices(world) -> None:
    ok(d.deploy(world, "v1"))
    lag_endpoints(world, 1.0)
    blue_pods = {p["metadata"]["name"] for p in world.list("pods", d.NAMESPACE)
                 if p["metadata"]["labels"].get("color") == "blue"}

    def slice_pods(w) -> set:
        return {e["targetRef"]["name"] for s in w.list("endpointslices", d.NAMESPACE)
                if s["metadata"]["labels"].get("kubernetes.io/service-name") == PREVIEW
                for e in s.get("endpoints") or []}

    def endpoints_pods(w) -> set:
        eps = w.get("endpoints", PREVIEW, d.NAMESPACE) or {}
        return {a["targetRef"]["name"] for ss in eps.get("subsets") or [] for a in ss.get("addresses") or []}

    assert slice_pods(world) == endpoints_pods(world) == blue_pods
    svc = world.get("services", PREVIEW, d.NAMESPACE)
    svc["spec"]["selector"]["color"] = "green"  # no green pods
    world.call(lambda: world.registry.update(R.BY_KEY["core/services"], d.NAMESPACE, PREVIEW, svc))
    changed = time.monotonic()
    world.wait_for(lambda w: slice_pods(w) == set(), timeout=5, what="the slices following the selector")
    assert time.monotonic() - changed < 0.5
    assert endpoints_pods(world) == blue_pods  # the Endpoints still list the old pods
    world.wait_for(lambda w: endpoints_pods(w) == set(), timeout=5, what="the Endpoints following, late")
    assert time.monotonic() - changed >= 0.9


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_the_smoke_test_waits_for_the_endpoints_the_proxy_routes_by(world) -> None:
    ok(d.deploy(world, "v1"))
    lag_endpoints(world, 2.0)  # the Endpoints controller writes 2 s after the EndpointSlice controller
    started = time.monotonic()
    run = d.deploy(world, "v2")
    answered = smoke_answers(world, started)
    assert answered, run.stdout + run.stderr
    # Every smoke request reached the new colour (the header each pod sends names its image).
    assert {e["image"] for e in answered} == {d.image("v2")}, answered
    result = ok(run)
    assert (result["outcome"], result["colour"]) == ("deployed", "green")
    # The wait is said, and the answer's image is reported.
    assert "Endpoints" in run.stderr and "API server's service proxy" in run.stderr, run.stderr
    assert f"answered by {d.image('v2')}" in run.stderr, run.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_an_answer_naming_another_image_fails_the_smoke_test(world) -> None:
    ok(d.deploy(world, "v1"))
    # The pods of v2 say they are v1 (a re-pushed mutable tag, a node's stale copy of it).
    world.call(lambda: world.dataplane.claimed_images.update({d.image("v2"): d.image("v1")}))
    run = d.deploy(world, "v2")
    assert run.returncode == 1, run.stdout + run.stderr
    text = message(run)
    assert f"answered as {d.image('v1')}" in text and f"not {d.image('v2')}" in text, text
    assert "X-Enadu-Image" in text, text
    assert d.selected_colour(world) == "blue"  # the live colour untouched
    assert smoke_answers(world, 0) and "Traceback" not in run.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize("status", [404, 401])
def test_an_app_answering_401_or_404_is_the_apps_answer_not_the_clusters(world, status) -> None:
    ok(d.deploy(world, "v1"))
    run = d.deploy(world, f"v2-answers{status}")
    assert run.returncode == 1, run.stdout + run.stderr  # failed before the switch, not 4 (credentials)
    text = message(run)
    assert f"the app answered {status} on {SMOKE_PATH}" in text, text
    assert "credentials" not in text, text
    assert d.selected_colour(world) == "blue"
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize("mode, cause", [("dial-timeout", "i/o timeout"), ("egress-502", "code 502")])
def test_an_api_server_that_cannot_reach_the_pods_fails_the_smoke_test_clearly(world, mode, cause) -> None:
    ok(d.deploy(world, "v1"))
    world.call(lambda: setattr(world.dataplane, "pods_unreachable", mode))
    # The double answers as the real proxy does; the real kubectl shows it as it would a cluster's.
    raw = world.kubectl("get", "--raw", f"/api/v1/namespaces/{d.NAMESPACE}/services/{PREVIEW}:http/proxy/")
    assert raw.returncode != 0
    assert "Error from server (ServiceUnavailable): error trying to reach service:" in raw.stderr, raw.stderr
    assert cause in raw.stderr, raw.stderr
    started = time.monotonic()
    run = d.deploy(world, "v2")
    assert run.returncode == 1, run.stdout + run.stderr  # the documented code: failed before the switch
    text = message(run)
    assert "the API server could not reach the pods (private cluster?)" in text, text
    assert cause in text and "credentials" not in text, text
    assert d.selected_colour(world) == "blue"
    assert time.monotonic() - started < 30  # a dial timeout is not retried for the whole deadline


# -- which object the service proxy routes by (review M1/L5) ----------------------------------------
#
# kubernetes/kubernetes#134860 ("Port service/proxy subresource from Endpoints to EndpointSlice",
# first in v1.37.0-alpha.2) replaced ``r.endpoints.Get`` in ResourceLocation
# (pkg/registry/core/service/storage/storage.go) with a lookup of the Service's EndpointSlices. The
# Endpoints API is deprecated since 1.33 (KEP-4974): its controller can be turned off, and it cuts an
# object at 1000 addresses (``endpoints.kubernetes.io/over-capacity: truncated``).

NEW = {**FAST, "server_version": "v1.37.0", "endpoints_controller": False}
OLD_NO_ENDPOINTS = {**FAST, "server_version": "v1.34.2", "endpoints_controller": False}
OLD_TRUNCATED = {**FAST, "server_version": "v1.34.2", "endpoints_max_capacity": 1}


def proxy_raw(world):
    return world.kubectl("get", "--raw", f"/api/v1/namespaces/{d.NAMESPACE}/services/{PREVIEW}:http/proxy/")


@pytest.mark.parametrize("kubeworld", [{**FAST, "server_version": "v1.37.1"}], indirect=True)
def test_the_test_world_reports_its_version_as_a_real_server_does(world) -> None:
    """GET /version in the shape of apimachinery/pkg/version/types.go ``Info`` (1.33+: emulation and
    minimum-compatibility fields), read by the real kubectl and the official client."""
    shown = world.kubectl("version", "-o", "json")  # kubectl 1.32 decodes the fields it knows
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["serverVersion"]["gitVersion"] == "v1.37.1"
    raw = world.kubectl("get", "--raw", "/version")
    assert raw.returncode == 0, raw.stderr
    server = json.loads(raw.stdout)
    assert server["gitVersion"] == "v1.37.1" and (server["major"], server["minor"]) == ("1", "37")
    assert (server["emulationMajor"], server["emulationMinor"]) == ("1", "37")
    assert (server["minCompatibilityMajor"], server["minCompatibilityMinor"]) == ("1", "36")
    from kubernetes import client, config

    api = config.new_client_from_config(world.kubeconfig)
    try:
        info = client.VersionApi(api).get_code()
    finally:
        api.close()
    assert (info.git_version, info.major, info.minor, info.platform) == ("v1.37.1", "1", "37", "linux/amd64")


@pytest.mark.parametrize("kubeworld", [NEW], indirect=True)
def test_a_1_37_world_without_endpoints_proxies_by_the_slices_and_the_smoke_test_passes(world) -> None:
    run = d.deploy(world, "v1", "--timeout", "60s")
    result = ok(run)
    assert result["outcome"] == "deployed", result
    assert world.list("endpoints", d.NAMESPACE) == []  # no Endpoints controller: no object at all
    assert proxy_raw(world).returncode == 0  # the proxy routes by the slices (kubernetes#134860)
    started = time.monotonic()
    run = d.deploy(world, "v2", "--timeout", "60s")
    ok(run)
    assert {e["image"] for e in smoke_answers(world, started)} == {d.image("v2")}
    # The progress line says what it waited for and why.
    assert "EndpointSlices, which the API server's service proxy routes by (Kubernetes v1.37.0" in run.stderr, \
        run.stderr
    assert "warning: no Endpoints" not in run.stderr and "could not read the server version" not in run.stderr, \
        run.stderr


@pytest.mark.parametrize("kubeworld", [OLD_NO_ENDPOINTS], indirect=True)
def test_a_1_34_world_without_endpoints_falls_back_to_the_slices_with_a_warning(world) -> None:
    """The wait gives up on the Endpoints after the short bound and says why. A 1.34 API server
    without Endpoints cannot proxy at all (ResourceLocation reads only them: 503 ``no endpoints
    available``), so the smoke request then fails, at once and saying so, not at the timeout."""
    started = time.monotonic()
    run = d.deploy(world, "v1", "--timeout", "60s")
    assert "warning: no Endpoints object for service " + PREVIEW in run.stderr, run.stderr
    assert "waiting for the EndpointSlices only" in run.stderr, run.stderr
    assert "did not converge" not in run.stderr, run.stderr
    assert time.monotonic() - started < 45  # the short bound, not the deploy's timeout
    assert run.returncode == 1, run.stdout + run.stderr
    assert f'no endpoints available for service \\"{PREVIEW}\\"' in message(run) or \
        f'no endpoints available for service "{PREVIEW}"' in message(run), message(run)
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("kubeworld", [OLD_TRUNCATED], indirect=True)
def test_over_capacity_endpoints_fall_back_to_the_slices_at_once(world) -> None:
    run = d.deploy(world, "v1", "--timeout", "60s")
    ok(run)
    eps = world.get("endpoints", PREVIEW, d.NAMESPACE)
    assert eps["metadata"]["annotations"]["endpoints.kubernetes.io/over-capacity"] == "truncated"
    assert "is truncated (endpoints.kubernetes.io/over-capacity)" in run.stderr, run.stderr
    assert "waiting for the EndpointSlices only" in run.stderr, run.stderr


@pytest.mark.parametrize("kubeworld", [{**FAST, "server_version": "v1.34.2"}], indirect=True)
def test_a_1_34_world_still_waits_for_lagging_endpoints(world) -> None:
    ok(d.deploy(world, "v1"))
    lag_endpoints(world, 2.0)
    started = time.monotonic()
    run = d.deploy(world, "v2")
    ok(run)
    assert {e["image"] for e in smoke_answers(world, started)} == {d.image("v2")}
    assert "Endpoints, which the API server's service proxy routes by (Kubernetes v1.34.2" in run.stderr, \
        run.stderr
    assert "warning: no Endpoints" not in run.stderr, run.stderr
