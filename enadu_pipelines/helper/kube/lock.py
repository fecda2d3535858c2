"""One deploy per service at a time: a ``coordination.k8s.io/v1`` Lease as a lock.

Same idea as client-go's leader election (tools/leaderelection/leaderelection.go, ``tryAcquireOrRenew``):
the Lease names its holder, and a holder that stops renewing for ``leaseDurationSeconds`` loses it.
Like client-go, we judge expiry by our own clock — how long *we* have seen the Lease unchanged (its
resourceVersion) — never by comparing its ``renewTime`` with our clock, so clock skew between agents
cannot break mutual exclusion. We create the Lease to take a free lock (409 AlreadyExists: someone
was faster), take over an expired one or our own (a re-run of the same build after a crash) with a
resourceVersion-checked update, renew it from a background thread (each renewal bounded by a third
of the TTL), and delete it when done. Waiting for a held lock watches the Lease rather than polling.

Pre-emption (the one hand-over that does not wait for the holder): a deploy that is only waiting out
its scale-down delay marks its Lease with the :data:`PREEMPTIBLE` annotation and the colour it keeps
running (:data:`KEEPS`). A rollback back to exactly that colour may then take the Lease over at once,
by an update conditional on the resourceVersion it read the marker in, and says so on the Lease
(:data:`PREEMPTED`: whom it took it from; :data:`PREEMPT_REASON`: why). The deploy leaves its delay
by removing the marker with an update of its own, conditional the same way, and only once that
update landed may it scale anything down. Both sides race on one resourceVersion, so exactly one
wins and the Lease never has two holders acting at once: either the deploy took the marker back
(the rollback then waits for the lock as for any deploy) or the rollback took the Lease (the
deploy's renewals and its exit update then fail their precondition, and it stops without writing).

What this does not give (as client-go's leaderelection says of itself, it is no fencing): the writes
after the marker came back are not conditional on the Lease. A deploy paused longer than the Lease's
TTL (a stopped VM, SIGSTOP) can still retire its old colour after someone else took the expired Lease.
Unlike client-go, which never takes a Lease before it expires, the marker is an announced hand-over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

from .. import interrupt, retry
from ..errors import ClusterError, HelperError, Interrupted, LockHeld
from .client import Conflict, Kube


PREEMPTIBLE = "enadu.io/preemptible"  # on the holder's Lease: the phase in which it may be pre-empted
KEEPS = "enadu.io/preemptible-keeps"  # ... and the colour it keeps running meanwhile (a rollback's target)
PREEMPTED = "enadu.io/preempted"  # on a taken-over Lease: the identity of the holder that was pre-empted
PREEMPT_REASON = "enadu.io/preempt-reason"  # ... and why (the rollback's history reason)
SCALE_DOWN_DELAY = "scale-down-delay"  # the only pre-emptible phase
_TEXT_LIMIT = 300


def lease_text(lease: Optional[Dict[str, Any]], key: str) -> str:
    """An annotation of a Lease, or its holder (``key`` "holderIdentity"), as one bounded printable
    line; "" when absent or not such a line (anyone who may write Leases can write these)."""
    if key == "holderIdentity":
        value = ((lease or {}).get("spec") or {}).get(key)
    else:
        value = (((lease or {}).get("metadata") or {}).get("annotations") or {}).get(key)
    if not isinstance(value, str) or len(value) > _TEXT_LIMIT or not value.isprintable():
        return ""
    return value


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
        self.annotations: Dict[str, str] = {}  # written with every create, renewal and takeover
        self.preempted = ""  # the holder we took the Lease from by pre-emption, if we did
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
            "metadata": {"name": self.name, "labels": {"app.kubernetes.io/managed-by": "enadu-pipelines"},
                         **({"annotations": dict(self.annotations)} if self.annotations else {})},
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

    def acquire(self, timeout: float, *, preempt: Optional[Callable[[Dict[str, Any]], bool]] = None,
                reason: str = "") -> None:
        """Take the lock, waiting up to ``timeout`` for its holder. ``preempt(lease)`` says whether a
        Lease held by someone else may be taken over at once (see the module docstring); ``reason``
        is then written on it for the pre-empted holder to report."""
        try:
            self._acquire(timeout, preempt, reason)
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

    def _acquire(self, timeout: float, preempt: Optional[Callable[[Dict[str, Any]], bool]] = None,
                 reason: str = "") -> None:
        deadline = time.monotonic() + timeout
        announced = ""
        while True:
            lease = self.kube.get_lease(self.name)
            holder = ((lease or {}).get("spec") or {}).get("holderIdentity") or ""
            try:
                if lease is None:
                    self.annotations = {}
                    self.lease = self.kube.create_lease(self._body(None))
                    break
                if preempt is not None and holder == self.identity and lease_text(lease, PREEMPTED):
                    # our own takeover, whose answer was lost: keep saying whom it pre-empted
                    self.preempted = lease_text(lease, PREEMPTED)
                    self.annotations = {PREEMPTED: self.preempted, PREEMPT_REASON: lease_text(lease, PREEMPT_REASON)}
                    self.lease = self.kube.replace_lease(self._body(lease))
                    break
                if holder in ("", self.identity) or self.expires_in(lease) <= 0:
                    self.annotations = {}
                    self.lease = self.kube.replace_lease(self._body(lease))
                    if holder and holder != self.identity:
                        self.log(f"took over the expired deploy lock of {holder}")
                    break
                if preempt is not None and preempt(lease):
                    self.annotations = {PREEMPTED: holder, PREEMPT_REASON: reason}
                    self.lease = self.kube.replace_lease(self._body(lease))  # conditional on the marked version
                    self.preempted = lease_text(lease, "holderIdentity") or "another deploy"
                    self.log(f"took over the deploy lock from {lease_text(lease, 'holderIdentity') or 'its holder'}, "
                             f"which was only waiting out its scale-down delay (it stops without retiring anything)")
                    break
            except Conflict:
                self.annotations = {}
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

    def _wait_for_change(self, lease: Dict[str, Any], seconds: float, *, pause: float = 1.0,
                         failed: Callable[[], None] = lambda: None) -> bool:
        """Block until the Lease changes or ``seconds`` pass (a bounded watch on this one object).
        After a failed watch, call ``failed()``, pause ``pause`` seconds (at most ``seconds``) and
        return False."""
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
            failed()
            time.sleep(min(pause, seconds))
            return False
        return True

    def wait_while_ours(self, deadline: float) -> Optional[Dict[str, Any]]:
        """Block until ``deadline`` (``time.monotonic()``) or until the Lease is no longer ours, by a
        get and a watch from its version (the rights the deployer's Role has). Returns None at the
        deadline, else the Lease as read then (``{}`` when gone). A watch that fails is not replaced
        by fast polling: the Lease is looked at again a third of the TTL later (a takeover is still
        caught by :meth:`end_preemptible`'s checked update at the end)."""
        pause = max(1.0, self.ttl / 3)
        warned: List[bool] = []

        def failed() -> None:
            if not warned:
                warned.append(True)
                self.log(f"warning: could not watch the deploy lock {self.name}; looking at it every {pause:.0f} s "
                         "(and once more before retiring anything)")

        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            lease = self._quick.get_lease(self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return lease or {}
            self._wait_for_change(lease, remaining, pause=pause, failed=failed)

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

    def mark_preemptible(self, keeps: str) -> None:
        """Say on the Lease that we only wait out the scale-down delay, keeping ``keeps`` running: a
        rollback to that colour may take the Lease over from now on. Raises LockLost when the Lease
        is no longer ours."""
        self._rewrite({PREEMPTIBLE: SCALE_DOWN_DELAY, KEEPS: keeps})

    def end_preemptible(self) -> Optional[Dict[str, Any]]:
        """Take the pre-emptible marker off, by an update conditional on the version we read. Returns
        None when that landed (nobody can pre-empt us any more), else the Lease as it is now (taken
        over by a rollback, expired and taken, or gone: None in the dict's place is ``{}``). Raises
        ClusterError when the update kept conflicting while the Lease is still ours (nothing is known
        to be safe to retire then)."""
        try:
            self._rewrite({})
            return None
        except LockLost as e:
            return e.lease

    def _rewrite(self, annotations: Dict[str, str]) -> None:
        for _ in range(5):
            with self._mutex:
                current = self._quick.get_lease(self.name)
                if self.lost.is_set() or current is None or \
                        (current.get("spec") or {}).get("holderIdentity") != self.identity:
                    self.lost.set()
                    raise LockLost(f"lost the deploy lock {self.name}", current or {})
                previous = self.annotations
                self.annotations = dict(annotations)
                try:
                    self.lease = self._quick.replace_lease(self._body(current))
                    self.renewed_at = time.monotonic()
                    return
                except Conflict:
                    self.annotations = previous  # someone wrote it since our read: look again
        # Five conflicts in a row say only that someone keeps writing the Lease; whether it is still ours
        # is its holderIdentity's to say (a takeover changes it; kubectl annotate or a lost answer does not).
        current = self._quick.get_lease(self.name)
        if current is None or (current.get("spec") or {}).get("holderIdentity") != self.identity:
            self.lost.set()
            raise LockLost(f"lost the deploy lock {self.name}", current or {})
        raise ClusterError(f"could not update the deploy lock {self.name}: it kept changing under us (5 conflicts "
                           "in a row), though it is still ours")

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


class LockLost(HelperError):
    """The deploy lock is no longer ours (taken over, expired and taken, or deleted)."""

    def __init__(self, message: str, lease: Dict[str, Any]) -> None:
        super().__init__(message)
        self.lease = lease  # as read when we found out ({} when it was gone)


@contextlib.contextmanager
def holding(kube: Kube, service: str, *, ttl: int, timeout: float, log: Callable[[str], None],
            identity: Optional[str] = None, preempt: Optional[Callable[[Dict[str, Any]], bool]] = None,
            reason: str = "") -> Iterator[LeaseLock]:
    """Hold the service's deploy lock for the ``with`` block; a failed release is logged (the lease
    then expires by itself), never raised over the block's own outcome. ``preempt`` and ``reason``:
    see :meth:`LeaseLock.acquire`."""
    lock = LeaseLock(kube, service, identity=identity or default_identity(), ttl=ttl, log=log)
    lock.acquire(timeout, preempt=preempt, reason=reason)
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
