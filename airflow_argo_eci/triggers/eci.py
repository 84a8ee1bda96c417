"""``EciImageCacheTrigger``: one ECI ImageCache to be ``Ready`` (or ``Failed``), on the shared watch hub.

It subscribes to the process-wide :mod:`~airflow_argo_eci.triggers.watch_hub` with the ImageCache
kind (cluster-scoped: one LIST+WATCH of ImageCaches per connection for every such trigger of a
triggerer) and yields exactly one event
(:class:`~airflow_argo_eci.triggers.watched_object.WatchedObjectTrigger`), shaped as the Fluid and
Argo triggers'::

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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_argo_eci.eci_image_caches import CacheRef, ProgressLog, arun_kill, judge_image_cache
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.triggers.watch_hub import WatchedKind
from airflow_argo_eci.triggers.watched_object import WatchedObjectTrigger, check_non_empty, check_timing

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.eci import EciHook

CLASSPATH = "airflow_argo_eci.triggers.eci.EciImageCacheTrigger"
#: the watch hub's view of ImageCaches
IMAGE_CACHE_WATCHED = WatchedKind("ImageCache", judge_image_cache, cluster_scoped=True)


class EciImageCacheTrigger(WatchedObjectTrigger):
    """Wait for ImageCache ``name`` (fenced by ``uid``) to be ``Ready`` or ``Failed``.

    :param name: the ImageCache's name
    :param uid: its uid ('' for any ImageCache of that name)
    :param argo_conn_id: the ``argo_workflows`` connection (``kubernetes`` transport)
    :param progress_interval: seconds between reads of its progress for the task log
    :param end_at: absolute deadline (UNIX seconds); past it a ``timeout`` event. None: no deadline.
    :param delete_on_kill: :meth:`on_kill` deletes the cache when it is not Ready yet
    """

    watched = IMAGE_CACHE_WATCHED

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
        check_non_empty("EciImageCacheTrigger", (("name", name), ("argo_conn_id", argo_conn_id)))
        if not isinstance(uid, str):
            raise WorkflowSpecError(f"EciImageCacheTrigger: uid must be a string (got {uid!r})")
        check_timing("EciImageCacheTrigger", progress_interval, "progress_interval", end_at)
        self.name = name
        self.namespace = ""  # the kind is cluster-scoped
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

    def _timeout_message(self, deadline: str) -> str:
        return f"ImageCache {self.name} was not Ready by {deadline}"

    def _progress_log(self) -> ProgressLog:
        return ProgressLog(self.log.info)

    async def _read_progress(self, hook: EciHook) -> Mapping[str, Any]:
        return await hook.aget_image_cache(self.name)

    def _progress_subject(self) -> str:
        return f"ImageCache {self.name}"

    def _kills(self) -> bool:
        """With ``delete_on_kill``, :meth:`on_kill` deletes our cache unless it is Ready."""
        return self.delete_on_kill

    async def _kill(self, hook: EciHook) -> str:
        return await arun_kill(hook, CacheRef(self.name, self.uid), True)
