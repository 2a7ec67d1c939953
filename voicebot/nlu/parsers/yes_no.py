"""Yes or no, the way callers say it: "yeah that's right", "no that's not right", "nope",
"not really", "I don't think so", "go ahead".

The turn is read left to right as a sequence of signals (yes, no, unsure); a negator ("not",
"isn't") flips the next signal within a few words, or is a "no" on its own ("I don't"). The last
signal wins, because callers correct themselves at the end ("yeah, no", "no sorry, yes").
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import ErrorCode, ParseResult, fail, success, tokenize
from .lang import Locale, Words

__all__ = ["parse_keypad_yes_no", "parse_yes_no"]

# How many words after a negator it may still flip: "not quite right", "isn't really correct".
_NEGATION_REACH = 3

Signal = bool | None  # None: the caller is unsure


@dataclass(frozen=True)
class _Table:
    phrases: dict[tuple[str, ...], Signal]
    longest: int


_TABLES: dict[int, _Table] = {}


def _table(words: Words) -> _Table:
    # Word tables are module-level constants, so their id is a stable cache key.
    table = _TABLES.get(id(words))
    if table is None:
        phrases: dict[tuple[str, ...], Signal] = {}
        for group, signal in (
            (words.yes_phrases, True),
            (words.no_phrases, False),
            (words.unsure_phrases, None),
        ):
            for phrase in group:
                phrases[tuple(phrase.split())] = signal
        table = _Table(phrases, max(len(p) for p in phrases))
        _TABLES[id(words)] = table
    return table


def _match(toks: list[str], i: int, table: _Table) -> tuple[int, Signal] | None:
    for size in range(min(table.longest, len(toks) - i), 0, -1):
        phrase = tuple(toks[i : i + size])
        if phrase in table.phrases:
            return size, table.phrases[phrase]
    return None


def _signals(toks: list[str], words: Words) -> list[Signal]:
    table = _table(words)
    signals: list[Signal] = []
    negation = 0
    i = 0
    while i < len(toks):
        found = _match(toks, i, table)
        if found is not None:
            size, signal = found
            if negation and signal is not None:
                signal = not signal
            negation = 0
            signals.append(signal)
            i += size
            continue
        if toks[i] in words.negators:
            negation = _NEGATION_REACH
        elif negation:
            negation -= 1
            if not negation:
                signals.append(False)
        i += 1
    if negation:
        signals.append(False)
    return signals


def parse_yes_no(text: str, words: Words) -> ParseResult:
    """The `yes_no` slot; value is True or False, error "unsure" for "I'm not sure"."""
    signals = _signals(tokenize(text), words)
    if not signals:
        return fail(ErrorCode.NO_MATCH)
    last = signals[-1]
    return fail(ErrorCode.UNSURE) if last is None else success(last)


def parse_keypad_yes_no(keys: str, locale: Locale) -> ParseResult:
    """The `yes_no` slot from the keypad: 1 is yes and 2 is no."""
    if keys == locale.keypad_yes:
        return success(True)
    if keys == locale.keypad_no:
        return success(False)
    return fail(ErrorCode.INVALID_KEY)
