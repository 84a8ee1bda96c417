"""Transfer progress for the task log: :func:`human_bytes` and :class:`TransferProgress` (bytes, rate, ETA)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)


def human_bytes(value: float) -> str:
    """``1.2 GiB`` style."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


class TransferProgress:
    """Logs ``<verb> <url>: 1.2 GiB / 5.0 GiB (24%), 310.0 MiB/s, ETA 12s`` at most every ``interval``
    seconds, and once at the end. Thread-safe: parallel parts call :meth:`add`. Also usable as
    oss2's ``progress_callback(bytes_done, total)`` through :meth:`__call__`."""

    def __init__(self, verb: str, url: str, total: int | None, *, interval: float = 10.0,
                 logger: Any = None, initial: int = 0) -> None:
        self.verb = verb
        self.url = url
        self.total = total
        self.interval = interval
        self.log = logger or log
        self.done = initial
        self._initial = initial
        self._start = time.monotonic()
        self._last = self._start
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        """Record ``count`` more bytes."""
        with self._lock:
            self.done += count
            now = time.monotonic()
            if now - self._last < self.interval:
                return
            self._last = now
        self.log.info("%s", self.line())

    def __call__(self, bytes_done: int, total: int | None) -> None:
        with self._lock:
            delta = bytes_done - self.done
            self.total = total if total else self.total
        if delta > 0:
            self.add(delta)

    def line(self) -> str:
        """The current progress line."""
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = (self.done - self._initial) / elapsed
        text = f"{self.verb} {self.url}: {human_bytes(self.done)}"
        if self.total:
            text += f" / {human_bytes(self.total)} ({100 * self.done / self.total:.0f}%)"
        text += f", {human_bytes(rate)}/s"
        if self.total and rate > 0:
            text += f", ETA {max(self.total - self.done, 0) / rate:.0f}s"
        return text

    def finish(self) -> None:
        """Log the final line."""
        self.log.info("%s", self.line())
