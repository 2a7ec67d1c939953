"""Which of the bot's languages the caller speaks: detection with hysteresis, and requests.

Detection uses py3langid (a naive Bayes model over byte n-grams, 4 MB, offline, restricted to
the primary subtags the bot declares), plus the bot's own words: an utterance that equals an
intent example of exactly one language is that language. One turn of text is a weak signal, so
a call changes language only when the evidence is strong (docs/languages.md, "Detection"):

* the caller asks for a language by name ("can we speak Spanish?", "en inglés, por favor");
* on the first caller turn, a detection with probability >= ``FIRST_TURN``;
* later, a turn of at least ``MIN_WORDS`` words detected with probability >= ``LATER_TURN``
  (``CHOSEN_TURN`` and one word more once the language was chosen by a menu or a request), so
  "vale" or one English word in a Spanish sentence never flips the call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from voicebot.flows.schema import primary_subtag
from voicebot.nlu.intents import normalise_utterance

logger = logging.getLogger(__name__)

FIRST_TURN: Final = 0.7
LATER_TURN: Final = 0.9
CHOSEN_TURN: Final = 0.95
MIN_WORDS: Final = 3

# How callers name a language, in the languages a bot is most likely to pair (primary subtag ->
# names, folded without accents by normalise_utterance... so both spellings are listed).
LANGUAGE_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "en": ("english", "ingles", "inglés", "anglais", "englisch"),
    "es": ("spanish", "espanol", "español", "castellano", "espagnol", "spanisch"),
    "fr": ("french", "frances", "francés", "francais", "français", "franzosisch"),
    "de": ("german", "aleman", "alemán", "allemand", "deutsch"),
    "it": ("italian", "italiano", "italien", "italienisch"),
    "pt": ("portuguese", "portugues", "portugués", "português", "portugais"),
    "cy": ("welsh", "gales", "galés", "cymraeg"),
    "pl": ("polish", "polaco", "polski"),
}
# Words that make a language's name a request ("speak", "in") rather than a topic.
_REQUEST_CUES: Final = frozenset(
    {
        "speak", "talk", "in", "continue", "prefer", "switch", "change",
        "hablar", "habla", "hablas", "hablamos", "hablame", "háblame", "en", "seguir",
        "cambiar", "parler", "parlez", "sprechen", "auf", "falar", "parlare",
    }
)  # fmt: skip
_MAX_REQUEST_WORDS: Final = 10


@dataclass(frozen=True)
class LanguageDecision:
    """The language to read a turn in; ``requested`` when the caller asked for it by name."""

    language: str
    requested: bool = False
    probability: float = 1.0


class LanguageDetector:
    """Detects which declared language a caller turn is in. Thread-safe after construction."""

    def __init__(
        self, languages: Sequence[str], *, examples: Mapping[str, Iterable[str]] | None = None
    ) -> None:
        if not languages:
            raise ValueError("a detector needs at least one language")
        self.languages = list(languages)
        self._by_primary: dict[str, str] = {}
        for tag in self.languages:
            self._by_primary.setdefault(primary_subtag(tag), tag)
        owners: dict[str, set[str]] = {}
        for tag, texts in (examples or {}).items():
            for text in texts:
                owners.setdefault(normalise_utterance(text), set()).add(tag)
        # An utterance that is one language's example and no other's settles the question.
        self._exact = {text: next(iter(tags)) for text, tags in owners.items() if len(tags) == 1}
        self._names = {
            normalise_utterance(name): self._by_primary[primary]
            for primary, names in LANGUAGE_NAMES.items()
            if primary in self._by_primary
            for name in names
        }
        self._identifier: Any = None
        self._lock = threading.Lock()

    @property
    def multilingual(self) -> bool:
        return len(self._by_primary) > 1

    def requested(self, text: str) -> str | None:
        """The declared language the caller asks for by name, if the turn is such a request."""
        words = normalise_utterance(text).split()
        if not words or len(words) > _MAX_REQUEST_WORDS:
            return None
        named = {self._names[w] for w in words if w in self._names}
        if len(named) != 1:
            return None
        # "Spanish" alone, or with a cue ("in Spanish please", "¿hablamos en inglés?")
        if len(words) <= 2 or any(w in _REQUEST_CUES for w in words):
            return named.pop()
        return None

    def detect(self, text: str) -> tuple[str, float] | None:
        """The most likely declared language and its probability (None: no words)."""
        said = normalise_utterance(text)
        if not said:
            return None
        if said in self._exact:
            return self._exact[said], 0.99
        if not self.multilingual:
            return self.languages[0], 1.0
        primary, probability = self._model().classify(text)
        return self._by_primary.get(str(primary), self.languages[0]), float(probability)

    def decide(
        self, text: str, current: str, *, caller_turns: int, chosen: bool
    ) -> LanguageDecision:
        """The language this turn is read in, after the hysteresis rules (module docstring)."""
        asked = self.requested(text) if self.multilingual else None
        if asked is not None:
            return LanguageDecision(asked, requested=True)
        found = self.detect(text) if self.multilingual else None
        if found is None or found[0] == current:
            return LanguageDecision(current)
        language, probability = found
        words = len(normalise_utterance(text).split())
        if caller_turns == 0 and not chosen:
            switch = probability >= FIRST_TURN
        elif chosen:
            switch = words > MIN_WORDS and probability >= CHOSEN_TURN
        else:
            switch = words >= MIN_WORDS and probability >= LATER_TURN
        return LanguageDecision(language if switch else current, probability=probability)

    def _model(self) -> Any:
        with self._lock:
            if self._identifier is None:
                # Loading the model takes ~0.5 s: once per detector, on first use.
                from py3langid.langid import (  # type: ignore[import-untyped]
                    MODEL_FILE,
                    LanguageIdentifier,
                )

                identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                identifier.set_languages(sorted(self._by_primary))
                self._identifier = identifier
            return self._identifier
