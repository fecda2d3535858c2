"""enaduImage for real: the shell script the step hands to `sh`, run with real builders against a real
registry.

The script and its environment are taken from the pipeline harness's trace of a small Jenkinsfile
calling `enaduImage` (so what runs is exactly what the generated vars/enaduImage.groovy passes to
`sh`, after its argument checks, withEnv and withCredentials), then run as Jenkins' durable-task
runs a script without a shebang (`sh -xe script`) in a workspace holding a `FROM scratch` + `COPY`
Dockerfile. The registry is Debian's docker-registry on loopback with htpasswd auth
(tests/support/ociregistry). buildah runs daemonless with a private vfs store; the docker CLI talks
to Podman's Docker-compatible API (there is no Docker daemon on the test machines). While the
script runs, every process's command line (/proc/*/cmdline) is watched for the password.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from enadu_pipelines import config, render

from support.ociregistry import buildah_env
from support.ociregistry.fixtures import oci_registry, podman_docker  # noqa: F401  (fixtures)
from support.pipeline.client import REPO, Run, harness

COMMIT = "3f9c2a1d8e7b6a5c4d3e2f1a0b9c8d7e6f5a4b3c"
BUILD = 57
TAG = f"{COMMIT[:7]}-{BUILD}"

JENKINSFILE = """\
@Library('enadu') _
pipeline {
    agent any
    options {
        skipDefaultCheckout()
    }
    stages {
        stage('Image') {
            steps {
                enaduImage(%s)
            }
        }
    }
}
"""


def groovy_args(args: dict) -> str:
    return ", ".join(f"{k}: {json.dumps(v) if isinstance(v, bool) else repr(v)}" for k, v in args.items())


_LIBRARIES: dict[str, Path] = {}


def library_for(registry_host: str) -> Path:
    """The library as `render` writes it for the shipped enadu.yaml with ``registry.host`` set to the
    test registry: the step sends the registry login only to the host the library pins it to
    (resources/enadu/credential-hosts.txt, issue 13 finding 3)."""
    if registry_host not in _LIBRARIES:
        root = Path(tempfile.mkdtemp(prefix="enadu-library-"))
        atexit.register(shutil.rmtree, root, True)
        data = yaml.safe_load((REPO / "enadu.yaml").read_text("utf-8"))
        data["registry"]["host"] = registry_host
        (root / "enadu.yaml").write_text(yaml.safe_dump(data), "utf-8")
        for rel, content in render.render_files(config.load(root / "enadu.yaml"), b"").items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(content)
        _LIBRARIES[registry_host] = root
    return _LIBRARIES[registry_host]


def run_step(args: dict, username: str, password: str) -> Run:
    scenario = {"job": {"name": "enadu/backend", "buildNumber": BUILD}, "env": {"GIT_COMMIT": COMMIT},
                "credentials": {"enadu-registry": {"type": "usernamePassword", "username": username,
                                                   "password": password}},
                "sh": [{"id": "image", "label": "build and push ", "status": 0}], "strictSh": True}
    return harness().run(text=JENKINSFILE % groovy_args({"credentialsId": "enadu-registry", **args}), scenario=scenario,
                         library=library_for(args["image"].split("/")[0]))


def image_sh(args: dict, registry) -> tuple[Run, dict]:
    run = run_step(args, registry.username, registry.password)
    assert run.valid and run.result == "SUCCESS", run.describe()
    assert not run.leaks, run.leaks
    (entry,) = run.steps("sh")
    return run, entry


def workspace_with_dockerfile(root: Path, kind: str = "errors") -> Path:
    ws = root / "workspace"
    (ws / "app").mkdir(parents=True)
    (ws / "app" / "hello.txt").write_text("hello from enaduImage\n")
    (ws / "app" / "Dockerfile").write_text(f"FROM scratch\nCOPY hello.txt /hello.txt\nLABEL io.enadu.test.kind={kind}\n")
    return ws


class CmdlineWatch:
    """Polls every process's command line for secrets while a command runs."""

    def __init__(self, *secrets: str) -> None:
        self.secrets = [s.encode() for s in secrets if s]
        self.hits: list[str] = []
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "CmdlineWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        me = str(os.getpid())
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmdline = f.read()
                except OSError:
                    continue
                if not cmdline:
                    continue
                words = cmdline.split(b"\0")
                self.seen.add(os.path.basename(words[0].decode(errors="replace")) + " " + words[1].decode(errors="replace")
                              if len(words) > 1 else words[0].decode(errors="replace"))
                if any(s in cmdline for s in self.secrets):
                    self.hits.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
            time.sleep(0.002)


def run_for_real(entry: dict, root: Path, workspace: Path, extra_env: dict, secrets: list[str]):
    """Run the traced `sh` as Jenkins would: the script in a file, `sh -xe` on it, in the workspace,
    with the step's environment (Jenkins' paths replaced by the test's)."""
    tmp = root / "agent-tmp"
    tmp.mkdir()
    script = root / "script.sh"
    script.write_text(entry["args"]["script"])
    env = dict(entry["env"])
    env.update(HOME=str(root / "home"), WORKSPACE=str(workspace), WORKSPACE_TMP=str(tmp), TMPDIR=str(tmp),
               PATH=os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), **extra_env)
    (root / "home").mkdir()
    began = time.monotonic()
    with CmdlineWatch(*secrets) as watch:
        proc = subprocess.run(["/bin/sh", "-xe", str(script)], cwd=workspace, env=env, capture_output=True,
                              text=True, timeout=300)
    elapsed = time.monotonic() - began
    return proc, watch, elapsed, tmp


def test_buildah_builds_and_pushes_to_a_real_registry_without_exposing_the_password(oci_registry, tmp_path):
    ws = workspace_with_dockerfile(tmp_path)
    run, entry = image_sh({"image": f"{oci_registry.host}/enadu/backend", "context": "app",
                           "dockerfile": "app/Dockerfile", "builder": "buildah", "insecure": True}, oci_registry)
    ref = f"{oci_registry.host}/enadu/backend:{TAG}"
    assert run.steps("enaduImage")[0]["returned"] == ref
    assert entry["args"]["label"] == f"buildah build and push {ref}"
    assert entry["env"]["ENADU_TLS_VERIFY"] == "false" and entry["env"]["ENADU_STORAGE_DRIVER"] == "vfs"
    assert oci_registry.password not in entry["args"]["script"]

    env = buildah_env(tmp_path / "containers", base={})
    proc, watch, elapsed, agent_tmp = run_for_real(entry, tmp_path, ws, {"CONTAINERS_STORAGE_CONF": env["CONTAINERS_STORAGE_CONF"]},
                                                   [oci_registry.password])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(f"buildah build + push: {elapsed:.2f} s; registry started in {oci_registry.start_seconds:.3f} s")

    digest = oci_registry.has_manifest("enadu/backend", TAG)
    assert digest and digest.startswith("sha256:")
    assert oci_registry.tags("enadu/backend") == [TAG]
    labels = oci_registry.labels("enadu/backend", TAG)
    assert labels["org.opencontainers.image.revision"] == COMMIT
    assert labels["io.enadu.test.kind"] == "errors"
    assert oci_registry.manifest_pushes("enadu/backend") == 1
    assert oci_registry.blob_uploads("enadu/backend") == 2  # the COPY layer and the config

    # the password: never on a command line, never in the output (sh -x traces every command)
    assert any(seen.startswith("buildah ") for seen in watch.seen), sorted(watch.seen)[:20]
    assert watch.hits == []
    assert oci_registry.password not in proc.stdout + proc.stderr
    assert "+ buildah login --tls-verify=false --username enadu-ci --password-stdin" in proc.stderr
    # the throw-away auth file is gone; the local tag was dropped after the push
    assert list(agent_tmp.iterdir()) == []
    images = subprocess.run(["buildah", "images", "--format", "{{.Name}}:{{.Tag}}"], env=env, capture_output=True,
                            text=True, check=True).stdout
    assert ref not in images


def test_buildah_with_a_wrong_password_fails_at_login_and_pushes_nothing(oci_registry, tmp_path):
    ws = workspace_with_dockerfile(tmp_path)
    run = run_step({"image": f"{oci_registry.host}/enadu/backend", "context": "app", "dockerfile": "app/Dockerfile",
                    "builder": "buildah", "insecure": True}, oci_registry.username, "not-the-password")
    (entry,) = run.steps("sh")
    env = buildah_env(tmp_path / "containers", base={})
    proc, watch, _, _ = run_for_real(entry, tmp_path, ws, {"CONTAINERS_STORAGE_CONF": env["CONTAINERS_STORAGE_CONF"]},
                                     ["not-the-password"])
    assert proc.returncode != 0
    assert "invalid username/password" in proc.stderr
    assert "buildah bud" not in proc.stderr  # set -e: nothing after the failed login ran
    assert oci_registry.repositories() == []
    assert watch.hits == []


def test_buildah_keeps_tls_verification_for_a_registry_not_declared_insecure(oci_registry, tmp_path):
    # the same loopback registry without `insecure`: buildah insists on HTTPS and fails at login
    ws = workspace_with_dockerfile(tmp_path)
    _, entry = image_sh({"image": f"{oci_registry.host}/enadu/backend", "context": "app",
                         "dockerfile": "app/Dockerfile", "builder": "buildah"}, oci_registry)
    assert entry["env"]["ENADU_TLS_VERIFY"] == "true"
    env = buildah_env(tmp_path / "containers", base={})
    proc, _, _, _ = run_for_real(entry, tmp_path, ws, {"CONTAINERS_STORAGE_CONF": env["CONTAINERS_STORAGE_CONF"]},
                                 [oci_registry.password])
    assert proc.returncode != 0
    assert "http: server gave HTTP response to HTTPS client" in proc.stderr
    assert oci_registry.repositories() == []


def test_docker_cli_builds_and_pushes_through_podmans_docker_api(oci_registry, podman_docker, tmp_path):
    ws = workspace_with_dockerfile(tmp_path, kind="crashloop")
    # Podman's /auth trusts plain HTTP only for hosts spelled localhost:<port> (see builders.py); a
    # real Docker daemon treats both names as insecure (127.0.0.0/8).
    run, entry = image_sh({"image": f"{oci_registry.localhost}/enadu/frontend", "context": "app",
                           "dockerfile": "app/Dockerfile"}, oci_registry)
    ref = f"{oci_registry.localhost}/enadu/frontend:{TAG}"
    assert run.steps("enaduImage")[0]["returned"] == ref
    assert entry["args"]["label"] == f"docker build and push {ref}"

    secrets = [oci_registry.password,
               base64.b64encode(f"{oci_registry.username}:{oci_registry.password}".encode()).decode()]
    proc, watch, elapsed, agent_tmp = run_for_real(entry, tmp_path, ws, {"DOCKER_HOST": podman_docker.docker_host},
                                                   secrets)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(f"docker (podman service) build + push: {elapsed:.2f} s; podman service started in "
          f"{podman_docker.start_seconds:.2f} s")
    assert oci_registry.has_manifest("enadu/frontend", TAG)
    labels = oci_registry.labels("enadu/frontend", TAG)
    assert labels["org.opencontainers.image.revision"] == COMMIT and labels["io.enadu.test.kind"] == "crashloop"
    assert any(seen.startswith("docker ") for seen in watch.seen), sorted(watch.seen)[:20]
    assert watch.hits == []
    assert not any(s in proc.stdout + proc.stderr for s in secrets)
    assert "Login Succeeded" in proc.stdout
    assert list(agent_tmp.iterdir()) == []  # the throw-away DOCKER_CONFIG (with the login) is gone


@pytest.mark.parametrize("args, message", [
    ({"image": "registry.example.com/enadu/backend", "insecure": True},
     "enaduImage: insecure is only allowed for a registry on loopback (localhost or 127.x.x.x), not registry.example.com"),
    ({"image": "127.0.0.1.example.com/enadu/backend", "insecure": True},
     "enaduImage: insecure is only allowed for a registry on loopback (localhost or 127.x.x.x), not 127.0.0.1.example.com"),
    ({"image": "127.0.0.1:5000/enadu/backend", "builder": "kaniko"},
     "enaduImage: argument 'builder' must be one of: docker, buildah"),
    ({"image": "127.0.0.1:5000/enadu/backend", "storageDriver": "btrfs"},
     "enaduImage: argument 'storageDriver' must be one of: vfs, overlay"),
    ({"image": "127.0.0.1:5000/enadu/backend", "context": "--output=/tmp/x"},
     "enaduImage: argument 'context' does not match [A-Za-z0-9_.][A-Za-z0-9_./-]{0,199}"),
    ({"image": "127.0.0.1:5000/enadu/backend", "dockerfile": "Dockerfile; id"},
     "enaduImage: argument 'dockerfile' does not match [A-Za-z0-9_.][A-Za-z0-9_./-]{0,199}"),
])
def test_the_step_refuses_bad_values_before_any_command_runs(args, message):
    run = run_step(args, "enadu-ci", "FAKE-registry-pass")
    assert run.result == "FAILURE"
    assert run.steps("sh") == []
    assert message in (run.error or {}).get("message", "") + "\n".join(run.log), run.describe()


@pytest.mark.parametrize("builder", ["buildah", "docker"])
def test_an_abort_during_the_push_leaves_no_login_behind(builder, tmp_path):
    # Jenkins stops an sh step with ProcessTree.killAll: SIGTERM to the step's processes, children
    # first, each given SoftKillWaitSeconds; dash skips an EXIT trap when a signal kills it, so a push
    # slow to die would leave the login (user:password in base64) in the agent's TMPDIR.
    from support.e2e.executor import kill_all

    args = {"image": "127.0.0.1:5000/enadu/backend", "context": "app", "dockerfile": "app/Dockerfile"}
    if builder == "buildah":
        args.update(builder="buildah", insecure=True)
    run = run_step(args, "enadu-ci", "s3cret-pass-0a9f")
    assert run.valid and run.result == "SUCCESS", run.describe()
    (entry,) = run.steps("sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # A stand-in builder: login writes the auth file where the real one does; push ignores SIGTERM for
    # a while (a slow upload), longer than the soft-kill wait.
    (bin_dir / builder).write_text(
        "#!/bin/sh\n"
        "case \"$1\" in\n"
        "  login) f=\"${REGISTRY_AUTH_FILE:-$DOCKER_CONFIG/config.json}\"; cat > /dev/null;"
        " echo '{\"auths\":{\"x\":{\"auth\":\"c2VjcmV0\"}}}' > \"$f\" ;;\n"
        "  push) trap '' TERM; touch \"$ENADU_MARK\"; sleep 3 ;;\n"
        "  *) : ;;\n"
        "esac\n")
    (bin_dir / builder).chmod(0o755)
    tmp = tmp_path / "agent-tmp"
    tmp.mkdir()
    ws = workspace_with_dockerfile(tmp_path)
    script = tmp_path / "script.sh"
    script.write_text(entry["args"]["script"])
    mark = tmp_path / "pushing"
    cookie = "durable-test-" + builder
    env = dict(entry["env"], TMPDIR=str(tmp), HOME=str(tmp_path), PATH=f"{bin_dir}:/usr/bin:/bin",
               ENADU_MARK=str(mark), JENKINS_SERVER_COOKIE=cookie)
    proc = subprocess.Popen(["/bin/sh", "-xe", str(script)], cwd=ws, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while not mark.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the script never reached the push"
        time.sleep(0.05)
    assert any(tmp.iterdir()), "the login directory should exist during the push"
    kill_all({"JENKINS_SERVER_COOKIE": cookie}, soft_kill_wait=0.5)
    assert proc.wait(30) != 0
    assert list(tmp.iterdir()) == [], "the registry login was left in TMPDIR after the abort"
