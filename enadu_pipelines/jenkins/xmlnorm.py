"""Normalise Jenkins ``config.xml`` so that only meaningful differences count.

Jenkins never hands back the bytes it was sent: ``AbstractItem.doConfigDotXml`` re-serialises the
loaded object with XStream (``Items.XSTREAM2.toXMLUTF8``), which rewrites the XML declaration,
re-indents, orders attributes its own way and stamps ``plugin="name@version"`` on elements whose
class a plugin owns (``RobustReflectionConverter.OwnerContext``). So both sides are reduced to a
canonical tree before comparing:

* whitespace between elements, and around text, is dropped; comments and the declaration go;
* attributes are compared as a set, and ``plugin`` attributes are ignored;
* the root's ``<actions>`` is ignored: it is runtime state (Declarative Pipeline records there
  which job properties its last build set), not configuration;
* children of ``<properties>`` and ``<triggers>`` are compared as sets: Jenkins keeps them in
  ``DescribableList``s whose order means nothing, and a build that re-applies the Jenkinsfile's
  options may reorder them;
* a field element (no dot in its name, no children, no attributes) that exists on one side only
  and holds a Java default (``false``, ``0``, ``-1`` or nothing) is ignored: a newer core or plugin
  adds such primitive fields when it re-serialises, an older one drops fields it does not know, and
  neither is a change anyone made. Class elements (names with a dot) are never ignored, so a
  trigger that Jenkins dropped because its plugin is missing still shows up.

Everything else — text, element order elsewhere, presence of elements — is significant, so an
edit made in the Jenkins UI shows up as a difference and gets reverted.
"""

from __future__ import annotations

import difflib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

IGNORED_ATTRIBUTES = frozenset({"plugin"})
RUNTIME_ELEMENTS = frozenset({"actions"})  # children of the root that are not configuration
UNORDERED_CONTAINERS = frozenset({"properties", "triggers"})
DEFAULT_VALUES = frozenset({"", "false", "0", "-1"})
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class XmlProblem(ValueError):
    """A config.xml that is not well-formed, or uses DTD features we refuse to process."""


@dataclass
class Comparison:
    equal: bool
    diff: str  # unified diff of the canonical forms, live → rendered; "" when equal
    missing_classes: list[str] = field(default_factory=list)  # class names rendered but absent live


def parse(data: bytes) -> ET.Element:
    """Parse config.xml; DOCTYPE and entity declarations are refused (Jenkins never sends them)."""
    if _DOCTYPE.search(data):
        raise XmlProblem("config.xml has a DOCTYPE or entity declaration")
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise XmlProblem(f"config.xml is not well-formed XML ({e})") from None


def canonical(root: ET.Element) -> ET.Element:
    """A new tree in canonical form (see the module docstring); ``root`` is left alone."""
    return _canon(root, is_root=True)


def _canon(elem: ET.Element, *, is_root: bool = False) -> ET.Element:
    out = ET.Element(elem.tag, {k: v for k, v in elem.attrib.items() if k not in IGNORED_ATTRIBUTES})
    children = [c for c in elem if isinstance(c.tag, str)]
    if is_root:
        children = [c for c in children if c.tag not in RUNTIME_ELEMENTS]
    canon_children = [_canon(c) for c in children]
    if elem.tag in UNORDERED_CONTAINERS:
        canon_children.sort(key=_key)
    out.extend(canon_children)
    out.text = None if canon_children else (elem.text or "").strip()
    return out


def _key(elem: ET.Element) -> str:
    return ET.tostring(elem, encoding="unicode")


def _is_default_field(elem: ET.Element) -> bool:
    return "." not in elem.tag and not len(elem) and not elem.attrib and (elem.text or "") in DEFAULT_VALUES


def drop_one_sided_defaults(a: ET.Element, b: ET.Element) -> None:
    """Remove, in place, default-valued field elements that only one of ``a`` and ``b`` has."""
    a_tags = {c.tag for c in a}
    b_tags = {c.tag for c in b}
    for parent, other_tags in ((a, b_tags), (b, a_tags)):
        for child in list(parent):
            if child.tag not in other_tags and _is_default_field(child):
                parent.remove(child)
    # Pair the remaining children by tag and position among their same-tag siblings.
    b_by_tag: dict[str, list[ET.Element]] = {}
    for child in b:
        b_by_tag.setdefault(child.tag, []).append(child)
    seen: dict[str, int] = {}
    for child in a:
        index = seen.get(child.tag, 0)
        seen[child.tag] = index + 1
        partners = b_by_tag.get(child.tag, [])
        if index < len(partners):
            drop_one_sided_defaults(child, partners[index])


def render_text(elem: ET.Element) -> str:
    """Canonical tree as indented text, one element or text per line, for equality and diffs."""
    lines: list[str] = []
    _lines(elem, 0, lines)
    return "\n".join(lines) + "\n"


def _lines(elem: ET.Element, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    attrs = "".join(f' {k}="{_esc(v)}"' for k, v in sorted(elem.attrib.items()))
    if len(elem):
        out.append(f"{pad}<{elem.tag}{attrs}>")
        for child in elem:
            _lines(child, depth + 1, out)
        out.append(f"{pad}</{elem.tag}>")
    elif elem.text:
        out.append(f"{pad}<{elem.tag}{attrs}>{_esc(elem.text)}</{elem.tag}>")
    else:
        out.append(f"{pad}<{elem.tag}{attrs}/>")


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def compare(rendered: bytes, live: bytes, *, name: str = "config.xml") -> Comparison:
    """Compare what we render with what Jenkins holds; raises ``XmlProblem`` if either is not XML."""
    want = canonical(parse(rendered))
    have = canonical(parse(live))
    drop_one_sided_defaults(want, have)
    want_text, have_text = render_text(want), render_text(have)
    if want_text == have_text:
        return Comparison(True, "")
    diff = "".join(difflib.unified_diff(
        have_text.splitlines(keepends=True), want_text.splitlines(keepends=True),
        fromfile=f"{name} (in Jenkins)", tofile=f"{name} (from enadu.yaml)", n=2,
    ))
    return Comparison(False, diff, sorted(_classes(want) - _classes(have)))


def _classes(root: ET.Element) -> set[str]:
    found = {root.tag}
    for elem in root.iter():
        if "." in elem.tag:
            found.add(elem.tag)
        if "class" in elem.attrib:
            found.add(elem.attrib["class"])
    return found


def carry_actions(rendered: bytes, live: bytes) -> bytes:
    """``rendered`` with the root's ``<actions>`` taken from ``live``.

    Updating a job must not wipe what plugins keep there (such as Declarative Pipeline's record of
    the properties its builds set), since we do not own it.
    """
    want = parse(rendered)
    have = parse(live)
    live_actions = have.find("actions")
    if live_actions is None:
        return rendered
    for i, child in enumerate(list(want)):
        if child.tag == "actions":
            want.remove(child)
            want.insert(i, live_actions)
            break
    else:
        want.insert(0, live_actions)
    return b"<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(want, encoding="utf-8", xml_declaration=False)
