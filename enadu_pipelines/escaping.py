"""Jinja2 filters that turn data into literals of the language it lands in.

Templates never paste a value raw: Groovy gets single-quoted string literals (no ``${}``
interpolation), YAML gets JSON-style double-quoted scalars, XML gets entity-escaped text. Shell never
gets data at all: the ``vars/`` steps pass values to ``sh`` through ``withEnv`` and quote ``"$VAR"``.

Groovy 2.4 runs a ``UnicodeEscapingReader`` over the source *before* lexing (as javac does), so a
``\\u0027`` in the source is a quote. Escaping every backslash keeps such a sequence inert (an even
number of backslashes is not an escape), and we emit ``\\uXXXX`` only for non-ASCII characters,
which cannot close a string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

_GROOVY_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
# Printable ASCII but the backslash and the quote: characters a Groovy literal holds as themselves
# (most values are only these; the per-character loop below was a fifth of rendering 500 services).
_GROOVY_PLAIN = re.compile(r"[ -&(-\[\]-~]*")


def groovy_string(value: object) -> str:
    """A single-quoted Groovy string literal holding ``value`` exactly."""
    if not isinstance(value, str):
        raise TypeError(f"groovy_string needs text, got {type(value).__name__}")
    if _GROOVY_PLAIN.fullmatch(value):
        return f"'{value}'"
    out = ["'"]
    for ch in value:
        out.append(_GROOVY_ESCAPES[ch] if ch in _GROOVY_ESCAPES else _groovy_char(ch))
    out.append("'")
    return "".join(out)


def _groovy_char(ch: str) -> str:
    """One character of a single-quoted Groovy literal, other than those each literal escapes itself:
    printable ASCII as it is, non-ASCII as ``\\uXXXX`` (UTF-16 units, so a source file's encoding never
    matters), control characters refused."""
    code = ord(ch)
    if code < 0x20 or code == 0x7F:
        raise ValueError(f"control character U+{code:04X} cannot be written into Groovy")
    if code > 0x7E:
        encoded = ch.encode("utf-16-be")
        return "".join(f"\\u{encoded[i]:02x}{encoded[i + 1]:02x}" for i in range(0, len(encoded), 2))
    return ch


def groovy_value(value: object) -> str:
    """A Groovy literal for text, booleans, whole numbers, lists and maps of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return groovy_string(value)
    if value is None:
        return "null"
    if isinstance(value, dict):
        if not value:
            return "[:]"
        return "[" + ", ".join(f"{groovy_string(str(k))}: {groovy_value(v)}" for k, v in value.items()) + "]"
    if isinstance(value, Iterable):
        return "[" + ", ".join(groovy_value(v) for v in value) + "]"
    raise TypeError(f"no Groovy literal for {type(value).__name__}")


def groovy_multiline(value: object) -> str:
    """A triple-single-quoted Groovy string literal holding ``value`` (text ending in a newline, such as
    YAML) exactly and readably: ``'''\\`` then the lines as they are. No ``${}`` interpolation (single
    quotes); every backslash is doubled (so no unicode escape or line continuation can form), a quote
    is escaped when another follows it (so no ``'''`` closes the string early), non-ASCII characters
    become ``\\uXXXX`` and control characters other than the newline are refused."""
    if not isinstance(value, str):
        raise TypeError(f"groovy_multiline needs text, got {type(value).__name__}")
    if not value.endswith("\n"):
        raise ValueError("groovy_multiline needs text that ends with a newline")
    out = ["'''\\\n"]
    for i, ch in enumerate(value):
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'" if value[i + 1:i + 2] == "'" else "'")
        elif ch == "\n":
            out.append(ch)
        else:
            out.append(_groovy_char(ch))
    out.append("'''")
    return "".join(out)


def groovy_comment(value: object) -> str:
    """Text safe inside a ``//`` line comment: one line, no unicode escapes that javac-style
    preprocessing could turn into a newline."""
    text = str(value)
    return "".join(ch if 0x20 <= ord(ch) < 0x7F and ch != "\\" else "?" for ch in text)


def yaml_string(value: object) -> str:
    """A double-quoted YAML scalar (JSON string syntax is valid YAML)."""
    return json.dumps(str(value), ensure_ascii=False)


def xml_text(value: object) -> str:
    """Text escaped for XML element content and attribute values."""
    text = str(value)
    for ch in text:
        code = ord(ch)
        if code < 0x20 and ch not in "\t\n\r":
            raise ValueError(f"control character U+{code:04X} cannot be written into XML")
    # Character references for \t \n \r: XML parsers normalise the raw characters (line ends in
    # content, all three in attribute values), references survive exactly.
    for raw, ref in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&apos;"),
                     ("\t", "&#9;"), ("\n", "&#10;"), ("\r", "&#13;")):
        text = text.replace(raw, ref)
    return text
