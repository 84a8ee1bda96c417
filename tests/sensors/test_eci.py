"""EciImageCacheSensor on the local cluster's ImageCache controller: Ready returns the id (poke and
deferred, the trigger run for real), Failed fails with the last event's message, a missing cache
fails after the grace, and bad arguments are refused at parse time."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pendulum
import pytest
from airflow.exceptions import AirflowException
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.hooks.eci import EciHook
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.sensors.eci import EciImageCacheSensor
from tests.operators.test_argo import RecordingTI, context

pytestmark = pytest.mark.usefixtures("argo_default")


def sensor(task_id: str, name: str, **kwargs: Any) -> EciImageCacheSensor:
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return EciImageCacheSensor(task_id=task_id, name=name, poke_interval=0.1, timeout=60, **kwargs)


def create(image: str) -> tuple[str, str]:
    name = f"sensed-{uuid.uuid4().hex[:10]}"
    created = EciHook().create_image_cache({"metadata": {"name": name}, "spec": {"images": [image]}})
    return name, str(created["metadata"]["uid"])


def settled(name: str) -> dict[str, Any]:
    hook = EciHook()
    for _ in range(200):
        cache = hook.get_image_cache(name)
        if (cache.get("status") or {}).get("phase") in ("Ready", "Failed"):
            return cache
        time.sleep(0.05)
    raise AssertionError(f"ImageCache {name} never settled")


def test_ready_cache_returns_its_id() -> None:
    name, _ = create(f"busybox:{uuid.uuid4().hex[:8]}")
    result = sensor("sense_ready", name).execute(context("r", RecordingTI()))
    assert result == settled(name)["status"]["imageCacheId"] and result.startswith("imc-")


def test_failed_cache_fails_with_the_last_event_message() -> None:
    name, _ = create(f"registry.example.com/none/x:{uuid.uuid4().hex[:8]}")
    message = settled(name)["status"]["events"][-1]["message"]
    with pytest.raises(AirflowException) as info:
        sensor("sense_failed", name).execute(context("r", RecordingTI()))
    assert str(info.value) == f"ImageCache {name} Failed: {message}"


def test_missing_cache_fails_after_the_grace() -> None:
    waiting = sensor("sense_missing", "never-made", missing_grace=0.4)
    assert waiting.poke(context("r", RecordingTI())) is False  # within the grace
    time.sleep(0.5)
    with pytest.raises(AirflowException, match="ImageCache never-made does not exist"):
        waiting.poke(context("r", RecordingTI()))


def test_deferred_sensor_runs_the_trigger(local_cluster: LocalCluster) -> None:
    name, uid = create(f"busybox:{uuid.uuid4().hex[:8]}")
    deferring = sensor("sense_deferred", name, deferrable=True)
    try:
        result = deferring.execute(context("r", RecordingTI()))
    except TaskDeferred as deferred:  # the usual case: the cache is still being made
        trigger = deferred.trigger
        assert (trigger.name, trigger.uid, trigger.delete_on_kill) == (name, uid, False)

        async def events() -> list[dict[str, Any]]:
            return [event.payload async for event in trigger.run()]

        (event,) = asyncio.run(events())
        assert event["status"] == "success"
        result = deferring.execute_complete(context("r", RecordingTI()), event)
    assert result == settled(name)["status"]["imageCacheId"]
    with pytest.raises(AirflowException, match="sensor sense_deferred: gone"):
        deferring.execute_complete(context("r", RecordingTI()),
                                   {"status": "failure", "ids": {"name": name}, "message": "gone"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name must be the name of an ImageCache"),
        ({"name": "Bad_Name"}, "name='Bad_Name'"),
        ({"name": "ok", "missing_grace": 0}, "missing_grace must be > 0 seconds"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message):
        with DAG("dag_bad", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
            EciImageCacheSensor(task_id="bad", **kwargs)
