"""Contact details: phone numbers and email addresses, spoken or typed.

Phone numbers come back E.164-like: "+" and the country code when the country can be inferred
(an explicit "plus", an international prefix, or a national number in the caller's region),
otherwise the bare digits. Email addresses come back lower-case.
"""

from __future__ import annotations

import re

from .base import ErrorCode, ParseResult, fail, normalise, success, tokenize
from .digits import DigitRun, digit_runs
from .lang import Locale, Words
from .readers import read_below_hundred

__all__ = [
    "PHONE_MAX_DIGITS",
    "PHONE_MIN_DIGITS",
    "normalise_phone",
    "parse_email",
    "parse_keypad_phone",
    "parse_phone",
]

PHONE_MIN_DIGITS = 7
PHONE_MAX_DIGITS = 15

_TYPED_EMAIL_RE = re.compile(r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_VALID_EMAIL_RE = re.compile(
    r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,24}"
)
_EMAIL_WORD_RE = re.compile(r"\be[\s-]?mail\b")
_EMAIL_TOKEN_RE = re.compile(r"[a-z]+|[0-9]+|[._+@-]")
_KEYPAD_PHONE_RE = re.compile(r"[0-9]+")
_DOT = "."


def normalise_phone(digits: str, has_plus: bool, locale: Locale) -> str:
    """Write a dialled number as E.164 when its country is known, else as bare digits.

    "+44 1632 960001" and "0044 1632 960001" keep their country; a national number takes the
    region's country (en-GB "01632 960001" -> "+441632960001", en-US "415 555 0132" ->
    "+14155550132").
    """
    if has_plus:
        return "+" + digits
    for prefix in locale.intl_prefixes:
        if digits.startswith(prefix) and len(digits) - len(prefix) >= PHONE_MIN_DIGITS:
            return "+" + digits[len(prefix) :]
    code = locale.calling_code
    if code is None:
        return digits
    trunk = locale.trunk_prefix
    if trunk and digits.startswith(trunk) and len(digits) - len(trunk) in locale.national_lengths:
        return "+" + code + digits[len(trunk) :]
    if locale.bare_national_ok and len(digits) in locale.national_lengths:
        return "+" + code + digits
    if digits.startswith(code) and len(digits) - len(code) in locale.national_lengths:
        return "+" + digits
    return digits


def _phone_fits(digits: str) -> bool:
    return PHONE_MIN_DIGITS <= len(digits) <= PHONE_MAX_DIGITS


def _has_plus(toks: list[str], run: DigitRun, words: Words) -> bool:
    return run.start > 0 and toks[run.start - 1] in words.plus


def parse_phone(text: str, locale: Locale) -> ParseResult:
    """The `phone` slot from speech or typed text."""
    words = locale.words
    toks = [t for t in tokenize(text) if t not in words.fillers]
    runs = digit_runs(toks, words)
    if not runs:
        return fail(ErrorCode.NO_MATCH)
    fitting = {(run.digits, _has_plus(toks, run, words)) for run in runs if _phone_fits(run.digits)}
    if len(fitting) > 1:
        return fail(ErrorCode.AMBIGUOUS)
    if fitting:
        digits, plus = fitting.pop()
    else:
        # A number said in pieces with words between ("oh one six three two, um, then ...").
        digits, plus = "".join(run.digits for run in runs), _has_plus(toks, runs[0], words)
        if len(runs) == 1 or not _phone_fits(digits):
            return fail(ErrorCode.WRONG_LENGTH)
    return success(normalise_phone(digits, plus, locale))


def parse_keypad_phone(keys: str, locale: Locale) -> ParseResult:
    """The `phone` slot from the keypad (no "+" on a keypad: use 00 or the national form)."""
    if not _KEYPAD_PHONE_RE.fullmatch(keys):
        return fail(ErrorCode.INVALID_KEY)
    if not _phone_fits(keys):
        return fail(ErrorCode.WRONG_LENGTH)
    return success(normalise_phone(keys, False, locale))


def _match_phrase(
    toks: list[str], i: int, phrases: tuple[tuple[str, ...], ...]
) -> tuple[str, ...] | None:
    for phrase in phrases:
        if tuple(toks[i : i + len(phrase)]) == phrase:
            return phrase
    return None


def _symbol_at(toks: list[str], i: int, words: Words) -> tuple[str, int] | None:
    """A spoken symbol at `i` ("dot", "under score") or a typed one: (symbol, next index)."""
    if toks[i] in "._+-" and len(toks[i]) == 1:
        return toks[i], i + 1
    for phrase, symbol in words.email_symbols.items():
        if tuple(toks[i : i + len(phrase)]) == phrase:
            return symbol, i + len(phrase)
    return None


def _at_positions(toks: list[str], words: Words) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    for i, tok in enumerate(toks):
        if tok == "@":
            found.append((i, i + 1))
            continue
        phrase = _match_phrase(toks, i, words.email_at)
        if phrase is not None:
            found.append((i, i + len(phrase)))
    return found


def _spell(toks: list[str], words: Words, *, numbers: bool) -> str:
    """Join spoken address parts: "j smith underscore one" -> "jsmith_1"."""
    out: list[str] = []
    i = 0
    while i < len(toks):
        tok = toks[i]
        symbol = _symbol_at(toks, i, words)
        if symbol is not None:
            out.append(symbol[0])
            i = symbol[1]
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if tok in words.email_double and len(nxt) == 1:
            # "double u" is how a "w" is spelled out; any other "double x" is "xx".
            out.append("w" if nxt == "u" else nxt * 2)
            i += 2
            continue
        if tok in words.email_case_words and len(nxt) == 1:
            i += 1
            continue
        if numbers and tok == "zero":
            out.append("0")
            i += 1
            continue
        read = read_below_hundred(toks, i, words) if numbers and not tok.isdigit() else None
        if read is not None:
            out.append(str(read[0]))
            i = read[1]
            continue
        out.append(tok)
        i += 1
    return "".join(out)


def _domain_end(toks: list[str], start: int, words: Words) -> int:
    """Where the domain stops: the word after its last dot ("... dot com please" ends at com)."""
    end = start
    i = start
    while i < len(toks):
        symbol = _symbol_at(toks, i, words)
        if symbol is not None and symbol[0].startswith(_DOT):
            after = symbol[1]
            if symbol[0] != _DOT:
                end = after
            elif after < len(toks) and _symbol_at(toks, after, words) is None:
                end = after + 1
            i = after
            continue
        i += 1
    return end


def parse_email(text: str, words: Words) -> ParseResult:
    """The `email` slot: "john dot smith at example dot com" -> "john.smith@example.com"."""
    folded = _EMAIL_WORD_RE.sub("email", normalise(text))
    typed = _TYPED_EMAIL_RE.search(folded)
    if typed:
        address = typed.group(0).strip("._-")
        ok = _VALID_EMAIL_RE.fullmatch(address)
        return success(address) if ok else fail(ErrorCode.INVALID_EMAIL)
    toks = [t for t in _EMAIL_TOKEN_RE.findall(folded) if t not in words.fillers]
    ats = _at_positions(toks, words)
    if not ats:
        return fail(ErrorCode.NO_MATCH)
    # "my email at work is j at acme dot com": the address's "at" is the last one with a dot after.
    chosen = ats[-1]
    for at in reversed(ats):
        if _domain_end(toks, at[1], words) > at[1]:
            chosen = at
            break
    start = chosen[0]
    while start > 0 and toks[start - 1] not in words.email_lead_in:
        start -= 1
    local = _spell(toks[start : chosen[0]], words, numbers=True)
    domain = _spell(toks[chosen[1] : _domain_end(toks, chosen[1], words)], words, numbers=False)
    address = f"{local}@{domain}"
    return success(address) if _VALID_EMAIL_RE.fullmatch(address) else fail(ErrorCode.INVALID_EMAIL)
