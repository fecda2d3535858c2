"""The ``enadu.yaml`` model: strict loading, kind defaults, and one-line errors.

Every value that can end up inside Groovy, shell, YAML or XML is a *pattern type*
(:mod:`enadu_pipelines.configtypes`): it is checked against a strict regular expression when the
file is loaded, so `be-dev'; sh 'x` or `$(id)` never reaches a template. Free text (a service's
description, a PromQL query) is the one exception: it is allowed any printable characters and the
renderer escapes it for the context it lands in.

Loading turns pydantic's ``ValidationError`` into ``ConfigError`` lines of the form
``enadu.yaml:14: services.backend.branch: <what is wrong>``, with a "did you mean" hint for
unknown keys, the way copier reports its own configuration problems.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, Field, ValidationError

from . import yamlsource
from .configtypes import (  # noqa: F401 - the pattern types are part of this module's interface
    AgentLabel,
    Branch,
    Command,
    CredentialId,
    DnsLabel,
    Duration,
    DurationOrNever,
    Submitters,
    FolderPath,
    FreeText,
    GitRef,
    Glob,
    HttpPath,
    HttpUrl,
    ImageName,
    LibraryName,
    LibraryVersion,
    Name,
    PinnedImage,
    PromQL,
    Quantity,
    RegistryHost,
    RelPath,
    RepoUrl,
    RoleId,
    _Model,
    duration_seconds,
    is_loopback_registry,
)
from .errors import ConfigError
from .helper.loopback import cleartext_problem
from .monitoring import Monitoring, problems as monitoring_problems, resolve as resolve_monitoring

DEFAULT_CONFIG = "enadu.yaml"




class LibrarySection(_Model):
    """How Jenkins finds this shared library."""

    name: LibraryName = Field("enadu", description="Library name used in @Library('<name>@<version>').")
    version: LibraryVersion = Field(description="Tag (a release) or branch of this repository that the Jenkinsfiles load;"
                            " a bare name such as v0.1.0, never refs/...: `ref` says which kind it is.")
    ref: Literal["tag", "branch"] = Field(
        "tag", description="Whether `version` is a tag (the default: releases are tags) or a branch. The job's"
        " config.xml names it fully (refs/tags/<version> or refs/heads/<version>): git-plugin's lightweight"
        " checkout fetches a bare name as a branch, so a tag-only release would not be found.",
    )
    repository: RepoUrl = Field(description="Git URL of this repository (the library and the Jenkinsfiles).")
    credentials_id: CredentialId | None = Field(
        None, description="Jenkins credentials id used to clone the library repository, if it is private."
    )

    @property
    def qualified_ref(self) -> str:
        """The fully qualified git ref of ``version``: what a job's SCM names (see ``ref``)."""
        return f"refs/{'tags' if self.ref == 'tag' else 'heads'}/{self.version}"


class Resources(_Model):
    cpu: Quantity | None = None
    memory: Quantity | None = None


class ResourcesSection(_Model):
    requests: Resources = Resources()
    limits: Resources = Resources()


class AgentImages(_Model):
    """The images of an agent pod's containers, each pinned by digest."""

    gradle: PinnedImage | None = Field(None, description="Build container of gradle services: a JDK (the projects'"
                                                          " ./gradlew fetches Gradle into the cache).")
    node: PinnedImage | None = Field(None, description="Build container of node services: Node.js with npm.")
    builder: PinnedImage | None = Field(None, description="Image-builder container: buildah (quay.io/buildah/stable"
                                                          " has the unprivileged `build` user, uid 1000, it runs as).")
    helper: PinnedImage | None = Field(None, description="Container of checkout, change detection, deploy and notify:"
                                                         " python3 >= 3.9, git and coreutils (sha256sum).")
    jnlp: PinnedImage | None = Field(None, description="The Jenkins agent container (default: the Kubernetes plugin's"
                                                       " own jenkins/inbound-agent, pinned by the plugin's version).")


class AgentResources(_Model):
    """Requests and limits of an agent pod's containers (default: see README, Scaling out)."""

    build: ResourcesSection | None = Field(None, description="The build container (tests and build).")
    builder: ResourcesSection | None = Field(None, description="The image-builder container.")
    helper: ResourcesSection | None = Field(None, description="The helper container.")


class AgentCache(_Model):
    """Build caches (Gradle's user home, npm's cache) on PersistentVolumeClaims that outlive the pods."""

    trusted: DnsLabel = Field("enadu-build-cache", description="PVC of trusted builds (this job's branch, not a pull"
                                                               " request), mounted in the build container.")
    untrusted: DnsLabel | None = Field(None, description="PVC of any other build (a pull request or another branch);"
                                                         " none (default): such builds cache on the pod's emptyDir"
                                                         " only, so they share nothing.")
    size: Quantity = Field("20Gi", description="Storage each rendered PVC requests.")
    storage_class: DnsLabel | None = Field(None, description="StorageClass of the PVCs (default: the cluster's).")
    access_mode: Literal["ReadWriteMany", "ReadWriteOnce"] = Field(
        "ReadWriteMany", description="ReadWriteMany lets pods on several nodes build at once (backend and batch);"
                                     " ReadWriteOnce only pods on one node.")


class KubernetesAgent(_Model):
    """Agent pods of the Jenkins Kubernetes plugin (`agent { kubernetes { ... } }`)."""

    namespace: DnsLabel = Field(description="Namespace the agent pods run in (resources/enadu/k8s/agents/<namespace>.yaml"
                                            " has its ServiceAccount, RBAC and PVCs).")
    service_account: DnsLabel = Field("enadu-agent", description="ServiceAccount of the agent pods (its token is not"
                                                                 " mounted: deploys use the kubeconfig credential).")
    controller_namespace: DnsLabel = Field("jenkins", description="Namespace of the Jenkins controller's ServiceAccount.")
    controller_service_account: DnsLabel = Field(
        "jenkins", description="ServiceAccount the controller's Kubernetes cloud uses: the rendered Role lets it run pods"
                               " in the agents' namespace.")
    retries: int = Field(2, ge=1, le=5, description="Runs of the whole pipeline when the agent pod is lost (the plugin's"
                                                    " retries: retry with kubernetesAgent() and nonresumable()).")
    images: AgentImages = AgentImages()
    resources: AgentResources = AgentResources()
    cache: AgentCache = AgentCache()


class AgentSection(_Model):
    """Where a pipeline runs: a label, or Kubernetes pods (a bare string is a label; 'any' is agent any)."""

    label: AgentLabel | None = Field(None, description="Agent label to run on.")
    kubernetes: KubernetesAgent | None = Field(None, description="Run in agent pods of the Kubernetes plugin.")


# jenkins.agent and services.<name>.agent: 'any' (agent any), a label, or a mapping (label or kubernetes).
Agent = AgentLabel | AgentSection
AGENT_DESCRIPTION = ("Where the pipelines run: 'any' (agent any, the default), an agent label, {label: ...}, or"
                     " {kubernetes: ...} for agent pods of the Kubernetes plugin (README, Scaling out).")


class JenkinsSection(_Model):
    """Job-level settings shared by every service's pipeline."""

    folder: FolderPath = Field("enadu", description="Jenkins folder that holds the jobs.")
    agent: Agent | None = Field(None, description=AGENT_DESCRIPTION)
    timeout_minutes: int = Field(60, ge=1, le=1440, description="Whole-build timeout.")
    builds_to_keep: int = Field(30, ge=1, le=1000, description="Builds kept by the build discarder.")
    git_credentials_id: CredentialId | None = Field(
        None, description="Jenkins credentials id used to clone the services' repositories."
    )


Builder = Literal["docker", "buildah"]
StorageDriver = Literal["vfs", "overlay"]
BUILTIN_STORAGE_DRIVER = "vfs"
BUILTIN_CACHE_TTL = "168h"  # a week: cached RUN layers (package installs) are rebuilt at least weekly
CACHE_SUFFIX = "/cache"  # the default cache repository: <image name>/cache


class RegistrySection(_Model):
    """The registry images are pushed to, and how images are built for it."""

    host: RegistryHost = Field(description="Registry host, with port if not 443.")
    credentials_id: CredentialId = Field(description="Jenkins username/password credentials id for the registry login.")
    insecure: bool = Field(
        False, description="Plain HTTP, no TLS verification (buildah's --tls-verify=false); only for a registry on the"
                           " agent's loopback (localhost or 127.x.x.x), refused for any other host.")
    builder: Builder = Field("docker", description="What builds and pushes images: the docker CLI (needs a Docker daemon)"
                                                   " or buildah (daemonless); a service's image.builder overrides it.")
    storage_driver: StorageDriver | None = Field(
        None, description="buildah's storage driver (default vfs, which works everywhere, rootless included; overlay is"
                          " faster where the agent supports it); only with builder buildah.")
    cache: bool | None = Field(
        None, description="Use the registry as buildah's layer cache (--cache-from/--cache-to <image>/cache), so a"
                          " build on an empty agent (a fresh pod) reuses the layers of earlier builds; default true for"
                          " services built with buildah. The docker builder has no registry cache.")
    cache_ttl: Duration | None = Field(
        None, description="Cached layers older than this are rebuilt (buildah's --cache-ttl; default 168h, a week),"
                          " so RUN steps such as package installs are refreshed; only with builder buildah.")


class KubernetesSettings(_Model):
    """Kubernetes settings; every key is optional here and falls back to the global section."""

    namespace: DnsLabel | None = Field(None, description="Namespace the service runs in.")
    replicas: int | None = Field(None, ge=1, le=100, description="Replicas of a colour (at least what is live).")
    container_port: int | None = Field(None, ge=1, le=65535, description="Port the container listens on.")
    health_path: HttpPath | None = Field(None, description="Readiness/liveness and smoke-test path.")
    resources: ResourcesSection | None = Field(None, description="Container resource requests and limits.")
    scale_down_delay: Duration | None = Field(None, description="How long the old colour is kept after a switch.")
    scale_down_delay_floor: Duration | None = Field(
        None, description="The shortest scale-down delay deploys use (default 30s, Argo Rollouts' default and"
                          " recommended minimum for Service proxies to see a switch): a shorter scale_down_delay is"
                          " raised to it, with a warning. Lower it only where losing requests is fine (test clusters).")
    abort_scale_down_delay: DurationOrNever | None = Field(
        None, description="How long the idle colour of a deploy that failed before its switch, or of a promotion"
                          " answered no or timed out, keeps running (for inspection) before it is scaled to 0"
                          " (default 30s, Argo Rollouts' abortScaleDownDelaySeconds). 0s: at once; never: kept until"
                          " abort or the next deploy (Argo says this with 0). It is never promoted nor rolled back to.")
    deploy_timeout: Duration | None = Field(
        None, description="Bound on waiting for the new colour, its smoke test and the switch; the Deployment's "
                          "progress deadline is half of it.")
    old_colour: Literal["scale-to-zero", "delete"] | None = Field(
        None, description="What happens to the old colour after the delay."
    )
    smoke_test: bool | None = Field(None, description="Smoke-test the idle colour before switching.")
    auto_promotion_enabled: bool | None = Field(
        None, description="Switch as soon as the new colour passed its checks (default true; Argo Rollouts'"
                          " autoPromotionEnabled). false: the build stops before the switch with a Jenkins input"
                          " (\"Promote ... to live?\"); no or a timeout removes the preview, live untouched.")
    auto_promotion_seconds: int | None = Field(
        None, ge=60, le=604800, description="With auto_promotion_enabled false: how long the input waits for a"
                                             " person (default 3600). On timeout the preview is aborted, not promoted.")
    preview_replica_count: int | None = Field(
        None, ge=1, le=100, description="Start the new colour at this many replicas; scale it to full only when"
                                         " promoted, before the switch (Argo Rollouts' previewReplicaCount).")
    promotion_submitter: Submitters | None = Field(
        None, description="Who may answer the promotion input: Jenkins user ids or group names, comma-separated"
                          " (the input step's submitter; default: anyone who may build the job).")


class KubernetesSection(KubernetesSettings):
    """Cluster access and the defaults of every service."""

    credentials_id: CredentialId = Field(description="Jenkins secret-file credentials id holding the kubeconfig.")


class AnalysisSettings(_Model):
    """Metric analysis of a new colour (deploy --analysis); every key falls back to the global section."""

    enabled: bool | None = Field(None, description="Check the new colour's metrics after the switch; switch back on failure.")
    window: Duration | None = Field(None, description="How long to watch, and the range of the queries' {window} (default 2m).")
    interval: Duration | None = Field(None, description="Time between two rounds of queries (default 20s).")
    success_rate_query: PromQL | None = Field(
        None, description="PromQL template for the share of good requests, with {service}, {namespace}, {colour}, {window}"
                          " (default: non-5xx / all of http_requests_total).")
    min_success_rate: float | None = Field(None, ge=0, le=1, description="Fail below this success rate (default 0.99).")
    latency_query: PromQL | None = Field(
        None, description="PromQL template for a latency in seconds (default: p95 of http_request_duration_seconds).")
    max_latency: float | None = Field(None, gt=0, le=3600, description="Fail above this latency in seconds (default 0.5).")
    inconclusive: Literal["fail", "pass"] | None = Field(
        None, description="What an analysis without data (no traffic, Prometheus down) counts as (default fail).")
    before_switch: bool | None = Field(
        None, description="Also check the idle colour's smoke traffic through the preview Service before switching.")


class GrafanaSettings(_Model):
    """Where deploy annotations are posted."""

    url: HttpUrl | None = Field(None, description="Grafana's base URL.")
    credentials_id: CredentialId | None = Field(
        None, description="Jenkins secret-text credentials id holding a Grafana service-account token.")


class MonitoringSettings(_Model):
    """Prometheus and Grafana; every key is optional here and falls back to the global section."""

    metrics_port: int | None = Field(None, ge=1, le=65535, description="Port the pod serves metrics on (default: the container port).")
    metrics_path: HttpPath | None = Field(None, description="Metrics path (default: from kind).")
    service_monitor: bool | None = Field(
        None, description="Also render a Prometheus Operator ServiceMonitor (resources/enadu/k8s/<service>.servicemonitor.yaml).")
    prometheus_url: HttpUrl | None = Field(None, description="Prometheus HTTP API base URL, reachable from the Jenkins agent.")
    analysis: AnalysisSettings = AnalysisSettings()
    grafana: GrafanaSettings = GrafanaSettings()


class DiscordSection(_Model):
    """Where and how build results are announced."""

    credentials_id: CredentialId = Field(description="Jenkins secret-text credentials id holding the webhook URL.")
    mention_role_on_failure: RoleId | None = Field(None, description="Discord role id pinged when a build fails.")
    strict: bool = Field(False, description="Fail the build when the notification cannot be delivered.")
    timeout_seconds: int = Field(30, ge=1, le=300, description="Bound on the whole notification, retries included.")


class TestSettings(_Model):
    enabled: bool = Field(False, description="Run unit tests as a gate before the build.")
    commands: list[Command] | None = Field(None, min_length=1, description="Test commands (default: from kind).")
    junit: Glob | None = Field(None, description="JUnit XML results to publish (default: from kind).")
    parallel: bool = Field(
        False, description="Run the tests and the build as two parallel branches, the tests on an agent of their own"
                           " (a second pod with a kubernetes agent) at the commit the Checkout stage got; a failed"
                           " test stops the build (failFast). Pays when the tests take longer than a checkout plus"
                           " a second compile; only with enabled: true (README \"Scaling out\").")


class BuildSettings(_Model):
    commands: list[Command] | None = Field(None, min_length=1, description="Build commands (default: from kind).")


class ImageSettings(_Model):
    name: ImageName = Field(description="Image repository under the registry host, without a tag.")
    context: RelPath | None = Field(None, description="Docker build context (default: from kind).")
    dockerfile: RelPath | None = Field(None, description="Dockerfile path (default: from kind).")
    builder: Builder | None = Field(None, description="docker or buildah (default: registry.builder).")
    storage_driver: StorageDriver | None = Field(
        None, description="buildah's storage driver (default: registry.storage_driver, else vfs); only with buildah.")
    cache: bool | None = Field(
        None, description="The registry layer cache for this service (default: registry.cache, on for buildah);"
                          " only with builder buildah.")
    cache_repository: ImageName | None = Field(
        None, description="Repository of the layer cache under the registry host (default: the image name + '/cache',"
                          " e.g. enadu/backend/cache).")


class ServiceSection(_Model):
    """One deployable service."""

    kind: Literal["gradle", "node"] = Field(description="Build kind: picks the default build and test commands.")
    description: FreeText | None = Field(None, description="Human-readable name shown in Jenkins and Discord.")
    repository: RepoUrl = Field(description="Git URL of the service's source.")
    branch: Branch = Field(description="Branch whose pushes build and deploy the service.")
    paths: list[Glob] = Field(min_length=1, description="Path globs whose changes rebuild the service.")
    module: DnsLabel | None = Field(None, description="Gradle module (default: the service name).")
    test: TestSettings = TestSettings()
    build: BuildSettings = BuildSettings()
    image: ImageSettings
    agent: Agent | None = Field(None, description="This service's agent (default: jenkins.agent); as jenkins.agent.")
    kubernetes: KubernetesSettings = KubernetesSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    migrate_from_handmade: DnsLabel | None = Field(
        None, description="The Deployment the old deploy script left for this service (README, \"Migrating from the old"
                          " deploy script\"): the first deploy takes it over and retires it. Renders the migration"
                          " Role (its rights name this Deployment) and lets deploy migrate from exactly it; absent"
                          " (default): no migration rights, and deploy refuses a hand-made Deployment. Remove it once"
                          " migrated.")


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be the number 1, not true/false")
    return value


class EnaduConfig(_Model):
    """The whole ``enadu.yaml``."""

    # Literal[1] alone takes `true` (True == 1 in Python); the schema's `const: 1` does not.
    version: Annotated[Literal[1], BeforeValidator(_not_a_bool)] = Field(description="Format version of this file.")
    library: LibrarySection
    jenkins: JenkinsSection = JenkinsSection()
    registry: RegistrySection
    kubernetes: KubernetesSection
    discord: DiscordSection
    monitoring: MonitoringSettings = MonitoringSettings()
    credential_hosts: dict[CredentialId, RegistryHost] = Field(
        default_factory=dict,
        description="The allow list of credential -> host[:port] pairings beyond the defaults (registry.credentials_id"
                    " with registry.host, monitoring.grafana.credentials_id with its URL's host,"
                    " jenkins.git_credentials_id with library.repository's host): a service whose Grafana differs"
                    " from the global one must use a credential paired here with that host, and the git credential"
                    " may be paired here with the host the services' repositories are on. Each"
                    " credential is sent to one host only, and serves one purpose.")
    services: dict[Name, ServiceSection] = Field(min_length=1)


# --------------------------------------------------------------------------------------------
# Kinds and resolution: what the templates see. Every value is filled in; templates never decide
# defaults.

BUILTIN_KUBERNETES = {
    "namespace": "default",
    "replicas": 2,
    "scale_down_delay": "30s",
    "scale_down_delay_floor": "30s",
    "abort_scale_down_delay": "30s",
    "deploy_timeout": "10m",
    "old_colour": "scale-to-zero",
    "smoke_test": True,
    "auto_promotion_enabled": True,
    "auto_promotion_seconds": 3600,
    "preview_replica_count": None,
    "promotion_submitter": None,
}


@dataclass(frozen=True)
class Kind:
    """What a build kind contributes; ``{module}`` is replaced with the service's module."""

    build_commands: tuple[str, ...]
    test_commands: tuple[str, ...]
    junit: str | None
    context: str
    dockerfile: str
    container_port: int
    health_path: str
    metrics_path: str


KINDS: dict[str, Kind] = {
    "gradle": Kind(
        build_commands=("./gradlew --no-daemon :{module}:bootJar -x test",),
        test_commands=("./gradlew --no-daemon :{module}:test",),
        junit="{module}/build/test-results/test/*.xml",
        context="{module}",
        dockerfile="{module}/Dockerfile",
        container_port=8080,
        health_path="/actuator/health",
        metrics_path="/actuator/prometheus",  # Spring Boot Actuator with micrometer-registry-prometheus
    ),
    "node": Kind(
        build_commands=("npm ci", "npm run build"),
        test_commands=("npm test",),
        junit=None,
        context=".",
        dockerfile="Dockerfile",
        container_port=80,
        health_path="/",
        metrics_path="/metrics",
    ),
}


@dataclass(frozen=True)
class AgentChoice:
    """Where a service's pipeline runs: ``any``, a ``label``, or ``kubernetes`` pods (with their settings)."""

    kind: Literal["any", "label", "kubernetes"] = "any"
    label: str | None = None
    kubernetes: KubernetesAgent | None = None


def agent_choice(value: Any) -> AgentChoice:
    """The choice a jenkins.agent or services.<name>.agent value makes (None: not set, so agent any)."""
    if value is None or value == "any":
        return AgentChoice()
    if isinstance(value, str):
        return AgentChoice("label", label=value)
    if value.kubernetes is not None:
        return AgentChoice("kubernetes", kubernetes=value.kubernetes)
    if value.label is not None:
        return AgentChoice("label", label=value.label)
    return AgentChoice()


@dataclass(frozen=True)
class Service:
    """A service with every default applied."""

    name: str
    kind: str
    description: str
    repository: str
    branch: str
    paths: tuple[str, ...]
    test_enabled: bool
    test_commands: tuple[str, ...]
    junit: str | None
    build_commands: tuple[str, ...]
    image: str  # registry/name, no tag
    image_context: str
    dockerfile: str
    builder: str  # docker or buildah
    storage_driver: str  # buildah's storage driver; "" with docker
    cache: str  # registry/repository of buildah's layer cache, no tag; "" for none
    cache_ttl: str  # buildah's --cache-ttl; "" without a cache
    namespace: str
    replicas: int
    container_port: int
    health_path: str
    resources: dict[str, dict[str, str]]
    scale_down_delay: str
    scale_down_delay_floor: str
    abort_scale_down_delay: str  # a duration or "never"
    deploy_timeout: str
    old_colour: str
    smoke_test: bool
    auto_promotion_enabled: bool
    auto_promotion_seconds: int
    preview_replica_count: int | None
    promotion_submitter: str | None
    monitoring: Monitoring
    migrate_from_handmade: str | None = None  # the hand-made Deployment to migrate from; None: migration off
    agent: AgentChoice = AgentChoice()  # services.<name>.agent, else jenkins.agent
    test_parallel: bool = False  # services.<name>.test.parallel: Test beside Build, on an agent of its own


@dataclass(frozen=True)
class Project:
    """The resolved configuration the renderer and bootstrap work from."""

    source: str  # the file it came from, for messages and headers
    library: LibrarySection
    jenkins: JenkinsSection
    registry: RegistrySection
    kubernetes_credentials_id: str
    discord: DiscordSection
    services: tuple[Service, ...]
    # (credentials id, host[:port]) of every credential sent to a host of our choosing, sorted: rendered
    # into resources/enadu/credential-hosts.txt, which vars/enaduImage and vars/enaduDeploy enforce
    credential_hosts: tuple[tuple[str, str], ...] = ()
    # ``file:line: key.path: message`` lines about values that are allowed but risky (render prints them)
    warnings: tuple[str, ...] = ()


def resolve(config: EnaduConfig, source: str) -> Project:
    """Apply kind defaults and the global sections to every service."""
    services = []
    for name, s in config.services.items():
        kind = KINDS[s.kind]
        module = s.module or name

        def fill(value: str) -> str:
            return value.replace("{module}", module)

        kube: dict[str, Any] = dict(BUILTIN_KUBERNETES)
        kube["container_port"] = kind.container_port
        kube["health_path"] = kind.health_path
        kube["resources"] = None
        for layer in (config.kubernetes, s.kubernetes):
            for key in KubernetesSettings.model_fields:
                value = getattr(layer, key)
                if value is not None:
                    kube[key] = value
        resources = {}
        if kube["resources"] is not None:
            for section in ("requests", "limits"):
                values = getattr(kube["resources"], section).model_dump(exclude_none=True)
                if values:
                    resources[section] = values
        builder = s.image.builder or config.registry.builder
        storage_driver = ""
        if builder == "buildah":
            storage_driver = s.image.storage_driver or config.registry.storage_driver or BUILTIN_STORAGE_DRIVER
        cache = cache_ttl = ""
        if cache_enabled(config, s):
            cache = f"{config.registry.host}/{s.image.cache_repository or s.image.name + CACHE_SUFFIX}"
            cache_ttl = config.registry.cache_ttl or BUILTIN_CACHE_TTL
        services.append(
            Service(
                name=name,
                kind=s.kind,
                description=s.description or name,
                repository=s.repository,
                branch=s.branch,
                paths=tuple(s.paths),
                test_enabled=s.test.enabled,
                test_parallel=s.test.parallel,
                test_commands=tuple(s.test.commands or [fill(c) for c in kind.test_commands]),
                junit=s.test.junit or (fill(kind.junit) if kind.junit else None),
                build_commands=tuple(s.build.commands or [fill(c) for c in kind.build_commands]),
                image=f"{config.registry.host}/{s.image.name}",
                image_context=s.image.context or fill(kind.context),
                dockerfile=s.image.dockerfile or fill(kind.dockerfile),
                builder=builder,
                storage_driver=storage_driver,
                cache=cache,
                cache_ttl=cache_ttl,
                namespace=kube["namespace"],
                replicas=kube["replicas"],
                container_port=kube["container_port"],
                health_path=kube["health_path"],
                resources=resources,
                scale_down_delay=kube["scale_down_delay"],
                scale_down_delay_floor=kube["scale_down_delay_floor"],
                abort_scale_down_delay=kube["abort_scale_down_delay"],
                deploy_timeout=kube["deploy_timeout"],
                old_colour=kube["old_colour"],
                smoke_test=kube["smoke_test"],
                auto_promotion_enabled=kube["auto_promotion_enabled"],
                auto_promotion_seconds=kube["auto_promotion_seconds"],
                preview_replica_count=kube["preview_replica_count"],
                promotion_submitter=kube["promotion_submitter"],
                monitoring=resolve_monitoring(config.monitoring, s.monitoring, kind.metrics_path, kube["container_port"]),
                migrate_from_handmade=s.migrate_from_handmade,
                agent=agent_choice(s.agent if s.agent is not None else config.jenkins.agent),
            )
        )
    return Project(
        source=source,
        library=config.library,
        jenkins=config.jenkins,
        registry=config.registry,
        kubernetes_credentials_id=config.kubernetes.credentials_id,
        discord=config.discord,
        services=tuple(services),
        credential_hosts=tuple(sorted((credential, host) for credential, (host, _) in credential_pairings(config).items())),
    )


# --------------------------------------------------------------------------------------------
# Loading.


def load(path: str | Path) -> Project:
    """Load, validate and resolve a configuration file; raise ``ConfigError`` on any problem."""
    path = Path(path)
    shown = str(path)
    try:
        located = yamlsource.load_file(path)
    except FileNotFoundError:
        raise ConfigError(f"{shown}: no such file (pass --config FILE)") from None
    except IsADirectoryError:
        raise ConfigError(f"{shown}: is a directory, not a configuration file") from None
    except OSError as e:
        raise ConfigError(f"{shown}: cannot read: {e.strerror}") from None
    except yamlsource.YamlSourceError as e:
        raise ConfigError(f"{shown}:{e.line}: {e.message}") from None
    return load_located(located, shown)


def load_located(located: yamlsource.Located, shown: str) -> Project:
    """Validate already-parsed YAML (``shown`` names its source in messages)."""
    if not isinstance(located.data, dict):
        raise ConfigError(f"{shown}:1: the file must be a mapping of keys such as 'version' and 'services'")
    try:
        config = EnaduConfig.model_validate(located.data)
    except ValidationError as e:
        lines = sorted({_format_error(err, located, shown) for err in _union_errors(e.errors())}, key=_line_sort_key)
        raise ConfigError("\n".join(lines)) from None
    problems = cross_problems(config)
    if problems:
        lines = sorted({f"{shown}:{located.line_of(path)}: {yamlsource.dotted(path)}: {message}"
                        for path, message in problems}, key=_line_sort_key)
        raise ConfigError("\n".join(lines))
    warnings = tuple(f"{shown}:{located.line_of(path)}: {yamlsource.dotted(path)}: {message}"
                     for path, message in scale_down_warnings(config))
    return replace(resolve(config, shown), warnings=warnings)


# Argo Rollouts' default scaleDownDelaySeconds, "a minimum of 30 seconds is recommended to ensure IP table
# propagation across the nodes in a cluster" (argo-rollouts pkg/apis/rollouts/v1alpha1/types.go,
# utils/defaults/defaults.go DefaultScaleDownDelaySeconds); the helper's deploy.RECOMMENDED_SCALE_DOWN_DELAY.
RECOMMENDED_SCALE_DOWN_DELAY = 30


def scale_down_warnings(config: EnaduConfig) -> list[tuple[tuple, str]]:
    """Per service, at the key that set the value: a scale-down delay below the floor (deploys raise it),
    or a floor lowered so far that the delay ends up shorter than proxies may need to see a switch."""
    warnings = []
    for name, s in config.services.items():
        found: dict[str, tuple[str, tuple]] = {}
        for key in ("scale_down_delay", "scale_down_delay_floor"):
            found[key] = (BUILTIN_KUBERNETES[key], ())
            for value, path in ((config.kubernetes, ("kubernetes", key)),
                                (s.kubernetes, ("services", name, "kubernetes", key))):
                if getattr(value, key) is not None:
                    found[key] = (getattr(value, key), path)
        (delay, delay_path), (floor, floor_path) = found["scale_down_delay"], found["scale_down_delay_floor"]
        floor_key = yamlsource.dotted(floor_path) if floor_path else "kubernetes.scale_down_delay_floor"
        if duration_seconds(delay) < duration_seconds(floor):
            why = (", the time Service proxies may need to see a switch"
                   if duration_seconds(floor) >= RECOMMENDED_SCALE_DOWN_DELAY else "")
            warnings.append((delay_path, f"{delay} is below the floor of {floor} ({floor_key}): service {name}'s"
                                         f" deploys keep the old colour {floor}{why}"))
        kept = max((delay, floor), key=duration_seconds)
        if duration_seconds(kept) < RECOMMENDED_SCALE_DOWN_DELAY:
            warnings.append((floor_path, f"{floor} lets service {name} keep the old colour only {kept} after a"
                                         f" switch, less than the {RECOMMENDED_SCALE_DOWN_DELAY}s Service proxies may"
                                         " need to see it: requests they still send to the old colour will fail"))
    return warnings


def cross_problems(config: EnaduConfig) -> list[tuple[tuple, str]]:
    """The rules that relate several keys, checked after the model: the JSON Schema, which checks
    each value on its own, does not express them (tests/test_schema.py: the schema and the model
    agree on everything else). A rule that concerns one value belongs in its type instead."""
    return (monitoring_problems(config) + image_problems(config) + registry_problems(config)
            + kubernetes_name_problems(config) + jenkins_name_problems(config) + credential_problems(config)
            + promotion_wait_problems(config) + agent_problems(config) + parallel_test_problems(config))


def parallel_test_problems(config: EnaduConfig) -> list[tuple[tuple, str]]:
    """Parallel tests need tests: ``test.parallel`` runs the test commands beside the build."""
    return [(("services", name, "test", "parallel"),
             f"service {name} runs no tests (test.enabled is false): parallel tests need enabled: true")
            for name, s in config.services.items() if s.test.parallel and not s.test.enabled]


def agent_problems(config: EnaduConfig) -> list[tuple[tuple, str]]:
    """A kubernetes agent needs an image for each container a service uses (its kind's build container, the
    builder, the helper) and builds images with buildah (an agent pod has no Docker daemon nor socket);
    a mapping chooses one kind of agent; the trusted and untrusted caches are different PVCs; agents that
    share a namespace agree on what its manifest holds (one ServiceAccount, Role binding and set of PVCs)."""
    problems: list[tuple[tuple, str]] = []
    places: list[tuple[tuple, Any]] = [(("jenkins", "agent"), config.jenkins.agent)]
    places += [(("services", name, "agent"), s.agent) for name, s in config.services.items()]
    for path, value in places:
        if isinstance(value, AgentSection) and (value.label is None) == (value.kubernetes is None):
            problems.append((path, "give either label or kubernetes (a bare label such as 'linux' or 'any' also works)"))
        if isinstance(value, AgentSection) and value.kubernetes is not None:
            cache = value.kubernetes.cache
            if cache.untrusted == cache.trusted:
                problems.append((path + ("kubernetes", "cache", "untrusted"),
                                 f"{cache.untrusted!r} is also the trusted builds' cache: untrusted builds (pull"
                                 " requests, other branches) must not write what trusted builds read"))
    namespaces: dict[str, tuple[tuple, tuple]] = {}
    for name, s in config.services.items():
        where = ("services", name, "agent") if s.agent is not None else ("jenkins", "agent")
        choice = agent_choice(s.agent if s.agent is not None else config.jenkins.agent)
        agent = choice.kubernetes
        if agent is None:
            continue
        for role, key in (("build container", s.kind), ("image builder", "builder"), ("helper", "helper")):
            if getattr(agent.images, key) is None:
                problems.append((where + ("kubernetes", "images"),
                                 f"service {name} runs in agent pods and needs images.{key} (its {role}),"
                                 " pinned by digest"))
        builder = s.image.builder or config.registry.builder
        if builder != "buildah":
            problems.append((("services", name, "image", "builder") if s.image.builder else ("registry", "builder"),
                             f"service {name} runs in agent pods, which have no Docker daemon nor socket: build its"
                             " image with buildah"))
        # resources/enadu/k8s/agents/<namespace>.yaml has one ServiceAccount, Role binding and set of PVCs
        settings = (agent.service_account, agent.controller_namespace, agent.controller_service_account, agent.cache)
        first = namespaces.setdefault(agent.namespace, (settings, where))
        if first[0] != settings and not any(p[0] == where + ("kubernetes",) for p in problems):
            problems.append((where + ("kubernetes",),
                             f"namespace {agent.namespace!r} gets its agents' ServiceAccount, RBAC and cache PVCs"
                             f" from {yamlsource.dotted(first[1])} too, with other settings: agents sharing a"
                             " namespace must agree on service_account, controller_* and cache"))
    return problems


def promotion_wait_problems(config: EnaduConfig) -> list[tuple[tuple, str]]:
    """With manual promotion, the build's whole timeout (templates/pipelines/Jenkinsfile.j2 ``timeout``
    around every stage) must hold the deploy, the input's wait and the promote (each bounded by
    deploy_timeout), and the abort scale-down delay the ``finally``'s abort waits out after the input
    (review3 M2): otherwise it fires first, and workflow-basic-steps' TimeoutStepExecution gives the
    ``finally``'s abort only its 60 s grace. Reported at the key that set auto_promotion_seconds (or,
    when it is the default, auto_promotion_enabled)."""
    problems = []
    budget = config.jenkins.timeout_minutes * 60
    for name, s in config.services.items():
        found: dict[str, tuple[Any, tuple]] = {}
        for key in ("auto_promotion_enabled", "auto_promotion_seconds", "deploy_timeout", "abort_scale_down_delay"):
            found[key] = (BUILTIN_KUBERNETES[key], ())
            for layer, path in ((config.kubernetes, ("kubernetes", key)),
                                (s.kubernetes, ("services", name, "kubernetes", key))):
                if getattr(layer, key) is not None:
                    found[key] = (getattr(layer, key), path)
        enabled, enabled_path = found["auto_promotion_enabled"]
        wait, wait_path = found["auto_promotion_seconds"]
        deploy_timeout = found["deploy_timeout"][0]
        abort_delay = found["abort_scale_down_delay"][0]
        kept = 0 if abort_delay == "never" else duration_seconds(abort_delay)
        if enabled or wait + 2 * duration_seconds(deploy_timeout) + kept <= budget:
            continue
        problems.append((wait_path or enabled_path,
                         f"service {name} has auto_promotion_enabled false: auto_promotion_seconds {wait} plus twice"
                         f" deploy_timeout {deploy_timeout} (the deploy before the input, the promote after) plus"
                         f" abort_scale_down_delay {abort_delay} (the abort after a \"no\" waits it out) must fit"
                         f" in jenkins.timeout_minutes {config.jenkins.timeout_minutes} ({budget} s), the whole"
                         " build's timeout; lower auto_promotion_seconds or raise jenkins.timeout_minutes"))
    return problems


def registry_problems(config: EnaduConfig) -> list[tuple[tuple, str]]:
    """``registry.insecure`` only with a registry on loopback."""
    host = config.registry.host
    if config.registry.insecure and not is_loopback_registry(host):
        return [(("registry", "insecure"), f"an insecure (plain HTTP) registry must be on loopback (localhost or"
                                           f" 127.x.x.x[:port]), not {host!r}: a remote registry needs TLS")]
    return []


def kubernetes_objects(name: str, namespace: str) -> dict[tuple[str, str, str], str]:
    """The Kubernetes objects a service owns, as (kind, namespace, name) → what it is. The names are
    derived where the objects are made: templates/k8s/service.yaml.j2 (the Service, the ``-preview``
    Service), helper/kube/manifest.py (``<service>-<colour>`` Deployments), helper/kube/lock.py
    (the Lease), templates/k8s/servicemonitor.yaml.j2."""
    return {
        ("Service", namespace, name): "Service",
        ("Service", namespace, f"{name}-preview"): "preview Service",
        **{("Deployment", namespace, f"{name}-{colour}"): f"{colour} Deployment" for colour in ("blue", "green")},
        ("Lease", namespace, f"enadu-deploy-{name}"): "deploy lock (Lease)",
        ("ServiceMonitor", namespace, name): "ServiceMonitor",
    }


def kubernetes_name_problems(config: EnaduConfig) -> list[tuple[tuple, str]]:
    """Two services whose objects would share a name (``frontend``'s preview Service and a service
    named ``frontend-preview``): one would overwrite the other."""
    owners: dict[tuple[str, str, str], tuple[str, str]] = {}
    problems = []
    for name, s in config.services.items():
        namespace = s.kubernetes.namespace or config.kubernetes.namespace or BUILTIN_KUBERNETES["namespace"]
        for key, what in kubernetes_objects(name, namespace).items():
            if key in owners:
                other, other_what = owners[key]
                problems.append((("services", name), f"its {what} {key[2]!r} has the name of the {other_what} of"
                                                     f" service {other!r} (namespace {namespace!r}); rename one of them"))
                break
            owners[key] = (name, what)
    return problems


def jenkins_name_problems(config: EnaduConfig) -> list[tuple[tuple, str]]:
    """A service named like another's operations job (``backend-ops`` next to ``backend``): bootstrap
    writes both jobs into one folder, so one would overwrite the other."""
    return [(("services", name), f"its Jenkins job {name!r} has the name of service {name[:-4]!r}'s operations job;"
                                 " rename it")
            for name in config.services if name.endswith("-ops") and name[:-4] in config.services]


def image_problems(config: EnaduConfig) -> list[tuple[tuple, str]]:
    """Image settings that are valid alone but not together: a storage driver for a docker build, two
    services with one image."""
    problems = []
    seen: dict[str, str] = {}
    for name, service in config.services.items():
        other = seen.setdefault(service.image.name, name)
        if other != name:
            problems.append((("services", name, "image", "name"),
                             f"services {other!r} and {name!r} use the same image {service.image.name!r}"))
    for name, s in config.services.items():
        builder = s.image.builder or config.registry.builder
        if s.image.storage_driver is not None and builder != "buildah":
            problems.append((("services", name, "image", "storage_driver"),
                             f"applies to builder buildah only; this service builds with {builder}"
                             " (the Docker daemon picks its own storage driver)"))
        if s.image.cache and builder != "buildah":
            problems.append((("services", name, "image", "cache"),
                             f"the registry layer cache applies to builder buildah only; this service builds with {builder}"
                             " (docker's classic builder has no registry cache: use builder buildah)"))
        elif s.image.cache_repository is not None and not cache_enabled(config, s):
            problems.append((("services", name, "image", "cache_repository"),
                             "this service builds without a registry layer cache (builder docker, or cache: false)"))
    images = {s.image.name: name for name, s in config.services.items()}
    for name, s in config.services.items():
        if s.image.cache_repository in images:
            problems.append((("services", name, "image", "cache_repository"),
                             f"{s.image.cache_repository!r} is the image of service {images[s.image.cache_repository]!r};"
                             " a cache needs a repository of its own"))
    any_buildah = config.registry.builder == "buildah" or any(s.image.builder == "buildah" for s in config.services.values())
    for key in ("storage_driver", "cache", "cache_ttl"):
        if getattr(config.registry, key) is not None and not any_buildah:
            problems.append((("registry", key), "applies to builder buildah only, and no service builds with buildah"))
    return problems


def cache_enabled(config: EnaduConfig, service: ServiceSection) -> bool:
    """Whether ``service`` builds with buildah's registry layer cache: on by default for buildah."""
    if (service.image.builder or config.registry.builder) != "buildah":
        return False
    for choice in (service.image.cache, config.registry.cache):
        if choice is not None:
            return choice
    return True


def _url_host(url: str) -> str:
    return urlsplit(url).netloc.lower()


def repository_host(url: str) -> str:
    """The host[:port] a git repository URL (configtypes.RepoUrl's three forms) sends credentials to;
    vars/enaduCheckout reads it the same way."""
    if url.startswith("git@"):  # scp-like: git@host:org/repo, the ':' separates the path
        return url[len("git@"):].split(":", 1)[0].lower()
    return urlsplit(url).netloc.rsplit("@", 1)[-1].lower()


def credential_pairings(config: EnaduConfig) -> dict[str, tuple[str, tuple]]:
    """Every credential that is sent to a host of our choosing: id -> (host[:port], key path that pairs
    them). The defaults come from the global sections; ``credential_hosts`` adds the allowed others."""
    pins: dict[str, tuple[str, tuple]] = {config.registry.credentials_id: (config.registry.host, ("registry", "host"))}
    g = config.monitoring.grafana
    if g.url and g.credentials_id and g.credentials_id not in pins:
        pins[g.credentials_id] = (_url_host(g.url), ("monitoring", "grafana", "url"))
    git = config.jenkins.git_credentials_id
    if git and git not in pins and git not in config.credential_hosts:
        pins[git] = (repository_host(config.library.repository), ("library", "repository"))
    for credential, host in config.credential_hosts.items():
        pins.setdefault(credential, (host, ("credential_hosts", credential)))
    return pins


_ROLES = {"git": "a git clone credential", "registry": "the registry login", "kubeconfig": "the kubeconfig",
          "discord": "the Discord webhook", "grafana": "a Grafana token"}


def credential_problems(config: EnaduConfig) -> list[tuple[tuple, str]]:
    """Which host receives which credential (issue 13, finding 3): each credential serves one purpose;
    a host-bound one (registry login, Grafana token) goes to one host, paired with it by the global
    section or by the ``credential_hosts`` allow list; a Grafana token never travels over plain http
    (the webhook's loopback rule, helper/loopback.py)."""
    problems: list[tuple[tuple, str]] = []
    uses: list[tuple[str, str, tuple]] = []  # (credential, role, key path)
    for credential, role, path in (
            (config.library.credentials_id, "git", ("library", "credentials_id")),
            (config.jenkins.git_credentials_id, "git", ("jenkins", "git_credentials_id")),
            (config.registry.credentials_id, "registry", ("registry", "credentials_id")),
            (config.kubernetes.credentials_id, "kubeconfig", ("kubernetes", "credentials_id")),
            (config.discord.credentials_id, "discord", ("discord", "credentials_id"))):
        if credential:
            uses.append((credential, role, path))
    top = config.monitoring.grafana
    top_paths = (("monitoring", "grafana", "credentials_id"), ("monitoring", "grafana", "url"))
    grafana: list[tuple[str, str, tuple, tuple]] = []  # (credential, url, credential's path, url's path)
    if top.credentials_id and top.url:
        grafana.append((top.credentials_id, top.url, *top_paths))
    for name, s in config.services.items():
        own = s.monitoring.grafana
        here = ("services", name, "monitoring", "grafana")
        credential, url = own.credentials_id or top.credentials_id, own.url or top.url
        if (own.url or own.credentials_id) and credential and url:
            grafana.append((credential, url, here + ("credentials_id",) if own.credentials_id else top_paths[0],
                            here + ("url",) if own.url else top_paths[1]))
    uses += [(credential, "grafana", path) for credential, _, path, _ in grafana]
    first: dict[str, tuple[str, tuple]] = {}
    misused: set[str] = set()  # reported once, as a misuse: its host does not matter then
    for credential, role, path in uses:
        role0, path0 = first.setdefault(credential, (role, path))
        if role0 != role:
            misused.add(credential)
            problems.append((path, f"credential {credential!r} is {_ROLES[role0]} ({yamlsource.dotted(path0)}); one"
                                   f" credential serves one purpose, so {_ROLES[role]} needs a credential of its own"))
    pins = credential_pairings(config)
    for credential, host in config.credential_hosts.items():
        pinned, where = pins[credential]
        if where[0] != "credential_hosts":
            if pinned != host:
                problems.append((("credential_hosts", credential),
                                 f"credential {credential!r} is sent to {pinned!r} ({yamlsource.dotted(where)});"
                                 f" it cannot also be sent to {host!r}"))
        elif first.get(credential, ("",))[0] not in ("grafana", "git"):
            problems.append((("credential_hosts", credential),
                             f"credential {credential!r} is paired with {host!r} but no Grafana setting uses it;"
                             " remove the pairing (the list allows only what is used)"))
    git = config.jenkins.git_credentials_id
    if git and git not in misused:
        pinned_git = pins[git]
        for name, s in config.services.items():
            host = repository_host(s.repository)
            if host != pinned_git[0]:
                problems.append((("services", name, "repository"),
                                 f"credential {git!r} is sent only to {pinned_git[0]!r}"
                                 f" ({yamlsource.dotted(pinned_git[1])}), not {host!r}; a repository on another"
                                 " host needs a credential of its own, paired with its host in credential_hosts"))
    for credential, url, credential_path, url_path in grafana:
        cleartext = cleartext_problem(url, "the Grafana token")
        if cleartext:
            problems.append((url_path, cleartext))
            continue
        if credential in misused:
            continue
        host = _url_host(url)
        pinned = pins.get(credential)
        if pinned is None:
            problems.append((credential_path, f"credential {credential!r} is not paired with {host!r}: add"
                                              f" '{credential}: {host}' to credential_hosts, where reviewers see"
                                              " every host a credential is sent to"))
        elif pinned[0] != host:
            problems.append((url_path, f"credential {credential!r} is sent only to {pinned[0]!r}"
                                       f" ({yamlsource.dotted(pinned[1])}), not {host!r}; another Grafana needs"
                                       " a credential of its own, paired with its host in credential_hosts"))
    return problems


# Members of a union of text and a mapping (jenkins.agent: a label or an AgentSection), as pydantic names them in
# an error's loc.
_UNION_MEMBERS = ("AgentSection",)


def _is_member(part: Any) -> bool:
    return isinstance(part, str) and (part in _UNION_MEMBERS or part.startswith("function-after["))


def _union_errors(errors: list[Any]) -> list[Any]:
    """pydantic reports every member of a failed union: for `agent: {kubernetes: ...}` with a bad image, both
    "expected text" (the label member) and the image's problem. Keep the member the value's type chose (drop
    a member's type mismatch when another member has an error at the same key), and the key path without
    the member's name."""
    def point(err: Any) -> tuple | None:
        loc = err["loc"]
        return next((loc[:i] for i, part in enumerate(loc) if _is_member(part)), None)

    def mismatch(err: Any) -> bool:
        return point(err) is not None and err["type"] in ("string_type", "model_type") and _is_member(err["loc"][-1])

    out = []
    for err in errors:
        at = point(err)
        if mismatch(err) and any(point(other) == at and not mismatch(other) for other in errors):
            continue
        if at is not None:
            err = {**err, "loc": tuple(part for part in err["loc"] if not _is_member(part))}
        out.append(err)
    return out


def _line_sort_key(message: str) -> tuple[int, str]:
    parts = message.split(":", 2)
    try:
        return int(parts[1]), message
    except (IndexError, ValueError):
        return 0, message


def _format_error(err: Any, located: yamlsource.Located, shown: str) -> str:
    loc = tuple(p for p in err["loc"] if p != "[key]")
    kind = err["type"]
    # A dict key that fails its pattern: pydantic reports loc (..., key, "[key]").
    if "[key]" in err["loc"]:
        key_path = loc
        return f"{shown}:{located.line_of(key_path)}: {yamlsource.dotted(key_path)}: {_clean(err['msg'])}"
    if kind == "extra_forbidden":
        parent, key = loc[:-1], loc[-1]
        hint = ""
        allowed = _allowed_keys(parent)
        if allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(sorted(allowed))})"
        return f"{shown}:{located.line_of(loc)}: {yamlsource.dotted(loc)}: unknown key{hint}"
    if kind == "missing":
        return f"{shown}:{located.line_of(loc)}: {yamlsource.dotted(loc)}: required key is missing"
    # Union members (str | None) add their type name to loc; drop those pydantic-internal parts.
    loc = tuple(p for p in loc if not (isinstance(p, str) and (p in _TYPE_LOC_PARTS or p.startswith("function-"))))
    return f"{shown}:{located.line_of(loc)}: {yamlsource.dotted(loc)}: {_clean(err['msg'], err)}"


_TYPE_LOC_PARTS = {"str", "int", "bool", "list[str]", "none", "literal[1]"}


def _clean(msg: str, err: Any = None) -> str:
    msg = msg.removeprefix("Value error, ")
    if err is not None and err["type"] in ("string_type", "int_type", "bool_type", "list_type", "dict_type", "model_type"):
        got = type(err.get("input")).__name__
        got = {"NoneType": "nothing", "dict": "a mapping", "list": "a list", "str": "text", "int": "a number",
               "bool": "true/false", "float": "a decimal number"}.get(got, got)
        want = {"string_type": "text", "int_type": "a whole number", "bool_type": "true or false",
                "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping"}[err["type"]]
        return f"expected {want}, got {got}"
    return msg


def _allowed_keys(parent: tuple) -> list[str]:
    """The field names of the model found at ``parent`` (a pydantic loc), or [] if none."""
    target: Any = EnaduConfig
    for part in parent:
        target = _unwrap(target)
        if isinstance(target, type) and issubclass(target, BaseModel):
            if part not in target.model_fields:
                return []
            target = target.model_fields[part].annotation
        elif typing.get_origin(target) is dict:
            target = typing.get_args(target)[1]
        elif typing.get_origin(target) is list:
            target = typing.get_args(target)[0]
        else:
            return []
    target = _unwrap(target)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return list(target.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if len(args) != 1 and len(models) == 1:  # text or a mapping (jenkins.agent): the mapping's keys
                args = models
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``enadu.yaml`` (draft 2020-12), for editors."""
    schema = EnaduConfig.model_json_schema(mode="validation")
    _keys_by_pattern(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/enadu/enadu-pipelines/enadu.schema.json"
    schema["title"] = "enadu.yaml"
    return schema


def _keys_by_pattern(node: Any) -> None:
    """pydantic writes the key pattern of ``dict[Name, ...]`` as ``patternProperties``, which leaves any
    other key (``Backend``) unchecked; the loader refuses it. Make the pattern the keys' rule
    (``propertyNames``) and the value schema apply to every key."""
    if isinstance(node, dict):
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in node:
            [(pattern, value)] = node.pop("patternProperties").items()
            node.setdefault("propertyNames", {})["pattern"] = pattern
            node["additionalProperties"] = value
        for child in node.values():
            _keys_by_pattern(child)
    elif isinstance(node, list):
        for child in node:
            _keys_by_pattern(child)
