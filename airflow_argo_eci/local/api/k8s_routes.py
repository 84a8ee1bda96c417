"""Kubernetes resource routes: CRUD, status subresource, LIST and WATCH for every registered type.

Resource types are looked up in :data:`resources.REGISTRY` at request time, so types registered
after the application was built are served too. The routes only claim paths that name a
registered type in a valid Kubernetes layout; anything else falls through to routers included
later (e.g. the Argo Server REST API, which also lives under ``/api/v1``).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route
from starlette.types import Scope

from airflow_argo_eci.local.api import resources
from airflow_argo_eci.local.api.errors import ApiError, bad_request
from airflow_argo_eci.local.api.pod_logs import pod_log_response
from airflow_argo_eci.local.api.resources import ResourceType
from airflow_argo_eci.local.api.selectors import parse_field_selector, parse_label_selector
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.paths import StatePaths

#: watches without ``timeoutSeconds`` end after this long, like the API server's default range
DEFAULT_WATCH_TIMEOUT = 1800.0
#: longest single wait for a store change, so closed stores and deadlines are noticed promptly
_MAX_WAIT = 1.0
_TRUE = ("true", "1")


@dataclass(frozen=True)
class Target:
    """What a resource URL addresses."""

    rt: ResourceType
    #: the URL's namespace (None for cluster-scoped types and all-namespaces collections)
    namespace: str | None
    name: str | None
    #: "", "status" or "log"
    subresource: str
    #: the legacy ``/watch/`` path prefix was used
    watch_path: bool


def parse_target(group: str, version: str, segments: list[str]) -> Target | None:
    """Resolve the path segments after ``/api/v1`` or ``/apis/{group}/{version}``; None when they do
    not name a registered resource in a valid layout."""
    watch = False
    if segments and segments[0] == "watch":
        watch, segments = True, segments[1:]
    if not segments or any(s == "" for s in segments):
        return None
    namespace: str | None = None
    if segments[0] == "namespaces" and len(segments) >= 3 and not (
        group == "" and len(segments) == 3 and segments[2] in ("status", "finalize")
    ):
        namespace, plural, rest = segments[1], segments[2], segments[3:]
        rt = resources.lookup(group, plural)
        if rt is None or not rt.namespaced:
            return None
    else:
        plural, rest = segments[0], segments[1:]
        rt = resources.lookup(group, plural)
        if rt is None or (rt.namespaced and rest):
            return None
    if rt.version != version or len(rest) > 2:
        return None
    name = rest[0] if rest else None
    sub = rest[1] if len(rest) == 2 else ""
    if sub and not ((sub == "status" and rt.has_status) or (sub == "log" and rt.key == resources.PODS.key)):
        return None
    if watch and sub:
        return None
    return Target(rt, namespace, name, sub, watch)


class ResourceRoute(Route):
    """A route that fully matches only paths :func:`parse_target` resolves; the target is put
    into the request scope as ``k8s_target``."""

    def __init__(self, path: str, endpoint: Any, *, core: bool) -> None:
        super().__init__(
            path, endpoint, methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
        )
        self._core = core

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match == Match.NONE:
            return match, child
        params = child["path_params"]
        group = "" if self._core else params["group"]
        target = parse_target(group, params["version"], params["rest"].split("/"))
        if target is None:
            return Match.NONE, {}
        child["k8s_target"] = target
        return match, child


def _bool(value: str | None) -> bool:
    return (value or "").lower() in _TRUE


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise bad_request(f'query parameter "{name}" must be an integer, got "{raw}"') from exc
    if value < 0:
        raise bad_request(f'query parameter "{name}" must be >= 0, got {value}')
    return value


async def _json_body(request: Request, *, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise bad_request("the request body is empty; a JSON document is required")
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from exc


def _method_not_allowed(request: Request) -> ApiError:
    return ApiError(
        405, "MethodNotAllowed",
        f'the server does not allow this method on the requested resource (method {request.method}, '
        f'path "{request.url.path}")',
    )


def _event_line(event_type: str, obj: dict[str, Any]) -> bytes:
    return (json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n").encode()


class ResourceHandler:
    """Serves the requests :class:`ResourceRoute` matched."""

    def __init__(self, store: Store, paths: StatePaths, *, bookmark_interval: float) -> None:
        self.store = store
        self.paths = paths
        self.bookmark_interval = bookmark_interval
        # watch waits park threads; give them their own pool so they never starve normal requests
        self._watch_limiter = anyio.CapacityLimiter(1000)

    async def handle(self, request: Request) -> Response:
        """Dispatch one matched request by verb and target."""
        target: Target = request.scope["k8s_target"]
        if request.query_params.get("dryRun"):
            raise bad_request("dryRun is not supported by the local cluster")
        if target.subresource == "log":
            if request.method != "GET":
                raise _method_not_allowed(request)
            assert target.namespace is not None and target.name is not None
            return await pod_log_response(self.store, self.paths, target.namespace, target.name, request)
        if target.watch_path or (target.name is None and _bool(request.query_params.get("watch"))):
            if request.method != "GET":
                raise _method_not_allowed(request)
            return self._watch(request, target)
        if target.name is None:
            return await self._collection(request, target)
        return await self._object(request, target)

    async def _collection(self, request: Request, t: Target) -> Response:
        q = request.query_params
        if request.method == "GET":
            items, rv, cont = await run_in_threadpool(
                self.store.list, t.rt, t.namespace,
                label_selector=q.get("labelSelector", ""), field_selector=q.get("fieldSelector", ""),
                limit=_int_param(request, "limit", 0), continue_token=q.get("continue", ""),
            )
            meta: dict[str, Any] = {"resourceVersion": rv}
            if cont:
                meta["continue"] = cont
            return JSONResponse(
                {"kind": f"{t.rt.kind}List", "apiVersion": t.rt.api_version, "metadata": meta, "items": items}
            )
        if request.method == "POST":
            if t.rt.namespaced and t.namespace is None:
                raise _method_not_allowed(request)
            body = await _json_body(request)
            created = await run_in_threadpool(self.store.create, t.rt, t.namespace, body)
            return JSONResponse(created, status_code=201)
        if request.method == "DELETE":
            items, _, _ = await run_in_threadpool(
                self.store.list, t.rt, t.namespace,
                label_selector=q.get("labelSelector", ""), field_selector=q.get("fieldSelector", ""),
            )
            for item in items:
                meta_in = item["metadata"]
                try:
                    await run_in_threadpool(
                        self.store.delete, t.rt, meta_in.get("namespace"), meta_in["name"]
                    )
                except ApiError as exc:
                    if exc.code != 404:  # deleted concurrently: fine
                        raise
            return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                 "details": {"group": t.rt.group, "kind": t.rt.plural}})
        raise _method_not_allowed(request)

    async def _object(self, request: Request, t: Target) -> Response:
        assert t.name is not None
        method = request.method
        if method == "GET":
            return JSONResponse(await run_in_threadpool(self.store.get, t.rt, t.namespace, t.name))
        if method == "PUT":
            body = await _json_body(request)
            out = await run_in_threadpool(
                self.store.replace, t.rt, t.namespace, t.name, body, subresource=t.subresource
            )
            return JSONResponse(out)
        if method == "PATCH":
            body = await _json_body(request)
            content_type = request.headers.get("content-type", "")
            out = await run_in_threadpool(
                self.store.patch, t.rt, t.namespace, t.name, body, content_type, subresource=t.subresource
            )
            return JSONResponse(out)
        if method == "DELETE" and not t.subresource:
            options = await _json_body(request, required=False)
            preconditions = None
            if isinstance(options, dict) and isinstance(options.get("preconditions"), dict):
                preconditions = {k: str(v) for k, v in options["preconditions"].items() if v is not None}
            out = await run_in_threadpool(
                self.store.delete, t.rt, t.namespace, t.name, preconditions=preconditions
            )
            return JSONResponse(out)
        raise _method_not_allowed(request)

    def _watch(self, request: Request, t: Target) -> Response:
        q = request.query_params
        label_selector = q.get("labelSelector", "")
        field_selector = q.get("fieldSelector", "")
        if t.name is not None:
            name_term = f"metadata.name={t.name}"
            field_selector = f"{field_selector},{name_term}" if field_selector else name_term
        # validate up front: a bad selector is a 400 response, not a broken stream
        parse_label_selector(label_selector)
        parse_field_selector(field_selector, t.rt.kind)
        timeout = float(_int_param(request, "timeoutSeconds", 0)) or DEFAULT_WATCH_TIMEOUT
        raw_rv = q.get("resourceVersion", "")
        start_rv: int | None = None
        if raw_rv not in ("", "0"):
            try:
                start_rv = int(raw_rv)
            except ValueError as exc:
                raise bad_request(f'resourceVersion must be an integer, got "{raw_rv}"') from exc
        bookmarks = _bool(q.get("allowWatchBookmarks"))
        stream = self._watch_events(
            t, start_rv, label_selector, field_selector, timeout, bookmarks
        )
        return StreamingResponse(stream, media_type="application/json")

    async def _watch_events(
        self,
        t: Target,
        start_rv: int | None,
        label_selector: str,
        field_selector: str,
        timeout: float,
        bookmarks: bool,
    ) -> AsyncIterator[bytes]:
        store = self.store
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + self.bookmark_interval
        if start_rv is None:
            items, list_rv, _ = await run_in_threadpool(
                store.list, t.rt, t.namespace, label_selector=label_selector, field_selector=field_selector
            )
            for item in items:
                yield _event_line("ADDED", item)
            last = int(list_rv)
        else:
            last = start_rv
        while not store.closed:
            current = store.resource_version
            try:
                events = await run_in_threadpool(
                    store.events_since, t.rt, t.namespace, last,
                    label_selector=label_selector, field_selector=field_selector,
                )
            except ApiError as exc:
                yield _event_line("ERROR", exc.status())
                return
            for event_type, obj, rv in events:
                yield _event_line(event_type, obj)
                last = max(last, rv)
            last = max(last, current)
            now = time.monotonic()
            if now >= deadline:
                return
            if bookmarks and now >= next_bookmark:
                yield _event_line(
                    "BOOKMARK",
                    {"kind": t.rt.kind, "apiVersion": t.rt.api_version,
                     "metadata": {"resourceVersion": str(last)}},
                )
                next_bookmark = now + self.bookmark_interval
            wait = min(deadline - now, _MAX_WAIT)
            if bookmarks:
                wait = min(wait, max(next_bookmark - now, 0.0))
            await anyio.to_thread.run_sync(store.wait_for_change, last, wait, limiter=self._watch_limiter)


def install_resource_routes(
    app: FastAPI, store: Store, paths: StatePaths, *, bookmark_interval: float = 30.0
) -> None:
    """Add the Kubernetes resource routes (core ``/api/v1`` and ``/apis/{group}/{version}``) to ``app``."""
    handler = ResourceHandler(store, paths, bookmark_interval=bookmark_interval)
    app.router.routes.append(ResourceRoute("/api/{version}/{rest:path}", handler.handle, core=True))
    app.router.routes.append(ResourceRoute("/apis/{group}/{version}/{rest:path}", handler.handle, core=False))
