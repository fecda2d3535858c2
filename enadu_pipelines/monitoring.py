"""What Prometheus and Grafana need from us: the scrape job that labels pod metrics, a dashboard,
and the resolution of the ``monitoring`` sections of ``enadu.yaml`` (their models are in config.py).

The analysis queries (helper/analysis.py) and the dashboards select series by ``namespace``,
``app`` and ``color``. Those labels come from Prometheus' Kubernetes pod discovery, through the
relabelling in :data:`SCRAPE_JOB` below: it keeps pods annotated ``prometheus.io/scrape: "true"``
(the rendered Deployments are), scrapes the annotated port and path, and copies the pod's
namespace, its ``app`` and ``color`` labels and its name onto every series. The same text is in
the README's "Monitoring" section (a test keeps the two identical) and is what the tests' real Prometheus runs,
with file-based discovery standing in for the Kubernetes API.

The dashboard is built as data and serialised by a JSON encoder rather than templated: JSON
escaping is then correct by construction, and PromQL's ``{{pod}}`` legends cannot collide with
Jinja2. The encoder is orjson: its output with ``OPT_INDENT_2`` is byte for byte that of
``json.dumps(indent=2, ensure_ascii=False)`` (a test holds it to that), and the json module's
indenting encoder is pure Python, which made serialising the dashboards most of a large render.
The generated marker sits in the top-level ``description``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .configtypes import duration_seconds
from .helper import analysis
from .helper.analysis import DURATION_HISTOGRAM, REQUESTS_METRIC

if TYPE_CHECKING:  # the models live in config.py, which imports this module
    from .config import EnaduConfig, MonitoringSettings

# Relabel rules after the annotation scheme of Prometheus' own example
# (prometheus/prometheus documentation/examples/prometheus-kubernetes.yml, job "kubernetes-pods"),
# with the target labels our queries use.
SCRAPE_JOB = """\
- job_name: kubernetes-pods
  kubernetes_sd_configs:
    - role: pod
  relabel_configs:
    # only pods that ask for it (the rendered pod template sets prometheus.io/scrape: "true")
    - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
      action: keep
      regex: "true"
    # the metrics path from prometheus.io/path (default /metrics)
    - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
      action: replace
      regex: (.+)
      target_label: __metrics_path__
    # the port from prometheus.io/port
    - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
      action: replace
      regex: ([^:]+)(?::\\d+)?;(\\d+)
      replacement: $1:$2
      target_label: __address__
    # the labels the analysis queries and the dashboards select on
    - source_labels: [__meta_kubernetes_namespace]
      target_label: namespace
    - source_labels: [__meta_kubernetes_pod_label_app]
      target_label: app
    - source_labels: [__meta_kubernetes_pod_label_color]
      target_label: color
    - source_labels: [__meta_kubernetes_pod_name]
      target_label: pod
"""

# -- configuration: resolution and cross-checks of the `monitoring` sections --------------------


@dataclass(frozen=True)
class Monitoring:
    """A service's monitoring with every default applied. Analysis thresholds are kept as the text
    the helper parses; a query of None means the helper's documented default query."""

    metrics_port: int
    metrics_path: str
    separate_metrics_port: bool  # metrics on a port other than the container's HTTP port
    service_monitor: bool
    prometheus_url: str | None
    analysis: bool
    before_switch: bool
    window: str
    interval: str
    success_rate_query: str | None
    min_success_rate: str
    latency_query: str | None
    max_latency: str
    inconclusive: str
    grafana_url: str | None
    grafana_credentials_id: str | None

    @property
    def metrics_port_name(self) -> str:
        return "metrics" if self.separate_metrics_port else "http"


def _layered(*layers: Any) -> dict[str, Any]:
    """Keys of pydantic models merged left to right, skipping None (a later layer overrides)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key in type(layer).model_fields:
            value = getattr(layer, key)
            if value is not None:
                merged[key] = value
    return merged


def resolve(top: MonitoringSettings, own: MonitoringSettings, kind_metrics_path: str, container_port: int) -> Monitoring:
    """A service's monitoring: its own keys, else the global section's, else the defaults."""
    m = _layered(top, own)
    a = _layered(top.analysis, own.analysis)
    g = _layered(top.grafana, own.grafana)
    port = m.get("metrics_port", container_port)
    return Monitoring(
        metrics_port=port,
        metrics_path=m.get("metrics_path", kind_metrics_path),
        separate_metrics_port=port != container_port,
        service_monitor=m.get("service_monitor", False),
        prometheus_url=m.get("prometheus_url"),
        analysis=a.get("enabled", False),
        before_switch=a.get("before_switch", False),
        window=a.get("window", analysis.DEFAULTS["window"]),
        interval=a.get("interval", analysis.DEFAULTS["interval"]),
        success_rate_query=a.get("success_rate_query"),
        min_success_rate=_decimal(a["min_success_rate"]) if "min_success_rate" in a else analysis.DEFAULTS["min_success_rate"],
        latency_query=a.get("latency_query"),
        max_latency=_decimal(a["max_latency"]) if "max_latency" in a else analysis.DEFAULTS["max_latency"],
        inconclusive=a.get("inconclusive", analysis.DEFAULTS["inconclusive"]),
        grafana_url=g.get("url"),
        grafana_credentials_id=g.get("credentials_id"),
    )


def problems(config: EnaduConfig) -> list[tuple[tuple, str]]:
    """Settings that are valid one by one but not together: (key path, message) pairs."""
    found: list[tuple[tuple, str]] = []
    for name, s in config.services.items():
        here = ("services", name, "monitoring")

        def where(*keys: str, section: str | None = None) -> tuple:
            """The service's own key if it sets it, else the global one."""
            own = getattr(s.monitoring, section) if section else s.monitoring
            for key in keys:
                if getattr(own, key) is not None:
                    return here + ((section,) if section else ()) + (key,)
            return ("monitoring",) + ((section,) if section else ()) + (keys[0],)

        m = _layered(config.monitoring, s.monitoring)
        a = _layered(config.monitoring.analysis, s.monitoring.analysis)
        g = _layered(config.monitoring.grafana, s.monitoring.grafana)
        if (a.get("enabled") or a.get("before_switch")) and not m.get("prometheus_url"):
            found.append((where("enabled", "before_switch", section="analysis"),
                             f"analysis of service {name!r} needs monitoring.prometheus_url"))
        window = duration_seconds(a.get("window", analysis.DEFAULTS["window"]))
        interval = duration_seconds(a.get("interval", analysis.DEFAULTS["interval"]))
        if not 1 <= interval <= window <= 3600:
            found.append((where("interval", "window", section="analysis"),
                             f"service {name!r}: need 1s <= interval ({interval}s) <= window ({window}s) <= 1h"))
        if bool(g.get("url")) != bool(g.get("credentials_id")):
            found.append((where("url" if g.get("url") else "credentials_id", section="grafana"),
                             f"Grafana annotations of service {name!r} need both grafana.url and grafana.credentials_id"))
    return found


def _decimal(value: float) -> str:
    """A threshold as plain decimal text (never '1e-05'), as the vars/ step's pattern expects."""
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"



# -- Grafana dashboard ---------------------------------------------------------------------------

COLOURS = ("blue", "green")
DASHBOARD_SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x dashboards
DEPLOY_TAG = "enadu"


def dashboard_uid(service: str) -> str:
    return f"enadu-{service}"


def dashboard(*, service: str, title: str, namespace: str, version: str, source: str) -> dict[str, Any]:
    """A Grafana dashboard for one service: traffic, errors and latency by colour, pods' CPU and
    memory, and the deploy annotations the helper posts."""
    sel = f'namespace="{namespace}",app="{service}",color=~"${{colour:regex}}"'
    pods = f'namespace="{namespace}",pod=~"{service}-(${{colour:regex}})-.+",container="{service}"'
    panels = [
        _row(1, "Traffic", 0),
        _panel(2, "Request rate by colour", "reqps", 0, 1,
               [(f"sum by (color) (rate({REQUESTS_METRIC}{{{sel}}}[$__rate_interval]))", "{{color}}")]),
        _panel(3, "Error rate (5xx share) by colour", "percentunit", 12, 1,
               [(f'sum by (color) (rate({REQUESTS_METRIC}{{{sel},code=~"5.."}}[$__rate_interval]))'
                 f" / sum by (color) (rate({REQUESTS_METRIC}{{{sel}}}[$__rate_interval]))", "{{color}}")]),
        _panel(4, "Latency p50 / p95 / p99 by colour", "s", 0, 9,
               [(f"histogram_quantile({q}, sum by (color, le) (rate({DURATION_HISTOGRAM}_bucket{{{sel}}}[$__rate_interval])))",
                 f"{{{{color}}}} p{int(q * 100)}") for q in (0.5, 0.95, 0.99)]),
        _panel(5, "Requests by status code", "reqps", 12, 9,
               [(f"sum by (color, code) (rate({REQUESTS_METRIC}{{{sel}}}[$__rate_interval]))", "{{color}} {{code}}")]),
        _row(6, "Pods", 17),
        _panel(7, "CPU by pod", "cores", 0, 18,
               [(f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{pods}}}[$__rate_interval]))", "{{pod}}")]),
        _panel(8, "Memory (working set) by pod", "bytes", 12, 18,
               [(f"sum by (pod) (container_memory_working_set_bytes{{{pods}}})", "{{pod}}")]),
    ]
    return {
        "uid": dashboard_uid(service),
        "title": f"Enadu / {title}",
        "description": f"{service}: blue/green traffic and deploys. Generated by enadu-pipelines {version} from "
                       f"{source}; do not edit (edit the configuration and run `enadu-pipelines render`).",
        "tags": [DEPLOY_TAG, service],
        "schemaVersion": DASHBOARD_SCHEMA_VERSION,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "links": [],
        "panels": panels,
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1, "options": []},
            {"name": "colour", "label": "Colour", "type": "custom", "query": ",".join(COLOURS),
             "multi": True, "includeAll": True, "allValue": "|".join(COLOURS),
             "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
             "options": [{"selected": False, "text": c, "value": c} for c in COLOURS], "hide": 0},
        ]},
        "annotations": {"list": [
            {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
             "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"},
            {"datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": False,
             "iconColor": "purple", "name": "Deploys",
             "target": {"type": "tags", "tags": [DEPLOY_TAG, service], "matchAny": False, "limit": 100}},
        ]},
    }


def dashboard_json(**kwargs: Any) -> bytes:
    return orjson.dumps(dashboard(**kwargs), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def _datasource() -> dict[str, str]:
    return {"type": "prometheus", "uid": "${datasource}"}


def _row(panel_id: int, title: str, y: int) -> dict[str, Any]:
    return {"id": panel_id, "type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}


def _panel(panel_id: int, title: str, unit: str, x: int, y: int, queries: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": _datasource(),
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 10}}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": _datasource(), "expr": expr, "legendFormat": legend,
                     "range": True} for i, (expr, legend) in enumerate(queries)],
    }
