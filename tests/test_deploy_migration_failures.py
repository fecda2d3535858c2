"""Review findings M2, M3, M4 on the migration from the hand-made era (tests/test_deploy_migration.py
has the fixtures and the happy paths):

- M2: a failed or interrupted migration must not leave production pinned to a label nothing keeps up:
  the old pods stay labelled until the Service's colourless selector is back, a SIGTERM still
  un-pins within its grace when it can, and when it cannot the message says the Service is pinned
  and what completes or undoes the migration;
- M3: pods already labelled blue/green behind the colourless Service are refused, not ignored;
- M4: the migration is opted into per service in enadu.yaml (``migrate_from_handmade``), and a
  hand-made Deployment named otherwise is refused before anything is written.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.support import deployrun as d
from tests.support.kubeworld.invariants import deployment_fully_available
from tests.test_deploy_migration import FAST, INVARIANT, handmade_objects, selected_pods_belong_to_available_deployments
from tests.test_deploy_migration import world  # noqa: F401  (the fixture: the hand-made era, serving)

MIGRATE_FROM = "enadu.io/migrate-from"


def manifest_copy(tmp_path: Path, *, grace: int = 30, migrate_from: object = "backend") -> str:
    """The shipped backend manifest with the idle pods' grace period and the opt-in changed."""
    docs = list(yaml.safe_load_all(d.MANIFEST.read_text(encoding="utf-8")))
    for doc in docs:
        if doc and doc.get("kind") == "Deployment":
            doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = grace
            annotations = doc["metadata"].setdefault("annotations", {})
            annotations.pop(MIGRATE_FROM, None)
            if migrate_from is not None:
                annotations[MIGRATE_FROM] = migrate_from
    path = tmp_path / "backend.yaml"
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    return str(path)


def selector(world) -> dict:
    return world.get("services", d.SERVICE, d.NAMESPACE)["spec"]["selector"]


def legacy_pods(world) -> list:
    return sorted(p["metadata"]["name"] for p in world.list("pods", d.NAMESPACE)
                  if (p["metadata"].get("labels") or {}).get("color") == "legacy"
                  and not p["metadata"].get("deletionTimestamp"))


# -- M2 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_old_pods_stay_labelled_until_the_unpin_has_landed(world, tmp_path) -> None:
    """A failing smoke test; blue's pods ignore SIGTERM for their grace period (20 s of world time),
    so the un-pin waits. An old pod replaced meanwhile must still be labelled: were the un-pin to fail
    now, the pinned Service would otherwise lose that capacity for good."""
    manifest = manifest_copy(tmp_path, grace=200)
    world.invariants.remove(INVARIANT)
    world.invariants.add(INVARIANT + " (but backend, whose pod the test kills)",
                         lambda view: selected_pods_belong_to_available_deployments(view, tolerate=("backend",)))
    seen = {}

    def kill_while_unpinning() -> None:
        world.wait_for(lambda w: d.replicas(w, "blue") == 0 and selector(w).get("color") == "legacy",
                       timeout=120, what="blue scaled to 0 while the Service is pinned")
        before = {p["metadata"]["name"] for p in world.list("pods", d.NAMESPACE)}
        world.delete("pods", legacy_pods(world)[0], d.NAMESPACE)

        def newcomer(w):
            return [p["metadata"]["name"] for p in w.list("pods", d.NAMESPACE)
                    if p["metadata"]["name"] not in before and not (p["metadata"].get("labels") or {}).get("color")
                    in ("blue", "green")]

        world.wait_for(newcomer, timeout=30, what="the old ReplicaSet's replacement pod")
        seen["pod"] = newcomer(world)[0]
        seen["pinned_then"] = selector(world).get("color") == "legacy"

    killer = threading.Thread(target=kill_while_unpinning, daemon=True)
    killer.start()
    run = d.deploy(world, "v2-errors-ignoresigterm", extra_env={"ENADU_MANIFEST": manifest})
    killer.join(timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert seen.get("pinned_then"), "the replacement came after the un-pin: the test proves nothing"
    pod = world.get("pods", seen["pod"], d.NAMESPACE)
    assert pod is not None and pod["metadata"]["labels"].get("color") == "legacy", pod and pod["metadata"]
    assert selector(world) == {"app": "backend"}
    assert "selects app=backend again" in run.result["message"], run.result


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_sigterm_during_a_migration_unpins_within_the_grace(world, tmp_path) -> None:
    result_file = tmp_path / "deploy.json"
    proc = d.start(world, "deploy", "--image", d.image("v2-neverready"), "--timeout", "120s",
                   "--interrupt-grace", "10s", "--result-file", str(result_file))
    world.wait_for(lambda w: selector(w).get("color") == "legacy" and any(
        (p["metadata"].get("labels") or {}).get("color") == "blue" for p in w.list("pods", d.NAMESPACE)),
        timeout=60, what="the Service pinned and blue's pods started")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, out + err
    result = d.Run(proc.returncode, out, err).result
    assert selector(world) == {"app": "backend"}, (selector(world), err)
    assert "selects app=backend again" in result["message"], result
    assert d.replicas(world, "blue") == 0
    assert world.get("leases", "enadu-deploy-backend", d.NAMESPACE) is None


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_sigterm_that_cannot_unpin_says_the_service_is_pinned_and_what_to_run(world, tmp_path) -> None:
    """Blue's pods ignore SIGTERM for 20 s of world time: the 2 s grace cannot see them go, so the
    Service stays pinned, and the one-line message says so and names deploy and abort."""
    manifest = manifest_copy(tmp_path, grace=200)
    result_file = tmp_path / "deploy.json"
    proc = d.start(world, "deploy", "--image", d.image("v2-neverready-ignoresigterm"), "--timeout", "120s",
                   "--interrupt-grace", "2s", "--result-file", str(result_file),
                   extra_env={"ENADU_MANIFEST": manifest})
    world.wait_for(lambda w: selector(w).get("color") == "legacy" and any(
        (p["metadata"].get("labels") or {}).get("color") == "blue" for p in w.list("pods", d.NAMESPACE)),
        timeout=60, what="the Service pinned and blue's pods started")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, out + err
    message = d.Run(proc.returncode, out, err).result["message"]
    assert selector(world) == {"app": "backend", "color": "legacy"}
    assert "\n" not in message
    assert "service backend stays pinned to the pods of the hand-made deployment backend" in message, message
    assert "run deploy again to finish the migration, or abort to undo it" in message, message


# -- M3 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_coloured_pods_behind_the_colourless_service_are_refused(world) -> None:
    world.invariants.remove(INVARIANT)  # the test's own coloured Deployment starts behind the Service
    green = handmade_objects(replicas=1)[0]
    green["metadata"]["name"] = "backend-green"
    for labels in (green["spec"]["selector"]["matchLabels"], green["spec"]["template"]["metadata"]["labels"]):
        labels["color"] = "green"
    world.create(green)
    world.wait_for(lambda w: deployment_fully_available(w.get("deployments", "backend-green", d.NAMESPACE)) is None,
                   timeout=30, what="backend-green available")
    run = d.deploy(world, "v2")
    assert run.returncode == 1, run.stdout + run.stderr
    message = run.result["message"]
    assert "color=green" in message and "backend-green" in message and "kubectl" in message, message
    assert "nothing changed" in message
    assert [w for w in d.helper_writes(world) if w.resource != "leases"] == []
    assert selector(world) == {"app": "backend"}


# -- M4 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_hand_made_deployment_named_otherwise_is_refused_before_any_write(kubeworld) -> None:
    kubeworld.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": d.NAMESPACE}})
    deployment, service = handmade_objects()
    deployment["metadata"]["name"] = "backend-web"
    kubeworld.create(deployment, service)
    kubeworld.wait_for(lambda w: deployment_fully_available(w.get("deployments", "backend-web", d.NAMESPACE)) is None,
                       timeout=30, what="the hand-made deployment available")
    run = d.deploy(kubeworld, "v2")
    assert run.returncode == 1, run.stdout + run.stderr
    message = run.result["message"]
    assert "\n" not in message
    assert "deployment backend-web" in message and "migrate_from_handmade: backend" in message, message
    assert "nothing changed" in message, message
    assert [w for w in d.helper_writes(kubeworld) if w.resource != "leases"] == []


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_service_that_did_not_opt_in_is_refused_with_the_steps(world, tmp_path) -> None:
    run = d.deploy(world, "v2", extra_env={"ENADU_MANIFEST": manifest_copy(tmp_path, migrate_from=None)})
    assert run.returncode == 1, run.stdout + run.stderr
    message = run.result["message"]
    assert "services.backend.migrate_from_handmade: backend" in message and "enadu.yaml" in message, message
    assert "nothing changed" in message, message
    assert [w for w in d.helper_writes(world) if w.resource != "leases"] == []


def test_the_migration_role_is_rendered_only_for_a_service_that_opts_in_and_names_its_deployment(tmp_path, runner) \
        -> None:
    """The shipped enadu.yaml opts in the backend only (the one the old script is known to have run,
    issue 14): its migration Role names the configured Deployment, and the manifest tells the helper
    which one; the other services get no migration rights at all."""
    from conftest import seed_bundle

    from enadu_pipelines.cli import main

    def rendered(config: Path, out: Path) -> dict:
        seed_bundle(out)
        result = runner.invoke(main, ["render", "--config", str(config), "--out", str(out)])
        assert result.exit_code == 0, result.output
        return {name: list(yaml.safe_load_all((out / f"resources/enadu/k8s/{name}").read_text()))
                for name in ("backend.rbac.yaml", "frontend.rbac.yaml", "batch.rbac.yaml", "backend.yaml",
                             "frontend.yaml")}

    def migration_roles(docs: list) -> list:
        return [doc for doc in docs if doc and doc["metadata"]["name"].endswith("-migration")]

    shipped = rendered(d.REPO / "enadu.yaml", tmp_path / "shipped")
    [role, binding] = migration_roles(shipped["backend.rbac.yaml"])
    assert (role["kind"], binding["kind"]) == ("Role", "RoleBinding")
    named = [rule for rule in role["rules"] if rule["resources"] in (["deployments"], ["deployments/scale"])]
    assert [rule["resourceNames"] for rule in named] == [["backend"], ["backend"]]
    assert migration_roles(shipped["frontend.rbac.yaml"]) == [] and migration_roles(shipped["batch.rbac.yaml"]) == []
    assert shipped["backend.yaml"][0]["metadata"]["annotations"] == {MIGRATE_FROM: "backend"}
    assert "annotations" not in shipped["frontend.yaml"][0]["metadata"]

    config = yaml.safe_load((d.REPO / "enadu.yaml").read_text())
    config["services"]["backend"]["migrate_from_handmade"] = "backend-web"
    (tmp_path / "enadu.yaml").write_text(yaml.safe_dump(config))
    other = rendered(tmp_path / "enadu.yaml", tmp_path / "other")
    [role, _] = migration_roles(other["backend.rbac.yaml"])
    named = [rule for rule in role["rules"] if rule["resources"] in (["deployments"], ["deployments/scale"])]
    assert [rule["resourceNames"] for rule in named] == [["backend-web"], ["backend-web"]]
    assert other["backend.yaml"][0]["metadata"]["annotations"] == {MIGRATE_FROM: "backend-web"}

    config["services"]["backend"]["migrate_from_handmade"] = "Backend_Old"
    (tmp_path / "enadu.yaml").write_text(yaml.safe_dump(config))
    refused = runner.invoke(main, ["render", "--config", str(tmp_path / "enadu.yaml"), "--out", str(tmp_path / "x")])
    assert refused.exit_code != 0 and "migrate_from_handmade" in refused.output, refused.output
    assert len(refused.output.strip().splitlines()) == 1, refused.output


def test_a_colour_never_carries_the_migration_annotation() -> None:
    from enadu_pipelines.helper.kube.manifest import load

    manifest = load(str(d.MANIFEST), "backend")
    assert manifest.migrate_from == "backend"
    body = manifest.coloured_deployment("blue", d.image("v2"), 2, "")
    assert MIGRATE_FROM not in body["metadata"]["annotations"]
    assert manifest.deployment["metadata"]["annotations"] == {MIGRATE_FROM: "backend"}  # not mutated
