"""A minimal validating admission chain, with a knob that refuses pod creation.

Where it runs follows staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go: `Create`
calls `rest.BeforeCreate` (name generation, defaulting, PrepareForCreate, validation) and then
`createValidation` — the validating admission plugins — before the storage write (so a refused
create never reaches the AlreadyExists check); `Update` likewise calls `updateValidation` after
`rest.BeforeUpdate`. Validating admission sees the generated name
(apiserver/pkg/registry/rest/create.go `AdmissionToValidateObjectFunc`, "in case the generated name
is populated"). Because the hook sits in the registry, it applies both to clients over HTTP and to
the in-process controllers (the replicaset controller's pod creates), as the real chain applies to
kube-controller-manager's requests.

A refusal is `admission.NewForbidden` (apiserver/pkg/admission/errors.go): 403 Forbidden,
`pods "<name>" is forbidden: <reason>`. `exceed_quota` words the reason as the ResourceQuota plugin
does (apiserver/pkg/admission/plugin/resourcequota/controller.go `CheckRequest`:
`exceeded quota: %s, requested: %s, used: %s, limited: %s`, each list `prettyPrint`ed as sorted
`name=quantity` pairs joined by ","), without tracking real usage: the test says what is used.

    remove = world.admission.reject_pods("pods are not admitted here", namespace="default", times=2)
    world.admission.exceed_quota("compute-resources", used=4, limit=4)       # pods=1 requested
    world.admission.add(lambda attrs: ..., verbs=("create", "update"), resource="deployments")
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from .errors import ApiError


@dataclass
class Attributes:
    """admission.Attributes: what the plugins see of one write."""

    verb: str  # "create" or "update" (admission's Operation, lower-cased like the RBAC verb)
    res: object  # resources.Resource
    namespace: str
    name: str
    obj: dict
    old: Optional[dict]
    subresource: str
    dry_run: bool

    @property
    def resource(self) -> str:
        return self.res.plural  # type: ignore[attr-defined]

    def forbid(self, reason: str) -> ApiError:
        return ApiError.admission_forbidden(self.res, self.name, reason)


@dataclass
class _Hook:
    fn: Callable[[Attributes], None]
    verbs: Tuple[str, ...]
    resource: str
    subresource: str


def pretty_print(resources: dict) -> str:
    """resourcequota/controller.go `prettyPrint`: sorted `name=quantity` joined by ","."""
    return ",".join(f"{k}={resources[k]}" for k in sorted(resources))


class Admission:
    def __init__(self) -> None:
        self._hooks: List[_Hook] = []
        self._lock = threading.Lock()
        self.log: List[Tuple[str, str, str, str, str]] = []  # (verb, resource, namespace, name, message)

    def add(self, fn: Callable[[Attributes], None], *, verbs=("create",), resource: str = "pods",
            subresource: str = "") -> Callable[[], None]:
        """Run `fn(attrs)` on each matching write; it refuses by raising (e.g. `raise attrs.forbid(...)`)."""
        hook = _Hook(fn, tuple(verbs), resource, subresource)
        with self._lock:
            self._hooks.append(hook)

        def remove() -> None:
            with self._lock:
                if hook in self._hooks:
                    self._hooks.remove(hook)

        return remove

    def reject_pods(self, message: str = "pod creation refused by an admission plugin", *,
                    namespace: Optional[str] = None, selector: Optional[dict] = None,
                    times: Optional[int] = None) -> Callable[[], None]:
        """Refuse pod creation (optionally only in `namespace`, for pods whose labels include
        `selector`, and only the next `times` creates) with 403 `pods "<name>" is forbidden: <message>`."""
        left = [times]

        def hook(attrs: Attributes) -> None:
            if namespace is not None and attrs.namespace != namespace:
                return
            labels = (attrs.obj.get("metadata") or {}).get("labels") or {}
            if selector and any(labels.get(k) != v for k, v in selector.items()):
                return
            if left[0] is not None:
                if left[0] <= 0:
                    return
                left[0] -= 1
            raise attrs.forbid(message)

        return self.add(hook, verbs=("create",), resource="pods")

    def exceed_quota(self, quota: str = "compute-resources", *, resource: str = "pods", requested="1", used="0",
                     limit="0", namespace: Optional[str] = None, selector: Optional[dict] = None,
                     times: Optional[int] = None) -> Callable[[], None]:
        """Refuse pod creation as an exhausted ResourceQuota does."""
        message = (f"exceeded quota: {quota}, requested: {pretty_print({resource: requested})}, "
                   f"used: {pretty_print({resource: used})}, limited: {pretty_print({resource: limit})}")
        return self.reject_pods(message, namespace=namespace, selector=selector, times=times)

    def admit(self, attrs: Attributes) -> None:
        """Run the chain; the first refusal is raised (and logged)."""
        with self._lock:
            hooks = list(self._hooks)
        for h in hooks:
            if attrs.verb not in h.verbs or attrs.resource != h.resource or attrs.subresource != h.subresource:
                continue
            try:
                h.fn(attrs)
            except ApiError as e:
                self.log.append((attrs.verb, attrs.resource, attrs.namespace, attrs.name, e.message))
                raise
