"""API errors as the real server reports them: a `Status` object with reason, code and details.

Constructors and messages follow staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go
(`NewNotFound`, `NewAlreadyExists`, `NewConflict`, `NewInvalid`, `NewBadRequest`,
`NewMethodNotSupported`, `NewTooManyRequests`, `NewServiceUnavailable`, `NewInternalError`,
`NewResourceExpired`, `NewGenericServerResponse`, `NewUnauthorized`, `NewForbidden`), so clients that
switch on `reason` (client-go `errors.IsConflict`, the Python client's `ApiException.status`) see
what a cluster would send.
"""

from __future__ import annotations

import json
from typing import List, Optional


class ApiError(Exception):
    """An error answered as a metav1.Status body with this HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: Optional[dict] = None,
                 retry_after: Optional[int] = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            # metav1.StatusDetails and StatusCause: every field is `omitempty`
            details = {k: v for k, v in self.details.items() if v not in ("", None)}
            if "causes" in details:
                details["causes"] = [{k: v for k, v in c.items() if v not in ("", None)} for c in details["causes"]]
            body["details"] = details
        return body

    # -- constructors (one per apimachinery helper) --

    @classmethod
    def not_found(cls, res, name: str) -> "ApiError":
        return cls(404, "NotFound", f'{res.group_resource} "{name}" not found',
                   {"name": name, "group": res.group, "kind": res.plural})

    @classmethod
    def namespace_not_found(cls, name: str) -> "ApiError":
        return cls(404, "NotFound", f'namespaces "{name}" not found', {"name": name, "kind": "namespaces"})

    @classmethod
    def already_exists(cls, res, name: str) -> "ApiError":
        return cls(409, "AlreadyExists", f'{res.group_resource} "{name}" already exists',
                   {"name": name, "group": res.group, "kind": res.plural})

    @classmethod
    def conflict(cls, res, name: str, why: str = "the object has been modified; please apply your "
                 "changes to the latest version and try again") -> "ApiError":
        return cls(409, "Conflict", f'Operation cannot be fulfilled on {res.group_resource} "{name}": {why}',
                   {"name": name, "group": res.group, "kind": res.plural})

    @classmethod
    def invalid(cls, res, name: str, causes: List[dict]) -> "ApiError":
        # NewInvalid: `<Kind>.<group> "<name>" is invalid: <field>: <message>, ...`
        kind_group = f"{res.kind}.{res.group}" if res.group else res.kind
        text = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        if len(causes) > 1:
            text = "[" + text + "]"
        return cls(422, "Invalid", f'{kind_group} "{name}" is invalid: {text}',
                   {"name": name, "group": res.group, "kind": res.kind,
                    "causes": [{"reason": c.get("reason", "FieldValueInvalid"), "message": c["message"],
                                "field": c["field"]} for c in causes]})

    @classmethod
    def patch_invalid(cls, content_type: str, raw: bytes, patched: dict, error: str) -> "ApiError":
        # A patched object the Go types cannot hold (apiserver/pkg/endpoints/handlers/patch.go:
        # `applyPatchToObject` for strategic merge prints the patch map with %+v,
        # `applyPatchToCurrentObject` for JSON and merge patches the patched JSON), as
        # NewInvalid(schema.GroupKind{}, "", field.Invalid(field.NewPath("patch"), value, err)).
        from .validation import go_quote, go_value

        if "strategic-merge-patch" in content_type:
            try:
                value = go_value(json.loads(raw or b"null"))
            except ValueError:
                value = ""
        else:
            value = json.dumps(patched, separators=(",", ":"))
        cause = {"reason": "FieldValueInvalid", "message": f"Invalid value: {go_quote(value)}: {error}", "field": "patch"}
        return cls(422, "Invalid", f' "" is invalid: patch: {cause["message"]}',
                   {"name": "", "group": "", "kind": "", "causes": [cause]})

    @classmethod
    def admission_forbidden(cls, res, name: str, message: str) -> "ApiError":
        # apiserver/pkg/admission/errors.go NewForbidden -> apimachinery errors.NewForbidden:
        # `<resource> "<name>" is forbidden: <reason>`, details {name, group, kind: <resource>}.
        return cls(403, "Forbidden", f'{res.group_resource} "{name}" is forbidden: {message}',
                   {"name": name, "group": res.group, "kind": res.plural})

    @classmethod
    def bad_request(cls, message: str) -> "ApiError":
        return cls(400, "BadRequest", message)

    @classmethod
    def unprocessable(cls, server_message: str) -> "ApiError":
        # NewGenericServerResponse(422, ...), used for a JSON patch that does not apply (a failed
        # `test` op) in staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go `applyJSPatch`.
        return cls(422, "Invalid", "the server rejected our request due to an error in our request",
                   {"causes": [{"reason": "UnexpectedServerResponse", "message": server_message}]})

    @classmethod
    def method_not_supported(cls, res, action: str) -> "ApiError":
        return cls(405, "MethodNotAllowed", f"{action} is not supported on resources of kind "
                   f'"{res.group_resource}"', {"group": res.group, "kind": res.plural})

    @classmethod
    def unsupported_media_type(cls, content_type: str) -> "ApiError":
        return cls(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                   f"accepted media types include: application/json-patch+json, application/merge-patch+json, "
                   f"application/strategic-merge-patch+json (got {content_type!r})")

    @classmethod
    def unauthorized(cls) -> "ApiError":
        return cls(401, "Unauthorized", "Unauthorized")

    @classmethod
    def forbidden(cls, res, name: str, user: str, verb: str, namespace: str, subresource: str = "") -> "ApiError":
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        what = f'{res.group_resource} "{name}"' if name else res.group_resource
        resource = f"{res.plural}/{subresource}" if subresource else res.plural
        msg = (f'{what} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group '
               f'"{res.group}"{where}')
        return cls(403, "Forbidden", msg, {"name": name, "group": res.group, "kind": res.plural})

    @classmethod
    def too_many_requests(cls, retry_after: int) -> "ApiError":
        return cls(429, "TooManyRequests", "Too many requests, please try again later.",
                   {"retryAfterSeconds": retry_after}, retry_after=retry_after)

    @classmethod
    def service_unavailable(cls, message: str = "the server is currently unable to handle the request",
                            retry_after: Optional[int] = None) -> "ApiError":
        details = {"retryAfterSeconds": retry_after} if retry_after else None
        return cls(503, "ServiceUnavailable", message, details, retry_after=retry_after)

    @classmethod
    def internal(cls, message: str = "an error on the server (\"\") has prevented the request from "
                 "succeeding") -> "ApiError":
        return cls(500, "InternalError", message, {"causes": [{"message": message}]})

    @classmethod
    def expired(cls, message: str) -> "ApiError":
        # NewResourceExpired: 410 Gone with reason Expired, e.g. "too old resource version: 5 (120)".
        return cls(410, "Expired", message)

    @classmethod
    def gone(cls, message: str) -> "ApiError":
        return cls(410, "Gone", message)
