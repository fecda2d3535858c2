"""The request-count targets of benchmarks/bootstrap.py, for our side (counts, never times)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "bootstrap.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("enadu_benchmark_bootstrap", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("n", [20, 200])
def test_request_targets(tmp_path, n):
    measured = load_benchmark().measure_ours(n, tmp_path)
    jobs = 2 * n  # per service, its pipeline job and its operations job
    first, noop = measured["first run"], measured["no-op re-run"]
    assert first.requests <= 2 * jobs + 3
    assert first.writes == jobs + 1  # the folder and every job
    assert noop.writes == 0
    assert noop.requests <= jobs + 2
    changed = measured["one job changed"]
    # the service's description is in both of its jobs
    assert changed.writes == 2 and changed.requests <= jobs + 6
    edited = measured["edited behind our back"]
    assert edited.writes == 1 and edited.edit_reverted is True


def test_jjb_yaml_describes_the_same_jobs():
    bench = load_benchmark()
    text = bench.jjb_yaml(2, changed=True)
    assert text.count("project-type: pipeline") == 4  # a pipeline job and an operations job per service
    assert "script-path: 'pipelines/svc-002/Jenkinsfile'" in text
    assert "description: 'Service svc-001 v2'" in text and "description: 'Service svc-002'\n" in text
