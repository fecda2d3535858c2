"""A real OCI registry on loopback: Debian's `docker-registry` (CNCF distribution 2.8) in a temp dir.

`OciRegistry(workdir).start()` writes a configuration (filesystem storage under ``workdir``,
``127.0.0.1:<free port>``, plain HTTP, JSON logs) and, by default, an htpasswd file with one bcrypt
user (distribution's htpasswd auth accepts only bcrypt; Python's ``crypt`` makes the hash at cost
4, the minimum, so that checking it on every request costs microseconds), starts the binary, and
waits until ``GET /v2/`` answers (401 with auth, 200 without). ``stop()`` ends it (SIGTERM, then
SIGKILL). Reading helpers talk to the registry's HTTP API with the same user; request counts come
from the registry's own log ("response completed" lines), stored blobs from its storage directory.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

BINARY = "/usr/bin/docker-registry"  # Debian's package docker-registry

# What a client accepts when it asks for a manifest (as containerd and buildah do).
MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
))
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


@dataclass(frozen=True)
class RegistryRequest:
    """One request the registry answered, from its log."""

    method: str
    path: str  # without the query
    query: str
    status: int
    user: str  # the authenticated user, "" for none
    user_agent: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash (``$2b$04$...``) through the C library's crypt(3) (libxcrypt on Debian)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated in 3.11, removed in 3.13: scripts/test's Python is 3.11

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))


class OciRegistry:
    """One registry process. Use as a context manager or start()/stop()."""

    def __init__(self, workdir: str | os.PathLike, *, auth: bool = True, username: str = "enadu-ci",
                 password: Optional[str] = None, port: Optional[int] = None) -> None:
        self.workdir = Path(workdir)
        self.auth = auth
        self.username = username if auth else ""
        self.password = (password or secrets.token_urlsafe(18)) if auth else ""
        self.port = port or 0
        self.storage = self.workdir / "storage"
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        self.process: Optional[subprocess.Popen] = None
        self.start_seconds = 0.0

    # -- lifecycle --

    def __enter__(self) -> "OciRegistry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def localhost(self) -> str:
        """``localhost:<port>``: the same registry under the name Podman's Docker API trusts for
        plain-HTTP logins (see podman.py)."""
        return f"localhost:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, timeout: float = 15.0) -> "OciRegistry":
        if not os.path.exists(BINARY):
            raise RuntimeError(f"{BINARY} is missing: install Debian's package docker-registry (scripts/test does)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        began = time.monotonic()
        for attempt in range(5):  # a free port can be taken between the probe and the bind
            if not self.port or attempt:
                self.port = free_port()
            self._write_config()
            log = open(self.log_path, "ab")
            try:
                self.process = subprocess.Popen([BINARY, "serve", str(self.config_path)], stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            finally:
                log.close()
            if self._wait_ready(began + timeout):
                self.start_seconds = time.monotonic() - began
                return self
            if self.process.poll() is None:
                self.stop()
                break
            if "address already in use" not in self.log_text():
                break
        tail = self.log_text()[-2000:]
        self.process = None
        raise RuntimeError(f"docker-registry did not answer on {self.host} within {timeout}s; log:\n{tail}")

    def _write_config(self) -> None:
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  formatter: json",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {json.dumps(str(self.storage))}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {secrets.token_hex(16)}",
        ]
        if self.auth:
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(f"{self.username}:{bcrypt_hash(self.password)}\n")
            lines += ["auth:", "  htpasswd:", "    realm: enadu-test-registry", f"    path: {json.dumps(str(htpasswd))}"]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                status = self._request("GET", "/v2/", auth=False)[0]
                if status in (200, 401):
                    return True
            except OSError:
                pass
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- HTTP --

    def _request(self, method: str, path: str, *, headers: Optional[dict] = None, auth: bool = True,
                 timeout: float = 10.0) -> tuple[int, dict, bytes]:
        request = urllib.request.Request(self.url + path, method=method, headers=dict(headers or {}))
        if auth and self.auth:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def _json(self, method: str, path: str, **kw) -> Optional[dict]:
        status, _, body = self._request(method, path, **kw)
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {body[:300]!r}")
        return json.loads(body)

    # -- reading --

    def has_manifest(self, repo: str, reference: str) -> Optional[str]:
        """The manifest digest (``sha256:...``) of ``repo:reference`` (a tag or a digest), or None."""
        status, headers, body = self._request("HEAD", f"/v2/{repo}/manifests/{reference}",
                                              headers={"Accept": MANIFEST_TYPES})
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"HEAD /v2/{repo}/manifests/{reference}: HTTP {status}")
        return headers.get("docker-content-digest")

    def tags(self, repo: str) -> list[str]:
        """The repository's tags, sorted; [] for an unknown repository."""
        answer = self._json("GET", f"/v2/{repo}/tags/list")
        return sorted((answer or {}).get("tags") or [])

    def repositories(self) -> list[str]:
        return sorted((self._json("GET", "/v2/_catalog") or {}).get("repositories") or [])

    def manifest(self, repo: str, reference: str) -> Optional[dict]:
        """The image manifest (an index is resolved to its first linux/amd64 entry, else its first)."""
        answer = self._json("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_TYPES})
        if answer is not None and answer.get("mediaType") in INDEX_TYPES:
            entries = answer.get("manifests") or []
            chosen = next((m for m in entries if (m.get("platform") or {}).get("architecture") == "amd64"),
                          entries[0] if entries else None)
            return self.manifest(repo, chosen["digest"]) if chosen else None
        return answer

    def blob(self, repo: str, digest: str) -> Optional[bytes]:
        status, _, body = self._request("GET", f"/v2/{repo}/blobs/{digest}")
        return body if status == 200 else None

    def image_config(self, repo: str, reference: str) -> Optional[dict]:
        """The image's config blob (``{"config": {"Labels": ...}, "rootfs": ..., ...}``), or None."""
        manifest = self.manifest(repo, reference)
        if manifest is None:
            return None
        body = self.blob(repo, manifest["config"]["digest"])
        return json.loads(body) if body is not None else None

    def labels(self, repo: str, reference: str) -> dict:
        config = self.image_config(repo, reference) or {}
        return dict((config.get("config") or {}).get("Labels") or {})

    def stored_blobs(self) -> int:
        """How many blobs the storage holds (layers, configs and manifests, deduplicated by digest)."""
        root = self.storage / "docker" / "registry" / "v2" / "blobs"
        return sum(1 for _ in root.glob("sha256/*/*/data")) if root.exists() else 0

    # -- the registry's log --

    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def requests(self) -> list[RegistryRequest]:
        """Every request the registry has completed, in order (from its JSON log)."""
        return list(self._requests())

    def _requests(self) -> Iterator[RegistryRequest]:
        for line in self.log_text().splitlines():
            if '"response completed"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            uri = urllib.parse.urlsplit(entry.get("http.request.uri", ""))
            yield RegistryRequest(entry.get("http.request.method", ""), uri.path, uri.query,
                                  int(entry.get("http.response.status", 0)), entry.get("auth.user.name", ""),
                                  entry.get("http.request.useragent", ""))

    def blob_uploads(self, repo: Optional[str] = None) -> int:
        """Completed blob uploads (the final ``PUT .../blobs/uploads/<id>?digest=`` answered 201, or a
        monolithic ``POST ...?digest=``); a cached layer that the client found with HEAD is not one."""
        return sum(1 for r in self._requests() if r.status == 201 and "/blobs/uploads/" in r.path
                   and "digest=" in r.query and self._in(repo, r.path))

    def uploaded_blobs(self) -> list[tuple[str, str, int]]:
        """``(repository, digest, bytes)`` of every completed blob upload, in order: what clients pushed
        (the log has no request sizes, so a blob's size is that of its stored data; a blob found with
        HEAD or mounted from another repository is no upload)."""
        uploads = []
        for r in self._requests():
            if r.status != 201 or "/blobs/uploads/" not in r.path:
                continue
            digest = urllib.parse.parse_qs(r.query).get("digest", [""])[0]
            if not digest.startswith("sha256:"):
                continue
            data = self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / digest[7:9] / digest[7:] / "data"
            size = data.stat().st_size if data.exists() else 0
            uploads.append((r.path[len("/v2/"):r.path.index("/blobs/uploads/")], digest, size))
        return uploads

    def blob_mounts(self, repo: Optional[str] = None) -> int:
        """Cross-repository blob mounts (``POST .../blobs/uploads/?mount=`` answered 201)."""
        return sum(1 for r in self._requests() if r.method == "POST" and r.status == 201 and "mount=" in r.query
                   and self._in(repo, r.path))

    def manifest_pushes(self, repo: Optional[str] = None) -> int:
        return sum(1 for r in self._requests() if r.method == "PUT" and r.status == 201 and "/manifests/" in r.path
                   and self._in(repo, r.path))

    def manifest_reads(self, repo: Optional[str] = None) -> int:
        """GET/HEAD of a manifest that found it (what a pull starts with)."""
        return sum(1 for r in self._requests() if r.method in ("GET", "HEAD") and r.status == 200
                   and "/manifests/" in r.path and self._in(repo, r.path))

    @staticmethod
    def _in(repo: Optional[str], path: str) -> bool:
        return repo is None or path.startswith(f"/v2/{repo}/")

    def attach(self, world) -> None:
        """Make a KubeWorld's kubelet pull this registry's images for real (both of its names),
        with this registry's user as the node's pull credentials."""
        for host in (self.host, self.localhost):
            world.control.kubelet.use_registry(host, self.username, self.password)

    def remove(self) -> None:
        """Delete the work directory (the fixture uses pytest's tmp_path instead)."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
