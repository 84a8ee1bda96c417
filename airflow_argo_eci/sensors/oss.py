"""``OSSObjectSensor``: wait until an object (or any object under a prefix) exists in OSS."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.operators._base import ExplainedTemplatesMixin
from airflow_argo_eci.operators.oss import OSSHookMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_argo_eci.hooks.oss import OSSArtifactHook


class OSSObjectSensor(OSSHookMixin, ExplainedTemplatesMixin, BaseSensorOperator):
    """Wait until ``key`` exists in OSS, or with ``prefix=True`` until any object's key starts with it.

    Deferrable: the wait then runs in the triggerer (:class:`~airflow_argo_eci.triggers.oss.OSSObjectTrigger`)
    and frees the worker slot; the sensor's ``timeout`` becomes the trigger's deadline.

    :param key: the object key, or a key prefix with ``prefix=True`` (templated; no globs).
    :param bucket_name: default: the connection's schema (templated).
    :param prefix: treat ``key`` as a prefix.
    :param oss_conn_id: the ``oss`` connection.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("key", "bucket_name")
    ui_color = "#f4a460"

    def __init__(
        self,
        *,
        key: str,
        bucket_name: str | None = None,
        prefix: bool = False,
        oss_conn_id: str = "oss_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(key, str) or not key:
            raise WorkflowSpecError(f"task {self.task_id}: key must be a non-empty object key or prefix "
                                    f"(got {key!r})")
        if key.startswith("/"):
            raise WorkflowSpecError(f"task {self.task_id}: key {key!r} starts with '/'; OSS keys never do: drop it")
        if any(ch in key for ch in "*?[") and not prefix and "{{" not in key:
            raise WorkflowSpecError(f"task {self.task_id}: key {key!r} looks like a glob; globs are not supported: "
                                    "give an exact key, or the fixed part with prefix=True")
        self.key = key
        self.bucket_name = bucket_name
        self.prefix = bool(prefix)
        self.oss_conn_id = oss_conn_id
        self.deferrable = deferrable
        self._oss_hook: OSSArtifactHook | None = None

    @property
    def _what(self) -> str:
        where = f"oss://{self.bucket_name or '<connection bucket>'}/{self.key}"
        return f"an object under prefix {where}" if self.prefix else f"object {where}"

    def poke(self, context: Context) -> bool:
        """Whether the object (or an object under the prefix) exists now."""
        hook = self.oss_hook
        if self.prefix:
            found = next(iter(hook.list_objects(self.key, bucket_name=self.bucket_name, page_size=1)), None)
            exists = found is not None
        else:
            exists = hook.object_exists(self.key, bucket_name=self.bucket_name)
        if not exists:
            self.log.info("No %s yet", self._what)
        return exists

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        from airflow_argo_eci.triggers.oss import OSSObjectTrigger

        end_at = None
        if self.timeout:
            seconds = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)
            end_at = time.time() + seconds
        self.defer(
            trigger=OSSObjectTrigger(key=self.key, bucket_name=self.bucket_name, prefix=self.prefix,
                                     oss_conn_id=self.oss_conn_id, poll_interval=float(self.poke_interval),
                                     end_at=end_at),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> None:
        """Resume after the trigger's single event: ``success`` finishes; ``timeout`` and ``error``
        fail the task with the trigger's message."""
        from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

        if not isinstance(event, Mapping) or not isinstance(event.get("ids"), list):
            raise AirflowException(f"sensor {self.task_id}: unexpected trigger event {event!r}")
        status, message = event.get("status"), event.get("message") or ""
        if status == "success":
            self.log.info("%s", message)
            return
        if status == "timeout":
            raise AirflowSensorTimeout(f"sensor {self.task_id}: {message}")
        if status == "error":
            raise AirflowException(f"sensor {self.task_id}: {message}")
        raise AirflowException(f"sensor {self.task_id}: unknown trigger event status {status!r} in {event!r}")
