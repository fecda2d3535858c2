"""The Discord payload: every limit enforced by truncation, mentions suppressed, any text accepted.

The oracle is the fake Discord's validator (tests/support/fakediscord/validate.py), which follows
Discord's documented limits and error bodies; the property tests throw arbitrary unicode of any
length at the message builder and require a payload the validator accepts.
"""

from __future__ import annotations

import json
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enadu_pipelines.helper import embed, notify
from support.fakediscord import FakeDiscord, check, length, pings

ROLE = "123456789012345678"


def opts(**over):
    base = {"service": "backend", "title": "Enadu backend API", "result": "SUCCESS", "duration_ms": 193_000,
            "role": None, "timeout": 30.0, "strict": False}
    base.update(over)
    return base


def fields_of(body):
    return {f["name"]: f["value"] for f in body["embeds"][0]["fields"]}


# ---------------------------------------------------------------------------------------------
# truncation, one limit at a time


@pytest.mark.parametrize(("limit", "make"), [
    (embed.TITLE_MAX, lambda t: embed.Message(title=t, description="d", colour=1)),
    (embed.DESCRIPTION_MAX, lambda t: embed.Message(title="t", description=t, colour=1)),
    (embed.FIELD_NAME_MAX, lambda t: embed.Message(title="t", description="d", colour=1, fields=[embed.Field(t, "v")])),
    (embed.FIELD_VALUE_MAX, lambda t: embed.Message(title="t", description="d", colour=1, fields=[embed.Field("n", t)])),
    (embed.FOOTER_MAX, lambda t: embed.Message(title="t", description="d", colour=1, footer=t)),
    (embed.AUTHOR_MAX, lambda t: embed.Message(title="t", description="d", colour=1, author=t)),
])
def test_each_part_is_cut_to_its_limit_with_an_ellipsis(limit, make):
    body = embed.payload(make("x" * (limit + 500)))
    e = body["embeds"][0]
    texts = [e["title"], e["description"], e.get("footer", {}).get("text", ""), e.get("author", {}).get("name", "")]
    texts += [v for f in e["fields"] for v in (f["name"], f["value"])]
    cut = [t for t in texts if t.endswith(embed.ELLIPSIS)]
    assert len(cut) == 1
    assert length(cut[0]) == limit
    assert cut[0] == "x" * (limit - 1) + embed.ELLIPSIS
    assert check(body) is None


def test_text_just_at_the_limit_is_not_cut():
    body = embed.payload(embed.Message(title="t" * 256, description="d", colour=1))
    assert body["embeds"][0]["title"] == "t" * 256


def test_astral_characters_count_twice_and_are_never_split():
    title = "\U0001F680" * 200  # 200 rockets = 400 UTF-16 units
    body = embed.payload(embed.Message(title=title, description="d", colour=1))
    got = body["embeds"][0]["title"]
    assert length(got) <= 256
    assert got == "\U0001F680" * 127 + embed.ELLIPSIS  # 254 units + the ellipsis; no half surrogate pair
    assert check(body) is None


def test_more_than_25_fields_and_more_than_6000_characters_are_cut_to_fit():
    message = embed.Message(title="t" * 300, description="d" * 5000, colour=1, footer="f" * 3000,
                            fields=[embed.Field(f"field {i}", "v" * 2000) for i in range(40)])
    body = embed.payload(message)
    e = body["embeds"][0]
    assert len(e["fields"]) == 25
    assert e["fields"][-1]["value"] == "16 more fields not shown"
    total = sum(length(t) for t in [e["title"], e["description"], e["footer"]["text"]]
                + [v for f in e["fields"] for v in (f["name"], f["value"])])
    assert total <= 6000
    assert check(body) is None


def test_whitespace_and_control_characters_never_leave_a_field_empty():
    message = embed.Message(title=" \t ", description="\x00\x01", colour=1,
                            fields=[embed.Field("   ", "\n\n"), embed.Field("ok", "\x07")])
    body = embed.payload(message)
    assert check(body) is None
    assert all(f["name"].strip() and f["value"].strip() for f in body["embeds"][0]["fields"])


def test_lone_surrogates_from_a_non_utf8_environment_are_replaced():
    body = embed.payload(embed.Message(title="caf\udce9", description="d", colour=1))
    assert body["embeds"][0]["title"] == "caf\ufffd"
    json.dumps(body).encode("ascii")  # what webhook.deliver sends


# ---------------------------------------------------------------------------------------------
# mentions


def test_mentions_in_text_ping_no_one():
    with mock.patch.object(notify, "commit_subject", return_value="@everyone look <@&999999999999999999> <@42>"):
        body = embed.payload(notify.build_message(opts(result="FAILURE"), {"GIT_COMMIT": "a" * 40}, ".", None, None))
    assert body["allowed_mentions"] == {"parse": []}
    assert "content" not in body
    assert pings(body) == {"everyone": False, "roles": [], "users": []}
    assert "@everyone" in fields_of(body)["Commit"]  # shown, not pinged


def test_the_role_is_pinged_on_failure_only():
    failed = embed.payload(notify.build_message(opts(result="FAILURE", role=ROLE), {}, ".", None, None))
    assert failed["allowed_mentions"] == {"parse": [], "roles": [ROLE]}
    assert pings(failed) == {"everyone": False, "roles": [ROLE], "users": []}
    assert check(failed) is None
    for result in ("SUCCESS", "UNSTABLE", "ABORTED", "NOT_BUILT"):
        body = embed.payload(notify.build_message(opts(result=result, role=ROLE), {}, ".", None, None))
        assert body["allowed_mentions"] == {"parse": []}
        assert pings(body)["roles"] == []


def test_colour_follows_the_result():
    colours = {r: embed.payload(notify.build_message(opts(result=r), {}, ".", None, None))["embeds"][0]["color"]
               for r in embed.RESULTS}
    assert len(set(colours.values())) == 5
    assert colours["SUCCESS"] == 0x2ECC71 and colours["FAILURE"] == 0xE74C3C


@pytest.mark.parametrize(("ms", "shown"), [(0, "0 ms"), (850, "850 ms"), (4200, "4.2 s"), (42_000, "42 s"),
                                           (193_000, "3 min 13 s"), (3_900_000, "1 h 05 min"), (None, "unknown")])
def test_human_duration(ms, shown):
    assert notify.human_duration(ms) == shown


# ---------------------------------------------------------------------------------------------
# properties: anything goes in, something Discord accepts comes out

# whitespace and control characters on their own too: Discord trims, and an empty field is refused
blank = st.text(st.sampled_from(" \t\n\r\x0b\x0c\x00\x07\x1b\x85\xa0\u2028\u3000\ufeff"), max_size=50)
# long text as a repeated piece: any length up to ~16000 without using up Hypothesis' entropy budget
long_text = st.builds(lambda piece, times: piece * times, st.text(min_size=1, max_size=40), st.integers(20, 400))
any_text = st.text(max_size=300) | blank | long_text
# st.characters() includes lone surrogates only when asked: a non-UTF-8 byte in os.environ arrives as one
env_text = st.text(st.characters(blacklist_categories=()), max_size=400)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=any_text, title=any_text, job=env_text, branch=env_text, build=env_text,
       deploy_message=any_text, paths=st.lists(any_text, max_size=30), result=st.sampled_from(embed.RESULTS),
       role=st.sampled_from([None, ROLE]), unit=st.sampled_from(["utf16", "codepoints"]))
def test_any_text_yields_a_payload_discord_accepts(tmp_path_factory, subject, title, job, branch, build,
                                                   deploy_message, paths, result, role, unit):
    folder = tmp_path_factory.mktemp("results")
    changes = folder / "changes.json"
    changes.write_text(json.dumps({"changed": True, "basis": "diff", "paths": paths[:3], "matched": [
        {"status": "R", "path": p, "old_path": p[::-1]} for p in paths]}))
    deploy = folder / "deploy.json"
    deploy.write_text(json.dumps({"outcome": "failed", "message": deploy_message, "image": title,
                                  "colour": branch, "previous_image": subject}))
    env = {"JOB_NAME": job, "BUILD_NUMBER": build, "BUILD_URL": "https://ci.example/job/x/1/",
           "GIT_COMMIT": "c0ffee" * 6 + "abcd", "GIT_BRANCH": branch}
    with mock.patch.object(notify, "commit_subject", return_value=subject):
        message = notify.build_message(opts(title=title, result=result, role=role), env, ".", str(changes),
                                       str(deploy))
    body = embed.payload(message)
    assert check(body, unit=unit) is None
    json.dumps(body).encode("ascii")


field_text = st.text(max_size=200) | blank | st.builds(lambda piece, times: piece * times,
                                                      st.text(min_size=1, max_size=20), st.integers(40, 120))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=any_text, description=any_text, footer=st.none() | any_text, author=st.none() | any_text,
       fields=st.lists(st.tuples(field_text, field_text, st.booleans()), max_size=30))
def test_any_embed_is_cut_to_fit(title, description, footer, author, fields):
    message = embed.Message(title=title, description=description, colour=0xFFFFFF, footer=footer, author=author,
                            fields=[embed.Field(n, v, i) for n, v, i in fields])
    body = embed.payload(message)
    assert check(body) is None
    assert len(body["embeds"][0]["fields"]) == min(len(fields), 25)


@pytest.fixture(scope="module")
def fake():
    with FakeDiscord() as server:
        yield server


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subject=any_text, title=any_text)
def test_any_payload_is_accepted_over_http(fake, subject, title):
    from enadu_pipelines.helper import webhook

    with mock.patch.object(notify, "commit_subject", return_value=subject):
        body = embed.payload(notify.build_message(opts(title=title), {"GIT_COMMIT": "f" * 40}, ".", None, None))
    before = len(fake.messages)
    delivery = webhook.deliver(webhook.prepare_url(fake.url), body, deadline=10)
    assert delivery.status == 200
    assert len(fake.messages) == before + 1
    assert fake.messages[-1]["payload"] == json.loads(json.dumps(body))


def test_commit_text_is_shown_as_typed_not_as_markdown():
    with mock.patch.object(notify, "commit_subject", return_value="fix user_id in note_service **now** [x](y)"):
        body = embed.payload(notify.build_message(opts(), {"GIT_COMMIT": "b" * 40}, ".", None, None))
    assert fields_of(body)["Commit"] == "`bbbbbbb` fix user\\_id in note\\_service \\*\\*now\\*\\* \\[x\\](y)"


# ---------------------------------------------------------------------------------------------
# grapheme clusters (issue 13, finding 19): a cut never splits what a reader sees as one character

FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"  # 11 UTF-16 units, one cluster
FLAG = "\U0001F1EB\U0001F1F7"  # France: two regional indicators
ACCENTED = "e\u0301\u0323"  # e with two combining marks
THUMB = "\U0001F44D\U0001F3FD"  # thumbs up, medium skin tone
CLUSTERS = (FAMILY, FLAG, ACCENTED, THUMB, "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F")


def _whole_clusters(text: str) -> bool:
    """True when ``text`` (an ellipsis removed) is a run of whole clusters, judged by regex's \\X."""
    import regex

    head = text[:-1] if text.endswith(embed.ELLIPSIS) else text
    return all(c in CLUSTERS or len(c) == 1 for c in regex.findall(r"\X", head))


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize(("limit", "make", "get"), [
    (embed.TITLE_MAX, lambda t: embed.Message(title=t, description="d", colour=1), lambda e: e["title"]),
    (embed.DESCRIPTION_MAX, lambda t: embed.Message(title="t", description=t, colour=1), lambda e: e["description"]),
    (embed.FIELD_NAME_MAX, lambda t: embed.Message(title="t", description="d", colour=1, fields=[embed.Field(t, "v")]),
     lambda e: e["fields"][0]["name"]),
    (embed.FIELD_VALUE_MAX, lambda t: embed.Message(title="t", description="d", colour=1, fields=[embed.Field("n", t)]),
     lambda e: e["fields"][0]["value"]),
])
@pytest.mark.parametrize("offset", range(0, 12))
def test_a_cut_at_every_limit_keeps_clusters_whole(cluster, limit, make, get, offset):
    text = "x" * offset + cluster * (limit // 2)  # the limit falls at every position inside a cluster
    shown = get(embed.payload(make(text))["embeds"][0])
    assert shown.endswith(embed.ELLIPSIS) and length(shown) <= limit
    assert _whole_clusters(shown), shown[-20:]
    assert shown[:-1] == "x" * offset + cluster * ((len(shown) - 1 - offset) // len(cluster))


_ASSIGNED = st.characters(blacklist_categories=("Cn", "Cs", "Co", "Cc"))
_TRICKY = st.sampled_from(["\u200d", "\u200c", "\u0301", "\u094d", "\u0915", "\U0001F1EB", "\U0001F3FD",
                           "\U0001F468", "\u1100", "\u1161", "\u11a8", "\uac00", "\u0600", "\ufe0f", "\r", "\n"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_ASSIGNED, _TRICKY), max_size=40).map("".join))
def test_grapheme_boundaries_are_uax29_boundaries(text):
    """Every boundary ``embed.graphemes`` cuts at is one that regex's \\X (UAX #29) also has."""
    import regex

    ours, theirs, at = set(), set(), 0
    for cluster in embed.graphemes(text):
        at += len(cluster)
        ours.add(at)
    at = 0
    for cluster in regex.findall(r"\X", text):
        at += len(cluster)
        theirs.add(at)
    assert "".join(embed.graphemes(text)) == text
    assert ours <= theirs
