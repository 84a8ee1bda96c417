"""The Argo Server's workflow service routes (``/api/v1/workflows/...``): create, lint, list, submit
(from a WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow), get, delete, and the stop /
terminate / suspend / resume / retry / resubmit actions, which only edit the Workflow object (the
controller reacts), as the real Argo Server does. Workflows whose nodes the controller offloaded
(``status.offloadNodeStatusVersion``) are served hydrated by get and list, and hydrated before an
action that reads their nodes, as Argo's ``workflowServer`` does with its hydrator."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from airflow_argo_eci.conventions import (
    ANNOTATION_NODE_ID,
    ANNOTATION_SCHEDULED_TIME,
    LABEL_CLUSTER_WORKFLOW_TEMPLATE,
    LABEL_CRON_WORKFLOW,
    LABEL_WORKFLOW,
    LABEL_WORKFLOW_TEMPLATE,
    now_rfc3339,
)
from airflow_argo_eci.errors import ArgoEciError
from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.argo_server_base import (
    call,
    is_completed,
    json_body,
    list_response,
    object_field,
    query_int,
    respond,
    validate_workflow_spec,
)
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import (
    CLUSTER_WORKFLOW_TEMPLATES,
    CRON_WORKFLOWS,
    PODS,
    WORKFLOW_TEMPLATES,
    WORKFLOWS,
)
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.argo.offload import OffloadRepository
from airflow_argo_eci.retry import (
    RetryError,
    apply_parameters,
    formulate_resubmit,
    formulate_retry,
    parse_parameters,
    update_suspend_nodes,
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
        # Argo stamps the run's scheduled time (now, for a manual run) and makes the CronWorkflow
        # its controlling owner, so deleting the CronWorkflow takes its runs with it
        annotations = {ANNOTATION_SCHEDULED_TIME: now_rfc3339(), **(wf_meta.get("annotations") or {})}
        meta: dict[str, Any] = {"generateName": f"{name}-", "labels": labels, "annotations": annotations,
                                "ownerReferences": [{"apiVersion": CRON_WORKFLOWS.api_version, "kind": "CronWorkflow",
                                                     "name": name, "uid": cron["metadata"]["uid"],
                                                     "controller": True, "blockOwnerDeletion": True}]}
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


def hydrate_workflow(offloads: OffloadRepository | None, wf: dict[str, Any],
                     listed: dict[tuple[str, str], dict[str, Any]] | None = None) -> dict[str, Any]:
    """``wf`` (modified in place) with its offloaded nodes from ``offloads`` (or from ``listed``, a
    :meth:`OffloadRepository.list_offloads` result) and ``offloadNodeStatusVersion`` cleared, as Argo's
    hydrator does; a workflow that is not offloaded is returned as it is. Nodes that cannot be
    found are a 500 (gRPC Internal), as on the Argo Server, except in a list page."""
    status = wf.get("status")
    version = status.get("offloadNodeStatusVersion") if isinstance(status, dict) else None
    if not version:
        return wf
    assert isinstance(status, dict)
    uid = str((wf.get("metadata") or {}).get("uid") or "")
    if listed is not None:  # a list page: nodes that are missing leave that item as stored (as Argo's)
        if (uid, str(version)) in listed:
            status["nodes"] = listed[(uid, str(version))]
            status.pop("offloadNodeStatusVersion", None)
        return wf
    if offloads is None:
        raise ApiError(500, "InternalError", "Workflow has offloaded nodes, but offloading has been disabled")
    try:
        return offloads.hydrate(wf)
    except ArgoEciError as exc:
        raise ApiError(500, "InternalError", str(exc)) from exc


def add_workflow_routes(router: APIRouter, store: Store, offloads: OffloadRepository | None = None) -> None:
    """Add the workflow service routes over ``store`` to ``router``; offloaded nodes are read
    from ``offloads`` (the cluster's offload repository)."""

    def hydrated(wf: dict[str, Any]) -> dict[str, Any]:
        return hydrate_workflow(offloads, wf)

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
        validate_workflow_spec(store, namespace, "Workflow", wf)
        if not meta.get("name") and not meta.get("generateName"):
            raise errors.bad_request("workflow.metadata.name or workflow.metadata.generateName is required")
        if dry_run:
            return wf
        return store.create(WORKFLOWS, namespace, wf)

    @router.post("/api/v1/workflows/{namespace}")
    async def workflow_create(namespace: str, request: Request) -> Response:
        body = await json_body(request)
        wf = object_field(body, "workflow")
        dry = bool(body.get("serverDryRun")) or bool((body.get("createOptions") or {}).get("dryRun"))
        return await respond(create_workflow, namespace, wf, dry)

    @router.post("/api/v1/workflows/{namespace}/lint")
    async def workflow_lint(namespace: str, request: Request) -> Response:
        body = await json_body(request)
        return await respond(create_workflow, namespace, object_field(body, "workflow"), True)

    def list_workflows(namespace: str, request: Request) -> dict[str, Any]:
        qp = request.query_params
        items, rv, token = store.list(
            WORKFLOWS, namespace or None,
            label_selector=qp.get("listOptions.labelSelector") or "",
            field_selector=qp.get("listOptions.fieldSelector") or "",
            limit=query_int(request, "listOptions.limit") or 0,
            continue_token=qp.get("listOptions.continue") or "",
        )
        # like Argo's Workflows sort: unfinished first, then the newest first
        items.sort(key=lambda w: w["metadata"].get("creationTimestamp", ""), reverse=True)
        items.sort(key=lambda w: 1 if is_completed(w) else 0)
        if offloads is not None and any((w.get("status") or {}).get("offloadNodeStatusVersion") for w in items):
            listed = offloads.list_offloads(namespace or None)  # one read for the page, as Argo's ListWorkflows
            for wf in items:
                hydrate_workflow(offloads, wf, listed)
        return list_response(WORKFLOWS, items, rv, token)

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
        options = object_field(body, "submitOptions", required=False)
        wf = workflow_from_resource(store, namespace, kind, name)
        apply_submit_options(wf, options)
        return create_workflow(namespace, wf, bool(options.get("dryRun") or options.get("serverDryRun")))

    @router.post("/api/v1/workflows/{namespace}/submit")
    async def workflow_submit(namespace: str, request: Request) -> Response:
        body = await json_body(request)
        return await respond(submit, namespace, body)

    @router.get("/api/v1/workflows/{namespace}/{name}")
    async def workflow_get(namespace: str, name: str) -> Response:
        return await respond(lambda: hydrated(store.get(WORKFLOWS, namespace, name)))

    def delete_pods(namespace: str, name: str, only_nodes: set[str] | None = None) -> None:
        pods, _, _ = store.list(PODS, namespace, label_selector=f"{LABEL_WORKFLOW}={name}")
        for pod in pods:
            annotations = pod["metadata"].get("annotations") or {}
            if only_nodes is not None and annotations.get(ANNOTATION_NODE_ID) not in only_nodes:
                continue
            try:  # at once, running or not (the controller kills what still runs)
                store.delete(PODS, namespace, pod["metadata"]["name"], grace_period_seconds=0)
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
                _set_suspend_nodes(hydrated(wf), selector, "Failed", message)
                return
            if is_completed(wf):
                raise errors.bad_request(f"cannot shutdown a completed workflow: {name} is "
                                         f"{(wf.get('status') or {}).get('phase')}")
            wf.setdefault("spec", {})["shutdown"] = strategy

        return mutate_workflow(namespace, name, change)

    @router.put("/api/v1/workflows/{namespace}/{name}/stop")
    async def workflow_stop(namespace: str, name: str, request: Request) -> Response:
        body = await json_body(request)
        return await respond(shutdown, namespace, name, "Stop", body)

    @router.put("/api/v1/workflows/{namespace}/{name}/terminate")
    async def workflow_terminate(namespace: str, name: str, request: Request) -> Response:
        await json_body(request)
        return await respond(shutdown, namespace, name, "Terminate", {})

    def suspend(namespace: str, name: str) -> dict[str, Any]:
        def change(wf: dict[str, Any]) -> None:
            if is_completed(wf):
                raise errors.bad_request(f"cannot suspend completed workflows: {name} is "
                                         f"{(wf.get('status') or {}).get('phase')}")
            wf.setdefault("spec", {})["suspend"] = True

        return mutate_workflow(namespace, name, change)

    @router.put("/api/v1/workflows/{namespace}/{name}/suspend")
    async def workflow_suspend(namespace: str, name: str, request: Request) -> Response:
        await json_body(request)
        return await respond(suspend, namespace, name)

    def resume(namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        selector = body.get("nodeFieldSelector") or ""
        if not isinstance(selector, str):
            raise errors.bad_request("nodeFieldSelector must be a string")

        def change(wf: dict[str, Any]) -> None:
            hydrated(wf)
            if selector:
                _set_suspend_nodes(wf, selector, "Succeeded", "")
                return
            (wf.get("spec") or {}).pop("suspend", None)
            _set_suspend_nodes(wf, "", "Succeeded", "")

        return mutate_workflow(namespace, name, change)

    @router.put("/api/v1/workflows/{namespace}/{name}/resume")
    async def workflow_resume(namespace: str, name: str, request: Request) -> Response:
        body = await json_body(request)
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
                    hydrated(wf), restart_successful=restart, node_field_selector_text=selector,
                    field="nodeFieldSelector")
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
        body = await json_body(request)
        return await respond(retry, namespace, name, body)

    def resubmit(namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        old = hydrated(store.get(WORKFLOWS, namespace, name))
        with _as_bad_request():
            wf = formulate_resubmit(old, parse_parameters(body.get("parameters"), "parameters"))
        return create_workflow(namespace, wf, False)

    @router.put("/api/v1/workflows/{namespace}/{name}/resubmit")
    async def workflow_resubmit(namespace: str, name: str, request: Request) -> Response:
        body = await json_body(request)
        return await respond(resubmit, namespace, name, body)
