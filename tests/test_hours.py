from __future__ import annotations

import datetime as dt

from voicebot.engine.context import is_open
from voicebot.flows.schema import Hours

LONDON = Hours(
    timezone="Europe/London",
    weekly={"mon-fri": "08:00-20:00", "sat": ["09:00-13:00", "22:00-02:00"]},
    holidays=[dt.date(2026, 12, 25)],
)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=dt.UTC)


def test_weekly_hours_in_the_bots_time_zone() -> None:
    assert is_open(LONDON, at(23, 8))  # Monday 08:00 London (UTC in winter)
    assert not is_open(LONDON, at(23, 7, 59))
    assert not is_open(LONDON, at(23, 20))
    assert is_open(LONDON, at(21, 12))  # Saturday
    assert not is_open(LONDON, at(22, 12))  # Sunday
    summer = dt.datetime(2026, 6, 1, 7, 30, tzinfo=dt.UTC)  # 08:30 BST on a Monday
    assert is_open(LONDON, summer)


def test_ranges_across_midnight_and_holidays() -> None:
    assert is_open(LONDON, at(21, 23))  # Saturday 23:00
    assert is_open(LONDON, at(22, 1, 59))  # into Sunday morning
    assert not is_open(LONDON, at(22, 2))
    assert not is_open(LONDON, dt.datetime(2026, 12, 25, 10, tzinfo=dt.UTC))
    assert is_open(None, at(22, 3))
