"""kubeworld refuses what a real API server refuses, in the real server's words.

Expected strings come from the Go sources the validators port (tests/support/kubeworld/validation.py
names them): apimachinery util/validation/validation.go and validate/content, field/errors.go,
api/resource/quantity.go, meta/v1 micro_time.go with Go's time.Parse, pkg/apis/core|apps|coordination
validation, apiserver admission/errors.go and the ResourceQuota plugin's message.
"""

from __future__ import annotations

import json

import kubernetes
import pytest
import yaml

from tests.support.kubeworld import validation as V
from tests.support.kubeworld.fixtures import kubeworld  # noqa: F401  (fixture)

FAST = {"time_scale": 0.1}
LABEL_VALUE_ERR = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                   "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                   "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
SUBDOMAIN_ERR = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                 "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035_ERR = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
               "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
               "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
QUANTITY_ERR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


@pytest.fixture
def api(kubeworld):
    client = kubernetes.config.new_client_from_config(config_file=kubeworld.kubeconfig)
    yield client
    client.close()


def status_of(e: kubernetes.client.ApiException) -> dict:
    return json.loads(e.body)


def deployment(name="web", labels=None, resources=None, image="example/web:1", **spec) -> dict:
    container = {"name": "app", "image": image}
    if resources is not None:
        container["resources"] = resources
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": name}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}, **spec}}


# --- the validators themselves, against the Go functions' outputs ---------------------------

@pytest.mark.parametrize("value, errors", [
    ("web", []),
    ("", []),
    ("a" * 63, []),
    ("a" * 64, ["must be no more than 63 characters"]),
    ("bad value!", [LABEL_VALUE_ERR]),
    ("-web", [LABEL_VALUE_ERR]),
    ("web\n", [LABEL_VALUE_ERR]),  # Go's `$` is end of text: no trailing newline sneaks through
])
def test_is_valid_label_value(value, errors):
    assert V.is_valid_label_value(value) == errors


@pytest.mark.parametrize("key, errors", [
    ("app", []),
    ("app.kubernetes.io/name", []),
    ("/name", ["prefix part must be non-empty"]),
    ("Example.com/name", ["prefix part " + SUBDOMAIN_ERR]),
    ("a/b/c", ["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
               "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
               "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix "
               "and '/' (e.g. 'example.com/MyName')"]),
    ("example.com/", ["name part must be non-empty",
                      "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                      "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                      "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]),
])
def test_is_qualified_name(key, errors):
    assert V.is_qualified_name(key) == errors


def test_dns_names():
    assert V.is_dns1123_subdomain("web.example") == []
    assert V.is_dns1123_subdomain("Web_1") == [SUBDOMAIN_ERR]
    assert V.is_dns1123_label("web.example") == ["must not contain dots"]
    assert V.is_dns1035_label("1web") == [DNS1035_ERR]
    assert V.is_dns1035_label("a" * 64) == ["must be no more than 63 characters"]


@pytest.mark.parametrize("text, canonical", [
    ("100m", "100m"), ("1.5", "1500m"), ("0.5Gi", "512Mi"), ("1536Mi", "1536Mi"), ("2048Mi", "2Gi"),
    ("1e3", "1e3"), (".5", "500m"), ("+2", "2"), ("-1", "-1"), ("0", "0"), (1, "1"), (0.25, "250m"),
    ("1E", "1E"), ("0.1m", "100u"), ("0.0000000001", "1n"),  # rounded up to nano, as ParseQuantity does
])
def test_quantity_parses_to_the_canonical_form(text, canonical):
    assert str(V.parse_quantity(text)) == canonical


@pytest.mark.parametrize("text, error", [
    ("abc", QUANTITY_ERR), ("1x", QUANTITY_ERR), ("", QUANTITY_ERR), ("1 ", QUANTITY_ERR),
    ("1K", "unable to parse quantity's suffix"), ("1e", "unable to parse quantity's suffix"),
    ("1ki", "unable to parse quantity's suffix"),
])
def test_quantity_errors_are_the_parsers(text, error):
    with pytest.raises(V.QuantityError) as e:
        V.parse_quantity(text)
    assert str(e.value) == error


@pytest.mark.parametrize("value, error", [
    ("2024-05-01T10:00:00.123456Z", None),
    ("2024-05-01T10:00:00.123456+02:00", None),
    ("yesterday", 'parsing time "yesterday" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "yesterday" as "2006"'),
    ("2024-05-01T10:00:00Z",
     'parsing time "2024-05-01T10:00:00Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000"'),
    ("2024-05-01 10:00:00.000000Z",
     'parsing time "2024-05-01 10:00:00.000000Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse '
     '" 10:00:00.000000Z" as "T"'),
    ("2024-13-01T10:00:00.000000Z", 'parsing time "2024-13-01T10:00:00.000000Z": month out of range'),
    ("2023-02-29T10:00:00.000000Z", 'parsing time "2023-02-29T10:00:00.000000Z": day out of range'),
])
def test_micro_time_is_parsed_as_go_does(value, error):
    assert V.go_parse_time(V.RFC3339_MICRO, value) == error


# --- 422 Invalid with the real causes -----------------------------------------------------

def test_invalid_label_value_is_422_with_its_cause(kubeworld, api):
    apps = kubernetes.client.AppsV1Api(api)
    with pytest.raises(kubernetes.client.ApiException) as e:
        apps.create_namespaced_deployment("default", deployment(labels={"app": "web", "team": "bad value!"}))
    assert e.value.status == 422
    body = status_of(e.value)
    assert body["reason"] == "Invalid"
    assert body["message"] == f'Deployment.apps "web" is invalid: metadata.labels: Invalid value: "bad value!": {LABEL_VALUE_ERR}'
    assert body["details"] == {"name": "web", "group": "apps", "kind": "Deployment", "causes": [
        {"reason": "FieldValueInvalid", "message": f'Invalid value: "bad value!": {LABEL_VALUE_ERR}',
         "field": "metadata.labels"}]}
    assert kubeworld.get("Deployment", "web") is None


def test_invalid_names_are_422(kubeworld, api):
    core = kubernetes.client.CoreV1Api(api)
    with pytest.raises(kubernetes.client.ApiException) as e:
        core.create_namespaced_service("default", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1web"},
                                                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert e.value.status == 422
    assert status_of(e.value)["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": f'Invalid value: "1web": {DNS1035_ERR}', "field": "metadata.name"}]
    apps = kubernetes.client.AppsV1Api(api)
    with pytest.raises(kubernetes.client.ApiException) as e:
        apps.create_namespaced_deployment("default", deployment(name="Web_1"))
    causes = status_of(e.value)["details"]["causes"]
    assert causes[0] == {"reason": "FieldValueInvalid", "message": f'Invalid value: "Web_1": {SUBDOMAIN_ERR}',
                         "field": "metadata.name"}
    # the label values "Web_1" are valid; only the name is not
    assert [c["field"] for c in causes] == ["metadata.name"]


def test_container_resources_are_validated_at_their_map_key(kubeworld, api):
    apps = kubernetes.client.AppsV1Api(api)
    with pytest.raises(kubernetes.client.ApiException) as e:
        apps.create_namespaced_deployment("default", deployment(
            resources={"limits": {"cpu": "-500m", "memory": "1Gi"}, "requests": {"memory": "2Gi"}}))
    assert e.value.status == 422
    body = status_of(e.value)
    assert body["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "field": "spec.template.spec.containers[0].resources.limits[cpu]",
         "message": 'Invalid value: "-500m": must be greater than or equal to 0'},
        {"reason": "FieldValueInvalid", "field": "spec.template.spec.containers[0].resources.requests",
         "message": 'Invalid value: "2Gi": must be less than or equal to memory limit of 1Gi'}]
    assert body["message"].startswith('Deployment.apps "web" is invalid: [spec.template.spec.containers[0].resources')


def test_a_malformed_quantity_fails_decoding_400_or_patch_422(kubeworld, api):
    """The Go type cannot hold it, so the handler refuses it before validation: 400 on create and
    update (transformDecodeError), 422 with the cause field `patch` on a strategic merge patch."""
    apps = kubernetes.client.AppsV1Api(api)
    with pytest.raises(kubernetes.client.ApiException) as e:
        apps.create_namespaced_deployment("default", deployment(resources={"limits": {"cpu": "two"}}))
    assert e.value.status == 400
    assert status_of(e.value)["reason"] == "BadRequest"
    assert status_of(e.value)["message"] == f'Deployment in version "v1" cannot be handled as a Deployment: {QUANTITY_ERR}'

    apps.create_namespaced_deployment("default", deployment())
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "1K"}}}]}}}}
    with pytest.raises(kubernetes.client.ApiException) as e:
        apps.patch_namespaced_deployment("web", "default", patch)
    assert e.value.status == 422
    body = status_of(e.value)
    value = "map[spec:map[template:map[spec:map[containers:[map[name:app resources:map[limits:map[memory:1K]]]]]]]]"
    assert body["details"] == {"causes": [{"reason": "FieldValueInvalid", "field": "patch",
                                           "message": f'Invalid value: "{value}": unable to parse quantity\'s suffix'}]}
    assert body["message"] == f' "" is invalid: patch: Invalid value: "{value}": unable to parse quantity\'s suffix'


def lease(renew_time, duration=15) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "deploy-web"},
            "spec": {"holderIdentity": "build-1", "leaseDurationSeconds": duration, "renewTime": renew_time,
                     "acquireTime": "2026-01-01T10:00:00.000000Z"}}


def test_lease_times_must_be_micro_times(kubeworld, api):
    coord = kubernetes.client.CoordinationV1Api(api)
    for bad, elem in (("yesterday", '"yesterday" as "2006"'), ("2026-01-01T10:00:00Z", '"Z" as ".000000"')):
        with pytest.raises(kubernetes.client.ApiException) as e:
            coord.create_namespaced_lease("default", lease(bad))
        assert e.value.status == 400
        assert status_of(e.value)["message"] == (
            f'Lease in version "v1" cannot be handled as a Lease: parsing time "{bad}" as '
            f'"2006-01-02T15:04:05.000000Z07:00": cannot parse {elem}')
    with pytest.raises(kubernetes.client.ApiException) as e:
        coord.create_namespaced_lease("default", lease("2026-01-01T10:00:00.000000Z", duration=0))
    assert e.value.status == 422
    assert status_of(e.value)["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "field": "spec.leaseDurationSeconds", "message": "Invalid value: 0: must be greater than 0"}]
    created = coord.create_namespaced_lease("default", lease("2026-01-01T10:00:00.123456Z"))
    assert created.spec.holder_identity == "build-1"
    # an update with a bad renewTime (what a broken lock renewal would send) is refused too
    body = kubeworld.get("Lease", "deploy-web")
    body["spec"]["renewTime"] = "yesterday"
    with pytest.raises(kubernetes.client.ApiException) as e:
        coord.replace_namespaced_lease("deploy-web", "default", body)
    assert e.value.status == 400 and "cannot parse \"yesterday\" as \"2006\"" in status_of(e.value)["message"]
    # The official client's own round trip of that Lease is refused as a real server refuses it: it
    # serialises a datetime with zero microseconds by isoformat(), without the six fraction digits
    # MicroTime requires.
    round_trip = api.sanitize_for_serialization(created)
    assert round_trip["spec"]["acquireTime"] == "2026-01-01T10:00:00+00:00"
    with pytest.raises(kubernetes.client.ApiException) as e:
        coord.replace_namespaced_lease("deploy-web", "default", round_trip)
    assert e.value.status == 400 and 'cannot parse "+00:00" as ".000000"' in status_of(e.value)["message"]


def test_direct_create_is_validated_too(kubeworld):
    from tests.support.kubeworld.errors import ApiError

    with pytest.raises(ApiError) as e:
        kubeworld.create(deployment(labels={"app": "x" * 64}))
    assert e.value.code == 422 and e.value.details["causes"][0]["message"] == (
        f'Invalid value: "{"x" * 64}": must be no more than 63 characters')


def test_deployment_strategy_and_template_rules(kubeworld, api):
    apps = kubernetes.client.AppsV1Api(api)
    body = deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}})
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    body["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"name": "HTTP", "containerPort": 70000}]
    with pytest.raises(kubernetes.client.ApiException) as e:
        apps.create_namespaced_deployment("default", body)
    causes = status_of(e.value)["details"]["causes"]
    assert causes == [
        {"reason": "FieldValueInvalid", "field": "spec.template.spec.containers[0].ports[0].name",
         "message": 'Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)'},
        {"reason": "FieldValueInvalid", "field": "spec.template.spec.containers[0].ports[0].name",
         "message": 'Invalid value: "HTTP": must contain at least one letter (a-z)'},
        {"reason": "FieldValueInvalid", "field": "spec.template.spec.containers[0].ports[0].containerPort",
         "message": "Invalid value: 70000: must be between 1 and 65535, inclusive"},
        {"reason": "FieldValueNotSupported", "field": "spec.template.spec.restartPolicy",
         "message": 'Unsupported value: "Never": supported values: "Always"'},
        {"reason": "FieldValueInvalid", "field": "spec.strategy.rollingUpdate.maxUnavailable",
         "message": 'Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"0%"}: may not be 0 when `maxSurge` is 0'},
    ]


# --- the clients see the real format ------------------------------------------------------

def test_kubectl_reports_the_422_and_the_400_as_against_a_cluster(kubeworld, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deployment(labels={"app": "web", "team": "bad value!"})))
    out = kubeworld.kubectl("apply", "--server-side=false", "-f", str(path))
    assert out.returncode == 1
    # kubectl's StandardErrorMessage for an Invalid Status with one cause
    assert out.stderr.strip() == (
        f'The Deployment "web" is invalid: metadata.labels: Invalid value: "bad value!": {LABEL_VALUE_ERR}')

    path.write_text(yaml.safe_dump(deployment(resources={"limits": {"cpu": "-1", "memory": "-1Gi"}})))
    out = kubeworld.kubectl("create", "-f", str(path))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        'The Deployment "web" is invalid: ',
        '* spec.template.spec.containers[0].resources.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0',
        '* spec.template.spec.containers[0].resources.limits[memory]: Invalid value: "-1Gi": must be greater than or '
        'equal to 0']

    path.write_text(yaml.safe_dump(deployment(resources={"limits": {"cpu": "two"}})))
    out = kubeworld.kubectl("apply", "--server-side=false", "-f", str(path))
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f'Error from server (BadRequest): error when creating "{path}": Deployment in version "v1" cannot be '
        f'handled as a Deployment: {QUANTITY_ERR}')


# --- admission ----------------------------------------------------------------------------

@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_admission_refuses_pods_as_an_exhausted_quota_does(kubeworld, api):
    remove = kubeworld.admission.exceed_quota("compute-resources", used=2, limit=2, times=3)
    apps = kubernetes.client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", deployment())

    def failed_creates(w):
        return [e for e in w.list("Event") if e["reason"] == "FailedCreate"]

    events = kubeworld.wait_for(failed_creates, timeout=10, what="a FailedCreate event")
    assert events[0]["type"] == "Warning" and events[0]["involvedObject"]["kind"] == "ReplicaSet"
    rs_name = events[0]["involvedObject"]["name"]
    message = events[0]["message"]
    assert message.startswith(f'Error creating: pods "{rs_name}-')
    assert message.endswith('" is forbidden: exceeded quota: compute-resources, requested: pods=1, used: pods=2, '
                            'limited: pods=2')
    assert kubeworld.admission.log[0][:3] == ("create", "pods", "default")
    # after three refusals (times=3) the replicaset controller's retries get the pod created
    kubeworld.wait_for(lambda w: len(w.list("Pod")) == 1, timeout=10, what="the pod once admitted")
    remove()

    core = kubernetes.client.CoreV1Api(api)
    kubeworld.admission.reject_pods("pods with this label are not admitted", selector={"tier": "batch"})
    with pytest.raises(kubernetes.client.ApiException) as e:
        core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod",
                                               "metadata": {"name": "job", "labels": {"tier": "batch"}},
                                               "spec": {"containers": [{"name": "a", "image": "example/job:1"}]}})
    assert e.value.status == 403
    assert status_of(e.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": 'pods "job" is forbidden: pods with this label are not admitted',
        "details": {"name": "job", "kind": "pods"}}
    core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-extra"},
                                           "spec": {"containers": [{"name": "a", "image": "example/web:1"}]}})


def test_admission_hook_sees_validated_objects_and_can_refuse_updates(kubeworld, api):
    seen = []

    def hook(attrs):
        seen.append((attrs.verb, attrs.name, attrs.obj["spec"]["replicas"]))
        if attrs.obj["spec"]["replicas"] > 3:
            raise attrs.forbid("replicas above 3 are not allowed here")

    kubeworld.admission.add(hook, verbs=("create", "update"), resource="deployments")
    apps = kubernetes.client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", deployment())
    with pytest.raises(kubernetes.client.ApiException) as e:
        apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 5}})
    assert e.value.status == 403
    assert status_of(e.value)["message"] == 'deployments.apps "web" is forbidden: replicas above 3 are not allowed here'
    assert kubeworld.get("Deployment", "web")["spec"]["replicas"] == 1
    # an invalid object is refused by validation before admission sees it
    with pytest.raises(kubernetes.client.ApiException):
        apps.create_namespaced_deployment("default", deployment(name="bad", labels={"a": "b c"}))
    assert [s[1] for s in seen] == ["web", "web"]
