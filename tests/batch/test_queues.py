"""JobQueue: validation, what it puts on a workflow, its ConfigMap, and ensure() against the session's
local cluster (the literal HTTP calls, idempotence, an update, the argo_server transport's refusal)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from airflow_argo_eci.batch.queues import LABEL_QUEUE, JobQueue
from airflow_argo_eci.errors import ConflictError, NotFoundError, WorkflowSpecError
from airflow_argo_eci.hooks.argo_connection import parse_connection
from airflow_argo_eci.hooks.argo_requests import ApiRequest
from airflow_argo_eci.hooks.cluster import ClusterReader
from airflow_argo_eci.hooks.cluster_requests import ClusterOperations
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.operation_drivers import run_operation
from tests.hooks.conftest import connection_env


def workflow() -> dict[str, Any]:
    """A DAG over a container template, a script template and a suspend template."""
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "q-"},
        "spec": {"entrypoint": "main", "templates": [
            {"name": "main", "dag": {"tasks": [{"name": "a", "template": "job"},
                                               {"name": "b", "template": "py", "depends": "a"},
                                               {"name": "c", "template": "hold", "depends": "a"}]}},
            {"name": "job", "container": {"image": "alpine:3.20", "command": ["true"]}},
            {"name": "py", "script": {"image": "python:3.12", "source": "print(1)"},
             "synchronization": {"mutexes": [{"name": "other"}]}},
            {"name": "hold", "suspend": {"duration": "1"}},
        ]},
    }


def reader(cluster: LocalCluster, transport: str = "kubernetes") -> ClusterReader:
    """A reader of ``cluster`` over ``transport`` (namespace ``argo``)."""
    conn = connection_env(cluster, transport)
    return ClusterReader(parse_connection("queue-test", conn["extra"], host=conn.get("host"),
                                          password=conn.get("password")))


@pytest.mark.parametrize("kwargs, problem", [
    ({"name": "Bad_Name"}, "DNS-1123"),
    ({"name": "-x"}, "DNS-1123"),
    ({"name": "x" * 64}, "DNS-1123"),
    ({"name": "q", "priority": "high"}, "priority must be an int"),
    ({"name": "q", "priority": True}, "priority must be an int"),
    ({"name": "q", "max_concurrent": 0}, "max_concurrent must be an int >= 1"),
    ({"name": "q", "max_concurrent": 2.5}, "max_concurrent must be an int >= 1"),
])
def test_invalid_queues_are_refused(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(WorkflowSpecError, match=problem):
        JobQueue(**kwargs)


def test_apply_to_sets_priority_label_and_a_semaphore_on_every_pod_template() -> None:
    queue = JobQueue("gpu", priority=7, max_concurrent=2)
    original = workflow()
    applied = queue.apply_to(original)
    assert original == workflow()  # a copy: the input is untouched
    assert applied["spec"]["priority"] == 7
    assert applied["metadata"]["labels"] == {LABEL_QUEUE: "gpu"}
    templates = {t["name"]: t for t in applied["spec"]["templates"]}
    entry = {"configMapKeyRef": {"name": "batch-queue-gpu", "key": "limit"}}
    assert templates["job"]["synchronization"] == {"semaphores": [entry]}
    assert templates["py"]["synchronization"] == {"mutexes": [{"name": "other"}], "semaphores": [entry]}
    assert "synchronization" not in templates["main"] and "synchronization" not in templates["hold"]
    assert queue.apply_to(applied) == applied  # applying twice adds nothing


def test_a_queue_without_cap_sets_only_priority_and_needs_no_config_map() -> None:
    queue = JobQueue("default", priority=-1)
    applied = queue.apply_to(workflow())
    assert applied["spec"]["priority"] == -1
    assert not any("semaphores" in (t.get("synchronization") or {}) for t in applied["spec"]["templates"])
    with pytest.raises(WorkflowSpecError, match="no max_concurrent"):
        queue.config_map()


def test_a_template_ref_cannot_be_capped() -> None:
    wf = workflow()
    wf["spec"]["templates"][0]["dag"]["tasks"].append(
        {"name": "d", "templateRef": {"name": "registered", "template": "registered"}})
    with pytest.raises(WorkflowSpecError, match=r"main\.d runs 'registered' by templateRef"):
        JobQueue("q", max_concurrent=1).apply_to(wf)
    assert JobQueue("q").apply_to(wf)["spec"]["priority"] == 0  # no cap: nothing to put on it


def test_config_map_holds_the_limit() -> None:
    assert JobQueue("etl", max_concurrent=3).config_map() == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "batch-queue-etl", "labels": {LABEL_QUEUE: "etl"}},
        "data": {"limit": "3"},
    }


def test_ensure_creates_then_leaves_alone_then_updates(local_cluster: LocalCluster) -> None:
    name = f"q{uuid.uuid4().hex[:8]}"
    path = f"/api/v1/namespaces/argo/configmaps/batch-queue-{name}"
    log = local_cluster.request_log
    conn = reader(local_cluster)
    try:
        start = log.last_seq
        JobQueue(name, max_concurrent=2).ensure(conn, "argo")
        sent = [(e.method, e.path, e.json()) for e in log.matching(f"batch-queue-{name}", start)]
        body = JobQueue(name, max_concurrent=2).config_map()
        assert sent == [("GET", path, None), ("POST", "/api/v1/namespaces/argo/configmaps", body)]

        start = log.last_seq
        JobQueue(name, max_concurrent=2).ensure(conn, "argo")  # idempotent: read, nothing written
        assert [(e.method, e.path) for e in log.matching(f"batch-queue-{name}", start)] == [("GET", path)]

        start = log.last_seq
        JobQueue(name, max_concurrent=5).ensure(conn, "argo")
        sent = [(e.method, e.path, e.json()) for e in log.matching(f"batch-queue-{name}", start)]
        assert [(m, p) for m, p, _ in sent] == [("GET", path), ("PUT", path)]
        put = sent[1][2]
        assert put["data"] == {"limit": "5"} and put["metadata"]["resourceVersion"]
        assert conn.get_config_map("argo", f"batch-queue-{name}")["data"] == {"limit": "5"}

        start = log.last_seq
        JobQueue(name).ensure(conn, "argo")  # no cap: no request at all
        assert log.matching(f"batch-queue-{name}", start) == []
    finally:
        conn.close()


def test_apply_config_map_recovers_from_a_lost_create_race_and_a_stale_replace() -> None:
    """Another writer creates the ConfigMap between our GET and POST, then changes it between our GET
    and PUT: each 409 is answered by one fresh GET; the replace keeps the other writer's keys."""
    body = JobQueue("race", max_concurrent=2).config_map()
    theirs = {"metadata": {"name": "batch-queue-race", "resourceVersion": "7"}, "data": {"limit": "9", "x": "1"}}
    script: list[Any] = [NotFoundError("absent", status=404), ConflictError("exists", status=409), theirs,
                         ConflictError("stale", status=409), {**theirs, "metadata": {**theirs["metadata"],
                                                                                     "resourceVersion": "8"}},
                         {"stored": True}]
    sent: list[ApiRequest] = []

    def send(request: ApiRequest) -> Any:
        sent.append(request)
        answer = script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert run_operation(ClusterOperations().apply_config_map("argo", body), send) == {"stored": True}
    assert [r.method for r in sent] == ["GET", "POST", "GET", "PUT", "GET", "PUT"]
    assert sent[-1].body["data"] == {"limit": "2", "x": "1"}
    assert sent[-1].body["metadata"]["resourceVersion"] == "8"
    assert not sent[1].idempotent  # a create is never retried blindly


def test_ensure_over_the_argo_server_says_an_admin_must_create_it(local_cluster: LocalCluster) -> None:
    conn = reader(local_cluster, "argo_server")
    try:
        with pytest.raises(WorkflowSpecError) as refused:
            JobQueue("shared", max_concurrent=4).ensure(conn, "argo")
    finally:
        conn.close()
    message = str(refused.value)
    assert "cannot create ConfigMaps" in message
    assert "kubectl -n argo create configmap batch-queue-shared --from-literal=limit=4" in message
