"""The seed's Fluid scenario end to end: warm a dataset's cache, then fan out on ECI pods that read it.

1. ``upload_test_file`` writes a deterministic test file (``size_mib`` MiB, a DAG param) to the
   ``bucket`` param's bucket through the ``oss`` connection and records its md5 (the seed uploads a
   10 GiB ``test.dat``);
2. ``dataset`` creates a Fluid Dataset over that OSS prefix with a JindoRuntime (the seed's tiered
   store, scaled to a laptop), and ``preload`` warms its cache with a DataLoad (deferrable);
3. ``md5_fanout`` runs the seed's ``parallelism-fluid`` workflow: ``steps`` pods (a DAG param,
   default 100, parallelism 100 as in the seed) on ECI, each mounting the Dataset's PVC at
   ``/data`` (``EciProfile(datasets=[DatasetMount(...)])``) and printing ``md5sum test.dat``;
4. ``check_digests`` checks that every step printed the same digest and that it is the uploaded
   file's, reading the steps' output from the operator's XCom;
5. ``clean_up`` (a teardown: it runs when something upstream failed too) deletes the DataLoad, the
   runtime, the Dataset, the Secret the Dataset operator made from the connection, and the OSS objects.

The Dataset has a fixed name (it is the PVC the workflow mounts), so runs do not overlap
(``max_active_runs=1``). Every task has one quick retry, as in the flagship: a task that resumed
from deferral can be marked ``failed`` although it succeeded (apache/airflow#72716, #71580); the
retry reattaches to the DataLoad or workflow the first try created, and the Dataset is adopted.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, get_current_context, task

from airflow_argo_eci.eci import EciProfile, RetryStrategy
from airflow_argo_eci.eci_datasets import DatasetMount
from airflow_argo_eci.operators.argo import ArgoWorkflowOperator
from airflow_argo_eci.operators.fluid import FluidDataLoadOperator, FluidDatasetOperator

#: the Dataset, its JindoRuntime and its PVC (the seed's is ``serverless-data``)
DATASET = "fluid-md5"
#: where the test file goes in the ``bucket`` param's bucket (the Dataset mounts this prefix)
PREFIX = "fluid-md5/"
TEST_FILE = "test.dat"
MiB = 1024 * 1024

#: the seed's JindoRuntime scaled to a laptop: 2 cache workers (the seed: 10) with a 256 MiB memory
#: tier each (the seed: 12 GiB), the seed's watermarks and ECI pod metadata
RUNTIME = {
    "replicas": 2,
    "podMetadata": {
        "labels": {"alibabacloud.com/eci": "true"},
        "annotations": {"k8s.aliyun.com/eci-use-specs": "ecs.g6.2xlarge", "k8s.aliyun.com/eci-image-cache": "true"},
    },
    "worker": {"podMetadata": {"annotations": {"k8s.aliyun.com/eci-use-specs": "ecs.g6.2xlarge"}}},
    "tieredstore": {"levels": [{"mediumtype": "MEM", "volumeType": "emptyDir", "path": "/local-storage",
                                "quota": "256Mi", "high": "0.99", "low": "0.99"}]},
}

#: the flagship's ECI settings with the seed's instance spec and parallelism, plus the Dataset's
#: PVC at /data in the md5sum template (and Fluid's sidecar-target label on the pods)
ECI = EciProfile(
    use_specs=("8-16Gi",),
    schedule_strategy="VSwitchRandom",
    fail_strategy="fail-fast",
    retry_strategy=RetryStrategy(limit=3, retry_policy="Always"),
    parallelism=100,
    datasets=(DatasetMount(DATASET, "/data", ("md5sum",), volume_name="data-vol"),),
)


def file_chunk(index: int) -> bytes:
    """The ``index``-th MiB of the test file: a SHA-256 of its index, repeated (deterministic, not zeros)."""
    return hashlib.sha256(f"fluid-md5 {index}".encode()).digest() * (MiB // 32)


with DAG(
    dag_id="argo_eci_fluid_md5",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "bucket": Param("argo-artifacts", type="string", minLength=3, maxLength=63,
                        description="the OSS bucket (of the oss connection's account) to upload to and mount; "
                                    "the local cluster's artifact bucket by default"),
        "size_mib": Param(4, type="integer", minimum=1, maximum=256, description="size of the test file in MiB"),
        "steps": Param(100, type="integer", minimum=1, maximum=1000, description="md5sum steps of the fan-out"),
    },
    default_args={"retries": 1, "retry_delay": timedelta(seconds=5)},
    tags=["argo", "eci", "fluid", "example"],
) as dag:

    @task
    def upload_test_file() -> dict[str, Any]:
        """Write ``size_mib`` MiB of test data to ``<PREFIX>test.dat``; its location, size and md5."""
        from airflow_argo_eci.hooks.oss import OSSArtifactHook

        params = get_current_context()["params"]
        size_mib, bucket = int(params["size_mib"]), str(params["bucket"])
        hook = OSSArtifactHook(bucket_name=bucket)
        digest = hashlib.md5()  # noqa: S324 - a checksum, as md5sum prints it
        key = f"{PREFIX}{TEST_FILE}"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / TEST_FILE
                with path.open("wb") as out:
                    for index in range(size_mib):
                        chunk = file_chunk(index)
                        digest.update(chunk)
                        out.write(chunk)
                hook.upload_file(path, key)
        finally:
            hook.close()
        return {"bucket": bucket, "key": key, "size": size_mib * MiB, "md5": digest.hexdigest(),
                "mount_point": f"oss://{bucket}/{PREFIX}"}

    uploaded = upload_test_file()

    dataset = FluidDatasetOperator(
        task_id="dataset",
        name=DATASET,
        mount_point="oss://{{ params.bucket }}/" + PREFIX,
        oss_conn_id="oss_default",
        runtime_kind="JindoRuntime",
        runtime_spec=RUNTIME,
        labels={"app": "fluid-md5"},
        poll_interval=1,
        timeout=300,
    )
    preload = FluidDataLoadOperator(
        task_id="preload",
        dataset=DATASET,
        load_metadata=True,  # as the seed's DataLoad
        labels={"app": "fluid-md5"},
        deferrable=True,
        poll_interval=1,
        timeout=600,
    )
    fanout = ArgoWorkflowOperator(
        task_id="md5_fanout",
        workflow="workflows/parallelism-fluid.yaml",
        parameters={"steps": "{{ params.steps }}"},
        labels={"app": "fluid-md5"},
        eci=ECI,
        deferrable=True,
        poll_interval=1,
        timeout=1800,
        get_logs=False,  # a hundred identical lines; the digests come back in the XCom
    )

    @task
    def check_digests(result: dict[str, Any], upload: dict[str, Any]) -> dict[str, Any]:
        """Every step printed the md5 of the uploaded file (the entrypoint's ``digests`` output)."""
        steps = int(get_current_context()["params"]["steps"])
        printed = json.loads(result["node_outputs"][result["name"]]["digests"])
        digests = [str(line).split()[0] for line in printed]
        if len(digests) != steps:
            raise ValueError(f"workflow {result['name']}: {len(digests)} steps printed a digest, expected {steps}")
        distinct = sorted(set(digests))
        if distinct != [upload["md5"]]:
            raise ValueError(f"workflow {result['name']}: the steps printed {distinct}, the uploaded "
                             f"{upload['key']} has md5 {upload['md5']}")
        line = f"{steps} steps of {result['name']} read {upload['size']} bytes each, md5 {upload['md5']}"
        print(line)
        return {"steps": steps, "md5": upload["md5"], "workflow": result["name"]}

    @task
    def clean_up() -> dict[str, Any]:
        """Delete the DataLoad, the runtime, the Dataset, its key Secret and the OSS objects (each
        when it is there), waiting until the Fluid objects are gone."""
        from airflow_argo_eci.errors import NotFoundError
        from airflow_argo_eci.hooks.fluid import FluidHook
        from airflow_argo_eci.hooks.oss import OSSArtifactHook
        from airflow_argo_eci.operators.fluid import XCOM_NAME, XCOM_UID

        ti = get_current_context()["ti"]
        hook = FluidHook()
        deleted: dict[str, Any] = {}

        def delete(kind: str, name: str, uid: str = "") -> None:
            try:
                hook.delete_object(kind, name, uid=uid)
            except NotFoundError:
                return
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    hook.get_object(kind, name)
                except NotFoundError:
                    deleted[kind] = name
                    return
                time.sleep(0.5)
            raise TimeoutError(f"{kind} {name} was still there 60 s after its deletion")

        try:
            dataload = ti.xcom_pull(task_ids="preload", key=XCOM_NAME)
            if dataload:
                delete("DataLoad", str(dataload), str(ti.xcom_pull(task_ids="preload", key=XCOM_UID) or ""))
            delete("JindoRuntime", DATASET)
            delete("Dataset", DATASET)
            try:
                hook.delete_secret(f"{DATASET}-oss")
                deleted["Secret"] = f"{DATASET}-oss"
            except NotFoundError:
                pass
        finally:
            hook.close()
        oss = OSSArtifactHook(bucket_name=str(get_current_context()["params"]["bucket"]))
        try:
            deleted["objects"] = oss.delete_prefix(PREFIX)
        finally:
            oss.close()
        return deleted

    checked = check_digests(fanout.output, uploaded)
    uploaded >> dataset >> preload >> fanout
    # a teardown: it runs once the work is done whatever its outcome (when a setup succeeded); left
    # with on_failure_fail_dagrun=False, so the run's state is the work's (True would make the
    # teardown the only leaf, and a run whose fan-out failed would end "success")
    checked >> clean_up().as_teardown(setups=[uploaded, dataset])
