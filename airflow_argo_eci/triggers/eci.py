"""``EciImageCacheTrigger``: one ECI ImageCache to be ``Ready`` (or ``Failed``), on the shared watch hub.

It subscribes to the process-wide :mod:`~airflow_argo_eci.triggers.watch_hub` with the ImageCache
kind (cluster-scoped: one LIST+WATCH of ImageCaches per connection for every such trigger of a
triggerer) and yields exactly one event, shaped as the Fluid and Argo triggers'::

    {"status": "success" | "failure" | "timeout" | "error",
     "ids": {"name": ..., "namespace": "", "uid": ...},
     "message": str, "phase": str, "resource_version": str, "log_cursor": {}}

``failure`` carries the last ``status.events[]`` message of a ``Failed`` cache (or says it was
deleted or replaced). While it waits it reads the cache every ``progress_interval`` seconds and
logs its phase and ``status.progress`` into the task log when they changed. When the user kills the
deferred task, :meth:`EciImageCacheTrigger.on_kill` deletes the cache (fenced by uid) if
``delete_on_kill`` and it is not Ready yet.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_argo_eci.eci_image_caches import CacheRef, ProgressLog, arun_kill, judge_image_cache
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.triggers.watch_hub import WatchedKind, get_hub

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.eci import EciHook

CLASSPATH = "airflow_argo_eci.triggers.eci.EciImageCacheTrigger"
#: the watch hub's view of ImageCaches
IMAGE_CACHE_WATCHED = WatchedKind("ImageCache", judge_image_cache, cluster_scoped=True)
#: the longest an ``on_kill`` API call may take
ON_KILL_TIMEOUT = 20.0


class EciImageCacheTrigger(BaseTrigger):
    """Wait for ImageCache ``name`` (fenced by ``uid``) to be ``Ready`` or ``Failed``.

    :param name: the ImageCache's name
    :param uid: its uid ('' for any ImageCache of that name)
    :param argo_conn_id: the ``argo_workflows`` connection (``kubernetes`` transport)
    :param progress_interval: seconds between reads of its progress for the task log
    :param end_at: absolute deadline (UNIX seconds); past it a ``timeout`` event. None: no deadline.
    :param delete_on_kill: :meth:`on_kill` deletes the cache when it is not Ready yet
    """

    def __init__(
        self,
        *,
        name: str,
        uid: str = "",
        argo_conn_id: str = "argo_default",
        progress_interval: float = 10.0,
        end_at: float | None = None,
        delete_on_kill: bool = False,
    ) -> None:
        super().__init__()
        for what, value in (("name", name), ("argo_conn_id", argo_conn_id)):
            if not isinstance(value, str) or not value:
                raise WorkflowSpecError(f"EciImageCacheTrigger: {what} must be a non-empty string (got {value!r})")
        if not isinstance(uid, str):
            raise WorkflowSpecError(f"EciImageCacheTrigger: uid must be a string (got {uid!r})")
        if isinstance(progress_interval, bool) or not isinstance(progress_interval, (int, float)) \
                or not progress_interval > 0:
            raise WorkflowSpecError(f"EciImageCacheTrigger: progress_interval must be a number of seconds > 0 "
                                    f"(got {progress_interval!r})")
        if end_at is not None and (isinstance(end_at, bool) or not isinstance(end_at, (int, float))
                                   or not math.isfinite(end_at)):
            raise WorkflowSpecError(f"EciImageCacheTrigger: end_at must be a UNIX timestamp in seconds or None "
                                    f"(got {end_at!r})")
        self.name = name
        self.uid = uid
        self.argo_conn_id = argo_conn_id
        self.progress_interval = progress_interval
        self.end_at = end_at
        self.delete_on_kill = bool(delete_on_kill)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the keyword arguments that re-create this trigger."""
        return CLASSPATH, {
            "name": self.name, "uid": self.uid, "argo_conn_id": self.argo_conn_id,
            "progress_interval": self.progress_interval, "end_at": self.end_at, "delete_on_kill": self.delete_on_kill,
        }

    def _hook(self) -> EciHook:
        from airflow_argo_eci.hooks.eci import EciHook

        return EciHook(argo_conn_id=self.argo_conn_id)

    def _source(self) -> Any:
        from airflow_argo_eci.hooks.eci import ImageCacheSource

        return ImageCacheSource(self._hook())

    def _event(self, status: str, message: str, phase: str = "", uid: str = "", rv: str = "") -> TriggerEvent:
        return TriggerEvent({
            "status": status, "ids": {"name": self.name, "namespace": "", "uid": uid or self.uid},
            "message": message, "phase": phase, "resource_version": rv, "log_cursor": {},
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield exactly one event: the cache's outcome, or ``timeout`` past ``end_at``."""
        remaining = None if self.end_at is None else self.end_at - time.time()
        deadline = datetime.fromtimestamp(self.end_at or 0, tz=timezone.utc).isoformat(timespec="seconds")
        timeout = self._event("timeout", f"ImageCache {self.name} was not Ready by {deadline}")
        if remaining is not None and remaining <= 0:
            yield timeout
            return
        subscription = get_hub().subscribe(self.argo_conn_id, "", self.name, self.uid, self._source,
                                           kind=IMAGE_CACHE_WATCHED)
        progress = asyncio.ensure_future(self._report_progress())
        try:
            outcome = await asyncio.wait_for(subscription.wait(), remaining)
        except asyncio.TimeoutError:
            outcome = None
        finally:
            subscription.close()
            progress.cancel()
        if outcome is None:
            yield timeout
        else:
            yield self._event(outcome.status, outcome.message, outcome.phase, outcome.uid, outcome.resource_version)

    async def _report_progress(self) -> None:
        """Log the cache's phase and progress every ``progress_interval`` while they change; read
        failures are logged at debug level and never end the wait."""
        hook = self._hook()
        progress = ProgressLog(self.log.info)
        try:
            while True:
                try:
                    progress.report(await hook.aget_image_cache(self.name))
                except Exception as exc:  # progress never fails the wait
                    self.log.debug("No progress for ImageCache %s: %s", self.name, exc)
                await asyncio.sleep(self.progress_interval)
        finally:
            await hook.aclose()

    async def on_kill(self) -> None:
        """The user killed the deferred task: with ``delete_on_kill``, delete our cache unless Ready."""
        if not self.delete_on_kill:
            return
        hook = self._hook()
        try:
            message = await asyncio.wait_for(arun_kill(hook, CacheRef(self.name, self.uid), True), ON_KILL_TIMEOUT)
            self.log.info("Task killed. %s", message)
        finally:
            await hook.aclose()
