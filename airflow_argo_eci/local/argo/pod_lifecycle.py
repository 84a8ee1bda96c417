"""Pods from creation to result, as a kubelet sees them: the Pod object is created and handed to
the runtime once per name; the runtime's result is written to the Pod of the uid it was started for;
a deleted Pod's process is killed and its name freed. Everything is fenced by uid, because the node
process reads the API's changes through a follower that can lag: a pod force-deleted and made again
under its name (``argo retry``) must never receive the older one's result, kill or deletion."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable
from typing import Any, Protocol

from airflow_argo_eci.conventions import ANNOTATION_OUTPUTS, LABEL_COMPLETED, now_rfc3339
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import PODS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.argo.artifacts import ArtifactError
from airflow_argo_eci.local.argo.podstatus import finished_containers, mark_ready, running_status
from airflow_argo_eci.local.argo.reconcile import ArtifactSaver
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.runtime import PodRequest, PodResult

log = logging.getLogger(__name__)


class RuntimeLike(Protocol):
    """What the pods need from the runtime."""

    def submit(self, req: PodRequest, on_done: Any) -> None: ...

    def kill(self, namespace: str, pod_name: str, message: str) -> bool: ...

    def is_running(self, namespace: str, pod_name: str) -> bool: ...

    def address_of(self, namespace: str, pod_name: str) -> str: ...


class PodLifecycle:
    """The workflow controller's pods on ``runtime``; results are dropped once ``stopped`` is set."""

    def __init__(self, store: Store, runtime: RuntimeLike, paths: StatePaths, stopped: threading.Event) -> None:
        self.store = store
        self.runtime = runtime
        self.paths = paths
        self._stopped = stopped
        self._lock = threading.RLock()
        #: the pods handed to the runtime: (namespace, name) -> the uid of the Pod object created
        self._submitted: dict[tuple[str, str], str] = {}
        self._killed: set[tuple[str, str]] = set()
        #: the artifact savers of pods handed to the runtime: (namespace, name) -> (pod uid, saver)
        self._savers: dict[tuple[str, str], tuple[str, ArtifactSaver]] = {}
        #: pods created while an older process of their name still ran: (namespace, name) -> (uid, request)
        self._deferred: dict[tuple[str, str], tuple[str, PodRequest]] = {}
        #: runs on each pod just created, before it starts (ECI's image caches, ``local/eci/``): a
        #: ``(reason, message)`` answer ends the pod Failed with that reason instead of starting it
        self.admit_pod: Callable[[dict[str, Any]], tuple[str, str] | None] | None = None

    def on_change(self, event: str, obj: dict[str, Any]) -> None:
        """A Pod's change, as kubelet sees it: a deletion mark (a pod held by finalizers) kills its
        process; a deleted Pod's process is killed and its scratch space and logs removed, and its
        name may be used again (``argo retry`` recreates failed pods under the same names). Events
        about an older pod of a name the runtime was since given again are ignored."""
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", "default"), meta.get("name", ""))
        if event == "MODIFIED" and meta.get("deletionTimestamp"):
            if not self._superseded(key, meta) and self.runtime.is_running(*key):
                self.runtime.kill(*key, "pod deleted")
        elif event == "DELETED":
            with self._lock:
                if not self._superseded(key, meta):
                    self._forget_pod(*key)

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored Pod, or None when it does not exist."""
        return self.store.find(PODS, namespace, name)

    def pod_is_running(self, namespace: str, name: str) -> bool:
        """Whether the runtime is running the pod's process."""
        return self.runtime.is_running(namespace, name)

    def pod_address(self, namespace: str, name: str) -> str:
        """The pod's IP (``status.podIP``), known before it runs."""
        return self.runtime.address_of(namespace, name)

    def create_and_submit(self, pod: dict[str, Any], request: PodRequest, *,
                          save_artifacts: ArtifactSaver | None = None) -> None:
        """Create the Pod object and hand it to the runtime, exactly once per pod name;
        ``save_artifacts`` runs in the runtime's thread when the pod ends, before its result is
        recorded (Argo's wait container).

        A process of an older pod of the same name that is still running (its Pod object deleted,
        the deletion not yet read here, as after a force delete or ``argo retry``) is killed, and the
        new pod is handed to the runtime when that process has ended: never two processes of one
        name at once, and the new Pod exists meanwhile (Pending), as a kubelet would hold it."""
        key = (request.namespace, request.pod_name)
        with self._lock:
            if key in self._submitted and self.store.find(PODS, request.namespace, request.pod_name) is not None:
                return
            # an older process of the name: its Pod deleted and not yet forgotten, or forgotten (and
            # killed) by :meth:`on_change` while it is still ending
            older_running = self.runtime.is_running(*key)
            if key in self._submitted and not older_running:
                # deleted (``argo retry``) before the deletion reached :meth:`on_change`, which
                # will leave the pod made now alone (its uid differs)
                self._forget_pod(*key)
            try:
                created = self.store.create(PODS, request.namespace, pod)
            except ApiError as exc:
                if exc.code == 409:
                    # created by an earlier pass whose status write lost a race: never run it twice
                    existing = self.store.find(PODS, request.namespace, request.pod_name) or {}
                    self._submitted[key] = str((existing.get("metadata") or {}).get("uid", ""))
                    return
                raise
            uid = str(created["metadata"].get("uid", ""))
            self._submitted[key] = uid
            if save_artifacts is not None:
                self._savers[key] = (uid, save_artifacts)
            if older_running:
                # the late deletion event of the older pod is superseded now: it is killed here
                self.runtime.kill(*key, "pod deleted")
                self._killed.discard(key)
        if self._refused(created, request):
            return
        with self._lock:
            if older_running and self.runtime.is_running(*key):
                # the older process reports through record_result, which takes this lock and then
                # starts the new pod
                self._deferred[key] = (uid, request)
                return
            if older_running:
                self._forget_pod(*key, keep_submitted=True)
        self._start(request, uid)

    def _start(self, request: PodRequest, uid: str) -> None:
        """Hand the created pod ``uid`` to the runtime."""
        request.on_ready = lambda: self.mark_pod_ready(request.namespace, request.pod_name)
        # the result is this pod's: a late one never lands on a newer pod of the same name
        self.runtime.submit(request, lambda result: self.record_result(result, uid))
        if self.runtime.is_running(request.namespace, request.pod_name):
            self.mark_pod_running(request.namespace, request.pod_name)

    def _start_deferred(self, key: tuple[str, str]) -> None:
        """The pod waiting for an older process of its name, once that process has ended (and its
        Pod object was not deleted meanwhile)."""
        with self._lock:
            entry = self._deferred.get(key)
            if entry is None or self.runtime.is_running(*key):
                return
            del self._deferred[key]
            uid, request = entry
            if self._submitted.get(key) != uid:
                return  # deleted while it waited
            self._forget_pod(*key, keep_submitted=True)
        self._start(request, uid)

    def _refused(self, pod: dict[str, Any], request: PodRequest) -> bool:
        """Whether :attr:`admit_pod` refused the pod just created (it then ends Failed, never runs)."""
        if self.admit_pod is None:
            return False
        refusal = self.admit_pod(pod)
        if refusal is None:
            return False
        reason, message = refusal
        now = now_rfc3339()
        with self._lock:
            self._savers.pop((request.namespace, request.pod_name), None)
        self.record_result(PodResult(request.namespace, request.pod_name, -1, "", {}, message, "Error", now, now,
                                      reason=reason), str(pod["metadata"].get("uid", "")))
        return True

    def mark_pod_running(self, namespace: str, name: str) -> None:
        """Move a Pending pod to Running (the runtime started its process): its IP, and its
        containers ready unless they have a readiness probe (then :meth:`mark_pod_ready` follows)."""
        address = self.runtime.address_of(namespace, name)

        def mutate(obj: dict[str, Any]) -> None:
            status = obj.setdefault("status", {})
            if status.get("phase") == "Pending":
                now = now_rfc3339()
                status.update(running_status(obj.get("spec") or {}, address, now))

        try:
            self.store.update(PODS, namespace, name, mutate)
        except ApiError:
            return

    def mark_pod_ready(self, namespace: str, name: str) -> None:
        """Runtime callback: the main container's readiness probe passed (the pod becomes Ready)."""
        def mutate(obj: dict[str, Any]) -> None:
            status = obj.setdefault("status", {})
            if status.get("phase") == "Running":
                mark_ready(status, now_rfc3339())

        try:
            self.store.update(PODS, namespace, name, mutate)
        except ApiError:
            return

    def kill_pod(self, namespace: str, name: str, message: str) -> None:
        """Ask the runtime to kill a pod (once); a pod the runtime does not know is marked Error."""
        key = (namespace, name)
        with self._lock:
            deferred = self._deferred.pop(key, None)
        if deferred is not None:  # it never started: it ends at once
            now = now_rfc3339()
            self.record_result(PodResult(namespace, name, -1, "", {}, message, "Error", now, now), deferred[0])
            return
        if key in self._killed:
            return
        self._killed.add(key)
        if not self.runtime.kill(namespace, name, message):
            pod = self.get_pod(namespace, name)
            if pod is not None and (pod.get("status") or {}).get("phase") in ("Pending", "Running"):
                now = now_rfc3339()
                self.record_result(PodResult(namespace, name, -1, "", {}, message, "Error", now, now),
                                    str(pod["metadata"].get("uid", "")))

    def record_result(self, result: PodResult, uid: str) -> None:
        """Runtime callback: write the pod's final status and outputs into the store, on the Pod
        object whose uid is ``uid`` (a result that comes after its pod was deleted and another of
        the same name made, as ``argo retry`` does, is dropped).

        Once the controller is stopped results are dropped: pods killed because the cluster is shutting down
        stay Running in the store and are recovered as lost on the next start, like pods of a
        node that vanished."""
        if self._stopped.is_set():
            log.info("dropping the result of pod %s/%s: the controller is stopped", result.namespace,
                     result.pod_name)
            return
        key = (result.namespace, result.pod_name)
        with self._lock:
            uid_and_saver = self._savers.get(key)
            saver = None
            if uid_and_saver is not None and uid_and_saver[0] == uid:
                saver = self._savers.pop(key)[1]
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
        if "containers" in result.extra:  # each container's exit code (a container set's become nodes)
            outputs["containers"] = result.extra["containers"]

        def mutate(obj: dict[str, Any]) -> None:
            if obj["metadata"].get("uid") != uid:
                log.info("dropping the result of pod %s/%s: the pod was replaced", result.namespace,
                         result.pod_name)
                return
            status = obj.setdefault("status", {})
            status["phase"] = "Succeeded" if result.phase == "Succeeded" else "Failed"
            if result.message:
                status["message"] = result.message
            if result.reason and result.reason != "OOMKilled":  # a pod-level reason (eviction, ECI's refusal)
                status["reason"] = result.reason
            status.setdefault("startTime", result.started_at)
            status.update(finished_containers(obj.get("spec") or {}, result))
            for condition in status.get("conditions") or []:
                if condition.get("type") in ("Ready", "ContainersReady"):
                    condition["status"] = "False"
            annotations = obj["metadata"].setdefault("annotations", {})
            annotations[ANNOTATION_OUTPUTS] = json.dumps(outputs, separators=(",", ":"))
            obj["metadata"].setdefault("labels", {})[LABEL_COMPLETED] = "true"

        try:
            self.store.update(PODS, result.namespace, result.pod_name, mutate)
        except ApiError as exc:
            if exc.code != 404:
                log.exception("recording the result of pod %s/%s failed", result.namespace, result.pod_name)
        self._start_deferred(key)

    def _superseded(self, key: tuple[str, str], pod_meta: dict[str, Any]) -> bool:
        """Whether the pod an event is about is older than the one of its name the runtime was
        last given (a late event: create_and_submit forgot that pod and made this one)."""
        with self._lock:
            return self._submitted.get(key, "") not in ("", pod_meta.get("uid", ""))

    def _forget_pod(self, namespace: str, name: str, *, keep_submitted: bool = False) -> None:
        """(lock held) A deleted pod: its process killed, its name free again, its scratch space
        and logs removed (``keep_submitted``: the name is already taken by the pod made after it)."""
        key = (namespace, name)
        if self.runtime.is_running(namespace, name):
            self.runtime.kill(namespace, name, "pod deleted")
        if not keep_submitted:
            self._submitted.pop(key, None)
            self._deferred.pop(key, None)
        self._killed.discard(key)
        shutil.rmtree(self.paths.pod_dir(namespace, name), ignore_errors=True)
        shutil.rmtree(self.paths.log_file(namespace, name).parent, ignore_errors=True)
