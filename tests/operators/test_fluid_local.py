"""The Fluid operators, sensor and trigger end to end on the local cluster's Fluid controller: a
Dataset over the local OSS store becomes Bound, a DataLoad really copies it into the cache (sync
and deferred), a quota too small fails with Fluid's reason, a retry reattaches to the one DataLoad,
a kill while deferred deletes it, and a workflow mounting the Dataset through EciProfile reads it."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import pendulum
import pytest
from airflow.exceptions import AirflowException
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from airflow_argo_eci.eci import EciProfile
from airflow_argo_eci.eci_datasets import DatasetMount
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.hooks.fluid import FluidHook
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.operators.argo import ArgoWorkflowOperator
from airflow_argo_eci.operators.fluid import XCOM_NAME, FluidDataLoadOperator, FluidDatasetOperator
from airflow_argo_eci.sensors.fluid import FluidDatasetSensor
from airflow_argo_eci.workflows import reattach_selector, ti_labels
from tests.conftest import oss_connection
from tests.operators.test_argo import RecordingTI, context
from tests.triggers.running import events

pytestmark = pytest.mark.usefixtures("argo_default")

FILES = {"data/a.bin": bytes(range(256)) * 256, "data/b.bin": b"fluid " * 4096}


def runtime(quota: str = "64Mi") -> dict[str, Any]:
    return {"replicas": 1, "tieredstore": {"levels": [
        {"mediumtype": "MEM", "path": "/dev/shm", "quota": quota, "high": "0.99", "low": "0.99"}]}}


@pytest.fixture
def oss_conn(local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_FLUID_LOCAL_OSS", oss_connection(local_cluster))
    return "fluid_local_oss"


@pytest.fixture
def bucket(local_cluster: LocalCluster) -> Iterator[str]:
    import oss2

    assert local_cluster.oss is not None
    name = f"fluid-{uuid.uuid4().hex[:8]}"
    session = local_cluster.oss.session()
    keys = next(iter(local_cluster.oss_credentials().items()))
    store = oss2.Bucket(oss2.Auth(*keys), local_cluster.oss.endpoint, name, session=session)
    store.create_bucket()
    for key, body in FILES.items():
        store.put_object(key, body)
    yield name
    session.session.close()


def make(cls: type, task_id: str, **kwargs: Any) -> Any:
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return cls(task_id=task_id, poll_interval=0.2, **kwargs)


def dataset(name: str, bucket: str, oss_conn: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("runtime_spec", runtime())
    op = make(FluidDatasetOperator, f"ds_{name.replace('-', '_')}", name=name, mount_point=f"oss://{bucket}/data/",
              oss_conn_id=oss_conn, timeout=60, **kwargs)
    result: dict[str, Any] = op.execute(context("run-local", RecordingTI()))
    return result


def test_dataset_binds_and_a_dataload_warms_it(bucket: str, oss_conn: str) -> None:
    name = f"warm-{bucket[-8:]}"
    bound = dataset(name, bucket, oss_conn)
    assert bound["phase"] == "Bound" and bound["pvc"] == name and bound["fileNum"] == "2"
    assert bound["ufsTotal"].endswith("KiB")
    op = make(FluidDataLoadOperator, "load_sync", dataset=name, load_metadata=True, target=["/a.bin"], timeout=60)
    result = op.execute(context("run-local-sync", RecordingTI()))
    assert result["phase"] == "Complete" and result["duration"].endswith("s")
    assert result["cacheStates"]["cached"] == "64.00KiB"
    full = make(FluidDataLoadOperator, "load_all", dataset=name, deferrable=True, timeout=60)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        full.execute(context("run-local-deferred", ti))

    (event,) = asyncio.run(events(deferred.value.trigger))
    assert event["status"] == "success" and event["phase"] == "Complete"
    done = full.execute_complete(context("run-local-deferred", ti), event)
    assert done["cacheStates"]["cachedPercentage"] == "100.0%"
    with DAG("dag_cached_enough", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        sensor = FluidDatasetSensor(task_id="cached_enough", dataset=name, min_cached_percentage=100)
    assert sensor.poke(context("r", RecordingTI())).is_done


def test_quota_exceeded_fails_with_fluids_reason(bucket: str, oss_conn: str) -> None:
    name = f"small-{bucket[-8:]}"
    dataset(name, bucket, oss_conn, runtime_spec=runtime("1Ki"))
    op = make(FluidDataLoadOperator, "load_quota", dataset=name, timeout=60)
    with pytest.raises(AirflowException) as info:
        op.execute(context("run-local-quota", RecordingTI()))
    assert "Failed: DataLoadJobFailed" in str(info.value) and "quota" in str(info.value)


def test_missing_bucket_and_bad_target_are_clear_errors(oss_conn: str, bucket: str) -> None:
    with pytest.raises(WorkflowSpecError, match="NoSuchBucket"):
        dataset(f"nobucket-{bucket[-8:]}", f"{bucket}-missing", oss_conn)
    name = f"target-{bucket[-8:]}"
    dataset(name, bucket, oss_conn)
    op = make(FluidDataLoadOperator, "load_outside", dataset=name, target=["/../etc"])
    with pytest.raises(WorkflowSpecError, match="not a normalised path"):
        op.execute(context("run-local-outside", RecordingTI()))


def test_retry_reattaches_to_the_one_dataload(bucket: str, oss_conn: str) -> None:
    name = f"retry-{bucket[-8:]}"
    dataset(name, bucket, oss_conn)
    first = make(FluidDataLoadOperator, "load_retry", dataset=name, timeout=60)
    created = first.execute(context("run-local-retry", RecordingTI(try_number=1)))
    again = make(FluidDataLoadOperator, "load_retry", dataset=name, timeout=60)
    reattached = again.execute(context("run-local-retry", RecordingTI(try_number=2)))
    assert reattached["uid"] == created["uid"] and reattached["phase"] == "Complete"
    hook = FluidHook()
    selector = reattach_selector(ti_labels("dag_load_retry", "load_retry", "run-local-retry", -1, 1))
    assert [obj["metadata"]["uid"] for obj in hook.list_objects("DataLoad", "argo", selector)] == [created["uid"]]


def test_kill_while_deferred_deletes_the_pending_dataload(local_cluster: LocalCluster, bucket: str) -> None:
    hook = FluidHook()
    name = f"unbound-{bucket[-8:]}"
    hook.create_object("Dataset", {"metadata": {"name": name}, "spec": {"mounts": [
        {"mountPoint": f"oss://{bucket}/data/", "name": "data", "path": "/"}]}}, "argo")  # no runtime: NotBound
    op = make(FluidDataLoadOperator, "load_kill", dataset=name, deferrable=True)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("run-local-kill", ti))
    assert hook.get_dataload(ti.xcom[XCOM_NAME], "argo")
    asyncio.run(deferred.value.trigger.on_kill())
    assert hook.list_objects("DataLoad", "argo", field_selector=f"metadata.name={ti.xcom[XCOM_NAME]}") == []


def test_a_workflow_mounting_the_dataset_reads_its_files(bucket: str, oss_conn: str) -> None:
    name = f"mount-{bucket[-8:]}"
    dataset(name, bucket, oss_conn)
    make(FluidDataLoadOperator, "load_mount", dataset=name, timeout=60).execute(context("run-mount", RecordingTI()))
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "fluid-md5-"},
        "spec": {"entrypoint": "md5", "templates": [{"name": "md5", "container": {
            "image": "alpine:3.20", "command": ["sh", "-c", "md5sum /data/a.bin | cut -d' ' -f1 > /tmp/digest"]},
            "outputs": {"parameters": [{"name": "digest", "valueFrom": {"path": "/tmp/digest"}}]}}]},
    }
    profile = EciProfile(datasets=[DatasetMount(name, "/data", ("md5",), volume_name="data-vol")])
    op = make(ArgoWorkflowOperator, "md5_mount", workflow=workflow, eci=profile, timeout=120)
    result = op.execute(context("run-mount", RecordingTI()))
    assert result["phase"] == "Succeeded"
    digests = [outputs["digest"].strip() for outputs in result["node_outputs"].values()]
    assert digests == [hashlib.md5(FILES["data/a.bin"]).hexdigest()]
