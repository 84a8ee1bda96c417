"""The Fluid example DAG (``dags/argo_eci_fluid_md5.py``), run with ``airflow dags test`` against the
local cluster: upload, Dataset + JindoRuntime, a deferred DataLoad, the md5sum fan-out mounting the
Dataset, the digest check and the teardown that removes everything; and its fan-out workflow golden."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.errors import NotFoundError
from airflow_argo_eci.hooks.fluid import FluidHook
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.operators.argo import ArgoWorkflowOperator
from tests.conftest import REPO, kube_connection
from tests.dags.test_example_dags import bucket_keys, dags_test, return_value, task_states, workflows_of
from tests.goldens import assert_golden
from tests.test_eci import _dump
from tests.test_templating import load_dag, render

DAG_ID = "argo_eci_fluid_md5"
GOLDEN = Path(__file__).parent.parent / "golden" / "dags" / f"{DAG_ID}.md5_fanout.yaml"


def rendered_fanout() -> dict[str, Any]:
    """The fan-out task's workflow as it is submitted with the DAG's default params (rendered by
    Airflow's task runner; no TI labels)."""
    task = render(load_dag(REPO / "dags" / f"{DAG_ID}.py").get_task("md5_fanout"), logical_date=None)
    assert isinstance(task, ArgoWorkflowOperator)
    return task.build_workflow({})


def test_fanout_workflow_golden() -> None:
    """The seed's ``parallelism-fluid`` workflow: ECI settings, the Dataset's PVC at /data, 100 steps."""
    body = rendered_fanout()
    rendered = _dump(body)
    assert_golden(GOLDEN, rendered)
    spec = body["spec"]
    assert spec["parallelism"] == 100
    assert {p["name"]: p["value"] for p in spec["arguments"]["parameters"]} == {"steps": "100"}
    md5sum = next(t for t in spec["templates"] if t["name"] == "md5sum")
    assert md5sum["volumes"] == [{"name": "data-vol", "persistentVolumeClaim": {"claimName": "fluid-md5"}}]
    assert md5sum["container"]["volumeMounts"] == [{"name": "data-vol", "mountPath": "/data"}]
    assert spec["podMetadata"]["labels"][fluid.LABEL_FLUID_SIDECAR_TARGET] == "eci"


def dataload_events(cluster: LocalCluster, since: str) -> list[tuple[str, str, str]]:
    """``(event type, name, uid)`` of every DataLoad event in ``argo`` after resourceVersion ``since``."""
    from kubernetes import client, config, watch

    api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    try:
        objects = client.CustomObjectsApi(api)
        stream = watch.Watch().stream(objects.list_namespaced_custom_object, fluid.GROUP, fluid.VERSION, "argo",
                                      fluid.DATALOADS, resource_version=since, timeout_seconds=2)
        return [(e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"]["uid"]) for e in stream
                if e["type"] != "BOOKMARK"]
    finally:
        api.close()


def dataloads_version(cluster: LocalCluster) -> str:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    try:
        listed = client.CustomObjectsApi(api).list_namespaced_custom_object(fluid.GROUP, fluid.VERSION, "argo",
                                                                            fluid.DATALOADS)
        return str(listed["metadata"]["resourceVersion"])
    finally:
        api.close()


@pytest.mark.slow
def test_fluid_md5_dag(local_cluster: LocalCluster, airflow_db: Path) -> None:
    since = dataloads_version(local_cluster)
    run = dags_test(DAG_ID, local_cluster, airflow_db)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert task_states(airflow_db, DAG_ID) == {
        "upload_test_file": "success", "dataset": "success", "preload": "success", "md5_fanout": "success",
        "check_digests": "success", "clean_up": "success"}

    uploaded = return_value(airflow_db, DAG_ID, "upload_test_file")
    assert uploaded["key"] == "fluid-md5/test.dat" and uploaded["size"] == 4 * 1024 * 1024
    assert uploaded["mount_point"] == f"oss://{uploaded['bucket']}/fluid-md5/"
    bound = return_value(airflow_db, DAG_ID, "dataset")
    assert bound["phase"] == "Bound" and bound["pvc"] == "fluid-md5" and bound["fileNum"] == "1"
    loaded = return_value(airflow_db, DAG_ID, "preload")
    assert loaded["phase"] == "Complete" and loaded["cacheStates"]["cachedPercentage"] == "100.0%"

    checked = return_value(airflow_db, DAG_ID, "check_digests")
    assert checked["steps"] == 100 and checked["md5"] == uploaded["md5"]
    (workflow,) = [wf for wf in workflows_of(local_cluster, DAG_ID) if wf["metadata"]["name"] == checked["workflow"]]
    assert workflow["status"]["phase"] == "Succeeded"
    assert sum(n["type"] == "Pod" for n in workflow["status"]["nodes"].values()) == 100

    # exactly one DataLoad was created, and the teardown deleted it with the rest
    events = dataload_events(local_cluster, since)
    created = {(name, uid) for kind, name, uid in events if kind == "ADDED"}
    assert created == {(loaded["name"], loaded["uid"])}, events
    assert events[-1][0] == "DELETED", events
    cleaned = return_value(airflow_db, DAG_ID, "clean_up")
    assert cleaned == {"DataLoad": loaded["name"], "JindoRuntime": "fluid-md5", "Dataset": "fluid-md5",
                       "Secret": "fluid-md5-oss", "objects": ["fluid-md5/test.dat"]}
    assert bucket_keys(local_cluster, "fluid-md5/") == []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_FLUID_MD5_CHECK", kube_connection(local_cluster))
        hook = FluidHook("fluid_md5_check")
        try:
            for kind in ("DataLoad", "JindoRuntime", "Dataset"):
                assert hook.list_objects(kind, "argo", "app=fluid-md5") == [], kind
            with pytest.raises(NotFoundError):
                hook.get_claim("fluid-md5", "argo")
        finally:
            hook.close()


@pytest.mark.slow
def test_teardown_cleans_up_after_a_failure(local_cluster: LocalCluster, airflow_db: Path) -> None:
    """The Dataset task fails after the upload (a Secret of its name holds other keys); the teardown
    still runs and removes the uploaded objects (and that Secret), and the run fails."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_FLUID_MD5_SETUP", kube_connection(local_cluster))
        hook = FluidHook("fluid_md5_setup")
        try:
            hook.create_secret({"metadata": {"name": "fluid-md5-oss"},
                                "stringData": {"fs.oss.accessKeyId": "other", "fs.oss.accessKeySecret": "keys"}},
                               "argo")
        finally:
            hook.close()
    run = dags_test(DAG_ID, local_cluster, airflow_db)
    output = run.stdout + run.stderr
    assert task_states(airflow_db, DAG_ID) == {
        "upload_test_file": "success", "dataset": "failed", "preload": "upstream_failed",
        "md5_fanout": "upstream_failed", "check_digests": "upstream_failed", "clean_up": "success"}, output[-4000:]
    assert "exists with other keys" in output
    assert return_value(airflow_db, DAG_ID, "clean_up") == {"Secret": "fluid-md5-oss",
                                                            "objects": ["fluid-md5/test.dat"]}
    assert bucket_keys(local_cluster, "fluid-md5/") == []
    with sqlite3.connect(airflow_db / "airflow.db") as db:
        (state,) = db.execute("SELECT state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                              (DAG_ID,)).fetchone()
    assert state == "failed"
