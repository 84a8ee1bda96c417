"""EciBatchOperator end to end on the local cluster: results keyed by job (sync and deferred), a failing
job's result, parse-time validation, and a queue's cap over two workflows submitted together."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from airflow_argo_eci.batch import ArrayJob, Job, JobDefinition, JobGraph, JobQueue
from airflow_argo_eci.errors import WorkflowFailedError, WorkflowSpecError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.operators.argo import XCOM_NAME
from airflow_argo_eci.operators.batch import XCOM_JOB_RESULTS, EciBatchOperator
from tests.conftest import server_connection
from tests.operators.test_argo import RecordingTI, context
from tests.triggers.running import first_event

pytestmark = pytest.mark.usefixtures("argo_default")


def shell(name: str, script: str, **kwargs: Any) -> JobDefinition:
    """A small alpine job running ``sh -c script``."""
    return JobDefinition(name, image="alpine:3.20", command=["sh", "-c", script], vcpu=0.25, memory="64Mi", **kwargs)


def make(task_id: str, graph: JobGraph, **kwargs: Any) -> EciBatchOperator:
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return EciBatchOperator(task_id=task_id, graph=graph, namespace="argo", poll_interval=0.2, **kwargs)


def emit_graph(name: str) -> JobGraph:
    """``prep`` then a 2-child array ``square`` whose children output their index squared."""
    emit = shell("emit", "echo ready > /tmp/out", outputs={"out": "/tmp/out"})
    square = shell("square", "echo $((BATCH_JOB_ARRAY_INDEX * BATCH_JOB_ARRAY_INDEX)) > /tmp/out",
                   outputs={"out": "/tmp/out"})
    prep = Job(emit, "prep")
    return JobGraph(name, [prep, ArrayJob(square, "square", size=2, start=2).after(prep)])


def test_sync_run_returns_results_keyed_by_job_and_array_index() -> None:
    op = make("batch_sync", emit_graph("batch-sync"))
    ti = RecordingTI()
    results = op.execute(context("run-batch-sync", ti))
    assert results["prep"] == {"phase": "Succeeded", "exit_code": 0, "outputs": {"out": "ready"},
                               "message": results["prep"]["message"]}
    assert results["square"]["phase"] == "Succeeded"
    children = results["square"]["children"]
    assert {i: c["outputs"] for i, c in children.items()} == {"2": {"out": "4"}, "3": {"out": "9"}}
    assert all(c["exit_code"] == 0 for c in children.values())
    assert ti.xcom[XCOM_NAME].startswith("batch-sync-")


def test_deferred_run_returns_the_same_results_from_execute_complete() -> None:
    op = make("batch_deferred", emit_graph("batch-deferred"), deferrable=True)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("run-batch-deferred", ti))

    event = asyncio.run(first_event(deferred.value.trigger))
    assert event["status"] == "success"
    # the task resumes in a fresh operator, as after the triggerer: only the DAG file's arguments
    results = make("batch_deferred", emit_graph("batch-deferred"), deferrable=True).execute_complete(
        context("run-batch-deferred", ti), event)
    assert results["prep"]["outputs"] == {"out": "ready"}
    assert {i: c["outputs"]["out"] for i, c in results["square"]["children"].items()} == {"2": "4", "3": "9"}


def test_a_failing_job_reports_its_exit_code_and_cancels_its_dependents() -> None:
    bad = shell("bad", "echo 'disk full' >&2; exit 3")
    ok = shell("ok", "true")
    tolerated = Job(bad, "tolerated", continue_on_failure=True)
    after_tolerated = Job(ok, "after-tolerated").after(tolerated)
    op = make("batch_tolerated", JobGraph("batch-tolerated", [tolerated, after_tolerated]))
    results = op.execute(context("run-batch-tolerated", RecordingTI()))  # the workflow succeeds
    assert results["tolerated"]["phase"] == "Failed" and results["tolerated"]["exit_code"] == 3
    assert "exit code 3" in results["tolerated"]["message"]
    assert results["after-tolerated"]["phase"] == "Succeeded"

    failing = Job(bad, "failing")
    dependent = Job(ok, "dependent").after(failing)
    op = make("batch_failing", JobGraph("batch-failing", [failing, dependent]))
    ti = RecordingTI()
    with pytest.raises(WorkflowFailedError):
        op.execute(context("run-batch-failing", ti))
    results = ti.xcom[XCOM_JOB_RESULTS]
    assert results["failing"]["phase"] == "Failed" and results["failing"]["exit_code"] == 3
    assert results["dependent"]["phase"] in ("Omitted", "NotRun")


def test_a_bad_graph_fails_at_dag_parsing_naming_the_job() -> None:
    job = Job(shell("loop", "true"), "a")
    job.after(job)
    with pytest.raises(WorkflowSpecError, match="'a'"):
        make("batch_bad", JobGraph("batch-bad", [job]))
    with pytest.raises(WorkflowSpecError, match="drop workflow"):
        make("batch_two_sources", emit_graph("x"), workflow={"kind": "Workflow"})


def test_the_workflow_is_the_rendered_graph_with_airflow_jinja_rendered_at_run_time() -> None:
    day = shell("day", "echo {{inputs.parameters.day}}", parameters=["day"])
    graph = JobGraph("jinja", [Job(day, "report", parameters={"day": "{{ ds }}"})])
    op = make("batch_jinja", graph, queue=JobQueue("jinja", priority=3))
    assert op.workflow == graph.render(JobQueue("jinja", priority=3))  # rendered when the DAG is parsed
    op.render_template_fields({"ds": "2026-11-23"})  # type: ignore[arg-type]
    templates = {t["name"]: t for t in op.workflow["spec"]["templates"]}
    (task,) = templates["dag"]["dag"]["tasks"]
    assert task["arguments"]["parameters"] == [{"name": "day", "value": "2026-11-23"}]
    assert templates["day"]["container"]["command"][-1] == "echo {{inputs.parameters.day}}"  # left for Argo
    assert op.workflow["spec"]["priority"] == 3


def test_queue_is_a_job_queue_or_airflows_executor_queue() -> None:
    job_queue = JobQueue("etl", max_concurrent=1)
    op = make("batch_job_queue", emit_graph("q"), queue=job_queue)
    assert op.job_queue is job_queue and op.queue != job_queue  # BaseOperator's queue stays a string
    op = make("batch_executor_queue", emit_graph("q"), queue="gpu-workers")
    assert op.job_queue is None and op.queue == "gpu-workers"


def test_over_the_argo_server_the_queue_config_map_is_left_to_an_admin(
        local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ARGO_DEFAULT", server_connection(local_cluster))
    queue = JobQueue(f"srv{uuid.uuid4().hex[:6]}", max_concurrent=3)
    op = make("batch_server_queue", emit_graph("q"), queue=queue)
    seen = local_cluster.request_log.last_seq
    op._ensure_queue()
    assert f"configmap argo/{queue.config_map_name} (data.limit=3) must exist" in capsys.readouterr().out
    assert local_cluster.request_log.matching(queue.config_map_name, seen) == []  # nothing was sent


def _running(hook: ArgoWorkflowsHook, names: list[str], lock: str) -> tuple[int, int, bool]:
    """Across the workflows ``names``: the holders of ``lock``, the Pod nodes running, all finished."""
    holders = running = 0
    done = True
    for name in names:
        wf = hook.get_workflow(name, namespace="argo")
        status = wf.get("status") or {}
        for entry in ((status.get("synchronization") or {}).get("semaphore") or {}).get("holding") or []:
            if entry.get("semaphore") == lock:
                holders += len(entry.get("holders") or [])
        running += sum(1 for n in (status.get("nodes") or {}).values()
                       if n.get("type") == "Pod" and n.get("phase") == "Running")
        done = done and status.get("phase") in ("Succeeded", "Failed", "Error")
    return holders, running, done


def test_two_graphs_on_one_queue_never_run_more_than_max_concurrent_pods(local_cluster: LocalCluster) -> None:
    queue = JobQueue(f"cap{uuid.uuid4().hex[:6]}", priority=5, max_concurrent=2)
    nap = shell("nap", "sleep 1")
    names = []
    for n in (1, 2):
        op = make(f"batch_queue_{n}", JobGraph(f"queued-{n}", [ArrayJob(nap, "naps", size=3)]), queue=queue,
                  deferrable=True)
        ti = RecordingTI()
        with pytest.raises(TaskDeferred):
            op.execute(context(f"run-queue-{n}", ti))  # submitted; both now run at once
        names.append(ti.xcom[XCOM_NAME])
    hook = ArgoWorkflowsHook()
    lock = f"argo/ConfigMap/{queue.config_map_name}/limit"
    most_holders = most_running = 0
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            holders, running, done = _running(hook, names, lock)
            most_holders, most_running = max(most_holders, holders), max(most_running, running)
            if done:
                break
            time.sleep(0.1)
        workflows = [hook.get_workflow(name, namespace="argo") for name in names]
    finally:
        hook.close()
    assert [wf["status"]["phase"] for wf in workflows] == ["Succeeded", "Succeeded"]
    assert all(wf["spec"]["priority"] == 5 for wf in workflows)
    assert most_holders == 2  # the cap was reached ...
    assert most_running <= 2  # ... and never passed
    # the pods' own start/finish times agree: at no instant were more than two running
    spans = sorted((n["startedAt"], n["finishedAt"]) for wf in workflows for n in wf["status"]["nodes"].values()
                   if n.get("type") == "Pod")
    assert len(spans) == 6
    events = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans], key=lambda e: (e[0], e[1]))
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    assert peak <= 2
