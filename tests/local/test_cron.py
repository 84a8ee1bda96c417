"""Cron schedules as robfig/cron reads them: fields, names, ranges, steps, macros, @every, the
day-of-month / day-of-week rule, and errors naming the bad part."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from airflow_argo_eci.local.cron import CronError, parse_cron

SUNDAY = datetime(2026, 11, 29, 19, 7, 30)


@pytest.mark.parametrize("spec,after,expected", [
    ("* * * * *", SUNDAY, datetime(2026, 11, 29, 19, 8)),
    ("*/15 * * * *", SUNDAY, datetime(2026, 11, 29, 19, 15)),
    ("0 2 * * mon-fri", SUNDAY, datetime(2026, 11, 30, 2, 0)),
    ("30 1 1,15 * *", SUNDAY, datetime(2026, 12, 1, 1, 30)),
    ("0 0 1 jan *", SUNDAY, datetime(2027, 1, 1)),
    ("0 0 * * 7", SUNDAY, datetime(2026, 12, 6)),  # 7 is Sunday too
    ("0 0 13 * fri", SUNDAY, datetime(2026, 12, 4)),  # either day field matches when both are set
    ("5-10/5 3 * * *", SUNDAY, datetime(2026, 11, 30, 3, 5)),
    ("@hourly", SUNDAY, datetime(2026, 11, 29, 20, 0)),
    ("@daily", SUNDAY, datetime(2026, 11, 30)),
    ("@weekly", SUNDAY, datetime(2026, 12, 6)),
    ("@monthly", SUNDAY, datetime(2026, 12, 1)),
    ("@yearly", SUNDAY, datetime(2027, 1, 1)),
    ("0 0 29 2 *", SUNDAY, datetime(2028, 2, 29)),
])
def test_next_run(spec: str, after: datetime, expected: datetime) -> None:
    assert parse_cron(spec).next_after(after) == expected


def test_every() -> None:
    assert parse_cron("@every 1m30s").next_after(SUNDAY) == SUNDAY + timedelta(seconds=90)
    assert parse_cron("@every 2h").next_after(SUNDAY) == SUNDAY + timedelta(hours=2)


@pytest.mark.parametrize("spec,message", [
    ("* * * *", "expected exactly 5 fields"),
    ("61 * * * *", "minute: 61 is outside 0-59"),
    ("* * * foo *", "month: 'foo' is not a number or a name"),
    ("10-5 * * * *", "minute: range '10-5' runs backwards"),
    ("@every soon", "@every needs a duration"),
    ("@every 0s", "at least 1s"),
])
def test_errors_name_the_part(spec: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse_cron(spec)


def test_a_schedule_that_never_fires() -> None:
    with pytest.raises(CronError, match="never fires"):
        parse_cron("0 0 30 2 *").next_after(SUNDAY)
