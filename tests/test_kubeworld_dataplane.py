"""The data plane: pods as HTTP servers, Service proxies with propagation lag, the API server's
service proxy, image failure kinds, and continuous invariants."""

from __future__ import annotations

import time

import pytest
import requests
from kubernetes import client, config

from tests.support.kubeworld import service_selects_available
from tests.support.kubeworld.replicaset import pod_ready
from tests.support.kubeworld.fixtures import kubeworld  # noqa: F401  (fixture)


def deployment(name, image, replicas=3, readiness=True, prestop=0, color=None, **spec):
    labels = {"app": name, **({"color": color} if color else {})}
    container = {"name": "app", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}
    if readiness:
        container["readinessProbe"] = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1}
    if prestop:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": prestop}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"{name}-{color}" if color else name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 30, "containers": [container]}},
                     **spec}}


def service(name, selector=None):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": selector or {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def available(world, name, replicas):
    def check(w):
        st = (w.get("deployments", name) or {}).get("status") or {}
        return st.get("availableReplicas") == replicas and st.get("updatedReplicas") == replicas \
            and st.get("replicas") == replicas
    world.wait_for(check, timeout=20, what=f"deployment {name} fully available")


def set_image(world, name, image):
    def go():
        from tests.support.kubeworld import resources as R
        res = R.BY_KEY["apps/deployments"]
        d = world.registry.get(res, "default", name)
        d["spec"]["template"]["spec"]["containers"][0]["image"] = image
        world.registry.update(res, "default", name, d)
    world.call(go)


def routes(world) -> bool:
    try:
        return requests.get(world.service_url("web"), timeout=2).ok
    except requests.ConnectionError:
        return False


def rolled_out(world, name, image, replicas):
    def check(w):
        pods = [p for p in w.list("pods", selector={"app": name}) if not p["metadata"].get("deletionTimestamp")]
        return len(pods) == replicas and all(p["spec"]["containers"][0]["image"] == image for p in pods) \
            and len(w.list("pods", selector={"app": name})) == replicas
    world.wait_for(check, timeout=30, what=f"{name} rolled out to {image}")


@pytest.mark.parametrize("kubeworld", [{"time_scale": 0.1}], indirect=True)
def test_pods_answer_and_the_api_server_proxies_to_them(kubeworld):
    kubeworld.create(deployment("web", "example/web:1", replicas=2), service("web"))
    available(kubeworld, "web", 2)
    body = requests.get(kubeworld.service_url("web") + "/hello", timeout=5).json()
    assert body["image"] == "example/web:1" and body["pod"].startswith("web-") and body["path"] == "/hello"
    pod = kubeworld.list("pods", selector={"app": "web"})[0]["metadata"]["name"]
    metrics = requests.get(kubeworld.pod_url(pod) + "/metrics", timeout=5).text
    assert "# TYPE http_requests_total counter" in metrics
    assert f'http_requests_total{{code="200",pod="{pod}",image="example/web:1"}}' in metrics

    api = config.new_client_from_config(config_file=kubeworld.kubeconfig)
    core = client.CoreV1Api(api)
    # by port name and by port number (translated to the port's name), as ResourceLocation does
    for ref in ("web:http", "web:80"):
        out = core.connect_get_namespaced_service_proxy_with_path(ref, "default", "smoke/check",
                                                                  _preload_content=False).json()
        assert out["image"] == "example/web:1" and out["path"] == "/smoke/check"
    # no port: matches only an unnamed endpoint port, so a named one is "no endpoints"
    with pytest.raises(client.ApiException) as e:
        core.connect_get_namespaced_service_proxy_with_path("web", "default", "x")
    assert e.value.status == 503 and 'no endpoints available for service \\"web\\"' in e.value.body
    pod_out = core.connect_get_namespaced_pod_proxy_with_path(f"{pod}:8080", "default", "p", _preload_content=False)
    assert pod_out.json()["pod"] == pod
    kubeworld.create(service("empty", {"app": "nothing"}))
    with pytest.raises(client.ApiException) as e:
        core.connect_get_namespaced_service_proxy_with_path("empty:http", "default", "")
    assert e.value.status == 503


@pytest.mark.parametrize("kubeworld", [{"time_scale": 0.1, "propagation_lag": 0.3}], indirect=True)
def test_rolling_update_with_readiness_and_prestop_loses_no_request(kubeworld):
    kubeworld.create(deployment("web", "example/web:1", prestop=8), service("web"))  # preStop 0.8 s > lag 0.3 s
    available(kubeworld, "web", 3)
    kubeworld.wait_for(routes, what="the proxy to route")
    with kubeworld.load(kubeworld.service_url("web"), concurrency=4, rate=150) as load:
        load.wait_for_requests(30)
        set_image(kubeworld, "web", "example/web:2")
        rolled_out(kubeworld, "web", "example/web:2", 3)
        available(kubeworld, "web", 3)
        seen = len(load.results)
        load.wait_for_requests(seen + 60)
    summary = load.summary()
    assert summary["failed"] == 0, load.failures()[:5]
    assert set(summary["by_image"]) == {"example/web:1", "example/web:2"}
    assert {r.image for r in load.results[-30:]} == {"example/web:2"}
    timeline = load.timeline(0.25)
    assert sum(sum(row["by_image"].values()) for row in timeline) == summary["ok"]


@pytest.mark.parametrize("kubeworld", [{"time_scale": 0.1, "propagation_lag": 0.5}], indirect=True)
def test_pods_killed_without_grace_fail_requests_until_the_proxy_catches_up(kubeworld):
    kubeworld.create(deployment("web", "example/web:1", replicas=2), service("web"))
    available(kubeworld, "web", 2)
    kubeworld.wait_for(routes, what="the proxy to route")
    with kubeworld.load(kubeworld.service_url("web"), concurrency=4, rate=150) as load:
        load.wait_for_requests(30)
        killed_at = load.results[-1].t
        killed = {pod["metadata"]["name"] for pod in kubeworld.list("pods", selector={"app": "web"})}
        for name in killed:
            kubeworld.delete("pods", name, grace_period=0)

        def replaced(w):
            fresh = [p for p in w.list("pods", selector={"app": "web"}) if p["metadata"]["name"] not in killed]
            return len(fresh) == 2 and all(pod_ready(p) for p in fresh)

        kubeworld.wait_for(replaced, what="two ready replacement pods")
        time.sleep(0.6)  # the propagation lag, and a little more
        settled = len(load.results)
        load.wait_for_requests(settled + 30)
    failures = load.failures()
    assert failures, "requests to force-deleted pods must fail while kube-proxy still routes to them"
    assert all(f.t >= killed_at - 0.05 for f in failures)
    assert {f.error for f in failures} <= {"ClientOSError", "ServerDisconnectedError", "ClientConnectorError"}
    assert all(r.ok for r in load.results[settled:])  # recovered once the new pods are programmed


@pytest.mark.parametrize("kubeworld", [{"time_scale": 0.1}], indirect=True)
def test_a_slow_starter_without_readiness_probe_fails_requests(kubeworld):
    kubeworld.create(deployment("web", "example/web:1", replicas=2, readiness=False), service("web"))
    available(kubeworld, "web", 2)
    kubeworld.wait_for(routes, what="the proxy to route")
    with kubeworld.load(kubeworld.service_url("web"), concurrency=4, rate=150) as load:
        load.wait_for_requests(20)
        set_image(kubeworld, "web", "example/web:2-slow1s")  # ready at start, listening 1 s later
        rolled_out(kubeworld, "web", "example/web:2-slow1s", 2)
        kubeworld.wait_for(routes, what="the new pods to listen")
        seen = len(load.results)
        load.wait_for_requests(seen + 40)
    assert load.summary()["failed"] > 0
    assert load.summary()["by_image"].get("example/web:2-slow1s", 0) > 0


@pytest.mark.parametrize("kubeworld", [{"time_scale": 0.05}], indirect=True)
def test_image_failure_kinds_show_as_a_kubelet_reports_them(kubeworld):
    kinds = {"crash": "example/web:1-crashloop", "pull": "registry.example/nosuchimage:1",
             "config": "example/web:1-configerror", "never": "example/web:1-neverready"}
    for name, image in kinds.items():
        kubeworld.create(deployment(name, image, replicas=1))

    def waiting(w, name):
        pods = w.list("pods", selector={"app": name})
        statuses = [c for p in pods for c in (p.get("status") or {}).get("containerStatuses") or []]
        return {c["state"].get("waiting", {}).get("reason") for c in statuses}

    seen = {name: set() for name in kinds}

    def all_seen(w):
        for name in kinds:
            seen[name] |= waiting(w, name)
        return ({"CrashLoopBackOff"} <= seen["crash"] and {"ErrImagePull", "ImagePullBackOff"} <= seen["pull"]
                and "CreateContainerConfigError" in seen["config"])

    kubeworld.wait_for(all_seen, timeout=15, interval=0.005, what=f"every failure kind (seen so far: {seen})")
    never = kubeworld.list("pods", selector={"app": "never"})[0]
    assert never["status"]["phase"] == "Running"
    kubeworld.wait_for(lambda w: any(e["reason"] == "Unhealthy" and e["involvedObject"]["name"] == never["metadata"]["name"]
                                     for e in w.list("events")), what="a failed readiness probe event")
    assert not any(c["ready"] for c in kubeworld.get("pods", never["metadata"]["name"])["status"]["containerStatuses"])
    pull = kubeworld.list("pods", selector={"app": "pull"})[0]
    assert pull["status"]["phase"] == "Pending"
    for name in kinds:
        st = kubeworld.get("deployments", name)["status"]
        assert st.get("availableReplicas", 0) == 0 and st["unavailableReplicas"] == 1


@pytest.mark.parametrize("kubeworld", [{"time_scale": 0.1}], indirect=True)
def test_invariants_catch_a_service_switched_to_an_unavailable_colour(kubeworld):
    kubeworld.create(deployment("web", "example/web:1", replicas=2, color="blue"),
                     service("web", {"app": "web", "color": "blue"}))
    available(kubeworld, "web-blue", 2)
    kubeworld.invariants.add("web serves an available colour", service_selects_available("web"))
    kubeworld.create(deployment("web", "example/web:2", replicas=2, color="green"))
    available(kubeworld, "web-green", 2)
    kubeworld.invariants.assert_ok()  # green starting up was never selected

    kubeworld.create(deployment("web", "example/web:3-neverready", replicas=2, color="red"))
    api = config.new_client_from_config(config_file=kubeworld.kubeconfig)
    client.CoreV1Api(api).patch_namespaced_service("web", "default", {"spec": {"selector": {"color": "red"}}})
    with pytest.raises(AssertionError) as e:
        kubeworld.invariants.assert_ok()
    assert "service web selects {'app': 'web', 'color': 'red'}: deployment web-red" in str(e.value)
    assert kubeworld.invariants.violations[0].change.startswith("MODIFIED core/services default/web")


@pytest.mark.parametrize("kubeworld", [{"time_scale": 0.1, "propagation_lag": 0.5}], indirect=True)
@pytest.mark.parametrize("flow", ["keep old colour past the lag", "delete old colour at once"])
def test_blue_green_switch_through_the_proxy_with_lag(kubeworld, flow):
    kubeworld.create(deployment("web", "example/web:1", replicas=2, color="blue"),
                     service("web", {"app": "web", "color": "blue"}))
    available(kubeworld, "web-blue", 2)
    kubeworld.wait_for(routes, what="the proxy to route")
    kubeworld.invariants.add("web serves an available colour", service_selects_available("web"))
    api = config.new_client_from_config(config_file=kubeworld.kubeconfig)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    with kubeworld.load(kubeworld.service_url("web"), concurrency=4, rate=150) as load:
        load.wait_for_requests(20)
        apps.create_namespaced_deployment("default", deployment("web", "example/web:2", replicas=2, color="green"))
        available(kubeworld, "web-green", 2)
        svc = core.read_namespaced_service("web", "default")
        core.patch_namespaced_service("web", "default", {"metadata": {"resourceVersion": svc.metadata.resource_version},
                                                         "spec": {"selector": {"color": "green"}}})
        green_ips = {p["status"]["podIP"] for p in kubeworld.list("pods", selector={"color": "green"})}
        kubeworld.wait_for(lambda w: {a["ip"] for s in w.get("endpoints", "web").get("subsets", [])
                                      for a in s.get("addresses", [])} == green_ips, what="endpoints of green only")
        if flow == "delete old colour at once":
            apps.delete_namespaced_deployment("web-blue", "default")
        else:
            time.sleep(1.0)  # the scale-down delay outlasts the propagation lag (0.5 s)
            apps.patch_namespaced_deployment_scale("web-blue", "default", {"spec": {"replicas": 0}})
        time.sleep(0.7)
        settled = len(load.results)
        load.wait_for_requests(settled + 30)
    summary = load.summary()
    assert set(summary["by_image"]) == {"example/web:1", "example/web:2"}
    assert {r.image for r in load.results[settled:]} == {"example/web:2"}
    if flow == "delete old colour at once":
        assert summary["failed"] > 0  # kube-proxy still sends to blue for the lag
    else:
        assert summary["failed"] == 0, load.failures()[:5]
    kubeworld.invariants.assert_ok()
