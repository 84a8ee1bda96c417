"""OSSObjectSensor against the local OSS store: poke, the deferred path and its resumption."""

from __future__ import annotations

from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, TaskDeferred

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.sensors.oss import OSSObjectSensor
from airflow_argo_eci.triggers.oss import OSSObjectTrigger
from tests.operators.oss_store import CONN_ID, OSSTarget, oss, oss_store

__all__ = ["oss", "oss_store"]  # fixtures


def sensor(task_id: str, **kwargs: Any) -> OSSObjectSensor:
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return OSSObjectSensor(task_id=task_id, oss_conn_id=CONN_ID, poke_interval=0.2, timeout=60, **kwargs)


def test_poke_is_false_until_the_key_exists(oss: OSSTarget) -> None:
    s = sensor("poke_key", key="in/data.csv")
    assert s.poke({}) is False
    oss.put("in/data.csv.partial", b"x")
    assert s.poke({}) is False  # exact key: a longer key does not count
    oss.put("in/data.csv", b"x")
    assert s.poke({}) is True


def test_poke_with_prefix(oss: OSSTarget) -> None:
    s = sensor("poke_prefix", key="in/batch-1/", prefix=True, bucket_name=oss.name)
    oss.put("in/batch-10", b"x")
    assert s.poke({}) is False
    oss.put("in/batch-1/part-0", b"x")
    assert s.poke({}) is True


def test_deferrable_defers_with_the_trigger(oss: OSSTarget) -> None:
    s = sensor("deferred", key="in/{{ ds }}.csv", deferrable=True)
    s.key = "in/2026-01-01.csv"  # as rendered
    with pytest.raises(TaskDeferred) as deferred:
        s.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, OSSObjectTrigger)
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    end_at = kwargs.pop("end_at")
    assert kwargs == {"key": "in/2026-01-01.csv", "bucket_name": None, "prefix": False, "oss_conn_id": CONN_ID,
                      "poll_interval": 0.2}
    assert end_at == pytest.approx(pendulum.now("UTC").timestamp() + 60, abs=5)


def test_deferrable_finishes_at_once_when_the_key_exists(oss: OSSTarget) -> None:
    oss.put("ready", b"x")
    sensor("ready_now", key="ready", deferrable=True).execute({})  # no TaskDeferred: done at once


def test_execute_complete_validates_the_event() -> None:
    s = sensor("complete", key="k")
    s.execute_complete({}, {"status": "success", "ids": ["oss://b/k"], "message": "ok"})  # returns, no error
    with pytest.raises(AirflowSensorTimeout, match="no object oss://b/k by"):
        s.execute_complete({}, {"status": "timeout", "ids": ["oss://b/k"],
                                "message": "no object oss://b/k by 2026-01-01T00:00:00+00:00"})
    with pytest.raises(AirflowException, match="HTTP 403"):
        s.execute_complete({}, {"status": "error", "ids": ["oss://b/k"], "message": "HTTP 403"})
    with pytest.raises(AirflowException, match="unexpected trigger event"):
        s.execute_complete({}, None)
    with pytest.raises(AirflowException, match="unknown trigger event status 'weird'"):
        s.execute_complete({}, {"status": "weird", "ids": []})


def test_not_deferrable_unless_configured() -> None:
    assert sensor("not_deferred", key="k").deferrable is False  # [operators] default_deferrable is off here
    assert OSSObjectSensor.template_fields == ("key", "bucket_name")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"key": ""}, "key must be a non-empty"),
    ({"key": "/in/x"}, "starts with '/'"),
    ({"key": "in/*.csv"}, "looks like a glob"),
])
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message):
        sensor("bad", **kwargs)
