"""pytest fixtures for kubeworld. Import them into a test module (or a conftest):

    from tests.support.kubeworld.fixtures import kubeworld  # noqa: F401  (a fixture)

`kubeworld` gives a started world per test and stops it afterwards, failing the test if a
controller raised or a thread or a listening port outlived the world. Parametrise it indirectly
to pass KubeWorld knobs:

    @pytest.mark.parametrize("kubeworld", [{"time_scale": 0.1, "propagation_lag": 1.0}], indirect=True)
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from .world import KubeWorld


@pytest.fixture
def kubeworld(request, tmp_path):
    options = dict(getattr(request, "param", None) or {})
    options.setdefault("workdir", str(tmp_path))
    before = {t.ident for t in threading.enumerate()}
    world = KubeWorld(**options).start()
    ports = []
    try:
        yield world
    finally:
        try:
            ports = world.listening_ports()
        finally:
            world.stop()
    still_open = [p for p in ports if _accepts(p)]
    assert not still_open, f"kubeworld left ports listening: {still_open}"
    # A thread that was talking to the world (an in-process helper's watch) sees its connection close at
    # world.stop() and ends on its own: give it a moment, then any thread still alive is a leak.
    late = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    deadline = time.monotonic() + 5.0
    for t in late:
        t.join(max(0.0, deadline - time.monotonic()))
    leaked = [t.name for t in late if t.is_alive()]
    assert not leaked, f"kubeworld left threads running: {leaked}"
    errors = world.control.errors
    assert not errors, f"kubeworld controllers failed: {errors[:5]}"


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
