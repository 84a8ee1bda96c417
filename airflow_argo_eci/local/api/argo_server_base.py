"""What the Argo Server's route modules share: the gRPC-gateway error body, the route class that
renders :class:`ApiError` that way, request parsing helpers and the structural spec check of
Workflows and templates."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from airflow_argo_eci.conventions import LABEL_COMPLETED, TERMINAL_PHASES
from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.k8s_routes import int_query
from airflow_argo_eci.local.api.limits import json_response, read_json_body
from airflow_argo_eci.local.api.resources import CLUSTER_WORKFLOW_TEMPLATES, WORKFLOW_TEMPLATES, ResourceType
from airflow_argo_eci.local.api.store import Store

_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 410: 9, 413: 8, 415: 3, 422: 3, 500: 13, 501: 12}


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


class ArgoRoute(APIRoute):
    """Renders :class:`ApiError` (raised before a response starts) the Argo Server way."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return grpc_error_response(exc)

        return handle


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
    """Run the blocking ``fn`` (store access, file reads) in the thread pool."""
    return run_in_threadpool(fn, *args, **kwargs)


async def respond(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Response:
    """Run ``fn`` and serialize its result in the thread pool (a large workflow never stalls the loop)."""
    return await json_response(await run_in_threadpool(fn, *args, **kwargs))


# ---------------------------------------------------------------------------- request helpers


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body (``{}`` when there is none; another JSON value is a 400)."""
    data = await read_json_body(request, required=False)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise errors.bad_request(f"the request body must be a JSON object, got {type(data).__name__}")
    return data


def query_bool(request: Request, key: str) -> bool:
    """The boolean query parameter ``key`` (absent or empty: False; anything but true/false/1/0 is a 400)."""
    raw = request.query_params.get(key)
    if raw in (None, ""):
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise errors.bad_request(f'query parameter "{key}" must be true or false, got "{raw}"')


def query_int(request: Request, key: str) -> int | None:
    """The integer query parameter ``key`` (None when absent; not an integer is a 400)."""
    return int_query(request.query_params.get(key), key)


def object_field(body: dict[str, Any], key: str, required: bool = True) -> dict[str, Any]:
    """The JSON object ``body[key]`` (``{}`` when absent and not ``required``; else a 400 naming ``key``)."""
    value = body.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise errors.bad_request(f'"{key}" must be a JSON object, got {type(value).__name__}')
    return value


def list_response(rt: ResourceType, items: list[dict[str, Any]], rv: str, token: str) -> dict[str, Any]:
    """A ``<Kind>List`` of ``items`` with its resourceVersion and continue token."""
    meta: dict[str, Any] = {"resourceVersion": rv}
    if token:
        meta["continue"] = token
    return {"apiVersion": rt.api_version, "kind": f"{rt.kind}List", "metadata": meta, "items": items}


def is_completed(wf: dict[str, Any]) -> bool:
    """Whether the workflow has finished (a terminal phase, or the completed label)."""
    return ((wf.get("status") or {}).get("phase") in TERMINAL_PHASES
            or ((wf.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPLETED) == "true")


# ---------------------------------------------------------------------------- validation


def validate_workflow_spec(store: Store, namespace: str | None, kind: str, obj: dict[str, Any]) -> None:
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

