"""Label and field selectors, parsed and matched the way the API server does.

Label selector grammar and semantics: staging/src/k8s.io/apimachinery/pkg/labels/selector.go
(`Parse`, `Requirement.Matches`) and https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/
("=", "==", "!=", "in", "notin", "exists", "!key", and the numeric "gt"/"lt"). Note the documented
quirk that `key!=value` also matches objects without the key.

Field selectors: staging/src/k8s.io/apimachinery/pkg/fields/selector.go (`ParseSelector`: "=", "==",
"!="), with the per-resource set of supported field labels from each registry's
`GetAttrs`/`AddFieldLabelConversionFunc` (pkg/apis/core/v1/conversion.go, pkg/registry/core/pod/strategy.go
`PodToSelectableFields`, pkg/registry/core/event/strategy.go `ToSelectableFields`). An unsupported
label fails with 400 `field label not supported: <label>` as the real server answers.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Tuple

from .errors import ApiError

Requirement = Tuple[str, str, Tuple[str, ...]]  # key, operator, values

_KEY_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def _split_top(text: str) -> List[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _bad(selector: str, why: str) -> ApiError:
    return ApiError.bad_request(f"unable to parse requirement: {why}")


def parse_labels(selector: str) -> List[Requirement]:
    """Parse a label selector string; raise ApiError(400) on a syntax error."""
    reqs: List[Requirement] = []
    if not selector or not selector.strip():
        return reqs
    for part in _split_top(selector):
        m = re.match(r"^(\S+)\s+(in|notin)\s*\((.*)\)$", part)
        if m:
            key, op, vals = m.group(1), m.group(2), m.group(3)
            values = tuple(v.strip() for v in vals.split(",") if v.strip())
            if not values and op == "in":
                raise _bad(selector, "for 'in', 'notin' operators, values set can't be empty")
            reqs.append((_check_key(key, selector), op, values))
            continue
        if part.startswith("!"):
            reqs.append((_check_key(part[1:].strip(), selector), "!", ()))
            continue
        m = re.match(r"^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(\S*)$", part)
        if m:
            key, op, value = m.group(1), m.group(2), m.group(3)
            op = "=" if op == "==" else op
            if op in (">", "<"):
                try:
                    int(value)
                except ValueError:
                    raise _bad(selector, "for 'Gt', 'Lt' operators, the value must be an integer") from None
            reqs.append((_check_key(key, selector), op, (value,)))
            continue
        if re.match(r"^\S+$", part):
            reqs.append((_check_key(part, selector), "exists", ()))
            continue
        raise _bad(selector, f"found '{part}', expected: identifier")
    return reqs


def _check_key(key: str, selector: str) -> str:
    if not _KEY_RE.match(key):
        raise _bad(selector, f"key: Invalid value: \"{key}\": name part must consist of alphanumeric characters")
    return key


def matches_labels(reqs: List[Requirement], labels: Optional[Dict[str, str]]) -> bool:
    labels = labels or {}
    for key, op, values in reqs:
        has = key in labels
        val = labels.get(key)
        if op == "=" and not (has and val == values[0]):
            return False
        if op == "!=" and has and val == values[0]:
            return False
        if op == "in" and not (has and val in values):
            return False
        if op == "notin" and has and val in values:
            return False
        if op == "exists" and not has:
            return False
        if op == "!" and has:
            return False
        if op in (">", "<"):
            try:
                n = int(val) if has else None
            except ValueError:
                return False
            if n is None or (op == ">" and not n > int(values[0])) or (op == "<" and not n < int(values[0])):
                return False
    return True


def label_selector_to_reqs(sel: Optional[dict]) -> Optional[List[Requirement]]:
    """A metav1.LabelSelector (matchLabels/matchExpressions) as requirements.

    None means "selects nothing" (a nil selector); an empty selector selects everything
    (apimachinery/pkg/apis/meta/v1/helpers.go `LabelSelectorAsSelector`).
    """
    if sel is None:
        return None
    reqs: List[Requirement] = [(k, "=", (v,)) for k, v in sorted((sel.get("matchLabels") or {}).items())]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in sel.get("matchExpressions") or []:
        reqs.append((expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ())))
    return reqs


def selector_string(sel: dict) -> str:
    """metav1.FormatLabelSelector-like rendering, used in Scale.status.selector and tables."""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or []:
        op = expr["operator"]
        if op == "In":
            parts.append(f"{expr['key']} in ({','.join(expr.get('values') or [])})")
        elif op == "NotIn":
            parts.append(f"{expr['key']} notin ({','.join(expr.get('values') or [])})")
        elif op == "Exists":
            parts.append(expr["key"])
        else:
            parts.append(f"!{expr['key']}")
    return ",".join(parts)


# --- field selectors -----------------------------------------------------------------------

def _get_path(obj: dict, path: str):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


_COMMON = ("metadata.name", "metadata.namespace")
# Supported field labels per resource key (see the module docstring for where each list comes from).
FIELD_LABELS: Dict[str, Tuple[str, ...]] = {
    "core/pods": _COMMON + ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                            "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
                            "status.nominatedNodeName"),
    "core/events": _COMMON + ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                              "involvedObject.uid", "involvedObject.apiVersion",
                              "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                              "reportingComponent", "source", "type"),
    "core/namespaces": ("metadata.name", "status.phase"),
    "apps/replicasets": _COMMON + ("status.replicas",),
}


def parse_fields(selector: str, resource_key: str) -> List[Tuple[str, str, str]]:
    out = []
    if not selector:
        return out
    allowed = FIELD_LABELS.get(resource_key, _COMMON)
    for part in [p for p in selector.split(",") if p.strip()]:
        m = re.match(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise ApiError.bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
        key, op, value = m.group(1), m.group(2), m.group(3)
        if key not in allowed:
            raise ApiError.bad_request(f"field label not supported: {key}")
        out.append((key, "!=" if op == "!=" else "=", value))
    return out


def _field_value(obj: dict, key: str) -> str:
    if key == "source":  # events: source.component (pkg/registry/core/event/strategy.go)
        return str(((obj.get("source") or {}).get("component")) or "")
    v = _get_path(obj, key)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def matches_fields(reqs: List[Tuple[str, str, str]], obj: dict) -> bool:
    for key, op, value in reqs:
        actual = _field_value(obj, key)
        if (op == "=") != (actual == value):
            return False
    return True


def make_filter(label_selector: str, field_selector: str, resource_key: str) -> Callable[[dict], bool]:
    lreqs = parse_labels(label_selector)
    freqs = parse_fields(field_selector, resource_key)

    def accept(obj: dict) -> bool:
        return matches_labels(lreqs, (obj.get("metadata") or {}).get("labels")) and matches_fields(freqs, obj)

    return accept
