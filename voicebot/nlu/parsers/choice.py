"""Picking one of a `collect` step's `choices`: by name, synonym, position or a near miss.

Matching goes from strict to loose and stops at the first step that decides: a choice's words
said in the turn ("billing please"), then a position ("the second one", "option 2", "two"), then
fuzzy matching for ASR misspellings ("biling"). Two different answers at the same step are
"ambiguous", so the bot asks again instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process

from .base import ErrorCode, ParseResult, SlotSpec, fail, success, tokenize
from .lang import Words
from .readers import read_below_hundred, read_ordinal

__all__ = ["parse_choice", "parse_keypad_choice"]

# fuzz.ratio on words: "biling"/"billing" scores 92, "sails"/"sales" 80, "card"/"cart" 75.
_FUZZY_CUTOFF = 80.0
# Two choices closer than this are too close to call.
_FUZZY_MARGIN = 6.0
# Very short phrases match too much by accident ("car" in "care"); they must be said exactly.
_FUZZY_MIN_CHARS = 4
_NEGATION_REACH = 2


@dataclass(frozen=True)
class _Phrase:
    tokens: tuple[str, ...]
    text: str
    index: int


def _synonym_items(
    choices: Sequence[str], synonyms: Mapping[str, Sequence[str] | str]
) -> tuple[tuple[int, str], ...]:
    by_name = {" ".join(tokenize(choice)): i for i, choice in enumerate(choices)}
    items: list[tuple[int, str]] = [(i, choice) for i, choice in enumerate(choices)]
    for key, values in synonyms.items():
        index = by_name.get(" ".join(tokenize(str(key))))
        if index is None:
            continue
        # A single string in YAML is one synonym, not a list of its letters.
        for value in (values,) if isinstance(values, str) else values:
            items.append((index, str(value)))
    return tuple(items)


@lru_cache(maxsize=256)
def _phrases(items: tuple[tuple[int, str], ...]) -> tuple[_Phrase, ...]:
    compiled: list[_Phrase] = []
    for index, phrase in items:
        tokens = tuple(t for t in tokenize(phrase.replace("&", " and ")) if t != "+")
        if tokens:
            compiled.append(_Phrase(tokens, " ".join(tokens), index))
    return tuple(compiled)


def _negated(toks: list[str], start: int, phrase_words: set[str], words: Words) -> bool:
    """Whether a negator comes just before `start`: "not billing", "don't want billing"."""
    for back in range(start - 1, max(-1, start - 1 - _NEGATION_REACH), -1):
        if toks[back] in words.choice_negators:
            return True
        if toks[back] in phrase_words:
            # "not billing, sales": the "not" belongs to billing.
            return False
    return False


def _contained(
    toks: list[str], phrases: tuple[_Phrase, ...], words: Words
) -> tuple[set[int], set[int]]:
    """Choices whose words appear in the turn, and those said only negated ("not billing")."""
    phrase_words = {t for phrase in phrases for t in phrase.tokens}
    spans: dict[int, list[tuple[int, int]]] = {}
    negated: set[int] = set()
    for phrase in phrases:
        size = len(phrase.tokens)
        for start in range(len(toks) - size + 1):
            if tuple(toks[start : start + size]) != phrase.tokens:
                continue
            if _negated(toks, start, phrase_words, words):
                negated.add(phrase.index)
            else:
                spans.setdefault(phrase.index, []).append((start, start + size))

    def covered(index: int, span: tuple[int, int]) -> bool:
        start, end = span
        return any(
            other != index and o_start <= start and end <= o_end and o_end - o_start > end - start
            for other, other_spans in spans.items()
            for o_start, o_end in other_spans
        )

    # "credit card" beats "card" when only the longer phrase was really said.
    found = {i for i, at in spans.items() if not all(covered(i, span) for span in at)}
    return found, negated - found


def _position(toks: list[str], words: Words, count: int) -> int | ErrorCode | None:
    """A choice by position: "the first one", "the last one", "option 2", or just "two"."""
    positions: set[int] = set()
    for i, tok in enumerate(toks):
        if tok in words.last:
            positions.add(count)
            continue
        ordinal = read_ordinal(toks, i, words)
        if ordinal is not None:
            positions.add(ordinal[0])
        elif tok in words.position_words:
            number = read_below_hundred(toks, i + 1, words)
            if number is not None:
                positions.add(number[0])
    if not positions:
        rest = [t for t in toks if t not in words.choice_polite]
        number = read_below_hundred(rest, 0, words)
        if number is None or number[1] != len(rest):
            return None
        positions.add(number[0])
    if len(positions) > 1:
        return ErrorCode.AMBIGUOUS
    position = positions.pop()
    return position - 1 if 1 <= position <= count else ErrorCode.OUT_OF_RANGE


def _fuzzy(toks: list[str], phrases: tuple[_Phrase, ...], excluded: set[int]) -> int | ErrorCode:
    longest = max(len(p.tokens) for p in phrases) + 1
    grams = [
        " ".join(toks[i : i + size])
        for size in range(1, longest + 1)
        for i in range(len(toks) - size + 1)
    ]
    scores: dict[int, float] = {}
    for phrase in phrases:
        if len(phrase.text) < _FUZZY_MIN_CHARS or phrase.index in excluded:
            continue
        best = process.extractOne(phrase.text, grams, scorer=fuzz.ratio, score_cutoff=_FUZZY_CUTOFF)
        if best is not None:
            scores[phrase.index] = max(scores.get(phrase.index, 0.0), float(best[1]))
    if not scores:
        return ErrorCode.NO_MATCH
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < _FUZZY_MARGIN:
        return ErrorCode.AMBIGUOUS
    return ranked[0][0]


def parse_choice(spec: SlotSpec, text: str, words: Words) -> ParseResult:
    """The `choice` slot; value is the canonical choice exactly as written in the flow."""
    if not spec.choices:
        return fail(ErrorCode.NO_CHOICES)
    phrases = _phrases(_synonym_items(spec.choices, spec.choice_synonyms))
    toks = [t for t in tokenize(text) if t not in words.fillers]
    if not toks or not phrases:
        return fail(ErrorCode.NO_MATCH)
    found, negated = _contained(toks, phrases, words)
    if len(found) > 1:
        return fail(ErrorCode.AMBIGUOUS)
    if found:
        return success(spec.choices[found.pop()])
    position = _position(toks, words, len(spec.choices))
    if position is None:
        position = _fuzzy(toks, phrases, negated)
    if isinstance(position, ErrorCode):
        return fail(position)
    return success(spec.choices[position])


def parse_keypad_choice(spec: SlotSpec, keys: str) -> ParseResult:
    """The `choice` slot from the keypad: key 1 is the first choice, 2 the second, and so on."""
    if not spec.choices:
        return fail(ErrorCode.NO_CHOICES)
    if not keys.isascii() or not keys.isdigit():
        return fail(ErrorCode.INVALID_KEY)
    position = int(keys)
    if not 1 <= position <= len(spec.choices):
        return fail(ErrorCode.OUT_OF_RANGE)
    return success(spec.choices[position - 1])
