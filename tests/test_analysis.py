"""Metric analysis (helper/analysis.py) against a real Prometheus scraping loopback "pods".

The Prometheus is Debian's 2.42 (tests/support/prometheus), scraping every second with the
documented relabel rules; each test uses its own service name so series never mix. The loop's
structure (rounds, deadline, which value decides) is also tested with a fake clock and canned
Prometheus answers, so those tests take no time.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from support.prometheus import free_port
from support.prometheus.metricsapp import MetricsApp, Traffic

from enadu_pipelines.helper import analysis
from enadu_pipelines.helper.errors import UsageProblem

WINDOW, INTERVAL = "4s", "2s"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    analysis.add_arguments(parser)
    return parser.parse_args(list(argv))


def settings(url: str, *extra: str, window: str = WINDOW, interval: str = INTERVAL) -> analysis.Settings:
    config = analysis.settings(parse("--analysis", "--prometheus-url", url, "--analysis-window", window,
                                     "--analysis-interval", interval, *extra))
    assert config is not None
    return config


class Lines(list):
    def __call__(self, line: str) -> None:
        self.append(line)


def run(config: analysis.Settings, service: str, colour: str = "green", *, budget: float = 60.0) -> tuple[analysis.Verdict, Lines]:
    lines = Lines()
    verdict = analysis.analyse(config, service=service, namespace="enadu", colour=colour,
                               deadline=time.monotonic() + budget, log=lines)
    return verdict, lines


def pod(prometheus, name: str, service: str, colour: str = "green", **app_options: Any) -> MetricsApp:
    app = MetricsApp(**app_options).start()
    prometheus.add_target(name, app.address, app=service, color=colour)
    return app


def wait_for_traffic(prometheus, service: str) -> None:
    prometheus.wait_for(f'sum(rate(http_requests_total{{app="{service}"}}[{WINDOW}])) > 0')


# -- against the real Prometheus -----------------------------------------------------------------


def test_healthy_colour_passes(prometheus) -> None:
    app = pod(prometheus, "healthy-1", "svc-healthy")
    try:
        with Traffic(app.url) as traffic:
            wait_for_traffic(prometheus, "svc-healthy")
            verdict, lines = run(settings(prometheus.url), "svc-healthy")
        assert traffic.failed == 0 and traffic.sent > 0
    finally:
        prometheus.remove_target("healthy-1")
        app.stop()
    assert verdict.outcome == "passed" and verdict.passed
    assert verdict.rounds == 2  # a 4 s window queried every 2 s
    rate, latency = verdict.readings
    assert (rate.check.name, rate.status, rate.value) == ("success rate", "passed", 1.0)
    assert latency.check.name == "latency" and latency.status == "passed" and 0 < latency.value <= 0.5
    assert verdict.line().startswith("analysis of svc-healthy green (after switch): passed - success rate 1 (>= 0.99); latency ")
    assert sum(line.startswith("analysis round ") for line in lines) == 2
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["outcome"] == "passed" and data["passed"] is True and data["rounds"] == 2
    assert [c["name"] for c in data["checks"]] == ["success rate", "latency"]
    assert data["checks"][0] == {"name": "success rate", "status": "passed", "value": 1.0, "shown": "1",
                                 "threshold": 0.99, "comparison": ">=", "reason": ""}


def test_colour_answering_5xx_fails_at_the_first_round(prometheus) -> None:
    app = pod(prometheus, "broken-1", "svc-broken", status=500)
    try:
        with Traffic(app.url):
            wait_for_traffic(prometheus, "svc-broken")
            verdict, _ = run(settings(prometheus.url, window="20s"), "svc-broken")
    finally:
        prometheus.remove_target("broken-1")
        app.stop()
    assert verdict.outcome == "failed" and not verdict.passed
    assert verdict.rounds == 1  # fail fast, not after the whole 20 s window
    rate = verdict.readings[0]
    assert rate.status == "failed" and rate.value == 0.0  # `or vector(0)`: all-5xx is 0, not "no data"
    assert "success rate 0 (>= 0.99) failed" in verdict.line()


def test_slow_colour_fails_on_latency(prometheus) -> None:
    app = pod(prometheus, "slow-1", "svc-slow", latency=0.3)
    try:
        with Traffic(app.url, pause=0.01):
            wait_for_traffic(prometheus, "svc-slow")
            verdict, _ = run(settings(prometheus.url, "--max-latency", "0.1"), "svc-slow")
    finally:
        prometheus.remove_target("slow-1")
        app.stop()
    assert verdict.outcome == "failed"
    rate, latency = verdict.readings
    assert rate.status == "passed"
    assert latency.status == "failed" and 0.25 <= latency.value <= 0.5  # p95 inside the 0.25..0.5 bucket
    assert "(<= 0.1 s) failed" in verdict.line()


def test_one_bad_pod_among_good_ones_fails_a_per_pod_query(prometheus) -> None:
    good = pod(prometheus, "mixed-good", "svc-mixed")
    bad = pod(prometheus, "mixed-bad", "svc-mixed", status=503)
    everything = 'sum by (pod) (rate(http_requests_total{namespace="{namespace}",app="{service}",color="{colour}"}[{window}]))'
    good_ones = everything.replace('color="{colour}"', 'color="{colour}",code!~"5.."')
    # `or 0 * everything`: a pod with no good request at all has no series on the left, and must count as 0
    per_pod = f"({good_ones} or 0 * {everything}) / {everything}"
    try:
        with Traffic(good.url), Traffic(bad.url):
            prometheus.wait_for('http_requests_total{app="svc-mixed"}', minimum=2)
            wait_for_traffic(prometheus, "svc-mixed")
            verdict, _ = run(settings(prometheus.url, "--success-rate-query", per_pod), "svc-mixed")
    finally:
        for name, app in (("mixed-good", good), ("mixed-bad", bad)):
            prometheus.remove_target(name)
            app.stop()
    rate = verdict.readings[0]
    assert verdict.outcome == "failed" and rate.value == 0.0 and rate.reason == "worst of 2 series"


def test_no_traffic_is_inconclusive_and_the_policy_decides(prometheus) -> None:
    app = pod(prometheus, "idle-1", "svc-idle")
    try:
        prometheus.wait_for('up{app="svc-idle"} == 1')
        prometheus.wait_for('http_request_duration_seconds_count{app="svc-idle"}')
        fail, _ = run(settings(prometheus.url, window="2s", interval="1s"), "svc-idle")
        passing, _ = run(settings(prometheus.url, "--inconclusive", "pass", window="2s", interval="1s"), "svc-idle")
    finally:
        prometheus.remove_target("idle-1")
        app.stop()
    for verdict in (fail, passing):
        assert verdict.outcome == "inconclusive"
        rate, latency = verdict.readings
        assert rate.status == "inconclusive" and rate.reason.startswith("no data")  # no request series yet
        assert latency.status == "inconclusive" and math.isnan(latency.value)  # histogram of zeros: NaN
        assert verdict.to_dict()["checks"][1]["value"] is None  # NaN never reaches the JSON
    assert not fail.passed and "counted as failed (--inconclusive fail)" in fail.line()
    assert passing.passed and "counted as passed (--inconclusive pass)" in passing.line()


def test_unknown_colour_has_no_data(prometheus) -> None:
    verdict, _ = run(settings(prometheus.url, window="1s", interval="1s"), "svc-nobody", colour="blue")
    assert verdict.outcome == "inconclusive" and not verdict.passed and verdict.rounds == 1


def test_a_query_prometheus_rejects_fails_the_analysis(prometheus) -> None:
    broken = 'sum(rate(http_requests_total{app="{service}"}[{window}])'  # one parenthesis short
    verdict, _ = run(settings(prometheus.url, "--success-rate-query", broken, window="1s", interval="1s"), "svc-x")
    rate = verdict.readings[0]
    assert verdict.outcome == "failed" and rate.status == "failed"
    assert rate.reason.startswith("query rejected by Prometheus: HTTP 400 bad_data: ")


def test_a_range_vector_query_is_refused(prometheus) -> None:
    matrix = 'http_requests_total{app="{service}"}[{window}]'
    verdict, _ = run(settings(prometheus.url, "--latency-query", matrix, window="1s", interval="1s"), "svc-x")
    assert verdict.readings[1].reason == ("query rejected by Prometheus: the query returns a matrix, "
                                          "not an instant vector or a scalar")


def test_scalar_results_are_read(prometheus) -> None:
    verdict, _ = run(settings(prometheus.url, "--success-rate-query", "scalar(vector(0.995))",
                              "--latency-query", "0.25", window="1s", interval="1s"), "svc-x")
    assert verdict.outcome == "passed" and [r.value for r in verdict.readings] == [0.995, 0.25]


def test_prometheus_down_is_inconclusive() -> None:
    verdict, lines = run(settings(f"http://127.0.0.1:{free_port()}", window="2s", interval="1s"), "svc-x")
    assert verdict.outcome == "inconclusive" and not verdict.passed
    assert {r.reason for r in verdict.readings} == {"Prometheus unreachable: connection failed"}
    assert any("prometheus query: attempt #1/" in line for line in lines)


def test_a_prometheus_that_never_answers_cannot_hold_the_deploy() -> None:
    """A listener that accepts connections and never answers: every request times out, and the
    analysis still ends at the caller's deadline although the window is much longer."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        config = settings(f"http://127.0.0.1:{hole.getsockname()[1]}", window="10m", interval="1s")
        outcome: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: outcome.update(verdict=run(config, "svc-x", budget=3.0)[0]))
        worker.start()
        worker.join(60)  # liveness bound only; the analysis itself stops at its 3 s deadline
        assert not worker.is_alive()
    verdict = outcome["verdict"]
    assert verdict.outcome == "inconclusive" and 1 <= verdict.rounds <= 4
    assert {r.reason for r in verdict.readings} == {"Prometheus unreachable: timed out"}


# -- the loop, with a fake clock and canned answers -----------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Answer:
    """A canned streamed ``requests.Response``: what ``retry.request`` reads (status, headers, body)."""

    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self._body = body
        self.headers: dict[str, str] = {}
        self.raw = None

    def iter_content(self, size: int) -> Any:
        yield b"not JSON" if isinstance(self._body, Exception) else json.dumps(self._body).encode()

    def close(self) -> None:
        pass


def vector(*values: str) -> Answer:
    return Answer(200, {"status": "success", "data": {"resultType": "vector",
                                                       "result": [{"metric": {}, "value": [1, v]} for v in values]}})


class CannedPrometheus:
    """Answers each POST with the next canned answer for its check (success rate first)."""

    def __init__(self, rates: list[Answer], latencies: list[Answer]) -> None:
        self.answers = {"rate": list(rates), "latency": list(latencies)}
        self.queries: list[str] = []

    def request(self, method: str, url: str, *, data: dict[str, str], timeout: Any, **kwargs: Any) -> Answer:
        assert (method, url, kwargs) == ("POST", "http://prom:9090/api/v1/query",
                                         {"stream": True, "allow_redirects": False})
        self.queries.append(data["query"])
        key = "latency" if data["query"].startswith("histogram_quantile") else "rate"
        return self.answers[key].pop(0)

    def close(self) -> None:
        pass


def fake_run(canned: CannedPrometheus, *, window: str = "60s", interval: str = "20s", budget: float = 600.0,
             extra: tuple[str, ...] = ()) -> analysis.Verdict:
    clock = FakeClock()
    return analysis.analyse(settings("http://prom:9090/", *extra, window=window, interval=interval),
                            service="backend", namespace="enadu", colour="blue", deadline=clock() + budget,
                            log=lambda line: None, session=canned, clock=clock, sleep=clock.sleep)


def test_rounds_fill_the_window_and_early_gaps_do_not_count() -> None:
    canned = CannedPrometheus([vector(), vector("NaN"), vector("0.999")], [vector("NaN"), vector("0.2"), vector("0.3")])
    verdict = fake_run(canned)
    assert verdict.outcome == "passed" and verdict.rounds == 3 and verdict.seconds == 60
    assert [r.value for r in verdict.readings] == [0.999, 0.3]
    assert canned.queries[0] == ('(sum(rate(http_requests_total{namespace="enadu",app="backend",color="blue",'
                                 'code!~"5.."}[60s])) or vector(0)) / sum(rate(http_requests_total{namespace="enadu",'
                                 'app="backend",color="blue"}[60s]))')
    assert canned.queries[1] == ('histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket'
                                 '{namespace="enadu",app="backend",color="blue"}[60s])))')


def test_the_latest_conclusive_value_decides() -> None:
    canned = CannedPrometheus([vector("1"), vector("1"), vector()], [vector("0.1"), vector("0.1"), Answer(503, {})] * 4)
    verdict = fake_run(canned)
    assert verdict.outcome == "passed" and [r.value for r in verdict.readings] == [1.0, 0.1]


def test_a_failure_in_a_later_round_ends_the_analysis_there() -> None:
    canned = CannedPrometheus([vector("1"), vector("0.95"), vector("1")], [vector("0.1")] * 3)
    verdict = fake_run(canned)
    assert verdict.outcome == "failed" and verdict.rounds == 2 and verdict.seconds == 40


def test_the_deadline_cuts_the_window_short() -> None:
    canned = CannedPrometheus([vector("1")] * 10, [vector("0.1")] * 10)
    verdict = fake_run(canned, window="10m", interval="20s", budget=50)
    # rounds at 20 s and 40 s; none is started at the deadline itself
    assert verdict.outcome == "passed" and verdict.rounds == 2 and verdict.seconds == 50


def test_answers_that_are_not_the_prometheus_api_are_inconclusive() -> None:
    for answer, reason in ((Answer(200, ValueError("html")), "the answer is not JSON (is the URL the Prometheus API?)"),
                           (Answer(200, {"status": "error"}), "the answer is not a successful Prometheus API response"),
                           (Answer(200, {"status": "success", "data": {"resultType": "vector", "result": [{}]}}),
                            "the answer's samples are malformed"),
                           (Answer(404, {}), "HTTP 404")):
        verdict = fake_run(CannedPrometheus([answer], [vector("0.1")]), window="20s")
        assert verdict.outcome == "inconclusive" and verdict.readings[0].reason == reason


def test_infinite_latency_fails() -> None:
    verdict = fake_run(CannedPrometheus([vector("1")], [vector("+Inf")]), window="20s")
    assert verdict.outcome == "failed" and "latency +Inf s (<= 0.5 s) failed" in verdict.line()


# -- flags ---------------------------------------------------------------------------------------


def test_analysis_is_off_unless_asked() -> None:
    assert analysis.settings(parse()) is None
    assert analysis.settings(parse("--prometheus-url", "http://p:9090")) is None
    before_only = analysis.settings(parse("--prometheus-url", "http://p:9090", "--analysis-before-switch"))
    assert (before_only.after_switch, before_only.before_switch) == (False, True)


def test_flags_fall_back_to_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("ENADU_ANALYSIS", "true")
    monkeypatch.setenv("ENADU_PROMETHEUS_URL", "https://prometheus.enadu.dev/prom/")
    monkeypatch.setenv("ENADU_ANALYSIS_WINDOW", "5m")
    monkeypatch.setenv("ENADU_ANALYSIS_INTERVAL", "30s")
    monkeypatch.setenv("ENADU_ANALYSIS_MIN_SUCCESS_RATE", "0.995")
    monkeypatch.setenv("ENADU_ANALYSIS_MAX_LATENCY", "0.25")
    monkeypatch.setenv("ENADU_ANALYSIS_INCONCLUSIVE", "pass")
    monkeypatch.setenv("ENADU_ANALYSIS_BEFORE_SWITCH", "1")
    monkeypatch.setenv("ENADU_ANALYSIS_LATENCY_QUERY", "max(up{app=\"{service}\"})")
    config = analysis.settings(parse())
    assert config is not None
    assert (config.prometheus_url, config.window, config.interval, config.inconclusive, config.after_switch,
            config.before_switch) == ("https://prometheus.enadu.dev/prom", 300.0, 30.0, "pass", True, True)
    assert [(c.threshold, c.template) for c in config.checks] == [
        (0.995, analysis.DEFAULT_SUCCESS_RATE_QUERY), (0.25, 'max(up{app="{service}"})')]
    monkeypatch.setenv("ENADU_ANALYSIS_MAX_LATENCY", "0.3")
    assert analysis.settings(parse("--max-latency", "2")).checks[1].threshold == 2.0  # the flag wins


@pytest.mark.parametrize("argv, message", [
    (["--analysis"], "--prometheus-url (or ENADU_PROMETHEUS_URL) is required with --analysis"),
    (["--analysis", "--prometheus-url", "http://user:pw@p:9090"], "--prometheus-url: not an http(s) URL"),
    (["--analysis", "--prometheus-url", "p:9090"], "--prometheus-url: not an http(s) URL"),
    (["--analysis", "--prometheus-url", "http://p", "--analysis-window", "10s", "--analysis-interval", "20s"],
     "--analysis-interval and --analysis-window: need 1s <= interval <= window <= 1h"),
    (["--analysis", "--prometheus-url", "http://p", "--analysis-window", "soon"],
     "--analysis-window: 'soon' is not a duration"),
    (["--analysis", "--prometheus-url", "http://p", "--min-success-rate", "99"],
     "--min-success-rate: '99' must be between 0 and 1"),
    (["--analysis", "--prometheus-url", "http://p", "--max-latency", "nan"], "--max-latency: 'nan' must be between"),
    (["--analysis", "--prometheus-url", "http://p", "--max-latency", "fast"], "--max-latency: 'fast' is not a number"),
    (["--analysis", "--prometheus-url", "http://p", "--inconclusive", "maybe"], "--inconclusive: 'maybe' is not fail or pass"),
    (["--analysis", "--prometheus-url", "http://p", "--latency-query", "up{job=\"{job}\"}"],
     "--latency-query: unknown placeholder {job} (known: {service}, {namespace}, {colour}, {window})"),
    (["--analysis", "--prometheus-url", "http://p", "--latency-query", " "], "--latency-query: the query is empty"),
    (["--analysis", "--prometheus-url", "http://p", "--latency-query", "up\nup"], "--latency-query: the query must be one line"),
])
def test_bad_flags_are_one_line_usage_problems(argv: list[str], message: str) -> None:
    with pytest.raises(UsageProblem) as caught:
        analysis.settings(parse(*argv))
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_bad_boolean_environment(monkeypatch) -> None:
    monkeypatch.setenv("ENADU_ANALYSIS", "sometimes")
    with pytest.raises(UsageProblem, match=r"^--analysis \(ENADU_ANALYSIS\): 'sometimes' is not true or false \(1/true/yes/on or 0/false/no/off\)$"):
        analysis.settings(parse())


def test_placeholders_fill_in_and_promql_braces_stay() -> None:
    text = analysis.render_query('rate(x{app="{service}",ns="{namespace}",c="{colour}"}[{window}]) {unknown}',
                                 service="backend", namespace="enadu", colour="green", window=90.0)
    assert text == 'rate(x{app="backend",ns="enadu",c="green"}[90s]) {unknown}'


def test_importing_the_analysis_and_grafana_modules_stays_light() -> None:
    """deploy's parser imports them on every helper start, notify's included."""
    code = ("import sys, enadu_pipelines.helper.analysis, enadu_pipelines.helper.grafana;"
            "print(sorted(m for m in ('requests', 'urllib3', 'tenacity', 'kubernetes') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
