"""The controller manager: runs every controller in a fixed order on each change and each tick.

Real controllers are level-triggered reconcilers fed by informers (client-go tools/cache); their
order and timing vary. Here one loop runs them in a fixed order — deployment, replicaset, kubelet,
endpoints, endpointslice, garbage collector — whenever the store changed and at least every `tick`
seconds (for time-driven transitions: readiness, minReadySeconds, progress deadlines, grace
periods). Reading the store directly means no informer lag, so no "expectations" bookkeeping is
needed (pkg/controller/controller_utils.go `ControllerExpectations` exists only to cover that lag).
Lag is opt-in and per controller (lag.py, the world's `lag` knob): a lagged deployment,
replicaset or gc controller skips passes until its drawn delay since the last change has passed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Dict, List, Optional, Set

from .errors import ApiError

log = logging.getLogger("kubeworld")


REACTION_LAGGED = ("deployment", "replicaset", "gc")


class ControlLoop:
    ORDER = ("deployment", "replicaset", "volumes", "kubelet", "endpoints", "endpointslice", "gc")

    def __init__(self, world) -> None:
        from .deployment import DeploymentController
        from .endpoints import EndpointsController, EndpointSliceController
        from .gc import GarbageCollector
        from .kubelet import Kubelet
        from .replicaset import ReplicaSetController
        from .volumes import VolumeController

        self.world = world
        self.controllers: Dict[str, object] = {
            "deployment": DeploymentController(world),
            "replicaset": ReplicaSetController(world),
            "volumes": VolumeController(world),
            "kubelet": Kubelet(world),
            "endpoints": EndpointsController(world),
            "endpointslice": EndpointSliceController(world),
            "gc": GarbageCollector(world),
        }
        self.paused: Set[str] = set()
        self._wake: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None
        self.passes = 0
        self.conflicts = 0
        self._stopping = False
        self.errors: List[str] = []
        world.store.listeners.append(self._changed)

    @property
    def kubelet(self):
        return self.controllers["kubelet"]

    def _changed(self, *_args) -> None:
        # Each lagged controller reacts to this change only once its own drawn delay has passed
        # (lag.py `changed`/`may_run`); the kubelet's and the endpoints controllers' lags delay
        # their writes instead (`admit`), so they keep running every pass.
        for name in REACTION_LAGGED:
            self.world.lags[name].changed()
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kubeworld-controllers")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._wake.set()
            done, _ = await asyncio.wait({self._task}, timeout=2)
            if not done:
                self._task.cancel()
        await self.kubelet.shutdown()

    def pause(self, *names: str) -> None:
        for n in names:
            if n not in self.controllers:
                raise ValueError(f"no controller named {n!r}; known: {', '.join(self.ORDER)}")
            self.paused.add(n)

    def resume(self, *names: str) -> None:
        for n in names:
            self.paused.discard(n)
        self._changed()

    async def _run(self) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation or lose a
        # result when the awaited thing completes at the same moment (CPython gh-86296).
        while not self._stopping:
            try:
                async with asyncio.timeout(self.world.tick):
                    await self._wake.wait()
            except TimeoutError:
                pass
            if self._stopping:
                return
            self._wake.clear()
            self.run_once()
            await asyncio.sleep(0.001)  # let API requests in between passes

    def run_once(self) -> None:
        self.passes += 1
        for name in self.ORDER:
            if name in self.paused:
                continue
            if name in REACTION_LAGGED and not self.world.lags[name].may_run():
                continue
            try:
                self.controllers[name].sync()
            except ApiError as e:
                if e.code == 409:  # a conflict with another writer: requeue, as real controllers do
                    self.conflicts += 1
                    continue
                self._failed(name, e)
            except Exception as e:  # a controller bug must not kill the loop; surface it to tests
                self._failed(name, e)

    def _failed(self, name: str, e: BaseException) -> None:
        message = f"{name}: {type(e).__name__}: {e}"
        if len(self.errors) < 100:
            self.errors.append(message)
        log.error("kubeworld controller %s failed", name, exc_info=e)
