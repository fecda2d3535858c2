"""buildah's registry layer cache for real: builds on empty storage (as an ephemeral pod agent has)
reuse the layers an earlier build stored in the registry.

The script and environment are the generated `enaduImage` step's, taken from the pipeline harness's
trace (as in test_image_build.py) and run with `sh -xe` against Debian's docker-registry on loopback.
Every build gets a new, empty containers store (its own graphroot and runroot through
CONTAINERS_STORAGE_CONF), so nothing can come from the agent's local `--layers` cache: a hit can only
come from the registry. buildah 1.28 (Debian 12) prints `--> Cache pulled from remote <repo>:<key>`
and `--> Using cache <id>` for a step found in the `--cache-from` repository and
`--> Pushing cache <repo>:<key>` for a step it built and stored with `--cache-to`
(imagebuildah/stage_executor.go); the registry's log shows what was uploaded where.
"""

from __future__ import annotations

import os
import re

from support.ociregistry import buildah_env
from support.ociregistry.fixtures import oci_registry  # noqa: F401  (fixture)
from support.pipeline.client import Run, harness
from test_image_build import COMMIT, JENKINSFILE, groovy_args, library_for, run_for_real

CACHE_REPO = "enadu/backend/cache"
DOCKERFILE = "FROM scratch\nCOPY big.bin /big.bin\nCOPY hello.txt /hello.txt\nLABEL io.enadu.test.kind={kind}\n"


def run_step(args: dict, registry, build: int) -> Run:
    scenario = {"job": {"name": "enadu/backend", "buildNumber": build}, "env": {"GIT_COMMIT": COMMIT},
                "credentials": {"enadu-registry": {"type": "usernamePassword", "username": registry.username,
                                                   "password": registry.password}},
                "sh": [{"id": "image", "label": "build and push ", "status": 0}], "strictSh": True}
    return harness().run(text=JENKINSFILE % groovy_args({"credentialsId": "enadu-registry", **args}), scenario=scenario,
                         library=library_for(args["image"].split("/")[0]))


def workspace(root, kind: str = "errors"):
    ws = root / "workspace"
    (ws / "app").mkdir(parents=True)
    (ws / "app" / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024))  # incompressible: 2 MiB on the wire
    (ws / "app" / "hello.txt").write_text("hello from the cache test\n")
    (ws / "app" / "Dockerfile").write_text(DOCKERFILE.format(kind=kind))
    return ws


def build_on_empty_storage(registry, ws, root, build: int):
    """One pipeline build of the image on a fresh agent: new containers store, new HOME and TMPDIR."""
    args = {"image": f"{registry.host}/enadu/backend", "context": "app", "dockerfile": "app/Dockerfile",
            "builder": "buildah", "insecure": True, "cache": f"{registry.host}/{CACHE_REPO}"}
    run = run_step(args, registry, build)
    assert run.valid and run.result == "SUCCESS", run.describe()
    (entry,) = run.steps("sh")
    root.mkdir()
    env = buildah_env(root / "containers", base={})
    assert not any((root / "containers" / "graph").iterdir())  # empty, as a new pod's
    proc, watch, elapsed, _ = run_for_real(entry, root, ws, {"CONTAINERS_STORAGE_CONF": env["CONTAINERS_STORAGE_CONF"]},
                                           [registry.password])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert watch.hits == [] and registry.password not in proc.stdout + proc.stderr
    return entry, proc.stdout + proc.stderr, elapsed


def cache_events(output: str) -> dict[str, int]:
    return {"pulled": len(re.findall(r"^--> Cache pulled from remote ", output, re.M)),
            "used": len(re.findall(r"^--> Using cache ", output, re.M)),
            "pushed": len(re.findall(r"^--> Pushing cache ", output, re.M))}


def steps_hit(output: str) -> list[str]:
    """The Dockerfile instructions whose layer came from the registry cache, in order."""
    hits, step = [], ""
    for line in output.splitlines():
        if line.startswith("STEP "):
            step = line.split(": ", 1)[1]
        elif line.startswith("--> Using cache "):
            hits.append(step)
    return hits


def test_a_second_build_on_empty_storage_reuses_the_registry_cache(oci_registry, tmp_path):
    ws = workspace(tmp_path)
    entry, cold, cold_s = build_on_empty_storage(oci_registry, ws, tmp_path / "agent1", 57)
    assert entry["env"]["ENADU_CACHE"] == f"{oci_registry.host}/{CACHE_REPO}" and entry["env"]["ENADU_CACHE_TTL"] == "168h"
    assert (f'+ buildah bud --pull --layers --isolation chroot --tls-verify=false --cache-from {oci_registry.host}/'
            f'{CACHE_REPO} --cache-to {oci_registry.host}/{CACHE_REPO} --cache-ttl 168h') in cold
    # cold: nothing to reuse; each step is built and stored in the cache repository: the Dockerfile's
    # three and the revision label that --label appends as a last LABEL step
    assert cache_events(cold) == {"pulled": 0, "used": 0, "pushed": 4}, cold
    assert len(oci_registry.tags(CACHE_REPO)) == 4
    cold_uploads = oci_registry.uploaded_blobs()
    big = [size for repo, _, size in cold_uploads if size > 2 * 1024 * 1024]
    assert len(big) == 1, cold_uploads  # the 2 MiB layer went over the wire once: the image push mounted it
    assert {repo for repo, _, size in cold_uploads if size > 2 * 1024 * 1024} == {CACHE_REPO}

    # the same commit, build 58, on another new pod: every step comes from the registry, nothing is
    # stored again, and the image push uploads no layer
    _, warm, warm_s = build_on_empty_storage(oci_registry, ws, tmp_path / "agent2", 58)
    assert cache_events(warm) == {"pulled": 4, "used": 4, "pushed": 0}, warm
    assert steps_hit(warm) == ["COPY big.bin /big.bin", "COPY hello.txt /hello.txt", "LABEL io.enadu.test.kind=errors",
                               f'LABEL "org.opencontainers.image.revision"="{COMMIT}"']
    warm_uploads = oci_registry.uploaded_blobs()[len(cold_uploads):]
    assert warm_uploads == [], warm_uploads
    assert len(oci_registry.tags(CACHE_REPO)) == 4
    first = oci_registry.manifest("enadu/backend", f"{COMMIT[:7]}-57")
    second = oci_registry.manifest("enadu/backend", f"{COMMIT[:7]}-58")
    assert first["layers"] == second["layers"] and first["config"] == second["config"]
    print(f"cold build + push {cold_s:.2f} s, warm (registry cache, empty storage) {warm_s:.2f} s")


def test_a_changed_step_misses_the_cache_for_that_step_only(oci_registry, tmp_path):
    ws = workspace(tmp_path)
    build_on_empty_storage(oci_registry, ws, tmp_path / "agent1", 57)
    before = oci_registry.uploaded_blobs()

    # the Dockerfile's last step changes: it misses, and so does the revision label the step appends
    # after it (its parent changed); the steps before it hit
    (ws / "app" / "Dockerfile").write_text(DOCKERFILE.format(kind="crashloop"))
    _, output, _ = build_on_empty_storage(oci_registry, ws, tmp_path / "agent2", 58)
    assert steps_hit(output) == ["COPY big.bin /big.bin", "COPY hello.txt /hello.txt"], output
    assert cache_events(output) == {"pulled": 2, "used": 2, "pushed": 2}
    assert len(oci_registry.tags(CACHE_REPO)) == 6
    assert oci_registry.labels("enadu/backend", f"{COMMIT[:7]}-58")["io.enadu.test.kind"] == "crashloop"
    # only the new step's image config was uploaded (a LABEL adds no layer); the 2 MiB layer was not
    assert all(size < 64 * 1024 for _, _, size in oci_registry.uploaded_blobs()[len(before):])

    # a changed file misses its COPY and the steps after it (each key includes its parent), not those before
    (ws / "app" / "hello.txt").write_text("changed\n")
    _, output, _ = build_on_empty_storage(oci_registry, ws, tmp_path / "agent3", 59)
    assert steps_hit(output) == ["COPY big.bin /big.bin"]


def test_without_a_cache_the_build_uses_no_registry_cache(oci_registry, tmp_path):
    ws = workspace(tmp_path)
    run = run_step({"image": f"{oci_registry.host}/enadu/backend", "context": "app", "dockerfile": "app/Dockerfile",
                    "builder": "buildah", "insecure": True}, oci_registry, 57)
    (entry,) = run.steps("sh")
    assert entry["env"].get("ENADU_CACHE", "") == ""  # Jenkins drops an empty withEnv value (EnvVars.override)
    (tmp_path / "agent").mkdir()
    env = buildah_env(tmp_path / "agent" / "containers", base={})
    proc, _, _, _ = run_for_real(entry, tmp_path / "agent", ws, {"CONTAINERS_STORAGE_CONF": env["CONTAINERS_STORAGE_CONF"]},
                                 [oci_registry.password])
    assert proc.returncode == 0, proc.stderr
    assert "--cache-from" not in proc.stderr and cache_events(proc.stdout) == {"pulled": 0, "used": 0, "pushed": 0}
    assert oci_registry.repositories() == ["enadu/backend"]


def test_the_step_refuses_a_cache_it_cannot_use(oci_registry):
    base = {"image": "127.0.0.1:5000/enadu/backend", "insecure": True}
    cases = [
        ({"cache": "127.0.0.1:5000/enadu/backend/cache"},  # docker
         "enaduImage: cache (a registry layer cache) needs builder buildah; docker's classic builder has none"),
        ({"builder": "buildah", "cache": "registry.example.com/enadu/backend/cache"},
         "enaduImage: cache must be a repository on the image's registry 127.0.0.1:5000, not"
         " registry.example.com/enadu/backend/cache"),
        ({"builder": "buildah", "cache": "127.0.0.1:5000/enadu/backend"},
         "enaduImage: cache must be a repository of its own, not the image 127.0.0.1:5000/enadu/backend"),
        ({"builder": "buildah", "cache": "127.0.0.1:5000/enadu/backend/cache --cache-to=x"},
         "enaduImage: argument 'cache' does not match"),
        ({"builder": "buildah", "cache": "127.0.0.1:5000/enadu/backend/cache", "cacheTtl": "1h; id"},
         "enaduImage: argument 'cacheTtl' does not match [0-9]{1,6}(s|m|h)"),
    ]
    for args, message in cases:
        run = run_step({**base, **args}, oci_registry, 57)
        assert run.result == "FAILURE" and run.steps("sh") == [], (args, run.describe())
        assert message in (run.error or {}).get("message", "") + "\n".join(run.log), (args, run.describe())
