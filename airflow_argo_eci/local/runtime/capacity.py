"""First-in-first-out admission of pods against a vCPU budget.

A pod starts when the sum of the running pods' ``cpu`` plus its own stays within the capacity. The
queue is strict FIFO (a large pod at the head is not overtaken by smaller ones behind it, so it
cannot starve). A pod that asks for more than the whole capacity starts once nothing else runs and
then runs alone, rather than never.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")

_EPSILON = 1e-9


class CapacityQueue(Generic[K]):
    """Admits keyed jobs in FIFO order while their summed cpu fits ``capacity``.

    ``start`` callbacks run outside the internal lock, in the thread that made room (the caller of
    :meth:`submit`, :meth:`release` or :meth:`remove`), and must return quickly.
    """

    def __init__(self, capacity: float) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity_vcpu must be > 0, got {capacity}")
        self.capacity = float(capacity)
        self._lock = threading.Lock()
        self._queue: OrderedDict[K, tuple[float, Callable[[], None]]] = OrderedDict()
        self._running: dict[K, float] = {}

    def submit(self, key: K, cpu: float, start: Callable[[], None]) -> None:
        """Queue ``key``; ``start()`` is called once it is admitted. Keys must be unique."""
        if cpu < 0:
            raise ValueError(f"cpu must be >= 0, got {cpu}")
        with self._lock:
            if key in self._queue or key in self._running:
                raise ValueError(f"{key!r} is already queued or running")
            self._queue[key] = (float(cpu), start)
        self._dispatch()

    def release(self, key: K) -> None:
        """``key`` finished: free its cpu and admit what now fits."""
        with self._lock:
            self._running.pop(key, None)
        self._dispatch()

    def remove(self, key: K) -> bool:
        """Drop a queued (not yet started) ``key``; True if it was queued."""
        with self._lock:
            found = self._queue.pop(key, None) is not None
        if found:
            self._dispatch()
        return found

    def is_queued(self, key: K) -> bool:
        """True while ``key`` waits for capacity."""
        with self._lock:
            return key in self._queue

    def used(self) -> float:
        """The cpu of the running keys."""
        with self._lock:
            return sum(self._running.values())

    def queued(self) -> list[K]:
        """The waiting keys, oldest first."""
        with self._lock:
            return list(self._queue)

    def _dispatch(self) -> None:
        to_start: list[Callable[[], None]] = []
        with self._lock:
            while self._queue:
                key, (cpu, start) = next(iter(self._queue.items()))
                used = sum(self._running.values())
                if self._running and used + cpu > self.capacity + _EPSILON:
                    break
                del self._queue[key]
                self._running[key] = cpu
                to_start.append(start)
        for start in to_start:
            start()
