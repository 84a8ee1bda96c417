"""HTTP templates of a reconcile pass (Argo's agent ``executeHTTPTemplate``): the request runs on a
worker thread of the controller with its timeout, never in the reconcile pass; a later pass reads
the response into the node (``outputs.result`` = the body) and evaluates ``successCondition``.

Any host the machine can reach may be called, as from Argo's agent pod in a cluster.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_argo_eci.local.argo.expressions import ExpressionError, evaluate
from airflow_argo_eci.local.argo.reconcile.state import PassState
from airflow_argo_eci.local.argo.templates import SpecError, TemplateContext
from airflow_argo_eci.local.argo.variables import unresolved_tags

#: seconds a request may take when the template sets no ``timeoutSeconds``
DEFAULT_TIMEOUT = 60.0
#: the most of a response body kept as ``outputs.result``
MAX_BODY_BYTES = 1 << 20
#: how often a pass looks for the response of a request in flight: first, and at the most
POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 1.0
#: requests that may run at the same time (more wait for a worker)
MAX_WORKERS = 8


@dataclass
class HttpResponse:
    """What a request returned, or why it failed (``error``)."""

    status_code: int = 0
    body: str = ""
    headers: dict[str, list[str]] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP template's request, with its headers resolved."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    timeout: float
    insecure: bool


class RequestPool:
    """The requests in flight, by (workflow uid, node id); shared by every reconcile pass. Each runs
    on a daemon thread (at most :data:`MAX_WORKERS` at once), so none holds up the process's exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_WORKERS)
        self._futures: dict[tuple[str, str], tuple[float, Future[HttpResponse]]] = {}

    def submit(self, key: tuple[str, str], request: HttpRequest) -> None:
        """Start ``request`` for ``key`` unless one is already in flight."""
        with self._lock:
            if key in self._futures:
                return
            now = time.monotonic()
            for stale in [k for k, (at, f) in self._futures.items() if f.done() and now - at > 3600]:
                del self._futures[stale]  # a workflow deleted before it read its response
            future: Future[HttpResponse] = Future()
            self._futures[key] = (now, future)
        threading.Thread(target=self._run, args=(request, future), name="http-template", daemon=True).start()

    def _run(self, request: HttpRequest, future: Future[HttpResponse]) -> None:
        with self._slots:
            try:
                response = send(request)
            except Exception as exc:  # the node must end whatever the request ran into
                response = HttpResponse(error=f"{request.method} {request.url}: {type(exc).__name__}: {exc}")
            future.set_result(response)

    def pending(self, key: tuple[str, str]) -> bool:
        """Whether a request for ``key`` was submitted and not taken yet."""
        with self._lock:
            return key in self._futures

    def age(self, key: tuple[str, str]) -> float:
        """Seconds since the request for ``key`` was submitted (0 when there is none)."""
        with self._lock:
            entry = self._futures.get(key)
        return time.monotonic() - entry[0] if entry else 0.0

    def take(self, key: tuple[str, str]) -> HttpResponse | None:
        """The response for ``key`` once it is there (then forgotten), else None."""
        with self._lock:
            entry = self._futures.get(key)
            if entry is None or not entry[1].done():
                return None
            del self._futures[key]
        return entry[1].result()


#: the controller's requests in flight
REQUESTS = RequestPool()


def send(request: HttpRequest) -> HttpResponse:
    """Send ``request``; an error (connection, timeout, a body too large) is the response's ``error``
    in the words of Go's ``net/http`` client (``Get "URL": ...``)."""
    op = f'{request.method[:1].upper()}{request.method[1:].lower()} "{request.url}"'
    headers = [(name, value) for name, value in request.headers if name.lower() != "host"]
    hosts = [value for name, value in request.headers if name.lower() == "host"]
    if hosts:  # Go rewrites the Host header instead of adding a second one
        headers.append(("Host", hosts[-1]))
    try:
        with httpx.Client(verify=not request.insecure, timeout=request.timeout, follow_redirects=True,
                          trust_env=False) as client, \
                client.stream(request.method, request.url, headers=headers, content=request.body or None) as resp:
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return HttpResponse(error=f"{op}: the response body is larger than {MAX_BODY_BYTES} bytes, the "
                                              "most the local cluster keeps as outputs.result")
                chunks.append(chunk)
            merged: dict[str, list[str]] = {}
            for name, value in resp.headers.multi_items():
                merged.setdefault(_canonical(name), []).append(value)
            return HttpResponse(resp.status_code, b"".join(chunks).decode(errors="replace"), merged)
    except httpx.TimeoutException:
        return HttpResponse(error=f"{op}: context deadline exceeded (timeout after {request.timeout:g}s)")
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
        return HttpResponse(error=f"{op}: {exc or type(exc).__name__}")


def _canonical(name: str) -> str:
    """A header name as Go's ``http.Header`` keys it (``content-type`` -> ``Content-Type``)."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class HttpRunner:
    """Starts the requests of HTTP nodes and ends the nodes with their responses."""

    def __init__(self, state: PassState, pool: RequestPool = REQUESTS) -> None:
        self.state = state
        self.pool = pool

    def execute_http(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                     ctx: TemplateContext, tmpl: dict[str, Any], boundary: str) -> dict[str, Any] | None:
        """Run (or continue) the HTTP template ``tmpl`` as node ``node_name`` (type ``HTTP``)."""
        if node is None:
            if self.state.spec.get("suspend"):
                return None
            node = self.state.init_node(node_name, "HTTP", display, ctx, tmpl, holder, boundary, "Running")
            if tmpl.get("inputs"):
                node["inputs"] = tmpl["inputs"]
        if self.state.fulfilled(node):
            return node
        spec = tmpl.get("http") or {}
        key = (self.state.uid, node["id"])
        if self.state.shutdown or self.state.deadline_exceeded:
            self.pool.take(key)
            message = (f"workflow shutdown with strategy: {self.state.shutdown}" if self.state.shutdown
                       else "Workflow exceeded its deadline")
            self.state.mark(node, "Failed", message)
            return node
        if not self.pool.pending(key):
            try:
                self.pool.submit(key, self._request(spec, tmpl.get("name", "")))
            except SpecError as exc:
                self.state.mark(node, "Failed", str(exc))
                return node
        response = self.pool.take(key)
        if response is None:
            # look again soon, then less often: a slow endpoint does not make the pass spin
            self.state.requeue(min(MAX_POLL_SECONDS, max(POLL_SECONDS, self.pool.age(key) / 5)))
            return node
        self._finish(node, spec, response)
        return node

    def _request(self, spec: dict[str, Any], name: str) -> HttpRequest:
        field_prefix = f"templates.{name}.http"
        leftovers = unresolved_tags(spec)
        if leftovers:
            raise SpecError(f"failed to resolve {leftovers[0]}")
        url = str(spec.get("url") or "")
        if not url:
            raise SpecError(f"{field_prefix}.url is required")
        method = str(spec.get("method") or "GET").upper()
        headers: list[tuple[str, str]] = []
        for i, h in enumerate(spec.get("headers") or []):
            if not isinstance(h, Mapping) or not h.get("name"):
                raise SpecError(f"{field_prefix}.headers[{i}]: a header needs a name")
            ref = (h.get("valueFrom") or {}).get("secretKeyRef")
            value = (self.state.secret_value(ref, f"{field_prefix}.headers[{i}].valueFrom.secretKeyRef") if ref
                     else str(h.get("value") or ""))
            headers.append((str(h["name"]), value))
        body = str(spec.get("body") or "").encode()
        body_from = (spec.get("bodyFrom") or {}).get("bytes")
        if body_from is not None:
            try:
                body = base64.b64decode(str(body_from), validate=True)
            except ValueError as exc:
                raise SpecError(f"{field_prefix}.bodyFrom.bytes: not base64: {exc}") from exc
        timeout = spec.get("timeoutSeconds")
        try:
            seconds = float(timeout) if timeout not in (None, "") else DEFAULT_TIMEOUT
        except (TypeError, ValueError):
            raise SpecError(f"{field_prefix}.timeoutSeconds: {timeout!r} is not a number of seconds") from None
        if seconds <= 0:
            raise SpecError(f"{field_prefix}.timeoutSeconds must be positive, got {timeout!r}")
        return HttpRequest(method, url, tuple(headers), body, seconds, bool(spec.get("insecureSkipVerify")))

    @staticmethod
    def _request_headers(spec: dict[str, Any]) -> dict[str, list[str]]:
        """The template's plain header values as Go's ``http.Header`` (secret values left out)."""
        out: dict[str, list[str]] = {}
        for h in spec.get("headers") or []:
            if isinstance(h, Mapping) and h.get("name") and not h.get("valueFrom"):
                out.setdefault(_canonical(str(h["name"])), []).append(str(h.get("value") or ""))
        return out

    def _finish(self, node: dict[str, Any], spec: dict[str, Any], response: HttpResponse) -> None:
        if response.error:
            self.state.mark(node, "Failed", response.error)
            return
        node["outputs"] = {"result": response.body}
        condition = str(spec.get("successCondition") or "")
        if not condition:
            if 200 <= response.status_code < 300:
                self.state.mark(node, "Succeeded")
            else:
                self.state.mark(node, "Failed", f"received non-2xx response code: {response.status_code}")
            return
        env = {
            "request": {"method": str(spec.get("method") or "GET"), "url": str(spec.get("url") or ""),
                        "body": str(spec.get("body") or ""), "headers": self._request_headers(spec)},
            "response": {"statusCode": response.status_code, "body": response.body, "headers": response.headers},
        }
        try:
            ok = evaluate(condition, env)
        except ExpressionError as exc:
            self.state.mark(node, "Failed", f"successCondition '{condition}': {exc}")
            return
        if ok is True:
            self.state.mark(node, "Succeeded")
        else:
            self.state.mark(node, "Failed", f"successCondition '{condition}' evaluated false")
