"""The values of Argo's expression languages: member access, truthiness, equality, ordering and the
conversions (to number, int, float, array, parsed JSON) that operators and builtins share."""

from __future__ import annotations

import json
from typing import Any

from airflow_argo_eci.local.argo.expressions.errors import ExpressionError
from airflow_argo_eci.local.argo.nodes import go_string


def member(target: Any, key: Any) -> Any:
    """The field ``key`` of a map or the item ``key`` of an array or string (negative indexes count
    from the end); ``None`` for ``None``."""
    if target is None:
        return None
    if isinstance(target, dict):
        return target.get(key if not isinstance(key, float) else int(key))
    if isinstance(target, (list, str)):
        if isinstance(key, bool) or not isinstance(key, (int, float)):
            raise ExpressionError(f"cannot index {type(target).__name__} with {key!r}")
        idx = int(key)
        if idx < 0:
            idx += len(target)
        if idx < 0 or idx >= len(target):
            raise ExpressionError(f"index out of range: {int(key)} (array of length {len(target)})")
        return target[idx]
    raise ExpressionError(f"cannot access {key!r} of {type(target).__name__}")


def truthy(value: Any) -> bool:
    """A boolean (or the strings ``"true"``/``"false"``; ``None`` is false) as a bool; anything else is an error."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value == "true":
            return True
        if value == "false":
            return False
    if value is None:
        return False
    raise ExpressionError(f"expected a boolean but got {go_string(value)!r}")


def to_number_or_none(value: Any) -> float | int | None:
    """A number, or a string that spells one, as a number; ``None`` for anything else (booleans too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def number(value: Any) -> float | int:
    """As :func:`to_number_or_none`, but an error for what is not a number."""
    number = to_number_or_none(value)
    if number is None:
        raise ExpressionError(f"expected a number but got {go_string(value)!r}")
    return number


def equal(left: Any, right: Any, loose: bool) -> bool:
    """``==`` of expr-lang; ``loose`` (govaluate) compares numbers by value and the rest as strings."""
    if isinstance(left, bool) or isinstance(right, bool):
        if loose:
            return go_string(left) == go_string(right)
        return left is right or (left == right and type(left) is type(right))
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return float(left) == float(right)
    if loose:
        a, b = to_number_or_none(left), to_number_or_none(right)
        if a is not None and b is not None:
            return float(a) == float(b)
        return go_string(left) == go_string(right)
    return bool(left == right)


def comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """The operands of ``<`` and friends: both numbers or both strings, else an error."""
    a, b = to_number_or_none(left), to_number_or_none(right)
    if a is not None and b is not None:
        return float(a), float(b)
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    raise ExpressionError(f"cannot compare {go_string(left)!r} with {go_string(right)!r}")


def as_list(value: Any, fn: str) -> list[Any]:
    """An array (or the values of a map) that the builtin ``fn`` works on; anything else is an error."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    raise ExpressionError(f"{fn}() needs an array, got {go_string(value)!r}")


def as_int(value: Any) -> int:
    """A number or numeric string as an int (floats are truncated); an error for anything else."""
    if isinstance(value, bool):
        raise ExpressionError(f"cannot convert {value!r} to int")
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        try:
            return int(float(str(value).strip()))
        except ValueError as exc:
            raise ExpressionError(f"cannot convert {value!r} to int") from exc


def as_float(value: Any) -> float:
    """A value as a float; an error if it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ExpressionError(f"cannot convert {value!r} to float") from exc


def from_json(value: Any) -> Any:
    """The value the JSON text ``value`` encodes; an error for invalid JSON."""
    try:
        return json.loads(str(value))
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"fromJSON: invalid JSON {value!r}: {exc}") from exc
