"""The example DAGs, run with ``airflow dags test`` (a real Airflow, in a subprocess) against the
local cluster: sync and deferrable submit + wait, the sensor, XCom outputs, and a failing workflow
surfacing its failed node's message."""

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

pytestmark = pytest.mark.slow


def dags_test(dag_id: str, cluster: LocalCluster, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW_CONN_ARGO_DEFAULT": kube_connection(cluster),
        "AIRFLOW_CONN_OSS_DEFAULT": oss_connection(cluster),
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run([sys.executable, "-m", "airflow", "dags", "test", dag_id, "2026-11-23"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=REPO)


def task_states(home: Path, dag_id: str) -> dict[str, str]:
    """Final state of each task of the DAG's newest run, read from Airflow's metadata database."""
    with sqlite3.connect(home / "airflow.db") as db:
        run_id = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                            (dag_id,)).fetchone()[0]
        rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                          (dag_id, run_id)).fetchall()
    return dict(rows)


def return_value(home: Path, dag_id: str, task_id: str) -> Any:
    """The task's XCom return value in the DAG's newest run, read from Airflow's metadata database."""
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute("SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
                         "ORDER BY dag_run_id DESC LIMIT 1", (dag_id, task_id)).fetchone()
    value = json.loads(row[0])
    return json.loads(value) if isinstance(value, str) else value


def bucket_keys(cluster: LocalCluster, prefix: str) -> list[str]:
    """Keys under ``prefix`` in the local cluster's artifact bucket."""
    import oss2

    assert cluster.oss is not None
    (key_id, secret), = cluster.oss_credentials().items()
    bucket = oss2.Bucket(oss2.Auth(key_id, secret), cluster.oss.endpoint, "argo-artifacts",
                         session=cluster.oss.session())
    return sorted(obj.key for obj in oss2.ObjectIteratorV2(bucket, prefix=prefix))


def workflows_of(cluster: LocalCluster, dag_id: str) -> list[dict[str, Any]]:
    """The DAG's workflows in ``argo``, read through the hook (kubernetes transport to ``cluster``)."""
    from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_ARGO_EXAMPLE_DAGS", kube_connection(cluster))
        hook = ArgoWorkflowsHook("argo_example_dags")
        try:
            return hook.list_workflows(namespace="argo", label_selector=f"airflow.apache.org/dag-id={dag_id}")
        finally:
            hook.close()


def test_flagship_fanout_dag(local_cluster: LocalCluster, airflow_db: Path) -> None:
    run = dags_test("argo_eci_fanout", local_cluster, airflow_db)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert task_states(airflow_db, "argo_eci_fanout") == {
        "fanout_sync": "success", "fanout_deferred": "success", "sensor_on_deferred": "success",
        "fetch_report": "success", "reclaim_sync_artifacts": "success", "report": "success"}
    stored = workflows_of(local_cluster, "argo_eci_fanout")
    # the sync one deleted itself on success (on_finish_action=delete_succeeded); the deferred one stays
    assert len(stored) == 1
    deferred = stored[0]
    assert deferred["status"]["phase"] == "Succeeded"
    assert deferred["metadata"]["labels"]["mode"] == "deferred"
    pod_meta = deferred["spec"]["podMetadata"]
    assert pod_meta["labels"]["alibabacloud.com/eci"] == "true"
    assert pod_meta["annotations"]["k8s.aliyun.com/eci-use-specs"] == "ecs.c6.large,ecs.c5.large,2-4Gi"
    params = {p["name"]: p["value"] for p in deferred["spec"]["arguments"]["parameters"]}
    assert params == {"shards": "20", "batch": "2026-11-23"}  # Airflow's Jinja rendered, Argo's left alone
    pods = [n for n in deferred["status"]["nodes"].values() if n["type"] == "Pod"]
    assert len(pods) == 21

    # artifacts: the deferred run's 20 shard files (archive none) and the report (tgz) are in OSS,
    # the report came back as text and agrees with the outputs; the sync run's were reclaimed
    name = deferred["metadata"]["name"]
    kept = bucket_keys(local_cluster, f"{name}/")
    assert len(kept) == 21 and sum(k.endswith("/report.tgz") for k in kept) == 1, kept
    fetched = return_value(airflow_db, "argo_eci_fanout", "fetch_report")
    total = return_value(airflow_db, "argo_eci_fanout", "fanout_deferred")["node_outputs"][name]["total"]
    assert json.loads(fetched["report"]) == {"batch": "2026-11-23", "shards": 20, "total": int(total)}
    sync_result = return_value(airflow_db, "argo_eci_fanout", "fanout_sync")
    reclaimed = return_value(airflow_db, "argo_eci_fanout", "reclaim_sync_artifacts")
    assert len(sync_result["artifacts"]) == 22  # 20 shards, the report and its global copy on the entrypoint
    assert len(reclaimed) == 21 and bucket_keys(local_cluster, f"{sync_result['name']}/") == []


def test_failing_dag_names_the_failed_node(local_cluster: LocalCluster, airflow_db: Path) -> None:
    run = dags_test("argo_failing", local_cluster, airflow_db)
    output = run.stdout + run.stderr
    stored = workflows_of(local_cluster, "argo_failing")
    assert len(stored) == 1 and stored[0]["status"]["phase"] == "Failed"
    assert task_states(airflow_db, "argo_failing") == {"fails": "failed"}
    assert "WorkflowFailedError" in output
    assert "load" in output and "exit code 3" in output
