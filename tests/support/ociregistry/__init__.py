"""A real OCI registry on loopback for tests, and the image builders set up to push to it.

    from tests.support.ociregistry.fixtures import oci_registry  # noqa: F401  (the fixture)

    def test_push(oci_registry):
        ...  # push to f"{oci_registry.host}/enadu/backend:abc1234-1" as oci_registry.username/.password
        assert oci_registry.has_manifest("enadu/backend", "abc1234-1")

See registry.py (the registry), builders.py (buildah's private store; Podman's Docker API for the
docker CLI) and fixtures.py.
"""

from .builders import PodmanDockerApi, buildah_env, push_scratch_image
from .registry import OciRegistry, RegistryRequest, bcrypt_hash, free_port

__all__ = ["OciRegistry", "PodmanDockerApi", "RegistryRequest", "bcrypt_hash", "buildah_env", "free_port", "push_scratch_image"]
