"""Waking the WATCH streams of an event loop when the store commits, without a parked thread each.

A watch stream that has sent everything waits for the next change. Parking one thread per
stream in :meth:`~.object_db.ObjectDatabase.wait_for_change` makes every commit wake every
watcher's thread, and each then hops back to the event loop and out to the thread pool to read
the cache: with 200 watchers, 400 thread switches per change, and event latency in the hundreds
of milliseconds under a 1,000-pod fan-out. Here a commit (a store listener, in the writer's
thread) schedules one callback on each event loop that has watchers; that loop reads the new
events into the shared :class:`~.watch.WatchCache` once (in one worker thread), then wakes all
its waiting streams together, and they select their lines from memory on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.api.watch import WatchCache

Kind = tuple[str, str]  # (group, plural)

#: seconds without any watcher waiting after which a loop's commits no longer fill the cache
IDLE_AFTER = 5.0


@dataclass
class _LoopState:
    """What one event loop's watchers share (only touched on that loop)."""

    #: the futures of the watchers waiting for a change to a kind of object
    waiting: dict[Kind, set[asyncio.Future[None]]] = field(default_factory=dict)
    syncing: bool = False
    dirty: bool = False
    #: when a watcher last waited (streams wait at least every second while open)
    last_wait: float = 0.0


class ChangeSignal:
    """Wakes the watch streams waiting on any event loop when ``store`` commits a change to the
    kind they watch, after ``cache`` has read it (see the module docstring)."""

    def __init__(self, store: Store, cache: WatchCache) -> None:
        self.store = store
        self.cache = cache
        self._lock = threading.Lock()
        self._loops: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        store.add_commit_hook(self._on_commit)

    def _on_commit(self) -> None:
        """Store commit hook (the writer's thread, or the follower's for a peer process's
        commits): kick every loop that has watchers."""
        with self._lock:
            loops = list(self._loops)
        for loop in loops:
            try:
                loop.call_soon_threadsafe(self._kick, loop)
            except RuntimeError:  # the loop closed (a test client's portal): forget it
                with self._lock:
                    self._loops.pop(loop, None)

    def _state(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        with self._lock:
            state = self._loops.get(loop)
            if state is None:
                state = self._loops[loop] = _LoopState()
            return state

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        """On ``loop``: read the new events into the cache (once), then wake the loop's watchers."""
        state = self._state(loop)
        if state.syncing:
            state.dirty = True
            return
        if not any(state.waiting.values()) and loop.time() - state.last_wait > IDLE_AFTER:
            return  # no watch streams: the next one to wait reads the cache up (see :meth:`wait`)
        state.syncing = True
        loop.create_task(self._sync_and_wake(state))

    async def _sync_and_wake(self, state: _LoopState) -> None:
        try:
            while True:
                state.dirty = False
                kinds: set[Kind] | None = None
                try:
                    kinds = await run_in_threadpool(self.cache.sync)
                finally:
                    woken = list(state.waiting) if kinds is None else [k for k in kinds if k in state.waiting]
                    for kind in woken:
                        for future in state.waiting.pop(kind):
                            if not future.done():
                                future.set_result(None)
                if not state.dirty:
                    return
        finally:
            state.syncing = False

    async def wait(self, kind: Kind, after_rv: int, timeout: float) -> None:
        """Return when the cache holds a change to a ``kind`` object newer than ``after_rv``, the
        store closes, or ``timeout`` seconds pass (the caller then reads what is there)."""
        if self.cache.latest(*kind) > after_rv or self.store.closed:
            return
        loop = asyncio.get_running_loop()
        state = self._state(loop)
        state.last_wait = loop.time()
        future: asyncio.Future[None] = loop.create_future()
        waiting = state.waiting.setdefault(kind, set())
        waiting.add(future)
        timer = loop.call_later(timeout, _expire, future)
        if self.store.latest_resource_version > self.cache.loaded:
            self._kick(loop)  # committed before this loop was registered, or its kick is in flight
        try:
            await future
        finally:
            timer.cancel()
            waiting.discard(future)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


__all__ = ["ChangeSignal"]
