"""A kubelet (and scheduler) stand-in: runs pods as real HTTP servers on loopback.

Lifecycle after the real kubelet (pkg/kubelet/kubelet.go `SyncPod`, kuberuntime/kuberuntime_manager.go,
prober/worker.go, status/generate.go) and https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/:
- binding: the pod is assigned to node `kubeworld-node` ("Scheduled" event from default-scheduler);
- sandbox: a pod IP (from a loopback block, see dataplane.py); image pull ("Pulling"/"Pulled";
  failures give ErrImagePull, then ImagePullBackOff with back-off); container config errors give
  CreateContainerConfigError; then "Created"/"Started";
- readiness: without a readinessProbe a running container is ready at once; with one, the kubelet
  sends real HTTP GETs (User-Agent kube-probe/1.32) from initialDelaySeconds on, every periodSeconds,
  honouring successThreshold/failureThreshold; liveness failures restart the container;
- crashes: the first restart is immediate, then back-off 10 s doubling to 300 s
  (kubelet.go `backOffPeriod`/`MaxContainerBackOff`) shown as CrashLoopBackOff;
- termination: on deletionTimestamp run the preStop hook (a `sleep` action or an exec `sleep N`),
  then SIGTERM, then SIGKILL at the end of the grace period; the pod object is removed when its
  containers are gone. A pod deleted with grace 0 is killed at once.
Volumes (volumes.py): a pod naming a PersistentVolumeClaim that is missing, being deleted or unbound
is not bound to the node (the scheduler's VolumeBinding PreFilter: Pending, PodScheduled False with
reason Unschedulable, a FailedScheduling event); an admitted pod's emptyDir volumes are directories
of the world's workdir, removed with the pod, and its claims' volumes are the provisioner's
directories, kept (volumes.host_path maps a container path to them: an emulation, no mounts).
Phase: Pending until every container has started once, then Running. Conditions as the kubelet
reports them: PodReadyToStartContainers, Initialized, Ready, ContainersReady, PodScheduled.
All Kubernetes durations are multiplied by the world's `time_scale`.

Images from a real registry (opt-in, `use_registry`): when an image reference names a registry the
kubelet was given (host:port), the pull asks that registry (the OCI distribution API: HEAD, then GET
the manifest, then its config and layer blobs), as containerd does for a kubelet. A missing manifest,
a refused login or an unreachable registry is a failed pull with kubelet's events and states
(pkg/kubelet/images/image_manager.go `EnsureImageExists`: "Pulling image %q", "Failed to pull image
%q: %v", ErrImagePull whose message is the runtime's error, then "Back-off pulling image %q" as
ImagePullBackOff; the runtime's wording follows containerd's resolver). What such a container does
comes from its image config: the label `io.enadu.test.kind` holds the tokens of images.py
(`crashloop`, `slow3`, `errors`, ...); no label is a normal app. Other images keep the name convention.

Transient failures (which failures repeat and which become back-off states, after the kubelet):
- `fail_pulls(image, times, status)`: each pod's first `times` pulls of `image` fail as a registry's
  429/5xx does (containerd: `unexpected status from HEAD request to <url>: 503 Service Unavailable`);
  image_manager.go `EnsureImageExists` reports ErrImagePull and calls `backOff.Next` for the key
  `<pod uid>_<image>`, so until the back-off (10 s doubling to 300 s, kubelet.go `MaxImageBackOff`)
  expires every sync answers ImagePullBackOff (`Back-off pulling image %q`) without pulling; then
  the pull is tried again. The pull back-off is per pod and image, apart from the crash back-off.
- ConfigMaps: a container's `envFrom[].configMapRef` and `env[].valueFrom.configMapKeyRef` are
  resolved against the stored ConfigMaps when the container is created (kubelet_pods.go
  `makeEnvironmentVariables`: `configmap "<name>" not found` from the kubelet's configmap manager,
  `couldn't find key <key> in ConfigMap <ns>/<name>`; `optional: true` skips). A failure is
  CreateContainerConfigError (kuberuntime_container.go `startContainer`, `ErrCreateContainerConfig`),
  which has no back-off state of its own: the pod worker retries every 10 s
  (pod_workers.go, `backOffPeriod`), so a ConfigMap created late lets the container start.
- Init containers (kuberuntime_manager.go `computePodActions` / `computeInitContainerActions`): run
  one at a time in order before any app container is pulled; an init container runs its image's
  behaviour and exits (a normal image after `app_start` + its `slow<N>` delay with 0, `exit0` after
  `crash_after` with 0, `crashloop` after `crash_after` with 1); a failed one is restarted with the
  crash back-off (restartPolicy Always: CrashLoopBackOff in `initContainerStatuses`), and pull and
  config failures show there too. Until all completed, the pod is Pending, condition Initialized is
  False (`ContainersNotInitialized`, `containers with incomplete status: [...]`, status/generate.go)
  and its app containers wait with reason PodInitializing. Sidecars (restartPolicy on an init
  container) are not emulated.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import aiohttp

from . import resources as R
from . import volumes
from .images import Behaviour, behaviour
from .registry import rfc3339

POD = R.BY_KEY["core/pods"]
NODE = "kubeworld-node"
INITIAL_BACKOFF, MAX_BACKOFF = 10.0, 300.0


@dataclass
class Probe:
    spec: dict
    next_at: float = 0.0
    successes: int = 0
    failures: int = 0
    inflight: bool = False
    result: Optional[bool] = None  # last completed result not yet applied
    detail: str = ""


@dataclass
class Container:
    name: str
    image: str
    spec: dict
    kind: Behaviour
    state: str = "waiting"  # waiting, running, terminated
    reason: str = "ContainerCreating"
    message: str = ""
    next_at: float = 0.0  # when the next lifecycle step is due
    phase: str = "pull"  # pull, pulling (registry), pull-error, pull-backoff, create, running, crashed, backoff, stopping, gone
    restarts: int = 0
    backoff: float = 0.0
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    exit_code: Optional[int] = None
    last_terminated: Optional[dict] = None
    ever_started: bool = False
    ready: bool = False
    app: object = None
    container_id: str = ""
    readiness: Optional[Probe] = None
    liveness: Optional[Probe] = None
    image_size: int = 0
    init: bool = False  # an init container: runs to completion before the app containers
    pull_failures: int = 0  # failed pulls so far (fail_pulls counts them per pod)
    pull_backoff: float = 0.0  # image back-off, apart from the crash back-off (image_manager.go)


@dataclass
class PodRuntime:
    uid: str
    namespace: str
    name: str
    ip: str
    containers: List[Container]
    started: float
    terminating: bool = False
    sigterm_at: Optional[float] = None
    kill_at: Optional[float] = None
    ready_since: Optional[float] = None
    bound: bool = False
    tasks: set = field(default_factory=set)
    init_containers: List[Container] = field(default_factory=list)

    @property
    def all_containers(self) -> List[Container]:
        return self.init_containers + self.containers

    def pending_init(self) -> Optional[Container]:
        return next((c for c in self.init_containers if c.phase != "done"), None)


PULL_STATUS_TEXT = {429: "429 Too Many Requests", 500: "500 Internal Server Error", 502: "502 Bad Gateway",
                    503: "503 Service Unavailable", 504: "504 Gateway Timeout"}


@dataclass(frozen=True)
class FlakyPull:
    """`fail_pulls`: the first `times` pulls of an image by each pod fail with HTTP `status`."""

    times: int
    status: int = 503


KIND_LABEL = "io.enadu.test.kind"
MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json"))
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


@dataclass(frozen=True)
class ImageRegistry:
    """A registry the kubelet pulls from for real, with the node's credentials for it (if any)."""

    host: str  # as written in image references: "127.0.0.1:5000"
    username: str = ""
    password: str = ""
    scheme: str = "http"


def split_reference(image: str) -> Tuple[str, str, str]:
    """(registry host, repository, tag or digest) of a reference, as docker/distribution's reference
    package splits it: the first component is a host when it has a '.' or ':' or is 'localhost'."""
    first, slash, rest = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = "docker.io", image
    if "@" in path:
        repo, _, ref = path.partition("@")
    else:
        repo, colon, tag = path.rpartition(":")
        if not colon or "/" in tag:
            repo, tag = path, "latest"
        ref = tag
    return host, repo, ref


class PullError(Exception):
    """A pull that failed, with the runtime's message (what ErrImagePull shows)."""


def _prestop_seconds(spec: dict) -> float:
    hook = ((spec.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in hook:
        return float(hook["sleep"].get("seconds", 0))
    command = " ".join((hook.get("exec") or {}).get("command") or [])
    m = re.search(r"\bsleep\s+(\d+(?:\.\d+)?)", command)
    return float(m.group(1)) if m else 0.0


class Kubelet:
    def __init__(self, world) -> None:
        self.world = world
        self.reg = world.registry
        self.pods: Dict[str, PodRuntime] = {}
        self.pulled: set = set()
        self._ip = 0
        self._session: Optional[aiohttp.ClientSession] = None
        self.registries: Dict[str, ImageRegistry] = {}
        self.image_kinds: Dict[str, Behaviour] = {}  # what each image pulled from a registry does
        self._registry_session: Optional[aiohttp.ClientSession] = None
        self.flaky_pulls: Dict[str, FlakyPull] = {}
        self.unschedulable: Dict[str, str] = {}  # pod uid -> the FailedScheduling message last recorded

    def fail_pulls(self, image: str, times: int, status: int = 503) -> None:
        """Each pod's first ``times`` pulls of ``image`` fail as the registry answering ``status``
        (429 or a 5xx) would; later pulls succeed. ``times=0`` ends it."""
        if status not in PULL_STATUS_TEXT:
            raise ValueError(f"status {status} is not one of {sorted(PULL_STATUS_TEXT)}")
        self.flaky_pulls[image] = FlakyPull(times, status)

    def use_registry(self, host: str, username: str = "", password: str = "", scheme: str = "http") -> None:
        """Pull images whose reference names ``host`` (host:port) from that registry for real."""
        self.registries[host] = ImageRegistry(host, username, password, scheme)

    def _registry_of(self, image: str) -> Optional[ImageRegistry]:
        return self.registries.get(split_reference(image)[0]) if self.registries else None

    def ready_since(self, uid: Optional[str]) -> Optional[float]:
        rt = self.pods.get(uid or "")
        return rt.ready_since if rt else None

    def scaled(self, seconds: float) -> float:
        return self.world.k8s_seconds(seconds)

    # -- the sync pass --

    def sync(self) -> None:
        now = time.time()
        store = self.world.store
        live = {}
        for pod in store.list(POD.key):
            uid = pod["metadata"]["uid"]
            live[uid] = pod
            rt = self.pods.get(uid)
            if rt is None:
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                if not pod["spec"].get("nodeName") and self._unschedulable(pod, now):
                    continue
                rt = self._admit(pod, now)
            self._sync_pod(rt, pod, now)
        for uid in list(self.pods):
            if uid not in live:  # force-deleted (grace 0) or removed: kill whatever still runs
                rt = self.pods.pop(uid)
                for c in rt.containers:
                    self._kill(c)
                for t in rt.tasks:
                    t.cancel()
                volumes.remove_pod_dir(self.world.workdir, uid)
        for uid in list(self.unschedulable):
            if uid not in live:
                del self.unschedulable[uid]

    def _unschedulable(self, pod: dict, now: float) -> bool:
        """The scheduler's VolumeBinding PreFilter (volumes.py): a refused pod stays Pending, unbound,
        with PodScheduled False/Unschedulable and a FailedScheduling event (once per distinct reason)."""
        ns = pod["metadata"]["namespace"]
        reason = volumes.unschedulable(pod, self.world.control.controllers["volumes"].claims(ns))
        if reason is None:
            self.unschedulable.pop(pod["metadata"]["uid"], None)
            return False
        message = volumes.fit_error(reason)
        if self.unschedulable.get(pod["metadata"]["uid"]) != message:
            self.unschedulable[pod["metadata"]["uid"]] = message
            self.world.events.record(pod, "Warning", "FailedScheduling", message, "default-scheduler")
        old = pod.get("status") or {}
        status = {"phase": "Pending", "qosClass": old.get("qosClass", "BestEffort"),
                  "conditions": [{"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                                  "lastTransitionTime": next((c["lastTransitionTime"] for c in old.get("conditions") or []
                                                              if c.get("type") == "PodScheduled"), rfc3339(now)),
                                  "reason": "Unschedulable", "message": message}]}
        if status != old:
            fresh = copy.deepcopy(pod)
            fresh["status"] = status
            self.reg.update(POD, ns, pod["metadata"]["name"], fresh, subresource="status")
        return True

    def _admit(self, pod: dict, now: float) -> PodRuntime:
        self._ip += 1
        ip = f"127.244.{self._ip // 250}.{self._ip % 250 + 1}"
        def made(c: dict, init: bool) -> Container:
            return Container(name=c["name"], image=c.get("image", ""), spec=c, next_at=now, init=init,
                             kind=Behaviour() if self._registry_of(c.get("image", "")) else behaviour(c.get("image", "")))

        containers = [made(c, False) for c in (pod["spec"].get("containers") or [])]
        inits = [made(c, True) for c in (pod["spec"].get("initContainers") or [])]
        if inits:
            for c in containers:
                c.reason = "PodInitializing"
        rt = PodRuntime(pod["metadata"]["uid"], pod["metadata"]["namespace"], pod["metadata"]["name"], ip, containers, now,
                        init_containers=inits)
        volumes.make_empty_dirs(self.world.workdir, pod)  # emptyDir volumes exist before any container starts
        self.pods[rt.uid] = rt
        return rt

    def _sync_pod(self, rt: PodRuntime, pod: dict, now: float) -> None:
        if not pod["spec"].get("nodeName"):
            bound = copy.deepcopy(pod)
            bound["spec"]["nodeName"] = NODE
            pod = self.world.store.put(POD.key, bound)  # the scheduler's binding subresource
            self.world.events.record(pod, "Normal", "Scheduled",
                                     f"Successfully assigned {rt.namespace}/{rt.name} to {NODE}", "default-scheduler")
        if pod["metadata"].get("deletionTimestamp") and not rt.terminating:
            self._begin_termination(rt, pod, now)
        for c in rt.all_containers:
            if rt.terminating:
                self._step_terminating(rt, c, pod, now)
            elif c.init:
                if c is rt.pending_init():  # one at a time, in order
                    self._step(rt, c, pod, now)
                    if rt.pending_init() is None:
                        for app in rt.containers:
                            app.reason = "ContainerCreating"
            elif rt.pending_init() is None:
                self._step(rt, c, pod, now)
                self._probes(rt, c, pod, now)
        if rt.terminating and all(c.phase == "gone" for c in rt.all_containers):
            self.pods.pop(rt.uid, None)
            volumes.remove_pod_dir(self.world.workdir, rt.uid)
            self.reg.finish_delete(POD, rt.namespace, rt.name)
            return
        self._write_status(rt, pod, now)

    # -- container lifecycle --

    def _step(self, rt: PodRuntime, c: Container, pod: dict, now: float) -> None:
        if now < c.next_at:
            return
        kind = c.kind
        if c.phase == "pull":
            policy = c.spec.get("imagePullPolicy", "IfNotPresent")
            registry = self._registry_of(c.image)
            if kind.pull_fails and registry is None:
                self.world.events.record(pod, "Normal", "Pulling", f'Pulling image "{c.image}"', "kubelet")
                self._pull_failed(c, pod, now, f'rpc error: code = NotFound desc = failed to pull and unpack image '
                                  f'"{c.image}": failed to resolve reference "{c.image}": {c.image}: not found')
                return
            flaky = self.flaky_pulls.get(c.image)
            present = policy != "Always" and c.image in self.pulled
            if flaky is not None and c.pull_failures < flaky.times and not present:
                self.world.events.record(pod, "Normal", "Pulling", f'Pulling image "{c.image}"', "kubelet")
                c.pull_failures += 1
                host, repo, ref = split_reference(c.image)
                url = f"https://{'registry-1.docker.io' if host == 'docker.io' else host}/v2/{repo}/manifests/{ref}"
                self._pull_failed(c, pod, now, f'rpc error: code = Unknown desc = failed to pull and unpack image '
                                  f'"{c.image}": failed to resolve reference "{c.image}": unexpected status from HEAD '
                                  f'request to {url}: {PULL_STATUS_TEXT[flaky.status]}')
                return
            if present:
                if registry is not None:
                    c.kind = self.image_kinds.get(c.image, c.kind)
                self.world.events.record(pod, "Normal", "Pulled", f'Container image "{c.image}" already present on machine', "kubelet")
                c.phase, c.next_at = "create", now
            elif registry is not None:
                self.world.events.record(pod, "Normal", "Pulling", f'Pulling image "{c.image}"', "kubelet")
                c.phase = "pulling"
                task = asyncio.get_running_loop().create_task(self._pull(rt, c, pod, registry))
                rt.tasks.add(task)
                task.add_done_callback(rt.tasks.discard)
            else:
                self.world.events.record(pod, "Normal", "Pulling", f'Pulling image "{c.image}"', "kubelet")
                c.phase, c.next_at = "pulled", now + self.world.pull_time
            return
        if c.phase == "pulling":  # the registry answers in _pull
            return
        if c.phase == "pull-error":
            c.phase, c.reason, c.message = "pull-backoff", "ImagePullBackOff", f'Back-off pulling image "{c.image}"'
            self.world.events.record(pod, "Normal", "BackOff", c.message, "kubelet")
            self.world.events.record(pod, "Warning", "Failed", "Error: ImagePullBackOff", "kubelet")
            c.next_at = now + self.scaled(c.pull_backoff)
            return
        if c.phase == "pull-backoff":
            c.phase, c.next_at = "pull", now
            return
        if c.phase == "pulled":
            self.pulled.add(c.image)
            ms = int(self.world.pull_time * 1000)
            self.world.events.record(pod, "Normal", "Pulled", f'Successfully pulled image "{c.image}" in {ms}ms '
                                     f'({ms}ms including waiting). Image size: {c.image_size} bytes.', "kubelet")
            c.phase, c.next_at = "create", now
            return
        if c.phase == "create":
            problem = f'configmap "{c.name}-config" not found' if kind.config_error else self._config_problem(rt, c)
            if problem:
                c.reason, c.message = "CreateContainerConfigError", problem
                self.world.events.record(pod, "Warning", "Failed", f"Error: {c.message}", "kubelet")
                c.next_at = now + self.scaled(10.0)
                return
            self._start(rt, c, pod, now)
            return
        if c.phase == "running" and c.init and c.started_at is not None:
            runs = self.world.crash_after if kind.crash else self.world.app_start + kind.start_delay
            if now >= c.started_at + runs:
                if kind.crash and kind.exit_code != 0:
                    self._exited(rt, c, pod, now, kind.exit_code, "Error")
                else:  # completed: the next init container, or the app containers, may go
                    c.phase, c.state, c.exit_code, c.finished_at, c.ready = "done", "terminated", 0, now, True
                    c.reason = c.message = ""
            return
        if c.phase == "running" and kind.crash and c.started_at is not None \
                and now >= c.started_at + self.world.crash_after:
            self._exited(rt, c, pod, now, kind.exit_code, "Completed" if kind.exit_code == 0 else "Error")
            return
        if c.phase == "crashed":
            if c.restarts == 0 or now >= c.next_at and c.reason == "CrashLoopBackOff":
                c.restarts += 1
                self._start(rt, c, pod, now)
            return

    def _pull_failed(self, c: Container, pod: dict, now: float, message: str) -> None:
        # image_manager.go: the event quotes the runtime's error; the container waits with reason
        # ErrImagePull and that error as its message; the next attempt is backed off.
        c.phase, c.reason, c.message = "pull-error", "ErrImagePull", message
        self.world.events.record(pod, "Warning", "Failed", f'Failed to pull image "{c.image}": {message}', "kubelet")
        self.world.events.record(pod, "Warning", "Failed", "Error: ErrImagePull", "kubelet")
        c.pull_backoff = min(MAX_BACKOFF, c.pull_backoff * 2) if c.pull_backoff else INITIAL_BACKOFF
        c.next_at = now + self.world.pull_time + self.scaled(1.0)

    def _config_problem(self, rt: PodRuntime, c: Container) -> str:
        """What makeEnvironmentVariables would fail on for this container's ConfigMap references."""
        key = R.BY_KEY["core/configmaps"].key

        def lookup(ref: dict):
            return self.world.store.get(key, rt.namespace, ref.get("name", ""))

        for source in c.spec.get("envFrom") or []:
            ref = source.get("configMapRef")
            if ref and lookup(ref) is None and not ref.get("optional"):
                return f'configmap "{ref.get("name", "")}" not found'
        for env in c.spec.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
            if not ref or ref.get("optional"):
                continue
            cm = lookup(ref)
            if cm is None:
                return f'configmap "{ref.get("name", "")}" not found'
            if ref.get("key") not in (cm.get("data") or {}):
                return f"couldn't find key {ref.get('key')} in ConfigMap {rt.namespace}/{ref.get('name', '')}"
        return ""

    async def _pull(self, rt: PodRuntime, c: Container, pod: dict, registry: ImageRegistry) -> None:
        began = time.time()
        try:
            kind, size = await self._fetch_image(registry, c.image)
            error = None
        except PullError as e:
            error = str(e)
        if self.pods.get(rt.uid) is not rt or rt.terminating or c.phase != "pulling":
            return
        now = time.time()
        if error is not None:
            self._pull_failed(c, pod, now, error)
        else:
            self.image_kinds[c.image] = c.kind = kind
            c.image_size = size
            c.phase, c.next_at = "pulled", max(now, began + self.world.pull_time)
        self.world.control._changed()

    async def _fetch_image(self, registry: ImageRegistry, image: str) -> Tuple[Behaviour, int]:
        """Pull ``image`` the way containerd's resolver and fetcher do; its Behaviour from the label."""
        _, repo, ref = split_reference(image)
        base = f"{registry.scheme}://{registry.host}/v2/{repo}"
        prefix = f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
        if self._registry_session is None:
            self._registry_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        headers = {}
        if registry.username:  # the node's credentials, sent up front as containerd does after a 401 challenge
            token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        timeout = aiohttp.ClientTimeout(total=10)

        async def fetch(method: str, url: str, accept: str = "*/*", resolving: bool = False) -> Tuple[int, dict, bytes]:
            try:
                async with self._registry_session.request(method, url, headers={"Accept": accept, **headers},
                                                          timeout=timeout) as resp:
                    return resp.status, dict(resp.headers), await resp.read()
            except (OSError, aiohttp.ClientError, asyncio.TimeoutError) as e:
                why = ("i/o timeout" if isinstance(e, asyncio.TimeoutError)
                       else f"dial tcp {registry.host}: connect: connection refused")
                where = f'failed to resolve reference "{image}": ' if resolving else ""
                raise PullError(f'{prefix}{where}failed to do request: {method.title()} "{url}": {why}') from None

        def unexpected(method: str, url: str, status: int, resolving: bool) -> PullError:
            where = f'failed to resolve reference "{image}": ' if resolving else ""
            text = {401: "401 Unauthorized", 403: "403 Forbidden"}.get(status, f"{status}")
            if status in (401, 403) and resolving:
                return PullError(f"{prefix}{where}pull access denied, repository does not exist or may require "
                                 f"authorization: server message: unexpected status from {method} request to {url}: {text}")
            return PullError(f"{prefix}{where}unexpected status from {method} request to {url}: {text}")

        url = f"{base}/manifests/{ref}"
        status, _, _ = await fetch("HEAD", url, MANIFEST_ACCEPT, resolving=True)
        if status == 404:
            raise PullError(f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                            f'failed to resolve reference "{image}": {image}: not found')
        if status != 200:
            raise unexpected("HEAD", url, status, True)
        status, _, body = await fetch("GET", url, MANIFEST_ACCEPT)
        if status != 200:
            raise unexpected("GET", url, status, False)
        manifest = json.loads(body)
        if manifest.get("mediaType") in INDEX_TYPES:
            entries = manifest.get("manifests") or []
            chosen = next((m for m in entries if (m.get("platform") or {}).get("architecture") == "amd64"), None)
            if chosen is None:
                raise PullError(f"{prefix}no match for platform in manifest: not found")
            url = f"{base}/manifests/{chosen['digest']}"
            status, _, body = await fetch("GET", url, MANIFEST_ACCEPT)
            if status != 200:
                raise unexpected("GET", url, status, False)
            manifest = json.loads(body)
        config_url = f"{base}/blobs/{manifest['config']['digest']}"
        status, _, body = await fetch("GET", config_url)
        if status != 200:
            raise unexpected("GET", config_url, status, False)
        labels = (json.loads(body).get("config") or {}).get("Labels") or {}
        size = 0
        for layer in manifest.get("layers") or []:
            layer_url = f"{base}/blobs/{layer['digest']}"
            status, _, blob = await fetch("GET", layer_url)
            if status != 200:
                raise unexpected("GET", layer_url, status, False)
            size += len(blob)
        # The label says what the container does; a pull that worked cannot "fail to pull".
        return dataclasses.replace(behaviour(str(labels.get(KIND_LABEL, ""))), pull_fails=False), size

    def _start(self, rt: PodRuntime, c: Container, pod: dict, now: float) -> None:
        c.container_id = "containerd://" + hashlib.sha256(f"{rt.uid}/{c.name}/{c.restarts}".encode()).hexdigest()
        if not c.ever_started:
            self.world.events.record(pod, "Normal", "Created", f"Created container: {c.name}", "kubelet")
        self.world.events.record(pod, "Normal", "Started", f"Started container {c.name}", "kubelet")
        c.phase, c.state, c.reason, c.message = "running", "running", "", ""
        c.started_at, c.ever_started, c.ready = now, True, False
        c.readiness = Probe(c.spec["readinessProbe"]) if c.spec.get("readinessProbe") else None
        c.liveness = Probe(c.spec["livenessProbe"]) if c.spec.get("livenessProbe") else None
        for p in (c.readiness, c.liveness):
            if p is not None:
                p.next_at = now + self.scaled(p.spec.get("initialDelaySeconds", 0))
        if c.readiness is None:
            c.ready = True  # no readiness probe: ready as soon as it runs
        if not c.kind.crash and not c.init:
            c.app = self.world.dataplane.start_app(rt, c, pod, self.world.app_start + c.kind.start_delay)

    def _exited(self, rt: PodRuntime, c: Container, pod: dict, now: float, code: int, reason: str) -> None:
        self._kill(c)
        c.last_terminated = {"exitCode": code, "reason": reason, "startedAt": rfc3339(c.started_at or now),
                             "finishedAt": rfc3339(now), "containerID": c.container_id}
        c.state, c.ready, c.phase = "waiting", False, "crashed"
        c.finished_at = now
        if c.restarts == 0:  # the first restart is immediate; meanwhile the container shows as terminated
            c.state, c.exit_code, c.reason, c.message, c.next_at = "terminated", code, "", "", now
            return
        c.backoff = min(MAX_BACKOFF, c.backoff * 2) if c.backoff else INITIAL_BACKOFF
        c.reason = "CrashLoopBackOff"
        c.message = (f"back-off {int(c.backoff)}s restarting failed container={c.name} "
                     f"pod={rt.name}_{rt.namespace}({rt.uid})")
        c.next_at = now + self.scaled(c.backoff)
        self.world.events.record(pod, "Warning", "BackOff", f"Back-off restarting failed container {c.name} in pod "
                                 f"{rt.name}_{rt.namespace}({rt.uid})", "kubelet")

    def _kill(self, c: Container) -> None:
        if c.app is not None:
            c.app.kill()
            c.app = None

    # -- probes --

    def _probes(self, rt: PodRuntime, c: Container, pod: dict, now: float) -> None:
        if c.phase != "running":
            return
        for probe, kind in ((c.readiness, "Readiness"), (c.liveness, "Liveness")):
            if probe is None:
                continue
            if probe.result is not None:
                ok, probe.result = probe.result, None
                threshold_ok = probe.spec.get("successThreshold", 1)
                threshold_bad = probe.spec.get("failureThreshold", 3)
                if ok:
                    probe.successes, probe.failures = probe.successes + 1, 0
                    if kind == "Readiness" and probe.successes >= threshold_ok:
                        c.ready = True
                else:
                    probe.failures, probe.successes = probe.failures + 1, 0
                    self.world.events.record(pod, "Warning", "Unhealthy", f"{kind} probe failed: {probe.detail}", "kubelet")
                    if probe.failures >= threshold_bad:
                        if kind == "Readiness":
                            c.ready = False
                        else:
                            self.world.events.record(pod, "Normal", "Killing", f"Container {c.name} failed liveness "
                                                     "probe, will be restarted", "kubelet")
                            self._exited(rt, c, pod, now, 137, "Error")
                            return
            if not probe.inflight and now >= probe.next_at:
                probe.inflight = True
                probe.next_at = now + self.scaled(probe.spec.get("periodSeconds", 10))
                task = asyncio.get_running_loop().create_task(self._run_probe(rt, c, probe))
                rt.tasks.add(task)
                task.add_done_callback(rt.tasks.discard)

    async def _run_probe(self, rt: PodRuntime, c: Container, probe: Probe) -> None:
        spec = probe.spec
        # Not scaled by the world's time scale: the timeout bounds a round trip on this host, which the
        # scale does not make faster. Scaled (0.2 s at scale 0.2) it turned a CPU-starved host's scheduling
        # delay into three failed probes in a row, every pod unready at once, with no helper involved.
        timeout = max(0.05, float(spec.get("timeoutSeconds", 1)))
        ok, detail = False, ""
        try:
            port = self.world.dataplane.app_port(rt.ip)
            if port is None:
                raise ConnectionRefusedError(f"dial tcp {rt.ip}: connect: connection refused")
            if "httpGet" in spec:
                path = spec["httpGet"].get("path", "/")
                if self._session is None:
                    self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
                async with self._session.get(f"http://127.0.0.1:{port}{path}", headers={"User-Agent": "kube-probe/1.32"},
                                             timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    await resp.read()
                    ok = 200 <= resp.status < 400
                    detail = "" if ok else f"HTTP probe failed with statuscode: {resp.status}"
            elif "tcpSocket" in spec:
                _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
                writer.close()
                ok = True
            else:  # exec and grpc probes: healthy when the app is up and ready
                app = c.app
                ok = bool(app is not None and app.listening and not app.never_ready)
                detail = "" if ok else "command failed"
        except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as e:
            # the kubelet's wording (pkg/probe/http/http.go, net/http errors)
            target = port_of(spec)
            for p in c.spec.get("ports") or []:
                if p.get("name") == target:
                    target = p.get("containerPort")
            why = ("context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                   if isinstance(e, asyncio.TimeoutError) else f"dial tcp {rt.ip}:{target}: connect: connection refused")
            if "httpGet" in spec:
                detail = f'Get "http://{rt.ip}:{target}{spec["httpGet"].get("path", "/")}": {why}'
            else:
                detail = why
        probe.detail, probe.result, probe.inflight = detail, ok, False
        self.world.control._changed()

    # -- termination --

    def _begin_termination(self, rt: PodRuntime, pod: dict, now: float) -> None:
        rt.terminating = True
        grace = self.scaled(float(pod["metadata"].get("deletionGracePeriodSeconds") or 0))
        rt.kill_at = now + grace
        prestop = max((_prestop_seconds(c.spec) for c in rt.containers if c.phase == "running"), default=0.0)
        rt.sigterm_at = min(now + self.scaled(prestop), rt.kill_at)
        for c in rt.all_containers:
            if c.phase == "running":
                self.world.events.record(pod, "Normal", "Killing", f"Stopping container {c.name}", "kubelet")
            c.ready = c.ready and c.phase == "running"

    def _step_terminating(self, rt: PodRuntime, c: Container, pod: dict, now: float) -> None:
        if c.phase == "gone":
            return
        if c.phase != "running" and c.phase != "stopping":
            c.phase, c.state, c.finished_at = "gone", "terminated", now
            return
        if now >= rt.kill_at:
            self._kill(c)
            c.phase, c.state, c.ready, c.exit_code, c.finished_at = "gone", "terminated", False, 137, now
            return
        if c.phase == "running" and now >= rt.sigterm_at:
            c.phase = "stopping"
            if c.app is None or c.app.sigterm():
                c.phase, c.state, c.ready, c.exit_code, c.finished_at = "gone", "terminated", False, 0, now
                self._kill(c)
            return
        if c.phase == "stopping" and (c.app is None or c.app.exited):
            c.phase, c.state, c.ready, c.exit_code, c.finished_at = "gone", "terminated", False, 0, now
            self._kill(c)

    # -- status --

    def _write_status(self, rt: PodRuntime, pod: dict, now: float) -> None:
        old = pod.get("status") or {}
        started_all = all(c.ever_started for c in rt.containers)
        all_ready = bool(rt.containers) and all(c.ready for c in rt.containers)
        if all_ready and rt.ready_since is None:
            rt.ready_since = now
        elif not all_ready:
            rt.ready_since = None
        unready = [c.name for c in rt.containers if not c.ready]

        def cond(ctype, ok, reason="", message=""):
            prev = next((x for x in old.get("conditions") or [] if x.get("type") == ctype), None)
            status = "True" if ok else "False"
            ts = prev["lastTransitionTime"] if prev and prev.get("status") == status else rfc3339(now)
            out = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": ts}
            if not ok and reason:
                out.update(reason=reason, message=message)
            return out

        msg = f"containers with unready status: [{' '.join(unready)}]"
        incomplete = [c.name for c in rt.init_containers if c.phase != "done"]
        status = {
            "phase": "Running" if started_all else "Pending",
            "conditions": [
                cond("PodReadyToStartContainers", True),
                cond("Initialized", not incomplete, "ContainersNotInitialized",
                     f"containers with incomplete status: [{' '.join(incomplete)}]"),
                cond("Ready", all_ready, "ContainersNotReady", msg),
                cond("ContainersReady", all_ready, "ContainersNotReady", msg),
                cond("PodScheduled", True),
            ],
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": rt.ip, "podIPs": [{"ip": rt.ip}],
            "startTime": rfc3339(rt.started),
            "containerStatuses": [self._container_status(c) for c in rt.containers],
            "qosClass": old.get("qosClass", "BestEffort"),
        }
        if rt.init_containers:
            status["initContainerStatuses"] = [self._container_status(c) for c in rt.init_containers]
        # The status manager's lag (lag.py, the world's lag["kubelet"]): what is computed now is
        # written after a drawn delay, in order (pkg/kubelet/status/status_manager.go syncs through
        # a channel and a periodic syncBatch, not within the pod worker's pass).
        lag = self.world.lags["kubelet"]
        if not lag.zero or rt.uid in lag.pending:
            due = lag.admit(rt.uid, status)
            if due is None:
                return
            status = due
        if status != old:
            fresh = copy.deepcopy(pod)
            fresh["status"] = status
            self.reg.update(POD, rt.namespace, rt.name, fresh, subresource="status")

    def _container_status(self, c: Container) -> dict:
        if c.state == "running":
            state = {"running": {"startedAt": rfc3339(c.started_at)}}
        elif c.state == "terminated":
            state = {"terminated": {"exitCode": c.exit_code or 0, "reason": "Completed" if not c.exit_code else "Error",
                                    "startedAt": rfc3339(c.started_at or 0),
                                    "finishedAt": rfc3339(c.finished_at or c.started_at or 0),
                                    "containerID": c.container_id}}
        else:
            state = {"waiting": {"reason": c.reason or "ContainerCreating", **({"message": c.message} if c.message else {})}}
        out = {"name": c.name, "state": state, "lastState": {"terminated": c.last_terminated} if c.last_terminated else {},
               "ready": c.ready, "restartCount": c.restarts, "image": c.image,
               "imageID": f"{c.image.split(':')[0]}@sha256:{hashlib.sha256(c.image.encode()).hexdigest()}" if c.ever_started else "",
               "started": c.state == "running"}
        if c.container_id:
            out["containerID"] = c.container_id
        return out

    async def shutdown(self) -> None:
        for rt in list(self.pods.values()):
            for c in rt.containers:
                self._kill(c)
            for t in rt.tasks:
                t.cancel()
        self.pods.clear()
        if self._session is not None:
            await self._session.close()
        if self._registry_session is not None:
            await self._registry_session.close()


def port_of(spec: dict):
    for key in ("httpGet", "tcpSocket"):
        if key in spec:
            return spec[key].get("port")
    return ""
