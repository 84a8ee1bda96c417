"""The flagship DAG as real scheduling runs it, beyond what ``airflow dags test`` exercises.

- A run without a logical date (what Airflow 3's REST API and UI trigger by default) succeeds:
  ``DAG.test(logical_date=None)``, Airflow's own run loop, against the local cluster.
- The mitigation of the Airflow race apache/airflow#72716 / #71580 (a task that resumed from
  deferral and succeeded is marked failed by the scheduler): Airflow's own failure handling turns
  the succeeded try 1 into ``up_for_retry``, the retry is run as try 2 (``airflow tasks test`` on
  that task instance), and it reattaches to the workflow try 1 already finished: exactly one
  workflow, the same uid, nothing run again, the task succeeds with the same outputs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci.local.server import LocalCluster
from tests.conftest import REPO, kube_connection, oss_connection
from tests.dags.test_example_dags import workflows_of

pytestmark = pytest.mark.slow

DAG_ID, TASK_ID = "argo_eci_fanout", "fanout_deferred"
SHARDS = 3  # the run's conf overrides params.shards: a short run

# Airflow's run loop for a run with no logical date (the CLI's `dags test` always passes one)
RUN_WITHOUT_LOGICAL_DATE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).get_dag(sys.argv[2])
run = dag.test(logical_date=None, run_conf=json.loads(sys.argv[3]))
print("RESULT", json.dumps({"run_id": run.run_id, "state": str(run.state), "logical_date": str(run.logical_date),
                            "run_after": run.run_after.isoformat()}))
"""

# what the scheduler does in the race: it finds the task instance still "running" after the
# executor reported success and fails it; Airflow's failure handling puts a task with retries
# left in up_for_retry (recording try 1 in the history), and scheduling the retry makes it try 2
RACE_THEN_RETRY_IS_SCHEDULED = """
import sys
from sqlalchemy import select
from airflow.models.taskinstance import TaskInstance
from airflow.models.dagbag import DBDagBag
from airflow.utils.session import create_session
from airflow.utils.state import TaskInstanceState
dag_id, task_id, run_id = sys.argv[1:4]
with create_session() as session:
    ti = session.scalar(select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id,
                                                   TaskInstance.run_id == run_id))
    assert ti.state == TaskInstanceState.SUCCESS and ti.try_number == 1, (ti.state, ti.try_number)
    ti.task = DBDagBag().get_dag_for_run(ti.dag_run, session=session).get_task(task_id)
    ti.state = TaskInstanceState.RUNNING
    ti.handle_failure("reported that the task instance finished with state success, but the task instance's "
                      "state attribute is running (apache/airflow#72716)", session=session)
    assert ti.state == TaskInstanceState.UP_FOR_RETRY, ti.state
    ti.try_number += 1
    ti.state = TaskInstanceState.SCHEDULED
    session.merge(ti)
print("RETRY SCHEDULED")
"""


def airflow_env(cluster: LocalCluster, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW_CONN_ARGO_DEFAULT": kube_connection(cluster),
        "AIRFLOW_CONN_OSS_DEFAULT": oss_connection(cluster),
        "PYTHONPATH": str(REPO),
    }


def run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


def task_instance(home: Path, run_id: str, task_id: str) -> tuple[str, int]:
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute("SELECT state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?",
                         (DAG_ID, run_id, task_id)).fetchone()
    return row[0], int(row[1])


def return_value(home: Path, run_id: str, task_id: str) -> Any:
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute("SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? "
                         "AND key = 'return_value'", (DAG_ID, run_id, task_id)).fetchone()
    value = json.loads(row[0])
    return json.loads(value) if isinstance(value, str) else value


def deferred_workflows(cluster: LocalCluster, run_id: str) -> list[dict[str, Any]]:
    from airflow_argo_eci.workflows import ti_labels

    run_label = ti_labels(DAG_ID, TASK_ID, run_id, -1, 1)["airflow.apache.org/run-id"]
    return [wf for wf in workflows_of(cluster, DAG_ID)
            if wf["metadata"]["labels"].get("airflow.apache.org/run-id") == run_label
            and wf["metadata"]["labels"].get("airflow.apache.org/task-id") == TASK_ID]


def test_run_without_logical_date_then_a_retry_after_the_race_reattaches(
        local_cluster: LocalCluster, airflow_db: Path) -> None:
    env = airflow_env(local_cluster, airflow_db)
    output = run([sys.executable, "-c", RUN_WITHOUT_LOGICAL_DATE, str(REPO / "dags"), DAG_ID,
                  json.dumps({"shards": SHARDS})], env)
    result = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
    assert result["logical_date"] == "None" and result["state"] == "success", output[-6000:]
    run_id = result["run_id"]

    # every task succeeded on its first try, and the batch parameter is the date the run was queued for
    with sqlite3.connect(airflow_db / "airflow.db") as db:
        states = dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                                 (DAG_ID, run_id)).fetchall())
    assert set(states.values()) == {"success"} and len(states) == 6, states
    try1 = deferred_workflows(local_cluster, run_id)
    assert len(try1) == 1 and try1[0]["status"]["phase"] == "Succeeded"
    workflow = try1[0]
    params = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert params == {"shards": str(SHARDS), "batch": result["run_after"][:10]}
    assert workflow["metadata"]["labels"]["airflow.apache.org/try-number"] == "1"
    first_result = return_value(airflow_db, run_id, TASK_ID)
    finished_at = workflow["status"]["finishedAt"]

    # the race fails the succeeded task; its retry runs as try 2 of the same task instance
    assert "RETRY SCHEDULED" in run([sys.executable, "-c", RACE_THEN_RETRY_IS_SCHEDULED, DAG_ID, TASK_ID, run_id], env)
    assert task_instance(airflow_db, run_id, TASK_ID) == ("scheduled", 2)
    retry_log = run([sys.executable, "-m", "airflow", "tasks", "test", DAG_ID, TASK_ID, run_id], env)

    assert "Reattaching to workflow" in retry_log and workflow["metadata"]["name"] in retry_log, retry_log[-6000:]
    assert "Submitted workflow" not in retry_log
    assert task_instance(airflow_db, run_id, TASK_ID) == ("success", 2)
    after = deferred_workflows(local_cluster, run_id)
    assert [wf["metadata"]["uid"] for wf in after] == [workflow["metadata"]["uid"]]  # exactly one, the same
    assert after[0]["status"]["finishedAt"] == finished_at  # not run again
    second_result = return_value(airflow_db, run_id, TASK_ID)
    assert second_result["name"] == first_result["name"] and second_result["phase"] == "Succeeded"
    assert second_result["node_outputs"] == first_result["node_outputs"]
