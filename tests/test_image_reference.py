"""The image-reference rule (issue 13, findings 1 and 20): the grammar of github.com/distribution/reference
(regexp.go), which the kubelet parses images with, plus a tag or a digest; the same rule in the helper
(``deploy --image``, the history a rollback reads) and in the generated ``enaduDeploy`` step."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, run_groovy
from enadu_pipelines import escaping
from enadu_pipelines.helper import imageref

SHA = "sha256:" + "0123456789abcdef" * 4

ACCEPTED = [
    "registry.enadu.dev/enadu/backend:7f3c2a1-42",
    "nginx:1.27",  # a short name: docker.io/library/nginx
    "library/nginx:1.27",
    f"nginx@{SHA}",
    f"registry.enadu.dev/enadu/backend:v1@{SHA}",  # tag and digest: the digest decides
    "localhost:5000/enadu/backend:v1",
    "127.0.0.1:5000/app:1",
    "[::1]:5000/app:1",
    "Registry.Example.COM/app:1",  # the host may have capitals, the path may not
    "a__b/c---d/e.f_g:X_1.y-z",
    "app:" + "t" * 128,
    "app@sha512:" + "ab" * 64,
]

REFUSED = [
    ("EVIL.example.com/Backdoor", "its repository path must be lower-case"),
    ("Registry/Backend:latest", "its repository path must be lower-case"),
    ("nginx", "it has no tag or digest"),
    ("registry.enadu.dev:5000/enadu/backend", "it has no tag or digest"),
    ("app:-bad", "its tag is not 1-128 letters"),
    ("app:" + "t" * 129, "its tag is not 1-128 letters"),
    ("app@sha256:abc", "its digest is not sha256:"),
    ("app@md5:" + "a" * 32, "its digest is not sha256:"),
    ("app@sha256:" + "A" * 64, "its digest is not sha256:"),
    ("app:1 ; rm -rf /", "it contains a space, a control character"),
    ("app:1\nFinished: SUCCESS", "it contains a space, a control character"),
    ("app:1\u200b", "it contains a space, a control character or a non-ASCII character"),
    ("", "it is empty"),
    ("-app:1", "its name is not [host[:port]/]path"),
    ("app//x:1", "its name is not [host[:port]/]path"),
    ("x/" + "a" * 300 + ":1", "its name is longer than 255 characters"),
    ("a" * 2000, "it is longer than 1000 characters"),
]


@pytest.mark.parametrize("ref", ACCEPTED)
def test_references_kubernetes_accepts_are_accepted(ref: str) -> None:
    assert imageref.problem(ref) is None
    assert imageref.check(ref, "--image") is None


@pytest.mark.parametrize(("ref", "said"), REFUSED)
def test_invalid_references_are_refused_with_the_reason_and_the_rule(ref: str, said: str) -> None:
    assert said in imageref.problem(ref)
    message = imageref.check(ref, "--image")
    assert message.startswith("--image: ") and "\n" not in message and len(message) < 600
    assert message.endswith(f"(the rule: {imageref.RULE})")


def test_the_repository_is_the_name_without_tag_or_digest() -> None:
    assert imageref.repository(f"registry.enadu.dev/enadu/backend:v1@{SHA}") == "registry.enadu.dev/enadu/backend"
    assert imageref.repository("localhost:5000/app:1") == "localhost:5000/app"
    assert imageref.repository("EVIL/Backdoor") is None


def test_the_enadu_deploy_step_lets_every_valid_reference_through_to_the_helper(tmp_path: Path) -> None:
    """The generated step checks ``image`` with ``==~`` against the grammar's characters; Java's regex
    must let every reference the helper accepts through (the helper then applies the whole rule), and
    PINNED must read the same in Java as in Python."""
    step = (REPO / "vars" / "enaduDeploy.groovy").read_text()
    assert f"image.toString() ==~ {escaping.groovy_string(imageref.CHARACTERS)}" in step
    refs = ACCEPTED + [ref for ref, said in REFUSED if "\n" not in ref and "longer than" not in said]
    script = ("String chars = " + escaping.groovy_string(imageref.CHARACTERS) + "\n"
              "String pinned = " + escaping.groovy_string(imageref.PINNED) + "\n[\n"
              + ",\n".join(escaping.groovy_string(r) for r in refs) + "\n].each { String s ->\n"
              "    println((s ==~ chars).toString() + ' ' + (s ==~ pinned).toString())\n}\n")
    result = run_groovy(script, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines] == [str(imageref.problem(r) is None).lower() for r in refs]
    assert all(line.split()[0] == "true" for line, r in zip(lines, refs) if imageref.problem(r) is None)
    assert [r for line, r in zip(lines, refs) if line.split()[0] == "true" and (" " in r or r == "")] == []


@pytest.mark.parametrize(("ref", "accepted"), [("nginx:1.27", True), (f"registry.enadu.dev/enadu/backend:v1@{SHA}", True),
                                               ("EVIL.example.com/Backdoor", False)])
def test_deploy_takes_its_image_by_the_rule(tmp_path: Path, ref: str, accepted: bool) -> None:
    """Through the command line: an accepted image gets as far as looking for cluster credentials."""
    import json
    import os
    import subprocess
    import sys

    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "enadu_pipelines.helper.cli", "deploy", "--service", "backend",
                          "--image", ref, "--manifest", str(REPO / "resources/enadu/k8s/backend.yaml"),
                          "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 2
    if accepted:
        assert result["message"].startswith("no cluster credentials") and result["image"] == ref
    else:
        assert result["message"] == imageref.check(ref, "--image") and "image" not in result
