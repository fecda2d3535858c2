"""Generated Groovy compiles under Groovy 2.4.21, lints clean, and carries hostile values as data."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import GROOVY_SUPPORT, LINT_BIN, REPO, generated_groovy, groovy_compile, java_env, run_groovy, seed_bundle

from enadu_pipelines import escaping
from enadu_pipelines.cli import main

HOSTILE = [
    "'", '"', "\\", "\\'", "'''", '"""', "${env.SECRET}", "$(id)", "`id`", "\\u0027", "\\\\u0027",
    "\\u0027; error('x') //", "x'; sh 'touch /tmp/pwned'; '", "/* */ println 'x'", "// comment",
    "a\\nb", "tab\tnew\nline\rret", "caf\u00e9", "\U0001F680 rocket", "\u202e\u2066 bidi", "\u00a0nbsp",
    "#{x} %{y} {{ z }}", "@everyone <@&123>", "", " ", "$", "${", "\\$", "ends with backslash\\",
]


def test_every_generated_file_compiles() -> None:
    files = generated_groovy(REPO)
    assert len(files) == 9 + 3 + 3  # vars steps, each service's Jenkinsfile and Jenkinsfile.ops
    result = groovy_compile(files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"ok {f}" for f in files]


def test_compile_check_rejects_broken_groovy(tmp_path: Path) -> None:
    """The checker itself can fail: an unclosed block and a bad annotation are reported."""
    (tmp_path / "Jenkinsfile").write_text("@Library('enadu@v1') _\npipeline {\n    agent any\n")
    (tmp_path / "bad.groovy").write_text("@NoSuchAnnotation\ndef call(Map args = [:]) { }\n")
    result = groovy_compile([tmp_path / "Jenkinsfile", tmp_path / "bad.groovy"])
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"error {tmp_path}/Jenkinsfile: ")
    assert lines[1].startswith(f"error {tmp_path}/bad.groovy: ") and "NoSuchAnnotation" in lines[1]


def lint(files: list[Path]) -> dict:
    assert LINT_BIN.exists(), "npm-groovy-lint is not installed (scripts/test runs npm ci in tests/lint)"
    result = subprocess.run(
        [str(LINT_BIN), "--config", str(REPO / ".groovylintrc.json"), "--output", "json", "--failon", "none",
         "--noserver", *map(str, files)],
        capture_output=True, text=True, env=java_env(), cwd=REPO, timeout=600,
    )
    start = result.stdout.find("{")
    assert start >= 0, result.stdout + result.stderr
    return json.loads(result.stdout[start:])


def test_generated_groovy_lints_clean() -> None:
    files = generated_groovy(REPO)
    report = lint(files)
    assert len(report["files"]) == len(files)
    problems = [
        f"{Path(name).relative_to(REPO)}:{e['line']}: {e['severity']} {e['rule']}: {e['msg']}"
        for name, entry in report["files"].items() for e in entry.get("errors", [])
        if e["severity"] in ("error", "warning")
    ]
    assert problems == []


def test_lint_reports_errors_in_bad_groovy(tmp_path: Path) -> None:
    """The lint run can fail: a parse error is reported as an error."""
    (tmp_path / "Jenkinsfile").write_text("pipeline {\n    stages {\n        stage('x' {\n")
    report = lint([tmp_path / "Jenkinsfile"])
    severities = [e["severity"] for entry in report["files"].values() for e in entry.get("errors", [])]
    assert "error" in severities


def test_groovy_literals_round_trip_through_groovy(tmp_path: Path) -> None:
    """Every string, hostile or random, comes back from real Groovy 2.4.21 exactly as it went in."""
    rng = random.Random(20261124)
    alphabet = "'\"\\$`{}()[];/*\n\r\t\b\f u\u00e9\u202e\U0001F680x0"
    values = HOSTILE + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    script = "[\n" + ",\n".join(escaping.groovy_string(v) for v in values) + "\n].each { String s ->\n" \
        "    println(s.getBytes('UTF-8').encodeHex().toString())\n}\n"
    result = run_groovy(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert [bytes.fromhex(line).decode("utf-8") for line in result.stdout.splitlines()] == values


def test_groovy_comment_stays_one_inert_line() -> None:
    for value in HOSTILE:
        text = escaping.groovy_comment(value)
        assert "\n" not in text and "\r" not in text and "\\" not in text
        assert all(0x20 <= ord(c) < 0x7F for c in text)


def test_groovy_refuses_control_characters() -> None:
    with pytest.raises(ValueError, match="U\\+0000"):
        escaping.groovy_string("a\x00b")


def test_yaml_and_xml_literals_round_trip() -> None:
    for value in HOSTILE:
        if any(ord(c) < 0x20 and c not in "\t\n\r" for c in value):
            continue
        assert yaml.safe_load(f"key: {escaping.yaml_string(value)}\n") == {"key": value}
        element = ET.fromstring(f'<a b="{escaping.xml_text(value)}">{escaping.xml_text(value)}</a>')
        assert (element.text or "", element.get("b")) == (value, value)


def record(jenkinsfile: Path) -> list[dict]:
    result = subprocess.run(
        [shutil.which("groovy") or "groovy", str(GROOVY_SUPPORT / "record.groovy"), str(GROOVY_SUPPORT / "stubs"),
         str(jenkinsfile)], capture_output=True, text=True, env=java_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


HOSTILE_DESCRIPTION = "It's \"Enadu\" ${env.DISCORD_WEBHOOK_URL} \\u0027; sh 'id' // $(id) `id` \\ caf\u00e9 \U0001F680"


def test_hostile_but_valid_values_stay_literal(tmp_path: Path, runner) -> None:
    data = yaml.safe_load((REPO / "enadu.yaml").read_text())
    backend = data["services"]["backend"]
    backend["description"] = HOSTILE_DESCRIPTION
    backend["branch"] = "feature/x_y-1.2"
    backend["paths"] = ["backend/**/*.java", "common/?/**"]
    backend["build"] = {"commands": ["./gradlew --no-daemon -Dorg.gradle.jvmargs=-Xmx1g :backend:build"]}
    (tmp_path / "hostile.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    seed_bundle(tmp_path)
    result = runner.invoke(main, ["render", "--config", str(tmp_path / "hostile.yaml"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    jenkinsfile = tmp_path / "pipelines" / "backend" / "Jenkinsfile"
    assert groovy_compile([jenkinsfile]).returncode == 0
    calls = record(jenkinsfile)
    by_step = {c["step"]: c for c in calls}
    assert by_step["enaduNotify"]["args"]["title"] == HOSTILE_DESCRIPTION
    assert by_step["enaduCheckout"]["args"]["branch"] == "feature/x_y-1.2"
    assert by_step["enaduChanges"]["args"]["paths"] == ["backend/**/*.java", "common/?/**"]
    assert by_step["enaduBuild"]["args"]["commands"] == ["./gradlew --no-daemon -Dorg.gradle.jvmargs=-Xmx1g :backend:build"]
    # nothing else ran: the recorded steps are exactly the pipeline's own
    assert {c["step"] for c in calls} == {
        "pipeline", "agent", "triggers", "githubPush", "options", "disableConcurrentBuilds", "skipDefaultCheckout",
        "timeout",
        "buildDiscarder", "logRotator", "timestamps", "stages", "stage", "steps", "when", "environment",
        "enaduCheckout", "enaduChanges", "enaduTest", "enaduBuild", "enaduImage", "enaduDeploy", "post", "always",
        "enaduNotify"}
    first_line = jenkinsfile.read_text().splitlines()[0]
    assert first_line == "// backend: It's \"Enadu\" ${env.DISCORD_WEBHOOK_URL} ?u0027; sh 'id' // $(id) `id` ? caf? ?"


def test_recorder_sees_the_shipped_pipelines() -> None:
    """The recorder reads the real Jenkinsfiles: frontend has no Test stage, backend does."""
    names = {s: [c["positional"][0] for c in record(REPO / f"pipelines/{s}/Jenkinsfile") if c["step"] == "stage"]
             for s in ("backend", "frontend")}
    assert names == {"backend": ["Checkout", "Changes", "Test", "Build", "Image", "Deploy"],
                     "frontend": ["Checkout", "Changes", "Build", "Image", "Deploy"]}
