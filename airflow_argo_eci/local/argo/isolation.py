"""Per-workflow failure isolation of the controller: one workflow whose reconcile pass raises is
retried with exponential backoff a bounded number of times, then ends in ``Error`` with the
message (as Argo's operator marks a workflow whose operation panicked), while every other workflow
keeps being reconciled. Failures are logged once per workflow, with a short traceback, and all
controller failure logging is rate limited, so a failing workflow cannot fill the disk.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass

#: frames of the traceback logged with a workflow's first failure
TRACEBACK_FRAMES = 6
#: longest workflow message taken from an exception
MAX_MESSAGE = 1000


def describe(exc: BaseException) -> str:
    """A one-line, bounded description of ``exc`` for logs and the workflow's message."""
    text = str(exc).replace("\n", " ").strip()
    if isinstance(exc, RecursionError):
        text = text or "maximum recursion depth exceeded"
    kind = type(exc).__name__
    line = f"{kind}: {text}" if text else kind
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def short_traceback(exc: BaseException, frames: int = TRACEBACK_FRAMES) -> str:
    """The innermost ``frames`` frames of ``exc``'s traceback (a deep recursion has ~1000)."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-frames)).rstrip()


class RateLimitedLog:
    """At most ``per_window`` records per ``window`` seconds; the rest are counted and reported in
    one line when the next window opens."""

    def __init__(self, logger: logging.Logger, per_window: int = 20, window: float = 60.0) -> None:
        self.logger = logger
        self.per_window = per_window
        self.window = window
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._count = 0
        self._suppressed = 0

    def log(self, level: int, msg: str, *args: object) -> bool:
        """Log unless the budget of the current window is spent; returns whether it logged."""
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.window:
                if self._suppressed:
                    self.logger.warning("%d controller failure log lines suppressed in the last %.0fs",
                                        self._suppressed, now - self._window_start)
                self._window_start, self._count, self._suppressed = now, 0, 0
            if self._count >= self.per_window:
                self._suppressed += 1
                return False
            self._count += 1
        self.logger.log(level, msg, *args)
        return True


@dataclass
class _Failure:
    uid: str
    attempts: int
    retry_at: float
    message: str


class FailureTracker:
    """Which workflows failed to reconcile, how often, and when to try them again.

    ``retries`` further attempts follow the first failure, after ``backoff``, ``2 * backoff``,
    ``4 * backoff``... seconds; the next failure after that gives up (the caller ends the workflow
    in Error). A workflow replaced by a new one of the same name (another uid) starts afresh.
    """

    def __init__(self, logger: logging.Logger, *, retries: int = 3, backoff: float = 1.0) -> None:
        self.retries = retries
        self.backoff = backoff
        self.out = RateLimitedLog(logger)
        self._failures: dict[tuple[str, str], _Failure] = {}

    def waiting(self, key: tuple[str, str], uid: str, now: float) -> float | None:
        """When the workflow is in backoff, the monotonic time of its next attempt; else None."""
        failure = self._failures.get(key)
        if failure is None:
            return None
        if failure.uid != uid:
            del self._failures[key]
            return None
        return failure.retry_at if now < failure.retry_at else None

    def succeeded(self, key: tuple[str, str]) -> None:
        """A pass went through: forget earlier failures."""
        self._failures.pop(key, None)

    def failed(self, key: tuple[str, str], uid: str, exc: BaseException, now: float) -> str | None:
        """Record a failed pass. Returns the message to end the workflow with when the retries are
        used up, else None (the workflow is retried at :meth:`waiting`'s time)."""
        message = describe(exc)
        failure = self._failures.get(key)
        if failure is None or failure.uid != uid:
            failure = _Failure(uid, 0, now, message)
            self._failures[key] = failure
        failure.attempts += 1
        failure.message = message
        if failure.attempts > self.retries:
            del self._failures[key]
            self.out.log(logging.WARNING, "workflow %s/%s: reconciling failed %d times; it ends in Error: %s",
                         key[0], key[1], failure.attempts, message)
            return message
        delay = self.backoff * (2 ** (failure.attempts - 1))
        failure.retry_at = now + delay
        if failure.attempts == 1:
            self.out.log(logging.WARNING, "workflow %s/%s: reconciling failed (%s); retrying %d times with "
                         "backoff before it ends in Error\n%s", key[0], key[1], message, self.retries,
                         short_traceback(exc))
        return None

    def next_retry(self) -> float | None:
        """The earliest monotonic time a workflow in backoff is due, or None."""
        return min((f.retry_at for f in self._failures.values()), default=None)
