"""Queries over a Kubernetes object as JSON: Argo's resource conditions (label-selector syntax over
gjson paths), kubectl's JSONPath templates and a practical jq subset, for resource templates.

Pure: no store, no HTTP. Every parse error is a :class:`QueryError` naming what is wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_MISSING = object()


class QueryError(ValueError):
    """A condition, JSONPath or jq filter that cannot be parsed or is not supported."""


# ------------------------------------------------------------------ gjson paths


def gjson_get(doc: Any, path: str) -> Any:
    """The value at the gjson path ``path`` (``status.succeeded``, ``items.0.name``, ``items.#``),
    or the module's missing marker when there is none (see :func:`gjson_has`)."""
    value = doc
    for part in _split_gjson(path):
        if isinstance(value, list):
            if part == "#":
                value = len(value)
                continue
            if not part.isdigit() or int(part) >= len(value):
                return _MISSING
            value = value[int(part)]
        elif isinstance(value, dict):
            if part not in value:
                return _MISSING
            value = value[part]
        else:
            return _MISSING
    return value


def gjson_has(doc: Any, path: str) -> bool:
    """Whether ``path`` names a value in ``doc`` (gjson's ``Exists``)."""
    return gjson_get(doc, path) is not _MISSING


def gjson_string(value: Any) -> str:
    """A value as gjson's ``String()`` renders it: strings raw, other values as JSON, missing ""."""
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _split_gjson(path: str) -> list[str]:
    parts, current, escaped = [], "", False
    for ch in path:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ".":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


# ------------------------------------------------------------------ conditions


@dataclass(frozen=True)
class Requirement:
    """One requirement of a condition: ``key op values`` (Kubernetes' ``labels.Requirement``)."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return "!" + self.key
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(self.values)})"
        return f"{self.key}{self.op}{self.values[0]}"

    def matches(self, doc: Any) -> bool:
        """Whether the requirement holds for the object ``doc``."""
        value = gjson_get(doc, self.key)
        has = value is not _MISSING
        text = gjson_string(value)
        if self.op in ("=", "==", "in"):
            return has and text in self.values
        if self.op in ("!=", "notin"):
            return not has or text not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if not has:
            return False
        try:
            number = int(text)
        except ValueError:
            return False
        limit = int(self.values[0])
        return number > limit if self.op == ">" else number < limit


_OPERATOR = re.compile(r"^\s*(!?)([^\s=!<>(),]+)\s*(==|=|!=|>|<|in\s|notin\s)?\s*(.*?)\s*$", re.S)


def parse_condition(text: str) -> list[Requirement]:
    """The requirements of a ``successCondition`` / ``failureCondition`` (comma-separated, each
    ``key``, ``!key``, ``key==v``, ``key=v``, ``key!=v``, ``key>n``, ``key<n``, ``key in (a,b)``,
    ``key notin (a,b)``); :class:`QueryError` when it does not parse."""
    out: list[Requirement] = []
    for part in _split_top(text):
        if not part.strip():
            raise QueryError("found ',', expected: identifier")
        m = _OPERATOR.match(part)
        if m is None:
            raise QueryError(f"cannot parse requirement {part.strip()!r}")
        negate, key, op, rest = m.group(1), m.group(2), (m.group(3) or "").strip(), m.group(4)
        if negate:
            if op or rest:
                raise QueryError(f"'!{key}' takes no operator or value")
            out.append(Requirement(key, "!"))
            continue
        if not op:
            if rest:
                raise QueryError(f"cannot parse requirement {part.strip()!r}: expected an operator after {key!r}")
            out.append(Requirement(key, "exists"))
            continue
        if op in ("in", "notin"):
            if not (rest.startswith("(") and rest.endswith(")")):
                raise QueryError(f"{key} {op}: expected a parenthesised value list, got {rest!r}")
            values = tuple(v.strip() for v in rest[1:-1].split(","))
            out.append(Requirement(key, op, values))
            continue
        if op in (">", "<"):
            try:
                int(rest)
            except ValueError:
                raise QueryError(f"for '{op}' operators the value must be an integer, got {rest!r} in "
                                 f"{part.strip()!r}") from None
        out.append(Requirement(key, op, (rest,)))
    return out


def _split_top(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


# ------------------------------------------------------------------ kubectl JSONPath

_JSONPATH_SEGMENT = re.compile(r"\.([A-Za-z0-9_\-/]+)|\[(\d+|\*)\]|\['([^']*)'\]|\.\.|\.\*")


def jsonpath(doc: Any, template: str) -> str:
    """``kubectl get -o jsonpath=TEMPLATE``: text with ``{.path}`` expressions (fields, ``[n]``,
    ``[*]``, ``['key']``); values of one expression are joined by spaces, strings raw, other values
    as JSON. Filters, ranges and recursive descent are a :class:`QueryError`."""
    out, pos = [], 0
    for m in re.finditer(r"\{([^{}]*)\}", template):
        out.append(template[pos:m.start()])
        pos = m.end()
        out.append(" ".join(gjson_string(v) for v in _jsonpath_values(doc, m.group(1).strip())))
    out.append(template[pos:])
    return "".join(out)


def _jsonpath_values(doc: Any, expr: str) -> list[Any]:
    if expr.startswith("$"):
        expr = expr[1:]
    if expr in ("", "."):
        return [doc]
    if expr.startswith("range") or expr == "end" or "?(" in expr or ".." in expr:
        raise QueryError(f"jsonPath {{{expr}}}: filters, range and recursive descent are not supported by the "
                         "local cluster; use fields, [n], [*] and ['key']")
    values = [doc]
    pos = 0
    for m in _JSONPATH_SEGMENT.finditer(expr):
        if m.start() != pos or m.group(0) in ("..", ".*"):
            raise QueryError(f"jsonPath {{{expr}}}: cannot parse at {expr[pos:]!r}")
        pos = m.end()
        field = m.group(1) if m.group(1) is not None else m.group(3)
        nxt: list[Any] = []
        for v in values:
            if field is not None:
                if isinstance(v, dict) and field in v:
                    nxt.append(v[field])
            elif m.group(2) == "*":
                nxt.extend(v if isinstance(v, list) else list(v.values()) if isinstance(v, dict) else [])
            elif isinstance(v, list) and int(m.group(2)) < len(v):
                nxt.append(v[int(m.group(2))])
        values = nxt
    if pos != len(expr):
        raise QueryError(f"jsonPath {{{expr}}}: cannot parse at {expr[pos:]!r}")
    return values


# ------------------------------------------------------------------ jq subset

_JQ_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_\-]*)|\.?\[(-?\d+)?\]|\.?\[\"([^\"]*)\"\]|\.\"([^\"]*)\"")
_JQ_FUNCTIONS = ("length", "keys", "tostring", "tojson", "first", "last", "not")
_JQ_SUPPORTED = ("paths (.a.b, .a[0], .a[], .[\"k\"]), pipes (|), commas (,) and "
                 + ", ".join(_JQ_FUNCTIONS))


def jq(doc: Any, program: str) -> str:
    """``jq -rc PROGRAM`` over ``doc`` for the subset of jq that resource outputs use: each result
    on its own line, strings raw, other values as compact JSON. :class:`QueryError` for anything
    outside that subset."""
    results = _jq_pipe(program.strip(), [doc], program)
    return "\n".join(v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for v in results)


def _jq_pipe(program: str, inputs: list[Any], whole: str) -> list[Any]:
    values = inputs
    for stage in _split_unquoted(program, "|"):
        nxt: list[Any] = []
        for branch in _split_unquoted(stage, ","):
            for v in values:
                nxt.extend(_jq_stage(branch.strip(), v, whole))
        values = nxt
    return values


def _split_unquoted(text: str, sep: str) -> list[str]:
    parts, current, quoted, depth = [], "", False, 0
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        if ch == sep and not quoted and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def _jq_stage(stage: str, value: Any, whole: str) -> list[Any]:
    if stage in ("", "."):
        return [value]
    if stage in _JQ_FUNCTIONS:
        return [_jq_function(stage, value, whole)]
    if stage.startswith("(") and stage.endswith(")"):
        return _jq_pipe(stage[1:-1], [value], whole)
    values = [value]
    pos = 0
    for m in _JQ_STEP.finditer(stage):
        if m.start() != pos:
            break
        pos = m.end()
        nxt: list[Any] = []
        for v in values:
            field = m.group(1) or m.group(3) or m.group(4)
            if field is not None:
                if v is None:
                    nxt.append(None)
                elif isinstance(v, dict):
                    nxt.append(v.get(field))
                else:
                    raise QueryError(f"jqFilter {whole!r}: cannot index {type(v).__name__} with {field!r}")
            elif m.group(2) is not None:
                index = int(m.group(2))
                nxt.append(v[index] if isinstance(v, list) and -len(v) <= index < len(v) else None)
            elif isinstance(v, list):
                nxt.extend(v)
            elif isinstance(v, dict):
                nxt.extend(v.values())
            else:
                raise QueryError(f"jqFilter {whole!r}: cannot iterate over {type(v).__name__}")
        values = nxt
    if pos != len(stage) or pos == 0:
        raise QueryError(f"jqFilter {whole!r}: {stage[pos:]!r} is not supported by the local cluster "
                         f"(supported: {_JQ_SUPPORTED})")
    return values


def _jq_function(name: str, value: Any, whole: str) -> Any:
    if name == "length":
        if value is None:
            return 0
        if isinstance(value, (list, dict, str)):
            return len(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return abs(value)
        raise QueryError(f"jqFilter {whole!r}: {type(value).__name__} has no length")
    if name == "keys":
        if isinstance(value, dict):
            return sorted(value)
        if isinstance(value, list):
            return list(range(len(value)))
        raise QueryError(f"jqFilter {whole!r}: {type(value).__name__} has no keys")
    if name in ("tostring", "tojson"):
        return value if isinstance(value, str) and name == "tostring" else json.dumps(value, separators=(",", ":"))
    if name == "not":
        return value in (None, False)
    if not isinstance(value, list):
        raise QueryError(f"jqFilter {whole!r}: {name} needs an array")
    if not value:
        return None
    return value[0] if name == "first" else value[-1]
