"""Graceful deletion of pods: which DELETE of a pod waits (a Running pod without finalizers), its
grace period, when the wait ends (the pod's process ended, or the period passed), and the timer
that ends the waits nobody ends.

Kubernetes marks such a pod with ``deletionTimestamp`` (now + the grace period) and
``deletionGracePeriodSeconds``; the kubelet stops its containers, reports the final status and
then removes the object. In the local cluster the controller kills the pod's process when it sees
the mark; the store removes the pod when a write gives it a final phase (``Succeeded``/``Failed``),
or when the grace period has passed (:class:`GraceTimer`).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from airflow_argo_eci.local.api.resources import PODS, REGISTRY, ResourceType

log = logging.getLogger(__name__)

#: a pod's grace period when neither the DELETE nor ``spec.terminationGracePeriodSeconds`` gives one
DEFAULT_GRACE_SECONDS = 30
#: the phases after which a pod has no process left
POD_FINAL_PHASES = ("Succeeded", "Failed")

#: called when a grace period has passed: (resource type, namespace key, name, uid)
Expire = Callable[[ResourceType, str, str, str], None]


def grace_period(obj: dict[str, Any], requested: int | None) -> int:
    """The grace period of a DELETE of ``obj``: the requested one, else the pod's
    ``spec.terminationGracePeriodSeconds``, else :data:`DEFAULT_GRACE_SECONDS`."""
    if requested is not None:
        return requested
    configured = (obj.get("spec") or {}).get("terminationGracePeriodSeconds")
    if isinstance(configured, int) and not isinstance(configured, bool) and configured >= 0:
        return configured
    return DEFAULT_GRACE_SECONDS


def deletes_gracefully(rt: ResourceType, obj: dict[str, Any], grace: int) -> bool:
    """Whether a DELETE with grace period ``grace`` waits for ``obj`` to stop: a Running pod
    without finalizers and ``grace`` > 0 (a pod that is Pending, Succeeded or Failed has no process
    to wait for and goes at once)."""
    if rt.key != PODS.key or grace <= 0 or (obj.get("metadata") or {}).get("finalizers"):
        return False
    return (obj.get("status") or {}).get("phase") == "Running"


def waiting(meta: dict[str, Any]) -> bool:
    """Whether an object with these ``metadata`` waits out a grace period (marked, period > 0)."""
    grace = meta.get("deletionGracePeriodSeconds")
    return bool(meta.get("deletionTimestamp")) and isinstance(grace, int) and grace > 0


def stopped_while_waiting(rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a write makes a pod that waits out its grace period reach a final phase (its process
    ended): the kubelet removes the pod then."""
    if rt.key != PODS.key or not waiting(old.get("metadata") or {}):
        return False
    return (new.get("status") or {}).get("phase") in POD_FINAL_PHASES


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch of an RFC 3339 time as the store writes it (``...Z``), or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


class GraceTimer:
    """Ends the grace periods that nothing else ends (the pod's process never reported, the server
    restarted): at each one's end it calls ``expire``, from one daemon thread started on first use."""

    def __init__(self, expire: Expire) -> None:
        self._expire = expire
        self._due: list[tuple[float, str, str, str, str, str]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def schedule(self, rt: ResourceType, ns: str, name: str, uid: str, at: float) -> None:
        """Call ``expire`` for this object at wall-clock time ``at`` (seconds since the epoch)."""
        with self._cond:
            if self._closed:
                return
            heapq.heappush(self._due, (at, rt.group, rt.plural, ns, name, uid))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pod-grace-periods", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        """Stop the thread; pending periods are picked up again when the store is next opened."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._due or self._due[0][0] > time.time()):
                    self._cond.wait(None if not self._due else max(0.0, self._due[0][0] - time.time()))
                if self._closed:
                    return
                _, group, plural, ns, name, uid = heapq.heappop(self._due)
            rt = REGISTRY.get((group, plural))
            if rt is None:
                continue
            try:
                self._expire(rt, ns, name, uid)
            except RuntimeError:  # the store was closed meanwhile
                return
            except Exception:
                log.exception("ending the grace period of %s %s/%s failed", plural, ns, name)
