"""A tiny web "pod" on loopback that serves traffic and exports the metrics the analysis assumes.

``GET /`` (any path but /metrics) answers with ``status`` after ``latency`` seconds and counts the
request in ``http_requests_total{code}`` and ``http_request_duration_seconds`` (a histogram), the
names client libraries use by convention (https://prometheus.io/docs/practices/naming/,
prometheus/client_golang ``promhttp.InstrumentHandlerCounter`` labels by ``code``). ``GET /metrics``
is the Prometheus text exposition, written by the official ``prometheus_client`` library.

:class:`Traffic` drives it: a bounded number of requests in a background thread, stopping by
itself.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class MetricsApp:
    status: int = 200
    latency: float = 0.0
    served: int = 0
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.requests_total = Counter("http_requests", "HTTP requests served.", ["code"], registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds", "Time to answer an HTTP request.",
                                  buckets=BUCKETS, registry=self.registry)

    @property
    def address(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> MetricsApp:
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                if self.path.split("?")[0] == "/metrics":
                    self._send(200, generate_latest(app.registry), CONTENT_TYPE_LATEST)
                    return
                started = time.perf_counter()
                if app.latency:
                    time.sleep(app.latency)
                status = app.status
                app.served += 1
                app.requests_total.labels(code=str(status)).inc()
                app.duration.observe(time.perf_counter() - started)
                self._send(status, b"ok\n" if status < 400 else b"broken\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="metrics-app", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class Traffic:
    """Sends GETs to ``url`` every ``pause`` seconds until stopped, at most ``limit`` requests."""

    def __init__(self, url: str, *, pause: float = 0.05, limit: int = 2000) -> None:
        self.url = url
        self.pause = pause
        self.limit = limit
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def _run(self) -> None:
        with requests.Session() as http:
            while not self._stop.is_set() and self.sent < self.limit:
                try:
                    self.failed += http.get(self.url, timeout=2).status_code >= 500
                except requests.RequestException:
                    self.failed += 1
                self.sent += 1
                self._stop.wait(self.pause)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)
