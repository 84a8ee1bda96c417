"""``EciImageCacheSensor``: wait until an existing ECI ImageCache is Ready; returns its id."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf

from airflow_argo_eci.eci_image_caches import (
    CacheRef,
    ImageCacheFailedError,
    ImageCacheLifecycle,
    ProgressLog,
    check_cache_name,
    image_cache_id,
    image_cache_outcome,
)
from airflow_argo_eci.errors import NotFoundError, WorkflowSpecError
from airflow_argo_eci.operators._base import ExplainedTemplatesMixin, positive_seconds, task_failure
from airflow_argo_eci.operators.eci import EciHookMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_argo_eci.hooks.eci import EciHook


class EciImageCacheSensor(EciHookMixin, ExplainedTemplatesMixin, BaseSensorOperator):
    """Wait until ImageCache ``name`` is ``Ready`` and return its ``imageCacheId`` (XCom). A
    ``Failed`` cache fails the task with its last ``status.events[]`` message; a cache that still
    does not exist ``missing_grace`` after the sensor first looked fails it too. Its phase and
    progress go to the task log as they change.

    :param name: the ImageCache's name (templated).
    :param missing_grace: how long a missing cache is waited for (seconds or a timedelta; default 60 s;
        counted within one run of the sensor, so in ``reschedule`` mode from each poke's start).
    :param argo_conn_id: the ``argo_workflows`` connection (``kubernetes`` transport).
    :param deferrable: wait in the triggerer once the cache exists (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("name",)

    def __init__(
        self,
        *,
        name: str,
        missing_grace: float | timedelta = 60.0,
        argo_conn_id: str = "argo_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(name, str) or not name:
            raise WorkflowSpecError(f"task {self.task_id}: name must be the name of an ImageCache (got {name!r})")
        if "{{" not in name:
            self._check_name(name)
        grace = positive_seconds(self.task_id, "missing_grace", missing_grace)
        self.name = name
        self.missing_grace = float(grace or 0.0)
        self.argo_conn_id = argo_conn_id
        self.deferrable = deferrable
        self._hook: EciHook | None = None
        self._progress: ProgressLog | None = None
        self._missing_since: float | None = None

    def _check_name(self, name: str) -> str:
        try:
            return check_cache_name(name)
        except WorkflowSpecError as exc:
            raise WorkflowSpecError(f"task {self.task_id}: {exc}") from None

    def _read(self) -> dict[str, Any] | None:
        """The cache, None while it is missing within the grace; past it the task fails."""
        try:
            cache = self.hook.get_image_cache(self._check_name(self.name))
        except NotFoundError:
            now = time.monotonic()
            if self._missing_since is None:
                self._missing_since = now
            if now - self._missing_since >= self.missing_grace:
                raise task_failure(f"ImageCache {self.name} does not exist (waited {self.missing_grace:.0f}s for "
                                   "it): create it first (EciImageCacheOperator) or fix the name") from None
            self.log.info("No ImageCache %s yet", self.name)
            return None
        self._missing_since = None
        if self._progress is None:
            self._progress = ProgressLog(self.log.info)
        self._progress.report(cache)
        return cache

    def _done(self, cache: Mapping[str, Any]) -> str | None:
        """The id once Ready, None while it is being made; Failed fails the task."""
        if image_cache_outcome((cache.get("status") or {}).get("phase")) == "wait":
            return None
        try:
            return image_cache_id(cache)
        except ImageCacheFailedError as exc:
            raise task_failure(exc) from exc

    def poke(self, context: Context) -> Any:
        from airflow.sdk import PokeReturnValue

        cache = self._read()
        cache_id = None if cache is None else self._done(cache)
        return PokeReturnValue(is_done=True, xcom_value=cache_id) if cache_id else False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        cache = self._read()
        if cache is None:
            return super().execute(context)  # nothing to wait on in the triggerer yet: poke until it exists
        cache_id = self._done(cache)
        if cache_id:
            return cache_id
        from airflow_argo_eci.triggers.eci import EciImageCacheTrigger

        end_at = None
        if self.timeout:
            seconds = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)
            end_at = time.time() + seconds
        ref = CacheRef.of(cache, owned=False)
        self.defer(
            trigger=EciImageCacheTrigger(name=ref.name, uid=ref.uid, argo_conn_id=self.argo_conn_id,
                                         progress_interval=float(self.poke_interval), end_at=end_at),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after the trigger's single event."""
        ids = event.get("ids") if isinstance(event, Mapping) else None
        if not isinstance(event, Mapping) or not isinstance(ids, Mapping) or not ids.get("name"):
            raise WorkflowSpecError(f"task {self.task_id}: unexpected trigger event {event!r}")
        status = event.get("status")
        if status == "timeout":
            raise TimeoutError(f"sensor {self.task_id}: {event.get('message') or 'timed out'}")
        if status != "success":
            raise task_failure(f"sensor {self.task_id}: {event.get('message')}")
        lifecycle = ImageCacheLifecycle(self.hook, logger=self.log)
        return image_cache_id(lifecycle.get(CacheRef(str(ids["name"]), str(ids.get("uid") or ""), owned=False)))
