"""The interface of the hook's transports: :class:`WorkflowOperations` describes each API call
once (as an :data:`~airflow_argo_eci.hooks.argo_requests.Operation`), :class:`WorkflowTransport`
sends those operations synchronously or asynchronously."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, TypeVar

from airflow_argo_eci.hooks.argo_connection import ArgoConnectionSettings
from airflow_argo_eci.hooks.argo_requests import Operation, WorkflowList

T = TypeVar("T")


class WorkflowOperations(Protocol):
    """The API calls of one transport, each an operation that yields the requests it needs.

    Multi-step calls (pagination, the uid fence, retry's read-formulate-write) are written here
    once; the transport's sync and async drivers run the same generator."""

    def create_workflow(self, body: dict[str, Any], namespace: str) -> Operation[dict[str, Any]]:
        """Create a Workflow (never repeated after a failure that may have taken effect)."""
        ...

    def get_workflow(self, name: str, namespace: str) -> Operation[dict[str, Any]]:
        """The Workflow ``name``."""
        ...

    def list_workflows(self, namespace: str, label_selector: str, field_selector: str) -> Operation[WorkflowList]:
        """All Workflows matching the selectors, every page, and the list's resourceVersion."""
        ...

    def stop_workflow(
        self, name: str, namespace: str, message: str | None, node_field_selector: str, uid: str
    ) -> Operation[dict[str, Any]]:
        """``argo stop``, fenced by ``uid``; with a node selector only matching Suspend nodes fail."""
        ...

    def terminate_workflow(self, name: str, namespace: str, uid: str) -> Operation[dict[str, Any]]:
        """``argo terminate``, fenced by ``uid``."""
        ...

    def delete_workflow(self, name: str, namespace: str, uid: str) -> Operation[None]:
        """Delete the Workflow, fenced by ``uid``."""
        ...

    def suspend_workflow(self, name: str, namespace: str) -> Operation[dict[str, Any]]:
        """``argo suspend``."""
        ...

    def resume_workflow(self, name: str, namespace: str, node_field_selector: str) -> Operation[dict[str, Any]]:
        """``argo resume``."""
        ...

    def retry_workflow(
        self, name: str, namespace: str, *, restart_successful: bool, node_field_selector: str,
        parameters: dict[str, Any] | None,
    ) -> Operation[dict[str, Any]]:
        """``argo retry``."""
        ...

    def resubmit_workflow(
        self, name: str, namespace: str, parameters: dict[str, Any] | None
    ) -> Operation[dict[str, Any]]:
        """``argo resubmit``: a new Workflow with the same spec."""
        ...

    def get_workflow_template(self, name: str, namespace: str) -> Operation[dict[str, Any]]:
        """The WorkflowTemplate ``name``."""
        ...

    def apply_workflow_template(self, body: dict[str, Any], namespace: str) -> Operation[dict[str, Any]]:
        """Create the WorkflowTemplate ``body`` (checked, namespaced), or update the one of its name
        to it; nothing is written when it already matches. Returns the stored object."""
        ...

    def get_cluster_workflow_template(self, name: str) -> Operation[dict[str, Any]]:
        """The ClusterWorkflowTemplate ``name``."""
        ...

    def read_pod_log(
        self, pod_name: str, namespace: str, *, container: str, since_time: str | None, workflow: str | None
    ) -> Operation[list[tuple[str, str]]]:
        """``(timestamp, line)`` pairs of a pod's container log after ``since_time``."""
        ...

    def probe(self, namespace: str) -> Operation[None]:
        """List one workflow, without retries (a connection test)."""
        ...


class WorkflowTransport(Protocol):
    """A way to reach Argo Workflows: the Kubernetes API or the Argo Server."""

    settings: ArgoConnectionSettings

    @property
    def operations(self) -> WorkflowOperations:
        """The transport's API calls."""
        ...

    @property
    def default_namespace(self) -> str:
        """The namespace used when a call names none."""
        ...

    @property
    def supports_watch(self) -> bool:
        """Whether :meth:`awatch_workflows` works (False: callers poll)."""
        ...

    def run(self, operation: Operation[T]) -> T:
        """Send ``operation``'s requests with the sync client (retries and typed errors apply)."""
        ...

    async def arun(self, operation: Operation[T]) -> T:
        """Send ``operation``'s requests with the async client of the running event loop."""
        ...

    def awatch_workflows(
        self, namespace: str, resource_version: str, label_selector: str, field_selector: str, timeout_seconds: int
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """``(event type, object)`` of a watch (only when :attr:`supports_watch`)."""
        ...

    def endpoint(self) -> str:
        """Where the transport connects, for messages (no secrets)."""
        ...

    def close(self) -> None:
        """Release the sync client's connections."""
        ...

    async def aclose(self) -> None:
        """Release the async client's connections."""
        ...
