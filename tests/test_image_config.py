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
