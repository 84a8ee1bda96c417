"""The workflow controller of the local cluster: reconciles Workflows into Pods run by the runtime.

A daemon thread waits for store changes (or a periodic tick) and runs one :class:`Operation` per
incomplete Workflow; each pass ends with at most one store update of that workflow. Pods are
created in the store and handed to the :class:`~airflow_argo_eci.local.runtime.runner.Runtime`;
when the runtime reports a :class:`PodResult`, the Pod object's status (phase, container status,
and an outputs annotation with ``result``, exit code and output-file contents) is updated, which
wakes the controller again.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import PODS, WORKFLOWS, ResourceType
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.argo.artifacts import (
    ArtifactError,
    OSSClients,
    delete_artifact,
    gc_strategy,
    location_of,
)
from airflow_argo_eci.local.argo.nodes import now_rfc3339
from airflow_argo_eci.local.argo.operator import ANNOTATION_OUTPUTS, LABEL_COMPLETED, LABEL_WORKFLOW, Operation
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.runtime import PodRequest, PodResult

log = logging.getLogger(__name__)


#: why a pod that was running when the previous server stopped has no result
POD_LOST = "pod lost: the local cluster stopped while it was running"

#: uploads a finished pod's output artifacts: (node-status entries, "" or why saving failed)
ArtifactSaver = Callable[[PodResult], tuple[list[dict[str, Any]], str]]


class RuntimeLike(Protocol):
    """What the controller needs from the runtime."""

    def submit(self, req: PodRequest, on_done: Any) -> None: ...

    def kill(self, namespace: str, pod_name: str, message: str) -> bool: ...

    def is_running(self, namespace: str, pod_name: str) -> bool: ...


class Controller:
    """Reconciles Argo Workflows stored in ``store`` by running their pods on ``runtime``."""

    def __init__(self, store: Store, runtime: RuntimeLike, paths: StatePaths, *, tick_seconds: float = 1.0) -> None:
        self.store = store
        self.runtime = runtime
        self.paths = paths
        self.tick_seconds = tick_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._killed: set[tuple[str, str]] = set()
        self._submitted: set[tuple[str, str]] = set()
        self._lock = threading.RLock()
        self._wake_at: dict[tuple[str, str], float] = {}
        self._listening = False
        self._savers: dict[tuple[str, str], ArtifactSaver] = {}
        self._gc_threads: list[threading.Thread] = []
        #: the controller's default artifact repository (``{"oss": {...}}``, Argo's controller
        #: ConfigMap ``artifactRepository``) for namespaces without an ``artifact-repositories``
        #: ConfigMap, and the keys used for locations that name no Secrets
        self.artifact_repository: dict[str, Any] | None = None
        self.artifact_credentials: tuple[str, str] | None = None
        self.oss_clients = OSSClients(paths.tls_cert)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Recover pods lost with a previous server, then start the reconcile thread."""
        if not self._listening:
            self.store.add_listener(self._on_change)
            self._listening = True
        self._stop.clear()
        self.recover_lost_pods()
        self._thread = threading.Thread(target=self._loop, name="argo-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the reconcile thread (running pods are left to the runtime's shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _on_change(self, event: str, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Garbage collection, as the Kubernetes GC and kubelet do it: a deleted Workflow takes its
        Pods with it; a deleted Pod's process is killed and its scratch space and logs removed, and
        its name may be used again (``argo retry`` recreates failed pods under the same names)."""
        if event != "DELETED":
            return
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace", "default"), meta.get("name", "")
        if rt is WORKFLOWS:
            self._collect_on_deletion(namespace, obj)
            pods, _, _ = self.store.list(PODS, namespace, label_selector=f"{LABEL_WORKFLOW}={name}")
            for pod in pods:
                try:
                    self.store.delete(PODS, namespace, pod["metadata"]["name"])
                except ApiError as exc:
                    if exc.code != 404:
                        raise
        elif rt is PODS:
            key = (namespace, name)
            if self.runtime.is_running(namespace, name):
                self.runtime.kill(namespace, name, "pod deleted")
            with self._lock:
                self._submitted.discard(key)
                self._killed.discard(key)
            shutil.rmtree(self.paths.pod_dir(namespace, name), ignore_errors=True)
            shutil.rmtree(self.paths.log_file(namespace, name).parent, ignore_errors=True)

    # ------------------------------------------------------------------ artifact GC

    def collect_artifact_garbage(self, namespace: str, status: dict[str, Any], workflow_strategy: str,
                                 strategy: str) -> tuple[list[tuple[str, int]], list[str], bool]:
        """Delete the objects of every pod output artifact in ``status`` whose effective
        ``artifactGC`` strategy is ``strategy``. Returns (deleted (node id, index) pairs, errors,
        whether any artifact had that strategy). Never raises for a store or OSS failure."""
        deleted: list[tuple[str, int]] = []
        errors: list[str] = []
        found = False
        done: set[tuple[str, str, str]] = set()
        for node_id, node in (status.get("nodes") or {}).items():
            if node.get("type") != "Pod":
                continue
            for index, art in enumerate((node.get("outputs") or {}).get("artifacts") or []):
                if not isinstance(art, dict) or gc_strategy(art, workflow_strategy) != strategy:
                    continue
                found = True
                oss = art.get("oss")
                if art.get("deleted") or not isinstance(oss, dict):
                    continue
                place = (str(oss.get("endpoint")), str(oss.get("bucket")), str(oss.get("key")))
                try:
                    if place not in done:
                        loc = location_of(self.store, namespace, oss, place[2], self.artifact_credentials)
                        delete_artifact(self.oss_clients, loc)
                        done.add(place)
                    deleted.append((node_id, index))
                except Exception as exc:  # any failure becomes a condition; the controller goes on
                    errors.append(f"failed to delete artifact {art.get('name')} "
                                  f"(oss://{place[1]}/{place[2]}): {exc}")
        return deleted, errors, found

    def _collect_on_deletion(self, namespace: str, wf: dict[str, Any]) -> None:
        """``artifactGC`` OnWorkflowDeletion, in a background thread (the workflow is gone, so
        failures are only logged)."""
        status = wf.get("status") or {}
        spec = wf.get("spec") or {}
        gc = spec.get("artifactGC") or (status.get("storedWorkflowTemplateSpec") or {}).get("artifactGC") or {}
        workflow_strategy = str(gc.get("strategy") or "")

        def work() -> None:
            _, errors, _ = self.collect_artifact_garbage(namespace, status, workflow_strategy, "OnWorkflowDeletion")
            for error in errors:
                log.warning("artifact GC of deleted workflow %s/%s: %s", namespace,
                            wf.get("metadata", {}).get("name"), error)

        thread = threading.Thread(target=work, name="artifact-gc", daemon=True)
        thread.start()
        self._gc_threads = [t for t in self._gc_threads if t.is_alive()] + [thread]

    def wait_for_artifact_gc(self, timeout: float = 30.0) -> None:
        """Wait for deletion-time artifact GC started so far (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        for thread in list(self._gc_threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def recover_lost_pods(self) -> int:
        """Pods the store says are Pending/Running but the runtime does not know end as Error
        ("pod lost"), so the owning nodes fail (and retry) instead of waiting forever."""
        lost = 0
        items, _, _ = self.store.list(PODS, None, label_selector=LABEL_WORKFLOW)
        for pod in items:
            meta = pod.get("metadata") or {}
            phase = (pod.get("status") or {}).get("phase")
            if phase not in ("Pending", "Running"):
                continue
            ns, name = meta.get("namespace", "default"), meta["name"]
            if self.runtime.is_running(ns, name):
                continue
            now = now_rfc3339()
            self._record_result(PodResult(ns, name, -1, "", {}, POD_LOST, "Error", now, now))
            lost += 1
        return lost

    def _loop(self) -> None:
        rv = 0
        while not self._stop.is_set():
            try:
                rv = self.store.resource_version
                self.reconcile_all()
            except Exception:  # the controller thread must survive any single bad pass
                log.exception("workflow controller pass failed")
            timeout = self.tick_seconds
            if self._wake_at:
                timeout = max(0.02, min(timeout, min(self._wake_at.values()) - time.monotonic()))
            if self.store.wait_for_change(rv, timeout):
                # let a burst of changes (many pods finishing) land before the next pass
                self._stop.wait(0.02)

    # ------------------------------------------------------------------ reconcile

    def reconcile_all(self) -> None:
        """One pass over every incomplete workflow."""
        items, _, _ = self.store.list(WORKFLOWS, None, label_selector=f"{LABEL_COMPLETED}!=true")
        now = time.monotonic()
        for wf in items:
            key = (wf["metadata"].get("namespace", "default"), wf["metadata"]["name"])
            self._wake_at.pop(key, None)
            try:
                self.reconcile(wf)
            except Exception:
                log.exception("reconciling workflow %s/%s failed", *key)
                self._wake_at[key] = now + self.tick_seconds

    def reconcile(self, wf: dict[str, Any]) -> None:
        """Run one operation on ``wf`` (a copy from the store) and write the result back."""
        op = Operation(self, wf)
        op.run()
        meta = wf["metadata"]
        key = (meta.get("namespace", "default"), meta["name"])
        if op.requeue_after is not None:
            self._wake_at[key] = time.monotonic() + op.requeue_after
        if not op.changed:
            return
        expected_rv = meta.get("resourceVersion")
        status = op.status
        labels = meta.get("labels") or {}

        def mutate(obj: dict[str, Any]) -> dict[str, Any] | None:
            if obj["metadata"].get("resourceVersion") != expected_rv:
                # changed meanwhile (spec edit, resume...): the next pass recomputes from it
                self._wake_at[key] = time.monotonic()
                return obj
            obj["status"] = status
            obj["metadata"]["labels"] = labels
            return None

        try:
            self.store.update(WORKFLOWS, key[0], key[1], mutate)
        except ApiError as exc:
            if exc.code != 404:
                raise

    # ------------------------------------------------------------------ pods

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored Pod, or None when it does not exist."""
        try:
            return self.store.get(PODS, namespace, name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def create_and_submit(self, pod: dict[str, Any], request: PodRequest, *,
                          save_artifacts: ArtifactSaver | None = None) -> None:
        """Create the Pod object and hand it to the runtime, exactly once per pod name;
        ``save_artifacts`` runs in the runtime's thread when the pod ends, before its result is
        recorded (Argo's wait container)."""
        key = (request.namespace, request.pod_name)
        with self._lock:
            if key in self._submitted:
                return
            try:
                self.store.create(PODS, request.namespace, pod)
            except ApiError as exc:
                if exc.code == 409:
                    # created by an earlier pass whose status write lost a race: never run it twice
                    self._submitted.add(key)
                    return
                raise
            self._submitted.add(key)
            if save_artifacts is not None:
                self._savers[key] = save_artifacts
        self.runtime.submit(request, self._record_result)
        if self.runtime.is_running(request.namespace, request.pod_name):
            self.mark_pod_running(request.namespace, request.pod_name)

    def mark_pod_running(self, namespace: str, name: str) -> None:
        """Move a Pending pod to Running (the runtime started its process)."""
        def mutate(obj: dict[str, Any]) -> None:
            status = obj.setdefault("status", {})
            if status.get("phase") == "Pending":
                status["phase"] = "Running"
                status["startTime"] = now_rfc3339()
                status["containerStatuses"] = [{"name": "main", "ready": True, "restartCount": 0,
                                                "image": obj["spec"]["containers"][0].get("image", ""),
                                                "imageID": "local://" + obj["spec"]["containers"][0].get("image", ""),
                                                "state": {"running": {"startedAt": status["startTime"]}}}]

        try:
            self.store.update(PODS, namespace, name, mutate)
        except ApiError:
            return

    def kill_pod(self, namespace: str, name: str, message: str) -> None:
        """Ask the runtime to kill a pod (once); a pod the runtime does not know is marked Error."""
        key = (namespace, name)
        if key in self._killed:
            return
        self._killed.add(key)
        if not self.runtime.kill(namespace, name, message):
            pod = self.get_pod(namespace, name)
            if pod is not None and (pod.get("status") or {}).get("phase") in ("Pending", "Running"):
                now = now_rfc3339()
                self._record_result(PodResult(namespace, name, -1, "", {}, message, "Error", now, now))

    def _record_result(self, result: PodResult) -> None:
        """Runtime callback: write the pod's final status and outputs into the store.

        After :meth:`stop` results are dropped: pods killed because the cluster is shutting down
        stay Running in the store and are recovered as lost on the next start, like pods of a
        node that vanished."""
        if self._stop.is_set():
            log.info("dropping the result of pod %s/%s: the controller is stopped", result.namespace,
                     result.pod_name)
            return
        with self._lock:
            saver = self._savers.pop((result.namespace, result.pod_name), None)
        artifacts: list[dict[str, Any]] = []
        if saver is not None and result.phase in ("Succeeded", "Failed"):
            try:
                artifacts, error = saver(result)
            except (ArtifactError, OSError) as exc:
                error = str(exc)
            if error and result.phase == "Succeeded":
                result.phase = "Error"
                result.message = error
        outputs: dict[str, Any] = {
            "phase": result.phase,
            "exitCode": result.exit_code if result.exit_code >= 0 else None,
            "result": result.stdout,
            "message": result.message,
            "files": result.outputs,
            "startedAt": result.started_at,
            "finishedAt": result.finished_at,
        }
        if artifacts:
            outputs["artifacts"] = artifacts

        def mutate(obj: dict[str, Any]) -> None:
            status = obj.setdefault("status", {})
            status["phase"] = "Succeeded" if result.phase == "Succeeded" else "Failed"
            if result.message:
                status["message"] = result.message
            status.setdefault("startTime", result.started_at)
            terminated: dict[str, Any] = {
                "exitCode": result.exit_code if result.exit_code >= 0 else 137,
                "reason": "Completed" if result.phase == "Succeeded" else "Error",
                "startedAt": result.started_at,
                "finishedAt": result.finished_at,
            }
            if result.message:
                terminated["message"] = result.message
            status["containerStatuses"] = [{
                "name": "main", "ready": False, "restartCount": 0,
                "image": obj["spec"]["containers"][0].get("image", ""),
                "imageID": "local://" + obj["spec"]["containers"][0].get("image", ""),
                "state": {"terminated": terminated},
            }]
            annotations = obj["metadata"].setdefault("annotations", {})
            annotations[ANNOTATION_OUTPUTS] = json.dumps(outputs, separators=(",", ":"))
            obj["metadata"].setdefault("labels", {})[LABEL_COMPLETED] = "true"

        try:
            self.store.update(PODS, result.namespace, result.pod_name, mutate)
        except ApiError as exc:
            if exc.code != 404:
                log.exception("recording the result of pod %s/%s failed", result.namespace, result.pod_name)
