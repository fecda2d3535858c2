"""Deploys gated on metrics (issue 9): a real Prometheus scrapes the test world's pods.

Prometheus is Debian's 2.42 (tests/support/prometheus), configured with the documented scrape job;
a small thread plays Kubernetes pod discovery, writing each running pod of the world as a file_sd
target with the pod's labels, so the analysis queries select exactly what they would in a cluster.
"""

from __future__ import annotations

import threading

import pytest

from tests.support import deployrun as d

WORLD = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 21}
RATE = 40  # requests per second through the Service during the deploy
WINDOW, INTERVAL = 10, 2  # seconds: 5 rounds, room for a loaded CI machine to scrape the new pods


class PodDiscovery(threading.Thread):
    """Keeps Prometheus' file_sd targets equal to the world's running pods, like kubernetes_sd would."""

    def __init__(self, world, prometheus) -> None:
        super().__init__(name="pod-discovery", daemon=True)
        self.world, self.prometheus = world, prometheus
        self.stop = threading.Event()
        self.known: set = set()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.sync()

    def sync(self) -> None:
        current = {}
        for pod in self.world.list("pods", d.NAMESPACE):
            url = self.world.pod_url(pod["metadata"]["name"], d.NAMESPACE)
            labels = pod["metadata"].get("labels") or {}
            if url and "color" in labels and not pod["metadata"].get("deletionTimestamp"):
                current[pod["metadata"]["name"]] = (url.split("//", 1)[1], labels)
        for name in self.known - set(current):
            self.prometheus.remove_target(name)
        for name, (address, labels) in current.items():
            if name not in self.known:
                self.prometheus.add_target(name, address, app=labels["app"], color=labels["color"],
                                           namespace=d.NAMESPACE, pod=name)
        self.known = set(current)

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        for name in self.known:
            self.prometheus.remove_target(name)


@pytest.fixture
def prometheus(tmp_path):
    """A Prometheus of this test's own: the series of an earlier test's pods carry the same
    namespace/app/color labels and would leak into this test's rate windows."""
    from support.prometheus import Prometheus

    server = Prometheus(tmp_path / "prometheus").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def scraped(kubeworld, prometheus):
    d.prepare(kubeworld)
    discovery = PodDiscovery(kubeworld, prometheus)
    discovery.start()
    yield kubeworld
    discovery.close()
    kubeworld.invariants.assert_ok()


def analysis_env(prometheus) -> dict:
    # no smoke test: it would stop a colour answering 5xx before the switch (see test_deploy.py)
    return {"ENADU_SMOKE_PATH": "", "ENADU_ANALYSIS": "true", "ENADU_PROMETHEUS_URL": prometheus.url,
            "ENADU_ANALYSIS_WINDOW": f"{WINDOW}s", "ENADU_ANALYSIS_INTERVAL": f"{INTERVAL}s"}


@pytest.mark.parametrize("kubeworld", [WORLD], indirect=True)
def test_a_healthy_new_colour_passes_its_analysis(scraped, prometheus) -> None:
    world = scraped
    assert d.deploy(world, "v1").returncode == 0
    d.wait_serving(world)
    with world.load(world.service_url("backend", d.NAMESPACE), concurrency=3, rate=RATE) as load:
        load.wait_for_requests(40)
        run = d.deploy(world, "v2", extra_env=analysis_env(prometheus))
        load.wait_for_requests(load.summary()["total"] + 20)
    assert run.returncode == 0, run.stdout + run.stderr
    verdict = run.result["analysis"]
    assert (run.result["outcome"], verdict["outcome"], verdict["stage"]) == ("deployed", "passed", "after switch")
    rate = next(c for c in verdict["checks"] if c["name"] == "success rate")
    assert rate["status"] == "passed" and rate["value"] == 1.0
    assert d.selected_colour(world) == "green" and d.replicas(world, "blue") == 0
    assert load.summary()["failed"] == 0, (load.summary()["errors"], [(r.t, r.error, r.image) for r in load.results if not r.ok][:10])


@pytest.mark.parametrize("kubeworld", [WORLD], indirect=True)
def test_a_colour_answering_5xx_is_rolled_back(scraped, prometheus) -> None:
    world = scraped
    assert d.deploy(world, "v1").returncode == 0
    bad = d.image("v2-errors")
    d.wait_serving(world)
    with world.load(world.service_url("backend", d.NAMESPACE), concurrency=3, rate=RATE) as load:
        load.wait_for_requests(40)
        run = d.deploy(world, "v2-errors", extra_env=analysis_env(prometheus))
        load.wait_for_requests(load.summary()["total"] + 40)
    assert run.returncode == 5, run.stdout + run.stderr
    result = run.result
    assert result["outcome"] == "rolled-back" and result["analysis"]["outcome"] == "failed"
    assert "metric analysis: analysis of backend green (after switch): failed" in result["message"]
    assert d.selected_colour(world) == "blue" and d.running_image(world, "blue") == d.image("v1")
    assert d.replicas(world, "green") == 0
    failures = [r for r in load.results if not r.ok]
    # The bad colour did receive traffic (so the check had something to see) ...
    assert failures and {r.image for r in failures} == {bad}, [r for r in failures if r.image != bad][:5]
    # ... and no more than the requests of one analysis window went to it.
    assert len(failures) <= RATE * WINDOW, f"{len(failures)} failed requests"
    assert d.history(world)[0]["reason"].startswith("rolled back: metric analysis")


@pytest.mark.parametrize("kubeworld", [WORLD], indirect=True)
def test_before_the_switch_the_idle_colour_is_judged_on_smoke_traffic(scraped, prometheus) -> None:
    world = scraped
    assert d.deploy(world, "v1").returncode == 0
    env = {**analysis_env(prometheus), "ENADU_SMOKE_PATH": "/actuator/health", "ENADU_ANALYSIS": "false",
           "ENADU_ANALYSIS_BEFORE_SWITCH": "true"}
    run = d.deploy(world, "v2", extra_env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    verdict = run.result["analysis_before_switch"]
    assert (verdict["outcome"], verdict["stage"], verdict["colour"]) == ("passed", "before switch", "green")
    assert "analysis" not in run.result  # only the before-switch checks were asked for
    # the verdict rests on the helper's own smoke traffic, sent through the API server's service proxy
    # to the preview Service (4 per second during the window) before any user request reached green
    smoke = [r for r in world.requests.all() if "/services/backend-preview:http/proxy/actuator/health" in r.path]
    assert len(smoke) >= 2 * WINDOW, len(smoke)
    assert d.selected_colour(world) == "green"


@pytest.mark.parametrize("kubeworld", [WORLD], indirect=True)
def test_a_trickling_prometheus_cannot_hold_the_deploy_after_the_switch(kubeworld) -> None:
    """Issue 13, finding 7: a Prometheus that answers a byte every 0.3 s keeps every socket read in
    time; only a bound on the whole request lets the analysis end with its window, so the deploy
    switches back (inconclusive counts as failed) and releases its lock instead of waiting on bytes."""
    from support.trickle import TrickleProcess

    world = kubeworld
    d.prepare(world)
    assert d.deploy(world, "v1").returncode == 0
    with TrickleProcess("body", interval=0.3) as prometheus:  # a byte well within every read timeout
        env = {"ENADU_SMOKE_PATH": "", "ENADU_ANALYSIS": "true", "ENADU_PROMETHEUS_URL": prometheus.url,
               "ENADU_ANALYSIS_WINDOW": "4s", "ENADU_ANALYSIS_INTERVAL": "2s"}
        run = d.deploy(world, "v2", extra_env=env, timeout=120)
    assert run.returncode == 5, run.stdout + run.stderr
    verdict = run.result["analysis"]
    assert verdict["outcome"] == "inconclusive" and verdict["seconds"] < 3 * 4, verdict
    assert {c["reason"] for c in verdict["checks"]} == {"Prometheus unreachable: timed out"}
    assert d.selected_colour(world) == "blue"
    assert d.deploy(world, "v3").returncode == 0  # the lock was released
    world.invariants.assert_ok()


@pytest.mark.parametrize("kubeworld", [WORLD], indirect=True)
@pytest.mark.parametrize("tag", ["v2", "v2-errors"])
def test_a_rerun_analyses_a_switch_whose_verdict_never_landed(scraped, prometheus, tag) -> None:
    """Issue 12, M6: the deploy is SIGKILLed right after its switch committed (the API server's write
    hook, tests/test_deploy_rerun.py ``killed_at``), before its analysis' verdict. A re-run of the same
    image, a new build, finds the switch's history entry still pending while the previous colour runs:
    it analyses the new colour now, then switches back on failure (exit 5) or records the pass and
    retires the previous colour; the autoscaler follows the colour that stays live either way."""
    from tests.test_deploy_rerun import build, hpa, hpa_target, killed_at, patches_live_service

    world = scraped
    env = analysis_env(prometheus)
    assert d.deploy(world, "v1", extra_env=build(1)).returncode == 0
    hpa(world, "backend-blue")
    d.wait_serving(world)
    killed_at(world, patches_live_service("green"), "deploy", "--image", d.image(tag), n=2, env=env)
    pending = d.history(world)[0]
    assert (pending["colour"], pending["analysis"]) == ("green", "pending"), pending
    assert d.selected_colour(world) == "green" and d.replicas(world, "blue") > 0
    with world.load(world.service_url("backend", d.NAMESPACE), concurrency=3, rate=RATE) as load:
        load.wait_for_requests(20)
        run = d.deploy(world, tag, extra_env={**env, **build(3)})
    verdict = run.result.get("analysis") or {}
    entry = next(e for e in d.history(world) if e["at"] == pending["at"] and e["colour"] == "green")
    if tag == "v2":
        assert run.returncode == 0, run.stdout + run.stderr
        assert (verdict.get("outcome"), verdict.get("colour")) == ("passed", "green"), run.result
        assert entry["analysis"].startswith("passed: analysis of backend green"), entry
        assert d.selected_colour(world) == "green" and d.replicas(world, "blue") == 0
        assert hpa_target(world) == "backend-green"
        assert load.summary()["failed"] == 0, load.summary()["errors"]
    else:
        assert run.returncode == 5, run.stdout + run.stderr
        assert (run.result["outcome"], verdict.get("outcome")) == ("rolled-back", "failed"), run.result
        assert d.selected_colour(world) == "blue" and d.running_image(world, "blue") == d.image("v1")
        assert d.history(world)[0]["reason"].startswith("rolled back: metric analysis"), d.history(world)[0]
        assert entry["analysis"].startswith("failed: analysis of backend green"), entry
        assert hpa_target(world) == "backend-blue"
        assert d.replicas(world, "green") == 0
