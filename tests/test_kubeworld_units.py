"""kubeworld's building blocks on their own: selectors, patches, printing, image conventions, the
deployment arithmetic. Expected values come from the Kubernetes sources and docs cited in each module."""

from __future__ import annotations

import pytest

from tests.support.kubeworld import behaviour
from tests.support.kubeworld import depsutil as U
from tests.support.kubeworld.errors import ApiError
from tests.support.kubeworld.patch import apply_patch, merge_patch
from tests.support.kubeworld.selectors import matches_labels, parse_fields, parse_labels
from tests.support.kubeworld.tables import human_duration

SMP = "application/strategic-merge-patch+json"


@pytest.mark.parametrize("selector,labels,expected", [
    ("a=b", {"a": "b"}, True),
    ("a==b", {"a": "c"}, False),
    ("a!=b", {}, True),  # documented: != matches objects without the key
    ("a in (x, y)", {"a": "y"}, True),
    ("a notin (x,y)", {}, True),
    ("a", {"a": ""}, True),
    ("!a", {"a": "1"}, False),
    ("a,b=c", {"a": "1", "b": "c"}, True),
    ("n>3", {"n": "4"}, True),
    ("n<3", {"n": "4"}, False),
    ("", {"anything": "x"}, True),
])
def test_label_selectors(selector, labels, expected):
    assert matches_labels(parse_labels(selector), labels) is expected


@pytest.mark.parametrize("bad", ["a in ()", "n>x", "a b c"])
def test_bad_label_selectors_are_400(bad):
    with pytest.raises(ApiError) as e:
        parse_labels(bad)
    assert e.value.code == 400 and e.value.message.startswith("unable to parse requirement")


def test_field_selectors_only_accept_supported_labels():
    assert parse_fields("involvedObject.name=web,type!=Normal", "core/events") == [
        ("involvedObject.name", "=", "web"), ("type", "!=", "Normal")]
    with pytest.raises(ApiError) as e:
        parse_fields("spec.replicas=1", "apps/deployments")
    assert e.value.message == "field label not supported: spec.replicas"


def _deployment():
    return {"metadata": {"name": "web"}, "spec": {
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {"spec": {
            "containers": [{"name": "app", "image": "a:1", "args": ["x", "y"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}],
            "volumes": [{"name": "v", "emptyDir": {}}]}}}}


def smp(patch):
    import json
    return apply_patch(SMP, _deployment(), json.dumps(patch).encode(), "io.k8s.api.apps.v1.Deployment")


def test_strategic_merge_follows_the_schema_extensions():
    # containers: patchMergeKey name; args: atomic list (replaced)
    out = smp({"spec": {"template": {"spec": {"containers": [{"name": "app", "args": ["z"]}]}}}})
    c = out["spec"]["template"]["spec"]["containers"][0]
    assert (c["image"], c["args"], [e["name"] for e in c["env"]]) == ("a:1", ["z"], ["A", "B"])
    # deployment strategy is retainKeys: switching to Recreate drops rollingUpdate
    out = smp({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    # volumes: merge by name and retainKeys; $patch delete by key; $patch replace of a list
    out = smp({"spec": {"template": {"spec": {"volumes": [{"name": "w", "emptyDir": {}}]}}}})
    assert [v["name"] for v in out["spec"]["template"]["spec"]["volumes"]] == ["v", "w"]
    out = smp({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [
        {"name": "A", "$patch": "delete"}]}]}}}})
    assert [e["name"] for e in out["spec"]["template"]["spec"]["containers"][0]["env"]] == ["B"]
    out = smp({"spec": {"template": {"spec": {"containers": [{"name": "new", "image": "n:1"}, {"$patch": "replace"}]}}}})
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["new"]
    # $setElementOrder and null deletion
    out = smp({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
                                              "containers": [{"name": "side", "image": "s:1"}]}},
                        "strategy": None}})
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["side", "app"]
    assert "strategy" not in out["spec"]
    assert "$setElementOrder/containers" not in out["spec"]["template"]["spec"]


def test_merge_patch_is_rfc7386():
    assert merge_patch({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"b": None, "c": [3]}, "e": 2}) == {
        "a": {"c": [3]}, "d": 1, "e": 2}


def test_unknown_patch_type_is_415():
    with pytest.raises(ApiError) as e:
        apply_patch("text/plain", {}, b"{}", "io.k8s.api.core.v1.Service")
    assert e.value.code == 415 and e.value.reason == "UnsupportedMediaType"


@pytest.mark.parametrize("seconds,text", [(5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
                                          (9 * 3600, "9h"), (50 * 3600, "2d2h"), (20 * 86400, "20d")])
def test_ages_print_like_kubectl(seconds, text):
    assert human_duration(seconds) == text


def test_image_conventions():
    assert behaviour("registry.example/shop/web:2.1-crashloop").crash
    assert behaviour("crashloop/web:1").crash
    assert not behaviour("example/crashloopish:1").crash
    assert behaviour("x/y:nosuchimage").pull_fails and behaviour("x/errimagepull:1").pull_fails
    assert behaviour("x/y:1-configerror").config_error and behaviour("x/y:neverready").never_ready
    assert behaviour("x/y:v2-slow2.5s").start_delay == 2.5 and behaviour("x/y:slow3").start_delay == 3
    assert behaviour("x/y:1-ignoresigterm").ignores_sigterm
    plain = behaviour("example/web:1")
    assert not (plain.crash or plain.pull_fails or plain.config_error or plain.never_ready) and plain.start_delay == 0


def test_rolling_update_fenceposts_and_hash():
    d = {"spec": {"replicas": 10, "strategy": {"type": "RollingUpdate",
                                               "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}}
    assert U.resolve_fenceposts(d) == (3, 2)  # surge rounds up, unavailable rounds down
    d["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 0, "maxUnavailable": 0}
    assert U.resolve_fenceposts(d) == (0, 1)
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "i:1"}]}}
    h = U.compute_hash(template, None)
    assert h == U.compute_hash(template, None) != U.compute_hash(template, 1)
    assert set(h) <= set(U.ALPHANUMS) and 1 <= len(h) <= 10


def test_fault_firing_is_reproducible_per_seed():
    from tests.support.kubeworld.faults import Fault, Faults
    from tests.support.kubeworld.requestlog import RequestInfo

    def pattern(seed):
        faults = Faults(seed)
        faults.add(Fault(verb="patch", resource="services", status=500, probability=0.5))
        faults.add(Fault(verb="get", status=503, probability=1.0, after=2, times=1))
        fired = []
        for i in range(40):
            info = RequestInfo(seq=i, time=0.0, method="PATCH", path="/api/v1/namespaces/default/services/web",
                               query="", verb="patch" if i % 2 else "get", resource="services", name="web")
            fired.append(tuple(rule.status for rule in faults.pick(info, "before")))
        return fired

    first = pattern(7)
    assert first == pattern(7) and first != pattern(8)
    assert sum(1 for f in first if f == (500,)) in range(5, 16)  # about half of the 20 patches
    assert [i for i, f in enumerate(first) if f == (503,)] == [4]  # the third get, once
