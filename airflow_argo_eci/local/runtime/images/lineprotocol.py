"""InfluxDB 1.x line protocol for the ``influxd`` stand-in: parse points, format timestamps.

``measurement[,tag=value...] field=value[,field=value...] [timestamp]``, one point a line (blank
lines and ``#`` comments skipped), with the protocol's backslash escapes. A bad line gives
InfluxDB's message, ``unable to parse '<line>': <reason>``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

FieldValue = float | int | str | bool

#: nanoseconds per unit of the ``precision`` / ``epoch`` parameters
PRECISIONS = {"": 1, "n": 1, "ns": 1, "u": 1_000, "µ": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
              "m": 60_000_000_000, "h": 3_600_000_000_000}
_TRUE = {"t", "T", "true", "True", "TRUE"}
_FALSE = {"f", "F", "false", "False", "FALSE"}


class LineError(ValueError):
    """A line that is not valid line protocol; the message is InfluxDB's reason."""


@dataclass
class Point:
    """One parsed point."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time: int  # nanoseconds since the epoch


def _scan(text: str, pos: int, stops: str) -> tuple[str, int]:
    """Unescaped text from ``pos`` up to the first unescaped character of ``stops``."""
    out: list[str] = []
    while pos < len(text) and text[pos] not in stops:
        if text[pos] == "\\" and pos + 1 < len(text) and text[pos + 1] in ",= \\\"":
            out.append(text[pos + 1])
            pos += 2
            continue
        out.append(text[pos])
        pos += 1
    return "".join(out), pos


def _field_value(raw: str) -> FieldValue:
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    if raw.endswith(("i", "u")):
        try:
            return int(raw[:-1])
        except ValueError:
            raise LineError("invalid number") from None
    if raw[:1] in ("t", "T", "f", "F"):
        raise LineError("invalid boolean")
    try:
        value = float(raw)
    except ValueError:
        raise LineError("invalid number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise LineError("invalid number")
    return value


def _string_value(text: str, pos: int) -> tuple[str, int]:
    """A double-quoted string field value starting at ``text[pos] == '"'``."""
    out: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text) and text[pos + 1] in '"\\':
            out.append(text[pos + 1])
            pos += 2
            continue
        if char == '"':
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    raise LineError("unbalanced quotes")


def parse_point(line: str, now_ns: int, unit: int) -> Point:
    """One line of line protocol (``unit``: nanoseconds per timestamp unit)."""
    measurement, pos = _scan(line, 0, ", ")
    if not measurement:
        raise LineError("missing measurement")
    tags: dict[str, str] = {}
    while pos < len(line) and line[pos] == ",":
        key, pos = _scan(line, pos + 1, ",= ")
        if pos >= len(line) or line[pos] != "=":
            raise LineError("missing tag value" if key else "missing tag key")
        if not key:
            raise LineError("missing tag key")
        tag_value, pos = _scan(line, pos + 1, ", ")
        if not tag_value:
            raise LineError("missing tag value")
        if key in tags:
            raise LineError("duplicate tags")
        tags[key] = tag_value
    while pos < len(line) and line[pos] == " ":
        pos += 1
    if pos >= len(line):
        raise LineError("missing fields")
    fields: dict[str, FieldValue] = {}
    while True:
        key, pos = _scan(line, pos, ",= ")
        if pos >= len(line) or line[pos] != "=":
            raise LineError("missing field key" if not key else "invalid field format")
        if not key:
            raise LineError("missing field key")
        pos += 1
        if pos < len(line) and line[pos] == '"':
            value: FieldValue
            value, pos = _string_value(line, pos)
        else:
            start = pos
            while pos < len(line) and line[pos] not in ", ":
                pos += 1
            if pos == start:
                raise LineError("missing field value")
            value = _field_value(line[start:pos])
        fields[key] = value
        if pos < len(line) and line[pos] == ",":
            pos += 1
            continue
        break
    rest = line[pos:].strip()
    if not rest:
        return Point(measurement, tags, fields, now_ns)
    try:
        stamp = int(rest)
    except ValueError:
        raise LineError("bad timestamp") from None
    return Point(measurement, tags, fields, stamp * unit)


def parse_lines(body: str, now_ns: int, precision: str = "") -> tuple[list[Point], list[str]]:
    """The points of ``body`` and one ``unable to parse`` message per bad line."""
    unit = PRECISIONS.get(precision, 1)
    points: list[Point] = []
    failed: list[str] = []
    for raw in body.split("\n"):
        line = raw.rstrip("\r").lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        try:
            points.append(parse_point(line, now_ns, unit))
        except LineError as exc:
            failed.append(f"unable to parse '{line}': {exc}")
    return points, failed


def rfc3339_nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC timestamp in nanoseconds (fraction without trailing zeros)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(seconds=seconds)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def parse_rfc3339(text: str) -> int:
    """Nanoseconds of an RFC3339 timestamp (``2026-01-02T03:04:05.5Z``, or a date alone)."""
    main, _, frac = text.rstrip("Zz").partition(".")
    stamp = _dt.datetime.fromisoformat(main)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.timezone.utc)
    whole = int((stamp - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)).total_seconds())
    digits = "".join(c for c in frac if c.isdigit())[:9]
    return whole * 1_000_000_000 + (int(digits.ljust(9, "0")) if digits else 0)
