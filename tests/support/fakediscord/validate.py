"""Discord's checks on an Execute Webhook body, and who a message would ping.

Each rule cites the Discord developer documentation it imitates (read from the discord/discord-api-docs
repository, developers/resources/message.mdx, developers/resources/webhook.mdx,
developers/reference.mdx and developers/topics/opcodes-and-status-codes.mdx). Error bodies have the
shape Discord documents for form errors (reference.mdx, "Error Messages"):

    {"code": 50035, "message": "Invalid Form Body",
     "errors": {"embeds": {"0": {"title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                                                          "message": "Must be 256 or fewer in length."}]}}}}}

Guesses (the docs do not say), chosen to be at least as strict as Discord:
* "characters" are counted in UTF-16 code units by default (``unit="utf16"``); ``unit="codepoints"``
  counts like discord.py's ``len(embed)``. UTF-16 is never smaller, so passing here passes there.
* The code for the 6000-character total is spelled ``MAX_EMBED_SIZE_EXCEEDED``; its message,
  "Embed size exceeds maximum size of 6000", is the one Discord users quote in bug reports.
* Unknown top-level keys are ignored, as Discord ignores them.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

# developers/resources/message.mdx, "Embed Limits"
LIMITS = {"title": 256, "description": 4096, "fields": 25, "field.name": 256, "field.value": 1024,
          "footer.text": 2048, "author.name": 256, "total": 6000}
CONTENT_MAX = 2000  # developers/resources/webhook.mdx, Execute Webhook: "up to 2000 characters"
EMBEDS_MAX = 10  # same table: "array of up to 10 embed objects"
COLOR_MAX = 0xFFFFFF
MENTION_TYPES = ("roles", "users", "everyone")  # message.mdx, "Allowed Mention Types"
SNOWFLAKE = re.compile(r"[0-9]{1,20}")


def length(text: str, unit: str = "utf16") -> int:
    """Discord measures trimmed text ("Leading and trailing whitespace characters are not included
    (they are trimmed automatically)", message.mdx, Embed Limits)."""
    text = text.strip()
    if unit == "codepoints":
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class _Errors:
    def __init__(self) -> None:
        self.tree: Dict[str, Any] = {}

    def add(self, path: List[str], code: str, message: str) -> None:
        node = self.tree
        for key in path:
            node = node.setdefault(key, {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def __bool__(self) -> bool:
        return bool(self.tree)


def _string(errors: _Errors, path: List[str], value: Any, limit: int, *, required: bool, unit: str) -> int:
    """Check one string; returns its counted length (0 when absent or invalid)."""
    if value is None:
        if required:
            errors.add(path, "BASE_TYPE_REQUIRED", "This field is required")
        return 0
    if not isinstance(value, str):
        errors.add(path, "BASE_TYPE_STRING", "Could not interpret value as string.")
        return 0
    size = length(value, unit)
    if required and size == 0:  # an empty or whitespace-only name/value is a missing one
        errors.add(path, "BASE_TYPE_REQUIRED", "This field is required")
    if size > limit:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
    return size


def _url(errors: _Errors, path: List[str], value: Any) -> None:
    # message.mdx, Embed Structure: url of embed; Discord answers "Not a well formed URL." otherwise
    if value is None:
        return
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        errors.add(path, "URL_TYPE_INVALID_URL", "Not a well formed URL.")


def _embed(errors: _Errors, index: int, embed: Any, unit: str) -> int:
    path = ["embeds", str(index)]
    if not isinstance(embed, dict):
        errors.add(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        return 0
    total = _string(errors, path + ["title"], embed.get("title"), LIMITS["title"], required=False, unit=unit)
    total += _string(errors, path + ["description"], embed.get("description"), LIMITS["description"],
                     required=False, unit=unit)
    _url(errors, path + ["url"], embed.get("url"))
    if "timestamp" in embed:  # reference.mdx, "ISO8601 Date/Time"
        try:
            datetime.datetime.fromisoformat(str(embed["timestamp"]).replace("Z", "+00:00"))
        except ValueError:
            errors.add(path + ["timestamp"], "DATE_TIME_TYPE_PARSE", "Could not parse timestamp.")
    color = embed.get("color")
    if color is not None and (not isinstance(color, int) or isinstance(color, bool) or not 0 <= color <= COLOR_MAX):
        errors.add(path + ["color"], "NUMBER_TYPE_MAX", f"int value should be less than or equal to {COLOR_MAX}.")
    fields = embed.get("fields", [])
    if not isinstance(fields, list):
        errors.add(path + ["fields"], "BASE_TYPE_ARRAY", "Must be an array.")
        fields = []
    if len(fields) > LIMITS["fields"]:
        errors.add(path + ["fields"], "BASE_TYPE_MAX_LENGTH", f"Must be {LIMITS['fields']} or fewer in length.")
    for i, fld in enumerate(fields):
        fpath = path + ["fields", str(i)]
        if not isinstance(fld, dict):
            errors.add(fpath, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        total += _string(errors, fpath + ["name"], fld.get("name"), LIMITS["field.name"], required=True, unit=unit)
        total += _string(errors, fpath + ["value"], fld.get("value"), LIMITS["field.value"], required=True, unit=unit)
        if "inline" in fld and not isinstance(fld["inline"], bool):
            errors.add(fpath + ["inline"], "BASE_TYPE_BOOLEAN", "Must be either true or false.")
    for key, sub, limit in (("footer", "text", LIMITS["footer.text"]), ("author", "name", LIMITS["author.name"])):
        if key in embed:
            part = embed[key]
            if not isinstance(part, dict):
                errors.add(path + [key], "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
                continue
            total += _string(errors, path + [key, sub], part.get(sub), limit, required=True, unit=unit)
    return total


def _allowed_mentions(errors: _Errors, value: Any) -> None:
    # message.mdx, Allowed Mentions Object: parse is a list of mention types; roles/users at most
    # 100 ids; "parse" and the list of the same type are mutually exclusive (a validation error).
    if value is None:
        return
    if not isinstance(value, dict):
        errors.add(["allowed_mentions"], "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        return
    parse = value.get("parse", [])
    if not isinstance(parse, list) or any(p not in MENTION_TYPES for p in parse):
        errors.add(["allowed_mentions", "parse"], "BASE_TYPE_CHOICES",
                   "Value must be one of ('roles', 'users', 'everyone').")
        parse = []
    for kind in ("roles", "users"):
        ids = value.get(kind)
        if ids is None:
            continue
        if not isinstance(ids, list) or any(not isinstance(i, str) or not SNOWFLAKE.fullmatch(i) for i in ids):
            errors.add(["allowed_mentions", kind], "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        elif len(ids) > 100:
            errors.add(["allowed_mentions", kind], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        if ids and kind in parse:
            errors.add(["allowed_mentions"], "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                       f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.')


def check(body: Any, *, unit: str = "utf16") -> Optional[Dict[str, Any]]:
    """None when Discord would accept ``body``, else the JSON error body of its 400 answer."""
    if not isinstance(body, dict):
        return {"code": 50035, "errors": {"_errors": [{"code": "MODEL_TYPE_CONVERT",
                                                       "message": "Only dictionaries may be used in a ModelType"}]},
                "message": "Invalid Form Body"}
    # webhook.mdx, Execute Webhook: "you must provide a value for at least one of content, embeds,
    # components, file, or poll"; opcodes-and-status-codes.mdx: 50006 "Cannot send an empty message"
    if not (body.get("content") or body.get("embeds") or body.get("components") or body.get("poll")):
        return {"code": 50006, "message": "Cannot send an empty message"}
    errors = _Errors()
    _string(errors, ["content"], body.get("content"), CONTENT_MAX, required=False, unit=unit)
    embeds = body.get("embeds") or []
    if not isinstance(embeds, list):
        errors.add(["embeds"], "BASE_TYPE_ARRAY", "Must be an array.")
        embeds = []
    if len(embeds) > EMBEDS_MAX:
        errors.add(["embeds"], "BASE_TYPE_MAX_LENGTH", f"Must be {EMBEDS_MAX} or fewer in length.")
    total = sum(_embed(errors, i, e, unit) for i, e in enumerate(embeds))
    if total > LIMITS["total"]:  # message.mdx: "combined sum ... must not exceed 6000 characters"
        errors.add(["embeds"], "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {LIMITS['total']}")
    _allowed_mentions(errors, body.get("allowed_mentions"))
    if errors:
        return {"code": 50035, "errors": errors.tree, "message": "Invalid Form Body"}
    return None


def pings(body: Dict[str, Any]) -> Dict[str, Any]:
    """Who the message would notify. Only ``content`` pings (mentions inside embeds are shown but do
    not notify; message.mdx, Allowed Mentions Object: "mentions in the message content, or the content
    of components"). Without ``allowed_mentions`` a webhook parses user mentions only (message.mdx,
    "Default Settings for Allowed Mentions": interactions and webhooks default to parse ["users"])."""
    content = body.get("content") or ""
    mentions = body.get("allowed_mentions")
    if mentions is None:
        mentions = {"parse": ["users"]}
    parse = mentions.get("parse", [])
    role_ids = re.findall(r"<@&([0-9]+)>", content)
    user_ids = re.findall(r"<@!?([0-9]+)>", content)
    return {
        "everyone": ("@everyone" in content or "@here" in content) and "everyone" in parse,
        "roles": sorted({r for r in role_ids if "roles" in parse or r in (mentions.get("roles") or [])}),
        "users": sorted({u for u in user_ids if "users" in parse or u in (mentions.get("users") or [])}),
    }
