"""``WatchedObjectTrigger``: waiting on the shared watch hub for one object to finish, written once.

The ECI ImageCache trigger and the Fluid DataLoad trigger both subscribe to the process-wide
:mod:`~airflow_argo_eci.triggers.watch_hub` for one object (fenced by uid), log its progress every
``progress_interval`` seconds while they wait, and yield exactly one event, shaped as the Argo
trigger's::

    {"status": "success" | "failure" | "timeout" | "error",
     "ids": {"name": ..., "namespace": ..., "uid": ...},
     "message": str, "phase": str, "resource_version": str, "log_cursor": {}}

A subclass says what differs: the watched kind, its hook and watch source, the timeout sentence,
what the progress is read from, and what ``on_kill`` does. The argument checks the triggers share
are the functions :func:`check_non_empty` and :func:`check_timing`.
"""

from __future__ import annotations

import asyncio
import math
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar, Protocol

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.triggers.watch_hub import WatchedKind, get_hub

__all__ = ["ON_KILL_TIMEOUT", "WatchedObjectTrigger", "check_non_empty", "check_timing", "deadline_text"]

#: the longest an ``on_kill`` API call may take
ON_KILL_TIMEOUT = 20.0


class ProgressReporter(Protocol):
    """Logs an object's progress (a ``ProgressLog`` of the lifecycle modules)."""

    def report(self, obj: Mapping[str, Any], /) -> None:
        """Log the progress of ``obj`` when it changed."""


def check_non_empty(trigger: str, values: Sequence[tuple[str, Any]]) -> None:
    """Each ``(argument, value)`` is a non-empty string, else a :class:`WorkflowSpecError` naming it."""
    for what, value in values:
        if not isinstance(value, str) or not value:
            raise WorkflowSpecError(f"{trigger}: {what} must be a non-empty string (got {value!r})")


def check_timing(trigger: str, interval: Any, interval_name: str, end_at: Any) -> None:
    """``interval`` is a number of seconds > 0 and ``end_at`` None or a finite UNIX timestamp."""
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
        raise WorkflowSpecError(f"{trigger}: {interval_name} must be a number of seconds > 0 (got {interval!r})")
    if end_at is not None and (isinstance(end_at, bool) or not isinstance(end_at, (int, float))
                               or not math.isfinite(end_at)):
        raise WorkflowSpecError(f"{trigger}: end_at must be a UNIX timestamp in seconds or None (got {end_at!r})")


def deadline_text(end_at: float | None) -> str:
    """``end_at`` as an ISO 8601 UTC time to the second (the epoch for None)."""
    return datetime.fromtimestamp(end_at or 0, tz=timezone.utc).isoformat(timespec="seconds")


class WatchedObjectTrigger(BaseTrigger):
    """Wait on the watch hub for object ``namespace/name`` (fenced by ``uid``) of :attr:`watched`.

    A subclass's ``__init__`` sets ``name``, ``namespace`` ('' for a cluster-scoped kind), ``uid``,
    ``argo_conn_id``, ``progress_interval`` and ``end_at``, and it implements the hooks below."""

    #: the watch hub's view of the kind
    watched: ClassVar[WatchedKind]
    name: str
    namespace: str
    uid: str
    argo_conn_id: str
    progress_interval: float
    end_at: float | None

    # ------------------------------------------------------------------ what a subclass says

    @abstractmethod
    def _hook(self) -> Any:
        """A new hook of the connection (it has ``aclose``)."""

    @abstractmethod
    def _source(self) -> Any:
        """The objects in the shape the watch hub reads them (a new hook's)."""

    @abstractmethod
    def _timeout_message(self, deadline: str) -> str:
        """The ``timeout`` event's message (``deadline``: :func:`deadline_text` of ``end_at``)."""

    def _reports_progress(self) -> bool:
        """Whether :meth:`run` logs the progress while it waits."""
        return True

    @abstractmethod
    def _progress_log(self) -> ProgressReporter:
        """A new progress log writing into the task log."""

    @abstractmethod
    async def _read_progress(self, hook: Any) -> Mapping[str, Any]:
        """The object the progress is read from."""

    @abstractmethod
    def _progress_subject(self) -> str:
        """What the progress is read from, for the debug line of a failed read (``Dataset ns/name``)."""

    @abstractmethod
    def _kills(self) -> bool:
        """Whether :meth:`on_kill` does anything."""

    @abstractmethod
    async def _kill(self, hook: Any) -> str:
        """Make the kill through ``hook``; returns the sentence for the task log."""

    # ------------------------------------------------------------------ the wait, written once

    def _event(self, status: str, message: str, phase: str = "", uid: str = "", rv: str = "") -> TriggerEvent:
        return TriggerEvent({
            "status": status, "ids": {"name": self.name, "namespace": self.namespace, "uid": uid or self.uid},
            "message": message, "phase": phase, "resource_version": rv, "log_cursor": {},
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield exactly one event: the object's outcome, or ``timeout`` past ``end_at``."""
        remaining = None if self.end_at is None else self.end_at - time.time()
        timeout = self._event("timeout", self._timeout_message(deadline_text(self.end_at)))
        if remaining is not None and remaining <= 0:
            yield timeout
            return
        subscription = get_hub().subscribe(self.argo_conn_id, self.namespace, self.name, self.uid, self._source,
                                           kind=self.watched)
        progress = asyncio.ensure_future(self._report_progress()) if self._reports_progress() else None
        try:
            outcome = await asyncio.wait_for(subscription.wait(), remaining)
        except asyncio.TimeoutError:
            outcome = None
        finally:
            subscription.close()
            if progress is not None:
                progress.cancel()
        if outcome is None:
            yield timeout
        else:
            yield self._event(outcome.status, outcome.message, outcome.phase, outcome.uid, outcome.resource_version)

    async def _report_progress(self) -> None:
        """Log the progress every ``progress_interval`` while it changes; read failures are logged
        at debug level and never end the wait."""
        hook = self._hook()
        progress = self._progress_log()
        try:
            while True:
                try:
                    progress.report(await self._read_progress(hook))
                except Exception as exc:  # progress never fails the wait
                    self.log.debug("No progress for %s: %s", self._progress_subject(), exc)
                await asyncio.sleep(self.progress_interval)
        finally:
            await hook.aclose()

    async def on_kill(self) -> None:
        """The user killed the deferred task: make the subclass's kill (fenced by uid), if any."""
        if not self._kills():
            return
        hook = self._hook()
        try:
            message = await asyncio.wait_for(self._kill(hook), ON_KILL_TIMEOUT)
            self.log.info("Task killed. %s", message)
        finally:
            await hook.aclose()
