"""EciImageCacheTrigger against an instrumented cluster where the test plays ECI's ImageCache
controller: one event per trigger (Ready, Failed with the last event's message, deleted,
replaced, timeout), progress in the log, one shared watch of the cluster-scoped kind, on_kill,
and the classpath round trip."""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import Any

import pytest

from airflow_argo_eci.eci_conventions import API_VERSION, GROUP, IMAGE_CACHE_KIND, IMAGE_CACHES, VERSION
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.triggers.eci import CLASSPATH, EciImageCacheTrigger
from airflow_argo_eci.triggers.watch_hub import get_hub
from tests.triggers.cluster import InstrumentedCluster
from tests.triggers.conftest import CONN_ID
from tests.triggers.running import PrintedLog, events, events_during_change, events_while

PATH = f"/apis/{GROUP}/{VERSION}/{IMAGE_CACHES}"
_IC = (GROUP, VERSION, IMAGE_CACHES)


class CachePlayer:
    """ImageCaches of ``cluster``, written as ECI's controller would (through the API, unrecorded)."""

    def __init__(self, cluster: InstrumentedCluster) -> None:
        from kubernetes import client

        self.api = client.CustomObjectsApi(cluster.arranger)

    def create(self, name: str, phase: str = "Preparing") -> str:
        body = {"apiVersion": API_VERSION, "kind": IMAGE_CACHE_KIND, "metadata": {"name": name},
                "spec": {"images": ["busybox:1.36"]}}
        created = self.api.create_cluster_custom_object(*_IC, body)
        self.status(name, phase=phase, progress="0%")
        return str(created["metadata"]["uid"])

    def get(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            got: dict[str, Any] = self.api.get_cluster_custom_object(*_IC, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return got

    def status(self, name: str, **status: Any) -> None:
        obj = self.api.get_cluster_custom_object(*_IC, name)
        obj["status"] = {**(obj.get("status") or {}), **status}
        self.api.replace_cluster_custom_object_status(*_IC, name, obj)

    def ready(self, name: str) -> None:
        self.status(name, phase="Ready", progress="100%", imageCacheId=f"imc-{name.replace('-', '')}")

    def fail(self, name: str, message: str = "image busybox:1.36 not found") -> None:
        self.status(name, phase="Failed", events=[
            {"type": "Normal", "name": "Creating", "message": "pulling", "timestamp": "2026-01-01T00:00:00Z"},
            {"type": "Warning", "name": "ImageNotFound", "message": message, "timestamp": "2026-01-01T00:00:01Z"}])

    def delete(self, name: str) -> None:
        self.api.delete_cluster_custom_object(*_IC, name)


def trigger(name: str, uid: str = "", **kwargs: Any) -> EciImageCacheTrigger:
    return EciImageCacheTrigger(name=name, uid=uid, argo_conn_id=CONN_ID, **kwargs)


def test_classpath_round_trip() -> None:
    made = trigger("c", "u", progress_interval=2.5, end_at=123.5, delete_on_kill=True)
    classpath, kwargs = made.serialize()
    assert classpath == CLASSPATH
    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert type(again) is EciImageCacheTrigger and again.serialize() == (classpath, kwargs)
    assert kwargs == {"name": "c", "uid": "u", "argo_conn_id": CONN_ID, "progress_interval": 2.5, "end_at": 123.5,
                      "delete_on_kill": True}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name must be a non-empty string"),
        ({"argo_conn_id": ""}, "argo_conn_id must be a non-empty string"),
        ({"uid": None}, "uid must be a string"),
        ({"progress_interval": 0}, "progress_interval must be a number of seconds > 0"),
        ({"end_at": float("inf")}, "end_at must be a UNIX timestamp"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message):
        EciImageCacheTrigger(**{"name": "n", **kwargs})


def test_ready_is_one_success_event_with_progress_in_the_log(cluster: InstrumentedCluster,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    player = CachePlayer(cluster)
    uid = player.create("warm")
    printed = PrintedLog(capsys)

    async def controller() -> None:
        await printed.shows("ImageCache warm: Preparing 0%")
        await asyncio.to_thread(player.status, "warm", phase="Creating", progress="40%")
        await printed.shows("ImageCache warm: Creating 40%")
        await asyncio.to_thread(player.ready, "warm")

    (event,) = asyncio.run(events_while(trigger("warm", uid, progress_interval=0.05), controller))
    assert event == {"status": "success", "ids": {"name": "warm", "namespace": "", "uid": uid},
                     "message": "ImageCache warm Ready: imc-warm", "phase": "Ready",
                     "resource_version": event["resource_version"], "log_cursor": {}}
    assert printed.text().count("ImageCache warm: Preparing 0%") == 1  # a line only when the progress changed


def test_failed_carries_the_last_events_message(cluster: InstrumentedCluster) -> None:
    player = CachePlayer(cluster)
    uid = player.create("bad")

    (event,) = asyncio.run(events_during_change(trigger("bad", uid), 0.3, player.fail, "bad"))
    assert event["status"] == "failure" and event["phase"] == "Failed"
    assert event["message"] == "ImageCache bad Failed: image busybox:1.36 not found"


def test_deleted_or_replaced_before_ready_is_a_failure(cluster: InstrumentedCluster) -> None:
    player = CachePlayer(cluster)
    uid = player.create("gone")

    (event,) = asyncio.run(events_during_change(trigger("gone", uid), 0.3, player.delete, "gone"))
    assert event["status"] == "failure"
    assert event["message"] == f"ImageCache gone (uid {uid}) was deleted while Preparing before it finished"
    player.create("gone")  # a successor with the same name
    (event,) = asyncio.run(events(trigger("gone", uid)))
    assert event["status"] == "failure" and "imagecache with the same name but uid" in event["message"]


def test_already_ready_answers_at_once_and_timeouts(cluster: InstrumentedCluster) -> None:
    player = CachePlayer(cluster)
    uid = player.create("done")
    player.ready("done")
    (event,) = asyncio.run(events(trigger("done", uid)))
    assert event["status"] == "success"
    player.create("slow")
    started = time.monotonic()
    (event,) = asyncio.run(events(trigger("slow", end_at=time.time() + 0.5)))
    assert event["status"] == "timeout" and event["message"].startswith("ImageCache slow was not Ready by ")
    assert time.monotonic() - started < 5
    assert asyncio.run(events(trigger("slow", end_at=time.time() - 1)))[0]["status"] == "timeout"


def test_triggers_share_one_watch_of_the_cluster_scoped_kind(cluster: InstrumentedCluster) -> None:
    player = CachePlayer(cluster)
    uids = {f"shared-{i}": player.create(f"shared-{i}") for i in range(4)}
    since = len(cluster.requests())

    async def scenario() -> list[list[dict[str, Any]]]:
        waiting = [asyncio.ensure_future(events(trigger(name, uid))) for name, uid in uids.items()]
        await asyncio.sleep(0.5)
        assert get_hub().channel_count() == 1
        for name in uids:
            await asyncio.to_thread(player.ready, name)
        got = await asyncio.gather(*waiting)
        assert get_hub().channel_count() == 0
        return got

    got = asyncio.run(scenario())
    assert [event["status"] for (event,) in got] == ["success"] * 4
    watches = [r for r in cluster.watches(since) if r.path == PATH]
    lists = [r for r in cluster.requests(since=since) if r.path == PATH and not r.is_watch]
    assert len(watches) == 1 and len(lists) == 1


def test_on_kill_deletes_only_with_delete_on_kill_and_before_ready(cluster: InstrumentedCluster) -> None:
    player = CachePlayer(cluster)
    uid = player.create("kill-keep")
    asyncio.run(trigger("kill-keep", uid).on_kill())
    assert player.get("kill-keep") is not None
    asyncio.run(trigger("kill-keep", uid, delete_on_kill=True).on_kill())
    assert player.get("kill-keep") is None
    uid = player.create("kill-ready")
    player.ready("kill-ready")
    asyncio.run(trigger("kill-ready", uid, delete_on_kill=True).on_kill())
    assert player.get("kill-ready") is not None
    player.create("kill-foreign")
    asyncio.run(trigger("kill-foreign", "another-uid", delete_on_kill=True).on_kill())
    assert player.get("kill-foreign") is not None
