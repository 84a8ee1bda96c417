"""What every hook of Kubernetes custom objects on the ``argo_workflows`` connection shares: the
``kubernetes`` transport (refusing an ``argo_server`` connection), made once, and its release."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.hooks.argo_connection import ArgoConnectionMixin, ArgoConnectionSettings

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.argo_kubernetes_transport import KubernetesTransport

__all__ = ["KubernetesObjectsMixin"]


class KubernetesObjectsMixin(ArgoConnectionMixin):
    """The transport of a hook whose objects are Kubernetes custom objects (Fluid's, ECI's):
    only a connection with transport ``kubernetes`` reaches them; any other is refused with a
    :class:`~airflow_argo_eci.errors.WorkflowSpecError` naming :attr:`objects_title`."""

    #: what the hook reaches, for the refusal (``"Fluid's objects"``)
    objects_title: str = "these objects"
    _transport: KubernetesTransport | None = None

    def __init__(self, argo_conn_id: str) -> None:
        """A hook on connection ``argo_conn_id``; its settings and transport are made on first use."""
        super().__init__()
        self.argo_conn_id = argo_conn_id
        self._settings = None
        self._transport = None

    def _make_transport(self, settings: ArgoConnectionSettings) -> KubernetesTransport:
        if self._transport is None:
            if settings.transport != "kubernetes":
                raise WorkflowSpecError(
                    f"connection {self.argo_conn_id!r} uses the {settings.transport} transport: {self.objects_title} "
                    "are Kubernetes custom objects, reachable only through a connection with transport 'kubernetes'")
            from airflow_argo_eci.hooks.argo_kubernetes_transport import KubernetesTransport

            self._transport = KubernetesTransport(settings)
        return self._transport

    def get_conn(self) -> KubernetesTransport:
        """The Kubernetes transport of the connection (created once)."""
        return self._make_transport(self.settings)

    async def _atransport(self) -> KubernetesTransport:
        return self._make_transport(await self.asettings())

    @property
    def supports_watch(self) -> bool:
        """Always True: the Kubernetes transport watches."""
        return True

    def close(self) -> None:
        """Release the sync client's connections."""
        if self._transport is not None:
            self._transport.close()

    async def aclose(self) -> None:
        """Release the async client's connections."""
        if self._transport is not None:
            await self._transport.aclose()
