"""The three PATCH flavours the API server accepts, applied to a stored object.

- JSON patch (RFC 6902, `application/json-patch+json`), including `test`: the `jsonpatch` library;
  a patch that does not apply is 422 as in staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go
  `jsonPatcher.applyJSPatch`.
- JSON merge patch (RFC 7386, `application/merge-patch+json`): null deletes, maps merge, everything
  else (lists included) replaces.
- Strategic merge patch (`application/strategic-merge-patch+json`): a port of the merge half of
  staging/src/k8s.io/apimachinery/pkg/util/strategicpatch/patch.go (`mergeMap`, `mergeSlice`,
  `mergeSliceWithSpecialElements`, `applyRetainKeysDirective`, `$deleteFromPrimitiveList`,
  `$setElementOrder`), driven by the real `x-kubernetes-patch-strategy`/`-merge-key` extensions of the
  OpenAPI definitions (see schema.py). Gap: element order after a merge keeps the original order and
  appends new elements (the real `normalizeElementOrder` also honours the patch's order).
"""

from __future__ import annotations

import copy
import json
from typing import Any, List, Optional

import jsonpatch

from .errors import ApiError
from .schema import SchemaNode

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
SET_ORDER = "$setElementOrder/"


def apply_patch(content_type: str, current: dict, body: bytes, schema_ref: str) -> dict:
    """Return the patched copy of `current`; raise ApiError for a bad or inapplicable patch."""
    ctype = content_type.split(";")[0].strip().lower()
    try:
        patch = json.loads(body or b"null")
    except ValueError as e:
        raise ApiError.bad_request(f"error decoding patch: {e}") from None
    if ctype == JSON_PATCH:
        if not isinstance(patch, list):
            raise ApiError.bad_request("json: cannot unmarshal object into Go value of type []jsonpatch.operation")
        try:
            return jsonpatch.JsonPatch(patch).apply(copy.deepcopy(current))
        except jsonpatch.JsonPatchTestFailed as e:
            raise ApiError.unprocessable(f"testing value failed: {e}") from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError, TypeError) as e:
            raise ApiError.unprocessable(str(e) or type(e).__name__) from None
    if not isinstance(patch, dict):
        raise ApiError.bad_request("error decoding patch: the patch must be a JSON object")
    if ctype == MERGE_PATCH:
        return merge_patch(copy.deepcopy(current), patch)
    if ctype == STRATEGIC_PATCH:
        try:
            return strategic_merge(copy.deepcopy(current), copy.deepcopy(patch), SchemaNode.of(schema_ref))
        except _SMPError as e:
            raise ApiError.bad_request(str(e)) from None
    if ctype == APPLY_PATCH:
        raise ApiError(415, "UnsupportedMediaType", "server-side apply is not emulated by kubeworld; "
                       "use client-side apply (kubectl apply --server-side=false)")
    raise ApiError.unsupported_media_type(content_type)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 (the evanphx/json-patch `MergePatch` the API server calls)."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = merge_patch(target.get(key), value)
    return target


class _SMPError(Exception):
    pass


def strategic_merge(original: dict, patch: dict, schema: SchemaNode) -> dict:
    """`mergeMap`: merge `patch` into `original` in place and return it."""
    if DIRECTIVE in patch:
        directive = patch.pop(DIRECTIVE)
        if directive == "replace":
            return patch
        if directive == "delete":
            return {}
        raise _SMPError(f"Unknown patch type: {directive} in map: {patch}")
    if original is None:
        original = {}
    retain = patch.pop(RETAIN_KEYS, None)
    if retain is not None:
        for key in list(original):
            if key not in retain:
                del original[key]
    order = {}
    for key in list(patch):
        if key.startswith(SET_ORDER):
            order[key[len(SET_ORDER):]] = patch.pop(key)
        elif key.startswith(DELETE_PRIMITIVE):
            field = key[len(DELETE_PRIMITIVE):]
            doomed = patch.pop(key) or []
            if isinstance(original.get(field), list):
                original[field] = [v for v in original[field] if v not in doomed]
    for key, value in patch.items():
        if value is None:
            original.pop(key, None)
            continue
        if key not in original:
            original[key] = _strip(value)
            continue
        current = original[key]
        sub = schema.field(key)
        strategies, merge_key = sub.patch_meta()
        if isinstance(current, dict) and isinstance(value, dict):
            if "replace" in strategies:
                original[key] = value
            else:
                original[key] = strategic_merge(current, value, sub)
        elif isinstance(current, list) and isinstance(value, list):
            if "merge" in strategies:
                original[key] = _merge_list(current, value, sub.items(), merge_key)
            else:
                original[key] = _strip(value)
        else:
            original[key] = _strip(value)
    for key, wanted in order.items():
        if isinstance(original.get(key), list):
            original[key] = _reorder(original[key], wanted, sub_key=schema.field(key).patch_meta()[1])
    return original


def _merge_list(original: List[Any], patch: List[Any], item_schema: SchemaNode, merge_key: Optional[str]) -> List[Any]:
    """`mergeSlice`: union of scalars, or maps merged by their merge key."""
    if not original and not patch:
        return original
    sample = (patch or original)[0]
    if not isinstance(sample, dict):
        out = list(original)
        for v in patch:
            if v not in out:
                out.append(v)
        return out
    if not merge_key:
        raise _SMPError("cannot merge lists without merge key")
    # mergeSliceWithSpecialElements: `$patch: delete` removes by key, `$patch: replace` replaces all.
    plain, replace = [], False
    for item in patch:
        directive = item.get(DIRECTIVE) if isinstance(item, dict) else None
        if directive == "delete":
            if merge_key not in item:
                raise _SMPError("delete patch type with no merge key defined")
            original = [o for o in original if not (isinstance(o, dict) and o.get(merge_key) == item[merge_key])]
        elif directive == "replace":
            replace = True
        elif directive is not None:
            raise _SMPError("merging lists cannot yet be specified in the patch")
        else:
            plain.append(item)
    if replace:
        return [_strip(p) for p in plain]
    out = list(original)
    for item in plain:
        if merge_key not in item:
            raise _SMPError(f"map: {item} does not contain declared merge key: {merge_key}")
        for i, o in enumerate(out):
            if isinstance(o, dict) and o.get(merge_key) == item[merge_key]:
                out[i] = strategic_merge(o, item, item_schema)
                break
        else:
            out.append(_strip(item))
    return out


def _reorder(items: List[Any], wanted: List[Any], sub_key: Optional[str]) -> List[Any]:
    def ident(v):
        return v.get(sub_key) if (sub_key and isinstance(v, dict)) else v

    keys = [ident(w) for w in wanted]
    ranked = [v for k in keys for v in items if ident(v) == k]
    rest = [v for v in items if ident(v) not in keys]
    return ranked + rest


def _strip(value: Any) -> Any:
    """Drop patch directives from a value taken over whole (they must not reach storage)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()
                if k not in (DIRECTIVE, RETAIN_KEYS) and not k.startswith((SET_ORDER, DELETE_PRIMITIVE))}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and v.get(DIRECTIVE) == "delete")]
    return value
