"""ArgoWorkflowTrigger end to end on the session local cluster: the real Argo-compatible controller
runs the workflows, the trigger waits through the real hook."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.triggers.argo import ArgoWorkflowTrigger
from airflow_argo_eci.triggers.watch_hub import get_hub

CONN_ID = "argo_trigger_e2e"


@pytest.fixture
def hook(local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArgoWorkflowsHook]:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({
        "conn_type": "argo_workflows",
        "extra": {"kube_config_path": str(local_cluster.kubeconfig_path), "namespace": "argo"},
    }))
    hook = ArgoWorkflowsHook(CONN_ID)
    yield hook
    hook.close()


def _workflow(script: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": f"trigger-e2e-{uuid.uuid4().hex[:8]}"},
        "spec": {"entrypoint": "main", "templates": [
            {"name": "main", "steps": [[{"name": "work", "template": "work"}]]},
            {"name": "work", "container": {"image": "alpine:3.19", "command": ["sh", "-c", script]}},
        ]},
    }


def _trigger(wf: dict[str, Any], **kwargs: Any) -> ArgoWorkflowTrigger:
    return ArgoWorkflowTrigger(name=wf["metadata"]["name"], namespace="argo", uid=wf["metadata"]["uid"],
                               argo_conn_id=CONN_ID, **kwargs)


async def test_real_workflows_succeed_and_fail(hook: ArgoWorkflowsHook) -> None:
    ok = hook.create_workflow(_workflow("echo done"))
    bad = hook.create_workflow(_workflow("echo boom >&2; exit 3"))
    results = await asyncio.wait_for(asyncio.gather(
        *[asyncio.create_task(_collect(_trigger(wf))) for wf in (ok, bad)]), 60)
    (ok_event,), (bad_event,) = results
    assert ok_event.payload["status"] == "success"
    assert ok_event.payload["phase"] == "Succeeded"
    assert bad_event.payload["status"] == "failure"
    assert bad_event.payload["phase"] == "Failed"
    assert "work" in bad_event.payload["message"]  # the failed node, by display name
    assert "exit code 3" in bad_event.payload["message"]


async def test_killed_while_deferred_stops_the_workflow(hook: ArgoWorkflowsHook) -> None:
    wf = hook.create_workflow(_workflow("sleep 60"))
    trigger = _trigger(wf, on_kill_action="stop")
    task = asyncio.create_task(_collect(trigger))
    while get_hub().subscriber_count() < 1:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await trigger.on_kill()
    for _ in range(300):
        stored = await hook.aget_workflow(wf["metadata"]["name"], "argo")
        if stored.get("status", {}).get("phase") in ("Failed", "Error", "Succeeded"):
            break
        await asyncio.sleep(0.1)
    assert stored["spec"]["shutdown"] == "Stop"
    assert stored["status"]["phase"] == "Failed"
    await hook.aclose()


async def _collect(trigger: ArgoWorkflowTrigger) -> list[Any]:
    return [event async for event in trigger.run()]
