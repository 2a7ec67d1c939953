"""Numbers and amounts as callers say them: "forty two", "one hundred and five", "3.5",
"forty two pounds fifty", "minus four".
"""

from __future__ import annotations

import math
import re

from .base import MAX_INPUT_CHARS, ErrorCode, ParseResult, fail, normalise, success
from .digits import digit_runs
from .lang import Locale, Words, get_locale
from .readers import read_below_hundred, strong_unit

__all__ = [
    "number_tokens",
    "parse_keypad_number",
    "parse_number",
    "read_whole",
    "words_to_number",
]

Number = int | float

_THOUSANDS_SEP_RE = re.compile(r"(?<=[0-9]),(?=[0-9]{3}(?![0-9]))")
_MINUS_SIGN = "-"
# Numbers (decimals whole), words, and a minus sign that is not a dash between digit groups as in
# "1234-5678".
_NUMBER_TOKEN_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?|[a-z]+|(?<![0-9a-z])-(?=[0-9])")
# "5k", "2.5k": the written thousands suffix, the same in every language we expect.
_THOUSANDS_SUFFIX_RE = re.compile(r"(?<![0-9.])([0-9]+(?:\.[0-9]+)?)k\b")
_KEYPAD_NUMBER_RE = re.compile(r"[0-9]+(?:\*[0-9]+)?")
_NO_SCALE = 10**15
# Longer digit strings are identifiers, not amounts, and would overflow a float.
_MAX_NUMBER_DIGITS = 18


def _expand_thousands(match: re.Match[str]) -> str:
    return str(_tidy(float(match.group(1)) * 1000))


def number_tokens(text: str, words: Words) -> list[str]:
    """Tokens for number parsing: decimals stay whole ("3.5"), fillers go."""
    folded = _THOUSANDS_SEP_RE.sub("", normalise(text))
    folded = _THOUSANDS_SUFFIX_RE.sub(_expand_thousands, folded)
    folded = folded.replace("\u2212", _MINUS_SIGN)
    tokens: list[str] = []
    for tok in _NUMBER_TOKEN_RE.findall(folded):
        if tok not in words.fillers:
            tokens.extend(words.compounds.get(tok, (tok,)))
    return tokens


def _tidy(value: float) -> Number:
    return int(value) if value.is_integer() else value


def _cardinal(toks: list[str], words: Words) -> int | None:
    """A whole number said in words and/or digits, up to billions: "two thousand and five"."""
    total = cur = 0
    last = ""
    last_scale = _NO_SCALE
    for i, tok in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if tok.isdigit():
            if last not in ("", "scale", "and"):
                return None
            cur, last = cur + int(tok), "num"
        elif tok in words.articles:
            # "a" is only a number in "a hundred", "a thousand", "a million".
            if last not in ("", "scale", "and") or nxt is None:
                return None
            if nxt not in words.hundred and nxt not in words.scales:
                return None
            cur, last = cur + 1, "unit"
        elif tok in words.digit_joiners:
            if last not in ("hundred", "scale") or nxt is None:
                return None
            last = "and"
        elif tok in words.units:
            unit = strong_unit(tok, words)
            if unit is None:
                return 0 if len(toks) == 1 and tok not in words.weak_units else None
            if last not in ("", "hundred", "scale", "and", "tens"):
                return None
            cur, last = cur + unit, "unit"
        elif tok in words.teens or tok in words.tens:
            if last not in ("", "hundred", "scale", "and"):
                return None
            cur += words.teens.get(tok) or words.tens[tok]
            last = "teen" if tok in words.teens else "tens"
        elif tok in words.hundred:
            if last == "":
                cur = 100
            elif last in ("unit", "teen", "tens", "num") and 0 < cur < 100:
                cur = cur * 100
            else:
                return None
            last = "hundred"
        elif tok in words.scales:
            scale = words.scales[tok]
            if cur == 0 and tok in words.bare_scales and last in ("", "scale"):
                cur, last = 1, "unit"  # "mil" alone, "dos millones mil"
            if last in ("", "and", "scale") or scale >= last_scale or cur == 0:
                return None
            total, cur, last_scale, last = total + cur * scale, 0, scale, "scale"
        else:
            return None
    return None if last == "and" else total + cur


def _pair(toks: list[str], words: Words) -> tuple[int, int] | None:
    """Two two-digit groups said back to back: "nineteen ninety", "twenty oh five"."""
    first = read_below_hundred(toks, 0, words)
    if first is None or first[0] < 10:
        return None
    j = first[1]
    if j + 2 == len(toks) and words.units.get(toks[j]) == 0:
        second = strong_unit(toks[j + 1], words)
        return (first[0], second) if second is not None else None
    rest = read_below_hundred(toks, j, words)
    if rest is None or rest[0] < 10 or rest[1] != len(toks):
        return None
    return first[0], rest[0]


def read_whole(toks: list[str], words: Words) -> Number | None:
    """A whole number, a decimal literal with a scale ("1.5 million") or a pair of groups."""
    if not toks:
        return None
    if "." in toks[0]:
        decimal = float(toks[0])
        for tok in toks[1:]:
            if tok not in words.scales:
                return None
            decimal *= words.scales[tok]
        return _tidy(decimal) if len(toks) > 1 else decimal
    cardinal = _cardinal(toks, words)
    if cardinal is not None:
        return cardinal
    # "twelve fifty" with no currency reads like a year or a model number: 1250.
    pair = _pair(toks, words)
    return pair[0] * 100 + pair[1] if pair is not None else None


def _with_fraction(toks: list[str], words: Words) -> Number | None:
    """Whole numbers with "half"/"quarter": "one and a half", "three quarters"."""
    if not toks:
        return None
    frac = 0.0
    if toks[-1] in words.half:
        frac, toks = 0.5, toks[:-1]
    elif toks[-1] in words.quarter:
        frac, toks = 0.25, toks[:-1]
    elif toks[-1] in words.quarters and len(toks) >= 2 and strong_unit(toks[-2], words):
        frac, toks = (strong_unit(toks[-2], words) or 0) / 4, toks[:-2]
    if not frac:
        return read_whole(toks, words)
    if toks and toks[-1] in words.articles:
        toks = toks[:-1]
    if toks and toks[-1] in words.digit_joiners:
        toks = toks[:-1]
        if not toks:
            return None
    if not toks:
        return frac
    whole = read_whole(toks, words)
    return None if whole is None else whole + frac


def _decimal_digits(toks: list[str], words: Words) -> str | None:
    """The digits after "point", read one by one: "point one four" -> "14"."""
    runs = digit_runs(toks, words)
    if len(runs) != 1 or runs[0].start != 0 or runs[0].end != len(toks):
        # "point oh" alone is a lone weak zero, which digit_runs drops on purpose.
        if all(words.units.get(t) == 0 for t in toks):
            return "0" * len(toks) if toks else None
        return None
    return runs[0].digits


def _real(toks: list[str], words: Words) -> Number | None:
    """A signed number with an optional decimal part."""
    sign = 1
    if toks and (toks[0] in words.minus or toks[0] == _MINUS_SIGN):
        sign, toks = -1, toks[1:]
    if not toks:
        return None
    point = next((i for i, t in enumerate(toks) if t in words.point), None)
    if point is None:
        value = _with_fraction(toks, words)
        return None if value is None else sign * value
    decimals = _decimal_digits(toks[point + 1 :], words)
    whole = read_whole(toks[:point], words) if point else 0
    if decimals is None or not isinstance(whole, int):
        return None
    return sign * float(f"{whole}.{decimals}")


def _amount(toks: list[str], words: Words) -> Number | None:
    """A number with currency words dropped: "forty two pounds fifty" -> 42.5."""
    major = next((i for i, t in enumerate(toks) if t in words.currency_major), None)
    if major is None:
        if len(toks) > 1 and toks[-1] in words.currency_minor:
            pence = _real(toks[:-1], words)
            return None if pence is None else round(pence / 100, 4)
        return _real(toks, words)
    whole_toks, rest = toks[:major], toks[major + 1 :]
    if rest and rest[0] in words.digit_joiners:
        rest = rest[1:]
    if rest and rest[-1] in words.currency_minor:
        rest = rest[:-1]
    if not whole_toks:
        return None
    pair = _pair(whole_toks, words)
    if pair is not None and not rest and _cardinal(whole_toks, words) is None:
        # "twelve fifty pounds" is a price, not 1250.
        return round(pair[0] + pair[1] / 100, 2)
    whole = _real(whole_toks, words)
    if whole is None or not rest:
        return whole
    cents = _cardinal(rest, words)
    if cents is None or not 0 <= cents < 100:
        return None
    return round(whole + cents / 100, 2) if whole >= 0 else round(whole - cents / 100, 2)


def _is_numberish(tok: str, words: Words) -> bool:
    return (
        (tok[0].isdigit() and len(tok) <= _MAX_NUMBER_DIGITS)
        or tok in words.units
        or tok in words.teens
        or tok in words.tens
        or tok in words.hundred
        or tok in words.scales
        or tok in words.articles
        or tok in words.digit_joiners
        or tok in words.minus
        or tok == _MINUS_SIGN
        or tok in words.point
        or tok in words.half
        or tok in words.quarter
        or tok in words.quarters
        or tok in words.currency_major
        or tok in words.currency_minor
    )


def _is_core(tok: str, words: Words) -> bool:
    return (
        tok[0].isdigit()
        or strong_unit(tok, words) is not None
        or tok in words.teens
        or tok in words.tens
        or tok in words.hundred
        or tok in words.bare_scales
        or tok in words.half
        or tok in words.quarter
        or (words.units.get(tok) == 0 and tok not in words.weak_units)
    )


def _value(toks: list[str], words: Words) -> Number | None:
    value = _amount(toks, words)
    if value is not None:
        return value if math.isfinite(value) else None
    # "one two three" is not a well-formed number but plainly means 123.
    runs = digit_runs(toks, words)
    if len(runs) == 1 and runs[0].start == 0 and runs[0].end == len(toks):
        return int(runs[0].digits)
    return None


def _article_counts(toks: list[str], words: Words) -> bool:
    """Whether a leading "a" is part of the number ("a hundred", "a half")."""
    nxt = toks[1] if len(toks) > 1 else ""
    return nxt in words.hundred or nxt in words.scales or nxt in words.half or nxt in words.quarter


def _spans(toks: list[str], words: Words) -> list[list[str]]:
    """Maximal stretches of number words in a sentence, trimmed of dangling "and"/"a"."""
    dangling = words.digit_joiners | words.articles | words.point | words.minus | {_MINUS_SIGN}
    spans: list[list[str]] = []
    current: list[str] = []
    for tok in [*toks, ""]:
        if tok and _is_numberish(tok, words):
            current.append(tok)
            continue
        while current and current[-1] in dangling:
            current.pop()
        while current and (
            current[0] in words.digit_joiners
            or (current[0] in words.articles and not _article_counts(current, words))
        ):
            current.pop(0)
        if any(_is_core(t, words) for t in current):
            spans.append(current)
        current = []
    return spans


def words_to_number(text: str, *, language: str = "en-US") -> int | float | None:
    """Read a text that is only a number into an int or float.

    "forty two" -> 42, "one hundred and five" -> 105, "a hundred" -> 100, "two thousand three
    hundred" -> 2300, "3.5" and "three point five" -> 3.5, "1,234" -> 1234, "minus four" -> -4,
    "one and a half" -> 1.5, "forty two pounds fifty" -> 42.5, "fifty pence" -> 0.5.
    Two two-digit groups read as one number ("twelve fifty" -> 1250, "nineteen ninety" ->
    1990) unless followed by a currency word ("twelve fifty pounds" -> 12.5). Digits said one
    by one read as their digits ("one two three" -> 123). Floats only come from a decimal
    part, a fraction or pence; returns None if any word is not part of the number.
    """
    locale = get_locale(language)
    if locale is None or not isinstance(text, str) or len(text) > MAX_INPUT_CHARS:
        return None
    words = locale.words
    toks = number_tokens(text, words)
    if not toks or not all(_is_numberish(t, words) for t in toks):
        return None
    return _value(toks, words)


def parse_number(text: str, locale: Locale) -> ParseResult:
    """The `number` slot: the one number said in the caller's turn ("it's forty two")."""
    words = locale.words
    values: list[Number] = []
    for span in _spans(number_tokens(text, words), words):
        value = _value(span, words)
        if value is not None and value not in values:
            values.append(value)
    if not values:
        return fail(ErrorCode.NO_MATCH)
    if len(values) > 1:
        return fail(ErrorCode.AMBIGUOUS)
    return success(values[0])


def parse_keypad_number(keys: str) -> ParseResult:
    """The `number` slot from the keypad; "*" is the decimal point, as IVR prompts say."""
    if not _KEYPAD_NUMBER_RE.fullmatch(keys):
        return fail(ErrorCode.INVALID_KEY)
    if "*" in keys:
        return success(float(keys.replace("*", ".")))
    return success(int(keys))
