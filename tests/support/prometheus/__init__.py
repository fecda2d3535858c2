"""A real Prometheus (Debian's ``prometheus`` package, 2.42) on 127.0.0.1 for the analysis tests.

It runs with a temporary configuration and data directory, scrapes every second, and discovers its
targets from files (``file_sd_configs``), so a test adds and removes targets at run time with the
labels it wants. The scrape job's ``relabel_configs`` are exactly the documented ones
(:data:`enadu_pipelines.monitoring.SCRAPE_JOB`): a target carries the ``__meta_kubernetes_*``
labels that Kubernetes pod discovery would give a pod (namespace, pod name, pod labels, pod
annotations), so the tests prove that the documented relabelling yields the ``namespace``/``app``/
``color`` labels the analysis queries select on. Prometheus allows any label in a file_sd target
group, and ``__``-prefixed ones are visible to relabelling and dropped after it
(https://prometheus.io/docs/prometheus/latest/configuration/configuration/#file_sd_config,
#relabel_config).

Prometheus cannot report a port it picked itself, so we pick a free loopback port and retry with
another if it was taken in between. Stopping is SIGTERM, then SIGKILL after a bound.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from enadu_pipelines.monitoring import SCRAPE_JOB

BINARY = "prometheus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, workdir: Path, *, scrape_interval: str = "1s") -> None:
        self.workdir = workdir
        self.targets_dir = workdir / "targets"
        self.scrape_interval = scrape_interval
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.log_path = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        job = yaml.safe_load(SCRAPE_JOB)[0]
        job["job_name"] = "enadu-test-pods"
        del job["kubernetes_sd_configs"]  # the Kubernetes API is replaced by files written by the tests
        job["file_sd_configs"] = [{"files": [str(self.targets_dir / "*.json")], "refresh_interval": "1s"}]
        return {"global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
                           "evaluation_interval": self.scrape_interval},
                "scrape_configs": [job]}

    def start(self, timeout: float = 60.0) -> Prometheus:
        binary = shutil.which(BINARY)
        assert binary, "prometheus is not installed (scripts/test installs Debian's prometheus package)"
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        for _attempt in range(3):
            self.port = free_port()
            data = self.workdir / f"data-{self.port}"
            log = self.log_path.open("ab")
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
                 "--storage.tsdb.retention.time=1h"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
            log.close()
            if self._wait_ready(timeout):
                return self
            self.stop()
        raise AssertionError(f"prometheus did not become ready; its log:\n{self.log_path.read_text()[-3000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.2)
        return False

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None

    # -- targets ---------------------------------------------------------------------------------

    def add_target(self, name: str, address: str, *, app: str, color: str, namespace: str = "enadu",
                   pod: str | None = None, path: str = "/metrics", scrape: bool = True) -> None:
        """A "pod" at ``address`` as Kubernetes pod discovery would describe it, annotations included."""
        port = address.rsplit(":", 1)[1]
        labels = {
            "__meta_kubernetes_namespace": namespace,
            "__meta_kubernetes_pod_name": pod or f"{app}-{color}-{name}",
            "__meta_kubernetes_pod_label_app": app,
            "__meta_kubernetes_pod_label_color": color,
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true" if scrape else "false",
            "__meta_kubernetes_pod_annotation_prometheus_io_port": port,
            "__meta_kubernetes_pod_annotation_prometheus_io_path": path,
        }
        # A pod's discovered address is podIP:containerPort; use another port so the port rewrite is exercised.
        group = [{"targets": [f"{address.rsplit(':', 1)[0]}:1"], "labels": labels}]
        tmp = self.targets_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(group))
        os.replace(tmp, self.targets_dir / f"{name}.json")

    def remove_target(self, name: str) -> None:
        (self.targets_dir / f"{name}.json").unlink(missing_ok=True)

    # -- reading ---------------------------------------------------------------------------------

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = requests.post(f"{self.url}/api/v1/query", data={"query": promql}, timeout=10)
        body = answer.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, promql: str, *, timeout: float = 30.0, minimum: int = 1) -> list[dict[str, Any]]:
        """Poll until the query returns at least ``minimum`` series (bounded)."""
        end = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < end:
            result = self.query(promql)
            if len(result) >= minimum:
                return result
            time.sleep(0.5)
        raise AssertionError(f"{promql!r} returned {result!r} after {timeout:.0f} s")

    def active_targets(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
