"""The Kubernetes API calls are bounded like every other outbound request (issue 13, finding 7).

An API server (or a proxy in front of it, or the service proxy the smoke test goes through) that
trickles its answer one byte per second satisfies every per-read timeout of the official client's
`_request_timeout`, so before this each such call held the deploy (and its lock) for as long as the
server liked; an endless answer was read into memory. Now `Kube.call` bounds each request in
wall-clock time (its read timeout bounds the whole request) and its answer in size. The official
`kubernetes` client is pointed at a real socket server (tests/support/trickle.py).
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from enadu_pipelines.helper import retry
from enadu_pipelines.helper.errors import ClusterError
from enadu_pipelines.helper.kube import client as kube_client
from tests.support.trickle import TrickleServer


def kube_for(url: str, lines: list) -> kube_client.Kube:
    cfg = client.Configuration(host=url)
    cfg.retries = False
    return kube_client.Kube(client.ApiClient(cfg), "enadu", log=lines.append,
                            policy=retry.Policy(backoffs=(0.2,), deadline=4))


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_a_trickling_api_server_cannot_hold_a_request_past_its_bound(mode):
    lines: list = []
    with TrickleServer(mode, interval=0.5) as server:
        kube = kube_for(server.url, lines)
        started = time.monotonic()
        with pytest.raises(ClusterError) as failed:
            kube.call("reading deployment backend-blue", kube.apps.read_namespaced_deployment, "backend-blue",
                      "enadu", _request_timeout=(1, 1.5))
        elapsed = time.monotonic() - started
    # two attempts of 1.5 s and a 0.2 s back-off; 3x that is generous on a loaded machine, while the
    # trickle would go on for ever (before: the call never returned on its own)
    assert elapsed < 3 * (2 * 1.5 + 0.2), elapsed
    assert "reading deployment backend-blue" in str(failed.value)
    assert "unreachable" in str(failed.value) and "2 attempts" in str(failed.value), str(failed.value)
    assert any("attempt #1/2 failed" in line for line in lines), lines


def test_an_endless_answer_is_refused_at_the_cap(monkeypatch):
    monkeypatch.setattr(kube_client, "MAX_ANSWER", 1 << 20)
    lines: list = []
    with TrickleServer("large", size=8 << 20, declare=False) as server:
        kube = kube_for(server.url, lines)
        with pytest.raises(ClusterError) as failed:
            kube.call("listing pods", kube.core.list_namespaced_pod, "enadu")
    assert str(failed.value) == ("listing pods: the API server's answer is larger than 1048576 bytes"
                                 " (a proxy or a misbehaving server in the way?)")
    assert not any("attempt #" in line for line in lines), "a too-large answer is not retried"
