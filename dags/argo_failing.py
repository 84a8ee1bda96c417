"""A workflow that fails: the task fails too, naming the failed node and its message.

No retry, unlike the flagship DAG: a failed workflow is never reattached, so a retry would only
submit the same failing workflow again and hide the point of the example.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_argo_eci.operators.argo import ArgoWorkflowOperator

FAILING = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "failing-"},
    "spec": {
        "entrypoint": "main",
        "templates": [
            {"name": "main", "steps": [[{"name": "prepare", "template": "ok"}], [{"name": "load", "template": "bad"}]]},
            {"name": "ok", "container": {"image": "alpine:3.20", "command": ["sh", "-c", "echo prepared"]}},
            {"name": "bad", "container": {"image": "alpine:3.20",
                                          "command": ["sh", "-c", "echo 'table sales_eu missing' >&2; exit 3"]}},
        ],
    },
}

with DAG(
    dag_id="argo_failing",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["argo", "example"],
) as dag:
    ArgoWorkflowOperator(task_id="fails", workflow=FAILING, poll_interval=1, retries=0)
