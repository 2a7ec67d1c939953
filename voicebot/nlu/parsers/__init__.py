"""Offline slot parsers for every `collect` type of the flow language.

`parse_slot` reads what a caller said (an ASR transcript: lower-case, unpunctuated, numbers often
spelled out; or typed text) and `parse_keypad` reads keys pressed, for one slot. Both return a
`ParseResult` and never raise. Word tables are per language in `lang.py`; English (en-GB,
en-US, and any other "en-*" as generic English) is the only language so far.
"""

from __future__ import annotations

from .base import SLOT_TYPES, ErrorCode, ParseResult, SlotSpec
from .digits import luhn_valid, spoken_digits
from .lang import get_locale
from .numbers import words_to_number
from .slots import parse_keypad, parse_slot

__all__ = [
    "SLOT_TYPES",
    "ErrorCode",
    "ParseResult",
    "SlotSpec",
    "get_locale",
    "luhn_valid",
    "parse_keypad",
    "parse_slot",
    "spoken_digits",
    "words_to_number",
]
