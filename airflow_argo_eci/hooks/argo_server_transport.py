"""The hook's ``argo_server`` transport: the Argo Server REST API (``/api/v1/...``) over httpx.

The requests :class:`~airflow_argo_eci.hooks.argo_server_requests.ArgoServerOperations` describes
are sent with an httpx ``Client`` (sync) or ``AsyncClient`` (async). httpx is used directly rather
than Hera's ``WorkflowsService``, whose ``workflow_logs`` breaks on multi-line logs. Errors are the
server's gRPC-gateway JSON (``{"code": <grpc>, "message": ...}``). The Argo Server has no
Kubernetes-style watch, so :attr:`supports_watch` is False: callers poll. :meth:`download` streams
an artifact from the server's artifact routes into a file.
"""

from __future__ import annotations

import json
import os
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow_argo_eci.crc64 import crc64_function
from airflow_argo_eci.errors import ArgoEciError, TransientError, WorkflowSpecError, api_error_from_status
from airflow_argo_eci.hooks.api_clients import CachedClients
from airflow_argo_eci.hooks.api_retry import Retrying
from airflow_argo_eci.hooks.argo_connection import ArgoConnectionSettings
from airflow_argo_eci.hooks.argo_requests import ApiRequest, RequestRunner
from airflow_argo_eci.hooks.argo_server_requests import ArgoServerOperations


def _stream_results(text: str, context: str) -> list[dict[str, Any]]:
    """The ``result`` objects of a gRPC-gateway NDJSON stream; an ``error`` entry raises."""
    results: list[dict[str, Any]] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        entry = json.loads(raw)
        if "error" in entry:
            raise api_error_from_status(0, json.dumps(entry["error"]), context=context)
        results.append(entry.get("result") or {})
    return results


#: bytes of an artifact read from the response and written to the file at a time
DOWNLOAD_CHUNK = 1024 * 1024
#: the object store's CRC-64 header, which the local cluster's Argo Server passes on
CRC64_HEADER = "x-oss-hash-crc64ecma"


def _check_download(context: str, size: int, crc: int, headers: Any) -> None:
    """Compare what arrived with ``Content-Length`` (of an unencoded body) and the CRC-64 header (of
    the object as stored), when the server sent them."""
    length = headers.get("content-length")
    encoded = headers.get("content-encoding", "identity") != "identity"
    if length is not None and length.isdigit() and not encoded and int(length) != size:
        raise TransientError(f"{context}: the server announced {length} bytes but sent {size}")
    expected = headers.get(CRC64_HEADER)
    if expected is not None and expected.isdigit() and int(expected) != crc:
        raise TransientError(f"{context}: CRC-64 mismatch: received data has {crc}, the server announced {expected}")


def _decode(request: ApiRequest, response: Any) -> Any:
    """The body of an httpx ``response`` to ``request`` as :attr:`ApiRequest.response` asks."""
    if response.status_code >= 400:
        raise api_error_from_status(response.status_code, response.content, context=request.context)
    if request.response == "text":
        return response.text
    if request.response == "ndjson":
        return _stream_results(response.text, request.context)
    if not response.content:
        return {}
    return response.json()


class ArgoServerTransport(CachedClients, RequestRunner):
    """Workflows, templates and logs through the Argo Server (see the module docstring)."""

    supports_watch = False

    def __init__(self, settings: ArgoConnectionSettings) -> None:
        assert settings.host is not None
        self.settings = settings
        self.base = settings.host
        self.retrying = Retrying(settings, url=settings.host)
        self._operations = ArgoServerOperations()

    @property
    def operations(self) -> ArgoServerOperations:
        """The Argo Server REST calls."""
        return self._operations

    @property
    def default_namespace(self) -> str:
        """The connection's namespace, else ``default``."""
        return self.settings.namespace or "default"

    # ------------------------------------------------------------------ clients

    def _verify(self) -> ssl.SSLContext | bool:
        s = self.settings
        if not s.verify_ssl:
            return False
        if s.ca_cert_path:
            path = Path(s.ca_cert_path).expanduser()
            if not path.is_file():
                raise WorkflowSpecError(
                    f"connection {s.conn_id!r}: CA certificate file {s.ca_cert_path!r} does not exist"
                )
            return ssl.create_default_context(cafile=str(path))
        return True

    def _client_kwargs(self) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        return {"base_url": self.base, "headers": headers, "verify": self._verify(),
                "timeout": self.settings.request_timeout}

    def _client(self) -> Any:
        if self._sync is None:
            import httpx

            self._sync = httpx.Client(**self._client_kwargs())
        return self._sync

    def _aclient(self) -> Any:
        client = self._loop_client()
        if client is None:
            import httpx

            client = self._keep_loop_client(httpx.AsyncClient(**self._client_kwargs()))
        return client

    async def _close_async_client(self, client: Any) -> None:
        await client.aclose()

    def endpoint(self) -> str:
        """The Argo Server's URL."""
        return self.settings.describe()

    # ------------------------------------------------------------------ sending requests

    @staticmethod
    def _request_args(request: ApiRequest) -> dict[str, Any]:
        """httpx ``request()`` keyword arguments for ``request``."""
        kwargs: dict[str, Any] = {}
        if request.query:
            kwargs["params"] = list(request.query)
        if request.body is not None:
            kwargs["json"] = request.body
        if request.content_type:
            kwargs["headers"] = {"Content-Type": request.content_type}
        if request.timeout is not None:
            kwargs["timeout"] = request.timeout
        return kwargs

    def send(self, request: ApiRequest) -> Any:
        """Send ``request`` with the sync client; retries and typed errors per :class:`Retrying`."""
        client = self._client()
        kwargs = self._request_args(request)
        return self.retrying.call(
            request.context, lambda: _decode(request, client.request(request.method, request.path, **kwargs)),
            idempotent=request.idempotent, retries=request.retries,
        )

    async def asend(self, request: ApiRequest) -> Any:
        """Async :meth:`send` with the running loop's ``AsyncClient``."""
        client = self._aclient()
        kwargs = self._request_args(request)

        async def attempt() -> Any:
            return _decode(request, await client.request(request.method, request.path, **kwargs))

        return await self.retrying.acall(request.context, attempt, idempotent=request.idempotent,
                                         retries=request.retries)

    def download(self, path: str, destination: Path, context: str) -> int:
        """GET ``path`` (an artifact route) into ``destination``: streamed to a temporary file beside
        it, checked against the ``Content-Length`` and CRC-64 headers when the server sends them, then
        renamed into place; a failed attempt leaves nothing behind. Transient failures (5xx,
        dropped connections, a short or corrupt body) are retried. Returns the bytes written."""
        client = self._client()
        crc_of = crc64_function()

        def attempt() -> int:
            part = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:12]}.part")
            try:
                with client.stream("GET", path, headers={"Accept": "*/*"}) as response:
                    if response.status_code >= 400:
                        raise api_error_from_status(response.status_code, response.read(), context=context)
                    if response.is_redirect:
                        raise ArgoEciError(
                            f"{context}: the artifact is a directory (the server redirects to "
                            f"{response.headers.get('location')}); download the files inside it one by one")
                    size = crc = 0
                    with open(part, "wb") as out:
                        for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                            out.write(chunk)
                            size += len(chunk)
                            crc = crc_of(chunk, crc)
                    _check_download(context, size, crc, response.headers)
                os.replace(part, destination)
                return size
            finally:
                part.unlink(missing_ok=True)

        destination.parent.mkdir(parents=True, exist_ok=True)
        return self.retrying.call(context, attempt)

    async def awatch_workflows(
        self, namespace: str, resource_version: str, label_selector: str, field_selector: str, timeout_seconds: int
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Not available: the Argo Server has no Kubernetes-style watch (poll ``list_workflows``)."""
        raise ArgoEciError(
            f"connection {self.settings.conn_id!r} uses the argo_server transport, which cannot watch; check "
            "hook.supports_watch and poll aget_workflow/alist_workflows instead"
        )
        yield  # an async generator, like the transports that can watch
