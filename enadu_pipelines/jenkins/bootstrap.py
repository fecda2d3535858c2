"""Plan and apply: make a Jenkins folder hold exactly the Pipeline jobs ``enadu.yaml`` describes.

Every run reads the controller's state afresh — one listing of the folder (names, classes and
descriptions of its items) and each managed job's ``config.xml`` — and compares it with what we
render; nothing is cached between runs, so an edit made in the Jenkins UI is found and reverted.
Only items that differ are written, each with one request, and each write is read back: Jenkins
silently drops elements whose class it cannot load (a missing plugin), and the read-back is where
that shows. For the default one-level folder that is at most N + 2 requests when nothing changed
(crumb, listing, N reads) and 2N + 3 on a first run (crumb, listing, folder, N creates, N reads),
plus one request per job that has never run for its registration build (see :func:`_with_first_build`).

A failure on one job is recorded and the others still converge; failures that concern the whole
controller (bad URL, unreachable, credentials refused, not Jenkins) raise ``JenkinsError``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jenkins
import requests

from ..config import Project
from ..errors import JenkinsError, UsageProblem
from ..helper import retry
from . import jobs, xmlnorm
from ..helper.loopback import cleartext_problem
from .client import MAX_ANSWER, BadCrumb, Client, HttpFailure, NotJenkins

CREATE, UPDATE, UNCHANGED, DELETE, KEEP, FAILED = "create", "update", "unchanged", "delete", "keep", "failed"


@dataclass
class Item:
    """One folder or job and what bootstrap does (or would do) with it."""

    name: str  # full name, e.g. "enadu/backend"
    kind: str  # "folder" | "job"
    action: str  # create | update | unchanged | delete | keep | failed
    note: str = ""
    diff: str = ""
    done: bool = False  # the write happened and was verified
    error: str = ""
    config: bytes = field(default=b"", repr=False)  # what to write (create/update)
    # The registration build (jobs only): "" none needed, "queue" to queue (plan), "requeue" to queue
    # again (every build so far failed), "queued" done, "skipped" (--no-first-build), "in queue" (one waits).
    first_build: str = ""
    queue_item: str = ""


@dataclass
class Report:
    url: str
    folder: str
    dry_run: bool
    prune: bool
    items: list[Item]
    jenkins_version: str | None = None
    first_builds: bool = True

    @property
    def failed(self) -> list[Item]:
        return [i for i in self.items if i.error]

    @property
    def converged(self) -> bool:
        return not self.failed

    @property
    def writes(self) -> int:
        return sum(1 for i in self.items if i.done and i.action in (CREATE, UPDATE, DELETE))

    @property
    def queued(self) -> list[Item]:
        return [i for i in self.items if i.first_build == "queued"]

    def counts(self) -> dict[str, int]:
        out = {a: 0 for a in (CREATE, UPDATE, UNCHANGED, DELETE, KEEP)}
        for item in self.items:
            if not item.error:
                out[item.action] += 1
        out[FAILED] = len(self.failed)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url, "folder": self.folder, "dry_run": self.dry_run, "prune": self.prune,
            "jenkins_version": self.jenkins_version, "converged": self.converged, "counts": self.counts(),
            "first_builds": self.first_builds,
            "items": [{k: v for k, v in asdict(i).items() if k != "config"} for i in self.items],
        }


def read_token(token_file: Path | None, environ: Mapping[str, str]) -> str | None:
    """The API token from ``token_file`` if given, else ``JENKINS_API_TOKEN``; None if neither."""
    if token_file is None:
        return environ.get("JENKINS_API_TOKEN", "").strip() or None
    try:
        with open(token_file, "rb") as f:
            # Like ssh with a private key: a secret others may read (or replace) is refused, not used.
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            if mode & 0o077:
                raise UsageProblem(f"--token-file {token_file} is accessible to other users (mode {mode:04o});"
                                   f" run: chmod 600 {token_file}")
            token = f.read(64 << 10).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageProblem(f"--token-file {token_file}: cannot read: {getattr(e, 'strerror', None) or 'not UTF-8 text'}") from None
    if not token:
        raise UsageProblem(f"--token-file {token_file} is empty")
    return token


def check_url(url: str, *, allow_insecure_http: bool = False) -> str:
    """The controller's base URL, or ``UsageProblem`` saying what is wrong with it (never echoing
    credentials that someone put into it). Plain http only to loopback (the token would travel in
    clear), unless ``allow_insecure_http``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError on a bad port
    except ValueError:
        raise UsageProblem("--url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageProblem("--url must be an http:// or https:// URL with a host name, such as https://jenkins.example.com/")
    if parts.username is not None or parts.password is not None:
        raise UsageProblem("--url must not contain credentials: pass --user and the API token in JENKINS_API_TOKEN or --token-file")
    if parts.query or parts.fragment:
        raise UsageProblem("--url must be the controller's base URL, without '?' or '#' parts")
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/"
    problem = cleartext_problem(base, "the API token")
    if problem and not allow_insecure_http:
        raise UsageProblem(f"--url {base} {problem}; pass --allow-insecure-http to send it anyway")
    return base


def run(
    project: Project,
    *,
    url: str,
    user: str | None,
    token: str | None,
    folder: str | None = None,
    dry_run: bool = False,
    prune: bool = False,
    first_builds: bool = True,
    timeout: float = 30.0,
    allow_insecure_http: bool = False,
    policy: retry.Policy = retry.Policy(),
    log: Callable[[str], None] = lambda line: None,
    sleep: Callable[[float], None] | None = None,
) -> Report:
    """Plan, and unless ``dry_run`` apply, the jobs of ``project`` in ``folder`` on ``url``.

    ``timeout`` bounds each request (wall clock, first byte sent to last byte read); ``policy`` the retries."""
    base = check_url(url, allow_insecure_http=allow_insecure_http)
    folder = folder if folder is not None else project.jenkins.folder
    _check_folder(folder)
    client = Client(base, user=user, token=token, timeout=timeout, policy=policy, log=log, sleep=sleep)
    report = Report(base, folder, dry_run, prune, [], first_builds=first_builds)
    with _controller_errors(base, user):
        _plan(project, client, folder, report)
        report.jenkins_version = client.version
        if not dry_run:
            _apply(client, report)
    report.jenkins_version = client.version
    return report


_FOLDER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")


def _check_folder(folder: str) -> None:
    if not _FOLDER_RE.fullmatch(folder) or len(folder) > 200:
        raise JenkinsError(f"--folder {folder!r} is not a folder path such as 'enadu' or 'teams/enadu'"
                           " (letters, digits and . _ -, separated by '/')")


# --------------------------------------------------------------------------------------------
# Planning: read state, compare, decide.


def _plan(project: Project, client: Client, folder: str, report: Report) -> None:
    listing = client.list_folder(folder)
    existing: dict[str, dict[str, Any]] = {}
    if listing is None:
        for missing in _missing_folders(client, folder):
            report.items.append(Item(missing, "folder", CREATE, config=jobs.render_folder()))
    else:
        if "jobs" not in listing:
            raise JenkinsError(f"{folder!r} on {client.url} is a {listing.get('_class', 'item')}, not a folder;"
                               " pick another --folder or jenkins.folder")
        existing = {j["name"]: j for j in listing["jobs"] if isinstance(j, dict) and "name" in j}
    # Each service's job, then its operations job. Only the service's job gets a registration build: the
    # operations job has no trigger to register, and a build of it must only ever be a person's choice.
    wanted: dict[str, tuple[bytes, bool]] = {}
    for service in project.services:
        wanted[service.name] = (jobs.render_job(project, service), True)
        wanted[jobs.ops_name(service)] = (jobs.render_ops_job(project, service), False)
    for name, (rendered, registers) in wanted.items():
        full = f"{folder}/{name}"
        live = existing.get(name)
        plan_first_build = _with_first_build if registers else (lambda item, _report, _live: item)
        if live is None:
            report.items.append(plan_first_build(Item(full, "job", CREATE, config=rendered), report, None))
            continue
        if live.get("_class") != jobs.WORKFLOW_JOB_CLASS:
            report.items.append(Item(full, "job", FAILED, error=(
                f"{full} exists but is a {live.get('_class', 'different kind of item')}, not a Pipeline job;"
                " delete or rename it in Jenkins")))
            continue
        item = _compare_job(client, full, rendered, adopt=not jobs.is_ours(live.get("description")))
        report.items.append(plan_first_build(item, report, live))
    for name, live in sorted(existing.items()):
        if name in wanted or live.get("_class") != jobs.WORKFLOW_JOB_CLASS or not jobs.is_ours(live.get("description")):
            continue
        full = f"{folder}/{name}"
        if report.prune:
            report.items.append(Item(full, "job", DELETE, note="no longer in enadu.yaml"))
        else:
            report.items.append(Item(full, "job", KEEP, note="no longer in enadu.yaml; --prune deletes it"))


def _with_first_build(item: Item, report: Report, live: dict[str, Any] | None) -> Item:
    """Plan the registration build of a job that has never run.

    Until a Pipeline job has a completed build, ``WorkflowJob.getSCMs()`` returns only its
    definition's SCM (this library's repository), and the GitHub plugin matches pushes against that
    list: a push to the service's repository starts nothing, a push to this one starts every job. One
    build that checks the service out fixes that. It runs with ENADU_REGISTER_ONLY=true, so it builds
    and deploys nothing (with no previous successful build, everything would count as changed).
    A job with a build waiting in the queue needs none, nor one whose builds may have checked the
    service out: one that succeeded (SUCCESS or UNSTABLE), or whose last completed build did not fail.
    A job whose only completed builds failed or were aborted (say the first one ran before the
    library's tag or the git credential existed) may never have reached the checkout, so it gets
    another registration build: harmless when it had, since it deploys nothing.
    """
    if item.action == FAILED:
        return item
    if live is not None:
        if live.get("inQueue"):
            if not live.get("lastSuccessfulBuild"):
                item.first_build = "in queue"
            return item
        last = live.get("lastCompletedBuild")
        if live.get("lastSuccessfulBuild") or (isinstance(last, dict) and last.get("result") not in ("FAILURE", "ABORTED")):
            return item
        if live.get("lastBuild") and not last:
            return item  # its first build is running now
        if last:
            item.first_build = "requeue" if report.first_builds else "skipped"
            return item
    item.first_build = "queue" if report.first_builds else "skipped"
    return item


def _queue_first_builds(client: Client, report: Report) -> None:
    for item in report.items:
        if item.kind != "job" or item.first_build not in ("queue", "requeue") or item.error:
            continue
        if item.action == CREATE and not item.done:
            continue
        try:
            item.queue_item = client.queue_build(item.name, {REGISTER_PARAMETER: "true"}) or ""
            item.first_build = "queued"
        except _JOB_ERRORS as e:
            _reraise_if_unreachable(e)
            item.error = f"{item.name}: could not queue its registration build: {describe(e, client.url)}"


REGISTER_PARAMETER = "ENADU_REGISTER_ONLY"


def _missing_folders(client: Client, folder: str) -> list[str]:
    """The folders to create for ``folder`` (known to be absent), parents first."""
    parts = folder.split("/")
    missing = [folder]
    for depth in range(len(parts) - 1, 0, -1):
        parent = "/".join(parts[:depth])
        listing = client.list_folder(parent)
        if listing is not None:
            if "jobs" not in listing:
                raise JenkinsError(f"{parent!r} on {client.url} is a {listing.get('_class', 'item')}, not a folder")
            break
        missing.append(parent)
    return list(reversed(missing))


def _compare_job(client: Client, full: str, rendered: bytes, *, adopt: bool) -> Item:
    try:
        live = client.get_config(full)
        result = xmlnorm.compare(rendered, live, name=full)
    except xmlnorm.XmlProblem as e:
        return Item(full, "job", FAILED, error=f"{full}: Jenkins returned an unusable config.xml: {e}")
    except _JOB_ERRORS as e:
        _reraise_if_unreachable(e)
        return Item(full, "job", FAILED, error=f"{full}: {describe(e, client.url)}")
    if result.equal:
        return Item(full, "job", UNCHANGED)
    note = "adopting a job without the ownership marker" if adopt else "differs: edited in Jenkins, or enadu.yaml changed"
    return Item(full, "job", UPDATE, note=note, diff=result.diff, config=xmlnorm.carry_actions(rendered, live))


# --------------------------------------------------------------------------------------------
# Applying: folders first (parents first), then jobs, then deletions; each write read back.


def _apply(client: Client, report: Report) -> None:
    failed_folders: list[str] = []
    for item in report.items:
        if item.kind != "folder" or item.action != CREATE:
            continue
        if any(item.name.startswith(f + "/") for f in failed_folders):
            item.error = f"{item.name}: not created because its parent folder could not be"
            continue
        try:
            client.create(item.name, item.config)
            item.done = True
        except _JOB_ERRORS as e:
            _reraise_if_unreachable(e)
            item.error = f"{item.name}: {_write_failure(client, e, 'create', jobs.FOLDER_PLUGINS)}"
            failed_folders.append(item.name)
    for item in report.items:
        if item.kind != "job" or item.action not in (CREATE, UPDATE) or item.error:
            continue
        parent = item.name.rpartition("/")[0]
        if parent in failed_folders or any(parent.startswith(f + "/") for f in failed_folders):
            item.error = f"{item.name}: not created because folder {parent!r} could not be"
            continue
        _write_job(client, item)
    _queue_first_builds(client, report)
    for item in report.items:
        if item.action == DELETE:
            try:
                client.delete(item.name)
                item.done = True
            except jenkins.NotFoundException:
                item.done = True  # already gone: the state we wanted
            except _JOB_ERRORS as e:
                _reraise_if_unreachable(e)
                item.error = f"{item.name}: {_write_failure(client, e, 'delete', ())}"


def _write_job(client: Client, item: Item) -> None:
    try:
        if item.action == CREATE:
            try:
                client.create(item.name, item.config)
            except requests.HTTPError as e:
                # A retried create whose first attempt did land answers 400 "already exists"
                # (ItemGroupMixIn.createTopLevelItem); converge by updating instead.
                if e.response is None or e.response.status_code != 400 or "already exists" not in \
                        e.response.headers.get("X-Error", ""):
                    raise
                client.update(item.name, item.config)
        else:
            client.update(item.name, item.config)
        live = client.get_config(item.name)
    except _JOB_ERRORS as e:
        _reraise_if_unreachable(e)
        item.error = f"{item.name}: {_write_failure(client, e, item.action, jobs.JOB_PLUGINS)}"
        return
    try:
        check = xmlnorm.compare(item.config, live, name=item.name)
    except xmlnorm.XmlProblem as e:
        item.error = f"{item.name}: Jenkins returned an unusable config.xml after the {item.action}: {e}"
        return
    if check.equal:
        item.done = True
        return
    plugins = sorted({jobs.PLUGIN_OF_CLASS[c] for c in check.missing_classes if c in jobs.PLUGIN_OF_CLASS})
    if plugins:
        item.error = (f"{item.name}: Jenkins dropped {', '.join(check.missing_classes)} when saving the job;"
                      f" is the {', '.join(plugins)} plugin installed and enabled?")
    else:
        first = next((line for line in check.diff.splitlines()[3:] if line[:1] in "+-"), "")
        item.error = f"{item.name}: Jenkins saved a different configuration than was sent (first difference: {first.strip()})"
    item.diff = check.diff


_JOB_ERRORS = (HttpFailure, requests.HTTPError, jenkins.JenkinsException, retry.GaveUp, NotJenkins)
_UNREACHABLE = (requests.ConnectionError, requests.Timeout, jenkins.TimeoutException)


def _reraise_if_unreachable(exc: BaseException) -> None:
    """A controller that stops answering mid-run fails the run, not each remaining job in turn."""
    if isinstance(exc, retry.GaveUp) and isinstance(exc.last, _UNREACHABLE):
        raise exc


def _write_failure(client: Client, exc: BaseException, verb: str, needed: tuple[str, ...]) -> str:
    """One line for a failed write; on an HTTP 500, ask the plugin manager whether one of the
    ``needed`` plugins is missing (Jenkins' error page does not say, unless it shows stack traces)."""
    text = describe(exc, client.url)
    if isinstance(exc, HttpFailure) and exc.status == 500:
        plugins = client.plugins() if needed else None
        if plugins is not None:
            missing = [p for p in needed if not plugins.get(p)]
            if missing:
                return (f"Jenkins could not {verb} it (HTTP 500): plugin(s) {', '.join(missing)} not installed"
                        " or not active; install them and run bootstrap again")
        match = re.search(r"CannotResolveClassException: ([\w.$-]+)", exc.body)
        if match:
            return f"Jenkins could not {verb} it (HTTP 500): it does not know the class {match.group(1)} (missing plugin?)"
    return text


def describe(exc: BaseException, url: str) -> str:
    """One line for an HTTP-level failure."""
    if isinstance(exc, retry.GaveUp):
        last = exc.last
        if isinstance(last, HttpFailure):
            return f"{describe(last, url)} (gave up after {exc.attempts} attempts)"
        return f"Jenkins at {url} did not answer: {exc.reason} (gave up after {exc.attempts} attempts)"
    if isinstance(exc, HttpFailure):
        if exc.status == 401:
            return (f"Jenkins at {url} rejected the credentials (HTTP 401): use your user name with an API token"
                    " (user menu > Security > API Token) in JENKINS_API_TOKEN or --token-file, not a password")
        if exc.status == 403:
            return _forbidden(exc, url)
        excerpt = exc.x_error or _first_text_line(exc.body)
        return f"Jenkins answered HTTP {exc.status} to {exc.method} {exc.path}" + (f": {excerpt}" if excerpt else "")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        response = exc.response
        excerpt = response.headers.get("X-Error") or _first_text_line(response.text[:2000])
        return f"Jenkins answered HTTP {response.status_code}" + (f": {excerpt}" if excerpt else "")
    if isinstance(exc, jenkins.NotFoundException):
        return "Jenkins answered 404 Not Found"
    if isinstance(exc, NotJenkins):
        status = f"HTTP {exc.answer.status}: " if exc.answer.status else ""
        return f"{url} does not answer like Jenkins ({status}no X-Jenkins header or no JSON); check --url"
    return f"{type(exc).__name__}: {_first_text_line(str(exc))}"


def _forbidden(exc: HttpFailure, url: str) -> str:
    if "crumb" in (exc.body + exc.headers.get("X-Error", "")).lower():
        return (f"Jenkins at {url} refused {exc.method} {exc.path} (HTTP 403, no valid CSRF crumb): authenticate with an"
                " API token (CSRF checks do not apply to token requests) rather than a password")
    who = exc.headers.get("X-You-Are-Authenticated-As", "")
    needed = exc.headers.get("X-Required-Permission", "")
    if who == "anonymous":
        return (f"Jenkins at {url} requires authentication (HTTP 403 as anonymous): pass --user and an API token"
                " in JENKINS_API_TOKEN or --token-file")
    detail = f" (missing permission {needed})" if needed else ""
    return (f"Jenkins at {url} refused {exc.method} {exc.path} (HTTP 403){detail}: the user needs Overall/Read and"
            " Job/Read, Create, Configure and Delete on the folder; with a password instead of an API token,"
            " CSRF protection also applies")


def _first_text_line(text: str) -> str:
    text = re.sub(r"<[^>]*>", " ", text)
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line[:200]
    return ""


class _controller_errors:
    """Turn failures that concern the whole controller into one-line ``JenkinsError``s."""

    def __init__(self, url: str, user: str | None) -> None:
        self.url = url
        self.user = user

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, JenkinsError):
            return False
        if isinstance(exc, requests.exceptions.SSLError):
            raise JenkinsError(f"TLS error talking to {self.url}: {_ssl_reason(exc)}") from None
        if isinstance(exc, BadCrumb):
            raise JenkinsError(f"{self.url}: {exc}; is --url a Jenkins controller?") from None
        if isinstance(exc, retry.TooLarge):
            raise JenkinsError(f"{self.url} sent an answer larger than {MAX_ANSWER} bytes; is --url a Jenkins"
                               " controller?") from None
        if isinstance(exc, retry.GaveUp) and isinstance(exc.last, (requests.ConnectionError, requests.Timeout,
                                                                     jenkins.TimeoutException, retry.OutOfTime)):
            raise JenkinsError(f"cannot reach Jenkins at {self.url}: {exc.reason} "
                               f"(gave up after {exc.attempts} attempts)") from None
        if isinstance(exc, (HttpFailure, requests.HTTPError, jenkins.JenkinsException, retry.GaveUp, NotJenkins)):
            raise JenkinsError(describe(exc, self.url)) from None
        if isinstance(exc, requests.RequestException):
            raise JenkinsError(f"cannot talk to Jenkins at {self.url}: {type(exc).__name__}") from None
        return False


def _ssl_reason(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r"certificate verify failed[^)'\"]*|wrong version number|handshake failure", text)
    return match.group(0) if match else "handshake failed"


# --------------------------------------------------------------------------------------------
# Presenting.


def format_text(report: Report) -> list[str]:
    """The plan/result as lines for a terminal."""
    mode = "plan (dry run; nothing written)" if report.dry_run else "bootstrap"
    version = f" (Jenkins {report.jenkins_version})" if report.jenkins_version else ""
    lines = [f"{mode}: {report.url} folder {report.folder}{version}"]
    for item in report.items:
        action = FAILED if item.error else item.action
        label = f"{item.name}/" if item.kind == "folder" else item.name
        note = f"  ({item.note})" if item.note and not item.error else ""
        lines.append(f"{action:>10}  {label}{note}")
        if item.first_build and not item.error:
            lines.append(f"{'':>10}  {_FIRST_BUILD_TEXT[item.first_build]}")
        if item.error:
            lines.append(f"{'':>10}  error: {item.error}")
        if item.diff and (report.dry_run or item.error or item.action == UPDATE):
            lines.extend("            " + line for line in item.diff.rstrip("\n").splitlines())
    counts = report.counts()
    summary = ", ".join(f"{n} {word}" for word, n in (
        ("to create" if report.dry_run else "created", counts[CREATE]),
        ("to update" if report.dry_run else "updated", counts[UPDATE]),
        ("unchanged", counts[UNCHANGED]),
        ("to delete" if report.dry_run else "deleted", counts[DELETE]),
        ("kept", counts[KEEP]),
        ("failed", counts[FAILED]),
    ) if n or word in ("unchanged", "failed"))
    queued = sum(1 for i in report.items if i.first_build in ("queue", "requeue", "queued") and not i.error)
    builds = f"; {queued} registration build(s) {'to queue' if report.dry_run else 'queued'}" if queued else ""
    lines.append(f"summary: {summary}; {report.writes} write(s){builds}")
    return lines


_FIRST_BUILD_TEXT = {
    "queue": "first build: would queue a registration build (ENADU_REGISTER_ONLY=true: checks the service out"
             " so that pushes start the job; builds and deploys nothing)",
    "queued": "first build: queued a registration build (ENADU_REGISTER_ONLY=true: checks the service out so"
              " that pushes start the job; builds and deploys nothing)",
    "skipped": "first build: none queued (--no-first-build); pushes to the service's repository will not start"
               " this job until it has run once: build it with ENADU_REGISTER_ONLY=true",
    "in queue": "first build: one is already waiting in the queue",
    "requeue": "first build: every build so far failed or was aborted, perhaps before checking the service out;"
               " would queue another registration build",
}
