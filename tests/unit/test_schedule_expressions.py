"""EventBridge Scheduler expressions: what Scheduler accepts and refuses, and when each fires.

Accepted examples are AWS's documented ones (EventBridge cron reference, Scheduler schedule
types) plus expressions users report AWS accepted; fire times are checked against calendars
(weekdays of real dates, leap years, New York's 2026 daylight-saving changes).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from agentkit import schedule_expressions
from agentkit.schedule_expressions import (
    At,
    Cron,
    Rate,
    ScheduleExpressionError,
    next_fire,
    parse,
    zone,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
        ) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    "expression",
    [
        # EventBridge cron expressions reference: its examples
        "cron(0 10 * * ? *)",
        "cron(15 12 * * ? *)",
        "cron(0 18 ? * MON-FRI *)",
        "cron(0 8 1 * ? *)",
        "cron(0/15 * * * ? *)",
        "cron(0/10 * ? * MON-FRI *)",
        "cron(0/5 8-17 ? * MON-FRI *)",
        "cron(0 9 ? * 2#1 *)",
        # Scheduler user guide
        "cron(0 9 ? * MON-FRI *)",
        "cron(0 5 L * ? *)",
        "cron(0 9 15W * ? *)",
        "cron(0 9 LW * ? *)",
        "cron(0 9 ? * 6L *)",
        "cron(0 9 ? * L *)",
        "cron(0 0 1 JAN,APR,JUL,OCT ? 2026-2030)",
        "cron(*/5 * * * ? *)",
        # reported accepted by AWS (localstack/localstack#13572)
        "cron(0-15/1 8-8 ? * 2,3,4,5,6,7 *)",
        "cron(30-30 13-13 ? * 2,4,6 *)",
        "cron(1-31/30 1-1 ? * 1,7 *)",
        "rate(1 minute)",
        "rate(5 minutes)",
        "rate(1 hour)",
        "rate(12 hours)",
        "rate(1 day)",
        "rate(7 days)",
        "at(2022-11-20T13:00:00)",
        "at(2028-02-29T23:59:59)",
    ],
)
def test_accepts_what_scheduler_accepts(expression: str) -> None:
    assert isinstance(parse(expression), Rate | Cron | At)


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("cron(0 9 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 9 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(aaaaaaaaa)", "six fields"),
        ("cron(0 9 * * ?)", "six fields"),
        ("cron(0 9 * * ? * *)", "six fields"),
        ("cron(60 * * * ? *)", "minutes: 60 is outside 0-59"),
        ("cron(0 24 * * ? *)", "hours: 24 is outside 0-23"),
        ("cron(0 0 32 * ? *)", "day-of-month: 32 is outside 1-31"),
        ("cron(0 0 ? 13 MON *)", "month: 13 is outside 1-12"),
        ("cron(0 0 ? * 8 *)", "day-of-week: 8 is outside 1-7"),
        ("cron(0 0 ? * FUN *)", "day-of-week: 'FUN' is not a value"),
        ("cron(0 0 1 * ? 1969)", "year: 1969 is outside 1970-2199"),
        ("cron(0 0 ? * 3#1,6#3 *)", "L and # stand alone"),
        ("cron(0 0 ? * 3#6 *)", "the week after # is 1-5"),
        ("cron(0 0 5-1 * ? *)", "runs backwards"),
        ("cron(0/0 * * * ? *)", "the step after / must be"),
        ("cron(0 0 1,,2 * ? *)", "empty list entry"),
        ("cron(0 0 L-2 * ? *)", "L and W stand alone"),
        ("rate(1 minutes)", "a rate of 1 takes the singular unit: rate(1 minute)"),
        ("rate(5 minute)", "a rate above 1 takes the plural unit: rate(5 minutes)"),
        ("rate(0 minutes)", "positive"),
        ("rate(5 seconds)", "unknown rate unit 'seconds'"),
        ("rate(-5 minutes)", "a rate is rate(value unit)"),
        ("rate(5minutes)", "a rate is rate(value unit)"),
        ("at(2026-13-45T99:99:99)", "not a real date and time"),
        ("at(2026-02-30T00:00:00)", "not a real date and time"),
        ("at(2026-01-01 00:00:00)", "at(yyyy-mm-ddThh:mm:ss)"),
        ("every day", "must be rate(value unit), cron("),
        ("", "must be rate(...)"),
    ],
)
def test_refuses_what_scheduler_refuses_saying_why(expression: str, why: str) -> None:
    with pytest.raises(ScheduleExpressionError) as raised:
        parse(expression)
    assert why in str(raised.value)


def test_time_zones() -> None:
    assert zone("UTC") is UTC and zone(None) is UTC
    paris = zone("Europe/Paris")
    assert datetime(2026, 7, 1, 9, tzinfo=paris).utcoffset() == timedelta(hours=2)
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", "Europe/", ""):
        with pytest.raises(ScheduleExpressionError):
            zone(bad)


def test_a_rate_fires_at_its_start_then_every_period() -> None:
    every5 = parse("rate(5 minutes)")
    start = utc(2026, 3, 1, 10, 0, 7)
    assert next_fire(every5, start - timedelta(seconds=1), start=start) == start
    assert next_fire(every5, start, start=start) == start + timedelta(minutes=5)
    later = start + timedelta(minutes=12)
    assert next_fire(every5, later, start=start) == start + timedelta(minutes=15)
    # a day is 24 hours, whatever the clocks do
    daily = parse("rate(1 day)")
    assert next_fire(daily, utc(2026, 3, 8), start=utc(2026, 3, 7), timezone="America/New_York"
                     ) == utc(2026, 3, 9)


@pytest.mark.parametrize(
    ("expression", "after", "fires"),
    [
        ("cron(0 10 * * ? *)", utc(2026, 3, 1, 10), utc(2026, 3, 2, 10)),
        ("cron(0 10 * * ? *)", utc(2026, 3, 1, 9, 59, 59), utc(2026, 3, 1, 10)),
        ("cron(0/15 * * * ? *)", utc(2026, 3, 1, 10, 1), utc(2026, 3, 1, 10, 15)),
        ("cron(0/15 * * * ? *)", utc(2026, 3, 1, 10, 45), utc(2026, 3, 1, 11)),
        # Friday evening 18:00 -> Monday
        ("cron(0 18 ? * MON-FRI *)", utc(2026, 10, 30, 18), utc(2026, 11, 2, 18)),
        # the first Monday: June 1st 2026 is one
        ("cron(0 9 ? * 2#1 *)", utc(2026, 5, 4, 10), utc(2026, 6, 1, 9)),
        # the last day of February in a leap year
        ("cron(0 5 L * ? *)", utc(2028, 2, 1), utc(2028, 2, 29, 5)),
        # the last weekday of May 2026 (the 31st is a Sunday)
        ("cron(0 9 LW * ? *)", utc(2026, 5, 1), utc(2026, 5, 29, 9)),
        # the weekday nearest the 15th (Saturday Aug 15 2026 -> Friday 14th)
        ("cron(0 9 15W * ? *)", utc(2026, 8, 1), utc(2026, 8, 14, 9)),
        # ... nearest the 1st (Saturday Aug 1 2026) stays in the month: Monday 3rd
        ("cron(0 9 1W * ? *)", utc(2026, 7, 31), utc(2026, 8, 3, 9)),
        # the last Friday of October 2026 is the 30th
        ("cron(0 9 ? * 6L *)", utc(2026, 10, 1), utc(2026, 10, 30, 9)),
        # L in day-of-week: Saturday
        ("cron(0 9 ? * L *)", utc(2026, 10, 26), utc(2026, 10, 31, 9)),
        ("cron(0 0 1 JAN,JUL ? *)", utc(2026, 2, 1), utc(2026, 7, 1)),
        # a year list that has run out, a date that never comes
        ("cron(0 0 1 1 ? 2030)", utc(2030, 1, 1), None),
        ("cron(0 0 30 2 ? *)", utc(2026, 1, 1), None),
        ("at(2026-07-01T09:00:00)", utc(2026, 7, 1, 8, 59, 59), utc(2026, 7, 1, 9)),
        ("at(2026-07-01T09:00:00)", utc(2026, 7, 1, 9), None),
    ],
)
def test_fire_times(expression: str, after: datetime, fires: datetime | None) -> None:
    assert next_fire(parse(expression), after) == fires


def test_time_zone_and_daylight_saving_time() -> None:
    ny = "America/New_York"
    # at(...) is wall-clock time in the schedule's zone
    assert next_fire(parse("at(2026-07-01T09:00:00)"), utc(2026, 6, 1), timezone="Europe/Paris"
                     ) == utc(2026, 7, 1, 7)
    assert next_fire(parse("cron(0 9 * * ? *)"), utc(2026, 1, 5), timezone=ny
                     ) == utc(2026, 1, 5, 14)
    assert next_fire(parse("cron(0 9 * * ? *)"), utc(2026, 7, 5), timezone=ny
                     ) == utc(2026, 7, 5, 13)
    # 2026-03-08 02:30 does not exist in New York: skipped, the next is the 9th (EDT)
    at_230 = parse("cron(30 2 * * ? *)")
    assert next_fire(at_230, utc(2026, 3, 8, 5), timezone=ny) == utc(2026, 3, 9, 6, 30)
    # 2026-11-01 01:30 happens twice in New York: it fires once, the first time (EDT)
    at_130 = parse("cron(30 1 * * ? *)")
    first = next_fire(at_130, utc(2026, 11, 1, 4), timezone=ny)
    assert first == utc(2026, 11, 1, 5, 30)
    assert next_fire(at_130, first, timezone=ny) == utc(2026, 11, 2, 6, 30)


def test_start_and_end_dates_bound_the_fire_times() -> None:
    hourly = parse("cron(0 * * * ? *)")
    start, end = utc(2026, 3, 1, 12, 30), utc(2026, 3, 1, 14)
    assert next_fire(hourly, utc(2026, 3, 1), start=start, end=end) == utc(2026, 3, 1, 13)
    assert next_fire(hourly, utc(2026, 3, 1, 13), start=start, end=end) == utc(2026, 3, 1, 14)
    assert next_fire(hourly, utc(2026, 3, 1, 14), start=start, end=end) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire(hourly, datetime(2026, 3, 1))


def test_the_module_is_stdlib_only_and_loads_by_its_path() -> None:
    """The offline scheduler thread (LocalStack's venv) loads this file by path, as here:
    no site-packages (-S), no agentkit package."""
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('exp', {schedule_expressions.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['exp'] = module\n"
        "spec.loader.exec_module(module)\n"
        "print(module.parse('cron(0 9 ? * MON-FRI *)').hours)\n"
    )
    result = subprocess.run([sys.executable, "-I", "-S", "-c", script],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "frozenset({9})"
