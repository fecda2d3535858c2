"""Load YAML and remember where every key came from.

Validation errors must name the file, the line and the key path (``enadu.yaml:14:
services.backend.branch: ...``). PyYAML's ``SafeLoader`` keeps marks on nodes but drops them when
it builds Python objects, so we compose the node tree ourselves and record, for each key path, the
line of its key. Duplicate keys, which PyYAML silently lets the last one win, are errors here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


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
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 0
        problem = e.problem or e.context or "invalid YAML"
        raise YamlSourceError(line, f"invalid YAML: {problem}") from e
    except yaml.YAMLError as e:
        raise YamlSourceError(0, f"invalid YAML: {e}") from e


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
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<) the way SafeLoader does
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlSourceError(key_node.start_mark.line + 1, "mapping keys must be plain scalars")
            key = loader.construct_object(key_node)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                key = str(key)
            if key in result:
                raise YamlSourceError(
                    key_node.start_mark.line + 1,
                    f"{dotted(path + (key,))}: duplicate key (first given on line {lines[path + (key,)]})",
                )
            lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _build(loader, value_node, path + (key,), lines, walk)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (i,), lines, walk) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def dotted(path: Path_) -> str:
    """``("services", "backend", "paths", 0)`` → ``services.backend.paths[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"
