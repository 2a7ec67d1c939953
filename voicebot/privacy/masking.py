"""Masking of personal data: sensitive slot values, card and account numbers, caller text.

One set of functions serves transcripts, log records and handoff packets, so a value is masked
the same way wherever it appears (``****5678``: enough for an agent to confirm with the caller,
too little to be useful to anyone else).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from voicebot.privacy.cards import mask_card_data

_DIGIT_RUN = re.compile(r"(?<!\w)(?:\d[\s-]?){4,}\d(?!\w)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_KEEP = 4


def mask_value(value: Any) -> str:
    """``"4111111111111111"`` -> ``"****1111"``; short values are masked entirely."""
    text = "" if value is None else str(value)
    compact = re.sub(r"[\s-]", "", text)
    if len(compact) >= 8:
        return "****" + compact[-_KEEP:]
    return "****"


def mask_numbers(text: str) -> str:
    """Mask every run of five or more digits (phone, account, card numbers) in free text."""
    return _DIGIT_RUN.sub(lambda m: mask_value(m.group(0)), text)


def mask_pii(text: str) -> str:
    """Card data, digit runs and e-mail addresses masked: the form caller text takes in logs."""
    return _EMAIL.sub("****@****", mask_numbers(mask_card_data(text)))


def redact(text: str, secrets: Iterable[Any]) -> str:
    """Replace each occurrence of a secret value (and its digit-spaced form) in ``text``."""
    for secret in secrets:
        raw = "" if secret is None else str(secret)
        if len(raw) < 2:
            continue
        text = text.replace(raw, mask_value(raw))
        spaced = " ".join(raw)
        if spaced != raw:
            text = text.replace(spaced, mask_value(raw))
    return text


class PiiFilter(logging.Filter):
    """Masks digit runs and e-mail addresses in log messages and in string ``extra`` values.

    Code logs fixed messages with values in ``extra``; this filter is the safety net for a
    value that slips through (an exception message quoting a webhook's body, for example).
    """

    _STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_pii(record.msg)
        if record.args:
            record.args = tuple(
                mask_pii(a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        for key, value in list(record.__dict__.items()):
            if key not in self._STANDARD and isinstance(value, str):
                setattr(record, key, mask_pii(value))
        return True
