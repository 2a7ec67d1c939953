"""Suggestions for a customer's line from the example bot's real knowledge base: the passage that
answers first, extractive replies taken from those passages, a written reply from a model (the
scripted OpenAI-compatible server over real HTTP), and card data kept from search and model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.assist.conftest import settings_for
from voicebot.assist.suggest import _SENTENCES, Assistant, ReplyWriter, searchable, suggest
from voicebot.knowledge.answering import sentences
from voicebot.knowledge.service import KnowledgeService
from voicebot.testing.scripted_model import ScriptedModelServer

CARD = "4111 1111 1111 1111"


@pytest.fixture
def model() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


def writer_for(model: ScriptedModelServer, tmp_path: Path, timeout: float = 4.0) -> ReplyWriter:
    settings = settings_for(tmp_path, llm_base_url=model.base_url, llm_timeout=timeout)
    writer = ReplyWriter.from_settings(settings)
    assert writer is not None
    return writer


def test_the_passage_that_answers_comes_first_and_replies_are_its_sentences(
    knowledge: KnowledgeService,
) -> None:
    found = suggest("do you charge me for sending the bill in the post", knowledge=knowledge)
    assert found.passages, found
    top = found.passages[0]
    assert top.file == "paper-bills.md" and "cost" in (top.heading or "").lower()
    assert 1 <= len(found.replies) <= 3
    assert found.replies[0].kind == "extractive" and found.replies[0].passages == (0,)
    assert "£1.50" in found.replies[0].text
    # every reply is made of whole sentences of the passage it names, nothing made up
    by_id = {p.id: p for p in knowledge.search(found.question, k=10)}
    for reply in found.replies:
        [index] = reply.passages
        passage = by_id[found.passages[index].id]
        assert all(part in sentences(passage.text) for part in sentences(reply.text)), reply
    assert found.to_dict()["passages"][0]["title"] == top.title


def test_small_talk_gets_no_suggestion(knowledge: KnowledgeService) -> None:
    found = suggest("hello", knowledge=knowledge)
    assert found.passages == [] and found.replies == []


def test_card_numbers_are_never_searched(knowledge: KnowledgeService) -> None:
    assert searchable(f"my card is {CARD} expires 09/31 can I pay by cheque") == (
        "my card is expires can I pay by cheque"
    )
    found = suggest(f"my card is {CARD}, can I pay by cheque", knowledge=knowledge)
    assert "4111" not in found.question and "1111" not in found.question
    assert found.passages[0].file == "payment-methods.md"
    assert suggest(CARD, knowledge=knowledge).passages == []  # nothing left to search
    # the sentence vectors kept between suggestions are the documents', never the customer's
    kept = [text for _identity, text in _SENTENCES._vectors]
    assert kept and not any("my card is" in text for text in kept)


async def test_a_model_writes_a_reply_from_the_passages(
    knowledge: KnowledgeService, model: ScriptedModelServer, tmp_path: Path
) -> None:
    model.script.script([{"say": "A paper bill costs £1.50 a month [1]; online bills are free."}])
    assistant = Assistant(knowledge, writer_for(model, tmp_path))
    question = f"what does a paper bill cost, my card is {CARD}"
    offline = await assistant.offline(question)
    written = await assistant.written(question, offline)
    await assistant.aclose()
    first = written.replies[0]
    assert first.kind == "written"
    assert first.text == "A paper bill costs £1.50 a month; online bills are free."
    assert [r.kind for r in written.replies[1:]] == ["extractive"] * (len(written.replies) - 1)
    assert len(written.replies) <= 3
    [request] = model.script.requests
    # grounded: the passages went with the customer's words, and no card digit did
    assert offline.passages[0].title in request.text and "<customer>" in request.text
    assert "4111" not in request.text and "1111 1111" not in request.text


@pytest.mark.parametrize("failure", [{"error": 503}, {"hang": True}])
async def test_a_model_that_fails_leaves_the_extractive_replies(
    knowledge: KnowledgeService,
    model: ScriptedModelServer,
    tmp_path: Path,
    failure: dict[str, object],
) -> None:
    model.script.script([failure])
    assistant = Assistant(knowledge, writer_for(model, tmp_path, timeout=1.0))
    offline = await assistant.offline("what does the orange light on my hub mean")
    written = await assistant.written("what does the orange light on my hub mean", offline)
    await assistant.aclose()
    assert written is offline
    assert written.replies and all(r.kind == "extractive" for r in written.replies)
    assert "orange" in written.replies[0].text.lower()


async def test_a_model_that_is_down_leaves_the_extractive_replies(
    knowledge: KnowledgeService, tmp_path: Path
) -> None:
    model = ScriptedModelServer()
    base_url = model.base_url  # nothing listens there
    settings = settings_for(tmp_path, llm_base_url=base_url, llm_timeout=2.0)
    writer = ReplyWriter.from_settings(settings)
    assistant = Assistant(knowledge, writer)
    offline = await assistant.offline("can I pay by cheque")
    written = await assistant.written("can I pay by cheque", offline)
    await assistant.aclose()
    assert written is offline and written.replies[0].kind == "extractive"


def test_no_model_configured_means_no_writer(tmp_path: Path) -> None:
    assert ReplyWriter.from_settings(settings_for(tmp_path, brain="offline")) is None
