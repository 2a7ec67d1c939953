"""Times of day as callers say them: "3pm", "three thirty", "half past three", "quarter to four",
"15:30", "noon", "nine in the morning".

Without an am/pm cue ("pm", "in the evening", "tonight") an hour from 1 to 12 is returned as said
("three" is 03:00): guessing afternoon would be wrong for a flow that asks for a 24-hour time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from .base import ErrorCode, ParseResult, fail, normalise, success
from .lang import Locale, Words
from .readers import read_below_hundred, strong_unit

__all__ = ["parse_keypad_time", "parse_time"]

_DOTTED_MERIDIEM_RE = re.compile(r"\b([ap])\.\s?m\b\.?")
# "3 p m" from ASR: only after a digit, so that "i am" is never read as a.m.
_SPACED_MERIDIEM_RE = re.compile(r"(?<=[0-9])\s*([ap])\s?m\b")
_CLOCK_RE = re.compile(r"(?<![0-9])([0-9]{1,2})[:.]([0-5][0-9])(?![0-9])\s*(am|pm)?\b")
_TOKEN_RE = re.compile(r"[a-z]+|[0-9]+")
_KEYPAD_TIME_RE = re.compile(r"[0-9]{3,4}")
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class _Clock:
    hour: int
    minute: int
    end: int
    # Already a 24-hour reading (noon, midnight, "15", "oh nine"): period words do not apply.
    fixed: bool
    score: int


def _read_hour(toks: list[str], i: int, words: Words) -> tuple[int, int, bool] | None:
    """An hour at `i`: (hour 0..24, next index, whether it is already 24-hour)."""
    if i >= len(toks):
        return None
    tok = toks[i]
    if tok in words.noon:
        return 12, i + 1, True
    if tok in words.midnight:
        return 0, i + 1, True
    if words.units.get(tok) == 0 and i + 1 < len(toks):
        unit = strong_unit(toks[i + 1], words)
        return (unit, i + 2, True) if unit is not None else None
    read = read_below_hundred(toks, i, words)
    if read is None or read[0] > 24:
        return None
    return read[0], read[1], read[0] > 12 or (tok.isdigit() and tok.startswith("0"))


def _read_minutes(toks: list[str], j: int, words: Words) -> tuple[int, int] | None:
    """Minutes after an hour: "thirty", "oh five", "45", or "hundred" as in "fifteen hundred"."""
    if j >= len(toks):
        return None
    tok = toks[j]
    if tok in words.hundred:
        return 0, j + 1
    if words.units.get(tok) == 0 and j + 1 < len(toks):
        unit = strong_unit(toks[j + 1], words)
        return (unit, j + 2) if unit is not None else None
    if tok.isdigit() and len(tok) == 2 and int(tok) < 60:
        return int(tok), j + 1
    read = read_below_hundred(toks, j, words)
    if read is None or not 10 <= read[0] < 60:
        return None
    return read


def _relative_minutes(toks: list[str], i: int, words: Words) -> _Clock | None:
    """ "quarter past three", "twenty to five", "half past ten", "ten minutes to midnight"."""
    j = i + 1 if toks[i] in words.articles else i
    if j >= len(toks):
        return None
    minutes: int | None = None
    if toks[j] in words.quarter:
        minutes, j = 15, j + 1
    elif toks[j] in words.half:
        minutes, j = 30, j + 1
    else:
        read = read_below_hundred(toks, j, words)
        if read is not None and 1 <= read[0] < 60:
            minutes, j = read
    if minutes is None:
        return None
    said_minutes = j < len(toks) and toks[j] in words.minute_words
    if said_minutes:
        j += 1
    # "two to three" is a range, not 2:58; minute counts are multiples of five unless said.
    if minutes % 5 and not said_minutes:
        return None
    if j >= len(toks) or (toks[j] not in words.past_words and toks[j] not in words.to_words):
        return None
    sign = 1 if toks[j] in words.past_words else -1
    if sign < 0 and minutes == 30:
        return None
    hour = _read_hour(toks, j + 1, words)
    if hour is None:
        return None
    total = (hour[0] * 60 + sign * minutes) % _MINUTES_PER_DAY
    return _Clock(total // 60, total % 60, hour[1], hour[2], score=3)


def _expression_at(toks: list[str], i: int, words: Words) -> _Clock | None:
    relative = _relative_minutes(toks, i, words)
    if relative is not None:
        return relative
    tok = toks[i]
    if tok in words.half:
        # British "half three" is 3:30.
        after = _read_hour(toks, i + 1, words)
        if after is not None and after[0] <= 12:
            return _Clock(after[0], 30, after[1], after[2], score=2)
        return None
    if tok.isdigit() and len(tok) in (3, 4):
        # "1530", "0900", "930": hours and minutes run together.
        return _Clock(int(tok[:-2]), int(tok[-2:]), i + 1, len(tok) == 4, score=2)
    read = _read_hour(toks, i, words)
    if read is None:
        return None
    hour, j, fixed = read
    minute, score = 0, 1
    minutes = _read_minutes(toks, j, words)
    if minutes is not None:
        minute, j = minutes
        score = 2
        fixed = fixed or toks[j - 1] in words.hundred
    for phrase in words.oclock:
        if tuple(toks[j : j + len(phrase)]) == phrase:
            j += len(phrase)
            score = 3
            fixed = fixed or "hundred" in phrase or "hours" in phrase
            break
    return _Clock(hour, minute, j, fixed, score)


def _meridiem_after(toks: list[str], j: int, words: Words) -> tuple[str | None, int]:
    tok = toks[j] if j < len(toks) else ""
    if tok in words.am:
        return "am", j + 1
    if tok in words.pm:
        return "pm", j + 1
    pair = "".join(toks[j : j + 2])
    if pair in words.am or pair in words.pm:
        return ("am" if pair in words.am else "pm"), j + 2
    return None, j


def _period(toks: list[str], words: Words) -> str | None:
    """A part of the day said anywhere in the turn: "tomorrow morning at nine"."""
    for tok in toks:
        if tok in words.morning:
            return "am"
        if tok in words.afternoon:
            return "pm"
        if tok in words.night:
            return "night"
    return None


def _to_24h(hour: int, minute: int, meridiem: str | None) -> tuple[int, int] | None:
    if hour == 24 and minute == 0 and meridiem is None:
        return 0, 0
    if meridiem == "am":
        if hour > 12:
            return None
        hour = 0 if hour == 12 else hour
    elif meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "night":
        # "eleven at night" is 23:00 but "two at night" is 02:00.
        if hour == 12:
            hour = 0
        elif 6 <= hour < 12:
            hour += 12
    if not (0 <= hour < 24 and 0 <= minute < 60):
        return None
    return hour, minute


def _relative_time(toks: list[str], words: Words, now: datetime) -> datetime | None:
    """ "in ten minutes", "in half an hour", "in an hour", "in 2 hours"."""
    for i, tok in enumerate(toks[:-1]):
        if tok not in words.in_words:
            continue
        rest = toks[i + 1 :]
        if rest[0] in words.half and len(rest) >= 3 and rest[2] in words.hour_words:
            return now + timedelta(minutes=30)
        if rest[0] in words.articles and len(rest) >= 2 and rest[1] in words.hour_words:
            return now + timedelta(hours=1)
        read = read_below_hundred(rest, 0, words)
        if read is None or read[1] >= len(rest):
            continue
        unit = rest[read[1]]
        if unit in words.minute_words:
            return now + timedelta(minutes=read[0])
        if unit in words.hour_words:
            return now + timedelta(hours=read[0])
    return None


def parse_time(text: str, locale: Locale, now: datetime) -> ParseResult:
    """The `time` slot; value is "HH:MM" on the 24-hour clock."""
    words = locale.words
    folded = _SPACED_MERIDIEM_RE.sub(r" \1m", _DOTTED_MERIDIEM_RE.sub(r"\1m", normalise(text)))
    toks = [t for t in _TOKEN_RE.findall(folded) if t not in words.fillers]
    clock = _CLOCK_RE.search(folded)
    if clock:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        meridiem = clock.group(3) or (_period(toks, words) if hour <= 12 else None)
        result = _to_24h(hour, minute, meridiem)
        return fail(ErrorCode.INVALID_TIME) if result is None else success(_format(*result))
    relative = _relative_time(toks, words, now)
    if relative is not None:
        return success(_format(relative.hour, relative.minute))
    best: tuple[int, _Clock, str | None] | None = None
    for i in range(len(toks)):
        found = _expression_at(toks, i, words)
        if found is None:
            continue
        meridiem, _ = _meridiem_after(toks, found.end, words)
        score = found.score + (2 if meridiem else 0)
        if i and toks[i - 1] in words.time_anchors:
            score += 1
        if best is None or score > best[0]:
            best = (score, found, meridiem)
    if best is None:
        return fail(ErrorCode.NO_MATCH)
    _, found, meridiem = best
    if meridiem is None and not found.fixed:
        meridiem = _period(toks, words)
    result = _to_24h(found.hour, found.minute, meridiem)
    return fail(ErrorCode.INVALID_TIME) if result is None else success(_format(*result))


def _format(hour: int, minute: int) -> str:
    return f"{hour:02d}:{minute:02d}"


def parse_keypad_time(keys: str) -> ParseResult:
    """The `time` slot from the keypad: HHMM on the 24-hour clock ("930" is 09:30)."""
    if not keys.isascii() or not keys.isdigit():
        return fail(ErrorCode.INVALID_KEY)
    if not _KEYPAD_TIME_RE.fullmatch(keys):
        return fail(ErrorCode.WRONG_LENGTH)
    result = _to_24h(int(keys[:-2]), int(keys[-2:]), None)
    return fail(ErrorCode.INVALID_TIME) if result is None else success(_format(*result))
