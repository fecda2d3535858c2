"""Crash consistency of the deploy helper (issue 5, test 4).

The writes a deploy makes are enumerated from the emulator's request log of a reference run. Then,
for each write N in turn, a fresh world runs the same deploy and SIGKILLs the helper right after
its N-th write is committed (the request log's write hook runs before the answer is sent, so the
helper never learns the write succeeded), and runs the deploy again. Every re-run must converge to
the same end state, and the invariant "the Service selects a fully available colour" is checked by
the emulator after every change, during the crash and the recovery alike.
"""

from __future__ import annotations

import os
import signal

from tests.support import deployrun as d
from tests.support.kubeworld.world import KubeWorld

WORLD = {"time_scale": 0.1, "propagation_lag": 0.2, "seed": 3}


def writes_of(world, start: int) -> list:
    return [(w.method, w.resource, w.subresource, w.name) for w in d.helper_writes(world)[start:]]


def reference(tmp_path, setup: list, tag: str) -> list:
    (tmp_path / "reference").mkdir()
    with KubeWorld(workdir=str(tmp_path / "reference"), **WORLD) as world:
        d.prepare(world)
        for earlier in setup:
            assert d.deploy(world, earlier).returncode == 0
        start = len(d.helper_writes(world))
        run = d.deploy(world, tag)
        assert run.returncode == 0, run.stderr
        world.invariants.assert_ok()
        return writes_of(world, start)


def crash_and_recover(tmp_path, setup: list, tag: str, kill_after: int) -> tuple:
    (tmp_path / f"crash-{kill_after}").mkdir()
    with KubeWorld(workdir=str(tmp_path / f"crash-{kill_after}"), **WORLD) as world:
        d.prepare(world)
        for earlier in setup:
            assert d.deploy(world, earlier).returncode == 0
        start = len(d.helper_writes(world))
        victim = {}
        seen = [0]

        def hook(info) -> None:
            if info.user_agent != d.USER_AGENT or "proc" not in victim:
                return
            seen[0] += 1
            if seen[0] == kill_after:
                os.kill(victim["proc"].pid, signal.SIGKILL)

        remove = world.requests.on_write(hook)
        try:
            victim["proc"] = d.start(world, "deploy", "--image", d.image(tag))
            victim["proc"].communicate(timeout=120)
        finally:
            remove()
        assert victim["proc"].returncode == -signal.SIGKILL, "the helper finished before its write was reached"
        crashed = writes_of(world, start)
        rerun = d.deploy(world, tag)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        world.invariants.assert_ok()
        colour = d.selected_colour(world)
        other = "green" if colour == "blue" else "blue"
        state = (colour, d.running_image(world, colour), d.replicas(world, colour), d.replicas(world, other),
                 world.get("leases", "enadu-deploy-backend", d.NAMESPACE) is None)
        return crashed, rerun.result["outcome"], state


def test_a_switch_survives_a_crash_after_every_write(tmp_path) -> None:
    writes = reference(tmp_path, ["v1"], "v2")
    # lease, idle deployment, preview service, the switch, the old colour's scale-down, lease release
    assert [(m, r, s) for m, r, s, _ in writes] == [
        ("POST", "leases", ""), ("POST", "deployments", ""), ("PATCH", "services", ""),
        ("PATCH", "services", ""), ("PATCH", "deployments", "scale"), ("DELETE", "leases", "")]
    for n in range(1, len(writes) + 1):
        crashed, outcome, state = crash_and_recover(tmp_path, ["v1"], "v2", n)
        assert crashed == writes[:n], f"crash after write {n}"
        assert state == ("green", d.image("v2"), 2, 0, True), f"crash after write {n}: {state}"
        assert outcome == ("deployed" if n < 4 else "unchanged"), f"crash after write {n}: {outcome}"


def test_a_first_deploy_survives_a_crash_after_every_write(tmp_path) -> None:
    writes = reference(tmp_path, [], "v1")
    assert [(m, r) for m, r, _, _ in writes] == [
        ("POST", "leases"), ("POST", "deployments"), ("POST", "services"), ("POST", "services"), ("DELETE", "leases")]
    for n in range(1, len(writes) + 1):
        crashed, outcome, state = crash_and_recover(tmp_path, [], "v1", n)
        assert crashed == writes[:n], f"crash after write {n}"
        assert state == ("blue", d.image("v1"), 2, None, True), f"crash after write {n}: {state}"
