"""Drive an operation written once as a generator of steps, with a sync or an async ``send``.

An operation yields the steps to take (an API request, a hook call), receives each step's result,
or has its error thrown in, and returns its own result. The Argo hook's transports and the kill
sequence of :mod:`airflow_argo_eci.lifecycle` are written this way, so their sync and async paths
are the same code. Pure and cheap to import (the operator imports it through the lifecycle).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")
T = TypeVar("T")


def run_operation(operation: Generator[R, Any, T], send: Callable[[R], Any]) -> T:
    """Drive ``operation`` with a sync ``send``; a failed step raises inside the operation."""
    try:
        step = next(operation)
        while True:
            try:
                response = send(step)
            except Exception as exc:
                step = operation.throw(exc)
            else:
                step = operation.send(response)
    except StopIteration as done:
        result: T = done.value
        return result


async def arun_operation(operation: Generator[R, Any, T], send: Callable[[R], Awaitable[Any]]) -> T:
    """:func:`run_operation` with an async ``send``."""
    try:
        step = next(operation)
        while True:
            try:
                response = await send(step)
            except Exception as exc:
                step = operation.throw(exc)
            else:
                step = operation.send(response)
    except StopIteration as done:
        result: T = done.value
        return result
