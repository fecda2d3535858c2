"""Import the kubernetes client without importing all of it.

``import kubernetes.client`` runs ``kubernetes/__init__.py`` (which imports ``config``, ``dynamic``,
``watch``, ``stream``, ``utils`` and ``leaderelection``) and ``kubernetes/client/__init__.py``, which
imports, through ``kubernetes/client/api/__init__.py``, every API class (about 60 modules) and,
through ``kubernetes/client/models/__init__.py``, every model (about 700): some 820 modules. The helper uses six API classes and reads every answer as
raw JSON (``_preload_content=False``), so it needs none of the models. Measured at kubernetes 35.0.0:
about 0.6 s of CPU per process from sources with cached bytecode, and about 5 s from the bundle,
where ``zipimport`` compiles every module from source on every run (the bundle carries no bytecode:
it would tie it to one Python version). Every helper command the pipelines run pays that.

:func:`install` puts the four packages (``kubernetes``, ``kubernetes.client``,
``kubernetes.client.api``, ``kubernetes.client.models``) into ``sys.modules`` made from their real import specs but without
running their ``__init__``, each with a module ``__getattr__`` (PEP 562) that imports what a name
needs when it is first asked for, from the module the package's own ``__init__`` would have taken it
from: its ``from kubernetes.client.models.v1_pod import V1Pod`` lines are read (as text, not run) into
a map of name to module, so ``kubernetes.client.CoreV1Api`` comes from
``kubernetes.client.api.core_v1_api`` and ``kubernetes.client.models.V1HTTPGetAction`` (which the
client's deserializer asks for by name) from ``kubernetes.client.models.v1_http_get_action``. Any other
name is a submodule (``kubernetes.config``, ``kubernetes.client.rest``), imported as usual; a name that
is neither is answered by running the package's own ``__init__`` once, so a name is never missing,
only slower to get. The watch threads ask for models at the same time: a lock per package makes the
map and that fallback happen once.

Hand-written because no library does it for a third-party package (``importlib.util.LazyLoader``
defers a module's execution until its first attribute access, which ``from kubernetes import client``
makes at once, and ``lazy_loader`` attaches laziness to one's own package). The kubernetes version is
pinned with its hash in ``enadu_pipelines/helper.lock``; tests/test_kube_lazy.py checks this module
against it.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import threading
from types import ModuleType
from typing import Dict, Optional

# ``from kubernetes.client.api.core_v1_api import CoreV1Api``: one name per line in the generated __init__ files
IMPORT_LINE = re.compile(r"^from (kubernetes(?:\.\w+)+) import (\w+)[ \t]*(?:#.*)?$", re.M)


def _lazy_package(name: str) -> ModuleType:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"No module named {name!r}")
    package = importlib.util.module_from_spec(spec)
    lock = threading.RLock()
    state: Dict[str, Optional[Dict[str, str]]] = {"names": None}

    def names() -> Dict[str, str]:
        with lock:
            if state["names"] is None:
                source = spec.loader.get_source(name) or ""  # type: ignore[union-attr]
                state["names"] = {m.group(2): m.group(1) for m in IMPORT_LINE.finditer(source)}
            return state["names"]  # type: ignore[return-value]

    def __getattr__(attr: str) -> object:
        if attr.startswith("__"):
            raise AttributeError(attr)
        home = names().get(attr)
        if home is not None:
            value = getattr(importlib.import_module(home), attr)
        else:
            try:
                value = importlib.import_module(f"{name}.{attr}")
            except ModuleNotFoundError as e:
                if e.name != f"{name}.{attr}":
                    raise  # the submodule exists but needs something missing: say so
                with lock:
                    if not package.__dict__.get("_enadu_full_import"):
                        package._enadu_full_import = True  # type: ignore[attr-defined]
                        spec.loader.exec_module(package)  # type: ignore[union-attr]
                if attr in package.__dict__:
                    return package.__dict__[attr]
                raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None
        setattr(package, attr, value)
        return value

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = package
    return package


def install() -> None:
    """Make later ``import kubernetes...`` statements lazy (nothing happens if kubernetes is already
    imported, fully or lazily)."""
    if "kubernetes" in sys.modules:
        return
    root = _lazy_package("kubernetes")
    client = root.client = _lazy_package("kubernetes.client")  # type: ignore[attr-defined]
    client.api = _lazy_package("kubernetes.client.api")  # type: ignore[attr-defined]
    client.models = _lazy_package("kubernetes.client.models")  # type: ignore[attr-defined]
