"""Two DAGs sharing one job queue: together they never run more than two job pods at once.

A batch system's job queue has a priority and a capacity; :class:`~airflow_argo_eci.batch.JobQueue`
gives both to every workflow submitted on it: ``spec.priority``, and a semaphore on each job
template whose limit lives in the ConfigMap ``batch-queue-shared`` (created or updated by the
operator before the submit). Run both DAGs at once: their six sleeping jobs share two slots.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_argo_eci.batch import ArrayJob, JobDefinition, JobGraph, JobQueue
from airflow_argo_eci.operators.batch import EciBatchOperator

#: the queue both DAGs submit to
QUEUE = JobQueue("shared", priority=10, max_concurrent=2)

SLEEP = JobDefinition(
    "sleep",
    image="alpine:3.19",
    command=["sh", "-c"],
    args=["echo job $BATCH_JOB_ARRAY_INDEX of {{workflow.name}}; sleep 2"],
    vcpu=0.25,
    memory="64Mi",
    timeout=120,
)


def queued_dag(dag_id: str, jobs: int) -> DAG:
    """A DAG running an array of ``jobs`` sleeping jobs on :data:`QUEUE`."""
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["argo", "eci", "batch", "example"],
    ) as queued:
        graph = JobGraph(dag_id.replace("_", "-"), [ArrayJob(SLEEP, name="sleepers", size=jobs)])
        EciBatchOperator(task_id="on_queue", graph=graph, queue=QUEUE, poll_interval=1, timeout=600)
    return queued


dag = queued_dag("argo_eci_batch_queue", jobs=3)
other_dag = queued_dag("argo_eci_batch_queue_other", jobs=3)
