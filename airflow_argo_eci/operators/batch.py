"""``EciBatchOperator``: run a graph of batch jobs (jobs, array jobs, dependencies, a job queue) as one
Argo Workflow on ECI, and return each job's result.

Thin by design: it is an :class:`~airflow_argo_eci.operators.argo.ArgoWorkflowOperator` whose workflow
is :meth:`JobGraph.render(queue) <airflow_argo_eci.batch.graph.JobGraph.render>`, so submitting,
waiting (sync or deferred), reattaching, streaming logs, ``on_kill`` and the finish actions are the
Argo operator's lifecycle, unchanged. It adds three things: the graph is validated when the DAG is
parsed, the queue's ConfigMap (its ``max_concurrent``) is created or updated before the submit, and
the XCom return value is :func:`~airflow_argo_eci.batch.results.job_results` keyed by job name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_argo_eci.batch import JobGraph, JobQueue, job_results
from airflow_argo_eci.errors import WorkflowFailedError, WorkflowSpecError
from airflow_argo_eci.operators.argo import ArgoWorkflowOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_argo_eci.lifecycle import LogCursor, WorkflowLifecycle, WorkflowRef

#: the XCom key of the job results of a workflow that failed (the task fails; its return value is unset)
XCOM_JOB_RESULTS = "batch_job_results"


class EciBatchOperator(ArgoWorkflowOperator):
    """Run ``graph``'s jobs as one Argo Workflow (on ECI through each definition's ``eci`` profile or
    the ``eci`` argument) and return their results.

    The return value (XCom ``return_value``) maps each job's name to ``{"phase", "exit_code",
    "outputs", "message"}``; an array job's entry holds ``{"phase", "children": {index: {...}}}``
    (index as a string). When the workflow fails the task fails with
    :class:`~airflow_argo_eci.errors.WorkflowFailedError`, and the same results are pushed under the
    XCom key :data:`XCOM_JOB_RESULTS` for a downstream task that runs anyway.

    :param graph: the :class:`~airflow_argo_eci.batch.graph.JobGraph`; validated here, so a cycle,
        an unknown dependency or a bad resource fails the DAG's parsing, naming the job.
    :param queue: a :class:`~airflow_argo_eci.batch.queues.JobQueue` (kept as ``job_queue``): the
        workflow's priority and, with ``max_concurrent``, the cap on job pods running at once over
        every workflow on the queue. Its ConfigMap is created or updated before the submit over a
        ``kubernetes`` connection; over an ``argo_server`` connection (no ConfigMap API) a cluster
        admin must create it beforehand. A string is Airflow's own ``queue`` (the executor queue
        the task runs in), passed on to ``BaseOperator`` as for any operator.
    :param kwargs: every other argument of :class:`~airflow_argo_eci.operators.argo.ArgoWorkflowOperator`
        (``namespace``, ``argo_conn_id``, ``deferrable``, ``reattach``, ``get_logs``, ``timeout``,
        ``on_kill_action``, ``on_finish_action``, ``eci``, ``labels``, ``parameters``, ...), except
        the workflow sources (``workflow``, ``workflow_template_ref``, ``cluster_workflow_template_ref``),
        which the graph replaces.
    """

    template_fields: Sequence[str] = (
        "workflow", "parameters", "namespace", "name", "generate_name", "labels", "annotations", "eci",
    )
    template_fields_renderers = {"workflow": "yaml", "parameters": "json", "labels": "json", "annotations": "json"}
    ui_color = "#f0a35e"

    def __init__(self, *, graph: JobGraph, queue: JobQueue | str | None = None, **kwargs: Any) -> None:
        task_id = kwargs.get("task_id", "?")
        given = [k for k in ("workflow", "workflow_template_ref", "cluster_workflow_template_ref") if k in kwargs]
        if given:
            raise WorkflowSpecError(f"task {task_id}: EciBatchOperator runs its graph: drop {', '.join(given)}")
        if not isinstance(graph, JobGraph):
            raise WorkflowSpecError(f"task {task_id}: graph must be a JobGraph, got {type(graph).__name__}")
        if queue is not None and not isinstance(queue, (JobQueue, str)):
            raise WorkflowSpecError(f"task {task_id}: queue must be a JobQueue (or Airflow's executor queue, a "
                                    f"string), got {type(queue).__name__}")
        if isinstance(queue, str):  # BaseOperator's ``queue``: the executor queue, not a batch job queue
            kwargs["queue"] = queue
        job_queue = queue if isinstance(queue, JobQueue) else None
        if graph.namespace and "namespace" not in kwargs:
            kwargs["namespace"] = graph.namespace
        # rendered (and so validated) here: a bad graph fails the DAG's parsing, and the serialized
        # DAG shows (and versions) the workflow itself; Airflow's Jinja in it renders when the task runs
        super().__init__(workflow=graph.render(job_queue), **kwargs)
        self.graph = graph
        #: the batch job queue (``queue`` is BaseOperator's executor queue, left as Airflow sets it)
        self.job_queue = job_queue

    # ------------------------------------------------------------------ execute

    def execute(self, context: Context) -> Any:
        """Ensure the queue's ConfigMap, then run the workflow as the Argo operator does."""
        self._ensure_queue()
        return super().execute(context)

    def _ensure_queue(self) -> None:
        queue = self.job_queue
        if queue is None or queue.max_concurrent is None:
            return
        from airflow_argo_eci.hooks.cluster import ClusterHook

        cluster = ClusterHook(argo_conn_id=self.argo_conn_id)
        try:
            reader = cluster.get_conn()
            if reader.transport_name != "kubernetes":
                self.log.warning(
                    "job queue %s: connection %s reaches only the Argo Server, which cannot create ConfigMaps: "
                    "configmap %s/%s (data.limit=%s) must exist, created by a cluster admin, or the workflow "
                    "fails with Argo's 'failed to get semaphore limit'", queue.name, self.argo_conn_id,
                    self.resolved_namespace, queue.config_map_name, queue.max_concurrent)
                return
            queue.ensure(reader, self.resolved_namespace)
        finally:
            cluster.close()

    def _complete(self, context: Context, lifecycle: WorkflowLifecycle, ref: WorkflowRef, workflow: dict[str, Any],
                  cursor: LogCursor | None = None) -> Any:
        """Finish as the Argo operator does (logs, failure, finish action), returning the job results."""
        workflow = self.hook.hydrate(workflow)  # offloaded nodes: read from the Argo Server
        results = job_results(workflow, self.graph)
        try:
            super()._complete(context, lifecycle, ref, workflow, cursor)
        except WorkflowFailedError:
            context["ti"].xcom_push(key=XCOM_JOB_RESULTS, value=results)
            raise
        return results
