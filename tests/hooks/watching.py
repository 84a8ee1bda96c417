"""What a hook's watch delivered, for the tests of its async twins: each event's type and phase."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


async def phases_until_deleted(stream: AsyncIterator[tuple[str, dict[str, Any]]], seen: list[tuple[str, str]]) -> None:
    """Append ``(event type, status.phase)`` of every event of ``stream`` but BOOKMARKs to ``seen``,
    until a DELETED one."""
    async for kind, obj in stream:
        if kind == "BOOKMARK":
            continue
        seen.append((kind, str((obj.get("status") or {}).get("phase") or "")))
        if kind == "DELETED":
            return
