"""kubeworld: an emulated Kubernetes cluster for tests (see README.md next to this file).

    from tests.support.kubeworld import KubeWorld
    with KubeWorld(seed=1) as world:
        client = kubernetes.config.new_client_from_config(config_file=world.kubeconfig)
"""

from .errors import ApiError
from .faults import Fault
from .images import behaviour
from .invariants import View, Violation, deployment_fully_available, service_selects_available
from .load import LoadGenerator, Result
from .requestlog import RequestInfo
from .world import KubeWorld

__all__ = [
    "ApiError", "Fault", "KubeWorld", "LoadGenerator", "RequestInfo", "Result", "View", "Violation",
    "behaviour", "deployment_fully_available", "service_selects_available",
]
