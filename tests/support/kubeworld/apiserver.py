"""The emulated kube-apiserver: real HTTP/1.1 on 127.0.0.1, bearer tokens, the REST tree, watches.

Request routing mirrors the API server's path layout (https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris)
and its RequestInfo parsing (staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go).
Answers are JSON; a client that prefers protobuf (client-go's default Accept lists both) gets JSON,
as content negotiation allows. `Accept: application/json;as=Table;g=meta.k8s.io;v=v1` (kubectl get)
gets a meta.k8s.io/v1 Table (tables.py). Authentication is bearer-token only
(https://kubernetes.io/docs/reference/access-authn-authz/authentication/#static-token-file): no or a
wrong token is 401 Unauthorized; a read-only token is 403 Forbidden on writes; a token that asks
for RBAC is authorized by the Roles bound to it (rbac.py), 403 Forbidden as the real server says it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Optional
from urllib.parse import parse_qs

from aiohttp import web

from . import resources as R
from . import rbac, schema, tables, tls
from .errors import ApiError
from .requestlog import RequestInfo
from .watch import serve_watch

JSON = "application/json"


class Route:
    """What a path names: a discovery document, or a resource (collection, object, subresource)."""

    def __init__(self) -> None:
        self.kind = ""  # "discovery", "resource", "other"
        self.doc: Optional[dict] = None
        self.res: Optional[R.Resource] = None
        self.namespace = ""
        self.name = ""
        self.subresource = ""
        self.rest = ""  # proxy path after /proxy
        self.group = ""
        self.version = ""


def _route(path: str, server_address: str) -> Route:
    rt = Route()
    parts = [p for p in path.split("/") if p != ""]
    if path == "/api" or path == "/api/":
        rt.kind, rt.doc = "discovery", R.api_versions(server_address)
        return rt
    if path in ("/apis", "/apis/"):
        rt.kind, rt.doc = "discovery", R.api_group_list()
        return rt
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 2:
        if len(parts) == 2:
            rt.kind = "discovery"
            rt.doc = R.api_group(parts[1]) if parts[1] in R.groups() else None
            return rt
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        rt.kind = "other"
        return rt
    rt.group, rt.version = group, version
    if not rest:
        rt.kind, rt.doc = "discovery", R.api_resource_list(group, version)
        return rt
    rt.kind = "resource"
    if rest[0] == "namespaces" and len(rest) >= 3 and R.find(group, version, rest[2]) is not None:
        rt.namespace, rest = rest[1], rest[2:]
    rt.res = R.find(group, version, rest[0])
    if rt.res is None:
        rt.kind = "missing"
        return rt
    if len(rest) >= 2:
        rt.name = rest[1]
    if len(rest) >= 3:
        rt.subresource = rest[2]
        rt.rest = "/" + "/".join(rest[3:]) if len(rest) > 3 else ""
        if path.endswith("/") and rt.subresource == "proxy":
            rt.rest += "/"
    return rt


def _verb(method: str, rt: Route, query: dict) -> str:
    if rt.kind != "resource":
        return method.lower()
    collection = not rt.name
    if method == "GET":
        if _flag(query.get("watch")):
            return "watch"
        return "list" if collection else "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "deletecollection" if collection else "delete"}.get(method, method.lower())


def _flag(value: Optional[str]) -> bool:
    return value in ("true", "1", "True")


class ApiServer:
    def __init__(self, world) -> None:
        self.world = world
        self._server: Optional[web.Server] = None
        self._listener = None
        self.port = 0
        self.watch_tasks: set = set()
        self.closing = False

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = web.Server(self._handle, handler_cancellation=True)
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._server, "127.0.0.1", 0, ssl=tls.server_context())
        self.port = self._listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.closing = True
        for w in list(self.world.store.watchers.values()):
            for watcher in list(w):
                watcher.queue.put_nowait(None)
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            await self._server.shutdown(0.05)
        for task in list(self.watch_tasks):
            task.cancel()

    # -- the handler --

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        world = self.world
        query = {k: v[-1] for k, v in parse_qs(request.query_string, keep_blank_values=True).items()}
        rt = _route(request.path, f"127.0.0.1:{self.port}")
        body = await request.read() if request.can_read_body else b""
        info = RequestInfo(
            seq=world.requests.next_seq(), time=time.monotonic() - world.started_at, method=request.method,
            path=request.path, query=request.query_string, verb=_verb(request.method, rt, query),
            resource=rt.res.plural if rt.res else "", subresource=rt.subresource, namespace=rt.namespace,
            name=rt.name, api_group=rt.group, user_agent=request.headers.get("User-Agent", ""),
            content_type=request.headers.get("Content-Type", ""), body=body)
        world.requests.add(info)
        try:
            user = self._authenticate(request)
            info.user = user["name"]
            cuts = []
            for rule in world.faults.pick(info, "before"):
                if rule.cut_watch_after is not None or rule.cut_watch_seconds is not None:
                    cuts.append(rule)
                    info.faults.append("before:cut-watch")
                    continue
                info.faults.append(f"before:{rule.status or ('drop' if rule.drop else 'latency')}")
                if rule.latency:
                    await asyncio.sleep(rule.latency)
                if rule.drop:
                    return self._drop(request, info)
                if rule.status:
                    raise rule.error()
            self._authorize(user, rt, info, query)
            if info.verb == "watch":
                info.status = info.answered = 200
                return await serve_watch(self, request, rt.res, rt.namespace or None, query, info, cuts)
            if rt.res is not None and rt.res.kind == "SelfSubjectAccessReview" and info.verb == "create":
                if request.headers.get("Content-Type", "").startswith("application/vnd.kubernetes.protobuf"):
                    try:
                        review = rbac.review_from_protobuf(body)
                    except (ValueError, IndexError):
                        raise ApiError.bad_request("the body of the request was in an unknown format") from None
                else:
                    review = self._decode(body)
                response = self._json(self._access_review(user, review), 201)
            else:
                response = await self._dispatch(request, rt, query, body, info)
            info.status = response.status
        except ApiError as e:
            info.status = e.code
            response = self._error(e)
        if info.write and 200 <= info.status < 300:
            world.requests.fire_write_hooks(info)
        for rule in world.faults.pick(info, "after"):
            info.faults.append(f"after:{rule.status or 'drop'}")
            if rule.drop:
                return self._drop(request, info)
            response = self._error(rule.error())
        info.answered = response.status
        return response

    def _drop(self, request: web.BaseRequest, info: RequestInfo) -> web.Response:
        info.answered = -1
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    def _authenticate(self, request: web.BaseRequest) -> dict:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            user = self.world.tokens.get(header[len("Bearer "):].strip())
            if user:
                return user
        raise ApiError.unauthorized()

    def _authorize(self, user: dict, rt: Route, info: RequestInfo, query: dict) -> None:
        if user.get("rbac"):
            self._authorize_rbac(user, rt, info, query)
            return
        if user.get("write", True) or rt.kind != "resource" or not info.write:
            return
        raise ApiError.forbidden(rt.res, rt.name, user["name"], info.verb, rt.namespace)

    def _authorize_rbac(self, user: dict, rt: Route, info: RequestInfo, query: dict) -> None:
        """A token bound to Roles: every request is checked as the RBAC authorizer does (rbac.py)."""
        if rt.kind in ("resource", "missing") and rt.group + rt.version:
            plural = rt.res.plural if rt.res else ""
            attrs = rbac.attributes(user, verb=info.verb, namespace=rt.namespace, api_group=rt.group,
                                    resource=plural, subresource=rt.subresource, name=rt.name,
                                    field_selector=query.get("fieldSelector"))
        else:
            attrs = rbac.attributes(user, verb=info.verb, namespace="", api_group="", resource="", subresource="",
                                    name="", field_selector=None, resource_request=False, path=info.path)
        if rbac.allowed(self.world.store, attrs):
            return
        if not attrs.resource_request or rt.res is None:
            raise ApiError(403, "Forbidden", f'forbidden: User "{attrs.user}" cannot {attrs.verb} path "{attrs.path}"')
        # staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go, `forbiddenMessage`
        raise ApiError.forbidden(rt.res, attrs.name, attrs.user, attrs.verb, rt.namespace, rt.subresource)

    def _access_review(self, user: dict, review: dict) -> dict:
        """A SelfSubjectAccessReview answered for the asking user, as `kubectl auth can-i` uses it
        (pkg/registry/authorization/selfsubjectaccessreview/rest.go: the spec's attributes, asked of
        the authorizer as that user; nothing is stored)."""
        spec = review.get("spec") or {}
        res, non_res = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if not res and not non_res:
            raise ApiError(422, "Invalid", "SelfSubjectAccessReview.authorization.k8s.io is invalid: "
                           "spec.resourceAttributes: Invalid value: \"null\": exactly one of "
                           "nonResourceAttributes or resourceAttributes must be specified")
        if user.get("rbac"):
            if res:
                attrs = rbac.attributes(user, verb=res.get("verb", ""), namespace=res.get("namespace", ""),
                                        api_group=res.get("group", ""), resource=res.get("resource", ""),
                                        subresource=res.get("subresource", ""), name=res.get("name", ""),
                                        field_selector=None)
            else:
                attrs = rbac.attributes(user, verb=non_res.get("verb", ""), namespace="", api_group="", resource="",
                                        subresource="", name="", field_selector=None, resource_request=False,
                                        path=non_res.get("path", ""))
            allowed = rbac.allowed(self.world.store, attrs)
        else:
            verb = (res or non_res).get("verb", "")
            allowed = user.get("write", True) or verb in ("get", "list", "watch")
        out = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "metadata": {"creationTimestamp": None}, "spec": spec, "status": {"allowed": allowed}}
        if allowed and user.get("rbac"):
            out["status"]["reason"] = "RBAC: allowed by a RoleBinding"
        return out

    @staticmethod
    def _json(obj, status: int = 200, headers: Optional[dict] = None) -> web.Response:
        return web.Response(status=status, text=json.dumps(obj), content_type=JSON, headers=headers)

    def _error(self, e: ApiError) -> web.Response:
        headers = {"Retry-After": str(e.retry_after)} if e.retry_after else None
        return self._json(e.status(), e.code, headers)

    # -- dispatch --

    async def _dispatch(self, request, rt: Route, query: dict, body: bytes, info: RequestInfo) -> web.StreamResponse:
        path = request.path
        if rt.kind == "discovery":
            if rt.doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(rt.doc)
        if rt.kind == "other":
            return self._other(path)
        if rt.kind == "missing":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = rt.res
        reg = self.world.registry
        if rt.subresource == "proxy":
            return await self.world.dataplane.api_proxy(request, res, rt.namespace, rt.name, rt.rest, body)
        if res.namespaced and not rt.namespace and info.verb not in ("list", "watch") and not (
                res.kind == "Namespace"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        dry_run = query.get("dryRun") == "All"
        verb = info.verb
        if rt.subresource and rt.subresource not in res.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if verb == "get":
            if rt.subresource == "scale":
                return self._json(reg.get_scale(res, rt.namespace, rt.name))
            return self._maybe_table(request, res, reg.get(res, rt.namespace, rt.name), single=True)
        if verb == "list":
            lst = reg.list(res, rt.namespace or None, query.get("labelSelector", ""), query.get("fieldSelector", ""),
                           int(query.get("limit") or 0), query.get("continue", ""))
            return self._maybe_table(request, res, lst, single=False)
        if verb in ("create", "update"):
            obj = self._decode(body)
            self._field_validation(query, res, obj)
            if verb == "create":
                if rt.name:
                    raise ApiError.method_not_supported(res, "create")
                return self._json(reg.create(res, rt.namespace, obj, dry_run), 201)
            if rt.subresource == "scale":
                return self._json(reg.update_scale(res, rt.namespace, rt.name, obj, dry_run))
            return self._json(reg.update(res, rt.namespace, rt.name, obj, rt.subresource, dry_run))
        if verb == "patch":
            ctype = request.headers.get("Content-Type", "")
            if rt.subresource == "scale":
                return self._json(reg.patch_scale(res, rt.namespace, rt.name, ctype, body, dry_run))
            out = reg.patch(res, rt.namespace, rt.name, ctype, body, rt.subresource, dry_run)
            self._field_validation(query, res, out)
            return self._json(out)
        if verb == "delete":
            options = self._delete_options(body, query)
            out, _ = reg.delete(res, rt.namespace, rt.name, options, dry_run)
            return self._json(out)
        if verb == "deletecollection":
            options = self._delete_options(body, query)
            return self._json(reg.delete_collection(res, rt.namespace or None, query.get("labelSelector", ""),
                                                    query.get("fieldSelector", ""), options, dry_run))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @staticmethod
    def _decode(body: bytes) -> dict:
        try:
            obj = json.loads(body or b"null")
        except ValueError as e:
            raise ApiError.bad_request(f"the body of the request was in an unknown format: {e}") from None
        if not isinstance(obj, dict):
            raise ApiError.bad_request("the body of the request was in an unknown format")
        return obj

    @staticmethod
    def _field_validation(query: dict, res: R.Resource, obj: dict) -> None:
        # staging/src/k8s.io/apiserver/pkg/endpoints/handlers/create.go: fieldValidation=Strict fails
        # with 400 "strict decoding error: unknown field ..."; Warn (the server default) only warns.
        if query.get("fieldValidation") != "Strict":
            return
        unknown = [f for f in schema.unknown_fields(obj, res.schema_ref) if not f.startswith("status.")]
        if unknown:
            raise ApiError.bad_request("strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown))

    @staticmethod
    def _delete_options(body: bytes, query: dict) -> dict:
        options: dict = {}
        if body:
            try:
                options = json.loads(body) or {}
            except ValueError:
                raise ApiError.bad_request("the body of the request was in an unknown format") from None
        if "propagationPolicy" in query:
            options["propagationPolicy"] = query["propagationPolicy"]
        if "gracePeriodSeconds" in query:
            options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
        if "orphanDependents" in query:
            options["orphanDependents"] = _flag(query["orphanDependents"])
        return options

    def _maybe_table(self, request, res: R.Resource, obj: dict, single: bool) -> web.Response:
        accept = request.headers.get("Accept", "")
        if "as=Table" in accept:
            include = request.rel_url.query.get("includeObject", "Metadata")
            items = [obj] if single else obj["items"]
            return self._json(tables.to_table(res, items, include, obj.get("metadata", {}) if not single else {},
                                              self.world.registry.clock()))
        return self._json(obj)

    def _other(self, path: str) -> web.Response:
        if path == "/version" or path == "/version/":
            return self._json(self.world.version_info)
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/openapi/v3":
            paths = {}
            for g, versions in [("", ["v1"])] + list(R.groups().items()):
                for v in versions:
                    key = f"apis/{g}/{v}" if g else f"api/{v}"
                    digest = hashlib.sha256(f"{R.SERVER_VERSION['gitVersion']}/{key}".encode()).hexdigest().upper()
                    paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
            return self._json({"paths": paths})
        if path.startswith("/openapi/v3/"):
            key = path[len("/openapi/v3/"):]
            parts = key.split("/")
            if parts[0] == "api" and len(parts) == 2:
                group, version = "", parts[1]
            elif parts[0] == "apis" and len(parts) == 3:
                group, version = parts[1], parts[2]
            else:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            items = [r for r in R.RESOURCES if r.group == group and r.version == version]
            if not items:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(self.world.openapi_doc(group, version, items))
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
