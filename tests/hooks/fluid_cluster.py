"""Playing Fluid's controller on an instrumented cluster (tests/triggers/cluster.py): the tests write
Datasets, PVCs and DataLoad status through the Kubernetes API (the arranger client, left out of
the request recording), so each phase change happens exactly when the test says."""

from __future__ import annotations

import threading
import time
from typing import Any

from airflow_argo_eci.fluid_conventions import API_VERSION, GROUP, KINDS, VERSION
from tests.triggers.cluster import NAMESPACE, InstrumentedCluster


class FluidArranger:
    """Fluid objects of ``cluster`` in namespace ``argo``, written as Fluid's controller would."""

    def __init__(self, cluster: InstrumentedCluster) -> None:
        from kubernetes import client

        self.cluster = cluster
        self.api = client.CustomObjectsApi(cluster.arranger)
        self.core = client.CoreV1Api(cluster.arranger)

    def create(
        self, kind: str, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None
    ) -> dict[str, Any]:
        body = {"apiVersion": API_VERSION, "kind": kind, "spec": spec,
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels or {}}}
        created: dict[str, Any] = self.api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, KINDS[kind], body)
        return created

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            got: dict[str, Any] = self.api.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, KINDS[kind], name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return got

    def items(self, kind: str, label_selector: str = "") -> list[dict[str, Any]]:
        listed = self.api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, KINDS[kind],
                                                        label_selector=label_selector)
        return list(listed["items"])

    def set_status(self, kind: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        for attempt in range(5):
            obj = self.api.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, KINDS[kind], name)
            obj["status"] = {**(obj.get("status") or {}), **status}
            try:
                written: dict[str, Any] = self.api.replace_namespaced_custom_object_status(
                    GROUP, VERSION, NAMESPACE, KINDS[kind], name, obj)
            except ApiException as exc:
                if exc.status != 409 or attempt == 4:
                    raise
                continue
            return written
        raise AssertionError("unreachable")

    def delete(self, kind: str, name: str) -> None:
        self.api.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, KINDS[kind], name)

    def bound_dataset(self, name: str, *, path: str = "/", cached: str = "0B", percentage: str = "0.0%") -> None:
        """A Bound Dataset over ``oss://bucket/<name>/`` seen at ``path``, with its PVC."""
        if self.get("Dataset", name) is None:
            self.create("Dataset", name, {"mounts": [{"mountPoint": f"oss://bucket/{name}/", "name": "data",
                                                       "path": path}]})
        self.set_status("Dataset", name, {
            "phase": "Bound", "ufsTotal": "10.00MiB", "fileNum": "3",
            "cacheStates": {"cached": cached, "cachedPercentage": percentage, "cacheCapacity": "1.00GiB"}})
        try:
            self.core.create_namespaced_persistent_volume_claim(NAMESPACE, {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
                "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "100Pi"}}}})
        except Exception as exc:  # already there
            if getattr(exc, "status", None) != 409:
                raise

    def complete(self, dataload: str, dataset: str) -> None:
        """Executing (half cached), then Complete (all cached) with Fluid's condition."""
        self.set_status("DataLoad", dataload, {"phase": "Executing"})
        self.set_status("Dataset", dataset, {"cacheStates": {"cached": "5.00MiB", "cachedPercentage": "50.0%"}})
        self.set_status("Dataset", dataset, {"cacheStates": {"cached": "10.00MiB", "cachedPercentage": "100.0%"}})
        self.set_status("DataLoad", dataload, {
            "phase": "Complete", "duration": "2s",
            "conditions": [{"type": "Complete", "status": "True", "reason": "DataLoadJobComplete",
                            "message": "The load job completed successfully"}]})

    def fail(self, dataload: str, reason: str = "DataLoadJobFailed", message: str = "bucket not found") -> None:
        self.set_status("DataLoad", dataload, {
            "phase": "Failed", "duration": "1s",
            "conditions": [{"type": "Failed", "status": "True", "reason": reason, "message": message}]})


class DataLoadPlayer:
    """A thread that finishes every new DataLoad: Complete, or Failed when its Dataset's name
    starts with ``broken`` (``DataLoadJobFailed: bucket not found``)."""

    def __init__(self, arranger: FluidArranger, *, hold: float = 0.3) -> None:
        self.arranger = arranger
        self.hold = hold
        self.handled: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DataLoadPlayer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for load in self.arranger.items("DataLoad"):
                uid = load["metadata"]["uid"]
                if uid in self.handled or (load.get("status") or {}).get("phase"):
                    continue
                self.handled.add(uid)
                name, dataset = load["metadata"]["name"], load["spec"]["dataset"]["name"]
                self.arranger.set_status("DataLoad", name, {"phase": "Pending"})
                time.sleep(self.hold)
                if dataset.startswith("broken"):
                    self.arranger.fail(name)
                else:
                    self.arranger.complete(name, dataset)
            self._stop.wait(0.05)
