"""The Argo Server's template service routes: ``/api/v1/workflow-templates/{ns}[/{name}]`` and
``/api/v1/cluster-workflow-templates[/{name}]``: create, lint, list (``namePattern``), get, update
(PUT ``{"template": ...}``) and delete."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.argo_server_base import (
    json_body,
    list_response,
    object_field,
    query_int,
    respond,
    validate_workflow_spec,
)
from airflow_argo_eci.local.api.resources import CLUSTER_WORKFLOW_TEMPLATES, WORKFLOW_TEMPLATES, ResourceType
from airflow_argo_eci.local.api.store import Store


def add_template_routes(router: APIRouter, store: Store) -> None:
    """Add the WorkflowTemplate and ClusterWorkflowTemplate routes over ``store`` to ``router``."""
    _template_routes(router, store, WORKFLOW_TEMPLATES, "/api/v1/workflow-templates", namespaced=True)
    _template_routes(router, store, CLUSTER_WORKFLOW_TEMPLATES, "/api/v1/cluster-workflow-templates",
                     namespaced=False)


def _template_routes(router: APIRouter, store: Store, rt: ResourceType, base: str, namespaced: bool) -> None:
    kind = rt.kind

    def ns_of(namespace: str | None) -> str | None:
        return namespace if namespaced else None

    def prepared(namespace: str | None, body: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        obj = copy.deepcopy(object_field(body, "template"))
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
        validate_workflow_spec(store, namespace, kind, obj)
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
            limit=query_int(request, "listOptions.limit") or 0,
            continue_token=qp.get("listOptions.continue") or "",
        )
        pattern = qp.get("namePattern") or ""
        if pattern:
            items = [i for i in items if pattern in i["metadata"]["name"]]
        return list_response(rt, items, rv, token)

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
        body = await json_body(request)
        return await respond(create, namespace, body, False)

    async def lint_route(request: Request, namespace: str | None = None) -> Response:
        body = await json_body(request)
        return await respond(create, namespace, body, True)

    async def list_route(request: Request, namespace: str | None = None) -> Response:
        return await respond(list_templates, namespace, request)

    async def get_route(name: str, namespace: str | None = None) -> Response:
        return await respond(store.get, rt, ns_of(namespace), name)

    async def update_route(name: str, request: Request, namespace: str | None = None) -> Response:
        body = await json_body(request)
        return await respond(update, namespace, name, body)

    async def delete_route(name: str, namespace: str | None = None) -> Response:
        return await respond(delete, namespace, name)

    router.add_api_route(collection, create_route, methods=["POST"])
    router.add_api_route(collection + "/lint", lint_route, methods=["POST"])
    router.add_api_route(collection, list_route, methods=["GET"])
    router.add_api_route(item, get_route, methods=["GET"])
    router.add_api_route(item, update_route, methods=["PUT"])
    router.add_api_route(item, delete_route, methods=["DELETE"])
