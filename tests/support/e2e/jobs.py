"""A Pipeline job as the controller loads it from ``config.xml`` (workflow-job's ``WorkflowJob``).

Only what the end-to-end world acts on is read, each from the element the real class binds:
``definition`` of class ``org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition`` (``scm`` — a
``hudson.plugins.git.GitSCM`` with ``userRemoteConfigs`` and ``branches`` — ``scriptPath`` and
``lightweight``), the ``PipelineTriggersJobProperty`` with ``com.cloudbees.jenkins.GitHubPushTrigger``,
``ParametersDefinitionProperty`` (boolean, string and choice parameter definitions with their defaults, which
``ParameterizedJobMixIn`` fills in for a build scheduled without values; a choice's default is its first
choice, core's ``ChoiceParameterDefinition.getDefaultParameterValue``), and
``DisableConcurrentBuildsJobProperty``. Anything else in the file is ignored, as it would be here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Dict, Tuple

from .scm import GitScm

CPS_SCM = "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition"
PROPS = "properties/"


class JobConfigError(ValueError):
    """The config.xml is not a job the world (or a controller) can run."""


@dataclass(frozen=True)
class Job:
    full_name: str
    definition_scm: GitScm
    script_path: str
    lightweight: bool
    github_push: bool
    parameters: Tuple[Tuple[str, str, str], ...]  # (name, kind, default)
    concurrent: bool

    def default_parameters(self) -> Dict[str, object]:
        return {name: _value(kind, default) for name, kind, default in self.parameters}

    def parameter_values(self, given: Dict[str, str]) -> Dict[str, object]:
        """``ParametersDefinitionProperty.buildWithParameters``: each definition takes the request's value or its default."""
        return {name: _value(kind, given.get(name, default)) for name, kind, default in self.parameters}


def _value(kind: str, text: str) -> object:
    if kind == "boolean":
        return str(text).strip().lower() == "true"  # BooleanParameterDefinition.createValue: Boolean.parseBoolean
    return text


def load(full_name: str, config_xml: bytes) -> Job:
    root = ET.fromstring(config_xml)
    if root.tag != "flow-definition":
        raise JobConfigError(f"{full_name}: not a Pipeline job ({root.tag})")
    definition = root.find("definition")
    if definition is None or definition.get("class") != CPS_SCM:
        raise JobConfigError(f"{full_name}: the definition is not 'Pipeline script from SCM'")
    scm = definition.find("scm")
    if scm is None or scm.get("class") != "hudson.plugins.git.GitSCM":
        raise JobConfigError(f"{full_name}: the definition's SCM is not git")
    remotes = scm.findall("userRemoteConfigs/hudson.plugins.git.UserRemoteConfig")
    branches = scm.findall("branches/hudson.plugins.git.BranchSpec")
    if len(remotes) != 1 or len(branches) != 1:
        raise JobConfigError(f"{full_name}: expected one remote and one branch spec")
    git = GitScm(remotes[0].findtext("url", ""), branches[0].findtext("name", "").strip(),
                 remotes[0].findtext("credentialsId"))
    params = []
    for d in root.findall(PROPS + "hudson.model.ParametersDefinitionProperty/parameterDefinitions/*"):
        kind = {"hudson.model.BooleanParameterDefinition": "boolean",
                "hudson.model.StringParameterDefinition": "string",
                "hudson.model.ChoiceParameterDefinition": "choice"}.get(d.tag)
        if kind is None:
            raise JobConfigError(f"{full_name}: parameter type {d.tag} is not modelled")
        default = d.findtext("defaultValue", "")
        if kind == "choice":
            # core's ChoiceParameterDefinition keeps `List<String> choices`; XStream writes an ArrayList as
            # <choices><string>…, and the Arrays.asList a form save makes (setChoicesText) as
            # <choices class="java.util.Arrays$ArrayList"><a class="string-array"><string>…: Jenkins reads both.
            default = (d.findall("choices//string") or [ET.Element("string")])[0].text or ""
        params.append((d.findtext("name", ""), kind, default))
    triggers = root.findall(PROPS + "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty/"
                                    "triggers/com.cloudbees.jenkins.GitHubPushTrigger")
    concurrent = root.find(PROPS + "org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty") is None
    return Job(full_name, git, definition.findtext("scriptPath", "Jenkinsfile"),
               definition.findtext("lightweight", "false").strip() == "true", bool(triggers), tuple(params), concurrent)
