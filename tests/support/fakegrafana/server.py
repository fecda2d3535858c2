"""A fake Grafana on 127.0.0.1 that answers ``POST /api/annotations`` the way Grafana does.

Behaviour imitated, with where Grafana documents or implements it:

* The endpoint and its answers: https://grafana.com/docs/grafana/latest/developers/http_api/annotations/
  ("Create Annotation": ``POST /api/annotations``, JSON body, ``time``/``timeEnd`` as epoch
  milliseconds, ``tags``, ``text``, optional ``dashboardUID``/``panelId``; answer 200
  ``{"message": "Annotation added", "id": 1}``). The swagger comment on
  ``HTTPServer.PostAnnotation`` (grafana/grafana ``pkg/api/annotations.go``) lists the statuses
  400, 401, 403, 500.
* The body is bound into ``dtos.PostAnnotationsCmd`` (``pkg/api/dtos/annotations.go``):
  ``dashboardId`` int64, ``dashboardUID`` string, ``panelId`` int64, ``time`` int64, ``timeEnd``
  int64, ``text`` string, ``tags`` []string, ``data`` object. Go's JSON decoder refuses a value of
  the wrong type (a string for ``time``, 1.5 for an int64, a number in ``tags``): ``PostAnnotation``
  answers 400 "bad request data". Unknown keys are ignored by Go; we accept them too but record them
  (:attr:`Annotation.unknown`) so tests can insist there are none.
* ``text`` empty: 400 ``{"message": "Failed to save annotation"}`` ("text field should not be
  empty" in ``PostAnnotation``). A ``dashboardUID`` that names no dashboard is ignored (the
  annotation becomes an organisation annotation), as ``PostAnnotation`` only overwrites
  ``dashboardId`` when the lookup succeeds; we record it as given.
* Authentication by service-account token: ``Authorization: Bearer <token>``
  (https://grafana.com/docs/grafana/latest/administration/service-accounts/). A missing or wrong
  token answers 401 with a JSON ``message`` (the exact wording is our guess).

Stricter than Grafana, on purpose: the ``Content-Type`` must be ``application/json`` (our client
always sends it) and ``timeEnd`` must not be before ``time``.

Test controls: :meth:`FakeGrafana.fail_next` (answer a status N times), :attr:`FakeGrafana.delay`
(answer slowly), :attr:`FakeGrafana.annotations` (what was stored) and :attr:`FakeGrafana.requests`
(every request's method, path and status).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INT64_KEYS = ("dashboardId", "panelId", "time", "timeEnd")
KNOWN_KEYS = {"dashboardId", "dashboardUID", "panelId", "time", "timeEnd", "text", "tags", "data"}


@dataclass(frozen=True)
class Annotation:
    id: int
    body: dict[str, Any]
    authorization: str
    unknown: tuple[str, ...] = ()


@dataclass
class FakeGrafana:
    token: str = "glsa_fake_service_account_token"
    delay: float = 0.0
    annotations: list[Annotation] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    _failures: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def start(self) -> FakeGrafana:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, answer = fake._handle(self.path, dict(self.headers), raw)
                self._reply(status, answer)

            def do_GET(self) -> None:  # noqa: N802
                self._reply(404, {"message": "Not found"}) if self.path != "/api/health" else \
                    self._reply(200, {"database": "ok", "version": "fake"})

            def _reply(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                with fake._lock:
                    fake.requests.append((self.command, self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-grafana", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGrafana:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- the endpoint ----------------------------------------------------------------------------

    def _handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        if self.delay:
            time.sleep(self.delay)
        if path.split("?")[0] != "/api/annotations":
            return 404, {"message": "Not found"}
        auth = headers.get("Authorization", "")
        if auth != f"Bearer {self.token}":
            return 401, {"message": "Unauthorized"}
        with self._lock:
            if self._failures:
                status = self._failures.pop(0)
                return status, {"message": "injected failure"}
        if headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return 400, {"message": "bad request data"}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"message": "bad request data"}
        problem = _shape_problem(body)
        if problem:
            return 400, {"message": "bad request data", "error": problem}
        if not body.get("text"):
            return 400, {"message": "Failed to save annotation"}
        with self._lock:
            annotation = Annotation(len(self.annotations) + 1, body, auth,
                                    tuple(sorted(set(body) - KNOWN_KEYS)))
            self.annotations.append(annotation)
        return 200, {"message": "Annotation added", "id": annotation.id}


def _shape_problem(body: Any) -> str | None:
    """Why Go's decoder would refuse ``body`` as a ``PostAnnotationsCmd``, or None."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    for key in INT64_KEYS:
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{key} must be an integer"
    if "dashboardUID" in body and not isinstance(body["dashboardUID"], str):
        return "dashboardUID must be a string"
    if "text" in body and not isinstance(body["text"], str):
        return "text must be a string"
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        return "tags must be a list of strings"
    if "data" in body and body["data"] is not None and not isinstance(body["data"], dict):
        return "data must be an object"
    if body.get("timeEnd") and body["timeEnd"] < body.get("time", 0):
        return "timeEnd is before time"
    return None
