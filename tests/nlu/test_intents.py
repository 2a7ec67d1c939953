"""IntentClassifier: real-model accuracy on a telecom set, and its rules on a fake embedder."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import BaseModel

from voicebot.config import Settings
from voicebot.nlu.intents import (
    Classification,
    IntentClassifier,
    IntentDefinition,
    IntentScore,
    build_intent_classifier,
    normalise_utterance,
)

MODEL_DIR = Settings().resolved_model_dir()
needs_model = pytest.mark.skipif(
    MODEL_DIR is None,
    reason="no all-MiniLM-L6-v2 ONNX export found: set VOICEBOT_EMBEDDING_MODEL_DIR to a "
    "directory containing onnx/model.onnx (a checkout beside /work/shared/models finds it)",
)


class Intent(BaseModel):
    """Shaped like the flow schema's Intent model, which the classifier must accept."""

    description: str | None = None
    examples: list[str] = []


TELECOM: dict[str, Intent] = {
    "check_balance": Intent(
        description="Caller wants to know their account balance or remaining allowance",
        examples=[
            "what's my balance",
            "how much credit do I have left",
            "check my account balance",
            "how many minutes have I got left",
            "what is my remaining data allowance",
            "how much money is on my account",
        ],
    ),
    "pay_bill": Intent(
        description="Caller wants to make a payment",
        examples=[
            "I want to pay my bill",
            "can I make a payment",
            "I'd like to pay by card",
            "settle my bill",
            "I need to pay my phone bill",
            "take a payment please",
        ],
    ),
    "report_fault": Intent(
        description="Caller reports that their line or service is not working",
        examples=[
            "my phone line isn't working",
            "I have no signal",
            "my internet is down",
            "report a fault",
            "there's no dial tone",
            "I can't make any calls",
        ],
    ),
    "opening_hours": Intent(
        examples=[
            "what are your opening hours",
            "when are you open",
            "what time does the shop close",
            "are you open on sundays",
            "opening times",
        ],
    ),
    "speak_to_agent": Intent(
        description="Caller wants to talk to a human agent",
        examples=[
            "agent",
            "operator",
            "speak to a person",
            "can I talk to a real human",
            "put me through to someone",
            "I want to speak to an advisor",
        ],
    ),
    "repeat": Intent(
        examples=["repeat", "say that again", "sorry what was that", "can you repeat that"],
    ),
    "goodbye": Intent(
        examples=["goodbye", "bye", "that's all thanks", "no that's everything", "thanks bye"],
    ),
    "roaming": Intent(
        description="Caller asks about using their phone abroad",
        examples=[
            "does my phone work abroad",
            "roaming charges",
            "how much does it cost to use data in Europe",
            "can I use my minutes overseas",
        ],
    ),
    "cancel_contract": Intent(
        examples=[
            "I want to cancel my contract",
            "I'd like to end my contract",
            "terminate my service",
            "I'm switching to another provider",
            "close my account",
        ],
    ),
    "lost_phone": Intent(
        examples=[
            "I've lost my phone",
            "my phone was stolen",
            "block my SIM",
            "someone stole my mobile",
            "I can't find my phone",
        ],
    ),
    "moving_house": Intent(
        examples=[
            "I'm moving house",
            "I need to change my address",
            "move my broadband to my new home",
            "transfer my service to a new address",
        ],
    ),
    "broadband_speed": Intent(
        examples=[
            "my internet is really slow",
            "broadband speed is terrible",
            "why is my wifi so slow",
            "pages take ages to load",
        ],
    ),
    "billing_question": Intent(
        examples=[
            "why is my bill so high",
            "I don't understand my bill",
            "there's a charge I don't recognise",
            "I've been overcharged",
        ],
    ),
}

PARAPHRASES = [
    ("how much credit is left on my phone", "check_balance"),
    ("what's my remaining data", "check_balance"),
    ("I want to pay with my debit card", "pay_bill"),
    ("can I pay the outstanding amount now", "pay_bill"),
    ("my landline has gone dead", "report_fault"),
    ("my mobile has no reception", "report_fault"),
    ("what time do you close today", "opening_hours"),
    ("are you open on saturday", "opening_hours"),
    ("I want to talk to a human being", "speak_to_agent"),
    ("can I speak to someone please", "speak_to_agent"),
    ("sorry could you say that again", "repeat"),
    ("ok cheers bye", "goodbye"),
    ("will my phone work in France", "roaming"),
    ("what are the charges for using my mobile abroad", "roaming"),
    ("I want to end my contract with you", "cancel_contract"),
    ("somebody stole my phone", "lost_phone"),
    ("I've misplaced my mobile", "lost_phone"),
    ("I'm moving to a new house next week", "moving_house"),
    ("we are changing address", "moving_house"),
    ("my wifi is so slow", "broadband_speed"),
    ("why has my bill gone up", "billing_question"),
]

OUT_OF_SCOPE = [
    "what's the capital of France",
    "blue elephants",
    "recipe for banana bread",
    "who won the football last night",
    "how tall is mount everest",
    "the quick brown fox jumps over the lazy dog",
]


@pytest.fixture(scope="module")
def classifier() -> IntentClassifier:
    assert MODEL_DIR is not None
    return build_intent_classifier(Settings(intent_threshold=0.55), TELECOM)


@needs_model
@pytest.mark.parametrize(("text", "expected"), PARAPHRASES)
def test_paraphrases_find_their_intent(
    classifier: IntentClassifier, text: str, expected: str
) -> None:
    result = classifier.classify(text)
    assert result.intent == expected, result.ranking[:2]
    assert result.confidence >= classifier.threshold


@needs_model
@pytest.mark.parametrize("text", OUT_OF_SCOPE)
def test_out_of_scope_has_no_intent(classifier: IntentClassifier, text: str) -> None:
    result = classifier.classify(text)
    assert result.intent is None, result.ranking[:2]
    assert result.confidence < classifier.threshold
    assert len(result.ranking) == 5  # still ranked, for logs and the LLM fallback


@needs_model
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("agent", "speak_to_agent"),
        ("Operator!", "speak_to_agent"),
        ("um, agent please", "speak_to_agent"),
        ("Repeat.", "repeat"),
        ("BYE", "goodbye"),
        ("What's my balance?", "check_balance"),
    ],
)
def test_exact_example_matches_are_certain(
    classifier: IntentClassifier, text: str, expected: str
) -> None:
    result = classifier.classify(text)
    assert result.intent == expected
    assert result.confidence == pytest.approx(1.0)
    assert result.ranking[0] == IntentScore(name=expected, confidence=1.0)


@needs_model
def test_ranking_is_sorted_and_bounded(classifier: IntentClassifier) -> None:
    for text in ["my internet keeps cutting out", "blue elephants", "agent"]:
        ranking = classifier.classify(text).ranking
        confidences = [score.confidence for score in ranking]
        assert confidences == sorted(confidences, reverse=True)
        assert len(ranking) == 5
        assert len({score.name for score in ranking}) == 5
        assert all(0.0 <= c <= 1.0 for c in confidences)


@needs_model
def test_classify_many_matches_classify(classifier: IntentClassifier) -> None:
    texts = ["somebody stole my phone", "", "agent", "blue elephants", "   ", "bye"]
    many = classifier.classify_many(texts)
    assert len(many) == len(texts)
    for text, batched in zip(texts, many, strict=True):
        single = classifier.classify(text)
        assert batched.intent == single.intent
        assert batched.confidence == pytest.approx(single.confidence, abs=1e-3)
    assert many[1].intent is None
    assert classifier.classify_many([]) == []


@needs_model
def test_description_only_intent() -> None:
    with_store = dict(TELECOM)
    with_store["store_locator"] = Intent(description="where is my nearest shop or store")
    built = build_intent_classifier(Settings(), with_store)
    assert built.classify("where's your nearest store").intent == "store_locator"


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_out_of_scope(text: str) -> None:
    classifier = IntentClassifier(
        embedder=FakeEmbedder(), intents={"a": IntentDefinition(examples=["alpha"])}
    )
    assert classifier.classify(text) == Classification(intent=None, confidence=0.0, ranking=())


# --- Rules, on a fake embedder whose vectors we choose -------------------------------------


class FakeEmbedder:
    """Maps known texts to fixed unit vectors; anything else is orthogonal to them all."""

    def __init__(self, vectors: dict[str, Sequence[float]] | None = None) -> None:
        self.vectors = {k: np.asarray(v, dtype=np.float32) for k, v in (vectors or {}).items()}
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        rows = [self.vectors.get(t, np.array([0.0, 0.0, 0.0, 1.0])) for t in texts]
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), 4)
        return np.asarray(out / np.linalg.norm(out, axis=1, keepdims=True), dtype=np.float32)


def test_exact_match_skips_the_model() -> None:
    fake = FakeEmbedder({"agent": [1, 0, 0, 0], "pay": [0, 1, 0, 0]})
    classifier = IntentClassifier(
        embedder=fake,
        intents={
            "human": IntentDefinition(examples=["agent"]),
            "pay": IntentDefinition(examples=["pay"]),
        },
    )
    calls_after_build = len(fake.calls)
    result = classifier.classify("Agent, please!")
    assert result.intent == "human"
    assert result.confidence == 1.0
    assert len(fake.calls) == calls_after_build


def test_near_tie_lowers_confidence() -> None:
    # The utterance is at cosine 0.5 from both intents' only example: each intent alone would be
    # confident (raw 0.5), but the decision between them is a coin toss.
    fake = FakeEmbedder(
        {"a": [1, 0, 0, 0], "b": [0, 1, 0, 0], "between": [0.5, 0.5, np.sqrt(0.5), 0]}
    )
    classifier = IntentClassifier(
        embedder=fake,
        intents={"a": IntentDefinition(examples=["a"]), "b": IntentDefinition(examples=["b"])},
    )
    result = classifier.classify("between")
    assert result.ranking[0].confidence > 0.8
    assert result.confidence == pytest.approx(result.ranking[0].confidence / 2, rel=1e-3)
    assert result.intent is None


def test_clear_winner_keeps_its_confidence() -> None:
    fake = FakeEmbedder({"a": [1, 0, 0, 0], "b": [0, 1, 0, 0], "near a": [0.9, 0.1, 0.4, 0]})
    classifier = IntentClassifier(
        embedder=fake,
        intents={"a": IntentDefinition(examples=["a"]), "b": IntentDefinition(examples=["b"])},
    )
    result = classifier.classify("near a")
    assert result.intent == "a"
    assert result.confidence == result.ranking[0].confidence


def test_threshold_decides_out_of_scope() -> None:
    fake = FakeEmbedder({"a": [1, 0, 0, 0], "b": [0, 1, 0, 0], "near a": [0.9, 0.1, 0.4, 0]})
    intents = {"a": IntentDefinition(examples=["a"]), "b": IntentDefinition(examples=["b"])}
    strict = IntentClassifier(embedder=fake, intents=intents, threshold=1.0)
    lenient = IntentClassifier(embedder=fake, intents=intents, threshold=0.0)
    assert strict.classify("near a").intent is None
    assert strict.classify("a").intent == "a"  # an exact match is confidence 1.0
    assert lenient.classify("unknown").intent is not None


def test_shared_example_is_not_an_exact_match(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeEmbedder({"help": [1, 0, 0, 0], "x": [0, 1, 0, 0]})
    with caplog.at_level(logging.WARNING, logger="voicebot.nlu.intents"):
        classifier = IntentClassifier(
            embedder=fake,
            intents={
                "a": IntentDefinition(examples=["help"]),
                "b": IntentDefinition(examples=["Help!", "x"]),
            },
        )
    assert "intent example shared by several intents" in caplog.messages
    result = classifier.classify("help")
    assert result.confidence < 1.0  # decided by the embeddings: "b" has a second example


def test_invalid_definitions_are_rejected() -> None:
    with pytest.raises(ValueError, match="'empty'"):
        IntentClassifier(
            embedder=FakeEmbedder(), intents={"empty": IntentDefinition(examples=[" "])}
        )
    with pytest.raises(ValueError, match="threshold"):
        IntentClassifier(embedder=FakeEmbedder(), intents={}, threshold=1.5)


def test_no_intents_means_no_intent() -> None:
    classifier = IntentClassifier(embedder=FakeEmbedder(), intents={})
    assert classifier.classify("agent").intent is None


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("Agent, please!", "agent"),
        ("What's my balance?", "whats my balance"),
        ("um", "um"),
        ("  Uh,  BYE.  ", "bye"),
        ("I’d like to pay", "id like to pay"),
    ],
)
def test_normalise_utterance(text: str, normalised: str) -> None:
    assert normalise_utterance(text) == normalised
