"""An instrumented local cluster for the trigger tests.

The local cluster's own store and HTTP app (Kubernetes routes plus the Argo Server REST subset),
without the controller: the tests play the Argo controller by writing workflow status through the
Kubernetes API (the ``arranger`` client), so every phase change happens exactly when the test says.
Between the app and uvicorn sits :class:`RecordingMiddleware`, which records every request the
server receives except the arranger's (so tests assert how many LISTs, WATCHes and GETs the
triggers issued) and can cut open watch streams and hold new ones back (so tests simulate a lost
watch). The store's ``event_window`` is configurable, so a watch from an old resourceVersion gets
a real ``410 Gone``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from airflow_argo_eci.local.api.app import create_app
from airflow_argo_eci.local.api.argo_server import build_argo_server_router
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.kubeconfig import write_kubeconfig
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.server import serve_in_thread
from airflow_argo_eci.local.tls import ensure_certificate

NAMESPACE = "argo"
#: the header of the test's own requests (playing the controller): the recorder leaves them out
ARRANGER_HEADER = "X-Test-Arranger"
WORKFLOWS_PATH = "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows"
#: group, version, namespace and plural of the workflows, as the ``kubernetes`` client takes them
_WF = ("argoproj.io", "v1alpha1", NAMESPACE, "workflows")


@dataclass
class RecordedRequest:
    """One request as the server received it, and the status it was answered with."""

    method: str
    path: str
    query: dict[str, str]
    status: int | None = None

    @property
    def is_watch(self) -> bool:
        watch_param = self.query.get("watch", "").lower() in ("true", "1")
        return watch_param or self.path.startswith("/apis/argoproj.io/v1alpha1/watch/")

    @property
    def is_workflow_list(self) -> bool:
        return self.method == "GET" and self.path == WORKFLOWS_PATH and not self.is_watch


class RecordingMiddleware:
    """ASGI middleware: record requests; cut open watch streams; refuse new ones (503) while
    :attr:`watches_open` is cleared."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[RecordedRequest] = []
        self.watches_open = threading.Event()
        self.watches_open.set()
        self._lock = threading.Lock()
        self._active: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = {}
        self._cut: set[int] = set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (ARRANGER_HEADER.lower().encode(), b"1") in scope.get("headers", []):
            await self.app(scope, receive, send)
            return
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        request = RecordedRequest(scope["method"], scope["path"], query)
        with self._lock:
            self.requests.append(request)

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                request.status = int(message["status"])
            await send(message)

        if not request.is_watch:
            await self.app(scope, receive, recording_send)
            return
        if not self.watches_open.is_set():  # the API server is unavailable for watches
            body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503,
                               "reason": "ServiceUnavailable", "message": "watch refused by the test"}).encode()
            await recording_send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        task = asyncio.current_task()
        assert task is not None
        key = id(task)
        with self._lock:
            self._active[key] = (asyncio.get_running_loop(), task)
        try:
            await self.app(scope, receive, recording_send)
        except asyncio.CancelledError:
            if key in self._cut:  # the connection drops mid-stream, as when a proxy or node dies
                raise ConnectionAbortedError("watch stream cut by the test") from None
            raise
        finally:
            with self._lock:
                self._active.pop(key, None)
                self._cut.discard(key)

    def cut_watches(self) -> int:
        """Drop every open watch connection; returns how many were cut."""
        with self._lock:
            active = list(self._active.items())
            for key, _ in active:
                self._cut.add(key)
        for _, (loop, task) in active:
            loop.call_soon_threadsafe(task.cancel)
        return len(active)

    def open_watches(self) -> int:
        with self._lock:
            return len(self._active)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)


@dataclass
class InstrumentedCluster:
    """A running instrumented server (see the module docstring)."""

    url: str
    token: str
    store: Store
    paths: StatePaths
    kubeconfig: Path
    recorder: RecordingMiddleware
    stop: Callable[[], None]
    #: a ``kubernetes`` ApiClient on :attr:`kubeconfig` whose requests the recorder leaves out
    arranger: Any = None

    # ------------------------------------------------------------------ requests

    def requests(self, *, since: int = 0) -> list[RecordedRequest]:
        return self.recorder.snapshot()[since:]

    def watches(self, since: int = 0) -> list[RecordedRequest]:
        return [r for r in self.requests(since=since) if r.is_watch]

    def lists(self, since: int = 0) -> list[RecordedRequest]:
        return [r for r in self.requests(since=since) if r.is_workflow_list]

    def gets(self, since: int = 0) -> list[RecordedRequest]:
        return [r for r in self.requests(since=since) if r.method == "GET" and r.path.startswith(WORKFLOWS_PATH + "/")]

    # ------------------------------------------------------------------ playing the controller

    def create_workflow(self, name: str, phase: str = "Running") -> dict[str, Any]:
        body = {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine"}}]},
        }
        created: dict[str, Any] = self._workflows().create_namespaced_custom_object(*_WF, body)
        return self.set_status(name, {"phase": phase}) if phase else created

    def _workflows(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.arranger)

    def get_workflow(self, name: str) -> dict[str, Any] | None:
        """Workflow ``name`` as the API serves it; None when there is none."""
        from kubernetes.client.exceptions import ApiException

        try:
            got: dict[str, Any] = self._workflows().get_namespaced_custom_object(*_WF, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return got

    def watch_is_gone(self, resource_version: str) -> bool:
        """Whether a workflow watch from ``resource_version`` is answered ``410 Gone`` (its events
        left the store's window), asked through the API."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        stream = watch.Watch().stream(self._workflows().list_namespaced_custom_object, *_WF,
                                      resource_version=resource_version, timeout_seconds=1)
        try:
            for event in stream:
                obj = event.get("raw_object") or event.get("object") or {}
                if event.get("type") == "ERROR":
                    return isinstance(obj, dict) and obj.get("code") == 410
                return False
        except ApiException as exc:
            return exc.status == 410
        return False

    def set_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Replace the given top-level ``status`` keys (a read and a status update through the API)."""
        from kubernetes.client.exceptions import ApiException

        api = self._workflows()
        for attempt in range(5):
            obj = api.get_namespaced_custom_object(*_WF, name)
            obj["status"] = {**(obj.get("status") or {}), **status}
            try:
                written: dict[str, Any] = api.replace_namespaced_custom_object_status(*_WF, name, obj)
            except ApiException as exc:
                if exc.status != 409 or attempt == 4:
                    raise
                continue
            return written
        raise AssertionError("unreachable")

    def fail(self, name: str, node: str = "step-a", message: str = "exit code 3") -> dict[str, Any]:
        node_id = f"{name}-1234"
        return self.set_status(name, {
            "phase": "Failed", "message": "child failed",
            "nodes": {
                name: {"id": name, "name": name, "displayName": name, "type": "Steps", "phase": "Failed",
                       "children": [node_id], "message": "child failed"},
                node_id: {"id": node_id, "name": f"{name}[0].{node}", "displayName": node, "type": "Pod",
                          "phase": "Failed", "message": message},
            },
        })

    def delete_workflow(self, name: str) -> None:
        self._workflows().delete_namespaced_custom_object(*_WF, name)

    # ------------------------------------------------------------------ connections

    def connection_uri_env(self, conn_id: str, *, transport: str = "kubernetes") -> dict[str, str]:
        """The ``AIRFLOW_CONN_<ID>`` environment variable for a connection to this server."""
        if transport == "kubernetes":
            conn: dict[str, Any] = {"conn_type": "argo_workflows",
                                    "extra": {"kube_config_path": str(self.kubeconfig), "namespace": NAMESPACE,
                                              "max_retries": 2, "retry_backoff": 0.05}}
        else:
            conn = {"conn_type": "argo_workflows", "host": self.url, "password": self.token,
                    "extra": {"transport": "argo_server", "namespace": NAMESPACE,
                              "ca_cert_path": str(self.paths.tls_cert), "max_retries": 2, "retry_backoff": 0.05}}
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}


def start_instrumented_cluster(
    root: Path, *, event_window: int = 10_000, bookmark_interval: float = 30.0
) -> InstrumentedCluster:
    """Start the store, the app (Kubernetes + Argo Server routes) and the recorder over HTTPS."""
    paths = StatePaths(root)
    root.mkdir(parents=True, exist_ok=True)
    cert, key = ensure_certificate(paths.tls_cert, paths.tls_key)
    token = uuid.uuid4().hex
    store = Store(paths.db, event_window=event_window)
    app = create_app(store, token=token, paths=paths, bookmark_interval=bookmark_interval)
    app.include_router(build_argo_server_router(store, paths))
    recorder = RecordingMiddleware(app)
    server, thread, port = serve_in_thread(recorder, ssl_certfile=str(cert), ssl_keyfile=str(key),
                                           graceful_seconds=0.2)
    url = f"https://127.0.0.1:{port}"
    kubeconfig = write_kubeconfig(paths.kubeconfig, url, token, ca_pem=cert.read_bytes())
    from kubernetes import config

    arranger = config.new_client_from_config(config_file=str(kubeconfig))
    arranger.set_default_header(ARRANGER_HEADER, "1")

    def stop() -> None:
        arranger.close()
        recorder.watches_open.set()
        server.should_exit = True
        thread.join(timeout=10)
        store.close()

    return InstrumentedCluster(url, token, store, paths, kubeconfig, recorder, stop, arranger)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait (without blocking the loop) until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
