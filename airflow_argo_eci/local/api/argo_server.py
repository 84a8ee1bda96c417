"""The subset of the Argo Server REST API (``/api/v1/...``) that Hera and the Argo CLI use.

Served on the same port as the Kubernetes API and behind the same bearer token. Everything reads and
writes the :class:`Store`; the workflow controller reacts to the changes (a stopped workflow gets
``spec.shutdown``, a retried one gets its failed nodes removed, ...), exactly as with the real Argo
Server, which also only edits Workflow objects.

Routes (as in Argo Server's ``workflow``, ``workflowtemplate``, ``clusterworkflowtemplate`` and
``info`` services):

* ``/api/v1/workflows/{ns}``: POST create (``{"workflow": ..., "serverDryRun": bool}``), GET list
  (``listOptions.labelSelector|fieldSelector|limit|continue``; ``fields`` is ignored and whole
  objects are returned); ``/lint`` POST; ``/submit`` POST (from a WorkflowTemplate,
  ClusterWorkflowTemplate or CronWorkflow)
* ``/api/v1/workflows/{ns}/{name}``: GET, DELETE (also deletes the workflow's pods, as the
  Kubernetes garbage collector does for their owner references); PUT ``/stop``, ``/terminate``,
  ``/suspend``, ``/resume``, ``/retry``, ``/resubmit``
* ``/api/v1/workflows/{ns}/{name}/log`` and ``/api/v1/workflows/{ns}/{name}/{podName}/log``:
  newline-delimited ``{"result": {"content": ..., "podName": ...}}`` (``podName``,
  ``logOptions.container|follow|tailLines|timestamps|sinceSeconds|sinceTime.seconds``, ``grep``
  (a regular expression), ``selector`` (a pod label selector))
* ``/api/v1/workflow-templates/{ns}[/{name}]`` and ``/api/v1/cluster-workflow-templates[/{name}]``:
  create, list, get, update (PUT ``{"template": ...}``), delete, ``/lint``
* ``/api/v1/version``, ``/api/v1/info``

Errors are gRPC-gateway JSON like the real server: ``{"code": <grpc code>, "message": ...}`` with
the matching HTTP status (404 NotFound=5, 409 AlreadyExists=6 / Aborted=10, 400 InvalidArgument=3,
401 Unauthenticated=16, 403 PermissionDenied=7, 500 Internal=13).
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import re2
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from airflow_argo_eci.conventions import (
    ANNOTATION_NODE_ID,
    ARGO_VERSION,
    LABEL_CLUSTER_WORKFLOW_TEMPLATE,
    LABEL_COMPLETED,
    LABEL_CRON_WORKFLOW,
    LABEL_WORKFLOW,
    LABEL_WORKFLOW_TEMPLATE,
    TERMINAL_PHASES,
)
from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.k8s_routes import int_query
from airflow_argo_eci.local.api.limits import json_response, read_json_body
from airflow_argo_eci.local.api.pod_logs import POD_DONE_PHASES
from airflow_argo_eci.local.api.resources import (
    CLUSTER_WORKFLOW_TEMPLATES,
    CRON_WORKFLOWS,
    PODS,
    WORKFLOW_TEMPLATES,
    WORKFLOWS,
    ResourceType,
)
from airflow_argo_eci.local.api.selectors import parse_label_selector
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.api.validation import dns1123_label
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.retry import (
    RetryError,
    apply_parameters,
    formulate_resubmit,
    formulate_retry,
    parse_parameters,
    update_suspend_nodes,
)

#: how often a following log request looks for new lines and pods
LOG_POLL_INTERVAL = 0.1

_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 410: 9, 413: 8, 415: 3, 422: 3, 500: 13, 501: 12}
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


# ---------------------------------------------------------------------------- errors


def grpc_error_response(error: ApiError) -> JSONResponse:
    """An :class:`ApiError` as the gRPC-gateway error body and HTTP status of the Argo Server."""
    http = error.code
    if http == 409:
        code = 6 if error.reason == "AlreadyExists" else 10
    else:
        code = _GRPC.get(http, 13 if http >= 500 else 2)
    if http in (415, 422):
        http = 400
    return JSONResponse({"code": code, "message": error.message, "details": []}, status_code=http)


class _ArgoRoute(APIRoute):
    """Renders :class:`ApiError` (raised before a response starts) the Argo Server way."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return grpc_error_response(exc)

        return handle


# ---------------------------------------------------------------------------- request helpers


async def _body(request: Request) -> dict[str, Any]:
    data = await read_json_body(request, required=False)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise errors.bad_request(f"the request body must be a JSON object, got {type(data).__name__}")
    return data


def _query_bool(request: Request, key: str) -> bool:
    raw = request.query_params.get(key)
    if raw in (None, ""):
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise errors.bad_request(f'query parameter "{key}" must be true or false, got "{raw}"')


def _query_int(request: Request, key: str) -> int | None:
    return int_query(request.query_params.get(key), key)


def _object_field(body: dict[str, Any], key: str, required: bool = True) -> dict[str, Any]:
    value = body.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise errors.bad_request(f'"{key}" must be a JSON object, got {type(value).__name__}')
    return value


def _list_response(rt: ResourceType, items: list[dict[str, Any]], rv: str, token: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if token:
        meta["continue"] = token
    return {"apiVersion": rt.api_version, "kind": f"{rt.kind}List", "metadata": meta, "items": items}


def _is_completed(wf: dict[str, Any]) -> bool:
    return ((wf.get("status") or {}).get("phase") in TERMINAL_PHASES
            or ((wf.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPLETED) == "true")


# ---------------------------------------------------------------------------- validation


def _validate_workflow_spec(store: Store, namespace: str | None, kind: str, obj: dict[str, Any]) -> None:
    """Structural checks Argo's validator does first; errors name the field (400 InvalidArgument)."""
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise errors.bad_request(f"{kind}.metadata must be an object")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise errors.bad_request(f"{kind}.spec is required and must be an object")
    templates = spec.get("templates")
    if templates is not None and not isinstance(templates, list):
        raise errors.bad_request(f"{kind}.spec.templates must be a list")
    names: set[str] = set()
    for index, tmpl in enumerate(templates or []):
        if not isinstance(tmpl, dict) or not isinstance(tmpl.get("name"), str) or not tmpl["name"]:
            raise errors.bad_request(f"{kind}.spec.templates[{index}].name is required")
        if tmpl["name"] in names:
            raise errors.bad_request(f"{kind}.spec.templates[{index}].name '{tmpl['name']}' is not unique")
        names.add(tmpl["name"])
    ref = spec.get("workflowTemplateRef")
    if ref is not None:
        if not isinstance(ref, dict) or not isinstance(ref.get("name"), str) or not ref["name"]:
            raise errors.bad_request(f"{kind}.spec.workflowTemplateRef.name is required")
        if ref.get("clusterScope"):
            store.get(CLUSTER_WORKFLOW_TEMPLATES, None, ref["name"])
        else:
            store.get(WORKFLOW_TEMPLATES, namespace, ref["name"])
        return
    if kind != "Workflow":
        return
    if not templates:
        raise errors.bad_request("Workflow.spec.templates is required (or spec.workflowTemplateRef)")
    entry = spec.get("entrypoint")
    if not isinstance(entry, str) or not entry:
        raise errors.bad_request("Workflow.spec.entrypoint is required")
    if "{{" not in entry and entry not in names:
        raise errors.bad_request(
            f"Workflow.spec.entrypoint template '{entry}' is not defined in spec.templates"
        )


# ---------------------------------------------------------------------------- node selection


@contextmanager
def _as_bad_request() -> Iterator[None]:
    """A :class:`RetryError` from the shared ``argo retry``/``resume`` logic as 400 BadRequest
    (gRPC InvalidArgument)."""
    try:
        yield
    except RetryError as exc:
        raise errors.bad_request(str(exc)) from exc


def _set_suspend_nodes(wf: dict[str, Any], selector: str, phase: str, message: str) -> None:
    """Set ``phase`` on the running Suspend nodes, or on those matching ``selector`` (none matching
    is an error), as ``argo resume`` / ``argo stop --node-field-selector`` do."""
    with _as_bad_request():
        changed = update_suspend_nodes(wf, phase, message=message, selector=selector, field="nodeFieldSelector")
    if changed:
        # merged over status.compressedNodes by workflow_nodes() when the controller compressed them
        wf["status"].setdefault("nodes", {}).update(changed)


# ---------------------------------------------------------------------------- retry / resubmit / submit


def _parse_pairs(text: Any, field_name: str) -> dict[str, str]:
    if text in (None, ""):
        return {}
    if not isinstance(text, str):
        raise errors.bad_request(f'{field_name} must be a string like "a=b,c=d"')
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise errors.bad_request(f'{field_name}: "{part}" must look like key=value')
        out[key] = value
    return out


def workflow_from_resource(store: Store, namespace: str, kind: str, name: str) -> dict[str, Any]:
    """The Workflow ``argo submit --from <kind>/<name>`` creates (before submit options)."""
    if kind == "WorkflowTemplate":
        tmpl = store.get(WORKFLOW_TEMPLATES, namespace, name)
        label, cluster = LABEL_WORKFLOW_TEMPLATE, False
    elif kind == "ClusterWorkflowTemplate":
        tmpl = store.get(CLUSTER_WORKFLOW_TEMPLATES, None, name)
        label, cluster = LABEL_CLUSTER_WORKFLOW_TEMPLATE, True
    elif kind == "CronWorkflow":
        cron = store.get(CRON_WORKFLOWS, namespace, name)
        cron_spec = cron.get("spec") or {}
        wf_meta = cron_spec.get("workflowMetadata") or {}
        labels = {**(wf_meta.get("labels") or {}), LABEL_CRON_WORKFLOW: name}
        meta: dict[str, Any] = {"generateName": f"{name}-", "labels": labels}
        if wf_meta.get("annotations"):
            meta["annotations"] = dict(wf_meta["annotations"])
        return {"apiVersion": WORKFLOWS.api_version, "kind": "Workflow", "metadata": meta,
                "spec": copy.deepcopy(cron_spec.get("workflowSpec") or {})}
    else:
        raise errors.bad_request(
            "resourceKind must be one of WorkflowTemplate, ClusterWorkflowTemplate, CronWorkflow, "
            f'got "{kind}"'
        )
    wf_meta = (tmpl.get("spec") or {}).get("workflowMetadata") or {}
    labels = {**(wf_meta.get("labels") or {}), label: name}
    meta = {"generateName": f"{name}-", "labels": labels}
    if wf_meta.get("annotations"):
        meta["annotations"] = dict(wf_meta["annotations"])
    ref: dict[str, Any] = {"name": name}
    if cluster:
        ref["clusterScope"] = True
    return {"apiVersion": WORKFLOWS.api_version, "kind": "Workflow", "metadata": meta,
            "spec": {"workflowTemplateRef": ref}}


def apply_submit_options(wf: dict[str, Any], options: dict[str, Any]) -> None:
    """``submitOptions``: name, generateName, entryPoint, parameters, labels, annotations,
    serviceAccount, priority, podPriorityClassName (others are ignored)."""
    meta = wf["metadata"]
    spec = wf["spec"]
    for key in ("name", "generateName", "entryPoint", "serviceAccount", "podPriorityClassName"):
        if options.get(key) is not None and not isinstance(options[key], str):
            raise errors.bad_request(f"submitOptions.{key} must be a string")
    if options.get("name"):
        meta["name"] = options["name"]
        meta.pop("generateName", None)
    if options.get("generateName"):
        meta["generateName"] = options["generateName"]
    if options.get("entryPoint"):
        spec["entrypoint"] = options["entryPoint"]
    if options.get("serviceAccount"):
        spec["serviceAccountName"] = options["serviceAccount"]
    if options.get("podPriorityClassName"):
        spec["podPriorityClassName"] = options["podPriorityClassName"]
    if options.get("priority") is not None:
        spec["priority"] = options["priority"]
    meta.setdefault("labels", {}).update(_parse_pairs(options.get("labels"), "submitOptions.labels"))
    annotations = _parse_pairs(options.get("annotations"), "submitOptions.annotations")
    if annotations:
        meta.setdefault("annotations", {}).update(annotations)
    with _as_bad_request():
        apply_parameters(spec, parse_parameters(options.get("parameters"), "submitOptions.parameters"))


# ---------------------------------------------------------------------------- logs


class _LogQuery:
    """The log options of one request."""

    def __init__(self, request: Request, pod_name: str | None) -> None:
        qp = request.query_params
        self.pod_name = pod_name or qp.get("podName") or None
        self.container = qp.get("logOptions.container") or "main"
        if dns1123_label(self.container):
            raise errors.bad_request(f'logOptions.container "{self.container[:80]}" is not a container name (an RFC '
                                     '1123 label such as "main")')
        self.follow = _query_bool(request, "logOptions.follow")
        self.timestamps = _query_bool(request, "logOptions.timestamps")
        self.tail = _query_int(request, "logOptions.tailLines")
        self.selector = qp.get("selector") or ""
        parse_label_selector(self.selector)  # a bad selector is a 400 now, not a broken stream later
        since_seconds = _query_int(request, "logOptions.sinceSeconds")
        since_time = _query_int(request, "logOptions.sinceTime.seconds")
        self.since: float | None = None
        if since_seconds is not None:
            self.since = time.time() - since_seconds
        if since_time is not None:
            self.since = float(since_time)
        grep = qp.get("grep") or ""
        # Argo compiles grep with Go's regexp: linear time, RE2 syntax
        try:
            self.grep = re2.compile(grep, _RE2_OPTIONS) if grep else None
        except re2.error as exc:
            raise errors.bad_request(f'grep: invalid regular expression "{grep[:200]}": {exc}') from exc

    def entry(self, pod: str, line: str) -> tuple[float, bytes] | None:
        """``(timestamp, NDJSON line)`` of one log file line, or None when filtered out."""
        stamp, _, content = line.partition(" ")
        when = _parse_stamp(stamp)
        if self.since is not None and when < self.since:
            return None
        if self.grep is not None and not self.grep.search(content):
            return None
        text = line if self.timestamps else content
        return when, (json.dumps({"result": {"content": text, "podName": pod}}) + "\n").encode()


def _parse_stamp(stamp: str) -> float:
    try:
        base, _, frac = stamp.rstrip("Z").partition(".")
        parsed = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        return parsed.timestamp() + (float("0." + frac) if frac else 0.0)
    except ValueError:
        return 0.0


def _read_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """Complete lines of ``path`` from byte ``offset``; returns them and the new offset."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    chunk = data[: end + 1]
    return chunk.decode("utf-8", errors="replace").splitlines(), offset + len(chunk)


def _sorted_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))


# ---------------------------------------------------------------------------- router


def build_argo_server_router(store: Store, paths: StatePaths) -> APIRouter:
    """The Argo Server REST routes over ``store`` (logs read from ``paths``)."""
    router = APIRouter(route_class=_ArgoRoute)

    def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        return run_in_threadpool(fn, *args, **kwargs)

    async def respond(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Response:
        """Run ``fn`` and serialize its result in the thread pool (a large workflow never stalls the loop)."""
        return await json_response(await run_in_threadpool(fn, *args, **kwargs))

    # ------------------------------------------------------------------ info

    @router.get("/api/v1/version")
    async def version() -> dict[str, str]:
        return {"version": ARGO_VERSION, "buildDate": "2024-01-01T00:00:00Z", "gitCommit": "local",
                "gitTag": ARGO_VERSION, "gitTreeState": "clean", "goVersion": "go1.22", "compiler": "gc",
                "platform": "linux/amd64"}

    @router.get("/api/v1/info")
    async def info() -> dict[str, Any]:
        return {"managedNamespace": "", "links": [], "columns": [], "modals": {}, "navColor": ""}

    # ------------------------------------------------------------------ workflows

    def create_workflow(namespace: str, wf: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        wf = copy.deepcopy(wf)
        wf.setdefault("apiVersion", WORKFLOWS.api_version)
        wf.setdefault("kind", "Workflow")
        meta = wf.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("workflow.metadata must be an object")
        if meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request(
                f'workflow.metadata.namespace "{meta["namespace"]}" does not match the namespace in the URL '
                f'"{namespace}"'
            )
        meta["namespace"] = namespace
        wf.pop("status", None)
        _validate_workflow_spec(store, namespace, "Workflow", wf)
        if not meta.get("name") and not meta.get("generateName"):
            raise errors.bad_request("workflow.metadata.name or workflow.metadata.generateName is required")
        if dry_run:
            return wf
        return store.create(WORKFLOWS, namespace, wf)

    @router.post("/api/v1/workflows/{namespace}")
    async def workflow_create(namespace: str, request: Request) -> Response:
        body = await _body(request)
        wf = _object_field(body, "workflow")
        dry = bool(body.get("serverDryRun")) or bool((body.get("createOptions") or {}).get("dryRun"))
        return await respond(create_workflow, namespace, wf, dry)

    @router.post("/api/v1/workflows/{namespace}/lint")
    async def workflow_lint(namespace: str, request: Request) -> Response:
        body = await _body(request)
        return await respond(create_workflow, namespace, _object_field(body, "workflow"), True)

    def list_workflows(namespace: str, request: Request) -> dict[str, Any]:
        qp = request.query_params
        items, rv, token = store.list(
            WORKFLOWS, namespace or None,
            label_selector=qp.get("listOptions.labelSelector") or "",
            field_selector=qp.get("listOptions.fieldSelector") or "",
            limit=_query_int(request, "listOptions.limit") or 0,
            continue_token=qp.get("listOptions.continue") or "",
        )
        # like Argo's Workflows sort: unfinished first, then the newest first
        items.sort(key=lambda w: w["metadata"].get("creationTimestamp", ""), reverse=True)
        items.sort(key=lambda w: 1 if _is_completed(w) else 0)
        return _list_response(WORKFLOWS, items, rv, token)

    @router.get("/api/v1/workflows/{namespace}")
    async def workflow_list(namespace: str, request: Request) -> Response:
        return await respond(list_workflows, namespace, request)

    @router.get("/api/v1/workflows/")
    async def workflow_list_all(request: Request) -> Response:
        return await respond(list_workflows, "", request)

    def submit(namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("resourceKind")
        name = body.get("resourceName")
        if not isinstance(kind, str) or not kind:
            raise errors.bad_request("resourceKind is required (WorkflowTemplate, ClusterWorkflowTemplate or "
                                     "CronWorkflow)")
        if not isinstance(name, str) or not name:
            raise errors.bad_request("resourceName is required")
        options = _object_field(body, "submitOptions", required=False)
        wf = workflow_from_resource(store, namespace, kind, name)
        apply_submit_options(wf, options)
        return create_workflow(namespace, wf, bool(options.get("dryRun") or options.get("serverDryRun")))

    @router.post("/api/v1/workflows/{namespace}/submit")
    async def workflow_submit(namespace: str, request: Request) -> Response:
        body = await _body(request)
        return await respond(submit, namespace, body)

    @router.get("/api/v1/workflows/{namespace}/{name}")
    async def workflow_get(namespace: str, name: str) -> Response:
        return await respond(store.get, WORKFLOWS, namespace, name)

    def delete_pods(namespace: str, name: str, only_nodes: set[str] | None = None) -> None:
        pods, _, _ = store.list(PODS, namespace, label_selector=f"{LABEL_WORKFLOW}={name}")
        for pod in pods:
            annotations = pod["metadata"].get("annotations") or {}
            if only_nodes is not None and annotations.get(ANNOTATION_NODE_ID) not in only_nodes:
                continue
            try:
                store.delete(PODS, namespace, pod["metadata"]["name"])
            except ApiError as exc:
                if exc.code != 404:
                    raise

    def delete_workflow(namespace: str, name: str, preconditions: dict[str, str] | None = None) -> None:
        store.delete(WORKFLOWS, namespace, name, preconditions=preconditions)
        delete_pods(namespace, name)

    @router.delete("/api/v1/workflows/{namespace}/{name}")
    async def workflow_delete(namespace: str, name: str, request: Request) -> dict[str, Any]:
        # grpc-gateway spells WorkflowDeleteRequest.deleteOptions.preconditions as query parameters
        preconditions = {
            key: request.query_params[f"deleteOptions.preconditions.{key}"]
            for key in ("uid", "resourceVersion") if request.query_params.get(f"deleteOptions.preconditions.{key}")
        }
        await call(delete_workflow, namespace, name, preconditions or None)
        return {}

    def mutate_workflow(
        namespace: str, name: str, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        return store.update(WORKFLOWS, namespace, name, change)

    def shutdown(namespace: str, name: str, strategy: str, body: dict[str, Any]) -> dict[str, Any]:
        selector = body.get("nodeFieldSelector") or ""
        message = body.get("message") or ""
        if not isinstance(selector, str) or not isinstance(message, str):
            raise errors.bad_request("nodeFieldSelector and message must be strings")

        def change(wf: dict[str, Any]) -> None:
            if strategy == "Stop" and selector:
                _set_suspend_nodes(wf, selector, "Failed", message)
                return
            if _is_completed(wf):
                raise errors.bad_request(f"cannot shutdown a completed workflow: {name} is "
                                         f"{(wf.get('status') or {}).get('phase')}")
            wf.setdefault("spec", {})["shutdown"] = strategy

        return mutate_workflow(namespace, name, change)

    @router.put("/api/v1/workflows/{namespace}/{name}/stop")
    async def workflow_stop(namespace: str, name: str, request: Request) -> Response:
        body = await _body(request)
        return await respond(shutdown, namespace, name, "Stop", body)

    @router.put("/api/v1/workflows/{namespace}/{name}/terminate")
    async def workflow_terminate(namespace: str, name: str, request: Request) -> Response:
        await _body(request)
        return await respond(shutdown, namespace, name, "Terminate", {})

    def suspend(namespace: str, name: str) -> dict[str, Any]:
        def change(wf: dict[str, Any]) -> None:
            if _is_completed(wf):
                raise errors.bad_request(f"cannot suspend completed workflows: {name} is "
                                         f"{(wf.get('status') or {}).get('phase')}")
            wf.setdefault("spec", {})["suspend"] = True

        return mutate_workflow(namespace, name, change)

    @router.put("/api/v1/workflows/{namespace}/{name}/suspend")
    async def workflow_suspend(namespace: str, name: str, request: Request) -> Response:
        await _body(request)
        return await respond(suspend, namespace, name)

    def resume(namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        selector = body.get("nodeFieldSelector") or ""
        if not isinstance(selector, str):
            raise errors.bad_request("nodeFieldSelector must be a string")

        def change(wf: dict[str, Any]) -> None:
            if selector:
                _set_suspend_nodes(wf, selector, "Succeeded", "")
                return
            (wf.get("spec") or {}).pop("suspend", None)
            _set_suspend_nodes(wf, "", "Succeeded", "")

        return mutate_workflow(namespace, name, change)

    @router.put("/api/v1/workflows/{namespace}/{name}/resume")
    async def workflow_resume(namespace: str, name: str, request: Request) -> Response:
        body = await _body(request)
        return await respond(resume, namespace, name, body)

    def retry(namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        selector = body.get("nodeFieldSelector") or ""
        if not isinstance(selector, str):
            raise errors.bad_request("nodeFieldSelector must be a string")
        deleted: set[str] = set()

        def change(wf: dict[str, Any]) -> dict[str, Any]:
            restart = bool(body.get("restartSuccessful"))
            with _as_bad_request():
                new, gone = formulate_retry(
                    wf, restart_successful=restart, node_field_selector_text=selector, field="nodeFieldSelector"
                )
                # parameters last, so a workflow that cannot be retried is reported first
                apply_parameters(new["spec"], parse_parameters(body.get("parameters"), "parameters"))
            deleted.update(gone)
            return new

        # as `argo retry` (and the hook's kubernetes transport): first the pods of the removed nodes,
        # then the workflow. The other way round, the controller may already have recreated a pod
        # under its old name when the delete comes, and the delete would take the new pod.
        change(store.get(WORKFLOWS, namespace, name))  # validates, and names the pods to delete
        delete_pods(namespace, name, only_nodes=set(deleted))
        planned = set(deleted)
        result = store.update(WORKFLOWS, namespace, name, change)
        if deleted - planned:  # the workflow changed in between: its further nodes' pods go too
            delete_pods(namespace, name, only_nodes=deleted - planned)
        return result

    @router.put("/api/v1/workflows/{namespace}/{name}/retry")
    async def workflow_retry(namespace: str, name: str, request: Request) -> Response:
        body = await _body(request)
        return await respond(retry, namespace, name, body)

    def resubmit(namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        old = store.get(WORKFLOWS, namespace, name)
        with _as_bad_request():
            wf = formulate_resubmit(old, parse_parameters(body.get("parameters"), "parameters"))
        return create_workflow(namespace, wf, False)

    @router.put("/api/v1/workflows/{namespace}/{name}/resubmit")
    async def workflow_resubmit(namespace: str, name: str, request: Request) -> Response:
        body = await _body(request)
        return await respond(resubmit, namespace, name, body)

    # ------------------------------------------------------------------ logs

    def list_log_pods(namespace: str, name: str, query: _LogQuery) -> list[dict[str, Any]]:
        selector = f"{LABEL_WORKFLOW}={name}" + (f",{query.selector}" if query.selector else "")
        pods, _, _ = store.list(PODS, namespace, label_selector=selector)
        if query.pod_name:
            pods = [p for p in pods if p["metadata"]["name"] == query.pod_name]
        return _sorted_pods(pods)

    def workflow_state(namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return store.get(WORKFLOWS, namespace, name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def stream_logs(namespace: str, name: str, query: _LogQuery) -> AsyncIterator[bytes]:
        offsets: dict[str, int] = {}

        def read_new(pods: list[dict[str, Any]]) -> list[tuple[float, int, bytes]]:
            batch: list[tuple[float, int, bytes]] = []
            for order, pod in enumerate(pods):
                pod_name = pod["metadata"]["name"]
                fresh = pod_name not in offsets
                path = paths.log_file(namespace, pod_name, query.container)
                lines, offsets[pod_name] = _read_lines(path, offsets.get(pod_name, 0))
                if fresh and query.tail is not None:
                    lines = lines[-query.tail:] if query.tail else []
                for line in lines:
                    entry = query.entry(pod_name, line)
                    if entry is not None:
                        batch.append((entry[0], order, entry[1]))
            # like Argo: the lines of all pods in time order
            batch.sort(key=lambda item: (item[0], item[1]))
            return batch

        while True:
            wf = await call(workflow_state, namespace, name)
            pods = await call(list_log_pods, namespace, name, query)
            for _, _, data in await call(read_new, pods):
                yield data
            if not query.follow:
                return
            pods_done = all((p.get("status") or {}).get("phase") in POD_DONE_PHASES for p in pods)
            if (wf is None or _is_completed(wf)) and pods_done:
                # one last read: lines written between the read above and the phase change
                for _, _, data in await call(read_new, pods):
                    yield data
                return
            await asyncio.sleep(LOG_POLL_INTERVAL)

    async def logs_response(namespace: str, name: str, request: Request, pod_name: str | None) -> Response:
        query = _LogQuery(request, pod_name)
        await call(store.get, WORKFLOWS, namespace, name)
        if query.pod_name:
            pods = await call(list_log_pods, namespace, name, query)
            if not pods:
                raise errors.not_found("pods", "", query.pod_name)
        return StreamingResponse(stream_logs(namespace, name, query), media_type="application/json")

    @router.get("/api/v1/workflows/{namespace}/{name}/log")
    async def workflow_logs(namespace: str, name: str, request: Request) -> Response:
        return await logs_response(namespace, name, request, None)

    @router.get("/api/v1/workflows/{namespace}/{name}/{pod_name}/log")
    async def pod_logs(namespace: str, name: str, pod_name: str, request: Request) -> Response:
        return await logs_response(namespace, name, request, pod_name)

    # ------------------------------------------------------------------ templates

    def _template_routes(rt: ResourceType, base: str, namespaced: bool) -> None:
        kind = rt.kind

        def ns_of(namespace: str | None) -> str | None:
            return namespace if namespaced else None

        def prepared(namespace: str | None, body: dict[str, Any], name: str | None = None) -> dict[str, Any]:
            obj = copy.deepcopy(_object_field(body, "template"))
            obj.setdefault("apiVersion", rt.api_version)
            obj.setdefault("kind", kind)
            meta = obj.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise errors.bad_request("template.metadata must be an object")
            if namespaced:
                if meta.get("namespace") not in (None, "", namespace):
                    raise errors.bad_request(
                        f'template.metadata.namespace "{meta["namespace"]}" does not match the namespace in '
                        f'the URL "{namespace}"'
                    )
                meta["namespace"] = namespace
            if name is not None:
                meta.setdefault("name", name)
            _validate_workflow_spec(store, namespace, kind, obj)
            return obj

        def create(namespace: str | None, body: dict[str, Any], lint: bool) -> dict[str, Any]:
            obj = prepared(namespace, body)
            if lint or (body.get("createOptions") or {}).get("dryRun"):
                return obj
            return store.create(rt, ns_of(namespace), obj)

        def list_templates(namespace: str | None, request: Request) -> dict[str, Any]:
            qp = request.query_params
            items, rv, token = store.list(
                rt, ns_of(namespace),
                label_selector=qp.get("listOptions.labelSelector") or "",
                field_selector=qp.get("listOptions.fieldSelector") or "",
                limit=_query_int(request, "listOptions.limit") or 0,
                continue_token=qp.get("listOptions.continue") or "",
            )
            pattern = qp.get("namePattern") or ""
            if pattern:
                items = [i for i in items if pattern in i["metadata"]["name"]]
            return _list_response(rt, items, rv, token)

        def update(namespace: str | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
            return store.replace(rt, ns_of(namespace), name, prepared(namespace, body, name))

        def delete(namespace: str | None, name: str) -> dict[str, Any]:
            store.delete(rt, ns_of(namespace), name)
            return {}

        if namespaced:
            collection, item = base + "/{namespace}", base + "/{namespace}/{name}"
        else:
            collection, item = base, base + "/{name}"

        async def create_route(request: Request, namespace: str | None = None) -> Response:
            body = await _body(request)
            return await respond(create, namespace, body, False)

        async def lint_route(request: Request, namespace: str | None = None) -> Response:
            body = await _body(request)
            return await respond(create, namespace, body, True)

        async def list_route(request: Request, namespace: str | None = None) -> Response:
            return await respond(list_templates, namespace, request)

        async def get_route(name: str, namespace: str | None = None) -> Response:
            return await respond(store.get, rt, ns_of(namespace), name)

        async def update_route(name: str, request: Request, namespace: str | None = None) -> Response:
            body = await _body(request)
            return await respond(update, namespace, name, body)

        async def delete_route(name: str, namespace: str | None = None) -> Response:
            return await respond(delete, namespace, name)

        router.add_api_route(collection, create_route, methods=["POST"])
        router.add_api_route(collection + "/lint", lint_route, methods=["POST"])
        router.add_api_route(collection, list_route, methods=["GET"])
        router.add_api_route(item, get_route, methods=["GET"])
        router.add_api_route(item, update_route, methods=["PUT"])
        router.add_api_route(item, delete_route, methods=["DELETE"])

    _template_routes(WORKFLOW_TEMPLATES, "/api/v1/workflow-templates", namespaced=True)
    _template_routes(CLUSTER_WORKFLOW_TEMPLATES, "/api/v1/cluster-workflow-templates", namespaced=False)
    return router
