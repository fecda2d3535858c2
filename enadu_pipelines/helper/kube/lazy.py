"""Import the kubernetes client without importing all of it.

``import kubernetes.client`` runs ``kubernetes/__init__.py`` (which imports ``config``, ``dynamic``,
``watch``, ``stream``, ``utils`` and ``leaderelection``) and ``kubernetes/client/__init__.py``, which
imports, through ``kubernetes/client/api/__init__.py``, every API class (about 60 modules) and,
through ``kubernetes/client/models/__init__.py``, every model (about 700): some 820 modules. The
helper uses six API classes and reads answers as raw JSON (``_preload_content=False``); only the
client's watch turns each event into models (about 30 model modules for a pod). Measured at
kubernetes 35.0.0: the whole client costs about 0.6 s of CPU per process from sources with cached
bytecode, and about 5 s from the bundle, where ``zipimport`` compiles every module from source on
every run (the bundle carries no bytecode: it would tie it to one Python version). Every helper
command the pipelines run against the cluster paid that.

:func:`install` puts the four packages (``kubernetes``, ``kubernetes.client``,
``kubernetes.client.api``, ``kubernetes.client.models``) into ``sys.modules``, made from their real
import specs but without running their ``__init__``, each with a module ``__getattr__`` (PEP 562)
that gets a name when it is first asked for from where the package's own ``__init__`` would have
taken it: that source is parsed (``ast``, not run) into the names it imports, with their modules, and
the names it binds to literals. So ``kubernetes.client.CoreV1Api`` comes from
``kubernetes.client.api.core_v1_api``, ``kubernetes.client.models.V1HTTPGetAction`` (which the
client's deserializer asks for by name) from ``kubernetes.client.models.v1_http_get_action``, and
``kubernetes.__version__`` is the literal. Any other name is a submodule (``kubernetes.config``,
``kubernetes.client.rest``, ``kubernetes.utils``), imported as usual; a name that is neither is
answered by running the package's own ``__init__`` once, so a name is never missing, only slower to
get. The watch threads ask for models at the same time: a lock per package makes the parse and that
fallback happen once.

Hand-written because no library does it for a third-party package (``importlib.util.LazyLoader``
defers a module's execution until its first attribute access, which ``from kubernetes import client``
makes at once, and ``lazy_loader`` attaches laziness to one's own package). The kubernetes version is
pinned with its hash in ``enadu_pipelines/helper.lock``; tests/test_kube_lazy.py checks this module
against it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any, Dict, Optional, Tuple


def read_init(source: str, package: str) -> Tuple[Dict[str, str], Dict[str, Any]]:
    """What a package's ``__init__`` source binds, without running it: each imported name with the
    module it comes from (``from kubernetes.client.api.core_v1_api import CoreV1Api``; a relative
    ``from .x import y`` resolved against ``package``), and each name bound to a literal
    (``__version__ = "35.0.0"``)."""
    imports: Dict[str, str] = {}
    constants: Dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            base = package.rsplit(".", node.level - 1)[0] + "." if node.level else ""
            for alias in node.names:
                imports[alias.asname or alias.name] = base + node.module
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    return imports, constants


def _lazy_package(name: str) -> ModuleType:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"No module named {name!r}")
    loader: Any = spec.loader
    package = importlib.util.module_from_spec(spec)
    lock = threading.RLock()
    state: Dict[str, Optional[Tuple[Dict[str, str], Dict[str, Any]]]] = {"init": None}

    def init() -> Tuple[Dict[str, str], Dict[str, Any]]:
        with lock:
            if state["init"] is None:
                state["init"] = read_init(loader.get_source(name) or "", name)
            return state["init"]  # type: ignore[return-value]

    def full_import() -> None:
        """Run the package's own __init__ (once): for a name its source binds otherwise. Its code object
        (``get_code``) runs in the module's namespace, as exec_module would (zipimport has no exec_module
        before Python 3.10). The lock is held meanwhile: the helper never gets here (tests/test_kube_lazy.py)."""
        with lock:
            if package.__dict__.get("_enadu_full_import"):
                return
            package._enadu_full_import = True  # type: ignore[attr-defined]
            try:
                exec(loader.get_code(name), package.__dict__)  # noqa: S102 - the package's own __init__
            except BaseException:
                package._enadu_full_import = False  # type: ignore[attr-defined]
                raise

    def __getattr__(attr: str) -> object:
        imports, constants = init()
        if attr in constants:
            return constants[attr]
        home = imports.get(attr)
        if home is not None:
            value = getattr(importlib.import_module(home), attr)
        elif attr.startswith("__"):  # __all__, __wrapped__...: what the import system and tools probe
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        else:
            try:
                value = importlib.import_module(f"{name}.{attr}")
            except ModuleNotFoundError as e:
                if e.name != f"{name}.{attr}":
                    raise  # the submodule exists but needs something missing: say so
                full_import()
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
    if "kubernetes" in sys.modules or importlib.util.find_spec("kubernetes") is None:
        return  # imported already, or not installed: a command that needs it says so when it imports it
    root = _lazy_package("kubernetes")
    client = root.client = _lazy_package("kubernetes.client")  # type: ignore[attr-defined]
    client.api = _lazy_package("kubernetes.client.api")  # type: ignore[attr-defined]
    client.models = _lazy_package("kubernetes.client.models")  # type: ignore[attr-defined]
