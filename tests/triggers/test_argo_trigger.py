"""ArgoWorkflowTrigger against an instrumented local cluster (real HTTP through the real hook).

The tests play the Argo controller by writing status into the store; the recorder in front of the
app shows exactly which requests the triggers issued.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.local.kubeconfig import write_kubeconfig
from airflow_argo_eci.triggers.argo import ArgoWorkflowTrigger
from airflow_argo_eci.triggers.watch_hub import get_hub
from tests.triggers.cluster import NAMESPACE, InstrumentedCluster, eventually
from tests.triggers.conftest import CONN_ID


def trigger_for(workflow: dict[str, Any], **kwargs: Any) -> ArgoWorkflowTrigger:
    meta = workflow["metadata"]
    args: dict[str, Any] = {"name": meta["name"], "namespace": NAMESPACE, "uid": meta["uid"], "argo_conn_id": CONN_ID,
                            "poll_interval": 0.2}
    args.update(kwargs)
    return ArgoWorkflowTrigger(**args)


async def collect(trigger: ArgoWorkflowTrigger) -> list[TriggerEvent]:
    """Every event ``run()`` yields until it returns."""
    return [event async for event in trigger.run()]


async def subscribed(count: int) -> None:
    await eventually(lambda: get_hub().subscriber_count() == count, what=f"{count} subscribers")


# ---------------------------------------------------------------------------- construction


def test_serialize_round_trips() -> None:
    trigger = ArgoWorkflowTrigger(name="wf", namespace="argo", uid="u-1", argo_conn_id="c", poll_interval=3,
                                  end_at=1_700_000_000.5, on_kill_action="terminate", get_logs=True,
                                  log_interval=12.5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_argo_eci.triggers.argo.ArgoWorkflowTrigger"
    assert kwargs == {"name": "wf", "namespace": "argo", "uid": "u-1", "argo_conn_id": "c", "poll_interval": 3,
                      "end_at": 1_700_000_000.5, "on_kill_action": "terminate", "get_logs": True,
                      "log_interval": 12.5}
    # what the scheduler stores and the triggerer re-creates: JSON through Airflow's serializer
    from airflow.serialization.serialized_objects import BaseSerialization

    stored = json.loads(json.dumps(BaseSerialization.serialize(kwargs)))
    module, _, cls_name = classpath.rpartition(".")
    recreated = getattr(importlib.import_module(module), cls_name)(**BaseSerialization.deserialize(stored))
    assert recreated.serialize() == (classpath, kwargs)
    defaults = ArgoWorkflowTrigger(name="wf", namespace="argo")
    assert ArgoWorkflowTrigger(**defaults.serialize()[1]).serialize() == defaults.serialize()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"namespace": None}, "namespace"),
        ({"argo_conn_id": ""}, "argo_conn_id"),
        ({"uid": None}, "uid"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": True}, "poll_interval"),
        ({"end_at": "tomorrow"}, "end_at"),
        ({"end_at": float("nan")}, "end_at"),
        ({"on_kill_action": "kill"}, "on_kill_action"),
        ({"get_logs": "yes"}, "get_logs"),
        ({"log_interval": -1}, "log_interval"),
        ({"log_interval": float("inf")}, "log_interval"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"name": "wf", "namespace": "argo"}
    args.update(kwargs)
    with pytest.raises(WorkflowSpecError, match=field):
        ArgoWorkflowTrigger(**args)


# ---------------------------------------------------------------------------- one event per outcome


async def test_success_yields_one_event(cluster: InstrumentedCluster) -> None:
    wf = cluster.create_workflow("wf-ok")
    task = asyncio.create_task(collect(trigger_for(wf)))
    await subscribed(1)
    await eventually(lambda: cluster.recorder.open_watches() == 1, what="the watch")
    done = cluster.set_status("wf-ok", {"phase": "Succeeded"})
    events = await asyncio.wait_for(task, 10)
    assert [e.payload for e in events] == [{
        "status": "success", "ids": {"name": "wf-ok", "namespace": NAMESPACE, "uid": wf["metadata"]["uid"]},
        "message": "Workflow argo/wf-ok Succeeded", "phase": "Succeeded",
        "resource_version": done["metadata"]["resourceVersion"], "log_cursor": {},
    }]
    assert get_hub().subscriber_count() == 0


async def test_failure_message_names_failed_nodes(cluster: InstrumentedCluster) -> None:
    wf = cluster.create_workflow("wf-bad")
    task = asyncio.create_task(collect(trigger_for(wf)))
    await subscribed(1)
    cluster.fail("wf-bad", node="train", message="OOMKilled (exit code 137)")
    (event,) = await asyncio.wait_for(task, 10)
    assert event.payload["status"] == "failure"
    assert event.payload["phase"] == "Failed"
    assert "train" in event.payload["message"]
    assert "OOMKilled (exit code 137)" in event.payload["message"]


async def test_timeout_yields_timeout_event(cluster: InstrumentedCluster) -> None:
    wf = cluster.create_workflow("wf-slow")
    started = time.monotonic()
    (event,) = await collect(trigger_for(wf, end_at=time.time() + 0.5))
    assert 0.4 < time.monotonic() - started < 5
    assert event.payload["status"] == "timeout"
    assert "did not finish by" in event.payload["message"]
    assert get_hub().subscriber_count() == 0


async def test_deadline_already_passed_issues_no_request(cluster: InstrumentedCluster) -> None:
    wf = cluster.create_workflow("wf-late")
    before = len(cluster.requests())
    (event,) = await collect(trigger_for(wf, end_at=time.time() - 1))
    assert event.payload["status"] == "timeout"
    assert cluster.requests(since=before) == []


async def test_deleted_workflow_is_a_failure(cluster: InstrumentedCluster) -> None:
    wf = cluster.create_workflow("wf-gone")
    task = asyncio.create_task(collect(trigger_for(wf)))
    await subscribed(1)
    await eventually(lambda: cluster.recorder.open_watches() == 1, what="the watch")
    cluster.delete_workflow("wf-gone")
    (event,) = await asyncio.wait_for(task, 10)
    assert event.payload["status"] == "failure"
    assert event.payload["message"] == (
        f"Workflow argo/wf-gone (uid {wf['metadata']['uid']}) was deleted while Running before it finished"
    )


async def test_other_uid_means_ours_is_gone(cluster: InstrumentedCluster) -> None:
    wf = cluster.create_workflow("wf-same-name")
    (event,) = await asyncio.wait_for(collect(trigger_for(wf, uid="uid-of-an-older-workflow")), 10)
    assert event.payload["status"] == "failure"
    assert event.payload["ids"]["uid"] == "uid-of-an-older-workflow"
    assert f"uid {wf['metadata']['uid']} replaced it" in event.payload["message"]


async def test_recreated_with_same_name_while_waiting(cluster: InstrumentedCluster) -> None:
    wf = cluster.create_workflow("wf-recreated")
    task = asyncio.create_task(collect(trigger_for(wf)))
    await subscribed(1)
    await eventually(lambda: cluster.recorder.open_watches() == 1, what="the watch")
    cluster.delete_workflow("wf-recreated")
    successor = cluster.create_workflow("wf-recreated", phase="Succeeded")
    (event,) = await asyncio.wait_for(task, 10)
    # ours was deleted (its DELETED event comes first); the successor's success is not ours
    assert event.payload["status"] == "failure"
    assert "was deleted" in event.payload["message"]
    assert successor["metadata"]["uid"] != wf["metadata"]["uid"]


async def test_already_finished_is_answered_at_once(cluster: InstrumentedCluster) -> None:
    wf = cluster.create_workflow("wf-done", phase="Succeeded")
    (event,) = await asyncio.wait_for(collect(trigger_for(wf)), 10)
    assert event.payload["status"] == "success"


async def test_late_subscriber_is_answered_from_the_cache(cluster: InstrumentedCluster) -> None:
    waiting = cluster.create_workflow("wf-long")
    finished = cluster.create_workflow("wf-finished")
    long_task = asyncio.create_task(collect(trigger_for(waiting)))
    await eventually(lambda: cluster.recorder.open_watches() == 1, what="the watch")
    cluster.set_status("wf-finished", {"phase": "Error", "message": "pod deleted"})
    await asyncio.sleep(0.3)  # the hub's stream delivers the Error to its cache
    before = len(cluster.requests())
    (event,) = await asyncio.wait_for(collect(trigger_for(finished)), 1)
    assert event.payload["status"] == "failure"
    assert event.payload["phase"] == "Error"
    assert cluster.requests(since=before) == []  # no GET, no LIST, no second watch
    # a name the cache does not know costs exactly one GET (here: 404 -> gone)
    (ghost,) = await asyncio.wait_for(collect(ArgoWorkflowTrigger(
        name="wf-never-existed", namespace=NAMESPACE, uid="u", argo_conn_id=CONN_ID)), 10)
    assert ghost.payload["status"] == "failure"
    assert "was deleted" in ghost.payload["message"]
    requested = cluster.requests(since=before)
    assert [(r.method, r.path.rsplit("/", 1)[-1], r.status) for r in requested] == [("GET", "wf-never-existed", 404)]
    long_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long_task


async def test_stale_cache_with_a_previous_uid_is_verified_not_trusted(cluster: InstrumentedCluster) -> None:
    other = cluster.create_workflow("wf-keeps-hub-running")
    old = cluster.create_workflow("wf-reused-name")
    keeper = asyncio.create_task(collect(trigger_for(other)))
    await eventually(lambda: cluster.recorder.open_watches() == 1, what="the watch")
    cluster.recorder.watches_open.clear()
    cluster.recorder.cut_watches()  # the hub's cache now lags: it still holds the old uid
    cluster.delete_workflow("wf-reused-name")
    ours = cluster.create_workflow("wf-reused-name")
    assert ours["metadata"]["uid"] != old["metadata"]["uid"]
    before = len(cluster.requests())
    task = asyncio.create_task(collect(trigger_for(ours)))
    await eventually(lambda: len(cluster.gets(before)) == 1, what="the verifying GET")
    await asyncio.sleep(0.2)
    assert not task.done()  # not mistaken for "replaced"
    cluster.recorder.watches_open.set()
    cluster.set_status("wf-reused-name", {"phase": "Succeeded"})
    (event,) = await asyncio.wait_for(task, 15)
    assert event.payload["status"] == "success"
    assert event.payload["ids"]["uid"] == ours["metadata"]["uid"]
    keeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await keeper


async def test_cancellation_unsubscribes_without_an_event(cluster: InstrumentedCluster) -> None:
    wf = cluster.create_workflow("wf-cancelled")
    events: list[TriggerEvent] = []

    async def consume() -> None:
        async for event in trigger_for(wf).run():
            events.append(event)

    task = asyncio.create_task(consume())
    await subscribed(1)
    await eventually(lambda: cluster.recorder.open_watches() == 1, what="the watch")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == []
    assert get_hub().subscriber_count() == 0
    assert get_hub().channel_count() == 0
    await eventually(lambda: cluster.recorder.open_watches() == 0, what="the watch to close")


async def test_rejected_credentials_are_an_error_event(
    cluster: InstrumentedCluster, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = cluster.create_workflow("wf-unauthorized")
    bad = write_kubeconfig(tmp_path / "bad-kubeconfig", cluster.url, "not-the-token",
                           ca_pem=cluster.paths.tls_cert.read_bytes())
    monkeypatch.setenv("AIRFLOW_CONN_ARGO_BAD_TOKEN", json.dumps(
        {"conn_type": "argo_workflows", "extra": {"kube_config_path": str(bad)}}))
    (event,) = await asyncio.wait_for(collect(trigger_for(wf, argo_conn_id="argo_bad_token")), 10)
    assert event.payload["status"] == "error"
    assert "401" in event.payload["message"]
    assert "not-the-token" not in event.payload["message"]
    assert [r.status for r in cluster.requests()] == [401]  # one LIST, not retried: a permanent error


async def test_missing_connection_is_an_error_event(cluster: InstrumentedCluster) -> None:
    wf = cluster.create_workflow("wf-no-conn")
    (event,) = await asyncio.wait_for(collect(trigger_for(wf, argo_conn_id="argo_no_such_connection")), 10)
    assert event.payload["status"] == "error"
    assert "argo_no_such_connection" in event.payload["message"]
    assert get_hub().channel_count() == 0


# ---------------------------------------------------------------------------- sharing and resilience


async def test_fifty_triggers_share_one_watch(cluster: InstrumentedCluster) -> None:
    workflows = [cluster.create_workflow(f"wf-shared-{i}") for i in range(50)]
    before = len(cluster.requests())
    tasks = [asyncio.create_task(collect(trigger_for(wf))) for wf in workflows]
    await subscribed(50)
    await eventually(lambda: cluster.recorder.open_watches() == 1, what="the watch")
    for i in range(50):
        if i % 2:
            cluster.fail(f"wf-shared-{i}")
        else:
            cluster.set_status(f"wf-shared-{i}", {"phase": "Succeeded"})
    results = await asyncio.wait_for(asyncio.gather(*tasks), 15)
    statuses = [events[0].payload["status"] for events in results]
    assert all(len(events) == 1 for events in results)
    assert statuses == ["success" if i % 2 == 0 else "failure" for i in range(50)]
    requested = cluster.requests(since=before)
    assert len(cluster.lists(since=before)) == 1
    assert len(cluster.watches(since=before)) == 1
    assert len(requested) == 2, requested  # one LIST + one WATCH for 50 triggers; no per-trigger GET
    assert cluster.watches(since=before)[0].query["allowWatchBookmarks"].lower() == "true"


async def test_lost_watch_resumes_from_its_resource_version(cluster: InstrumentedCluster) -> None:
    wf = cluster.create_workflow("wf-cut")
    task = asyncio.create_task(collect(trigger_for(wf)))
    await eventually(lambda: cluster.recorder.open_watches() == 1, what="the watch")
    progress = cluster.set_status("wf-cut", {"phase": "Running", "progress": "1/2"})
    await asyncio.sleep(0.2)  # the stream delivers it: the hub now stands at this resourceVersion
    seen_rv = progress["metadata"]["resourceVersion"]
    before = len(cluster.requests())
    cluster.recorder.watches_open.clear()
    assert cluster.recorder.cut_watches() == 1
    # the workflow finishes while no watch is open; the hook's own retries and then the hub's back-off run
    cluster.set_status("wf-cut", {"phase": "Succeeded", "progress": "2/2"})
    await eventually(lambda: len([r for r in cluster.watches(before) if r.status == 503]) >= 4, what="refused watches")
    assert not task.done()
    cluster.recorder.watches_open.set()
    (event,) = await asyncio.wait_for(task, 15)
    assert event.payload["status"] == "success"
    resumed = [r for r in cluster.watches(before) if r.status == 200]
    assert resumed and resumed[0].query["resourceVersion"] == seen_rv
    assert cluster.lists(since=before) == []  # resumed, not relisted


async def test_gone_watch_relists_and_delivers(cluster_factory: Any) -> None:
    cluster = cluster_factory(event_window=3)
    wf = cluster.create_workflow("wf-expired")
    task = asyncio.create_task(collect(trigger_for(wf)))
    await eventually(lambda: cluster.recorder.open_watches() == 1, what="the watch")
    watched_from = cluster.watches()[0].query["resourceVersion"]
    before = len(cluster.requests())
    cluster.recorder.watches_open.clear()
    cluster.recorder.cut_watches()
    cluster.set_status("wf-expired", {"phase": "Succeeded"})
    for i in range(5):  # other churn pushes the terminal event out of the 3-event window
        cluster.create_workflow(f"wf-churn-{i}")
    assert cluster.watch_is_gone(watched_from)
    cluster.recorder.watches_open.set()
    (event,) = await asyncio.wait_for(task, 15)
    assert event.payload["status"] == "success"
    # the API server answers a too-old watch with 200 and an in-stream ERROR (410 Expired); the hub
    # then relists (and finds the workflow Succeeded) and watches from the list's version
    answered = [r for r in cluster.requests(since=before) if r.status != 503]
    assert [(r.is_watch, r.is_workflow_list) for r in answered][:2] == [(True, False), (False, True)]
    assert answered[0].query["resourceVersion"] == watched_from
    assert len(cluster.lists(since=before)) == 1


async def test_argo_server_transport_polls_one_list_for_all(cluster_factory: Any) -> None:
    cluster = cluster_factory(transport="argo_server")
    workflows = [cluster.create_workflow(f"wf-poll-{i}") for i in range(20)]
    tasks = [asyncio.create_task(collect(trigger_for(wf, poll_interval=0.2))) for wf in workflows]
    await subscribed(20)
    started = time.monotonic()
    await asyncio.sleep(0.6)
    for i in range(20):
        cluster.set_status(f"wf-poll-{i}", {"phase": "Succeeded"})
    results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    elapsed = time.monotonic() - started
    assert [events[0].payload["status"] for events in results] == ["success"] * 20
    requested = cluster.requests()
    assert all(r.path == "/api/v1/workflows/argo" and r.method == "GET" for r in requested), requested
    assert not any(r.is_watch for r in requested)
    # one LIST per interval for all 20 triggers (20 polling triggers would have sent ~20 per interval)
    assert len(requested) <= elapsed / 0.2 + 3


# ---------------------------------------------------------------------------- on_kill


@pytest.mark.parametrize(("action", "shutdown"), [("stop", "Stop"), ("terminate", "Terminate"),
                                                  ("delete", None), ("keep", None)])
async def test_on_kill_applies_the_action(cluster: InstrumentedCluster, action: str, shutdown: str | None) -> None:
    wf = cluster.create_workflow(f"wf-kill-{action}")
    trigger = trigger_for(wf, on_kill_action=action)
    task = asyncio.create_task(collect(trigger))
    await eventually(lambda: cluster.recorder.open_watches() == 1, what="the watch")
    task.cancel()  # what the triggerer does first when the user kills the task
    with pytest.raises(asyncio.CancelledError):
        await task
    before = len(cluster.requests())
    await trigger.on_kill()
    stored = cluster.get_workflow(wf["metadata"]["name"])
    calls = [(r.method, r.path.rsplit("/", 1)[-1]) for r in cluster.requests(since=before)]
    name = wf["metadata"]["name"]
    if action == "keep":
        assert stored is not None and "shutdown" not in stored["spec"]
        assert calls == []
    elif action == "delete":
        assert stored is None
        assert calls == [("GET", name), ("DELETE", name)]
    else:
        assert stored is not None and stored["spec"]["shutdown"] == shutdown
        assert calls == [("GET", name), ("PATCH", name)]


async def test_on_kill_leaves_a_successor_and_a_finished_workflow_alone(cluster: InstrumentedCluster) -> None:
    successor = cluster.create_workflow("wf-successor")
    await trigger_for(successor, uid="uid-of-our-deleted-workflow").on_kill()
    finished = cluster.create_workflow("wf-finished-kill", phase="Succeeded")
    before = len(cluster.requests())
    await trigger_for(finished).on_kill()
    await trigger_for(successor, name="wf-absent").on_kill()
    for name in ("wf-successor", "wf-finished-kill"):
        stored = cluster.get_workflow(name)
        assert stored is not None and "shutdown" not in stored["spec"]
    assert [r.method for r in cluster.requests(since=before)] == ["GET", "GET"]
