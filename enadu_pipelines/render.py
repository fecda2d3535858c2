"""Render the configuration into the files Jenkins reads.

Everything generated comes from ``templates/`` through one Jinja2 environment with
``StrictUndefined`` (a missing value is a bug, never an empty string) and no autoescaping: each
value goes through the filter of the language it lands in (:mod:`enadu_pipelines.escaping`).
:func:`render_files` returns path → bytes and touches no disk; :mod:`writer` does the writing.
Compiled templates are kept in the user's cache directory (:class:`TemplateCache`, keyed
by each template's source and by this module, which sets the environment's options).
"""

from __future__ import annotations

import functools
import hashlib
import os
import types
from pathlib import Path
from typing import Any

import jinja2
from jinja2.bccache import Bucket

from . import __version__, agentpod, escaping, monitoring, steps, usercache
from .config import Project
from .configtypes import duration_seconds
from .errors import TemplateError
from .helper import exitcodes
from .writer import HELPER_RESOURCE

OPS_JENKINSFILE = "Jenkinsfile.ops"  # pipelines/<service>/Jenkinsfile.ops: the operations job's pipeline
CREDENTIAL_HOSTS_RESOURCE = "resources/enadu/credential-hosts.txt"  # read by the steps as enadu/credential-hosts.txt
# The exit status of the helper's sh when a library resource, copied into the private directory it
# runs from, does not have the sha256 rendered into vars/enaduHelper (no helper command uses it).
RESOURCE_MISMATCH_EXIT = 97
# What vars/enaduOps says for each exit status of status, rollback, abort and promote (helper/exitcodes.py).
OPS_EXIT_REASONS = {
    exitcodes.FAILED: "the action failed or was refused before changing traffic; the live colour still serves",
    exitcodes.USAGE: "bad arguments, reason or manifest, or a namespace that does not exist",
    exitcodes.LOCK_HELD: "a deploy or another action of this service holds its lock",
    exitcodes.CLUSTER: "the cluster is unreachable or refused the credentials",
    exitcodes.ROLLED_BACK: "the new colour failed after the switch; traffic was switched back",
    exitcodes.INCOMPLETE: "the Service was switched but the action did not finish; the log says which colour is live",
}


class TemplateCache(jinja2.FileSystemBytecodeCache):
    """Jinja2's own bytecode cache (a file per template, keyed by its name and path, checked against
    the sha1 of its source), made quiet about its directory: one that is missing is created, one
    that cannot be read or written, or a garbled entry, only means compiling the template again.

    Jinja2 does not key the compiled code by the environment's options (``trim_blocks`` and the
    like change what a template compiles to) nor by its own version, so both are in the directory's
    name: ``key`` stands for the options (the digest of the module that sets them).
    """

    def __init__(self, key: str) -> None:
        digest = hashlib.sha256(f"jinja2 {jinja2.__version__}\n{key}".encode()).hexdigest()[:32]
        super().__init__(str(usercache.root() / "templates" / digest), "%s.cache")

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 - a garbled entry (pickle and marshal raise many kinds): a miss
            bucket.reset()
            return
        if bucket.code is not None and not isinstance(bucket.code, types.CodeType):
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass


def templates_dir() -> Path:
    """The templates: inside the installed wheel, or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "pipelines" / "Jenkinsfile.j2").is_file():
            return candidate
    raise TemplateError(f"templates not found next to {here} (broken installation)")


@functools.lru_cache(maxsize=None)
def environment(directory: Path | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory or templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
        bytecode_cache=(TemplateCache(hashlib.sha256(Path(__file__).read_bytes()).hexdigest())
                        if usercache.enabled() else None),
    )
    env.filters.update(
        groovy=escaping.groovy_value,
        groovy_comment=escaping.groovy_comment,
        groovy_multiline=escaping.groovy_multiline,
        yaml=escaping.yaml_string,
        xml=escaping.xml_text,
    )
    env.globals.update(version=__version__)
    return env


def render_files(project: Project, helper_bundle: bytes) -> dict[str, bytes]:
    """Every generated file of ``project``, keyed by path relative to the output directory.

    ``helper_bundle`` is the helper zipapp; its sha256 and each manifest's are rendered into ``enaduHelper``.
    """
    env = environment()
    files: dict[str, bytes] = {HELPER_RESOURCE: helper_bundle}
    common: dict[str, Any] = {
        "library": project.library,
        "jenkins": project.jenkins,
        "registry": project.registry,
        "discord": project.discord,
        "kubernetes_credentials_id": project.kubernetes_credentials_id,
        "credential_hosts": project.credential_hosts,
        "source_name": Path(project.source).name,
    }
    for service in project.services:
        pods = agent_pods(service)
        files[f"pipelines/{service.name}/Jenkinsfile"] = _render(
            env, "pipelines/Jenkinsfile.j2", service=service, pods=pods, **common
        )
        files[f"pipelines/{service.name}/{OPS_JENKINSFILE}"] = _render(
            env, "pipelines/Jenkinsfile.ops.j2", service=service, ops_actions=steps.OPS_ACTIONS, pods=pods, **common
        )
        files[f"resources/enadu/k8s/{service.name}.yaml"] = _render(
            env, "k8s/service.yaml.j2", service=service, progress_deadline_seconds=progress_deadline(service.deploy_timeout)
        )
        files[f"resources/enadu/k8s/{service.name}.rbac.yaml"] = _render(env, "k8s/rbac.yaml.j2", service=service)
        if service.monitoring.service_monitor:
            files[f"resources/enadu/k8s/{service.name}.servicemonitor.yaml"] = _render(
                env, "k8s/servicemonitor.yaml.j2", service=service)
        files[f"resources/enadu/grafana/{service.name}.json"] = monitoring.dashboard_json(
            service=service.name, title=service.description, namespace=service.namespace, version=__version__,
            source=common["source_name"])
    files.update(agent_manifests(project))
    files["jenkins/casc.yaml"] = _render(env, "jenkins/casc.yaml.j2", cloud=kubernetes_cloud(project), **common)
    files[CREDENTIAL_HOSTS_RESOURCE] = _render(env, "resources/credential-hosts.txt.j2", **common)
    # Every library resource the helper reads (the bundle, each service's manifest) with its sha256, which
    # enaduHelper checks on a private copy before running anything.
    helper_resources = [HELPER_RESOURCE] + [f"resources/enadu/k8s/{s.name}.yaml" for s in project.services]
    step_context = {
        "resource_sha256": {path.removeprefix("resources/"): hashlib.sha256(files[path]).hexdigest()
                            for path in helper_resources},
        "mismatch_exit": RESOURCE_MISMATCH_EXIT,
        "exit": exitcodes,
        "deploy_exit_reasons": {str(code): text for code, text in exitcodes.DEPLOY_REASONS.items()},
        "held_exit": exitcodes.HELD,
        "ops_exit_reasons": {str(code): text for code, text in OPS_EXIT_REASONS.items()},
    }
    for step in steps.STEPS:
        files[f"vars/{step.name}.groovy"] = _render(env, f"vars/{step.name}.groovy.j2", step=step, **step_context)
        files[f"vars/{step.name}.txt"] = _render(env, "vars/step.txt.j2", step=step)
    return files


def _render(env: jinja2.Environment, name: str, **context: Any) -> bytes:
    try:
        text = env.get_template(name).render(**context)
    except jinja2.TemplateError as e:
        raise TemplateError(f"template {name}: {e}") from e
    except (TypeError, ValueError) as e:  # raised by an escaping filter on an unexpected value
        raise TemplateError(f"template {name}: {e}") from e
    return text.encode("utf-8")


def progress_deadline(deploy_timeout: str) -> int:
    """The Deployment's progressDeadlineSeconds: half the deploy timeout (at least 60 s), so a rollout
    that stops progressing is reported as such before the helper's own --timeout ends the wait."""
    return max(60, duration_seconds(deploy_timeout) // 2)




AGENTS_DIR = "resources/enadu/k8s/agents"  # one file per agents' namespace (a directory: no service's name)


def agent_pods(service: Any) -> dict[str, str]:
    """The pod YAML texts of a service on a kubernetes agent (trusted, untrusted, ops); {} otherwise."""
    if service.agent.kind != "kubernetes":
        return {}
    return {"trusted": agentpod.dump(agentpod.pod(service, trusted=True)),
            "untrusted": agentpod.dump(agentpod.pod(service, trusted=False)),
            "ops": agentpod.dump(agentpod.ops_pod(service))}


def kubernetes_cloud(project: Project) -> Any:
    """The pod-agent settings the JCasC Kubernetes cloud is made from (those of the first agents' namespace,
    by name), or None when no service runs on Kubernetes pods. Each Jenkinsfile names its own namespace, so
    one cloud serves every namespace its controller account may run pods in."""
    agents = sorted((s.agent.kubernetes for s in project.services if s.agent.kubernetes is not None),
                    key=lambda agent: agent.namespace)
    return agents[0] if agents else None


def agent_manifests(project: Project) -> dict[str, bytes]:
    """resources/enadu/k8s/agents/<namespace>.yaml for every namespace agent pods run in: what
    ``kubectl apply`` must create before the first build (config.agent_problems makes agents that share a
    namespace agree on it)."""
    by_namespace: dict[str, tuple[Any, list[str]]] = {}
    for service in project.services:
        agent = service.agent.kubernetes
        if agent is not None:
            by_namespace.setdefault(agent.namespace, (agent, []))[1].append(service.name)
    files = {}
    for namespace, (agent, names) in sorted(by_namespace.items()):
        head = (f"# Agents' namespace {namespace} of the Jenkins Kubernetes plugin: apply once, before the first build.\n"
                f"# Generated by enadu-pipelines {__version__} from {Path(project.source).name}; do not edit.\n")
        body = "---\n".join(agentpod.dump(doc) for doc in agentpod.namespace_manifests(agent, names))
        files[f"{AGENTS_DIR}/{namespace}.yaml"] = (head + body).encode("utf-8")
    return files
