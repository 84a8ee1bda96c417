"""A self-contained API server for the API tests: store + ``create_app`` served by uvicorn on
127.0.0.1 with a random port in a background thread, plus a kubeconfig for the official clients.

Imported by ``conftest.py`` (fixtures) and by tests that need the types or extra servers."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import APIRouter

from airflow_argo_eci.local.api.app import create_app
from airflow_argo_eci.local.api.argo_server import build_argo_server_router
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.httpserve import serve_in_thread
from airflow_argo_eci.local.kubeconfig import write_kubeconfig
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.tls import ensure_certificate

TOKEN = "test-token-0123456789"


@dataclass
class ApiServer:
    """A running API server."""

    url: str
    token: str
    store: Store
    paths: StatePaths
    kubeconfig: Path
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.store.close()


def start_api_server(
    root: Path,
    *,
    event_window: int = 10_000,
    bookmark_interval: float = 0.2,
    tls: bool = False,
    routers: Sequence[APIRouter] = (),
    watch_cache_bytes: int = 64 * 1024 * 1024,
    argo_server: bool = False,
) -> ApiServer:
    """Start a server on a fresh state directory; returns once it accepts connections.

    ``routers`` are included after ``create_app`` (like the lead includes the Argo Server routes);
    ``argo_server`` includes the Argo Server REST routes over the server's own store.
    """
    paths = StatePaths(root)
    root.mkdir(parents=True, exist_ok=True)
    ssl: dict[str, str] = {}
    if tls:
        cert_path, key_path = ensure_certificate(paths.tls_cert, paths.tls_key)
        ssl = {"ssl_certfile": str(cert_path), "ssl_keyfile": str(key_path)}
    store = Store(paths.db, event_window=event_window)
    app = create_app(store, token=TOKEN, paths=paths, bookmark_interval=bookmark_interval,
                     watch_cache_bytes=watch_cache_bytes)
    for router in routers:
        app.include_router(router)
    if argo_server:  # the Argo Server REST routes over this server's own store
        app.include_router(build_argo_server_router(store, paths))
    server, thread, port = serve_in_thread(app, graceful_seconds=0.25, **ssl)  # type: ignore[arg-type]
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    ca_pem = paths.tls_cert.read_bytes() if tls else None
    kubeconfig = write_kubeconfig(paths.kubeconfig, url, TOKEN, ca_pem=ca_pem)
    return ApiServer(url, TOKEN, store, paths, kubeconfig, server, thread)
