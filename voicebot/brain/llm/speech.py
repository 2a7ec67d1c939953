"""Turning the model's token stream into sentences a TTS can start on, and checking citations.

A sentence is handed on as soon as its end is seen (a full stop, question or exclamation mark
followed by a space), so the caller hears the first sentence while the model is still writing
the second. For grounded answers, sentences wait until a citation (``[1]``) has been seen: an
answer that cites none of the passages it was given is not spoken at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_ABBREVIATIONS = ("e.g.", "i.e.", "mr.", "mrs.", "ms.", "dr.", "st.", "no.", "approx.", "etc.")
CITATION = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_MARKDOWN = re.compile(r"[*_`#]+")


def cited(text: str) -> list[int]:
    """Passage numbers cited in ``text`` (1-based, in order, no repeats)."""
    seen: list[int] = []
    for match in CITATION.finditer(text):
        for part in match.group(1).split(","):
            number = int(part)
            if number not in seen:
                seen.append(number)
    return seen


def speakable(text: str) -> str:
    """What TTS gets: no citation marks, no markdown, single spaces."""
    return " ".join(_MARKDOWN.sub("", CITATION.sub("", text)).split())


class SentenceStream:
    """Collects deltas; calls ``emit`` with each finished, speakable sentence."""

    def __init__(self, emit: Callable[[str], None], *, need_citation: bool = False) -> None:
        self._emit = emit
        self._buffer = ""
        self._held: list[str] = []
        self.need_citation = need_citation
        self.spoken: list[str] = []  # as emitted (speakable)
        self.raw: list[str] = []  # as written, with citations

    def feed(self, delta: str) -> None:
        self._buffer += delta
        while True:
            cut = self._boundary()
            if cut is None:
                return
            sentence, self._buffer = self._buffer[:cut], self._buffer[cut:]
            self._sentence(sentence)

    def _boundary(self) -> int | None:
        for match in _END.finditer(self._buffer):
            before = self._buffer[: match.start()].lower()
            if before.endswith(_ABBREVIATIONS):
                continue
            return match.end()
        return None

    def _sentence(self, sentence: str) -> None:
        if not sentence.strip():
            return
        self._held.append(sentence)
        if self.need_citation and not any(cited(s) for s in self.raw + self._held):
            return
        for held in self._held:
            self.raw.append(held)
            line = speakable(held)
            if line:
                self.spoken.append(line)
                self._emit(line)
        self._held = []

    def close(self) -> None:
        """The model finished: the last sentence may have no full stop."""
        if self._buffer.strip():
            self._sentence(self._buffer)
        self._buffer = ""

    @property
    def withheld(self) -> str:
        """Text never spoken because it cited nothing."""
        return " ".join(self._held)

    @property
    def text(self) -> str:
        return " ".join(self.spoken)
