"""FluidDataLoadOperator and FluidDatasetOperator against the local API server over real HTTPS, the
test playing Fluid's controller (tests/hooks/fluid_cluster.py): checks before anything is created,
the sync and deferred paths, Failed surfacing its reason, reattach (exactly one DataLoad), kills,
create-or-adopt of a Dataset and its runtime."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pendulum
import pytest
from airflow.exceptions import AirflowException
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.operators.fluid import XCOM_NAME, XCOM_UID, FluidDataLoadOperator, FluidDatasetOperator
from airflow_argo_eci.workflows import reattach_selector, ti_labels
from tests.hooks.fluid_cluster import DataLoadPlayer, FluidArranger
from tests.operators.test_argo import RecordingTI, context
from tests.triggers.cluster import InstrumentedCluster, start_instrumented_cluster
from tests.triggers.running import events

CONN = "fluid_operator_test"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstrumentedCluster]:
    started = start_instrumented_cluster(tmp_path_factory.mktemp("fluid-operators"))
    env = started.connection_uri_env(CONN)
    env["AIRFLOW_CONN_FLUID_OSS_TEST"] = json.dumps({
        "conn_type": "oss", "login": "AKID-test", "password": "secret-test",
        "extra": {"endpoint": "https://oss-cn-shanghai-internal.aliyuncs.com"}})
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield started
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        started.stop()


@pytest.fixture
def arranger(cluster: InstrumentedCluster) -> FluidArranger:
    made = FluidArranger(cluster)
    made.bound_dataset("warm", path="/data")
    made.bound_dataset("broken-bucket")
    return made


def make_load(task_id: str, **kwargs: Any) -> FluidDataLoadOperator:
    kwargs.setdefault("dataset", "warm")
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return FluidDataLoadOperator(task_id=task_id, argo_conn_id=CONN, poll_interval=0.1, **kwargs)


def loads_of(arranger: FluidArranger, task_id: str, run_id: str) -> list[dict[str, Any]]:
    return arranger.items("DataLoad", reattach_selector(ti_labels(f"dag_{task_id}", task_id, run_id, -1, 1)))


def test_sync_run_creates_one_dataload_and_returns_phase_duration_and_cache(arranger: FluidArranger) -> None:
    op = make_load("sync_ok", load_metadata=True, target=["/data/a", {"path": "/data/b", "replicas": 2}],
                   ttl_seconds_after_finished=600, pod_metadata={"labels": {"alibabacloud.com/eci": "true"}},
                   labels={"team": "data"})
    ti = RecordingTI()
    with DataLoadPlayer(arranger):
        result = op.execute(context("run-sync", ti))
    assert result["phase"] == "Complete" and result["duration"] == "2s"
    assert result["cacheStates"]["cachedPercentage"] == "100.0%" and result["name"] == ti.xcom[XCOM_NAME]
    (load,) = loads_of(arranger, "sync_ok", "run-sync")
    assert load["metadata"]["uid"] == ti.xcom[XCOM_UID] == result["uid"]
    assert load["metadata"]["name"].startswith("warm-load-") and load["metadata"]["labels"]["team"] == "data"
    assert load["spec"] == {
        "dataset": {"name": "warm", "namespace": "argo"}, "loadMetadata": True, "policy": "Once",
        "target": [{"path": "/data/a", "replicas": 1}, {"path": "/data/b", "replicas": 2}],
        "ttlSecondsAfterFinished": 600, "podMetadata": {"labels": {"alibabacloud.com/eci": "true"}}}


def test_failed_fails_the_task_with_the_conditions_reason_and_message(arranger: FluidArranger) -> None:
    op = make_load("sync_failed", dataset="broken-bucket")
    with DataLoadPlayer(arranger), pytest.raises(AirflowException) as info:
        op.execute(context("run-failed", RecordingTI()))
    assert "Failed: DataLoadJobFailed: bucket not found" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "nope"}, "dataset='nope': there is no Dataset argo/nope"),
        ({"target": ["/elsewhere"]}, "target[0].path: '/elsewhere' is outside Dataset argo/warm"),
        ({"target": ["data"]}, "target[0].path: 'data' is not an absolute path"),
        ({"target": ["/data/../etc"]}, "is not a normalised path"),
        ({"target": [{"path": "/data", "replicas": 0}]}, "target[0].replicas must be an int >= 1"),
        ({"policy": "Cron"}, "policy 'Cron' needs a cron expression"),
        ({"schedule": "* * * * *"}, "is only used with policy 'Cron'"),
        ({"pod_metadata": {"nodeName": "x"}}, "pod_metadata takes 'labels' and 'annotations' only"),
    ],
)
def test_bad_input_is_refused_before_anything_is_created(arranger: FluidArranger, kwargs: dict[str, Any],
                                                         message: str) -> None:
    task_id = f"bad_{abs(hash(message)) % 10**6}"
    op = make_load(task_id, **kwargs)
    with pytest.raises(WorkflowSpecError) as info:
        op.execute(context("run-bad", RecordingTI()))
    assert message in str(info.value)
    assert loads_of(arranger, task_id, "run-bad") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "Sometimes"}, "policy='Sometimes'"),
        ({"on_kill_action": "stop"}, "on_kill_action='stop' is not supported"),
        ({"ttl_seconds_after_finished": -1}, "ttl_seconds_after_finished must be an int >= 0"),
        ({"dataset": ""}, "dataset must be the name of a Dataset"),
    ],
)
def test_bad_arguments_fail_at_parse_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message.replace("(", r"\(")):
        make_load("parse", **kwargs)


def test_cron_descriptor_is_accepted(arranger: FluidArranger) -> None:
    op = make_load("cron", policy="Cron", schedule="@every 5s", wait_for_completion=False)
    ref = op.execute(context("run-cron", RecordingTI()))
    (load,) = loads_of(arranger, "cron", "run-cron")
    assert load["metadata"]["uid"] == ref["uid"] and load["spec"]["schedule"] == "@every 5s"


def test_retry_after_a_crash_reattaches_to_the_one_dataload(arranger: FluidArranger) -> None:
    op = make_load("reattach", timeout=0.5, on_kill_action="keep")
    with pytest.raises(TimeoutError):  # nobody runs it: the first try gives up and keeps it
        op.execute(context("run-reattach", RecordingTI(try_number=1)))
    (first,) = loads_of(arranger, "reattach", "run-reattach")
    again = make_load("reattach")
    ti = RecordingTI(try_number=2)
    with DataLoadPlayer(arranger):
        result = again.execute(context("run-reattach", ti))
    assert result["phase"] == "Complete"
    (only,) = loads_of(arranger, "reattach", "run-reattach")
    assert only["metadata"]["uid"] == first["metadata"]["uid"] == ti.xcom[XCOM_UID]


def test_retry_of_a_failed_fixed_name_replaces_it(arranger: FluidArranger) -> None:
    op = make_load("fixed", dataset="broken-bucket", name="fixed-load")
    with DataLoadPlayer(arranger):
        with pytest.raises(AirflowException):
            op.execute(context("run-fixed", RecordingTI(try_number=1)))
        first = arranger.get("DataLoad", "fixed-load")
        assert first is not None
        with pytest.raises(AirflowException):
            op.execute(context("run-fixed", RecordingTI(try_number=2)))
    (only,) = loads_of(arranger, "fixed", "run-fixed")
    assert only["metadata"]["uid"] != first["metadata"]["uid"]
    other = make_load("other_task", name="fixed-load")
    with pytest.raises(WorkflowSpecError, match="already exists and is not a failed DataLoad of this task"):
        other.execute(context("run-fixed", RecordingTI()))


def test_deferred_run_one_event_then_complete(arranger: FluidArranger) -> None:
    op = make_load("deferred", deferrable=True)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("run-deferred", ti))
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_argo_eci.triggers.fluid.FluidDataLoadTrigger"
    assert kwargs["name"] == ti.xcom[XCOM_NAME] and kwargs["uid"] == ti.xcom[XCOM_UID]
    assert kwargs["dataset"] == "warm" and kwargs["on_kill_action"] == "delete"

    with DataLoadPlayer(arranger):
        (event,) = asyncio.run(events(trigger))
    assert event["status"] == "success" and event["phase"] == "Complete"
    result = op.execute_complete(context("run-deferred", ti), event)
    assert result["phase"] == "Complete" and result["cacheStates"]["cachedPercentage"] == "100.0%"


def test_deferred_failure_and_bad_events(arranger: FluidArranger) -> None:
    op = make_load("deferred_failed", dataset="broken-bucket", deferrable=True)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("run-deferred-failed", ti))

    with DataLoadPlayer(arranger):
        (event,) = asyncio.run(events(deferred.value.trigger))
    assert event["status"] == "failure"
    with pytest.raises(AirflowException, match="DataLoadJobFailed: bucket not found"):
        op.execute_complete(context("run-deferred-failed", ti), event)
    with pytest.raises(WorkflowSpecError, match="unexpected trigger event"):
        op.execute_complete(context("r", ti), {"phase": "Complete"})


def test_kill_while_deferred_deletes_the_dataload(arranger: FluidArranger) -> None:
    op = make_load("kill_deferred", deferrable=True)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("run-kill-deferred", ti))
    assert arranger.get("DataLoad", ti.xcom[XCOM_NAME]) is not None
    asyncio.run(deferred.value.trigger.on_kill())
    assert arranger.get("DataLoad", ti.xcom[XCOM_NAME]) is None


def test_kill_in_the_worker_deletes_the_dataload(arranger: FluidArranger) -> None:
    op = make_load("kill_sync")
    ti = RecordingTI()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(context("run-kill-sync", ti))
        except BaseException as exc:  # the DataLoad is gone once deleted
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 20
    while XCOM_NAME not in ti.xcom:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    op.on_kill()
    worker.join(timeout=30)
    assert arranger.get("DataLoad", ti.xcom[XCOM_NAME]) is None
    assert errors and "DataLoad" in str(errors[0])


def test_template_fields() -> None:
    assert set(FluidDataLoadOperator.template_fields) >= {"dataset", "target", "policy", "schedule", "pod_metadata",
                                                          "name", "namespace"}
    assert set(FluidDatasetOperator.template_fields) >= {"name", "mount_point", "runtime_spec", "namespace"}


# ---------------------------------------------------------------------------- FluidDatasetOperator

RUNTIME = {"replicas": 2, "tieredstore": {"levels": [{"mediumtype": "MEM", "path": "/dev/shm", "quota": "1Gi",
                                                      "high": "0.99", "low": "0.99"}]}}


def make_dataset(task_id: str, **kwargs: Any) -> FluidDatasetOperator:
    kwargs.setdefault("runtime_spec", RUNTIME)
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return FluidDatasetOperator(task_id=task_id, argo_conn_id=CONN, poll_interval=0.1, **kwargs)


def bind_later(arranger: FluidArranger, name: str) -> threading.Thread:
    def bind() -> None:
        deadline = time.monotonic() + 20
        while arranger.get("Dataset", name) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        arranger.bound_dataset(name)

    thread = threading.Thread(target=bind)
    thread.start()
    return thread


def test_dataset_from_the_oss_connection_is_created_then_bound(arranger: FluidArranger) -> None:
    op = make_dataset("ds_conn", name="from-conn", mount_point="oss://bucket/prefix/", oss_conn_id="fluid_oss_test",
                      labels={"team": "data"})
    binder = bind_later(arranger, "from-conn")
    result = op.execute(context("run-ds", RecordingTI()))
    binder.join()
    assert result == {"name": "from-conn", "namespace": "argo", "phase": "Bound", "ufsTotal": "10.00MiB",
                      "fileNum": "3", "pvc": "from-conn"}
    dataset = arranger.get("Dataset", "from-conn")
    assert dataset is not None
    (mount,) = dataset["spec"]["mounts"]
    assert mount["mountPoint"] == "oss://bucket/prefix/"
    assert mount["options"] == {"fs.oss.endpoint": "oss-cn-shanghai-internal.aliyuncs.com"}
    assert mount["encryptOptions"][0] == {"name": "fs.oss.accessKeyId", "valueFrom": {"secretKeyRef": {
        "name": "from-conn-oss", "key": "fs.oss.accessKeyId"}}}
    runtime = arranger.get("JindoRuntime", "from-conn")
    assert runtime is not None and runtime["spec"] == RUNTIME and runtime["metadata"]["labels"] == {"team": "data"}
    secret = arranger.core.read_namespaced_secret("from-conn-oss", "argo")
    keys = secret.string_data or {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
    assert keys == {"fs.oss.accessKeyId": "AKID-test", "fs.oss.accessKeySecret": "secret-test"}
    # the same settings again: adopted, nothing new
    assert make_dataset("ds_conn_again", name="from-conn", mount_point="oss://bucket/prefix/",
                        oss_conn_id="fluid_oss_test", labels={"team": "data"}).execute(
        context("run-ds", RecordingTI()))["pvc"] == "from-conn"


def test_dataset_with_another_spec_is_not_adopted(arranger: FluidArranger) -> None:
    arranger.core.create_namespaced_secret("argo", {"metadata": {"name": "keys"}, "stringData": {
        "fs.oss.accessKeyId": "a", "fs.oss.accessKeySecret": "b"}})
    make_dataset("ds_first", name="taken", mount_point="oss://bucket/one/", secret_name="keys",
                 endpoint="oss.example", wait_until_bound=False).execute(context("r", RecordingTI()))
    with pytest.raises(WorkflowSpecError, match=r"Dataset argo/taken exists with another spec \(spec.mounts\[0\]"):
        make_dataset("ds_second", name="taken", mount_point="oss://bucket/two/", secret_name="keys",
                     endpoint="oss.example").execute(context("r", RecordingTI()))
    with pytest.raises(WorkflowSpecError, match="already has a JindoRuntime"):
        make_dataset("ds_third", name="taken", mount_point="oss://bucket/one/", secret_name="keys",
                     endpoint="oss.example", runtime_kind="AlluxioRuntime").execute(context("r", RecordingTI()))
    with pytest.raises(WorkflowSpecError, match=r"has no key fs\.oss\.accessKeySecret"):
        arranger.core.create_namespaced_secret("argo", {"metadata": {"name": "half"}, "stringData": {
            "fs.oss.accessKeyId": "a"}})
        make_dataset("ds_half", name="half", mount_point="oss://bucket/one/", secret_name="half",
                     endpoint="oss.example").execute(context("r", RecordingTI()))
    assert arranger.get("Dataset", "half") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mount_point": "s3://bucket/x/"}, "mount_point='s3://bucket/x/' is not an OSS mount point"),
        ({"mount_point": "oss://Bad_Bucket/x/"}, "'Bad_Bucket' is not an OSS bucket name"),
        ({"mount_point": "oss://bucket/../x/"}, "must not hold '.' or '..' components"),
        ({"runtime_kind": "SparkRuntime"}, "runtime_kind='SparkRuntime' is not a Fluid runtime"),
        ({"placement": "Anywhere"}, "placement='Anywhere'"),
        ({"secret_name": "keys"}, "give exactly one of oss_conn_id= or secret_name="),
    ],
)
def test_dataset_bad_input_names_the_field(kwargs: dict[str, Any], message: str) -> None:
    args = {"name": "x", "mount_point": "oss://bucket/x/", "oss_conn_id": "fluid_oss_test", **kwargs}
    with pytest.raises(WorkflowSpecError, match=message.replace("(", r"\(")):
        make_dataset("ds_bad", **args)


def test_dataset_deferred_until_bound(arranger: FluidArranger) -> None:
    arranger.core.create_namespaced_secret("argo", {"metadata": {"name": "keys-deferred"}, "stringData": {
        "fs.oss.accessKeyId": "a", "fs.oss.accessKeySecret": "b"}})
    op = make_dataset("ds_deferred", name="later", mount_point="oss://bucket/later/", secret_name="keys-deferred",
                      endpoint="oss.example", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("r", RecordingTI()))
    trigger = deferred.value.trigger
    assert trigger.serialize()[0] == "airflow_argo_eci.triggers.fluid.FluidDatasetTrigger"
    binder = bind_later(arranger, "later")

    (event,) = asyncio.run(events(trigger))
    binder.join()
    assert event["status"] == "success"
    assert op.execute_complete(context("r", RecordingTI()), event)["pvc"] == "later"
    with pytest.raises(AirflowException, match="Dataset argo/later: gone"):
        op.execute_complete(context("r", RecordingTI()), {**event, "status": "failure", "message": "gone"})


def test_importing_the_fluid_operators_stays_light() -> None:
    """DAG parsing imports the operators and the sensor: no kubernetes or oss2 on that path."""
    import subprocess
    import sys

    probe = ("import sys, airflow_argo_eci.operators.fluid, airflow_argo_eci.sensors.fluid, "
             "airflow_argo_eci.triggers.fluid; "
             "print(sorted(m for m in ('kubernetes', 'kubernetes_asyncio', 'hera', 'oss2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_deferred_success_of_a_dataload_already_deleted_by_its_ttl(arranger: FluidArranger) -> None:
    op = make_load("ttl_gone", deferrable=True, ttl_seconds_after_finished=0)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("run-ttl", ti))
    name = ti.xcom[XCOM_NAME]

    async def scenario() -> list[dict[str, Any]]:
        waiting = asyncio.ensure_future(_events(deferred.value.trigger))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(arranger.complete, name, "warm")
        await asyncio.to_thread(arranger.delete, "DataLoad", name)  # Fluid, at once with ttlSecondsAfterFinished: 0
        return await waiting

    (event,) = asyncio.run(scenario())
    assert event["status"] == "success" and event["phase"] == "Complete"
    result = op.execute_complete(context("run-ttl", ti), event)
    assert result["phase"] == "Complete" and result["name"] == name
    assert result["cacheStates"]["cachedPercentage"] == "100.0%"


async def _events(trigger: Any) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]
