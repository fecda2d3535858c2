"""The fake Discord itself: it must refuse what Discord refuses, the way Discord answers.

If the fake accepted too much, the notify tests would prove nothing; these tests pin each documented
rule (see the citations in tests/support/fakediscord/) with a raw HTTP client.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from support.fakediscord import Drop, FakeDiscord, RateLimited, ServerError, Slow, check, pings


@pytest.fixture
def fake():
    with FakeDiscord() as server:
        yield server


def post(url, body, *, wait=True, timeout=5, **kwargs):
    return requests.post(url + ("?wait=true" if wait else ""), json=body, timeout=timeout, **kwargs)


def minimal(**embed):
    return {"embeds": [dict({"title": "t"}, **embed)], "allowed_mentions": {"parse": []}}


def test_a_valid_message_is_recorded_and_returned_with_wait(fake):
    answer = post(fake.url, minimal(description="hello"))
    assert answer.status_code == 200
    message = answer.json()
    assert message["embeds"][0] == {"title": "t", "description": "hello", "type": "rich"}
    assert message["webhook_id"] == fake.webhook_id and int(message["id"]) > 0
    assert fake.messages[0]["payload"] == minimal(description="hello")
    assert answer.headers["X-RateLimit-Limit"] == "5" and "X-RateLimit-Reset-After" in answer.headers


def test_without_wait_the_answer_is_204(fake):
    answer = post(fake.url, minimal(), wait=False)
    assert answer.status_code == 204 and answer.content == b""
    assert len(fake.messages) == 1


@pytest.mark.parametrize(("embed", "where", "message"), [
    ({"title": "x" * 257}, ["embeds", "0", "title"], "Must be 256 or fewer in length."),
    ({"description": "x" * 4097}, ["embeds", "0", "description"], "Must be 4096 or fewer in length."),
    ({"fields": [{"name": "n", "value": "v"}] * 26}, ["embeds", "0", "fields"], "Must be 25 or fewer in length."),
    ({"fields": [{"name": "n" * 257, "value": "v"}]}, ["embeds", "0", "fields", "0", "name"],
     "Must be 256 or fewer in length."),
    ({"fields": [{"name": "n", "value": "v" * 1025}]}, ["embeds", "0", "fields", "0", "value"],
     "Must be 1024 or fewer in length."),
    ({"fields": [{"name": "n", "value": "   "}]}, ["embeds", "0", "fields", "0", "value"], "This field is required"),
    ({"footer": {"text": "f" * 2049}}, ["embeds", "0", "footer", "text"], "Must be 2048 or fewer in length."),
    ({"author": {"name": "a" * 257}}, ["embeds", "0", "author", "name"], "Must be 256 or fewer in length."),
    ({"description": "d" * 4096, "fields": [{"name": "n", "value": "v" * 1024}] * 2}, ["embeds"],
     "Embed size exceeds maximum size of 6000"),
    ({"url": "not a url"}, ["embeds", "0", "url"], "Not a well formed URL."),
    ({"color": 0x1000000}, ["embeds", "0", "color"], "int value should be less than or equal to 16777215."),
])
def test_limit_violations_get_discords_400_body(fake, embed, where, message):
    answer = post(fake.url, minimal(**embed))
    assert answer.status_code == 400
    error = answer.json()
    assert error["code"] == 50035 and error["message"] == "Invalid Form Body"
    node = error["errors"]
    for key in where:
        node = node[key]
    assert message in [e["message"] for e in node["_errors"]]
    assert fake.messages == []


def test_limits_count_trimmed_text_in_utf16_units():
    assert check(minimal(title="  " + "x" * 256 + "\n ")) is None  # whitespace around is trimmed first
    assert check(minimal(title="\U0001F680" * 128)) is None  # 256 units
    assert check(minimal(title="\U0001F680" * 129)) is not None  # 258 units
    assert check(minimal(title="\U0001F680" * 129), unit="codepoints") is None  # discord.py's len()


def test_an_empty_message_and_bad_json_are_refused(fake):
    assert post(fake.url, {"allowed_mentions": {"parse": []}}).json() == {
        "code": 50006, "message": "Cannot send an empty message"}
    answer = requests.post(fake.url, data=b"{nope", headers={"Content-Type": "application/json"}, timeout=5)
    assert answer.status_code == 400 and answer.json()["code"] == 50109
    answer = requests.post(fake.url, data=b"{}", headers={"Content-Type": "text/plain"}, timeout=5)
    assert answer.status_code == 400 and answer.json()["code"] == 50035


def test_parse_and_an_id_list_of_the_same_type_are_mutually_exclusive():
    body = {"content": "hi", "allowed_mentions": {"parse": ["roles"], "roles": ["1"]}}
    assert "mutually exclusive" in json.dumps(check(body))


def test_pings_follow_allowed_mentions():
    content = "@everyone <@&11> <@22> <@!33>"
    assert pings({"content": content}) == {"everyone": False, "roles": [], "users": ["22", "33"]}  # webhook default
    assert pings({"content": content, "allowed_mentions": {"parse": []}}) == {
        "everyone": False, "roles": [], "users": []}
    assert pings({"content": content, "allowed_mentions": {"parse": [], "roles": ["11"]}})["roles"] == ["11"]
    assert pings({"content": content, "allowed_mentions": {"parse": ["everyone"]}})["everyone"] is True
    assert pings({"embeds": [{"title": content}], "allowed_mentions": {"parse": ["everyone", "roles"]}}) == {
        "everyone": False, "roles": [], "users": []}  # embeds never ping


def test_bad_token_is_401_and_unknown_webhook_is_404(fake):
    wrong = fake.url.rsplit("/", 1)[0] + "/not-the-token"
    answer = post(wrong, minimal())
    assert (answer.status_code, answer.json()) == (401, {"message": "Invalid Webhook Token", "code": 50027})
    other = f"{fake.base}/api/webhooks/42/{fake.token}"
    answer = post(other, minimal())
    assert (answer.status_code, answer.json()) == (404, {"message": "Unknown Webhook", "code": 10015})
    assert post(f"{fake.base}/api/v10/webhooks/{fake.webhook_id}/{fake.token}", minimal()).status_code == 200


def test_scripted_429_carries_discords_body_and_headers(fake):
    fake.script(RateLimited(retry_after=1.5, scope="global"), RateLimited(retry_after=2, in_body=False,
                                                                           in_header=True))
    first = post(fake.url, minimal())
    assert first.status_code == 429
    assert first.json() == {"message": "You are being rate limited.", "global": True, "retry_after": 1.5}
    assert first.headers["Retry-After"] == "2" and first.headers["X-RateLimit-Scope"] == "global"
    assert first.headers["X-RateLimit-Global"] == "true" and first.headers["X-RateLimit-Remaining"] == "0"
    second = post(fake.url, minimal())
    assert "retry_after" not in second.json() and second.headers["Retry-After"] == "2"
    assert post(fake.url, minimal()).status_code == 200  # the script is used up
    assert [r.status for r in fake.requests] == [429, 429, 200]


def test_scripted_5xx_slow_and_dropped_answers(fake):
    fake.script(ServerError(503), Slow(1.0), Drop())
    assert post(fake.url, minimal()).status_code == 503
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(fake.url, minimal(), timeout=0.2)
    with pytest.raises(requests.exceptions.ConnectionError):
        post(fake.url, minimal())
    assert fake.requests[0].status == 503
    assert fake.requests[2].status is None  # dropped: no answer at all
    # the slow request is still processed after the client gave up, like a real server would: a
    # timed-out post may still have been delivered (why notify cannot promise exactly-once)
    deadline = time.monotonic() + 5
    while fake.requests[1].status is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.requests[1].status == 200 and len(fake.messages) == 1


def test_the_fake_listens_on_loopback_only(fake):
    assert fake.base.startswith("http://127.0.0.1:")
    with socket.create_connection(("127.0.0.1", fake.port), timeout=2):
        pass
