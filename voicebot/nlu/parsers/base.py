"""Shared types and text helpers for the slot parsers.

Every parser takes what the caller said (an ASR transcript or typed text) or pressed (DTMF) and
returns a `ParseResult`; none of them raises on bad input, because they run on every caller turn
and a crash would end the call.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "KEYPAD_ONLY_TYPES",
    "MAX_INPUT_CHARS",
    "MAX_TEXT_CHARS",
    "SLOT_TYPES",
    "ErrorCode",
    "ParseResult",
    "SlotSpec",
    "fail",
    "normalise",
    "success",
    "tokenize",
]

SLOT_TYPES: frozenset[str] = frozenset(
    {
        "text",
        "digits",
        "number",
        "yes_no",
        "date",
        "time",
        "phone",
        "email",
        "choice",
        "card_number",
        # the three parts of a `card` collect, keypad only
        "card",
        "card_expiry",
        "card_cvv",
    }
)
# Card details are taken from the keypad only (PCI DSS: never through the ASR or a model).
KEYPAD_ONLY_TYPES: frozenset[str] = frozenset({"card", "card_expiry", "card_cvv"})

# A caller turn is a sentence or two; anything longer is not an answer to a slot prompt, and
# capping it keeps the worst case of every parser bounded.
MAX_INPUT_CHARS = 1000
MAX_TEXT_CHARS = 10_000


class ErrorCode(StrEnum):
    """Machine reasons a parse failed; they compare equal to their plain string values."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    NO_MATCH = "no_match"
    WRONG_LENGTH = "wrong_length"
    LUHN = "luhn"
    AMBIGUOUS = "ambiguous"
    UNSURE = "unsure"
    INVALID_DATE = "invalid_date"
    INCOMPLETE_DATE = "incomplete_date"
    INVALID_TIME = "invalid_time"
    INVALID_EMAIL = "invalid_email"
    INVALID_KEY = "invalid_key"
    OUT_OF_RANGE = "out_of_range"
    NO_CHOICES = "no_choices"
    KEYPAD_UNSUPPORTED = "keypad_unsupported"
    KEYPAD_ONLY = "keypad_only"
    EXPIRED = "expired"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    INVALID_INPUT = "invalid_input"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class SlotSpec:
    """What a `collect` step asks for: the slot type and its options from the flow YAML."""

    type: str
    length: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    choices: tuple[str, ...] = ()
    # Left out of the hash so that a spec stays hashable (usable as a cache key) with a dict here.
    choice_synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    language: str = "en-US"


@dataclass(frozen=True)
class ParseResult:
    """The outcome of parsing one caller turn for one slot."""

    ok: bool
    value: Any = None
    error: str | None = None


def success(value: Any) -> ParseResult:
    """A successful parse carrying the normalised value."""
    return ParseResult(ok=True, value=value)


def fail(error: ErrorCode) -> ParseResult:
    """A failed parse with a machine-readable reason."""
    return ParseResult(ok=False, error=error.value)


_APOSTROPHES_RE = re.compile(r"['\u2018\u2019\u02bc`´]")
_WORD_RE = re.compile(r"[a-z]+|[0-9]+|\+")
# Combining accents (after NFD): "é" is "e" + U+0301, "ñ" is "n" + U+0303.
_ACCENTS_RE = re.compile(r"[\u0300-\u036f]")


def normalise(text: str) -> str:
    """Fold text to the form the parsers match against.

    NFKC turns full-width digits and ligatures into ASCII; apostrophes are dropped so that
    "don't" and ASR's "dont" are the same token; accents go, so that "sí" and a recogniser's
    or a hurried typist's "si" are the same word (the word tables are written without them).
    """
    folded = unicodedata.normalize("NFKC", text).lower()
    if not folded.isascii():
        decomposed = unicodedata.normalize("NFD", folded)
        folded = unicodedata.normalize("NFC", _ACCENTS_RE.sub("", decomposed))
    return _APOSTROPHES_RE.sub("", folded)


def tokenize(text: str) -> list[str]:
    """Split normalised text into ASCII words, digit runs and "+" signs; the rest is noise."""
    return _WORD_RE.findall(normalise(text))
