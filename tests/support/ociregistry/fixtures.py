"""pytest fixtures for the loopback OCI registry. Import them into a test module (or a conftest):

    from tests.support.ociregistry.fixtures import oci_registry, podman_docker  # noqa: F401

`oci_registry` is a started `OciRegistry` per test (htpasswd auth on; parametrise it indirectly with
``{"auth": False}`` for an anonymous one), stopped afterwards; the test fails if the process died
early or outlives the fixture. `podman_docker` is Podman's Docker API (for the docker CLI) that treats
the test's registry as insecure under both of its names.
"""

from __future__ import annotations

import pytest

from .builders import PodmanDockerApi
from .registry import OciRegistry


@pytest.fixture
def oci_registry(request, tmp_path_factory):
    options = dict(getattr(request, "param", None) or {})
    registry = OciRegistry(tmp_path_factory.mktemp("oci-registry"), **options).start()
    process = registry.process
    try:
        yield registry
        assert registry.running, "docker-registry exited during the test; log:\n" + registry.log_text()[-2000:]
    finally:
        registry.stop()
    assert process.poll() is not None, "docker-registry is still running after stop()"


@pytest.fixture
def podman_docker(oci_registry, tmp_path_factory):
    service = PodmanDockerApi(tmp_path_factory.mktemp("podman"),
                              insecure=[oci_registry.host, oci_registry.localhost]).start()
    process = service.process
    try:
        yield service
    finally:
        service.stop()
    assert process.poll() is not None, "podman system service is still running after stop()"
