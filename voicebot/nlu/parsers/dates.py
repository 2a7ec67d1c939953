"""Dates as callers say them: "the third of march", "fourth of july nineteen eighty two",
"next monday", "3/4/1990", "tomorrow".

Relative dates are resolved against `now`, which the engine passes in the bot's time zone.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from dateutil.relativedelta import relativedelta

from .base import ErrorCode, ParseResult, fail, normalise, success, tokenize
from .lang import Locale, Words
from .numbers import read_whole
from .readers import read_below_hundred, read_ordinal

__all__ = ["full_year", "parse_date", "parse_keypad_date"]

_ISO_RE = re.compile(r"(?<![0-9])([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})(?![0-9])")
_NUMERIC_RE = re.compile(
    r"(?<![0-9.])([0-9]{1,2})[/.-]([0-9]{1,2})(?:[/.-]([0-9]{4}|[0-9]{2}))?(?![/.-]?[0-9])"
)
_KEYPAD_DATE_RE = re.compile(r"[0-9]{8}")
# Two-digit years up to this many years ahead are this century ("26" in 2025 is 2026); the rest
# are last century, which suits dates of birth ("82" is 1982).
_TWO_DIGIT_YEAR_AHEAD = 10

DateOrError = date | ErrorCode


def full_year(year: int, today: date) -> int | None:
    """A four-digit year from what was said: 1990 stays, 82 becomes 1982, 5 becomes 2005."""
    if 1000 <= year <= 9999:
        return year
    if not 0 <= year < 100:
        return None
    century = today.year // 100 * 100
    candidate = century + year
    return candidate if candidate <= today.year + _TWO_DIGIT_YEAR_AHEAD else candidate - 100


def _make(year: int, month: int, day: int) -> DateOrError:
    try:
        return date(year, month, day)
    except ValueError:
        return ErrorCode.INVALID_DATE


def _numeric(text: str, locale: Locale, today: date) -> DateOrError | None:
    """Dates written with digits: ISO "1990-04-03" and "3/4/1990" in the region's order."""
    iso = _ISO_RE.search(text)
    if iso:
        return _make(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    found = _NUMERIC_RE.search(text)
    if not found:
        return None
    first, second = int(found.group(1)), int(found.group(2))
    year = full_year(int(found.group(3)), today) if found.group(3) else today.year
    if year is None:
        return ErrorCode.INVALID_DATE
    day, month = (first, second) if locale.day_first else (second, first)
    made = _make(year, month, day)
    if isinstance(made, ErrorCode):
        # "25/12/1990" in en-US can only be day first; accept the one reading that works.
        swapped = _make(year, day, month)
        return swapped if isinstance(swapped, date) else made
    return made


def _is_yearish(tok: str, words: Words) -> bool:
    return (
        tok.isdigit()
        or tok in words.units
        or tok in words.teens
        or tok in words.tens
        or tok in words.hundred
        or words.scales.get(tok) == 1000
        or tok in words.digit_joiners
    )


def _year_at(
    toks: list[str], i: int, words: Words, today: date, *, whole_span: bool = False
) -> tuple[int, int] | None:
    """Read a year starting at `i`: "1990", "nineteen ninety", "two thousand and five", "82".

    With `whole_span`, every number word from `i` on must belong to the year.
    """
    end = i
    while end < len(toks) and _is_yearish(toks[end], words):
        end += 1
    for stop in range(end, end - 1 if whole_span else i, -1):
        value = read_whole(toks[i:stop], words)
        if not isinstance(value, int):
            continue
        # A lone small number after a date is more likely a time ("march 3rd 2 pm").
        two_digit_token = stop == i + 1 and len(toks[i]) == 2 and toks[i].isdigit()
        if value < 10 and not two_digit_token:
            continue
        year = full_year(value, today)
        if year is not None:
            return year, stop
    return None


def _day(toks: list[str], i: int, words: Words, ordinal: bool) -> tuple[int, int] | None:
    read = read_ordinal(toks, i, words) if ordinal else read_below_hundred(toks, i, words)
    if read is None or not 1 <= read[0] <= 31:
        return None
    return read


def _day_before(toks: list[str], month_at: int, words: Words, ordinal: bool) -> int | None:
    for start in (month_at - 2, month_at - 1):
        if start < 0:
            continue
        read = _day(toks, start, words, ordinal)
        if read is not None and read[1] == month_at:
            return read[0]
    return None


def _around_month(toks: list[str], at: int, words: Words, today: date) -> DateOrError | None:
    month = words.months[toks[at]]
    # An ordinal before the month wins over a number after it: in "fourth of july nineteen
    # eighty two" the "nineteen" is the year, not the day.
    day = _day_before(toks, at, words, ordinal=True)
    year_at = at + 1
    if day is None:
        after = _day(toks, at + 1, words, ordinal=True)
        if after is None:
            day = _day_before(toks, at, words, ordinal=False)
            if day is None:
                year = _year_at(toks, at + 1, words, today, whole_span=True)
                if year is not None and year[0] >= 1000:
                    # "march twenty nineteen" is a month and a year, with no day.
                    return ErrorCode.INCOMPLETE_DATE
                after = _day(toks, at + 1, words, ordinal=False)
        if after is not None:
            day, year_at = after
    if day is None:
        year = _year_at(toks, at + 1, words, today)
        return ErrorCode.INCOMPLETE_DATE if year is not None else None
    year = _year_at(toks, year_at, words, today)
    return _make(year[0] if year else today.year, month, day)


def _weekday(toks: list[str], words: Words, today: date) -> date | None:
    for i, tok in enumerate(toks):
        weekday = words.weekdays.get(tok)
        if weekday is None:
            continue
        prev = toks[i - 1] if i else ""
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        after = toks[i + 2] if i + 2 < len(toks) else ""
        if (nxt in words.next_words and after in words.week) or (
            prev in words.week and i >= 2 and toks[i - 2] in words.next_words
        ):
            # "monday next week" / "next week monday": that day in the following calendar week.
            monday = today - timedelta(days=today.weekday()) + timedelta(days=7)
            return monday + timedelta(days=weekday)
        if prev in words.next_words:
            return today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)
        if prev in words.previous_words:
            return today - timedelta(days=(today.weekday() - weekday - 1) % 7 + 1)
        return today + timedelta(days=(weekday - today.weekday()) % 7)
    return None


def _count_before(toks: list[str], at: int, words: Words) -> tuple[int, int] | None:
    """The amount before a unit word ("three days", "a week"): (amount, index it starts at)."""
    for start in (at - 2, at - 1):
        if start < 0:
            continue
        read = read_below_hundred(toks, start, words)
        if read is not None and read[1] == at:
            return read[0], start
    if at and toks[at - 1] in words.articles:
        return 1, at - 1
    return None


def _offset(toks: list[str], words: Words, today: date) -> date | None:
    """ "in three days", "two weeks ago", "in a month", "a fortnight from now"."""
    for i, tok in enumerate(toks):
        is_unit = tok in words.day_units or tok in words.month_units or tok in words.year_units
        if not is_unit and tok not in words.fortnight:
            continue
        counted = _count_before(toks, i, words)
        amount, start = counted if counted else (1, i)
        if tok in words.fortnight:
            amount *= 14
        prev = toks[start - 1] if start else ""
        rest = tuple(toks[i + 1 : i + 1 + len(words.from_now)])
        if i + 1 < len(toks) and toks[i + 1] in words.ago_words:
            amount = -amount
        elif prev not in words.in_words and rest != words.from_now:
            continue
        if tok in words.month_units:
            return today + relativedelta(months=amount)
        if tok in words.year_units:
            return today + relativedelta(years=amount)
        return today + timedelta(days=amount * words.day_units.get(tok, 1))
    return None


def _relative(toks: list[str], words: Words, today: date) -> date | None:
    for phrase, delta in words.relative_days.items():
        size = len(phrase)
        if any(tuple(toks[i : i + size]) == phrase for i in range(len(toks) - size + 1)):
            return today + timedelta(days=delta)
    return _offset(toks, words, today)


def _day_of_month(toks: list[str], words: Words, today: date) -> DateOrError | None:
    """ "on the fifth": the next fifth of a month, today included."""
    for i in range(len(toks)):
        read = _day(toks, i, words, ordinal=True)
        if read is None:
            continue
        day = read[0]
        this_month = _make(today.year, today.month, day)
        if isinstance(this_month, date) and this_month >= today:
            return this_month
        following = today.replace(day=1) + relativedelta(months=1)
        return _make(following.year, following.month, day)
    return None


def parse_date(text: str, locale: Locale, now: datetime) -> ParseResult:
    """The `date` slot; value is an ISO "YYYY-MM-DD" string."""
    words = locale.words
    today = now.date()
    folded = normalise(text)
    found: DateOrError | None = _numeric(folded, locale, today)
    if found is None:
        toks = [
            t for t in tokenize(text) if t not in words.fillers and t not in words.date_connectors
        ]
        for at, tok in enumerate(toks):
            if tok in words.months:
                found = _around_month(toks, at, words, today)
                if found is not None:
                    break
        if found is None:
            found = _relative(toks, words, today)
        if found is None:
            # "monday the sixteenth": the day of the month is the more precise part.
            found = _day_of_month(toks, words, today)
        if found is None:
            found = _weekday(toks, words, today)
    if found is None:
        return fail(ErrorCode.NO_MATCH)
    if isinstance(found, ErrorCode):
        return fail(found)
    return success(found.isoformat())


def parse_keypad_date(keys: str, locale: Locale) -> ParseResult:
    """The `date` slot from the keypad: DDMMYYYY (day-first regions) or MMDDYYYY (en-US)."""
    if not keys.isascii() or not keys.isdigit():
        return fail(ErrorCode.INVALID_KEY)
    if not _KEYPAD_DATE_RE.fullmatch(keys):
        return fail(ErrorCode.WRONG_LENGTH)
    first, second, year = int(keys[:2]), int(keys[2:4]), int(keys[4:])
    day, month = (first, second) if locale.day_first else (second, first)
    made = _make(year, month, day)
    return fail(made) if isinstance(made, ErrorCode) else success(made.isoformat())
