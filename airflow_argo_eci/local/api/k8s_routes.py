"""Kubernetes resource routes: CRUD, status subresource, LIST and WATCH for every registered type;
GET, LIST and WATCH answer ``Table`` objects (:mod:`~airflow_argo_eci.local.api.tables`) when asked.

Resource types are looked up in :data:`resources.REGISTRY` at request time, so types registered
after the application was built are served too. The routes only claim paths that name a
registered type in a valid Kubernetes layout, of a custom kind only while its
CustomResourceDefinition serves it (:class:`~airflow_argo_eci.local.api.crds.ServedKinds`);
anything else falls through to routers included later (e.g. the Argo Server REST API, which also
lives under ``/api/v1``) and ends as 404. CRD bodies are admitted by :func:`~.crds.admit_crd`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route
from starlette.types import Scope

from airflow_argo_eci.local.api import resources
from airflow_argo_eci.local.api.crds import ServedKinds, admit_crd
from airflow_argo_eci.local.api.errors import ApiError, bad_request, invalid
from airflow_argo_eci.local.api.limits import INT64_MAX, json_response, read_json_body
from airflow_argo_eci.local.api.object_deletion import check_propagation_policy
from airflow_argo_eci.local.api.pod_logs import pod_log_response
from airflow_argo_eci.local.api.resources import ResourceType
from airflow_argo_eci.local.api.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.api.tables import build_table, check_include_object, wants_table
from airflow_argo_eci.local.api.watch import DEFAULT_MAX_BYTES, WatchCache, event_line, gone_line
from airflow_argo_eci.local.api.watch_signal import ChangeSignal
from airflow_argo_eci.local.paths import StatePaths

#: watches without ``timeoutSeconds`` end after this long, like the API server's default range
DEFAULT_WATCH_TIMEOUT = 1800.0
#: longest single wait for a store change, so closed stores and deadlines are noticed promptly
_MAX_WAIT = 1.0
_TRUE = ("true", "1")
_DIGITS = re.compile(r"[0-9]+")
#: a watch line larger than this is sent in slices of it, other requests running in between
_WATCH_SLICE = 64 * 1024


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

    def __init__(self, path: str, endpoint: Any, *, core: bool, served: ServedKinds | None = None) -> None:
        super().__init__(
            path, endpoint, methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
        )
        self._core = core
        self._served = served

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match == Match.NONE:
            return match, child
        params = child["path_params"]
        group = "" if self._core else params["group"]
        target = parse_target(group, params["version"], params["rest"].split("/"))
        if target is None or (self._served is not None and not self._served.is_served(target.rt)):
            return Match.NONE, {}
        child["k8s_target"] = target
        return match, child


def _bool(value: str | None) -> bool:
    return (value or "").lower() in _TRUE


def int_query(raw: str | None, name: str, default: int | None = None) -> int | None:
    """A non-negative int64 query parameter (``default`` when absent); anything else is 400."""
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw):
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise bad_request(f'query parameter "{name}" must be a non-negative integer, got "{shown}"')
    if len(raw) > 19 or int(raw) > INT64_MAX:
        raise bad_request(f'query parameter "{name}" is out of range: at most {INT64_MAX}, got {len(raw)} digits')
    return int(raw)


def _int_param(request: Request, name: str, default: int) -> int:
    value = int_query(request.query_params.get(name), name, default)
    assert value is not None
    return value


def _resource_version(request: Request) -> int | None:
    """``resourceVersion``: absent/"" and "0" mean "any" (None), else a non-negative integer."""
    raw = request.query_params.get("resourceVersion", "")
    if raw in ("", "0"):
        return None
    if not _DIGITS.fullmatch(raw) or len(raw) > 19:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise bad_request(f'resourceVersion must be a resource version the server returned (an integer), got '
                          f'"{shown}"')
    return int(raw)


def _method_not_allowed(request: Request) -> ApiError:
    return ApiError(
        405, "MethodNotAllowed",
        f'the server does not allow this method on the requested resource (method {request.method}, '
        f'path "{request.url.path}")',
    )


def _list_bytes(rt: ResourceType, meta: dict[str, Any], bodies: list[str]) -> bytes:
    """A ``<Kind>List`` around stored JSON texts, without parsing them."""
    head = json.dumps({"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta},
                      separators=(",", ":"))
    return "".join((head[:-1], ',"items":[', ",".join(bodies), "]}")).encode()


def _json_bytes(text: str) -> Response:
    return Response(text.encode(), media_type="application/json")


def _table_include(request: Request) -> str | None:
    """``includeObject`` when the request asks for a ``Table`` (``kubectl get``), else None."""
    if not wants_table(request.headers.get("accept", "")):
        return None
    return check_include_object(request.query_params.get("includeObject"))


def _table_line(rt: ResourceType, line: bytes, include: str, first: bool) -> bytes:
    """A watch line whose object is turned into a one-row ``Table`` (bookmarks and errors stay)."""
    event = json.loads(line)
    if event.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
        return line
    table = build_table(rt.group, rt.plural, [event["object"]], include=include, with_definitions=first,
                        list_meta={"resourceVersion": event["object"].get("metadata", {}).get("resourceVersion",
                                                                                                "")})
    return (json.dumps({"type": event["type"], "object": table}, separators=(",", ":")) + "\n").encode()


def _grace_period(value: Any, default: int | None) -> int | None:
    """``DeleteOptions.gracePeriodSeconds``: a non-negative integer or null."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_request(f"DeleteOptions.gracePeriodSeconds must be a non-negative integer, got {value!r}")
    return value


@dataclass(frozen=True)
class DeleteOptions:
    """What a DELETE asks for (``DeleteOptions`` from the body, else from the query parameters)."""

    preconditions: dict[str, str] | None = None
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None


async def delete_options(request: Request) -> DeleteOptions:
    """The ``DeleteOptions`` of a DELETE request: ``preconditions``, ``gracePeriodSeconds``,
    ``propagationPolicy`` and the deprecated ``orphanDependents`` (body fields win over query
    parameters). A value of the wrong type is 400, an unknown policy or both the policy and
    ``orphanDependents`` 422, each naming the field."""
    q = request.query_params
    options = await read_json_body(request, required=False)
    if options is not None and not isinstance(options, dict):
        raise bad_request("the body of a DELETE must be a DeleteOptions object")
    body = options or {}
    grace = _grace_period(body.get("gracePeriodSeconds"),
                          int_query(q.get("gracePeriodSeconds"), "gracePeriodSeconds"))
    preconditions = None
    if isinstance(body.get("preconditions"), dict):
        preconditions = {k: str(v) for k, v in body["preconditions"].items() if v is not None}
    policy = body.get("propagationPolicy", q.get("propagationPolicy"))
    if policy is not None and not isinstance(policy, str):
        raise bad_request(f"DeleteOptions.propagationPolicy must be a string, got {policy!r}")
    orphan: Any = body.get("orphanDependents")
    if orphan is None and q.get("orphanDependents") is not None:
        raw = q["orphanDependents"].lower()
        if raw not in ("true", "false"):
            raise bad_request(f'query parameter "orphanDependents" must be true or false, got "{raw[:40]}"')
        orphan = raw == "true"
    if orphan is not None:
        if not isinstance(orphan, bool):
            raise bad_request(f"DeleteOptions.orphanDependents must be a boolean, got {orphan!r}")
        if policy:
            raise invalid("DeleteOptions", "meta.k8s.io", "", [{
                "reason": "FieldValueInvalid", "field": "propagationPolicy",
                "message": f'Invalid value: "{policy[:80]}": orphanDependents and deletionPropagation cannot be '
                           "both set"}])
        policy = "Orphan" if orphan else "Background"
    check_propagation_policy(policy or None)
    return DeleteOptions(preconditions, grace, policy or None)


class SendPacer:
    """Paces the large watch lines of all watchers together (a token bucket on the event loop).

    Fifty watchers of a 1.4 MB object are 70 MB to encrypt per change; sent at once, every turn
    of the event loop would encrypt megabytes and a small request such as ``/version`` would wait
    for many such turns. Paced, a turn sends at most ``burst`` bytes of large lines, so other
    requests keep answering within milliseconds while the watchers still get ``rate`` bytes/s.
    Only touched from the event loop thread, so it needs no lock.
    """

    def __init__(self, rate: float = 128 * 1024 * 1024, burst: int = 512 * 1024) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()

    async def take(self, size: int) -> None:
        """Wait until ``size`` bytes may be sent."""
        need = min(size, self.burst)
        while True:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= need:
                self._tokens -= size
                return
            await anyio.sleep((need - self._tokens) / self.rate)


async def _chunks(line: bytes, pacer: SendPacer) -> AsyncIterator[bytes | memoryview]:
    """A large watch line in paced slices, letting other requests run between them."""
    if len(line) <= _WATCH_SLICE:
        yield line
        return
    view = memoryview(line)
    for offset in range(0, len(line), _WATCH_SLICE):
        piece = view[offset:offset + _WATCH_SLICE]
        await pacer.take(len(piece))
        yield piece


async def _batched(lines: list[bytes], pacer: SendPacer) -> AsyncIterator[bytes | memoryview]:
    """Watch lines as few sends: small lines joined (up to a slice), large ones paced in slices."""
    batch: list[bytes] = []
    size = 0
    for line in lines:
        if len(line) > _WATCH_SLICE:
            if batch:
                yield b"".join(batch)
                batch, size = [], 0
            async for chunk in _chunks(line, pacer):
                yield chunk
            continue
        if size + len(line) > _WATCH_SLICE and batch:
            yield b"".join(batch)
            batch, size = [], 0
        batch.append(line)
        size += len(line)
    if batch:
        yield b"".join(batch)


class ResourceHandler:
    """Serves the requests :class:`ResourceRoute` matched."""

    def __init__(self, store: Store, paths: StatePaths, *, bookmark_interval: float,
                 watch_cache_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.store = store
        self.paths = paths
        self.bookmark_interval = bookmark_interval
        self.watch_cache = WatchCache(store, max_bytes=watch_cache_bytes)
        self.pacer = SendPacer()
        # waiting watchers park on the event loop, woken together once the cache holds the change
        self.change_signal = ChangeSignal(store, self.watch_cache)

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
            # validated like ListOptions; a list always reads the latest state and never waits
            _resource_version(request)
            _int_param(request, "timeoutSeconds", 0)
            include = _table_include(request)
            if include is not None:
                return await self._table_list(request, t, include)
            bodies, rv, cont = await run_in_threadpool(
                self.store.list_raw, t.rt, t.namespace,
                label_selector=q.get("labelSelector", ""), field_selector=q.get("fieldSelector", ""),
                limit=_int_param(request, "limit", 0), continue_token=q.get("continue", ""),
            )
            meta: dict[str, Any] = {"resourceVersion": rv}
            if cont:
                meta["continue"] = cont
            body = await run_in_threadpool(_list_bytes, t.rt, meta, bodies)
            return Response(body, media_type="application/json")
        if request.method == "POST":
            if t.rt.namespaced and t.namespace is None:
                raise _method_not_allowed(request)
            body_in = await read_json_body(request)
            if t.rt.key == resources.CUSTOM_RESOURCE_DEFINITIONS.key:
                body_in = admit_crd(body_in)
            created = await run_in_threadpool(self.store.create, t.rt, t.namespace, body_in)
            return await json_response(created, status_code=201)
        if request.method == "DELETE":
            options = await delete_options(request)
            items, _, _ = await run_in_threadpool(
                self.store.list, t.rt, t.namespace,
                label_selector=q.get("labelSelector", ""), field_selector=q.get("fieldSelector", ""),
            )
            for item in items:
                meta_in = item["metadata"]
                try:
                    await run_in_threadpool(
                        self.store.delete, t.rt, meta_in.get("namespace"), meta_in["name"],
                        grace_period_seconds=options.grace_period_seconds,
                        propagation_policy=options.propagation_policy,
                    )
                except ApiError as exc:
                    if exc.code != 404:  # deleted concurrently: fine
                        raise
            return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                 "details": {"group": t.rt.group, "kind": t.rt.plural}})
        raise _method_not_allowed(request)

    async def _table_list(self, request: Request, t: Target, include: str) -> Response:
        q = request.query_params
        items, rv, cont = await run_in_threadpool(
            self.store.list, t.rt, t.namespace,
            label_selector=q.get("labelSelector", ""), field_selector=q.get("fieldSelector", ""),
            limit=_int_param(request, "limit", 0), continue_token=q.get("continue", ""),
        )
        meta: dict[str, Any] = {"resourceVersion": rv}
        if cont:
            meta["continue"] = cont
        table = await run_in_threadpool(
            lambda: build_table(t.rt.group, t.rt.plural, items, list_meta=meta, include=include)
        )
        return await json_response(table)

    async def _object(self, request: Request, t: Target) -> Response:
        assert t.name is not None
        method = request.method
        include = _table_include(request) if method == "GET" and not t.subresource else None
        if include is not None:
            obj = await run_in_threadpool(self.store.get, t.rt, t.namespace, t.name)
            meta = {"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")}
            return await json_response(build_table(t.rt.group, t.rt.plural, [obj], list_meta=meta, include=include))
        if method == "GET":
            return _json_bytes(await run_in_threadpool(self.store.get_raw, t.rt, t.namespace, t.name))
        if method == "PUT":
            body = await read_json_body(request)
            if t.rt.key == resources.CUSTOM_RESOURCE_DEFINITIONS.key and not t.subresource:
                body = admit_crd(body)
            out = await run_in_threadpool(
                self.store.replace, t.rt, t.namespace, t.name, body, subresource=t.subresource
            )
            return await json_response(out)
        if method == "PATCH":
            body = await read_json_body(request)
            content_type = request.headers.get("content-type", "")
            out = await run_in_threadpool(
                self.store.patch, t.rt, t.namespace, t.name, body, content_type, subresource=t.subresource
            )
            return await json_response(out)
        if method == "DELETE" and not t.subresource:
            options = await delete_options(request)
            name = t.name
            out = await run_in_threadpool(
                lambda: self.store.delete(t.rt, t.namespace, name, preconditions=options.preconditions,
                                          grace_period_seconds=options.grace_period_seconds,
                                          propagation_policy=options.propagation_policy)
            )
            return await json_response(out)
        raise _method_not_allowed(request)

    def _watch(self, request: Request, t: Target) -> Response:
        q = request.query_params
        label_selector = q.get("labelSelector", "")
        field_selector = q.get("fieldSelector", "")
        if t.name is not None:
            name_term = f"metadata.name={t.name}"
            field_selector = f"{field_selector},{name_term}" if field_selector else name_term
        # validate up front: a bad selector or parameter is a 400 response, not a broken stream
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, t.rt.kind)
        timeout = float(_int_param(request, "timeoutSeconds", 0)) or DEFAULT_WATCH_TIMEOUT
        start_rv = _resource_version(request)
        _int_param(request, "limit", 0)  # validated like ListOptions; a watch is not paginated
        if q.get("continue"):
            raise bad_request("continue cannot be combined with watch: list with continue, then watch from the "
                              "list's resourceVersion")
        bookmarks = _bool(q.get("allowWatchBookmarks"))
        include = _table_include(request)
        stream = self._watch_events(
            t, start_rv, (label_selector, field_selector), (labels, fields), timeout, bookmarks
        )
        if include is not None:
            stream = _as_tables(t.rt, stream, include)
        return StreamingResponse(stream, media_type="application/json")

    async def _watch_events(
        self,
        t: Target,
        start_rv: int | None,
        selector_text: tuple[str, str],
        selectors: tuple[LabelSelector, FieldSelector],
        timeout: float,
        bookmarks: bool,
    ) -> AsyncIterator[bytes | memoryview]:
        store = self.store
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + self.bookmark_interval
        if start_rv is None:
            bodies, list_rv, _ = await run_in_threadpool(
                store.list_raw, t.rt, t.namespace, label_selector=selector_text[0],
                field_selector=selector_text[1],
            )
            for body in bodies:
                async for chunk in _chunks(event_line("ADDED", body), self.pacer):
                    yield chunk
            del bodies
            last = int(list_rv)
        else:
            last = start_rv
        catching_up = True
        while not store.closed:
            cached = None if catching_up else self.watch_cache.cached_after(t.rt, t.namespace, last, *selectors)
            try:
                if cached is None:
                    cached = await run_in_threadpool(
                        self.watch_cache.events_after, t.rt, t.namespace, last, *selectors, catching_up=catching_up
                    )
            except ApiError as exc:
                yield gone_line(exc)
                return
            lines, reached = cached
            if catching_up and reached >= self.watch_cache.floor:
                catching_up = False
            async for chunk in _batched(lines, self.pacer):
                yield chunk
            del lines
            last = max(last, reached)
            now = time.monotonic()
            if now >= deadline:
                return
            if bookmarks and now >= next_bookmark:
                yield (json.dumps({"type": "BOOKMARK", "object": {
                    "kind": t.rt.kind, "apiVersion": t.rt.api_version,
                    "metadata": {"resourceVersion": str(last)}}}, separators=(",", ":")) + "\n").encode()
                next_bookmark = now + self.bookmark_interval
            wait = min(deadline - now, _MAX_WAIT)
            if bookmarks:
                wait = min(wait, max(next_bookmark - now, 0.0))
            await self.change_signal.wait((t.rt.group, t.rt.plural), last, wait)


async def _as_tables(
    rt: ResourceType, lines: AsyncIterator[bytes | memoryview], include: str
) -> AsyncIterator[bytes | memoryview]:
    """Watch lines (possibly sent in slices) re-assembled and turned into ``Table`` events; the
    first carries the column definitions."""
    first = True
    partial = bytearray()
    async for chunk in lines:
        partial += chunk
        while True:
            end = partial.find(b"\n")
            if end < 0:
                break
            line = bytes(partial[:end + 1])
            del partial[:end + 1]
            converted = await run_in_threadpool(_table_line, rt, line, include, first)
            if converted is not line:
                first = False
            yield converted


def install_resource_routes(
    app: FastAPI, store: Store, paths: StatePaths, *, bookmark_interval: float = 30.0,
    watch_cache_bytes: int = DEFAULT_MAX_BYTES, served: ServedKinds | None = None,
) -> None:
    """Add the Kubernetes resource routes (core ``/api/v1`` and ``/apis/{group}/{version}``) to
    ``app``; with ``served``, custom kinds only while their CRDs serve them (else every kind)."""
    handler = ResourceHandler(store, paths, bookmark_interval=bookmark_interval,
                              watch_cache_bytes=watch_cache_bytes)
    app.router.routes.append(ResourceRoute("/api/{version}/{rest:path}", handler.handle, core=True, served=served))
    app.router.routes.append(ResourceRoute("/apis/{group}/{version}/{rest:path}", handler.handle, core=False,
                                           served=served))
