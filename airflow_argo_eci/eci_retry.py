"""Argo's ``retryStrategy`` as validated, immutable values: :class:`RetryStrategy` and its :class:`Backoff`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from airflow_argo_eci.errors import WorkflowSpecError

__all__ = ["RETRY_POLICIES", "Backoff", "RetryStrategy", "check_keys", "same_retry"]

RETRY_POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")
# a Go duration ("30s", "1m30s", "1.5h") or a plain number of seconds
_DURATION_RE = re.compile(r"^(?:[0-9]+|(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+)$")


def _fail(message: str) -> NoReturn:
    raise WorkflowSpecError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_keys(where: str, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise naming ``where`` unless ``data`` is a mapping whose keys are all in ``allowed``."""
    if not isinstance(data, Mapping):
        _fail(f"{where} must be a mapping, got {type(data).__name__}")
    allowed = tuple(allowed)
    unknown = [k for k in data if k not in allowed]
    if unknown:
        _fail(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}: allowed keys are {', '.join(allowed)}")


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long Argo waits between retries (``retryStrategy.backoff``).

    :param duration: first wait: a number of seconds (``"10"``) or a Go duration (``"30s"``, ``"2m"``).
    :param factor: multiplier applied to the wait after each retry (int >= 1), optional.
    :param max_duration: cap on the total time spent retrying (a duration), optional.
    """

    duration: str
    factor: int | None = None
    max_duration: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("duration", self.duration), ("max_duration", self.max_duration)):
            if value is None and name == "max_duration":
                continue
            if not isinstance(value, str) or not _DURATION_RE.match(value):
                _fail(f"retry_strategy.backoff.{name}: {value!r} is not a duration: use seconds like '10' "
                      "or a Go duration like '30s', '2m', '1h'")
        if self.factor is not None and (not _is_int(self.factor) or self.factor < 1):
            _fail(f"retry_strategy.backoff.factor must be an int >= 1, got {self.factor!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Backoff:
        """From Argo's spelling: ``{duration, factor, maxDuration}``."""
        check_keys("retry_strategy.backoff", data, ("duration", "factor", "maxDuration"))
        if "duration" not in data:
            _fail("retry_strategy.backoff.duration is missing: set it, e.g. '10s'")
        duration = data["duration"]
        factor = data.get("factor")
        if isinstance(factor, str) and factor.isdigit():
            factor = int(factor)
        return cls(duration=str(duration) if _is_int(duration) else duration, factor=factor,
                   max_duration=data.get("maxDuration"))

    def to_argo(self) -> dict[str, Any]:
        """The ``backoff`` object as Argo spells it."""
        result: dict[str, Any] = {"duration": self.duration}
        if self.factor is not None:
            result["factor"] = self.factor
        if self.max_duration is not None:
            result["maxDuration"] = self.max_duration
        return result


@dataclass(frozen=True, slots=True)
class RetryStrategy:
    """An Argo ``retryStrategy``.

    :param limit: how many times a failed step is retried (int >= 0); rendered as a string like
        the seed documents (``limit: "3"``).
    :param retry_policy: ``Always``, ``OnFailure`` (Argo's default), ``OnError`` or
        ``OnTransientError``; ``None`` leaves Argo's default.
    :param backoff: optional :class:`Backoff` between attempts.
    """

    limit: int
    retry_policy: str | None = None
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.limit) or self.limit < 0:
            _fail(f"retry_strategy.limit must be an int >= 0, got {self.limit!r}")
        if self.retry_policy is not None and self.retry_policy not in RETRY_POLICIES:
            _fail(f"retry_strategy.retryPolicy: {self.retry_policy!r} is not supported: use one of "
                  f"{', '.join(RETRY_POLICIES)}")
        if isinstance(self.backoff, Mapping):
            object.__setattr__(self, "backoff", Backoff.from_dict(self.backoff))
        elif self.backoff is not None and not isinstance(self.backoff, Backoff):
            _fail(f"retry_strategy.backoff must be a Backoff or a mapping, got {type(self.backoff).__name__}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetryStrategy:
        """From Argo's spelling: ``{limit, retryPolicy, backoff: {duration, factor, maxDuration}}``."""
        check_keys("retry_strategy", data, ("limit", "retryPolicy", "backoff"))
        if "limit" not in data:
            _fail("retry_strategy.limit is missing: set how many times a failed step is retried")
        limit = data["limit"]
        if isinstance(limit, str) and limit.isdigit():
            limit = int(limit)
        backoff = data.get("backoff")
        return cls(limit=limit, retry_policy=data.get("retryPolicy"),
                   backoff=Backoff.from_dict(backoff) if backoff is not None else None)

    def to_argo(self) -> dict[str, Any]:
        """The ``retryStrategy`` object as Argo spells it."""
        result: dict[str, Any] = {"limit": str(self.limit)}
        if self.retry_policy is not None:
            result["retryPolicy"] = self.retry_policy
        if self.backoff is not None:
            result["backoff"] = self.backoff.to_argo()
        return result


def same_retry(a: Any, b: Mapping[str, Any]) -> bool:
    """Whether ``a`` (a retryStrategy as a workflow spells it) equals the rendered ``b`` (``limit`` as a string)."""
    if not isinstance(a, Mapping):
        return False
    normal = dict(a)
    if "limit" in normal:
        normal["limit"] = str(normal["limit"])
    return normal == dict(b)
