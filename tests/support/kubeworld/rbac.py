"""RBAC authorization of namespaced requests by the Roles that RoleBindings grant a user.

Follows kubernetes/kubernetes:
- plugin/pkg/auth/authorizer/rbac/rbac.go, `RuleAllows`: a rule allows a resource request when its
  verb, API group, resource (``resource/subresource`` combined) and resource name all match;
- pkg/apis/rbac/v1/evaluation_helpers.go, `VerbMatches`, `APIGroupMatches` (``*`` matches all),
  `ResourceMatches` (``*``, an exact ``resource/subresource``, or ``*/subresource``),
  `ResourceNameMatches` (an empty ``resourceNames`` matches every name, a non-empty one only a
  request that carries one of those names: so a create, whose request has no name, never matches);
- pkg/registry/rbac/validation/rule.go, `VisitRulesFor` and `appliesToUser`: RoleBindings of the
  request's namespace whose subjects name the user (kind User), one of its groups (Group) or its
  ServiceAccount (``system:serviceaccount:<namespace>:<name>``; a subject without a namespace means
  the binding's), each granting the rules of the Role it references in that namespace;
- staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go, `NewRequestInfo`: a list or
  watch whose fieldSelector requires ``metadata.name=<name>`` (`RequiresExactMatch`) carries that
  name, so resourceNames can allow it (the handler then serves only that object, handlers/get.go);
  the name of a proxy request is the path segment, ``<service>:<port>`` included;
- plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go: every authenticated user may GET the
  discovery paths (system:discovery, system:public-info-viewer) and create SelfSubjectAccessReviews
  (system:basic-user).

Not emulated: ClusterRoles and ClusterRoleBindings, aggregation, escalation checks on writes of
Roles, and the field- and label-selector authorization of KEP-4601.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional

from .selectors import parse_fields

SA_PREFIX = "system:serviceaccount:"
DISCOVERY_PREFIXES = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")


@dataclass
class Attributes:
    """What the authorizer is asked (authorizer.AttributesRecord)."""

    user: str
    groups: List[str]
    verb: str
    namespace: str
    api_group: str
    resource: str
    subresource: str
    name: str
    resource_request: bool = True
    path: str = ""


def service_account_user(namespace: str, name: str) -> dict:
    """The user a ServiceAccount token authenticates as (pkg/serviceaccount/util.go, `UserInfo`)."""
    return {"name": f"{SA_PREFIX}{namespace}:{name}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]}


def name_from_field_selector(selector: str) -> str:
    """`fields.Selector.RequiresExactMatch("metadata.name")`, or "" (also for a name that is not a
    valid path segment, which requestinfo.go ignores)."""
    if not selector:
        return ""
    try:
        terms = parse_fields(selector, "")
    except Exception:  # noqa: BLE001 - an unparsable selector is rejected later by the list itself
        return ""
    for field, op, value in terms:
        if field == "metadata.name" and op == "=":
            if value in (".", "..") or "/" in value or "%" in value:
                return ""
            return value
    return ""


def verb_matches(rule: dict, verb: str) -> bool:
    return any(v in ("*", verb) for v in rule.get("verbs") or [])


def api_group_matches(rule: dict, group: str) -> bool:
    return any(g in ("*", group) for g in rule.get("apiGroups") or [])


def resource_matches(rule: dict, combined: str, subresource: str) -> bool:
    for r in rule.get("resources") or []:
        if r == "*" or r == combined:
            return True
        if subresource and len(r) == len(subresource) + 2 and r.startswith("*/") and r.endswith(subresource):
            return True
    return False


def resource_name_matches(rule: dict, name: str) -> bool:
    names = rule.get("resourceNames") or []
    return not names or name in names


def non_resource_url_matches(rule: dict, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or []:
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url.rstrip("*"))):
            return True
    return False


def rule_allows(attrs: Attributes, rule: dict) -> bool:
    """`RuleAllows` of rbac.go."""
    if attrs.resource_request:
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        return (verb_matches(rule, attrs.verb) and api_group_matches(rule, attrs.api_group)
                and resource_matches(rule, combined, attrs.subresource)
                and resource_name_matches(rule, attrs.name))
    return verb_matches(rule, attrs.verb) and non_resource_url_matches(rule, attrs.path)


# The default ClusterRoles every authenticated user holds (bootstrappolicy/policy.go).
AUTHENTICATED_RULES = [
    {"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*",
                                           "/version", "/version/", "/healthz", "/livez", "/readyz"]},
    {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
     "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
]


def applies_to_user(subject: dict, user: str, groups: Iterable[str], binding_namespace: str) -> bool:
    """`appliesToUser` of pkg/registry/rbac/validation/rule.go."""
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user
    if kind == "Group":
        return subject.get("name") in groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return bool(ns) and user == f"{SA_PREFIX}{ns}:{subject.get('name')}"
    return False


def rules_for(store, user: str, groups: List[str], namespace: str) -> List[dict]:
    """Every rule bound to the user in ``namespace`` (RoleBindings to Roles; `VisitRulesFor`)."""
    rules = list(AUTHENTICATED_RULES)
    if not namespace:
        return rules
    for binding in store.list("rbac.authorization.k8s.io/rolebindings", namespace):
        if not any(applies_to_user(s, user, groups, namespace) for s in binding.get("subjects") or []):
            continue
        ref = binding.get("roleRef") or {}
        if ref.get("kind") != "Role" or ref.get("apiGroup") != "rbac.authorization.k8s.io":
            continue  # ClusterRoles are not served by this emulator
        role = store.get("rbac.authorization.k8s.io/roles", namespace, ref.get("name", ""))
        if role is not None:
            rules.extend(role.get("rules") or [])
    return rules


def allowed(store, attrs: Attributes) -> bool:
    return any(rule_allows(attrs, r) for r in rules_for(store, attrs.user, attrs.groups, attrs.namespace))


def attributes(user: dict, *, verb: str, namespace: str, api_group: str, resource: str, subresource: str,
               name: str, field_selector: Optional[str], resource_request: bool = True, path: str = "") -> Attributes:
    """The request's attributes as requestinfo.go derives them (the name of a list or watch from
    its fieldSelector)."""
    if verb in ("list", "watch") and not name:
        name = name_from_field_selector(field_selector or "")
    return Attributes(user=user["name"], groups=list(user.get("groups") or ["system:authenticated"]), verb=verb,
                      namespace=namespace, api_group=api_group, resource=resource, subresource=subresource,
                      name=name, resource_request=resource_request, path=path)


# --- SelfSubjectAccessReview in protobuf (kubectl auth can-i sends its typed client's default) ---
# The envelope is staging/src/k8s.io/apimachinery/pkg/runtime/serializer/protobuf/protobuf.go: the
# magic "k8s\0", then a runtime.Unknown (1: typeMeta, 2: raw). Field numbers of the review follow
# staging/src/k8s.io/api/authorization/v1/generated.proto (SelfSubjectAccessReview 2: spec;
# SelfSubjectAccessReviewSpec 1: resourceAttributes, 2: nonResourceAttributes; ResourceAttributes
# 1 namespace, 2 verb, 3 group, 4 version, 5 resource, 6 subresource, 7 name; NonResourceAttributes
# 1 path, 2 verb). Only length-delimited and varint fields occur in it; the wire format is
# https://protobuf.dev/programming-guides/encoding/ (hand-written: the one message needs no library).

PROTOBUF_MAGIC = b"k8s\x00"


def _fields(data: bytes) -> dict:
    out: dict = {}
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = data[i:i + size], i + size
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
        out[number] = value
    return out


def _varint(data: bytes, i: int):
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def review_from_protobuf(body: bytes) -> dict:
    """The JSON form of a protobuf SelfSubjectAccessReview request."""
    if not body.startswith(PROTOBUF_MAGIC):
        raise ValueError("not a Kubernetes protobuf message")
    raw = _fields(_fields(body[len(PROTOBUF_MAGIC):]).get(2, b""))
    spec = _fields(raw.get(2, b""))
    out: dict = {}
    if 1 in spec:
        f = _fields(spec[1])
        names = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}
        out["resourceAttributes"] = {n: f[k].decode() for k, n in names.items() if isinstance(f.get(k), bytes)}
    if 2 in spec:
        f = _fields(spec[2])
        out["nonResourceAttributes"] = {n: f[k].decode() for k, n in {1: "path", 2: "verb"}.items()
                                        if isinstance(f.get(k), bytes)}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": out}
