"""Small token readers shared by the number, digit, date and time parsers.

Each reader looks at `tokens[i:]` and returns the value it read with the index after it, or
None, so that callers can try alternatives without backtracking machinery.
"""

from __future__ import annotations

from .lang import Words

__all__ = ["read_below_hundred", "read_ordinal", "strong_unit"]


def strong_unit(token: str, words: Words) -> int | None:
    """The value of a unit word that cannot be anything else ("one".."nine"), else None."""
    value = words.units.get(token)
    if value is None or value == 0 or token in words.weak_units:
        return None
    return value


def read_below_hundred(tokens: list[str], i: int, words: Words) -> tuple[int, int] | None:
    """Read 1..99 as said: "seven", "fifteen", "forty", "forty two" or "42"."""
    if i >= len(tokens):
        return None
    tok = tokens[i]
    if tok.isdigit():
        return (int(tok), i + 1) if len(tok) <= 2 else None
    if tok in words.teens:
        return words.teens[tok], i + 1
    if tok in words.tens:
        value = words.tens[tok]
        unit = strong_unit(tokens[i + 1], words) if i + 1 < len(tokens) else None
        return (value + unit, i + 2) if unit is not None else (value, i + 1)
    unit = strong_unit(tok, words)
    return (unit, i + 1) if unit is not None else None


def read_ordinal(tokens: list[str], i: int, words: Words) -> tuple[int, int] | None:
    """Read an ordinal: "third", "twenty first", "3rd" (tokenised as "3", "rd")."""
    if i >= len(tokens):
        return None
    tok = tokens[i]
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if tok.isdigit() and len(tok) <= 2 and nxt in words.ordinal_suffixes:
        return int(tok), i + 2
    if tok in words.ordinals:
        return words.ordinals[tok], i + 1
    if tok in words.tens and words.ordinals.get(nxt, 10) < 10:
        return words.tens[tok] + words.ordinals[nxt], i + 2
    return None
