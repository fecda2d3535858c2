"""Review 2, M4: the clean-up after an interrupted migration retires only the configured hand-made
Deployment, and only the very object the migration pinned (its ``metadata.uid``, recorded in the
switch's history entry), never what the Service's history or a pod label merely names.

The history annotation and pod labels are writable by anyone who may edit the Service or label pods,
a much weaker right than deploying (kube/bluegreen.py, "untrusted input"); the configured
``migrate_from_handmade`` (the manifest's ``enadu.io/migrate-from``) and a uid the API server assigns
(apimachinery pkg/apis/meta/v1 ObjectMeta ``UID``: "unique in time and space", a new one on every
create) are not.
"""

from __future__ import annotations

import json

import pytest

from tests.support import deployrun as d
from tests.support.deployrun import ok, world  # noqa: F401 (world is a fixture)
from tests.support.kubeworld.invariants import deployment_fully_available
from tests.test_deploy_migration import handmade_objects
from tests.test_deploy_migration_failures import manifest_copy
from tests.test_deploy_rerun import FAST, build, handmade, killed_at, old_replicas, patches_live_service  # noqa: F401

HISTORY = "enadu.io/history"


def create_available(world, deployment: dict) -> None:
    world.create(deployment)
    name = deployment["metadata"]["name"]
    world.wait_for(lambda w: deployment_fully_available(w.get("deployments", name, d.NAMESPACE)) is None,
                   timeout=30, what=f"deployment {name} available")


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_forged_history_entry_naming_another_colourless_deployment_is_ignored(world) -> None:
    ok(d.run(world, "deploy", "--image", d.image("v1"), extra_env=build(1)))
    debug = handmade_objects(replicas=1)[0]
    debug["metadata"]["name"] = "backend-debug"
    create_available(world, debug)
    entries = d.history(world)
    entries.insert(0, {"at": "2020-01-01T00:00:00Z", "colour": "blue", "image": d.image("v1"),
                       "reason": "migrated from the hand-made deployment backend-debug; it keeps running for 30 s"})
    forged = world.kubectl("-n", d.NAMESPACE, "annotate", "--overwrite", "service/backend",
                           f"{HISTORY}={json.dumps(entries)}")
    assert forged.returncode == 0, forged.stderr
    result = ok(d.run(world, "deploy", "--image", d.image("v1"), extra_env=build(2)))
    assert result["outcome"] == "unchanged" and "hand-made" not in result["message"], result
    assert old_replicas(world, "backend-debug") == 1, "a Deployment the service never migrated from was retired"


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_lookalike_recreated_under_the_configured_name_is_left_alone(handmade) -> None:
    world = handmade
    killed_at(world, patches_live_service("blue"), "deploy", "--image", d.image("v2"), n=1)
    assert d.selected_colour(world) == "blue" and old_replicas(world) == 2
    first = world.get("deployments", "backend", d.NAMESPACE)["metadata"]["uid"]
    world.delete("deployments", "backend", d.NAMESPACE)
    world.wait_for(lambda w: w.get("deployments", "backend", d.NAMESPACE) is None, timeout=30, what="deleted")
    create_available(world, handmade_objects(replicas=1)[0])  # someone's new Deployment, same name
    assert world.get("deployments", "backend", d.NAMESPACE)["metadata"]["uid"] != first
    run = d.run(world, "deploy", "--image", d.image("v2"), extra_env=build(2))
    result = ok(run)
    assert result["outcome"] == "unchanged" and "hand-made" not in result["message"], result
    assert old_replicas(world) == 1, "a Deployment recreated under the configured name was retired"
    assert "not the one the migration pinned" in run.stderr, run.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_service_without_migrate_from_retires_nothing(handmade, tmp_path) -> None:
    world = handmade
    killed_at(world, patches_live_service("blue"), "deploy", "--image", d.image("v2"), n=1)
    assert d.selected_colour(world) == "blue" and old_replicas(world) == 2
    env = dict(build(2), ENADU_MANIFEST=manifest_copy(tmp_path, migrate_from=None))
    result = ok(d.run(world, "deploy", "--image", d.image("v2"), extra_env=env))
    assert result["outcome"] == "unchanged" and "hand-made" not in result["message"], result
    assert old_replicas(world) == 2, "migration is off for the service, yet its hand-made deployment was retired"
