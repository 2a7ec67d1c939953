"""The offline intent classifier: sentence embeddings, a linear head, nearest examples.

Every intent brings a few example utterances (and optionally a description). They are embedded
once, at construction, into one matrix; classifying an utterance is one embedding plus one
matrix-vector product, so the cost is the embedder's (a few milliseconds on a laptop CPU).

Scoring, per intent::

    raw  = 0.7 * best cosine + 0.3 * mean of the best 3 cosines     (over its examples)
    conf = 1 / (1 + exp(-(raw - 0.40) / 0.05))                        (logistic calibration)

The blend rewards an intent that several examples agree on over one whose single stray example
happens to be close. The logistic was fitted by eye on a 15-intent telecom set with
all-MiniLM-L6-v2: out-of-scope utterances top out at a raw score of about 0.37 (confidence
~0.35), paraphrases of an intent start at about 0.43 (~0.65) and typical ones score 0.6-0.9
(>0.98). A confidence of 0.5 is the boundary (raw 0.40); the default threshold of 0.55
(raw ~0.41) leaves a small margin on the side of "out of scope".

Two adjustments on the top intent only:

* An utterance that equals an example after normalisation (case, punctuation, hesitations and
  "please" removed) gets confidence 1.0: single words such as "agent" or "operator" embed poorly,
  and a designer who wrote the exact phrase means it.
* When the two best intents are within 0.05 raw of each other and the best is not strong
  (raw < 0.65), the confidence is scaled down by up to half: the model cannot tell them apart.

Two scorers (``VOICEBOT_INTENT_CLASSIFIER``):

* ``nearest``: the above alone. The top intent by calibrated score is the answer.
* ``linear`` (default): a multinomial logistic regression (:mod:`voicebot.nlu.linear_head`),
  trained at construction on the same example and description vectors, chooses the intent
  among those whose raw similarity is within 0.15 of the best (it arbitrates near-ties; it does
  not overrule examples that are clearly closer to another intent); the
  confidence is still that intent's calibrated nearest-example score, so it means what it meant
  before and the same threshold rejects out-of-scope text (a softmax over the known intents
  cannot say "none of these"). The ranking follows the head's order, each confidence capped by
  the one before it so the list stays sorted. The margin rule asks the head instead: when its
  second choice has more than 0.8 of the first's probability (and the similarity is not strong),
  the confidence is scaled down the same way, by up to half for a dead heat. On a public
  few-shot set (benchmarks/intent_accuracy.py) the head picks the right intent ~4.5 points more
  often and rejects out-of-scope text at least as often.

Known weakness: one- or two-word utterances that are not examples ("hello", "internet") sit
closer to everything than sentences do and can pass the threshold for a loosely related intent;
where such words matter, add them as examples (they then match exactly).
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from voicebot.nlu.linear_head import LinearHead

if TYPE_CHECKING:
    from voicebot.config import Settings

__all__ = [
    "DEFAULT_THRESHOLD",
    "Classification",
    "IntentClassifier",
    "IntentDefinition",
    "IntentScore",
    "IntentSpec",
    "Scorer",
    "TextEmbedder",
    "build_intent_classifier",
    "normalise_utterance",
]

logger = logging.getLogger(__name__)

#: Recommended confidence threshold for this calibration (see the module docstring).
DEFAULT_THRESHOLD: Final = 0.55
#: How many intents :attr:`Classification.ranking` lists.
RANKING_SIZE: Final = 5

# Weight of the best example versus the mean of the best _TOP_K (see the module docstring).
_BEST_WEIGHT: Final = 0.7
_TOP_K: Final = 3
# A description is written about the caller ("Caller wants to pay their bill"), not by one, so
# it scores lower against real utterances than an example would and all descriptions resemble
# each other. It is one more example, discounted, which mostly matters for intents with few or
# no examples.
_DESCRIPTION_WEIGHT: Final = 0.9
# Logistic calibration of the raw score (cosine-like, -1..1) into a confidence in 0..1.
_CALIBRATION_CENTRE: Final = 0.40
_CALIBRATION_SCALE: Final = 0.05
# Ambiguity rule: top two closer than this (raw), and the best below _AMBIGUOUS_BELOW.
_AMBIGUOUS_MARGIN: Final = 0.05
_AMBIGUOUS_BELOW: Final = 0.65
_AMBIGUOUS_MAX_PENALTY: Final = 0.5
# The linear scorer's version: the head's second choice has at least this share of the first's
# probability (a ratio, so it does not depend on how many intents share the probability mass).
_HEAD_AMBIGUOUS_RATIO: Final = 0.8
# The linear scorer chooses among intents whose raw similarity is within this of the best one.
_HEAD_CANDIDATE_MARGIN: Final = 0.15

# Sounds and politeness that ASR transcribes but that do not change what was asked; dropped
# only for the exact-match comparison, never before embedding.
_FILLERS: Final = frozenset(
    {"um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "hmm", "mm", "oh", "please", "pls"}
)
_APOSTROPHES = re.compile(r"['’`´]")
_NON_WORD = re.compile(r"[^\w\s]|_")

Vector = npt.NDArray[np.float32]
#: ``linear``: the logistic-regression head chooses, similarity gates; ``nearest``: similarity.
Scorer = Literal["linear", "nearest"]


class IntentSpec(Protocol):
    """What the classifier needs from an intent; the flow schema's ``Intent`` model fits."""

    @property
    def examples(self) -> Sequence[str]: ...

    @property
    def description(self) -> str | None: ...


class TextEmbedder(Protocol):
    """Anything that turns texts into unit-length rows, like ``SentenceEmbedder``."""

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class IntentDefinition:
    """A plain :class:`IntentSpec`, for code and tests that do not load flow files."""

    examples: Sequence[str]
    description: str | None = None


@dataclass(frozen=True)
class IntentScore:
    """One intent's calibrated confidence (0..1) for an utterance."""

    name: str
    confidence: float


@dataclass(frozen=True)
class Classification:
    """The classifier's answer for one utterance.

    ``intent`` is None when ``confidence`` is below the threshold (out of scope) or the text was
    empty. ``ranking`` holds the best intents (up to five) by their own confidence, best first;
    ``confidence`` is the decision's confidence, which can be lower than ``ranking[0]`` when the
    top two intents were too close to tell apart. (With the linear scorer the ranking is in the
    head's order, each confidence capped by the one before it.)
    """

    intent: str | None
    confidence: float
    ranking: tuple[IntentScore, ...]


_EMPTY = Classification(intent=None, confidence=0.0, ranking=())


def normalise_utterance(text: str) -> str:
    """The form used for exact matching: casefolded words, no punctuation or hesitations.

    ``"Agent, please!"`` and ``"agent"`` both become ``"agent"``; ``"What's my balance?"``
    becomes ``"whats my balance"``.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = _NON_WORD.sub(" ", _APOSTROPHES.sub("", folded)).split()
    kept = [w for w in words if w not in _FILLERS]
    # An utterance made only of fillers ("um") keeps them, so it can still match itself.
    return " ".join(kept or words)


class IntentClassifier:
    """Classifies utterances into one of a fixed set of intents, or none.

    Built once per set of intents (it embeds every example); :meth:`classify` is then cheap and
    safe to call from several threads, provided the embedder is (``SentenceEmbedder`` is).
    """

    def __init__(
        self,
        *,
        embedder: TextEmbedder,
        intents: Mapping[str, IntentSpec],
        threshold: float = DEFAULT_THRESHOLD,
        scorer: Scorer = "linear",
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be between 0 and 1")
        if scorer not in ("linear", "nearest"):
            raise ValueError("scorer must be 'linear' or 'nearest'")
        started = time.perf_counter()
        self._embedder = embedder
        self._threshold = threshold
        self._names: tuple[str, ...] = tuple(intents)

        texts: list[str] = []
        owners: list[int] = []
        weights: list[float] = []
        exact: dict[str, int] = {}  # normalised example -> row of texts
        ambiguous: set[str] = set()
        for index, name in enumerate(self._names):
            spec = intents[name]
            examples = [e for e in spec.examples if e.strip()]
            description = (spec.description or "").strip()
            if not examples and not description:
                raise ValueError(f"intent {name!r} has no examples and no description")
            for example in examples:
                key = normalise_utterance(example)
                if key in exact and owners[exact[key]] != index:
                    ambiguous.add(key)
                exact.setdefault(key, len(texts))
                texts.append(example)
                owners.append(index)
                weights.append(1.0)
            if description:
                texts.append(description)
                owners.append(index)
                weights.append(_DESCRIPTION_WEIGHT)
        if ambiguous:
            # The same phrase under two intents cannot be an exact answer; leave it to the
            # embeddings and tell the designer. Example texts stay out of the log on principle.
            logger.warning(
                "intent example shared by several intents",
                extra={"count": len(ambiguous)},
            )
        self._exact = {k: row for k, row in exact.items() if k not in ambiguous}
        self._owners = np.asarray(owners, dtype=np.intp)

        embedded = np.asarray(embedder.embed(texts), dtype=np.float32)
        if embedded.shape[0] != len(texts):
            raise ValueError("the embedder returned a different number of vectors than texts")
        self._example_vectors = embedded
        # Folding the weights into the matrix keeps scoring a single product: the discounted
        # rows simply produce discounted cosines.
        self._weighted = np.ascontiguousarray(
            embedded * np.asarray(weights, dtype=np.float32)[:, None]
        )
        # slots[i, j] is the j-th row of intent i, or the sentinel row len(texts) (score -inf)
        # for intents with fewer rows, so per-intent max and top-k are array operations.
        counts = np.bincount(self._owners, minlength=len(self._names))
        width = int(counts.max()) if len(self._names) else 0
        self._slots = np.full((len(self._names), width), len(texts), dtype=np.intp)
        filled = np.zeros(len(self._names), dtype=np.intp)
        for row, owner in enumerate(owners):
            self._slots[owner, filled[owner]] = row
            filled[owner] += 1
        self._top_k_counts = np.minimum(counts, _TOP_K).astype(np.float32)

        self._scorer: Scorer = scorer
        self._head: LinearHead | None = None
        if scorer == "linear" and self._names:
            self._head = LinearHead(
                vectors=embedded, labels=self._owners, n_classes=len(self._names), weights=weights
            )

        logger.info(
            "intent classifier built",
            extra={
                "intents": len(self._names),
                "examples": len(texts),
                "scorer": scorer,
                "head_train_ms": round(self._head.train_seconds * 1000, 1) if self._head else 0.0,
                "build_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    @property
    def intents(self) -> tuple[str, ...]:
        """The intent names, in the order given."""
        return self._names

    @property
    def scorer(self) -> Scorer:
        """Which scorer chooses the intent (see the module docstring)."""
        return self._scorer

    @property
    def head(self) -> LinearHead | None:
        """The trained linear head, or None for the nearest-example scorer."""
        return self._head

    @property
    def threshold(self) -> float:
        """Confidence below which an utterance is out of scope."""
        return self._threshold

    def classify(self, text: str) -> Classification:
        """Classify one utterance. Empty or blank text is out of scope with confidence 0."""
        return self.classify_many([text])[0]

    def classify_many(self, texts: Sequence[str]) -> list[Classification]:
        """Classify several utterances with one batched embedding; order follows ``texts``."""
        if isinstance(texts, str):
            raise TypeError("classify_many() takes a sequence of texts; use classify()")
        results: list[Classification] = [_EMPTY] * len(texts)
        if not self._names:
            return results

        vectors: dict[int, Vector] = {}
        exact_hits: dict[int, int] = {}  # position in texts -> intent index
        to_embed: list[int] = []
        for position, text in enumerate(texts):
            if not text.strip():
                continue
            row = self._exact.get(normalise_utterance(text))
            if row is None:
                to_embed.append(position)
            else:
                # The example's own vector stands in for the utterance's: they differ only in
                # case and punctuation, and it saves the model call.
                vectors[position] = self._example_vectors[row]
                exact_hits[position] = int(self._owners[row])
        if to_embed:
            embedded = self._embedder.embed([texts[p] for p in to_embed])
            for position, vector in zip(to_embed, embedded, strict=True):
                vectors[position] = vector
        if not vectors:
            return results

        positions = sorted(vectors)
        stacked = np.stack([vectors[p] for p in positions])
        raw = self._raw_scores(stacked)
        if self._head is None:
            for position, scores in zip(positions, raw, strict=True):
                results[position] = self._decide(scores, exact_hits.get(position))
        else:
            probabilities = self._head.probabilities(stacked)
            for position, scores, probs in zip(positions, raw, probabilities, strict=True):
                results[position] = self._decide_linear(scores, probs, exact_hits.get(position))
        return results

    def _raw_scores(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Raw score of every intent for every vector: shape (n_vectors, n_intents)."""
        similarities = vectors @ self._weighted.T
        sentinel = np.full((similarities.shape[0], 1), -np.inf, dtype=np.float32)
        per_intent = np.concatenate([similarities, sentinel], axis=1)[:, self._slots]
        # Descending within each intent; the -inf padding sorts last and is zeroed before the
        # mean, whose divisor is the intent's real number of rows (capped at k).
        best_first = -np.sort(-per_intent, axis=2)[:, :, :_TOP_K]
        best = best_first[:, :, 0]
        top_k_mean = np.where(np.isfinite(best_first), best_first, 0.0).sum(axis=2)
        top_k_mean /= self._top_k_counts
        return np.asarray(_BEST_WEIGHT * best + (1.0 - _BEST_WEIGHT) * top_k_mean)

    def _decide(self, raw: npt.NDArray[np.float32], exact_intent: int | None) -> Classification:
        """Calibrate one utterance's raw scores and apply the exact-match and margin rules."""
        confidences = _calibrate(raw)
        if exact_intent is not None:
            confidences[exact_intent] = 1.0
        # Stable sort on the negated confidences: ties keep the designer's intent order.
        order = np.argsort(-confidences, kind="stable")
        ranking = tuple(
            IntentScore(name=self._names[i], confidence=float(confidences[i]))
            for i in order[:RANKING_SIZE]
        )
        best = int(order[0])
        confidence = float(confidences[best])
        if exact_intent is None and len(order) > 1:
            margin = float(raw[best] - raw[order[1]])
            if margin < _AMBIGUOUS_MARGIN and raw[best] < _AMBIGUOUS_BELOW:
                confidence *= 1.0 - _AMBIGUOUS_MAX_PENALTY * (1.0 - margin / _AMBIGUOUS_MARGIN)
        return self._classification(best, confidence, ranking, exact=exact_intent is not None)

    def _decide_linear(
        self,
        raw: npt.NDArray[np.float32],
        probabilities: npt.NDArray[np.float64],
        exact_intent: int | None,
    ) -> Classification:
        """The head's choice, with the similarity confidence of what it chose."""
        similarity = _calibrate(raw)
        # The head arbitrates between the intents whose examples are about as close as the
        # closest; one clearly further away is not chosen over it. Without this a misheard word
        # swung a request the examples placed firmly ("... a new line" for "a new one": 0.70
        # similarity to `question`, 0.49 to `upgrade`) to the head's weak favourite (p 0.45).
        near = raw >= raw.max() - _HEAD_CANDIDATE_MARGIN
        # Stable: equal probabilities (a one-intent bot) keep the designer's order.
        by_head = [int(i) for i in np.argsort(-probabilities, kind="stable")]
        order = [i for i in by_head if near[i]] + [i for i in by_head if not near[i]]
        if exact_intent is not None:
            similarity[exact_intent] = 1.0
            order.remove(exact_intent)
            order.insert(0, exact_intent)
        scores: list[IntentScore] = []
        ceiling = 1.0
        for index in order[:RANKING_SIZE]:
            # Capped by the intent before it: the head preferred that one, so a lower-ranked
            # intent's higher similarity must not read as a better answer.
            ceiling = min(ceiling, float(similarity[index]))
            scores.append(IntentScore(name=self._names[index], confidence=ceiling))
        best = order[0]
        confidence = scores[0].confidence
        if exact_intent is None and len(order) > 1:
            ratio = float(probabilities[order[1]] / probabilities[best])
            if ratio > _HEAD_AMBIGUOUS_RATIO and raw[best] < _AMBIGUOUS_BELOW:
                closeness = (ratio - _HEAD_AMBIGUOUS_RATIO) / (1.0 - _HEAD_AMBIGUOUS_RATIO)
                confidence *= 1.0 - _AMBIGUOUS_MAX_PENALTY * closeness
        return self._classification(best, confidence, tuple(scores), exact=exact_intent is not None)

    def _classification(
        self, best: int, confidence: float, ranking: tuple[IntentScore, ...], *, exact: bool
    ) -> Classification:
        intent = self._names[best] if confidence >= self._threshold else None
        logger.debug(
            "intent classified",
            extra={"intent": intent, "confidence": round(confidence, 3), "exact": exact},
        )
        return Classification(intent=intent, confidence=confidence, ranking=ranking)


def _calibrate(raw: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """The logistic calibration of raw scores into confidences (see the module docstring)."""
    return np.asarray(
        1.0 / (1.0 + np.exp(-(raw.astype(np.float64) - _CALIBRATION_CENTRE) / _CALIBRATION_SCALE))
    )


def build_intent_classifier(
    settings: Settings, intents: Mapping[str, IntentSpec]
) -> IntentClassifier:
    """A classifier on the process's shared embedder, with the settings' threshold and scorer.

    Loads the model on first use (blocking): call it off the event loop.
    """
    from voicebot.nlu.embedder import load_embedder  # onnxruntime only when a model is wanted

    return IntentClassifier(
        embedder=load_embedder(settings),
        intents=intents,
        threshold=settings.intent_threshold,
        scorer=settings.intent_classifier,
    )
