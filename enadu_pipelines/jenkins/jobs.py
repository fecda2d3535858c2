"""The ``config.xml`` of every job and folder bootstrap manages, rendered from ``templates/jenkins/``.

A job is a Pipeline (``flow-definition``) that checks this library's repository out at
``library.version`` and runs ``pipelines/<service>/Jenkinsfile``, with the same GitHub push trigger,
no-concurrent-builds and build-discarder settings the Jenkinsfile declares, so a build (which
re-applies the Jenkinsfile's ``options``/``triggers``) leaves the job's configuration as we wrote it.
The template follows the element order and fields that Jenkins itself writes (XStream), so a
controller's re-serialised copy normalises to the same tree (see :mod:`.xmlnorm`).

Each service also has an operations job, ``<service>-ops`` (:func:`ops_name`): the same kind of Pipeline
job running ``pipelines/<service>/Jenkinsfile.ops``, with an ACTION choice (status first: the default of
a build started without parameters, and it only reads) and a REASON string parameter, no concurrent
builds, and no trigger at all, so no push ever starts it.

Ownership is carried in the description: :data:`MARKER` there means "enadu-pipelines manages this
item", which is what ``--prune`` looks for. Values reach the XML only through the ``xml`` filter.
"""

from __future__ import annotations

from ..config import Project, Service
from ..render import OPS_JENKINSFILE, _render, environment
from ..steps import OPS_ACTIONS

MARKER = "Managed by enadu-pipelines"
WORKFLOW_JOB_CLASS = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
FOLDER_CLASSES = frozenset({
    "com.cloudbees.hudson.plugins.folder.Folder",
})

# The plugins our config.xml needs and the classes each contributes, for naming a missing plugin
# when Jenkins rejects or silently drops part of a job (hudson.util.RobustReflectionConverter drops
# elements whose class it cannot load and records them in OldDataMonitor).
PLUGIN_OF_CLASS = {
    "flow-definition": "workflow-job",
    "org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty": "workflow-job",
    "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty": "workflow-job",
    "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition": "workflow-cps",
    "hudson.plugins.git.GitSCM": "git",
    "hudson.plugins.git.UserRemoteConfig": "git",
    "hudson.plugins.git.BranchSpec": "git",
    "com.cloudbees.jenkins.GitHubPushTrigger": "github",
    "com.cloudbees.hudson.plugins.folder.Folder": "cloudbees-folder",
}
FOLDER_PLUGINS = ("cloudbees-folder",)
JOB_PLUGINS = ("workflow-job", "workflow-cps", "git", "github")


def job_description(service: Service) -> str:
    return (f"{service.description} ({MARKER} from enadu.yaml, service {service.name!r}; "
            "changes made here are reverted by `enadu-pipelines bootstrap`)")


def folder_description() -> str:
    return f"Enadu pipelines ({MARKER}; jobs here are created and updated by `enadu-pipelines bootstrap`)"


def script_path(service: Service) -> str:
    return f"pipelines/{service.name}/Jenkinsfile"


def render_job(project: Project, service: Service) -> bytes:
    """The Pipeline job ``config.xml`` of ``service``."""
    return _render(
        environment(), "jenkins/job.xml.j2",
        library=project.library, jenkins=project.jenkins,
        description=job_description(service), script_path=script_path(service),
    )


OPS_SUFFIX = "-ops"


def ops_name(service: Service) -> str:
    """The operations job's name in the folder, next to the service's own job."""
    return f"{service.name}{OPS_SUFFIX}"


def ops_description(service: Service) -> str:
    return (f"Operations of {service.description}: {', '.join(OPS_ACTIONS)} ({MARKER} from enadu.yaml, service"
            f" {service.name!r}; changes made here are reverted by `enadu-pipelines bootstrap`)")


def render_ops_job(project: Project, service: Service) -> bytes:
    """The operations job ``config.xml`` of ``service``: parameters, no concurrent builds, no trigger."""
    return _render(
        environment(), "jenkins/ops-job.xml.j2",
        library=project.library, jenkins=project.jenkins,
        description=ops_description(service), script_path=f"pipelines/{service.name}/{OPS_JENKINSFILE}",
        actions=OPS_ACTIONS,
        action_description=("What to do. status (the default) only reads: the live colour, each colour's image and"
                            " readiness, the deploy history. rollback sends traffic back to the previous colour"
                            " (needs a REASON); abort removes a colour that is not live"
                            + ("; promote makes a held preview live" if "promote" in OPS_ACTIONS else "") + "."),
        reason_description=("Why (required for rollback; recorded in the Service's deploy history): one line, at"
                            " most 280 characters."),
    )


def render_folder() -> bytes:
    """The ``config.xml`` of a folder bootstrap creates (only created, never updated)."""
    return _render(environment(), "jenkins/folder.xml.j2", description=folder_description())


def is_ours(description: str | None) -> bool:
    return bool(description) and MARKER in description
