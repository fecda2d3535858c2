"""The webhook URL and its token never show: not in output, not in exceptions, not in log lines.

The dangerous paths are the ones we do not write ourselves: requests' ConnectionError says
"Max retries exceeded with url: /api/webhooks/<id>/<token>", urllib3's debug log prints the request
line. Each test first shows the leak is real (the raw library text contains the token), then that
nothing the helper prints, raises or logs does.
"""

from __future__ import annotations

import logging
import os
import socket

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enadu_pipelines.helper import retry, webhook
from enadu_pipelines.helper.cli import main
from support.fakediscord import FakeDiscord, RateLimited, ServerError

TOKEN = "TOPSECRET-" + "Zq9" * 20  # recognizable, and long like a real webhook token
FAST = retry.Policy(backoffs=(0.0, 0.0, 0.0), deadline=10)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chain(exc: BaseException):
    """exc and every exception reachable from it (cause, context, args, GaveUp.last)."""
    seen, todo = [], [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "last", None)]
        todo += [a for a in e.args if isinstance(a, BaseException)]
    return seen


def leaks(text: str, token: str) -> bool:
    return token in text or token[:24] in text


@pytest.fixture
def env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("ENADU_", "GIT_", "BUILD_", "JOB_")) or name == "DISCORD_WEBHOOK_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("ENADU_SERVICE", "backend")
    monkeypatch.setenv("ENADU_BUILD_RESULT", "FAILURE")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return monkeypatch


def test_a_connection_error_does_not_show_the_token(env, capsys):
    url = f"http://127.0.0.1:{closed_port()}/api/webhooks/1234567890/{TOKEN}"
    with pytest.raises(requests.exceptions.ConnectionError) as raw:  # the leak we guard against
        requests.post(url, json={}, timeout=2)
    assert TOKEN in str(raw.value)

    env.setenv("DISCORD_WEBHOOK_URL", url)
    env.setenv("ENADU_NOTIFY_TIMEOUT", "1.2")
    for argv in ([], ["--output", "json"], ["--strict"]):
        code = main(["notify", *argv])
        out, err = capsys.readouterr()
        assert code == (1 if argv == ["--strict"] else 0)
        assert "not delivered" in err and "ConnectionRefusedError" in err
        assert not leaks(out + err, TOKEN) and "/api/webhooks" not in out + err


def test_exceptions_hold_no_token_anywhere_in_their_chain():
    url = webhook.prepare_url(f"http://127.0.0.1:{closed_port()}/api/webhooks/1234567890/{TOKEN}")
    with pytest.raises(webhook.WebhookError) as caught:
        webhook.deliver(url, {"content": "x"}, deadline=10, policy=FAST, sleep=lambda s: None)
    assert caught.value.attempts == 4
    for exc in chain(caught.value):
        assert not leaks(repr(exc) + str(exc) + repr(exc.args), TOKEN)


def test_urllib3_debug_logs_are_redacted(caplog):
    names = ("urllib3", "urllib3.connectionpool", "requests")
    before = {name: list(logging.getLogger(name).filters) for name in names}
    with FakeDiscord(token=TOKEN) as fake:
        fake.script(ServerError(503), RateLimited(retry_after=0))
        caplog.set_level(logging.DEBUG)
        # kubernetes.client.Configuration() sets the urllib3 logger to WARNING process-wide (its
        # `debug` setter); set it explicitly so this test does not depend on which tests ran first.
        caplog.set_level(logging.DEBUG, logger="urllib3")
        lines = []
        delivery = webhook.deliver(webhook.prepare_url(fake.url), {"content": "x"}, deadline=10, policy=FAST,
                                   sleep=lambda s: None, log=lines.append)
    assert delivery.attempts == 3 and len(lines) == 2
    urllib3_lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any('"POST <webhook> HTTP/1.1" 200' in line for line in urllib3_lines)  # logged, redacted
    assert not leaks(caplog.text + "\n".join(lines), TOKEN)
    # the filters come off again once the sender is done: later requests log as they always did
    assert {name: list(logging.getLogger(name).filters) for name in names} == before


def test_the_redactor_covers_every_spelling_of_the_url():
    url = webhook.prepare_url(f"https://discord.com/api/webhooks/1234567890/{TOKEN}?thread_id=5")
    redact = webhook.Redactor(url)
    for text in (url, url.replace("https://discord.com", ""), TOKEN, f"/webhooks/1234567890/{TOKEN}",
                 requests.utils.quote(TOKEN, safe="")):
        assert not leaks(redact(f"before {text} after"), TOKEN)
    assert redact(url) == "<webhook>"


tokens = st.text(st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters="-_",
                               max_codepoint=127), min_size=24, max_size=90)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=tokens, text=st.text(max_size=200), refused=st.booleans())
def test_no_token_in_any_output_whatever_the_token_and_the_failure(token, text, refused, capsys):
    if refused:
        url = f"http://127.0.0.1:{closed_port()}/api/webhooks/99/{token}"
        fake = None
    else:  # a live fake, but with a different token: a 401 whose request line holds ours
        fake = FakeDiscord().start()
        url = f"{fake.base}/api/webhooks/{fake.webhook_id}/{token}"
    lines = []
    try:
        with pytest.raises(webhook.WebhookError) as caught:
            webhook.deliver(webhook.prepare_url(url), {"content": text or "x"}, deadline=10, policy=FAST,
                            sleep=lambda s: None, log=lines.append)
    finally:
        if fake is not None:
            fake.stop()
    out, err = capsys.readouterr()
    shown = "\n".join(lines) + str(caught.value) + out + err
    assert not leaks(shown, token)
    for exc in chain(caught.value):
        assert not leaks(repr(exc), token)
