"""Operations written once over :class:`ApiRequest`: the sync and the async driver run the same
generator to the same result (and the same error), on both transports' operations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from airflow_argo_eci.errors import ConflictError, InvalidError, NotFoundError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.hooks.argo_kubernetes_requests import KubernetesOperations
from airflow_argo_eci.hooks.argo_requests import (
    MERGE_PATCH,
    ApiRequest,
    Operation,
    WorkflowList,
)
from airflow_argo_eci.hooks.argo_server_requests import ArgoServerOperations
from airflow_argo_eci.operation_drivers import arun_operation, run_operation
from tests.hooks.conftest import workflow

Responder = Callable[[ApiRequest], Any]


def drive_both(make: Callable[[], Operation[Any]], respond: Responder) -> tuple[Any, list[ApiRequest]]:
    """Run ``make()`` with the sync and with the async driver against ``respond``; both must send
    the same requests and return the same result (or raise the same error type)."""
    sent: list[list[ApiRequest]] = [[], []]

    def send(request: ApiRequest) -> Any:
        sent[0].append(request)
        return respond(request)

    async def asend(request: ApiRequest) -> Any:
        sent[1].append(request)
        return respond(request)

    outcomes: list[Any] = []
    for runner in (lambda: run_operation(make(), send), lambda: asyncio.run(arun_operation(make(), asend))):
        try:
            outcomes.append(runner())
        except Exception as exc:
            outcomes.append(exc)
    assert sent[0] == sent[1]
    if isinstance(outcomes[0], Exception):
        assert type(outcomes[0]) is type(outcomes[1])
    else:
        assert outcomes[0] == outcomes[1] and type(outcomes[0]) is type(outcomes[1])
    return outcomes[0], sent[0]


def pages(request: ApiRequest) -> dict[str, Any]:
    """Two pages of workflows; the second carries the list's resourceVersion."""
    query = dict(request.query)
    token = query.get("continue") or query.get("listOptions.continue")
    if not token:
        return {"items": [{"metadata": {"name": "a"}}], "metadata": {"continue": "t1", "resourceVersion": "5"}}
    return {"items": [{"metadata": {"name": "b"}}], "metadata": {"resourceVersion": "7"}}


@pytest.mark.parametrize("ops", [KubernetesOperations(), ArgoServerOperations()], ids=["kubernetes", "argo_server"])
def test_list_follows_pages_with_one_result_type(ops: Any) -> None:
    result, sent = drive_both(lambda: ops.list_workflows("argo", "app=x", ""), pages)
    assert isinstance(result, WorkflowList)
    assert [w["metadata"]["name"] for w in result] == ["a", "b"] and result.resource_version == "7"
    assert len(sent) == 2 and all(r.method == "GET" and r.idempotent for r in sent)


def _conflict_422(request: ApiRequest) -> Any:
    raise InvalidError("field is immutable", status=422, reason="Invalid",
                       causes=[{"field": "metadata.uid", "message": "field is immutable"}])


def test_kubernetes_fenced_stop_is_one_merge_patch_and_a_successor_conflicts() -> None:
    error, sent = drive_both(lambda: KubernetesOperations().stop_workflow("wf", "argo", None, "", "u1"), _conflict_422)
    assert isinstance(error, ConflictError)
    (patch,) = sent
    assert (patch.method, patch.path, patch.content_type) == (
        "PATCH", "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows/wf", MERGE_PATCH)
    assert patch.body == {"spec": {"shutdown": "Stop"}, "metadata": {"uid": "u1"}}


def test_argo_server_fenced_terminate_reads_then_refuses_a_successor() -> None:
    def respond(request: ApiRequest) -> Any:
        assert request.method == "GET", "no terminate may be sent to a successor"
        return {"metadata": {"name": "wf", "namespace": "argo", "uid": "u2"}}

    error, sent = drive_both(lambda: ArgoServerOperations().terminate_workflow("wf", "argo", "u1"), respond)
    assert isinstance(error, ConflictError) and [r.path for r in sent] == ["/api/v1/workflows/argo/wf"]


def test_status_written_on_the_main_resource_without_a_status_subresource() -> None:
    suspended = {"metadata": {"name": "wf"}, "status": {"phase": "Running", "nodes": {
        "wf-1": {"id": "wf-1", "name": "wf.approve", "displayName": "approve", "type": "Suspend",
                 "phase": "Running", "templateName": "approve"}}}}

    def respond(request: ApiRequest) -> Any:
        if request.method == "GET":
            return suspended
        if request.path.endswith("/status"):
            raise NotFoundError("no status subresource", status=404)
        return {"patched": request.body}

    result, sent = drive_both(
        lambda: KubernetesOperations().resume_workflow("wf", "argo", "displayName=approve"), respond)
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in sent] == [("GET", "wf"), ("PATCH", "status"),
                                                                       ("PATCH", "wf")]
    assert result["patched"]["status"]["nodes"]["wf-1"]["phase"] == "Succeeded"


def test_create_is_never_repeated_and_bad_bodies_send_nothing() -> None:
    for ops in (KubernetesOperations(), ArgoServerOperations()):
        _, (create,) = drive_both(lambda o=ops: o.create_workflow(workflow("x"), "argo"), lambda r: {})
        assert create.method == "POST" and not create.idempotent
        error, sent = drive_both(lambda o=ops: o.create_workflow({"kind": "Pod", "metadata": {"name": "x"}}, "argo"),
                                 lambda r: {})
        assert type(error).__name__ == "WorkflowSpecError" and sent == []


def test_hook_sync_and_async_return_the_same_workflows(hook: ArgoWorkflowsHook) -> None:
    created = hook.create_workflow(workflow("same", labels={"same-test": "1"}))
    try:
        listed = hook.list_workflows(label_selector="same-test=1")
        items = asyncio.run(hook.alist_workflows(label_selector="same-test=1"))
        assert type(listed) is type(items) is WorkflowList
        assert [w["metadata"]["uid"] for w in listed] == [w["metadata"]["uid"] for w in items]
        assert listed.resource_version and items.resource_version
        name = created["metadata"]["name"]
        got = asyncio.run(hook.aget_workflow(name))
        assert got["metadata"]["uid"] == hook.get_workflow(name)["metadata"]["uid"]
    finally:
        hook.delete_workflow(created["metadata"]["name"])
