"""OSSObjectTrigger against the local OSS store (real HTTPS through the real hook, in a thread)."""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.triggers.oss import OSSObjectTrigger
from tests.operators.oss_store import CONN_ID, KEY_ID, OSSTarget, oss, oss_connection, oss_store

__all__ = ["oss", "oss_store"]  # fixtures


def trigger(**kwargs: Any) -> OSSObjectTrigger:
    args: dict[str, Any] = {"key": "in/data.csv", "oss_conn_id": CONN_ID, "poll_interval": 0.1}
    args.update(kwargs)
    return OSSObjectTrigger(**args)


async def collect(t: OSSObjectTrigger) -> list[TriggerEvent]:
    """Every event ``run()`` yields until it returns (bounded, so a trigger that never ends fails)."""
    async def drain() -> list[TriggerEvent]:
        return [event async for event in t.run()]

    return await asyncio.wait_for(drain(), 20)


def test_serialize_round_trips() -> None:
    t = OSSObjectTrigger(key="a/b", bucket_name="bkt", prefix=True, oss_conn_id="c", poll_interval=3,
                         end_at=1_700_000_000.5)
    classpath, kwargs = t.serialize()
    assert classpath == "airflow_argo_eci.triggers.oss.OSSObjectTrigger"
    assert kwargs == {"key": "a/b", "bucket_name": "bkt", "prefix": True, "oss_conn_id": "c", "poll_interval": 3,
                      "end_at": 1_700_000_000.5}
    from airflow.serialization.serialized_objects import BaseSerialization

    stored = json.loads(json.dumps(BaseSerialization.serialize(kwargs)))
    module, _, name = classpath.rpartition(".")
    recreated = getattr(importlib.import_module(module), name)(**BaseSerialization.deserialize(stored))
    assert recreated.serialize() == (classpath, kwargs)


async def test_one_success_event_once_the_object_appears(oss: OSSTarget) -> None:
    writer = threading.Timer(0.5, oss.put, ("in/data.csv", b"x"))
    writer.start()
    started = time.monotonic()
    events = await collect(trigger())
    writer.join()
    assert time.monotonic() - started >= 0.5
    assert [e.payload for e in events] == [{
        "status": "success", "ids": [f"oss://{oss.name}/in/data.csv"],
        "message": f"Object oss://{oss.name}/in/data.csv exists"}]


async def test_prefix_waits_for_any_object_under_it(oss: OSSTarget) -> None:
    oss.put("in/other.csv", b"not under the prefix")
    writer = threading.Timer(0.3, oss.put, ("in/batch-7/part-0", b"x"))
    writer.start()
    events = await collect(trigger(key="in/batch-7/", prefix=True, bucket_name=oss.name))
    writer.join()
    assert [e.payload["status"] for e in events] == ["success"]
    assert events[0].payload["ids"] == [f"oss://{oss.name}/in/batch-7/"]


async def test_timeout_is_one_event(oss: OSSTarget) -> None:
    events = await collect(trigger(end_at=time.time() + 0.3))
    assert len(events) == 1
    assert events[0].payload["status"] == "timeout"
    assert events[0].payload["message"].startswith(f"no object oss://{oss.name}/in/data.csv by ")


async def test_bad_credentials_are_one_error_event_without_the_secret(oss: OSSTarget,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OSS_WRONG_KEY",
                       oss_connection(oss.store.endpoint, oss.ca_bundle, oss.name, KEY_ID, "wrong-secret-value"))
    events = await collect(trigger(oss_conn_id="oss_wrong_key", end_at=time.time() + 30))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "error"
    assert "SignatureDoesNotMatch" in payload["message"] and "wrong-secret-value" not in payload["message"]


async def test_missing_connection_is_an_error_event() -> None:
    events = await collect(trigger(oss_conn_id="oss_no_such_connection"))
    assert [e.payload["status"] for e in events] == ["error"]
    assert "oss_no_such_connection" in events[0].payload["message"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"key": ""}, "key must be a non-empty string"),
    ({"oss_conn_id": ""}, "oss_conn_id must be a non-empty string"),
    ({"bucket_name": ""}, "bucket_name must be a bucket name or None"),
    ({"poll_interval": 0}, "poll_interval must be a number of seconds > 0"),
    ({"end_at": float("nan")}, "end_at must be a UNIX timestamp"),
])
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message):
        trigger(**kwargs)
