"""The batch example DAGs (``dags/argo_eci_batch_*.py``): each task's workflow against a committed
golden, and each DAG run with ``airflow dags test`` on the local cluster, its per-job results
checked in Airflow's XCom: the loop printed its five rows, the diamond ran in order, the two DAGs
on one queue never ran more than two job pods together, the word count is right."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci.batch import JobQueue
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.operators.batch import EciBatchOperator
from tests.conftest import REPO, kube_connection, oss_connection
from tests.dags.test_example_dags import dags_test, return_value, task_states, workflows_of
from tests.goldens import assert_golden
from tests.test_eci import _dump
from tests.test_templating import load_dag, render

GOLDEN_DIR = Path(__file__).parent.parent / "golden" / "dags"
#: (file stem, dag id, task id) of every batch example task
TASKS = [
    ("argo_eci_batch_loop", "argo_eci_batch_loop", "loop"),
    ("argo_eci_batch_diamond", "argo_eci_batch_diamond", "diamond"),
    ("argo_eci_batch_queue", "argo_eci_batch_queue", "on_queue"),
    ("argo_eci_batch_queue", "argo_eci_batch_queue_other", "on_queue"),
    ("argo_eci_batch_wordcount", "argo_eci_batch_wordcount", "wordcount"),
]


def load_module_dag(stem: str, dag_id: str) -> Any:
    """The DAG ``dag_id`` of ``dags/<stem>.py`` (a file may hold more than one)."""
    import importlib.util

    path = REPO / "dags" / f"{stem}.py"
    if dag_id == stem:
        return load_dag(path)
    spec = importlib.util.spec_from_file_location(f"example_{stem}_{dag_id}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (found,) = [v for v in vars(module).values() if getattr(v, "dag_id", None) == dag_id]
    return found


def rendered(stem: str, dag_id: str, task_id: str) -> EciBatchOperator:
    task = render(load_module_dag(stem, dag_id).get_task(task_id), logical_date=None)
    assert isinstance(task, EciBatchOperator)
    return task


@pytest.mark.parametrize(("stem", "dag_id", "task_id"), TASKS, ids=[t[1] for t in TASKS])
def test_workflow_golden(stem: str, dag_id: str, task_id: str) -> None:
    """The workflow each example task submits (default params, no TI labels)."""
    body = rendered(stem, dag_id, task_id).build_workflow({})
    golden = GOLDEN_DIR / f"{dag_id}.{task_id}.yaml"
    text = _dump(body)
    assert_golden(golden, text)


def test_the_examples_say_what_they_show() -> None:
    loop = rendered("argo_eci_batch_loop", "argo_eci_batch_loop", "loop").build_workflow({})["spec"]
    (task,) = next(t for t in loop["templates"] if t["name"] == "dag")["dag"]["tasks"]
    assert task["withSequence"] == {"start": "1", "count": "5"}
    assert task["arguments"]["parameters"] == [{"name": "job-index", "value": "{{item}}"}]
    diamond = rendered("argo_eci_batch_diamond", "argo_eci_batch_diamond", "diamond").build_workflow({})["spec"]
    tasks = {t["name"]: t for t in next(t for t in diamond["templates"] if t["name"] == "dag")["dag"]["tasks"]}
    assert {name: t.get("dependencies") for name, t in tasks.items()} == {
        "a": None, "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    queued = [rendered("argo_eci_batch_queue", d, "on_queue") for d in ("argo_eci_batch_queue",
                                                                       "argo_eci_batch_queue_other")]
    assert queued[0].job_queue == queued[1].job_queue and isinstance(queued[0].job_queue, JobQueue)
    for task_op in queued:
        spec = task_op.build_workflow({})["spec"]
        assert spec["priority"] == 10
        sleep = next(t for t in spec["templates"] if t["name"] == "sleep-array")
        assert sleep["synchronization"] == {"semaphores": [{"configMapKeyRef": {"name": "batch-queue-shared",
                                                                               "key": "limit"}}]}
    wordcount = rendered("argo_eci_batch_wordcount", "argo_eci_batch_wordcount", "wordcount")
    params = wordcount.build_workflow({})["spec"]["arguments"]["parameters"]
    assert [p["name"] for p in params] == ["text"] and len(params[0]["value"].split()) == 20


# ------------------------------------------------------------------------------------------------
# end to end: airflow dags test on the local cluster
# ------------------------------------------------------------------------------------------------


def _run(dag_id: str, cluster: LocalCluster, home: Path) -> dict[str, Any]:
    """Run the DAG, check its one task succeeded, and return that task's job results (XCom)."""
    run = dags_test(dag_id, cluster, home)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    states = task_states(home, dag_id)
    assert list(states.values()) == ["success"], (states, output[-4000:])
    (task_id,) = states
    results: dict[str, Any] = return_value(home, dag_id, task_id)
    return results


@pytest.mark.slow
def test_loop_dag_prints_the_five_rows(local_cluster: LocalCluster, airflow_db: Path) -> None:
    results = _run("argo_eci_batch_loop", local_cluster, airflow_db)
    children = results["print-pet"]["children"]
    assert results["print-pet"]["phase"] == "Succeeded"
    assert {i: c["outputs"]["pet"] for i, c in children.items()} == {
        "1": "dog", "2": "cat", "3": "bird", "4": "fish", "5": "hamster"}
    assert all(c["exit_code"] == 0 for c in children.values())


@pytest.mark.slow
def test_diamond_dag_runs_in_dependency_order(local_cluster: LocalCluster, airflow_db: Path) -> None:
    results = _run("argo_eci_batch_diamond", local_cluster, airflow_db)
    assert {job: (r["phase"], r["exit_code"], r["outputs"]) for job, r in results.items()} == {
        job: ("Succeeded", 0, {"message": job.upper()}) for job in "abcd"}
    (workflow,) = workflows_of(local_cluster, "argo_eci_batch_diamond")
    # each job has a retry (its pod node is the attempt "a(0)")
    nodes = {n["displayName"].split("(")[0]: n for n in workflow["status"]["nodes"].values() if n["type"] == "Pod"}
    assert sorted(nodes) == ["a", "b", "c", "d"]
    assert nodes["a"]["finishedAt"] <= min(nodes["b"]["startedAt"], nodes["c"]["startedAt"])
    assert max(nodes["b"]["finishedAt"], nodes["c"]["finishedAt"]) <= nodes["d"]["startedAt"]


def _spans(workflow: dict[str, Any]) -> list[tuple[str, str]]:
    return [(n["startedAt"], n["finishedAt"]) for n in workflow["status"]["nodes"].values() if n["type"] == "Pod"]


@pytest.mark.slow
def test_two_dags_on_one_queue_share_its_slots(local_cluster: LocalCluster, airflow_db: Path,
                                               tmp_path: Path) -> None:
    """Both DAGs at once (the second in a copy of the Airflow home): six jobs, never more than two
    running together, both workflows at the queue's priority, the queue's ConfigMap holding 2."""
    other_home = tmp_path / "airflow-home"
    shutil.copytree(airflow_db, other_home, ignore=shutil.ignore_patterns("logs", "*.log", "dags"))
    env = {**os.environ, "AIRFLOW_HOME": str(other_home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
           "AIRFLOW_CONN_ARGO_DEFAULT": kube_connection(local_cluster),
           "AIRFLOW_CONN_OSS_DEFAULT": oss_connection(local_cluster), "PYTHONPATH": str(REPO)}
    other = subprocess.Popen([sys.executable, "-m", "airflow", "dags", "test", "argo_eci_batch_queue_other",
                              "2026-11-23"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                             cwd=REPO)
    try:
        first = _run("argo_eci_batch_queue", local_cluster, airflow_db)
        output, _ = other.communicate(timeout=600)
    finally:
        if other.poll() is None:
            other.kill()
    assert other.returncode == 0, output[-4000:]
    second = return_value(other_home, "argo_eci_batch_queue_other", "on_queue")
    for results in (first, second):
        assert results["sleepers"]["phase"] == "Succeeded" and sorted(results["sleepers"]["children"]) == [
            "0", "1", "2"]
    workflows = workflows_of(local_cluster, "argo_eci_batch_queue") + workflows_of(
        local_cluster, "argo_eci_batch_queue_other")
    assert len(workflows) == 2 and all(w["spec"]["priority"] == 10 for w in workflows)
    spans = [span for w in workflows for span in _spans(w)]
    assert len(spans) == 6
    for start, _ in spans:
        assert sum(1 for s, f in spans if s <= start < f) <= 2, f"more than 2 jobs at once at {start}: {spans}"
    # the two workflows ran at the same time, so their jobs did wait for each other's slots
    (one, two) = [(w["status"]["startedAt"], w["status"]["finishedAt"]) for w in workflows]
    assert one[0] < two[1] and two[0] < one[1], (one, two)

    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(local_cluster.kubeconfig_path))
    try:
        cm = client.CoreV1Api(api).read_namespaced_config_map("batch-queue-shared", "argo")
    finally:
        api.close()
    assert cm.data == {"limit": "2"}


@pytest.mark.slow
def test_wordcount_dag_counts_the_words(local_cluster: LocalCluster, airflow_db: Path) -> None:
    text = load_dag(REPO / "dags" / "argo_eci_batch_wordcount.py").params["text"]
    results = _run("argo_eci_batch_wordcount", local_cluster, airflow_db)
    assert results["reduce"]["outputs"] == {"total": str(len(text.split()))}
    children = results["map"]["children"]
    assert sorted(children) == ["0", "1", "2"]  # five lines, two per shard
    assert sum(int(c["outputs"]["words"]) for c in children.values()) == len(text.split())
    assert results["split"]["phase"] == results["map"]["phase"] == "Succeeded"
