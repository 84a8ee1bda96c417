"""``FluidDatasetSensor``: wait until a Fluid Dataset is Bound and, optionally, cached enough."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf

from airflow_argo_eci.errors import NotFoundError, WorkflowSpecError
from airflow_argo_eci.fluid_conventions import DATASET_KIND
from airflow_argo_eci.fluid_lifecycle import ProgressLog, check_threshold, dataset_readiness
from airflow_argo_eci.operators._base import ExplainedTemplatesMixin
from airflow_argo_eci.operators.fluid import FluidHookMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_argo_eci.hooks.fluid import FluidHook


def _failed(message: str) -> Exception:
    from airflow.exceptions import AirflowException

    return AirflowException(message)


class FluidDatasetSensor(FluidHookMixin, ExplainedTemplatesMixin, BaseSensorOperator):
    """Wait until Dataset ``dataset`` is ``Bound`` and, with ``min_cached_percentage``, until its
    ``cacheStates.cachedPercentage`` reaches it; a ``Failed`` Dataset fails the task. Returns the
    Dataset's ``status`` (``ufsTotal``, ``fileNum``, ``cacheStates``...). The cache progress goes
    to the task log as it changes.

    :param dataset: the Dataset's name (templated).
    :param min_cached_percentage: also wait for this much of it cached (0..100); None: Bound is enough.
    :param namespace: default from the connection.
    :param argo_conn_id: the ``argo_workflows`` connection (``kubernetes`` transport).
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("dataset", "namespace")

    def __init__(
        self,
        *,
        dataset: str,
        min_cached_percentage: float | None = None,
        namespace: str | None = None,
        argo_conn_id: str = "argo_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(dataset, str) or not dataset:
            raise WorkflowSpecError(f"task {self.task_id}: dataset must be the name of a Dataset (got {dataset!r})")
        check_threshold(f"task {self.task_id}", min_cached_percentage)
        self.dataset = dataset
        self.min_cached_percentage = min_cached_percentage
        self.namespace = namespace
        self.argo_conn_id = argo_conn_id
        self.deferrable = deferrable
        self._hook: FluidHook | None = None
        self._progress: ProgressLog | None = None

    def _check(self, dataset: Mapping[str, Any]) -> bool:
        if self._progress is None:
            self._progress = ProgressLog(self.log.info)
        self._progress.report(dataset)
        decision = dataset_readiness(dataset, self.min_cached_percentage)
        if decision == "failure":
            conditions = (dataset.get("status") or {}).get("conditions") or []
            detail = "; ".join(f"{c.get('reason', '')}: {c.get('message', '')}" for c in conditions
                               if isinstance(c, Mapping))
            raise _failed(f"Dataset {self.resolved_namespace}/{self.dataset} Failed: {detail or 'no conditions'}")
        return decision == "success"

    def poke(self, context: Context) -> Any:
        from airflow.sdk import PokeReturnValue

        try:
            dataset = self.hook.get_object(DATASET_KIND, self.dataset, self.resolved_namespace)
        except NotFoundError:
            self.log.info("No Dataset %s/%s yet", self.resolved_namespace, self.dataset)
            return False
        if not self._check(dataset):
            return False
        return PokeReturnValue(is_done=True, xcom_value=dict(dataset.get("status") or {}))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_argo_eci.triggers.fluid import FluidDatasetTrigger

        try:
            dataset = self.hook.get_object(DATASET_KIND, self.dataset, self.resolved_namespace)
        except NotFoundError:
            return super().execute(context)  # nothing to wait on in the triggerer yet: poke until it exists
        if self._check(dataset):
            return dict(dataset.get("status") or {})
        end_at = None
        if self.timeout:
            seconds = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)
            end_at = time.time() + seconds
        self.defer(
            trigger=FluidDatasetTrigger(name=self.dataset, namespace=self.resolved_namespace,
                                        argo_conn_id=self.argo_conn_id, poll_interval=float(self.poke_interval),
                                        min_cached_percentage=self.min_cached_percentage, end_at=end_at),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after the trigger's single event."""
        if not isinstance(event, Mapping) or not isinstance(event.get("ids"), Mapping):
            raise WorkflowSpecError(f"task {self.task_id}: unexpected trigger event {event!r}")
        status = event.get("status")
        if status == "timeout":
            raise TimeoutError(f"sensor {self.task_id}: {event.get('message', 'timed out')}")
        if status != "success":
            raise _failed(f"sensor {self.task_id}: {event.get('message')}")
        dataset = self.hook.get_object(DATASET_KIND, self.dataset, self.resolved_namespace)
        return dict(dataset.get("status") or {})
