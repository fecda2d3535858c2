"""The data plane: pods as real HTTP servers, a kube-proxy per Service, and the API server's proxy.

Addresses: pod IPs (127.244.x.y) and cluster IPs (127.96.x.y) are taken from the loopback block so
no client can send traffic off this machine by mistake; nothing listens on them. The real sockets
are ephemeral ports on 127.0.0.1, mapped here from pod IP to the pod's app.

- Pod apps answer every path with JSON naming the pod and image, 503 for `neverready` images, 500
  to everything but the kubelet's probes for `errors` images, and serve `/metrics` in the
  Prometheus text format: http_requests_total by code and the http_request_duration_seconds
  histogram, the metric names of most HTTP instrumentation libraries (prometheus_client's
  conventions, https://prometheus.io/docs/practices/naming/). SIGTERM closes the
  listener at once and lets in-flight requests finish (what most HTTP servers do; `ignoresigterm`
  images keep serving); SIGKILL resets every connection.
- Service proxies (kube-proxy's iptables mode, https://kubernetes.io/docs/reference/networking/virtual-ips/):
  an L4 relay per Service port that picks a ready endpoint at random for each connection, falls back
  to serving-but-terminating endpoints when none is ready (KEP-1669, "ProxyTerminatingEndpoints"),
  and rejects (RST) when there is none. Its view of the EndpointSlices is `propagation_lag` seconds
  old (or a seeded draw: the world's `lag["proxies"]`, lag.py), so a pod deleted before the lag passes still receives connections and refuses them — as in
  a cluster, where the preStop hook exists to cover that window.
- API server proxy (`.../services/NAME[:PORT]/proxy/PATH`): a port of
  pkg/registry/core/service/storage/storage.go `ResourceLocation` — port numbers translate to the
  service port's name, a random ready address from the Endpoints whose port has that name, 503
  `no endpoints available for service "NAME"` otherwise — and the pods proxy likewise. Up to 1.36
  it reads the legacy Endpoints object, not the EndpointSlices (GenericREST.ResourceLocation:
  ``r.endpoints.Get(ctx, svcName, ...)``), so while the Endpoints controller lags the slice
  controller (endpoints.py, ``Lag``) it still routes to the pods the Service selected before, and
  without the Endpoints controller it answers 503. A world whose ``server_version`` is 1.37 or later
  routes by the EndpointSlices instead (kubernetes/kubernetes#134860, first released in
  v1.37.0-alpha.2; ``_slice_location``).
  ``pods_unreachable`` makes it fail as an API server outside the pod network does (``_unreachable``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from typing import Dict, List, Optional, Tuple

import aiohttp
from aiohttp import web

from . import resources as R
from .errors import ApiError

SLICES = R.BY_KEY["discovery.k8s.io/endpointslices"]
SERVICES = R.BY_KEY["core/services"]
ENDPOINTS = R.BY_KEY["core/endpoints"]
PODS = R.BY_KEY["core/pods"]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate", "content-length", "content-encoding"}


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a refused or reset connection looks to a client."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


# prometheus_client's default histogram buckets (prometheus_client/metrics.py, Histogram.DEFAULT_BUCKETS)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, float("inf"))


class App:
    """One container's HTTP server."""

    def __init__(self, plane: "DataPlane", pod: dict, container, delay: float) -> None:
        self.plane = plane
        self.pod_name = pod["metadata"]["name"]
        self.namespace = pod["metadata"]["namespace"]
        self.image = container.image
        self.container = container.name
        self.never_ready = container.kind.never_ready
        self.serves_errors = container.kind.serves_errors
        self.answers = getattr(container.kind, "answers", 0)
        self.ignores_sigterm = container.kind.ignores_sigterm
        self.listening = False
        self.exited = False
        self.port: Optional[int] = None
        self.inflight = 0
        self.counts: Dict[int, int] = {}
        self.buckets = [0] * len(BUCKETS)  # cumulative histogram counts, per upper bound in BUCKETS
        self.duration_sum = 0.0
        self._server: Optional[web.Server] = None
        self._listener = None
        self._starter = asyncio.get_running_loop().call_later(delay, self._listen)

    def _listen(self) -> None:
        self._starter = None
        task = asyncio.get_running_loop().create_task(self._alisten())
        self.plane.tasks.add(task)
        task.add_done_callback(self.plane.tasks.discard)

    async def _alisten(self) -> None:
        if self.exited:
            return
        self._server = web.Server(self._handle)
        self._listener = await asyncio.get_running_loop().create_server(self._server, "127.0.0.1", 0)
        if self.exited:  # killed while binding
            self._listener.close()
            return
        self.port = self._listener.sockets[0].getsockname()[1]
        self.listening = True
        self.plane.world.control._changed()

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        self.inflight += 1
        try:
            if request.path == "/metrics":
                return web.Response(text=self.metrics(), content_type="text/plain", charset="utf-8",
                                    headers={"X-Pod": self.pod_name})
            started = time.monotonic()
            probe = request.headers.get("User-Agent", "").startswith("kube-probe/")
            code = 503 if self.never_ready else 500 if (self.serves_errors and not probe) else \
                self.answers if (self.answers and not probe) else 200
            self.counts[code] = self.counts.get(code, 0) + 1
            elapsed = time.monotonic() - started
            self.duration_sum += elapsed
            for i, bound in enumerate(BUCKETS):
                if elapsed <= bound:
                    self.buckets[i] += 1
            body = {"pod": self.pod_name, "namespace": self.namespace, "container": self.container,
                    "image": self.image, "path": request.path, "method": request.method,
                    **({"ready": False} if self.never_ready else {})}
            # X-Enadu-Image: the optional header the deploy helper's smoke test checks (README, "The
            # smoke test"); real apps send it only if they choose to. An app may claim another image
            # than its pod runs (DataPlane.claimed_images: a re-pushed mutable tag, a node's stale copy).
            claimed = self.plane.claimed_images.get(self.image, self.image)
            return web.Response(status=code, text=json.dumps(body), content_type="application/json",
                                headers={"X-Pod": self.pod_name, "X-Image": self.image, "X-Enadu-Image": claimed})
        finally:
            self.inflight -= 1
            if not self.listening and self.inflight == 0 and self._server is not None and not self.exited:
                self.exited = True
                self.plane.world.control._changed()

    def metrics(self) -> str:
        lines = ["# HELP http_requests_total HTTP requests this pod answered, by status code.",
                 "# TYPE http_requests_total counter"]
        labels = f'pod="{self.pod_name}",image="{self.image}"'
        for code in sorted(self.counts):
            lines.append(f'http_requests_total{{code="{code}",{labels}}} {self.counts[code]}')
        lines += ["# HELP http_request_duration_seconds Time to answer an HTTP request.",
                  "# TYPE http_request_duration_seconds histogram"]
        for bound, count in zip(BUCKETS, self.buckets):
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'http_request_duration_seconds_bucket{{le="{le}",{labels}}} {count}')
        total = sum(self.counts.values())
        lines.append(f"http_request_duration_seconds_sum{{{labels}}} {self.duration_sum}")
        lines.append(f"http_request_duration_seconds_count{{{labels}}} {total}")
        return "\n".join(lines) + "\n"

    def sigterm(self) -> bool:
        """Returns True when the process is gone at once."""
        if self.ignores_sigterm:
            return False
        self.listening = False
        if self._starter is not None:
            self._starter.cancel()
            self._starter = None
            self.exited = True
            return True
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            for conn in list(self._server.connections):
                conn.close()  # idle keep-alive connections go; in-flight requests finish first
        if self.inflight == 0:
            self.exited = True
        return self.exited

    def kill(self) -> None:
        self.listening = False
        self.exited = True
        if self._starter is not None:
            self._starter.cancel()
            self._starter = None
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            for conn in list(self._server.connections):
                if conn.transport is not None:
                    conn.transport.abort()


class ServiceProxy:
    """kube-proxy's rules for one Service port, served on a loopback port."""

    def __init__(self, plane: "DataPlane", namespace: str, service: str, port: dict) -> None:
        self.plane = plane
        self.namespace, self.service = namespace, service
        self.port_name = port.get("name", "")
        self.port_number = port.get("port")
        self.endpoints: List[Tuple[str, int, bool, bool]] = []  # ip, port, ready, serving
        self.server: Optional[asyncio.AbstractServer] = None
        self.listen_port = 0
        self.connections = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.listen_port = self.server.sockets[0].getsockname()[1]

    def pick(self) -> Optional[Tuple[str, int]]:
        ready = [(ip, p) for ip, p, r, _ in self.endpoints if r]
        if not ready:
            ready = [(ip, p) for ip, p, r, s in self.endpoints if s]
        return self.plane.rng.choice(ready) if ready else None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        try:
            target = self.pick()
            port = self.plane.app_port(target[0]) if target else None
            if port is None:
                _reset(writer)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                _reset(writer)
                return
            self.connections.add(up_writer)
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self.connections.discard(up_writer)
                up_writer.transport.abort()
        finally:
            self.connections.discard(writer)
            writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            _reset(writer)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in list(self.connections):
            w.transport.abort()


class DataPlane:
    def __init__(self, world, lag: float, rng) -> None:
        self.world = world
        self.lags = world.lags["proxies"]  # lag.py; `propagation_lag` is its fixed form
        self.rng = rng
        self.apps: Dict[str, App] = {}  # pod IP -> the app answering on it
        self.proxies: Dict[Tuple[str, str], List[ServiceProxy]] = {}
        self.tasks: set = set()
        self._session: Optional[aiohttp.ClientSession] = None
        # Knobs (set them from a test before the traffic they affect):
        # claimed_images: image -> the image its apps name in X-Enadu-Image (default: their own);
        # pods_unreachable: None, "dial-timeout" or "egress-502": the API server cannot open a
        # connection to pod IPs (a private cluster's control plane outside the pod network), see
        # api_proxy. proxy_log: one entry per request the API server's proxy delivered to an app.
        self.claimed_images: Dict[str, str] = {}
        self.pods_unreachable: Optional[str] = None
        self.proxy_log: List[dict] = []
        world.store.listeners.append(self._on_change)

    @property
    def lag(self) -> float:
        """The proxies' (lower) lag in seconds; setting it fixes the delay."""
        return self.lags.seconds

    @lag.setter
    def lag(self, seconds: float) -> None:
        self.lags.set(seconds)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))

    async def stop(self) -> None:
        for app in list(self.apps.values()):
            app.kill()
        for proxies in list(self.proxies.values()):
            for p in proxies:
                await p.stop()
        for t in list(self.tasks):
            t.cancel()
        if self._session is not None:
            await self._session.close()

    # -- pods --

    def start_app(self, rt, container, pod: dict, delay: float) -> App:
        app = App(self, pod, container, delay)
        if rt.ip not in self.apps or self.apps[rt.ip].exited:
            self.apps[rt.ip] = app
        return app

    def app_port(self, ip: str) -> Optional[int]:
        app = self.apps.get(ip)
        if app is None or not app.listening or app.exited:
            return None
        return app.port

    def pod_url(self, namespace: str, name: str) -> Optional[str]:
        pod = self.world.store.get(PODS.key, namespace, name)
        ip = ((pod or {}).get("status") or {}).get("podIP")
        port = self.app_port(ip) if ip else None
        return f"http://127.0.0.1:{port}" if port else None

    # -- services --

    def _on_change(self, key: str, etype: str, obj: dict, prev) -> None:
        meta = obj["metadata"]
        if key == SERVICES.key:
            ident = (meta["namespace"], meta["name"])
            if etype == "DELETED":
                for p in self.proxies.pop(ident, []):
                    self._spawn(p.stop())
            else:
                self._spawn(self._ensure_proxies(ident, obj))
        elif key == SLICES.key:
            svc = (meta.get("labels") or {}).get("kubernetes.io/service-name")
            if svc:
                ident = (meta["namespace"], svc)
                # The proxies' lag (lag.py, "proxies"): this view of the slices reaches them after a
                # drawn delay, never overtaking an earlier one.
                out = self.lags.admit(ident, self._endpoints_of(ident))
                if out is not None:
                    self._apply(ident, out)
                self._schedule(ident)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _ensure_proxies(self, ident, svc: dict) -> None:
        ports = (svc.get("spec") or {}).get("ports") or []
        have = {(p.port_name, p.port_number) for p in self.proxies.get(ident, [])}
        want = {(p.get("name", ""), p.get("port")) for p in ports}
        if have == want:
            return
        for p in self.proxies.pop(ident, []):
            await p.stop()
        made = []
        for port in ports:
            proxy = ServiceProxy(self, ident[0], ident[1], port)
            await proxy.start()
            made.append(proxy)
        self.proxies[ident] = made
        self._apply(ident, self._endpoints_of(ident))

    def _endpoints_of(self, ident) -> Dict[str, List[Tuple[str, int, bool, bool]]]:
        """Per port name: (ip, port, ready, serving) from every EndpointSlice of the Service."""
        out: Dict[str, List[Tuple[str, int, bool, bool]]] = {}
        for s in self.world.store.list(SLICES.key, ident[0]):
            if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") != ident[1]:
                continue
            for port in s.get("ports") or []:
                for ep in s.get("endpoints") or []:
                    cond = ep.get("conditions") or {}
                    ready = cond.get("ready", True)
                    serving = cond.get("serving", ready)
                    for ip in ep.get("addresses") or []:
                        out.setdefault(port.get("name", ""), []).append((ip, port.get("port"), bool(ready), bool(serving)))
        return out

    def _schedule(self, ident) -> None:
        queue = self.lags.pending.get(ident)
        if queue:
            delay = max(0.0, queue[0][0] - time.monotonic())
            asyncio.get_running_loop().call_later(delay + 1e-4, self._program, ident)

    def _program(self, ident) -> None:
        if ident not in self.lags.last:
            return
        out = self.lags.admit(ident, self.lags.last[ident])
        if out is not None:
            self._apply(ident, out)
        self._schedule(ident)

    def _apply(self, ident, endpoints) -> None:
        for proxy in self.proxies.get(ident, []):
            proxy.endpoints = endpoints.get(proxy.port_name, [])

    def service_url(self, namespace: str, name: str, port=None) -> str:
        proxies = self.proxies.get((namespace, name))
        if not proxies:
            raise LookupError(f"no Service {namespace}/{name} (or it has no ports)")
        for p in proxies:
            if port is None or port in (p.port_name, p.port_number, str(p.port_number)):
                return f"http://127.0.0.1:{p.listen_port}"
        raise LookupError(f"Service {namespace}/{name} has no port {port!r}")

    # -- the API server's proxy subresource --

    async def api_proxy(self, request, res, namespace: str, name_port: str, path: str, body: bytes) -> web.StreamResponse:
        parts = name_port.split(":")
        if len(parts) == 3:
            parts = parts[1:]
        name, port = parts[0], (parts[1] if len(parts) > 1 else "")
        if res.kind == "Service":
            ip, target = self._service_location(namespace, name, port)
        elif res.kind == "Pod":
            pod = self.world.store.get(PODS.key, namespace, name)
            if pod is None:
                raise ApiError.not_found(res, name)
            ip = (pod.get("status") or {}).get("podIP")
            if not ip:
                raise ApiError(400, "BadRequest", "address not allowed")
            target = int(port) if port.isdigit() else 80
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if self.pods_unreachable:
            raise ApiError.service_unavailable(f"error trying to reach service: {self._unreachable(ip, target)}")
        real = self.app_port(ip)
        if real is None:
            raise ApiError.service_unavailable(f"error trying to reach service: dial tcp {ip}:{target}: connect: connection refused")
        url = f"http://127.0.0.1:{real}{path or '/'}"
        if request.query_string:
            url += "?" + request.query_string
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | {"authorization", "host"}}
        try:
            async with self._session.request(request.method, url, data=body or None, headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=30)) as resp:
                data = await resp.read()
                out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
                app = self.apps.get(ip)
                self.proxy_log.append({"kind": res.kind, "namespace": namespace, "name": name, "path": path or "/",
                                       "pod": app.pod_name if app else "", "image": app.image if app else "",
                                       "status": resp.status, "at": time.monotonic()})
                return web.Response(status=resp.status, body=data, headers=out_headers)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            raise ApiError.service_unavailable(f"error trying to reach service: {type(e).__name__}") from None

    def _unreachable(self, ip: str, port: int) -> str:
        """The dial error of an API server that cannot reach the pod network, as the proxy wraps it.

        staging/src/k8s.io/apimachinery/pkg/util/proxy/transport.go (``Transport.RoundTrip``) turns a
        failed round trip into ``errors.NewServiceUnavailable(fmt.Sprintf("error trying to reach
        service: %v", err))``; upgradeaware.go wires it as the reverse proxy's ErrorHandler
        (``proxy.ErrorHandler = h.Responder.Error``), and the apiserver's responder writes it as a
        metav1.Status: HTTP 503, reason ServiceUnavailable. The wrapped error is Go's dialer's
        (``dial tcp IP:PORT: i/o timeout``: nothing routes to pod IPs) or, behind a konnectivity /
        HTTP-CONNECT egress proxy (k3s: its supervisor on 127.0.0.1:6443), staging/src/k8s.io/apiserver/pkg/server/egressselector/
        egress_selector.go ``tunnelHTTPConnect``: ``proxy error from ADDR while dialing IP:PORT, code
        502: 502 Bad Gateway``. (Clusters older than 1.20 answered a text/plain 503 ``Error trying to
        reach service: '...'`` from the same RoundTrip.) The real dial waits for its 30 s timeout;
        here the answer is immediate."""
        if self.pods_unreachable == "egress-502":
            return f"proxy error from 127.0.0.1:6443 while dialing {ip}:{port}, code 502: 502 Bad Gateway"
        return f"dial tcp {ip}:{port}: i/o timeout"

    def _service_location(self, namespace: str, name: str, port: str) -> Tuple[str, int]:
        svc = self.world.store.get(SERVICES.key, namespace, name)
        if svc is None:
            raise ApiError.not_found(SERVICES, name)
        if port.isdigit():
            for sp in svc["spec"].get("ports") or []:
                if sp.get("port") == int(port):
                    port = sp.get("name", "")
                    break
            else:
                raise ApiError.service_unavailable(f'no service port {port} found for service "{name}"')
        if self.world.version_at_least(1, 37):
            return self._slice_location(namespace, name, port)
        eps = self.world.store.get(ENDPOINTS.key, namespace, name)
        subsets = (eps or {}).get("subsets") or []
        if not subsets:
            raise ApiError.service_unavailable(f'no endpoints available for service "{name}"')
        seed = self.rng.randrange(len(subsets))
        for i in range(len(subsets)):
            ss = subsets[(seed + i) % len(subsets)]
            addrs = ss.get("addresses") or []
            if not addrs:
                continue
            for p in ss.get("ports") or []:
                if p.get("name", "") == port:
                    addr = addrs[self.rng.randrange(len(addrs))]
                    return addr["ip"], p["port"]
        raise ApiError.service_unavailable(f'no endpoints available for service "{name}"')

    def _slice_location(self, namespace: str, name: str, port: str) -> Tuple[str, int]:
        """1.37+: a random ready endpoint from the Service's EndpointSlices (kubernetes/kubernetes#134860,
        "Port service/proxy subresource from Endpoints to EndpointSlice": ResourceLocation in
        pkg/registry/core/service/storage/storage.go lists the slices labelled
        ``kubernetes.io/service-name=NAME`` instead of ``r.endpoints.Get``), among endpoints whose
        ``conditions.ready`` is not false and whose slice has a port of that name; 503 ``no endpoints
        available for service "NAME"`` when there is none, as before."""
        choices = []
        for s in self.world.store.list(SLICES.key, namespace):
            if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") != name:
                continue
            numbers = [p.get("port") for p in s.get("ports") or [] if (p.get("name") or "") == port]
            if not numbers:
                continue
            for ep in s.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is False or not ep.get("addresses"):
                    continue
                choices.append((ep["addresses"][0], numbers[0]))
        if not choices:
            raise ApiError.service_unavailable(f'no endpoints available for service "{name}"')
        return choices[self.rng.randrange(len(choices))]
