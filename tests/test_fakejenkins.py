"""The fake Jenkins behaves like the controller for python-jenkins and raw REST clients alike.

python-jenkins talks to it unchanged; the CSRF, authentication, createItem, config.xml and delete
rules below are the ones cited in tests/support/fakejenkins/server.py.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jenkins
import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.fakejenkins import VERSION, FakeJenkins, User  # noqa: E402

FOLDER_XML = b"""<?xml version='1.1' encoding='UTF-8'?>
<com.cloudbees.hudson.plugins.folder.Folder plugin="cloudbees-folder"><actions/><description>f</description>
<properties/><folderViews/><healthMetrics/></com.cloudbees.hudson.plugins.folder.Folder>"""

PIPELINE_XML = b"""<?xml version='1.1' encoding='UTF-8'?>
<flow-definition plugin="workflow-job">
  <actions/>
  <description>demo</description>
  <properties>
    <org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty>
      <triggers>
        <com.cloudbees.jenkins.GitHubPushTrigger plugin="github"><spec></spec></com.cloudbees.jenkins.GitHubPushTrigger>
      </triggers>
    </org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty>
    <jenkins.model.BuildDiscarderProperty>
      <strategy class="hudson.tasks.LogRotator"><daysToKeep>-1</daysToKeep><numToKeep>3</numToKeep></strategy>
    </jenkins.model.BuildDiscarderProperty>
  </properties>
  <definition class="org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition" plugin="workflow-cps">
    <scm class="hudson.plugins.git.GitSCM" plugin="git"><configVersion>2</configVersion></scm>
    <scriptPath>Jenkinsfile</scriptPath>
  </definition>
</flow-definition>
"""


@pytest.fixture
def fake():
    users = {
        "admin": User("admin-password", ("admin-token",)),
        "viewer": User("viewer-password", ("viewer-token",), frozenset({"read"})),
    }
    with FakeJenkins(users) as f:
        yield f


def session(fake: FakeJenkins, user: str = "admin", secret: str = "admin-token") -> requests.Session:
    s = requests.Session()
    s.auth = (user, secret)
    return s


def test_python_jenkins_works_unchanged(fake):
    server = jenkins.Jenkins(fake.url, "admin", "admin-password")  # a password: crumbs are needed
    assert server.get_whoami()["id"] == "admin"
    assert server.get_version() == VERSION
    server.create_folder("enadu")
    server.create_job("enadu/demo", PIPELINE_XML.decode())
    assert server.job_exists("enadu/demo")
    assert not server.job_exists("enadu/other")
    names = {j["fullname"] for j in server.get_jobs(folder_depth=None)}
    assert names == {"enadu", "enadu/demo"}
    config = server.get_job_config("enadu/demo")
    assert "<scriptPath>Jenkinsfile</scriptPath>" in config
    server.reconfig_job("enadu/demo", PIPELINE_XML.decode().replace("demo", "changed"))
    assert "<description>changed</description>" in server.get_job_config("enadu/demo")
    server.delete_job("enadu/demo")
    assert not server.job_exists("enadu/demo")
    # python-jenkins fetched a crumb once and sent it with every POST, which the fake accepted.
    assert sum(1 for e in fake.log if e.path == "/crumbIssuer/api/json") == 1
    assert all(e.status < 400 for e in fake.log if e.write)


def test_post_without_crumb_is_refused_unless_authenticated_by_api_token(fake):
    url = fake.url + "createItem?name=x"
    headers = {"Content-Type": "application/xml"}
    refused = session(fake, "admin", "admin-password").post(url, data=FOLDER_XML, headers=headers)
    assert refused.status_code == 403
    assert b"No valid crumb" in refused.content
    assert fake.item("x") is None
    accepted = session(fake).post(url, data=FOLDER_XML, headers=headers)  # ApiCrumbExclusion
    assert accepted.status_code == 200
    assert fake.item("x") is not None


def test_crumb_is_bound_to_the_session_it_was_issued_in(fake):
    s = session(fake, "admin", "admin-password")
    crumb = s.get(fake.url + "crumbIssuer/api/json").json()
    assert crumb["crumbRequestField"] == "Jenkins-Crumb"
    headers = {"Content-Type": "application/xml", "Jenkins-Crumb": crumb["crumb"]}
    other = session(fake, "admin", "admin-password")  # no session cookie
    assert other.post(fake.url + "createItem?name=a", data=FOLDER_XML, headers=headers).status_code == 403
    assert s.post(fake.url + "createItem?name=a", data=FOLDER_XML, headers=headers).status_code == 200


def test_authentication_failures(fake):
    bad = session(fake, "admin", "wrong").get(fake.url + "api/json")
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"] == 'Basic realm="Jenkins"'
    anonymous = requests.get(fake.url + "api/json")
    assert anonymous.status_code == 403
    assert anonymous.headers["X-You-Are-Authenticated-As"] == "anonymous"
    viewer = session(fake, "viewer", "viewer-token")
    assert viewer.get(fake.url + "api/json").status_code == 200
    denied = viewer.post(fake.url + "createItem?name=x", data=FOLDER_XML, headers={"Content-Type": "text/xml"})
    assert denied.status_code == 403
    assert denied.headers["X-Required-Permission"] == "hudson.model.Item.Create"
    with pytest.raises(jenkins.JenkinsException, match="401"):
        jenkins.Jenkins(fake.url, "admin", "nope").get_whoami()


def test_create_item_rules(fake):
    s = session(fake)
    xml = {"Content-Type": "application/xml"}
    assert s.post(fake.url + "createItem?name=enadu", data=FOLDER_XML, headers=xml).status_code == 200
    again = s.post(fake.url + "createItem?name=enadu", data=FOLDER_XML, headers=xml)
    assert again.status_code == 400 and "already exists" in again.headers["X-Error"]
    unsafe = s.post(fake.url + "createItem?name=a%40b", data=FOLDER_XML, headers=xml)
    assert unsafe.status_code == 400 and "unsafe character" in unsafe.headers["X-Error"]
    assert s.post(fake.url + "createItem", data=FOLDER_XML, headers=xml).status_code == 400
    broken = s.post(fake.url + "job/enadu/createItem?name=broken", data=b"<flow-definition><oops>", headers=xml)
    assert broken.status_code == 500  # Items.load fails: the servlet's 500, not a 400
    assert b"Oops!" in broken.content
    assert fake.item("enadu/broken") is None  # createProjectFromXML deleted what it had written
    nested = s.post(fake.url + "job/enadu/createItem?name=inner", data=FOLDER_XML, headers=xml)
    assert nested.status_code == 200
    assert s.post(fake.url + "job/enadu/job/inner/createItem?name=deep", data=PIPELINE_XML,
                  headers=xml).status_code == 200
    assert fake.item("enadu/inner/deep").cls == "org.jenkinsci.plugins.workflow.job.WorkflowJob"
    assert s.get(fake.url + "job/enadu/job/inner/job/deep/api/json").json()["fullName"] == "enadu/inner/deep"
    # A job is not an item group: it has no createItem.
    assert s.post(fake.url + "job/enadu/job/inner/job/deep/createItem?name=x", data=FOLDER_XML,
                  headers=xml).status_code == 404


def test_config_xml_is_reserialised_with_plugin_versions(fake):
    s = session(fake)
    s.post(fake.url + "createItem?name=demo", data=PIPELINE_XML, headers={"Content-Type": "text/xml"})
    got = s.get(fake.url + "job/demo/config.xml")
    assert got.headers["Content-Type"].startswith("application/xml")
    assert got.content.startswith(b'<?xml version="1.1" encoding="UTF-8"?>\n<flow-definition plugin="workflow-job@')
    root = ET.fromstring(got.content)
    assert root.find(".//com.cloudbees.jenkins.GitHubPushTrigger").get("plugin").startswith("github@")
    assert root.find(".//scm").get("plugin").startswith("git@")
    # A core class inside a plugin-owned element gets no plugin attribute (OwnerContext).
    assert root.find(".//strategy").get("plugin") is None
    # Primitive fields left out come back with their Java default.
    assert root.findtext(".//strategy/removeLastBuild") == "false"


def test_missing_plugins(fake):
    s = session(fake)
    xml = {"Content-Type": "application/xml"}
    del fake.plugins["github"]
    assert s.post(fake.url + "createItem?name=demo", data=PIPELINE_XML, headers=xml).status_code == 200
    assert b"GitHubPushTrigger" not in fake.config("demo")  # dropped, not refused
    assert any("GitHubPushTrigger" in line for line in fake.serializer.old_data)
    del fake.plugins["workflow-job"]
    refused = s.post(fake.url + "createItem?name=other", data=PIPELINE_XML, headers=xml)
    assert refused.status_code == 500
    assert fake.item("other") is None
    plugins = s.get(fake.url + "pluginManager/api/json?tree=plugins[shortName,active]").json()["plugins"]
    assert "workflow-job" not in {p["shortName"] for p in plugins}


def test_update_delete_and_tree(fake):
    s = session(fake)
    xml = {"Content-Type": "application/xml"}
    s.post(fake.url + "createItem?name=enadu", data=FOLDER_XML, headers=xml)
    s.post(fake.url + "job/enadu/createItem?name=demo", data=PIPELINE_XML, headers=xml)
    listing = s.get(fake.url + "job/enadu/api/json?tree=jobs[name,description]").json()
    assert listing == {"_class": "com.cloudbees.hudson.plugins.folder.Folder", "jobs": [
        {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob", "name": "demo", "description": "demo"}]}
    wrong_type = s.post(fake.url + "job/enadu/job/demo/config.xml", data=FOLDER_XML, headers=xml)
    assert wrong_type.status_code == 500
    assert s.post(fake.url + "job/enadu/job/missing/config.xml", data=PIPELINE_XML, headers=xml).status_code == 404
    gone = s.post(fake.url + "job/enadu/job/demo/doDelete", allow_redirects=False)
    assert gone.status_code == 302 and gone.headers["Location"].endswith("/job/enadu/")
    s.post(fake.url + "job/enadu/createItem?name=demo", data=PIPELINE_XML, headers=xml)
    assert s.delete(fake.url + "job/enadu/job/demo/").status_code == 204
    assert s.get(fake.url + "job/enadu/job/demo/api/json").status_code == 404
    writes = [(e.method, e.path) for e in fake.writes()]
    assert ("DELETE", "/job/enadu/job/demo/") in writes
    assert not any(e.write for e in fake.log if e.method == "GET")


def test_injected_failures(fake):
    s = session(fake)
    fake.fail_next(2, status=503, path_contains="api/json", retry_after="1")
    first = s.get(fake.url + "api/json")
    assert first.status_code == 503 and first.headers["Retry-After"] == "1"
    assert s.get(fake.url + "api/json").status_code == 503
    assert s.get(fake.url + "api/json").status_code == 200
    assert [e.status for e in fake.log] == [503, 503, 200]
