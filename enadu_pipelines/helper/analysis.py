"""Metric analysis of a colour: ask Prometheus whether the new pods serve well before we trust them.

A blue/green switch proves only that the new pods pass their readiness probe. Whether they answer
real traffic well shows in their metrics, so ``deploy --analysis`` queries Prometheus' HTTP API
(``/api/v1/query``) every ``--analysis-interval`` for ``--analysis-window`` while the old colour is
still kept, and the deploy switches back when a check fails. Two checks by default:

- success rate: non-5xx requests / all requests of the colour over the window, at least 0.99;
- latency: the 95th percentile of the request-duration histogram over the window, at most 0.5 s.

What the default queries assume (the README's "Monitoring" section has the relabel config that yields
it): each pod exports ``http_requests_total{code="<status>"}`` and the histogram
``http_request_duration_seconds_bucket{le=...}``, and Prometheus attaches the pod's labels ``app``
and ``color`` and its ``namespace`` to every series it scrapes. Queries are templates with the
placeholders ``{service}``, ``{namespace}``, ``{colour}`` and ``{window}`` (PromQL's own braces are
left alone), so another metric scheme (Spring Boot's Micrometer names, say) is one flag away.

A verdict is ``passed``, ``failed`` or ``inconclusive``. Any failing check ends the analysis at once
(fail fast: the budget of failed requests is what one interval lets through). A query Prometheus
rejects is a failure too, so a typo never passes a release. An empty result or NaN (no traffic yet)
and an unreachable Prometheus are inconclusive; at the end of the window each check is judged by its
latest conclusive value, and a check that never had one makes the verdict inconclusive, which
``--inconclusive`` turns into a pass or (the default, fail safe) a failure.

Nothing here can hang: every HTTP request is bounded in wall-clock time (not only per read: a
Prometheus trickling its answer a byte at a time is cut at the bound) and in size (``MAX_ANSWER``)
by ``retry.request``, retries (helper/retry.py) stop within the interval, and the loop never runs
past the caller's deadline. ``requests`` and the retry helper
(tenacity) are imported inside the functions that talk HTTP, so importing this module (as
``deploy``'s argument parser does on every helper start) stays cheap.
"""

from __future__ import annotations

import argparse
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .cli import env_default, flag
from .errors import UsageProblem
from .report import parse_duration

# Metric names the default queries and the generated dashboards use.
REQUESTS_METRIC = "http_requests_total"
DURATION_HISTOGRAM = "http_request_duration_seconds"
# The labels Prometheus attaches from the pod (README, "Scraping: the Prometheus configuration").
SELECTOR = 'namespace="{namespace}",app="{service}",color="{colour}"'

# ``or vector(0)``: when every request failed there is no non-5xx series at all, and an empty
# numerator would make the ratio empty (inconclusive) instead of 0 (failed).
DEFAULT_SUCCESS_RATE_QUERY = (
    f'(sum(rate({REQUESTS_METRIC}{{{SELECTOR},code!~"5.."}}[{{window}}])) or vector(0))'
    f" / sum(rate({REQUESTS_METRIC}{{{SELECTOR}}}[{{window}}]))"
)
DEFAULT_LATENCY_QUERY = (
    f"histogram_quantile(0.95, sum by (le) (rate({DURATION_HISTOGRAM}_bucket{{{SELECTOR}}}[{{window}}])))"
)
DEFAULTS = {
    "window": "2m",
    "interval": "20s",
    "success_rate_query": DEFAULT_SUCCESS_RATE_QUERY,
    "min_success_rate": "0.99",
    "latency_query": DEFAULT_LATENCY_QUERY,
    "max_latency": "0.5",
    "inconclusive": "fail",
}
PLACEHOLDERS = ("service", "namespace", "colour", "window")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
URL_PATTERN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")
MAX_QUERY = 2000
MAX_ANSWER = 4 << 20  # bytes: an instant vector of one colour's series is a few kilobytes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The analysis flags of ``deploy``; every one has an ``ENADU_*`` environment fallback."""
    group = parser.add_argument_group("metric analysis (Prometheus)")
    group.add_argument("--analysis", action="store_const", const="true", default=env_default("ENADU_ANALYSIS", ""),
                       help="after the switch, check the new colour's metrics and switch back if a check fails [ENADU_ANALYSIS]")
    group.add_argument("--prometheus-url", default=env_default("ENADU_PROMETHEUS_URL", ""),
                       help="base URL of the Prometheus HTTP API, e.g. http://prometheus:9090 [ENADU_PROMETHEUS_URL]")
    group.add_argument("--analysis-window", default=env_default("ENADU_ANALYSIS_WINDOW", DEFAULTS["window"]),
                       help="how long to watch, and the range of the queries' {window} (default 2m) [ENADU_ANALYSIS_WINDOW]")
    group.add_argument("--analysis-interval", default=env_default("ENADU_ANALYSIS_INTERVAL", DEFAULTS["interval"]),
                       help="time between two rounds of queries (default 20s) [ENADU_ANALYSIS_INTERVAL]")
    group.add_argument("--success-rate-query", default=env_default("ENADU_ANALYSIS_SUCCESS_RATE_QUERY", DEFAULT_SUCCESS_RATE_QUERY),
                       help="PromQL template giving the share of good requests (0..1) [ENADU_ANALYSIS_SUCCESS_RATE_QUERY]")
    group.add_argument("--min-success-rate", default=env_default("ENADU_ANALYSIS_MIN_SUCCESS_RATE", DEFAULTS["min_success_rate"]),
                       help="fail below this success rate (default 0.99) [ENADU_ANALYSIS_MIN_SUCCESS_RATE]")
    group.add_argument("--latency-query", default=env_default("ENADU_ANALYSIS_LATENCY_QUERY", DEFAULT_LATENCY_QUERY),
                       help="PromQL template giving a latency in seconds (default: p95) [ENADU_ANALYSIS_LATENCY_QUERY]")
    group.add_argument("--max-latency", default=env_default("ENADU_ANALYSIS_MAX_LATENCY", DEFAULTS["max_latency"]),
                       help="fail above this latency in seconds (default 0.5) [ENADU_ANALYSIS_MAX_LATENCY]")
    group.add_argument("--inconclusive", default=env_default("ENADU_ANALYSIS_INCONCLUSIVE", DEFAULTS["inconclusive"]),
                       help="what an analysis without data counts as: fail (default) or pass [ENADU_ANALYSIS_INCONCLUSIVE]")
    group.add_argument("--analysis-before-switch", action="store_const", const="true",
                       default=env_default("ENADU_ANALYSIS_BEFORE_SWITCH", ""),
                       help="also run the checks on the idle colour's preview traffic before switching [ENADU_ANALYSIS_BEFORE_SWITCH]")


@dataclass(frozen=True)
class Check:
    """One query and its threshold; ``at_least`` says which side of the threshold is good."""

    name: str
    template: str
    threshold: float
    at_least: bool
    unit: str = ""

    def ok(self, value: float) -> bool:
        return value >= self.threshold if self.at_least else value <= self.threshold

    def bound(self) -> str:
        return f"{'>=' if self.at_least else '<='} {_num(self.threshold)}{self.unit}"


@dataclass(frozen=True)
class Settings:
    prometheus_url: str
    window: float
    interval: float
    checks: Tuple[Check, ...]
    inconclusive: str = "fail"
    after_switch: bool = True  # --analysis
    before_switch: bool = False  # --analysis-before-switch
    request_timeout: float = 10.0


def settings(args: argparse.Namespace) -> Optional[Settings]:
    """The analysis settings from ``deploy``'s flags, or None when neither --analysis nor
    --analysis-before-switch is on (``after_switch``/``before_switch`` say which); UsageProblem on bad values."""
    enabled = flag(args.analysis, "--analysis (ENADU_ANALYSIS)")
    before = flag(args.analysis_before_switch, "--analysis-before-switch (ENADU_ANALYSIS_BEFORE_SWITCH)")
    if not enabled and not before:
        return None
    url = (args.prometheus_url or "").rstrip("/")
    if not url:
        raise UsageProblem("--prometheus-url (or ENADU_PROMETHEUS_URL) is required with --analysis")
    if not URL_PATTERN.fullmatch(url):
        raise UsageProblem("--prometheus-url: not an http(s) URL of the form http://host[:port][/path] "
                           "(credentials in the URL are not supported)")
    window = parse_duration(args.analysis_window, "--analysis-window")
    interval = parse_duration(args.analysis_interval, "--analysis-interval")
    if not 1 <= interval <= window <= 3600:
        raise UsageProblem("--analysis-interval and --analysis-window: need 1s <= interval <= window <= 1h")
    if args.inconclusive not in ("fail", "pass"):
        raise UsageProblem(f"--inconclusive: {args.inconclusive!r} is not fail or pass")
    min_rate = _number(args.min_success_rate, "--min-success-rate", 0.0, 1.0)
    max_latency = _number(args.max_latency, "--max-latency", 0.0, 3600.0)
    checks = (
        Check("success rate", _template(args.success_rate_query, "--success-rate-query"), min_rate, at_least=True),
        Check("latency", _template(args.latency_query, "--latency-query"), max_latency, at_least=False, unit=" s"),
    )
    return Settings(prometheus_url=url, window=window, interval=interval, checks=checks,
                    inconclusive=args.inconclusive, after_switch=enabled, before_switch=before)


def _number(text: str, what: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UsageProblem(f"{what}: {text!r} is not a number") from None
    if not low <= value <= high:  # also rejects NaN
        raise UsageProblem(f"{what}: {text!r} must be between {_num(low)} and {_num(high)}")
    return value


def _template(text: str, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise UsageProblem(f"{what}: the query is empty")
    if len(text) > MAX_QUERY or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UsageProblem(f"{what}: the query must be one line of at most {MAX_QUERY} characters")
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(PLACEHOLDERS))
    if unknown:
        raise UsageProblem(f"{what}: unknown placeholder {{{unknown[0]}}} (known: "
                           + ", ".join("{" + p + "}" for p in PLACEHOLDERS) + ")")
    return text


def render_query(template: str, *, service: str, namespace: str, colour: str, window: float) -> str:
    """The template with its placeholders filled in; PromQL braces such as ``{code="500"}`` stay."""
    values = {"service": service, "namespace": namespace, "colour": colour, "window": f"{max(1, int(window))}s"}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One check in one round: ``status`` is passed, failed or inconclusive."""

    check: Check
    status: str
    value: Optional[float] = None
    reason: str = ""

    def text(self) -> str:
        if self.value is not None and not math.isnan(self.value):
            shown = f"{self.check.name} {_num(self.value)}{self.check.unit} ({self.check.bound()})"
            return shown + ("" if self.status == "passed" else f" {self.status}") + (f": {self.reason}" if self.reason else "")
        return f"{self.check.name} {self.status}: {self.reason}"

    def to_dict(self) -> Dict[str, Any]:
        value = self.value if self.value is not None and math.isfinite(self.value) else None
        return {"name": self.check.name, "status": self.status, "value": value,
                "shown": None if self.value is None else _num(self.value),
                "threshold": self.check.threshold, "comparison": ">=" if self.check.at_least else "<=",
                "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    """What the analysis concluded; ``passed`` applies the --inconclusive policy."""

    outcome: str  # passed | failed | inconclusive
    service: str
    colour: str
    readings: Tuple[Reading, ...]
    rounds: int
    seconds: float
    inconclusive_policy: str = "fail"
    stage: str = "after switch"

    @property
    def passed(self) -> bool:
        return self.outcome == "passed" or (self.outcome == "inconclusive" and self.inconclusive_policy == "pass")

    def line(self) -> str:
        """One line for logs, the deploy result and Discord."""
        head = f"analysis of {self.service} {self.colour} ({self.stage}): {self.outcome}"
        if self.outcome == "inconclusive":
            head += f", counted as {'passed' if self.passed else 'failed'} (--inconclusive {self.inconclusive_policy})"
        details = "; ".join(r.text() for r in self.readings)
        return f"{head} - {details} [{self.rounds} round(s) in {self.seconds:.0f} s]"

    def to_dict(self) -> Dict[str, Any]:
        return {"outcome": self.outcome, "passed": self.passed, "stage": self.stage, "colour": self.colour,
                "rounds": self.rounds, "seconds": round(self.seconds, 1), "inconclusive": self.inconclusive_policy,
                "checks": [r.to_dict() for r in self.readings], "summary": self.line()}


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


# -- talking to Prometheus -----------------------------------------------------------------------


class Rejected(Exception):
    """Prometheus answered, but refused or could not run the query (HTTP 400/422) or gave an answer
    that is not an instant vector or scalar; the message is safe to log."""


class Unavailable(Exception):
    """Prometheus could not be asked: connection refused, timeout, 5xx, or not an API answer."""


@dataclass
class Client:
    """A minimal client of Prometheus' ``/api/v1/query`` (https://prometheus.io/docs/prometheus/latest/querying/api/)."""

    base_url: str
    timeout: float = 10.0
    log: Callable[[str], None] = lambda line: None
    session: Any = None
    _own: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.session is None:
            from . import retry

            self.session = retry.session()
            self._own = True

    def close(self) -> None:
        if self._own:
            self.session.close()

    def query(self, promql: str, *, budget: float) -> List[float]:
        """The sample values of an instant query (one per series; a scalar gives one).

        ``budget`` bounds the whole call, retries included. Raises Rejected or Unavailable.
        """
        import requests

        from . import retry  # tenacity: imported only when the analysis runs, not at helper start-up

        budget = max(0.5, budget)
        timeout = max(0.5, min(self.timeout, budget))
        started = time.monotonic()

        def once() -> Any:
            # each attempt ends by the budget's end, whatever the server does (retry.request)
            left = max(0.05, min(timeout, budget - (time.monotonic() - started)))
            # POST with a form body: the API accepts it, and long queries stay out of URLs and access logs.
            answer = retry.request(self.session, "POST", f"{self.base_url}/api/v1/query",
                                   data={"query": promql, "timeout": f"{max(1, int(timeout))}s"},
                                   timeout=left, max_bytes=MAX_ANSWER)
            if answer.status_code in (400, 422):  # bad_data / execution: the query itself is wrong
                raise Rejected(f"HTTP {answer.status_code} {_api_error(answer)}")
            if answer.status_code >= 500 or answer.status_code == 429:
                raise retry.TransientHTTP(answer.status_code)
            if answer.status_code != 200:
                raise Unavailable(f"HTTP {answer.status_code}")
            try:
                return answer.json()
            except ValueError:
                raise Unavailable("the answer is not JSON (is the URL the Prometheus API?)") from None

        policy = retry.Policy(backoffs=(0.5, 1, 2, 3), deadline=budget)
        try:
            body = retry.run(once, what="prometheus query", classify=retry.classify_requests, policy=policy, log=self.log)
        except retry.GaveUp as e:
            raise Unavailable(f"Prometheus unreachable: {e.reason}") from None
        except retry.TooLarge as e:
            raise Unavailable(f"Prometheus answer refused: {e}") from None
        except (requests.RequestException, retry.OutOfTime) as e:
            raise Unavailable(f"Prometheus unreachable: {type(e).__name__}") from None
        return _values(body)


def _api_error(answer: Any) -> str:
    try:
        body = answer.json()
        return f"{body.get('errorType', 'error')}: {str(body.get('error', ''))[:200]}"
    except (ValueError, AttributeError):
        return "(no API error body)"


def _values(body: Any) -> List[float]:
    if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(body.get("data"), dict):
        raise Unavailable("the answer is not a successful Prometheus API response")
    kind, result = body["data"].get("resultType"), body["data"].get("result")
    try:
        if kind == "scalar":
            return [float(result[1])]
        if kind == "vector":
            return [float(sample["value"][1]) for sample in result]
    except (TypeError, ValueError, KeyError, IndexError):
        raise Unavailable("the answer's samples are malformed") from None
    raise Rejected(f"the query returns a {kind}, not an instant vector or a scalar")


# -- the analysis --------------------------------------------------------------------------------


def read(client: Client, check: Check, query: str, budget: float) -> Reading:
    """One check, once."""
    try:
        values = client.query(query, budget=budget)
    except Rejected as e:
        return Reading(check, "failed", reason=f"query rejected by Prometheus: {e}")
    except Unavailable as e:
        return Reading(check, "inconclusive", reason=str(e))
    if not values:
        return Reading(check, "inconclusive", reason="no data (no traffic, or no series with these labels)")
    numbers = [v for v in values if not math.isnan(v)]
    if not numbers:
        return Reading(check, "inconclusive", value=math.nan, reason="NaN (no requests in the window)")
    worst = min(numbers) if check.at_least else max(numbers)
    note = f"worst of {len(values)} series" if len(values) > 1 else ""
    return Reading(check, "passed" if check.ok(worst) else "failed", value=worst, reason=note)


def analyse(config: Settings, *, service: str, namespace: str, colour: str, deadline: float,
            log: Callable[[str], None], stage: str = "after switch", session: Any = None,
            clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Verdict:
    """Watch ``colour`` of ``service`` for the window (never past ``deadline``, a ``clock()`` value).

    Rounds run every interval, the first one interval after the start and the last one at the end of
    the window. Returns at the first failing check, else after the last round.
    """
    start = clock()
    end = min(start + config.window, deadline)
    queries = [(check, render_query(check.template, service=service, namespace=namespace, colour=colour,
                                    window=config.window)) for check in config.checks]
    client = Client(config.prometheus_url, timeout=config.request_timeout, log=log, session=session)
    latest: Dict[str, Reading] = {}
    last: Dict[str, Reading] = {}
    rounds = 0
    log(f"analysing {service} {colour} ({stage}) for {config.window:.0f} s, every {config.interval:.0f} s")

    def verdict(outcome: str, readings: List[Reading]) -> Verdict:
        return Verdict(outcome, service, colour, tuple(readings), rounds, clock() - start, config.inconclusive, stage)

    try:
        due = min(start + config.interval, end)
        while True:
            pause = due - clock()
            if pause > 0:
                sleep(pause)
            now = clock()
            if now >= deadline and rounds:
                break
            rounds += 1
            budget = max(0.5, min(config.interval, deadline - now) / len(queries))
            readings = [read(client, check, query, budget) for check, query in queries]
            log(f"analysis round {rounds}: " + "; ".join(r.text() for r in readings))
            for r in readings:
                last[r.check.name] = r
                if r.status != "inconclusive":
                    latest[r.check.name] = r
            failed = [r for r in readings if r.status == "failed"]
            if failed:
                return verdict("failed", readings)
            if due >= end or clock() >= deadline:
                break
            due = min(due + config.interval, end)
    finally:
        client.close()
    final = [latest.get(check.name) or last[check.name] for check, _ in queries]
    return verdict("passed" if all(r.status == "passed" for r in final) else "inconclusive", final)
