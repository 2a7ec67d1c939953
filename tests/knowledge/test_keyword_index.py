"""The BM25 half of retrieval."""

from __future__ import annotations

from voicebot.knowledge.keyword_index import KeywordIndex, keywords


def test_keywords_drop_filler_and_meet_word_forms() -> None:
    assert keywords("Hi, I was wondering how much you charge for paper bills?") == [
        "charg",
        "paper",
        "bill",
    ]
    assert keywords("charges charged charging") == ["charg"] * 3
    assert keywords("no signal, turn off 4G") == ["no", "signal", "turn", "off", "4g"]


def test_scores_are_the_share_of_question_words_found() -> None:
    index = KeywordIndex(
        ["paper bills cost money", "roaming in spain", "spain and france roaming prices"]
    )
    scores = index.scores("roaming in Spain")
    assert scores[0] == 0
    assert 0.9 <= scores[1] <= 1.0
    assert 0 < scores[2] <= 1.0
    # a word no passage has still counts: the question is only half answered
    assert index.scores("spain bitcoin")[1] < 0.5


def test_empty_question_and_empty_index() -> None:
    assert not KeywordIndex(["some text"]).scores("the and of").any()
    assert KeywordIndex([]).scores("anything").shape == (0,)
