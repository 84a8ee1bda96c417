"""What the API accepts, as a real Kubernetes API server bounds it.

* A request body is at most :data:`MAX_BODY_BYTES` (the API server's 3 MiB); a larger one is
  413 ``RequestEntityTooLarge``, decided from ``Content-Length`` or, for chunked bodies, while the
  body is read, so a 50 MiB body is never buffered (:class:`GuardMiddleware`).
* A stored object is at most :data:`MAX_OBJECT_BYTES` (etcd's 1.5 MiB ``--max-request-bytes``);
  the store answers a larger write with 413 and etcd's message (:func:`object_too_large`).
* JSON must be strict: no ``NaN``/``Infinity``, no number outside int64 (integers) or float64
  (others), nesting at most :data:`MAX_JSON_DEPTH` deep (:func:`decode_json`). Each is 400
  ``BadRequest`` naming the problem, and such a value is never stored.
* An unexpected exception becomes a 500 ``Status`` with one log line (:class:`GuardMiddleware`);
  bad input must never get that far.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_argo_eci.local.api.errors import ApiError, bad_request

log = logging.getLogger(__name__)

#: the API server's limit on a request body (``MaxRequestBodyBytes``, 3 MiB)
MAX_BODY_BYTES = 3 * 1024 * 1024
#: etcd's default ``--max-request-bytes`` (1.5 MiB): the largest object the store keeps
MAX_OBJECT_BYTES = 1536 * 1024
#: deepest JSON nesting accepted. Go's decoder allows 10000, but no Kubernetes or Argo object comes
#: near 100 levels, and deeper documents would exhaust Python's recursion in deepcopy and patching
MAX_JSON_DEPTH = 100
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: bodies up to this size are decoded on the event loop; larger ones in the thread pool
_INLINE_DECODE_BYTES = 64 * 1024


class BodyTooLarge(ApiError):
    """A request body over :data:`MAX_BODY_BYTES` (413 ``RequestEntityTooLarge``)."""

    def __init__(self, limit: int = MAX_BODY_BYTES) -> None:
        super().__init__(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def object_too_large(resource: str, name: str, size: int, limit: int = MAX_OBJECT_BYTES) -> ApiError:
    """The 413 the API server answers when etcd refuses an object over its request limit."""
    return ApiError(
        413, "RequestEntityTooLarge",
        f'Request entity too large: etcdserver: request is too large ({resource} "{name}" would be '
        f"{size} bytes stored; the limit is {limit}: keep large data in artifacts, not in the object)",
        name=name, kind=resource,
    )


class _JsonProblem(ValueError):
    """Raised from the decoder hooks; becomes 400 BadRequest."""


def _reject_constant(name: str) -> Any:
    raise _JsonProblem(f"{name} is not valid JSON (JSON numbers must be finite); send a finite number or a string")


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > 19:  # also keeps int() away from huge digit strings
        raise _JsonProblem(f"the integer {text[:24]}{'...' if len(text) > 24 else ''} is out of the int64 range")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise _JsonProblem(f"the integer {text} is out of the int64 range")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _JsonProblem(f"the number {text[:24]} is out of the float64 range")
    return value


def _check_depth(value: Any) -> None:
    """Iterative (no recursion): raise when ``value`` nests deeper than :data:`MAX_JSON_DEPTH`."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _JsonProblem(f"the document nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))


def decode_json(raw: bytes | str, what: str = "the request body") -> Any:
    """Strictly decode JSON (see the module docstring); any problem is 400 BadRequest."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float)
        _check_depth(value)
    except RecursionError:
        raise bad_request(f"{what} is not acceptable JSON: it nests deeper than {MAX_JSON_DEPTH} levels") from None
    except _JsonProblem as exc:
        raise bad_request(f"{what} is not acceptable JSON: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise bad_request(f"{what} is not valid JSON: {exc}") from None
    return value


async def read_json_body(request: Request, *, required: bool = True) -> Any:
    """The request's JSON body (None when empty and not ``required``); large bodies are decoded
    off the event loop. 413 over :data:`MAX_BODY_BYTES`, 400 for anything :func:`decode_json` refuses."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise BodyTooLarge()
    if not bytes(raw).strip():
        if required:
            raise bad_request("the request body is empty; a JSON document is required")
        return None
    if len(raw) <= _INLINE_DECODE_BYTES:
        return decode_json(bytes(raw))
    return await run_in_threadpool(decode_json, bytes(raw))


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of a response body (never ``NaN``: that is a bug, not a value)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


async def json_response(value: Any, status_code: int = 200) -> Response:
    """A JSON response serialized in the thread pool, so a large object never stalls the loop."""
    body = await run_in_threadpool(dumps, value)
    return Response(body, status_code=status_code, media_type="application/json")


class GuardMiddleware:
    """Refuses oversized bodies early and turns an unexpected exception into a 500 ``Status``.

    A body with ``Content-Length`` over the limit is refused before it is read; a chunked body
    is counted as it arrives and the read fails with :class:`BodyTooLarge` once it passes the
    limit. An exception that escapes the application is logged as one line and answered with a
    500 ``Status`` when no response has started yet.
    """

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await _status(BodyTooLarge(self.max_body))(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if not started:
                await _status(exc)(scope, receive, send)
        except Exception as exc:  # the one catch-all: a bug must not take the connection down silently
            log.error("%s %s failed: %s: %s", scope.get("method"), scope.get("path"), type(exc).__name__,
                      str(exc).splitlines()[0][:300] if str(exc) else "")
            if not started:
                error = ApiError(500, "InternalError",
                                 f"Internal error occurred: {type(exc).__name__} (see the server log)")
                await _status(error)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _status(error: ApiError) -> JSONResponse:
    return JSONResponse(error.status(), status_code=error.code)
