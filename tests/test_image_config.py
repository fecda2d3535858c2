"""`registry.builder` / `services.<name>.image.builder`, buildah's storage driver and
`registry.insecure`: defaults, overrides, and the one-line errors for what is refused."""

from __future__ import annotations

import pytest

from enadu_pipelines import config, steps, yamlsource
from enadu_pipelines.configtypes import LOOPBACK_REGISTRY, is_loopback_registry
from enadu_pipelines.errors import ConfigError

from conftest import REPO

BASE = """\
version: 1
library:
  version: v1.0.0
  repository: https://github.com/enadu/enadu-pipelines.git
registry:
  host: {host}
  credentials_id: reg
{registry}kubernetes:
  credentials_id: kube
discord:
  credentials_id: hook
services:
  backend:
    kind: gradle
    repository: https://github.com/enadu/enadu.git
    branch: be-dev
    paths: ["backend/**"]
    image:
      name: enadu/backend
{backend}  frontend:
    kind: node
    repository: https://github.com/enadu/enadu-frontend.git
    branch: fe-dev
    paths: ["**"]
    image:
      name: enadu/frontend
"""


def load(host: str = "registry.example.com", registry: str = "", backend: str = "") -> config.Project:
    text = BASE.format(host=host, registry=registry, backend=backend)
    return config.load_located(yamlsource.load(text), "enadu.yaml")


def errors(**kw) -> str:
    with pytest.raises(ConfigError) as e:
        load(**kw)
    return str(e.value)


def by_name(project: config.Project) -> dict[str, config.Service]:
    return {s.name: s for s in project.services}


def test_default_is_docker_with_tls():
    project = load()
    assert project.registry.insecure is False
    assert [(s.builder, s.storage_driver) for s in project.services] == [("docker", ""), ("docker", "")]


def test_registry_builder_is_the_default_and_a_service_overrides_it():
    services = by_name(load(registry="  builder: buildah\n", backend="      builder: docker\n"))
    assert (services["backend"].builder, services["backend"].storage_driver) == ("docker", "")
    assert (services["frontend"].builder, services["frontend"].storage_driver) == ("buildah", "vfs")


def test_storage_driver_falls_back_from_service_to_registry_to_vfs():
    services = by_name(load(registry="  builder: buildah\n  storage_driver: overlay\n",
                            backend="      storage_driver: vfs\n"))
    assert services["backend"].storage_driver == "vfs"
    assert services["frontend"].storage_driver == "overlay"


@pytest.mark.parametrize("host", ["localhost:5000", "127.0.0.1:5000", "127.10.0.254", "localhost"])
def test_insecure_is_accepted_for_loopback_registries(host):
    assert load(host=host, registry="  insecure: true\n").registry.insecure is True


@pytest.mark.parametrize("host", ["registry.example.com", "10.0.0.5:5000", "localhost.example.com:5000",
                                  "127.0.0.1.nip.io", "127.0.0.300:5000"])
def test_insecure_is_refused_for_any_other_host(host):
    assert errors(host=host, registry="  insecure: true\n") == (
        f"enadu.yaml:8: registry.insecure: an insecure (plain HTTP) registry must be on loopback "
        f"(localhost or 127.x.x.x[:port]), not {host!r}: a remote registry needs TLS")


def test_storage_driver_with_docker_is_refused():
    assert errors(backend="      storage_driver: overlay\n") == (
        "enadu.yaml:20: services.backend.image.storage_driver: applies to builder buildah only; this service builds"
        " with docker (the Docker daemon picks its own storage driver)")
    assert errors(registry="  storage_driver: vfs\n") == (
        "enadu.yaml:8: registry.storage_driver: applies to builder buildah only, and no service builds with buildah")


@pytest.mark.parametrize("value", ["kaniko", "'buildah; id'", "$(id)", "Buildah"])
def test_unknown_builders_are_refused(value):
    message = errors(registry=f"  builder: {value}\n")
    assert message.startswith("enadu.yaml:8: registry.builder: ") and "'docker' or 'buildah'" in message


def test_a_context_that_would_read_as_an_option_is_refused():
    message = errors(backend="      context: --output=/tmp\n")
    assert message.startswith("enadu.yaml:20: services.backend.image.context: '--output=/tmp' is not a relative path")


def test_the_step_checks_the_same_loopback_pattern_and_choices():
    rendered = (steps.by_name()["enaduImage"])
    assert {p.name: p.choices for p in rendered.params if p.choices} == {
        "builder": ("docker", "buildah"), "storageDriver": ("vfs", "overlay")}
    assert f"registry ==~ '{LOOPBACK_REGISTRY}'" in (REPO / "vars" / "enaduImage.groovy").read_text()
    assert not is_loopback_registry("127.0.0.256")


# -- the registry layer cache (buildah's --cache-from/--cache-to) --

def test_the_registry_cache_is_on_for_buildah_and_absent_for_docker():
    services = by_name(load(registry="  builder: buildah\n", backend="      builder: docker\n"))
    assert (services["backend"].cache, services["backend"].cache_ttl) == ("", "")
    assert (services["frontend"].cache, services["frontend"].cache_ttl) == (
        "registry.example.com/enadu/frontend/cache", "168h")


def test_the_cache_can_be_turned_off_renamed_and_given_a_ttl():
    services = by_name(load(registry="  builder: buildah\n  cache_ttl: 24h\n",
                            backend="      cache_repository: build-cache/backend\n"))
    assert (services["backend"].cache, services["backend"].cache_ttl) == (
        "registry.example.com/build-cache/backend", "24h")
    services = by_name(load(registry="  builder: buildah\n  cache: false\n", backend="      cache: true\n"))
    assert services["backend"].cache == "registry.example.com/enadu/backend/cache"
    assert services["frontend"].cache == ""


def test_a_cache_with_docker_is_refused():
    assert errors(backend="      cache: true\n") == (
        "enadu.yaml:20: services.backend.image.cache: the registry layer cache applies to builder buildah only; this"
        " service builds with docker (docker's classic builder has no registry cache: use builder buildah)")
    assert errors(backend="      cache_repository: enadu/backend-cache\n") == (
        "enadu.yaml:20: services.backend.image.cache_repository: this service builds without a registry layer cache"
        " (builder docker, or cache: false)")
    assert errors(registry="  cache: true\n") == (
        "enadu.yaml:8: registry.cache: applies to builder buildah only, and no service builds with buildah")
    assert errors(registry="  cache_ttl: 1h\n") == (
        "enadu.yaml:8: registry.cache_ttl: applies to builder buildah only, and no service builds with buildah")


def test_a_cache_repository_may_not_be_an_image():
    assert errors(registry="  builder: buildah\n", backend="      cache_repository: enadu/frontend\n") == (
        "enadu.yaml:21: services.backend.image.cache_repository: 'enadu/frontend' is the image of service"
        " 'frontend'; a cache needs a repository of its own")


@pytest.mark.parametrize("value", ["'enadu/backend:cache'", "'../cache'", "'$(id)'", "'Enadu/Cache'",
                                   "'cache; rm -rf /'", "'--cache-to=evil.example.com/x'"])
def test_hostile_cache_repositories_are_refused(value):
    message = errors(registry="  builder: buildah\n", backend=f"      cache_repository: {value}\n")
    assert message.startswith("enadu.yaml:21: services.backend.image.cache_repository: ")
    assert "a Docker image repository name" in message and "\n" not in message


@pytest.mark.parametrize("value", ["'1 h'", "'7d'", "'1h; id'", "'-1h'"])
def test_cache_ttls_are_durations(value):
    message = errors(registry=f"  builder: buildah\n  cache_ttl: {value}\n")
    assert message.startswith("enadu.yaml:9: registry.cache_ttl: ") and "a duration such as" in message


def test_the_jenkinsfile_passes_the_cache_to_the_step(tmp_path):
    from enadu_pipelines import render

    project = load(registry="  builder: buildah\n", backend="      cache: false\n")
    files = render.render_files(project, b"")
    frontend = files["pipelines/frontend/Jenkinsfile"].decode()
    assert "cache: 'registry.example.com/enadu/frontend/cache',\n" in frontend
    assert "cacheTtl: '168h',\n" in frontend
    assert "cache" not in files["pipelines/backend/Jenkinsfile"].decode().split("enaduImage(", 1)[1].split(")", 1)[0]
