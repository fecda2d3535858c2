"""One deploy per service at a time: a ``coordination.k8s.io/v1`` Lease as a lock.

Same idea as client-go's leader election (tools/leaderelection/leaderelection.go, ``tryAcquireOrRenew``):
the Lease names its holder, and a holder that stops renewing for ``leaseDurationSeconds`` loses it.
Like client-go, we judge expiry by our own clock — how long *we* have seen the Lease unchanged (its
resourceVersion) — never by comparing its ``renewTime`` with our clock, so clock skew between agents
cannot break mutual exclusion. We create the Lease to take a free lock (409 AlreadyExists: someone
was faster), take over an expired one or our own (a re-run of the same build after a crash) with a
resourceVersion-checked update, renew it from a background thread (each renewal bounded by a third
of the TTL), and delete it when done. Waiting for a held lock watches the Lease rather than polling.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, Optional

from .. import interrupt, retry
from ..errors import HelperError, Interrupted, LockHeld
from .client import Conflict, Kube


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _micro(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # metav1.MicroTime


def lease_name(service: str) -> str:
    """The name of the service's lock Lease."""
    return f"enadu-deploy-{service}"


def default_identity() -> str:
    """Who holds the lock: the Jenkins build if there is one (a re-run of it may take over)."""
    return (os.environ.get("ENADU_LOCK_IDENTITY") or os.environ.get("BUILD_TAG")
            or f"{socket.gethostname()}/{os.getpid()}")


class LeaseLock:
    def __init__(self, kube: Kube, service: str, *, identity: str, ttl: int, log: Callable[[str], None]) -> None:
        self.kube = kube
        self.name = lease_name(service)
        self.identity = identity
        self.ttl = ttl
        self.log = log
        self.lease: Optional[Dict[str, Any]] = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: Optional[threading.Thread] = None
        self._mutex = threading.Lock()
        self._observed: Dict[Any, float] = {}  # (uid, resourceVersion) -> when we first saw it
        self.acquired_at = 0.0
        self.renewed_at = 0.0
        # renewals and the release must fit well inside the TTL, whatever the default API deadline
        self._quick = Kube(kube.api_client, kube.namespace, log=log,
                           policy=retry.Policy(backoffs=(0.5, 1, 2), deadline=max(2.0, ttl / 3)))

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

    def expires_in(self, lease: Dict[str, Any]) -> float:
        """Seconds until ``lease`` expires, judged by how long we have seen it unchanged."""
        key = (lease["metadata"].get("uid"), lease["metadata"].get("resourceVersion"))
        first_seen = self._observed.setdefault(key, time.monotonic())
        duration = float((lease.get("spec") or {}).get("leaseDurationSeconds") or 0)
        return first_seen + duration - time.monotonic()

    def acquire(self, timeout: float) -> None:
        try:
            self._acquire(timeout)
        except Interrupted:
            # A create or update may have landed with its answer lost: if the Lease names us, give it back.
            self._give_back_if_ours()
            raise

    def _give_back_if_ours(self) -> None:
        try:
            current = self._quick.get_lease(self.name)
            if current is not None and (current.get("spec") or {}).get("holderIdentity") == self.identity:
                if self._quick.delete_lease(self.name, current["metadata"]["resourceVersion"]):
                    self.log(f"released the deploy lock {self.name}")
        except HelperError as e:
            self.log(f"could not release the deploy lock ({e}); it expires by itself")

    def _acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        announced = ""
        while True:
            lease = self.kube.get_lease(self.name)
            holder = ((lease or {}).get("spec") or {}).get("holderIdentity") or ""
            try:
                if lease is None:
                    self.lease = self.kube.create_lease(self._body(None))
                    break
                if holder in ("", self.identity) or self.expires_in(lease) <= 0:
                    self.lease = self.kube.replace_lease(self._body(lease))
                    if holder and holder != self.identity:
                        self.log(f"took over the expired deploy lock of {holder}")
                    break
            except Conflict:
                lease = None  # someone else wrote it between our read and write: look again
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                left = f" (expires in {max(0.0, self.expires_in(lease)):.0f} s unless renewed)" if lease else ""
                raise LockHeld(f"lease {self.name} is held by {holder or 'another deploy'}{left}; "
                               f"gave up after waiting {timeout:.0f} s")
            if lease is None:
                continue
            if holder != announced:
                self.log(f"waiting for the deploy lock held by {holder} (up to {remaining:.0f} s)")
                announced = holder
            self._wait_for_change(lease, min(remaining, max(1.0, self.expires_in(lease) + 0.5)))
        self.acquired_at = time.monotonic()
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
        self.renewed_at = self.acquired_at
        while not self._stop.wait(max(1.0, self.ttl / 3)):
            try:
                with self._mutex:
                    current = self._quick.get_lease(self.name)
                    if current is None or (current.get("spec") or {}).get("holderIdentity") != self.identity:
                        self.lost.set()
                        self.log(f"lost the deploy lock {self.name}")
                        return
                    self.lease = self._quick.replace_lease(self._body(current))
                    self.renewed_at = time.monotonic()
            except Exception:  # noqa: BLE001 - renewal failures are judged by the last renewal's age, below
                if time.monotonic() - self.renewed_at >= self.ttl:
                    self.lost.set()
                    self.log(f"could not renew the deploy lock {self.name} before it expired")
                    return

    def held(self) -> bool:
        """Still ours: not lost, and renewed (by our clock) within the TTL."""
        return (self.lease is not None and not self.lost.is_set()
                and time.monotonic() - max(self.renewed_at, self.acquired_at) < self.ttl)

    def release(self) -> None:
        """Stop renewing and delete the Lease if it is still ours. After SIGTERM this is bounded by
        the clean-up time (``interrupt``): a renewal in flight is not waited for past it, and the
        delete's resourceVersion precondition (re-read on a conflict) keeps it safe without the mutex."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=self._bounded(self.ttl))
        mutex = self._mutex.acquire(timeout=self._bounded(self.ttl))
        try:
            if self.lease is not None and not self.lost.is_set():
                # delete_lease has a resourceVersion precondition; after a renewal whose answer was
                # lost our copy is stale, so read again and delete if the holder is still us.
                for _ in range(3):
                    if self._quick.delete_lease(self.name, self.lease["metadata"]["resourceVersion"]):
                        self.log(f"released the deploy lock {self.name}")
                        break
                    current = self._quick.get_lease(self.name)
                    if current is None or (current.get("spec") or {}).get("holderIdentity") != self.identity:
                        break
                    self.lease = current
            self.lease = None
        finally:
            if mutex:
                self._mutex.release()

    @staticmethod
    def _bounded(seconds: float) -> float:
        left = interrupt.remaining()
        return seconds if left is None else min(seconds, left)


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
            try:
                lock.release()
            except Interrupted:  # the signal arrived during the release itself: release within the bound
                lock.release()
                raise
        except HelperError as e:
            log(f"could not release the deploy lock ({e}); it expires by itself")
