"""The linear head: trained at load, used for the choice, gated by similarity, switchable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.linear_model import LogisticRegression

from voicebot.config import Settings
from voicebot.flows.loader import load_bot
from voicebot.nlu.intents import (
    IntentClassifier,
    IntentDefinition,
    IntentSpec,
    build_intent_classifier,
)
from voicebot.nlu.linear_head import LinearHead
from voicebot.runtime.bot import intent_specs

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = Settings().resolved_model_dir()
needs_model = pytest.mark.skipif(
    MODEL_DIR is None,
    reason="no all-MiniLM-L6-v2 ONNX export found: set VOICEBOT_EMBEDDING_MODEL_DIR to a "
    "directory containing onnx/model.onnx (a checkout beside /work/shared/models finds it)",
)

OUT_OF_SCOPE = [
    "what's the capital of France",
    "recipe for banana bread",
    "who won the football last night",
    "how tall is mount everest",
    "the quick brown fox jumps over the lazy dog",
    "can you book me a taxi to the station",
]

# From benchmarks/intent_accuracy.py, seed 0: the training examples of two ChatterBot corpus
# files (chatterbot-corpus 1.3.3, BSD-3-Clause). Nearest examples put "you are insecure" under
# emotion (it is close to "You are bragging"); the head, which sees that every psychology
# example is "you are <trait>", puts it under psychology, as the corpus does.
PSYCHOLOGY = [
    "you are not sincere",
    "you are critical",
    "you are disgusting",
    "you are uncultured",
    "you mumble",
    "you are not smart",
    "you are frenetic",
    "you are insensitive",
    "you are crazy",
    "you are clinical",
]
EMOTION = [
    "Do not worry",
    "Do you feel scared",
    "Tell me about relationships",
    "Are you intoxicated",
    "What makes you unhappy",
    "How angry",
    "Do not lie",
    "You are bragging",
    "You can not feel",
    "Something fun",
]


@pytest.fixture(scope="module")
def example_bot_intents() -> Mapping[str, IntentSpec]:
    settings = Settings(bot_dir=REPO)
    loaded = load_bot(REPO, env=settings.flow_env(), max_bytes=settings.max_flow_file_bytes)
    default = loaded.definition.bot.default_language
    # the English classifier: the example bot's intents have examples per language
    return intent_specs(loaded.definition.intents, default, default)


@needs_model
def test_the_head_is_trained_at_load(example_bot_intents: Mapping[str, IntentSpec]) -> None:
    classifier = build_intent_classifier(Settings(), example_bot_intents)
    assert classifier.scorer == "linear"
    head = classifier.head
    assert head is not None
    assert head.n_classes == len(example_bot_intents)
    assert head.train_seconds > 0


@needs_model
def test_the_setting_switches_scorers(
    example_bot_intents: Mapping[str, IntentSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBOT_INTENT_CLASSIFIER", "nearest")
    settings = Settings()
    assert settings.intent_classifier == "nearest"
    nearest = build_intent_classifier(settings, example_bot_intents)
    assert nearest.scorer == "nearest"
    assert nearest.head is None
    # The same utterance is classified by both; they agree on a clear one.
    linear = build_intent_classifier(Settings(intent_classifier="linear"), example_bot_intents)
    assert nearest.classify("I lost my phone on the bus").intent == "lost_phone"
    assert linear.classify("I lost my phone on the bus").intent == "lost_phone"


@needs_model
def test_the_head_fixes_a_nearest_example_mistake() -> None:
    intents = {
        "psychology": IntentDefinition(examples=PSYCHOLOGY),
        "emotion": IntentDefinition(examples=EMOTION),
    }
    nearest = build_intent_classifier(Settings(intent_classifier="nearest"), intents)
    linear = build_intent_classifier(Settings(intent_classifier="linear"), intents)
    assert nearest.classify("you are insecure").ranking[0].name == "emotion"
    result = linear.classify("you are insecure")
    assert result.intent == "psychology"
    assert result.confidence >= linear.threshold


@needs_model
def test_the_head_does_not_overrule_a_clearly_closer_intent(
    example_bot_intents: Mapping[str, IntentSpec],
) -> None:
    # Heard on audio for "my sim card is broken, can I get a new one": the examples put it
    # firmly under `question` (0.70 similarity against 0.49 for `upgrade`), while the head alone,
    # swayed by "new line", preferred `upgrade` (p 0.45). The head only arbitrates near-ties.
    classifier = build_intent_classifier(Settings(), example_bot_intents)
    heard = "my sim card is broken can i get a new line"
    probabilities = classifier.head.probabilities(classifier._embedder.embed([heard]))  # type: ignore[union-attr]
    assert classifier.intents[int(np.argmax(probabilities[0]))] == "upgrade"
    assert classifier.classify(heard).intent == "question"


@needs_model
@pytest.mark.parametrize("text", OUT_OF_SCOPE)
def test_out_of_scope_stays_below_the_threshold(
    example_bot_intents: Mapping[str, IntentSpec], text: str
) -> None:
    classifier = build_intent_classifier(Settings(), example_bot_intents)
    result = classifier.classify(text)
    assert result.intent is None, result.ranking[:2]
    assert result.confidence < classifier.threshold
    confidences = [score.confidence for score in result.ranking]
    assert len(confidences) == 5
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences)


@needs_model
def test_in_scope_confidences_are_probability_like(
    example_bot_intents: Mapping[str, IntentSpec],
) -> None:
    classifier = build_intent_classifier(Settings(), example_bot_intents)
    for text, expected in [
        ("my broadband has stopped working", "report_fault"),
        ("I'd like to settle what I owe", "pay_bill"),
        ("can I talk to a real person", "agent"),
    ]:
        result = classifier.classify(text)
        assert result.intent == expected, result.ranking[:2]
        assert classifier.threshold <= result.confidence <= 1.0
        assert result.ranking[0].name == expected
        assert result.ranking[0].confidence == pytest.approx(result.confidence)


# --- Degenerate bots and the head itself, on a fake embedder -----------------------------------


class FakeEmbedder:
    """Maps known texts to fixed unit vectors; anything else is orthogonal to them all."""

    def __init__(self, vectors: dict[str, Sequence[float]]) -> None:
        self.vectors = {k: np.asarray(v, dtype=np.float32) for k, v in vectors.items()}

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = [self.vectors.get(t, np.array([0.0, 0.0, 0.0, 1.0])) for t in texts]
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), 4)
        return np.asarray(out / np.linalg.norm(out, axis=1, keepdims=True), dtype=np.float32)


def test_a_bot_with_one_intent_and_one_example() -> None:
    fake = FakeEmbedder({"agent": [1, 0, 0, 0], "a person please": [0.9, 0.3, 0.3, 0]})
    classifier = IntentClassifier(
        embedder=fake, intents={"human": IntentDefinition(examples=["agent"])}, scorer="linear"
    )
    assert classifier.head is not None and classifier.head.n_classes == 1
    near = classifier.classify("a person please")
    assert near.intent == "human"
    assert 0.55 <= near.confidence <= 1.0
    far = classifier.classify("something else entirely")
    assert far.intent is None
    assert far.confidence < 0.01
    assert classifier.classify("Agent!").confidence == 1.0


def test_one_example_per_intent_and_a_description_only_intent() -> None:
    fake = FakeEmbedder(
        {
            "agent": [1, 0, 0, 0],
            "pay": [0, 1, 0, 0],
            "where is the shop": [0, 0, 1, 0],
            "near pay": [0.1, 0.9, 0.3, 0],
        }
    )
    classifier = IntentClassifier(
        embedder=fake,
        intents={
            "human": IntentDefinition(examples=["agent"]),
            "pay": IntentDefinition(examples=["pay"]),
            "store": IntentDefinition(examples=[], description="where is the shop"),
        },
        scorer="linear",
    )
    result = classifier.classify("near pay")
    assert result.intent == "pay"
    assert result.ranking[0].name == "pay"
    assert len(result.ranking) == 3


def test_an_unknown_scorer_is_rejected() -> None:
    with pytest.raises(ValueError, match="scorer"):
        IntentClassifier(
            embedder=FakeEmbedder({}),
            intents={"a": IntentDefinition(examples=["a"])},
            scorer="knn",  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("n_classes", [2, 3])
def test_head_probabilities_match_scikit_learn(n_classes: int) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(12 * n_classes, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_classes), 12)
    vectors[labels == 1, 0] += 1.0  # something to learn
    head = LinearHead(vectors=vectors, labels=labels, n_classes=n_classes, c=10.0)
    reference = LogisticRegression(C=10.0, class_weight="balanced", max_iter=500).fit(
        vectors.astype(np.float64), labels
    )
    probe = rng.normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_allclose(
        head.probabilities(probe), reference.predict_proba(probe.astype(np.float64)), atol=1e-3
    )


def test_head_rejects_inconsistent_training_data() -> None:
    vectors = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match="length"):
        LinearHead(vectors=vectors, labels=[0, 1], n_classes=2)
    with pytest.raises(ValueError, match="every class"):
        LinearHead(vectors=vectors, labels=[0, 0, 0, 0], n_classes=2)
