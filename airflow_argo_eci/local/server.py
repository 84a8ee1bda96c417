"""Compose the local cluster: store, runtime, controller and the HTTP API, in one process."""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from airflow_argo_eci.local.kubeconfig import write_kubeconfig, write_private
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.tls import ensure_certificate

if TYPE_CHECKING:
    import uvicorn

    from airflow_argo_eci.local.api.store import Store
    from airflow_argo_eci.local.argo.controller import Controller
    from airflow_argo_eci.local.oss.server import OSSServer
    from airflow_argo_eci.local.runtime.runner import Runtime

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class LocalClusterError(RuntimeError):
    """The local cluster could not start or stop."""


def serve_in_thread(
    app: Any,
    *,
    port: int = 0,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    graceful_seconds: float = 2.0,
    timeout: float = 30.0,
) -> tuple[uvicorn.Server, threading.Thread, int]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a daemon thread; return once it accepts.

    The socket is bound here (``port=0``: an ephemeral port) and handed to uvicorn, so there is
    no window in which another process could take the port. Returns (server, thread, port).
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))
    except OSError as exc:
        sock.close()
        raise LocalClusterError(f"cannot listen on {LOOPBACK}:{port}: {exc}; choose another --port") from exc
    bound = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", timeout_graceful_shutdown=graceful_seconds,  # type: ignore[arg-type]  # a float works
        ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="local-cluster-http",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=5)
            sock.close()
            raise LocalClusterError(f"the HTTP server on {LOOPBACK}:{bound} did not start within {timeout}s")
        time.sleep(0.01)
    return server, thread, bound


class LocalCluster:
    """A Kubernetes-API-compatible endpoint with an Argo-compatible executor on 127.0.0.1.

    All state lives under ``state_dir`` (SQLite database, pod logs, per-pod scratch, the
    kubeconfig with the bearer token). Restarting on the same ``state_dir`` keeps every object;
    pods that were running when it stopped end as ``Error`` and their ``retryStrategy`` applies.

    The server only ever binds the loopback interface, serves HTTPS with a self-signed
    certificate that the kubeconfig pins, and rejects any request without the random bearer token
    written into the kubeconfig, because it executes commands.
    """

    def __init__(
        self,
        state_dir: str | Path,
        *,
        port: int = 0,
        capacity_vcpu: float = 8.0,
        sandbox: str = "auto",
        token: str | None = None,
        run_controller: bool = True,
    ) -> None:
        if capacity_vcpu <= 0:
            raise ValueError(f"capacity_vcpu must be > 0 (got {capacity_vcpu}); it bounds concurrent pods")
        if sandbox not in ("auto", "bwrap", "none"):
            raise ValueError(f"sandbox must be 'auto', 'bwrap' or 'none' (got {sandbox!r})")
        self.paths = StatePaths(Path(state_dir).expanduser().resolve())
        self.port = port
        self.capacity_vcpu = capacity_vcpu
        self.sandbox = sandbox
        self.token = token or secrets.token_urlsafe(32)
        self.run_controller = run_controller
        self.store: Store | None = None
        self.runtime: Runtime | None = None
        self.controller: Controller | None = None
        self.oss: OSSServer | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def kubeconfig_path(self) -> Path:
        return self.paths.kubeconfig

    def build_app(self) -> Any:
        """The FastAPI application: Kubernetes API routes plus the Argo Server REST subset."""
        from airflow_argo_eci.local.api.app import create_app
        from airflow_argo_eci.local.api.argo_server import build_argo_server_router

        assert self.store is not None
        app = create_app(self.store, token=self.token, paths=self.paths)
        app.include_router(build_argo_server_router(self.store, self.paths))
        return app

    def start(self, *, timeout: float = 30.0) -> LocalCluster:
        """Open the store, start runtime, controller and the HTTP server; return when it listens."""
        from airflow_argo_eci.local.api.store import Store
        from airflow_argo_eci.local.argo.controller import Controller
        from airflow_argo_eci.local.runtime.runner import Runtime

        self.paths.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.paths.root, 0o700)
        self.store = Store(self.paths.db)
        self.runtime = Runtime(self.paths, capacity_vcpu=self.capacity_vcpu, sandbox=self.sandbox)
        if self.run_controller:
            self.controller = Controller(self.store, self.runtime, self.paths)
            self.controller.start()
        cert, key = ensure_certificate(self.paths.tls_cert, self.paths.tls_key)
        try:
            self._server, self._thread, self.port = serve_in_thread(
                self.build_app(), port=self.port, ssl_certfile=str(cert), ssl_keyfile=str(key), timeout=timeout)
        except LocalClusterError:
            self.stop()
            raise
        from airflow_argo_eci.local.oss.server import OSSServer

        try:
            self.oss = OSSServer(self.paths.oss_dir, self.oss_credentials(), tls=(cert, key)).start()
        except Exception:
            self.stop()
            raise
        write_private(self.paths.token, self.token + "\n")
        write_kubeconfig(self.paths.kubeconfig, self.url, self.token, ca_pem=cert.read_bytes())
        write_private(
            self.paths.server_info,
            json.dumps({"url": self.url, "port": self.port, "pid": os.getpid(), "started_at": time.time(),
                        "oss_endpoint": self.oss.endpoint}),
        )
        log.info("local cluster listening on %s (state in %s)", self.url, self.paths.root)
        return self

    def oss_credentials(self) -> dict[str, str]:
        """``{access key id: secret}`` of the local OSS store: made once per state directory and
        kept (mode 0600) so clients configured earlier keep working after a restart."""
        try:
            creds = json.loads(self.paths.oss_credentials.read_text())
        except FileNotFoundError:
            creds = {"access_key_id": "LTAI" + secrets.token_hex(8).upper(),
                     "access_key_secret": secrets.token_urlsafe(24)}
            write_private(self.paths.oss_credentials, json.dumps(creds))
        return {str(creds["access_key_id"]): str(creds["access_key_secret"])}

    def stop(self) -> None:
        """Stop the HTTP servers, the controller and every running pod; close the stores."""
        if self.oss is not None:
            self.oss.stop()
            self.oss = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.controller is not None:
            self.controller.stop()
        if self.runtime is not None:
            self.runtime.shutdown()
        if self.store is not None:
            self.store.close()
        self._server = self._thread = None
        self.controller = self.runtime = None
        self.store = None
        try:
            self.paths.server_info.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
