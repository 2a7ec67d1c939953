"""Reading the company's documents: checks on the raw file, front matter, and LangChain loaders.

Every problem with a file becomes a :class:`DocumentError` whose message a content editor can act
on ("is empty", "looks like a binary file", "front matter line 3: ..."). The ingest reports it
against that file and goes on with the others.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from langchain_core.documents import Document

__all__ = [
    "SUPPORTED_SUFFIXES",
    "DocumentError",
    "SourceDocument",
    "content_hash",
    "load_document",
]

# Suffix -> format. Word and other office formats need converters that are not installed; the
# ingest names them as unsupported rather than reading them as text.
SUPPORTED_SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)(?:\r?\n)---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_FRONT_MATTER_KEYS = {"title", "tags", "language", "url", "valid_until"}
_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class DocumentError(ValueError):
    """A file that cannot be ingested; the message says why in plain words."""


@dataclass
class SourceDocument:
    """One file, read: its text split into LangChain documents, plus front-matter metadata.

    ``name`` is the path relative to the knowledge directory with ``/`` separators: it is the
    document's identity in the index, in sources and in the API.
    """

    name: str
    format: str
    file_hash: str
    title: str
    tags: tuple[str, ...] = ()
    language: str | None = None
    url: str | None = None
    valid_until: dt.date | None = None
    # Markdown and text: one document holding the body. HTML: the raw page. PDF: one per page.
    parts: list[Document] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_document(path: Path, name: str, *, max_bytes: int) -> SourceDocument:
    """Read and check one file. Raises :class:`DocumentError` for anything unusable."""
    fmt = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DocumentError(
            f"has an unsupported type '{path.suffix or '(none)'}'; "
            f"use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DocumentError(f"cannot be read ({exc.strerror or exc})") from exc
    if size > max_bytes:
        raise DocumentError(
            f"is {_human_size(size)}, over the {_human_size(max_bytes)} limit "
            "(VOICEBOT_KNOWLEDGE_MAX_FILE_BYTES); split it into smaller documents"
        )
    data = path.read_bytes()
    if not data.strip():
        raise DocumentError("is empty")
    doc = SourceDocument(
        name=name, format=fmt, file_hash=content_hash(data), title=_title_from_name(name)
    )
    if fmt == "pdf":
        _load_pdf(path, data, doc)
    else:
        text, encoding = _decode(data)
        if encoding != "utf-8":
            doc.warnings.append(f"is not UTF-8; it was read as {encoding}")
        if fmt == "html":
            _load_html(text, doc)
        else:
            _load_text(path, text, encoding, doc)
    if not any(part.page_content.strip() for part in doc.parts):
        raise DocumentError("has no text to answer from")
    return doc


# -- raw bytes -------------------------------------------------------------------------------------


def _decode(data: bytes) -> tuple[str, str]:
    """Text and the encoding it was read with. NUL bytes mean a binary file with a text name."""
    if b"\x00" in data[:8192]:
        raise DocumentError("looks like a binary file, not text (it contains NUL bytes)")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Documents exported on Windows are the common non-UTF-8 case. cp1252 leaves five byte
    # values undefined; Latin-1 maps every byte, so the text is never lost, only flagged.
    for encoding in ("cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _control_ratio(text) > 0.05:
            raise DocumentError("looks like a binary file, not text")
        return text, encoding
    raise DocumentError("is not readable text")  # pragma: no cover - latin-1 decodes anything


def _control_ratio(text: str) -> float:
    sample = text[:8192]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f")
    return controls / max(len(sample), 1)


def _human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def _title_from_name(name: str) -> str:
    stem = Path(name).stem.replace("-", " ").replace("_", " ").strip()
    return stem[:1].upper() + stem[1:] if stem else name


# -- front matter ----------------------------------------------------------------------------------


def _split_front_matter(text: str) -> tuple[dict[str, Any], str, int]:
    """(front matter, body, number of lines the front matter took)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text, 0
    try:
        loaded = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "is not valid YAML"
        raise DocumentError(f"front matter{where}: {problem}") from exc
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise DocumentError("front matter must be 'key: value' lines (title, tags, ...)")
    return loaded, text[match.end() :], match.group(0).count("\n")


def _apply_front_matter(meta: dict[str, Any], doc: SourceDocument) -> None:
    unknown = sorted(str(k) for k in meta if k not in _FRONT_MATTER_KEYS)
    if unknown:
        doc.warnings.append(
            f"front matter: unknown key(s) {', '.join(unknown)} ignored "
            f"(known: {', '.join(sorted(_FRONT_MATTER_KEYS))})"
        )
    title = meta.get("title")
    if title is not None:
        if not isinstance(title, str | int | float) or not str(title).strip():
            raise DocumentError("front matter: title must be text")
        doc.title = str(title).strip()
    if "tags" in meta:
        doc.tags = _tags(meta["tags"])
    for key in ("language", "url"):
        value = meta.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise DocumentError(f"front matter: {key} must be text")
            setattr(doc, key, value.strip() or None)
    if meta.get("valid_until") is not None:
        doc.valid_until = _date(meta["valid_until"])


def _tags(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise DocumentError("front matter: tags must be a list, e.g. [billing, roaming]")
    tags: list[str] = []
    for item in items:
        # "opening times" in an HTML keywords list is one tag: opening-times.
        tag = re.sub(r"\s+", "-", str(item).strip().lower())
        if not _TAG.match(tag):
            raise DocumentError(
                f"front matter: tag '{item}' must be a short word of letters, digits, - or _"
            )
        if tag not in tags:
            tags.append(tag)
    return tuple(tags)


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise DocumentError(
            f"front matter: valid_until '{value}' must be a date like 2026-12-31"
        ) from exc


# -- formats ---------------------------------------------------------------------------------------


def _loaders() -> Any:
    # langchain-community warns at import that it is in maintenance; the loaders used here are
    # stable, and the warning would otherwise surface on every command.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community import document_loaders

    return document_loaders


def _load_text(path: Path, text: str, encoding: str, doc: SourceDocument) -> None:
    loader = _loaders().TextLoader(str(path), encoding=encoding)
    try:
        loaded = loader.load()
    except Exception as exc:
        raise DocumentError(f"cannot be read ({exc})") from exc
    body = "\n".join(part.page_content for part in loaded).lstrip("\ufeff")
    meta, body, skipped = _split_front_matter(body)
    _apply_front_matter(meta, doc)
    if doc.format == "markdown" and "title" not in meta:
        heading = re.search(r"^#\s+(.+?)\s*#*\s*$", body, re.MULTILINE)
        if heading:
            doc.title = heading.group(1)
    doc.parts = [Document(page_content=body, metadata={"line_offset": skipped})]


def _load_html(text: str, doc: SourceDocument) -> None:
    from bs4 import BeautifulSoup

    # The splitter reads headings from the markup itself (see chunking); here only the page's
    # metadata is taken. html.parser is Python's own, so no lxml is needed.
    soup = BeautifulSoup(text, "html.parser")
    if soup.title and soup.title.get_text(strip=True):
        doc.title = soup.title.get_text(strip=True)
    keywords = soup.find("meta", attrs={"name": "keywords"})
    if keywords is not None and keywords.get("content"):
        doc.tags = _tags(str(keywords.get("content")))
    lang = soup.html.get("lang") if soup.html else None
    if isinstance(lang, str) and lang:
        doc.language = lang
    if not soup.get_text(strip=True):
        raise DocumentError("has no text to answer from")
    doc.parts = [Document(page_content=text, metadata={})]


def _load_pdf(path: Path, data: bytes, doc: SourceDocument) -> None:
    if not data.lstrip().startswith(b"%PDF-"):
        raise DocumentError("is not a PDF file (it does not start with %PDF-)")
    loader = _loaders().PyPDFLoader(str(path), mode="page")
    try:
        # pypdf reports recoverable damage as warnings; the text it still gets is used.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pages = loader.load()
    except Exception as exc:
        raise DocumentError(f"is a broken PDF ({type(exc).__name__}: {exc})") from exc
    for page in pages:
        meta = page.metadata
        title = meta.get("title")
        if isinstance(title, str) and title.strip() and doc.title == _title_from_name(doc.name):
            doc.title = title.strip()
    doc.parts = [
        Document(page_content=p.page_content, metadata={"page": int(p.metadata.get("page", i)) + 1})
        for i, p in enumerate(pages)
        if p.page_content.strip()
    ]
    if not doc.parts:
        raise DocumentError("is a PDF with no extractable text (scanned images need OCR first)")
