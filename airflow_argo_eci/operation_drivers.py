"""Drive an operation written once as a generator of steps, with a sync or an async ``send``; the
hook call such a step is (:class:`HookCall`) and the uid-fenced delete-on-kill operation.

An operation yields the steps to take (an API request, a hook call), receives each step's result,
or has its error thrown in, and returns its own result. The Argo hook's transports and the kill
sequences of :mod:`airflow_argo_eci.lifecycle`, :mod:`airflow_argo_eci.fluid_lifecycle` and
:mod:`airflow_argo_eci.eci_image_caches` are written this way, so their sync and async paths are
the same code. Pure and cheap to import (the operator imports it through the lifecycle).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow_argo_eci.errors import ConflictError, NotFoundError

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


@dataclass(frozen=True)
class HookCall:
    """One call of a hook method, made by :meth:`call` (sync) or :meth:`acall` (the ``a``-prefixed
    async twin with the same arguments)."""

    method: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def call(self, hook: Any) -> Any:
        """``hook.<method>(*args, **kwargs)``."""
        return getattr(hook, self.method)(*self.args, **self.kwargs)

    async def acall(self, hook: Any) -> Any:
        """``await hook.a<method>(*args, **kwargs)``."""
        return await getattr(hook, f"a{self.method}")(*self.args, **self.kwargs)


def fenced_kill_steps(where: str, read: HookCall | None, delete: HookCall,
                      decide: Callable[[Any], tuple[str, str]], done: str) -> Generator[HookCall, Any, str]:
    """A kill that deletes one object, written once for the sync and the async path: ``read`` it
    (skipped when None; gone reads as None), ``decide`` (``apply`` or another decision, with the
    sentence why) and, on ``apply``, ``delete`` it (the call carries the uid precondition). Returns
    the sentence for the task log, each starting with ``where`` (``DataLoad ns/name``); a gone
    object and a same-named successor (the uid fence refused) are outcomes, not failures."""
    current: Any = None
    if read is not None:
        try:
            current = yield read
        except NotFoundError:
            current = None
    decision, why = decide(current)
    if decision != "apply":
        return f"{where}: {why}"
    try:
        yield delete
    except NotFoundError:
        return f"{where} is already gone"
    except ConflictError:
        return f"{where} was replaced by a same-named successor: left alone"
    return f"{where}: {done}"
