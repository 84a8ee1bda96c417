"""The transport limit for bench/oss_transfer.py: raw parallel PUT / ranged GET of a file over HTTPS on loopback.

The same server stack as the local OSS store (uvicorn with the same TLS certificate, via
``local.httpserve.serve_in_thread``), the same gathering of the request body into 1 MiB writes on a
worker thread and the same 1 MiB file reads for responses, the same 16 MiB x 4 parallel split on the
client over kept-alive connections (one per worker thread, as the hook's connection pool keeps
them), the same durability (each received part is fsynced before the answer, as the store does;
a download is fsynced once at the end, as the hook does), but no signature, no SQLite, no MD5 and no
CRC-64 on either side: the ceiling any checked transfer through this stack can reach on this
machine. A separate minimal ASGI app rather than a "no-checksum" switch inside the store, so the
store has no code path that skips its integrity checks.
"""

from __future__ import annotations

import http.client
import os
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio.to_thread

from airflow_argo_eci.local.httpserve import LOOPBACK, serve_in_thread

BLOCK = 1024 * 1024


class RawFileApp:
    """PUT ``/<name>`` writes the body to ``root/<name>``; GET ``/<name>`` with ``Range: bytes=a-b`` reads it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = self.root / scope["path"].strip("/")
        if scope["method"] == "PUT":
            with open(path, "wb") as handle:
                pending: list[bytes] = []
                size = 0
                more = True
                while more:
                    message = await receive()
                    pending.append(message.get("body", b""))
                    size += len(pending[-1])
                    more = message.get("more_body", False)
                    if size >= BLOCK or not more:
                        data, pending, size = b"".join(pending), [], 0
                        await anyio.to_thread.run_sync(handle.write, data)
                handle.flush()
                await anyio.to_thread.run_sync(os.fsync, handle.fileno())
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = dict(scope["headers"])
        first, _, last = headers[b"range"].decode().removeprefix("bytes=").partition("-")
        start, end = int(first), int(last)
        await send({"type": "http.response.start", "status": 206,
                    "headers": [(b"content-length", str(end - start + 1).encode())]})
        fd = os.open(path, os.O_RDONLY)
        try:
            offset = start
            while offset <= end:
                chunk = await anyio.to_thread.run_sync(os.pread, fd, min(BLOCK, end + 1 - offset), offset)
                offset += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": offset <= end})
        finally:
            os.close(fd)


class RawServer:
    """:class:`RawFileApp` over ``root`` served on a loopback port with the certificate ``tls``."""

    def __init__(self, root: Path, tls: tuple[Path, Path]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.server, self.thread, self.port = serve_in_thread(
            RawFileApp(root), ssl_certfile=str(tls[0]), ssl_keyfile=str(tls[1]))

    def close(self) -> None:
        """Stop serving."""
        self.server.should_exit = True
        self.thread.join(timeout=10)


class RawClient:
    """A client of a :class:`RawServer` on ``port`` doing ``parallelism`` parts of ``part_size`` at once."""

    def __init__(self, port: int, cafile: Path, part_size: int, parallelism: int) -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=str(cafile))
        self.part_size = part_size
        self.parallelism = parallelism
        self._local = threading.local()
        self._connections: list[http.client.HTTPSConnection] = []
        self._pool = ThreadPoolExecutor(parallelism, thread_name_prefix="raw-part")

    def _connection(self) -> http.client.HTTPSConnection:
        """This thread's kept-alive connection (opened on first use)."""
        connection: http.client.HTTPSConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPSConnection(LOOPBACK, self.port, context=self.context, blocksize=BLOCK)
            self._local.connection = connection
            self._connections.append(connection)
        return connection

    def _exchange(self, method: str, path: str, body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        """Send a request on this thread's connection and return the response (its body unread); a
        kept-alive connection the server closed while idle is reopened once, as a pool does."""
        connection = self._connection()
        reused = connection.sock is not None
        try:
            connection.request(method, path, body=body, headers=headers or {})
            return connection.getresponse()
        except (http.client.HTTPException, OSError):  # the server's close shows as a reset, an EOF or an SSL EOF
            if not reused:
                raise
            connection.close()
            connection.request(method, path, body=body, headers=headers or {})
            return connection.getresponse()

    def _parts(self, size: int) -> list[tuple[int, int]]:
        return [(offset, min(self.part_size, size - offset)) for offset in range(0, size, self.part_size)]

    def upload(self, source: Path, name: str) -> None:
        """PUT every part of ``source`` as ``name.<offset>`` (the bytes read with pread, as the hook does)."""
        size = source.stat().st_size
        fd = os.open(source, os.O_RDONLY)

        def put(part: tuple[int, int]) -> None:
            data = os.pread(fd, part[1], part[0])
            response = self._exchange("PUT", f"/{name}.{part[0]}", body=data)
            response.read()
            assert response.status == 200, response.status

        try:
            list(self._pool.map(put, self._parts(size)))
        finally:
            os.close(fd)

    def download(self, name: str, size: int, target: Path) -> None:
        """GET every part ``name.<offset>`` in ``[0, size)`` into ``target`` at its offset."""
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(fd, size)

        def get(part: tuple[int, int]) -> None:
            response = self._exchange("GET", f"/{name}.{part[0]}", headers={"Range": f"bytes=0-{part[1] - 1}"})
            buffer = bytearray(BLOCK)
            view = memoryview(buffer)
            offset = part[0]
            while True:
                count = response.readinto(buffer)
                if not count:
                    break
                os.pwrite(fd, view[:count], offset)
                offset += count
            assert offset == part[0] + part[1], (offset, part)

        try:
            list(self._pool.map(get, self._parts(size)))
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the client's connections and threads."""
        self._pool.shutdown(wait=True)
        for connection in self._connections:
            connection.close()
