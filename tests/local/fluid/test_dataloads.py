"""DataLoads on the local cluster through the kubernetes client: every phase and cache state as a
load runs, the failures (missing dataset, missing bucket, path outside the dataset, quota exceeded,
refused spec fields), ttlSecondsAfterFinished and the Cron policy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.local.api.resources import DATALOADS, DATASETS, FLUID_RUNTIMES, PODS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.fluid.controller import FluidController
from airflow_argo_eci.local.fluid.pods import LABEL_DATALOAD
from airflow_argo_eci.local.paths import StatePaths
from tests.local.fluid.fluidkit import NS, FluidKit, lagging_controller

MIB = 1 << 20


def _bound_dataset(kit: FluidKit, prefix: str, objects: dict[str, bytes], **runtime: Any) -> str:
    name = kit.name(prefix)
    kit.bucket(name, objects)
    kit.dataset(name, f"oss://{name}/data/", secret=kit.key_secret(f"{name}-keys"))
    kit.runtime(name, **runtime)
    kit.bound(name)
    return name


class PhaseRecorder:
    """Every phase a DataLoad reports, in order, from a watch started before it exists."""

    def __init__(self, kit: FluidKit, name: str) -> None:
        self.phases: list[str] = []
        self._watch = watch.Watch()
        # The watch starts at the resourceVersion of a list taken now, so it sees every change made after
        # this returns however late its thread gets going (a bare watch opened late starts at the then
        # current phase, which is what CI once saw on a loaded machine).
        listing = kit.objects.list_namespaced_custom_object(fluid.GROUP, fluid.VERSION, NS, fluid.DATALOADS,
                                                            field_selector=f"metadata.name={name}")
        assert not listing["items"], f"{name} exists before its recorder"
        since = listing["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._run, args=(kit, name, since), daemon=True)
        self._thread.start()

    def _run(self, kit: FluidKit, name: str, since: str) -> None:
        stream = self._watch.stream(kit.objects.list_namespaced_custom_object, fluid.GROUP, fluid.VERSION, NS,
                                    fluid.DATALOADS, field_selector=f"metadata.name={name}",
                                    resource_version=since, timeout_seconds=60)
        try:
            for event in stream:
                phase = ((event["object"] or {}).get("status") or {}).get("phase")
                if phase and (not self.phases or self.phases[-1] != phase):
                    self.phases.append(phase)
        except Exception:  # the cluster stopped under the watch; the test has its phases
            pass

    def stop(self, last: str, executions: int = 1, timeout: float = 10.0) -> list[str]:
        """The phases once the watch has delivered ``executions`` runs and ends in ``last`` (the test saw
        that state by a GET, which the watch thread may still be behind), or as they are after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (self.phases and self.phases[-1] == last
                                                   and self.phases.count("Executing") >= executions):
            time.sleep(0.05)
        self._watch.stop()
        return list(self.phases)


def test_dataload_goes_pending_executing_complete_and_fills_the_cache(kit: FluidKit) -> None:
    objects = {"data/a.bin": b"a" * MIB, "data/dir/b.bin": b"b" * MIB, "data/dir/c.bin": b"c" * (2 * MIB)}
    name = kit.name("load")
    kit.bucket(name, objects)
    kit.dataset(name, f"oss://{name}/data/")
    first = f"{name}-dir"
    recorder = PhaseRecorder(kit, first)
    kit.dataload(first, name, loadMetadata=True, target=[{"path": "/dir", "replicas": 1}])
    assert kit.phase(fluid.DATALOADS, first, fluid.DATALOAD_PENDING)["duration"] == "Unfinished"
    kit.runtime(name, quota="16Mi", replicas=1)  # the dataset binds: the load runs
    status = kit.finished(first)
    assert recorder.stop("Complete") == ["Pending", "Executing", "Complete"]
    assert status["phase"] == "Complete"
    assert status["duration"].endswith("s")
    cond = status["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Complete", "True", "DataLoadJobComplete")
    assert "3.00MiB" in cond["message"]
    states = kit.wait(fluid.DATASETS, name, lambda s: s["cacheStates"]["cached"] == "3.00MiB")["cacheStates"]
    assert states["cachedPercentage"] == "75.0%"
    assert states["cacheCapacity"] == "16.00MiB"
    rest = f"{name}-all"
    kit.dataload(rest, name)  # no target: the whole dataset
    assert kit.finished(rest)["phase"] == "Complete"
    states = kit.wait(fluid.DATASETS, name, lambda s: s["cacheStates"]["cached"] == "4.00MiB")["cacheStates"]
    assert states["cachedPercentage"] == "100.0%"
    runtime = kit.get(fluid.JINDO_RUNTIMES, name)["status"]
    assert runtime["cacheStates"]["cached"] == "4.00MiB"


def test_missing_dataset_fails(kit: FluidKit) -> None:
    name = kit.name("nods")
    kit.dataload(name, "no-such-dataset")
    status = kit.finished(name)
    cond = status["conditions"][0]
    assert (status["phase"], cond["type"], cond["reason"]) == ("Failed", "Failed", "TargetDatasetNotFound")
    assert cond["message"] == 'spec.dataset.name: dataset "no-such-dataset" not found in namespace "argo"'


def test_missing_bucket_fails_the_load(kit: FluidKit) -> None:
    name = _bound_dataset(kit, "gone", {"data/a.txt": b"a"})
    bucket = kit.bucket(name, create=False)
    bucket.delete_object("data/a.txt")
    bucket.delete_bucket()
    kit.dataload(name, name)
    status = kit.finished(name)
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["reason"] == "DataLoadJobFailed"
    assert f'bucket "{name}" does not exist' in status["conditions"][0]["message"]


@pytest.mark.parametrize("path,expected", [
    ("/missing", "spec.target[0].path: '/missing' names no file of the dataset"),
    ("/../etc", "spec.target[0].path: '/../etc' is outside the dataset"),
    ("relative", "spec.target[0].path: 'relative' is outside the dataset"),
])
def test_target_paths_outside_the_dataset_fail(kit: FluidKit, path: str, expected: str) -> None:
    name = _bound_dataset(kit, "path", {"data/a.txt": b"a"})
    kit.dataload(name, name, target=[{"path": path}])
    status = kit.finished(name)
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["reason"] == "TargetDatasetPathNotFound"
    assert status["conditions"][0]["message"].startswith(expected), status


def test_load_bigger_than_the_quota_fails(kit: FluidKit) -> None:
    name = _bound_dataset(kit, "quota", {"data/big.bin": b"x" * (3 * MIB)}, quota="1Mi", replicas=2)
    kit.dataload(name, name)
    status = kit.finished(name)
    assert status["phase"] == "Failed"
    cond = status["conditions"][0]
    assert cond["reason"] == "DataLoadJobFailed"
    assert "needs 3.00MiB more cache" in cond["message"]
    assert "spec.tieredstore.levels[0].quota 1.00MiB x 2 replicas" in cond["message"]
    assert kit.cache_states(name)["cached"] == "0.00B"


def test_cache_replicas_count_against_the_quota(kit: FluidKit) -> None:
    name = _bound_dataset(kit, "repl", {"data/a.bin": b"x" * MIB}, quota="1536Ki", replicas=1)
    kit.dataload(name, name, target=[{"path": "/", "replicas": 2}])
    status = kit.finished(name)
    assert status["phase"] == "Failed" and "needs 2.00MiB more cache" in status["conditions"][0]["message"]


@pytest.mark.parametrize("spec,expected", [
    ({"runAfter": {"kind": "DataLoad", "name": "x"}}, "spec.runAfter is not supported"),
    ({"policy": "OnEvent"}, "spec.policy: OnEvent is not supported"),
    ({"policy": "Sometimes"}, "spec.policy: 'Sometimes' is not one of Once, Cron, OnEvent"),
    ({"policy": "Cron", "schedule": "every day"}, "spec.schedule: expected exactly 5 fields"),
    ({"ttlSecondsAfterFinished": -1}, "spec.ttlSecondsAfterFinished: -1 must be a whole number >= 0"),
])
def test_refused_spec_fields_fail_naming_them(kit: FluidKit, spec: dict[str, Any], expected: str) -> None:
    name = _bound_dataset(kit, "spec", {"data/a.txt": b"a"})
    kit.dataload(name, name, **spec)
    status = kit.finished(name)
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["message"].startswith(expected), status


def _loader_pods(kit: FluidKit, dataload: str) -> list[Any]:
    return list(kit.core.list_namespaced_pod(NS, label_selector=f"fluid.io/dataload={dataload}").items)


def test_the_loader_pod_carries_the_pod_metadata_and_ends_with_the_load(kit: FluidKit) -> None:
    name = _bound_dataset(kit, "ldr", {"data/a.txt": b"a"})
    kit.dataload(name, name, podMetadata={"labels": {"alibabacloud.com/eci": "true"},
                                          "annotations": {"k8s.aliyun.com/eci-use-specs": "8-16Gi"}})
    assert kit.finished(name)["phase"] == "Complete"
    deadline = time.monotonic() + 10
    while True:
        pods = _loader_pods(kit, name)
        if pods and pods[0].status.phase == "Succeeded":
            break
        assert time.monotonic() < deadline, pods
        time.sleep(0.1)
    (pod,) = pods
    assert pod.metadata.name.startswith(f"{name}-loader-job-")
    assert pod.metadata.labels["alibabacloud.com/eci"] == "true"
    assert pod.metadata.annotations["k8s.aliyun.com/eci-use-specs"] == "8-16Gi"
    assert pod.spec.node_name == "virtual-kubelet"
    assert pod.metadata.owner_references[0].kind == "DataLoad"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0


def test_ttl_deletes_the_dataload_after_it_finished(kit: FluidKit) -> None:
    name = _bound_dataset(kit, "ttl", {"data/a.txt": b"a"})
    kit.dataload(name, name, ttlSecondsAfterFinished=1)
    assert kit.finished(name)["phase"] == "Complete"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            kit.get(fluid.DATALOADS, name)
        except ApiException as exc:
            assert exc.status == 404
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the DataLoad outlived its ttlSecondsAfterFinished")
    while _loader_pods(kit, name):  # its loader pod goes with it
        assert time.monotonic() < deadline + 5
        time.sleep(0.1)


def test_cron_policy_runs_again_on_schedule(kit: FluidKit) -> None:
    name = _bound_dataset(kit, "cron", {"data/a.txt": b"a"})
    recorder = PhaseRecorder(kit, name)
    kit.dataload(name, name, policy="Cron", schedule="@every 1s")
    first = kit.wait(fluid.DATALOADS, name, lambda s: s.get("phase") == "Complete" and bool(s.get("lastScheduleTime")))
    later = kit.wait(fluid.DATALOADS, name, lambda s: s.get("phase") == "Complete"
                     and s.get("lastScheduleTime") != first["lastScheduleTime"], timeout=15)
    assert later["lastSuccessfulTime"] >= first["lastSuccessfulTime"]
    phases = recorder.stop("Complete", executions=2)
    assert phases[:3] == ["Pending", "Executing", "Complete"]
    assert phases.count("Executing") >= 2, phases


def test_a_late_dataload_deletion_leaves_a_same_named_successors_loader_alone(kit: FluidKit, tmp_path: Path) -> None:
    """The node process learns of a DataLoad's deletion from its follower, possibly after a
    successor of the same name started loading: only what the deleted one's uid owns goes."""
    with lagging_controller(kit, tmp_path / "state") as (_paths, api, node):
        _late_deletion(kit, api, node)


def _late_deletion(kit: FluidKit, api: Store, node: Store) -> None:
    name = kit.name("late")
    kit.bucket(name, {"data/a.txt": b"a"})

    def loaders() -> list[dict[str, Any]]:
        return api.list(PODS, NS, label_selector=f"{LABEL_DATALOAD}={name}")[0]

    def until(check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not check():
            assert time.monotonic() < deadline, "condition not met"
            time.sleep(0.05)

    def dataload() -> dict[str, Any]:
        return api.create(DATALOADS, NS, {"metadata": {"name": name}, "spec": {"dataset": {"name": name}}})

    api.create(DATASETS, NS, {"metadata": {"name": name}, "spec": {"mounts": [
        {"mountPoint": f"oss://{name}/data/", "name": "demo"}]}})
    level = {"mediumtype": "MEM", "path": "/local-storage", "quota": "1Mi"}
    api.create(FLUID_RUNTIMES[fluid.JINDO_RUNTIME_KIND], NS,
               {"metadata": {"name": name}, "spec": {"replicas": 1, "tieredstore": {"levels": [level]}}})
    until(lambda: (api.get(DATASETS, NS, name).get("status") or {}).get("phase") == fluid.DATASET_BOUND)
    old = dataload()
    until(lambda: (api.get(DATALOADS, NS, name).get("status") or {}).get("phase") == "Complete")
    until(lambda: [p["status"]["phase"] for p in loaders()] == ["Succeeded"])
    node.follow()
    api.delete(DATALOADS, NS, name)  # its finished loader pod goes with it at once (the API's GC)
    until(lambda: not loaders())
    successor = dataload()
    until(lambda: len(loaders()) == 1)
    node.follow()  # the old DataLoad's deletion reaches the controller now
    until(lambda: (api.get(DATALOADS, NS, name).get("status") or {}).get("phase") == "Complete")
    time.sleep(0.5)  # a pass or more after the deletion was read
    (pod,) = loaders()
    assert pod["metadata"]["ownerReferences"][0]["uid"] == successor["metadata"]["uid"] != old["metadata"]["uid"]


def test_a_cron_load_already_due_when_first_seen_still_reports_pending_first(kit: FluidKit, tmp_path: Path) -> None:
    """Fluid sets every new DataLoad Pending before it runs it: a pass that first sees a cron load
    after its first run fell due (a loaded machine) must not jump straight to Executing."""
    paths = StatePaths(tmp_path / "state")
    paths.root.mkdir(parents=True)
    assert kit.cluster.oss is not None
    store = Store(paths.db)
    controller = FluidController(store, paths, kit.cluster.oss.endpoint, kit.cluster.paths.tls_cert, kit.keys)
    try:
        name = kit.name("due")
        kit.bucket(name, {"data/a.txt": b"a"})
        store.create(DATASETS, NS, {"metadata": {"name": name}, "spec": {"mounts": [
            {"mountPoint": f"oss://{name}/data/", "name": "demo"}]}})
        level = {"mediumtype": "MEM", "path": "/local-storage", "quota": "1Mi"}
        store.create(FLUID_RUNTIMES[fluid.JINDO_RUNTIME_KIND], NS,
                     {"metadata": {"name": name}, "spec": {"replicas": 1, "tieredstore": {"levels": [level]}}})
        controller.reconcile_all()
        assert store.get(DATASETS, NS, name)["status"]["phase"] == fluid.DATASET_BOUND
        store.create(DATALOADS, NS, {"metadata": {"name": name}, "spec": {
            "dataset": {"name": name}, "policy": "Cron", "schedule": "@every 1s"}})
        time.sleep(1.2)  # its first run is due before any pass has seen it

        def phase() -> str:
            return str((store.get(DATALOADS, NS, name).get("status") or {}).get("phase"))

        controller.reconcile_all()
        assert phase() == fluid.DATALOAD_PENDING
        controller.reconcile_all()
        assert phase() == fluid.DATALOAD_EXECUTING
    finally:
        controller.stop()
        store.close()
