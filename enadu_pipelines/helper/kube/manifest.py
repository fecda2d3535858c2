"""The rendered blue/green manifest and the objects a colour is made of.

``render`` writes one template per service (resources/enadu/k8s/<service>.yaml): a Deployment and a
Service named after the service, labelled ``app: <service>``, plus a ``<service>-preview`` Service.
A colour is derived from it here: the Deployment becomes ``<service>-<colour>`` with
``color: <colour>`` added to its labels, selector and pod template, and the image set; the Services
select ``app`` plus ``color``. A hash of what we asked for is stored on the Deployment so a re-run can
tell "already as wanted" from "needs a write" without diffing fields the API server defaulted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..errors import UsageProblem

COLOURS = ("blue", "green")
NAMESPACE_PATTERN = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # a DNS-1123 label, as Kubernetes names namespaces
LABEL = "color"
ANNOTATION_PREFIX = "enadu.io/"
SPEC_HASH = ANNOTATION_PREFIX + "spec-hash"
IMAGE = ANNOTATION_PREFIX + "image"
BUILD_URL = ANNOTATION_PREFIX + "build-url"
# The commit the colour's image was built from (GIT_COMMIT, 40 hex digits), written with the image when
# the colour is deployed and kept through scale-to-zero and scale-up: `changes` compares with the
# commit of the live colour (helper/live.py), which after a rollback is the older one.
COMMIT = ANNOTATION_PREFIX + "commit"
COMMIT_PATTERN = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1, or SHA-256 object ids
# On the manifest's Deployment only (never copied to a colour): the hand-made Deployment this service
# migrates from, rendered from services.<service>.migrate_from_handmade in enadu.yaml (kube/migration.py)
MIGRATE_FROM = ANNOTATION_PREFIX + "migrate-from"


def other(colour: str) -> str:
    return COLOURS[1 - COLOURS.index(colour)]


@dataclass(frozen=True)
class Manifest:
    service_name: str
    deployment: Dict[str, Any]
    service: Dict[str, Any]
    preview: Optional[Dict[str, Any]]

    @property
    def namespace(self) -> Optional[str]:
        """The namespace the manifest's objects name (``metadata.namespace``), or None when they
        name none; ``load`` has checked that they agree."""
        return _namespaces(self)[0] if _namespaces(self) else None

    @property
    def replicas(self) -> int:
        return int(self.deployment.get("spec", {}).get("replicas", 1))

    @property
    def port_name(self) -> str:
        ports = self.service.get("spec", {}).get("ports") or [{}]
        return str(ports[0].get("name") or ports[0].get("port", 80))

    @property
    def migrate_from(self) -> Optional[str]:
        """The hand-made Deployment a migration may take over (``MIGRATE_FROM``), or None: migration off."""
        value = (self.deployment.get("metadata", {}).get("annotations") or {}).get(MIGRATE_FROM)
        return str(value) if value else None

    def deployment_name(self, colour: str) -> str:
        return f"{self.service_name}-{colour}"

    def preview_name(self) -> str:
        return self.preview["metadata"]["name"] if self.preview else f"{self.service_name}-preview"

    def coloured_deployment(self, colour: str, image: str, replicas: int, build_url: str,
                            commit: str = "") -> Dict[str, Any]:
        body = copy.deepcopy(self.deployment)
        body.pop("status", None)
        meta = body.setdefault("metadata", {})
        meta["name"] = self.deployment_name(colour)
        meta.pop("namespace", None)
        (meta.get("annotations") or {}).pop(MIGRATE_FROM, None)
        meta.setdefault("labels", {})[LABEL] = colour
        spec = body["spec"]
        spec["replicas"] = replicas
        spec.setdefault("selector", {}).setdefault("matchLabels", {})[LABEL] = colour
        template = spec.setdefault("template", {})
        template.setdefault("metadata", {}).setdefault("labels", {})[LABEL] = colour
        containers = template.get("spec", {}).get("containers") or []
        target = next((c for c in containers if c.get("name") == self.service_name), containers[0] if containers else None)
        if target is None:
            raise UsageProblem(f"manifest: deployment {self.service_name} has no containers")
        target["image"] = image
        digest = hashlib.sha256(json.dumps(spec["template"], sort_keys=True).encode()).hexdigest()[:16]
        annotations = meta.setdefault("annotations", {})
        annotations[SPEC_HASH] = digest
        annotations[IMAGE] = image
        if build_url:
            annotations[BUILD_URL] = build_url
        if commit:
            annotations[COMMIT] = commit
        return body

    def coloured_service(self, template: Dict[str, Any], colour: str) -> Dict[str, Any]:
        body = copy.deepcopy(template)
        body.pop("status", None)
        body.setdefault("metadata", {}).pop("namespace", None)
        body.setdefault("spec", {}).setdefault("selector", {})[LABEL] = colour
        return body


def load(path: str, service: str) -> Manifest:
    """Read the rendered manifest for ``service``; every problem is a UsageProblem naming the file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
    except OSError as e:
        raise UsageProblem(f"manifest {path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UsageProblem(f"manifest {path}: not valid YAML{where}") from None
    found: Dict[str, Dict[str, Any]] = {}
    for doc in docs:
        if not isinstance(doc, dict) or not isinstance(doc.get("metadata", {}), dict):
            raise UsageProblem(f"manifest {path}: every document must be a Kubernetes object with metadata")
        found[f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"] = doc
    deployment = found.get(f"Deployment/{service}")
    svc = found.get(f"Service/{service}")
    if deployment is None or svc is None:
        raise UsageProblem(f"manifest {path}: needs a Deployment and a Service named {service!r}")
    try:
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        containers = deployment["spec"]["template"]["spec"]["containers"]
        ports = svc["spec"]["ports"]
        shaped = isinstance(selector, dict) and isinstance(labels, dict) and isinstance(containers, list) \
            and all(isinstance(c, dict) for c in containers) and isinstance(ports, list) and ports \
            and isinstance(ports[0], dict)
    except (KeyError, TypeError):
        shaped = False
    if not shaped:
        raise UsageProblem(f"manifest {path}: the Deployment needs spec.selector.matchLabels, a pod template with "
                           "labels and containers, and the Service spec.ports")
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        raise UsageProblem(f"manifest {path}: the Deployment's selector must match its pod template's labels")
    manifest = Manifest(service, deployment, svc, found.get(f"Service/{service}-preview"))
    named = _namespaces(manifest)
    if len(set(named)) > 1:
        raise UsageProblem(f"manifest {path}: its objects name different namespaces ({', '.join(sorted(set(named)))})")
    if named and not NAMESPACE_PATTERN.fullmatch(named[0]):
        raise UsageProblem(f"manifest {path}: metadata.namespace {named[0][:70]!r} is not a namespace name")
    source = manifest.migrate_from
    if source is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", source):
        raise UsageProblem(f"manifest {path}: annotation {MIGRATE_FROM} {source[:70]!r} is not a Deployment name")
    return manifest



def _namespaces(manifest: Manifest) -> List[str]:
    """The ``metadata.namespace`` each of the manifest's objects names (none for those naming none)."""
    objects = [manifest.deployment, manifest.service] + ([manifest.preview] if manifest.preview else [])
    return [str(o["metadata"]["namespace"]) for o in objects
            if isinstance(o.get("metadata"), dict) and o["metadata"].get("namespace") not in (None, "")]
