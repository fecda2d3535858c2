"""The Service's ``enadu.io/history`` annotation is untrusted input (issue 13, findings 1 and 2).

Anyone who may patch the Service (a much weaker right than deploying) can rewrite it, here with the
real ``kubectl annotate`` against the Kubernetes test world. A rollback must not run an image the
history names unless it validates by the ``--image`` rule and comes from the live image's repository,
and a time in the history must never stretch a wait.
"""

from __future__ import annotations

import json

import pytest

from tests.support import deployrun as d
from tests.support.deployrun import world, ok  # noqa: F401 (world is a fixture)

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 11}
DIGEST = "sha256:" + "ab" * 32


def set_history(world, entries) -> None:
    text = entries if isinstance(entries, str) else json.dumps(entries)
    done = world.kubectl("annotate", "--overwrite", "-n", d.NAMESPACE, "service", d.SERVICE, f"enadu.io/history={text}")
    assert done.returncode == 0, done.stderr


def deleted_blue(world) -> list:
    """v1 in blue, then v2 in green with blue deleted: a rollback has to redeploy from the history."""
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2", "--delete-old"))
    assert d.deployment(world, "blue") is None
    return d.history(world)


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize(("field", "value", "said"), [
    ("previous_image", "EVIL.example.com/Backdoor",
     "previous_image 'EVIL.example.com/Backdoor' is not an image reference to deploy: "
     "its repository path must be lower-case"),
    ("previous_image", "registry.enadu.dev/enadu/backend:v1\nFinished: SUCCESS",
     "is not an image reference to deploy: it contains a space, a control character or a non-ASCII character"),
    ("colour", "purple", "colour 'purple' is not blue or green"),
    ("at", "tomorrow", "at 'tomorrow' is not a time such as 2026-01-31T12:00:00Z"),
])
def test_a_rollback_refuses_a_history_entry_that_does_not_validate(world, field, value, said) -> None:
    history = deleted_blue(world)
    history[0][field] = value
    set_history(world, history)
    before = len(d.helper_writes(world))
    refused = d.run(world, "rollback", "--manifest", str(d.MANIFEST))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    message = refused.result["message"]
    assert message.startswith("refusing to roll back from the Service's history: enadu.io/history entry 1: ")
    assert said in message and message.endswith("deploy the image you want with deploy --image")
    assert "\n" not in message
    assert d.deployment(world, "blue") is None and d.selected_colour(world) == "green"
    assert [w.path for w in d.helper_writes(world)[before:] if "/leases" not in w.path] == []  # nothing but the lock


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_rollback_never_runs_an_image_of_another_repository(world) -> None:
    history = deleted_blue(world)
    history[0]["previous_image"] = "evil.example.com/backdoor:1"  # well-formed, but not the service's image
    set_history(world, history)
    refused = d.run(world, "rollback", "--manifest", str(d.MANIFEST))
    assert refused.returncode == 1
    assert refused.result["message"] == (
        "refusing to roll back to evil.example.com/backdoor:1: the Service's history names a repository other than"
        " the live image's registry.enadu.dev/enadu/backend; deploy it with deploy --image if it is wanted")
    assert d.deployment(world, "blue") is None and d.selected_colour(world) == "green"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_rollback_says_which_image_it_runs_and_where_it_came_from(world) -> None:
    deleted_blue(world)
    back = d.run(world, "rollback", "--manifest", str(d.MANIFEST))
    assert back.returncode == 0, back.stdout + back.stderr
    assert (back.result["image"], back.result["image_source"]) == (d.image("v1"), "history")
    assert (f"backend-blue was deleted; deploying {d.image('v1')} again, the previous image recorded in the"
            " Service's enadu.io/history annotation when green went live at ") in back.stderr
    assert f"by jenkins-enadu-backend-7 ({d.BUILD_URL})" in back.stderr

    again = d.run(world, "rollback")  # green is kept (scaled to zero): its Deployment says what it runs
    assert again.returncode == 0, again.stdout + again.stderr
    assert (again.result["image"], again.result["image_source"]) == (d.image("v2"), "deployment")
    assert f"rolling back to {d.image('v2')}, which deployment backend-green runs (it served before blue)" in again.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_entries_that_do_not_validate_are_left_out_of_the_next_write(world) -> None:
    ok(d.deploy(world, "v1"))
    hostile = d.history(world) + [{"at": "2026-01-01T00:00:00Z", "colour": "blue", "image": "EVIL/Backdoor"}, "x"]
    set_history(world, hostile)
    run = d.deploy(world, "v2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert ("warning: the Service's history keeps only the entries that validate; left out: enadu.io/history"
            " entry 2: image 'EVIL/Backdoor' is not an image reference to deploy") in run.stderr
    assert [h["image"] for h in d.history(world)] == [d.image("v2"), d.image("v1")]
    set_history(world, "{not json")
    status = ok(d.run(world, "status"))
    assert status["history"] == []


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize("at", ["2999-01-01T00:00:00Z", "YEAR_AHEAD"])
def test_a_time_in_the_future_never_stretches_the_scale_down_wait(world, at) -> None:
    """Before the fix a re-run waited for the scale-down delay plus the time to ``at`` (a year), or
    crashed with OverflowError (2999); now such a time counts as 'just now'."""
    import datetime as dt

    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2"))
    if at == "YEAR_AHEAD":
        at = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    history = d.history(world)
    history[0]["at"] = at
    set_history(world, history)
    scaled = world.kubectl("scale", "-n", d.NAMESPACE, "deployment", "backend-blue", "--replicas=2")
    assert scaled.returncode == 0, scaled.stderr
    again = d.deploy(world, "v2", timeout=90)  # the same image: a re-run that settles and retires blue
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.result["outcome"] == "unchanged"
    assert "keeping backend-blue for 1 s" in again.stderr
    assert d.replicas(world, "blue") == 0


def test_history_parsing_is_bounded_and_never_raises() -> None:
    from enadu_pipelines.helper.kube import bluegreen as bg

    entry = {"at": "2026-01-31T12:00:00Z", "colour": "blue", "image": d.image("v1"), "previous_colour": None,
             "previous_image": None, "build_url": d.BUILD_URL, "by": "jenkins-enadu-backend-7", "extra": "dropped"}
    assert bg.parse_history(json.dumps([entry])) == ([{k: v for k, v in entry.items() if k != "extra"}], [])
    for text in ("[" * 50000, "x" * 70000, "null", '{"a": 1}', json.dumps([1, None, []]),
                 json.dumps([{**entry, "at": "2026-02-30T00:00:00Z"}]), json.dumps([{**entry, "by": "x" * 300}])):
        entries, problems = bg.parse_history(text)
        assert entries == [] and len(problems) >= 1 and all("\n" not in p and len(p) < 300 for p in problems)
    future = bg.State(None, {}, history=[{**entry, "at": "9999-12-31T23:59:59Z"}])
    assert bg.switched_at(future) == 0.0
