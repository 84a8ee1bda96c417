"""The local controller's reconcile pass over one Workflow (Argo's workflow operator), in parts:
:mod:`.workflow` (the pass), :mod:`.execution` (templates, retries), :mod:`.pods`, :mod:`.artifact_io`,
:mod:`.steps` and :mod:`.dag`, sharing one :class:`~.state.PassState`; the controller is reached only
through :class:`~.host.ReconcileHost`."""

from airflow_argo_eci.local.argo.reconcile.host import ArtifactSaver, ReconcileHost
from airflow_argo_eci.local.argo.reconcile.workflow import WorkflowReconciler

__all__ = ["ArtifactSaver", "ReconcileHost", "WorkflowReconciler"]
