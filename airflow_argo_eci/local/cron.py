"""Cron schedules as robfig/cron (Argo's and Fluid's scheduler) reads them: five fields, names,
ranges, steps, the ``@hourly``-style macros and ``@every <duration>``; the next run after a time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = {name: i + 1 for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
#: (name, low, high, names) of the five fields
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS), ("day of week", 0, 6, _DAYS))
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_EVERY = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")
#: how far ahead :meth:`CronSchedule.next_after` looks before deciding a schedule never fires
_HORIZON = timedelta(days=366 * 5)


class CronError(ValueError):
    """A schedule that is not a cron expression; the message says which part."""


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule: the allowed values of each field, or a fixed interval (``@every``)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_restricted: bool
    weekday_restricted: bool
    every: timedelta | None = None

    def next_after(self, after: datetime) -> datetime:
        """The first time strictly after ``after`` (whole minutes for field schedules) when the
        schedule fires; :class:`CronError` when it never does (``0 0 30 2 *``)."""
        if self.every is not None:
            return after + self.every
        moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = after + _HORIZON
        while moment <= limit:
            if moment.month not in self.months:
                year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
                moment = moment.replace(year=year, month=month, day=1, hour=0, minute=0)
                continue
            if not self._day_matches(moment):
                moment = moment.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if moment.hour not in self.hours:
                moment = moment.replace(minute=0) + timedelta(hours=1)
                continue
            if moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
                continue
            return moment
        raise CronError("the schedule never fires")

    def _day_matches(self, moment: datetime) -> bool:
        weekday = (moment.weekday() + 1) % 7  # cron counts from Sunday
        in_month, in_week = moment.day in self.days, weekday in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return in_month or in_week  # cron's rule: either restricted field may match
        return in_month and in_week


def parse_cron(text: str) -> CronSchedule:
    """Parse ``text`` (five fields, a macro, or ``@every 1m30s``); :class:`CronError` names the bad part."""
    spec = " ".join(str(text).split())
    if spec.startswith("@every "):
        return _every(spec[len("@every "):])
    spec = _MACROS.get(spec, spec)
    parts = spec.split(" ")
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}: "
                        f"{text!r}")
    values = [_field(part, *spec_) for part, spec_ in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(v % 7 for v in values[4])
    return CronSchedule(values[0], values[1], values[2], values[3], weekdays,
                        day_restricted=not parts[2].startswith("*"), weekday_restricted=not parts[4].startswith("*"))


def _every(text: str) -> CronSchedule:
    match = _EVERY.match(text.strip())
    if not match or not any(match.groups()):
        raise CronError(f"@every needs a duration such as 30s, 5m or 1h30m, got {text!r}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    interval = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if interval < timedelta(seconds=1):
        raise CronError(f"@every needs a duration of at least 1s, got {text!r}")
    empty: frozenset[int] = frozenset()
    return CronSchedule(empty, empty, empty, empty, empty, False, False, every=interval)


def _field(part: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    out: set[int] = set()
    top = 7 if name == "day of week" else high  # 7 is Sunday too
    for item in part.split(","):
        base, _, step_text = item.partition("/")
        step = _number(step_text, name, names, 1, top) if step_text else 1
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, name, names, low, top), _number(last, name, names, low, top)
        else:
            start = _number(base, name, names, low, top)
            end = high if step_text else start
        if start > end:
            raise CronError(f"{name}: range {base!r} runs backwards")
        out.update(range(start, end + 1, step))
    return frozenset(out)


def _number(text: str, name: str, names: dict[str, int], low: int, high: int) -> int:
    value = names.get(text.lower())
    if value is None:
        if not text.isdigit():
            raise CronError(f"{name}: {text!r} is not a number{' or a name' if names else ''}")
        value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name}: {value} is outside {low}-{high}")
    return value
