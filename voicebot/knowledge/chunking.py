"""Splitting documents into passages a caller can be read: heading-aware, tables made speakable.

Markdown is split at its headings by LangChain's ``MarkdownHeaderTextSplitter`` and HTML by its
``HTMLHeaderTextSplitter``, so a passage never straddles two sections and knows its heading path
("Roaming in Europe > Daily charges"). Long sections are cut further by the recursive splitter at
paragraph, line and sentence boundaries.

Each passage is embedded with its title and heading in front ("Paper bills. Who pays nothing: ...")
because a short section often never names its subject; the spoken text is the passage alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from langchain_text_splitters import (
    HTMLHeaderTextSplitter,
    MarkdownHeaderTextSplitter,
    RecursiveCharacterTextSplitter,
)

from voicebot.knowledge.documents import SourceDocument

__all__ = ["Chunk", "chunk_document", "linearise_tables", "speakable"]

# Characters, not tokens: ~900 characters is ~200 tokens, inside the embedder's 256-token window
# with the title prefix, and a section of that size still answers one question.
CHUNK_SIZE = 900
CHUNK_OVERLAP = 120
_HEADINGS = [("#", "h1"), ("##", "h2"), ("###", "h3")]
_HTML_HEADINGS = [("h1", "h1"), ("h2", "h2"), ("h3", "h3")]

_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


@dataclass
class Chunk:
    """One passage of one document."""

    index: int
    text: str
    heading: str
    page: int | None = None
    prefix: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def embed_text(self) -> str:
        """What is embedded and keyword-indexed: the context, then the passage."""
        return f"{self.prefix}{self.text}"


def chunk_document(doc: SourceDocument) -> list[Chunk]:
    """The document's passages, in reading order."""
    sections: list[tuple[str, str, int | None]] = []  # (heading path, text, page)
    if doc.format == "markdown":
        for part in doc.parts:
            sections += _markdown_sections(part.page_content)
    elif doc.format == "html":
        for part in doc.parts:
            sections += _html_sections(part.page_content)
    elif doc.format == "pdf":
        for part in doc.parts:
            page = part.metadata.get("page")
            number = page if isinstance(page, int) else None
            sections += [(h, t, number) for h, t in _pdf_sections(part.page_content)]
    else:
        for part in doc.parts:
            sections.append(("", linearise_tables(part.page_content), None))

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=CHUNK_SIZE,
        chunk_overlap=CHUNK_OVERLAP,
        separators=["\n\n", "\n", ". ", "; ", ", ", " ", ""],
        keep_separator="end",
    )
    chunks: list[Chunk] = []
    for heading, text, page in sections:
        clean = speakable(text)
        if not clean:
            continue
        for piece in splitter.split_text(clean):
            piece = piece.strip()
            if not _has_words(piece):
                continue
            label = heading or (f"page {page}" if page else "")
            chunks.append(
                Chunk(
                    index=len(chunks),
                    text=piece,
                    heading=label,
                    page=page,
                    prefix=_prefix(doc.title, heading),
                )
            )
    return chunks


def _prefix(title: str, heading: str) -> str:
    parts = [title]
    for part in heading.split(" > ") if heading else []:
        if part and part.casefold() != title.casefold():
            parts.append(part)
    return ". ".join(p.rstrip(".") for p in parts if p) + ".\n"


def _has_words(text: str) -> bool:
    return bool(re.search(r"[^\W\d_]{2,}", text))


# -- Markdown and HTML sections --------------------------------------------------------------------


def _markdown_sections(body: str) -> list[tuple[str, str, int | None]]:
    splitter = MarkdownHeaderTextSplitter(_HEADINGS, strip_headers=True)
    return [
        (_heading_path(d.metadata), d.page_content, None)
        for d in splitter.split_text(linearise_tables(body))
    ]


def _html_sections(html: str) -> list[tuple[str, str, int | None]]:
    splitter = HTMLHeaderTextSplitter(_HTML_HEADINGS)
    merged: list[tuple[str, list[str]]] = []
    for d in splitter.split_text(html):
        path = _heading_path(d.metadata)
        text = d.page_content.strip()
        # The splitter emits each heading as a document of its own; the heading is already in
        # the path, so those are dropped, and consecutive pieces of one section are joined.
        if not text or text == path.rsplit(" > ", 1)[-1]:
            continue
        if merged and merged[-1][0] == path:
            merged[-1][1].append(text)
        else:
            merged.append((path, [text]))
    return [(path, "\n".join(texts), None) for path, texts in merged]


def _pdf_sections(text: str) -> list[tuple[str, str]]:
    """A PDF page's text as (heading, paragraph text) pairs.

    PDF text comes out as lines cut wherever the page's layout wrapped them. A short line that
    does not end a sentence and is followed by a capitalised line is a heading; other lines are
    joined back into their sentences.
    """
    lines = [line.strip() for line in text.splitlines()]
    sections: list[tuple[str, list[str]]] = [("", [])]
    for i, line in enumerate(lines):
        if not line:
            continue
        following = next((x for x in lines[i + 1 :] if x), "")
        is_heading = (
            len(line) <= 60
            and line[-1] not in ".!?:;,"
            and line[:1].isupper()
            and following[:1].isupper()
            and not _LIST_MARKER.match(line)
        )
        if is_heading:
            sections.append((line, []))
        else:
            sections[-1][1].append(line)
    out = []
    for heading, body in sections:
        joined = " ".join(body).strip()
        if joined:
            out.append((heading, joined))
    return out


def _heading_path(metadata: dict[str, Any]) -> str:
    return " > ".join(str(metadata[k]).strip() for k in ("h1", "h2", "h3") if metadata.get(k))


# -- text clean-up ---------------------------------------------------------------------------------


def linearise_tables(text: str) -> str:
    """Markdown tables become one sentence per row, which can be embedded, matched and spoken.

    ``| Spain | £2.50 | included |`` under ``| Country | Daily charge | Texts |`` becomes
    "Spain: daily charge £2.50, texts included."
    """
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if (
            i + 1 < len(lines)
            and "|" in lines[i]
            and _TABLE_SEPARATOR.match(lines[i + 1])
            and "|" in lines[i + 1]
        ):
            header = _cells(lines[i])
            i += 2
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                out.append(_row_sentence(header, _cells(lines[i])))
                i += 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [cell.strip() for cell in line.split("|")]


def _row_sentence(header: list[str], cells: list[str]) -> str:
    if not cells or not any(cells):
        return ""
    subject = cells[0]
    pairs = []
    for name, value in zip(header[1:], cells[1:], strict=False):
        if not value:
            continue
        name = name.strip()
        pairs.append(f"{name[:1].lower() + name[1:]} {value}" if name else value)
    sentence = f"{subject}: {', '.join(pairs)}" if pairs else subject
    return sentence.rstrip(".") + "."


_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(?=\S)(.+?)(?<=\S)\1")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)])\s+")
_HEADING_LINE = re.compile(r"^\s*#{1,6}\s+")


def speakable(text: str) -> str:
    """Markdown markup removed: link text kept, emphasis and list markers dropped.

    Each list item ends with a full stop so that it reads, and is split, as a sentence.
    """
    out: list[str] = []
    for raw in text.splitlines():
        line = _LINK.sub(r"\1", raw)
        line = _EMPHASIS.sub(r"\2", line)
        line = _HEADING_LINE.sub("", line)
        is_item = bool(_LIST_MARKER.match(line))
        line = _LIST_MARKER.sub("", line).strip()
        if is_item and line and line[-1] not in ".!?:;":
            line += "."
        out.append(line)
    joined = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", joined).strip()
