"""job_results from status.nodes: the node names the rendering produces, and end-to-end runs of rendered
graphs on the session's local cluster (a diamond, an ``each`` chain with a registered definition,
failures cancelling dependents, ``continue_on_failure``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_argo_eci.batch import ArrayJob, Job, JobDefinition, JobGraph, job_results
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.server import LocalCluster
from tests.conftest import kube_connection

NS = "argo"
WORK = JobDefinition("work", image="busybox", command=["true"], vcpu=0.5, memory="64Mi")
#: writes "<index>:<item>" to its output and fails for index 3
REPORT = JobDefinition(
    "report", image="busybox", vcpu=0.25, memory="64Mi", outputs={"seen": "/tmp/seen"},
    command=["sh", "-c", 'echo -n "$BATCH_JOB_ARRAY_INDEX:$BATCH_JOB_ITEM" > /tmp/seen; '
                         'test "$BATCH_JOB_ARRAY_INDEX" != 3'])
ECHO = JobDefinition("echo", image="busybox", command=["sh", "-c", "echo -n {{inputs.parameters.message}} > /tmp/m"],
                     parameters=["message"], outputs={"message": "/tmp/m"}, vcpu=0.25, memory="64Mi")
FAIL = JobDefinition("fail", image="busybox", command=["sh", "-c", "echo broken >&2; exit 3"], vcpu=0.25,
                     memory="64Mi")


def _node(name: str, phase: str = "Succeeded", **fields: Any) -> dict[str, Any]:
    return {"id": name, "name": name, "phase": phase, **fields}


def _workflow(name: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"nodes": {n["id"]: n for n in nodes}}}


def test_results_of_single_jobs_retries_and_omitted_dependents() -> None:
    a = Job(WORK, "a")
    b = Job(WORK, "b").after(a)
    c = Job(WORK, "c").after(b)
    graph = JobGraph("g", [a, b, c])
    workflow = _workflow(
        "g-x",
        _node("g-x", "Failed"),
        _node("g-x.a", "Succeeded", outputs={"exitCode": "0", "parameters": [{"name": "o", "value": "1"}]}),
        _node("g-x.b", "Failed", type="Retry", message="No more retries left", children=["g-x.b(0)", "g-x.b(1)"]),
        _node("g-x.b(0)", "Failed", startedAt="2026-01-01T00:00:00Z", outputs={"exitCode": "2"}),
        _node("g-x.b(1)", "Failed", startedAt="2026-01-01T00:00:05Z", outputs={"exitCode": "3"}),
        _node("g-x.c", "Omitted", type="Skipped", message="omitted: depends condition not met"),
    )
    assert job_results(workflow, graph) == {
        "a": {"phase": "Succeeded", "exit_code": 0, "outputs": {"o": "1"}, "message": ""},
        "b": {"phase": "Failed", "exit_code": 3, "outputs": {}, "message": "No more retries left"},
        "c": {"phase": "Omitted", "exit_code": None, "outputs": {}, "message": "omitted: depends condition not met"},
    }


def test_results_read_compressed_nodes_as_argo_packs_a_large_status() -> None:
    from airflow_argo_eci.local.argo.packing import encode_nodes

    a = Job(WORK, "a")
    graph = JobGraph("g", [a])
    plain = _workflow("g-z", _node("g-z"), _node("g-z.a", outputs={"exitCode": "0"}))
    packed = {"metadata": plain["metadata"], "status": {"compressedNodes": encode_nodes(plain["status"]["nodes"])}}
    assert job_results(packed, graph) == job_results(plain, graph) == {
        "a": {"phase": "Succeeded", "exit_code": 0, "outputs": {}, "message": ""}}


def test_results_of_arrays_chains_and_fanouts() -> None:
    arr = ArrayJob(WORK, "arr", size=2, start=1)
    a = ArrayJob(WORK, "a", size=2)
    b = ArrayJob(WORK, "b", size=2).after(a, mode="each")
    capped = ArrayJob(WORK, "capped", items=["x"], parallelism=1)
    never = Job(WORK, "never").after(capped)
    graph = JobGraph("g", [arr, a, b, capped, never])
    ok = {"outputs": {"exitCode": "0"}}
    workflow = _workflow(
        "g-x",
        _node("g-x.arr", "Failed", type="TaskGroup"),
        _node("g-x.arr(0:1)", **ok),
        _node("g-x.arr(1:2)", "Failed", type="Retry", outputs={"exitCode": "1"}),
        _node("g-x.arr(1:2)(0)", "Failed", outputs={"exitCode": "1"}),
        _node("g-x.each-a", "Running", type="TaskGroup"),
        _node("g-x.each-a(0:0)", type="DAG"),
        _node("g-x.each-a(0:0).a", **ok),
        _node("g-x.each-a(0:0).b", **ok),
        _node("g-x.each-a(1:1)", "Running", type="DAG"),
        _node("g-x.each-a(1:1).a", **ok),
        _node("g-x.capped", type="DAG"),
        _node("g-x.capped.capped", type="TaskGroup"),
        _node("g-x.capped.capped(0:index:0,item:x)", **ok),
    )
    results = job_results(workflow, graph)
    child = {"phase": "Succeeded", "exit_code": 0, "outputs": {}, "message": ""}
    assert results["arr"] == {"phase": "Failed", "children": {
        "1": child, "2": {"phase": "Failed", "exit_code": 1, "outputs": {}, "message": ""}}}
    assert results["a"] == {"phase": "Succeeded", "children": {"0": child, "1": child}}
    assert results["b"] == {"phase": "Running", "children": {"0": child}}
    assert results["capped"] == {"phase": "Succeeded", "children": {"0": child}}
    assert results["never"] == {"phase": "NotRun", "exit_code": None, "outputs": {}, "message": "the job never started"}


# ---------------------------------------------------------------------------------------------
# end to end, on the local cluster
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def hook(local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArgoWorkflowsHook]:
    monkeypatch.setenv("AIRFLOW_CONN_BATCH_LOCAL", kube_connection(local_cluster))
    hook = ArgoWorkflowsHook("batch_local")
    yield hook
    hook.close()


def _run(hook: ArgoWorkflowsHook, graph: JobGraph, timeout: float = 90) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit the rendered graph, wait for it to finish; the workflow and its job results."""
    name = hook.create_workflow(graph.render(), NS)["metadata"]["name"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workflow = hook.get_workflow(name, NS)
        if (workflow.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
            return workflow, job_results(workflow, graph)
        time.sleep(0.3)
    raise AssertionError(f"workflow {name} did not finish in {timeout}s")


def test_diamond_runs_every_job_after_its_dependencies(hook: ArgoWorkflowsHook) -> None:
    a = Job(ECHO, "a", parameters={"message": "A"})
    b = Job(ECHO, "b", parameters={"message": "B"}).after(a)
    c = Job(ECHO, "c", parameters={"message": "C"}).after(a)
    d = Job(ECHO, "d", parameters={"message": "D"}).after(b, c)
    workflow, results = _run(hook, JobGraph("diamond", [a, b, c, d]))
    assert workflow["status"]["phase"] == "Succeeded"
    assert results == {n: {"phase": "Succeeded", "exit_code": 0, "outputs": {"message": n.upper()}, "message": ""}
                       for n in "abcd"}
    nodes = {n["name"].split(".")[-1]: n for n in workflow["status"]["nodes"].values() if "." in n["name"]}
    assert nodes["d"]["startedAt"] >= max(nodes["b"]["finishedAt"], nodes["c"]["finishedAt"])
    assert nodes["b"]["startedAt"] >= nodes["a"]["finishedAt"]


def test_each_chain_with_a_registered_definition(hook: ArgoWorkflowsHook) -> None:
    stored = WORK.register(hook, NS)
    assert stored["metadata"]["name"] == "work"
    assert WORK.register(hook, NS)["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    prep = ArrayJob("work", "prep", size=2, start=1)
    seen = ArrayJob(REPORT, "seen", size=2, start=1).after(prep, mode="each")
    items = ArrayJob(REPORT, "items", items=["x", {"k": 1}], parallelism=1).after(seen)
    workflow, results = _run(hook, JobGraph("each", [prep, seen, items]))
    assert workflow["status"]["phase"] == "Succeeded", workflow["status"].get("message")
    assert results["prep"]["phase"] == "Succeeded" and sorted(results["prep"]["children"]) == ["1", "2"]
    assert {i: c["outputs"]["seen"] for i, c in results["seen"]["children"].items()} == {"1": "1:", "2": "2:"}
    assert {i: c["outputs"]["seen"] for i, c in results["items"]["children"].items()} == {
        "0": "0:x", "1": '1:{"k": 1}'}
    nodes = {n["name"]: n for n in workflow["status"]["nodes"].values()}
    name = workflow["metadata"]["name"]
    for index in (1, 2):  # child i of "seen" starts once child i of "prep" is done
        chain = f"{name}.each-prep({index - 1}:{index})"
        assert nodes[f"{chain}.seen"]["startedAt"] >= nodes[f"{chain}.prep"]["finishedAt"]


def test_failures_cancel_dependents_unless_the_job_continues_on_failure(hook: ArgoWorkflowsHook) -> None:
    broken = Job(FAIL, "broken")
    cancelled = Job(WORK, "cancelled").after(broken)
    tolerated = Job(FAIL, "tolerated", continue_on_failure=True)
    runs_anyway = Job(ECHO, "runs-anyway", parameters={"message": "ran"}).after(tolerated)
    independent = Job(WORK, "independent")
    shards = ArrayJob(WORK, "shards", size=3, start=1)
    reports = ArrayJob(REPORT, "reports", size=3, start=1).after(shards, mode="each")  # index 3 fails
    summary = Job(WORK, "summary").after(reports)
    graph = JobGraph("failing", [broken, cancelled, tolerated, runs_anyway, independent, shards, reports, summary])
    workflow, results = _run(hook, graph)
    assert workflow["status"]["phase"] == "Failed"
    assert results["broken"] == {"phase": "Failed", "exit_code": 3, "outputs": {}, "message": "Error (exit code 3)"}
    assert results["cancelled"]["phase"] == "Omitted"
    assert results["tolerated"]["phase"] == "Failed"
    assert results["runs-anyway"] == {"phase": "Succeeded", "exit_code": 0, "outputs": {"message": "ran"},
                                      "message": ""}
    assert results["independent"]["phase"] == "Succeeded"
    assert results["shards"]["phase"] == "Succeeded"
    assert results["reports"]["phase"] == "Failed"
    assert {i: c["phase"] for i, c in results["reports"]["children"].items()} == {
        "1": "Succeeded", "2": "Succeeded", "3": "Failed"}
    assert results["reports"]["children"]["3"]["exit_code"] == 1
    assert results["summary"]["phase"] == "Omitted"
