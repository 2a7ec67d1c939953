"""Digit strings as callers say them: account numbers, PINs, card numbers.

Callers read digit strings one digit at a time ("four two one"), in pairs ("forty two
seventeen"), with "double"/"triple", with "oh" for zero, and inside a sentence ("my account
number is ..."). The readers here turn that into runs of digits; the slot parsers then pick the
run that fits the slot.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from .base import MAX_INPUT_CHARS, ErrorCode, ParseResult, SlotSpec, fail, success, tokenize
from .lang import ENGLISH, Locale, Words, get_locale
from .readers import read_below_hundred, strong_unit

__all__ = [
    "DigitRun",
    "digit_runs",
    "luhn_valid",
    "parse_card_number",
    "parse_digits",
    "parse_keypad_card_cvv",
    "parse_keypad_card_expiry",
    "parse_keypad_card_number",
    "parse_keypad_digits",
    "pick_run",
    "spoken_digits",
]

_KEYPAD_DIGITS_RE = re.compile(r"[0-9]+")
CARD_MIN_DIGITS = 13
CARD_MAX_DIGITS = 19


@dataclass(frozen=True)
class DigitRun:
    """A stretch of tokens that reads as one digit string."""

    digits: str
    start: int
    end: int
    # "oh four two" may be an interjection followed by "four two"; keep the doubt for later.
    leading_weak: bool


def _after_multiplier(tokens: list[str], j: int, value: int, words: Words) -> tuple[str, int]:
    """Apply a "hundred"/"thousand" after a digit group, as in "one eight hundred".

    Without "and", the digits after "hundred" are read one by one ("eight hundred five five
    five" is 800 555); with it they fill the hundred ("eight hundred and five" is 805).
    """
    n = len(tokens)
    if j >= n:
        return str(value), j
    tok = tokens[j]
    if tok in words.hundred:
        multiplier = 100
    elif words.scales.get(tok) == 1000:
        multiplier = 1000
    else:
        return str(value), j
    total = value * multiplier
    j += 1
    if j + 1 < n and tokens[j] in words.digit_joiners:
        rest = read_below_hundred(tokens, j + 1, words)
        if rest is not None:
            return str(total + rest[0]), rest[1]
    return str(total), j


def _read_piece(tokens: list[str], i: int, words: Words) -> tuple[str, int, bool] | None:
    """Read one digit group at `i`: (digits, next index, whether it is unmistakably digits)."""
    tok = tokens[i]
    n = len(tokens)
    if tok.isdigit():
        if len(tok) == 1:
            piece, j = _after_multiplier(tokens, i + 1, int(tok), words)
            return piece, j, True
        return tok, i + 1, True
    if tok in words.repeaters:
        if i + 1 >= n:
            return None
        nxt = tokens[i + 1]
        if len(nxt) == 1 and nxt.isdigit():
            digit = nxt
        elif nxt in words.units:
            digit = str(words.units[nxt])
        else:
            return None
        return digit * words.repeaters[tok], i + 2, True
    if tok in words.units:
        unit = strong_unit(tok, words)
        if unit is None:
            return str(words.units[tok]), i + 1, tok not in words.weak_units
        piece, j = _after_multiplier(tokens, i + 1, unit, words)
        return piece, j, True
    if tok in words.teens:
        piece, j = _after_multiplier(tokens, i + 1, words.teens[tok], words)
        return piece, j, True
    if tok in words.tens:
        read = read_below_hundred(tokens, i, words)
        if read is not None:
            return str(read[0]), read[1], True
    return None


def digit_runs(tokens: list[str], words: Words = ENGLISH) -> list[DigitRun]:
    """Find every run of spoken or written digits in a tokenised sentence.

    Fillers ("um") and joiners ("and") inside a run keep it going; any other word ends it. A
    run made only of weak zeros ("oh") is an interjection, not a number, and is dropped.
    """
    runs: list[DigitRun] = []
    pieces: list[tuple[str, bool]] = []
    start = end = 0

    def flush() -> None:
        if any(strong for _, strong in pieces):
            digits = "".join(piece for piece, _ in pieces)
            runs.append(DigitRun(digits, start, end, leading_weak=not pieces[0][1]))
        pieces.clear()

    i = 0
    while i < len(tokens):
        read = _read_piece(tokens, i, words)
        if read is not None:
            piece, j, strong = read
            if not pieces:
                start = i
            pieces.append((piece, strong))
            end = i = j
            continue
        if pieces and (tokens[i] in words.fillers or tokens[i] in words.digit_joiners):
            i += 1
            continue
        flush()
        i += 1
    flush()
    return runs


def spoken_digits(text: str, *, language: str = "en-US") -> str | None:
    """Read a text that is only a digit string, spoken or written, into its digits.

    "four two one" -> "421", "double four oh seven" -> "4407", "triple 2" -> "222",
    "42 1" -> "421", "1234-5678" -> "12345678". Fillers ("um") are ignored. Returns None when
    any word is not part of the digit string (use the `digits` slot parser to pull digits out
    of a sentence) or when the text is only "oh"s, which is more likely an interjection.
    """
    locale = get_locale(language)
    if locale is None or not isinstance(text, str) or len(text) > MAX_INPUT_CHARS:
        return None
    words = locale.words
    tokens = [t for t in tokenize(text) if t not in words.fillers]
    if not tokens:
        return None
    runs = digit_runs(tokens, words)
    if len(runs) != 1 or runs[0].start != 0:
        return None
    run = runs[0]
    # Only trailing joiners may remain after the run ("four two and"): still not a digit string.
    if run.end != len(tokens):
        return None
    return run.digits


def pick_run(runs: list[DigitRun], fits: Callable[[str], bool]) -> str | ErrorCode:
    """Choose the digit string the caller meant among the runs found in their turn.

    One run that fits the slot wins; several different ones are ambiguous; runs that only fit
    together ("4111 1111, um, sorry, 1111 1111") are joined.
    """
    if not runs:
        return ErrorCode.NO_MATCH
    fitting: list[str] = []
    for run in runs:
        candidates = [run.digits]
        if run.leading_weak and len(run.digits) > 1:
            candidates.append(run.digits[1:])
        match = next((c for c in candidates if fits(c)), None)
        if match is not None:
            fitting.append(match)
    if len(set(fitting)) == 1:
        return fitting[0]
    if fitting:
        return ErrorCode.AMBIGUOUS
    joined = "".join(run.digits for run in runs)
    if len(runs) > 1 and fits(joined):
        return joined
    return ErrorCode.WRONG_LENGTH


def _length_fits(spec: SlotSpec) -> Callable[[str], bool]:
    def fits(digits: str) -> bool:
        if spec.length is not None:
            return len(digits) == spec.length
        if spec.min_length is not None and len(digits) < spec.min_length:
            return False
        return spec.max_length is None or len(digits) <= spec.max_length

    return fits


def _card_fits(digits: str) -> bool:
    return CARD_MIN_DIGITS <= len(digits) <= CARD_MAX_DIGITS


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def parse_digits(spec: SlotSpec, text: str, locale: Locale) -> ParseResult:
    """The `digits` slot from speech or typed text; value is a str keeping leading zeros."""
    picked = pick_run(digit_runs(tokenize(text), locale.words), _length_fits(spec))
    return fail(picked) if isinstance(picked, ErrorCode) else success(picked)


def parse_keypad_digits(spec: SlotSpec, keys: str) -> ParseResult:
    """The `digits` slot from the keypad; "*" and "#" are not digits."""
    if not _KEYPAD_DIGITS_RE.fullmatch(keys):
        return fail(ErrorCode.INVALID_KEY)
    return success(keys) if _length_fits(spec)(keys) else fail(ErrorCode.WRONG_LENGTH)


def _check_card(digits: str) -> ParseResult:
    if not _card_fits(digits):
        return fail(ErrorCode.WRONG_LENGTH)
    return success(digits) if luhn_valid(digits) else fail(ErrorCode.LUHN)


def parse_card_number(text: str, locale: Locale) -> ParseResult:
    """The `card_number` slot: 13-19 digits that pass the Luhn check."""
    picked = pick_run(digit_runs(tokenize(text), locale.words), _card_fits)
    return fail(picked) if isinstance(picked, ErrorCode) else _check_card(picked)


def parse_keypad_card_number(keys: str) -> ParseResult:
    """The `card_number` slot from the keypad."""
    if not _KEYPAD_DIGITS_RE.fullmatch(keys):
        return fail(ErrorCode.INVALID_KEY)
    return _check_card(keys)


def parse_keypad_card_expiry(keys: str, today: date) -> ParseResult:
    """A card's expiry from the keypad: MMYY, a month this year or later (a card is valid
    to the end of its month). The value is the MMYY string."""
    if not re.fullmatch(r"[0-9]{4}", keys):
        return fail(
            ErrorCode.WRONG_LENGTH if _KEYPAD_DIGITS_RE.fullmatch(keys) else ErrorCode.INVALID_KEY
        )
    month, year = int(keys[:2]), 2000 + int(keys[2:])
    if not 1 <= month <= 12:
        return fail(ErrorCode.INVALID_DATE)
    if (year, month) < (today.year, today.month):
        return fail(ErrorCode.EXPIRED)
    return success(keys)


def parse_keypad_card_cvv(keys: str) -> ParseResult:
    """A card's security code from the keypad: 3 or 4 digits."""
    if not _KEYPAD_DIGITS_RE.fullmatch(keys):
        return fail(ErrorCode.INVALID_KEY)
    return success(keys) if 3 <= len(keys) <= 4 else fail(ErrorCode.WRONG_LENGTH)
