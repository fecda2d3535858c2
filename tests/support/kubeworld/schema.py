"""The real Kubernetes OpenAPI definitions, read from the schemas that kubernetes-validate ships.

kubernetes-validate (a test dependency already) carries the definitions generated from the
Kubernetes OpenAPI spec, including the `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`
extensions that strategic merge patch is driven by (apimachinery/pkg/util/strategicpatch,
`PatchMetaFromOpenAPI`) and the `x-kubernetes-group-version-kind` tags. Using them instead of a
hand-written table keeps the emulator's patch semantics and its /openapi/v3 documents faithful for
every field, not just the ones a test thought of.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from typing import Dict, List, Optional, Tuple

SCHEMA_VERSION = "v1.32.0"


def _schema_dir(strict: bool) -> str:
    import kubernetes_validate

    base = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
    return os.path.join(base, f"{SCHEMA_VERSION}-local" + ("-strict" if strict else ""))


@functools.lru_cache(maxsize=None)
def definitions() -> Dict[str, dict]:
    with open(os.path.join(_schema_dir(False), "_definitions.json"), encoding="utf-8") as fh:
        return json.load(fh)["$defs"]


def _deref(node: Optional[dict]) -> Optional[dict]:
    seen = 0
    while node is not None and "$ref" in node and seen < 20:
        node = definitions().get(node["$ref"].rsplit("/", 1)[-1])
        seen += 1
    return node


def ref_name(node: Optional[dict]) -> Optional[str]:
    if node and "$ref" in node:
        return node["$ref"].rsplit("/", 1)[-1]
    return None


class SchemaNode:
    """A position in the schema tree; `field(name)` walks into an object property."""

    def __init__(self, node: Optional[dict]) -> None:
        self.raw = node or {}
        self.node = _deref(node) or {}

    @classmethod
    def of(cls, definition: str) -> "SchemaNode":
        return cls(definitions().get(definition))

    def field(self, name: str) -> "SchemaNode":
        props = self.node.get("properties") or {}
        if name in props:
            return SchemaNode(props[name])
        extra = self.node.get("additionalProperties")
        if isinstance(extra, dict):
            return SchemaNode(extra)
        return SchemaNode(None)

    def items(self) -> "SchemaNode":
        return SchemaNode(self.node.get("items"))

    def patch_meta(self) -> Tuple[List[str], Optional[str]]:
        """(strategies, merge key) for a list or map field, from the property's extensions."""
        strategy = self.raw.get("x-kubernetes-patch-strategy") or self.node.get("x-kubernetes-patch-strategy") or ""
        key = self.raw.get("x-kubernetes-patch-merge-key") or self.node.get("x-kubernetes-patch-merge-key")
        return [s for s in strategy.split(",") if s], key

    @property
    def known(self) -> bool:
        return bool(self.node)


# --- OpenAPI v3 documents ------------------------------------------------------------------

def _to_openapi(node, refs: set):
    """JSON-schema form (as kubernetes-validate stores it) back to OpenAPI v3 component form."""
    if isinstance(node, list):
        return [_to_openapi(x, refs) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "$ref":
            name = v.rsplit("/", 1)[-1]
            refs.add(name)
            out["allOf"] = [{"$ref": f"#/components/schemas/{name}"}]
        elif k == "type" and isinstance(v, list):
            types = [t for t in v if t != "null"]
            out["type"] = types[0] if len(types) == 1 else types
        elif k == "enum":
            continue  # the schemas pin apiVersion/kind through enums the real spec does not carry
        elif k == "additionalProperties" and v is False:
            continue
        else:
            out[k] = _to_openapi(v, refs)
    if set(out) == {"allOf"}:
        return {"$ref": out["allOf"][0]["$ref"]}
    return out


def openapi_v3_document(group: str, version: str, resources) -> dict:
    """A per-group-version OpenAPI v3 document like /openapi/v3/apis/<group>/<version>.

    Carries the component schemas (closure of the served kinds) with their GVK and patch
    extensions, and one path item per resource whose operations list the `fieldValidation`
    parameter: kubectl's QueryParamVerifierV3 (staging/src/k8s.io/cli-runtime/pkg/resource/
    query_param_verifier_v3.go) looks for it to decide on server-side field validation.
    """
    schemas: Dict[str, dict] = {}
    todo = [r.schema_ref for r in resources]
    todo += ["io.k8s.apimachinery.pkg.apis.meta.v1.Status", "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"]
    if any("scale" in r.subresources for r in resources):
        todo.append("io.k8s.api.autoscaling.v1.Scale")
    while todo:
        name = todo.pop()
        if name in schemas or name not in definitions():
            continue
        found: set = set()
        schemas[name] = _to_openapi(copy.deepcopy(definitions()[name]), found)
        todo.extend(found - set(schemas))
    gv = f"{group}/{version}" if group else version
    prefix = f"/apis/{gv}" if group else f"/api/{version}"
    paths: Dict[str, dict] = {}
    field_validation = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True},
                        "description": "fieldValidation instructs the server on how to handle objects in the "
                        "request containing unknown or duplicate fields."}
    for r in resources:
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        ref = {"$ref": f"#/components/schemas/{r.schema_ref}"}
        body = {"content": {"*/*": {"schema": ref}}, "required": True}
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        base = f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{prefix}/{r.plural}"
        paths[base] = {
            "get": {"operationId": f"list{r.kind}", "x-kubernetes-action": "list",
                    "x-kubernetes-group-version-kind": gvk, "responses": ok},
            "post": {"operationId": f"create{r.kind}", "x-kubernetes-action": "post",
                     "x-kubernetes-group-version-kind": gvk, "requestBody": body, "responses": ok,
                     "parameters": [field_validation]},
        }
        paths[base + "/{name}"] = {
            "get": {"operationId": f"read{r.kind}", "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk, "responses": ok},
            "put": {"operationId": f"replace{r.kind}", "x-kubernetes-action": "put",
                    "x-kubernetes-group-version-kind": gvk, "requestBody": body, "responses": ok,
                    "parameters": [field_validation]},
            "patch": {"operationId": f"patch{r.kind}", "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": gvk, "responses": ok,
                      "requestBody": {"content": {t: {"schema": {"type": "object"}} for t in (
                          "application/json-patch+json", "application/merge-patch+json",
                          "application/strategic-merge-patch+json", "application/apply-patch+yaml")}},
                      "parameters": [field_validation]},
            "delete": {"operationId": f"delete{r.kind}", "x-kubernetes-action": "delete",
                       "x-kubernetes-group-version-kind": gvk, "responses": ok},
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths, "components": {"schemas": schemas}}


# --- strict field validation -----------------------------------------------------------------

def unknown_fields(obj: dict, definition: str) -> List[str]:
    """Paths of fields the schema does not know (server-side `fieldValidation=Strict`).

    The real server answers such a request with 400 and `strict decoding error: unknown field
    "spec.foo"` (staging/src/k8s.io/apimachinery/pkg/runtime/serializer/json, UnmarshalStrict).
    """
    out: List[str] = []

    def walk(value, node: SchemaNode, path: str) -> None:
        if not node.known:
            return
        if isinstance(value, dict) and "properties" in node.node:
            for k, v in value.items():
                if k not in node.node["properties"]:
                    out.append(f"{path}{k}")
                else:
                    walk(v, node.field(k), f"{path}{k}.")
        elif isinstance(value, list) and "items" in node.node:
            for i, v in enumerate(value):
                walk(v, node.items(), f"{path[:-1]}[{i}].")

    walk(obj, SchemaNode.of(definition), "")
    return out
