"""Running a trigger in a test: the payloads of the events it yields, and a cluster change played later."""

from __future__ import annotations

import asyncio
from typing import Any


async def events(trigger: Any) -> list[dict[str, Any]]:
    """The payloads of every event ``trigger.run()`` yields."""
    return [event.payload async for event in trigger.run()]


async def later(delay: float, action: Any, *args: Any) -> None:
    """``action(*args)`` in a thread after ``delay`` seconds (a change the trigger sees while it waits)."""
    await asyncio.sleep(delay)
    await asyncio.to_thread(action, *args)


async def events_during_change(trigger: Any, delay: float, action: Any, *args: Any) -> list[dict[str, Any]]:
    """The payloads ``trigger`` yields while ``action(*args)`` is played ``delay`` seconds after it started
    waiting; returns once both are done."""
    change = asyncio.ensure_future(later(delay, action, *args))
    got = await events(trigger)
    await change
    return got
