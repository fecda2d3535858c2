"""The API server's field validators and decoders, ported with their exact messages.

No Python library implements these with the API server's wording (kubernetes-validate checks the
JSON schema only, which has no patterns for names, labels or quantities; the official client's
`kubernetes.utils.parse_quantity` accepts "1K", "NaN" and "1_000", which the server refuses), so
the few functions a deploy touches are ported here, each from the file named:

- staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go: `IsDNS1123Label`,
  `IsDNS1123Subdomain`, `IsDNS1035Label`, `IsValidPortNum`, `IsValidPortName`, `IsValidPercent`,
  `RegexError`, `MaxLenError`, `InclusiveRangeError`;
  staging/src/k8s.io/apimachinery/pkg/api/validate/content/kube.go (v1.32: validation.go)
  `IsQualifiedName` and `IsValidLabelValue`;
- staging/src/k8s.io/apimachinery/pkg/util/validation/field/errors.go: `Error.ErrorBody` (the
  "Invalid value: <value>: <detail>" form, strings as Go `%q`) and the cause types
  (FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, FieldValueDuplicate,
  FieldValueForbidden); field/path.go renders map keys as `limits[cpu]`;
- staging/src/k8s.io/apimachinery/pkg/api/resource/quantity.go: `parseQuantityString`,
  `ParseQuantity` (ErrFormatWrong / ErrSuffix), suffix.go (`quantitySuffixer.interpret`) and the
  canonical form `String()` prints;
- staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/time.go and micro_time.go `UnmarshalJSON`:
  Go's `time.Parse` with RFC3339 and RFC3339Micro ("2006-01-02T15:04:05.000000Z07:00": exactly six
  fraction digits), with Go's ParseError messages (src/time/format.go).

A value the Go types cannot hold (a malformed quantity or time) fails while *decoding*, before
validation: the create and update handlers answer 400 BadRequest `<Kind> in version "<v>" cannot
be handled as a <Kind>: <error>` (apiserver/pkg/endpoints/handlers/rest.go `transformDecodeError`),
the patch handler 422 with the cause field `patch` (handlers/patch.go `applyPatchToObject`,
`applyPatchToCurrentObject`). `decode_errors` finds such values by walking the object along the
real OpenAPI schema, so every Quantity, Time and MicroTime field of every kind is covered.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_UP, Decimal
from typing import Any, List, Optional

from .schema import definitions

# --- field errors (field/errors.go) --------------------------------------------------------


def go_quote(value: str) -> str:
    """Go's %q for the strings validators print (JSON escaping matches for printable text)."""
    return json.dumps(value, ensure_ascii=False)


def _body_value(value: Any) -> str:
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def invalid(path: str, value: Any, detail: str) -> dict:
    return {"field": path, "reason": "FieldValueInvalid", "message": f"Invalid value: {_body_value(value)}: {detail}"}


def required(path: str, detail: str = "") -> dict:
    return {"field": path, "reason": "FieldValueRequired", "message": "Required value" + (f": {detail}" if detail else "")}


def forbidden(path: str, detail: str) -> dict:
    return {"field": path, "reason": "FieldValueForbidden", "message": f"Forbidden: {detail}"}


def duplicate(path: str, value: Any) -> dict:
    return {"field": path, "reason": "FieldValueDuplicate", "message": f"Duplicate value: {_body_value(value)}"}


def not_found(path: str, value: Any) -> dict:
    return {"field": path, "reason": "FieldValueNotFound", "message": f"Not found: {_body_value(value)}"}


def not_supported(path: str, value: Any, valid: List[str]) -> dict:
    quoted = ", ".join(go_quote(v) for v in valid)
    return {"field": path, "reason": "FieldValueNotSupported",
            "message": f"Unsupported value: {_body_value(value)}: supported values: {quoted}"}


# --- util/validation/validation.go ---------------------------------------------------------


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    return msg + " (e.g. " + " or ".join(f"'{e}', " for e in examples) + f"regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_CHAR_FMT = "[A-Za-z0-9]"
QUALIFIED_NAME_EXT_CHAR_FMT = "[-A-Za-z0-9_.]"
QUALIFIED_NAME_FMT = "(" + QUALIFIED_NAME_CHAR_FMT + QUALIFIED_NAME_EXT_CHAR_FMT + "*)?" + QUALIFIED_NAME_CHAR_FMT
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
PERCENT_FMT = "[0-9]+%"

_DNS1123_LABEL = re.compile("^" + DNS1123_LABEL_FMT + "$")
_DNS1123_SUBDOMAIN = re.compile("^" + DNS1123_SUBDOMAIN_FMT + "$")
_DNS1035_LABEL = re.compile("^" + DNS1035_LABEL_FMT + "$")
_QUALIFIED_NAME = re.compile("^" + QUALIFIED_NAME_FMT + "$")
_LABEL_VALUE = re.compile("^" + LABEL_VALUE_FMT + "$")
_PERCENT = re.compile("^" + PERCENT_FMT + "$")

DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                     "and must start and end with an alphanumeric character")
DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                         "'.', and must start and end with an alphanumeric character")
DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                     "alphabetic character, and end with an alphanumeric character")
QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                      "alphanumeric character")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character")


def _full(rx: re.Pattern, value: str) -> bool:
    # Go's regexp `$` matches only at the end of text; Python's also before a final newline.
    return rx.fullmatch(value) is not None


def is_dns1123_label(value: str) -> List[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _full(_DNS1123_LABEL, value):
        if _full(_DNS1123_SUBDOMAIN, value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> List[str]:
    errs = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _full(_DNS1123_SUBDOMAIN, value):
        errs.append(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> List[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _full(_DNS1035_LABEL, value):
        errs.append(regex_error(DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> List[str]:
    errs: List[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += ["prefix part " + m for m in is_dns1123_subdomain(prefix)]
    else:
        return ["a qualified name " + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _full(_QUALIFIED_NAME, name):
        errs.append("name part " + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> List[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _full(_LABEL_VALUE, value):
        errs.append(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_valid_port_num(port: Any) -> List[str]:
    return [] if isinstance(port, int) and 1 <= port <= 65535 else ["must be between 1 and 65535, inclusive"]


def is_valid_port_name(port: str) -> List[str]:
    errs = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not re.fullmatch("[-a-z0-9]+", port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_percent(value: str) -> List[str]:
    return [] if _full(_PERCENT, value) else [regex_error(
        "a valid percent string must be a numeric string followed by an ending '%'", PERCENT_FMT, "1%", "93%")]


# --- apimachinery/pkg/api/validation (objectmeta.go, generic.go) and metav1 validation ------

def _mask_trailing_dash(name: str) -> str:
    # generic.go `maskTrailingDash`: a generateName prefix may end in '-'.
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def validate_name(validator, name: str, prefix: bool) -> List[str]:
    return validator(_mask_trailing_dash(name) if prefix else name)


def validate_labels(labels: Optional[dict], path: str) -> List[dict]:
    """metav1validation.ValidateLabels: key and value errors, all reported at the map's path."""
    out = []
    for k in sorted(labels or {}):
        v = labels[k]
        out += [invalid(path, k, m) for m in is_qualified_name(k)]
        out += [invalid(path, v, m) for m in is_valid_label_value(v if isinstance(v, str) else str(v))]
    return out


def validate_annotations(annotations: Optional[dict], path: str) -> List[dict]:
    """objectmeta.go ValidateAnnotations: keys are qualified names (compared lower-cased); 256 KiB."""
    out = []
    total = 0
    for k in sorted(annotations or {}):
        out += [invalid(path, k, m) for m in is_qualified_name(k.lower())]
        total += len(k) + len(annotations[k] or "")
    if total > 262144:
        out.append({"field": path, "reason": "FieldValueTooLong", "message": "Too long: must have at most 262144 bytes"})
    return out


def validate_label_selector(sel: Optional[dict], path: str) -> List[dict]:
    """metav1validation.ValidateLabelSelector: matchLabels as labels, expressions' keys and operators."""
    if not sel:
        return []
    out = validate_labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for i, req in enumerate(sel.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        op = req.get("operator")
        if op in ("In", "NotIn"):
            if not req.get("values"):
                out.append(required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if req.get("values"):
                out.append(forbidden(f"{p}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            out.append(invalid(f"{p}.operator", op, "not a valid selector operator"))
        out += [invalid(f"{p}.key", req.get("key", ""), m) for m in is_qualified_name(req.get("key", ""))]
    return out


# --- quantities (api/resource/quantity.go, suffix.go) --------------------------------------

QUANTITY_SPLIT_RE = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT_WRONG = f"quantities must match the regular expression '{QUANTITY_SPLIT_RE}'"
ERR_SUFFIX = "unable to parse quantity's suffix"
ERR_NUMERIC = "unable to parse numeric part of quantity"
_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SI = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}


class QuantityError(ValueError):
    pass


class Quantity:
    """A parsed quantity: exact value (Decimal, rounded up to nano as ParseQuantity does) and format."""

    def __init__(self, value: Decimal, fmt: str) -> None:
        self.value = value
        self.format = fmt

    def __str__(self) -> str:
        return canonical(self)


def _scan(text: str):
    """parseQuantityString: (positive, value, num, denom, suffix) or QuantityError(ErrFormatWrong)."""
    positive, pos, end = True, 0, len(text)
    if pos < end and text[0] in "+-":
        positive = text[0] != "-"
        pos += 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "0", "", ""
    start = pos
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    num = text[start:pos] or "0"
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        dstart = pos
        while pos < end and text[pos].isdigit() and text[pos].isascii():
            pos += 1
        denom = text[dstart:pos]
    value = text[:pos]
    suffix_start = pos
    while pos < end and text[pos] in "eEinumkKMGTP":
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    if pos < end:
        raise QuantityError(ERR_FORMAT_WRONG)
    return positive, value, num, denom, text[suffix_start:]


def _interpret(suffix: str):
    """suffix.go quantitySuffixer.interpret: (base, exponent, format) or None."""
    if suffix in _DECIMAL_SI:
        return 10, _DECIMAL_SI[suffix], "DecimalSI"
    if suffix in _BINARY_SI:
        return 2, _BINARY_SI[suffix], "BinarySI"
    if len(suffix) > 1 and suffix[0] in "eE":
        try:
            return 10, int(suffix[1:]), "DecimalExponent"
        except ValueError:
            return None
    return None


def parse_quantity(raw: Any) -> Quantity:
    """ParseQuantity on a JSON value (a JSON number is read as its text, as UnmarshalJSON does)."""
    if isinstance(raw, bool) or raw is None or isinstance(raw, (dict, list)):
        raise QuantityError(ERR_FORMAT_WRONG)
    text = raw if isinstance(raw, str) else json.dumps(raw)
    text = text.strip() if not isinstance(raw, str) else text
    if not text:
        raise QuantityError(ERR_FORMAT_WRONG)
    if text == "0":
        return Quantity(Decimal(0), "DecimalSI")
    positive, value, num, denom, suffix = _scan(text)
    interpreted = _interpret(suffix)
    if interpreted is None:
        raise QuantityError(ERR_SUFFIX)
    base, exponent, fmt = interpreted
    try:
        amount = Decimal(value if value not in ("", "+", "-") else "0")
    except ArithmeticError:
        raise QuantityError(ERR_NUMERIC) from None
    if value in ("", "+", "-", ".", "+.", "-."):
        amount = Decimal(0)
    amount = abs(amount) * (Decimal(10) ** exponent if base == 10 else Decimal(2) ** exponent)
    if amount != 0:
        amount = amount.quantize(Decimal("1e-9"), rounding=ROUND_UP)
    if fmt == "BinarySI" and 0 < amount < 1:
        fmt = "DecimalSI"
    return Quantity(amount if positive else -amount, fmt)


def canonical(q: Quantity) -> str:
    """Quantity.String(): the canonical form (largest exponent without loss, no fraction digits)."""
    v = q.value
    if v == 0:
        return "0"
    sign = "-" if v < 0 else ""
    a = abs(v)
    fmt = q.format
    if fmt == "BinarySI":
        if a < 1024 or a != a.to_integral_value():
            fmt = "DecimalSI"
        else:
            n, exp = int(a), 0
            while n % 1024 == 0 and exp < 60:
                n //= 1024
                exp += 10
            suffix = {0: "", 10: "Ki", 20: "Mi", 30: "Gi", 40: "Ti", 50: "Pi", 60: "Ei"}[exp]
            return f"{sign}{n}{suffix}"
    # base 10: mantissa integer, exponent a multiple of 3, as large as possible (AsCanonicalBytes)
    exp = -9
    mant = int(a * Decimal(10) ** 9)
    while mant % 1000 == 0 and exp < 18:
        mant //= 1000
        exp += 3
    if fmt == "DecimalExponent":
        return f"{sign}{mant}" + (f"e{exp}" if exp else "")
    suffix = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}[exp]
    return f"{sign}{mant}{suffix}"


# --- time (meta/v1 time.go, micro_time.go; Go src/time/format.go) ----------------------------

RFC3339 = "2006-01-02T15:04:05Z07:00"
RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"
_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


_FAST_TIME = {
    RFC3339: re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])-([0-9]{2})T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                        r"([.,][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"),
    RFC3339_MICRO: re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])-([0-9]{2})T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                              r"[.,][0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})"),
}


def go_parse_time(layout: str, value: str) -> Optional[str]:
    """None if Go's time.Parse(layout, value) succeeds for the two RFC 3339 layouts; else its error."""
    m = _FAST_TIME[layout].fullmatch(value)
    if m and 1 <= int(m.group(3)) <= 28:  # the common case, decided without the step-by-step parse
        return None
    def err(elem_layout: str, elem_value: str) -> str:
        return (f"parsing time {go_quote(value)} as {go_quote(layout)}: cannot parse "
                f"{go_quote(elem_value)} as {go_quote(elem_layout)}")

    def range_err(what: str) -> str:
        return f"parsing time {go_quote(value)}: {what} out of range"

    rest = value
    fields = {}
    steps = [("2006", 4, "year"), ("-", 0, ""), ("01", 2, "month"), ("-", 0, ""), ("02", 2, "day"), ("T", 0, ""),
             ("15", 2, "hour"), (":", 0, ""), ("04", 2, "minute"), (":", 0, ""), ("05", 2, "second")]
    for std, width, name in steps:
        if not width:  # a literal separator
            if not rest.startswith(std):
                return err(std, rest)
            rest = rest[len(std):]
            continue
        if std == "15":  # stdHour: one or two digits
            m = re.match(r"[0-9]{1,2}", rest)
        else:
            m = re.match("[0-9]{%d}" % width, rest)
        if not m:
            return err(std, rest)
        fields[name] = int(m.group(0))
        rest = rest[m.end():]
        limits = {"month": (1, 12), "hour": (0, 23), "minute": (0, 59), "second": (0, 59)}
        if name in limits and not limits[name][0] <= fields[name] <= limits[name][1]:
            return range_err(name)
    if ".000000" in layout:
        if len(rest) < 7 or rest[0] not in ".," or not rest[1:7].isdigit():
            return err(".000000", rest)
        rest = rest[7:]
    elif re.match(r"[.,][0-9]", rest):  # a fraction the layout does not name is accepted when parsing
        m = re.match(r"[.,][0-9]+", rest)
        rest = rest[m.end():]
    if rest.startswith("Z"):
        rest = rest[1:]
    else:
        m = re.match(r"[+-][0-9]{2}:[0-9]{2}", rest)
        if not m:
            return err("Z07:00", rest)
        rest = rest[m.end():]
    if rest:
        return f"parsing time {go_quote(value)}: extra text: {go_quote(rest)}"
    year, month, day = fields["year"], fields["month"], fields["day"]
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day < 1 or day > (_DAYS[month - 1] if month != 2 else (29 if leap else 28)):
        return range_err("day")
    return None


# --- decoding: values the Go types cannot hold ----------------------------------------------

QUANTITY_REF = "io.k8s.apimachinery.pkg.api.resource.Quantity"
TIME_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
MICRO_TIME_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"


_PLANS: dict = {}


def _plan(raw: Optional[dict], building: frozenset = frozenset()):
    """Where in a schema node Quantity/Time/MicroTime values can sit: "q", "t", "mt", a dict
    {"props": {...}, "extra": plan, "items": plan} of only the paths that lead to one, or None.
    Memoised per definition, so a write walks only those paths (a pod status write: a few fields)."""
    if not raw:
        return None
    ref = raw.get("$ref", "").rsplit("/", 1)[-1]
    if ref == QUANTITY_REF:
        return "q"
    if ref == TIME_REF:
        return "t"
    if ref == MICRO_TIME_REF:
        return "mt"
    if ref:
        if ref in _PLANS:
            return _PLANS[ref]
        if ref in building:
            return None
        plan = _plan(definitions().get(ref), building | {ref})
        if not building:  # only complete (cycle-free) results are memoised
            _PLANS[ref] = plan
        return plan
    props = {k: p for k, p in ((k, _plan(v, building)) for k, v in (raw.get("properties") or {}).items()) if p}
    extra = raw.get("additionalProperties")
    extra = _plan(extra, building) if isinstance(extra, dict) else None
    items = _plan(raw.get("items"), building) if isinstance(raw.get("items"), dict) else None
    if not (props or extra or items):
        return None
    return {"props": props, "extra": extra, "items": items}


def decode_error(obj: Any, definition: str) -> Optional[str]:
    """The first error Go's decoder would hit on `obj` (as the `definition` type), or None."""
    def walk(value, plan) -> Optional[str]:
        if plan is None or value is None:
            return None
        if plan == "q":
            try:
                parse_quantity(value)
            except QuantityError as e:
                return str(e)
            return None
        if plan in ("t", "mt"):
            if not isinstance(value, str):
                return f"json: cannot unmarshal {type(value).__name__} into Go value of type string"
            return go_parse_time(RFC3339_MICRO if plan == "mt" else RFC3339, value)
        if isinstance(value, dict):
            for k, v in value.items():
                found = walk(v, plan["props"].get(k, plan["extra"]))
                if found:
                    return found
        elif isinstance(value, list) and plan["items"]:
            for v in value:
                found = walk(v, plan["items"])
                if found:
                    return found
        return None

    return walk(obj, _plan({"$ref": "#/$defs/" + definition}))


def go_value(value: Any) -> str:
    """fmt's %+v of a decoded JSON value (map[string]interface{} etc.), as patch.go prints the patch."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return str(value)
