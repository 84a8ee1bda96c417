"""Node-name forms, Go-style values, durations and quantities, and small node-status helpers of the
local controller.

Node ids, pod names and their hash are Argo's conventions: they live in
:mod:`airflow_argo_eci.conventions` (``node_id``, ``pod_name``, ``fnv32a``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from airflow_argo_eci.conventions import FAILED_PHASES


def item_description(item: Any) -> str:
    """How an item appears inside an expanded node name: ``name(0:<description>)``."""
    if isinstance(item, dict):
        return ",".join(sorted(f"{k}:{go_string(v)}" for k, v in item.items()))
    return go_string(item)


def expanded_name(name: str, index: int, item: Any) -> str:
    """``name(index:item)`` as Argo names the nodes of a ``withItems``/``withParam`` expansion."""
    return f"{name}({index}:{item_description(item)})"


def go_json(value: Any) -> str:
    """JSON as Go's ``encoding/json`` writes it: compact, sorted map keys, integral floats as ints."""
    return json.dumps(_normalise(value), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _normalise(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def go_string(value: Any) -> str:
    """A value rendered into a template: strings verbatim, everything else as Go-style JSON."""
    if isinstance(value, str):
        return value
    return go_json(value)


def parse_time(value: str | None) -> datetime | None:
    """Parse an RFC3339 timestamp (``Z`` or offset, optional fraction); None for empty input."""
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        frac = ""
        rest = ""
        for i, ch in enumerate(tail):
            if not ch.isdigit():
                rest = tail[i:]
                break
            frac += ch
        text = f"{head}.{frac[:6].ljust(6, '0')}{rest}"
    return datetime.fromisoformat(text)


def seconds_between(start: str | None, end: str | None) -> float:
    """Seconds from ``start`` to ``end`` (0 if either is missing)."""
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None:
        return 0.0
    return max(0.0, (b - a).total_seconds())


def parse_duration(value: Any, *, field: str) -> float:
    """Seconds in an Argo/Go duration (``"30s"``, ``"1m30s"``, ``"2h"``, ``"500ms"``) or a bare number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if not text:
        raise ValueError(f"{field}: empty duration")
    try:
        return float(text)
    except ValueError:
        pass
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    total = 0.0
    pos = 0
    sign = 1.0
    if text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        pos = 1
    while pos < len(text):
        start = pos
        while pos < len(text) and (text[pos].isdigit() or text[pos] == "."):
            pos += 1
        number = text[start:pos]
        ustart = pos
        while pos < len(text) and not (text[pos].isdigit() or text[pos] == "."):
            pos += 1
        unit = text[ustart:pos]
        if not number or unit not in units:
            raise ValueError(f"{field}: invalid duration {value!r}")
        total += float(number) * units[unit]
    return sign * total


def parse_cpu(value: Any, default: float) -> float:
    """vCPUs in a Kubernetes CPU quantity (``"100m"``, ``"0.5"``, ``2``); ``default`` when unset or
    invalid (the runtime fails a pod with an invalid quantity, naming the field)."""
    from airflow_argo_eci.local.runtime.limits import LimitError, parse_quantity

    if value is None or value == "":
        return default
    try:
        return max(0.0, float(parse_quantity(value, "cpu")))
    except LimitError:
        return default


def mem_units(value: Any) -> float:
    """Memory request in Argo's resource-duration unit (100Mi); 1 when unset."""
    from airflow_argo_eci.local.runtime.limits import LimitError, parse_quantity

    if value in (None, ""):
        return 1.0
    try:
        return float(parse_quantity(value, "memory")) / (100 * 1024**2)
    except LimitError:
        return 1.0


def continues_on(step: dict[str, Any], phase: str) -> bool:
    """Whether a step / task with ``continueOn`` goes on after a child ended in ``phase``."""
    cont = step.get("continueOn") or {}
    return (phase == "Failed" and bool(cont.get("failed"))) or (phase == "Error" and bool(cont.get("error")))


def aggregate_phase(phases: list[Any]) -> str:
    """The ``status`` of an expanded step / task: Failed if any child failed, Skipped if all were
    skipped or omitted, else Succeeded."""
    if any(p in FAILED_PHASES for p in phases):
        return "Failed"
    if all(p in ("Skipped", "Omitted") for p in phases):
        return "Skipped"
    return "Succeeded"
