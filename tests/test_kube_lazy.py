"""The helper imports the kubernetes client lazily (enadu_pipelines/helper/kube/lazy.py).

Each check runs in a fresh interpreter: the test process has long imported the whole client.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

from conftest import BUNDLE

PROBE = r"""
import json, sys, threading
from types import SimpleNamespace
from enadu_pipelines.helper.kube import lazy
lazy.install()
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
api = client.ApiClient(client.Configuration())
apis = [getattr(client, n)(api).__class__.__module__ for n in
        ("CoreV1Api", "AppsV1Api", "CoordinationV1Api", "DiscoveryV1Api", "AutoscalingV2Api", "VersionApi")]
models = sorted(m for m in sys.modules if m.startswith("kubernetes.client.models."))
# what a watch does with every event, from several threads at once (the informer's watch threads)
pod = json.dumps({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i", "readinessProbe":
                  {"httpGet": {"path": "/", "port": 8080}}}]}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
results = []
def deserialize():
    try:
        results.append(type(api.deserialize(SimpleNamespace(data=pod), "V1Pod").spec.containers[0].readiness_probe.http_get).__name__)
    except Exception as e:
        results.append(repr(e))
threads = [threading.Thread(target=deserialize) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
acronym = client.V1CSIDriver.__module__
full_before = "_enadu_full_import" in vars(client)
try:
    client.NoSuchThing
    missing = "resolved"
except AttributeError as e:
    missing = str(e)
full_after = "_enadu_full_import" in vars(client)
import kubernetes
from kubernetes import utils  # imports kubernetes.dynamic, which reads kubernetes.__version__
version = [kubernetes.__version__, kubernetes.__project__, client.__version__, utils.parse_quantity("250m") * 4]
print(json.dumps({"version": [str(v) for v in version], "apis": apis, "models": models, "threads": results, "acronym": acronym, "full_before": full_before,
                  "missing": missing, "full_after": full_after,
                  "watch": watch.Watch.__module__, "config": config.load_kube_config.__module__,
                  "exception": ApiException.__module__}))
"""

# Every name the real kubernetes/client/__init__.py and models/__init__.py define, looked up lazily, is
# the very object the real package would give.
SAME = r"""
import json, sys, subprocess
from enadu_pipelines.helper.kube import lazy
lazy.install()
import kubernetes.client as lazy_client
lazy_names = {}
for package in (lazy_client, lazy_client.models):
    imports, _ = lazy.read_init(open(package.__file__).read(), package.__name__)
    for name in sorted(imports):
        lazy_names[f"{package.__name__}.{name}"] = getattr(package, name).__module__
print(json.dumps({"names": lazy_names, "full": "_enadu_full_import" in vars(lazy_client)}))
"""
REAL = r"""
import json, sys
import kubernetes.client as real
names = {}
for package in (real, real.models):
    for name in dir(package):
        value = getattr(package, name)
        if isinstance(value, type) and value.__module__.startswith("kubernetes."):
            names[f"{package.__name__}.{name}"] = value.__module__
print(json.dumps(names))
"""


def probe(script: str) -> dict:
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_client_is_imported_by_need_and_nothing_is_missing() -> None:
    seen = probe(PROBE)
    installed = importlib.metadata.version("kubernetes")
    assert seen["apis"] == ["kubernetes.client.api.core_v1_api", "kubernetes.client.api.apps_v1_api",
                            "kubernetes.client.api.coordination_v1_api", "kubernetes.client.api.discovery_v1_api",
                            "kubernetes.client.api.autoscaling_v2_api", "kubernetes.client.api.version_api"]
    assert seen["models"] == []  # the helper reads raw JSON: no model is imported for it
    assert seen["threads"] == ["V1HTTPGetAction"] * 8  # failed once: two threads raced the fallback
    assert seen["acronym"] == "kubernetes.client.models.v1_csi_driver"
    assert seen["full_before"] is False
    assert (seen["missing"], seen["full_after"]) == ("module 'kubernetes.client' has no attribute 'NoSuchThing'", True)
    assert seen["version"] == [installed, "kubernetes", installed, "1.000"]  # failed: dunders were never looked up
    assert (seen["watch"], seen["config"], seen["exception"]) == (
        "kubernetes.watch.watch", "kubernetes.config.kube_config", "kubernetes.client.exceptions")


def test_every_name_of_the_real_packages_comes_from_the_same_module() -> None:
    lazy, real = probe(SAME), probe(REAL)
    assert lazy["full"] is False  # every name was found in the map, none needed the fallback
    assert len(real) > 700 and {k: v for k, v in lazy["names"].items() if k in real} == real


def test_the_bundled_helper_imports_a_tenth_of_the_client(tmp_path) -> None:
    """The bundle is what the pipelines run: its status command, as far as asking the API server,
    imports the client's configuration and the API modules it uses, but none of the ~700 models and
    under a tenth of the ~820 modules (sys.modules at exit; ``-X importtime`` would not see the
    modules importlib.import_module loads)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:9'}}]\n"  # nothing listens: refused at once
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: enadu}}]\nusers: [{name: u, user: {token: t}}]\n")
    dump = tmp_path / "modules.json"
    wrapper = ("import atexit, json, runpy, sys\n"
               f"atexit.register(lambda: open({str(dump)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
               f"sys.argv = [{str(BUNDLE)!r}, 'status', '--service', 'backend', '--kubeconfig', {str(kubeconfig)!r}]\n"
               f"runpy.run_path({str(BUNDLE)!r}, run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-I", "-c", wrapper], capture_output=True, text=True, timeout=120,
                            env={"ENADU_API_DEADLINE": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 4, result.stdout + result.stderr  # exit 4: the API server is unreachable
    assert "get service backend: the API server is unreachable" in result.stdout
    modules = json.loads(dump.read_text())
    assert {"kubernetes.config.kube_config", "kubernetes.client.api_client", "kubernetes.client.api.core_v1_api",
            "kubernetes.client.api.apps_v1_api", "kubernetes.client.rest"} <= set(modules)
    assert [m for m in modules if m.startswith("kubernetes.client.models.")] == []
    assert len([m for m in modules if m.startswith("kubernetes")]) < 80  # of about 820
