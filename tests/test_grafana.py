"""Grafana annotations (helper/grafana.py) against the fake Grafana (tests/support/fakegrafana).

An annotation must carry what Grafana's API expects, must never fail the command that posts it, must
be bounded in time, and must never show the token, wherever it fails.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import textwrap
import time

import pytest
import requests
from support.fakegrafana import FakeGrafana
from support.prometheus import free_port

from enadu_pipelines.helper import grafana
from enadu_pipelines.helper.errors import UsageProblem

TOKEN = "glsa_RECOGNISABLE_token_4f1c2e"


class Lines(list):
    def __call__(self, line: str) -> None:
        self.append(line)


@pytest.fixture
def fake():
    with FakeGrafana(token=TOKEN) as server:
        yield server


def post(config: grafana.Settings, **overrides) -> tuple[bool, Lines]:
    lines = Lines()
    options = dict(service="backend", colour="green", image="registry.enadu.dev/enadu/backend:3f2a9c1-42",
                   outcome="deployed", build_url="https://jenkins.enadu.dev/job/enadu/job/backend/42/",
                   start_ms=1_700_000_000_000, end_ms=1_700_000_095_500, log=lines)
    options.update(overrides)
    return grafana.annotate(config, **options), lines


def test_a_deploy_annotation_has_the_documented_shape(fake: FakeGrafana) -> None:
    ok, lines = post(grafana.Settings(url=fake.url, token=TOKEN), message="analysis passed")
    assert ok and lines == ["grafana: annotation 'deployed' posted"]
    [annotation] = fake.annotations
    assert annotation.authorization == f"Bearer {TOKEN}" and annotation.unknown == ()
    assert annotation.body == {
        "time": 1_700_000_000_000,
        "timeEnd": 1_700_000_095_500,
        "tags": ["enadu", "backend", "green", "registry.enadu.dev/enadu/backend:3f2a9c1-42", "deployed"],
        "text": "backend: deployed registry.enadu.dev/enadu/backend:3f2a9c1-42 on green - analysis passed"
                " - build https://jenkins.enadu.dev/job/enadu/job/backend/42/",
    }


def test_dashboard_uid_and_default_times(fake: FakeGrafana) -> None:
    before = int(time.time() * 1000)
    ok, _ = post(grafana.Settings(url=fake.url + "/", token=TOKEN, dashboard_uid="enadu-backend"),
                 outcome="rolled-back", start_ms=None, end_ms=None, build_url="")
    after = int(time.time() * 1000)
    body = fake.annotations[0].body
    assert ok and body["dashboardUID"] == "enadu-backend"
    assert before <= body["time"] == body["timeEnd"] <= after  # epoch milliseconds, a point in time
    assert body["tags"][-1] == "rolled-back" and "build" not in body["text"]
    assert fake.requests == [("POST", "/api/annotations", 200)]


def test_a_wrong_token_is_one_line_and_never_retried(fake: FakeGrafana) -> None:
    ok, lines = post(grafana.Settings(url=fake.url, token="glsa_wrong"))
    assert not ok and fake.annotations == []
    assert lines == ["grafana: annotation 'deployed' not posted: HTTP 401 (check the token in GRAFANA_TOKEN)"]
    assert len(fake.requests) == 1


def test_server_errors_are_retried_then_given_up_within_the_bound(fake: FakeGrafana) -> None:
    fake.fail_next(500, times=1)
    ok, lines = post(grafana.Settings(url=fake.url, token=TOKEN))
    assert ok and len(fake.annotations) == 1
    assert lines[0] == "grafana annotation: attempt #1/4 failed: HTTP 500; will retry in 0.5 s"
    fake.fail_next(503, times=10)
    ok, lines = post(grafana.Settings(url=fake.url, token=TOKEN, timeout=2.0))
    assert not ok
    assert lines[-1].startswith("grafana: annotation 'deployed' not posted: HTTP 503 after ")
    assert [r[2] for r in fake.requests[2:]] == [503] * (len(fake.requests) - 2) and len(fake.requests) - 2 <= 4


def test_a_slow_grafana_is_abandoned(fake: FakeGrafana) -> None:
    fake.delay = 3.0
    ok, lines = post(grafana.Settings(url=fake.url, token=TOKEN, timeout=1.0))
    assert not ok and lines[-1].startswith("grafana: annotation 'deployed' not posted: timed out after ")


def test_an_empty_token_skips_the_post(fake: FakeGrafana) -> None:
    ok, lines = post(grafana.Settings(url=fake.url, token=""))
    assert not ok and fake.requests == []
    assert lines == ["grafana: annotation 'deployed' not posted: GRAFANA_TOKEN is empty"]


def test_no_grafana_configured_does_nothing() -> None:
    assert post(None) == (False, [])


def test_the_token_never_shows_even_when_the_url_carries_it(tmp_path) -> None:
    """Unreachable Grafana at a URL whose path and query hold the token too: the whole output of a
    process that posts (stdout, stderr, Python's last-resort logging) is free of it."""
    port = free_port()
    script = textwrap.dedent(f"""
        import json, sys
        from enadu_pipelines.helper import grafana
        lines = []
        config = grafana.Settings(url="http://127.0.0.1:{port}/{TOKEN}/x?token={TOKEN}", token="{TOKEN}", timeout=1.5)
        ok = grafana.annotate(config, service="backend", colour="blue", image="r.io/a/b:1", outcome="aborted",
                              log=lines.append)
        print(repr(config))
        print(json.dumps({{"ok": ok, "lines": lines}}))
        ok = grafana.annotate(grafana.Settings(url="http://[::1", token="{TOKEN}"), service="b", colour="",
                              image="", outcome="deployed", log=lines.append)
        print(json.dumps({{"ok": ok, "lines": lines}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    first = json.loads(done.stdout.splitlines()[1])
    assert first["ok"] is False
    assert re.fullmatch(r"grafana: annotation 'aborted' not posted: connection failed after [23] attempt\(s\)",
                        first["lines"][-1])
    last = json.loads(done.stdout.splitlines()[2])
    assert last["ok"] is False and last["lines"][-1] == "grafana: annotation 'deployed' not posted: InvalidURL"
    assert "token=<set>" in done.stdout.splitlines()[0]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    grafana.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_settings_from_flags_environment_and_token(monkeypatch) -> None:
    assert grafana.settings(parse(), environ={}) is None
    config = grafana.settings(parse("--grafana-url", "https://grafana.enadu.dev/"), environ={"GRAFANA_TOKEN": TOKEN})
    assert (config.url, config.token, config.dashboard_uid) == ("https://grafana.enadu.dev", TOKEN, "")
    assert TOKEN not in repr(config) and TOKEN not in str(config)
    monkeypatch.setenv("ENADU_GRAFANA_URL", "http://localhost:3000")  # plain http: loopback only
    monkeypatch.setenv("ENADU_GRAFANA_DASHBOARD_UID", "enadu-backend")
    monkeypatch.setenv("GRAFANA_TOKEN", "t")
    config = grafana.settings(parse())
    assert (config.url, config.token, config.dashboard_uid) == ("http://localhost:3000", "t", "enadu-backend")


@pytest.mark.parametrize("argv, message", [
    (["--grafana-url", "https://grafana?token=abc"], "--grafana-url: not an http(s) URL"),
    (["--grafana-url", "https://admin:pw@grafana"], "--grafana-url: not an http(s) URL"),
    (["--grafana-url", "https://g", "--grafana-dashboard-uid", "a b"], "--grafana-dashboard-uid: at most 40"),
    (["--grafana-url", "http://grafana.example.com:3000"], "--grafana-url: must use https (plain http only to"
                                                           " loopback: 127.0.0.1, localhost, ::1), or it would send"
                                                           " the Grafana token in clear"),
])
def test_bad_settings_are_usage_problems_that_do_not_echo_the_url(argv: list[str], message: str) -> None:
    with pytest.raises(UsageProblem) as caught:
        grafana.settings(parse(*argv), environ={})
    assert str(caught.value).startswith(message)
    assert "abc" not in str(caught.value) and "pw" not in str(caught.value)


# -- the fake itself refuses what Grafana refuses ---------------------------------------------------


@pytest.mark.parametrize("body, status, message", [
    ({"time": "now", "text": "x"}, 400, "bad request data"),
    ({"time": 1.5, "text": "x"}, 400, "bad request data"),
    ({"time": 1, "tags": ["a", 2], "text": "x"}, 400, "bad request data"),
    ({"time": 1, "tags": [], "text": ""}, 400, "Failed to save annotation"),
    ({"time": 5, "timeEnd": 4, "text": "x"}, 400, "bad request data"),
    ({"time": 1, "text": "x", "dashboardUID": "nope", "panel": 3}, 200, "Annotation added"),
])
def test_fake_grafana_checks_the_payload(fake: FakeGrafana, body: dict, status: int, message: str) -> None:
    answer = requests.post(f"{fake.url}/api/annotations", json=body, headers={"Authorization": f"Bearer {TOKEN}"},
                           timeout=5)
    assert (answer.status_code, answer.json()["message"]) == (status, message)
    if status == 200:
        assert fake.annotations[0].unknown == ("panel",) and answer.json()["id"] == 1


def test_fake_grafana_checks_auth_and_content_type(fake: FakeGrafana) -> None:
    url = f"{fake.url}/api/annotations"
    assert requests.post(url, json={"text": "x"}, timeout=5).status_code == 401
    assert requests.post(url, json={"text": "x"}, headers={"Authorization": "Bearer other"}, timeout=5).status_code == 401
    assert requests.post(url, data="text=x", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).status_code == 400
    assert requests.post(f"{fake.url}/api/dashboards", json={}, timeout=5).status_code == 404
