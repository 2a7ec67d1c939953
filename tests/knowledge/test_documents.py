"""Reading documents: formats, front matter, and every kind of bad file named plainly."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.knowledge.conftest import DOCS, write_docs
from voicebot.knowledge.chunking import chunk_document, linearise_tables, speakable
from voicebot.knowledge.documents import DocumentError, load_document

LIMIT = 1024 * 1024


def load(root: Path, name: str, body: str | bytes, max_bytes: int = LIMIT):
    write_docs(root, {name: body})
    return load_document(root / name, name, max_bytes=max_bytes)


def test_markdown_front_matter_is_read(tmp_path: Path) -> None:
    doc = load(tmp_path, "summer-offer.md", DOCS["summer-offer.md"])
    assert doc.title == "Summer roaming offer"
    assert doc.tags == ("roaming",)
    assert doc.valid_until == dt.date(2025, 9, 30)
    assert doc.format == "markdown" and doc.warnings == []
    assert "---" not in doc.parts[0].page_content


def test_markdown_without_front_matter_takes_its_title_from_the_first_heading(
    tmp_path: Path,
) -> None:
    doc = load(tmp_path, "hours.md", "# Opening hours\nWe are open 8am to 8pm.\n")
    assert doc.title == "Opening hours" and doc.tags == ()


def test_html_title_keywords_and_language(tmp_path: Path) -> None:
    doc = load(tmp_path, "router.html", DOCS["router.html"])
    assert doc.title == "Hub lights"
    assert doc.tags == ("broadband", "support")
    assert doc.language == "en-GB"


def test_a_real_pdf_is_read_page_by_page_with_its_headings(tmp_path: Path) -> None:
    shutil.copy(REPO / "knowledge" / "price-guide.pdf", tmp_path / "guide.pdf")
    doc = load_document(tmp_path / "guide.pdf", "guide.pdf", max_bytes=LIMIT)
    assert doc.format == "pdf" and len(doc.parts) >= 2
    chunks = chunk_document(doc)
    late = [c for c in chunks if c.heading == "Late payment fee"]
    assert late and "The late payment fee is £5." in late[0].text
    # lines the PDF layout wrapped are joined back into sentences
    assert all("\n" not in c.text for c in late)


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("empty.md", "", "is empty"),
        ("blank.txt", "   \n\n  ", "is empty"),
        ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "looks like a binary file"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage", "broken PDF"),
        ("fake.pdf", b"this is not a pdf at all", "is not a PDF file"),
        ("notes.docx", b"PK\x03\x04", "unsupported type '.docx'"),
        ("bad-front.md", "---\ntitle: [unclosed\n---\nText here.\n", "front matter line"),
        (
            "bad-date.md",
            "---\nvalid_until: next week\n---\nText here.\n",
            "valid_until 'next week'",
        ),
        ("bad-tags.md", "---\ntags: {a: b}\n---\nText here.\n", "tags must be a list"),
        ("only-front.md", "---\ntitle: Nothing\n---\n", "no text to answer from"),
    ],
)
def test_bad_files_are_refused_with_a_plain_reason(
    tmp_path: Path, name: str, body: str | bytes, message: str
) -> None:
    with pytest.raises(DocumentError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load(tmp_path, name, body)


def test_a_huge_file_is_refused_with_the_limit_and_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as caught:
        load(tmp_path, "huge.md", "word " * 1000, max_bytes=1000)
    assert "over the 1000 bytes limit" in str(caught.value)
    assert "VOICEBOT_KNOWLEDGE_MAX_FILE_BYTES" in str(caught.value)


def test_non_utf8_text_is_read_as_windows_1252_with_a_warning(tmp_path: Path) -> None:
    doc = load(tmp_path, "cafe.txt", "Café opening hours cost € nothing.".encode("cp1252"))
    assert "Café opening hours cost € nothing." in doc.parts[0].page_content
    assert doc.warnings == ["is not UTF-8; it was read as cp1252"]


def test_unknown_front_matter_keys_are_a_warning_not_an_error(tmp_path: Path) -> None:
    doc = load(tmp_path, "x.md", "---\ntitle: X\nauthor: Sam\n---\nSome text.\n")
    assert doc.title == "X"
    assert "unknown key(s) author" in doc.warnings[0]


def test_markdown_is_split_at_headings_with_the_heading_path(tmp_path: Path) -> None:
    doc = load(tmp_path, "paper-bills.md", DOCS["paper-bills.md"])
    chunks = chunk_document(doc)
    assert [c.heading for c in chunks] == [
        "Paper bills > What a paper bill costs",
        "Paper bills > Free paper bills",
    ]
    assert chunks[0].text == "A paper bill costs £1.50 a month. Online bills are free."
    # the embedded text names the subject even where the passage does not
    assert chunks[1].embed_text.startswith("Paper bills. Free paper bills.\n")


def test_tables_become_one_speakable_sentence_per_row() -> None:
    text = "| Country | Daily charge | Data |\n|---|:---:|---|\n| Spain | £2.50 | 1GB |\n| France | | 2GB |\nAfter."
    assert linearise_tables(text).splitlines() == [
        "Spain: daily charge £2.50, data 1GB.",
        "France: data 2GB.",
        "After.",
    ]


def test_markdown_markup_is_removed_for_speech() -> None:
    text = "**Bold** and `code` and [a link](https://x.example).\n- first item\n2. second item:"
    assert speakable(text) == "Bold and code and a link.\nfirst item.\nsecond item:"


def test_a_long_section_is_cut_into_several_passages(tmp_path: Path) -> None:
    body = "# Long\n\n" + "\n\n".join(
        f"Paragraph {i} says something useful about bills." * 4 for i in range(20)
    )
    chunks = chunk_document(load(tmp_path, "long.md", body))
    assert len(chunks) > 3
    assert all(len(c.text) <= 900 for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
