"""The local cluster's HTTP application: bearer-token auth with RBAC for restricted tokens
(:mod:`~airflow_argo_eci.local.api.rbac`), Kubernetes ``Status`` errors, discovery (custom kinds
while their CRDs serve them, :mod:`~airflow_argo_eci.local.api.crds`), SelfSubjectAccessReview
(:mod:`~airflow_argo_eci.local.api.access_review`), the OpenAPI documents
(:mod:`~airflow_argo_eci.local.api.openapi`), the request log, and the resource routes of
:mod:`airflow_argo_eci.local.api.k8s_routes`.

Routers included later (the Argo Server REST API) are protected by the same token check because
it is an ASGI middleware around the whole application.
"""

from __future__ import annotations

import gc
import logging
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from airflow_argo_eci.conventions import GROUP
from airflow_argo_eci.local.api import openapi, resources
from airflow_argo_eci.local.api.access_review import SSAR_DISCOVERY, install_access_review_route
from airflow_argo_eci.local.api.crds import ServedKinds
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.k8s_routes import install_resource_routes
from airflow_argo_eci.local.api.limits import GuardMiddleware
from airflow_argo_eci.local.api.rbac import Attributes, Identity, Tokens, authorize, forbidden, request_attributes
from airflow_argo_eci.local.api.request_log import RequestLog, RequestLogMiddleware
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.api.watch import DEFAULT_MAX_BYTES
from airflow_argo_eci.local.paths import StatePaths

log = logging.getLogger(__name__)

#: what ``/version`` reports; the minor version is the Kubernetes API level the routes follow
GIT_VERSION = "v1.30.0-argo-eci-local"

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def status_response(error: ApiError) -> JSONResponse:
    """Render an :class:`ApiError` as the Kubernetes ``Status`` JSON response."""
    return JSONResponse(error.status(), status_code=error.code)


class BearerTokenMiddleware:
    """ASGI middleware: every HTTP/websocket request needs ``Authorization: Bearer <token>`` of a
    known identity (:class:`~.rbac.Tokens`), which it puts into the scope as ``k8s_identity``.

    A missing or unknown token gets 401 with a ``Status`` of reason ``Unauthorized``; the
    comparison is constant-time. A restricted identity's request is authorized by
    :func:`~.rbac.authorize` (Kubernetes' request-info rules) and refused with 403 when denied.
    """

    def __init__(self, app: ASGIApp, token: str = "", tokens: Tokens | None = None) -> None:
        self.app = app
        self.tokens = tokens if tokens is not None else Tokens(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        supplied = b""
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                supplied = value
                break
        scheme, _, rest = supplied.partition(b" ")
        identity = self.tokens.identity(rest.strip()) if scheme.lower() == b"bearer" else None
        if identity is None:
            await self._refuse(scope, receive, send, ApiError(401, "Unauthorized", "Unauthorized"))
            return
        scope["k8s_identity"] = identity
        if not identity.admin:
            denied = _denial(identity, scope)
            if denied is not None:
                await self._refuse(scope, receive, send, denied)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, error: ApiError) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await status_response(error)(scope, receive, send)


def _denial(identity: Identity, scope: Scope) -> ApiError | None:
    """The 403 for a restricted identity's request its rules do not allow, else None."""
    method = str(scope.get("method") or "GET")
    path = str(scope.get("path") or "/")
    query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
    attrs = request_attributes(method, path, query) or Attributes(method.lower(), path=path)
    decision = authorize(identity, attrs)
    return None if decision.allowed else forbidden(identity, attrs, decision.reason)


def _resource_entries(group: str, version: str, served: ServedKinds) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rt in sorted(resources.REGISTRY.values(), key=lambda r: r.plural):
        if rt.group != group or rt.version != version or not served.is_served(rt):
            continue
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular or rt.kind.lower(),
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": _VERBS,
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.group == GROUP:
            entry["categories"] = ["all", "argo"] if rt.kind != "ClusterWorkflowTemplate" else ["argo"]
        elif rt.key == resources.PODS.key:
            entry["categories"] = ["all"]  # so `kubectl get all` lists pods, as on a real cluster
        out.append(entry)
        if rt.has_status:
            out.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                        "kind": rt.kind, "verbs": ["get", "patch", "update"]})
        if rt.key == resources.PODS.key:
            out.append({"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                        "verbs": ["get"]})
    if f"{group}/{version}" == SSAR_DISCOVERY["groupVersion"]:
        out.append(dict(SSAR_DISCOVERY["resource"]))
    return out


def _groups(served: ServedKinds) -> dict[str, list[str]]:
    """Served API groups (without the core group) -> versions, in registration order; a custom
    kind counts while its CustomResourceDefinition serves it."""
    groups: dict[str, list[str]] = {}
    for rt in resources.REGISTRY.values():
        if rt.group and served.is_served(rt) and rt.version not in groups.setdefault(rt.group, []):
            groups[rt.group].append(rt.version)
    ssar_group, ssar_version = SSAR_DISCOVERY["groupVersion"].split("/")
    groups.setdefault(ssar_group, []).append(ssar_version)
    return {group: versions for group, versions in groups.items() if versions}


def _api_group(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def _not_found_path(path: str) -> ApiError:
    return ApiError(404, "NotFound", f'the server could not find the requested resource (path "{path}")')


def create_app(store: Store, *, token: str, paths: StatePaths, bookmark_interval: float = 30.0,
               watch_cache_bytes: int = DEFAULT_MAX_BYTES, request_log: RequestLog | None = None,
               tokens: Tokens | None = None, manage_crds: bool = False) -> FastAPI:
    """The FastAPI application serving the Kubernetes API of ``store`` behind ``token``.

    ``tokens`` holds the accepted tokens and their identities (a new :class:`~.rbac.Tokens` with
    ``token`` as the admin's when None; reachable as ``app.state.tokens``). With ``manage_crds``
    (the local cluster), the missing CustomResourceDefinitions are created and each custom kind is
    served while its CRD is (:class:`~.crds.ServedKinds`, ``app.state.served_kinds``); without,
    every registered kind is served.

    ``bookmark_interval`` is how often (seconds) a watch with ``allowWatchBookmarks=true`` gets a
    ``BOOKMARK`` event; ``watch_cache_bytes`` bounds the serialized events all watches share.
    Authenticated requests are recorded in ``request_log`` (a new :class:`RequestLog` when None),
    also reachable as ``app.state.request_log``; it is never served over HTTP.
    """
    app = FastAPI(
        title="airflow-argo-eci local cluster", openapi_url=None, docs_url=None, redoc_url=None
    )
    app.state.request_log = request_log if request_log is not None else RequestLog()
    app.state.tokens = tokens if tokens is not None else Tokens(token)
    served = ServedKinds(store, manage_crds=manage_crds)
    app.state.served_kinds = served
    # added first so it runs inside the token check: bodies are bounded and errors caught for
    # authenticated requests; an unauthenticated one is refused before its body is read
    app.add_middleware(GuardMiddleware)
    # inside the token check too: only authenticated requests are recorded
    app.add_middleware(RequestLogMiddleware, log=app.state.request_log)
    app.add_middleware(BearerTokenMiddleware, tokens=app.state.tokens)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return status_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return status_response(_not_found_path(request.url.path))
        if exc.status_code == 405:
            return status_response(
                ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested "
                         f'resource (method {request.method}, path "{request.url.path}")')
            )
        reason = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 409: "Conflict"}.get(
            exc.status_code, "InternalError" if exc.status_code >= 500 else "BadRequest"
        )
        return status_response(ApiError(exc.status_code, reason, str(exc.detail)))


    @app.get("/version")
    async def version() -> dict[str, str]:
        return {
            "major": "1", "minor": "30", "gitVersion": GIT_VERSION, "gitCommit": "", "gitTreeState": "clean",
            "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22.0", "compiler": "gc",
            "platform": "linux/amd64",
        }

    for probe in ("/healthz", "/readyz", "/livez"):
        app.add_api_route(probe, _ok, methods=["GET"], response_class=PlainTextResponse)

    @app.get("/api")
    async def api_versions(request: Request) -> dict[str, Any]:
        host = request.url.netloc
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}

    @app.get("/api/v1")
    async def core_resources() -> dict[str, Any]:
        return {"kind": "APIResourceList", "groupVersion": "v1", "resources": _resource_entries("", "v1", served)}

    @app.get("/apis")
    async def api_groups() -> dict[str, Any]:
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [_api_group(g, vs) for g, vs in _groups(served).items()]}

    @app.get("/apis/{group}")
    async def api_group(group: str, request: Request) -> dict[str, Any]:
        versions = _groups(served).get(group)
        if not versions:
            raise _not_found_path(request.url.path)
        return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(group, versions)}

    @app.get("/apis/{group}/{version}")
    async def group_resources(group: str, version: str, request: Request) -> dict[str, Any]:
        if version not in _groups(served).get(group, []):
            raise _not_found_path(request.url.path)
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}",
                "resources": _resource_entries(group, version, served)}

    @app.get("/openapi/v3")
    async def openapi_v3_index() -> dict[str, Any]:
        return openapi.v3_index()

    @app.get("/openapi/v3/{key:path}")
    async def openapi_v3(key: str, request: Request) -> dict[str, Any]:
        doc = openapi.v3_document(key)
        if doc is None:
            raise _not_found_path(request.url.path)
        return doc

    @app.get("/openapi/v2")
    async def openapi_v2(request: Request) -> Response:
        if openapi.V2_PROTOBUF in request.headers.get("accept", ""):
            return Response(openapi.v2_protobuf(), media_type=openapi.V2_PROTOBUF_CONTENT_TYPE)
        return JSONResponse(openapi.v2_document())

    install_access_review_route(app)
    install_resource_routes(app, store, paths, bookmark_interval=bookmark_interval,
                            watch_cache_bytes=watch_cache_bytes, served=served)
    # Keep what is alive now (modules, the app) out of later garbage collections: a full
    # collection walks every tracked object and stalls all threads, the event loop included; with
    # large objects churning (1.4 MB workflows) that measured 100-280 ms pauses in /version.
    gc.collect()
    gc.freeze()
    return app


async def _ok() -> str:
    return "ok"
