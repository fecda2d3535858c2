"""The few Jenkins REST calls bootstrap makes, through python-jenkins, each retried when transient.

python-jenkins provides the session, basic authentication, and the CSRF crumb (fetched once from
``/crumbIssuer/api/json`` and sent on every request). Two things it does not fit as is:

* its ``create_job`` checks existence before and after the POST and ``delete_job`` follows Jenkins'
  redirect and checks again — three requests where one does. We already know what exists from one
  folder listing, so writes here are single requests built on its public ``jenkins_request``.
* it folds 401, 403 and 500 answers into a message string. :class:`_Jenkins` raises
  :class:`HttpFailure` from its response handler first, keeping the status, headers and a bounded
  excerpt of the body, so callers can tell a bad token from a missing permission from a CSRF
  rejection from a controller error.

Every request goes through :func:`enadu_pipelines.helper.retry.request` (the one bounded HTTP call):
python-jenkins' ``timeout`` bounds each socket read only, so a controller trickling one byte a second
would hold bootstrap for ever; here ``timeout`` bounds the whole request, start to last byte, and an
answer larger than ``max_bytes`` is refused. The crumb issuer's answer is checked before its values
become a header (python-jenkins indexes whatever JSON it gets).

Retries go through :mod:`enadu_pipelines.helper.retry`: connection errors, timeouts, 429 and
502/503/504 are transient (``Retry-After`` honoured); Jenkins answers 500 for deterministic
failures such as an unloadable config.xml (``ItemGroupMixIn.createProjectFromXML``), so 500 is not.
The API token is only ever handed to python-jenkins; nothing here formats it into a message.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

import jenkins
import requests

from ..helper import retry

DEFAULT_TIMEOUT = 30.0
# A folder listing or a job's config.xml is kilobytes; a controller sending more is not answering us.
MAX_ANSWER = 16 << 20
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}")
_HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,1024}")
XML_HEADERS = {"Content-Type": "application/xml; charset=utf-8"}
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


class HttpFailure(Exception):
    """Jenkins answered with an error status we want to look at ourselves."""

    def __init__(self, method: str, path: str, response: requests.Response) -> None:
        self.method = method
        self.path = path
        self.status = response.status_code
        self.headers = response.headers
        body = response.content[:4096].decode("utf-8", "replace")
        self.body = body
        super().__init__(f"{method} {path}: HTTP {self.status}")

    @property
    def x_error(self) -> str:
        """Jenkins puts ``Failure`` messages in ``X-Error`` (hudson/model/AbstractModelObject/error.jelly)."""
        return self.headers.get("X-Error", "")


class BadCrumb(Exception):
    """The crumb issuer answered, but not with a crumb we can send back as a header."""


class _Jenkins(jenkins.Jenkins):
    def __init__(self, base: str, *args: Any, max_bytes: int = MAX_ANSWER, **kwargs: Any) -> None:
        super().__init__(base, *args, **kwargs)
        self._base_path = requests.utils.urlparse(self.server).path
        self.max_bytes = max_bytes
        bounded = retry.session()  # connections that retry.request can cut at its deadline
        for prefix in ("http://", "https://"):
            self._session.mount(prefix, bounded.get_adapter(prefix))

    def _request(self, req: requests.Request, stream: Any = None) -> requests.Response:
        """python-jenkins' one door to the network, bounded in time and size (see the module docstring)."""
        prepared = self._session.prepare_request(req)
        answer = retry.request(self._session, req.method, req.url, params=req.params or None, data=req.data or None,
                               headers=req.headers, auth=req.auth, timeout=float(self.timeout),
                               max_bytes=self.max_bytes, allow_redirects=True)
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = requests.structures.CaseInsensitiveDict(answer.headers)
        response._content = answer.content
        response.url = prepared.url or ""
        response.request = prepared
        response.reason = http.client.responses.get(answer.status_code, "")
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        return response

    version: str | None = None  # X-Jenkins of the last response that carried it

    def _response_handler(self, response: requests.Response) -> requests.Response:
        status = response.status_code
        self.version = response.headers.get("X-Jenkins", self.version)
        if status < 300 and "X-Jenkins" not in response.headers and response.request.url.split("?")[0].endswith(
                "/api/json"):
            # hudson.model.Api.setHeaders stamps every api/json answer with X-Jenkins.
            raise NotJenkins(Answer(status, response.content[:4096], response.headers))
        if status in (401, 403) or status >= 500 or status == 429:
            path = requests.utils.urlparse(response.request.url).path
            if path.startswith(self._base_path):
                path = "/" + path[len(self._base_path):]
            raise HttpFailure(response.request.method, path, response)
        return super()._response_handler(response)

    def maybe_add_crumb(self, req: requests.Request) -> None:
        """python-jenkins' ``maybe_add_crumb`` (fetch once; 404 or an empty answer: no CSRF protection),
        with the answer checked before its values become a header: JSON that is not
        ``{"crumbRequestField": <header name>, "crumb": <header value>}`` raises :class:`BadCrumb`."""
        if self.crumb is None:
            try:
                text = self.jenkins_open(requests.Request("GET", self._build_url(jenkins.CRUMB_URL)), add_crumb=False)
            except jenkins.NotFoundException:
                text = ""
            self.crumb = _parse_crumb(text) if text else False
        if self.crumb:
            req.headers[self.crumb["crumbRequestField"]] = self.crumb["crumb"]


def _parse_crumb(text: str) -> dict[str, str]:
    try:
        crumb = json.loads(text)
    except ValueError:
        raise BadCrumb("the crumb issuer (crumbIssuer/api/json) answered something that is not JSON") from None
    if not (isinstance(crumb, dict) and isinstance(crumb.get("crumbRequestField"), str)
            and isinstance(crumb.get("crumb"), str) and _HEADER_NAME.fullmatch(crumb["crumbRequestField"])
            and _HEADER_VALUE.fullmatch(crumb["crumb"])):
        raise BadCrumb("the crumb issuer (crumbIssuer/api/json) answered something that is not a crumb"
                       " (crumbRequestField and crumb must be header-safe strings)")
    return {"crumbRequestField": crumb["crumbRequestField"], "crumb": crumb["crumb"]}


@dataclass
class Answer:
    status: int
    content: bytes
    headers: Any


def item_path(full_name: str) -> str:
    """``a/b`` → ``job/a/job/b/`` (the folder plugin's URL scheme), each name percent-encoded."""
    if not full_name:
        return ""
    return "".join(f"job/{quote(part, safe='')}/" for part in full_name.split("/"))


def classify(exc: BaseException) -> retry.Transient | None:
    if isinstance(exc, HttpFailure) and exc.status in TRANSIENT_STATUSES:
        after = exc.headers.get("Retry-After")
        try:
            seconds = float(after) if after is not None else None
        except ValueError:
            seconds = None
        return retry.Transient(f"HTTP {exc.status}", seconds)
    if isinstance(exc, (jenkins.TimeoutException, requests.Timeout, retry.OutOfTime)):
        return retry.Transient("timed out")
    if isinstance(exc, requests.exceptions.SSLError):
        return None
    if isinstance(exc, requests.ConnectionError):
        return retry.Transient("connection failed")
    return None


class Client:
    """One controller, one folder tree; every method is one HTTP request (plus retries)."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None,
        token: str | None,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = MAX_ANSWER,
        policy: retry.Policy = retry.Policy(),
        log: Callable[[str], None] = lambda line: None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.server = _Jenkins(self.url, user, token, timeout=timeout, max_bytes=max_bytes)
        self.policy = policy
        self.log = log
        self.sleep = sleep

    def _call(self, what: str, method: str, path: str, *, data: bytes | None = None,
              headers: dict[str, str] | None = None) -> Answer:
        def once() -> Answer:
            req = requests.Request(method, urljoin(self.url, path), data=data, headers=dict(headers or {}))
            response = self.server.jenkins_request(req)
            return Answer(response.status_code, response.content, response.headers)

        kwargs: dict[str, Any] = {"what": what, "classify": classify, "policy": self.policy, "log": self.log}
        if self.sleep is not None:
            kwargs["sleep"] = self.sleep
        try:
            return retry.run(once, **kwargs)
        except ValueError as e:  # python-jenkins could not decode the crumb issuer's answer
            raise NotJenkins(Answer(0, b"", {})) from e

    @property
    def version(self) -> str | None:
        """The controller's version, from the X-Jenkins header of any answer so far."""
        return self.server.version

    def get_json(self, what: str, path: str) -> tuple[dict[str, Any], Answer]:
        answer = self._call(what, "GET", path)
        try:
            data = json.loads(answer.content)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise NotJenkins(answer)
        return data, answer

    def list_folder(self, full_name: str) -> dict[str, Any] | None:
        """``{"_class": ..., "jobs": [{"name", "_class", "description"}, ...]}``; None if absent."""
        # lastBuild and inQueue tell a job that has never run (bootstrap queues its registration build).
        path = item_path(full_name) + "api/json?tree=" + quote(
            "jobs[name,description,lastBuild[number],lastSuccessfulBuild[number],lastCompletedBuild[result],inQueue]",
            safe="[],")
        try:
            data, _ = self.get_json(f"list {full_name or 'the root'}", path)
        except jenkins.NotFoundException:
            return None
        return data

    def get_config(self, full_name: str) -> bytes:
        return self._call(f"read {full_name}", "GET", item_path(full_name) + "config.xml").content

    def create(self, full_name: str, config_xml: bytes) -> None:
        parent, _, short = full_name.rpartition("/")
        path = item_path(parent) + "createItem?name=" + quote(short, safe="")
        self._call(f"create {full_name}", "POST", path, data=config_xml, headers=XML_HEADERS)

    def update(self, full_name: str, config_xml: bytes) -> None:
        self._call(f"update {full_name}", "POST", item_path(full_name) + "config.xml",
                   data=config_xml, headers=XML_HEADERS)

    def queue_build(self, full_name: str, parameters: dict[str, str]) -> str | None:
        """Queue a build with ``parameters`` now; the queue item's URL (None if Jenkins did not say).

        POST buildWithParameters (ParameterizedJobMixIn.doBuildWithParameters →
        ParametersDefinitionProperty.buildWithParameters) answers 201 with the queue item in
        Location. A retried request cannot queue a second build while the first waits: Queue.schedule2
        folds an item whose ParametersAction is equal into the one already queued.
        """
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in [*parameters.items(), ("delay", "0sec")])
        answer = self._call(f"queue a build of {full_name}", "POST", item_path(full_name) + "buildWithParameters?" + query)
        location = answer.headers.get("Location") if answer.headers else None
        return location or None

    def delete(self, full_name: str) -> None:
        # HTTP DELETE on the item: AbstractItem implements HttpDeletable and answers 204, without the
        # redirect that POST doDelete sends.
        self._call(f"delete {full_name}", "DELETE", item_path(full_name))

    def plugins(self) -> dict[str, bool] | None:
        """Installed plugins → active; None if this user may not see the plugin manager."""
        try:
            data, _ = self.get_json("list plugins", "pluginManager/api/json?tree=" +
                                    quote("plugins[shortName,active]", safe="[],"))
        except (HttpFailure, jenkins.JenkinsException, retry.GaveUp, NotJenkins):
            return None
        return {p.get("shortName", ""): bool(p.get("active")) for p in data.get("plugins", []) if isinstance(p, dict)}


class NotJenkins(Exception):
    """The server answered, but not the way Jenkins does (no X-Jenkins header, or no JSON)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(f"HTTP {answer.status}")
        self.answer = answer
