"""Test DAG of the e2e tier: one sync-waiting task (``deferrable=False``) whose workflow holds at a
``suspend`` step until the test resumes it, then prints a line, with one quick retry. A test SIGKILLs
the process running the task while it waits; the retry must reattach to the workflow the killed try
created (exactly one workflow) and succeed once the test resumed it (no fixed sleep: the test decides
when the workflow may end)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_argo_eci.operators.argo import ArgoWorkflowOperator

HOLD = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "e2e-crash-"},
    "spec": {
        "entrypoint": "main",
        "templates": [
            {"name": "main", "steps": [[{"name": "hold", "template": "hold"}], [{"name": "tick", "template": "tick"}]]},
            {"name": "hold", "suspend": {}},
            {"name": "tick", "container": {"image": "alpine:3.20", "command": ["sh", "-c", "echo tick resumed"]}},
        ],
    },
}

with DAG(
    dag_id="e2e_worker_crash",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["e2e"],
):
    ArgoWorkflowOperator(
        task_id="sync_wait",
        workflow=HOLD,
        deferrable=False,
        poll_interval=1,
        retries=1,
        retry_delay=timedelta(seconds=2),
    )
