"""``bootstrap`` against hostile or careless surroundings: a cleartext URL, a token file others can
read, a controller that answers nonsense for the crumb, one that trickles or floods its answers.

Each failure is one line on stderr with a documented exit code (README "Bootstrap"), and the token is
never printed. Servers here are plain loopback sockets or ``http.server`` handlers that misbehave on
purpose; the well-behaved controller is tests/support/fakejenkins.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

from enadu_pipelines import config  # noqa: E402
from enadu_pipelines.cli import main  # noqa: E402
from enadu_pipelines.errors import JenkinsError, UsageProblem  # noqa: E402
from enadu_pipelines.helper import retry  # noqa: E402
from enadu_pipelines.jenkins import bootstrap  # noqa: E402
from support.fakejenkins import FakeJenkins, User, projects  # noqa: E402

TOKEN = "s3cret-token-hostile-77e1"


def cfg(tmp_path: Path) -> Path:
    return projects.write(tmp_path, projects.enadu_yaml(["api"]))


def cli(url: str, path: Path, *args: str, env: dict[str, str] | None = None):
    argv = ["bootstrap", "--url", url, "--config", str(path), "--user", "admin", *args]
    result = CliRunner().invoke(main, argv, env={"JENKINS_API_TOKEN": TOKEN} if env is None else env)
    assert TOKEN not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


# ------------------------------------------------------------------------------------------------
# Cleartext http to a controller that is not this machine


def test_plain_http_to_another_host_is_refused_before_any_request(tmp_path):
    result = cli("http://jenkins.example.com/", cfg(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == ("error: --url http://jenkins.example.com/ must use https (plain http only to loopback:"
                             " 127.0.0.1, localhost, ::1), or it would send the API token in clear;"
                             " pass --allow-insecure-http to send it anyway\n")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://localhost/jenkins/", "https://jenkins.example.com/"])
def test_https_and_loopback_http_are_accepted(url):
    assert bootstrap.check_url(url) == url


def test_allow_insecure_http_is_explicit():
    with pytest.raises(UsageProblem, match="must use https"):
        bootstrap.check_url("http://10.0.0.5:8080/")
    assert bootstrap.check_url("http://10.0.0.5:8080/", allow_insecure_http=True) == "http://10.0.0.5:8080/"


# ------------------------------------------------------------------------------------------------
# A token file that others can read


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_token_file_others_can_read_or_write_is_refused(tmp_path, mode):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(mode)
    result = cli("http://127.0.0.1:9/", cfg(tmp_path), "--token-file", str(token_file), env={"JENKINS_API_TOKEN": ""})
    assert result.exit_code == 2
    assert result.stderr == (f"error: --token-file {token_file} is accessible to other users (mode {mode:04o});"
                             f" run: chmod 600 {token_file}\n")


def test_a_private_token_file_is_read(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    assert bootstrap.read_token(token_file, {}) == TOKEN


# ------------------------------------------------------------------------------------------------
# A crumb issuer that answers nonsense


def serve(handler_cls) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("crumb", ['"a string"', '{"crumb": "x"}', '{"crumbRequestField": 7, "crumb": "x"}',
                                   '{"crumbRequestField": "Jenkins-Crumb", "crumb": "x\\r\\nX-Evil: 1"}',
                                   '[1, 2]', 'not json'])
def test_a_malformed_crumb_answer_is_one_line(tmp_path, crumb):
    class Jenkinsish(http.server.BaseHTTPRequestHandler):
        # Answers like Jenkins (X-Jenkins on api/json, hudson.model.Api.setHeaders) except for the crumb.
        def do_GET(self):  # noqa: N802
            if self.path.startswith("/crumbIssuer/api/json"):
                body = crumb.encode()
            elif self.path.startswith("/job/enadu/api/json"):
                body = json.dumps({"_class": "com.cloudbees.hudson.plugins.folder.Folder", "jobs": []}).encode()
            else:
                body = b"{}"
            self.send_response(200)
            self.send_header("X-Jenkins", "2.452")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            return None

    server = serve(Jenkinsish)
    try:
        result = cli(f"http://127.0.0.1:{server.server_address[1]}/", cfg(tmp_path))
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 3, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "crumb" in line, line


# ------------------------------------------------------------------------------------------------
# A controller that trickles its answer, or sends too much


class Trickler:
    """Accepts connections, sends a valid-looking HTTP head quickly, then its body one byte per second."""

    def __init__(self, head: bytes, body_byte: bytes = b" ") -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.head = head
        self.body_byte = body_byte
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            for byte in self.head:
                conn.sendall(bytes([byte]))
                if self.stop.wait(0.02):
                    return
            while not self.stop.wait(1.0):
                conn.sendall(self.body_byte)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_a_trickling_controller_fails_bootstrap_within_a_bounded_time(tmp_path):
    head = b"HTTP/1.1 200 OK\r\nX-Jenkins: 2.452\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    server = Trickler(head)
    url = server.url
    lines: list[str] = []
    try:
        started = time.monotonic()
        with pytest.raises(JenkinsError) as caught:
            bootstrap.run(config.load(cfg(tmp_path)), url=url, user="admin", token=TOKEN, timeout=1.5,
                          policy=retry.Policy(backoffs=(0.1, 0.1), deadline=20), log=lines.append)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert str(caught.value) == f"cannot reach Jenkins at {url}: timed out (gave up after 3 attempts)"
    assert lines == ["list enadu: attempt #1/3 failed: timed out; will retry in 0.1 s",
                     "list enadu: attempt #2/3 failed: timed out; will retry in 0.1 s",
                     "list enadu: attempt #3/3 failed: timed out; escalating"]
    # Three attempts of at most 1.5 s each; a bound on each read alone would never end here (a byte
    # arrives every second). Generous: the machine may be busy.
    assert elapsed < 3 * 1.5 * 4, elapsed


def test_the_cli_passes_its_timeout_on(tmp_path, monkeypatch):
    seen = {}

    def fake_run(project, **kwargs):
        seen.update(kwargs)
        raise JenkinsError("stop here")

    monkeypatch.setattr(bootstrap, "run", fake_run)
    result = cli("https://jenkins.example.com/", cfg(tmp_path), "--timeout", "2.5")
    assert result.exit_code == 3 and result.stderr == "error: stop here\n"
    assert seen["timeout"] == 2.5 and seen["allow_insecure_http"] is False


def test_an_answer_larger_than_the_cap_is_refused(tmp_path):
    class Flood(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("X-Jenkins", "2.452")
            self.send_header("Content-Type", "application/json")
            self.end_headers()  # no Content-Length: read until the server closes
            chunk = b" " * 65536
            try:
                for _ in range(1024):  # 64 MiB, more than any listing or config.xml
                    self.wfile.write(chunk)
            except OSError:
                pass

        def log_message(self, *args):
            return None

    server = serve(Flood)
    try:
        result = cli(f"http://127.0.0.1:{server.server_address[1]}/", cfg(tmp_path))
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 3, result.stderr
    [line] = result.stderr.splitlines()
    assert "larger than" in line and "bytes" in line, line


def test_the_fake_jenkins_still_converges_through_the_bounded_client(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    os.chmod(token_file, 0o600)
    with FakeJenkins({"admin": User("pw", (TOKEN,))}) as fake:
        result = cli(fake.url, cfg(tmp_path), "--token-file", str(token_file), env={"JENKINS_API_TOKEN": ""})
    assert result.exit_code == 0, result.stderr
    assert "create  enadu/api" in result.stdout
