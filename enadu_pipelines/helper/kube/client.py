"""One explicit Kubernetes API client, bounded and retried, speaking plain dicts.

``connect`` builds a single ``ApiClient`` from an explicit kubeconfig (flag or ``KUBECONFIG``, which
is what the Jenkins secret-file credential provides) or the in-cluster service account, and never
touches the client library's global configuration. urllib3's own silent retries are switched off
(``Configuration.retries = False``): every request goes through ``helper.retry`` instead, which
retries connection errors, timeouts, 429 and 5xx (honouring ``Retry-After``) within a deadline and
logs each attempt, and every request carries ``_request_timeout``.

:class:`Kube` returns the API server's JSON as dicts (``_preload_content=False``): the deploy logic
compares and patches raw objects, and skipping model deserialisation keeps it fast. API errors become
a few exception types the deploy logic acts on (NotFound, Conflict, Invalid) or ``ClusterError`` for
unreachable/401/403, with messages that never carry the request's credentials.

The kubeconfig is a secret, its path included (in Jenkins the path is the file credential's value).
The client library's messages about it go through ``config_problem`` (the path becomes
``<kubeconfig>``, other paths ``<file>``, user info is dropped), and its own log records, which quote
a failing exec credential plugin's stderr, are caught by ``LibraryLog`` and replaced by our one line
naming the plugin's basename.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import interrupt, retry
from ..errors import ClusterError, HelperError, NamespaceMissing, UsageProblem

REQUEST_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds for every non-watch request; the read timeout
# also bounds the whole request in wall-clock time (Kube.call), since a server trickling its answer
# satisfies every per-read timeout
MAX_ANSWER = 32 << 20  # bytes of one answer: our lists are label-selected pods and EndpointSlices
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class ApiFailure(HelperError):
    """The API server rejected a request for a reason the deploy logic does not handle."""

    def __init__(self, what: str, status: int, reason: str, message: str) -> None:
        head = f"{what}: HTTP {status} {reason}".rstrip() if status else f"{what}: {reason}"
        super().__init__(f"{head}: {message}" if message else head)
        self.status = status
        self.reason = reason


class NotFound(ApiFailure):
    """404: the object does not exist (or no longer does)."""

    kind = ""  # the answer's details.kind: "namespaces" when a create names a namespace that does not exist


class Forbidden(ClusterError):
    """403: the credentials may not make this request (RBAC, or admission)."""


class Conflict(ApiFailure):
    """409: AlreadyExists on create, or a stale resourceVersion / failed precondition on write."""


class Invalid(ApiFailure):
    """422: the object or patch was refused (also a failed JSON-patch ``test``)."""

    causes: Tuple[Tuple[str, str, str], ...] = ()  # (field, reason, message) of the Status's details.causes

    def immutable_selector(self) -> bool:
        """Whether the refusal is the immutable ``spec.selector`` and nothing else.

        Not apps validation: ``ValidateDeploymentUpdate`` (pkg/apis/apps/validation/validation.go)
        checks only the object meta and the new spec. The Deployment's REST strategy does it
        (pkg/registry/apps/deployment/strategy.go ``ValidateUpdate``; the same in the ReplicaSet's and
        DaemonSet's strategy.go), for every group/version but the retired compatibility ones (upstream's
        comment TODO(#50791) would move it into ``ValidateDeploymentUpdate`` once they are gone):
        ``apivalidation.ValidateImmutableField(new.Spec.Selector, old.Spec.Selector,
        field.NewPath("spec").Child("selector"))`` (staging/src/k8s.io/apimachinery/pkg/api/validation/
        objectmeta.go), which appends ``field.Invalid(fldPath, newVal, FieldImmutableErrorMsg)``
        ("field is immutable"): a cause with field ``spec.selector``, reason ``FieldValueInvalid`` and a
        message ending in ``field is immutable``."""
        return bool(self.causes) and all(
            field == "spec.selector" and reason == "FieldValueInvalid" and message.endswith("field is immutable")
            for field, reason, message in self.causes)

    def first_cause(self) -> str:
        """The first cause as ``<field>: <message>`` (the Status message when there is none)."""
        for field, _, message in self.causes:
            return f"{field}: {message}" if field else message
        return ""


def _causes(details: Any) -> Tuple[Tuple[str, str, str], ...]:
    """``details.causes`` of a Status as (field, reason, message) strings, bounded: the answer is
    untrusted input, and a cause's message ends up in one line of our output."""
    causes = details.get("causes") if isinstance(details, dict) else None
    out = []
    for cause in causes if isinstance(causes, list) else []:
        if isinstance(cause, dict):
            out.append(tuple(" ".join(str(cause.get(key) or "").split())[:200] for key in ("field", "reason", "message")))
    return tuple(out[:20])


class Gone(ApiFailure):
    """410: a watch asked for a resourceVersion the server no longer has."""


_BY_STATUS = {404: NotFound, 409: Conflict, 410: Gone, 422: Invalid}
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}


def classify(exc: BaseException) -> Optional[retry.Transient]:
    """Which failures are worth another attempt (kopf's list: connection errors, timeouts, 429, 5xx)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        if exc.status in _TRANSIENT_STATUS:
            return retry.Transient(f"HTTP {exc.status}", retry_after=_retry_after(exc))
        return None
    if isinstance(exc, retry.OutOfTime):
        return retry.Transient("no complete answer in time")
    if isinstance(exc, (HTTPError, ConnectionError, TimeoutError)):
        return retry.Transient(type(exc).__name__)  # no str(exc): it names hosts and ports at best
    return None


def _retry_after(exc: Any) -> Optional[float]:
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def api_failure(exc: Any, what: str) -> HelperError:
    """An ApiException as one of our errors (401/403 are cluster errors: exit code 4)."""
    message, kind, causes = "", "", ()
    try:
        body = json.loads(exc.body or "{}")
        message = str(body.get("message", ""))[:300]
        kind = str((body.get("details") or {}).get("kind") or "")
        causes = _causes(body.get("details"))
    except (TypeError, ValueError, AttributeError):
        pass
    if exc.status == 401:
        return ClusterError(f"{what}: HTTP 401 Unauthorized: the cluster refused the credentials")
    if exc.status == 403:
        return Forbidden(f"{what}: HTTP 403 Forbidden: {message or 'the credentials lack a permission'}")
    cls = _BY_STATUS.get(exc.status, ApiFailure)
    failure = cls(what, exc.status, str(exc.reason or ""), message)
    if isinstance(failure, NotFound):
        failure.kind = kind
    if isinstance(failure, Invalid):
        failure.causes = causes
    return failure


# -- the API server's service proxy --------------------------------------------------------------

IMAGE_HEADER = "X-Enadu-Image"  # optional: an app may name the image it runs (README, "The smoke test")


class ProxyAnswer:
    """An app's answer through the service proxy: status, the first 200 characters of the body, and
    the image the app names in ``X-Enadu-Image`` (None when it sends no such header)."""

    def __init__(self, status: int, body: str, image: Optional[str]) -> None:
        self.status, self.body, self.image = status, body, image


class AppAnswered(ApiFailure):
    """The app behind the proxy answered with a failure status (its own answer, passed through)."""


class PodsUnreachable(HelperError):
    """The API server could not open a connection to the pods (a private cluster's control plane
    outside the pod network, a firewall, a NetworkPolicy): the proxy's 503 ``error trying to reach
    service``. Exit code 1 (FAILED), never 4: the credentials were accepted."""


def printable(value: Optional[str], limit: int = 200) -> Optional[str]:
    """An untrusted header value fit for one log line: printable ASCII, at most ``limit`` characters."""
    if value is None:
        return None
    return "".join(c if " " <= c <= "~" else "?" for c in str(value).strip()[:limit])


def _api_status(exc: Any) -> Optional[Dict[str, Any]]:
    """The metav1.Status the API server itself answered with, or None (an app's answer)."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return None
    if isinstance(body, dict) and body.get("kind") == "Status" and body.get("code") in (None, exc.status):
        return body
    return None


def _reach_error(exc: Any) -> Optional[str]:
    """The proxy's "could not reach the pods" message, or None.

    staging/src/k8s.io/apimachinery/pkg/util/proxy/transport.go (``Transport.RoundTrip``) answers a
    failed dial with ``errors.NewServiceUnavailable("error trying to reach service: <dial error>")``,
    which the apiserver writes as a metav1.Status (503, reason ServiceUnavailable); before Kubernetes
    1.20 the same RoundTrip wrote it as text/plain ``Error trying to reach service: '<dial error>'``."""
    if getattr(exc, "status", None) != 503:
        return None
    status = _api_status(exc)
    if status is not None:
        message = str(status.get("message") or "")
    else:
        try:
            message = (exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or ""))
        except AttributeError:
            return None
    message = message.strip()[:300]
    return message if message.lower().startswith("error trying to reach service") else None


def classify_proxy(exc: BaseException) -> Optional[retry.Transient]:
    """``classify``, except that a dial the API server could not complete is not retried when it
    timed out or an egress proxy refused it (each attempt costs the apiserver's 30 s dial timeout
    in a real private cluster, and the next one fails the same way)."""
    reach = _reach_error(exc)
    if reach is not None and any(sign in reach for sign in ("i/o timeout", "proxy error from", "no route to host")):
        return None
    return classify(exc)


def proxy_failure(exc: Any, what: str, path: str) -> HelperError:
    """A failed service-proxy request as our error: the app's own answer, the API server failing to
    reach the pods, or (a metav1.Status body) the API server's own refusal (:func:`api_failure`)."""
    reach = _reach_error(exc)
    if reach is not None:
        return PodsUnreachable(f"{what}: the API server could not reach the pods (private cluster?): {reach}; "
                               "the smoke test goes through the API server's service proxy, so the control plane "
                               "must be able to open connections to the pods' port (firewall rule or NetworkPolicy)")
    if _api_status(exc) is None:
        answered = AppAnswered(what, 0, f"the app answered {exc.status} on {path}", "")
        answered.status = exc.status
        return answered
    return api_failure(exc, what)


def server_for_log(url: object) -> str:
    """An API server URL as ``scheme://host:port`` for a log line: no user info, path, query or
    fragment (any of them may carry a credential), the port spelled out."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(str(url or ""))
        host, port = parts.hostname, parts.port
    except ValueError:
        return "(a server URL that does not parse)"
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https") or not host:
        return "(a server URL that is not http or https)"
    if ":" in host:
        host = f"[{host}]"  # IPv6
    return f"{scheme}://{host}:{port or (443 if scheme == 'https' else 80)}"


# -- what the client library says about the kubeconfig ----------------------------------------------


class LibraryLog(logging.Handler):
    """Keeps the kubernetes client library's own log records out of the output.

    The library reports a failing exec credential plugin only by logging it (``logging.error`` on the
    root logger in ``KubeConfigLoader._load_from_exec_plugin``), with the plugin's stderr and, when it
    cannot start, its path; the plugin then counts as "no credentials". Records from the library are
    counted and summarised instead (``exec_failures``, ``last``), for our own one-line message; any
    other record at WARNING or above is printed as Python prints it without a handler."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        import kubernetes

        self.library = os.path.dirname(os.path.abspath(kubernetes.__file__)) + os.sep
        self.exec_failures = 0
        self.last = "failed"

    def emit(self, record: logging.LogRecord) -> None:
        if os.path.abspath(record.pathname).startswith(self.library):
            if "exec" in record.funcName or str(record.msg).startswith("exec:"):
                self.exec_failures += 1
                self.last = exec_failure(str(record.msg))
            return
        fallback = logging.lastResort
        if fallback is not None and record.levelno >= fallback.level:
            fallback.handle(record)


def exec_failure(message: str) -> str:
    """What went wrong with an exec plugin, from the library's message, without any of its data."""
    returned = re.match(r"exec: process returned (-?[0-9]+)", message)
    if returned:
        return f"exited with {returned.group(1)}"
    if message.startswith("exec: malformed request"):
        return "is configured without its command or apiVersion"
    if message.startswith(("exec: failed to decode", "exec: malformed response", "exec: plugin api version",
                           "exec: missing")):
        return "gave no token or client certificate"
    if message.startswith("[Errno") or "No such file" in message or "Permission denied" in message:
        return "could not be started"
    return "failed"


def library_log() -> LibraryLog:
    """The process's one LibraryLog on the root logger (installed on first use)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, LibraryLog):
            return handler
    handler = LibraryLog()
    root.addHandler(handler)
    return handler


def exec_plugin_name(path: str, context: Optional[str]) -> str:
    """The basename of the exec credential plugin the kubeconfig's context uses (never its
    directory, arguments or environment: they may carry secrets), or a placeholder."""
    try:
        import yaml

        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        name = context or doc.get("current-context")
        ctx = next(c["context"] for c in doc["contexts"] if c.get("name") == name)
        user = next(u["user"] for u in doc["users"] if u.get("name") == ctx.get("user"))
        command = str(user["exec"]["command"])
    except Exception:  # noqa: BLE001 - only a name for a message; the loader reports real problems
        return "(unnamed)"
    base = os.path.basename(command.replace("\\", "/"))
    return "".join(ch if ch.isprintable() and not ch.isspace() else "?" for ch in base)[:60] or "(unnamed)"


def config_problem(text: str, path: Optional[str] = None) -> str:
    """A client library's message about a kubeconfig, safe to print: the kubeconfig's path becomes
    ``<kubeconfig>`` (in Jenkins it is the credential's value), any other absolute path ``<file>``,
    user info in a URL goes, an exec plugin's output is never quoted; one line, at most 200 chars."""
    line = text.splitlines()[0] if text else ""
    if line.startswith("exec:") or line.startswith("[Errno"):
        return f"the exec credential plugin {exec_failure(line)}"
    for variant in {path, os.path.abspath(path), os.path.realpath(path)} if path else ():
        line = line.replace(variant, "<kubeconfig>")
    line = re.sub(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@", r"\1", line)
    line = re.sub(r"(?<![\w>:/])/[^\s'\",]+", "<file>", line)
    return "".join(ch if ch.isprintable() else "?" for ch in line)[:200]


def connect(kubeconfig: Optional[str], context: Optional[str]) -> Tuple[Any, str, Optional[Tuple[str, str]]]:
    """An ApiClient, a line saying which credentials it uses, and the namespace those credentials
    name with where that came from (the kubeconfig context's ``namespace``, or the in-cluster
    service account's namespace file, as kubectl's clientcmd reads them), or None.

    An explicit kubeconfig (the flag, else ``KUBECONFIG``) wins; without one, the in-cluster service
    account is used when the process runs in a pod. The kubeconfig is read once, here, into memory:
    Jenkins deletes its file credential when an aborted build unbinds it, and the clean-up after
    SIGTERM must still reach the cluster. Neither the line nor an error names the file: its path is
    the credential's value, which Jenkins masks as ``****``; the context and the server say more.
    """
    from kubernetes import client, config

    cfg = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    plugin = None
    if path:
        what = "the kubeconfig (--kubeconfig or KUBECONFIG)"
        if not os.path.isfile(path):
            raise UsageProblem(f"{what} does not exist")
        log = library_log()
        failures = log.exec_failures
        plugin = exec_plugin_name(path, context)
        try:
            config.load_kube_config(config_file=path, context=context, client_configuration=cfg,
                                    persist_config=False)
            contexts, active = config.list_kube_config_contexts(config_file=path)
        except config.ConfigException as e:
            raise UsageProblem(f"{what}: {config_problem(str(e), path)}") from None
        except Exception as e:  # noqa: BLE001 - YAML or I/O errors could quote the file: say nothing of it
            raise UsageProblem(f"{what} could not be read ({type(e).__name__})") from None
        if log.exec_failures > failures:
            raise ClusterError(f"the kubeconfig's exec credential plugin {plugin} {log.last}; its output is not shown")
        name = "".join(ch if ch.isprintable() else "?" for ch in str(context or (active or {}).get("name", "?")))[:100]
        how = f"kubeconfig context {name} (server {server_for_log(cfg.host)})"
        chosen = next((c for c in contexts or [] if c.get("name") == (context or (active or {}).get("name"))), None)
        named = ((chosen or {}).get("context") or {}).get("namespace")
        namespace = (str(named), f"the kubeconfig context {name}") if named else None
    elif os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.isfile(SERVICE_ACCOUNT_TOKEN):
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException as e:
            raise UsageProblem(f"in-cluster configuration: {str(e).splitlines()[0][:200]}") from None
        how = f"in-cluster service account (server {server_for_log(cfg.host)})"
        try:
            with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as fh:
                named = fh.read(300).strip()
        except OSError:
            named = ""
        namespace = (named, "the in-cluster service account") if named else None
    else:
        raise UsageProblem("no cluster credentials: set KUBECONFIG or --kubeconfig, or run in a pod with a service account")
    cfg.retries = False
    api_client = client.ApiClient(cfg)
    from ... import __version__

    api_client.user_agent = f"enadu-helper/{__version__}"  # tells our requests apart in audit logs
    api_client.enadu_exec_plugin = plugin  # for the message when a token refresh through it fails later
    return api_client, how, namespace


def read_capped(response: Any, cap: int) -> bytes:
    """The whole body of a urllib3 response read with ``_preload_content=False``, refused
    (:class:`retry.TooLarge`) past ``cap`` bytes."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        raise retry.TooLarge(f"the answer is larger than {cap} bytes")
    chunks, size = [], 0
    for chunk in response.stream(retry.CHUNK, decode_content=True):
        size += len(chunk)
        if size > cap:
            raise retry.TooLarge(f"the answer is larger than {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def api_deadline() -> float:
    """Seconds one API request may spend retrying (``ENADU_API_DEADLINE``, default 60)."""
    try:
        return max(1.0, float(os.environ.get("ENADU_API_DEADLINE") or 60))
    except ValueError:
        raise UsageProblem(f"ENADU_API_DEADLINE: {os.environ['ENADU_API_DEADLINE']!r} is not a number of seconds") from None


class Kube:
    """The API calls the deploy logic makes, in one namespace, as dicts."""

    def __init__(self, api_client: Any, namespace: str, *, log: Callable[[str], None],
                 policy: Optional[retry.Policy] = None, origin: str = "", probe_lease: str = "") -> None:
        from kubernetes import client

        self.api_client = api_client
        self.namespace = namespace
        self.origin = origin  # where the namespace came from, for messages ("from --namespace")
        self.probe_lease = probe_lease  # the service's lock Lease: a dry-run create of it tells whether the namespace exists
        self.namespace_exists: Optional[bool] = None  # None: not known yet
        self.log = log
        self.policy = policy or retry.Policy(deadline=api_deadline())
        self.warned_refresh = False  # the exec plugin failed to renew a token that still works: said once
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)
        self.autoscaling = client.AutoscalingV2Api(api_client)
        self.version = client.VersionApi(api_client)
        # connections that Kube.call can cut at its deadline (before the pool manager makes any pool)
        pool_manager = getattr(getattr(api_client, "rest_client", None), "pool_manager", None)
        if pool_manager is not None:
            pool_manager.pool_classes_by_scheme = retry.tracking_pools()

    # -- plumbing ----------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Dict[str, Any]:
        """One request, retried per the policy. Retrying a write is safe: every write we make is a
        create (409 if it landed), carries a resourceVersion, or is idempotent (scale, delete).

        A create in a namespace that does not exist is answered 404 with ``details.kind:
        namespaces`` by the NamespaceLifecycle admission plugin
        (staging/src/k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle/admission.go):
        that is :class:`NamespaceMissing`, not a failure of the object."""
        try:
            return self._call(what, fn, *args, **kwargs)
        except NotFound as e:
            if e.kind == "namespaces":
                self.namespace_exists = False
                raise self.missing() from None
            raise

    def missing(self) -> NamespaceMissing:
        origin = f" ({self.origin})" if self.origin else ""
        return NamespaceMissing(f"namespace {self.namespace}{origin} does not exist")

    def check_namespace(self) -> None:
        """Raise :class:`NamespaceMissing` when the namespace does not exist; asked once, and only
        when something we read was absent (an existing object proves the namespace).

        A namespaced GET or LIST in a missing namespace is no help: the API server answers 404 for
        the object itself, and an empty list. So: GET the namespace (a cluster-scoped read that the
        deployer's namespaced Role does not grant), else create the service's lock Lease with
        ``dryRun=All`` (the Role grants ``create`` on leases; nothing is stored, but admission runs,
        and NamespaceLifecycle answers 404 ``namespaces`` for a missing namespace; 409 AlreadyExists
        or 201 means it exists). When both are forbidden the question stays open, and we say so."""
        if self.namespace_exists is not None:
            return
        self.namespace_exists = self._namespace_exists()
        if self.namespace_exists is False:
            raise self.missing()
        if self.namespace_exists is None:
            self.log(f"could not check that namespace {self.namespace} exists (the credentials may neither get "
                     "namespaces nor create leases in it)")

    def _namespace_exists(self) -> Optional[bool]:
        try:
            self._call(f"get namespace {self.namespace}", self.core.read_namespace, self.namespace)
            return True
        except NotFound:
            return False
        except Forbidden:
            pass
        if not self.probe_lease:
            return None
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": self.probe_lease}}
        try:
            self._call(f"check that namespace {self.namespace} exists (create lease {self.probe_lease}, dry run)",
                       self.coordination.create_namespaced_lease, self.namespace, body, dry_run="All")
            return True
        except Conflict:
            return True  # AlreadyExists: the namespace holds it
        except NotFound as e:
            return False if e.kind == "namespaces" else None
        except Forbidden:
            return None

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        kwargs["_preload_content"] = False
        policy = self.policy
        left = interrupt.remaining()
        if left is not None:  # cleaning up after SIGTERM: what is left of the bound bounds this request
            if left < 0.1:
                raise ClusterError(f"{what}: not attempted, the clean-up time after the interruption ran out")
            connect, read = kwargs["_request_timeout"]
            kwargs["_request_timeout"] = (min(connect, left), min(read, left))
            policy = retry.Policy(backoffs=(0.2, 0.5, 1.0), deadline=left)

        def fetch() -> bytes:
            response = fn(*args, **kwargs)
            try:
                return read_capped(response, MAX_ANSWER)
            finally:
                response.release_conn()

        def attempt() -> Dict[str, Any]:
            data = retry.bounded(fetch, kwargs["_request_timeout"][1])
            try:
                return json.loads(data) if data else {}
            except ValueError:
                raise ClusterError(f"{what}: the API server answered with something that is not JSON "
                                   "(a proxy or login page in the way?)") from None

        from kubernetes.config import ConfigException

        library = library_log()
        failures = library.exec_failures
        try:
            answer = retry.run(attempt, what=what, classify=classify, policy=policy, log=self.log)
        except retry.GaveUp as e:
            if isinstance(e.last, ApiException):
                self.warn_renewal(what, failures, e.last)
                raise self.refresh_failure(what, failures, e.last) or api_failure(e.last, what) from None
            raise ClusterError(f"{what}: the API server is unreachable ({e.reason}, {e.attempts} attempts)") from None
        except ApiException as e:
            self.warn_renewal(what, failures, e)
            raise self.refresh_failure(what, failures, e) or api_failure(e, what) from None
        except retry.TooLarge:
            raise ClusterError(f"{what}: the API server's answer is larger than {MAX_ANSWER} bytes"
                               " (a proxy or a misbehaving server in the way?)") from None
        except ConfigException as e:  # e.g. an exec or OIDC credential plugin failing to refresh a token
            raise ClusterError(f"{what}: the kubeconfig's credentials could not be refreshed "
                               f"({config_problem(str(e)) if str(e) else type(e).__name__})") from None
        self.warn_renewal(what, failures, None)
        return answer

    def warn_renewal(self, what: str, failures: int, exc: Any) -> None:
        """Once per run: the exec plugin failed to renew the token, but the old one was accepted."""
        failed = self.refresh_failure(what, failures)
        if failed is not None and getattr(exc, "status", None) != 401 and not self.warned_refresh:
            self.warned_refresh = True
            self.log(f"warning: {str(failed).split(': ', 1)[1]}")

    def refresh_failure(self, what: str, failures: int, exc: Any = None) -> Optional[ClusterError]:
        """The error to report when the exec plugin failed to renew the token during a request
        (``exc``: the request's failure; only a 401 is the plugin's fault)."""
        library = library_log()
        if library.exec_failures <= failures or (exc is not None and getattr(exc, "status", None) != 401):
            return None
        plugin = getattr(self.api_client, "enadu_exec_plugin", None) or "(unnamed)"
        return ClusterError(f"{what}: the kubeconfig's exec credential plugin {plugin} {library.last} while renewing"
                            " the token; its output is not shown")

    def get(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Optional[Dict[str, Any]]:
        try:
            found = self.call(what, fn, *args, **kwargs)
        except NotFound:
            return None
        self.namespace_exists = True  # an object in it proves the namespace
        return found

    # -- objects -----------------------------------------------------------------------------

    def get_deployment(self, name: str) -> Optional[Dict[str, Any]]:
        return self.get(f"get deployment {name}", self.apps.read_namespaced_deployment, name, self.namespace)

    def create_deployment(self, body: Dict[str, Any]) -> Dict[str, Any]:
        name = body["metadata"]["name"]
        return self.call(f"create deployment {name}", self.apps.create_namespaced_deployment, self.namespace, body)

    def replace_deployment(self, body: Dict[str, Any]) -> Dict[str, Any]:
        name = body["metadata"]["name"]
        return self.call(f"replace deployment {name}", self.apps.replace_namespaced_deployment, name, self.namespace,
                         body)

    def scale_deployment(self, name: str, replicas: int) -> Dict[str, Any]:
        # A dict body goes out as a strategic-merge patch (the client's choice for non-list bodies).
        return self.call(f"scale deployment {name} to {replicas}", self.apps.patch_namespaced_deployment_scale, name,
                         self.namespace, {"spec": {"replicas": replicas}})

    def delete_deployment(self, name: str) -> None:
        try:
            self.call(f"delete deployment {name}", self.apps.delete_namespaced_deployment, name, self.namespace,
                      body={"propagationPolicy": "Background"})
        except NotFound:
            pass  # already gone: what we wanted

    def get_service(self, name: str) -> Optional[Dict[str, Any]]:
        """The Service, or None; None only once the namespace is known to exist (or cannot be
        checked): "no Service" means "not deployed" to every command."""
        found = self.get(f"get service {name}", self.core.read_namespaced_service, name, self.namespace)
        if found is None:
            self.check_namespace()
        return found

    def create_service(self, body: Dict[str, Any]) -> Dict[str, Any]:
        name = body["metadata"]["name"]
        return self.call(f"create service {name}", self.core.create_namespaced_service, self.namespace, body)

    def json_patch_service(self, name: str, ops: List[Dict[str, Any]]) -> Dict[str, Any]:
        return self.call(f"patch service {name}", self.core.patch_namespaced_service, name, self.namespace, ops)

    def list_hpas(self) -> Dict[str, Any]:
        return self.call("list horizontalpodautoscalers", self.autoscaling.list_namespaced_horizontal_pod_autoscaler,
                         self.namespace)

    def json_patch_hpa(self, name: str, ops: List[Dict[str, Any]]) -> Dict[str, Any]:
        return self.call(f"patch horizontalpodautoscaler {name}",
                         self.autoscaling.patch_namespaced_horizontal_pod_autoscaler, name, self.namespace, ops)

    def service_proxy_get(self, service: str, port: str, path: str, *, quiet: bool = False) -> str:
        """GET ``path`` on a Service through the API server's service proxy (no cluster network needed).

        ``quiet``: one attempt, no retry and no log line (for repeated smoke traffic)."""
        return self.service_proxy_answer(service, port, path, quiet=quiet).body

    def server_version(self) -> Dict[str, Any]:
        """GET /version (apimachinery/pkg/version/types.go ``Info``: ``gitVersion``, ``major``, ``minor``...).

        Every authenticated user may read it (the ``system:public-info-viewer`` ClusterRole,
        plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go), so the deployer's Role needs nothing."""
        return self.call("get the server version", self.version.get_code)

    def service_proxy_answer(self, service: str, port: str, path: str, *, quiet: bool = False) -> "ProxyAnswer":
        """As :meth:`service_proxy_get`, with the answer's ``X-Enadu-Image`` header.

        The proxy passes the app's answer through, status and all, so a 4xx/5xx is told apart from the
        API server's own refusal by its body: the API server answers with a metav1.Status, an app
        with its own body (:func:`proxy_failure`)."""
        from kubernetes.client.exceptions import ApiException

        what = f"GET {path} on service {service} (API server proxy)"
        policy = retry.Policy(backoffs=(), deadline=REQUEST_TIMEOUT[1]) if quiet else \
            retry.Policy(backoffs=(0.5, 1, 2, 3), deadline=15)
        try:
            response = retry.run(
                lambda: self.core.connect_get_namespaced_service_proxy_with_path(
                    f"{service}:{port}", self.namespace, path.lstrip("/"), _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT),
                what=what, classify=classify_proxy, policy=policy, log=(lambda line: None) if quiet else self.log)
        except retry.GaveUp as e:
            if isinstance(e.last, ApiException):
                raise proxy_failure(e.last, what, path) from None
            raise ApiFailure(what, 0, e.reason, "") from None
        except ApiException as e:
            raise proxy_failure(e, what, path) from None
        headers = getattr(response, "headers", None) or {}
        return ProxyAnswer(response.status, response.data.decode("utf-8", "replace")[:200],
                           printable(headers.get(IMAGE_HEADER)))

    # -- leases ------------------------------------------------------------------------------

    def get_lease(self, name: str) -> Optional[Dict[str, Any]]:
        return self.get(f"get lease {name}", self.coordination.read_namespaced_lease, name, self.namespace)

    def create_lease(self, body: Dict[str, Any]) -> Dict[str, Any]:
        created = self.call(f"create lease {body['metadata']['name']}", self.coordination.create_namespaced_lease,
                            self.namespace, body)
        self.namespace_exists = True
        return created

    def replace_lease(self, body: Dict[str, Any]) -> Dict[str, Any]:
        name = body["metadata"]["name"]
        return self.call(f"update lease {name}", self.coordination.replace_namespaced_lease, name, self.namespace,
                         body)

    def delete_lease(self, name: str, resource_version: str) -> bool:
        """Delete the lease if it is still at ``resource_version``; False if it changed meanwhile."""
        try:
            self.call(f"delete lease {name}", self.coordination.delete_namespaced_lease, name, self.namespace,
                      body={"preconditions": {"resourceVersion": resource_version}})
        except NotFound:
            return True  # already gone
        except Conflict:
            return False
        return True
