"""``ClusterReader`` / ``ClusterHook``: what the preflight reads of a cluster, over an ``argo_workflows`` connection.

The reads (:class:`~airflow_argo_eci.hooks.cluster_requests.ClusterOperations`: discovery, CRDs,
Deployments, ConfigMaps, SelfSubjectAccessReviews) go through the connection's ``kubernetes``
transport, with its kubeconfig / in-cluster configuration, TLS settings, timeouts and typed errors.
A connection with the ``argo_server`` transport reaches only the Argo Server's API: it can read
the Argo version (``/api/v1/version``); every Kubernetes read raises
:class:`~airflow_argo_eci.errors.WorkflowSpecError` saying so, which the preflight reports as unknown.
Its one write, :meth:`ClusterReader.apply_config_map`, creates or updates a job queue's ConfigMap.

:class:`ClusterReader` needs no Airflow (the ``doctor`` command builds it from a kubeconfig);
:class:`ClusterHook` makes one from an Airflow connection.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.hooks.argo_connection import ArgoConnectionMixin, ArgoConnectionSettings
from airflow_argo_eci.hooks.argo_requests import Operation, RequestRunner
from airflow_argo_eci.hooks.cluster_requests import ClusterOperations
from airflow_argo_eci.hooks.transports import transport_for

__all__ = ["ClusterHook", "ClusterReader"]


class ClusterReader:
    """The preflight's reads over one connection's transport (made on first use)."""

    def __init__(self, settings: ArgoConnectionSettings) -> None:
        self.settings = settings
        self._transport: Any = None
        self._operations = ClusterOperations()

    @property
    def transport_name(self) -> str:
        """``kubernetes`` or ``argo_server``."""
        return self.settings.transport

    def _runner(self) -> Any:
        if self._transport is None:
            self._transport = transport_for(self.settings)
        return self._transport

    def _kube(self, operation: Operation[dict[str, Any]], what: str) -> dict[str, Any]:
        if self.settings.transport != "kubernetes":
            operation.close()
            raise WorkflowSpecError(
                f"connection {self.settings.conn_id!r} uses the {self.settings.transport} transport, which reaches "
                f"only the Argo Server: {what} needs a connection with transport 'kubernetes'")
        runner: RequestRunner = self._runner()
        return runner.run(operation)

    def where(self) -> str:
        """Where the connection points (no secrets)."""
        return self.settings.describe()

    def default_namespace(self) -> str:
        """The connection's namespace, else its kubeconfig context's, else ``default``."""
        return str(self._runner().default_namespace)

    def discovery(self, group: str, version: str) -> dict[str, Any]:
        """The ``APIResourceList`` of ``group/version``."""
        return self._kube(self._operations.discovery(group, version), f"discovery of {group}/{version}")

    def get_crd(self, name: str) -> dict[str, Any]:
        """The CustomResourceDefinition ``name``."""
        return self._kube(self._operations.get_crd(name), f"customresourcedefinition {name}")

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        """The Deployment ``namespace/name``."""
        return self._kube(self._operations.get_deployment(namespace, name), f"deployment {namespace}/{name}")

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any]:
        """The ConfigMap ``namespace/name``."""
        return self._kube(self._operations.get_config_map(namespace, name), f"configmap {namespace}/{name}")

    def apply_config_map(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create-or-update the ConfigMap ``body`` in ``namespace`` (idempotent: an equal one is not
        written; see :meth:`ClusterOperations.apply_config_map`). The Argo Server has no ConfigMap API:
        over an ``argo_server`` connection this raises :class:`WorkflowSpecError` saying the ConfigMap
        must be created by a cluster admin (``kubectl apply``) or through a ``kubernetes`` connection."""
        name = (body.get("metadata") or {}).get("name", "")
        if self.settings.transport != "kubernetes":
            data = " ".join(f"--from-literal={k}={v}" for k, v in sorted((body.get("data") or {}).items()))
            raise WorkflowSpecError(
                f"connection {self.settings.conn_id!r} uses the {self.settings.transport} transport: the Argo Server "
                f"cannot create ConfigMaps, so configmap {namespace}/{name} must exist before the workflow runs; "
                f"have a cluster admin create it (kubectl -n {namespace} create configmap {name} {data}) or use a "
                "connection with transport 'kubernetes'")
        runner: RequestRunner = self._runner()
        return runner.run(self._operations.apply_config_map(namespace, body))

    def access_review(self, namespace: str, verb: str, resource: str, group: str = "",
                      subresource: str = "") -> dict[str, Any]:
        """A SelfSubjectAccessReview's answer (``status.allowed``, ``status.reason``)."""
        return self._kube(self._operations.access_review(namespace, verb, resource, group, subresource),
                          "a SelfSubjectAccessReview")

    def server_version(self) -> dict[str, Any]:
        """The Argo Server's ``/api/v1/version`` (``argo_server`` transport only)."""
        if self.settings.transport != "argo_server":
            raise WorkflowSpecError(f"connection {self.settings.conn_id!r} uses the kubernetes transport: the Argo "
                                    "Server's version is read through an argo_server connection")
        runner: RequestRunner = self._runner()
        return runner.run(self._operations.server_version())

    def close(self) -> None:
        """Release the transport's sync client."""
        if self._transport is not None:
            self._transport.close()


class ClusterHook(ArgoConnectionMixin, BaseHook):
    """The preflight's reads through an ``argo_workflows`` connection (see the module docstring).

    :param argo_conn_id: the ``argo_workflows`` connection
    """

    conn_type = "argo_workflows"
    conn_name_attr = "argo_conn_id"
    default_conn_name = "argo_default"
    hook_name = "Cluster checks (through Argo Workflows' connection)"

    def __init__(self, argo_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.argo_conn_id = argo_conn_id
        self._settings: ArgoConnectionSettings | None = None
        self._reader: ClusterReader | None = None

    def get_conn(self) -> ClusterReader:
        """The connection's :class:`ClusterReader` (made once)."""
        if self._reader is None:
            self._reader = ClusterReader(self.settings)
        return self._reader

    def close(self) -> None:
        """Release the reader's client."""
        if self._reader is not None:
            self._reader.close()
