"""The offline brain: no LLM, no network. Embedding intents, slot parsers, a sentiment lexicon.

Everything here is CPU work measured in milliseconds; the embedding runs in a worker thread so
the event loop (and every other call on it) keeps moving.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

from rapidfuzz import fuzz

from voicebot.brain.base import Speaker
from voicebot.engine.events import ActionOutcome, Expectation, Interpretation, MenuChoice
from voicebot.engine.state import CallState
from voicebot.flows.schema import Intent
from voicebot.handoff.packet import HandoffPacket
from voicebot.nlu.intents import Classification, normalise_utterance
from voicebot.nlu.language import LanguageDecision, LanguageDetector
from voicebot.nlu.parsers import parse_slot, spoken_digits
from voicebot.nlu.sentiment import SentimentTracker

logger = logging.getLogger("voicebot.brain")

_ORDINALS = {
    "first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "sixth": 5, "seventh": 6,
    "eighth": 7, "ninth": 8, "last": -1,
}  # fmt: skip
_PRESS = re.compile(r"\b(?:press(?:ed|ing)?|option|number|key)\s+(\w+)")
_MENU_FUZZ = 88


class Classifier(Protocol):
    def classify(self, text: str) -> Classification: ...


class OfflineBrain:
    """Reads caller turns with the embedding classifier, the slot parsers and the lexicon."""

    def __init__(
        self,
        classifier: Classifier,
        *,
        intents: Mapping[str, Intent] | None = None,
        label: str = "offline",
        classifiers: Mapping[str, Classifier] | None = None,
        detector: LanguageDetector | None = None,
    ) -> None:
        # `classifier` reads the default language; `classifiers` (a bot of several languages)
        # each language with its own examples, chosen by the detector's reading of the turn.
        self.classifier = classifier
        self.classifiers = dict(classifiers or {})
        self.detector = detector
        self.intents = intents or {}
        self._label = label
        self._trackers: dict[str, SentimentTracker] = {}

    @property
    def name(self) -> str:
        return self._label

    @property
    def uses_llm(self) -> bool:
        return False

    def read_language(self, text: str, call: CallState) -> LanguageDecision | None:
        """Which declared language this turn is in (None: a bot of one language)."""
        if self.detector is None or not self.detector.multilingual:
            return None
        turns = sum(1 for line in call.transcript if line.role == "caller")
        return self.detector.decide(
            text, call.language, caller_turns=turns, chosen=call.language_chosen
        )

    def feel(self, call: CallState, text: str) -> tuple[float, float]:
        """Update the call's sentiment with one caller turn: (anger, score)."""
        feeling = self._trackers.setdefault(call.call_id, SentimentTracker()).update(text)
        return feeling.anger, feeling.score

    async def follow_up(
        self,
        expect: Expectation,
        call: CallState,
        *,
        now: dt.datetime,
        outcome: ActionOutcome | None = None,
        speak: Speaker | None = None,
    ) -> Interpretation:
        return Interpretation()  # never consulted: without an LLM, llm steps run their fallback

    async def interpret(
        self,
        text: str,
        expect: Expectation,
        call: CallState,
        *,
        now: dt.datetime,
        speak: Speaker | None = None,
    ) -> Interpretation:
        # Classification runs even inside a collect: global intent triggers ("agent") must work
        # on every turn. It is the only costly part, so it goes to a thread.
        decision = None if expect.sensitive else self.read_language(text, call)
        language = decision.language if decision is not None else call.language
        classifier = self.classifiers.get(language, self.classifier)
        classification = await asyncio.to_thread(classifier.classify, text)
        anger, score = self.feel(call, text)
        slot = None
        if expect.slot is not None:
            spec = expect.slot
            if decision is not None and spec.language != language:
                spec = replace(spec, language=language)
            slot = parse_slot(spec, text, now=now.replace(tzinfo=None))
        option = match_option(text, expect.options) if expect.kind == "menu" else None
        return Interpretation(
            intent=classification.intent,
            confidence=classification.confidence,
            anger=anger,
            sentiment=score,
            slot=slot,
            option=option,
            language=decision.language if decision is not None else None,
            language_request=decision.requested if decision is not None else False,
        )

    def keypad_sentiment(self, call: CallState) -> float:
        tracker = self._trackers.get(call.call_id)
        return tracker.anger if tracker else 0.0

    async def summarise(self, packet: HandoffPacket, call: CallState) -> str | None:
        return None

    def end_call(self, call: CallState) -> None:
        self._trackers.pop(call.call_id, None)


def match_option(text: str, options: tuple[MenuChoice, ...]) -> int | None:
    """Which menu option a spoken answer picks: its phrases, its key said aloud, an ordinal."""
    said = normalise_utterance(text)
    if not said:
        return None
    words = said.split()
    # 1. A phrase of an option said within the answer ("uh billing please").
    hits = {
        o.index
        for o in options
        for phrase in o.phrases
        if _contains_phrase(words, normalise_utterance(phrase).split())
    }
    if len(hits) == 1:
        return hits.pop()
    # 2. The key said aloud: "one", "press two", "option 3".
    keyed = {o.key: o.index for o in options if o.key}
    match = _PRESS.search(said)
    spoken = match.group(1) if match else (said if len(words) <= 2 else None)
    if spoken is not None:
        digit = spoken_digits(spoken)
        if digit and digit in keyed:
            return keyed[digit]
        if digit and not keyed and 1 <= int(digit) <= len(options):
            return int(digit) - 1
    # 3. An ordinal: "the second one", "the last option".
    for word in words:
        if word in _ORDINALS and _ORDINALS[word] < len(options):
            return _ORDINALS[word] % len(options)
    # 4. A near miss of a phrase (ASR spelling): fuzzy, and only if it is unambiguous.
    scored = sorted(
        (
            (max(fuzz.partial_ratio(normalise_utterance(p), said) for p in o.phrases), o.index)
            for o in options
            if o.phrases
        ),
        reverse=True,
    )
    if (
        scored
        and scored[0][0] >= _MENU_FUZZ
        and (len(scored) == 1 or scored[1][0] < scored[0][0] - 8)
    ):
        return scored[0][1]
    return None


def _contains_phrase(words: list[str], phrase: list[str]) -> bool:
    if not phrase:
        return False
    n = len(phrase)
    return any(words[i : i + n] == phrase for i in range(len(words) - n + 1))
