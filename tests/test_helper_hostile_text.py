"""Hostile text reaching the helper's output (issue 13, findings 9, 13c and 18).

File names and history entries are written by whoever controls a repository or can patch a
Service; they must never print as console lines of their own (a newline followed by
"Finished: SUCCESS" looks like Jenkins' own last line), nor move the cursor or recolour the log
(ANSI escapes). A result file is written by an earlier step and may be damaged or hostile: notify
must still post. Jenkins' BUILD_URL may end in a newline: the message must still go out.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from enadu_pipelines.helper.cli import main
from enadu_pipelines.helper.report import Reporter, printable
from support.fakediscord import FakeDiscord

HOSTILE = "x\nFinished: SUCCESS\r\x1b[31mred\x1b[0m\u0085\u2028\u202eevil"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def assert_no_fake_line(text: str) -> None:
    for line in text.splitlines():
        assert not line.startswith("Finished"), line
    assert "\x1b" not in text and "\r" not in text and "\u0085" not in text and "\u2028" not in text
    assert "\u202e" not in text


def test_printable_escapes_every_control_character_visibly():
    assert printable("a\nb\rc\x1b[31md\x00e\x7ff\u0085g\u2028h\u202ei\tj") == \
        "a\\nb\\rc\\x1b[31md\\x00e\\x7ff\\x85g\\u2028h\\u202ei\\tj"
    assert printable("ünï cödé [1] \U0001F468\u200d\U0001F469") == "ünï cödé [1] \U0001F468\u200d\U0001F469"


def git(repo: Path, *argv: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), "-c", "commit.gpgsign=false", *argv], env=dict(os.environ, **GIT_ENV),
                          capture_output=True, text=True, check=True, timeout=60)
    return proc.stdout.strip()


def test_a_hostile_file_name_prints_as_one_escaped_line(tmp_path, monkeypatch, capsys):
    for name in list(os.environ):
        if name.startswith("ENADU_") or name.startswith("GIT_") or name == "BUILD_URL":
            monkeypatch.delenv(name)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("x\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "initial")
    base = git(repo, "rev-parse", "HEAD")
    name = "backend/a\nFinished: SUCCESS\n\x1b[31mb\rc.txt"
    (repo / "backend").mkdir()
    (repo / name).write_text("y\n")
    git(repo, "add", "--", name)
    git(repo, "commit", "-q", "-m", "hostile name")
    head = git(repo, "rev-parse", "HEAD")
    monkeypatch.setenv("ENADU_SERVICE", "backend")
    monkeypatch.setenv("ENADU_PATHS", "backend/**")
    code = main(["changes", "--repo", str(repo), "--commit", head, "--previous", base])
    out, err = capsys.readouterr()
    assert code == 0
    assert_no_fake_line(out + err)
    assert "backend/a\\nFinished: SUCCESS\\n\\x1b[31mb\\rc.txt" in out
    # the JSON output keeps the exact name (JSON escapes it)
    code = main(["changes", "--repo", str(repo), "--commit", head, "--previous", base, "--output", "json"])
    out, err = capsys.readouterr()
    assert json.loads(out)["matched"] == [{"status": "A", "path": name}]
    assert_no_fake_line(out + err)


def test_a_hostile_history_entry_prints_as_one_escaped_line():
    stream = io.StringIO()
    reporter = Reporter("status", stream=stream)
    entry = {"at": "2026-01-01T00:00:00Z", "colour": "blue", "image": "registry.example/app:1" + HOSTILE}
    reporter.log(f"  history: {entry['at']} {entry['colour']} {entry['image']}")
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert_no_fake_line(text)
    assert "app:1x\\nFinished: SUCCESS\\r\\x1b[31mred" in text


def test_an_error_message_prints_as_one_line(tmp_path, monkeypatch, capsys):
    for name in list(os.environ):
        if name.startswith("ENADU_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ENADU_SERVICE", "backend")
    monkeypatch.setenv("ENADU_PATHS", "backend/**")
    code = main(["changes", "--repo", str(tmp_path / ("nope" + HOSTILE)), "--commit", "HEAD"])
    out, err = capsys.readouterr()
    assert code in (1, 2)
    assert_no_fake_line(out + err)


# -- notify --------------------------------------------------------------------------------------

BUILD_URL = "https://ci.enadu.dev/job/enadu/job/backend/42/"


@pytest.fixture
def env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("ENADU_") or name in ("JOB_NAME", "BUILD_NUMBER", "BUILD_URL", "GIT_COMMIT", "GIT_BRANCH",
                                                 "GIT_URL", "DISCORD_WEBHOOK_URL"):
            monkeypatch.delenv(name)
    for name, value in {"ENADU_SERVICE": "backend", "ENADU_BUILD_RESULT": "FAILURE", "JOB_NAME": "enadu/backend",
                        "BUILD_NUMBER": "42", "BUILD_URL": BUILD_URL, "ENADU_NOTIFY_TIMEOUT": "10"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return monkeypatch


@pytest.fixture
def fake(env):
    with FakeDiscord() as server:
        env.setenv("DISCORD_WEBHOOK_URL", server.url)
        yield server


def posted_fields(fake) -> dict:
    assert len(fake.messages) == 1
    return {f["name"]: f["value"] for f in fake.messages[0]["payload"]["embeds"][0]["fields"]}


@pytest.mark.parametrize("url", [BUILD_URL + "\n", BUILD_URL + "\r\n", "  " + BUILD_URL + "\n\n"])
def test_a_build_url_ending_in_a_newline_still_posts_with_its_link(fake, env, capsys, url):
    env.setenv("BUILD_URL", url)
    code = main(["notify"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert fake.messages[0]["payload"]["embeds"][0]["url"] == BUILD_URL


@pytest.mark.parametrize("url", [BUILD_URL + "\nFinished: SUCCESS", "javascript:alert(1)", BUILD_URL + "\x1b[31m",
                                 "https://ci.enadu.dev/job/a b/"])
def test_a_build_url_that_is_not_one_url_posts_without_a_link(fake, env, capsys, url):
    env.setenv("BUILD_URL", url)
    code = main(["notify"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert "url" not in fake.messages[0]["payload"]["embeds"][0]


def nested(depth: int) -> str:
    return '{"outcome": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("which", ["ENADU_DEPLOY_FILE", "ENADU_CHANGES_FILE"])
@pytest.mark.parametrize("content", [
    nested(200_000),  # RecursionError in json
    '{"matched": "' + "a" * (12 << 20) + '"}',  # far larger than any real result
    '{"changed": true, "basis": "diff", "matched": [1, 2, {"path": 3}], "paths": 5}',  # wrong types
    '{"outcome": "deployed", "analysis": {"checks": 7}, "image": {"a": 1}}',
])
def test_a_hostile_result_file_still_posts(fake, env, capsys, tmp_path, which, content):
    path = tmp_path / "result.json"
    path.write_text(content)
    env.setenv(which, str(path))
    code = main(["notify"])
    _, err = capsys.readouterr()
    assert code == 0, err
    field = posted_fields(fake)["Deploy" if which == "ENADU_DEPLOY_FILE" else "Changes"]
    mismatched = (content.startswith('{"outcome"') and which == "ENADU_CHANGES_FILE") or \
        (content.startswith('{"changed"') and which == "ENADU_DEPLOY_FILE")
    if not mismatched:  # a file of the other command's shape is merely odd, not unreadable
        assert field.startswith("result file unreadable (")


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_an_endless_result_file_is_not_read(fake, env, capsys, tmp_path, kind):
    """A FIFO nobody writes would block the open forever, /dev/zero would fill the memory: result
    files are regular files, anything else is unreadable at once."""
    if kind == "fifo":
        path = tmp_path / "endless.json"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    env.setenv("ENADU_DEPLOY_FILE", str(path))
    code = main(["notify"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert posted_fields(fake)["Deploy"] == "result file unreadable (not a regular file)"
