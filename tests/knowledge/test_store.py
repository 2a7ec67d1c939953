"""Ingest and retrieval against both stores: embedded Chroma and a real ``chroma run`` server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.knowledge.conftest import CountingEmbeddings, write_docs
from voicebot.config import Settings
from voicebot.knowledge.embeddings import LocalEmbeddings
from voicebot.knowledge.service import KnowledgeService
from voicebot.knowledge.store import EmbedderMismatch, KnowledgeStore, chroma_client

TODAY = dt.date(2026, 11, 23)


def test_ingest_reports_each_file_and_writes_chunks(kb_settings: Settings, docs_dir: Path) -> None:
    knowledge = KnowledgeService.open(kb_settings, docs_dir)
    report = knowledge.ingest()
    assert (report.added, report.changed, report.unchanged, report.removed) == (5, 0, 0, 0)
    assert report.chunks_written == knowledge.store.count() == 7
    names = {d.name: d for d in knowledge.documents()}
    assert set(names) == {
        "paper-bills.md",
        "roaming.md",
        "summer-offer.md",
        "router.html",
        "top-up.txt",
    }
    assert names["paper-bills.md"].chunks == 2
    assert names["paper-bills.md"].tags == ["billing"]
    assert names["summer-offer.md"].valid_until == dt.date(2025, 9, 30)


def test_a_second_ingest_of_unchanged_files_embeds_nothing(
    kb_settings: Settings, docs_dir: Path
) -> None:
    embeddings = CountingEmbeddings(kb_settings)
    knowledge = KnowledgeService.open(kb_settings, docs_dir, embeddings=embeddings)
    knowledge.ingest()
    first = embeddings.embedded
    assert first == 7

    report = knowledge.ingest()
    assert (report.added, report.unchanged, report.chunks_written) == (0, 5, 0)
    assert embeddings.embedded == first


def test_changed_and_removed_files(kb_settings: Settings, docs_dir: Path) -> None:
    knowledge = KnowledgeService.open(kb_settings, docs_dir)
    knowledge.ingest()
    (docs_dir / "top-up.txt").write_text(
        "The smallest top-up is now £5, paid in any shop.", encoding="utf-8"
    )
    (docs_dir / "router.html").unlink()
    report = knowledge.ingest()
    status = {f.name: f.status for f in report.files}
    assert status["top-up.txt"] == "changed"
    assert status["router.html"] == "removed"
    assert "router.html" not in {d.name for d in knowledge.documents()}
    found = knowledge.search("orange light on the hub", today=TODAY, k=10)
    assert "router.html" not in {p.source for p in found}
    top = knowledge.search("smallest top-up", today=TODAY)[0]
    assert top.source == "top-up.txt" and "£5" in top.text
    assert sum(d.chunks for d in knowledge.documents()) == knowledge.store.count()


def test_a_broken_file_is_reported_and_the_rest_ingested(
    kb_settings: Settings, docs_dir: Path
) -> None:
    write_docs(
        docs_dir,
        {
            "broken.pdf": b"%PDF-1.7\nnot really",
            "empty.md": "",
            "z-copy.md": (docs_dir / "roaming.md").read_bytes(),
            "notes.docx": b"PK",
        },
    )
    knowledge = KnowledgeService.open(kb_settings, docs_dir)
    report = knowledge.ingest()
    outcome = {f.name: f for f in report.files}
    assert report.added == 5
    assert outcome["broken.pdf"].status == "error" and "broken PDF" in (
        outcome["broken.pdf"].message or ""
    )
    assert outcome["empty.md"].status == "error" and outcome["empty.md"].message == "is empty"
    assert outcome["z-copy.md"].status == "duplicate"
    assert "same content as roaming.md" in (outcome["z-copy.md"].message or "")
    assert outcome["notes.docx"].status == "skipped"
    assert {d.name for d in knowledge.documents()} == {
        "paper-bills.md",
        "roaming.md",
        "summer-offer.md",
        "router.html",
        "top-up.txt",
    }


def test_a_file_that_breaks_keeps_its_previous_version(
    kb_settings: Settings, docs_dir: Path
) -> None:
    knowledge = KnowledgeService.open(kb_settings, docs_dir)
    knowledge.ingest()
    (docs_dir / "paper-bills.md").write_bytes(b"\x00\x01binary now")
    report = knowledge.ingest()
    [outcome] = [f for f in report.files if f.name == "paper-bills.md"]
    assert outcome.status == "error"
    assert "previous version is still answered" in (outcome.message or "")
    assert knowledge.search("paper bill cost", today=TODAY)[0].source == "paper-bills.md"


def test_rebuild_embeds_everything_again(kb_settings: Settings, docs_dir: Path) -> None:
    knowledge = KnowledgeService.open(kb_settings, docs_dir)
    knowledge.ingest()
    report = knowledge.ingest(rebuild=True)
    assert report.added == 5 and report.chunks_written == knowledge.store.count() == 7


def test_another_embedder_refuses_the_index_with_a_message_to_re_ingest(
    kb_settings: Settings, service: KnowledgeService
) -> None:
    other = LocalEmbeddings(service.embeddings.embedder)  # type: ignore[attr-defined]
    other.identity = "openai:text-embedding-3-small"
    with pytest.raises(EmbedderMismatch) as caught:
        KnowledgeStore(chroma_client(kb_settings), kb_settings.knowledge_collection, other)
    assert "voicebot knowledge ingest --rebuild" in str(caught.value)
    assert "onnx:all-MiniLM-L6-v2:384" in str(caught.value)


# -- retrieval ---------------------------------------------------------------------------------


def test_search_finds_the_passage_with_title_file_and_heading(service: KnowledgeService) -> None:
    [top, *_] = service.search("how much do you charge for a bill in the post", today=TODAY)
    assert top.source == "paper-bills.md"
    assert top.heading == "Paper bills > What a paper bill costs"
    assert top.title == "Paper bills"
    assert 0.35 < top.score <= 1.0
    assert top.text == "A paper bill costs £1.50 a month. Online bills are free."


def test_table_rows_are_found_by_a_spoken_question(service: KnowledgeService) -> None:
    top = service.search("what does it cost to use my phone in switzerland", today=TODAY)[0]
    assert top.source == "roaming.md"
    assert "Switzerland: daily charge £5" in top.text


def test_tag_filter(service: KnowledgeService) -> None:
    assert {p.source for p in service.search("costs", tags=["billing"], today=TODAY)} == {
        "paper-bills.md"
    }
    assert service.search("costs", tags=["no-such-tag"], today=TODAY) == []
    both = {
        p.source for p in service.search("costs", tags=["billing", "payments"], today=TODAY, k=10)
    }
    assert both == {"paper-bills.md", "top-up.txt"}


def test_expired_documents_are_not_used(service: KnowledgeService) -> None:
    now = service.search("roaming in spain for a pound a day", today=TODAY, k=10)
    assert "summer-offer.md" not in {p.source for p in now}
    then = service.search("roaming in spain for a pound a day", today=dt.date(2025, 8, 1), k=10)
    assert then[0].source == "summer-offer.md"


def test_near_identical_passages_are_returned_once(kb_settings: Settings, docs_dir: Path) -> None:
    text = (docs_dir / "top-up.txt").read_text(encoding="utf-8")
    (docs_dir / "top-up-copy.txt").write_text(text.replace("£10.", "£10 only."), encoding="utf-8")
    knowledge = KnowledgeService.open(kb_settings, docs_dir)
    knowledge.ingest()
    found = knowledge.search("smallest top up", today=TODAY, k=5)
    assert [p.source for p in found].count("top-up.txt") + [p.source for p in found].count(
        "top-up-copy.txt"
    ) == 1


@pytest.mark.parametrize("question", ["", "   ", "?!"])
def test_empty_questions_find_nothing(service: KnowledgeService, question: str) -> None:
    assert service.search(question, today=TODAY) == []
    assert service.answer_now(question, min_score=0.35, today=TODAY).text is None


def test_a_question_of_filler_words_gets_no_answer(service: KnowledgeService) -> None:
    assert service.answer_now("the and of", min_score=0.35, today=TODAY).text is None


def test_a_5000_character_question_is_answered_not_crashed(service: KnowledgeService) -> None:
    question = "how much is a paper bill " + "blah " * 1000
    assert len(question) > 5000
    found = service.search(question, today=TODAY)
    assert isinstance(found, list)


def test_answer_speaks_one_or_two_sentences_with_its_source(service: KnowledgeService) -> None:
    found = service.answer_now("are paper bills free for pensioners", min_score=0.35, today=TODAY)
    assert found.text == "Paper bills are free if you are aged 75 or over, or registered blind."
    [source] = found.sources
    assert source.file == "paper-bills.md" and source.heading == "Paper bills > Free paper bills"
    assert source.score == found.score


def test_below_min_score_there_is_no_answer(service: KnowledgeService) -> None:
    found = service.answer_now("who won the football last night", min_score=0.35, today=TODAY)
    assert found.text is None and found.sources == ()
    assert found.score < 0.35


def test_a_running_server_sees_another_process_ingest(
    kb_settings: Settings, docs_dir: Path
) -> None:
    serving = KnowledgeService.open(kb_settings, docs_dir)
    serving.retriever.reload_interval = 0.0
    assert serving.search("paper bill", today=TODAY) == []
    KnowledgeService.open(kb_settings, docs_dir).ingest()  # e.g. `voicebot knowledge ingest`
    assert serving.search("paper bill", today=TODAY)[0].source == "paper-bills.md"
