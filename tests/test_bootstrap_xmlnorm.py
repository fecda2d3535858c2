"""config.xml normalisation: what Jenkins changes on its own is ignored, what a person changes is not."""

from __future__ import annotations

import pytest

from enadu_pipelines.jenkins import xmlnorm

BASE = b"""<?xml version='1.1' encoding='UTF-8'?>
<flow-definition plugin="workflow-job">
  <actions/>
  <description>svc</description>
  <properties>
    <a.First><x>1</x></a.First>
    <b.Second>
      <triggers><t.One/><t.Two><spec></spec></t.Two></triggers>
    </b.Second>
  </properties>
  <definition class="c.Def" plugin="workflow-cps">
    <scm class="hudson.plugins.git.GitSCM" plugin="git">
      <branches><b><name>main</name></b><b><name>dev</name></b></branches>
    </scm>
    <lightweight>true</lightweight>
  </definition>
</flow-definition>
"""


def equal(a: bytes, b: bytes) -> bool:
    return xmlnorm.compare(a, b).equal


def test_jenkins_reserialisation_is_not_a_difference():
    jenkins_copy = b"""<?xml version="1.1" encoding="UTF-8"?>
<flow-definition plugin="workflow-job@1540.v1">
    <actions>
        <org.jenkinsci.plugins.pipeline.modeldefinition.actions.DeclarativeJobAction plugin="pipeline-model-definition@2.2"/>
    </actions>
    <description>svc</description>
    <properties>
        <b.Second><triggers><t.Two><spec/></t.Two><t.One/></triggers></b.Second>
        <a.First>
            <x>1</x>
        </a.First>
    </properties>
    <definition plugin="workflow-cps@4106.v1" class="c.Def">
        <scm plugin="git@5.7.0" class="hudson.plugins.git.GitSCM">
            <branches><b><name>main</name></b><b><name>dev</name></b></branches>
        </scm>
        <lightweight>true</lightweight>
        <removeLastBuild>false</removeLastBuild>
    </definition>
</flow-definition>"""
    result = xmlnorm.compare(BASE, jenkins_copy)
    assert result.equal, result.diff
    assert result.diff == ""


@pytest.mark.parametrize("old, new", [
    (b"<description>svc</description>", b"<description>svc, edited</description>"),
    (b"<name>main</name></b><b><name>dev</name>", b"<name>dev</name></b><b><name>main</name>"),  # order matters here
    (b"<lightweight>true</lightweight>", b"<lightweight>false</lightweight>"),
    (b'class="c.Def"', b'class="c.Other"'),
    (b"<t.One/>", b""),  # a class element is never an ignorable default
    (b"<x>1</x>", b"<x>1</x><y>yes</y>"),  # an added field with a real value
])
def test_edits_are_differences(old, new):
    assert old in BASE
    edited = BASE.replace(old, new)
    result = xmlnorm.compare(BASE, edited)
    assert not result.equal
    assert result.diff.startswith("--- config.xml (in Jenkins)\n+++ config.xml (from enadu.yaml)\n")


def test_missing_class_elements_are_named():
    live = BASE.replace(b"<t.One/>", b"")
    assert xmlnorm.compare(BASE, live).missing_classes == ["t.One"]


def test_one_sided_default_fields_are_ignored_both_ways():
    with_defaults = BASE.replace(b"<x>1</x>", b"<x>1</x><flag>false</flag><count>0</count><days>-1</days><empty/>")
    assert equal(BASE, with_defaults)
    assert equal(with_defaults, BASE)
    # but a default that differs from what is on the other side is a difference
    assert not equal(BASE.replace(b"<x>1</x>", b"<x>1</x><flag>true</flag>"),
                     BASE.replace(b"<x>1</x>", b"<x>1</x><flag>false</flag>"))


def test_unusable_xml_is_refused():
    with pytest.raises(xmlnorm.XmlProblem, match="not well-formed"):
        xmlnorm.compare(BASE, b"<flow-definition>")
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><flow-definition>&a;</flow-definition>'
    with pytest.raises(xmlnorm.XmlProblem, match="DOCTYPE"):
        xmlnorm.compare(BASE, bomb)


def test_carry_actions_keeps_what_plugins_stored():
    live = BASE.replace(b"<actions/>", b"<actions><p.Tracker><jobProperties><string>x</string></jobProperties>"
                                       b"</p.Tracker></actions>")
    merged = xmlnorm.carry_actions(BASE, live)
    root = xmlnorm.parse(merged)
    assert root.find("actions/p.Tracker/jobProperties/string").text == "x"
    assert root.findtext("description") == "svc"
    assert [c.tag for c in root][:2] == ["actions", "description"]
