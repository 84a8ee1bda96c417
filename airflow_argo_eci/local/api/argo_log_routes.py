"""The Argo Server's workflow log routes: ``/api/v1/workflows/{ns}/{name}/log`` and
``/api/v1/workflows/{ns}/{name}/{podName}/log``, newline-delimited
``{"result": {"content": ..., "podName": ...}}`` read from the pods' log files (``podName``,
``logOptions.container|follow|tailLines|timestamps|sinceSeconds|sinceTime.seconds``, ``grep`` (an
RE2 regular expression, as Go's), ``selector`` (a pod label selector))."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import re2
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from airflow_argo_eci.conventions import LABEL_WORKFLOW
from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.argo_server_base import call, is_completed, query_bool, query_int
from airflow_argo_eci.local.api.pod_logs import POD_DONE_PHASES
from airflow_argo_eci.local.api.resources import PODS, WORKFLOWS
from airflow_argo_eci.local.api.selectors import parse_label_selector
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.api.validation import dns1123_label
from airflow_argo_eci.local.paths import StatePaths

#: how often a following log request looks for new lines and pods
LOG_POLL_INTERVAL = 0.1

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class _LogQuery:
    """The log options of one request."""

    def __init__(self, request: Request, pod_name: str | None) -> None:
        qp = request.query_params
        self.pod_name = pod_name or qp.get("podName") or None
        self.container = qp.get("logOptions.container") or "main"
        if dns1123_label(self.container):
            raise errors.bad_request(f'logOptions.container "{self.container[:80]}" is not a container name (an RFC '
                                     '1123 label such as "main")')
        self.follow = query_bool(request, "logOptions.follow")
        self.timestamps = query_bool(request, "logOptions.timestamps")
        self.tail = query_int(request, "logOptions.tailLines")
        self.selector = qp.get("selector") or ""
        parse_label_selector(self.selector)  # a bad selector is a 400 now, not a broken stream later
        since_seconds = query_int(request, "logOptions.sinceSeconds")
        since_time = query_int(request, "logOptions.sinceTime.seconds")
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


def add_log_routes(router: APIRouter, store: Store, paths: StatePaths) -> None:
    """Add the log routes over ``store`` (log lines read from ``paths``) to ``router``."""

    def list_log_pods(namespace: str, name: str, query: _LogQuery) -> list[dict[str, Any]]:
        selector = f"{LABEL_WORKFLOW}={name}" + (f",{query.selector}" if query.selector else "")
        pods, _, _ = store.list(PODS, namespace, label_selector=selector)
        if query.pod_name:
            pods = [p for p in pods if p["metadata"]["name"] == query.pod_name]
        return _sorted_pods(pods)

    def workflow_state(namespace: str, name: str) -> dict[str, Any] | None:
        return store.find(WORKFLOWS, namespace, name)

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
            if (wf is None or is_completed(wf)) and pods_done:
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
