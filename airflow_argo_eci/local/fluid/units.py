"""How Fluid prints sizes, ratios and durations, and the quantities its specs hold."""

from __future__ import annotations

from typing import Any

from airflow_argo_eci.local.runtime.limits import LimitError, parse_quantity

_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


class SpecFieldError(ValueError):
    """A Fluid object's field holds a value the local cluster cannot use; the message names it."""


def bytes_size(size: float) -> str:
    """``size`` bytes as Fluid writes ``ufsTotal`` / ``cached`` / ``cacheCapacity``: four significant
    digits and a binary unit (``0.00B``, ``52.18MiB``, ``1.00GiB``, ``12.00GiB``)."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(_BINARY_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.2f}{_BINARY_UNITS[unit]}"


def percentage(part: float, whole: float) -> str:
    """``part / whole`` as Fluid writes ``cachedPercentage`` and the hit ratios (``42.5%``); a zero
    ``whole`` gives ``0.0%``."""
    return f"{(100.0 * part / whole) if whole else 0.0:.1f}%"


def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` writes whole seconds (``14s``, ``1m2s``, ``1h0m5s``),
    which Fluid puts in ``status.duration``."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def quantity_bytes(value: Any, field_name: str) -> int:
    """A Kubernetes quantity (``12Gi``, ``500Mi``, ``1024``) as whole bytes; :class:`SpecFieldError`
    naming ``field_name`` for anything else or a negative amount."""
    try:
        amount = parse_quantity(value, field_name)
    except LimitError as exc:
        raise SpecFieldError(str(exc)) from exc
    if amount < 0:
        raise SpecFieldError(f"{field_name}: {value!r} must not be negative")
    return int(amount)
