"""The transport an ``argo_workflows`` connection's ``transport`` setting chooses, decided in one
place for every hook on that connection (the transports are imported only when first made: the
Kubernetes client is a heavy import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_argo_eci.hooks.argo_connection import ArgoConnectionSettings

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.argo_transport import WorkflowTransport


def transport_for(settings: ArgoConnectionSettings) -> WorkflowTransport:
    """A new :class:`~airflow_argo_eci.hooks.argo_server_transport.ArgoServerTransport` for an
    ``argo_server`` connection, else a
    :class:`~airflow_argo_eci.hooks.argo_kubernetes_transport.KubernetesTransport`."""
    if settings.transport == "argo_server":
        from airflow_argo_eci.hooks.argo_server_transport import ArgoServerTransport

        return ArgoServerTransport(settings)
    from airflow_argo_eci.hooks.argo_kubernetes_transport import KubernetesTransport

    return KubernetesTransport(settings)
