"""How a Jenkins controller loads and re-serialises an item's config.xml, imitated for the fake.

Jenkins does not store or return the bytes it is sent. It loads them into objects with XStream and
writes the objects back out, and that round trip is what a client sees on ``GET config.xml``:

* Loading (``hudson.util.RobustReflectionConverter.doUnmarshal``): an element whose class cannot be
  resolved — its plugin is not installed — is skipped and reported to ``OldDataMonitor``
  (``addErrorInContext``); the item is still created or updated without it. Only the root class
  is fatal: ``Items.load`` then fails and ``createProjectFromXML`` deletes the item's directory and
  rethrows, which the servlet answers with HTTP 500.
* Writing (``AbstractItem.writeConfigDotXml`` → ``XStream2.toXMLUTF8``): the declaration becomes
  ``<?xml version="1.1" encoding="UTF-8"?>``, elements are indented by two spaces, and
  ``plugin="shortName@version"`` is written on each element whose class a plugin owns when it
  differs from the closest owned ancestor's (``RobustReflectionConverter.OwnerContext``), with the
  version trimmed at the first space (``XStream2.trimVersion``). Attributes the client sent as
  ``plugin`` are not kept: they are recomputed.
* Primitive fields are always written, so a field a client left out comes back with its Java
  default (e.g. ``hudson.tasks.LogRotator#removeLastBuild`` is a ``boolean``). The fake knows the
  few such fields of the classes bootstrap writes, in :data:`PRIMITIVE_DEFAULTS`.

Which plugin owns a class is approximated by package prefix (:data:`CLASS_OWNERS`); classes in
core packages have no owner; any other class is unknown, as if its plugin were not installed.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

# XStream aliases of root elements (workflow-job registers "flow-definition" for WorkflowJob).
ROOT_ALIASES = {
    "flow-definition": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
    "project": "hudson.model.FreeStyleProject",
}
CLASS_OWNERS = (
    ("org.jenkinsci.plugins.workflow.job.", "workflow-job"),
    ("org.jenkinsci.plugins.workflow.cps.", "workflow-cps"),
    ("org.jenkinsci.plugins.pipeline.modeldefinition.", "pipeline-model-definition"),
    ("hudson.plugins.git.", "git"),
    ("jenkins.plugins.git.", "git"),
    ("com.cloudbees.jenkins.GitHub", "github"),
    ("com.coravy.hudson.plugins.github.", "github"),
    ("com.cloudbees.hudson.plugins.folder.", "cloudbees-folder"),
)
CORE_PREFIXES = ("hudson.", "jenkins.", "java.", "org.kohsuke.")
FOLDER_CLASSES = frozenset({"com.cloudbees.hudson.plugins.folder.Folder"})
PRIMITIVE_DEFAULTS = {
    # core/src/main/java/hudson/tasks/LogRotator.java: `private boolean removeLastBuild;`
    "hudson.tasks.LogRotator": (("removeLastBuild", "false"),),
    # workflow-job DisableConcurrentBuildsJobProperty: `private boolean abortPrevious;`
    "org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty": (("abortPrevious", "false"),),
}
DEFAULT_PLUGINS = {
    "workflow-job": "1540.v295eccc9778f",
    "workflow-cps": "4106.v7a_8a_8176d450",
    "pipeline-model-definition": "2.2255.v56a_15e805f12",
    "git": "5.7.0",
    "github": "1.43.0",
    "cloudbees-folder": "6.1012.v79a_86a_1ea_c1f",
}


class LoadError(Exception):
    """The root class cannot be resolved (or the XML is not XML): Jenkins answers HTTP 500."""


def class_of(elem: ET.Element, *, root: bool = False) -> str | None:
    """The Java class an element stands for, or None for a plain field of a declared type."""
    if root:
        return ROOT_ALIASES.get(elem.tag, elem.tag)
    if "class" in elem.attrib:
        return elem.attrib["class"]
    return elem.tag if "." in elem.tag else None


def owner_of(cls: str) -> str | None:
    """The plugin owning ``cls``; None for core classes and XStream aliases; "?" if unknown."""
    if "." not in cls:
        return None  # an alias such as "empty-list" or "string"
    for prefix, plugin in CLASS_OWNERS:
        if cls.startswith(prefix):
            return plugin
    if cls.startswith(CORE_PREFIXES):
        return None
    return "?"


class Serializer:
    """Load and write config.xml the way a controller with ``plugins`` installed does."""

    def __init__(self, plugins: dict[str, str]) -> None:
        self.plugins = plugins  # shortName -> version of installed, active plugins
        self.old_data: list[str] = []  # what RobustReflectionConverter skipped, as OldDataMonitor would list

    def resolvable(self, cls: str) -> bool:
        owner = owner_of(cls)
        return owner is None or owner in self.plugins

    def load(self, data: bytes, item: str) -> ET.Element:
        try:
            root = ET.fromstring(data)
        except ET.ParseError as e:
            raise LoadError(f"Failed to persist config.xml: {e}") from None
        cls = class_of(root, root=True)
        if not self.resolvable(cls):
            raise LoadError(f"Unable to read config.xml of {item}: "
                            f"com.thoughtworks.xstream.mapper.CannotResolveClassException: {root.tag}")
        root = copy.deepcopy(root)
        self._drop_unresolvable(root, item)
        self._add_defaults(root)
        return root

    def _drop_unresolvable(self, parent: ET.Element, item: str) -> None:
        for child in list(parent):
            cls = class_of(child)
            if cls is not None and not self.resolvable(cls):
                parent.remove(child)
                self.old_data.append(f"{item}: CannotResolveClassException: {cls}")
                continue
            self._drop_unresolvable(child, item)

    def _add_defaults(self, root: ET.Element) -> None:
        for elem in root.iter():
            cls = class_of(elem, root=elem is root)
            for name, value in PRIMITIVE_DEFAULTS.get(cls or "", ()):
                if elem.find(name) is None:
                    ET.SubElement(elem, name).text = value

    def write(self, root: ET.Element) -> bytes:
        lines = ['<?xml version="1.1" encoding="UTF-8"?>']
        self._write(root, 0, [], lines, is_root=True)
        return ("\n".join(lines) + "\n").encode("utf-8")

    def _write(self, elem: ET.Element, depth: int, owners: list[str | None], out: list[str], *, is_root: bool = False) -> None:
        cls = class_of(elem, root=is_root)
        owner = owner_of(cls) if cls else None
        attrs = [(k, v) for k, v in elem.attrib.items() if k != "plugin"]
        if owner is not None and owner != "?":
            closest = next((o for o in owners if o is not None), None)
            if closest != owner:
                attrs.append(("plugin", f"{owner}@{self.plugins[owner].split(' ')[0]}"))
        attr_text = "".join(f' {k}="{_escape(v)}"' for k, v in attrs)
        pad = "  " * depth
        children = list(elem)
        if children:
            out.append(f"{pad}<{elem.tag}{attr_text}>")
            for child in children:
                self._write(child, depth + 1, [owner, *owners], out)
            out.append(f"{pad}</{elem.tag}>")
        elif elem.text and elem.text.strip():
            out.append(f"{pad}<{elem.tag}{attr_text}>{_escape(elem.text)}</{elem.tag}>")
        else:
            out.append(f"{pad}<{elem.tag}{attr_text}/>")


def _escape(text: str) -> str:
    # com.thoughtworks.xstream.io.xml.PrettyPrintWriter escapes these five and carriage returns.
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;").replace("\r", "&#xd;"))
