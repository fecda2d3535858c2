"""The Discord message that ``notify`` posts: one embed, built so Discord can never reject it.

Discord answers 400 to an embed that breaks any of its limits
(https://discord.com/developers/docs/resources/message#embed-object-embed-limits): title 256,
description 4096, 25 fields, field name 256, field value 1024, footer 2048, author name 256, and
6000 characters across all of them. A build notification carries text nobody controls (commit
messages, branch names, deploy errors), so every string is cleaned and cut here, with an ellipsis,
before it goes out; a message that is merely shorter beats a message that is lost.

Two details decide whether "fits" really fits:

* Discord trims leading and trailing whitespace before it counts, and an empty field name or value
  is "This field is required"; so we trim too and never leave a part empty.
* The docs say "characters" without saying which; we count UTF-16 code units, which is never fewer
  than code points, so a message that fits by our count fits under either reading.

``allowed_mentions`` parses nothing (a commit message saying ``@everyone`` pings no one); the only
ping we ever send is the configured role, on FAILURE, listed by id
(https://discord.com/developers/docs/resources/message#allowed-mentions-object).

Pure standard library: ``notify --dry-run`` builds this without importing requests.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Dict, List, Optional

ELLIPSIS = "\u2026"
PLACEHOLDER = "\u2014"  # what an empty part shows instead (Discord rejects empty field names/values)

# https://discord.com/developers/docs/resources/message#embed-object-embed-limits
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
AUTHOR_MAX = 256
TOTAL_MAX = 6000
# https://discord.com/developers/docs/resources/webhook#execute-webhook (content up to 2000)
CONTENT_MAX = 2000

RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "ABORTED", "NOT_BUILT")
COLOURS = {
    "SUCCESS": 0x2ECC71,  # green
    "UNSTABLE": 0xF1C40F,  # yellow
    "FAILURE": 0xE74C3C,  # red
    "ABORTED": 0x95A5A6,  # grey
    "NOT_BUILT": 0x607D8B,  # blue-grey
}
HEADLINES = {
    "SUCCESS": "\u2705 Build succeeded",
    "UNSTABLE": "\u26a0\ufe0f Build unstable",
    "FAILURE": "\u274c Build failed",
    "ABORTED": "\u23f9\ufe0f Build aborted",
    "NOT_BUILT": "\u23ed\ufe0f Not built",
}


def units(text: str) -> int:
    """Length in UTF-16 code units (a code point above U+FFFF counts twice)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def clean(text: object) -> str:
    """Text Discord will keep as it is: no lone surrogates, no control characters but newline and
    tab, no non-characters, no surrounding whitespace."""
    kept = []
    for ch in str(text):
        if ch in "\n\t":
            kept.append(ch)
            continue
        category = unicodedata.category(ch)
        if category == "Cs":  # lone surrogate (e.g. a non-UTF-8 byte smuggled in through os.environ)
            kept.append("\ufffd")
        elif category == "Cc" or (ord(ch) & 0xFFFE) == 0xFFFE or 0xFDD0 <= ord(ch) <= 0xFDEF:
            continue
        else:
            kept.append(ch)
    return "".join(kept).strip()


def cut(text: str, limit: int) -> str:
    """``text`` cleaned, and cut to at most ``limit`` UTF-16 units ending in an ellipsis if too long;
    never empty."""
    text = clean(text) or PLACEHOLDER
    if units(text) <= limit:
        return text
    room = max(limit - 1, 0)
    out, used = [], 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > room:
            break
        out.append(ch)
        used += width
    head = "".join(out).rstrip()
    return head + ELLIPSIS if head else ELLIPSIS


@dataclass
class Field:
    name: str
    value: str
    inline: bool = False


@dataclass
class Message:
    """What the notification says, before Discord's limits are applied."""

    title: str
    description: str
    colour: int
    fields: List[Field] = field(default_factory=list)
    url: Optional[str] = None
    author: Optional[str] = None
    footer: Optional[str] = None
    timestamp: Optional[str] = None
    content: Optional[str] = None  # plain text outside the embed: only used for the role ping
    ping_role: Optional[str] = None


def _fit_fields(fields: List[Field]) -> List[Field]:
    if len(fields) <= FIELDS_MAX:
        return list(fields)
    kept = list(fields[: FIELDS_MAX - 1])
    kept.append(Field("\u2026", f"{len(fields) - len(kept)} more fields not shown"))
    return kept


def _shrink_to_total(parts: List[List[object]]) -> None:
    """Cut the longest parts until all of them together fit ``TOTAL_MAX``.

    ``parts`` are ``[text, limit]`` pairs, changed in place. Each round cuts the longest part by the
    excess (but not below one character plus the ellipsis), so the loop ends after at most one round
    per part.
    """
    while True:
        total = sum(units(str(p[0])) for p in parts)
        excess = total - TOTAL_MAX
        if excess <= 0:
            return
        longest = max(parts, key=lambda p: units(str(p[0])))
        size = units(str(longest[0]))
        if size <= 2:  # everything is already minimal; cannot happen with <= 25 fields
            return
        longest[0] = cut(str(longest[0]), max(size - excess, 2))


def payload(message: Message) -> Dict[str, object]:
    """The JSON body for Discord's Execute Webhook, with every limit enforced."""
    fields = _fit_fields(message.fields)
    # [text, limit] pairs in the order Discord counts them; cut each to its own limit first.
    parts: List[List[object]] = [[cut(message.title, TITLE_MAX), TITLE_MAX],
                                 [cut(message.description, DESCRIPTION_MAX), DESCRIPTION_MAX]]
    for f in fields:
        parts.append([cut(f.name, FIELD_NAME_MAX), FIELD_NAME_MAX])
        parts.append([cut(f.value, FIELD_VALUE_MAX), FIELD_VALUE_MAX])
    if message.footer is not None:
        parts.append([cut(message.footer, FOOTER_MAX), FOOTER_MAX])
    if message.author is not None:
        parts.append([cut(message.author, AUTHOR_MAX), AUTHOR_MAX])
    _shrink_to_total(parts)

    texts = iter(str(p[0]) for p in parts)
    embed: Dict[str, object] = {"title": next(texts), "description": next(texts), "color": message.colour}
    if message.url:
        embed["url"] = message.url
    embed["fields"] = [{"name": next(texts), "value": next(texts), "inline": f.inline} for f in fields]
    if message.footer is not None:
        embed["footer"] = {"text": next(texts)}
    if message.author is not None:
        embed["author"] = {"name": next(texts)}
    if message.timestamp:
        embed["timestamp"] = message.timestamp

    body: Dict[str, object] = {}
    mentions: Dict[str, object] = {"parse": []}
    if message.content:
        body["content"] = cut(message.content, CONTENT_MAX)
    if message.ping_role:
        mentions["roles"] = [message.ping_role]
    body["embeds"] = [embed]
    body["allowed_mentions"] = mentions
    return body

