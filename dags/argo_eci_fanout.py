"""The flagship example: a nightly fan-out on serverless ECI pods, driven from Airflow.

The workflow file is plain Argo; the ``EciProfile`` puts every pod on ECI the way Alibaba's
guide recommends (ECI label and scheduler, several instance specs tried in order, random
multi-zone placement, fail-fast, retries), and Airflow's own Jinja (the batch date,
``{{ params.shards }}``) is rendered while Argo's ``{{...}}`` expressions are left for Argo.

Only what every kind of run has is templated: a run triggered through the REST API or the UI
without a logical date has no ``ds``, so the batch date is the run's logical date when it has one,
else the time it was queued for (``dag_run.run_after``). Every Argo task carries one quick retry:
an open Airflow race (apache/airflow#72716, #71580) can mark a task that resumed from deferral
``failed`` although it succeeded, and the retry reattaches to the workflow that already
succeeded instead of running it again.

``sync`` waits on a worker and streams pod logs as it goes; ``deferred`` waits in the triggerer
without holding a worker slot and prints the logs when it resumes. A sensor then waits on the
same workflow by label. The reduce step's JSON report comes back from OSS as text (the workflow
left it in the cluster's artifact repository), a last task checks it against the outputs in
XCom, and the sync run's artifacts (one per shard plus the report) are reclaimed from OSS.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from airflow_argo_eci.eci import EciProfile, RetryStrategy
from airflow_argo_eci.operators.argo import ArgoWorkflowOperator
from airflow_argo_eci.operators.oss import ArgoArtifactDownloadOperator, OSSArtifactGCOperator
from airflow_argo_eci.sensors.argo import ArgoWorkflowSensor

ECI = EciProfile(
    use_specs=("ecs.c6.large", "ecs.c5.large", "2-4Gi"),
    schedule_strategy="VSwitchRandom",
    fail_strategy="fail-fast",
    retry_strategy=RetryStrategy(limit=3, retry_policy="Always"),
    parallelism=10,
)

#: the run's logical date, else (a run triggered without one) the time it was queued for
BATCH = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"

with DAG(
    dag_id="argo_eci_fanout",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"shards": 20},
    # one quick retry: it reattaches to the workflow the first try created (see the docstring)
    default_args={"retries": 1, "retry_delay": timedelta(seconds=5)},
    tags=["argo", "eci", "example"],
) as dag:
    sync = ArgoWorkflowOperator(
        task_id="fanout_sync",
        workflow="workflows/fanout.yaml",
        parameters={"shards": "{{ params.shards }}", "batch": BATCH},
        labels={"app": "nightly-fanout", "mode": "sync"},
        eci=ECI,
        deferrable=False,
        poll_interval=1,
        on_finish_action="delete_succeeded",
    )
    deferred = ArgoWorkflowOperator(
        task_id="fanout_deferred",
        workflow="workflows/fanout.yaml",
        parameters={"shards": "{{ params.shards }}", "batch": BATCH},
        labels={"app": "nightly-fanout", "mode": "deferred"},
        eci=ECI,
        deferrable=True,
        poll_interval=1,
    )
    wait_again = ArgoWorkflowSensor(
        task_id="sensor_on_deferred",
        label_selector="app=nightly-fanout,mode=deferred",
        poke_interval=1,
        timeout=300,
    )

    fetch_report = ArgoArtifactDownloadOperator(
        task_id="fetch_report",
        workflow=deferred.output,
        artifacts=["report"],
        as_text=True,
    )
    reclaim = OSSArtifactGCOperator(task_id="reclaim_sync_artifacts", workflow=sync.output)

    @task
    def report(result: dict, files: dict) -> str:
        total = result["node_outputs"][result["name"]]["total"]  # the entrypoint template's outputs
        from_oss = json.loads(files["report"])
        if str(from_oss["total"]) != str(total):
            raise ValueError(f"report artifact says total={from_oss['total']}, outputs say {total}")
        line = f"workflow {result['name']} {result['phase']}: total={total} over {from_oss['shards']} shards"
        print(line)
        return line

    sync >> deferred >> wait_again
    sync >> reclaim
    report(deferred.output, fetch_report.output)
