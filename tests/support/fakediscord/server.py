"""A fake Discord webhook endpoint on 127.0.0.1: validates, rate-limits on request, records.

Imitates ``POST /api/webhooks/{id}/{token}`` (also ``/api/v{N}/...``), as documented in
discord/discord-api-docs developers/resources/webhook.mdx ("Execute Webhook"):

* ``?wait=true`` answers 200 with the created message object, otherwise 204 No Content; boolean
  query strings accept True/true/1 and False/false/0 (developers/reference.mdx, "Boolean Query Strings").
* A body Discord would refuse gets 400 with Discord's error JSON (see validate.py); a body that is
  not JSON gets 400 code 50109 "The request body contains invalid JSON."
  (developers/topics/opcodes-and-status-codes.mdx, JSON error codes).
* An unknown webhook id gets 404 ``{"message": "Unknown Webhook", "code": 10015}``, a wrong token
  401 ``{"message": "Invalid Webhook Token", "code": 50027}`` (same table; the 401 for a bad webhook
  token is what discord.js reports as ``DiscordAPIError[50027]``, discordjs/discord.js PR #10798).
* Every answer carries the rate-limit headers of developers/topics/rate-limits.md ("Header Format"):
  X-RateLimit-Limit, -Remaining, -Reset, -Reset-After, -Bucket.

Tests script the next answers with :meth:`FakeDiscord.script`:

* :class:`RateLimited` - 429 with the body ``{"message", "retry_after", "global"}`` and the
  ``Retry-After``/``X-RateLimit-Scope`` headers of rate-limits.md ("Exceeding A Rate Limit"); either
  the JSON field or the header can be left out to test each fallback.
* :class:`ServerError` - a 5xx (opcodes-and-status-codes.mdx: "502 GATEWAY UNAVAILABLE ... Wait a
  bit and retry", "5xx SERVER ERROR").
* :class:`Slow` - answer after a delay (then handle normally, or as the wrapped behaviour).
* :class:`Drop` - read the request, then close the connection without answering.
"""

from __future__ import annotations

import datetime
import itertools
import json
import re
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Deque, Dict, List, Optional, Union
from urllib.parse import parse_qsl, urlsplit

from . import validate

_ROUTE = re.compile(r"^/api(?:/v[0-9]+)?/webhooks/(?P<id>[0-9]+)/(?P<token>[^/]+)$")
_DISCORD_EPOCH_MS = 1420070400000  # developers/reference.mdx, "Snowflakes"


@dataclass(frozen=True)
class RateLimited:
    retry_after: float = 0.05
    in_body: bool = True  # send "retry_after" in the JSON body
    in_header: bool = True  # send the Retry-After header (whole seconds, rounded up, as Discord does)
    scope: str = "user"  # X-RateLimit-Scope: user | global | shared
    reset_after_header: bool = True  # X-RateLimit-Reset-After (decimal seconds)


@dataclass(frozen=True)
class ServerError:
    status: int = 502
    body: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class Slow:
    seconds: float
    then: Optional["Behaviour"] = None


@dataclass(frozen=True)
class Drop:
    pass


Behaviour = Union[RateLimited, ServerError, Slow, Drop]


@dataclass
class Request:
    """One request as the fake saw it, and what it answered (None: connection dropped)."""

    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    body: bytes
    status: Optional[int] = None
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class FakeDiscord:
    """Use as a context manager; ``url`` is a working webhook URL, ``messages`` what was posted."""

    def __init__(self, *, webhook_id: str = "1234567890123456789", token: Optional[str] = None,
                 unit: str = "utf16") -> None:
        self.webhook_id = webhook_id
        self.token = token or secrets.token_urlsafe(51)
        self.unit = unit
        self.messages: List[Dict[str, Any]] = []  # accepted: {"id", "payload", "pings", "message"}
        self.requests: List[Request] = []
        self._script: Deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "FakeDiscord":
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fakediscord", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> "FakeDiscord":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests use ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return self._server.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/api/webhooks/{self.webhook_id}/{self.token}"

    def script(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with these behaviours, in order; afterwards, normally."""
        with self._lock:
            self._script.extend(behaviours)

    def _next(self) -> Optional[Behaviour]:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _snowflake(self) -> str:
        ms = int(time.time() * 1000) - _DISCORD_EPOCH_MS
        return str((ms << 22) | next(self._ids))

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeDiscord
    _request: Optional[Request] = None
    protocol_version = "HTTP/1.1"
    server_version = "fakediscord"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass

    # every method Discord does not route for this path is a 405 (opcodes-and-status-codes.mdx)
    def do_GET(self) -> None:  # noqa: N802
        self._request = None  # not recorded; keep-alive may reuse this handler after a POST
        self._read_body()
        self._answer(405, {"message": "405: Method Not Allowed", "code": 0})

    do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

    def do_POST(self) -> None:  # noqa: N802
        fake = self.owner
        parts = urlsplit(self.path)
        body = self._read_body()
        request = Request("POST", parts.path, dict(parse_qsl(parts.query)), dict(self.headers.items()), body)
        with fake._lock:
            fake.requests.append(request)
        self._request = request  # _answer records the status before the client can see it
        behaviour = fake._next()
        while isinstance(behaviour, Slow):
            fake.sleep(behaviour.seconds)
            behaviour = behaviour.then
        if isinstance(behaviour, Drop):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if isinstance(behaviour, RateLimited):
            self._rate_limited(behaviour)
        elif isinstance(behaviour, ServerError):
            self._answer(behaviour.status, behaviour.body or {"message": "Internal Server Error", "code": 0})
        else:
            self._execute(parts.path, request.query, body)

    # -- Execute Webhook -------------------------------------------------------------------

    def _execute(self, path: str, query: Dict[str, str], raw: bytes) -> int:
        fake = self.owner
        route = _ROUTE.match(path)
        if not route:
            return self._answer(404, {"message": "404: Not Found", "code": 0})
        if route.group("id") != fake.webhook_id:
            return self._answer(404, {"message": "Unknown Webhook", "code": 10015})
        if route.group("token") != fake.token:
            return self._answer(401, {"message": "Invalid Webhook Token", "code": 50027})
        wait = query.get("wait", "false")
        if wait not in ("True", "true", "1", "False", "false", "0"):
            return self._answer(400, {"code": 50035, "message": "Invalid Form Body", "errors": {
                "wait": {"_errors": [{"code": "BASE_TYPE_BOOLEAN", "message": "Must be either true or false."}]}}})
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._answer(400, {"code": 50035, "message": "Invalid Form Body", "errors": {"_errors": [
                {"code": "CONTENT_TYPE_INVALID", "message": "Expected \"Content-Type\" header to be one of "
                 "{'application/json', 'multipart/form-data', 'application/x-www-form-urlencoded'}."}]}})
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._answer(400, {"code": 50109, "message": "The request body contains invalid JSON."})
        error = validate.check(payload, unit=fake.unit)
        if error is not None:
            return self._answer(400, error)
        message_id = fake._snowflake()
        pinged = validate.pings(payload)
        message = {
            "id": message_id, "type": 0, "channel_id": "1111111111111111111", "webhook_id": fake.webhook_id,
            "author": {"id": fake.webhook_id, "username": "Enadu CI", "avatar": None, "discriminator": "0000",
                       "bot": True},
            "content": payload.get("content", ""),
            "embeds": [dict(e, type="rich") for e in payload.get("embeds") or []],
            "mention_everyone": pinged["everyone"], "mention_roles": pinged["roles"], "mentions": [],
            "attachments": [], "components": [], "pinned": False, "tts": False, "flags": 0,
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "edited_timestamp": None,
        }
        with fake._lock:
            fake.messages.append({"id": message_id, "payload": payload, "pings": pinged, "message": message})
        if wait in ("True", "true", "1"):
            return self._answer(200, message)
        return self._answer(204, None)

    # -- plumbing ----------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        size = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(size) if size > 0 else b""

    def _rate_headers(self, remaining: int, reset_after: float) -> Dict[str, str]:
        return {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": "fakediscord-webhook",
        }

    def _rate_limited(self, how: RateLimited) -> None:
        headers = self._rate_headers(0, how.retry_after)
        if not how.reset_after_header:
            del headers["X-RateLimit-Reset-After"]
        headers["X-RateLimit-Scope"] = how.scope
        if how.scope == "global":
            headers["X-RateLimit-Global"] = "true"
        if how.in_header:
            whole = int(how.retry_after) if how.retry_after == int(how.retry_after) else int(how.retry_after) + 1
            headers["Retry-After"] = str(whole)
        body: Dict[str, Any] = {"message": "You are being rate limited.", "global": how.scope == "global"}
        if how.in_body:
            body["retry_after"] = how.retry_after
        self._answer(429, body, headers)

    def _answer(self, status: int, body: Optional[Dict[str, Any]], headers: Optional[Dict[str, str]] = None) -> int:
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        if self._request is not None:
            self._request.status = status
        try:
            self.send_response(status)
            for name, value in (headers or self._rate_headers(4, 2.0)).items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (its timeout) while we were slow
            self.close_connection = True
        return status
