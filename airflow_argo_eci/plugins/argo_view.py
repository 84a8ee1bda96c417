"""The Argo view: a FastAPI app mounted in Airflow's api-server, and the plugin that registers it.

Authentication is Airflow's own (``GetUserDep``: the UI's JWT cookie or a bearer token);
authorization asks Airflow's auth manager: reading a task's workflow needs ``GET`` on its DAG,
Stop / Retry need ``PUT`` (edit) on it, and the list shows only workflows of DAGs the user may
read. Workflows are found by the task-instance labels the operator sets
(:func:`~airflow_argo_eci.workflows.ti_labels`), on the connection named by
``[argo_eci] ui_argo_conn_id`` (default ``argo_default``); artifacts stream from
``[argo_eci] ui_oss_conn_id`` (default ``oss_default``) through ``OSSArtifactHook.open_reader``
without touching disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from airflow_argo_eci.links.argo import TI_VIEW_ROUTE
from airflow_argo_eci.plugins.pages import (
    ListedWorkflow,
    TIKey,
    list_page,
    no_workflow_page,
    offloaded_page,
    ti_page,
)

log = logging.getLogger(__name__)

URL_PREFIX = "/argo-eci"
LIST_VIEW_ROUTE = "argo-workflows"
CONFIG_SECTION = "argo_eci"
_LABEL_DAG_ID = "airflow.apache.org/dag-id"
#: the list shows at most this many workflows (the newest); filter by DAG to see older ones
MAX_LISTED = 500
#: hashed run-id labels are resolved against at most this many of the newest runs of the listed DAGs
MAX_RUNS_MAPPED = 20_000

app = FastAPI(title="Argo Workflows (airflow-argo-eci)", docs_url=None, redoc_url=None, openapi_url=None)
app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")


# ---------------------------------------------------------------------- Airflow glue

def _auth_manager() -> Any:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def may_access_dag(user: Any, dag_id: str, method: str) -> bool:
    """Whether ``user`` may ``GET`` (read) or ``PUT`` (edit) ``dag_id``, as Airflow's auth manager says."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.models.dag import DagModel

    team = DagModel.get_team_name(dag_id)
    return bool(_auth_manager().is_authorized_dag(method=method, details=DagDetails(id=dag_id, team_name=team),
                                                 user=user))


def _require(user: Any, dag_id: str, method: str) -> None:
    if not may_access_dag(user, dag_id, method):
        raise HTTPException(403, f"Forbidden: you may not {'read' if method == 'GET' else 'edit'} DAG {dag_id!r}")


def _argo_hook() -> Any:
    from airflow.configuration import conf

    from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook

    return ArgoWorkflowsHook(conf.get(CONFIG_SECTION, "ui_argo_conn_id", fallback="argo_default"))


def _oss_hook() -> Any:
    from airflow.configuration import conf

    from airflow_argo_eci.hooks.oss import OSSArtifactHook

    return OSSArtifactHook(conf.get(CONFIG_SECTION, "ui_oss_conn_id", fallback="oss_default"))


def _ti_key(dag_id: str, run_id: str, task_id: str, map_index: str) -> TIKey:
    # the UI leaves "{MAP_INDEX}" in the href of an unmapped task instance
    if map_index in ("", "-1", "{MAP_INDEX}"):
        index = -1
    else:
        try:
            index = int(map_index)
        except ValueError:
            index = -2
        if index < -1:
            raise HTTPException(400, f"map_index must be an integer >= -1 (-1: not mapped), got {map_index!r}")
    for field, value in (("dag_id", dag_id), ("run_id", run_id), ("task_id", task_id)):
        if not value:
            raise HTTPException(400, f"{field} is required: open this page from a task instance in the Airflow UI")
    return TIKey(dag_id, run_id, task_id, index)


def _workflows_of(hook: Any, key: TIKey) -> list[dict[str, Any]]:
    """Every workflow the tries of this task instance created, newest first."""
    from airflow_argo_eci.workflows import reattach_selector, ti_labels

    selector = reattach_selector(ti_labels(key.dag_id, key.task_id, key.run_id, key.map_index, 1))
    found = hook.list_workflows(label_selector=selector)
    return sorted(found, key=lambda wf: str((wf.get("metadata") or {}).get("creationTimestamp") or ""),
                  reverse=True)


def _newest_workflow(hook: Any, key: TIKey) -> dict[str, Any]:
    """The newest workflow of the task instance, with its nodes (offloaded ones read by ``hook.hydrate``)."""
    found = _workflows_of(hook, key)
    if not found:
        raise HTTPException(404, f"task {key.task_id} of run {key.run_id} has not created an Argo workflow")
    return dict(hook.hydrate(found[0]))


def _api_error(exc: Exception) -> HTTPException:
    from airflow_argo_eci.errors import ConflictError, InvalidError, NotFoundError
    from airflow_argo_eci.workflows import OffloadedNodesError

    if isinstance(exc, NotFoundError):
        return HTTPException(404, str(exc))
    if isinstance(exc, OffloadedNodesError):
        return HTTPException(409, str(exc))
    if isinstance(exc, (InvalidError, ConflictError)):
        return HTTPException(409, str(exc))
    return HTTPException(502, f"the Argo cluster did not answer: {exc}")


# ---------------------------------------------------------------------- task-instance view

try:  # Airflow's own authentication dependency (JWT cookie of the UI, or a bearer token)
    from airflow.api_fastapi.core_api.security import GetUserDep
except ImportError:  # pragma: no cover - Airflow < 3 has no api-server to mount this in
    GetUserDep = Any  # type: ignore[misc,assignment]


@app.get("/ti", response_class=HTMLResponse)
def ti_view(user: GetUserDep, dag_id: str = "", run_id: str = "", task_id: str = "",
            map_index: str = "-1") -> HTMLResponse:
    """The workflow a task instance created: summary, graph, node tree, logs, outputs, actions."""
    key = _ti_key(dag_id, run_id, task_id, map_index)
    _require(user, key.dag_id, "GET")
    hook = _argo_hook()
    try:
        found = _workflows_of(hook, key)
    except Exception as exc:
        raise _api_error(exc) from exc
    if not found:
        return HTMLResponse(no_workflow_page(key))
    from airflow_argo_eci.workflows import OffloadedNodesError

    try:
        newest = hook.hydrate(found[0])  # offloaded nodes: read from the Argo Server
    except OffloadedNodesError as exc:
        return HTMLResponse(offloaded_page(key, found[0], str(exc)))
    except Exception as exc:
        raise _api_error(exc) from exc
    try:
        return HTMLResponse(ti_page(key, newest, can_edit=may_access_dag(user, key.dag_id, "PUT"), tries=len(found)))
    except OffloadedNodesError as exc:
        return HTMLResponse(offloaded_page(key, newest, str(exc)))


@app.get("/ti/log", response_class=PlainTextResponse)
def ti_log(user: GetUserDep, pod: str, dag_id: str = "", run_id: str = "", task_id: str = "",
           map_index: str = "-1") -> PlainTextResponse:
    """One pod's log (``main`` container) of the task instance's workflow, as text."""
    key = _ti_key(dag_id, run_id, task_id, map_index)
    _require(user, key.dag_id, "GET")
    hook = _argo_hook()
    try:
        workflow = _newest_workflow(hook, key)
        pods = [name for _, name in hook.pods_of(workflow)]
        if pod not in pods:
            raise HTTPException(404, f"pod {pod!r} is not a pod of workflow {workflow['metadata']['name']}; "
                                f"its pods: {', '.join(pods) or 'none yet'}")
        meta = workflow["metadata"]
        lines = hook.read_pod_log(pod, meta.get("namespace"), workflow=meta["name"])
    except HTTPException:
        raise
    except Exception as exc:
        raise _api_error(exc) from exc
    return PlainTextResponse("".join(f"{line}\n" for _, line in lines))


@app.get("/ti/artifact")
def ti_artifact(user: GetUserDep, node_id: str, name: str, dag_id: str = "", run_id: str = "", task_id: str = "",
                map_index: str = "-1") -> StreamingResponse:
    """Stream an output artifact from OSS (``OSSArtifactHook.open_reader``; nothing is staged on disk)."""
    from airflow_argo_eci.hooks.oss import workflow_artifacts

    key = _ti_key(dag_id, run_id, task_id, map_index)
    _require(user, key.dag_id, "GET")
    try:
        workflow = _newest_workflow(_argo_hook(), key)
    except HTTPException:
        raise
    except Exception as exc:
        raise _api_error(exc) from exc
    refs = [r for r in workflow_artifacts(workflow) if r.node_id == node_id and r.name == name]
    if not refs:
        raise HTTPException(404, f"workflow {workflow['metadata']['name']} has no OSS output artifact "
                                 f"{name!r} on node {node_id!r}")
    ref = refs[0]
    try:
        reader = _oss_hook().open_reader(ref.key, bucket_name=ref.bucket)
    except Exception as exc:
        raise HTTPException(404 if "NoSuch" in str(getattr(exc, "code", "")) else 502,
                            f"artifact {ref.node}/{ref.name} ({ref.url}): {exc}") from exc

    def chunks() -> Iterator[bytes]:
        try:
            for chunk in reader.iter_chunks():
                yield bytes(chunk)
        finally:
            reader.close()

    filename = ref.name + (".tgz" if ref.archive == "tar" else "")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in filename) or "artifact"
    headers = {"Content-Disposition": f'attachment; filename="{safe}"'}
    size = getattr(reader, "size", None)
    if isinstance(size, int):
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)


def _confirmed(confirm: str | None) -> None:
    if confirm != "yes":
        raise HTTPException(400, "send the header X-Argo-Eci-Confirm: yes to confirm this action "
                                 "(the view's button asks first)")


def _act_on_workflow(user: Any, key: TIKey, confirm: str | None, verb: str,
                     act: Callable[[Any, dict[str, Any]], Any]) -> dict[str, Any]:
    """One guarded action on the task instance's newest workflow: edit access to the DAG, the
    confirmation header, then ``act(hook, metadata)``; API errors become HTTP errors."""
    _require(user, key.dag_id, "PUT")
    _confirmed(confirm)
    hook = _argo_hook()
    try:
        meta = _newest_workflow(hook, key)["metadata"]
        act(hook, meta)
    except HTTPException:
        raise
    except Exception as exc:
        raise _api_error(exc) from exc
    log.info("user %s: %s workflow %s/%s", getattr(user, "get_name", lambda: "?")(), verb, meta.get("namespace"),
             meta["name"])
    return {"ok": True, "message": f"{verb} workflow {meta['name']}"}


@app.post("/ti/stop")
def ti_stop(user: GetUserDep, dag_id: str = "", run_id: str = "", task_id: str = "", map_index: str = "-1",
            x_argo_eci_confirm: str | None = Header(default=None)) -> dict[str, Any]:
    """``argo stop`` the task instance's workflow (exit handlers run); needs edit access to the DAG."""
    return _act_on_workflow(
        user, _ti_key(dag_id, run_id, task_id, map_index), x_argo_eci_confirm, "stopping",
        lambda hook, meta: hook.stop_workflow(meta["name"], meta.get("namespace"), uid=str(meta.get("uid") or "")))


@app.post("/ti/retry")
def ti_retry(user: GetUserDep, dag_id: str = "", run_id: str = "", task_id: str = "", map_index: str = "-1",
             x_argo_eci_confirm: str | None = Header(default=None)) -> dict[str, Any]:
    """``argo retry`` the task instance's Failed/Error workflow; needs edit access to the DAG."""
    return _act_on_workflow(
        user, _ti_key(dag_id, run_id, task_id, map_index), x_argo_eci_confirm, "retrying",
        lambda hook, meta: hook.retry_workflow(meta["name"], meta.get("namespace")))


# ---------------------------------------------------------------------- list of workflows

def _known_ids(dag_ids: set[str]) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """``{(dag_id, run-id label): run_id}`` and ``{(dag_id, task-id label): task_id}`` from the metadata
    database, so hashed label values link back to the real run and task."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_argo_eci.workflows import ti_labels

    runs: dict[tuple[str, str], str] = {}
    tasks: dict[tuple[str, str], str] = {}
    if not dag_ids:
        return runs, tasks
    with create_session() as session:
        newest_runs = (select(DagRun.dag_id, DagRun.run_id).where(DagRun.dag_id.in_(dag_ids))
                       .order_by(DagRun.id.desc()).limit(MAX_RUNS_MAPPED))
        for dag_id, run_id in session.execute(newest_runs):
            runs[(dag_id, ti_labels(dag_id, "t", run_id, -1, 1)["airflow.apache.org/run-id"])] = run_id
        stmt = select(TaskInstance.dag_id, TaskInstance.task_id).where(TaskInstance.dag_id.in_(dag_ids)).distinct()
        for dag_id, task_id in session.execute(stmt):
            tasks[(dag_id, ti_labels(dag_id, task_id, "r", -1, 1)["airflow.apache.org/task-id"])] = task_id
    return runs, tasks


@app.get("/workflows", response_class=HTMLResponse)
def workflows_view(user: GetUserDep, dag_id: str | None = Query(default=None)) -> HTMLResponse:
    """Workflows Airflow created (found by the task-instance labels), newest first, of the DAGs the
    user may read; ``dag_id`` filters to one DAG."""
    from airflow_argo_eci.workflows import ti_labels

    readable = sorted(_auth_manager().get_authorized_dag_ids(user=user, method="GET"))
    if dag_id:
        _require(user, dag_id, "GET")
    by_label = {ti_labels(d, "t", "r", -1, 1)[_LABEL_DAG_ID]: d for d in readable}
    selector = f"{_LABEL_DAG_ID}={ti_labels(dag_id, 't', 'r', -1, 1)[_LABEL_DAG_ID]}" if dag_id else _LABEL_DAG_ID
    try:
        found = _argo_hook().list_workflows(label_selector=selector)
    except Exception as exc:
        raise _api_error(exc) from exc
    found.sort(key=lambda wf: str((wf.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True)
    visible = [(wf, by_label[(wf.get("metadata") or {}).get("labels", {}).get(_LABEL_DAG_ID, "")])
               for wf in found if (wf.get("metadata") or {}).get("labels", {}).get(_LABEL_DAG_ID) in by_label]
    visible = visible[:MAX_LISTED]
    runs, tasks = _known_ids({d for _, d in visible})
    items = []
    for wf, real_dag in visible:
        labels = wf["metadata"].get("labels") or {}
        index = labels.get("airflow.apache.org/map-index")
        items.append(ListedWorkflow(
            workflow=wf, dag_id=real_dag,
            run_id=runs.get((real_dag, labels.get("airflow.apache.org/run-id", ""))),
            task_id=tasks.get((real_dag, labels.get("airflow.apache.org/task-id", ""))),
            map_index=int(index) if index and index.isdigit() else -1,
            try_number=str(labels.get("airflow.apache.org/try-number", "")),
        ))
    return HTMLResponse(list_page(items, readable, dag_id))


# ---------------------------------------------------------------------- the plugin

class ArgoEciPlugin(AirflowPlugin):
    """Registered through the provider info's ``plugins``: installing the package is enough once
    ``[core] lazy_discover_providers = False`` (Airflow 3.3 loads provider plugins only then; the
    stack sets it)."""

    name = "argo_eci"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Argo Workflows view"}]
    external_views = [
        {
            "name": "Argo Workflow",
            "href": f"{URL_PREFIX}/ti?dag_id={{DAG_ID}}&run_id={{RUN_ID}}&task_id={{TASK_ID}}"
                    "&map_index={MAP_INDEX}",
            "destination": "task_instance",
            "url_route": TI_VIEW_ROUTE,
        },
        {
            "name": "Argo Workflows",
            "href": f"{URL_PREFIX}/workflows",
            "destination": "nav",
            "category": "browse",
            "url_route": LIST_VIEW_ROUTE,
        },
    ]
