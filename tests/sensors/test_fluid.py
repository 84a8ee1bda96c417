"""FluidDatasetSensor against the local API server, the test playing Fluid's controller: Bound, the
cache threshold, Failed, and the deferred path through FluidDatasetTrigger."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pendulum
import pytest
from airflow.exceptions import AirflowException
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.sensors.fluid import FluidDatasetSensor
from tests.hooks.fluid_cluster import FluidArranger
from tests.operators.test_argo import RecordingTI, context
from tests.triggers.cluster import InstrumentedCluster, start_instrumented_cluster

CONN = "fluid_sensor_test"


@pytest.fixture(scope="module")
def arranger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FluidArranger]:
    started: InstrumentedCluster = start_instrumented_cluster(tmp_path_factory.mktemp("fluid-sensor"))
    env = started.connection_uri_env(CONN)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield FluidArranger(started)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        started.stop()


def make(task_id: str, **kwargs: Any) -> FluidDatasetSensor:
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return FluidDatasetSensor(task_id=task_id, argo_conn_id=CONN, poke_interval=0.1, timeout=30, **kwargs)


def test_pokes_until_bound_then_until_cached_enough(arranger: FluidArranger) -> None:
    sensor = make("cached", dataset="grows", min_cached_percentage=80)
    ctx = context("r", RecordingTI())
    assert sensor.poke(ctx) is False  # no Dataset yet
    arranger.create("Dataset", "grows", {"mounts": []})
    arranger.set_status("Dataset", "grows", {"phase": "NotBound"})
    assert sensor.poke(ctx) is False
    arranger.bound_dataset("grows", cached="1.00MiB", percentage="10.0%")
    assert sensor.poke(ctx) is False
    arranger.set_status("Dataset", "grows", {"cacheStates": {"cached": "9.00MiB", "cachedPercentage": "90.0%"}})
    done = sensor.poke(ctx)
    assert done.is_done and done.xcom_value["cacheStates"]["cachedPercentage"] == "90.0%"
    assert done.xcom_value["ufsTotal"] == "10.00MiB"
    assert make("bound_only", dataset="grows").poke(ctx).is_done


def test_failed_dataset_fails_the_task(arranger: FluidArranger) -> None:
    arranger.create("Dataset", "failing", {"mounts": []})
    arranger.set_status("Dataset", "failing", {"phase": "Failed", "conditions": [
        {"type": "NotReady", "status": "True", "reason": "UfsError", "message": "bucket not found"}]})
    with pytest.raises(AirflowException, match="Dataset argo/failing Failed: UfsError: bucket not found"):
        make("failing", dataset="failing").poke(context("r", RecordingTI()))


def test_deferrable_waits_in_the_trigger(arranger: FluidArranger) -> None:
    arranger.bound_dataset("deferred", cached="0B", percentage="0.0%")
    sensor = make("deferred", dataset="deferred", min_cached_percentage=50, deferrable=True)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context("r", ti))
    trigger = deferred.value.trigger
    assert trigger.serialize()[0] == "airflow_argo_eci.triggers.fluid.FluidDatasetTrigger"
    assert trigger.min_cached_percentage == 50 and trigger.end_at is not None

    async def scenario() -> list[dict[str, Any]]:
        async def cache() -> None:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(arranger.set_status, "Dataset", "deferred",
                                    {"cacheStates": {"cached": "6.00MiB", "cachedPercentage": "60.0%"}})

        caching = asyncio.ensure_future(cache())
        got = [event.payload async for event in trigger.run()]
        await caching
        return got

    (event,) = asyncio.run(scenario())
    assert event["status"] == "success"
    assert sensor.execute_complete(context("r", ti), event)["cacheStates"]["cachedPercentage"] == "60.0%"
    with pytest.raises(AirflowException, match="does not exist"):
        sensor.execute_complete(context("r", ti), {**event, "status": "failure", "message": "does not exist"})
    with pytest.raises(TimeoutError):
        sensor.execute_complete(context("r", ti), {**event, "status": "timeout"})


def test_already_ready_does_not_defer(arranger: FluidArranger) -> None:
    arranger.bound_dataset("ready")
    sensor = make("ready", dataset="ready", deferrable=True)
    assert sensor.execute(context("r", RecordingTI()))["phase"] == "Bound"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"dataset": ""}, "dataset must be the name of a Dataset"),
     ({"dataset": "x", "min_cached_percentage": -1}, "min_cached_percentage must be a number from 0 to 100")],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message):
        make("bad", **kwargs)
