"""A fake Jenkins controller on 127.0.0.1: the REST surface that python-jenkins and bootstrap use.

Behaviour imitated, with where the real controller does it (jenkinsci/jenkins core unless noted):

* Authentication (``jenkins.security.BasicHeaderProcessor``): a ``Basic`` header is tried as an API
  token (``BasicHeaderApiTokenAuthenticator``), then as the password
  (``BasicHeaderRealPasswordAuthenticator``); neither matching answers 401 with
  ``WWW-Authenticate: Basic realm="Jenkins"`` (``SecurityRealm`` sets a Spring
  ``BasicAuthenticationEntryPoint`` for this). No header means anonymous, who may not even read
  here: 403 with ``X-You-Are-Authenticated-As: anonymous`` (``HudsonAuthenticationEntryPoint``,
  ``AccessDeniedException3.reportAsHeaders``). A user without a permission gets 403 naming it.
* CSRF (``hudson.security.csrf.CrumbFilter``): every POST needs a valid crumb in the
  ``Jenkins-Crumb`` header or form field, else 403 "No valid crumb was included in the request" —
  except requests authenticated by API token (``jenkins.security.ApiCrumbExclusion``,
  JENKINS-22474). Only POST is checked. ``/crumbIssuer/api/json`` issues the crumb:
  ``DefaultCrumbIssuer.issueCrumb`` hashes user name, client IP and the HTTP session id with a
  salt, so a crumb is only good with the session cookie it was issued under.
* Items and folders (``hudson.model.ItemGroupMixIn``, cloudbees-folder URLs ``/job/a/job/b/``):
  ``POST createItem?name=`` with an XML body creates an item from config.xml
  (``createProjectFromXML``: 200, no redirect); without XML it needs ``mode`` and redirects to the
  new item's ``configure`` page (``createTopLevelItem``). Bad or missing names and existing items
  are a ``Failure``: 400 with the message in ``X-Error`` (``AbstractModelObject/error.jelly``).
  XML that is not well-formed, or whose root class is unknown, makes ``Items.load`` throw: the
  servlet answers 500 (core's own ``ItemGroupMixInTest.doCreateItemWithValidXmlAndBadField``
  asserts 500) with the "Oops!" page, which shows no stack trace by default (``oops.jelly``).
* ``GET/POST config.xml`` (``AbstractItem.doConfigDotXml``): GET returns the re-serialised item (see
  :mod:`.xstream`), POST replaces it (``updateByXml``: a different root class is an IOException,
  500). ``POST doDelete`` deletes and redirects to the parent (``doDoDelete``); ``DELETE`` on the
  item answers 204 (``AbstractItem implements HttpDeletable``).
* ``api/json`` (``hudson.model.Api``, ``Exported`` beans) with ``tree=``: only the named
  properties, ``_class`` always included.
* Builds (``jenkins.model.ParameterizedJobMixIn.doBuildWithParameters`` →
  ``hudson.model.ParametersDefinitionProperty.buildWithParameters``, both ``@RequirePOST``): a job
  whose config.xml has no ``ParametersDefinitionProperty`` answers 500 ("This build is not
  parameterized!" is an IllegalStateException); otherwise each defined parameter takes the request's
  value or its default, the build is queued (``Queue.schedule2``; an item with equal parameters
  already waiting absorbs the new request, ``ParametersAction.shouldSchedule``) and the answer is
  201 with ``Location`` = the queue item. Needs the build permission (``Item.BUILD``). ``inQueue``
  and ``lastBuild`` (``Job``'s exported properties) reflect the queue and the builds a test (or the
  end-to-end world's controller) reports with :meth:`FakeJenkins.take_queued` / :meth:`FakeJenkins.add_build`.
* ``X-Jenkins`` (the version) on api/json answers and full pages only (see :class:`_Reply`);
  python-jenkins ``get_version`` reads it from the front page.

Test controls: a request log, injected failures (:meth:`FakeJenkins.fail_next`), editing a job
"in the UI" (:meth:`FakeJenkins.edit`), plugins that can be removed (:attr:`FakeJenkins.plugins`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .xstream import DEFAULT_PLUGINS, FOLDER_CLASSES, LoadError, Serializer, class_of

VERSION = "2.504.1"
CRUMB_FIELD = "Jenkins-Crumb"
UNSAFE_NAME_CHARS = "?*/\\%!@#$^&|<>[]:;"  # jenkins.model.Jenkins.checkGoodName


@dataclass
class User:
    password: str
    tokens: tuple[str, ...] = ()
    permissions: frozenset[str] = frozenset({"read", "create", "configure", "delete", "build"})


@dataclass
class Item:
    name: str
    cls: str
    config: ET.Element
    children: dict[str, Item] = field(default_factory=dict)
    queue: list[dict[str, str]] = field(default_factory=list)  # parameter values of waiting builds
    builds: dict[int, str | None] = field(default_factory=dict)  # number -> result (None: running)

    @property
    def is_folder(self) -> bool:
        return self.cls in FOLDER_CLASSES


@dataclass(frozen=True)
class Logged:
    method: str
    path: str  # with the query string
    write: bool  # a state-changing method (POST, PUT, DELETE)
    status: int


@dataclass
class _Fault:
    status: int
    method: str | None
    path_contains: str | None
    retry_after: str | None


class _Reply(Exception):
    """An answer. ``advertise``: it carries ``X-Jenkins``, as api/json answers (``Api.setHeaders``)
    and full pages do (``Functions.advertiseHeaders`` from ``layout.jelly`` and
    ``HudsonAuthenticationEntryPoint``); config.xml, redirects and bare servlet errors do not."""

    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                 content_type: str = "text/html;charset=utf-8", *, advertise: bool = False) -> None:
        self.status, self.body, self.headers, self.content_type = status, body, headers or {}, content_type
        self.advertise = advertise


class FakeJenkins:
    """Start with ``with FakeJenkins(users={...}) as fake:``; ``fake.url`` is the base URL."""

    def __init__(self, users: dict[str, User] | None = None, *, plugins: dict[str, str] | None = None,
                 anonymous_read: bool = False) -> None:
        self.users = users if users is not None else {"admin": User("admin-password", ("admin-token",))}
        self.plugins = dict(DEFAULT_PLUGINS if plugins is None else plugins)
        self.serializer = Serializer(self.plugins)
        self.anonymous_read = anonymous_read
        self.root = Item("", "hudson.model.Hudson", ET.Element("hudson"))
        self.log: list[Logged] = []
        self._faults: list[_Fault] = []
        self._salt = secrets.token_hex(16)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FakeJenkins:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    # -- test controls ---------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, status: int = 503, method: str | None = None,
                  path_contains: str | None = None, retry_after: str | None = None) -> None:
        """Answer the next ``count`` matching requests with ``status`` before doing anything."""
        with self._lock:
            self._faults.extend(_Fault(status, method, path_contains, retry_after) for _ in range(count))

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def writes(self) -> list[Logged]:
        return [entry for entry in self.log if entry.write]

    def item(self, full_name: str) -> Item | None:
        node = self.root
        for part in full_name.split("/"):
            node = node.children.get(part)  # type: ignore[assignment]
            if node is None:
                return None
        return node

    def config(self, full_name: str) -> bytes:
        """What ``GET config.xml`` returns for the item."""
        item = self.item(full_name)
        assert item is not None, full_name
        return self.serializer.write(item.config)

    def edit(self, full_name: str, change: Callable[[ET.Element], None]) -> None:
        """Change a job as someone in the Jenkins UI would (no request is logged)."""
        with self._lock:
            item = self.item(full_name)
            assert item is not None, full_name
            change(item.config)

    def put(self, full_name: str, config_xml: bytes) -> None:
        """Create an item directly, as if made by hand long ago."""
        with self._lock:
            parent_name, _, name = full_name.rpartition("/")
            parent = self.item(parent_name) if parent_name else self.root
            assert parent is not None and (parent is self.root or parent.is_folder)
            root = self.serializer.load(config_xml, full_name)
            parent.children[name] = Item(name, class_of(root, root=True) or "", root)

    # -- request handling (called by _Handler under the lock) ------------------------------

    def take_queued(self, full_name: str) -> list[dict[str, str]]:
        """Remove and return the parameter values of ``full_name``'s waiting builds (the executor took them)."""
        with self._lock:
            node = self.item(full_name)
            assert node is not None, full_name
            taken, node.queue = node.queue, []
            return taken

    def add_build(self, full_name: str, number: int, result: str | None = "SUCCESS") -> None:
        """Record build ``number`` of ``full_name`` with ``result`` (None while it runs)."""
        with self._lock:
            node = self.item(full_name)
            assert node is not None, full_name
            node.builds[number] = result

    def handle(self, req: _Handler, method: str) -> None:
        split = urlsplit(req.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        with self._lock:
            status = 500
            try:
                self._fault(method, req.path)
                user, by_token = self._authenticate(req)
                if method == "POST" and not by_token:
                    self._check_crumb(req, user)
                reply = self._route(req, method, split.path, query, user)
            except _Reply as r:
                reply = r
            status = reply.status
            self.log.append(Logged(method, req.path, method in ("POST", "PUT", "DELETE"), status))
        req.reply(reply)

    def _fault(self, method: str, path: str) -> None:
        for i, fault in enumerate(self._faults):
            if (fault.method in (None, method)) and (fault.path_contains is None or fault.path_contains in path):
                del self._faults[i]
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                raise _Reply(fault.status, b"<html><body>Service Unavailable</body></html>", headers)

    def _authenticate(self, req: _Handler) -> tuple[str, bool]:
        header = req.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            if not self.anonymous_read:
                raise _Reply(403, b"<html><body>Authentication required</body></html>", {
                    "X-You-Are-Authenticated-As": "anonymous",
                    "X-Required-Permission": "hudson.model.Hudson.Read",
                }, advertise=True)
            return "anonymous", False
        try:
            name, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            name, password = "", ""
        user = self.users.get(name)
        if user is not None and password in user.tokens:
            return name, True
        if user is not None and password == user.password:
            return name, False
        raise _Reply(401, b"<html><body>Unauthorized</body></html>", {"WWW-Authenticate": 'Basic realm="Jenkins"'})

    def _crumb(self, req: _Handler, user: str, session: str) -> str:
        return hashlib.sha256(f"{user};{req.client_address[0]};{session}".encode() + self._salt.encode()).hexdigest()

    def _check_crumb(self, req: _Handler, user: str) -> None:
        session = req.session()
        crumb = req.headers.get(CRUMB_FIELD) or req.form().get(CRUMB_FIELD)
        if not session or not crumb or crumb != self._crumb(req, user, session):
            raise _Reply(403, b"<html><body><h2>HTTP ERROR 403 No valid crumb was included in the request</h2>"
                              b"</body></html>")

    def _need(self, user: str, permission: str) -> None:
        if user == "anonymous" or permission not in self.users[user].permissions:
            raise _Reply(403, f"<html><body>{user} is missing the Job/{permission.title()} permission</body></html>"
                         .encode(), {"X-You-Are-Authenticated-As": user,
                                     "X-Required-Permission": f"hudson.model.Item.{permission.title()}"})

    def _route(self, req: _Handler, method: str, path: str, query: dict[str, str], user: str) -> _Reply:
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        node, trail = self.root, []
        while len(parts) >= 2 and parts[0] == "job":
            child = node.children.get(parts[1]) if (node is self.root or node.is_folder) else None
            if child is None:
                raise _Reply(404, b"<html><body>Not Found</body></html>")
            node, trail, parts = child, [*trail, parts[1]], parts[2:]
        rest = "/".join(parts)
        full = "/".join(trail)
        if node is self.root:
            if rest == "crumbIssuer/api/json" and method == "GET":
                session = req.session() or req.new_session()
                return _json({"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                              "crumb": self._crumb(req, user, session), "crumbRequestField": CRUMB_FIELD})
            if rest == "pluginManager/api/json" and method == "GET":
                return _json(_tree({"_class": "hudson.LocalPluginManager", "plugins": [
                    {"_class": "hudson.PluginWrapper", "shortName": name, "version": version, "active": True,
                     "enabled": True, "longName": name} for name, version in sorted(self.plugins.items())]},
                    query.get("tree")))
            if rest in ("me/api/json", "whoAmI/api/json") and method == "GET":
                return _json({"_class": "hudson.model.User", "id": user, "fullName": user,
                              "absoluteUrl": f"{self.url}user/{quote(user)}", "description": None, "property": []})
        if rest == "api/json" and method == "GET":
            depth = 1_000 if "tree" in query else int(query.get("depth") or 0)
            return _json(_tree(self._bean(node, full, depth), query.get("tree")))
        if rest == "config.xml" and node is not self.root:
            if method == "GET":
                return _Reply(200, self.serializer.write(node.config), content_type="application/xml")
            if method == "POST":
                self._need(user, "configure")
                return self._update(node, full, req.body())
        if rest == "createItem" and method == "POST" and (node is self.root or node.is_folder):
            self._need(user, "create")
            return self._create(req, node, full, query)
        if rest == "doDelete" and method == "POST" and node is not self.root:
            self._need(user, "delete")
            self._delete(trail)
            return _Reply(302, b"", {"Location": self.url + "".join(f"job/{quote(p)}/" for p in trail[:-1])})
        if rest == "" and method == "DELETE" and node is not self.root:
            self._need(user, "delete")
            self._delete(trail)
            return _Reply(204)
        if rest == "buildWithParameters" and method == "POST" and node is not self.root and not node.is_folder:
            self._need(user, "build")
            return self._build_with_parameters(node, query)
        if rest in ("", "configure") and method == "GET":
            return _Reply(200, f"<html><body>{full or 'Dashboard'} [Jenkins]</body></html>".encode(), advertise=True)
        raise _Reply(404, b"<html><body>Not Found</body></html>")

    def _create(self, req: _Handler, parent: Item, parent_name: str, query: dict[str, str]) -> _Reply:
        content_type = req.headers.get("Content-Type")
        mode = query.get("mode") or req.form().get("mode")
        if content_type is None and mode != "copy":
            raise _failure("No Content-Type header set")
        name = query.get("name") or req.form().get("name")
        if name is None:
            raise _failure("Query parameter 'name' is required")
        _check_good_name(name)
        name = name.strip()
        if name in parent.children:
            raise _failure(f"A job already exists with the name ‘{name}’")
        full = f"{parent_name}/{name}" if parent_name else name
        if content_type.startswith(("application/xml", "text/xml")):
            root = self._load(req.body(), full)
            parent.children[name] = Item(name, class_of(root, root=True) or "", root)
            return _Reply(200)
        if not mode:
            raise _failure("No mode given")
        if mode not in FOLDER_CLASSES or "cloudbees-folder" not in self.plugins:
            raise _failure(f"No item type ‘{mode}’ is known")
        parent.children[name] = Item(name, mode, ET.fromstring(f"<{mode}><actions/><properties/></{mode}>"))
        return _Reply(302, b"", {"Location": f"{self.url}{''.join(f'job/{quote(p)}/' for p in full.split('/'))}configure"})

    def _build_with_parameters(self, node: Item, query: dict[str, str]) -> _Reply:
        definitions = node.config.findall("properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions/*")
        if not definitions:
            raise _oops()  # IllegalStateException("This build is not parameterized!")
        values = {d.findtext("name", ""): query.get(d.findtext("name", ""), d.findtext("defaultValue", ""))
                  for d in definitions}
        if values not in node.queue:
            node.queue.append(values)
            self._queue_ids = getattr(self, "_queue_ids", 0) + 1
        return _Reply(201, b"", {"Location": f"{self.url}queue/item/{getattr(self, '_queue_ids', 1)}/"})

    def _update(self, node: Item, full: str, body: bytes) -> _Reply:
        root = self._load(body, full)
        if class_of(root, root=True) != node.cls:
            raise _oops()  # updateByXml: "Expecting class X but got class Y instead"
        node.config = root
        return _Reply(200)

    def _load(self, body: bytes, full: str) -> ET.Element:
        try:
            return self.serializer.load(body, full)
        except LoadError:
            raise _oops() from None

    def _delete(self, trail: list[str]) -> None:
        parent = self.root
        for part in trail[:-1]:
            parent = parent.children[part]
        del parent.children[trail[-1]]

    def _bean(self, node: Item, full: str, depth: int) -> dict[str, Any]:
        """The item's exported properties. Children are full beans down to ``depth`` levels and
        summaries below that, as ``depth=`` does; ``tree=`` asks for any depth (``hudson.model.Api``)."""
        url = self._url(full)
        if node is self.root:
            bean: dict[str, Any] = {"_class": "hudson.model.Hudson", "mode": "NORMAL", "nodeDescription":
                                    "the Jenkins controller's built-in node", "numExecutors": 2, "useCrumbs": True,
                                    "useSecurity": True, "url": url}
        else:
            bean = {"_class": node.cls, "name": node.name, "fullName": full, "displayName": node.name,
                    "fullDisplayName": full.replace("/", " » "), "description": node.config.findtext("description"),
                    "url": url}
            if not node.is_folder:
                last = max(node.builds) if node.builds else None
                completed = [n for n, r in node.builds.items() if r is not None]
                # Permalink.LAST_SUCCESSFUL_BUILD: a result no worse than UNSTABLE
                successful = [n for n, r in node.builds.items() if r in ("SUCCESS", "UNSTABLE")]

                def run(number: int | None) -> dict[str, Any] | None:
                    if number is None:
                        return None
                    return {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "number": number,
                            "url": f"{url}{number}/", "result": node.builds[number]}

                bean.update(buildable=True, color="blue" if last else "notbuilt", inQueue=bool(node.queue),
                            keepDependencies=False, nextBuildNumber=(last or 0) + 1, property=[],
                            lastBuild=run(last), lastCompletedBuild=run(max(completed) if completed else None),
                            lastSuccessfulBuild=run(max(successful) if successful else None))
        if node is self.root or node.is_folder:
            children = []
            for name, child in node.children.items():
                child_full = f"{full}/{name}" if full else name
                if depth > 0:
                    children.append(self._bean(child, child_full, depth - 1))
                else:
                    summary = {"_class": child.cls, "name": name, "url": self._url(child_full)}
                    if not child.is_folder:
                        summary["color"] = "notbuilt"
                    children.append(summary)
            bean["jobs"] = children
        return bean

    def _url(self, full: str) -> str:
        return self.url + "".join(f"job/{quote(p, safe='')}/" for p in full.split("/")) if full else self.url


def _failure(message: str) -> _Reply:
    # hudson.model.Failure → AbstractModelObject/error.jelly: status 400, message in X-Error.
    return _Reply(400, f"<html><body><h1>Error</h1><p>{message}</p></body></html>".encode(), {"X-Error": message},
                  advertise=True)


def _oops() -> _Reply:
    return _Reply(500, b"<html><body><h1>Oops!</h1><h2>A problem occurred while processing the request</h2>"
                       b"<p>Logging ID=" + secrets.token_hex(8).encode() + b"</p></body></html>", advertise=True)


def _check_good_name(name: str) -> None:
    if not name.strip():
        raise _failure("No name is specified")
    if name.strip() in (".", ".."):
        raise _failure(f"“{name.strip()}” is not an allowed name")
    for ch in name:
        if ch.isprintable() is False:
            raise _failure("No control code is allowed")
        if ch in UNSAFE_NAME_CHARS:
            raise _failure(f"‘{ch}’ is an unsafe character")
    if name.strip().endswith("."):
        raise _failure("A name cannot end with ‘.’")


def _json(data: Any) -> _Reply:
    return _Reply(200, json.dumps(data).encode(), content_type="application/json;charset=utf-8", advertise=True)


def parse_tree(spec: str) -> dict[str, Any]:
    """``jobs[name,jobs[name]],_class`` → ``{"jobs": {"name": {}, "jobs": {"name": {}}}, "_class": {}}``."""
    pos = 0

    def level() -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        name = ""
        while pos < len(spec):
            ch = spec[pos]
            pos += 1
            if ch == "[":
                out[name.strip()] = level()
                name = ""
            elif ch == "]":
                break
            elif ch == ",":
                if name.strip():
                    out.setdefault(name.strip(), {})
                name = ""
            elif ch == "{":  # a range such as {0,10}: skip it
                while pos < len(spec) and spec[pos] != "}":
                    pos += 1
                pos += 1
            else:
                name += ch
        if name.strip():
            out.setdefault(name.strip(), {})
        return out

    return level()


def _tree(data: Any, spec: str | None) -> Any:
    if spec is None:
        return data
    return _apply_tree(data, parse_tree(spec))


def _apply_tree(data: Any, spec: dict[str, Any]) -> Any:
    if isinstance(data, list):
        return [_apply_tree(d, spec) for d in data]
    if not isinstance(data, dict):
        return data
    out = {"_class": data["_class"]} if "_class" in data else {}
    for key, sub in spec.items():
        if key in data:
            out[key] = _apply_tree(data[key], sub) if sub else data[key]
    return out


class _Handler(BaseHTTPRequestHandler):
    fake: FakeJenkins
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; don't wait for delayed ACKs
    _body: bytes | None = None
    _form: dict[str, str] | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return None

    def body(self) -> bytes:
        if self._body is None:
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length) if length else b""
        return self._body

    def form(self) -> dict[str, str]:
        if self._form is None:
            ctype = self.headers.get("Content-Type", "")
            self._form = ({k: v[0] for k, v in parse_qs(self.body().decode("utf-8", "replace")).items()}
                          if ctype.startswith("application/x-www-form-urlencoded") else {})
        return self._form

    def session(self) -> str | None:
        for part in self.headers.get("Cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == "JSESSIONID.fake" and value:
                return value
        return None

    def new_session(self) -> str:
        self._new_session = secrets.token_hex(12)
        return self._new_session

    def reply(self, reply: _Reply) -> None:
        self.body()  # drain the request body so the connection can be reused
        self.send_response(reply.status)
        if reply.advertise:
            self.send_header("X-Hudson", "1.395")
            self.send_header("X-Jenkins", VERSION)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if getattr(self, "_new_session", None):
            self.send_header("Set-Cookie", f"JSESSIONID.fake={self._new_session}; Path=/; HttpOnly")
        for key, value in reply.headers.items():
            # Jetty writes header values as ISO-8859-1 and turns anything else into '?'.
            self.send_header(key, value.encode("latin-1", "replace").decode("latin-1"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        self._body = None
        self._form = None
        self._new_session = None

    def do_GET(self) -> None:  # noqa: N802
        self.fake.handle(self, "GET")

    def do_POST(self) -> None:  # noqa: N802
        self.fake.handle(self, "POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self.fake.handle(self, "DELETE")

    def do_HEAD(self) -> None:  # noqa: N802
        self.fake.handle(self, "HEAD")
