"""The workflow controller of the local cluster: reconciles Workflows into Pods run by the runtime.

A daemon thread waits for store changes (or a periodic tick) and runs one
:class:`~airflow_argo_eci.local.argo.reconcile.WorkflowReconciler` pass per incomplete Workflow; each
pass ends with at most one store update of that workflow. Pods are created in the store and handed
to the :class:`~airflow_argo_eci.local.runtime.runner.Runtime` by
:class:`~airflow_argo_eci.local.argo.pod_lifecycle.PodLifecycle`; when the runtime reports a
:class:`PodResult`, the Pod object's status (phase, container status, and an outputs annotation with
``result``, exit code and output-file contents) is updated, which wakes the controller again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from airflow_argo_eci.conventions import LABEL_COMPLETED, LABEL_PHASE, LABEL_WORKFLOW, now_rfc3339
from airflow_argo_eci.eci_conventions import ARGO_NAMESPACE, CONTROLLER_CONFIGMAP
from airflow_argo_eci.errors import ArgoEciError
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.owner_gc import owned_by
from airflow_argo_eci.local.api.resources import CONFIGMAPS, PODS, WORKFLOWS, ResourceType
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.argo.artifacts import (
    OSSClients,
    delete_artifact,
    gc_strategy,
    location_of,
)
from airflow_argo_eci.local.argo.budget import MAX_WORKFLOW_SIZE
from airflow_argo_eci.local.argo.gc_finalizer import ArtifactGCFinalizer, deletion_gc_done
from airflow_argo_eci.local.argo.isolation import FailureTracker, describe
from airflow_argo_eci.local.argo.offload import NodeStatusOffloading
from airflow_argo_eci.local.argo.packing import pack_status
from airflow_argo_eci.local.argo.pod_lifecycle import PodLifecycle, RuntimeLike
from airflow_argo_eci.local.argo.podgc import selector_matches
from airflow_argo_eci.local.argo.reconcile import ArtifactSaver, WorkflowReconciler
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.runtime import PodRequest, PodResult
from airflow_argo_eci.workflows import workflow_nodes

log = logging.getLogger(__name__)


#: why a pod that was running when the previous server stopped has no result
POD_LOST = "pod lost: the local cluster stopped while it was running"
#: the ``_wake_at`` key of the podGC queue (no workflow has an empty namespace)
POD_GC_WAKE = ("", "podGC")


#: the shortest wait after a change before the next pass, so that a burst of changes (many pods
#: finishing) lands in one pass
BATCH_SECONDS = 0.02
#: the longest such wait, however long passes take
MAX_BATCH_SECONDS = 0.5


def batch_window(pass_cpu_seconds: float) -> float:
    """How long the controller lets changes gather before its next pass, given the CPU time its
    last round took: at least as long as that round, so that passes over large workflows (each
    O(nodes)) take at most about half of the CPU and of the interpreter lock the API server's
    threads share, however fast their pods change; :data:`BATCH_SECONDS` for small ones."""
    return min(MAX_BATCH_SECONDS, max(BATCH_SECONDS, pass_cpu_seconds))


class Controller:
    """Reconciles Argo Workflows stored in ``store`` by running their pods on ``runtime``."""

    def __init__(self, store: Store, runtime: RuntimeLike, paths: StatePaths, *, tick_seconds: float = 1.0) -> None:
        self.store = store
        self.runtime = runtime
        self.paths = paths
        self.tick_seconds = tick_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: the pods, from creation to result (the host's pod methods below are theirs)
        self.pods = PodLifecycle(store, runtime, paths, self._stop)
        self._lock = threading.RLock()
        self._wake_at: dict[tuple[str, str], float] = {}
        #: podGC: (namespace, pod) -> (monotonic time due, labelSelector); pods already asked for
        self._pod_gc: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}
        self._pod_gc_asked: set[tuple[str, str]] = set()
        self._listening = False
        self._gc_threads: list[threading.Thread] = []
        #: Argo's artifact-GC finalizer: OnWorkflowDeletion collection before a workflow goes
        self.gc_finalizer = ArtifactGCFinalizer(store, self.collect_artifact_garbage,
                                                lambda thread: self._gc_threads.append(thread))
        #: the controller's default artifact repository (``{"oss": {...}}``, Argo's controller
        #: ConfigMap ``artifactRepository``) for namespaces without an ``artifact-repositories``
        #: ConfigMap, and the keys used for locations that name no Secrets
        self.artifact_repository: dict[str, Any] | None = None
        self.artifact_credentials: tuple[str, str] | None = None
        self.oss_clients = OSSClients(paths.tls_cert)
        #: workflows whose reconcile pass raised: retried with backoff, then ended in Error
        self.failures = FailureTracker(log, retries=3, backoff=max(0.1, tick_seconds))
        #: the largest workflow the controller writes (Argo's MAX_WORKFLOW_SIZE): larger ones get
        #: their nodes compressed, and fail if that is not enough
        self.max_workflow_size = MAX_WORKFLOW_SIZE
        #: Argo's node status offloading (``persistence.nodeStatusOffLoad`` of the controller
        #: ConfigMap, read at start and on each change of it; ``ALWAYS_OFFLOAD_NODE_STATUS``)
        self.offloading = NodeStatusOffloading(paths.db)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Recover pods lost with a previous server, then start the reconcile thread."""
        if not self._listening:
            self.store.add_listener(self._on_change)
            self._listening = True
        self._stop.clear()
        self._configure_offloading()
        self.recover_lost_pods()
        self.gc_finalizer.resume()
        self._thread = threading.Thread(target=self._loop, name="argo-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the reconcile thread (running pods are left to the runtime's shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _configure_offloading(self) -> None:
        """Read node status offloading from the controller ConfigMap; when on, delete the old
        offloads of workflows that are gone."""
        self.offloading.configure(self.store.find(CONFIGMAPS, ARGO_NAMESPACE, CONTROLLER_CONFIGMAP))
        if self.offloading.enabled:
            items, _, _ = self.store.list(WORKFLOWS, None)
            self.offloading.sweep({str(wf["metadata"].get("uid")) for wf in items})

    def _on_change(self, event: str, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Garbage collection, as the Kubernetes GC and kubelet do it: a deleted Workflow takes its
        Pods (those its uid owns: a successor of the same name may have made pods before the
        deletion reached this listener) and offloaded nodes with it; Pod changes go to
        :meth:`PodLifecycle.on_change`. A change of the controller ConfigMap reconfigures node
        status offloading."""
        if rt is CONFIGMAPS:
            meta = obj.get("metadata") or {}
            if meta.get("name") == CONTROLLER_CONFIGMAP and meta.get("namespace") == ARGO_NAMESPACE:
                self.offloading.configure(None if event == "DELETED" else obj)
            return
        if rt is PODS:
            self.pods.on_change(event, obj)
            return
        if rt is WORKFLOWS:
            # a workflow being deleted is collected with its offloaded nodes (read only then)
            deleting = (obj.get("metadata") or {}).get("deletionTimestamp")
            self.gc_finalizer.observe(event, self._hydrated(obj) if deleting else obj)
        if event != "DELETED":
            return
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace", "default"), meta.get("name", "")
        if rt is WORKFLOWS:
            if not deletion_gc_done(obj):  # else the artifact-GC finalizer collected already
                self._collect_on_deletion(namespace, self._hydrated(obj))
            self.offloading.forget(obj)
            pods, _, _ = self.store.list(PODS, namespace, label_selector=f"{LABEL_WORKFLOW}={name}")
            for pod in pods:
                if not owned_by(pod, str(meta.get("uid", ""))):
                    continue  # a successor's of the same name, made before this event came
                try:
                    self.store.delete(PODS, namespace, pod["metadata"]["name"])
                except ApiError as exc:
                    if exc.code != 404:
                        raise

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
        try:
            nodes = workflow_nodes(status)
        except ArgoEciError as exc:
            return deleted, [f"cannot read the workflow's nodes: {exc}"], False
        for node_id, node in nodes.items():
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
            self.pods.record_result(PodResult(ns, name, -1, "", {}, POD_LOST, "Error", now, now),
                                    str(meta.get("uid", "")))
            lost += 1
        return lost

    def _loop(self) -> None:
        rv = 0
        while not self._stop.is_set():
            cpu = time.thread_time()
            try:
                rv = self.store.resource_version
                self.reconcile_all()
                self.collect_due_pods()
            except Exception as exc:  # the controller thread must survive any single bad pass
                self.failures.out.log(logging.ERROR, "workflow controller pass failed: %s", describe(exc))
            timeout = self.tick_seconds
            if self._wake_at:
                timeout = max(BATCH_SECONDS, min(timeout, min(self._wake_at.values()) - time.monotonic()))
            if self.store.wait_for_change(rv, timeout):
                self._stop.wait(batch_window(time.thread_time() - cpu))

    # ------------------------------------------------------------------ reconcile

    def reconcile_all(self) -> None:
        """One pass over every incomplete workflow. A workflow whose pass raises is retried with
        backoff and then ends in Error (:class:`FailureTracker`); the others go on meanwhile."""
        items, _, _ = self.store.list(WORKFLOWS, None, label_selector=f"{LABEL_COMPLETED}!=true")
        for wf in items:
            key = (wf["metadata"].get("namespace", "default"), wf["metadata"]["name"])
            uid = str(wf["metadata"].get("uid", ""))
            self._wake_at.pop(key, None)
            due = self.failures.waiting(key, uid, time.monotonic())
            if due is not None:
                self._wake_at[key] = due
                continue
            try:
                self.reconcile(wf)
            except Exception as exc:  # one workflow's failure never stops the others
                message = self.failures.failed(key, uid, exc, time.monotonic())
                if message is None:
                    due = self.failures.waiting(key, uid, time.monotonic())
                    self._wake_at[key] = due if due is not None else time.monotonic()
                else:
                    self.fail_workflow(key[0], key[1], uid, message)
            else:
                self.failures.succeeded(key)

    def fail_workflow(self, namespace: str, name: str, uid: str, message: str) -> None:
        """End a workflow in Error with ``message`` on its stored status (Argo's
        ``markWorkflowError``: a running entry node errs with "Workflow operation error") and
        kill its pods. Never raises."""
        now = now_rfc3339()

        def mutate(obj: dict[str, Any]) -> dict[str, Any] | None:
            if uid and obj["metadata"].get("uid") != uid:
                return obj  # replaced by a new workflow of the same name meanwhile
            status = obj.setdefault("status", {})
            status["phase"] = "Error"
            status["message"] = message
            status.setdefault("startedAt", now)
            status["finishedAt"] = now
            entry = (status.get("nodes") or {}).get(name)
            if isinstance(entry, dict) and entry.get("phase") in ("Pending", "Running"):
                entry["phase"] = "Error"
                entry["message"] = "Workflow operation error"
                entry["finishedAt"] = now
            labels = obj["metadata"].setdefault("labels", {})
            labels[LABEL_PHASE] = "Error"
            labels[LABEL_COMPLETED] = "true"
            return None

        try:
            self.store.update(WORKFLOWS, namespace, name, mutate)
        except Exception as exc:  # the workflow may be gone or unwritable; its pods still go
            self.failures.out.log(logging.WARNING, "workflow %s/%s: could not record Error: %s", namespace, name,
                                  describe(exc))
        try:
            self.kill_workflow_pods(namespace, name, message)
        except Exception as exc:
            self.failures.out.log(logging.WARNING, "workflow %s/%s: could not kill its pods: %s", namespace, name,
                                  describe(exc))

    def collect_pod(self, namespace: str, name: str, delay: float, selector: dict[str, Any] | None) -> None:
        """``podGC``: delete the pod ``name`` after ``delay`` seconds if its labels match ``selector``
        (once per pod, however often it is asked)."""
        key = (namespace, name)
        with self._lock:
            if key in self._pod_gc_asked:
                return
            if len(self._pod_gc_asked) > 100_000:  # bounded memory; a pod asked again is deleted again (404)
                self._pod_gc_asked.clear()
            self._pod_gc_asked.add(key)
            due = time.monotonic() + delay
            self._pod_gc[key] = (due, selector)
            self._wake_at[POD_GC_WAKE] = min(due, self._wake_at.get(POD_GC_WAKE, due))

    def collect_due_pods(self) -> int:
        """Delete the podGC pods whose delay has passed (those whose labels match their
        selector); returns how many were deleted."""
        now = time.monotonic()
        with self._lock:
            due = [(key, sel) for key, (at, sel) in self._pod_gc.items() if at <= now]
            for key, _ in due:
                del self._pod_gc[key]
            if self._pod_gc:
                self._wake_at[POD_GC_WAKE] = min(at for at, _ in self._pod_gc.values())
            else:
                self._wake_at.pop(POD_GC_WAKE, None)
        deleted = 0
        for (namespace, name), selector in due:
            pod = self.get_pod(namespace, name)
            if pod is None or not selector_matches(selector, (pod.get("metadata") or {}).get("labels") or {}):
                continue
            try:
                self.store.delete(PODS, namespace, name)
                deleted += 1
            except ApiError as exc:
                if exc.code != 404:
                    self.failures.out.log(logging.WARNING, "podGC: could not delete pod %s/%s: %s", namespace,
                                          name, describe(exc))
        return deleted

    def kill_workflow_pods(self, namespace: str, name: str, message: str) -> None:
        """Kill every Pending/Running pod of the workflow ``name``."""
        pods, _, _ = self.store.list(PODS, namespace, label_selector=f"{LABEL_WORKFLOW}={name}")
        for pod in pods:
            if (pod.get("status") or {}).get("phase") in ("Pending", "Running"):
                self.kill_pod(namespace, pod["metadata"]["name"], message)

    def _hydrated(self, wf: dict[str, Any]) -> dict[str, Any]:
        """``wf`` (not modified) with its offloaded nodes put back, when it has offloaded nodes that
        still exist."""
        status = wf.get("status") or {}
        if not status.get("offloadNodeStatusVersion"):
            return wf
        try:
            return self.offloading.repository.hydrate({**wf, "status": dict(status)})
        except ArgoEciError as exc:
            log.warning("workflow %s: %s", (wf.get("metadata") or {}).get("name"), exc)
            return wf

    def reconcile(self, wf: dict[str, Any]) -> None:
        """Run one reconcile pass on ``wf`` (a copy from the store) and write the result back; an
        offloaded status is hydrated first (Argo's operator does) and offloaded again on write."""
        if (wf.get("status") or {}).get("offloadNodeStatusVersion"):
            self.offloading.repository.hydrate(wf)
        op = WorkflowReconciler(self, wf)
        op.run()
        meta = wf["metadata"]
        key = (meta.get("namespace", "default"), meta["name"])
        if op.requeue_after is not None:
            self._wake_at[key] = time.monotonic() + op.requeue_after
        if not op.changed:
            return
        expected_rv = meta.get("resourceVersion")
        status, too_large = pack_status(
            wf, op.status, self.max_workflow_size, always=self.offloading.always,
            offload=self.offloading.offloader(str(meta.get("uid", "")), key[0]))
        if too_large:
            # as Argo's persistWorkflowSizeLimitErr: the stored workflow ends in Error, pods go
            self.fail_workflow(key[0], key[1], str(meta.get("uid", "")), too_large)
            return
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
            if exc.code == 413:  # refused as too large by the API's own limit
                self.fail_workflow(key[0], key[1], str(meta.get("uid", "")), f"{exc}")
            elif exc.code != 404:
                raise

    # ------------------------------------------------------------------ pods (the host's; PodLifecycle's)

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored Pod, or None when it does not exist."""
        return self.pods.get_pod(namespace, name)

    def pod_is_running(self, namespace: str, name: str) -> bool:
        """Whether the runtime is running the pod's process."""
        return self.pods.pod_is_running(namespace, name)

    def pod_address(self, namespace: str, name: str) -> str:
        """The pod's IP (``status.podIP``), known before it runs."""
        return self.pods.pod_address(namespace, name)

    def create_and_submit(self, pod: dict[str, Any], request: PodRequest, *,
                          save_artifacts: ArtifactSaver | None = None) -> None:
        """See :meth:`PodLifecycle.create_and_submit`."""
        self.pods.create_and_submit(pod, request, save_artifacts=save_artifacts)

    def mark_pod_running(self, namespace: str, name: str) -> None:
        """See :meth:`PodLifecycle.mark_pod_running`."""
        self.pods.mark_pod_running(namespace, name)

    def kill_pod(self, namespace: str, name: str, message: str) -> None:
        """See :meth:`PodLifecycle.kill_pod`."""
        self.pods.kill_pod(namespace, name, message)
