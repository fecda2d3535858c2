"""The Jenkins Kubernetes plugin's cloud in the end-to-end world: agent pods of ``agent { kubernetes { } }``
made, run and deleted in the Kubernetes test world (tests/support/kubeworld) through its API.

Followed (jenkinsci/kubernetes-plugin, read at a82d78a0087e9eaa10ec2339b48891549345c1a4,
src/main/java/org/csanchez/jenkins/plugins/kubernetes/):

* names and labels: ``pipeline/PodTemplateStepExecution.start`` (the template's label is
  ``PodTemplateUtils.sanitizeLabel(run.getExternalizableId())`` + ``-`` + 5 random characters, its name
  that label + ``-`` + 5 more; LiveDsl.step_podTemplate makes both), ``KubernetesSlave.getSlaveName`` →
  ``PodUtils.createNameWithRandomSuffix`` (the pod is the template's name, lower case, ``_`` and spaces
  as ``-``, cut to leave room for ``-<5 random>``), ``PodTemplate.recomputeLabelDerivedFields``
  (labels ``jenkins/label`` = the sanitized label and ``jenkins/label-digest`` = its SHA-1),
  ``PodTemplateBuilder.build`` (label ``kubernetes.jenkins.io/controller`` = the sanitized Jenkins URL,
  annotations ``buildUrl``/``runUrl`` from PodTemplateStepExecution, the YAML's metadata and spec
  merged under them; the agent container ``jnlp`` added when the YAML has none, with the default
  image of the plugin's resources/.../Dockerfile, ``agentEnvVars`` and requests cpu 100m / memory
  256Mi; every container without a ``workingDir`` gets the agent's, ``/home/jenkins/agent``) and
  ``pod/decorator/DefaultWorkspaceVolume`` (the ``workspace-volume`` emptyDir, mounted at each
  container's working directory);
* launching: ``KubernetesLauncher.launch`` creates the pod with the cloud's credentials (here: the
  token of the controller's ServiceAccount, bound by the rendered agents manifest's RoleBinding),
  prints ``Created Pod: kubernetes <ns>/<name>``; a 4xx refusal prints ``ERROR: Unable to create pod
  kubernetes <ns>/<name>.`` and the client's message and cancels the build's queue item
  (``PodUtils.cancelQueueItemFor``), which ends the node step ABORTED with "Queue task was cancelled"
  (workflow-durable-task-step ``ExecutorStepExecution.CancelledItemListener``), except a quota refusal,
  which it only warns about; then ``waitUntilReady`` within the template's ``slaveConnectTimeout``
  (fabric8: it waits for the Ready condition and nothing else; on timeout
  ``KubernetesClientTimeoutException``); while it waits, ``watch/PodStatusEventHandler`` prints
  ``[PodInfo] <ns>/<name>`` with ``Pod [<phase>][<reason>] <message>`` and ``Container [<name>]
  waiting [<reason>] <message>`` lines for each change. Only *after* Ready does the launcher's loop
  fail on a terminated pod or container (``Pod '<name>' is terminated. Status: <phase>``,
  ``Containers are terminated with exit codes: {...}``);
* termination: ``KubernetesSlave._terminate`` → ``deleteSlavePod`` deletes the pod (default grace
  period) when the node block ends (``podRetention`` never);
* ``pipeline/ContainerExecDecorator.launch``: an ``sh`` in ``container('x')`` runs in x with x's own
  environment, the step's variables exported on top except those equal to the agent's
  (``Computer.getEnvironment``, the jnlp container's) — "Only keep environment variables that differ
  from Computer's environment" — and POD_CONTAINER (ContainerStepExecution's expander); outside a
  container step the agent's own launcher runs it, in jnlp, with the agent's environment.

Emulated, and how it differs:

* no container images run: the test world's kubelet runs each container as a loopback HTTP server
  (its image says nothing to it), and each ``sh`` is a process of this machine started by
  :mod:`.executor` with that container's *environment* and *paths*: the container's spec ``env`` (and,
  for the image's own environment, which no image supplies here, the world's agent environment with
  HOME set to the image user's home: ``/home/jenkins`` for the agent image, ``/home/build`` for
  buildah's, ``/`` otherwise). Every value that is one absolute path (HOME, GRADLE_USER_HOME,
  npm_config_cache ...) is a path *in the container* and is mapped to this machine by
  :func:`support.kubeworld.volumes.host_path` - the one place that maps paths: a volume mount's
  directory (emptyDir per pod, a claim's directory kept by the world) or the container's writable
  layer. The workspace the build sees (WORKSPACE, the ``sh`` working directory) is the mapped
  directory of ``workspace-volume``, not ``/home/jenkins/agent/workspace/<job>``; the container's own
  ``/tmp`` is named by TMPDIR (set here, as no image does), so temporary files stay in the pod.
* buildah in the ``builder`` container: rootless buildah keeps its images in
  ``$HOME/.local/share/containers/storage`` (containers/storage's rootless default), which the pod's
  ``buildah-storage`` emptyDir covers; this machine runs buildah as root, so that location is written
  into a ``storage.conf`` in the container's ``~/.config/containers`` and named by
  CONTAINERS_STORAGE_CONF (the driver comes from the container's STORAGE_DRIVER, as buildah reads it).
  A new pod's store is empty: layer reuse can only come from the registry cache.
* launch failures are the emulator's choice, not the plugin's behaviour: a pod that never becomes
  ready (or is refused for quota) — Jenkins would terminate the agent after ``slaveConnectTimeout``
  (default 1000 s) and provision another, again and again, until the build is aborted (Declarative's
  ``options { timeout }`` runs inside the agent, so it does not bound that wait); here the launch is
  tried once, for ``connect_timeout`` seconds, and the node step FAILs with the launcher's message. A
  pod or container that terminates *before* Ready (a crashing container, ImagePullBackOff) is, in
  Jenkins, the ``pod/retention/Reaper``'s business (``TerminateAgentOnPodFailed``,
  ``TerminateAgentOnContainerTerminated``, ``TerminateAgentOnImagePullBackOff`` after
  ``backoffEventsLimit`` events): it cancels the queue item (``PodUtils.cancelQueueItemFor``), so the
  build ends ABORTED ("Queue task was cancelled"); here the wait checks for it itself and the node
  step FAILs with the launcher's words for the after-Ready case. No test exercises that path.
* an abort while the agent is being launched: here the build stops waiting and ``stop(cancelled)``
  deletes the pod at once (or as soon as ``start`` creates it). No plugin source says so: stopping
  ``podTemplate`` removes the template, and the agent is removed later by ``OnceRetentionStrategy``;
  deleting the pod is the emulator's choice.
* the image user's HOME (``IMAGE_HOMES``) is a guess from the image's name, as no image is read.
* host-wide, shared by every pod's buildah (it runs as root here): containers/image's blob-info cache
  (``/var/lib/containers/cache/blob-info-cache-v1.*``, pkg/blobinfocache/default.go ``blobInfoCacheDir``:
  ``/var/lib/containers/cache`` for euid 0, ``$XDG_DATA_HOME``/``~/.local/share/containers/cache`` -
  inside the pod's ``buildah-storage`` emptyDir - for a rootless buildah) and the ``/etc/containers``
  configuration (registries.conf, policy.json). buildah offers no option or variable for the cache's
  directory (``SystemContext.BlobInfoCacheDir`` is set only by libimage's copier options, which
  buildah's CLI does not expose), so a pod may know where blobs were seen by an earlier pod, which a
  real pod would not.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import kubernetes
import yaml

from support.kubeworld import volumes

from .executor import process_env

JNLP = "jnlp"
WORKING_DIR = "/home/jenkins/agent"  # ContainerTemplate.DEFAULT_WORKING_DIR
WORKSPACE_VOLUME = "workspace-volume"
AGENT_IMAGE = "jenkins/inbound-agent:3355.v388858a_47b_33-3-jdk21"  # src/main/resources/.../Dockerfile
RANDOM_CHARS = "bcdfghjklmnpqrstvwxz0123456789"
# The image's own HOME (its user's entry in /etc/passwd), which no image supplies here.
IMAGE_HOMES = (("inbound-agent", "/home/jenkins"), ("buildah", "/home/build"))
# What the world's agent environment carries for the machine agent that has no place in a container.
NOT_FROM_THE_IMAGE = ("HOME", "CONTAINERS_STORAGE_CONF", "npm_config_cache")
_ONE_PATH = re.compile(r"/[^:\s]*")


def sanitize_label(value: str) -> str:
    """PodTemplateUtils.sanitizeLabel."""
    max_len = 63 - 1 - 5
    label = value[-max_len:] if len(value) > max_len else value
    label = re.sub(r"[^_a-zA-Z0-9-]", "_", label)
    label = re.sub(r"^[^a-zA-Z0-9]", "x", label, count=1)
    return re.sub(r"[^a-zA-Z0-9]$", "x", label, count=1)


def name_with_random_suffix(name: str) -> str:
    """PodUtils.createNameWithRandomSuffix."""
    suffix = "".join(secrets.choice(RANDOM_CHARS) for _ in range(5))
    name = re.sub(r"[ _]", "-", name).lower()
    return "-".join([name[: min(len(name), 62 - len(suffix))], suffix])


def run_url(job: str, number: int) -> str:
    """Run.getUrl of a job in folders: job/<a>/job/<b>/<number>/."""
    return "".join(f"job/{part}/" for part in job.split("/")) + f"{number}/"


@dataclass
class AgentPod:
    """One agent pod: what was asked, when it lived, and where each sh ran."""

    name: str
    namespace: str
    job: str
    number: int
    spec: Dict[str, Any]  # the pod as created (the API's answer)
    created: float  # time.monotonic()
    ready: Optional[float] = None
    deleted: Optional[float] = None
    error: Optional[str] = None
    agent_env: Dict[str, str] = field(default_factory=dict)
    execs: List[Dict[str, Any]] = field(default_factory=list)
    graphroot: Dict[str, str] = field(default_factory=dict)  # container -> where its buildah keeps images


class KubernetesCloud:
    """The cloud of the emulated controller (see the module docstring). ``kubeconfig`` holds the
    controller's ServiceAccount token; ``image_env`` is the environment every "image" starts from."""

    def __init__(self, kube: Any, *, kubeconfig: str, jenkins_url: str, image_env: Dict[str, str],
                 connect_timeout: float = 30.0) -> None:
        self.kube = kube
        self.jenkins_url = jenkins_url
        self.image_env = {k: v for k, v in image_env.items() if k not in NOT_FROM_THE_IMAGE}
        self.connect_timeout = connect_timeout
        self.api = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=kubeconfig))
        self.pods: Dict[str, AgentPod] = {}
        self._cancelled: set = set()
        self._lock = threading.Lock()

    # -- PodTemplateBuilder.build ------------------------------------------------------------

    def build_pod(self, args: Dict[str, Any], name: str) -> Dict[str, Any]:
        pod = yaml.safe_load(args.get("yaml") or "") or {"apiVersion": "v1", "kind": "Pod"}
        pod.setdefault("apiVersion", "v1")
        pod.setdefault("kind", "Pod")
        meta = pod.setdefault("metadata", {})
        label = str(args["label"])
        meta["name"] = name
        meta["labels"] = {**(meta.get("labels") or {}), "jenkins/label": sanitize_label(label),
                          "jenkins/label-digest": hashlib.sha1(label.encode()).hexdigest(),
                          "kubernetes.jenkins.io/controller": sanitize_label(self.jenkins_url)}
        url = run_url(str(args["job"]), int(args["number"]))
        meta["annotations"] = {**(meta.get("annotations") or {}), "buildUrl": self.jenkins_url + url, "runUrl": url}
        meta["namespace"] = meta.get("namespace") or args.get("namespace") or "default"
        spec = pod.setdefault("spec", {})
        containers = spec.setdefault("containers", [])
        jnlp = next((c for c in containers if c.get("name") == JNLP), None)
        if jnlp is None:
            jnlp = {"name": JNLP, "volumeMounts": []}
            containers.append(jnlp)
        jnlp.setdefault("image", AGENT_IMAGE)
        env = {"JENKINS_SECRET": secrets.token_hex(32), "JENKINS_NAME": name, "JENKINS_AGENT_NAME": name,
               "JENKINS_AGENT_WORKDIR": jnlp.get("workingDir") or WORKING_DIR, "JENKINS_URL": self.jenkins_url}
        env.update({e["name"]: e.get("value", "") for e in jnlp.get("env") or []})
        jnlp["env"] = [{"name": k, "value": v} for k, v in env.items()]
        jnlp.setdefault("resources", {"requests": {"cpu": "100m", "memory": "256Mi"}})
        working_dir = jnlp.get("workingDir") or WORKING_DIR
        for c in containers:
            c.setdefault("workingDir", working_dir)
        vols = spec.setdefault("volumes", [])
        if not any(v.get("name") == WORKSPACE_VOLUME for v in vols):
            vols.append({"name": WORKSPACE_VOLUME, "emptyDir": {}})
        for c in containers:
            mounts = c.setdefault("volumeMounts", [])
            if not any(m.get("mountPath") == c["workingDir"] for m in mounts):
                mounts.append({"name": WORKSPACE_VOLUME, "mountPath": c["workingDir"], "readOnly": False})
        return pod

    # -- KubernetesLauncher.launch -----------------------------------------------------------------

    def start(self, args: Dict[str, Any]) -> Dict[str, Any]:
        name = str(args.get("podName") or name_with_random_suffix(str(args["name"])))
        body = self.build_pod(args, name)
        ns = body["metadata"]["namespace"]
        log: List[str] = []
        try:
            created = self.api.create_namespaced_pod(ns, body)
        except kubernetes.client.ApiException as e:
            if not 400 <= e.status < 500:
                raise
            message = _status_message(e)
            failure = f"Failure executing: POST at: {self.kube.url}/api/v1/namespaces/{ns}/pods. Message: {message}."
            if e.status == 403 and "is forbidden: exceeded quota" in message:
                # the plugin warns and lets the cloud try again; here, as for a pod that never gets ready,
                # the launch is tried once (see the module docstring)
                log += [f"WARNING: Unable to create pod: kubernetes {ns}/{name} because kubernetes resource quota"
                        f" exceeded. ", failure, "Retrying...", ""]
                return {"log": log, "error": f"Failed to launch {name}: {message} (the emulated cloud provisions no"
                                             f" other agent)"}
            # any other 4xx: PodUtils.cancelQueueItemFor, and the node step ends as ExecutorStepExecution's
            # CancelledItemListener ends it: FlowInterruptedException(ABORTED, new QueueTaskCancelled())
            log += [f"ERROR: Unable to create pod kubernetes {ns}/{name}.", failure]
            return {"log": log, "error": "Queue task was cancelled", "cancelled": True}
        record = AgentPod(name, ns, str(args["job"]), int(args["number"]), self.api.api_client.sanitize_for_serialization(created),
                          time.monotonic())
        with self._lock:
            self.pods[name] = record
        log.append(f"Created Pod: kubernetes {ns}/{name}")
        if name in self._cancelled:  # the build stopped waiting for this agent (an abort): terminate it
            return self._failed(record, log, "the build no longer waits for this agent")
        deadline = time.monotonic() + self.connect_timeout
        shown = ""
        while True:
            try:  # the launcher's client, with the cloud's credentials (fabric8 waitUntilReady watches the same)
                pod = self.api.api_client.sanitize_for_serialization(self.api.read_namespaced_pod(name, ns))
            except kubernetes.client.ApiException as e:
                if e.status != 404:
                    raise
                return self._failed(record, log, f"Pod no longer exists: {name}")
            status = pod.get("status") or {}
            info = pod_info(pod)
            if info and info != shown:
                log += info.splitlines()
                shown = info
            if status.get("phase") in ("Failed", "Succeeded"):
                return self._failed(record, log, f"Pod '{name}' is terminated. Status: {status.get('phase')}")
            ended = {c["name"]: c["state"]["terminated"].get("exitCode") for c in status.get("containerStatuses") or []
                     if (c.get("state") or {}).get("terminated")}
            if ended:
                return self._failed(record, log, f"Containers are terminated with exit codes: {ended}")
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
                break
            if name in self._cancelled:
                return self._failed(record, log, "the build no longer waits for this agent")
            if time.monotonic() > deadline:
                ms = int(self.connect_timeout * 1000)
                return self._failed(record, log, f"Timed out waiting for [{ms}] milliseconds for [Pod] with name:[{name}]"
                                                 f" in namespace [{ns}].")
            time.sleep(0.05)
        record.ready = time.monotonic()
        record.spec = pod
        record.agent_env = self.container_env(record, JNLP)
        workspace = self.host_path(record, JNLP, f"{WORKING_DIR}/workspace/{record.job}")
        return {"log": log, "podName": name, "namespace": ns, "workspace": str(workspace), "agentEnv": record.agent_env}

    def _failed(self, record: AgentPod, log: List[str], why: str) -> Dict[str, Any]:
        """KubernetesLauncher's catch: "Failed to launch <pod>" on the build's log, the agent terminated."""
        record.error = why
        log.append(f"ERROR: Failed to launch {record.name}")
        log.append(f"java.lang.IllegalStateException: {why}" if not why.startswith("Timed out")
                   else f"io.fabric8.kubernetes.client.KubernetesClientTimeoutException: {why}")
        self.stop({"podName": record.name, "namespace": record.namespace})
        return {"log": log, "error": f"Failed to launch {record.name}: {why} (the emulated cloud provisions no other"
                                     f" agent: Jenkins would keep trying until the build is aborted)"}

    # -- KubernetesSlave._terminate ------------------------------------------------------------------

    def stop(self, args: Dict[str, Any]) -> Dict[str, Any]:
        """The agent's termination; with ``cancelled``, for a pod whose launch the build stopped waiting
        for (an abort during podStart): deleted now if it exists, or as soon as ``start`` creates it."""
        name, ns = str(args["podName"]), str(args["namespace"])
        with self._lock:
            if args.get("cancelled"):
                self._cancelled.add(name)
            record = self.pods.get(name)
        if record is None:
            return {}
        try:
            self.api.delete_namespaced_pod(name, ns)
        except kubernetes.client.ApiException as e:
            if e.status == 404 and args.get("cancelled"):
                return {}
            return {"log": [f"ERROR: Failed to delete pod for agent {ns}/{name}: {_status_message(e)}"]}
        if record is not None:
            record.deleted = time.monotonic()
        return {}

    # -- ContainerExecDecorator ------------------------------------------------------------------------

    def host_path(self, record: AgentPod, container: str, path: str) -> Path:
        claims = self.kube.call(lambda: self.kube.control.controllers["volumes"].claims(record.namespace))
        return volumes.host_path(self.kube.workdir, record.spec, container, path, claims)

    def container_env(self, record: AgentPod, container: str) -> Dict[str, str]:
        """The container's own environment: the image's (see the module docstring) and its spec's,
        each value that is one absolute path mapped to this machine."""
        spec = next(c for c in record.spec["spec"]["containers"] if c["name"] == container)
        image = str(spec.get("image", ""))
        home = next((h for token, h in IMAGE_HOMES if token in image), "/")
        env = dict(self.image_env)
        # the container's /tmp is its own (its writable layer), not this machine's: TMPDIR names it, which
        # mktemp, buildah and Python honour (no image sets it: a container simply has a /tmp of its own)
        env["TMPDIR"] = str(self.host_path(record, container, "/tmp"))
        Path(env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
        own = {"HOME": home, **{e["name"]: str(e.get("value", "")) for e in spec.get("env") or []}}
        for key, value in own.items():
            env[key] = str(self.host_path(record, container, value)) if _ONE_PATH.fullmatch(value) else value
        Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
        if container == "builder" or "buildah" in image:
            conf = self.host_path(record, container, f"{home}/.config/containers/storage.conf")
            conf.parent.mkdir(parents=True, exist_ok=True)
            graph = self.host_path(record, container, f"{home}/.local/share/containers/storage")
            run = self.host_path(record, container, "/tmp/containers-user-1000/containers")
            conf.write_text("[storage]\n" f'driver = "{own.get("STORAGE_DRIVER", "vfs")}"\n'
                            f"graphroot = {json.dumps(str(graph))}\nrunroot = {json.dumps(str(run))}\n", encoding="utf-8")
            env["CONTAINERS_STORAGE_CONF"] = str(conf)
            record.graphroot[container] = str(graph)
        return env

    def exec_args(self, args: Dict[str, Any]) -> Dict[str, Any]:
        """An ``sh`` in ``args["container"]`` of ``args["pod"]``: its args with ``baseEnv`` (the
        container's environment) and ``env`` (the step's variables that differ from the agent's)."""
        record = self.pods[str(args["pod"])]
        container = str(args["container"])
        base = record.agent_env if container == JNLP else self.container_env(record, container)
        step = {k: v for k, v in dict(args.get("env") or {}).items() if record.agent_env.get(k) != v}
        effective = process_env(base, step)  # what the process gets (executor.Executor.start)
        record.execs.append({"container": container, "label": args.get("label"), "cwd": args.get("cwd"),
                             "at": time.monotonic(), "HOME": effective.get("HOME"), "TMPDIR": effective.get("TMPDIR"),
                             "POD_CONTAINER": effective.get("POD_CONTAINER")})
        return {**args, "baseEnv": base, "env": step}


def pod_info(pod: dict) -> str:
    """watch/PodStatusEventHandler.onUpdate: the non-running containers' states and the conditions
    with a reason, under ``[PodInfo] <ns>/<name>`` (empty when there is nothing to say)."""
    status = pod.get("status") or {}
    out = ""
    for s in status.get("containerStatuses") or []:
        state = s.get("state") or {}
        if state.get("running"):
            continue
        out += f"\n\tContainer [{s['name']}]"
        if state.get("terminated"):
            t = state["terminated"]
            out += f" terminated [{t.get('reason')}] {t.get('message') or 'No message'}"
        if state.get("waiting"):
            w = state["waiting"]
            out += f" waiting [{w.get('reason')}] {w.get('message') or 'No message'}"
    for c in status.get("conditions") or []:
        if not c.get("reason"):
            continue
        line = f"\n\tPod [{status.get('phase')}][{c['reason']}] {c.get('message') or 'No message'}"
        if line not in out:
            out += line
    return f"[PodInfo] {pod['metadata']['namespace']}/{pod['metadata']['name']}{out}" if out else ""


def _status_message(e: Any) -> str:
    try:
        return str(json.loads(e.body).get("message"))
    except (TypeError, ValueError, AttributeError):
        return f"{e.status} {e.reason}"
