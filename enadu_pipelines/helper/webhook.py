"""Post one JSON payload to a Discord webhook: bounded in time, retried as Discord asks, secret-safe.

The webhook URL is a credential: its last path segment is the token, and anyone holding it can post
to the channel. So the URL never leaves this module in clear. Every text that could carry it (an
exception from requests or urllib3 says "Max retries exceeded with url: /api/webhooks/<id>/<token>",
urllib3's debug log prints the request line) goes through :class:`Redactor` first, exceptions we
raise are built from redacted text only and never chained to the original (``from None``), and
urllib3's and requests' loggers get a redacting filter while we run.

Retries follow Discord's documentation and the shared policy in ``retry.py``:

* 429: wait ``retry_after`` from the JSON body, else the ``Retry-After`` header, else
  ``X-RateLimit-Reset-After`` (https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit);
* 5xx, connection errors and timeouts: back off;
* anything else (400 invalid body, 401 bad token, 404 unknown webhook) is final: retrying a 404
  is what Discord asks clients not to do (same page, "Invalid Request Limit").

The whole delivery, retries included, is bounded by ``deadline`` seconds (``ENADU_NOTIFY_TIMEOUT``),
not a moment more: each request goes through ``retry.request``, bounded in wall-clock time (a server
trickling its answer byte by byte is cut) to the time left and in size (``MAX_ANSWER``); no wait
starts that would end past the deadline; and a watchdog thread returns at the deadline itself even
if the sender hangs elsewhere.

``?wait=true`` makes Discord answer only once the message is saved, with the message as JSON, so a
rejected message is an error here, not a silent 204
(https://discord.com/developers/docs/resources/webhook#execute-webhook-query-string-params).
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .. import __version__
from . import loopback, retry

_WEBHOOK_PATH = re.compile(r"/webhooks/(?P<id>[0-9]{1,25})/(?P<token>[^/?#]+)")
_QUIET_LOGGERS = ("urllib3", "requests")
MAX_ANSWER = 1 << 20  # bytes: Discord answers ?wait=true with the message object, a few kilobytes
_MARGIN = 0.1  # seconds the sender keeps free before the deadline, so its own error wins the race


class WebhookError(Exception):
    """The message was not delivered. The text is one line, already redacted."""

    def __init__(self, message: str, *, attempts: int = 0, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status = status


class WebhookURLError(WebhookError):
    """DISCORD_WEBHOOK_URL is missing or not a Discord webhook URL (a usage error)."""


@dataclass(frozen=True)
class Delivery:
    status: int
    attempts: int
    message_id: Optional[str]


class Redactor:
    """Replaces every form of the webhook URL and its token in a text."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        match = _WEBHOOK_PATH.search(parts.path)
        secrets: List[str] = [url, urlunsplit(parts._replace(query="", fragment="")), parts.path]
        if parts.query:
            secrets.append(f"{parts.path}?{parts.query}")
        if match:
            token = match.group("token")
            secrets += [match.group(0), token, quote(token, safe=""), quote(token)]
        # longest first, so a whole URL becomes one marker rather than a URL with a hole in it
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: object) -> str:
        out = str(text)
        for secret in self._secrets:
            out = out.replace(secret, "<webhook>")
        return out


class _RedactingFilter(logging.Filter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg = self.redact(record.getMessage())
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is not shown at all
            record.msg = "(log record not shown)"
        record.args = ()
        return True


def prepare_url(url: Optional[str]) -> str:
    """The URL to post to (with ``wait=true``), after checking it is a Discord webhook URL.

    Messages never quote the URL: a malformed URL may still contain a real token.
    """
    if not url or not url.strip():
        raise WebhookURLError("DISCORD_WEBHOOK_URL is not set (bind the webhook credential with withCredentials)")
    try:
        parts = urlsplit(url.strip())
        hostname = parts.hostname  # parses the netloc: a malformed one raises here
        parts.port  # noqa: B018 - likewise for a port that is not a number
    except ValueError:
        raise WebhookURLError("DISCORD_WEBHOOK_URL is not a valid URL (value not shown: it holds a token)") from None
    if parts.scheme not in ("https", "http") or not hostname:
        raise WebhookURLError("DISCORD_WEBHOOK_URL is not an http(s) URL (value not shown: it holds a token)")
    if parts.scheme == "http" and not loopback.is_loopback(parts.hostname):
        raise WebhookURLError("DISCORD_WEBHOOK_URL must use https (plain http would send the token in clear)")
    if parts.username or parts.password:
        raise WebhookURLError("DISCORD_WEBHOOK_URL must not contain a user name or password")
    if not _WEBHOOK_PATH.search(parts.path):
        raise WebhookURLError("DISCORD_WEBHOOK_URL does not look like a webhook URL "
                              "(expected https://discord.com/api/webhooks/<id>/<token>; value not shown)")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
    query.append(("wait", "true"))
    return urlunsplit(parts._replace(query=urlencode(query), fragment=""))


class _Rejected(Exception):
    """An HTTP answer that is not a success; ``transient`` for 429 and 5xx."""

    def __init__(self, status: int, reason: str, retry_after: Optional[float] = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.status == 429 or self.status >= 500


class _OutOfTime(Exception):
    """The deadline passed before another request could be made."""


def _number(value: object) -> Optional[float]:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None


def retry_after(body: object, headers: Dict[str, str], now: Callable[[], float] = time.time) -> Optional[float]:
    """Seconds Discord asks us to wait after a 429: JSON ``retry_after``, else ``Retry-After``
    (seconds or an HTTP date, RFC 9110 section 10.2.3), else ``X-RateLimit-Reset-After``."""
    if isinstance(body, dict) and _number(body.get("retry_after")) is not None:
        return _number(body["retry_after"])
    header = headers.get("Retry-After")
    if header:
        seconds = _number(header)
        if seconds is not None:
            return seconds
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            return max(when.timestamp() - now(), 0.0)
    return _number(headers.get("X-RateLimit-Reset-After"))


def _discord_error(body: object) -> str:
    """'Invalid Form Body (code 50035): embeds.0.title: Must be 256 or fewer in length.' from
    Discord's error JSON (https://discord.com/developers/docs/reference#error-messages)."""
    if not isinstance(body, dict):
        return ""
    text = str(body.get("message") or "").strip()
    if body.get("code") not in (None, 0):
        text += f" (code {body.get('code')})"
    details: List[str] = []

    def walk(node: object, path: str) -> None:
        if not isinstance(node, dict) or len(details) >= 3:
            return
        for err in node.get("_errors", []) if isinstance(node.get("_errors"), list) else []:
            if isinstance(err, dict) and len(details) < 3:
                details.append(f"{path or 'body'}: {err.get('message', err.get('code', '?'))}")
        for key, child in node.items():
            if key != "_errors":
                walk(child, f"{path}.{key}" if path else str(key))

    walk(body.get("errors"), "")
    if details:
        text += ": " + "; ".join(details)
    return " ".join(text.split())[:300]


def _describe(exc: BaseException, redact: Redactor) -> str:
    """A short, redacted reason for a requests/urllib3 failure, from its innermost cause."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, (requests.exceptions.Timeout, retry.OutOfTime)):
        return "no answer in time"
    root: BaseException = exc
    for _ in range(10):  # requests wraps urllib3 wraps the socket error: find the innermost one
        nxt = getattr(root, "reason", None)  # urllib3's MaxRetryError.reason
        if not isinstance(nxt, BaseException):
            nxt = next((a for a in root.args if isinstance(a, BaseException)), None)
        if not isinstance(nxt, BaseException):
            nxt = root.__cause__ or root.__context__
        if not isinstance(nxt, BaseException) or nxt is root:
            break
        root = nxt
    text = re.sub(r"<[^<>]* object at 0x[0-9a-f]+>:?\s*", "", str(root))
    text = redact(" ".join(text.split()))[:160]
    return f"connection failed: {type(root).__name__}" + (f": {text}" if text else "")


def deliver(
    url: str,
    body: Dict[str, object],
    *,
    deadline: float,
    log: Callable[[str], None] = lambda line: None,
    policy: Optional[retry.Policy] = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Delivery:
    """Post ``body`` to the webhook ``url`` (as returned by :func:`prepare_url`) within ``deadline``
    seconds in total. Raises :class:`WebhookError` (redacted text) when it was not delivered."""
    redact = Redactor(url)
    policy = policy or retry.Policy(backoffs=(0.5, 1, 2, 4, 8, 15), deadline=deadline)
    outcome: Dict[str, object] = {}
    filters = _quiet_loggers(redact)
    lock = threading.Lock()
    state = {"done": False, "abandoned": False}

    def unquiet() -> None:
        for logger, flt in filters:
            logger.removeFilter(flt)

    def work() -> None:
        try:
            _work()
        finally:
            with lock:  # an abandoned sender still holds the URL: its logs stay redacted until it ends
                state["done"] = True
                if state["abandoned"]:
                    unquiet()

    def _work() -> None:
        try:
            outcome["ok"] = _deliver(url, body, redact=redact, deadline=deadline, log=log, policy=policy,
                                     sleep=sleep, clock=clock)
        except WebhookError as e:
            outcome["error"] = e
        except BaseException as e:  # noqa: BLE001 - reported, redacted, never re-raised with the URL
            outcome["error"] = WebhookError(f"not delivered: {type(e).__name__}: {redact(e)[:200]}")
        if "error" in outcome:
            error: BaseException = outcome["error"]  # type: ignore[assignment]
            error.__context__ = error.__cause__ = None
            error.__traceback__ = None

    worker = threading.Thread(target=work, name="enadu-notify", daemon=True)
    worker.start()
    worker.join(deadline)  # the whole bound, not a moment more (the sender keeps _MARGIN of it free)
    with lock:
        if not state["done"]:
            state["abandoned"] = True
            raise WebhookError(f"not delivered: no answer within the {deadline:g} s bound")
    unquiet()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["ok"]  # type: ignore[return-value]


def _quiet_loggers(redact: Redactor) -> list:
    """Attach a redacting filter to every urllib3/requests logger (a logger's filters do not apply to
    its children's records, so each one gets its own)."""
    import requests  # noqa: F401 - imported so its loggers exist

    attached = []
    names = [n for n in list(logging.Logger.manager.loggerDict)
             if n.split(".")[0] in _QUIET_LOGGERS] + list(_QUIET_LOGGERS)
    for name in sorted(set(names)):
        logger = logging.getLogger(name)
        flt = _RedactingFilter(redact)
        logger.addFilter(flt)
        attached.append((logger, flt))
    return attached


def _deliver(url: str, body: Dict[str, object], *, redact: Redactor, deadline: float,
             log: Callable[[str], None], policy: retry.Policy, sleep: Callable[[float], None],
             clock: Callable[[], float]) -> Delivery:
    import requests

    data = json.dumps(body).encode("ascii")  # \u escapes: encodable whatever the text holds
    headers = {"Content-Type": "application/json", "User-Agent": f"enadu-helper/{__version__}"}
    start = clock()
    attempts = [0]

    def attempt() -> Delivery:
        left = deadline - _MARGIN - (clock() - start)
        if left <= 0.05:
            raise _OutOfTime()
        attempts[0] += 1
        with retry.session() as session:
            response = retry.request(session, "POST", url, data=data, headers=headers, timeout=left,
                                     max_bytes=MAX_ANSWER)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if 200 <= response.status_code < 300:
            message_id = answer.get("id") if isinstance(answer, dict) else None
            return Delivery(response.status_code, attempts[0], str(message_id) if message_id else None)
        detail = redact(_discord_error(answer))
        status = response.status_code
        if status == 429:
            wait = retry_after(answer, response.headers)
            scope = response.headers.get("X-RateLimit-Scope") or ("global" if isinstance(answer, dict)
                                                                   and answer.get("global") else "")
            shown = f"HTTP 429 rate limited{' (' + scope + ')' if scope else ''}"
            raise _Rejected(status, shown + (f", retry after {wait:g} s" if wait is not None else ""), wait)
        if status in (401, 403, 404):
            raise _Rejected(status, f"the webhook refused the request: HTTP {status}"
                                    f"{' ' + detail if detail else ''}; check the webhook credential")
        if status == 400:
            raise _Rejected(status, f"Discord rejected the message: HTTP 400{' ' + detail if detail else ''}")
        raise _Rejected(status, f"HTTP {status}{' ' + detail if detail else ''}")

    def classify(exc: BaseException) -> Optional[retry.Transient]:
        if isinstance(exc, _Rejected):
            return retry.Transient(exc.reason, exc.retry_after) if exc.transient else None
        if isinstance(exc, (requests.exceptions.RequestException, retry.OutOfTime)):
            return retry.Transient(_describe(exc, redact))
        return None

    # Build the error inside ``except`` but raise it outside: an exception raised while another is
    # being handled keeps that one as __context__ (even "from None" only hides it), and the original
    # requests exception carries the URL.
    try:
        return retry.run(attempt, what="notify Discord", classify=classify, policy=policy, log=log,
                         sleep=sleep, clock=clock)
    except retry.GaveUp as e:
        error = WebhookError(f"not delivered after {e.attempts} attempt(s): {redact(e.reason)}",
                             attempts=e.attempts, status=getattr(e.last, "status", None))
    except _Rejected as e:
        error = WebhookError(f"not delivered: {redact(e.reason)}", attempts=attempts[0], status=e.status)
    except _OutOfTime:
        error = WebhookError(f"not delivered: the {deadline:g} s bound ran out after {attempts[0]} attempt(s)",
                             attempts=attempts[0])
    except retry.TooLarge as e:
        error = WebhookError(f"not delivered: {e}", attempts=attempts[0])
    except requests.exceptions.RequestException as e:
        error = WebhookError(f"not delivered: {_describe(e, redact)}", attempts=attempts[0])
    raise error
