"""Test DAG of the e2e tier: one sync-waiting task (``deferrable=False``) whose workflow runs
``params.seconds`` seconds, printing a line a second, with one quick retry. A test SIGKILLs the
process running the task while it waits; the retry must reattach to the workflow the killed try
created (exactly one workflow) and succeed."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_argo_eci.operators.argo import ArgoWorkflowOperator

TICKS = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "e2e-crash-"},
    "spec": {
        "entrypoint": "main",
        "arguments": {"parameters": [{"name": "seconds", "value": "25"}]},
        "templates": [
            {"name": "main", "container": {
                "image": "alpine:3.20",
                "command": ["sh", "-c",
                            "i=0; while [ $i -lt {{workflow.parameters.seconds}} ]; do i=$((i+1)); "
                            "echo tick $i; sleep 1; done"]}},
        ],
    },
}

with DAG(
    dag_id="e2e_worker_crash",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"seconds": 25},
    tags=["e2e"],
):
    ArgoWorkflowOperator(
        task_id="sync_wait",
        workflow=TICKS,
        parameters={"seconds": "{{ params.seconds }}"},
        deferrable=False,
        poll_interval=1,
        retries=1,
        retry_delay=timedelta(seconds=2),
    )
