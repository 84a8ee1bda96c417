"""ArgoWorkflowSensor against the local cluster: by name and by label selector, fail_on, and the
deferred path."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from airflow_argo_eci.errors import WorkflowFailedError, WorkflowSpecError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.sensors.argo import ArgoWorkflowSensor
from tests.triggers.running import first_event

pytestmark = pytest.mark.usefixtures("argo_default")


def submit(command: str, labels: dict[str, str]) -> dict[str, Any]:
    body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"generateName": "watched-", "labels": labels},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "main", "container": {"image": "alpine:3.20", "command": ["sh", "-c", command]}}]}}
    return ArgoWorkflowsHook().create_workflow(body, namespace="argo")


def sensor(task_id: str, **kwargs: Any) -> ArgoWorkflowSensor:
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return ArgoWorkflowSensor(task_id=task_id, poke_interval=0.2, timeout=30, **kwargs)


def poke_until_done(s: ArgoWorkflowSensor) -> Any:
    deadline = time.monotonic() + 30
    while True:
        result = s.poke({})  # type: ignore[arg-type]
        if result:
            return result
        assert time.monotonic() < deadline, "the sensor never finished"
        time.sleep(0.2)


def test_waits_by_name_and_returns_outputs(local_cluster: LocalCluster) -> None:
    wf = submit("sleep 0.5; echo done", {"sensor-test": "by-name"})
    done = poke_until_done(sensor("by_name", name=wf["metadata"]["name"]))
    assert done.is_done and done.xcom_value["phase"] == "Succeeded"
    assert done.xcom_value["uid"] == wf["metadata"]["uid"]


def test_label_selector_picks_the_newest(local_cluster: LocalCluster) -> None:
    older = submit("echo old", {"sensor-test": "newest"})
    time.sleep(1.1)  # creationTimestamp has one-second resolution
    newer = submit("echo new", {"sensor-test": "newest"})
    done = poke_until_done(sensor("newest", label_selector="sensor-test=newest"))
    assert done.xcom_value["name"] == newer["metadata"]["name"] != older["metadata"]["name"]


def test_fail_on_is_configurable(local_cluster: LocalCluster) -> None:
    wf = submit("exit 2", {"sensor-test": "fail-on"})
    with pytest.raises(WorkflowFailedError, match="exit code 2"):
        poke_until_done(sensor("fails", name=wf["metadata"]["name"]))
    tolerant = poke_until_done(sensor("tolerant", name=wf["metadata"]["name"], fail_on=()))
    assert tolerant.xcom_value["phase"] == "Failed"


def test_missing_workflow_keeps_waiting(local_cluster: LocalCluster) -> None:
    assert sensor("missing", name="no-such-workflow").poke({}) is False  # type: ignore[arg-type]


def test_deferred_sensor_yields_one_event(local_cluster: LocalCluster) -> None:
    wf = submit("sleep 1; echo deferred", {"sensor-test": "deferred"})
    s = sensor("deferred", name=wf["metadata"]["name"], deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        s.execute({})  # type: ignore[arg-type]

    event = asyncio.run(first_event(deferred.value.trigger))
    assert event["ids"]["uid"] == wf["metadata"]["uid"]
    assert s.execute_complete({}, event)["phase"] == "Succeeded"  # type: ignore[arg-type]


def test_bad_arguments() -> None:
    with pytest.raises(WorkflowSpecError, match="exactly one of name= or label_selector="):
        sensor("neither")
    with pytest.raises(WorkflowSpecError, match="fail_on"):
        sensor("bad_phase", name="x", fail_on=("Crashed",))
