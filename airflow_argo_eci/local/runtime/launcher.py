"""Starting pod threads off the caller's thread.

``threading.Thread.start`` blocks until the new thread has run far enough to say so, which takes a
hand-over of the GIL; when hundreds of pod threads compete for it, that is milliseconds per pod.
The controller creates the pods of a fan-out one after another in one pass, so it would pay that
wait once per pod on the critical path. A :class:`ThreadLauncher` pays it on its own thread instead:
:meth:`ThreadLauncher.start` queues the thread and returns at once, in order.
"""

from __future__ import annotations

import queue
import threading


class ThreadLauncher:
    """One daemon thread that starts queued threads in the order they were queued.

    :meth:`start` never blocks on the new thread. After :meth:`close` (which starts every thread
    queued before it), :meth:`start` starts threads itself, synchronously, so none is ever lost.
    """

    def __init__(self, name: str = "thread-launcher") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[threading.Thread | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self, thread: threading.Thread) -> None:
        """Start ``thread`` soon, on the launcher's thread (at once, here, once closed)."""
        with self._lock:
            if not self._closed:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                    self._thread.start()
                self._queue.put(thread)
                return
        thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Start every thread queued so far, then stop the launcher's own thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            launcher = self._thread
            self._queue.put(None)
        if launcher is not None:
            launcher.join(timeout)

    def _loop(self) -> None:
        while True:
            thread = self._queue.get()
            if thread is None:
                return
            thread.start()
