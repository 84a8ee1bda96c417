"""Pod log text with ``timestamps=true``: RFC 3339 timestamps with nanoseconds as sortable keys,
``(timestamp, line)`` pairs after a given time, and the ``sinceSeconds`` for APIs without ``sinceTime``."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from airflow_argo_eci.errors import WorkflowSpecError


def timestamp_key(stamp: str) -> tuple[int, int]:
    """``(epoch seconds, nanoseconds)`` of an RFC 3339 timestamp with up to nanosecond precision."""
    text = stamp.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    frac = ""
    if "." in text:
        head, rest = text.split(".", 1)
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, text = rest[:digits], head + rest[digits:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise WorkflowSpecError(
            f"since_time must be an RFC 3339 timestamp like 2024-01-01T00:00:00.000000000Z, got {stamp!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp()), int((frac + "000000000")[:9])


def parse_log_lines(text: str, since_time: str | None) -> list[tuple[str, str]]:
    """``(timestamp, line)`` pairs of ``timestamps=true`` log text; only lines strictly after
    ``since_time`` when given (so passing the last timestamp seen never repeats a line)."""
    since = timestamp_key(since_time) if since_time else None
    out: list[tuple[str, str]] = []
    for raw in text.splitlines():
        stamp, _, line = raw.partition(" ")
        if not stamp:
            continue
        try:
            key = timestamp_key(stamp)
        except WorkflowSpecError:
            # not a timestamped line (should not happen with timestamps=true): keep it unfiltered
            out.append(("", raw))
            continue
        if since is not None and key <= since:
            continue
        out.append((stamp, line))
    return out


def since_seconds(since_time: str, *, margin: int = 5) -> int:
    """Whole seconds from ``since_time`` until now plus ``margin`` (for APIs without sinceTime)."""
    seconds, _ = timestamp_key(since_time)
    return max(1, int(time.time()) - seconds + margin)
