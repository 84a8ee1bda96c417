"""Datasets on the local cluster through the kubernetes client: binding (ufsTotal, fileNum, the
PVC and PV, the runtime's pods and phases), NotBound without a runtime, the refusals that name
the field, and what goes with a deleted runtime or dataset."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.local.api.owner_gc import owned_by
from airflow_argo_eci.local.api.resources import (
    DATASETS,
    FLUID_RUNTIMES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
)
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.fluid.cache import DatasetCache
from airflow_argo_eci.local.paths import StatePaths
from tests.local.fluid.fluidkit import NS, FluidKit, lagging_controller

ECI_ANNOTATION = "k8s.aliyun.com/eci-use-specs"


def _pods(kit: FluidKit, release: str) -> dict[str, object]:
    return {p.metadata.name: p for p in kit.core.list_namespaced_pod(NS, label_selector=f"release={release}").items}


def test_dataset_binds_with_its_runtime(kit: FluidKit) -> None:
    name = kit.name("bind")
    kit.bucket(name, {"data/a.txt": b"hello", "data/sub/b.bin": b"x" * 3000, "other/c.txt": b"not mounted"})
    kit.dataset(name, f"oss://{name}/data/", secret=kit.key_secret(f"{name}-keys"))
    status = kit.phase(fluid.DATASETS, name, fluid.DATASET_NOT_BOUND)
    assert "no runtime" in status["conditions"][0]["message"]
    kit.runtime(name, quota="1Mi", replicas=3,
                podMetadata={"labels": {"alibabacloud.com/eci": "true"},
                             "annotations": {"k8s.aliyun.com/eci-image-cache": "true"}},
                worker={"podMetadata": {"annotations": {ECI_ANNOTATION: "ecs.g6.2xlarge"}}})
    status = kit.bound(name)
    assert status["ufsTotal"] == "2.93KiB"
    assert status["fileNum"] == "2"
    assert status["conditions"][0]["type"] == "Ready" and status["conditions"][0]["status"] == "True"
    assert status["runtimes"][0]["type"] == "jindo"
    assert status["cacheStates"]["cacheCapacity"] == "3.00MiB"
    assert status["cacheStates"]["cached"] == "0.00B"
    assert status["cacheStates"]["cachedPercentage"] == "0.0%"
    claim = kit.core.read_namespaced_persistent_volume_claim(name, NS)
    assert claim.status.phase == "Bound"
    assert claim.spec.volume_name == f"{NS}-{name}"
    assert claim.metadata.labels["fluid.io/dataset-id"] == f"{NS}-{name}"
    volume = kit.core.read_persistent_volume(f"{NS}-{name}")
    assert volume.status.phase == "Bound" and volume.spec.claim_ref.name == name
    runtime = kit.get(fluid.JINDO_RUNTIMES, name)["status"]
    assert (runtime["masterPhase"], runtime["workerPhase"], runtime["fusePhase"]) == ("Ready",) * 3
    assert runtime["workerNumberReady"] == 3
    pods = _pods(kit, name)
    workers = sorted(n for n in pods if "-worker-" in n)
    assert workers == [f"{name}-jindofs-worker-{i}" for i in range(3)]
    assert f"{name}-jindofs-master-0" in pods
    for worker in workers:
        pod = pods[worker]
        assert pod.status.phase == "Running"  # type: ignore[attr-defined]
        assert pod.spec.node_name == "virtual-kubelet"  # type: ignore[attr-defined]
        assert pod.metadata.labels["alibabacloud.com/eci"] == "true"  # type: ignore[attr-defined]
        assert pod.metadata.annotations[ECI_ANNOTATION] == "ecs.g6.2xlarge"  # type: ignore[attr-defined]
        assert pod.metadata.annotations["k8s.aliyun.com/eci-image-cache"] == "true"  # type: ignore[attr-defined]
    master = pods[f"{name}-jindofs-master-0"]
    assert ECI_ANNOTATION not in (master.metadata.annotations or {})  # type: ignore[attr-defined]


def test_runtime_pods_without_the_eci_label_run_on_the_local_node(kit: FluidKit) -> None:
    name = kit.name("alx")
    kit.bucket(name, {"f": b"1"})
    kit.dataset(name, f"oss://{name}/", path=None)
    kit.runtime(name, kind=fluid.ALLUXIO_RUNTIME_KIND, replicas=1)
    status = kit.bound(name)
    assert status["runtimes"][0]["type"] == "alluxio"
    pods = _pods(kit, name)
    assert sorted(pods) == [f"{name}-master-0", f"{name}-worker-0"]
    assert {p.spec.node_name for p in pods.values()} == {"local"}  # type: ignore[attr-defined]


@pytest.mark.parametrize("mount_point,secret,field", [
    ("s3://bucket/x/", None, "spec.mounts[0].mountPoint"),
    ("oss:///x/", None, "spec.mounts[0].mountPoint"),
    ("oss://{bucket}/", "no-such-secret", "spec.mounts[0].encryptOptions[0].valueFrom.secretKeyRef.name"),
])
def test_bad_dataset_spec_fails_naming_the_field(kit: FluidKit, mount_point: str, secret: str | None,
                                                 field: str) -> None:
    name = kit.name("bad")
    kit.dataset(name, mount_point.format(bucket=name), secret=secret)
    kit.runtime(name)
    status = kit.phase(fluid.DATASETS, name, fluid.DATASET_FAILED)
    assert status["conditions"][0]["message"].startswith(field), status
    assert status["conditions"][0]["reason"] == "InvalidSpec"


def test_secret_without_the_key_is_named(kit: FluidKit) -> None:
    name = kit.name("nokey")
    kit.bucket(name)
    kit.core.create_namespaced_secret(NS, {"metadata": {"name": name}, "stringData": {"other": "x"}})
    kit.dataset(name, f"oss://{name}/", secret=name)
    status = kit.phase(fluid.DATASETS, name, fluid.DATASET_FAILED)
    assert status["conditions"][0]["message"].startswith(
        "spec.mounts[0].encryptOptions[0].valueFrom.secretKeyRef.key: secret")


def test_unknown_runtime_type_and_bad_quota_are_refused(kit: FluidKit) -> None:
    name = kit.name("rt")
    kit.bucket(name)
    kit.dataset(name, f"oss://{name}/", runtimes=[{"name": name, "type": "cachefs"}])
    status = kit.phase(fluid.DATASETS, name, fluid.DATASET_FAILED)
    assert status["conditions"][0]["message"].startswith("spec.runtimes[0].type: 'cachefs' is not a runtime")
    other = kit.name("quota")
    kit.bucket(other)
    kit.dataset(other, f"oss://{other}/")
    kit.runtime(other, quota="lots")
    status = kit.phase(fluid.DATASETS, other, fluid.DATASET_FAILED)
    assert "spec.tieredstore.levels[0].quota" in status["conditions"][0]["message"]


def test_unknown_runtime_kind_is_not_served(kit: FluidKit) -> None:
    with pytest.raises(ApiException) as err:
        kit.objects.create_namespaced_custom_object(fluid.GROUP, fluid.VERSION, NS, "cachefsruntimes", {
            "apiVersion": fluid.API_VERSION, "kind": "CacheFSRuntime", "metadata": {"name": "x"}})
    assert err.value.status == 404


def test_missing_bucket_fails_the_dataset(kit: FluidKit) -> None:
    name = kit.name("nobucket")
    kit.dataset(name, f"oss://{name}/data/")
    kit.runtime(name)
    status = kit.phase(fluid.DATASETS, name, fluid.DATASET_FAILED)
    assert status["conditions"][0]["reason"] == "NoSuchBucket"
    assert f'bucket "{name}" does not exist' in status["conditions"][0]["message"]
    kit.bucket(name, {"data/late.txt": b"late"})  # created afterwards: the dataset binds
    # the bucket exists a moment before its object: the dataset may bind with 0 files first, and
    # its listing is refreshed (LISTING_TTL) as Fluid refreshes a bound dataset's ufsTotal/fileNum
    status = kit.wait(fluid.DATASETS, name, lambda s: s.get("phase") == fluid.DATASET_BOUND and s.get("fileNum") == "1")
    assert status["fileNum"] == "1" and status["ufsTotal"]


def test_deleting_the_runtime_unbinds_and_deleting_the_dataset_releases_the_volume(kit: FluidKit) -> None:
    name = kit.name("del")
    kit.bucket(name, {"f": b"1"})
    kit.dataset(name, f"oss://{name}/")
    kit.runtime(name, replicas=1)
    kit.bound(name)
    kit.delete(fluid.JINDO_RUNTIMES, name)
    kit.phase(fluid.DATASETS, name, fluid.DATASET_NOT_BOUND)
    _gone(kit, lambda: _pods(kit, name) or None)
    _gone(kit, lambda: kit.core.read_namespaced_persistent_volume_claim(name, NS))
    kit.runtime(name, replicas=1)
    kit.bound(name)
    kit.delete(fluid.DATASETS, name)
    _gone(kit, lambda: kit.core.read_namespaced_persistent_volume_claim(name, NS))
    _gone(kit, lambda: kit.core.read_persistent_volume(f"{NS}-{name}"))


def _gone(kit: FluidKit, read: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if read() is None:  # type: ignore[operator]
                return
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.1)
    raise AssertionError("still there")


def test_a_deleted_worker_pod_goes_and_comes_back(kit: FluidKit) -> None:
    name = kit.name("wrk")
    kit.bucket(name, {"f": b"1"})
    kit.dataset(name, f"oss://{name}/")
    kit.runtime(name, replicas=1)
    kit.bound(name)
    worker = f"{name}-jindofs-worker-0"
    uid = kit.core.read_namespaced_pod(worker, NS).metadata.uid
    kit.core.delete_namespaced_pod(worker, NS)  # graceful (30s): the pod has no process to wait for
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            pod = kit.core.read_namespaced_pod(worker, NS)
            if pod.metadata.uid != uid and pod.status.phase == "Running":
                return
        except ApiException as exc:
            assert exc.status == 404
        time.sleep(0.1)
    raise AssertionError("the worker pod was not replaced")


@pytest.mark.parametrize("replaced", ["dataset", "runtime"])
def test_a_late_deletion_leaves_a_same_named_successor_its_volume_pods_and_cache(
        kit: FluidKit, tmp_path: Path, replaced: str) -> None:
    """The node process learns of a deletion from its follower, possibly after a successor of the
    same name was made and bound: the successor keeps its PVC, PV, runtime pods and cache, and a
    successor dataset is never served its predecessor's cached files."""
    with lagging_controller(kit, tmp_path / "state") as (paths, api, node):
        _late_deletion(kit, paths, api, node, replaced)


def _late_deletion(kit: FluidKit, paths: StatePaths, api: Store, node: Store, replaced: str) -> None:
    name = kit.name(f"late-{replaced}")
    kit.bucket(name, {"old/a.txt": b"a", "new/b.txt": b"b"})
    runtimes = FLUID_RUNTIMES[fluid.JINDO_RUNTIME_KIND]
    cache = DatasetCache(paths, NS, name)

    def until(check: Callable[[], Any]) -> None:
        deadline = time.monotonic() + 30
        while not check():
            assert time.monotonic() < deadline, "condition not met"
            time.sleep(0.05)

    def dataset(prefix: str) -> str:
        return str(api.create(DATASETS, NS, {"metadata": {"name": name}, "spec": {"mounts": [
            {"mountPoint": f"oss://{name}/{prefix}/", "name": "demo"}]}})["metadata"]["uid"])

    def runtime() -> str:
        level = {"mediumtype": "MEM", "path": "/local-storage", "quota": "1Mi"}
        return str(api.create(runtimes, NS, {"metadata": {"name": name}, "spec": {
            "replicas": 1, "tieredstore": {"levels": [level]}}})["metadata"]["uid"])

    def claim() -> dict[str, Any]:
        return api.find(PERSISTENT_VOLUME_CLAIMS, NS, name) or {"metadata": {}}

    def bound(uid: str) -> bool:
        ds = api.find(DATASETS, NS, name) or {"metadata": {}}
        return ds["metadata"].get("uid") == uid and (ds.get("status") or {}).get("phase") == fluid.DATASET_BOUND

    def workers() -> list[str]:
        pods = api.list(PODS, NS, label_selector=f"release={name}")[0]
        return sorted(str(p["metadata"]["ownerReferences"][0]["uid"]) for p in pods)

    dataset_uid, runtime_uid = dataset("old"), runtime()
    until(lambda: bound(dataset_uid) and owned_by(claim(), dataset_uid) and cache.owner() == dataset_uid)
    kept = cache.cached_path("/a.txt")
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(b"a")  # a file of the predecessor's cache
    node.follow()
    if replaced == "dataset":
        api.delete(DATASETS, NS, name)
        dataset_uid = dataset("new")  # before the deletion reaches the node process
        until(lambda: bound(dataset_uid) and owned_by(claim(), dataset_uid) and cache.owner() == dataset_uid)
        assert not kept.exists()  # the predecessor's cached files are never the successor's
        kept = cache.cached_path("/b.txt")
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(b"b")
    else:
        api.delete(runtimes, NS, name)  # its pods are marked for deletion, which the node process will stop
        runtime_uid = runtime()
        # (a pass between the two saw no runtime and released the volume: the successor binds again)
        until(lambda: bound(dataset_uid) and owned_by(claim(), dataset_uid))
    pvc_uid = claim()["metadata"]["uid"]
    node.follow()  # the deletion reaches the node process now
    until(lambda: set(workers()) == {runtime_uid})
    time.sleep(0.5)  # a pass or more after the deletion was read
    assert claim()["metadata"].get("uid") == pvc_uid
    assert api.find(PERSISTENT_VOLUMES, None, f"{NS}-{name}") is not None
    assert kept.exists()
    assert set(workers()) == {runtime_uid}
    assert bound(dataset_uid)
