"""FluidDataLoadTrigger and FluidDatasetTrigger against an instrumented cluster where the test plays
Fluid's controller: one event per trigger, every phase, the shared watch, progress in the log,
on_kill, timeouts, and the classpath round trip."""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import Any

import pytest

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.triggers.fluid import FluidDataLoadTrigger, FluidDatasetTrigger
from airflow_argo_eci.triggers.watch_hub import get_hub
from tests.hooks.fluid_cluster import FluidArranger
from tests.triggers.cluster import InstrumentedCluster
from tests.triggers.conftest import CONN_ID
from tests.triggers.running import PrintedLog, events, events_during_change, events_while

DATALOADS_PATH = "/apis/data.fluid.io/v1alpha1/namespaces/argo/dataloads"


def load_trigger(name: str, uid: str = "", **kwargs: Any) -> FluidDataLoadTrigger:
    return FluidDataLoadTrigger(name=name, namespace="argo", uid=uid, argo_conn_id=CONN_ID, **kwargs)


def new_load(arranger: FluidArranger, name: str, dataset: str = "warm") -> str:
    arranger.bound_dataset(dataset)
    created = arranger.create("DataLoad", name, {"dataset": {"name": dataset, "namespace": "argo"}})
    arranger.set_status("DataLoad", name, {"phase": "Pending"})
    return str(created["metadata"]["uid"])


@pytest.mark.parametrize("cls", [FluidDataLoadTrigger, FluidDatasetTrigger])
def test_classpath_round_trip(cls: type) -> None:
    trigger = cls(name="n", namespace="argo", argo_conn_id="c", end_at=123.5)
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert type(again) is cls and again.serialize() == (classpath, kwargs)


def test_complete_is_one_success_event_with_progress_in_the_log(
    cluster: InstrumentedCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    arranger = FluidArranger(cluster)
    uid = new_load(arranger, "load-ok")
    trigger = load_trigger("load-ok", uid, dataset="warm", progress_interval=0.05)
    printed = PrintedLog(capsys)

    async def controller() -> None:
        await printed.shows("Dataset argo/warm: cached 0B of 10.00MiB (0.0%)")
        await asyncio.to_thread(arranger.set_status, "Dataset", "warm",
                                {"cacheStates": {"cached": "5.00MiB", "cachedPercentage": "50.0%"}})
        await printed.shows("Dataset argo/warm: cached 5.00MiB of 10.00MiB (50.0%)")
        await asyncio.to_thread(arranger.complete, "load-ok", "warm")

    got = asyncio.run(events_while(trigger, controller))
    assert len(got) == 1
    event = got[0]
    assert event["status"] == "success" and event["phase"] == "Complete"
    assert event["ids"] == {"name": "load-ok", "namespace": "argo", "uid": uid}
    assert event["message"] == "DataLoad argo/load-ok Complete in 2s" and event["log_cursor"] == {}
    assert printed.text().count("cached 0B of 10.00MiB (0.0%)") == 1  # a line only when the progress changed


def test_failed_carries_the_conditions_reason_and_message(cluster: InstrumentedCluster) -> None:
    arranger = FluidArranger(cluster)
    uid = new_load(arranger, "load-bad")

    (event,) = asyncio.run(events_during_change(load_trigger("load-bad", uid), 0.3, arranger.fail, "load-bad"))
    assert event["status"] == "failure" and event["phase"] == "Failed"
    assert event["message"] == "DataLoad argo/load-bad Failed: DataLoadJobFailed: bucket not found"


def test_deleted_or_replaced_before_it_finished_is_a_failure(cluster: InstrumentedCluster) -> None:
    arranger = FluidArranger(cluster)
    uid = new_load(arranger, "load-gone")

    (event,) = asyncio.run(events_during_change(load_trigger("load-gone", uid), 0.3, arranger.delete, "DataLoad",
                                                "load-gone"))
    assert event["status"] == "failure"
    assert event["message"] == f"DataLoad argo/load-gone (uid {uid}) was deleted while Pending before it finished"
    new_load(arranger, "load-gone")  # a successor with the same name
    (event,) = asyncio.run(events(load_trigger("load-gone", uid)))
    assert event["status"] == "failure" and "a dataload with the same name" in event["message"]


def test_an_already_finished_load_answers_at_once_and_timeouts(cluster: InstrumentedCluster) -> None:
    arranger = FluidArranger(cluster)
    uid = new_load(arranger, "load-done")
    arranger.complete("load-done", "warm")
    (event,) = asyncio.run(events(load_trigger("load-done", uid)))
    assert event["status"] == "success"
    new_load(arranger, "load-slow")
    started = time.monotonic()
    (event,) = asyncio.run(events(load_trigger("load-slow", end_at=time.time() + 0.5)))
    assert event["status"] == "timeout" and "did not finish by" in event["message"]
    assert time.monotonic() - started < 5
    assert asyncio.run(events(load_trigger("load-slow", end_at=time.time() - 1)))[0]["status"] == "timeout"


def test_triggers_share_one_watch_of_dataloads(cluster: InstrumentedCluster) -> None:
    arranger = FluidArranger(cluster)
    uids = {f"shared-{i}": new_load(arranger, f"shared-{i}") for i in range(5)}
    since = len(cluster.requests())

    async def scenario() -> list[list[dict[str, Any]]]:
        waiting = [asyncio.ensure_future(events(load_trigger(name, uid))) for name, uid in uids.items()]
        await asyncio.sleep(0.5)
        assert get_hub().channel_count() == 1
        for name in uids:
            await asyncio.to_thread(arranger.complete, name, "warm")
        got = await asyncio.gather(*waiting)
        assert get_hub().channel_count() == 0
        return got

    got = asyncio.run(scenario())
    assert [event["status"] for (event,) in got] == ["success"] * 5
    watches = [r for r in cluster.watches(since) if r.path == DATALOADS_PATH]
    lists = [r for r in cluster.requests(since=since) if r.path == DATALOADS_PATH and not r.is_watch]
    assert len(watches) == 1 and len(lists) == 1


@pytest.mark.parametrize(("action", "remains"), [("delete", False), ("keep", True)])
def test_on_kill(cluster: InstrumentedCluster, action: str, remains: bool) -> None:
    arranger = FluidArranger(cluster)
    uid = new_load(arranger, f"kill-{action}")
    asyncio.run(load_trigger(f"kill-{action}", uid, on_kill_action=action).on_kill())
    assert (arranger.get("DataLoad", f"kill-{action}") is not None) is remains


def test_on_kill_leaves_finished_and_foreign_loads_alone(cluster: InstrumentedCluster) -> None:
    arranger = FluidArranger(cluster)
    uid = new_load(arranger, "kill-done")
    arranger.complete("kill-done", "warm")
    asyncio.run(load_trigger("kill-done", uid).on_kill())
    assert arranger.get("DataLoad", "kill-done") is not None
    new_load(arranger, "kill-foreign")
    asyncio.run(load_trigger("kill-foreign", "another-uid").on_kill())
    assert arranger.get("DataLoad", "kill-foreign") is not None


def test_dataset_trigger_waits_for_bound_and_the_threshold(cluster: InstrumentedCluster) -> None:
    arranger = FluidArranger(cluster)
    arranger.create("Dataset", "ds-wait", {"mounts": []})
    arranger.set_status("Dataset", "ds-wait", {"phase": "NotBound"})

    async def scenario(threshold: float | None) -> list[dict[str, Any]]:
        trigger = FluidDatasetTrigger(name="ds-wait", namespace="argo", argo_conn_id=CONN_ID, poll_interval=0.05,
                                      min_cached_percentage=threshold)
        return await events(trigger)

    async def bind_then_cache() -> list[dict[str, Any]]:
        waiting = asyncio.ensure_future(scenario(90))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await asyncio.to_thread(arranger.bound_dataset, "ds-wait")
        await asyncio.sleep(0.3)
        assert not waiting.done()  # Bound, but 0% cached
        await asyncio.to_thread(arranger.set_status, "Dataset", "ds-wait",
                                {"cacheStates": {"cached": "10.00MiB", "cachedPercentage": "95.0%"}})
        return await asyncio.wait_for(waiting, 10)

    (event,) = asyncio.run(bind_then_cache())
    assert event["status"] == "success" and event["phase"] == "Bound"
    assert event["message"] == "Dataset argo/ds-wait: cached 10.00MiB of 10.00MiB (95.0%)"
    arranger.set_status("Dataset", "ds-wait", {"phase": "Failed"})
    assert asyncio.run(scenario(None))[0]["status"] == "failure"
    arranger.delete("Dataset", "ds-wait")
    (event,) = asyncio.run(scenario(None))
    assert event["status"] == "failure" and "does not exist" in event["message"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name must be a non-empty string"),
        ({"progress_interval": 0}, "progress_interval must be a number of seconds > 0"),
        ({"on_kill_action": "stop"}, "on_kill_action='stop'"),
        ({"end_at": float("nan")}, "end_at must be a UNIX timestamp"),
    ],
)
def test_bad_dataload_trigger_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message.replace("(", r"\(")):
        FluidDataLoadTrigger(**{"name": "n", "namespace": "argo", **kwargs})


def test_bad_dataset_trigger_threshold() -> None:
    with pytest.raises(WorkflowSpecError, match="min_cached_percentage must be a number from 0 to 100"):
        FluidDatasetTrigger(name="n", namespace="argo", min_cached_percentage=120)
