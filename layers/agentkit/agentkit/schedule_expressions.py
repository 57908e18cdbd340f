"""EventBridge Scheduler schedule expressions: parsed and validated as Scheduler reads them,
and their fire times computed.

    rate(value unit)          value >= 1; unit minute|hour|day for 1, minutes|hours|days above
    cron(min hour dom month dow year)
                              six fields; exactly one of day-of-month / day-of-week is `?`;
                              `, - * /` everywhere, `L W` in day-of-month (`L`, `LW`, `15W`),
                              `L #` in day-of-week (`L`, `6L`, `3#2`, alone); JAN-DEC, SUN-SAT
                              (day-of-week 1 = SUN .. 7 = SAT); years 1970-2199
    at(yyyy-mm-ddThh:mm:ss)   one time, a real date and time

Times are evaluated in the schedule's IANA time zone (`ScheduleExpressionTimezone`, default
UTC). Daylight saving time as Scheduler handles it: a cron time that does not exist on the
day the clocks go forward is skipped; a time that occurs twice when they go back fires once
(the first); a rate is a plain duration counted from the first invocation.

Standard library only, Python 3.11 and 3.12: the API validates with it (agentkit), and the
offline stack's scheduler thread (localstack-plugin/opspawn_localstack/scheduler.py), which
runs in LocalStack's own venv and cannot import agentkit, loads this very file by its path.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "At",
    "Cron",
    "Expression",
    "Rate",
    "ScheduleExpressionError",
    "next_fire",
    "parse",
    "zone",
]

MIN_YEAR, MAX_YEAR = 1970, 2199
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
RateUnit = Literal["minute", "hour", "day"]
_UNITS: dict[RateUnit, int] = {"minute": 60, "hour": 3600, "day": 86400}


class ScheduleExpressionError(ValueError):
    """An expression (or time zone) EventBridge Scheduler would refuse; says why."""


@dataclass(frozen=True)
class Rate:
    value: int
    unit: RateUnit

    @property
    def period(self) -> timedelta:
        return timedelta(seconds=self.value * _UNITS[self.unit])


@dataclass(frozen=True)
class At:
    """One time, wall-clock in the schedule's time zone (naive)."""

    when: datetime


DayOfMonthKind = Literal["any", "set", "last", "last_weekday", "nearest_weekday"]
DayOfWeekKind = Literal["any", "set", "last_of_month", "nth"]


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int]
    #: "set": days in `dom_days`; "last": L; "last_weekday": LW; "nearest_weekday": nW (n)
    dom_kind: DayOfMonthKind
    dom_days: frozenset[int]
    #: "set": weekdays (1=SUN..7=SAT) in `dow_days`; "last_of_month": nL; "nth": n#k
    dow_kind: DayOfWeekKind
    dow_days: frozenset[int]
    dom_n: int = 0
    dow_nth: int = 0

    def days(self, year: int, month: int) -> list[int]:
        """The days of that month the expression's day fields select, in order."""
        first_weekday, length = calendar.monthrange(year, month)  # Monday = 0

        def weekday(day: int) -> int:  # 1 = SUN .. 7 = SAT, as cron counts
            return (first_weekday + day - 1 + 1) % 7 + 1

        if self.dom_kind == "set":
            return [d for d in sorted(self.dom_days) if d <= length]
        if self.dom_kind == "last":
            return [length]
        if self.dom_kind == "last_weekday":
            day = length
            while weekday(day) in (1, 7):
                day -= 1
            return [day]
        if self.dom_kind == "nearest_weekday":
            day = self.dom_n
            if day > length:
                return []
            if weekday(day) == 7:  # Saturday: the Friday before, or Monday if that leaves the month
                day = day - 1 if day > 1 else day + 2
            elif weekday(day) == 1:  # Sunday: the Monday after, or Friday if that leaves it
                day = day + 1 if day < length else day - 2
            return [day]
        # day-of-month is "?": day-of-week decides
        matching = [d for d in range(1, length + 1) if weekday(d) in self.dow_days]
        if self.dow_kind == "set":
            return matching
        if self.dow_kind == "last_of_month":
            return matching[-1:]
        return matching[self.dow_nth - 1 : self.dow_nth]  # "nth"


Expression = Rate | Cron | At

_RATE = re.compile(r"rate\((\d+) ([a-z]+)\)")
_AT = re.compile(r"at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\)")
_CRON = re.compile(r"cron\((.*)\)")


def parse(expression: str) -> Expression:
    """The expression, or ScheduleExpressionError saying what Scheduler would refuse."""
    if not isinstance(expression, str) or not expression:
        raise ScheduleExpressionError("must be rate(...), cron(...) or at(...)")
    if expression.startswith("rate("):
        return _parse_rate(expression)
    if expression.startswith("cron("):
        return _parse_cron(expression)
    if expression.startswith("at("):
        return _parse_at(expression)
    raise ScheduleExpressionError(
        "must be rate(value unit), cron(minutes hours day-of-month month day-of-week year) "
        "or at(yyyy-mm-ddThh:mm:ss)"
    )


def _parse_rate(expression: str) -> Rate:
    match = _RATE.fullmatch(expression)
    if not match:
        raise ScheduleExpressionError(
            "a rate is rate(value unit): a whole number and minute(s), hour(s) or day(s)"
        )
    value, unit = int(match.group(1)), match.group(2)
    singular = next((u for u in _UNITS if unit in (u, u + "s")), None)
    if singular is None:
        raise ScheduleExpressionError(
            f"unknown rate unit '{unit}': use minute(s), hour(s) or day(s)"
        )
    if value < 1:
        raise ScheduleExpressionError("a rate's value must be a positive number")
    if value == 1 and unit != singular:
        raise ScheduleExpressionError(f"a rate of 1 takes the singular unit: rate(1 {singular})")
    if value > 1 and unit == singular:
        raise ScheduleExpressionError(
            f"a rate above 1 takes the plural unit: rate({value} {singular}s)"
        )
    try:
        timedelta(seconds=value * _UNITS[singular])
    except OverflowError as exc:
        raise ScheduleExpressionError(f"the rate {value} {unit} is too long") from exc
    return Rate(value, singular)


def _parse_at(expression: str) -> At:
    match = _AT.fullmatch(expression)
    if not match:
        raise ScheduleExpressionError("a one-time schedule is at(yyyy-mm-ddThh:mm:ss)")
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        when = datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise ScheduleExpressionError(f"at(...) is not a real date and time: {exc}") from exc
    return At(when)


def _parse_cron(expression: str) -> Cron:
    match = _CRON.fullmatch(expression)
    fields = match.group(1).split(" ") if match else []
    fields = [f for f in fields if f]
    if len(fields) != 6:
        raise ScheduleExpressionError(
            "a cron expression has six fields: "
            "cron(minutes hours day-of-month month day-of-week year)"
        )
    minute, hour, dom, month, dow, year = fields
    minutes = _field(minute, "minutes", 0, 59)
    hours = _field(hour, "hours", 0, 23)
    months = _field(month, "month", 1, 12, _MONTHS)
    years = _field(year, "year", MIN_YEAR, MAX_YEAR)
    if (dom == "?") == (dow == "?"):
        raise ScheduleExpressionError(
            "exactly one of day-of-month and day-of-week must be '?' "
            "(e.g. cron(0 9 * * ? *) or cron(0 9 ? * MON-FRI *))"
        )
    if dom == "?":
        dow_kind, dow_days, nth = _day_of_week(dow)
        return Cron(minutes=minutes, hours=hours, months=months, years=years,
                    dom_kind="any", dom_days=frozenset(),
                    dow_kind=dow_kind, dow_days=dow_days, dow_nth=nth)
    dom_kind, dom_days, n = _day_of_month(dom)
    return Cron(minutes=minutes, hours=hours, months=months, years=years,
                dom_kind=dom_kind, dom_days=dom_days, dom_n=n,
                dow_kind="any", dow_days=frozenset())


def _day_of_month(text: str) -> tuple[DayOfMonthKind, frozenset[int], int]:
    if text == "L":
        return "last", frozenset(), 0
    if text == "LW":
        return "last_weekday", frozenset(), 0
    if match := re.fullmatch(r"(\d{1,2})W", text):
        day = int(match.group(1))
        if not 1 <= day <= 31:
            raise ScheduleExpressionError(f"day-of-month: {text}: the day must be 1-31")
        return "nearest_weekday", frozenset(), day
    if "L" in text or "W" in text:
        raise ScheduleExpressionError(
            f"day-of-month: '{text}': L and W stand alone (L, LW, or a day and W like 15W)"
        )
    return "set", _field(text, "day-of-month", 1, 31), 0


def _day_of_week(text: str) -> tuple[DayOfWeekKind, frozenset[int], int]:
    if text == "L":  # the last day of the week: Saturday
        return "set", frozenset({7}), 0
    if match := re.fullmatch(r"([A-Za-z]{3}|\d)L", text):
        return "last_of_month", frozenset({_value(match.group(1), "day-of-week", 1, 7, _DAYS)}), 0
    if match := re.fullmatch(r"([A-Za-z]{3}|\d)#(\d)", text):
        day = _value(match.group(1), "day-of-week", 1, 7, _DAYS)
        nth = int(match.group(2))
        if not 1 <= nth <= 5:
            raise ScheduleExpressionError(f"day-of-week: '{text}': the week after # is 1-5")
        return "nth", frozenset({day}), nth
    if "#" in text or "L" in text:
        raise ScheduleExpressionError(
            f"day-of-week: '{text}': L and # stand alone (L, 6L or 3#2), not in lists or ranges"
        )
    return "set", _field(text, "day-of-week", 1, 7, _DAYS), 0


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...] = ()) -> int:
    upper = text.upper()
    if names and upper in names:
        return names.index(upper) + low
    if not text.isdigit():
        allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
        raise ScheduleExpressionError(f"{name}: '{text}' is not a value ({allowed})")
    value = int(text)
    if not low <= value <= high:
        raise ScheduleExpressionError(f"{name}: {value} is outside {low}-{high}")
    return value


def _field(
    text: str, name: str, low: int, high: int, names: tuple[str, ...] = ()
) -> frozenset[int]:
    """`, - * /` syntax: a list of `*`, values, ranges, each with an optional /step."""
    selected: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ScheduleExpressionError(f"{name}: '{text}' has an empty list entry")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or not 1 <= int(step_text) <= high - low + 1:
                raise ScheduleExpressionError(
                    f"{name}: '{item}': the step after / must be 1-{high - low + 1}"
                )
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, name, low, high, names), _value(last, name, low, high, names)
            if start > end:
                raise ScheduleExpressionError(f"{name}: the range '{base}' runs backwards")
        else:
            start = _value(base, name, low, high, names)
            end = high if slash else start
        selected.update(range(start, end + 1, step))
    return frozenset(selected)


def zone(name: str | None) -> tzinfo:
    """The IANA time zone `name` (None or "UTC": UTC), or ScheduleExpressionError."""
    if name is None or name == "UTC":
        return UTC
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*", name) or len(name) > 50:
        raise ScheduleExpressionError(f"'{name[:60]}' is not an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ScheduleExpressionError(f"unknown time zone '{name}'") from exc


def _utc(local: datetime, tz: tzinfo) -> datetime | None:
    """A wall-clock time in `tz` as UTC; None if the clocks skip it (first of a repeated)."""
    aware = local.replace(tzinfo=tz, fold=0)
    as_utc = aware.astimezone(UTC)
    if as_utc.astimezone(tz).replace(tzinfo=None) != local:
        return None
    return as_utc


def next_fire(
    expression: Expression,
    after: datetime,
    *,
    timezone: str | None = "UTC",
    start: datetime | None = None,
    end: datetime | None = None,
) -> datetime | None:
    """The first fire time strictly after `after` (aware), in UTC, or None if none is left.

    `start`/`end` (aware; StartDate/EndDate) bound the fire times (`start <= t <= end`).
    A rate fires at `start`, then every period; with no `start` it counts from `after`.
    """
    if after.tzinfo is None:
        raise ValueError("`after` must be timezone-aware")
    tz = zone(timezone)
    low = after if start is None or start <= after else start - timedelta(microseconds=1)
    fire: datetime | None
    if isinstance(expression, Rate):
        anchor, period = (start or after), expression.period
        fire = anchor if low < anchor else anchor + period * ((low - anchor) // period + 1)
    elif isinstance(expression, At):
        fire = expression.when.replace(tzinfo=tz).astimezone(UTC)
        if fire <= low:
            fire = None
    else:
        fire = _next_cron(expression, low, tz)
    if fire is not None and end is not None and fire > end:
        return None
    return fire


def _next_cron(cron: Cron, after: datetime, tz: tzinfo) -> datetime | None:
    first = after.astimezone(tz).date()
    hours, minutes = sorted(cron.hours), sorted(cron.minutes)
    for year in sorted(y for y in cron.years if y >= first.year):
        for month in sorted(cron.months):
            if (year, month) < (first.year, first.month):
                continue
            for day in cron.days(year, month):
                if date(year, month, day) < first:
                    continue
                for hour in hours:
                    for minute in minutes:
                        fire = _utc(datetime(year, month, day, hour, minute), tz)
                        if fire is not None and fire > after:
                            return fire
    return None
