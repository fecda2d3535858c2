"""One deploy per service at a time: a ``coordination.k8s.io/v1`` Lease as a lock.

Same idea as client-go's leader election (tools/leaderelection/resourcelock/leaselock.go): the Lease
names its holder and when it last renewed; a holder that stops renewing for ``leaseDurationSeconds``
loses it. We create the Lease to take a free lock (409 AlreadyExists: someone was faster), take over
an expired one or our own (a re-run of the same build after a crash) with a resourceVersion-checked
update, renew it from a background thread while we work, and delete it with a resourceVersion
precondition when done. Waiting for a held lock watches the Lease rather than polling it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, Optional

from ..errors import HelperError, LockHeld
from .client import Conflict, Kube


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _micro(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # metav1.MicroTime


def _parse(value: Optional[str]) -> Optional[dt.datetime]:
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def default_identity() -> str:
    """Who holds the lock: the Jenkins build if there is one (a re-run of it may take over)."""
    return (os.environ.get("ENADU_LOCK_IDENTITY") or os.environ.get("BUILD_TAG")
            or f"{socket.gethostname()}/{os.getpid()}")


class LeaseLock:
    def __init__(self, kube: Kube, service: str, *, identity: str, ttl: int, log: Callable[[str], None]) -> None:
        self.kube = kube
        self.name = f"enadu-deploy-{service}"
        self.identity = identity
        self.ttl = ttl
        self.log = log
        self.lease: Optional[Dict[str, Any]] = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: Optional[threading.Thread] = None
        self._mutex = threading.Lock()

    def _body(self, previous: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        now = _micro(_now())
        spec = dict((previous or {}).get("spec") or {})
        transitions = int(spec.get("leaseTransitions") or 0)
        if previous is not None and spec.get("holderIdentity") != self.identity:
            transitions += 1
        body: Dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "labels": {"app.kubernetes.io/managed-by": "enadu-pipelines"}},
            "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.ttl,
                     "acquireTime": now if previous is None or spec.get("holderIdentity") != self.identity
                     else spec.get("acquireTime", now),
                     "renewTime": now, "leaseTransitions": transitions},
        }
        if previous is not None:
            body["metadata"]["resourceVersion"] = previous["metadata"]["resourceVersion"]
        return body

    @staticmethod
    def expires_in(lease: Dict[str, Any]) -> float:
        spec = lease.get("spec") or {}
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        if renewed is None:
            return 0.0
        return (renewed - _now()).total_seconds() + float(spec.get("leaseDurationSeconds") or 0)

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        announced = ""
        while True:
            lease = self.kube.get_lease(self.name)
            try:
                if lease is None:
                    self.lease = self.kube.create_lease(self._body(None))
                    break
                holder = (lease.get("spec") or {}).get("holderIdentity") or ""
                if holder in ("", self.identity) or self.expires_in(lease) <= 0:
                    self.lease = self.kube.replace_lease(self._body(lease))
                    if holder and holder != self.identity:
                        self.log(f"took over the expired deploy lock of {holder}")
                    break
            except Conflict:
                continue  # someone else wrote it between our read and write: look again
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockHeld(f"lease {self.name} is held by {holder} (expires in {max(0, self.expires_in(lease)):.0f} s"
                               f" unless renewed); gave up after waiting {timeout:.0f} s")
            if holder != announced:
                self.log(f"waiting for the deploy lock held by {holder} (up to {remaining:.0f} s)")
                announced = holder
            self._wait_for_change(lease, min(remaining, max(1.0, self.expires_in(lease) + 0.5)))
        self.log(f"acquired the deploy lock (lease {self.name}, holder {self.identity})")
        self._renewer = threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True)
        self._renewer.start()

    def _wait_for_change(self, lease: Dict[str, Any], seconds: float) -> None:
        """Block until the Lease changes or ``seconds`` pass (a bounded watch on this one object)."""
        from kubernetes import watch

        stream = watch.Watch()
        try:
            for _ in stream.stream(self.kube.coordination.list_namespaced_lease, self.kube.namespace,
                                   field_selector=f"metadata.name={self.name}",
                                   resource_version=lease["metadata"]["resourceVersion"],
                                   timeout_seconds=max(1, int(seconds)), _request_timeout=(5, seconds + 5)):
                stream.stop()
                break
        except Exception:  # noqa: BLE001 - any watch failure: just look at the Lease again
            time.sleep(min(1.0, seconds))

    def _renew_loop(self) -> None:
        while not self._stop.wait(max(1.0, self.ttl / 3)):
            try:
                with self._mutex:
                    current = self.kube.get_lease(self.name)
                    if current is None or (current.get("spec") or {}).get("holderIdentity") != self.identity:
                        self.lost.set()
                        self.log(f"lost the deploy lock {self.name}")
                        return
                    self.lease = self.kube.replace_lease(self._body(current))
            except Exception:  # noqa: BLE001 - renewal failures are judged by expiry, below
                if self.lease is not None and self.expires_in(self.lease) <= 0:
                    self.lost.set()
                    self.log(f"could not renew the deploy lock {self.name} before it expired")
                    return

    def held(self) -> bool:
        return self.lease is not None and not self.lost.is_set() and self.expires_in(self.lease) > 0

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        with self._mutex:
            if self.lease is not None and not self.lost.is_set():
                self.kube.delete_lease(self.name, self.lease["metadata"]["resourceVersion"])
                self.log(f"released the deploy lock {self.name}")
            self.lease = None


@contextlib.contextmanager
def holding(kube: Kube, service: str, *, ttl: int, timeout: float, log: Callable[[str], None],
            identity: Optional[str] = None) -> Iterator[LeaseLock]:
    """Hold the service's deploy lock for the ``with`` block; a failed release is logged (the lease
    then expires by itself), never raised over the block's own outcome."""
    lock = LeaseLock(kube, service, identity=identity or default_identity(), ttl=ttl, log=log)
    lock.acquire(timeout)
    try:
        yield lock
    finally:
        try:
            lock.release()
        except HelperError as e:
            log(f"could not release the deploy lock ({e}); it expires by itself")
