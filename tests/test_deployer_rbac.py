"""The rendered deployer Role (issue 13, finding 12): least privilege, and enough.

The Kubernetes test world enforces RBAC for a ServiceAccount token as the API server's RBAC
authorizer does (tests/support/kubeworld/rbac.py cites the sources). The real helper runs with
that token and exactly the rights of `resources/enadu/k8s/backend.rbac.yaml`, applied with the real
kubectl: every command works, each rule is needed by some request, and objects of other names are
forbidden.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from enadu_pipelines.helper.kube import manifest as manifests
from enadu_pipelines.helper.kube.lock import LeaseLock
from tests.support import deployrun as d
from tests.support.deployrun import ok
from tests.support.kubeworld import rbac

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 5}
RBAC_MANIFEST = d.REPO / "resources" / "enadu" / "k8s" / "backend.rbac.yaml"
SA_USER = f"system:serviceaccount:{d.NAMESPACE}:enadu-deployer"


def rendered() -> dict:
    """The first document of each kind: the deployer's Role and RoleBinding (the migration's pair,
    rendered after them, is tested in tests/test_deploy_migration.py)."""
    docs: dict = {}
    for doc in yaml.safe_load_all(RBAC_MANIFEST.read_text()):
        docs.setdefault(doc["kind"], doc)
    return docs


@pytest.fixture
def world(kubeworld, tmp_path: Path):
    """The namespace, the rendered RBAC objects applied by a cluster admin with kubectl, and a
    kubeconfig of the deployer ServiceAccount (kubeworld.deployer_kubeconfig)."""
    d.prepare(kubeworld)
    applied = kubeworld.kubectl("apply", "--server-side=false", "-f", str(RBAC_MANIFEST))
    assert applied.returncode == 0, applied.stderr
    assert "role.rbac.authorization.k8s.io/enadu-deployer-backend created" in applied.stdout
    token = kubeworld.service_account_token("enadu-deployer", d.NAMESPACE)
    kubeworld.deployer_kubeconfig = kubeworld.write_kubeconfig(str(tmp_path / "deployer"), token=token,
                                                               namespace=d.NAMESPACE)
    yield kubeworld
    kubeworld.invariants.assert_ok()


def as_deployer(world, *args: str, **kw) -> d.Run:
    return d.run(world, *args, extra_env={"KUBECONFIG": world.deployer_kubeconfig, **kw.pop("extra_env", {})}, **kw)


def deployer_requests(world) -> list:
    return [r for r in world.requests.all() if r.user == SA_USER]


def hpa(target: str) -> dict:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "backend", "namespace": d.NAMESPACE},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": 2, "maxReplicas": 4,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}}


def test_the_role_names_exactly_the_objects_the_helper_uses() -> None:
    docs = rendered()
    named = {(tuple(r["resources"]), tuple(r["verbs"])): r.get("resourceNames") for r in docs["Role"]["rules"]}
    # the names come from where the helper takes them: the rendered manifest and the lock
    manifest = manifests.load(str(d.MANIFEST), d.SERVICE)
    colours = [manifest.deployment_name(c) for c in manifests.COLOURS]
    assert named[(("deployments",), ("get", "list", "watch", "update", "delete"))] == colours
    assert named[(("deployments/scale",), ("patch",))] == colours
    assert named[(("services",), ("get", "patch"))] == [d.SERVICE, manifest.preview_name()]
    assert named[(("services/proxy",), ("get",))] == [f"{manifest.preview_name()}:{manifest.port_name}"]
    assert named[(("endpoints",), ("list", "watch"))] == [manifest.preview_name()]
    kube = type("Kube", (), {"api_client": None, "namespace": d.NAMESPACE})()
    lock = LeaseLock(kube, d.SERVICE, identity="x", ttl=60, log=print)
    assert named[(("leases",), ("get", "watch", "update", "delete"))] == [lock.name] == ["enadu-deploy-backend"]
    # only create, pods, EndpointSlices and autoscalers are unnamed: the residual rights the README lists
    unnamed = sorted((r["resources"][0], v) for r in docs["Role"]["rules"] if not r.get("resourceNames")
                     for v in r["verbs"])
    assert unnamed == [("deployments", "create"), ("endpointslices", "list"), ("endpointslices", "watch"),
                       ("horizontalpodautoscalers", "list"), ("horizontalpodautoscalers", "patch"),
                       ("leases", "create"), ("pods", "list"), ("pods", "watch"), ("services", "create")]
    binding = docs["RoleBinding"]
    assert binding["roleRef"]["name"] == docs["Role"]["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "enadu-deployer", "namespace": d.NAMESPACE}]


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_every_command_works_with_exactly_the_rendered_rights_and_each_rule_is_needed(world) -> None:
    first = ok(as_deployer(world, "deploy", "--image", d.image("v1")))  # creates blue and both Services
    assert (first["outcome"], first["colour"]) == ("deployed", "blue")
    world.create(hpa("backend-blue"))
    second = ok(as_deployer(world, "deploy", "--image", d.image("v2")))  # smoke test, switch, HPA follows
    assert (second["outcome"], second["colour"], second["previous_colour"]) == ("deployed", "green", "blue")
    assert world.get("horizontalpodautoscalers", "backend", d.NAMESPACE)["spec"]["scaleTargetRef"]["name"] == \
        "backend-green"
    status = ok(as_deployer(world, "status"))
    assert status["live"] == "green"
    back = ok(as_deployer(world, "rollback"))  # scales blue up again, switches back
    assert (back["outcome"], back["colour"]) == ("rolled-back", "blue")
    third = ok(as_deployer(world, "deploy", "--image", d.image("v3"), "--keep-old"))
    assert third["colour"] == "green"
    aborted = ok(as_deployer(world, "abort"))  # deletes the idle colour (blue)
    assert aborted["removed"] == ["blue"]
    again = ok(as_deployer(world, "rollback", "--manifest", str(d.MANIFEST)))  # re-creates a deleted colour
    assert again["outcome"] == "rolled-back" and d.selected_colour(world) == "blue"

    requests = deployer_requests(world)
    assert requests and all(r.answered != 403 for r in requests), [
        (r.verb, r.resource, r.subresource, r.name) for r in requests if r.answered == 403]
    # Each rule is needed: some request of the run is allowed by it and by no other rule, so the
    # authorizer (RuleAllows, as rbac.go) would have refused that request without it.
    rules = world.get("roles", "enadu-deployer-backend", d.NAMESPACE)["rules"]
    user = rbac.service_account_user(d.NAMESPACE, "enadu-deployer")
    needed = set()
    for r in requests:
        attrs = rbac.attributes(user, verb=r.verb, namespace=r.namespace, api_group=r.api_group, resource=r.resource,
                                subresource=r.subresource, name=r.name,
                                field_selector=_query(r.query).get("fieldSelector"))
        if not attrs.resource:
            continue
        allowing = [i for i, rule in enumerate(rules) if rbac.rule_allows(attrs, rule)]
        assert allowing, (r.verb, r.resource, r.name)
        if len(allowing) == 1:
            needed.add(allowing[0])
    assert needed == set(range(len(rules))), [rules[i] for i in range(len(rules)) if i not in needed]


def _query(query: str) -> dict:
    from urllib.parse import parse_qs

    return {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_objects_of_other_names_are_forbidden_and_the_admin_keeps_every_right(world) -> None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    ok(d.deploy(world, "v1"))  # as the admin
    world.create({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "other", "namespace": d.NAMESPACE},
                  "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "other"}},
                           "template": {"metadata": {"labels": {"app": "other"}},
                                        "spec": {"containers": [{"name": "c", "image": "example/web:1"}]}}}})
    api = config.new_client_from_config(config_file=world.deployer_kubeconfig)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)

    def refused(fn, *args, **kwargs) -> dict:
        with pytest.raises(ApiException) as e:
            fn(*args, _preload_content=False, **kwargs)
        assert e.value.status == 403
        return json.loads(e.value.body)

    status = refused(apps.read_namespaced_deployment, "other", d.NAMESPACE)
    assert status["reason"] == "Forbidden" and status["details"] == {"name": "other", "group": "apps",
                                                                     "kind": "deployments"}
    assert status["message"] == (f'deployments.apps "other" is forbidden: User "{SA_USER}" cannot get resource '
                                 f'"deployments" in API group "apps" in the namespace "{d.NAMESPACE}"')
    refused(apps.delete_namespaced_deployment, "other", d.NAMESPACE)
    scale = refused(apps.patch_namespaced_deployment_scale, "other", d.NAMESPACE, {"spec": {"replicas": 3}})
    assert 'cannot patch resource "deployments/scale" in API group "apps"' in scale["message"]
    listing = refused(apps.list_namespaced_deployment, d.NAMESPACE)  # no name: the whole namespace
    assert listing["message"].startswith(f'deployments.apps is forbidden: User "{SA_USER}" cannot list')
    refused(apps.list_namespaced_deployment, d.NAMESPACE, field_selector="metadata.name=other")
    refused(core.read_namespaced_service, "kubernetes", d.NAMESPACE)
    refused(core.connect_get_namespaced_service_proxy_with_path, "backend:http", d.NAMESPACE, "x")
    refused(core.read_namespaced_pod, "anything", d.NAMESPACE)  # pods: list and watch only
    refused(client.CoordinationV1Api(api).read_namespaced_lease, "someone-elses-lock", d.NAMESPACE)
    refused(apps.list_namespaced_deployment, "default", field_selector="metadata.name=backend-blue")  # other ns
    # the named ones are allowed, a list narrowed to one of them included
    assert apps.read_namespaced_deployment("backend-blue", d.NAMESPACE).metadata.name == "backend-blue"
    names = [i.metadata.name for i in apps.list_namespaced_deployment(
        d.NAMESPACE, field_selector="metadata.name=backend-blue").items]
    assert names == ["backend-blue"]
    # the admin token is unaffected
    admin = client.AppsV1Api(config.new_client_from_config(config_file=world.kubeconfig))
    assert {i.metadata.name for i in admin.list_namespaced_deployment(d.NAMESPACE).items} == {"backend-blue", "other"}


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_removing_a_rule_breaks_the_operation_that_needs_it(world) -> None:
    role = world.get("roles", "enadu-deployer-backend", d.NAMESPACE)

    def without(resource: str, named: bool) -> None:
        rules = [r for r in role["rules"] if not (r["resources"] == [resource] and bool(r.get("resourceNames")) == named)]
        assert len(rules) == len(role["rules"]) - 1
        world.delete("roles", "enadu-deployer-backend", d.NAMESPACE)
        world.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "rules": rules,
                      "metadata": {"name": "enadu-deployer-backend", "namespace": d.NAMESPACE}})

    ok(d.deploy(world, "v1"))  # as the admin
    without("leases", named=True)  # the lock: nothing happens at all
    locked_out = as_deployer(world, "deploy", "--image", d.image("v2"))
    assert locked_out.returncode == 4, locked_out.stdout + locked_out.stderr
    assert "get lease enadu-deploy-backend" in locked_out.result["message"], locked_out.result
    assert "403" in locked_out.result["message"] or "forbidden" in locked_out.result["message"].lower()
    assert d.deployment(world, "green") is None

    without("services/proxy", named=True)  # the smoke test: refused, and the live colour untouched
    failed = as_deployer(world, "deploy", "--image", d.image("v2"))
    assert failed.returncode == 4 and d.selected_colour(world) == "blue", failed.stdout + failed.stderr
    assert f'services "backend-preview:http" is forbidden: User "{SA_USER}" cannot get resource "services/proxy"' \
        in failed.result["message"]


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_kubectl_auth_can_i_answers_from_the_rendered_role(world) -> None:
    def can_i(*args: str, kubeconfig: str = "") -> str:
        done = world.kubectl("auth", "can-i", *args, "-n", d.NAMESPACE, kubeconfig=kubeconfig or world.deployer_kubeconfig)
        assert done.returncode in (0, 1), done.stderr  # 0: yes, 1: no
        return done.stdout.strip()

    assert can_i("update", "deployments/backend-green") == "yes"
    assert can_i("update", "deployments/other") == "no"
    assert can_i("patch", "deployments/backend-blue", "--subresource=scale") == "yes"
    assert can_i("patch", "deployments/backend-blue") == "no"  # the scale subresource only
    assert can_i("create", "deployments") == "yes"  # the residual right
    assert can_i("delete", "services/backend") == "no"
    assert can_i("get", "services/backend-preview:http", "--subresource=proxy") == "yes"
    assert can_i("list", "pods") == "yes" and can_i("get", "pods/anything") == "no"
    assert can_i("list", "secrets") == "no"
    assert can_i("list", "secrets", kubeconfig=world.kubeconfig) == "yes"  # the admin
