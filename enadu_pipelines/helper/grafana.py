"""Grafana annotations: every deploy, rollback and abort becomes a marked region on the dashboards.

The generated dashboards (``render`` writes resources/enadu/grafana/<service>.json) show request
rate, errors and latency by colour; an annotation at the moment a colour went live (or was rolled
back) is what lets a reader connect a change in those graphs to a release. We post one through
Grafana's HTTP API (``POST /api/annotations``, https://grafana.com/docs/grafana/latest/developers/http_api/annotations/):
``time``/``timeEnd`` in epoch milliseconds, ``text``, ``tags`` = enadu, service, colour, image and
outcome (the dashboards query the tags ``enadu`` and the service), and optionally ``dashboardUID``;
without it the annotation is an organisation annotation that any dashboard can show by tags.

The token is a Grafana service-account token from ``GRAFANA_TOKEN`` (a Jenkins secret-text
credential bound by ``withCredentials``), sent as ``Authorization: Bearer``. It never appears in a
log line, an exception or the result: lines name only the HTTP status or the kind of failure, never
the URL (which could carry a secret of its own) or a library's exception text (which carries it).

An annotation is a convenience: ``annotate`` never raises, never fails the command that calls it,
and is bounded in time: ``Settings.timeout`` (10 s) of wall-clock time for everything, retries of
connection errors, 429 and 5xx included, however slowly Grafana answers (``retry.request`` cuts a
trickling answer), and ``MAX_ANSWER`` bytes of answer.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional

from . import loopback
from .analysis import URL_PATTERN
from .cli import env_default
from .errors import UsageProblem

TOKEN_ENV = "GRAFANA_TOKEN"
MAX_TEXT = 2000
MAX_TAG = 100  # Grafana stores a tag's key and value in columns of 100 characters
MAX_ANSWER = 64 << 10  # bytes: Grafana answers {"message": "Annotation added", "id": 1}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Grafana annotations")
    group.add_argument("--grafana-url", default=env_default("ENADU_GRAFANA_URL", ""),
                       help="post an annotation to this Grafana (token from GRAFANA_TOKEN) [ENADU_GRAFANA_URL]")
    group.add_argument("--grafana-dashboard-uid", default=env_default("ENADU_GRAFANA_DASHBOARD_UID", ""),
                       help="attach the annotation to this dashboard instead of the organisation [ENADU_GRAFANA_DASHBOARD_UID]")


@dataclass(frozen=True)
class Settings:
    url: str
    token: str
    dashboard_uid: str = ""
    timeout: float = 10.0

    def __repr__(self) -> str:  # keep the token out of any repr that ends up in a log or traceback
        return f"grafana.Settings(url=<set>, token=<{'set' if self.token else 'empty'}>, dashboard_uid={self.dashboard_uid!r})"


def settings(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> Optional[Settings]:
    """Grafana settings from the flags and ``GRAFANA_TOKEN``, or None without --grafana-url."""
    environ = os.environ if environ is None else environ
    url = (getattr(args, "grafana_url", "") or "").rstrip("/")
    if not url:
        return None
    if not URL_PATTERN.fullmatch(url):
        raise UsageProblem("--grafana-url: not an http(s) URL of the form https://host[:port][/path] "
                           "(put the token in GRAFANA_TOKEN, not in the URL)")
    cleartext = loopback.cleartext_problem(url, "the Grafana token")
    if cleartext:
        raise UsageProblem(f"--grafana-url: {cleartext}")
    uid = getattr(args, "grafana_dashboard_uid", "") or ""
    if uid and (len(uid) > 40 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in uid)):
        raise UsageProblem("--grafana-dashboard-uid: at most 40 letters, digits, '-' and '_'")
    return Settings(url=url, token=environ.get(TOKEN_ENV, ""), dashboard_uid=uid)


def now_ms() -> int:
    return int(time.time() * 1000)


def payload(*, service: str, colour: str, image: str, outcome: str, text: str, start_ms: int, end_ms: int,
            dashboard_uid: str = "") -> Dict[str, Any]:
    """The body of ``POST /api/annotations`` (Grafana's ``dtos.PostAnnotationsCmd``)."""
    tags = []
    for tag in ("enadu", service, colour, image, outcome):
        if tag and tag not in tags:
            tags.append(tag[:MAX_TAG])
    body: Dict[str, Any] = {"time": int(start_ms), "timeEnd": int(max(end_ms, start_ms)), "tags": tags,
                            "text": text[:MAX_TEXT]}
    if dashboard_uid:
        body["dashboardUID"] = dashboard_uid
    return body


def annotate(config: Optional[Settings], *, service: str, colour: str, image: str, outcome: str,
             build_url: str = "", message: str = "", start_ms: Optional[int] = None, end_ms: Optional[int] = None,
             log: Callable[[str], None] = lambda line: None, session: Any = None) -> bool:
    """Post one annotation; True if Grafana stored it. Never raises; a failure is one log line."""
    if config is None:
        return False
    from . import retry  # tenacity: imported only when an annotation is posted

    token = config.token
    try:
        if not token:
            log(f"grafana: annotation '{outcome}' not posted: {TOKEN_ENV} is empty")
            return False
        end = end_ms if end_ms is not None else now_ms()
        text = f"{service}: {outcome} {image or '(no image)'} on {colour or '(no colour)'}"
        if message:
            text += f" - {message}"
        if build_url:
            text += f" - build {build_url}"
        body = payload(service=service, colour=colour, image=image, outcome=outcome, text=text,
                       start_ms=start_ms if start_ms is not None else end, end_ms=end,
                       dashboard_uid=config.dashboard_uid)
        _post(config, body, log, session)
        log(f"grafana: annotation '{outcome}' posted")
        return True
    except _Refused as e:
        log(_scrub(f"grafana: annotation '{outcome}' not posted: {e}", token))
    except retry.GaveUp as e:
        log(_scrub(f"grafana: annotation '{outcome}' not posted: {e.reason} after {e.attempts} attempt(s)", token))
    except retry.TooLarge as e:
        log(f"grafana: annotation '{outcome}' not posted: {e}")
    except Exception as e:  # noqa: BLE001 - an annotation must never fail a deploy; the text may hold the URL
        log(f"grafana: annotation '{outcome}' not posted: {type(e).__name__}")
    return False


class _Refused(Exception):
    """Grafana answered with a status we do not retry (401, 403, 400, ...)."""


def _post(config: Settings, body: Dict[str, Any], log: Callable[[str], None], session: Any) -> None:
    import requests

    from . import retry

    own = session is None
    http = retry.session() if own else session
    headers = {"Authorization": f"Bearer {config.token}", "Content-Type": "application/json",
               "Accept": "application/json"}

    started = time.monotonic()

    def once() -> None:
        # each attempt gets at most half the budget, and never more than what is left of it
        left = max(0.05, min(config.timeout / 2, config.timeout - (time.monotonic() - started)))
        answer = retry.request(http, "POST", f"{config.url}/api/annotations", json=body, headers=headers,
                               timeout=left, max_bytes=MAX_ANSWER)
        if answer.status_code == 200:
            return
        if answer.status_code == 429 or answer.status_code >= 500:
            raise retry.TransientHTTP(answer.status_code)
        hint = {401: " (check the token in GRAFANA_TOKEN)", 403: " (the token may not create annotations)"}
        raise _Refused(f"HTTP {answer.status_code}{hint.get(answer.status_code, '')}")

    try:
        retry.run(once, what="grafana annotation", classify=retry.classify_requests,
                  policy=retry.Policy(backoffs=(0.5, 1, 2), deadline=config.timeout), log=log)
    except requests.RequestException as e:
        raise _Refused(type(e).__name__) from None
    finally:
        if own:
            http.close()


def _scrub(line: str, token: str) -> str:
    return line.replace(token, "***") if token else line
