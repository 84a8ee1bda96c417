"""Argo node ids, v2 pod names, node-name forms and small status helpers.

Mirrors ``workflow/util/pod_name.go`` and the node-naming conventions of Argo's workflow operator:
the root node's id is the workflow name, every other node's id is ``<wf>-<fnv32a(node name)>``, and
pod names (v2) are ``<wf>-<template>-<fnv32a(node name)>`` with the prefix truncated so the name
fits into 253 characters.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

MAX_K8S_RESOURCE_NAME_LENGTH = 253
K8S_NAMING_HASH_LENGTH = 10

#: phases after which a node never changes again
COMPLETED_PHASES = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})
FAILED_PHASES = frozenset({"Failed", "Error"})


#: hashes of node names already seen; FNV-1a has no finalisation, so the hash of a name is also
#: the state to continue from for a longer name (a child ``parent.child``): deep node trees hash
#: only their new suffixes instead of names hundreds of characters long, again and again
_FNV_CACHE: dict[str, int] = {}
_FNV_CACHE_SIZE = 50_000


def fnv32a(text: str) -> int:
    """The 32-bit FNV-1a hash of ``text`` (UTF-8), as Go's ``hash/fnv`` ``New32a``."""
    cached = _FNV_CACHE.get(text)
    if cached is not None:
        return cached
    value, start = 0x811C9DC5, 0
    cut = len(text)
    while True:
        cut = text.rfind(".", 0, cut)
        if cut <= 0:
            break
        prefix = _FNV_CACHE.get(text[:cut])
        if prefix is not None:
            value, start = prefix, cut
            break
    for byte in text[start:].encode("utf-8"):
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    if len(_FNV_CACHE) >= _FNV_CACHE_SIZE:
        _FNV_CACHE.clear()
    _FNV_CACHE[text] = value
    return value


def node_id(workflow_name: str, node_name: str) -> str:
    """Argo's ``Workflow.NodeID``: the workflow name for the root node, else ``<wf>-<fnv32a>``."""
    if node_name == workflow_name:
        return workflow_name
    return f"{workflow_name}-{fnv32a(node_name)}"


def pod_name(workflow_name: str, node_name: str, template_name: str) -> str:
    """Argo's v2 pod name for the node ``node_name`` running template ``template_name``."""
    if workflow_name == node_name:
        return workflow_name
    prefix = workflow_name
    if ".inline" not in node_name and template_name:
        prefix = f"{workflow_name}-{template_name}"
    max_prefix = MAX_K8S_RESOURCE_NAME_LENGTH - K8S_NAMING_HASH_LENGTH
    if len(prefix) > max_prefix - 1:
        prefix = prefix[: max_prefix - 1]
    return f"{prefix}-{fnv32a(node_name)}"


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


def now_rfc3339() -> str:
    """The current UTC time as RFC3339 with a ``Z`` suffix and second precision (like Argo)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
