"""Bounded retries of API calls: exponential backoff with jitter and :class:`Retrying`, which
converts client exceptions into :mod:`airflow_argo_eci.errors` types and retries transient ones."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from airflow_argo_eci.errors import ArgoApiError, GoneError, TransientError, to_api_error
from airflow_argo_eci.hooks.argo_connection import ArgoConnectionSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: the longest pause between two attempts (seconds)
MAX_BACKOFF = 30.0


def backoff_delay(attempt: int, base: float) -> float:
    """Exponential backoff with full jitter for retry ``attempt`` (0-based), capped at 30 s."""
    ceiling = min(MAX_BACKOFF, base * (2**attempt))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not cryptography


def _retryable(error: ArgoApiError, idempotent: bool) -> bool:
    if not isinstance(error, TransientError) or isinstance(error, GoneError):
        return False
    return idempotent or error.retry_safe


class Retrying:
    """Runs calls with error conversion and bounded retries of transient failures."""

    def __init__(self, settings: ArgoConnectionSettings, url: str = "") -> None:
        self.settings = settings
        self.url = url

    def convert(self, exc: BaseException, context: str) -> ArgoApiError | None:
        """The typed error for ``exc`` (None when it is not an API/connection failure)."""
        return to_api_error(exc, context=context, url=self.url)

    def _retry_delay(self, exc: Exception, context: str, attempt: int, limit: int, idempotent: bool) -> float:
        """The wait before retrying after ``exc`` (attempt ``attempt`` of ``limit``); raises ``exc``, or
        the typed error it stands for, when it is not to be retried."""
        error = self.convert(exc, context)
        if error is None:
            raise exc
        if attempt >= limit or not _retryable(error, idempotent):
            if error is exc:
                raise exc
            raise error from exc
        delay = backoff_delay(attempt, self.settings.retry_backoff)
        log.info("%s: transient failure, retry %d/%d in %.1fs", context, attempt + 1, limit, delay)
        return delay

    def call(
        self, context: str, fn: Callable[[], T], *, idempotent: bool = True, retries: int | None = None
    ) -> T:
        """``fn()``; transient failures are retried (non-idempotent calls only when retry-safe)."""
        limit = self.settings.max_retries if retries is None else retries
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:
                delay = self._retry_delay(exc, context, attempt, limit, idempotent)
            time.sleep(delay)
            attempt += 1

    async def acall(
        self, context: str, fn: Callable[[], Awaitable[T]], *, idempotent: bool = True, retries: int | None = None
    ) -> T:
        """Async :meth:`call`."""
        limit = self.settings.max_retries if retries is None else retries
        attempt = 0
        while True:
            try:
                return await fn()
            except Exception as exc:
                delay = self._retry_delay(exc, context, attempt, limit, idempotent)
            await asyncio.sleep(delay)
            attempt += 1
