"""Per-controller lag in kubeworld: each controller's delays come from its own seeded generator.

In a cluster the kubelet's status manager, the endpoints and endpointslice controllers and every
kube-proxy learn of a change through their own informers and queues, so a pod's readiness reaches
Endpoints, EndpointSlices and proxy rules at different moments, in an order that varies from run
to run (tests/support/kubeworld/lag.py cites the sources). Here the order varies with the seed and
repeats with it.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.kubeworld.lag import Lag
from tests.support.kubeworld.world import KubeWorld

SPREAD = (0.0, 1.2)


def pod(name: str, image: str = "example/web:1", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"terminationGracePeriodSeconds": 30, "containers": [{"name": "app", "image": image}], **spec}}


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}


def endpoint_ips(world) -> list:
    ep = world.get("Endpoints", "web") or {}
    return [a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []]


def slice_ready(world) -> list:
    return [e["addresses"][0] for s in world.list("EndpointSlice") for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")]


class Recorder:
    """First time (monotonic) each watched kind changes after `arm()`, from the store's listeners."""

    def __init__(self, world, kinds) -> None:
        self.world, self.kinds = world, kinds
        self.first = {}
        self.armed = threading.Event()
        world.call(world.store.listeners.append, self._on)

    def _on(self, key, etype, obj, prev) -> None:
        kind = obj.get("kind") or key.split("/")[-1]
        if self.armed.is_set() and key in self.kinds and self.kinds[key] not in self.first:
            self.first[self.kinds[key]] = time.monotonic()

    def arm(self) -> float:
        self.armed.set()
        return time.monotonic()


def order_after_pod_deletion(seed: int):
    """Delete a served pod once endpoints and slices list it; which of the two reflects it first?"""
    with KubeWorld(seed=seed, time_scale=0.1) as world:
        world.create(pod("web-1"), SERVICE)
        world.wait_for(lambda w: endpoint_ips(w) and slice_ready(w), timeout=10, what="the pod served")
        world.set_lag("endpoints", SPREAD)
        world.set_lag("endpointslice", SPREAD)
        time.sleep(0.1)  # passes with the lag set and nothing changed: no delay is drawn
        assert world.lags["endpoints"].draws == [] and world.lags["endpointslice"].draws == []
        rec = Recorder(world, {"core/endpoints": "Endpoints", "discovery.k8s.io/endpointslices": "EndpointSlice"})
        t0 = rec.arm()
        world.delete("Pod", "web-1")
        world.wait_for(lambda w: len(rec.first) == 2, timeout=5, what="both controllers to write")
        draws = (world.lags["endpoints"].draws[0], world.lags["endpointslice"].draws[0])
        return sorted(rec.first, key=rec.first.get), {k: v - t0 for k, v in rec.first.items()}, draws


def test_lag_draws_repeat_with_the_seed_and_are_independent_per_controller():
    def draws(name, seed, n=5, spec=SPREAD):
        lag = Lag(name, seed, spec)
        return [lag.draw() for _ in range(n)]

    assert draws("endpoints", 7) == draws("endpoints", 7)
    assert draws("endpoints", 7) != draws("endpoints", 8)
    assert draws("endpoints", 7) != draws("endpointslice", 7)
    # the same for every spread: a controller's draws do not depend on anything else
    assert [round(d / 1.2, 9) for d in draws("kubelet", 3)] == [round(d / 5.0, 9) for d in draws("kubelet", 3, spec=(0, 5))]
    fixed = Lag("proxies", 1, 0.5)
    assert [fixed.draw() for _ in range(3)] == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="lag of gc: want 0 <= low <= high seconds"):
        Lag("gc", 0, (2, 1))
    with pytest.raises(ValueError, match="no controller named kube-proxy for `lag`"):
        KubeWorld(lag={"kube-proxy": 1.0})


def test_same_seed_same_order_of_endpoints_and_slices_other_seed_other_order():
    # seed 2 draws endpoints 0.27 s, endpointslice 0.94 s; seed 3 draws 0.77 s and 0.04 s
    first, times, draws = order_after_pod_deletion(2)
    assert [round(d, 2) for d in draws] == [0.27, 0.94]
    assert first == ["Endpoints", "EndpointSlice"]
    for kind, drawn in zip(("Endpoints", "EndpointSlice"), draws):
        assert drawn <= times[kind] < drawn + 0.25, (kind, times)
    again, _, draws_again = order_after_pod_deletion(2)
    assert again == first and draws_again == draws

    other, times, draws = order_after_pod_deletion(3)
    assert [round(d, 2) for d in draws] == [0.77, 0.04]
    assert other == ["EndpointSlice", "Endpoints"]


def test_one_lagged_controller_does_not_delay_the_others():
    with KubeWorld(seed=5, time_scale=0.1, lag={"endpoints": 0.8}) as world:
        world.create(SERVICE)
        started = time.monotonic()
        world.create(pod("web-1"))
        world.wait_for(slice_ready, timeout=5, what="the slice listing the pod ready")
        slice_at = time.monotonic() - started
        assert endpoint_ips(world) == []  # Endpoints still lag
        world.wait_for(endpoint_ips, timeout=5, what="the Endpoints listing the pod")
        endpoints_at = time.monotonic() - started
    assert slice_at < 0.6 and endpoints_at >= 0.8, (slice_at, endpoints_at)


def test_kubelet_status_lag_delays_the_write_not_the_container():
    with KubeWorld(seed=1, time_scale=0.1, lag={"kubelet": 0.7}) as world:
        started = time.monotonic()
        world.create(pod("web-1"))
        world.wait_for(lambda w: w.call(lambda: any(a.pod_name == "web-1" and a.listening
                                                    for a in w.dataplane.apps.values())),
                       timeout=5, what="the app listening")
        listening_at = time.monotonic() - started
        assert (world.get("Pod", "web-1").get("status") or {}).get("phase") == "Pending"
        world.wait_for(lambda w: (w.get("Pod", "web-1").get("status") or {}).get("podIP"), timeout=5,
                       what="the first status write")
        written_at = time.monotonic() - started
    assert listening_at < 0.5 and written_at >= 0.7, (listening_at, written_at)


def test_replicaset_controller_reacts_after_its_lag():
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "default"},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "app", "image": "example/web:1"}]}}}}
    with KubeWorld(seed=1, time_scale=0.1, lag={"replicaset": 0.6}) as world:
        started = time.monotonic()
        world.create(rs)
        time.sleep(0.4)
        assert world.list("Pod") == []
        world.wait_for(lambda w: len(w.list("Pod")) == 2, timeout=5, what="the replicaset's pods")
        assert time.monotonic() - started >= 0.6
        assert world.lags["replicaset"].draws[:1] == [0.6] and world.lags["deployment"].draws == []


def test_default_lags_are_zero_except_the_proxies_propagation_lag():
    with KubeWorld(propagation_lag=0.3) as world:
        assert {n: lag.spec for n, lag in world.lags.items()} == {
            "deployment": 0.0, "replicaset": 0.0, "kubelet": 0.0, "endpoints": 0.0, "endpointslice": 0.0,
            "gc": 0.0, "proxies": 0.3}
        world.set_propagation_lag((0.1, 0.2))
        assert world.lags["proxies"].spec == (0.1, 0.2) and world.dataplane.lag == 0.1
        world.control.controllers["endpoints"].lag.set(2.0, jitter=0.5)  # helper D's form still works
        assert world.lags["endpoints"].spec == (2.0, 2.5)
