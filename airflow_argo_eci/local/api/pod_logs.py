"""``GET /api/v1/namespaces/{ns}/pods/{name}/log``: container logs from the state directory.

Log files (:meth:`StatePaths.log_file`) hold one line per write, each prefixed by an RFC3339Nano
timestamp and a space. The timestamp is stripped unless ``timestamps=true``. Query parameters:
``container`` (default: the ``kubectl.kubernetes.io/default-container`` annotation, else ``main``,
else the only container), ``follow``, ``tailLines``, ``sinceSeconds``, ``sinceTime``,
``limitBytes``, ``timestamps``. With ``follow`` the response streams new lines until the pod's
``status.phase`` is ``Succeeded`` or ``Failed`` (or the pod is deleted).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from airflow_argo_eci.local.api.errors import bad_request
from airflow_argo_eci.local.api.resources import PODS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.api.validation import dns1123_label, dns1123_subdomain
from airflow_argo_eci.local.paths import StatePaths

#: how often a following log request polls the file and the pod
POLL_INTERVAL = 0.1
#: Kubernetes pod phases after which a pod's log no longer grows
POD_DONE_PHASES = ("Succeeded", "Failed")
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp with up to nanosecond fraction."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    base, frac, offset = value, "", ""
    if "." in value:
        base, rest = value.split(".", 1)
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, offset = rest[:digits], rest[digits:]
    elif len(value) > 19:
        base, offset = value[:19], value[19:]
    parsed = datetime.fromisoformat(base + (offset or "+00:00"))
    return parsed.timestamp() + (float("0." + frac) if frac else 0.0)


def _container_names(pod: dict[str, Any]) -> list[str]:
    spec = pod.get("spec") or {}
    names: list[str] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict) and container.get("name"):
                names.append(str(container["name"]))
    return names


def _choose_container(pod: dict[str, Any], requested: str | None) -> str:
    name = pod["metadata"]["name"]
    names = _container_names(pod)
    if requested:
        container = requested
    else:
        default = ((pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION))
        main = [n for n in names if n not in _init_names(pod)]
        if default:
            container = default
        elif "main" in names or not names:
            container = "main"
        elif len(main) == 1:
            container = main[0]
        else:
            raise bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(main)}]"
            )
    if dns1123_label(container):
        shown = container if len(container) <= 80 else container[:80] + "..."
        raise bad_request(f'container "{shown}" is not a valid container name (an RFC 1123 label such as "main")')
    if container not in names:
        raise bad_request(
            f"container {container} is not valid for pod {name}"
            + (f", choose one of: [{' '.join(names)}]" if names else ": the pod spec has no containers")
        )
    return container


def _init_names(pod: dict[str, Any]) -> set[str]:
    spec = pod.get("spec") or {}
    return {str(c.get("name")) for c in spec.get("initContainers") or [] if isinstance(c, dict)}


class _LineFilter:
    """Turns raw log lines into response lines (timestamp handling, since filtering)."""

    def __init__(self, *, timestamps: bool, since: float | None) -> None:
        self.timestamps = timestamps
        self.since = since

    def apply(self, raw: str) -> str | None:
        stamp, sep, text = raw.partition(" ")
        if not sep:
            stamp, text = raw, ""
        if self.since is not None:
            try:
                if parse_timestamp(stamp) < self.since:
                    return None
            except ValueError:
                pass
        return raw if self.timestamps else text


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read()
    except FileNotFoundError:
        return b""


async def pod_log_response(
    store: Store, paths: StatePaths, namespace: str, name: str, request: Request
) -> Response:
    """Serve the log of one container of a pod (404 for a missing pod, 400 for a bad container)."""
    q = request.query_params
    pod = await run_in_threadpool(store.get, PODS, namespace, name)
    container = _choose_container(pod, q.get("container"))
    timestamps = (q.get("timestamps") or "").lower() in ("true", "1")
    # following a finished pod returns what is there, like a terminated container
    follow = (q.get("follow") or "").lower() in ("true", "1") and (
        (pod.get("status") or {}).get("phase") not in POD_DONE_PHASES
    )
    tail = _int(q.get("tailLines"), "tailLines")
    limit_bytes = _int(q.get("limitBytes"), "limitBytes")
    since: float | None = None
    since_seconds = _int(q.get("sinceSeconds"), "sinceSeconds")
    if since_seconds is not None:
        since = time.time() - since_seconds
    elif q.get("sinceTime"):
        try:
            since = parse_timestamp(q["sinceTime"])
        except ValueError as exc:
            raise bad_request(f'sinceTime must be an RFC 3339 timestamp, got "{q["sinceTime"]}"') from exc
    line_filter = _LineFilter(timestamps=timestamps, since=since)
    path = log_path(paths, namespace, name, container)

    # reading and filtering a large log happens in the thread pool, never on the event loop
    initial, offset = await run_in_threadpool(_initial_lines, path, line_filter, follow, tail)
    if not follow:
        body = initial.encode()
        if limit_bytes is not None:
            body = body[:limit_bytes]
        return PlainTextResponse(body)
    return StreamingResponse(
        _follow(store, namespace, name, path, offset, initial, line_filter, limit_bytes),
        media_type="text/plain",
    )


def _initial_lines(path: Path, line_filter: _LineFilter, follow: bool, tail: int | None) -> tuple[str, int]:
    """The response text of what the log holds now and the offset a follow continues from (a
    partial last line is held back while following)."""
    data = _read_from(path, 0)
    complete, _, partial = data.rpartition(b"\n")
    raw_lines = complete.decode(errors="replace").splitlines()
    lines = [s for s in (line_filter.apply(r) for r in raw_lines) if s is not None]
    if not follow and partial:
        last = line_filter.apply(partial.decode(errors="replace"))
        if last is not None:
            lines.append(last)
        partial = b""
    if tail is not None:
        lines = lines[-tail:] if tail else []
    return "".join(line + "\n" for line in lines), len(data) - len(partial)


def log_path(paths: StatePaths, namespace: str, pod: str, container: str) -> Path:
    """The log file of a container, refusing any name that could leave the logs directory.

    Namespace, pod and container names are validated when objects are written; this is the last
    check before the file system: each must be a DNS name and the path must stay inside ``logs/``.
    """
    problems = dns1123_label(namespace) + dns1123_subdomain(pod) + dns1123_label(container)
    root = paths.root / "logs"
    path = paths.log_file(namespace, pod, container)
    if problems or os.path.commonpath([os.path.normpath(path), os.path.normpath(root)]) != os.path.normpath(root):
        raise bad_request(f'container "{container[:80]}" of pod "{pod[:80]}" does not name a log file: names must be '
                          "RFC 1123 labels")
    return path


def _int(raw: str | None, field: str) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit():
        raise bad_request(f'query parameter "{field}" must be a non-negative integer, got "{raw[:40]}"')
    if len(raw) > 12:  # more than 31,000 years of seconds or a terabyte of log
        raise bad_request(f'query parameter "{field}" is out of range ({len(raw)} digits)')
    return int(raw)


async def _follow(
    store: Store,
    namespace: str,
    name: str,
    path: Path,
    offset: int,
    initial: str,
    line_filter: _LineFilter,
    limit_bytes: int | None,
) -> AsyncIterator[bytes]:
    remaining = limit_bytes

    def budget(chunk: bytes) -> bytes:
        nonlocal remaining
        if remaining is None:
            return chunk
        chunk = chunk[:remaining]
        remaining -= len(chunk)
        return chunk

    if initial:
        yield budget(initial.encode())
    while remaining is None or remaining > 0:
        done = await run_in_threadpool(_pod_finished, store, namespace, name)
        data = await run_in_threadpool(_read_from, path, offset)
        if done:
            complete = data
        else:  # hold back a partial last line until its newline arrives
            head, nl, _ = data.rpartition(b"\n")
            complete = head + nl
        offset += len(complete)
        out = [line_filter.apply(r) for r in complete.decode(errors="replace").splitlines()]
        text = "".join(line + "\n" for line in out if line is not None)
        if text:
            yield budget(text.encode())
        if done:
            return
        await anyio.sleep(POLL_INTERVAL)


def _pod_finished(store: Store, namespace: str, name: str) -> bool:
    if store.closed:
        return True
    pod = store.find(PODS, namespace, name)
    return pod is None or (pod.get("status") or {}).get("phase") in POD_DONE_PHASES
