"""Test DAG of the e2e tier: one deferrable task whose workflow runs ``params.seconds`` seconds,
printing a line a second, so a test can act while the task is deferred (mark it failed, kill the
triggerer). No retries: a test sees the first try's outcome."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_argo_eci.operators.argo import ArgoWorkflowOperator

SLOW = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "e2e-slow-"},
    "spec": {
        "entrypoint": "main",
        "arguments": {"parameters": [{"name": "seconds", "value": "30"}]},
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
    dag_id="e2e_slow_deferred",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"seconds": 30},
    tags=["e2e"],
):
    ArgoWorkflowOperator(
        task_id="slow",
        workflow=SLOW,
        parameters={"seconds": "{{ params.seconds }}"},
        deferrable=True,
        poll_interval=1,
        on_kill_action="stop",
        retries=0,
    )
