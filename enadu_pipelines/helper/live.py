"""Which commit is live for a service: what `changes` compares the pushed commit with.

Read-only. The Service's selector names the live colour (``color: blue|green``); that colour's
Deployment carries the commit it was deployed from as ``enadu.io/commit`` (written by ``deploy``,
kept through scale-to-zero and scale-up, so after a rollback it names the older commit). Two GETs,
both granted by the deployer Role (``get`` on services and deployments): no lease, no namespace
probe, nothing written.

The kubeconfig, context and namespace are settled exactly as for ``deploy`` and ``status``
(``kube.client.connect``; the namespace from ``--namespace``/``ENADU_NAMESPACE``, else the manifest's,
else the kubeconfig context's, else ``default``). Every way of not knowing is a :class:`NoLiveCommit`
with a short reason; a cluster that cannot be read is one too, with ``warning`` set, because `changes`
falls back instead of failing the build. The requests are retried for at most ``READ_DEADLINE``
seconds (the deploy's own default is 60 s) and the whole read is abandoned after ``READ_LIMIT``
(:func:`read_live_bounded`): an unreachable cluster must not hold up every build.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from .errors import ClusterError, HelperError, UsageProblem

READ_DEADLINE = 10.0  # seconds the two reads may spend retrying transient failures
READ_LIMIT = 15.0  # seconds the whole read may take, connecting included (a hung server or exec plugin)


@dataclass(frozen=True)
class Live:
    """The live colour of a service and what its Deployment records."""

    namespace: str
    colour: str
    commit: str
    image: Optional[str]
    build_url: Optional[str]

    def as_json(self) -> Dict[str, Any]:
        return {"namespace": self.namespace, "colour": self.colour, "commit": self.commit, "image": self.image,
                "build_url": self.build_url}


class NoLiveCommit(Exception):
    """No live commit to compare with; ``reason`` says why in a few words, ``warning`` marks a failure
    to read the cluster (the caller reports it), as opposed to a cluster that holds no commit."""

    def __init__(self, reason: str, *, warning: bool = False, namespace: Optional[str] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.warning = warning
        self.namespace = namespace


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The cluster flags of `changes` (the same names and variables as deploy's)."""
    from .cli import env_default

    parser.add_argument("--namespace", default=None,
                        help="namespace of the live Service (default: the manifest's, else the kubeconfig context's,"
                             " else default) [ENADU_NAMESPACE]")
    parser.set_defaults(namespace_env=env_default("ENADU_NAMESPACE"))
    parser.add_argument("--kubeconfig", default=None,
                        help="kubeconfig to read the live commit with [KUBECONFIG]; without one (and outside a pod)"
                             " the last successful build is compared with instead")
    parser.add_argument("--context", default=env_default("ENADU_KUBE_CONTEXT"),
                        help="kubeconfig context (default: its current context) [ENADU_KUBE_CONTEXT]")
    parser.add_argument("--manifest", default=env_default("ENADU_MANIFEST"),
                        help="the service's rendered manifest: only its namespace is used [ENADU_MANIFEST]")


def read_live_bounded(args: argparse.Namespace, service: str, log: Callable[[str], None],
                      limit: float = READ_LIMIT) -> Live:
    """:func:`read_live` bounded in wall time: retries stop at ``READ_DEADLINE``, but one request may
    wait for its whole read timeout on a server that accepts and never answers, and an exec credential
    plugin that waits for a person (a device-code login) blocks the kubernetes client with no timeout.
    The read runs in a daemon thread; past ``limit`` seconds it is abandoned, as is any answer it did not
    expect (a proxy's JSON of another shape): :class:`NoLiveCommit` with ``warning``, never a failed build.
    A flag that is wrong whatever the cluster (:class:`UsageProblem`) is still raised."""
    import threading

    outcome: Dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["live"] = read_live(args, service, log)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread below
            outcome["error"] = e

    worker = threading.Thread(target=work, name="read-live", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise NoLiveCommit(f"the cluster did not answer within {limit:g} s", warning=True)
    error = outcome.get("error")
    if error is None:
        return outcome["live"]
    if isinstance(error, (NoLiveCommit, UsageProblem)):
        raise error
    if isinstance(error, Exception):
        raise NoLiveCommit(f"the cluster's answer could not be read ({type(error).__name__})", warning=True) from None
    raise error  # KeyboardInterrupt, SystemExit


def read_live(args: argparse.Namespace, service: str, log: Callable[[str], None]) -> Live:
    """The live colour and commit of ``service``; raises :class:`NoLiveCommit` (never anything else
    for the cluster's answers) and :class:`UsageProblem` for flags that are wrong whatever the cluster."""
    from .deploy import namespace_flag, pinned_namespace
    from .kube.manifest import COLOURS, LABEL, NAMESPACE_PATTERN

    given, source = namespace_flag(args)
    if given is not None and not NAMESPACE_PATTERN.fullmatch(given):
        raise UsageProblem(f"{source}: {given[:70]!r} is not a namespace name")
    manifest = None
    if getattr(args, "manifest", None):
        from .kube import manifest as manifests

        manifest = manifests.load(args.manifest, service)
    pinned = pinned_namespace(args, manifest)
    namespace = pinned[0] if pinned else None
    if not _credentials(args):  # said before the kubernetes client is even imported
        raise NoLiveCommit("no cluster credentials (KUBECONFIG)", namespace=namespace)
    try:
        kube, namespace = _open(args, pinned, log, service)
        found = kube.get(f"get service {service}", kube.core.read_namespaced_service, service, namespace)
        if found is None:
            raise NoLiveCommit(f"nothing is deployed in {namespace} yet (no Service {service})", namespace=namespace)
        colour = ((found.get("spec") or {}).get("selector") or {}).get(LABEL)
        if colour not in COLOURS:
            what = "the hand-made pods of a migration" if colour == "legacy" else "no colour"
            raise NoLiveCommit(f"service {service} in {namespace} selects {what}", namespace=namespace)
        dep = kube.get_deployment(f"{service}-{colour}")
    except NoLiveCommit:
        raise
    except UsageProblem as e:  # an unreadable kubeconfig, a context naming no namespace name: warn, fall back
        raise NoLiveCommit(f"the cluster could not be read: {e}", warning=True, namespace=namespace) from None
    except (ClusterError, HelperError) as e:
        raise NoLiveCommit(f"the cluster could not be read: {e}", warning=True, namespace=namespace) from None
    if dep is None:
        raise NoLiveCommit(f"service {service} in {namespace} selects {colour}, whose Deployment is gone",
                           namespace=namespace)
    from .kube.bluegreen import commit_of
    from .kube.manifest import BUILD_URL, COMMIT, IMAGE

    annotations = (dep.get("metadata") or {}).get("annotations") or {}
    commit = commit_of(dep)
    if commit is None:
        why = "is not a commit id" if annotations.get(COMMIT) else "is missing (deployed before commits were recorded)"
        raise NoLiveCommit(f"the live Deployment {service}-{colour} in {namespace}: {COMMIT} {why}", namespace=namespace)
    # untrusted like every annotation read back: only values that pass the rules the history uses
    from . import imageref

    image = annotations.get(IMAGE)
    containers = (((dep.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}]
    running = containers[0].get("image") if isinstance(containers[0], dict) else None
    if image and running and image != running:  # someone changed the image since: the commit says nothing of it
        raise NoLiveCommit(f"the live Deployment {service}-{colour} in {namespace} runs {str(running)[:100]}, not the"
                           f" image its {COMMIT} was recorded with", namespace=namespace)
    build_url = annotations.get(BUILD_URL)
    return Live(namespace, colour, commit, image if imageref.problem(image) is None else None,
                build_url if isinstance(build_url, str) and len(build_url) <= 2000 and build_url.isprintable() else None)


def _credentials(args: argparse.Namespace) -> bool:
    """Whether ``connect`` has credentials to try: a kubeconfig, or a pod's service account."""
    import os

    from .kube.client import SERVICE_ACCOUNT_TOKEN

    if getattr(args, "kubeconfig", None) or os.environ.get("KUBECONFIG"):
        return True
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.isfile(SERVICE_ACCOUNT_TOKEN)


def _open(args: argparse.Namespace, pinned: Any, log: Callable[[str], None], service: str) -> Any:
    """A read-only client in the settled namespace (deploy.open_cluster's rule), and the namespace."""
    from . import retry
    from .kube.client import Kube, api_deadline, connect
    from .kube.manifest import NAMESPACE_PATTERN

    api_client, how, context = connect(getattr(args, "kubeconfig", None), getattr(args, "context", None))
    if pinned is not None:
        namespace, origin = pinned
    elif context is not None:
        if not NAMESPACE_PATTERN.fullmatch(context[0]):
            raise UsageProblem(f"{context[1]} names {context[0][:70]!r}, which is not a namespace name")
        namespace, origin = context[0], f"from {context[1]}"
    else:
        namespace, origin = "default", "none named"
    log(f"reading the live commit of {service} with {how}, namespace {namespace} ({origin})")
    policy = retry.Policy(backoffs=(0.5, 1, 2, 3), deadline=min(api_deadline(), READ_DEADLINE))
    # no probe_lease: a missing Service means "nothing deployed", never a dry-run create
    return Kube(api_client, namespace, log=log, policy=policy, origin=origin), namespace
