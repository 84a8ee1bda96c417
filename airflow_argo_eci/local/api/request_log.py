"""A bounded in-memory log of the requests the local API server received, and its ASGI middleware.

Tests read it (``LocalCluster.request_log``) to pin what a client sends over the wire: method,
path, query parameters, content type and, for small bodies, the body itself. It is never served
over HTTP. Recording is cheap: a few attribute reads per request, the body kept as bytes only while
it stays within :data:`MAX_RECORDED_BODY` (decoded only when a reader asks), the oldest entries
dropped once :data:`DEFAULT_CAPACITY` are held or their bodies exceed :data:`MAX_TOTAL_BODY_BYTES`.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: how many recent requests are kept
DEFAULT_CAPACITY = 2000
#: bodies up to this size are kept (larger ones are recorded without their body)
MAX_RECORDED_BODY = 64 * 1024
#: the kept bodies together stay within this; the oldest entries go first
MAX_TOTAL_BODY_BYTES = 8 * 1024 * 1024


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    #: the query string's ``(name, value)`` pairs, in order, repeated names repeated
    query: list[tuple[str, str]]
    content_type: str
    #: the raw body once fully received and within :data:`MAX_RECORDED_BODY`; else None
    body: bytes | None = field(default=None, repr=False)
    #: the position in its log (1, 2, ...; set by :meth:`RequestLog.add`), to read only newer entries
    seq: int = 0

    def params(self) -> dict[str, str]:
        """The query as a dict (the last value of a repeated name)."""
        return dict(self.query)

    def json(self) -> Any:
        """The body decoded as JSON; None when there is no (recorded) body."""
        return json.loads(self.body) if self.body else None


class RequestLog:
    """A thread-safe ring of the most recent :class:`RecordedRequest`\\ s."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, max_body_bytes: int = MAX_TOTAL_BODY_BYTES) -> None:
        self._entries: deque[RecordedRequest] = deque()
        self._capacity = capacity
        self._max_body_bytes = max_body_bytes
        self._body_bytes = 0
        self._lock = threading.Lock()
        self._seq = 0

    def _drop_oldest(self) -> None:
        old = self._entries.popleft()
        if old.body:
            self._body_bytes -= len(old.body)

    def add(self, entry: RecordedRequest) -> None:
        """Append ``entry`` and number it (the oldest entry goes once the ring is full)."""
        with self._lock:
            self._seq += 1
            entry.seq = self._seq
            if len(self._entries) >= self._capacity:
                self._drop_oldest()
            self._entries.append(entry)
            if entry.body:
                self._keep_body(entry, entry.body)

    def set_body(self, entry: RecordedRequest, body: bytes) -> None:
        """Attach ``body`` to ``entry`` (added before); the oldest entries go while the kept
        bodies exceed the log's budget. An entry that already left the log stays out of it."""
        with self._lock:
            if not self._entries or entry.seq < self._entries[0].seq:
                return
            self._keep_body(entry, body)

    def _keep_body(self, entry: RecordedRequest, body: bytes) -> None:
        entry.body = body
        self._body_bytes += len(body)
        while self._body_bytes > self._max_body_bytes and self._entries:
            self._drop_oldest()

    @property
    def last_seq(self) -> int:
        """The number of the latest entry (0: none yet); pass it as ``after`` to read newer ones."""
        with self._lock:
            return self._seq

    def entries(self, after: int = 0) -> list[RecordedRequest]:
        """A snapshot of the recorded requests numbered above ``after``, oldest first."""
        with self._lock:
            return [e for e in self._entries if e.seq > after]

    def matching(self, text: str, after: int = 0) -> list[RecordedRequest]:
        """The recorded requests (numbered above ``after``) whose path, query or recorded body
        mentions ``text`` (e.g. a workflow name), oldest first."""
        raw = text.encode()
        return [
            e for e in self.entries(after)
            if text in e.path or any(text in value for _, value in e.query) or (e.body is not None and raw in e.body)
        ]

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._entries.clear()
            self._body_bytes = 0


class RequestLogMiddleware:
    """ASGI middleware recording each HTTP request into a :class:`RequestLog` as it arrives.

    The entry is added when the request starts (a watch is visible while it runs); its body is
    filled in once the application has read all of it, if it is small enough.
    """

    def __init__(self, app: ASGIApp, log: RequestLog, max_body: int = MAX_RECORDED_BODY) -> None:
        self.app = app
        self.log = log
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = ""
        for key, value in scope.get("headers", []):
            if key == b"content-type":
                content_type = value.decode("latin-1")
                break
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        entry = RecordedRequest(scope["method"], scope["path"], query, content_type)
        self.log.add(entry)
        chunks: list[bytes] = []
        size = 0
        keep = True

        async def recording_receive() -> Message:
            nonlocal size, keep
            message = await receive()
            if keep and message["type"] == "http.request":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    keep = False
                    chunks.clear()
                else:
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        body = b"".join(chunks)
                        chunks.clear()
                        if body:
                            self.log.set_body(entry, body)
            return message

        await self.app(scope, recording_receive, send)
