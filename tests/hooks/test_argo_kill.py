"""One kill for the sync and the async path: the operator's ``on_kill`` leaves a same-named
successor of its workflow alone (both transports), and :func:`kill_steps` behaves the same when
driven by the hook's sync methods and by its async ones (a refused request included)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG
from kubernetes import client

from airflow_argo_eci.errors import ArgoEciError, ConflictError, InvalidError, NotFoundError, TransientError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.lifecycle import (
    KILL_STOP_MESSAGE,
    HookCall,
    WorkflowRef,
    arun_kill,
    kill_call,
    kill_outcome,
    run_kill,
)
from airflow_argo_eci.operators.argo import XCOM_NAME, XCOM_UID, ArgoWorkflowOperator
from tests.hooks.conftest import has_running_pod, wait_for, workflow


class RecordingTI:
    """The slice of a TaskInstance the operator uses: identity and XCom pushes."""

    try_number = 1
    map_index = -1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@pytest.mark.parametrize("action", ["stop", "terminate", "delete"])
def test_operator_on_kill_leaves_a_same_named_successor_alone(
    hook: ArgoWorkflowsHook, transport: str, action: str, capsys: pytest.CaptureFixture[str], kube_api_client: Any
) -> None:
    name = f"kill-succ-{action}-{transport.replace('_', '')}"
    body = workflow("unused", "sleep 60")
    body["metadata"] = {"name": name}
    with DAG(f"dag_kill_successor_{action}_{transport}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        op = ArgoWorkflowOperator(task_id="kill_successor", workflow=body, argo_conn_id=hook.argo_conn_id,
                                  namespace="argo", poll_interval=0.2, on_kill_action=action)
    ti = RecordingTI()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute({"ti": ti, "run_id": f"run-kill-successor-{action}"})
        except BaseException as exc:  # its workflow is replaced under it
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 20
    while XCOM_UID not in ti.xcom:
        assert time.monotonic() < deadline, "the operator did not submit"
        time.sleep(0.05)
    assert ti.xcom[XCOM_NAME] == name
    ours = ti.xcom[XCOM_UID]
    # the task's workflow is replaced by a same-named successor with another uid
    hook.delete_workflow(name, uid=ours)
    # its pods go after it (a background cascade, the running one gracefully): a successor created
    # before then meets its predecessor's pod under the same deterministic pod name and, as in Argo,
    # takes it for its own until it vanishes ("pod deleted")
    pods = client.CoreV1Api(kube_api_client)
    deadline = time.monotonic() + 30
    while any(ref.uid == ours for pod in pods.list_namespaced_pod("argo").items
              for ref in pod.metadata.owner_references or []):
        assert time.monotonic() < deadline, "the deleted workflow's pods are still there"
        time.sleep(0.1)
    deadline = time.monotonic() + 20
    while True:
        try:
            successor = hook.create_workflow(body)
            break
        except ConflictError:  # the old one is still being deleted
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert successor["metadata"]["uid"] != ours
    wait_for(hook, name, has_running_pod)
    try:
        capsys.readouterr()
        op.on_kill()
        assert "not ours" in capsys.readouterr().out  # the task log says why it was left alone
        worker.join(timeout=30)
        assert errors and isinstance(errors[0], ArgoEciError)  # the wait saw its workflow replaced
        current = hook.get_workflow(name)  # not deleted
        assert current["metadata"]["uid"] == successor["metadata"]["uid"]
        assert not (current.get("spec") or {}).get("shutdown"), current["spec"]
        assert (current.get("status") or {}).get("phase") == "Running"
        assert has_running_pod(current)
    finally:
        hook.delete_workflow(name)


# ---------------------------------------------------------------------------- one kill, two drivers


class FakeHook:
    """Records the hook calls a kill makes; ``current`` is what a read returns (None: NotFound),
    ``refusal`` what the kill request raises."""

    def __init__(self, current: dict[str, Any] | None, refusal: Exception | None = None) -> None:
        self.current = current
        self.refusal = refusal
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def _call(self, method: str, name: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((method.removeprefix("a"), name, kwargs))
        if method.endswith("get_workflow"):
            if self.current is None:
                raise NotFoundError("gone", status=404)
            return self.current
        if self.refusal is not None:
            raise self.refusal
        return {}

    def __getattr__(self, method: str) -> Any:
        if method.startswith("a"):
            async def acall(name: str, **kwargs: Any) -> Any:
                return self._call(method, name, kwargs)
            return acall
        return lambda name, **kwargs: self._call(method, name, kwargs)


RUNNING = {"metadata": {"uid": "u1"}, "status": {"phase": "Running"}}
CASES = [
    ("stop", RUNNING, None, "applied on_kill_action=stop"),
    ("terminate", RUNNING, None, "applied on_kill_action=terminate"),
    ("delete", RUNNING, NotFoundError("gone", status=404), "already gone"),
    ("stop", RUNNING, ConflictError("successor", status=409), "same-named successor: left alone"),
    ("stop", RUNNING, InvalidError("finished meanwhile", status=422), "not applied: finished meanwhile"),
    ("stop", {"metadata": {"uid": "u2"}, "status": {"phase": "Running"}}, None, "not ours"),
    ("terminate", {"metadata": {"uid": "u1"}, "status": {"phase": "Failed"}}, None, "already finished (Failed)"),
    ("delete", None, None, "already gone"),
    ("keep", RUNNING, None, "left running"),
]


@pytest.mark.parametrize(("action", "current", "refusal", "sentence"), CASES)
def test_sync_and_async_kill_are_the_same(action: str, current: dict[str, Any] | None, refusal: Exception | None,
                                          sentence: str) -> None:
    ref = WorkflowRef("wf", "argo", "u1")
    sync_hook, async_hook = FakeHook(current, refusal), FakeHook(current, refusal)
    said = run_kill(sync_hook, ref, action)  # type: ignore[arg-type]
    asaid = asyncio.run(arun_kill(async_hook, ref, action))  # type: ignore[arg-type]
    assert said == asaid and sentence in said
    assert sync_hook.calls == async_hook.calls
    expected_reads = [] if action == "keep" else [("get_workflow", "wf", {"namespace": "argo"})]
    assert sync_hook.calls[:1] == expected_reads
    applied = sync_hook.calls[1:]
    if current is RUNNING and action != "keep":
        call = kill_call(ref, action)
        assert applied == [(call.method, "wf", dict(call.kwargs))]
        assert call.kwargs["uid"] == "u1"
    else:
        assert applied == []


def test_kill_call_and_outcome() -> None:
    ref = WorkflowRef("wf", "argo", "u1")
    assert kill_call(ref, "stop") == HookCall("stop_workflow", "wf",
                                              {"namespace": "argo", "uid": "u1", "message": KILL_STOP_MESSAGE})
    assert kill_call(ref, "terminate").method == "terminate_workflow"
    assert kill_call(ref, "delete").method == "delete_workflow"
    with pytest.raises(ArgoEciError, match="keep"):
        kill_call(ref, "keep")
    assert kill_outcome(ref, "delete", None) == "Workflow argo/wf: applied on_kill_action=delete"
    unexpected = TransientError("HTTP 503", status=503)
    with pytest.raises(TransientError):  # anything else is a failure of the kill, not an outcome
        kill_outcome(ref, "stop", unexpected)
