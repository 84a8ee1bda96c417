"""Kill and delete are fenced by the workflow's uid, on both transports, sync and async: a
same-named successor of the task's workflow is never stopped, terminated or deleted."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from airflow_argo_eci.errors import ConflictError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.lifecycle import WorkflowLifecycle, WorkflowRef, kill_decision
from tests.hooks.conftest import phase_in, wait_for, workflow


def _successor(hook: ArgoWorkflowsHook, name: str, script: str = "sleep 30") -> tuple[WorkflowRef, dict[str, Any]]:
    """Create ``name``, delete it, create a same-named successor; return the first one's ref and the successor."""
    body = workflow("fence", script)
    body["metadata"] = {"name": name}
    first = hook.create_workflow(body)
    ref = WorkflowRef.from_workflow(first)
    hook.delete_workflow(name, uid=ref.uid)
    successor = hook.create_workflow(body)
    assert successor["metadata"]["uid"] != ref.uid
    return ref, successor


def _untouched(hook: ArgoWorkflowsHook, successor: dict[str, Any]) -> None:
    current = hook.get_workflow(successor["metadata"]["name"])
    assert current["metadata"]["uid"] == successor["metadata"]["uid"]
    assert not (current.get("spec") or {}).get("shutdown"), current["spec"]


@pytest.mark.parametrize("verb", ["stop", "terminate", "delete"])
def test_fenced_requests_refuse_a_successor(hook: ArgoWorkflowsHook, transport: str, verb: str) -> None:
    ref, successor = _successor(hook, f"fence-req-{verb}-{transport.replace('_', '')}")
    call = {"stop": lambda: hook.stop_workflow(ref.name, uid=ref.uid),
            "terminate": lambda: hook.terminate_workflow(ref.name, uid=ref.uid),
            "delete": lambda: hook.delete_workflow(ref.name, uid=ref.uid)}[verb]
    with pytest.raises(ConflictError):
        call()
    _untouched(hook, successor)
    hook.delete_workflow(ref.name, uid=successor["metadata"]["uid"])


@pytest.mark.parametrize("verb", ["stop", "terminate", "delete"])
def test_async_fenced_requests_refuse_a_successor(hook: ArgoWorkflowsHook, transport: str, verb: str) -> None:
    ref, successor = _successor(hook, f"fence-areq-{verb}-{transport.replace('_', '')}")

    async def attempt() -> None:
        call = {"stop": hook.astop_workflow, "terminate": hook.aterminate_workflow,
                "delete": hook.adelete_workflow}[verb]
        with pytest.raises(ConflictError):
            await call(ref.name, uid=ref.uid)

    asyncio.run(attempt())
    _untouched(hook, successor)
    hook.delete_workflow(ref.name)


@pytest.mark.parametrize("action", ["stop", "terminate", "delete"])
def test_sync_kill_action_leaves_a_successor_alone(hook: ArgoWorkflowsHook, transport: str, action: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    ref, successor = _successor(hook, f"fence-kill-{action}-{transport.replace('_', '')}")
    lifecycle = WorkflowLifecycle(hook, "argo", logger=logging.getLogger("fence"))
    with caplog.at_level(logging.INFO, logger="fence"):
        lifecycle.apply_kill_action(ref, action)
    assert "not ours" in caplog.text
    _untouched(hook, successor)
    hook.delete_workflow(ref.name)


def test_sync_kill_action_still_stops_its_own_workflow(hook: ArgoWorkflowsHook, transport: str) -> None:
    created = hook.create_workflow(workflow("fence-own", "sleep 30"))
    ref = WorkflowRef.from_workflow(created)
    WorkflowLifecycle(hook, "argo").apply_kill_action(ref, "stop")
    assert hook.get_workflow(ref.name)["spec"]["shutdown"] == "Stop"
    wait_for(hook, ref.name, phase_in("Failed", "Error"))


def test_finish_delete_is_fenced(hook: ArgoWorkflowsHook, transport: str) -> None:
    ref, successor = _successor(hook, f"fence-finish-{transport.replace('_', '')}", "echo hi")
    WorkflowLifecycle(hook, "argo").apply_finish_action(ref, "delete", succeeded=True)
    _untouched(hook, successor)
    hook.delete_workflow(ref.name)


@pytest.mark.parametrize(
    ("workflow_now", "uid", "action", "decision"),
    [
        (None, "u1", "stop", "gone"),
        ({"metadata": {"uid": "u2"}, "status": {"phase": "Running"}}, "u1", "stop", "not_ours"),
        ({"metadata": {"uid": "u1"}, "status": {"phase": "Succeeded"}}, "u1", "delete", "finished"),
        ({"metadata": {"uid": "u1"}, "status": {"phase": "Running"}}, "u1", "terminate", "apply"),
        ({"metadata": {"uid": "u1"}, "status": {}}, "u1", "stop", "apply"),
        ({"metadata": {"uid": "u1"}, "status": {"phase": "Running"}}, "u1", "keep", "keep"),
        ({"metadata": {"uid": "u9"}, "status": {"phase": "Running"}}, "", "stop", "apply"),
    ],
)
def test_kill_decision(workflow_now: dict[str, Any] | None, uid: str, action: str, decision: str) -> None:
    got, why = kill_decision(workflow_now, uid, action)
    assert got == decision and why
