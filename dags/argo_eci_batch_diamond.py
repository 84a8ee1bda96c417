"""The seed's DAG diamond as batch jobs: A, then B and C in parallel, then D.

A batch system needs a script for it (``batch submit JobA | get job-id; batch submit JobB
--dependency <id>``); here the dependencies are declared on the jobs (``b.after(a)``) and the graph
becomes one Argo DAG (``depends``). Each job echoes its name and returns it as output ``message``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_argo_eci.batch import Job, JobDefinition, JobGraph
from airflow_argo_eci.operators.batch import EciBatchOperator

ECHO = JobDefinition(
    "echo",
    image="alpine:3.19",
    command=["sh", "-c"],
    args=["echo '{{inputs.parameters.message}}' | tee /tmp/message"],
    parameters=["message"],
    outputs={"message": "/tmp/message"},
    vcpu=0.25,
    memory="64Mi",
    retries=1,
    timeout=120,
)

A = Job(ECHO, "a", parameters={"message": "A"})
B = Job(ECHO, "b", parameters={"message": "B"}).after(A)
C = Job(ECHO, "c", parameters={"message": "C"}).after(A)
D = Job(ECHO, "d", parameters={"message": "D"}).after(B, C)

GRAPH = JobGraph("batch-diamond", [A, B, C, D])

with DAG(
    dag_id="argo_eci_batch_diamond",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["argo", "eci", "batch", "example"],
) as dag:
    EciBatchOperator(task_id="diamond", graph=GRAPH, poll_interval=1, timeout=600)
