"""Issue 14, defect 1: a rollback pre-empts a deploy that is only waiting out its scale-down delay.

Argo Rollouts switches back at once when the previous revision is still within its scale-down delay
(argoproj/argo-rollouts rollout/sync.go ``isFastRollback``: ``newRSWithinDelay`` for blue/green;
rollout/bluegreen.go ``isBlueGreenFastTracked`` skips the pause and ``reconcileActiveService``
points the active Service at it; rollout/replicaset.go ``removeScaleDownDeadlines`` cancels the
scale-down). There one controller owns both decisions. Here a deploy and a rollback are two processes,
so the hand-over goes through the deploy lock (the Lease): the deploy marks it pre-emptible while it
waits out the delay, a rollback takes it over with a resourceVersion-checked update, and the deploy
must leave the delay through the same kind of checked update before it may scale anything down.

The deploy runs with the default admin token and the rollback with a second user's token, so the
world's request log tells their requests apart (``RequestInfo.user``); "API time" below is the
request log's own clock.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support import deployrun as d
from tests.support.deployrun import world, ok  # noqa: F401 (world is a fixture)
from tests.support.kubeworld.faults import Fault

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 11}
DEPLOYER = "jenkins-enadu-backend-7"  # deployrun's ENADU_LOCK_IDENTITY
OPERATOR = "jenkins-enadu-backend-ops-3"
OPS_USER = "enadu-ops"
LEASE = f"enadu-deploy-{d.SERVICE}"


def _ops_env(world, tmp_path) -> dict:
    """The rollback's environment: another user (so its requests can be told apart) and build."""
    token = world.add_token(OPS_USER)
    return {"KUBECONFIG": world.write_kubeconfig(str(tmp_path / "ops.kubeconfig"), token),
            "ENADU_LOCK_IDENTITY": OPERATOR}


def _lease_writes(world) -> list:
    """(request, holderIdentity or None for a delete, annotations) of every committed Lease write."""
    writes = []
    for r in world.requests.all():
        if r.resource != "leases" or not r.committed or r.query.find("dryRun") >= 0:
            continue
        if r.verb == "delete":
            writes.append((r, None, {}))
            continue
        body = json.loads(r.body or b"{}")
        writes.append((r, (body.get("spec") or {}).get("holderIdentity"),
                       (body.get("metadata") or {}).get("annotations") or {}))
    return writes


def _in_delay(world) -> bool:
    lease = world.get("leases", LEASE, d.NAMESPACE) or {}
    return (lease.get("metadata", {}).get("annotations") or {}).get("enadu.io/preemptible") == "scale-down-delay"


def _switches(world, colour: str) -> list:
    """Committed writes to the Service that select ``colour``."""
    return [r for r in world.requests.all() if r.resource == "services" and r.name == d.SERVICE and r.committed
            and f'"{colour}"' in r.body.decode("utf-8", "replace") and "/spec/selector/color" in r.body.decode()]


def _writes_to(world, name: str, after_seq: int) -> list:
    return [r.describe() for r in world.requests.all() if r.resource == "deployments" and r.name == name
            and r.committed and r.seq > after_seq]


def _assert_never_two_holders(world) -> None:
    """Once the rollback has taken the Lease, the deploy writes nothing at all (its renewals lose the
    resourceVersion race and are not committed), and the Lease never names the deploy again."""
    writes = _lease_writes(world)
    taken = next((r for r, holder, _ in writes if holder == OPERATOR), None)
    assert taken is not None, [(r.describe(), h) for r, h, _ in writes]
    later = [h for r, h, _ in writes if r.seq > taken.seq]
    assert DEPLOYER not in later, later
    # taken from a version the deploy had marked pre-emptible, saying whom it pre-empted
    assert dict(next(a for r, _, a in writes if r is taken)).get("enadu.io/preempted") == DEPLOYER
    marked = [a for r, _, a in writes if r.seq < taken.seq]
    assert marked and marked[-1].get("enadu.io/preemptible") == "scale-down-delay", marked
    deploy_writes = [r.describe() for r in world.requests.all()
                     if r.committed and r.user != OPS_USER and r.seq > taken.seq and r.user_agent == d.USER_AGENT]
    assert deploy_writes == [], deploy_writes


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_rollback_pre_empts_a_deploy_waiting_out_its_scale_down_delay(world, tmp_path) -> None:
    ok(d.deploy(world, "v1"))
    d.wait_serving(world)
    ops = _ops_env(world, tmp_path)
    result_file = tmp_path / "deploy-result.json"
    with world.load(world.service_url(d.SERVICE, d.NAMESPACE), concurrency=2, rate=40) as load:
        load.wait_for_requests(10)
        deploy = d.start(world, "deploy", "--image", d.image("v2"), "--scale-down-delay", "20s",
                         "--result-file", str(result_file))
        try:
            world.wait_for(lambda w: d.selected_colour(w) == "green", timeout=90, what="the deploy's switch")
            switched = time.monotonic()
            # "one second after the switch", once the deploy is in its delay (a loaded machine may take
            # a moment to get there; before the fix it never says so, and the rollback runs anyway)
            world.wait_for(lambda w: _in_delay(w) or time.monotonic() > switched + 5, timeout=10, what="the delay")
            time.sleep(1)
            back = d.run(world, "rollback", "--reason", "v2 breaks checkout", "--scale-down-delay", "2s",
                         extra_env=ops, timeout=120)
            out, err = deploy.communicate(timeout=60)
        finally:
            if deploy.poll() is None:
                deploy.kill()
                deploy.communicate()
        load.wait_for_requests(load.summary()["total"] + 20)

    # The rollback: no waiting for the lock, the Service switched back after a handful of requests.
    rolled = ok(back)
    assert rolled["outcome"] == "rolled-back" and rolled["colour"] == "blue", rolled
    mine = world.requests.all()
    mine = [r for r in mine if r.user == OPS_USER]
    switch = next(r for r in _switches(world, "blue") if r.user == OPS_USER)
    before = [r for r in mine if r.seq < switch.seq]
    assert not [r.describe() for r in before if r.verb == "watch"], "the rollback waited before switching"
    assert not [r.describe() for r in before if r.resource == "deployments" and r.write]
    assert len(before) <= 15, [r.describe() for r in before]
    # The time this takes (0.24-0.60 s of API time measured) is reported by benchmarks/rollback.py; a
    # test asserts no wall-clock figure on these noisy machines, only that nothing waits before the switch.
    assert rolled["preempted"] == DEPLOYER, rolled

    # The deploy: ended as rolled back by that rollback, with its reason, without scaling anything.
    assert deploy.returncode == 5, out + err
    result = json.loads(out.strip().splitlines()[-1])
    assert json.loads(result_file.read_text()) == result
    assert result["outcome"] == "rolled-back", result
    assert (result["rolled_back_by"], result["rollback_reason"]) == (OPERATOR, "rollback: v2 breaks checkout")
    assert f"rolled back by {OPERATOR}" in result["message"] and "v2 breaks checkout" in result["message"]
    green_switch = _switches(world, "green")[0]
    assert _writes_to(world, f"{d.SERVICE}-blue", green_switch.seq) == []
    assert d.selected_colour(world) == "blue" and d.replicas(world, "blue") == 2
    assert d.replicas(world, "green") == 0  # retired by the rollback, after its own delay
    _assert_never_two_holders(world)
    summary = load.summary()
    assert summary["failed"] == 0, summary


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_rollback_does_not_pre_empt_a_deploy_before_its_delay(world, tmp_path) -> None:
    ok(d.deploy(world, "v1"))
    ops = _ops_env(world, tmp_path)
    world.pause("replicaset")  # holds the deploy in its wait for green, whatever the machine's speed
    deploy = d.start(world, "deploy", "--image", d.image("v2"), "--scale-down-delay", "1s")
    try:
        world.wait_for(lambda w: d.deployment(w, "green") is not None and d.replicas(w, "green") == 2, timeout=60,
                       what="the deploy starting green")
        assert d.selected_colour(world) == "blue" and not _in_delay(world)
        held = d.run(world, "rollback", "--lock-timeout", "1s", extra_env=ops)
        assert d.selected_colour(world) == "blue"
        world.resume("replicaset")
        out, err = deploy.communicate(timeout=120)
    finally:
        world.resume("replicaset")
        if deploy.poll() is None:
            deploy.kill()
            deploy.communicate()
    assert held.returncode == 3, held.stdout + held.stderr
    assert held.result["outcome"] == "lock-held" and DEPLOYER in held.result["message"], held.result
    assert [r.describe() for r in world.requests.writes() if r.user == OPS_USER and r.committed
            and "dryRun" not in r.query] == []
    assert deploy.returncode == 0, out + err
    assert json.loads(out.strip().splitlines()[-1])["outcome"] == "deployed"
    assert d.selected_colour(world) == "green" and d.replicas(world, "blue") == 0


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_rollback_waiting_since_before_the_switch_does_not_pre_empt_nor_act_on_a_stale_target(world, tmp_path) -> None:
    """Asked while blue was live, the rollback means "back to green" (the colour before blue): the
    deploy's delay keeps blue, which is not that, so it waits; once it has the lock, what it was asked
    for no longer holds (green is live), so it changes nothing and says so."""
    ok(d.deploy(world, "v1"))
    ok(d.deploy(world, "v2"))
    ok(d.deploy(world, "v3"))  # blue v3 live, green v2 scaled to zero
    ops = _ops_env(world, tmp_path)
    world.pause("replicaset")
    deploy = d.start(world, "deploy", "--image", d.image("v4"), "--scale-down-delay", "4s")
    try:
        world.wait_for(lambda w: d.running_image(w, "green") == d.image("v4"), timeout=60, what="the deploy updating green")
        waiting = d.start(world, "rollback", "--lock-timeout", "60s", extra_env=ops)
        world.wait_for(lambda w: any(r.user == OPS_USER and r.verb == "watch" and r.resource == "leases"
                                     for r in w.requests.all()), timeout=60, what="the rollback waiting for the lock")
        world.resume("replicaset")
        out, err = deploy.communicate(timeout=120)
        back_out, back_err = waiting.communicate(timeout=120)
    finally:
        world.resume("replicaset")
        for proc in (deploy, locals().get("waiting")):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert deploy.returncode == 0, out + err
    assert json.loads(out.strip().splitlines()[-1])["outcome"] == "deployed"
    assert waiting.returncode == 1, back_out + back_err
    refused = json.loads(back_out.strip().splitlines()[-1])
    assert "was switched from blue to green while this rollback waited for the deploy lock" in refused["message"]
    assert "preempted" not in refused
    assert [r.describe() for r in world.requests.writes() if r.user == OPS_USER and r.committed
            and r.resource != "leases" and "dryRun" not in r.query] == []
    assert d.selected_colour(world) == "green" and d.replicas(world, "blue") == 0


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_pre_empted_deploy_never_scales_down_the_colour_the_rollback_made_live(world, tmp_path) -> None:
    """The deploy cannot see the Lease change (its watch of the Lease is refused, so it looks again
    only a third of the TTL later, past its delay): it finds out only when it tries to leave the delay, through a checked update that the rollback's takeover
    has made fail, and must then stop without touching blue."""
    ok(d.deploy(world, "v1"))
    ops = _ops_env(world, tmp_path)
    world.faults.add(Fault(verb="watch", resource="leases", status=403))
    deploy = d.start(world, "deploy", "--image", d.image("v2"), "--scale-down-delay", "6s")
    try:
        world.wait_for(lambda w: d.selected_colour(w) == "green", timeout=90, what="the deploy's switch")
        switched = time.monotonic()
        world.wait_for(lambda w: _in_delay(w) or time.monotonic() > switched + 3, timeout=10, what="the delay")
        time.sleep(1)
        back = d.run(world, "rollback", "--scale-down-delay", "12s", extra_env=ops, timeout=120)
        out, err = deploy.communicate(timeout=60)
    finally:
        if deploy.poll() is None:
            deploy.kill()
            deploy.communicate()
    ok(back)
    assert deploy.returncode == 5, out + err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["outcome"] == "rolled-back" and result["rolled_back_by"] == OPERATOR, result
    green_switch = _switches(world, "green")[0]
    assert _writes_to(world, f"{d.SERVICE}-blue", green_switch.seq) == []
    assert d.selected_colour(world) == "blue" and d.replicas(world, "blue") == 2
    _assert_never_two_holders(world)


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_conflicts_on_the_lease_while_it_is_still_ours_do_not_count_as_losing_it(world) -> None:
    """_rewrite (mark_preemptible, end_preemptible) retries a resourceVersion conflict five times; when
    they all conflict, the Lease is read once more and its holderIdentity decides: still ours is an
    error that leaves the lock held (not a takeover, so the deploy neither calls itself pre-empted nor
    retires anything: the caller's "API failure" path); another holder or none stays LockLost (the
    pre-emption tests above)."""
    import kubernetes

    from enadu_pipelines.helper.errors import HelperError
    from enadu_pipelines.helper.kube.client import Kube
    from enadu_pipelines.helper.kube.lock import LockLost, holding

    api = kubernetes.config.new_client_from_config(config_file=world.kubeconfig)
    kube = Kube(api, d.NAMESPACE, log=print)
    with holding(kube, d.SERVICE, identity="jenkins-enadu-backend-9", ttl=30, timeout=5, log=print) as lock:
        # 409 before handling: nothing written, the Lease stays ours (5 tries of _rewrite, no retry in between)
        world.faults.add(Fault(verb="update", resource="leases", status=409, times=5))
        with pytest.raises(HelperError) as caught:
            lock.end_preemptible()
        assert not isinstance(caught.value, LockLost), caught.value
        assert "still ours" in str(caught.value)
        assert not lock.lost.is_set() and lock.held()
        assert world.get("leases", lock.name, d.NAMESPACE)["spec"]["holderIdentity"] == "jenkins-enadu-backend-9"
        assert lock.end_preemptible() is None  # the conflicts are over: the update lands
