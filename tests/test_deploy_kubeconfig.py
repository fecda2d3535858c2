"""Kubeconfig problems never put a secret in the output (issue 13, finding 11, and its review).

In Jenkins the kubeconfig is a secret-file credential: its path is the credential's value (masked as
``****``), and it holds tokens, passwords, client keys, user info in the server URL and exec
credential plugins whose arguments, environment and output may carry more. Each broken kubeconfig
below holds all of them; whatever goes wrong, the helper's output names none of them, says
``<kubeconfig>`` where the client library would name the file, and exits with a documented code.
The exec plugin case follows the client library's ``ExecProvider.run`` (kubernetes/config/exec_provider.py):
on a failing plugin it logs ``exec: process returned N. <stderr>`` through the root logger.
"""

from __future__ import annotations

import copy
import json
import os
import stat

import pytest
import yaml

from tests.support import deployrun as d

FAST = {"time_scale": 0.1, "propagation_lag": 0.3, "seed": 13}
SECRETS = ("s3cret-dir", "tok-s3cret", "pw-s3cret", "deployer", "S0VZLXMzY3JldA", "arg-s3cret", "env-s3cret",
           "stderr-s3cret", "q-s3cret")
EXEC = "client.authentication.k8s.io/v1beta1"


@pytest.fixture
def world(kubeworld):
    d.prepare(kubeworld)
    return kubeworld


def secret_dir(tmp_path):
    path = tmp_path / "s3cret-dir"
    path.mkdir(exist_ok=True)
    return path


def plugin(tmp_path, body: str) -> str:
    script = secret_dir(tmp_path) / "enadu-login"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def kubeconfig(world, tmp_path, change, context=None) -> str:
    config = world.kubeconfig_dict()
    host = world.url.split("://", 1)[1]
    config["clusters"][0]["cluster"]["server"] = f"https://deployer:pw-s3cret@{host}/?token=q-s3cret"
    user = config["users"][0]["user"]
    user.update({"token": "tok-s3cret", "client-key-data": "S0VZLXMzY3JldA=="})
    change(config, tmp_path)
    path = secret_dir(tmp_path) / "kubeconfig"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return str(path)


def failing_plugin(config, tmp_path):
    config["users"][0]["user"] = {"exec": {
        "apiVersion": EXEC, "command": plugin(tmp_path, 'echo "stderr-s3cret $SECRET_ENV $*" >&2\nexit 3\n'),
        "args": ["--arg-s3cret"], "env": [{"name": "SECRET_ENV", "value": "env-s3cret"}]}}


def plugin_without_token(config, tmp_path):
    config["users"][0]["user"] = {"exec": {
        "apiVersion": EXEC, "command": plugin(tmp_path, f"echo '{json.dumps({'apiVersion': EXEC, 'kind': 'ExecCredential', 'status': {'x': 'stderr-s3cret'}})}'\n")}}


def missing_plugin(config, tmp_path):
    config["users"][0]["user"] = {"exec": {"apiVersion": EXEC, "command": str(secret_dir(tmp_path) / "enadu-login")}}


def missing_ca(config, tmp_path):
    config["clusters"][0]["cluster"]["certificate-authority"] = str(secret_dir(tmp_path) / "ca.crt")
    config["clusters"][0]["cluster"].pop("certificate-authority-data", None)
    config["clusters"][0]["cluster"].pop("insecure-skip-tls-verify", None)


def no_contexts(config, tmp_path):
    del config["contexts"]


def unknown_current_context(config, tmp_path):
    config["current-context"] = "prod-eu"


def broken_key(config, tmp_path):
    config["users"][0]["user"]["client-certificate-data"] = "Zm9v"
    config["users"][0]["user"]["client-key-data"] = "S0VZLXMzY3JldA"  # bad padding


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
@pytest.mark.parametrize(("change", "code", "message"), [
    (failing_plugin, 4, "the kubeconfig's exec credential plugin enadu-login exited with 3; its output is not shown"),
    (plugin_without_token, 4,
     "the kubeconfig's exec credential plugin enadu-login gave no token or client certificate; its output is not shown"),
    (missing_plugin, 4, "the kubeconfig's exec credential plugin enadu-login could not be started; its output is not shown"),
    (missing_ca, 2, "the kubeconfig (--kubeconfig or KUBECONFIG): File does not exist: <file>"),
    (no_contexts, 2, "the kubeconfig (--kubeconfig or KUBECONFIG): Invalid kube-config file. Expected object with"
                     " name kubeworld in <kubeconfig>/contexts list"),
    (unknown_current_context, 2, "the kubeconfig (--kubeconfig or KUBECONFIG): Invalid kube-config file. Expected"
                                 " object with name prod-eu in <kubeconfig>/contexts list"),
    (broken_key, 2, "the kubeconfig (--kubeconfig or KUBECONFIG) could not be read (Error)"),
], ids=lambda v: getattr(v, "__name__", None))
def test_kubeconfig_problems_name_no_secret(world, tmp_path, change, code, message) -> None:
    path = kubeconfig(world, tmp_path, change)
    run = d.run(world, "status", extra_env={"KUBECONFIG": path, "ENADU_API_DEADLINE": "2"})
    assert (run.returncode, run.result["message"]) == (code, message), run.stdout + run.stderr
    output = run.stdout + run.stderr
    assert "Traceback" not in output
    for secret in SECRETS + (path, str(tmp_path)):
        assert secret not in output, secret


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_an_unknown_context_and_an_empty_kubeconfig(world, tmp_path) -> None:
    path = kubeconfig(world, tmp_path, lambda c, t: None)
    run = d.run(world, "status", "--context", "nope", extra_env={"KUBECONFIG": path})
    assert run.returncode == 2
    assert run.result["message"] == ("the kubeconfig (--kubeconfig or KUBECONFIG): Invalid kube-config file."
                                     " Expected object with name nope in <kubeconfig>/contexts list")
    empty = secret_dir(tmp_path) / "empty"
    empty.write_text("")
    run2 = d.run(world, "status", extra_env={"KUBECONFIG": str(empty)})
    assert run2.returncode == 2
    assert run2.result["message"] == "the kubeconfig (--kubeconfig or KUBECONFIG): Invalid kube-config. <kubeconfig> file is empty"
    for secret in SECRETS + (str(tmp_path),):
        assert secret not in run.stdout + run.stderr + run2.stdout + run2.stderr, secret


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_working_exec_plugin_is_used(world, tmp_path) -> None:
    token = world.add_token("exec-user")

    def working(config, tmp):
        answer = {"apiVersion": EXEC, "kind": "ExecCredential", "status": {"token": token}}
        config["users"][0]["user"] = {"exec": {"apiVersion": EXEC, "command": plugin(tmp, f"echo '{json.dumps(answer)}'\n")}}
        config["clusters"][0]["cluster"]["server"] = world.url

    run = d.run(world, "status", extra_env={"KUBECONFIG": kubeconfig(world, tmp_path, working)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert token not in run.stdout + run.stderr


@pytest.mark.parametrize("kubeworld", [FAST], indirect=True)
def test_a_plugin_failing_to_renew_the_token_is_one_line(world, tmp_path) -> None:
    """The first run of the plugin gives a token that has already expired; each later run (the
    library runs it again before a request when the token expired: ``_refresh_api_key`` in
    kubernetes/config/kube_config.py) fails and prints secrets."""
    token = world.add_token("exec-user")
    marker = tmp_path / "ran-once"
    answer = {"apiVersion": EXEC, "kind": "ExecCredential",
              "status": {"token": token, "expirationTimestamp": "2020-01-01T00:00:00Z"}}

    def renewing(config, tmp):
        body = (f"if [ -e {marker} ]; then echo \"stderr-s3cret $SECRET_ENV\" >&2; exit 7; fi\n"
                f"touch {marker}\necho '{json.dumps(answer)}'\n")
        config["users"][0]["user"] = {"exec": {"apiVersion": EXEC, "command": plugin(tmp, body),
                                               "env": [{"name": "SECRET_ENV", "value": "env-s3cret"}]}}
        config["clusters"][0]["cluster"]["server"] = world.url

    path = kubeconfig(world, tmp_path, renewing)
    run = d.run(world, "status", extra_env={"KUBECONFIG": path})
    assert run.returncode == 0, run.stdout + run.stderr  # the library keeps the old token, which still works
    assert ("warning: the kubeconfig's exec credential plugin enadu-login exited with 7 while renewing the token;"
            " its output is not shown") in run.stderr
    assert run.stderr.count("enadu-login") == 1
    for secret in SECRETS + (token, str(tmp_path)):
        assert secret not in run.stdout + run.stderr, secret

    world.tokens.pop(token)  # now the old token is refused too: the plugin's failure is the message
    marker.unlink()
    run = d.run(world, "status", extra_env={"KUBECONFIG": path})
    assert run.returncode == 4, run.stdout + run.stderr
    assert run.result["message"] == ("get service backend: the kubeconfig's exec credential plugin enadu-login"
                                     " exited with 7 while renewing the token; its output is not shown")
    for secret in SECRETS + (token, str(tmp_path)):
        assert secret not in run.stdout + run.stderr, secret
