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
* A cut never splits a user-perceived character: a family emoji (four people joined by ZWJ), a flag
  (two regional indicators), a letter and its combining accents are kept whole or dropped whole.
  ``graphemes`` segments conservatively after UAX #29 (https://unicode.org/reports/tr29/) using
  only ``unicodedata``: it never breaks inside a cluster that UAX #29 keeps together, and may keep
  together two clusters UAX #29 would separate (a ZWJ before any character, a virama before any
  letter), which only ever makes a cut a little shorter. Hand-written rather than a library: the
  ``regex`` module (``\\X``) has a C extension, which cannot go in the bundle; the pure-Python
  ``grapheme`` package is unmaintained since 2020 (Unicode 13); and some 60 lines need no new
  hash-pinned wheel in the helper. Characters newer than the agent's Python knows (``unicodedata``
  says unassigned) are cut like letters; ZWJ sequences stay whole whatever their emoji.
  tests/test_notify_payload.py checks every boundary against ``regex``'s ``\\X``.

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


# Grapheme_Cluster_Break=Prepend (Unicode 16 GraphemeBreakProperty.txt): no break after these.
_PREPEND = frozenset([*range(0x600, 0x606), 0x6DD, 0x70F, 0x890, 0x891, 0x8E2, 0xD4E, 0x110BD, 0x110CD, 0x111C2,
                      0x111C3, 0x1193F, 0x11941, 0x11A3A, *range(0x11A84, 0x11A8A), 0x11D46, 0x11F02])
_ZWJ = "\u200d"


def _hangul(ch: str) -> str:
    """Hangul_Syllable_Type of ``ch``: L, V, T, LV, LVT or '' (UAX #29 rules GB6-GB8)."""
    cp = ord(ch)
    if 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97C:
        return "L"
    if 0x1160 <= cp <= 0x11A7 or 0xD7B0 <= cp <= 0xD7C6:
        return "V"
    if 0x11A8 <= cp <= 0x11FF or 0xD7CB <= cp <= 0xD7FB:
        return "T"
    if 0xAC00 <= cp <= 0xD7A3:
        return "LV" if (cp - 0xAC00) % 28 == 0 else "LVT"
    return ""


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _mark(ch: str) -> bool:
    """Extend, ZWJ or SpacingMark (UAX #29 GB9, GB9a): combining marks, variation selectors, skin
    tones, tag characters, ZWNJ/ZWJ, halfwidth sound marks, Thai and Lao AM."""
    cp = ord(ch)
    return unicodedata.category(ch) in ("Mn", "Me", "Mc") or ch in (_ZWJ, "\u200c") or 0x1F3FB <= cp <= 0x1F3FF \
        or 0xE0020 <= cp <= 0xE007F or 0xFF9E <= cp <= 0xFF9F or cp in (0xE33, 0xEB3)


def _joins(before: str, ch: str, ri_run: int, linked: bool) -> bool:
    """Whether UAX #29 may keep ``ch`` in the cluster that ends with ``before`` (conservatively: when
    in doubt, keep together). ``ri_run`` counts the regional indicators that end the cluster;
    ``linked`` says a virama came after its last letter (only marks since)."""
    if before == "\r":
        return ch == "\n"  # GB3, GB4
    if ch in "\r\n" or before == "\n":
        return False  # GB4, GB5
    if _mark(ch):
        return True  # GB9, GB9a
    category = unicodedata.category(ch)
    if before == _ZWJ or ord(before) in _PREPEND:
        return True  # GB11 (conservatively: after any ZWJ), GB9b
    if linked and category.startswith("L"):
        return True  # GB9c: a virama (Indic linker), maybe more marks, then a consonant; conservatively any letter
    if _regional(before) and _regional(ch):
        return ri_run % 2 == 1  # GB12, GB13: flags are pairs
    a, b = _hangul(before), _hangul(ch)
    return bool(a and b) and (b in ("V", "T") if a in ("LV", "V") else b == "T" if a in ("LVT", "T")
                              else a == "L")  # GB6-GB8


def graphemes(text: str) -> List[str]:
    """``text`` split into (conservative) extended grapheme clusters; see the module docstring."""
    clusters: List[str] = []
    current: List[str] = []
    ri_run, linked = 0, False
    for ch in text:
        if current and not _joins(current[-1], ch, ri_run, linked):
            clusters.append("".join(current))
            current, ri_run, linked = [], 0, False
        current.append(ch)
        ri_run = ri_run + 1 if _regional(ch) else 0
        linked = unicodedata.combining(ch) == 9 or (linked and _mark(ch))
    if current:
        clusters.append("".join(current))
    return clusters


def cut(text: str, limit: int) -> str:
    """``text`` cleaned, and cut to at most ``limit`` UTF-16 units ending in an ellipsis if too long,
    on a grapheme cluster boundary; never empty."""
    text = clean(text) or PLACEHOLDER
    if units(text) <= limit:
        return text
    room = max(limit - 1, 0)
    out, used = [], 0
    for cluster in graphemes(text):
        width = units(cluster)
        if used + width > room:
            break
        out.append(cluster)
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

