"""Card data in free text: card numbers, and the security code and expiry said after one.

A caller who reads their card out at an open question ("it's 4111 1111 1111 1111, expires
09/31, code 737") must not leave it in a transcript, a log line, a model request or a handoff
packet. A card number is a Luhn-valid run of 13 to 19 digits, written together or in groups
split by spaces or dashes; it is masked to its last four digits (what PCI DSS allows to be
shown). In the words that follow a card number, short numbers are taken for its expiry and
security code and masked entirely: a false hit there costs a masked "3", a miss costs a CVV.
"""

from __future__ import annotations

import re


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of payment card numbers (kept here so masking needs no NLU)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return bool(digits) and total % 10 == 0


# Digits in groups of one or more, joined by single spaces or dashes (as people write and ASR
# transcribes card numbers); the card itself is looked for inside each run.
_RUN = re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,40}(?![\w])")
# After a card: expiry (MM/YY, MM-YY, MM/YYYY, MMYY) and codes of 3 or 4 digits.
_EXPIRY = re.compile(r"(?<!\d)(?:0[1-9]|1[0-2])\s?[/.-]\s?(?:20)?\d{2}(?!\d)")
_SHORT = re.compile(r"(?<!\d)\d{2,4}(?!\d)")
# How far after a card number the caller's expiry and code are looked for (characters).
_TAIL = 80
CARD_MIN = 13
CARD_MAX = 19


_GROUP = re.compile(r"\d+")


def find_cards(text: str) -> list[tuple[int, int, str]]:
    """Each card number in ``text``: (start, end) in the text and its digits.

    Within a run of digit groups ("4111 1111 1111 1111 0931"), a card is a stretch of whole
    groups of 13-19 digits that passes the Luhn check; the longest from the earliest group
    wins. Whole groups only, so a phone number next to a date is not cut into a "card"."""
    found: list[tuple[int, int, str]] = []
    for match in _RUN.finditer(text):
        groups = [
            (match.start() + g.start(), match.start() + g.end())
            for g in _GROUP.finditer(match.group(0))
        ]
        i = 0
        while i < len(groups):
            best: tuple[int, str] | None = None
            digits = ""
            for j in range(i, len(groups)):
                digits += text[groups[j][0] : groups[j][1]]
                if len(digits) > CARD_MAX:
                    break
                if len(digits) >= CARD_MIN and luhn_valid(digits):
                    best = (j, digits)
            if best is None:
                i += 1
                continue
            j, digits = best
            found.append((groups[i][0], groups[j][1], digits))
            i = j + 1
    return found


def mask_card_data(text: str) -> str:
    """``"card 4111 1111 1111 1111 exp 09/31 cvv 737"`` -> ``"card ****1111 exp **** cvv ****"``."""
    if not text or not any(ch.isdigit() for ch in text):
        return text
    cards = find_cards(text)
    if not cards:
        return text
    out: list[str] = []
    cursor = 0
    for start, end, digits in cards:
        out.append(text[cursor:start])
        out.append("****" + digits[-4:])
        tail_end = min(len(text), end + _TAIL)
        # the next card's own digits are not this card's tail
        for other_start, _, _ in cards:
            if end <= other_start < tail_end:
                tail_end = other_start
        tail = _EXPIRY.sub("****", text[end:tail_end])
        out.append(_SHORT.sub("****", tail))
        cursor = tail_end
    out.append(text[cursor:])
    return "".join(out)


def card_forms(number: str) -> list[str]:
    """The ways a card number may be written (for scans that look for it): together, in fours
    with spaces or dashes, and digit by digit."""
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    return [number, " ".join(groups), "-".join(groups), " ".join(number)]


__all__ = ["CARD_MAX", "CARD_MIN", "card_forms", "find_cards", "luhn_valid", "mask_card_data"]
