"""What the operator and the sensor share: their hook and namespace, from ``argo_conn_id``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook


class ArgoHookMixin:
    """The lazily made :class:`~airflow_argo_eci.hooks.argo.ArgoWorkflowsHook` and the namespace of a
    task with ``argo_conn_id`` and ``namespace`` attributes (its ``__init__`` sets ``_hook = None``)."""

    argo_conn_id: str
    namespace: str | None
    _hook: ArgoWorkflowsHook | None

    @property
    def hook(self) -> ArgoWorkflowsHook:
        """The hook for ``argo_conn_id`` (made on first use, so DAG parsing stays cheap)."""
        if self._hook is None:
            from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook

            self._hook = ArgoWorkflowsHook(argo_conn_id=self.argo_conn_id)
        return self._hook

    @property
    def resolved_namespace(self) -> str:
        """``namespace``, else the connection's (or its kubeconfig context's) default."""
        return self.namespace or self.hook.get_conn().default_namespace
