"""KubeWorld: one emulated cluster (API server, controllers, kubelet, data plane) on one event loop.

Everything runs on a single asyncio loop in one background thread, so the store needs no locks,
controllers run in a fixed order (deterministic given the same requests), and shutdown is one
place: stop the controllers, close every pod server, proxy and watch, stop the loop, join the
thread. Tests call in from their own thread through `call` (run a function on the loop and wait).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import os
import random
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

import yaml

from . import resources as R
from . import schema, tls
from .admission import Admission
from .control import ControlLoop
from .dataplane import DataPlane
from .events import EventRecorder
from .faults import Faults
from .invariants import Invariants
from .lag import CONTROLLERS, Lag, LagSpec
from .load import LoadGenerator
from .registry import Registry
from .requestlog import RequestLog
from .selectors import label_selector_to_reqs, matches_labels
from .store import Store

KUBECTL = "/usr/bin/kubectl"


@functools.lru_cache(maxsize=None)
def _openapi(group: str, version: str) -> dict:
    return schema.openapi_v3_document(group, version, [r for r in R.RESOURCES if r.group == group and r.version == version])


class KubeWorld:
    """An emulated Kubernetes cluster on loopback. Use as a context manager or start()/stop().

    Knobs (all keyword-only):
    - seed: drives every random choice (names, uids, endpoint picks, faults) for reproducible runs;
    - time_scale: multiplies every duration that comes from a Kubernetes field or default
      (probe periods and delays, grace periods, back-offs, minReadySeconds,
      progressDeadlineSeconds); 0.1 runs the cluster's clocks ten times faster;
    - tick: the controllers' resync period in seconds (they also run on every change);
    - propagation_lag: seconds before an endpoint change reaches the Service proxies (kube-proxy);
    - app_start: seconds a normal image takes from container start to listening;
    - pull_time: seconds an image pull takes;
    - crash_after: seconds a `crashloop` image runs before it exits;
    - bookmark_interval: seconds between BOOKMARK events on watches that allow them;
    - history_limit: watch events retained per resource before older versions answer 410;
    - lag: per-controller delays, {name: seconds or (low, high)} for deployment, replicaset,
      kubelet (status writes), endpoints, endpointslice, gc and proxies (lag.py); each draws from
      its own generator seeded by (seed, name). Default 0 (proxies: `propagation_lag`);
    - server_version: the gitVersion GET /version reports (default v1.32.0; resources.py
      `server_version` gives the real answer's shape). It also picks what the API server's service
      proxy routes by: the legacy Endpoints object up to 1.36, the EndpointSlices from 1.37
      (kubernetes/kubernetes#134860; dataplane.py `_service_location`);
    - endpoints_controller: False runs kube-controller-manager without its Endpoints controller
      (`--controllers=*,-endpoints-controller`, cmd/kube-controller-manager/names/controller_names.go):
      no Endpoints object is written for any Service (deprecated since 1.33, KEP-4974);
    - endpoints_max_capacity: addresses one Endpoints object holds before the controller truncates it
      and annotates it `endpoints.kubernetes.io/over-capacity: truncated` (real: 1000, `maxCapacity` in
      pkg/controller/endpoint/endpoints_controller.go); lower it to test truncation with few pods.
    """

    def __init__(self, *, seed: int = 0, time_scale: float = 1.0, tick: float = 0.02, propagation_lag: float = 0.0,
                 app_start: float = 0.05, pull_time: float = 0.02, crash_after: float = 0.2, bookmark_interval: float = 1.0,
                 history_limit: int = 1000, namespaces: Iterable[str] = ("default",),
                 workdir: Optional[str] = None, lag: Optional[Dict[str, LagSpec]] = None,
                 server_version: str = "v1.32.0", endpoints_controller: bool = True,
                 endpoints_max_capacity: int = 1000) -> None:
        self.seed = seed
        self.version_info = R.server_version(server_version)
        self.endpoints_controller = endpoints_controller
        self.endpoints_max_capacity = endpoints_max_capacity
        self.time_scale = time_scale
        self.tick = tick
        self.app_start = app_start
        self.crash_after = crash_after
        self.pull_time = pull_time
        self.bookmark_interval = bookmark_interval
        self.rng = random.Random(seed)
        unknown = set(lag or {}) - set(CONTROLLERS)
        if unknown:
            raise ValueError(f"kubeworld: no controller named {', '.join(sorted(unknown))} for `lag`; "
                             f"known: {', '.join(CONTROLLERS)}")
        self.lags: Dict[str, Lag] = {name: Lag(name, seed) for name in CONTROLLERS}
        self.lags["proxies"].set(propagation_lag)
        for name, spec in (lag or {}).items():
            self.lags[name].set(spec)
        self.store = Store(history_limit)
        self.registry = Registry(self.store, random.Random(seed + 1))
        self.admission = Admission()
        self.registry.admission = self.admission
        self.requests = RequestLog()
        self.faults = Faults(seed + 2)
        self.invariants = Invariants(self)
        self.events = EventRecorder(self)
        self.dataplane = DataPlane(self, propagation_lag, random.Random(seed + 3))
        self.control = ControlLoop(self)
        from .apiserver import ApiServer

        self.api = ApiServer(self)
        self.token = secrets.token_urlsafe(24)
        self.tokens: Dict[str, dict] = {self.token: {"name": "kubeworld-admin", "write": True}}
        self._namespaces = list(namespaces)
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="kubeworld-")
        self.kubeconfig = os.path.join(self.workdir, "kubeconfig")
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self.started_at = time.monotonic()
        self._loads: List[LoadGenerator] = []

    def version_at_least(self, major: int, minor: int) -> bool:
        """Whether the world claims to be Kubernetes ``major.minor`` or later."""
        return (int(self.version_info["major"]), int(self.version_info["minor"])) >= (major, minor)

    # -- lifecycle --

    def __enter__(self) -> "KubeWorld":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "KubeWorld":
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"kubeworld-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait()
        self.started_at = time.monotonic()
        self.run(self._astart())
        self.write_kubeconfig(self.kubeconfig)
        return self

    async def _astart(self) -> None:
        for ns in self._namespaces:
            self.registry.create(R.BY_KEY["core/namespaces"], "", {"metadata": {"name": ns}})
        await self.api.start()
        await self.dataplane.start()
        self.control.start()

    def stop(self) -> None:
        if self.loop is None:
            return
        try:
            for load in list(self._loads):
                load.stop()
            self.run(self._astop(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()
            self.loop = None
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    async def _astop(self) -> None:
        for step in (self.control.stop, self.api.stop, self.dataplane.stop):
            try:
                async with asyncio.timeout(3):
                    await step()
            except asyncio.TimeoutError:
                raise RuntimeError(f"kubeworld: {step.__qualname__} did not finish in 3 s") from None
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)

    # -- calling into the loop from a test's thread --

    def run(self, coro, timeout: Optional[float] = 30) -> Any:
        """Run a coroutine on the world's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable, *args, **kwargs) -> Any:
        """Run a plain function on the world's loop (where the store lives) and return its result."""
        async def wrapper():
            return fn(*args, **kwargs)

        return self.run(wrapper())

    # -- configuration for clients --

    @property
    def url(self) -> str:
        return self.api.url

    def kubeconfig_dict(self, token: Optional[str] = None, namespace: str = "default") -> dict:
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "kubeworld", "cluster": {
                "server": self.url, "certificate-authority-data": base64.b64encode(tls.ca_pem()).decode()}}],
            "users": [{"name": "kubeworld-user", "user": {"token": token or self.token}}],
            "contexts": [{"name": "kubeworld", "context": {"cluster": "kubeworld", "user": "kubeworld-user",
                                                           "namespace": namespace}}],
            "current-context": "kubeworld",
        }

    def write_kubeconfig(self, path: str, token: Optional[str] = None, namespace: str = "default") -> str:
        """Write a kubeconfig (mode 0600) that kubectl and the Python client use unchanged."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(self.kubeconfig_dict(token, namespace), fh, sort_keys=False)
        return path

    def add_token(self, user: str, write: bool = True, *, rbac: bool = False, groups: Iterable[str] = ()) -> str:
        """A further bearer token; `write=False` makes a read-only user (403 on writes); `rbac=True`
        makes a user with only the rights its RoleBindings grant (by user name or `groups`)."""
        token = secrets.token_urlsafe(24)
        self.tokens[token] = {"name": user, "write": write, "rbac": rbac,
                              "groups": [*groups, "system:authenticated"]}
        return token

    def service_account_token(self, name: str, namespace: str = "default") -> str:
        """A token of the ServiceAccount `namespace/name`, authorized by RBAC (`kubectl create token`)."""
        from .rbac import service_account_user

        user = service_account_user(namespace, name)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = {**user, "write": True, "rbac": True}
        return token

    def kubectl(self, *args: str, timeout: float = 60, kubeconfig: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run the real kubectl against this world (HOME and cache inside the world's workdir)."""
        home = os.path.join(self.workdir, "home")
        os.makedirs(home, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
               "KUBECONFIG": kubeconfig or self.kubeconfig, "KUBECACHEDIR": os.path.join(home, "cache")}
        return subprocess.run([KUBECTL, *args], capture_output=True, text=True, timeout=timeout, env=env)

    def openapi_doc(self, group: str, version: str, items) -> dict:
        return _openapi(group, version)

    # -- durations --

    @property
    def default_storage_class(self) -> str:
        """The default StorageClass's name (its provisioner binds claims: volumes.py)."""
        return self.registry.default_storage_class

    def k8s_seconds(self, seconds: float) -> float:
        """A duration taken from a Kubernetes field or default, in real seconds."""
        return seconds * self.time_scale

    # -- direct access for tests (bypasses HTTP, the request log and faults) --

    def create(self, *objs: dict) -> List[dict]:
        """Create objects as a cluster admin would (`kubectl create`), without the API round trip."""
        def go():
            out = []
            for obj in objs:
                res = R.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
                if res is None:
                    raise ValueError(f"kubeworld does not serve {obj.get('apiVersion')}/{obj.get('kind')}")
                ns = (obj.get("metadata") or {}).get("namespace", "default") if res.namespaced else ""
                out.append(self.registry.create(res, ns, obj))
            return out

        return self.call(go)

    def get(self, kind: str, name: str, namespace: str = "default") -> Optional[dict]:
        res = self._res(kind)

        def go():
            obj = self.store.get(res.key, namespace if res.namespaced else "", name)
            return copy.deepcopy(obj)

        return self.call(go)

    def list(self, kind: str, namespace: Optional[str] = "default", selector: Optional[dict] = None) -> List[dict]:
        res = self._res(kind)
        reqs = label_selector_to_reqs({"matchLabels": selector}) if selector else []

        def go():
            items = self.store.list(res.key, namespace if res.namespaced else None)
            return [copy.deepcopy(o) for o in items if matches_labels(reqs, o["metadata"].get("labels"))]

        return self.call(go)

    def delete(self, kind: str, name: str, namespace: str = "default", grace_period: Optional[int] = None,
               propagation: Optional[str] = None) -> dict:
        res = self._res(kind)
        options: dict = {}
        if grace_period is not None:
            options["gracePeriodSeconds"] = grace_period
        if propagation:
            options["propagationPolicy"] = propagation
        return self.call(lambda: self.registry.delete(res, namespace, name, options)[0])

    @staticmethod
    def _res(kind: str) -> R.Resource:
        for r in R.RESOURCES:
            if kind in (r.kind, r.plural, r.singular) or kind in r.short_names:
                return r
        raise ValueError(f"kubeworld does not serve {kind!r}")

    def wait_for(self, predicate: Callable[["KubeWorld"], Any], timeout: float = 10.0, interval: float = 0.02,
                 what: str = "condition") -> Any:
        """Poll `predicate(world)` (from the test's thread) until truthy; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"kubeworld: timed out after {timeout:.1f}s waiting for {what}")
            time.sleep(interval)

    def compact(self) -> int:
        """Compact history now: watches from any earlier resourceVersion get 410 Gone."""
        return self.call(self.store.compact)

    def snapshot(self) -> Dict[str, List[dict]]:
        return self.call(self.store.snapshot)

    # -- controllers and data plane --

    def pause(self, *controllers: str) -> None:
        """Pause controllers by name: deployment, replicaset, kubelet, endpoints, endpointslice, gc."""
        self.call(self.control.pause, *controllers)

    def resume(self, *controllers: str) -> None:
        self.call(self.control.resume, *controllers)

    def set_propagation_lag(self, seconds: float) -> None:
        """The proxies' lag (= `set_lag("proxies", seconds)`)."""
        self.set_lag("proxies", seconds)

    def set_lag(self, controller: str, spec: LagSpec, jitter: float = 0.0) -> None:
        """Change one controller's lag live: seconds, (low, high), or seconds plus up to `jitter`."""
        if controller not in self.lags:
            raise ValueError(f"no controller named {controller!r}; known: {', '.join(CONTROLLERS)}")
        self.lags[controller].set(spec, jitter)

    def service_url(self, name: str, namespace: str = "default", port: Optional[Any] = None) -> str:
        """http://127.0.0.1:<port> of the kube-proxy stand-in for this Service port."""
        return self.call(self.dataplane.service_url, namespace, name, port)

    def pod_url(self, name: str, namespace: str = "default") -> Optional[str]:
        return self.call(self.dataplane.pod_url, namespace, name)

    def load(self, url: str, **kw) -> LoadGenerator:
        """A load generator against `url` (see load.py); start it with .start() or `with`."""
        gen = LoadGenerator(self, url, **kw)
        self._loads.append(gen)
        return gen

    def listening_ports(self) -> List[int]:
        """Every loopback port this world listens on now (API server, Service proxies, pods)."""
        def go():
            ports = [self.api.port]
            ports += [p.listen_port for proxies in self.dataplane.proxies.values() for p in proxies]
            ports += [a.port for a in self.dataplane.apps.values() if a.listening and a.port]
            return ports

        return self.call(go)
