"""Running the deploy helper against the Kubernetes test world, as a Jenkins agent would: a separate
process with KUBECONFIG pointing at the emulator, options as ENADU_* environment variables (the way
the enaduDeploy step passes them), the rendered manifest of the backend service, and images named
after the emulator's conventions (tests/support/kubeworld/images.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from enadu_pipelines import __version__

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "resources" / "enadu" / "k8s" / "backend.yaml"
BUNDLE = REPO / "resources" / "enadu" / "enadu-helper.pyz"
NAMESPACE = "enadu"
SERVICE = "backend"
USER_AGENT = f"enadu-helper/{__version__}"
BUILD_URL = "https://ci.enadu.dev/job/enadu/job/backend/7/"


def image(tag: str) -> str:
    return f"registry.enadu.dev/enadu/backend:{tag}"


def prepare(world: Any) -> None:
    """The namespace, and the invariant every deploy test holds the helper to."""
    from tests.support.kubeworld.invariants import service_selects_available

    world.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    world.invariants.add("backend always serves a fully available colour", service_selects_available(SERVICE, NAMESPACE))


def env(world: Any, **extra: str) -> Dict[str, str]:
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(REPO),
        "KUBECONFIG": world.kubeconfig,
        "ENADU_SERVICE": SERVICE,
        "ENADU_NAMESPACE": NAMESPACE,
        "ENADU_MANIFEST": str(MANIFEST),
        "ENADU_SCALE_DOWN_DELAY": "1s",
        # The test world's proxies lag well under a second unless a test says otherwise: tests lower the
        # 30 s floor (tests/test_scale_down_floor.py runs with it, under load).
        "ENADU_SCALE_DOWN_DELAY_FLOOR": "0s",
        # A deploy failing before its switch scales its colour down at once unless a test asks for the
        # abort delay (tests/test_abort_scale_down.py); the helper's default is Argo's 30 s.
        "ENADU_ABORT_SCALE_DOWN_DELAY": "0s",
        "ENADU_SMOKE_PATH": "/actuator/health",  # what enaduDeploy passes for the backend
        "ENADU_LOCK_IDENTITY": "jenkins-enadu-backend-7",
        "ENADU_API_DEADLINE": "20",
        "BUILD_URL": BUILD_URL,
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def command(*args: str, bundle: bool = False, python: str = sys.executable) -> list:
    if bundle:
        return [python, "-I", str(BUNDLE), *args]
    return [python, "-m", "enadu_pipelines.helper.cli", *args]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> Dict[str, Any]:
        """The JSON result object (commands run with --output json)."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def run(world: Any, *args: str, timeout: float = 180, extra_env: Optional[Dict[str, str]] = None,
        bundle: bool = False, python: str = sys.executable) -> Run:
    proc = subprocess.run(command(*args, "--output", "json", bundle=bundle, python=python),
                          env=env(world, **(extra_env or {})), capture_output=True, text=True, timeout=timeout)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def start(world: Any, *args: str, extra_env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    return subprocess.Popen(command(*args, "--output", "json"), env=env(world, **(extra_env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def deploy(world: Any, tag: str, *args: str, **kw: Any) -> Run:
    return run(world, "deploy", "--image", image(tag), *args, **kw)


def selected_colour(world: Any) -> Optional[str]:
    svc = world.get("services", SERVICE, NAMESPACE)
    return (svc or {}).get("spec", {}).get("selector", {}).get("color")


def deployment(world: Any, colour: str) -> Optional[Dict[str, Any]]:
    return world.get("deployments", f"{SERVICE}-{colour}", NAMESPACE)


def replicas(world: Any, colour: str) -> Optional[int]:
    dep = deployment(world, colour)
    return None if dep is None else int(dep["spec"].get("replicas") or 0)


def running_image(world: Any, colour: str) -> Optional[str]:
    dep = deployment(world, colour)
    return None if dep is None else dep["spec"]["template"]["spec"]["containers"][0]["image"]


def history(world: Any) -> list:
    svc = world.get("services", SERVICE, NAMESPACE) or {}
    return json.loads((svc.get("metadata", {}).get("annotations") or {}).get("enadu.io/history", "[]"))


def helper_writes(world: Any) -> list:
    return [r for r in world.requests.writes() if r.user_agent == USER_AGENT]


def wait_serving(world: Any, *, successes: int = 5, timeout: float = 30.0) -> None:
    """Block until the Service answers ``successes`` requests in a row through its proxy.

    After a first deploy the proxy learns the endpoints one propagation lag later (as kube-proxy
    does), so load started at once would count failures that belong to no switch."""
    import urllib.request

    url = world.service_url(SERVICE, NAMESPACE)

    def steady(_world: Any) -> bool:
        for _ in range(successes):
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status != 200:
                        return False
            except OSError:
                return False
        return True

    world.wait_for(steady, timeout=timeout, what=f"service {SERVICE} answering")


def ok(run: Run) -> dict:
    """The result of a helper run that must have succeeded (its output in the failure message)."""
    assert run.returncode == 0, run.stdout + run.stderr
    return run.result


@pytest.fixture
def world(kubeworld):
    """A prepared Kubernetes test world whose invariants must hold when the test ends (import it)."""
    prepare(kubeworld)
    yield kubeworld
    kubeworld.invariants.assert_ok()
