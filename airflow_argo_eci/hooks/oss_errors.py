"""The OSS hook's errors: :class:`OSSError` and its subclasses, the conversion of ``oss2`` and connection
failures into them, and the retrying of transient ones."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from airflow_argo_eci.errors import ArgoEciError, redact

log = logging.getLogger(__name__)


class OSSError(ArgoEciError):
    """An OSS request failed (or a transfer could not complete).

    :param status: HTTP status (None without a response: connection errors, client-side failures)
    :param code: OSS error code (``NoSuchKey``, ``SignatureDoesNotMatch``...) or the client exception name
    :param request_id: OSS ``x-oss-request-id`` of the failed request, when there was one
    """

    def __init__(self, message: str, *, status: int | None = None, code: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id

    @property
    def transient(self) -> bool:
        """Whether retrying may succeed (connection errors, 429, 5xx)."""
        return (self.status is None and self.code == "RequestError") or (
            self.status is not None and (self.status == 429 or self.status >= 500))


class OSSConfigError(OSSError, ValueError):
    """A bad connection or argument; the message names the field and the fix."""


class OSSIntegrityError(OSSError):
    """Data did not arrive intact: CRC-64 mismatch, short body, or the object changed during a transfer."""


class OSSNotFoundError(OSSError):
    """404: the bucket, the object or the multipart upload does not exist."""


_TRANSPORT_MODULES = ("urllib3", "requests", "http", "ssl", "socket")


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a connection-level failure (reset, refused, broken body, timeout, TLS record error)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return any((cls.__module__ or "").split(".")[0] in _TRANSPORT_MODULES
               for cls in type(exc).__mro__ if cls not in (Exception, BaseException, object))


def to_oss_error(exc: BaseException, context: str) -> OSSError:
    """The typed error for an ``oss2`` exception (or a connection failure), with ``exc`` chained."""
    if isinstance(exc, OSSError):
        return exc
    status = getattr(exc, "status", None)
    details = getattr(exc, "details", None)
    if isinstance(status, int) and status > 0 and isinstance(details, Mapping):
        code = str(getattr(exc, "code", "") or "")
        message = str(getattr(exc, "message", "") or "")[:500]
        request_id = str(getattr(exc, "request_id", "") or "")
        text = f"{context}: HTTP {status} {code}: {message}".rstrip(": ")
        if request_id:
            text += f" (request id {request_id})"
        cls: type[OSSError] = OSSNotFoundError if status == 404 else OSSError
        if status in (400, 403) and code in ("SignatureDoesNotMatch", "InvalidAccessKeyId"):
            text += "; check the connection's access_key_id / access_key_secret (and security_token for STS)"
        error = cls(redact(text), status=status, code=code, request_id=request_id)
    else:
        inner = getattr(exc, "exception", None) or exc
        name = type(exc).__name__
        code = "RequestError" if name == "RequestError" or is_transport_error(inner) else name
        detail = redact(str(inner))[:500]
        if "CERTIFICATE_VERIFY_FAILED" in detail:
            detail += "; trust the endpoint's CA with the connection extra 'ca_bundle' (a PEM file path)"
        error = OSSError(f"{context}: {type(inner).__name__}: {detail}", code=code)
    error.__cause__ = exc
    return error


# ---------------------------------------------------------------------------------------------- retries

def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: a dropped/refused connection, a timeout, 429 or 5xx."""
    if isinstance(exc, OSSIntegrityError):
        return False
    if isinstance(exc, OSSError):
        return exc.transient
    status = getattr(exc, "status", None)
    if isinstance(status, int) and hasattr(exc, "details"):
        return status == -2 or status == 429 or status >= 500  # oss2: -2 = RequestError (no response)
    return is_transport_error(exc)


def with_retries(call: Callable[[], Any], retries: int, context: str) -> Any:
    """``call()``, retried on transient failures up to ``retries`` times with exponential backoff;
    the final failure is raised as an :class:`OSSError`."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            if attempt >= retries or not is_transient(exc):
                raise to_oss_error(exc, context) from exc
            attempt += 1
            delay = min(0.2 * 2 ** (attempt - 1), 5.0)
            log.info("%s failed (%s), retrying in %.1fs (attempt %d of %d)", context, type(exc).__name__, delay,
                     attempt, retries)
            time.sleep(delay)
