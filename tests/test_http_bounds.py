"""Every outbound request of the helper is bounded in wall-clock time and in answer size (issue 13,
finding 7), against a real trickling HTTP server (tests/support/trickle.py): one byte a second keeps
every socket read within its timeout, so only a bound on the whole request ends the call.

Bounds are asserted generously (under three times the configured timeout), never tightly.
"""

from __future__ import annotations

import re
import time

import pytest
from support.fakediscord import FakeDiscord
from support.trickle import TrickleServer

from enadu_pipelines.helper import analysis, grafana, retry, webhook

TIMEOUT = 2.0


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_the_one_http_helper_returns_at_its_deadline(mode):
    with TrickleServer(mode) as server:
        http = retry.session()
        started = time.monotonic()
        with pytest.raises(retry.OutOfTime, match=r"^no complete answer within 2 s$"):
            retry.request(http, "GET", server.url + "/x", timeout=TIMEOUT)
        elapsed = time.monotonic() - started
        assert TIMEOUT * 0.9 <= elapsed < 3 * TIMEOUT
        assert server.closed_by_client.wait(3 * TIMEOUT)  # the socket was cut, not left trickling


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_the_deadline_holds_over_tls(mode, tmp_path):
    from support.kubeworld import tls

    ca = tmp_path / "ca.pem"
    ca.write_bytes(tls.ca_pem())
    with TrickleServer(mode, tls=True) as server:
        started = time.monotonic()
        with pytest.raises(retry.OutOfTime):
            retry.request(retry.session(), "GET", server.url, timeout=TIMEOUT, verify=str(ca))
        assert time.monotonic() - started < 3 * TIMEOUT
        assert server.closed_by_client.wait(3 * TIMEOUT)


@pytest.mark.parametrize("declare", [True, False])
def test_an_answer_larger_than_the_cap_is_refused(declare):
    with TrickleServer("large", size=(1 << 20) + 1, declare=declare) as server:
        with pytest.raises(retry.TooLarge, match=r"larger than 1048576 bytes"):
            retry.request(retry.session(), "GET", server.url, timeout=10, max_bytes=1 << 20)
    with TrickleServer("large", size=1 << 20, declare=declare) as server:
        assert len(retry.request(retry.session(), "GET", server.url, timeout=10, max_bytes=1 << 20).content) == 1 << 20


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_a_trickling_prometheus_cannot_hold_a_query(mode):
    with TrickleServer(mode) as server:
        client = analysis.Client(server.url, timeout=10.0)
        started = time.monotonic()
        with pytest.raises(analysis.Unavailable, match=r"^Prometheus unreachable: timed out$"):
            client.query("up", budget=TIMEOUT)
        assert time.monotonic() - started < 3 * TIMEOUT
        client.close()


def test_a_huge_prometheus_answer_is_refused():
    with TrickleServer("large", size=(analysis.MAX_ANSWER + 1)) as server:
        client = analysis.Client(server.url, timeout=10.0)
        with pytest.raises(analysis.Unavailable, match=r"^Prometheus answer refused: the answer is larger than"):
            client.query("up", budget=10)
        client.close()


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_a_trickling_grafana_cannot_hold_an_annotation(mode):
    lines = []
    with TrickleServer(mode) as server:
        config = grafana.Settings(url=server.url, token="t0ken-secret", timeout=TIMEOUT)
        started = time.monotonic()
        posted = grafana.annotate(config, service="backend", colour="blue", image="r/app:1", outcome="deployed",
                                  log=lines.append)
        assert time.monotonic() - started < 3 * TIMEOUT
    assert posted is False
    assert re.fullmatch(r"grafana: annotation 'deployed' not posted: timed out after [12] attempt\(s\)", lines[-1])


def test_a_huge_grafana_answer_is_refused():
    lines = []
    with TrickleServer("large", size=grafana.MAX_ANSWER + 1) as server:
        config = grafana.Settings(url=server.url, token="t0ken-secret", timeout=5)
        assert not grafana.annotate(config, service="backend", colour="blue", image="r/app:1", outcome="deployed",
                                    log=lines.append)
    assert lines[-1] == f"grafana: annotation 'deployed' not posted: the answer is larger than {grafana.MAX_ANSWER} bytes"


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_a_trickling_discord_is_bounded_by_the_notify_timeout_itself(mode):
    with TrickleServer(mode) as server:
        url = webhook.prepare_url(server.url + "/api/webhooks/123/tok-" + "x" * 40)
        started = time.monotonic()
        with pytest.raises(webhook.WebhookError, match=r"^not delivered"):
            webhook.deliver(url, {"content": "x"}, deadline=TIMEOUT)
        # the whole notification, not 2 s past it: the watchdog is the deadline itself
        assert time.monotonic() - started < TIMEOUT + 0.5


def test_a_huge_discord_answer_is_refused_without_retry():
    with TrickleServer("large", size=webhook.MAX_ANSWER + 1) as server:
        url = webhook.prepare_url(server.url + "/api/webhooks/123/tok-" + "x" * 40)
        with pytest.raises(webhook.WebhookError, match=r"^not delivered: the answer is larger than") as caught:
            webhook.deliver(url, {"content": "x"}, deadline=10)
    assert caught.value.attempts == 1 and len(server.requests) == 1


def test_a_normal_discord_delivery_still_works():
    with FakeDiscord() as fake:
        delivery = webhook.deliver(webhook.prepare_url(fake.url), {"content": "hello"}, deadline=10)
    assert delivery.status == 200 and delivery.message_id


def test_a_read_timeout_while_streaming_the_body_is_a_timeout_not_a_failed_connection():
    """requests re-raises urllib3's ReadTimeoutError met in ``iter_content`` as a ConnectionError
    (requests/models.py ``Response.iter_content.generate``): which one the socket timeout or the
    deadline hits first depends on the host's load, and both must read "timed out" (seen once in CI:
    "connection failed after 2 attempt(s)" from a trickling Grafana)."""
    import requests
    from urllib3.exceptions import NewConnectionError, ReadTimeoutError

    streamed = requests.ConnectionError(ReadTimeoutError(None, "/api/annotations", "Read timed out."))
    assert retry.classify_requests(streamed).reason == "timed out"
    refused = requests.ConnectionError(NewConnectionError(None, "Connection refused"))
    assert retry.classify_requests(refused).reason == "connection failed"
