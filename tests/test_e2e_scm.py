"""The job's definition and the library, fetched the way git-plugin and pipeline-groovy-lib fetch them,
with real git against a library repository that has its release only as a tag (issue 12, defect 1).

git-plugin's lightweight checkout (GitSCMFileSystem, HeadNameResult) reads a bare branch-spec name
as a branch, fetches refs/heads/<name>, and CpsScmFlowDefinition does not fall back to a full
checkout when that fails: every build of a job whose config.xml names the tag bare would fail
before reading its Jenkinsfile. These tests read the Jenkinsfile through the config.xml that
bootstrap writes, so they fail for a config.xml that names the version bare.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from enadu_pipelines import config
from enadu_pipelines.jenkins import jobs
from support.e2e import jobs as jobmod
from support.e2e import library as libmod
from support.e2e import scm as scmmod
from support.e2e.gitserver import GitServer
from support.fakejenkins import projects

LIBRARY_URL = "https://github.com/enadu/enadu-pipelines.git"
JENKINSFILE = "// backend\n@Library('enadu') _\npipeline { agent any; stages { stage('x') { steps { echo 'x' } } } }\n"


@pytest.fixture
def git(tmp_path) -> GitServer:
    server = GitServer(tmp_path / "git")
    server.create("enadu/enadu-pipelines")
    lib = server.clone("enadu/enadu-pipelines", tmp_path / "dev")
    lib.commit({"pipelines/api/Jenkinsfile": JENKINSFILE, "vars/enaduX.groovy": "def call() {}\n"}, "Release v0.1.0")
    lib.tag("v0.1.0")  # the release exists only as a tag: no branch is pushed
    assert {r for r in server.heads("enadu/enadu-pipelines") if not r.endswith("^{}")} == {"refs/tags/v0.1.0"}
    return server


def rendered_job(tmp_path: Path, **kwargs) -> jobmod.Job:
    project = config.load(projects.write(tmp_path, projects.enadu_yaml(["api"], **kwargs)))
    return jobmod.load("enadu/api", jobs.render_job(project, project.services[0]))


def test_the_rendered_job_reads_its_jenkinsfile_from_a_tag_only_release(git, tmp_path):
    job = rendered_job(tmp_path)
    assert job.lightweight and job.definition_scm.url == LIBRARY_URL
    assert scmmod.lightweight_supported(job.definition_scm)  # so no heavyweight fallback would hide a failure
    text = scmmod.lightweight_read(git, job.definition_scm, job.script_path, tmp_path / "cache")
    assert text == JENKINSFILE


def test_a_bare_tag_name_is_fetched_as_a_branch_and_fails_the_build(git, tmp_path):
    # What the job's config.xml said before the fix: <name>v0.1.0</name>.
    bare = scmmod.GitScm(LIBRARY_URL, "v0.1.0")
    assert scmmod.head_name("v0.1.0") == ("refs/heads/", "v0.1.0")
    with pytest.raises(scmmod.ScmFailure) as failure:
        scmmod.lightweight_read(git, bare, "pipelines/api/Jenkinsfile", tmp_path / "cache")
    message = str(failure.value)
    assert "+refs/heads/v0.1.0:refs/remotes/origin/v0.1.0" in message
    assert "couldn't find remote ref refs/heads/v0.1.0" in message


def test_a_branch_version_is_named_as_a_branch(git, tmp_path):
    lib = git.clone("enadu/enadu-pipelines", tmp_path / "dev2")
    lib.git("checkout", "-q", "-b", "main", "v0.1.0")
    lib.push("main")
    job = rendered_job(tmp_path, library_version="main", library_ref="branch")
    assert job.definition_scm.branch == "refs/heads/main"
    assert scmmod.lightweight_read(git, job.definition_scm, job.script_path, tmp_path / "cache") == JENKINSFILE


def test_a_missing_jenkinsfile_is_the_controllers_message(git, tmp_path):
    scm = scmmod.GitScm(LIBRARY_URL, "refs/tags/v0.1.0")
    with pytest.raises(scmmod.ScmFailure, match=r"^Unable to find pipelines/nope/Jenkinsfile from git https://"):
        scmmod.lightweight_read(git, scm, "pipelines/nope/Jenkinsfile", tmp_path / "cache")


def test_the_library_is_retrieved_at_the_tag_the_casc_registers(git, tmp_path):
    project = config.load(projects.write(tmp_path, projects.enadu_yaml(["api"])))
    from enadu_pipelines import render

    casc = render.render_files(project, b"")["jenkins/casc.yaml"].decode("utf-8")
    lib = libmod.load_casc(casc)
    assert lib.include_in_changesets is False  # library pushes neither trigger nor show in service builds
    version = libmod.requested(JENKINSFILE, lib)
    got = libmod.retrieve(git, lib, version, tmp_path / "libs" / "enadu")
    assert got.ref == "refs/tags/v0.1.0"
    assert (got.root / "vars" / "enaduX.groovy").read_text() == "def call() {}\n"


def test_job_config_carries_the_registration_parameter_and_trigger(tmp_path):
    job = rendered_job(tmp_path)
    assert job.github_push and not job.concurrent
    assert job.parameters == (("ENADU_REGISTER_ONLY", "boolean", "false"),)
    assert job.default_parameters() == {"ENADU_REGISTER_ONLY": False}
    assert job.parameter_values({"ENADU_REGISTER_ONLY": "true"}) == {"ENADU_REGISTER_ONLY": True}


def test_a_config_that_is_not_a_scm_pipeline_is_refused(tmp_path):
    xml = ET.tostring(ET.Element("project"))
    with pytest.raises(jobmod.JobConfigError, match="not a Pipeline job"):
        jobmod.load("enadu/x", xml)
