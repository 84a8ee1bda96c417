"""Bounds that keep one workflow from stalling the single controller thread or filling memory.

Argo's own limits are used where Argo has one (the template stack depth of the controller's
``executeTemplate``, the 1 MiB ``MAX_WORKFLOW_SIZE`` of its status packer); the others bound what
the local cluster would otherwise do without end (expression evaluation, loop expansion, nodes per
workflow, pods created per pass). Every bound fails only the workflow that hits it, with a message
naming the limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Argo's ``maxAllowedStackDepth``: nested ``executeTemplate`` calls (steps/dag calling templates)
MAX_STACK_DEPTH = 100
#: Argo's ``ErrMaxDepthExceeded`` text (``help.ConfigureMaximumRecursionDepth()``)
MAX_DEPTH_MESSAGE = ("Maximum recursion depth exceeded. See "
                     "https://argo-workflows.readthedocs.io/en/latest/scaling/#maximum-recursion-depth")

#: the longest expression (``{{=...}}``, ``when``, ``depends``, retry ``expression``) evaluated
MAX_EXPRESSION_LENGTH = 64 * 1024
#: nesting of parentheses, brackets, calls and unary operators in one expression
MAX_EXPRESSION_NESTING = 64
#: evaluation steps (expression nodes visited, closure calls) per evaluation
MAX_EXPRESSION_STEPS = 200_000
#: characters / elements an evaluation may produce in total (strings, lists, maps it builds)
MAX_EXPRESSION_ALLOCATION = 8 * 1024 * 1024
#: wall-clock bound of one evaluation (a backstop; the step budget normally ends it first)
MAX_EXPRESSION_SECONDS = 1.0
#: evaluation steps of all expressions of one reconcile pass of one workflow (many tags that each
#: stay within MAX_EXPRESSION_STEPS must not add up to minutes)
MAX_PASS_EXPRESSION_STEPS = 2_000_000

#: items one ``withItems`` / ``withParam`` / ``withSequence`` may expand to
MAX_LOOP_ITEMS = 5_000
#: nodes one workflow may have (a 5,000-item fan-out with a ``retryStrategy`` has 10,002: a Retry
#: and a Pod node per item; past ~1 MiB compressed the status packer fails the workflow anyway)
MAX_NODES = 20_000
#: pods one reconcile pass of one workflow creates; the rest are created by the next passes
#: (Argo's controller has the same knob, ``resourceRateLimit``)
MAX_POD_CREATIONS_PER_PASS = 100
#: width of a ``withSequence.format`` verb (``%05d``)
MAX_FORMAT_WIDTH = 64

#: Argo's default ``MAX_WORKFLOW_SIZE``: above it node status is compressed into
#: ``status.compressedNodes``; if still above, the workflow fails (the API refuses objects over
#: 1.5 MiB, so the controller stays well below that)
MAX_WORKFLOW_SIZE = 1024 * 1024
#: Argo's ``packer.tooLarge`` prefix
TOO_LARGE_MESSAGE = "workflow is longer than maximum allowed size."


class LimitExceeded(Exception):
    """A bound of this module was hit; the message says which and what to do."""


class _PassSteps:
    __slots__ = ("limit", "steps")

    def __init__(self, limit: int) -> None:
        self.steps = 0
        self.limit = limit


_CURRENT = threading.local()


@contextmanager
def pass_budget(limit: int = MAX_PASS_EXPRESSION_STEPS) -> Iterator[None]:
    """Count the evaluation steps of every expression evaluated in this thread inside the block
    against ``limit`` (one reconcile pass of one workflow)."""
    previous = getattr(_CURRENT, "steps", None)
    _CURRENT.steps = _PassSteps(limit)
    try:
        yield
    finally:
        _CURRENT.steps = previous


class Budget:
    """Counts the steps and the allocation of one expression evaluation and its wall time.

    ``charge`` raises ``error_type`` (the expression module's error) once a bound is exceeded, so
    a pathological expression ends quickly with a message instead of running on.
    """

    __slots__ = ("allocated", "deadline", "error_type", "pass_steps", "steps", "text")

    def __init__(self, error_type: type[Exception], text: str, *, seconds: float = MAX_EXPRESSION_SECONDS) -> None:
        self.steps = 0
        self.allocated = 0
        self.deadline = time.monotonic() + seconds
        self.error_type = error_type
        self.text = text
        self.pass_steps: _PassSteps | None = getattr(_CURRENT, "steps", None)

    def step(self) -> None:
        """One evaluation step (checked against the step and time bounds)."""
        self.steps += 1
        if self.steps > MAX_EXPRESSION_STEPS:
            raise self.error_type(f"expression exceeds the evaluation budget of {MAX_EXPRESSION_STEPS} steps: "
                                  f"{_excerpt(self.text)}")
        if not self.steps & 0x3FF and time.monotonic() > self.deadline:
            raise self.error_type(f"expression did not finish within {MAX_EXPRESSION_SECONDS:g}s: "
                                  f"{_excerpt(self.text)}")
        shared = self.pass_steps
        if shared is not None:
            shared.steps += 1
            if shared.steps > shared.limit:
                raise self.error_type(f"the workflow's expressions exceed the budget of {shared.limit} evaluation "
                                      f"steps in one reconcile pass (at {_excerpt(self.text)}); use fewer or "
                                      "simpler expressions")

    def allocate(self, size: int) -> None:
        """Account ``size`` characters/elements produced by one operation."""
        self.allocated += size
        if self.allocated > MAX_EXPRESSION_ALLOCATION:
            raise self.error_type(f"expression builds more than {MAX_EXPRESSION_ALLOCATION} characters/elements "
                                  f"of values: {_excerpt(self.text)}")

    def charge(self, value: Any) -> Any:
        """Account a produced value by its length (strings, lists, maps); returns it."""
        if isinstance(value, (str, list, dict, bytes)):
            self.allocate(len(value))
        return value


def _excerpt(text: str, limit: int = 120) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def excerpt(text: str, limit: int = 120) -> str:
    """``repr`` of ``text`` cut to ``limit`` characters, for messages about huge inputs."""
    return _excerpt(text, limit)
