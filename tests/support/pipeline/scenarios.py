"""Scenarios for the generated Enadu pipelines: what Jenkins, git, the tools and the helper answer.

A scenario is plain JSON data for the harness (README.md in this directory documents every key).
:func:`service_scenario` builds one for a service of an enadu.yaml: the job and build number, the
two checkouts (the pipelines repository Jenkins reads the Jenkinsfile from, and the service's
repository), fake credentials, and one ``sh`` rule per command the pipeline is expected to run.
``strictSh`` makes any other command fail the run, so an unexpected command cannot go unnoticed.

The helper's ``changes`` decision is imitated from the changed files and the ``ENADU_PATHS`` the
step passes (see Dsl.changesStatus), so the same "what changed" drives all three pipelines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from enadu_pipelines import config

from .client import HELPER_RUN, REPO

COMMIT = "3f9c2a1d8e7b6a5c4d3e2f1a0b9c8d7e6f5a4b3c"
PREVIOUS_COMMIT = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
PIPELINES_COMMIT = "ffffeeee0000111122223333444455556666aaaa"
BUILD_NUMBER = 57

# Fake secret values: distinctive, so any appearance in a command line, log or file is a leak.
CREDENTIALS: dict[str, dict[str, Any]] = {
    "enadu-github": {"type": "usernamePassword", "username": "enadu-bot", "password": "FAKE-github-token-6c1d0e"},
    "enadu-registry": {"type": "usernamePassword", "username": "enadu-ci", "password": "FAKE-registry-pass-93ab7f"},
    "enadu-kubeconfig": {"type": "file",
                         "content": "apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user: {token: FAKE-kube-token-5e2f11}\n"},
    "enadu-discord-webhook": {"type": "string",
                              "secret": "https://discord.com/api/webhooks/123456789012345678/FAKE-webhook-token-d41d8c"},
    "enadu-grafana-token": {"type": "string", "secret": "glsa_FAKE-grafana-token-7b3e90"},
}

# How long each command takes on the fake clock (ms); the notification must report their sum.
DURATIONS = {"checkout": 3_000, "changes": 2_000, "test": 61_000, "build": 47_000, "image": 33_000,
             "deploy": 95_000, "notify": 1_000}


def load_project(path: Path = REPO / "enadu.yaml") -> config.Project:
    return config.load(path)


def service(project: config.Project, name: str) -> config.Service:
    return next(s for s in project.services if s.name == name)


def helper_rule(command: str, **extra: Any) -> dict[str, Any]:
    return {"id": command, "script": "\n" + re.escape(HELPER_RUN + command) + "\n$", **extra}


def service_scenario(project: config.Project, name: str, *, changed_files: list[str] | None = None,
                     build_number: int = BUILD_NUMBER, commit: str = COMMIT, previous_result: str | None = "SUCCESS",
                     test_exit: int = 0, failed_tests: int = 0, push_exit: int = 0, deploy_exit: int = 0,
                     deploy_outcome: dict[str, Any] | None = None, notify_exit: int = 0,
                     commit_message: str = "Merge pull request #12 from enadu/feature") -> dict[str, Any]:
    """A build of service ``name`` in which ``changed_files`` changed since the last success."""
    svc = service(project, name)
    changed = list(changed_files if changed_files is not None else [f"{name}/src/main/App.java"])
    outcome = deploy_outcome if deploy_outcome is not None else {
        "outcome": "deployed" if deploy_exit == 0 else "failed", "service": name, "colour": "green"}
    sh: list[dict[str, Any]] = [
        helper_rule("changes", changedFiles=changed, durationMs=DURATIONS["changes"]),
    ]
    if svc.test_enabled:
        for command in svc.test_commands:
            sh.append({"id": "test", "script": "^" + re.escape(command) + "$", "status": test_exit,
                       "durationMs": DURATIONS["test"]})
    for command in svc.build_commands:
        sh.append({"id": "build", "script": "^" + re.escape(command) + "$", "durationMs": DURATIONS["build"]})
    sh += [
        {"id": "image", "label": "^docker build and push ", "status": push_exit, "durationMs": DURATIONS["image"]},
        helper_rule("deploy", status=deploy_exit, durationMs=DURATIONS["deploy"],
                    writes={"$ENADU_RESULT_FILE": json.dumps(outcome)}),
        helper_rule("notify", status=notify_exit, durationMs=DURATIONS["notify"]),
    ]
    job = f"{project.jenkins.folder}/{name}"
    return {
        "job": {
            "name": job,
            "buildNumber": build_number,
            "jenkinsUrl": "https://jenkins.enadu.dev/",
            # bootstrap creates "Pipeline script from SCM" jobs reading pipelines/<service>/Jenkinsfile
            "fromScm": True,
            "scm": {"url": project.library.repository, "branch": project.library.version},
            "previousResult": previous_result,
        },
        "credentials": CREDENTIALS,
        "checkout": [
            {"url": project.library.repository, "durationMs": DURATIONS["checkout"],
             "returns": {"GIT_COMMIT": PIPELINES_COMMIT, "GIT_BRANCH": f"origin/{project.library.version}",
                         "GIT_URL": project.library.repository}},
            {"url": svc.repository, "durationMs": DURATIONS["checkout"],
             "returns": {"GIT_COMMIT": commit, "GIT_PREVIOUS_COMMIT": PREVIOUS_COMMIT,
                         "GIT_PREVIOUS_SUCCESSFUL_COMMIT": PREVIOUS_COMMIT, "GIT_BRANCH": f"origin/{svc.branch}",
                         "GIT_LOCAL_BRANCH": svc.branch, "GIT_URL": svc.repository},
             "changeSet": [{"commitId": commit, "msg": commit_message, "author": "dev",
                            "affectedPaths": changed}]},
        ],
        "sh": sh,
        "strictSh": True,
        "junit": [{"testResults": svc.junit, "total": 120, "failed": failed_tests}] if svc.junit else [],
    }


def secret_values() -> list[str]:
    values = []
    for c in CREDENTIALS.values():
        values += [str(c[k]) for k in ("password", "secret", "content") if k in c]
    return values
