"""What a reconcile pass needs from the controller that runs it: :class:`ReconcileHost`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.argo.artifacts import OSSClients
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.runtime import PodRequest, PodResult

#: uploads a finished pod's output artifacts: (node-status entries, "" or why saving failed)
ArtifactSaver = Callable[[PodResult], tuple[list[dict[str, Any]], str]]


class ReconcileHost(Protocol):
    """The controller as a reconcile pass sees it: the store, pods and their runtime, artifact
    storage and garbage collection. The pass receives it when it is created."""

    @property
    def store(self) -> Store:
        """The store the workflow, its pods, templates, ConfigMaps and Secrets live in."""
        ...

    @property
    def paths(self) -> StatePaths:
        """Where the local cluster keeps its state (pod scratch directories)."""
        ...

    @property
    def oss_clients(self) -> OSSClients:
        """Clients of the OSS endpoints artifacts are loaded from and saved to."""
        ...

    @property
    def artifact_repository(self) -> dict[str, Any] | None:
        """The controller's default artifact repository (``{"oss": {...}}``), if any."""
        ...

    @property
    def artifact_credentials(self) -> tuple[str, str] | None:
        """The keys for artifact locations that name no Secrets, if any."""
        ...

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored Pod, or None when it does not exist."""
        ...

    def create_and_submit(self, pod: dict[str, Any], request: PodRequest, *,
                          save_artifacts: ArtifactSaver | None = None) -> None:
        """Create the Pod object and hand it to the runtime, exactly once per pod name."""
        ...

    def pod_is_running(self, namespace: str, name: str) -> bool:
        """Whether the runtime is running the pod's process."""
        ...

    def pod_address(self, namespace: str, name: str) -> str:
        """The pod's IP (``status.podIP``), known before it runs."""
        ...

    def mark_pod_running(self, namespace: str, name: str) -> None:
        """Move a Pending pod to Running (the runtime started its process)."""
        ...

    def kill_pod(self, namespace: str, name: str, message: str) -> None:
        """Kill a pod (once)."""
        ...

    def kill_workflow_pods(self, namespace: str, name: str, message: str) -> None:
        """Kill every Pending/Running pod of the workflow ``name``."""
        ...

    def collect_pod(self, namespace: str, name: str, delay: float, selector: dict[str, Any] | None) -> None:
        """``podGC``: delete the pod ``name`` after ``delay`` seconds if its labels match ``selector``
        (once per pod, however often it is asked)."""
        ...

    def collect_artifact_garbage(self, namespace: str, status: dict[str, Any], workflow_strategy: str,
                                 strategy: str) -> tuple[list[tuple[str, int]], list[str], bool]:
        """Delete the objects of the output artifacts in ``status`` whose ``artifactGC`` strategy is
        ``strategy``: (deleted (node id, index) pairs, errors, whether any artifact had that strategy)."""
        ...
