"""Serving an ASGI application on the loopback interface in a background thread (uvicorn), as the
local cluster's API server and its OSS store do."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn

#: the only interface the local cluster's servers listen on
LOOPBACK = "127.0.0.1"


class LocalClusterError(RuntimeError):
    """The local cluster (or one of its HTTP servers) could not start or stop."""


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
    no window in which another process could take the port. Returns (server, thread, port);
    :class:`LocalClusterError` when the port is taken or the server does not start in ``timeout``.
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
