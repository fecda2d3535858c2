"""``status`` shows the deploy history you can read (issue 14, "History you can read").

The last deploys recorded on the Service (who, what image, when, outcome, reason) and the time each
colour became live, as text for people and as one JSON object for scripts (``--output json``). The
history annotation is untrusted (anyone who may patch the Service can write it, here with the real
``kubectl annotate``): what does not validate is left out and said so, every line is bounded, and
hostile text prints as visible escapes, never as lines or colours of its own.
"""

from __future__ import annotations

import json

import pytest

from enadu_pipelines.helper.status import outcome_of
from tests.support import deployrun as d
from tests.support.deployrun import world, ok  # noqa: F401 (world is a fixture)
from tests.test_helper_hostile_text import HOSTILE, assert_no_fake_line

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 17}
ENTRY_KEYS = ["at", "colour", "outcome", "image", "previous_colour", "previous_image", "by", "build_url", "reason",
              "analysis", "commit", "previous_commit"]


def set_history(world, entries) -> None:
    text = entries if isinstance(entries, str) else json.dumps(entries)
    done = world.kubectl("annotate", "--overwrite", "-n", d.NAMESPACE, "service", d.SERVICE, f"enadu.io/history={text}")
    assert done.returncode == 0, done.stderr


def status_text(world) -> list:
    """The lines of ``status`` in text mode, without their timestamps."""
    import subprocess

    proc = subprocess.run(d.command("status"), env=d.env(world), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    return [line.split(" ", 1)[1] for line in proc.stdout.splitlines()]


@pytest.mark.parametrize(("reason", "outcome"), [
    (None, "deployed"),
    ("rollback", "rolled-back"),
    ("rollback: v2 breaks logins", "rolled-back"),
    ("rolled back: smoke test GET /health on the new colour green failed", "switched-back"),
    ("something else", "deployed"),
])
def test_the_outcome_of_an_entry_follows_the_reason_its_writer_records(reason, outcome) -> None:
    assert outcome_of({"reason": reason}) == outcome


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_status_shows_who_deployed_what_when_with_outcome_and_reason(world) -> None:
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2", extra_env={"BUILD_URL": "https://ci.enadu.dev/job/enadu/job/backend/8/",
                                        "ENADU_LOCK_IDENTITY": "jenkins-enadu-backend-8"}))
    ok(d.run(world, "rollback", "--reason", "v2 breaks logins", extra_env={"ENADU_LOCK_IDENTITY": "alice"}))
    recorded = d.history(world)

    status = ok(d.run(world, "status"))
    assert [sorted(e) for e in status["history"]] == [sorted(ENTRY_KEYS)] * 3  # every key, null when unknown
    assert [(e["colour"], e["outcome"], e["image"], e["by"], e["reason"]) for e in status["history"]] == [
        ("blue", "rolled-back", d.image("v1"), "alice", "rollback: v2 breaks logins"),
        ("green", "deployed", d.image("v2"), "jenkins-enadu-backend-8", None),
        ("blue", "deployed", d.image("v1"), "jenkins-enadu-backend-7", None)]
    assert [e["at"] for e in status["history"]] == [e["at"] for e in recorded]
    assert status["history"][1]["build_url"] == "https://ci.enadu.dev/job/enadu/job/backend/8/"
    assert status["live"] == "blue" and status["live_since"] == recorded[0]["at"]
    assert status["became_live"] == {"blue": recorded[0]["at"], "green": recorded[1]["at"]}
    assert status["history_left_out"] == []

    lines = status_text(world)
    assert f"service backend: live colour blue since {recorded[0]['at']}" in lines
    assert f"  green  {d.image('v2')}  0/0 available  (last live from {recorded[1]['at']})" in lines
    start = lines.index("last 3 deploys, newest first (at most 10 are kept):")
    assert lines[start + 1:] == [
        f"  {recorded[0]['at']}  blue   rolled-back    {d.image('v1')}  (was green)  by alice  {d.BUILD_URL}"
        "  reason: rollback: v2 breaks logins",
        f"  {recorded[1]['at']}  green  deployed       {d.image('v2')}  (was blue)  by jenkins-enadu-backend-8"
        "  https://ci.enadu.dev/job/enadu/job/backend/8/",
        f"  {recorded[2]['at']}  blue   deployed       {d.image('v1')}  by jenkins-enadu-backend-7  {d.BUILD_URL}"]


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_hostile_history_entries_print_safely_and_are_said_to_be_left_out(world) -> None:
    ok(d.deploy(world, "v1"))
    [good] = d.history(world)
    hostile = [dict(good, by=HOSTILE), dict(good, reason="\x1b[2J" + HOSTILE), dict(good, build_url=HOSTILE),
               {"at": HOSTILE, "colour": "blue"}, HOSTILE, good]
    set_history(world, hostile)

    status = ok(d.run(world, "status"))
    assert [e["at"] for e in status["history"]] == [good["at"]]
    assert len(status["history_left_out"]) == 5
    assert status["history_left_out"][0].startswith("enadu.io/history entry 1: by 'x\\nFinished: SUCCESS")

    lines = status_text(world)
    text = "\n".join(lines)
    assert_no_fake_line(text)
    assert "5 history entries left out (they do not validate):" in text
    assert "  enadu.io/history entry 1: by 'x\\nFinished: SUCCESS\\r\\x1b[31mred" in text


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_the_output_is_bounded_however_long_the_recorded_text(world) -> None:
    ok(d.deploy(world, "v1"))
    [good] = d.history(world)
    long = dict(good, by="b" * 256, build_url="https://ci.enadu.dev/" + "u" * 1970, reason="r" * 300)
    set_history(world, [long] * 10 + ["junk"] * 40)

    status = ok(d.run(world, "status"))
    assert len(status["history"]) == 10 and status["history"][0]["reason"] == "r" * 300  # JSON keeps it whole
    lines = status_text(world)
    history = lines[lines.index("last 10 deploys, newest first (at most 10 are kept):") + 1:]
    assert len(history) == 10 and all(len(line) <= 400 for line in history), max(map(len, history))
    assert all(line.endswith("r" * 50 + "\u2026") for line in history)
    assert len(lines) <= 17  # connection, namespace, live colour, live commit, two colours, heading, 10 entries
