"""The ``influxd`` stand-in's in-memory databases and the InfluxQL subset it answers.

Statements (several separated by ``;``): ``CREATE DATABASE x``, ``DROP DATABASE x``,
``SHOW DATABASES``, ``SHOW MEASUREMENTS``, and ``SELECT *|a,b FROM m [WHERE k op v [AND ...]]
[ORDER BY time [ASC|DESC]] [LIMIT n]``. Results have InfluxDB 1.x's shape:
``{"statement_id": i, "series": [{"name", "columns", "values"}]}`` or ``{"statement_id": i, "error"}``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from lineprotocol import FieldValue, Point, parse_rfc3339, rfc3339_nano

_KEYWORDS = "SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL"
_IDENT = r'(?:"(?:[^"\\]|\\.)*"|[A-Za-z_][\w]*)'
_DURATION = {"ns": 1, "u": 1_000, "µ": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
             "h": 3_600_000_000_000, "d": 86_400_000_000_000, "w": 604_800_000_000_000}
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<>": lambda a, b: a != b,
    ">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
}
_CONDITION = re.compile(
    rf"\s*({_IDENT})\s*(=|!=|<>|>=|<=|>|<)\s*('(?:[^'\\]|\\.)*'|now\(\)(?:\s*[-+]\s*\d+(?:ns|u|µ|ms|s|m|h|d|w))?"
    r"|-?\d+(?:\.\d+)?(?:ns|u|µ|ms|s|m|h|d|w)?|true|false)\s*$", re.IGNORECASE)
_SELECT = re.compile(
    rf"^SELECT\s+(?P<cols>.+?)\s+FROM\s+(?P<src>{_IDENT}(?:\.{_IDENT}?){{0,2}})"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+time(?:\s+(?P<order>ASC|DESC))?)?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$", re.IGNORECASE | re.DOTALL)


class QueryError(ValueError):
    """A query the parser rejects (the whole request fails with 400)."""


def _unquote(ident: str) -> str:
    ident = ident.strip()
    if ident.startswith('"') and ident.endswith('"') and len(ident) >= 2:
        return re.sub(r"\\(.)", r"\1", ident[1:-1])
    return ident


def split_statements(text: str) -> list[str]:
    """``text`` split on ``;`` outside quotes, blank statements dropped."""
    out: list[str] = []
    current: list[str] = []
    quote = ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ";":
            out.append("".join(current))
            current = []
            continue
        current.append(char)
    out.append("".join(current))
    return [s.strip() for s in out if s.strip()]


class Database:
    """One database: measurement -> (series tags, time) -> fields."""

    def __init__(self) -> None:
        self.measurements: dict[str, dict[tuple[tuple[tuple[str, str], ...], int], dict[str, FieldValue]]] = {}
        #: measurement -> field -> its type (the first value written fixes it)
        self.field_types: dict[str, dict[str, str]] = {}


def _kind(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "float" if isinstance(value, float) else "string"


class Store:
    """The server's databases (``_internal`` exists from the start, as with monitoring on)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.databases: dict[str, Database] = {"_internal": Database()}

    def write(self, db: str, points: list[Point]) -> tuple[str, int]:
        """Store ``points`` in ``db`` (a point with the series and time of an earlier one merges its
        fields); ``(InfluxDB's field type conflict message, points dropped)``, ``("", 0)`` when all fit."""
        conflict, dropped = "", 0
        with self.lock:
            database = self.databases[db]
            for point in points:
                types = database.field_types.setdefault(point.measurement, {})
                clash = next((k for k, v in point.fields.items() if types.get(k, _kind(v)) != _kind(v)), None)
                if clash is not None:
                    conflict = conflict or (f"field type conflict: input field \"{clash}\" on measurement "
                                            f"\"{point.measurement}\" is type {_kind(point.fields[clash])}, "
                                            f"already exists as type {types[clash]}")
                    dropped += 1
                    continue
                types.update({k: _kind(v) for k, v in point.fields.items()})
                series = database.measurements.setdefault(point.measurement, {})
                key = (tuple(sorted(point.tags.items())), point.time)
                series.setdefault(key, {}).update(point.fields)
        return conflict, dropped

    # ------------------------------------------------------------------ statements

    def plan(self, statement: str) -> Callable[[str], dict[str, Any]]:
        """A function of the request's ``db`` running ``statement``, or :class:`QueryError`."""
        words = statement.split()
        head = " ".join(words[:2]).upper()
        if head == "CREATE DATABASE" and len(words) >= 3:
            name = self._name(statement, words)
            return lambda db: self._create(name)
        if head == "DROP DATABASE" and len(words) >= 3:
            name = self._name(statement, words)
            return lambda db: self._drop(name)
        if head == "SHOW DATABASES" and len(words) == 2:
            return lambda db: self._show_databases()
        if head == "SHOW MEASUREMENTS":
            on = re.fullmatch(rf"SHOW\s+MEASUREMENTS(?:\s+ON\s+({_IDENT}))?", statement, re.IGNORECASE)
            if on:
                target = _unquote(on.group(1)) if on.group(1) else None
                return lambda db: self._show_measurements(target or db)
        if words and words[0].upper() == "SELECT":
            return self._plan_select(statement)
        first = words[0].upper() if words else "EOF"
        if first in {k.strip() for k in _KEYWORDS.split(",")}:
            raise QueryError(f"{statement!r} is not supported by the local influxd stand-in (it answers CREATE "
                             "DATABASE, DROP DATABASE, SHOW DATABASES, SHOW MEASUREMENTS and SELECT ... FROM ...)")
        raise QueryError(f"found {words[0] if words else 'EOF'}, expected {_KEYWORDS} at line 1, char 1")

    @staticmethod
    def _name(statement: str, words: list[str]) -> str:
        match = re.match(rf"^\s*\w+\s+DATABASE\s+({_IDENT})(\s+WITH\s+.*)?\s*$", statement, re.IGNORECASE | re.DOTALL)
        if not match:
            raise QueryError(f"found {words[2]}, expected identifier at line 1, char {statement.find(words[2]) + 1}")
        return _unquote(match.group(1))

    def _create(self, name: str) -> dict[str, Any]:
        with self.lock:
            self.databases.setdefault(name, Database())
        return {}

    def _drop(self, name: str) -> dict[str, Any]:
        with self.lock:
            self.databases.pop(name, None)
        return {}

    def _show_databases(self) -> dict[str, Any]:
        with self.lock:
            names = list(self.databases)
        return {"series": [{"name": "databases", "columns": ["name"], "values": [[n] for n in names]}]}

    def _show_measurements(self, db: str | None) -> dict[str, Any]:
        if not db:
            return {"error": "database name required"}
        with self.lock:
            if db not in self.databases:
                return {"error": f"database not found: {db}"}
            names = sorted(m for m, rows in self.databases[db].measurements.items() if rows)
        if not names:
            return {}
        return {"series": [{"name": "measurements", "columns": ["name"], "values": [[n] for n in names]}]}

    # ------------------------------------------------------------------ SELECT

    def _plan_select(self, statement: str) -> Callable[[str], dict[str, Any]]:
        match = _SELECT.match(statement)
        if not match:
            raise QueryError(f"{statement!r} is not supported by the local influxd stand-in (it answers SELECT "
                             "*|field,... FROM measurement [WHERE k op v [AND ...]] [ORDER BY time [DESC]] [LIMIT n])")
        cols_text = match.group("cols").strip()
        columns = None if cols_text == "*" else [_unquote(c) for c in cols_text.split(",")]
        if columns is not None and not all(re.fullmatch(_IDENT, c.strip()) for c in cols_text.split(",")):
            raise QueryError(f"{cols_text!r}: the local influxd stand-in selects * or field and tag names only "
                             "(no functions or expressions)")
        parts = [_unquote(p) for p in re.findall(rf"{_IDENT}|(?<=\.)(?=\.)", match.group("src"))]
        source_db = parts[0] if len(parts) == 3 and parts[0] else None
        measurement = parts[-1]
        conditions = [self._condition(c) for c in re.split(r"\s+AND\s+", match.group("where") or "", flags=re.I)
                      if c.strip()]
        descending = (match.group("order") or "").upper() == "DESC"
        limit = int(match.group("limit")) if match.group("limit") else None

        def run(db: str) -> dict[str, Any]:
            return self._select(source_db or db, measurement, columns, conditions, descending, limit)
        return run

    @staticmethod
    def _condition(text: str) -> tuple[str, Callable[[Any, Any], bool], Any]:
        match = _CONDITION.match(text)
        if not match:
            raise QueryError(f"WHERE {text.strip()!r}: the local influxd stand-in compares a field, tag or time "
                             "with a 'string', a number, true/false or now() - <duration>, joined by AND")
        key, op, raw = _unquote(match.group(1)), match.group(2), match.group(3)
        value: Any
        if raw.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", raw[1:-1])
            if key == "time":
                value = parse_rfc3339(value)
        elif raw.lower().startswith("now()"):
            value = time.time_ns()
            delta = re.search(r"([-+])\s*(\d+)(ns|u|µ|ms|s|m|h|d|w)", raw)
            if delta:
                value += (-1 if delta.group(1) == "-" else 1) * int(delta.group(2)) * _DURATION[delta.group(3)]
        elif raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            unit = re.search(r"(ns|u|µ|ms|s|m|h|d|w)$", raw)
            value = int(raw[: unit.start()]) * _DURATION[unit.group(1)] if unit else float(raw)
        return key, _OPS[op], value

    def _select(self, db: str, measurement: str, columns: list[str] | None,
                conditions: list[tuple[str, Callable[[Any, Any], bool], Any]], descending: bool,
                limit: int | None) -> dict[str, Any]:
        if not db:
            return {"error": "database name required"}
        with self.lock:
            if db not in self.databases:
                return {"error": f"database not found: {db}"}
            rows = [(dict(tags), stamp, dict(fields))
                    for (tags, stamp), fields in self.databases[db].measurements.get(measurement, {}).items()]
        tag_keys = {k for tags, _, _ in rows for k in tags}
        field_keys = {k for _, _, fields in rows for k in fields}
        names = sorted(tag_keys | field_keys) if columns is None else [c for c in columns if c != "time"]
        if columns is not None and not any(n in field_keys for n in names) and rows:
            return {"error": "statement must have at least one field in select clause"}
        values = []
        for tags, stamp, fields in sorted(rows, key=lambda r: (r[1], sorted(r[0].items())), reverse=descending):
            record: dict[str, Any] = {**tags, **fields, "time": stamp}
            if not all(key in record and op(record[key], value) for key, op, value in conditions):
                continue
            if not any(n in fields for n in names):
                continue
            values.append([stamp, *(_json_value(record.get(n)) for n in names)])
        if limit is not None:
            values = values[:limit]
        if not values:
            return {}
        return {"series": [{"name": measurement, "columns": ["time", *names], "values": values}]}


def _json_value(value: Any) -> Any:
    """A field value as Go's JSON encoder writes it (integral floats without ``.0``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def format_times(result: dict[str, Any], epoch: str, units: dict[str, int]) -> None:
    """Replace the nanosecond times of ``result``'s series by RFC3339 text, or by integers in ``epoch`` units."""
    divisor = units.get(epoch, 1) if epoch else 0
    for series in result.get("series", []):
        if series.get("columns", [None])[0] != "time":
            continue
        for row in series["values"]:
            row[0] = row[0] // divisor if divisor else rfc3339_nano(row[0])
