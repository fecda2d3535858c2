"""Load YAML and remember where every key came from.

Validation errors must name the file, the line and the key path (``enadu.yaml:14:
services.backend.branch: ...``). PyYAML's ``SafeLoader`` keeps marks on nodes but drops them when
it builds Python objects, so we compose the node tree ourselves and record, for each key path, the
line of its key. Duplicate keys, which PyYAML silently lets the last one win, are errors here;
YAML merge keys (``<<``) are resolved by the spec (https://yaml.org/type/merge.html): the mapping's own
keys override merged ones, and of several merged mappings the earlier one wins.

Two rules hold for every value of the document, whatever field it lands in, so no field can forget
them (and the JSON Schema carries them too, see :mod:`enadu_pipelines.configtypes`):

- No text may contain an *unsafe character*: a control character (C0, DEL, C1: XML 1.0, in which
  Jenkins stores a job's config.xml, has no way to write most of them, and consoles obey them), a line
  or paragraph separator (line breaks to JavaScript, YAML 1.1 and Discord), a bidirectional control
  (displayed text that differs from the text), a surrogate (not encodable) or a non-character
  (U+FFFE, U+FFFF, U+FDD0-U+FDEF and their equivalents in every plane; not XML characters either). A YAML
  escape such as ``"\\u2028"`` writes any character, so the check runs on the loaded values, not the file.
- Numbers follow JSON's model, as JSON Schema does: ``2.0`` is the whole number 2.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

# Unsafe characters (see the module docstring), as code point ranges. ``UNSAFE_CLASS`` is the body of a
# regular expression character class of them, written with the characters themselves (not escapes)
# so that Python's ``re`` and JSON Schema's ECMA-262 patterns read it alike.
UNSAFE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00, 0x1F), (0x7F, 0x9F),      # C0 controls (tab and newline included: every value is one line), DEL, C1
    (0x2028, 0x2029),                # line and paragraph separators
    (0x202A, 0x202E), (0x2066, 0x2069),  # bidirectional embeddings, overrides and isolates
    (0xD800, 0xDFFF),                # surrogates
    (0xFDD0, 0xFDEF),                # non-characters
    *((plane * 0x10000 + 0xFFFE, plane * 0x10000 + 0xFFFF) for plane in range(17)),  # non-characters
)
UNSAFE_CLASS = "".join(chr(lo) if lo == hi else f"{chr(lo)}-{chr(hi)}" for lo, hi in UNSAFE_RANGES)
UNSAFE = re.compile(f"[{UNSAFE_CLASS}]")
UNSAFE_REASON = ("is not allowed in any value (no control characters, line or paragraph separators,"
                 " bidirectional controls, surrogates or non-characters)")


def unsafe_character(text: str) -> tuple[int, str] | None:
    """The (0-based) index and the description (``U+2028 (LINE SEPARATOR)``) of the first unsafe
    character of ``text``, or None."""
    found = UNSAFE.search(text)
    if found is None:
        return None
    char = found.group()
    name = unicodedata.name(char, "") if not 0xD800 <= ord(char) <= 0xDFFF else ""
    return found.start(), f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def shown_text(text: str) -> str:
    """``text`` with its unsafe characters written as escapes, for a message."""
    return UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}" if ord(m.group()) < 0x10000 else f"\\U{ord(m.group()):08x}",
                      text)


class YamlSourceError(Exception):
    """Raised with the line (1-based, or 0 when unknown) and a message; the caller adds the file."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class Located:
    """Plain Python data plus the line of every key path inside it."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int:
        """The line of ``path``, or of its nearest ancestor that has one (0 if none)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line:
                return line
        return 0


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when installed: 3x faster
    """SafeLoader; only scalars are constructed through it, collections are walked by hand."""


def load(text: str) -> Located:
    """Parse one YAML document from ``text``; an empty document is an empty mapping."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            located = Located(data={}, lines={(): 1})
            if node is not None:
                located.data = _build(loader, node, (), located.lines, _Walk())
            return located
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as e:
        # A character YAML does not allow in a file at all (a NUL byte, a raw C1 control); the error
        # carries an offset (in characters for PyYAML, in UTF-8 bytes for libyaml), so find it again.
        found = yaml.reader.Reader.NON_PRINTABLE.search(text)
        if found is None:
            raise YamlSourceError(0, f"invalid YAML: {e.reason}") from e
        line = text.count("\n", 0, found.start()) + 1
        column = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
        raise YamlSourceError(line, f"invalid YAML: U+{ord(found.group()):04X} at column {column} {UNSAFE_REASON}") from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 0
        problem = e.problem or e.context or "invalid YAML"
        raise YamlSourceError(line, f"invalid YAML: {problem}") from e
    except yaml.YAMLError as e:
        raise YamlSourceError(0, "invalid YAML: " + " ".join(str(e).split())) from e  # one line


def load_file(path: Path) -> Located:
    """Read and parse ``path``; decoding errors are reported like YAML errors."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise YamlSourceError(line, "file is not valid UTF-8") from e
    return load(text)


MAX_VALUES = 100_000  # far above any real enadu.yaml; stops "billion laughs" alias expansion


class _Walk:
    """Guards the walk over the node graph: YAML aliases make it a graph, possibly cyclic or
    exponentially large when expanded."""

    def __init__(self) -> None:
        self.count = 0
        self.active: set[int] = set()


def _build(loader: _Loader, node: yaml.Node, path: Path_, lines: dict[Path_, int], walk: _Walk) -> Any:
    walk.count += 1
    if walk.count > MAX_VALUES:
        raise YamlSourceError(node.start_mark.line + 1,
                              f"the document expands to more than {MAX_VALUES} values (YAML aliases?)")
    if id(node) in walk.active:
        raise YamlSourceError(node.start_mark.line + 1, f"{dotted(path)}: a YAML alias refers to itself")
    walk.active.add(id(node))
    try:
        return _build_node(loader, node, path, lines, walk)
    finally:
        walk.active.discard(id(node))


def _build_node(loader: _Loader, node: yaml.Node, path: Path_, lines: dict[Path_, int], walk: _Walk) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key, key_node, value_node in _entries(loader, node, path, walk):
            lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _build(loader, value_node, path + (key,), lines, walk)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (i,), lines, walk) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    return _checked_scalar(value, path, node)


def _checked_scalar(value: Any, path: Path_, node: yaml.Node) -> Any:
    if isinstance(value, str):
        found = unsafe_character(value)
        if found:
            raise YamlSourceError(node.start_mark.line + 1, f"{dotted(path)}: {found[1]} at character {found[0] + 1} {UNSAFE_REASON}")
    elif isinstance(value, float) and value.is_integer():
        return int(value)  # JSON's number model: 2.0 is the whole number 2
    return value


_MERGE = "tag:yaml.org,2002:merge"


def _entries(loader: _Loader, node: yaml.MappingNode, path: Path_, walk: _Walk) -> list[tuple[Any, yaml.Node, yaml.Node]]:
    """The (key, key node, value node) entries of a mapping, merge keys resolved as
    https://yaml.org/type/merge.html says: the mapping's own keys first (a key given twice is an error),
    then each merged mapping's keys that are not yet there, the earlier mapping first. PyYAML's own
    ``flatten_mapping`` cannot be used: it rewrites the (shared, anchored) nodes in place and loses
    which keys were the mapping's own, so an override would look like a duplicate."""
    own: dict[Any, tuple[yaml.Node, yaml.Node]] = {}
    merged: list[yaml.Node] = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            merged += _merge_sources(key_node, value_node, path)
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            raise YamlSourceError(key_node.start_mark.line + 1, "mapping keys must be plain scalars")
        key = loader.construct_object(key_node)
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            key = str(key)
        key = _checked_scalar(key, path + (key,), key_node)
        if key in own:
            raise YamlSourceError(
                key_node.start_mark.line + 1,
                f"{dotted(path + (key,))}: duplicate key (first given on line {own[key][0].start_mark.line + 1})",
            )
        own[key] = (key_node, value_node)
    entries = [(key, k, v) for key, (k, v) in own.items()]
    seen = set(own)
    for source in merged:
        walk.count += 1
        if walk.count > MAX_VALUES:
            raise YamlSourceError(source.start_mark.line + 1,
                                  f"the document expands to more than {MAX_VALUES} values (YAML aliases?)")
        if id(source) in walk.active:
            raise YamlSourceError(source.start_mark.line + 1, f"{dotted(path)}: a YAML alias refers to itself")
        walk.active.add(id(source))
        try:
            inherited = _entries(loader, source, path, walk)
        finally:
            walk.active.discard(id(source))
        for key, key_node, value_node in inherited:
            if key not in seen:
                seen.add(key)
                entries.append((key, key_node, value_node))
    return entries


def _merge_sources(key_node: yaml.Node, value_node: yaml.Node, path: Path_) -> list[yaml.MappingNode]:
    if isinstance(value_node, yaml.MappingNode):
        return [value_node]
    if isinstance(value_node, yaml.SequenceNode) and all(isinstance(n, yaml.MappingNode) for n in value_node.value):
        return list(value_node.value)
    raise YamlSourceError(key_node.start_mark.line + 1,
                          f"{dotted(path)}: a merge key (<<) takes a mapping or a list of mappings")


def dotted(path: Path_) -> str:
    """``("services", "backend", "paths", 0)`` → ``services.backend.paths[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + shown_text(str(part))
    return out or "(top level)"
