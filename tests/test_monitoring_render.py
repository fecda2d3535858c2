"""The `monitoring` configuration as rendered: scrape annotations, the optional ServiceMonitor, the
Grafana dashboards, and the analysis/Grafana arguments the Jenkinsfiles pass to enaduDeploy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import REPO, groovy_compile, seed_bundle
from support.crds import SERVICE_MONITOR_SCHEMA
from support.prometheus.metricsapp import MetricsApp, Traffic
from test_groovy import record

from enadu_pipelines import monitoring
from enadu_pipelines.cli import main
from enadu_pipelines.helper import analysis
from enadu_pipelines.monitoring import SCRAPE_JOB

SERVICES = ("backend", "batch", "frontend")


def render_config(tmp_path: Path, runner, data: dict) -> Path:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    seed_bundle(tmp_path)
    result = runner.invoke(main, ["render", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    return tmp_path


def shipped() -> dict:
    return yaml.safe_load((REPO / "enadu.yaml").read_text())


def deploy_args(jenkinsfile: Path) -> dict:
    [call] = [c for c in record(jenkinsfile) if c["step"] == "enaduDeploy"]
    return call["args"]


# -- Jenkinsfiles --------------------------------------------------------------------------------


def test_shipped_pipelines_pass_the_analysis_and_grafana_settings() -> None:
    backend = deploy_args(REPO / "pipelines/backend/Jenkinsfile")
    assert {k: v for k, v in backend.items() if k not in ("service", "image", "namespace", "credentialsId", "timeout",
                                                          "scaleDownDelay", "scaleDownDelayFloor", "oldColour",
                                                          "smokePath", "abortScaleDownDelay")} == {
        "analysis": True, "prometheusUrl": "https://prometheus.enadu.dev", "analysisWindow": "2m",
        "analysisInterval": "20s", "minSuccessRate": "0.99", "maxLatency": "0.5", "inconclusive": "fail",
        "grafanaUrl": "https://grafana.enadu.dev", "grafanaCredentialsId": "enadu-grafana-token"}
    batch = deploy_args(REPO / "pipelines/batch/Jenkinsfile")
    assert "analysis" not in batch and "prometheusUrl" not in batch  # switched off for batch in enadu.yaml
    assert batch["grafanaCredentialsId"] == "enadu-grafana-token"


HOSTILE_QUERY = ("sum(rate(x{app=\"{service}\",q='it''s'}[{window}])) / 1 # ${env.GRAFANA_TOKEN} \\u0027; "
                 "sh 'id' `id` $(id) {{ x }}")


def test_per_service_overrides_and_hostile_queries_stay_literal(tmp_path: Path, runner) -> None:
    data = shipped()
    data["services"]["frontend"]["monitoring"] = {
        "prometheus_url": "http://prometheus.monitoring:9090/prom",
        "analysis": {"before_switch": True, "window": "5m", "interval": "30s", "success_rate_query": HOSTILE_QUERY,
                     "latency_query": "max(up{namespace=\"{namespace}\",color=\"{colour}\"})",
                     "min_success_rate": 0.999, "max_latency": 2, "inconclusive": "pass"},
        "grafana": {"credentials_id": "frontend-grafana"}}
    data["credential_hosts"] = {"frontend-grafana": "grafana.enadu.dev"}  # a new pairing is listed (finding 3)
    out = render_config(tmp_path, runner, data)
    jenkinsfile = out / "pipelines/frontend/Jenkinsfile"
    assert groovy_compile([jenkinsfile]).returncode == 0
    args = deploy_args(jenkinsfile)
    assert args["successRateQuery"] == HOSTILE_QUERY
    assert (args["analysis"], args["analysisBeforeSwitch"], args["prometheusUrl"], args["analysisWindow"],
            args["analysisInterval"], args["minSuccessRate"], args["maxLatency"], args["inconclusive"]) == (
        True, True, "http://prometheus.monitoring:9090/prom", "5m", "30s", "0.999", "2", "pass")
    assert args["latencyQuery"] == 'max(up{namespace="{namespace}",color="{colour}"})'
    assert (args["grafanaUrl"], args["grafanaCredentialsId"]) == ("https://grafana.enadu.dev", "frontend-grafana")
    assert "successRateQuery" not in deploy_args(out / "pipelines/backend/Jenkinsfile")  # helper default


def test_the_deploy_step_binds_the_grafana_token_and_never_interpolates_it() -> None:
    text = (REPO / "vars/enaduDeploy.groovy").read_text()
    assert text.count("GRAFANA_TOKEN") == 1  # the binding, and nothing else
    assert "string(credentialsId: a.grafanaCredentialsId, variable: 'GRAFANA_TOKEN')" in text
    assert not re.search(r"\$\{?(env\.)?GRAFANA_TOKEN", text)
    for name in ("ENADU_ANALYSIS", "ENADU_PROMETHEUS_URL", "ENADU_ANALYSIS_WINDOW", "ENADU_ANALYSIS_INTERVAL",
                 "ENADU_ANALYSIS_SUCCESS_RATE_QUERY", "ENADU_ANALYSIS_MIN_SUCCESS_RATE", "ENADU_ANALYSIS_LATENCY_QUERY",
                 "ENADU_ANALYSIS_MAX_LATENCY", "ENADU_ANALYSIS_INCONCLUSIVE", "ENADU_ANALYSIS_BEFORE_SWITCH",
                 "ENADU_GRAFANA_URL"):
        assert f'"{name}=${{' in text, name
    # every environment name the step sets is one the helper reads
    helper = (REPO / "enadu_pipelines/helper/analysis.py").read_text() + (REPO / "enadu_pipelines/helper/grafana.py").read_text()
    for name in re.findall(r'"(ENADU_(?:ANALYSIS|PROMETHEUS|GRAFANA)[A-Z_]*)=', text):
        assert f'"{name}"' in helper, name


# -- manifests -----------------------------------------------------------------------------------


def test_pods_carry_the_scrape_annotations() -> None:
    for service, port, path in (("backend", "8080", "/actuator/prometheus"), ("frontend", "80", "/metrics")):
        deployment = next(yaml.safe_load_all((REPO / f"resources/enadu/k8s/{service}.yaml").read_text()))
        assert deployment["spec"]["template"]["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true", "prometheus.io/port": port, "prometheus.io/path": path}
        assert not (REPO / f"resources/enadu/k8s/{service}.servicemonitor.yaml").exists()  # off by default


def test_service_monitor_and_a_separate_metrics_port(tmp_path: Path, runner) -> None:
    data = shipped()
    data["monitoring"]["service_monitor"] = True
    data["services"]["frontend"]["monitoring"] = {"metrics_port": 9113, "metrics_path": "/nginx/metrics"}
    out = render_config(tmp_path, runner, data)
    frontend = list(yaml.safe_load_all((out / "resources/enadu/k8s/frontend.yaml").read_text()))
    ports = frontend[0]["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert ports == [{"name": "http", "containerPort": 80, "protocol": "TCP"},
                     {"name": "metrics", "containerPort": 9113, "protocol": "TCP"}]
    assert frontend[0]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9113"
    assert [p["name"] for p in frontend[1]["spec"]["ports"]] == ["http", "metrics"]  # http stays first: the helper's port
    assert [p["name"] for p in frontend[2]["spec"]["ports"]] == ["http"]  # the preview Service is not scraped
    for service, port, path in (("frontend", "metrics", "/nginx/metrics"), ("backend", "http", "/actuator/prometheus")):
        monitor = yaml.safe_load((out / f"resources/enadu/k8s/{service}.servicemonitor.yaml").read_text())
        jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)
        assert monitor["spec"]["endpoints"] == [{"port": port, "path": path, "scheme": "http"}]
        assert monitor["spec"]["selector"]["matchLabels"] == {"app": service, "app.kubernetes.io/managed-by": "enadu-pipelines"}
        assert monitor["spec"]["podTargetLabels"] == ["app", "color"]
        main_service = list(yaml.safe_load_all((out / f"resources/enadu/k8s/{service}.yaml").read_text()))[1]
        assert set(monitor["spec"]["selector"]["matchLabels"].items()) <= set(main_service["metadata"]["labels"].items())
        assert port in [p["name"] for p in main_service["spec"]["ports"]]
    monitor["spec"]["endpoints"][0]["prot"] = "http"  # a typo is caught
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)


# -- dashboards ----------------------------------------------------------------------------------


def dashboards(root: Path = REPO) -> dict[str, dict]:
    return {s: json.loads((root / f"resources/enadu/grafana/{s}.json").read_text()) for s in SERVICES}


def test_dashboards_are_grafana_dashboards() -> None:
    for service, board in dashboards().items():
        assert board["uid"] == f"enadu-{service}" and board["schemaVersion"] >= 36
        assert "Generated by enadu-pipelines" in board["description"]
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24  # Grafana's grid is 24 columns wide
            mine = {(grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])}
            assert not mine & cells, f"panel {panel['title']} overlaps another"
            cells |= mine
            for target in panel.get("targets", []):
                assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and target["expr"]
        titles = [p["title"] for p in board["panels"] if p["type"] == "timeseries"]
        assert titles == ["Request rate by colour", "Error rate (5xx share) by colour", "Latency p50 / p95 / p99 by colour",
                          "Requests by status code", "CPU by pod", "Memory (working set) by pod"]
        exprs = " ".join(t["expr"] for p in board["panels"] for t in p.get("targets", []))
        assert analysis.REQUESTS_METRIC in exprs and f"{analysis.DURATION_HISTOGRAM}_bucket" in exprs
        assert f'app="{service}"' in exprs and 'namespace="enadu"' in exprs
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["colour"]["query"] == "blue,green" and variables["datasource"]["query"] == "prometheus"
        deploys = [a for a in board["annotations"]["list"] if a["name"] == "Deploys"][0]
        assert deploys["target"] == {"type": "tags", "tags": ["enadu", service], "matchAny": False, "limit": 100}


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",))))  # surrogates: refused in any value of enadu.yaml
def test_dashboard_bytes_are_the_json_modules_indented_output(text: str) -> None:
    """The dashboards are serialised with orjson (the json module's indenting encoder is pure Python, most
    of a large render): byte for byte what ``json.dumps(indent=2, ensure_ascii=False)`` writes, whatever
    text the configuration puts in them (non-ASCII kept as is, quotes, backslashes, controls escaped)."""
    kwargs = dict(service="svc", title=text, namespace="ns", version="1.2.3", source=text)
    expected = (json.dumps(monitoring.dashboard(**kwargs), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    assert monitoring.dashboard_json(**kwargs) == expected


def grafana_to_promql(expr: str, colours: str = "blue|green") -> str:
    """What Grafana sends for ``$colour`` = All and a 1 s scrape interval."""
    return expr.replace("${colour:regex}", colours).replace("$__rate_interval", "4s")


def test_dashboard_queries_run_on_prometheus_and_find_the_traffic(prometheus, tmp_path: Path, runner) -> None:
    data = shipped()
    data["services"]["backend"]["kubernetes"] = {"namespace": "dash"}
    board = dashboards(render_config(tmp_path, runner, data))["backend"]
    app = MetricsApp().start()
    prometheus.add_target("dash-1", app.address, app="backend", color="blue", namespace="dash")
    try:
        with Traffic(app.url):
            prometheus.wait_for('sum(rate(http_requests_total{namespace="dash",app="backend"}[4s])) > 0')
            results = {t["expr"]: prometheus.query(grafana_to_promql(t["expr"]))
                       for p in board["panels"] for t in p.get("targets", [])}
    finally:
        prometheus.remove_target("dash-1")
        app.stop()
    assert len(results) == 8  # every query parsed and ran (query() asserts status success)
    empty = [e for e, r in results.items() if not r]
    # only the pod CPU and memory queries (cAdvisor's, not scraped here) and the 5xx share (no 5xx) are empty
    assert len(empty) == 3 and all("container_" in e or 'code=~"5.."' in e for e in empty), empty
    rate = next(r for e, r in results.items() if e.startswith("sum by (color) (rate(http_requests_total"))
    assert [s["metric"] for s in rate] == [{"color": "blue"}]


# -- docs ----------------------------------------------------------------------------------------


def test_the_documented_scrape_job_is_the_tested_one() -> None:
    docs = (REPO / "README.md").read_text()
    assert f"```yaml\n{SCRAPE_JOB}```" in docs
