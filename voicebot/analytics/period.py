"""The period and filters a report is asked for, checked once for the CLI and the API alike.

Dates are the contact centre's local dates (the bot's ``hours.timezone``, else UTC): a report
"from 2026-11-01 to 2026-11-30" covers those days whole, midnight to midnight local time, and
is queried as the UTC instants that bound them (the database stores UTC).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_DAYS = 400  # a longer range is almost always a typo in a year


class ReportError(ValueError):
    """A request for a report that cannot be answered as asked (bad dates, unknown queue).
    ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Period:
    """``start`` (inclusive) to ``end`` (exclusive), aware UTC, and the zone days are read in."""

    start: dt.datetime
    end: dt.datetime
    tz: dt.tzinfo

    @property
    def first_day(self) -> dt.date:
        return self.start.astimezone(self.tz).date()

    @property
    def last_day(self) -> dt.date:
        return (self.end.astimezone(self.tz) - dt.timedelta(microseconds=1)).date()

    def describe(self) -> str:
        return f"{self.first_day.isoformat()} to {self.last_day.isoformat()} ({self.tz})"


@dataclass(frozen=True)
class ReportFilter:
    period: Period
    queues: tuple[str, ...] = ()  # empty: every queue
    channels: tuple[str, ...] = ()  # empty: every channel
    extra: dict[str, str] = field(default_factory=dict)


def zone(name: str | None) -> dt.tzinfo:
    if not name:
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(f"'{name}' is not a known time zone (e.g. Europe/London)") from None


def parse_day(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ReportError(f"'{what}' must be a date like 2026-11-30, got '{value}'") from None


def parse_period(
    start: str | dt.date | None,
    end: str | dt.date | None,
    *,
    tz: dt.tzinfo = dt.UTC,
    today: dt.date | None = None,
    default_days: int = 7,
) -> Period:
    """From and to are local dates, both included. Missing: the last ``default_days`` days
    up to today; only one given: that single day's side is filled from the other."""
    today = today or dt.datetime.now(tz).date()
    first = parse_day(start, "from") if isinstance(start, str) else start
    last = parse_day(end, "to") if isinstance(end, str) else end
    if first is None and last is None:
        last = today
    if first is None:
        assert last is not None
        first = last - dt.timedelta(days=default_days - 1)
    if last is None:
        last = max(first, today)
    if first > last:
        raise ReportError(f"'from' ({first}) is after 'to' ({last})")
    if (last - first).days + 1 > MAX_DAYS:
        raise ReportError(f"a report covers at most {MAX_DAYS} days; ask for a shorter range")
    return Period(
        start=local_midnight(first, tz), end=local_midnight(last + dt.timedelta(days=1), tz), tz=tz
    )


def local_midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)


def check_names(asked: Iterable[str], known: Iterable[str], what: str) -> tuple[str, ...]:
    """Names asked for, each one known: an unknown one is an error that lists the known ones."""
    known_set = sorted(set(known))
    asked_list = tuple(dict.fromkeys(name.strip() for name in asked if name.strip()))
    unknown = [name for name in asked_list if name not in known_set]
    if unknown:
        listing = ", ".join(known_set) if known_set else "none yet"
        raise ReportError(
            f"no {what} named {', '.join(repr(n) for n in unknown)} (known: {listing})",
            status=404,
        )
    return asked_list
