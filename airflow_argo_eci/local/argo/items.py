"""Loop items of steps and DAG tasks: ``withSequence`` expansion (Go's ``Sprintf`` verbs), the bound on
the number of items and the scope an item adds."""

from __future__ import annotations

import re
from typing import Any

from airflow_argo_eci.local.argo.budget import MAX_FORMAT_WIDTH, MAX_LOOP_ITEMS
from airflow_argo_eci.local.argo.templates import SpecError


def expand_sequence(seq: dict[str, Any], where: str) -> list[Any]:
    """Items of ``withSequence`` (``count``/``start``/``end``/``format``), like Argo's ``expandSequence``."""
    def as_int(key: str) -> int | None:
        value = seq.get(key)
        if value in (None, ""):
            return None
        try:
            return int(str(value).strip())
        except ValueError as exc:
            raise SpecError(f"{where}.withSequence.{key}: invalid integer '{str(value)[:100]}'") from exc

    start = as_int("start") or 0
    count = as_int("count")
    end = as_int("end")
    if count is not None and end is not None:
        raise SpecError(f"{where}.withSequence: only one of count or end can be defined")
    if count is not None:
        if count == 0:
            return []
        end = start + count - 1
    if end is None:
        raise SpecError(f"{where}.withSequence: one of count or end must be defined")
    if abs(end - start) >= MAX_LOOP_ITEMS:
        raise SpecError(f"{where}.withSequence expands to {abs(end - start) + 1} items; the local cluster expands "
                        f"at most {MAX_LOOP_ITEMS} per step or task (split the loop)")
    step = 1 if end >= start else -1
    fmt = seq.get("format")
    out: list[Any] = []
    for i in range(start, end + step, step):
        out.append(_go_sprintf(str(fmt), i) if fmt else str(i))
    return out


_VERB = re.compile(r"%([-0]*)(\d*)([dxXo%])")


def _go_sprintf(fmt: str, value: int) -> str:
    """Go's ``fmt.Sprintf(format, i)`` for the verbs ``withSequence.format`` uses (``%d``, ``%x``,
    ``%X``, ``%o`` with ``-``/``0`` flags and a width); other text is kept as it is."""
    def verb(m: re.Match[str]) -> str:
        flags, width_text, kind = m.groups()
        if kind == "%":
            return "%"
        width = int(width_text[:6]) if width_text else 0
        if len(width_text) > 6 or width > MAX_FORMAT_WIDTH:
            raise SpecError(f"withSequence.format: width {width_text[:20]} in {fmt[:100]!r} is more than "
                            f"{MAX_FORMAT_WIDTH}")
        digits = format(abs(value), {"d": "d", "x": "x", "X": "X", "o": "o"}[kind])
        text = ("-" if value < 0 else "") + digits
        if "-" in flags:
            return text.ljust(width)
        if "0" in flags:
            return ("-" if value < 0 else "") + digits.zfill(width - (1 if value < 0 else 0))
        return text.rjust(width)

    return _VERB.sub(verb, fmt)


def bounded_items(items: list[Any], where: str, field: str) -> list[Any]:
    """``items`` of ``field`` of ``where``, or :class:`SpecError` when there are more than the local
    cluster expands per step or task."""
    if len(items) > MAX_LOOP_ITEMS:
        raise SpecError(f"{where}.{field} has {len(items)} items; the local cluster expands at most "
                        f"{MAX_LOOP_ITEMS} per step or task (split the loop)")
    return items


def item_scope(item: Any) -> dict[str, Any]:
    """The variables an item adds to a step's scope: ``item`` and, for a map, ``item.<key>``."""
    extra: dict[str, Any] = {"item": item}
    if isinstance(item, dict):
        for k, v in item.items():
            extra[f"item.{k}"] = v
    return extra
