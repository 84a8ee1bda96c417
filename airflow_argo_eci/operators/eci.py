"""ECI operators: ``EciImageCacheOperator`` (warm an image cache before a fan-out) and, re-exported,
``ArgoPreflightOperator`` (hold a cluster against the seed's practices).

Thin by design, as :mod:`airflow_argo_eci.operators.fluid` is: arguments become an
:class:`~airflow_argo_eci.eci_image_caches.ImageCacheRequest`, and
:mod:`airflow_argo_eci.eci_image_caches` (shared by the sync path, the deferred path, the trigger
and the sensor) does the rest. Importing this module is cheap (no kubernetes imports).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf

from airflow_argo_eci.eci_image_caches import (
    CacheRef,
    ImageCacheFailedError,
    ImageCacheLifecycle,
    ImageCacheRequest,
    ProgressLog,
    check_cache_name,
    derive_name,
    image_cache_id,
    image_cache_outcome,
)
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.operators._base import ExplainedTemplatesMixin, positive_seconds, task_failure
from airflow_argo_eci.operators.preflight import ArgoPreflightOperator
from airflow_argo_eci.workflows import LABEL_PREFIX, ti_labels

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_argo_eci.hooks.eci import EciHook

XCOM_NAME, XCOM_UID, XCOM_HOW = "eci_image_cache_name", "eci_image_cache_uid", "eci_image_cache_obtained"
_CACHE_LABELS = (LABEL_PREFIX + "dag-id", LABEL_PREFIX + "task-id")


def _templated(value: Any) -> bool:
    """Whether ``value`` (or a string inside it) is still a Jinja template."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, (list, tuple)):
        return any(_templated(item) for item in value)
    return False


class EciHookMixin:
    """The lazily made :class:`~airflow_argo_eci.hooks.eci.EciHook` of a task with an
    ``argo_conn_id`` attribute (its ``__init__`` sets ``_hook = None``)."""

    argo_conn_id: str
    _hook: EciHook | None

    @property
    def hook(self) -> EciHook:
        """The hook for ``argo_conn_id`` (made on first use, so DAG parsing stays cheap)."""
        if self._hook is None:
            from airflow_argo_eci.hooks.eci import EciHook

            self._hook = EciHook(argo_conn_id=self.argo_conn_id)
        return self._hook


class EciImageCacheOperator(EciHookMixin, ExplainedTemplatesMixin, BaseOperator):
    """Make sure an ECI ImageCache holds ``images`` and return its ``imageCacheId`` (XCom), to pin
    in the pods of a later fan-out (``EciProfile`` image cache options).

    When a ``Ready`` cache already holds the same images (same set, same pull Secrets) it is
    reused and nothing is created (``reuse_ready``; the log names it). Otherwise the cache
    ``name`` (given, or derived from the images and the DAG and task ids) is created, or, when it
    already exists with the same spec (an earlier try, a worker that crashed), reattached: never a
    duplicate. The same name with another spec is an error naming the fields that differ. The
    task waits until the cache is ``Ready`` (in the worker, or deferred to the triggerer), logging
    its phase and ``status.progress`` as they change; ``Failed`` fails the task with the last
    ``status.events[]`` message.

    Checked before anything is sent, each error naming the parameter and the fix: a non-empty
    image list, ``image_cache_size`` 20..32768 GB, ``retention_days`` 1..65536, pull Secrets as
    ``namespace:name``, ``vsw-...`` / ``sg-...`` ids.

    :param images: the images to cache (templated).
    :param name: the ImageCache's name (templated); None: derived, stable across tries and runs.
    :param image_pull_secrets: ``namespace:name`` of Secrets for private registries (templated).
    :param image_cache_size: GB (``spec.imageCacheSize``); None: ECI's default, 20.
    :param retention_days: ``spec.retentionDays``; None: the cache does not expire.
    :param enable_reuse: ``k8s.aliyun.com/imc-enable-reuse``: build on an existing cache's layers.
    :param vswitch_ids: ``k8s.aliyun.com/eci-vswitch``: the vSwitches to make the cache in (templated).
    :param security_group_id: ``k8s.aliyun.com/eci-security-group`` (templated).
    :param reuse_ready: return a Ready cache of the same images instead of making one (default True).
    :param argo_conn_id: the ``argo_workflows`` connection (``kubernetes`` transport).
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between reads in the worker (and progress reads when deferred).
    :param timeout: give up after this long (``delete_on_kill`` applies).
    :param delete_on_kill: when the task is killed or times out, delete the cache it made while it
        is not Ready yet (a reused cache is never deleted). Default False.
    """

    template_fields: Sequence[str] = ("images", "name", "image_pull_secrets", "vswitch_ids", "security_group_id")
    template_fields_renderers = {"images": "json", "image_pull_secrets": "json", "vswitch_ids": "json"}
    ui_color = "#ff9f40"

    def __init__(
        self,
        *,
        images: Sequence[str] | str,
        name: str | None = None,
        image_pull_secrets: Sequence[str] | str = (),
        image_cache_size: int | None = None,
        retention_days: int | None = None,
        enable_reuse: bool | None = None,
        vswitch_ids: Sequence[str] | str = (),
        security_group_id: str | None = None,
        reuse_ready: bool = True,
        argo_conn_id: str = "argo_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        timeout: float | timedelta | None = None,
        delete_on_kill: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
            raise WorkflowSpecError(f"task {self.task_id}: poll_interval must be > 0 seconds (got {poll_interval!r})")
        self.images = images if isinstance(images, str) else list(images)
        self.name = name
        self.image_pull_secrets = image_pull_secrets if isinstance(image_pull_secrets, str) \
            else list(image_pull_secrets)
        self.image_cache_size = image_cache_size
        self.retention_days = retention_days
        self.enable_reuse = enable_reuse
        self.vswitch_ids = vswitch_ids if isinstance(vswitch_ids, str) else list(vswitch_ids)
        self.security_group_id = security_group_id
        self.reuse_ready = bool(reuse_ready)
        self.argo_conn_id = argo_conn_id
        self.deferrable = deferrable
        self.poll_interval = float(poll_interval)
        self.timeout_seconds = positive_seconds(self.task_id, "timeout", timeout)
        self.delete_on_kill = bool(delete_on_kill)
        self._hook: EciHook | None = None
        self._ref: CacheRef | None = None
        arguments = (self.images, self.image_pull_secrets, self.vswitch_ids, self.security_group_id, self.name)
        if not _templated(arguments):  # checked now, at DAG parse time; templated ones once rendered
            self.build_request()
            if self.name:
                self._cache_name()

    def _fail(self, error: WorkflowSpecError) -> WorkflowSpecError:
        return WorkflowSpecError(f"task {self.task_id}: {error}")

    def build_request(self) -> ImageCacheRequest:
        """The rendered arguments as an :class:`ImageCacheRequest` (errors name the parameter and the fix)."""
        try:
            return ImageCacheRequest.of(self.images, self.image_pull_secrets, self.image_cache_size,
                                        self.retention_days, self.enable_reuse, self.vswitch_ids,
                                        self.security_group_id)
        except WorkflowSpecError as exc:
            raise self._fail(exc) from None

    def _cache_name(self) -> str:
        if not self.name:
            return derive_name(self.build_request().images, self.dag_id, self.task_id)
        try:
            return check_cache_name(self.name)
        except WorkflowSpecError as exc:
            raise self._fail(exc) from None

    def execute(self, context: Context) -> Any:
        request = self.build_request()
        name = self._cache_name()
        ti = context["ti"]
        labels = {key: value for key, value in ti_labels(self.dag_id, self.task_id, context["run_id"], -1, 1).items()
                  if key in _CACHE_LABELS}
        lifecycle = ImageCacheLifecycle(self.hook, logger=self.log)
        cache, how = lifecycle.obtain(request, name, labels, reuse_ready=self.reuse_ready)
        ref = self._ref = CacheRef.of(cache, owned=how != "reused")
        ti.xcom_push(key=XCOM_NAME, value=ref.name)
        ti.xcom_push(key=XCOM_UID, value=ref.uid)
        ti.xcom_push(key=XCOM_HOW, value=how)
        progress = ProgressLog(self.log.info)
        progress.report(cache)
        if image_cache_outcome((cache.get("status") or {}).get("phase")) != "wait":
            return self._finish(cache)
        deadline = time.time() + self.timeout_seconds if self.timeout_seconds else None
        if self.deferrable:
            self._defer(ref, deadline)
        try:
            cache = lifecycle.wait(ref, poll_interval=self.poll_interval, deadline=deadline, progress=progress)
        except TimeoutError:
            lifecycle.kill(ref, self.delete_on_kill)
            raise
        return self._finish(cache)

    def _defer(self, ref: CacheRef, deadline: float | None) -> None:
        from airflow_argo_eci.triggers.eci import EciImageCacheTrigger

        self.defer(
            trigger=EciImageCacheTrigger(name=ref.name, uid=ref.uid, argo_conn_id=self.argo_conn_id,
                                         progress_interval=self.poll_interval, end_at=deadline,
                                         delete_on_kill=self.delete_on_kill and ref.owned),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after the trigger's single event: the cache's id, or the failure."""
        ids = event.get("ids") if isinstance(event, Mapping) else None
        if not isinstance(event, Mapping) or not isinstance(ids, Mapping) or not ids.get("name") \
                or event.get("status") not in ("success", "failure", "timeout", "error"):
            raise WorkflowSpecError(f"task {self.task_id}: unexpected trigger event {event!r}")
        ref = self._ref = CacheRef(str(ids["name"]), str(ids.get("uid") or ""))
        lifecycle = ImageCacheLifecycle(self.hook, logger=self.log)
        status = event["status"]
        if status == "timeout":
            lifecycle.kill(ref, self.delete_on_kill)
            raise TimeoutError(f"task {self.task_id}: {event.get('message') or 'timed out'}")
        if status == "error":
            raise RuntimeError(f"waiting for ImageCache {ref.name} failed: {event.get('message')}")
        if status == "failure":
            raise task_failure(event.get("message") or f"ImageCache {ref.name} Failed")
        return self._finish(lifecycle.get(ref))

    def _finish(self, cache: Mapping[str, Any]) -> str:
        try:
            cache_id = image_cache_id(cache)
        except ImageCacheFailedError as exc:
            raise task_failure(exc) from exc
        self.log.info("ImageCache %s is Ready: %s", (cache.get("metadata") or {}).get("name"), cache_id)
        return cache_id

    def on_kill(self) -> None:
        """The task was killed while it ran on a worker: apply ``delete_on_kill``."""
        if self._ref is not None:
            ImageCacheLifecycle(self.hook, logger=self.log).kill(self._ref, self.delete_on_kill)


__all__ = ["ArgoPreflightOperator", "EciHookMixin", "EciImageCacheOperator"]
