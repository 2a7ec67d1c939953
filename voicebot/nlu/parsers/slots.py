"""The entry points: parse one caller turn, spoken or keyed, for one `collect` slot."""

from __future__ import annotations

import logging
from datetime import datetime

from .base import (
    KEYPAD_ONLY_TYPES,
    MAX_INPUT_CHARS,
    MAX_TEXT_CHARS,
    SLOT_TYPES,
    ErrorCode,
    ParseResult,
    SlotSpec,
    fail,
    success,
)
from .choice import parse_choice, parse_keypad_choice
from .contact import parse_email, parse_keypad_phone, parse_phone
from .dates import parse_date, parse_keypad_date
from .digits import (
    parse_card_number,
    parse_digits,
    parse_keypad_card_cvv,
    parse_keypad_card_expiry,
    parse_keypad_card_number,
    parse_keypad_digits,
)
from .lang import Locale, get_locale
from .numbers import parse_keypad_number, parse_number
from .times import parse_keypad_time, parse_time
from .yes_no import parse_keypad_yes_no, parse_yes_no

__all__ = ["parse_keypad", "parse_slot"]

_logger = logging.getLogger(__name__)

_KEYPAD_KEYS = frozenset("0123456789*#")
# Longer than any number a prompt asks for; a stuck key should not reach the parsers.
_MAX_KEYS = 64


def _locale(spec: SlotSpec) -> Locale | ErrorCode:
    if spec.type not in SLOT_TYPES:
        return ErrorCode.UNKNOWN_TYPE
    locale = get_locale(spec.language) if isinstance(spec.language, str) else None
    return ErrorCode.UNSUPPORTED_LANGUAGE if locale is None else locale


def parse_slot(spec: SlotSpec, text: str, *, now: datetime | None = None) -> ParseResult:
    """Parse what the caller said (ASR transcript or typed text) for the slot `spec`.

    `now` anchors relative dates and times ("tomorrow", "in ten minutes") and should be the
    current time in the bot's time zone; it defaults to the local clock. Never raises: any
    input that cannot be read gives `ParseResult(ok=False, error=...)`.
    """
    try:
        return _parse_slot(spec, text, now)
    except Exception:
        # A parser bug must not end the call; it is logged (never with what was said) and the
        # turn counts as not understood.
        _logger.exception("slot parser failed", extra={"slot_type": str(spec.type)[:32]})
        return fail(ErrorCode.INTERNAL_ERROR)


def _parse_slot(spec: SlotSpec, text: str, now: datetime | None) -> ParseResult:
    if not isinstance(text, str):
        return fail(ErrorCode.INVALID_INPUT)
    locale = _locale(spec)
    if isinstance(locale, ErrorCode):
        return fail(locale)
    if len(text) > (MAX_TEXT_CHARS if spec.type == "text" else MAX_INPUT_CHARS):
        return fail(ErrorCode.TOO_LONG)
    if not text.strip():
        return fail(ErrorCode.EMPTY)
    when = now or datetime.now()
    if spec.type in KEYPAD_ONLY_TYPES:
        return fail(ErrorCode.KEYPAD_ONLY)  # card details are never read from speech
    match spec.type:
        case "text":
            return success(text.strip())
        case "digits":
            return parse_digits(spec, text, locale)
        case "number":
            return parse_number(text, locale)
        case "yes_no":
            return parse_yes_no(text, locale.words)
        case "date":
            return parse_date(text, locale, when)
        case "time":
            return parse_time(text, locale, when)
        case "phone":
            return parse_phone(text, locale)
        case "email":
            return parse_email(text, locale.words)
        case "choice":
            return parse_choice(spec, text, locale.words)
        case _:
            return parse_card_number(text, locale)


def parse_keypad(spec: SlotSpec, digits: str, *, now: datetime | None = None) -> ParseResult:
    """Parse keypad (DTMF) input for the slot `spec`; the terminator key is already removed.

    Keys by type: digits, card_number and phone take the digits; number reads "*" as a decimal
    point; yes_no takes 1 (yes) or 2 (no); choice takes the 1-based position; date takes
    DDMMYYYY in day-first regions (en-GB) and MMDDYYYY in en-US; time takes HHMM (24-hour);
    text takes the keys as they are; email cannot be keyed ("keypad_unsupported"); card takes
    the card number (Luhn-checked), card_expiry MMYY (not before ``now``'s month), card_cvv
    3 or 4 digits.
    """
    try:
        return _parse_keypad(spec, digits, now)
    except Exception:
        _logger.exception("keypad parser failed", extra={"slot_type": str(spec.type)[:32]})
        return fail(ErrorCode.INTERNAL_ERROR)


def _parse_keypad(spec: SlotSpec, digits: str, now: datetime | None = None) -> ParseResult:
    if not isinstance(digits, str):
        return fail(ErrorCode.INVALID_INPUT)
    locale = _locale(spec)
    if isinstance(locale, ErrorCode):
        return fail(locale)
    keys = digits.strip()
    if not keys:
        return fail(ErrorCode.EMPTY)
    if len(keys) > _MAX_KEYS:
        return fail(ErrorCode.TOO_LONG)
    if not set(keys) <= _KEYPAD_KEYS:
        return fail(ErrorCode.INVALID_KEY)
    match spec.type:
        case "text":
            return success(keys)
        case "digits":
            return parse_keypad_digits(spec, keys)
        case "number":
            return parse_keypad_number(keys)
        case "yes_no":
            return parse_keypad_yes_no(keys, locale)
        case "date":
            return parse_keypad_date(keys, locale)
        case "time":
            return parse_keypad_time(keys)
        case "phone":
            return parse_keypad_phone(keys, locale)
        case "email":
            return fail(ErrorCode.KEYPAD_UNSUPPORTED)
        case "choice":
            return parse_keypad_choice(spec, keys)
        case "card_expiry":
            return parse_keypad_card_expiry(keys, (now or datetime.now()).date())
        case "card_cvv":
            return parse_keypad_card_cvv(keys)
        case _:
            return parse_keypad_card_number(keys)
