"""The exceptions this package raises, and the conversion of client errors into them.

Every failed API call becomes an :class:`ArgoApiError` subclass chosen by HTTP status, with the
original exception chained as ``__cause__`` and the response body trimmed to 2 KiB (bearer tokens
redacted). :attr:`ArgoApiError.transient` separates errors worth retrying (429, 5xx, connection
resets/refusals, timeouts, 410 Gone for watches) from permanent ones (everything else).

The converters import nothing heavy: client exception types are recognised by their module and
attributes, so importing this module never pulls in ``kubernetes``, ``aiohttp`` or ``httpx``.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Sequence
from typing import Any

#: longest response body kept on an :class:`ArgoApiError`
MAX_BODY_CHARS = 2048

# gRPC status codes (the Argo Server's error bodies) -> the HTTP status they stand for
_GRPC_TO_HTTP = {
    1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400,
    12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r'(?i)("?(?:token|password|client-key-data|client_key_data)"?\s*[:=]\s*"?)[^",\s}]+'),
)


class ArgoEciError(Exception):
    """Base class of every exception this package raises."""


class WorkflowSpecError(ArgoEciError, ValueError):
    """Bad user input (a workflow, an ECI setting, a connection extra); the message names the field and the fix."""


class WorkflowFailedError(ArgoEciError):
    """A workflow ended ``Failed`` or ``Error``.

    :param message: what failed, e.g. ``"Workflow x Failed: ...; failed nodes: a (Error: ...)"``
    :param phase: the workflow's final phase
    :param failed_nodes: the failed leaf nodes (display name, type, phase, message)
    """

    def __init__(self, message: str, *, phase: str, failed_nodes: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.phase = phase
        self.failed_nodes = list(failed_nodes)


class ArgoApiError(ArgoEciError):
    """An API call failed.

    :param message: human readable summary (what was attempted and what the server said)
    :param status: the HTTP status, or None when no response arrived (connection errors)
    :param reason: the Kubernetes ``Status.reason`` / gRPC code name / exception class name
    :param body: the response body, trimmed to :data:`MAX_BODY_CHARS` with secrets redacted
    :param causes: ``details.causes`` of a Kubernetes ``Status`` (field errors), when sent
    """

    #: whether retrying the same request later may succeed
    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        body: str | bytes | None = None,
        causes: Sequence[dict[str, Any]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.body = trim_body(body)
        self.causes = list(causes)


class NotFoundError(ArgoApiError):
    """404: the object (or the API itself, e.g. Argo CRDs not installed) does not exist."""


class ConflictError(ArgoApiError):
    """409: the object already exists, or was modified concurrently."""


class UnauthorizedError(ArgoApiError):
    """401/403: the credentials were rejected or lack permission."""


class InvalidError(ArgoApiError):
    """400/422: the server rejected the request as invalid (see :attr:`causes`)."""


class TlsVerificationError(ArgoApiError):
    """The server's TLS certificate could not be verified (permanent: fix the CA configuration)."""


class TransientError(ArgoApiError):
    """429, 5xx, connection reset/refused, timeouts: retrying later may succeed.

    :attr:`retry_safe` is True when the request certainly did not take effect (429, connection
    refused, DNS, connect timeouts), so even a non-idempotent request (create) may be repeated.
    """

    transient = True

    def __init__(self, message: str, *, retry_safe: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_safe = retry_safe


class GoneError(TransientError):
    """410: a watch's resourceVersion is too old (compacted); relist and watch from the new version."""


def redact(text: str) -> str:
    """``text`` with bearer tokens and token/password values replaced by ``***``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


def trim_body(body: str | bytes | None) -> str | None:
    """The body as text, secrets redacted, at most :data:`MAX_BODY_CHARS` characters."""
    if body is None:
        return None
    text = body.decode("utf-8", errors="replace") if isinstance(body, (bytes, bytearray)) else str(body)
    text = redact(text)
    if len(text) > MAX_BODY_CHARS:
        text = text[: MAX_BODY_CHARS - 15] + "...[truncated]"
    return text


def _parse_body(body: str | bytes | None) -> dict[str, Any]:
    if not body:
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _class_for(status: int | None) -> type[ArgoApiError]:
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status in (401, 403):
        return UnauthorizedError
    if status in (400, 422):
        return InvalidError
    if status == 410:
        return GoneError
    if status is not None and (status == 429 or status >= 500):
        return TransientError
    return ArgoApiError


def api_error_from_status(
    status: int, body: str | bytes | None, *, cause: BaseException | None = None, context: str = ""
) -> ArgoApiError:
    """The typed error for an HTTP ``status`` and response ``body``.

    Understands Kubernetes ``Status`` bodies (``message``, ``reason``, ``details.causes``) and
    Argo Server gRPC-gateway bodies (``{"code": <grpc>, "message": ...}``); a 200-less status of 0
    with a gRPC body takes its HTTP status from the gRPC code. ``context`` (e.g. ``"get workflow
    argo/x"``) prefixes the message. ``cause`` is chained as ``__cause__``.
    """
    data = _parse_body(body)
    if not status and isinstance(data.get("code"), int) and "kind" not in data:
        status = _GRPC_TO_HTTP.get(data["code"], 500)
    message = str(data.get("message") or "").strip()
    reason = str(data.get("reason") or "")
    details = data.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    if not message and body and not data:
        raw = trim_body(body) or ""
        message = raw[:300]
    if not reason:
        reason = _REASONS.get(status, "")
    summary = f"HTTP {status}" + (f" {reason}" if reason else "")
    text = f"{context}: " if context else ""
    text += f"{summary}: {message}" if message else summary
    if causes:
        fields = "; ".join(
            f"{c.get('field', '')}: {c.get('message', '')}".strip(": ") for c in causes if isinstance(c, dict)
        )
        if fields and fields not in text:
            text += f" ({fields})"
    cls = _class_for(status)
    kwargs: dict[str, Any] = {"status": status, "reason": reason, "body": body,
                              "causes": causes if isinstance(causes, list) else ()}
    if issubclass(cls, TransientError):
        kwargs["retry_safe"] = status == 429
    error = cls(redact(text), **kwargs)
    error.__cause__ = cause
    return error


_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
    410: "Gone", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 502: "BadGateway",
    503: "ServiceUnavailable", 504: "GatewayTimeout",
}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        reason = getattr(current, "reason", None)
        nxt = current.__cause__ or current.__context__
        if nxt is None and isinstance(reason, BaseException):
            nxt = reason
        current = nxt
    return seen


def _is_tls_failure(chain: Sequence[BaseException]) -> bool:
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            return True
        name = type(item).__name__
        if name in ("ClientConnectorCertificateError", "SSLCertVerificationError"):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(item) or "certificate verify failed" in str(item):
            return True
    return False


_CONNECT_PHASE = (
    "ConnectError", "ConnectTimeout", "NewConnectionError", "ConnectTimeoutError", "ConnectionRefusedError",
    "ClientConnectorError", "ClientConnectorDNSError", "NameResolutionError", "gaierror",
)
_TRANSPORT = (
    *_CONNECT_PHASE,
    "ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException", "ReadError", "WriteError",
    "RemoteProtocolError", "NetworkError", "TransportError", "ReadTimeoutError", "ProtocolError",
    "MaxRetryError", "ConnectionResetError", "ConnectionAbortedError", "BrokenPipeError", "ConnectionError",
    "TimeoutError", "ServerDisconnectedError", "ServerTimeoutError", "ClientOSError", "ClientPayloadError",
    "ClientConnectionError", "IncompleteRead", "SSLError",
)


def connection_error(exc: BaseException, *, context: str = "", url: str = "") -> ArgoApiError | None:
    """The typed error for a connection-level failure (no HTTP response), or None if ``exc`` is not one.

    Covers ``urllib3`` (``MaxRetryError``, ``NewConnectionError``, ``ProtocolError``, timeouts),
    ``aiohttp`` (``ClientConnectionError``, ``ServerTimeoutError``...), ``httpx``
    (``TransportError`` and subclasses) and the builtin ``ConnectionError`` / ``TimeoutError``.
    Certificate verification failures are a permanent :class:`TlsVerificationError`; everything
    else is a :class:`TransientError` (``retry_safe`` when the connection was never established).
    """
    chain = _chain(exc)
    names = {cls.__name__ for item in chain for cls in type(item).__mro__}
    if not names & set(_TRANSPORT) and not isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
        return None
    return _transport_error(exc, chain, names, context, url)


def _transport_error(
    exc: BaseException, chain: Sequence[BaseException], names: set[str], context: str, url: str
) -> ArgoApiError:
    where = f" to {url}" if url else ""
    prefix = f"{context}: " if context else ""
    detail = redact(str(exc)) or type(exc).__name__
    if _is_tls_failure(chain):
        error: ArgoApiError = TlsVerificationError(
            f"{prefix}TLS certificate verification failed{where}: {detail}. Trust the server's CA "
            "(kubeconfig certificate-authority-data, connection extra 'ssl_ca_cert'/'ca_cert_path'); "
            "only for testing set extra 'verify_ssl': false",
            reason=type(exc).__name__,
        )
    else:
        connect_phase = bool(names & set(_CONNECT_PHASE)) or any(
            isinstance(item, (ConnectionRefusedError,)) for item in chain
        )
        error = TransientError(
            f"{prefix}connection failed{where}: {type(exc).__name__}: {detail}",
            reason=type(exc).__name__, retry_safe=connect_phase,
        )
    error.__cause__ = exc
    return error


def to_api_error(exc: BaseException, *, context: str = "", url: str = "") -> ArgoApiError | None:
    """Convert any client exception into an :class:`ArgoApiError`; None when ``exc`` is not an API
    or connection failure (programming errors are not converted).

    Handles ``kubernetes.client.exceptions.ApiException``, ``kubernetes_asyncio``'s
    ``ApiException`` (``.status``, ``.reason``, ``.body``), ``httpx.HTTPStatusError`` (Argo Server
    JSON errors) and the connection errors of :func:`connection_error`.
    """
    if isinstance(exc, ArgoApiError):
        return exc
    module = type(exc).__module__ or ""
    is_api_exception = any(
        cls.__name__ == "ApiException" and (cls.__module__ or "").startswith("kubernetes") for cls in type(exc).__mro__
    )
    if is_api_exception:
        status = int(getattr(exc, "status", 0) or 0)
        body = getattr(exc, "body", None)
        if not status:
            # the kubernetes clients raise ApiException(status=0) for some transport problems
            chain = _chain(exc)
            return _transport_error(exc, chain, {cls.__name__ for i in chain for cls in type(i).__mro__}, context, url)
        if not body:
            body = json.dumps({"message": str(getattr(exc, "reason", "") or "")})
        return api_error_from_status(status, body, cause=exc, context=context)
    response = getattr(exc, "response", None)
    if module.startswith("httpx") and response is not None and hasattr(response, "status_code"):
        return api_error_from_status(int(response.status_code), response.content, cause=exc, context=context)
    return connection_error(exc, context=context, url=url)
