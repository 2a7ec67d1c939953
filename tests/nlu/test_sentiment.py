"""Lexicon sentiment: single turns and the per-call tracker."""

from __future__ import annotations

import pytest

from voicebot.nlu.sentiment import Sentiment, SentimentTracker, analyse


@pytest.mark.parametrize(
    "text",
    [
        "this is absolutely ridiculous, I'm furious, your service is useless",
        "I'm sick and tired of this, it's an absolute joke",
        "this is the third time I've called and it's still not fixed, it's ridiculous",
        "I have never been so angry in my life",
        "your service is fucking useless",
    ],
)
def test_clearly_angry(text: str) -> None:
    result = analyse(text)
    assert result.anger > 0.8
    assert result.score < -0.5


@pytest.mark.parametrize(
    "text",
    [
        "what's my balance",
        "I'd like to pay my bill",
        "can you tell me your opening hours",
        "good morning, I need to change my address",
        "my phone was stolen",
        "tell me a joke",
    ],
)
def test_neutral(text: str) -> None:
    result = analyse(text)
    assert result.anger < 0.05
    assert abs(result.score) < 0.2


@pytest.mark.parametrize(
    "text",
    [
        "thank you so much, that's brilliant",
        "great, that's really helpful, cheers",
        "no, that's great thanks",
    ],
)
def test_positive(text: str) -> None:
    result = analyse(text)
    assert result.anger == 0.0
    assert result.score > 0.5


def test_empty_text_is_neutral() -> None:
    assert analyse("") == Sentiment(anger=0.0, score=0.0)
    assert analyse("  ...  ") == Sentiment(anger=0.0, score=0.0)


def test_negated_positive_is_negative_and_mildly_annoyed() -> None:
    result = analyse("I'm not happy with this")
    assert result.score < -0.2
    assert 0.0 < result.anger < 0.4
    assert analyse("I'm not very happy").score < result.score


@pytest.mark.parametrize("text", ["not bad", "that's not bad at all", "not a problem"])
def test_negated_negative_is_not_angry(text: str) -> None:
    result = analyse(text)
    assert result.anger == 0.0
    assert result.score >= 0.0


def test_negation_stays_in_its_clause() -> None:
    assert analyse("I'm not angry, but this is ridiculous").anger == pytest.approx(
        analyse("this is ridiculous").anger
    )
    assert analyse("I'm not angry").anger == 0.0


def test_no_as_an_answer_does_not_negate() -> None:
    assert analyse("no that's great thanks").score > 0.5
    assert analyse("no thanks").score == 0.0


def test_intensifiers_scale() -> None:
    plain = analyse("that's annoying").anger
    assert analyse("that's really annoying").anger > plain
    assert analyse("that's a bit annoying").anger < plain


def test_swear_word_intensifies_the_next_term() -> None:
    assert analyse("fucking useless").anger > analyse("useless").anger
    brilliant = analyse("bloody brilliant")
    assert brilliant.anger == 0.0
    assert brilliant.score > 0.5
    assert analyse("oh for fuck sake").anger > 0.8


def test_mild_signals_stay_mild() -> None:
    assert 0.1 < analyse("I want to cancel my contract").anger < 0.4
    assert 0.4 <= analyse("I'm fed up").anger <= 0.6


def test_typed_emphasis_strengthens_anger_only() -> None:
    calm = analyse("this is useless")
    assert analyse("this is useless!!!").anger > calm.anger
    assert analyse("this is USELESS").anger > calm.anger
    assert (
        analyse("WHY IS THIS STILL NOT WORKING").anger
        > analyse("why is this still not working").anger
    )
    assert analyse("WHAT IS MY BALANCE!!").anger == 0.0


def test_tracker_ignores_one_mild_word() -> None:
    tracker = SentimentTracker()
    tracker.update("hi, what's my balance")
    turn = tracker.update("that's ridiculous")
    assert analyse("that's ridiculous").anger >= 0.6
    assert turn.anger < 0.4
    assert turn.score < 0


def test_tracker_strong_turn_counts_at_once() -> None:
    tracker = SentimentTracker()
    tracker.update("what's my balance")
    turn = tracker.update("this is absolutely ridiculous, I'm furious, your service is useless")
    assert turn.anger > 0.8
    assert tracker.anger == turn.anger


def test_tracker_escalates_on_repeated_annoyance_and_calms_down() -> None:
    tracker = SentimentTracker()
    levels = [tracker.update("that's ridiculous").anger for _ in range(4)]
    assert levels == sorted(levels)
    assert levels[-1] > 0.5
    after_thanks = tracker.update("ok thanks, that's great").anger
    assert after_thanks < levels[-1] * 0.6
    assert tracker.update("right").anger < after_thanks


def test_tracker_trend() -> None:
    tracker = SentimentTracker()
    assert tracker.trend == []
    assert tracker.anger == 0.0
    texts = ["what's my balance", "this is useless", "thank you, that's brilliant"]
    for text in texts:
        tracker.update(text)
    trend = tracker.trend
    assert trend == [analyse(t).score for t in texts]
    assert trend[0] == 0.0
    assert trend[1] < 0 < trend[2]
    assert len(tracker.anger_trend) == 3
    trend.append(1.0)  # a copy: the tracker's history is not changed from outside
    assert len(tracker.trend) == 3


def test_tracker_rejects_out_of_range_settings() -> None:
    with pytest.raises(ValueError, match="decay"):
        SentimentTracker(decay=1.5)
