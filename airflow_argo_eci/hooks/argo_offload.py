"""Reading a workflow whose node status Argo offloaded to its database (``persistence.nodeStatusOffLoad``:
``status.offloadNodeStatusVersion`` set, neither ``status.nodes`` nor ``status.compressedNodes``) the
way Argo's clients do: from the Argo Server, which hydrates it (``GET /api/v1/workflows/{ns}/{name}``).

:func:`hydrate_workflow` is the one operation behind ``ArgoWorkflowsHook.hydrate`` / ``ahydrate``
and the ``kubernetes`` transport's retry: over the ``argo_server`` transport its request goes to the
connection's server; over the ``kubernetes`` transport to the server the connection names in its
``argo_server_url`` extra (:class:`ArgoServerRequest`, :func:`argo_server_transport`), and without
that extra it fails with :class:`~airflow_argo_eci.workflows.OffloadedNodesError` naming it.

The Argo Server clears ``offloadNodeStatusVersion`` when it hydrates, so the served copy is matched
to the object read over the Kubernetes API by ``metadata.uid`` (another uid is a same-named
successor: refused) and ``metadata.resourceVersion`` (the same object version, hence the same
offload version; a server copy that still names a version must name the same one). When the
workflow changed between the two reads it is read again (:data:`HYDRATE_ATTEMPTS` times) and then
refused.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_argo_eci.hooks.argo_connection import ArgoConnectionSettings
from airflow_argo_eci.hooks.argo_requests import ApiRequest, Operation
from airflow_argo_eci.hooks.argo_server_requests import workflow_path
from airflow_argo_eci.workflows import OffloadedNodesError

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.argo_server_transport import ArgoServerTransport

#: reads of the workflow and its hydrated copy before a workflow that keeps changing is refused
HYDRATE_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True)
class ArgoServerRequest(ApiRequest):
    """A request only the Argo Server answers; a ``kubernetes`` transport sends it to the
    connection's ``argo_server_url``."""


def offload_version(workflow: Mapping[str, Any]) -> str:
    """The workflow's ``status.offloadNodeStatusVersion`` when its nodes are offloaded (neither
    ``nodes`` nor ``compressedNodes`` in the object), else ``""``."""
    status = workflow.get("status")
    if not isinstance(status, Mapping) or status.get("nodes") or status.get("compressedNodes"):
        return ""
    return str(status.get("offloadNodeStatusVersion") or "")


def _identity(workflow: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta = workflow.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""), str(meta.get("uid") or ""),
            str(meta.get("resourceVersion") or ""))


def hydration_request(workflow: Mapping[str, Any]) -> ArgoServerRequest:
    """The Argo Server GET of ``workflow`` that returns it hydrated."""
    namespace, name, _, _ = _identity(workflow)
    version = offload_version(workflow)
    return ArgoServerRequest("GET", workflow_path(namespace, name),
                             f"read the offloaded nodes of workflow {namespace}/{name} "
                             f"(status.offloadNodeStatusVersion={version}) from the Argo Server")


def hydrated_copy(workflow: Mapping[str, Any], served: Mapping[str, Any]) -> dict[str, Any] | None:
    """``workflow`` with the nodes of ``served`` (the Argo Server's copy) and its offload version
    cleared, as Argo's hydrator leaves it; None when ``served`` is a later version of the workflow
    (read again). Raises :class:`OffloadedNodesError` when ``served`` is another workflow (uid)
    or names another offload version, or came back without its nodes."""
    namespace, name, uid, rv = _identity(workflow)
    _, _, served_uid, served_rv = _identity(served)
    version = offload_version(workflow)
    where = f"workflow {namespace}/{name}"
    if served_uid != uid:
        raise OffloadedNodesError(
            f"{where}: the Argo Server returned a workflow with uid {served_uid or '(none)'}, not {uid}: a different "
            "workflow of the same name; its nodes are not used")
    status = served.get("status")
    status = status if isinstance(status, Mapping) else {}
    served_version = str(status.get("offloadNodeStatusVersion") or "")
    if served_version and served_version != version and served_rv == rv:
        raise OffloadedNodesError(
            f"{where}: the Argo Server returned offload version {served_version}, not {version}; its nodes are "
            "not used")
    if served_rv != rv:
        return None
    if offload_version(served):
        raise OffloadedNodesError(
            f"{where}: the Argo Server returned it without its nodes (status.offloadNodeStatusVersion={version}): "
            "is node status offloading (persistence.nodeStatusOffLoad) configured for the Argo Server too?")
    result = copy.deepcopy(dict(workflow))
    result_status = result.setdefault("status", {})
    for key in ("nodes", "compressedNodes"):
        if status.get(key):
            result_status[key] = copy.deepcopy(status[key])
    result_status.pop("offloadNodeStatusVersion", None)
    return result


def hydrate_workflow(workflow: dict[str, Any], read: Callable[[str, str], Operation[dict[str, Any]]]
                     ) -> Operation[dict[str, Any]]:
    """``workflow`` with its offloaded nodes (unchanged when they are not offloaded), read from the
    Argo Server; ``read(name, namespace)`` reads the workflow again from where ``workflow`` came
    from when it changed between the two reads (see the module docstring)."""
    for _ in range(HYDRATE_ATTEMPTS):
        if not offload_version(workflow):
            return workflow
        served = yield hydration_request(workflow)
        result = hydrated_copy(workflow, served)
        if result is not None:
            return result
        namespace, name, uid, _ = _identity(workflow)
        workflow = yield from read(name, namespace)
        if _identity(workflow)[2] != uid:
            raise OffloadedNodesError(
                f"workflow {namespace}/{name} was replaced (uid {_identity(workflow)[2]}, not {uid}) while its "
                "offloaded nodes were read")
    namespace, name, _, rv = _identity(workflow)
    raise OffloadedNodesError(
        f"workflow {namespace}/{name} changed each time its offloaded nodes were read from the Argo Server "
        f"({HYDRATE_ATTEMPTS} reads, last resourceVersion {rv}); read it again later")


def argo_server_transport(settings: ArgoConnectionSettings, context: str) -> ArgoServerTransport:
    """An ``argo_server`` transport to the ``argo_server_url`` of a ``kubernetes``-transport
    connection (its ``argo_server_token``, and the connection's TLS settings, timeouts and
    retries); :class:`OffloadedNodesError` naming the extra when the connection has none."""
    if not settings.argo_server_url:
        raise OffloadedNodesError(
            f"{context}: connection {settings.conn_id!r} (kubernetes transport) names no Argo Server. The Kubernetes "
            "API does not hold offloaded nodes; set the connection's extra 'argo_server_url' to the Argo Server's URL "
            "(e.g. https://argo-server.argo:2746) and 'argo_server_token' to its bearer token, or use the "
            "argo_server transport")
    from airflow_argo_eci.hooks.argo_server_transport import ArgoServerTransport

    server = dataclasses.replace(settings, transport="argo_server", host=settings.argo_server_url,
                                 token=settings.argo_server_token, kube_config=None)
    return ArgoServerTransport(server)
