"""Running a trigger in a test: the payloads of the events it yields, and a cluster change played later."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


async def events(trigger: Any) -> list[dict[str, Any]]:
    """The payloads of every event ``trigger.run()`` yields."""
    return [event.payload async for event in trigger.run()]


async def first_event(trigger: Any) -> dict[str, Any]:
    """The payload of the first event ``trigger.run()`` yields (AssertionError when it yields none)."""
    async for event in trigger.run():
        payload: dict[str, Any] = event.payload
        return payload
    raise AssertionError("the trigger yielded nothing")


async def later(delay: float, action: Any, *args: Any) -> None:
    """``action(*args)`` in a thread after ``delay`` seconds (a change the trigger sees while it waits)."""
    await asyncio.sleep(delay)
    await asyncio.to_thread(action, *args)


async def events_during_change(trigger: Any, delay: float, action: Any, *args: Any) -> list[dict[str, Any]]:
    """The payloads ``trigger`` yields while ``action(*args)`` is played ``delay`` seconds after it started
    waiting; returns once both are done."""
    return await events_while(trigger, lambda: later(delay, action, *args))


async def events_while(trigger: Any, play: Callable[[], Awaitable[None]]) -> list[dict[str, Any]]:
    """The payloads ``trigger`` yields while the coroutine ``play()`` runs beside it (a cluster
    change played step by step as the trigger reports); returns once both are done."""
    playing = asyncio.ensure_future(play())
    got = await events(trigger)
    await playing
    return got


class PrintedLog:
    """What the trigger printed (structlog output, which the triggerer routes to the task log), read
    from pytest's ``capsys`` as the trigger runs."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.chunks: list[str] = []

    async def shows(self, text: str, timeout: float = 15.0) -> None:
        """Wait until ``text`` was printed."""
        deadline = time.monotonic() + timeout
        while not any(text in chunk for chunk in self.chunks):
            assert time.monotonic() < deadline, f"never printed {text!r}: {self.chunks}"
            self.chunks.append(self.capsys.readouterr().out)
            await asyncio.sleep(0.05)

    def text(self) -> str:
        """Everything printed so far."""
        return "".join(self.chunks) + self.capsys.readouterr().out
