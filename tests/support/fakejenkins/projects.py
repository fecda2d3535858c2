"""enadu.yaml files with any number of services, for the bootstrap tests and the benchmark."""

from __future__ import annotations

import json
from pathlib import Path


def enadu_yaml(
    services: int | list[str] = 3,
    *,
    folder: str = "enadu",
    builds_to_keep: int = 30,
    library_version: str = "v0.1.0",
    library_credentials: str | None = None,
    library_ref: str | None = None,
    description: str = "Service {name}",
) -> str:
    """A valid configuration; ``services`` is a count (svc-001, ...) or a list of names."""
    names = [f"svc-{i:03d}" for i in range(1, services + 1)] if isinstance(services, int) else services
    lines = [
        "version: 1",
        "library:",
        "  name: enadu",
        f"  version: {library_version}",
        "  repository: https://github.com/enadu/enadu-pipelines.git",
    ]
    if library_credentials:
        lines.append(f"  credentials_id: {library_credentials}")
    if library_ref:
        lines.append(f"  ref: {library_ref}")
    lines += [
        "jenkins:",
        f"  folder: {folder}",
        f"  builds_to_keep: {builds_to_keep}",
        "  git_credentials_id: enadu-github",
        "registry: {host: registry.enadu.dev, credentials_id: enadu-registry}",
        "kubernetes: {credentials_id: enadu-kubeconfig}",
        "discord: {credentials_id: enadu-discord-webhook}",
        "services:",
    ]
    for name in names:
        lines += [
            f"  {name}:",
            "    kind: gradle",
            f"    description: {json.dumps(description.replace('{name}', name))}",
            "    repository: https://github.com/enadu/enadu.git",
            "    branch: be-dev",
            "    paths: ['backend/**']",
            f"    image: {{name: enadu/{name}}}",
        ]
    return "\n".join(lines) + "\n"


def write(directory: Path, text: str) -> Path:
    path = directory / "enadu.yaml"
    path.write_text(text, "utf-8")
    return path
