"""``ArgoWorkflowSensor``: wait for a workflow someone else submitted to finish."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf

from airflow_argo_eci.conventions import TERMINAL_PHASES
from airflow_argo_eci.errors import WorkflowFailedError, WorkflowSpecError
from airflow_argo_eci.lifecycle import WorkflowLifecycle, WorkflowRef
from airflow_argo_eci.operators._base import ArgoHookMixin, ExplainedTemplatesMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook



class ArgoWorkflowSensor(ArgoHookMixin, ExplainedTemplatesMixin, BaseSensorOperator):
    """Wait until a workflow, given by ``name`` or as the newest one matching ``label_selector``,
    reaches a terminal phase. A phase in ``fail_on`` (default ``Failed``/``Error``) fails the task
    with the failed nodes' messages; any other terminal phase succeeds and returns the
    workflow's outputs.

    :param name: the workflow's name (templated).
    :param label_selector: instead of ``name``: e.g. ``app=etl,airflow.apache.org/run-id=...``.
    :param namespace: default from the connection, else ``argo``.
    :param argo_conn_id: the ``argo_workflows`` connection.
    :param fail_on: terminal phases that fail the sensor.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("name", "label_selector", "namespace")

    def __init__(
        self,
        *,
        name: str | None = None,
        label_selector: str | None = None,
        namespace: str | None = None,
        argo_conn_id: str = "argo_default",
        fail_on: Sequence[str] = ("Failed", "Error"),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (name is None) == (label_selector is None):
            raise WorkflowSpecError(f"task {self.task_id}: give exactly one of name= or label_selector=")
        unknown = [p for p in fail_on if p not in TERMINAL_PHASES]
        if unknown:
            raise WorkflowSpecError(
                f"task {self.task_id}: fail_on has {unknown}; terminal phases are {', '.join(TERMINAL_PHASES)}")
        self.name = name
        self.label_selector = label_selector
        self.namespace = namespace
        self.argo_conn_id = argo_conn_id
        self.fail_on = tuple(fail_on)
        self.deferrable = deferrable
        self._hook: ArgoWorkflowsHook | None = None

    def _find(self) -> dict[str, Any] | None:
        namespace = self.resolved_namespace
        if self.name:
            from airflow_argo_eci.errors import NotFoundError

            try:
                return self.hook.get_workflow(self.name, namespace=namespace)
            except NotFoundError:
                return None
        items = self.hook.list_workflows(namespace=namespace, label_selector=self.label_selector or "")
        items.sort(key=lambda wf: wf["metadata"].get("creationTimestamp", ""), reverse=True)
        return items[0] if items else None

    def _result(self, workflow: dict[str, Any]) -> Any:
        from airflow_argo_eci.workflows import failed_nodes, failure_message, workflow_result

        workflow = self.hook.hydrate(workflow)  # offloaded nodes: read from the Argo Server
        phase = (workflow.get("status") or {}).get("phase") or ""
        if phase in self.fail_on:
            raise WorkflowFailedError(failure_message(workflow), phase=phase, failed_nodes=failed_nodes(workflow))
        return workflow_result(workflow)

    def poke(self, context: Context) -> Any:
        from airflow.sdk import PokeReturnValue

        from airflow_argo_eci.workflows import phase_outcome

        workflow = self._find()
        if workflow is None:
            self.log.info("No workflow %s yet", self.name or f"matching {self.label_selector!r}")
            return False
        if phase_outcome((workflow.get("status") or {}).get("phase")) == "wait":
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._result(workflow))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_argo_eci.triggers.argo import ArgoWorkflowTrigger
        from airflow_argo_eci.workflows import phase_outcome

        workflow = self._find()
        if workflow is not None and phase_outcome((workflow.get("status") or {}).get("phase")) != "wait":
            return self._result(workflow)
        if workflow is None:
            # nothing to watch yet: poke in the worker until it exists (rescheduling keeps the slot free)
            return super().execute(context)
        ref = WorkflowRef.from_workflow(workflow)
        end_at = None
        if self.timeout:
            seconds = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)
            end_at = time.time() + seconds
        self.defer(
            trigger=ArgoWorkflowTrigger(name=ref.name, namespace=ref.namespace, uid=ref.uid,
                                        argo_conn_id=self.argo_conn_id, poll_interval=float(self.poke_interval),
                                        end_at=end_at, on_kill_action="keep"),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after the trigger's single event."""
        if not isinstance(event, Mapping) or not isinstance(event.get("ids"), Mapping):
            raise WorkflowSpecError(f"task {self.task_id}: unexpected trigger event {event!r}")
        if event.get("status") == "timeout":
            raise TimeoutError(f"sensor {self.task_id}: {event.get('message', 'timed out')}")
        if event.get("status") == "error":
            raise RuntimeError(f"sensor {self.task_id}: {event.get('message')}")
        ids = event["ids"]
        ref = WorkflowRef(str(ids["name"]), str(ids["namespace"]), str(ids.get("uid", "")))
        return self._result(WorkflowLifecycle(self.hook, ref.namespace, logger=self.log).get(ref))
