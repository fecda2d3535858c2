"""The two image builders the `enaduImage` step drives, set up so a test can run them for real.

- ``buildah_env(workdir)``: buildah needs no daemon; this gives it a private store (a
  ``storage.conf`` under ``workdir`` through ``CONTAINERS_STORAGE_CONF``) so tests never touch the
  machine's ``/var/lib/containers``.
- ``PodmanDockerApi(workdir, insecure=[...])``: the ``docker`` CLI needs a Docker Engine API; there is
  no Docker daemon on the test machines, so ``podman system service`` serves Podman's Docker-compatible
  API on a unix socket (``DOCKER_HOST=unix://...``), as root with vfs storage, in about 0.15 s. A
  ``FROM scratch`` build needs no container runtime. Registries in ``insecure`` are listed as
  ``insecure = true`` in a private ``registries.conf`` (plain HTTP for push). One quirk: Podman 4.3's
  ``/auth`` (docker login) forces TLS verification except for hosts spelled ``localhost:<port>``
  (``pkg/api/handlers/compat/auth.go``), so a test logs in to ``localhost:<port>``
  (``OciRegistry.localhost``), which a real Docker daemon also treats as insecure (127.0.0.0/8).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, Optional

BUILDAH = "/usr/bin/buildah"
PODMAN = "/usr/bin/podman"


def buildah_env(workdir: str | os.PathLike, base: Optional[dict] = None) -> dict:
    """``base`` (default: os.environ) plus a private containers storage under ``workdir``."""
    root = Path(workdir)
    (root / "graph").mkdir(parents=True, exist_ok=True)
    (root / "run").mkdir(parents=True, exist_ok=True)
    conf = root / "storage.conf"
    conf.write_text("[storage]\n"
                    'driver = "vfs"\n'
                    f"graphroot = {json.dumps(str(root / 'graph'))}\n"
                    f"runroot = {json.dumps(str(root / 'run'))}\n")
    env = dict(os.environ if base is None else base)
    env["CONTAINERS_STORAGE_CONF"] = str(conf)
    env.pop("REGISTRY_AUTH_FILE", None)
    return env


class PodmanDockerApi:
    """``podman system service`` on a unix socket, as a Docker Engine API for the docker CLI."""

    def __init__(self, workdir: str | os.PathLike, *, insecure: Iterable[str] = ()) -> None:
        self.workdir = Path(workdir)
        self.insecure = list(insecure)
        self.socket = self.workdir / "docker.sock"
        self.log_path = self.workdir / "podman.log"
        self.process: Optional[subprocess.Popen] = None
        self.start_seconds = 0.0

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def docker_env(self, base: Optional[dict] = None) -> dict:
        """Environment for the docker CLI: ``DOCKER_HOST`` pointing at this service."""
        env = dict(os.environ if base is None else base)
        env["DOCKER_HOST"] = self.docker_host
        env.pop("DOCKER_CONTEXT", None)
        return env

    def __enter__(self) -> "PodmanDockerApi":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> "PodmanDockerApi":
        if not os.path.exists(PODMAN):
            raise RuntimeError(f"{PODMAN} is missing: install Debian's package podman (scripts/test does)")
        for sub in ("root", "tmp"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        # podman refuses a runroot longer than 50 characters ("the specified runroot is longer than 50
        # characters"), which pytest's temp paths exceed under pytest-xdist (.../popen-gw0/podman0/run)
        self.runroot = Path(tempfile.mkdtemp(prefix="enadu-podman-run-", dir="/tmp" if os.path.isdir("/tmp") else None))
        conf = self.workdir / "registries.conf"
        conf.write_text("unqualified-search-registries = []\n" + "".join(
            f'\n[[registry]]\nlocation = {json.dumps(host)}\ninsecure = true\n' for host in self.insecure))
        env = dict(os.environ)
        env["CONTAINERS_REGISTRIES_CONF"] = str(conf)
        env.pop("CONTAINERS_STORAGE_CONF", None)
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [PODMAN, "--root", str(self.workdir / "root"), "--runroot", str(self.runroot),
                 "--tmpdir", str(self.workdir / "tmp"), "--storage-driver", "vfs", "--events-backend", "file",
                 "system", "service", "--time", "0", self.docker_host],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = began + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.socket.exists() and self._ping():
                self.start_seconds = time.monotonic() - began
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"podman system service did not answer on {self.socket} within {timeout}s; log:\n"
                           + self.log_path.read_text("utf-8", "replace")[-2000:])

    def _ping(self) -> bool:
        import http.client
        import socket

        class _Unix(http.client.HTTPConnection):
            def connect(inner) -> None:  # noqa: N805
                inner.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                inner.sock.settimeout(2)
                inner.sock.connect(str(self.socket))

        try:
            conn = _Unix("localhost")
            conn.request("GET", "/_ping")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        runroot = getattr(self, "runroot", None)
        if runroot is not None:
            shutil.rmtree(runroot, ignore_errors=True)



def push_scratch_image(registry, repository: str, tag: str, workdir: str | os.PathLike, *,
                       labels: Optional[dict] = None, content: str = "enadu test image\n") -> str:
    """Build a ``FROM scratch`` image holding one file, with ``labels``, and push it to ``registry``
    (an OciRegistry) as ``repository:tag`` with buildah; returns the manifest digest. For tests that
    need images in the registry without going through a pipeline (e.g. the kubelet's pulls)."""
    root = Path(workdir)
    context = root / "context"
    context.mkdir(parents=True, exist_ok=True)
    (context / "content.txt").write_text(content)
    lines = ["FROM scratch", "COPY content.txt /content.txt"]
    lines += [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in (labels or {}).items()]
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    env = buildah_env(root / "containers")
    ref = f"{registry.host}/{repository}:{tag}"
    auth = root / "auth.json"
    env["REGISTRY_AUTH_FILE"] = str(auth)

    def run(*args: str, stdin: Optional[str] = None) -> None:
        done = subprocess.run([BUILDAH, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"buildah {args[0]} failed: {done.stderr[-2000:]}")

    if registry.auth:
        run("login", "--tls-verify=false", "--username", registry.username, "--password-stdin", registry.host,
            stdin=registry.password)
    run("bud", "--isolation", "chroot", "--file", str(context / "Dockerfile"), "--tag", ref, str(context))
    run("push", "--tls-verify=false", ref)
    auth.unlink(missing_ok=True)
    digest = registry.has_manifest(repository, tag)
    if not digest:
        raise RuntimeError(f"{ref} was pushed but the registry has no manifest for it")
    return digest
