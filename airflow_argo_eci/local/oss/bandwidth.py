"""The OSS store's optional bandwidth cap, shared by every client (a token bucket over every GET
and PUT body, both ways), and its byte counters: what a laptop needs to show many pods reading one
bucket at once hitting the bucket's bandwidth, as they do on OSS."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?(?:/s)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
          "KI": 1024, "MI": 1024**2, "GI": 1024**3, "TI": 1024**4}
#: the smallest cap accepted (bytes per second)
MIN_RATE = 1024


def parse_rate(text: str) -> int:
    """A bandwidth such as ``200MiB``, ``200MiB/s``, ``1.5GB``, ``500k`` or ``1048576`` in bytes per
    second (``MiB`` = 1024², ``MB`` = 1000²); :class:`ValueError` saying what is accepted."""
    match = _RATE.match(str(text))
    if match is None:
        raise ValueError(f"bandwidth {text!r}: use a number with an optional unit, e.g. 200MiB (per second)")
    unit = (match.group(2) or "").upper().rstrip("B")
    rate = int(float(match.group(1)) * _UNITS[unit])
    if rate < MIN_RATE:
        raise ValueError(f"bandwidth {text!r} is below the smallest cap ({MIN_RATE} bytes per second)")
    return rate


class TokenBucket:
    """``rate`` bytes per second for everyone together, in request order: each taker reserves the
    time its bytes need after the bytes reserved before it (a burst of up to ``burst`` bytes is
    free after an idle spell)."""

    def __init__(self, rate: int, burst: int | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(64 * 1024, rate // 20)
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def reserve(self, size: int) -> float:
        """Reserve ``size`` bytes; the seconds to wait before using them."""
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now - self.burst / self.rate)
            self._next = start + size / self.rate
            return max(0.0, self._next - now)

    async def take(self, size: int) -> None:
        """Wait until ``size`` bytes may pass."""
        delay = self.reserve(size)
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class TransferCounts:
    """Body bytes the store received (PUT, POST) and sent (GET) since it started."""

    received: int = 0
    sent: int = 0


class MeteredApp:
    """Wraps the store's ASGI app: counts every request and response body byte and, with a
    ``bucket``, makes them wait for it (one cap for both directions and all clients)."""

    def __init__(self, app: Any, bucket: TokenBucket | None) -> None:
        self.app = app
        self.bucket = bucket
        self.counts = TransferCounts()
        self._lock = threading.Lock()

    def _count(self, received: int = 0, sent: int = 0) -> None:
        with self._lock:
            self.counts.received += received
            self.counts.sent += sent

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        bucket = self.bucket

        async def metered_receive() -> Any:
            message = await receive()
            size = len(message.get("body", b"")) if message.get("type") == "http.request" else 0
            if size:
                self._count(received=size)
                if bucket is not None:
                    await bucket.take(size)
            return message

        async def metered_send(message: Any) -> None:
            size = len(message.get("body", b"")) if message.get("type") == "http.response.body" else 0
            if size:
                self._count(sent=size)
                if bucket is not None:
                    await bucket.take(size)
            await send(message)

        await self.app(scope, metered_receive, metered_send)
