"""The subset of the Argo Server REST API that Hera and the Argo CLI use, assembled into one router.

Served on the same port as the Kubernetes API and behind the same bearer token. Everything reads and
writes the :class:`Store`; the workflow controller reacts to the changes (a stopped workflow gets
``spec.shutdown``, a retried one gets its failed nodes removed, ...), exactly as with the real Argo
Server, which also only edits Workflow objects.

Routes (as in Argo Server's ``workflow``, ``workflowtemplate``, ``clusterworkflowtemplate`` and
``info`` services), one module per service:

* :mod:`.argo_workflow_routes`: ``/api/v1/workflows/{ns}``: POST create (``{"workflow": ...,
  "serverDryRun": bool}``), GET list (``listOptions.labelSelector|fieldSelector|limit|continue``;
  ``fields`` is ignored and whole objects are returned, offloaded nodes hydrated); ``/lint`` POST;
  ``/submit`` POST (from a WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow);
  ``/api/v1/workflows/{ns}/{name}``: GET (hydrated), DELETE (also deletes the workflow's pods, as
  the Kubernetes garbage collector does for their owner references); PUT ``/stop``, ``/terminate``,
  ``/suspend``, ``/resume``, ``/retry``,
  ``/resubmit``
* :mod:`.argo_log_routes`: ``/api/v1/workflows/{ns}/{name}/log`` and
  ``/api/v1/workflows/{ns}/{name}/{podName}/log``
* :mod:`.argo_template_routes`: ``/api/v1/workflow-templates/{ns}[/{name}]`` and
  ``/api/v1/cluster-workflow-templates[/{name}]``
* :mod:`.argo_artifact_routes`: ``/artifact-files/...``, ``/artifacts/...``, ``/input-artifacts/...``
  and the ``-by-uid`` forms, streamed from the OSS store (plain-text errors, as Argo's)
* here: ``/api/v1/version``, ``/api/v1/info``

Errors are gRPC-gateway JSON like the real server (:mod:`.argo_server_base`): ``{"code": <grpc
code>, "message": ...}`` with the matching HTTP status (404 NotFound=5, 409 AlreadyExists=6 /
Aborted=10, 400 InvalidArgument=3, 401 Unauthenticated=16, 403 PermissionDenied=7, 500 Internal=13).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from airflow_argo_eci.conventions import ARGO_VERSION
from airflow_argo_eci.local.api.argo_artifact_routes import add_artifact_routes
from airflow_argo_eci.local.api.argo_log_routes import add_log_routes
from airflow_argo_eci.local.api.argo_server_base import ArgoRoute
from airflow_argo_eci.local.api.argo_template_routes import add_template_routes
from airflow_argo_eci.local.api.argo_workflow_routes import add_workflow_routes
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.argo.artifacts import OSSClients
from airflow_argo_eci.local.argo.offload import OffloadRepository
from airflow_argo_eci.local.paths import StatePaths


def build_argo_server_router(store: Store, paths: StatePaths, *, oss_clients: OSSClients | None = None,
                             artifact_credentials: tuple[str, str] | None = None) -> APIRouter:
    """The Argo Server REST routes over ``store`` (logs read from ``paths``).

    Artifacts are read with ``oss_clients`` (default: new clients trusting the local cluster's
    certificate for loopback endpoints) and, for repositories that name no Secret (the controller's
    default one), with ``artifact_credentials`` (``(access key id, secret)``).
    """
    router = APIRouter(route_class=ArgoRoute)

    @router.get("/api/v1/version")
    async def version() -> dict[str, str]:
        return {"version": ARGO_VERSION, "buildDate": "2024-01-01T00:00:00Z", "gitCommit": "local",
                "gitTag": ARGO_VERSION, "gitTreeState": "clean", "goVersion": "go1.22", "compiler": "gc",
                "platform": "linux/amd64"}

    @router.get("/api/v1/info")
    async def info() -> dict[str, Any]:
        return {"managedNamespace": "", "links": [], "columns": [], "modals": {}, "navColor": ""}

    offloads = OffloadRepository(paths.db)  # nodes the controller offloaded, served hydrated
    add_workflow_routes(router, store, offloads)
    add_log_routes(router, store, paths)
    add_template_routes(router, store)
    add_artifact_routes(router, store, oss_clients if oss_clients is not None else OSSClients(paths.tls_cert),
                        artifact_credentials, offloads)
    return router
