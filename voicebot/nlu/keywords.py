"""A lexical intent classifier: the fallback when the embedding model is not on the machine.

It is much weaker than the embedding classifier (it knows words, not meanings), so it is only
used when ``SentenceEmbedder`` cannot load, with a warning that says how to get the model. It
keeps ``voicebot chat`` usable on a machine that has nothing but the package.
"""

from __future__ import annotations

from collections.abc import Mapping

from rapidfuzz import fuzz

from voicebot.nlu.intents import Classification, IntentScore, IntentSpec, normalise_utterance


class KeywordClassifier:
    def __init__(self, intents: Mapping[str, IntentSpec], *, threshold: float) -> None:
        self.threshold = threshold
        self._examples = {
            name: [normalise_utterance(e) for e in spec.examples if e.strip()]
            for name, spec in intents.items()
        }

    def classify(self, text: str) -> Classification:
        utterance = normalise_utterance(text)
        if not utterance:
            return Classification(intent=None, confidence=0.0, ranking=())
        scores = []
        for name, examples in self._examples.items():
            best = 0.0
            for example in examples:
                if example == utterance:
                    best = 1.0
                    break
                # token_set_ratio forgives extra words ("I want to pay my bill please").
                best = max(best, fuzz.token_set_ratio(utterance, example) / 100 * 0.9)
            scores.append(IntentScore(name, round(best, 4)))
        ranking = tuple(sorted(scores, key=lambda s: -s.confidence)[:5])
        top = ranking[0] if ranking else None
        if top is None or top.confidence < self.threshold:
            return Classification(
                intent=None, confidence=top.confidence if top else 0.0, ranking=ranking
            )
        return Classification(intent=top.name, confidence=top.confidence, ranking=ranking)
