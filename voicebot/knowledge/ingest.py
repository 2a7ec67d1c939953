"""Making the index mirror a directory of documents, doing only the work that changed.

Each file's SHA-256 is compared with the hash stored on its passages: unchanged files cost a hash,
changed and new ones are loaded, chunked, embedded and written, and documents whose file is gone
are deleted. A file that cannot be read is reported and skipped; if an earlier version of it is in
the index, that version stays answerable.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

from voicebot.flows.schema import LANGUAGE_TAG
from voicebot.knowledge.chunking import chunk_document
from voicebot.knowledge.documents import (
    SUPPORTED_SUFFIXES,
    DocumentError,
    content_hash,
    load_document,
)
from voicebot.knowledge.store import DocumentInfo, KnowledgeStore

__all__ = [
    "FileOutcome",
    "IngestProgress",
    "IngestReport",
    "document_name",
    "ingest_directory",
    "ingest_file",
]

logger = logging.getLogger(__name__)

Status = Literal["added", "changed", "unchanged", "removed", "duplicate", "skipped", "error"]


@dataclass
class FileOutcome:
    name: str
    status: Status
    chunks: int = 0
    message: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    files: list[FileOutcome] = field(default_factory=list)

    def _count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def added(self) -> int:
        return self._count("added")

    @property
    def changed(self) -> int:
        return self._count("changed")

    @property
    def unchanged(self) -> int:
        return self._count("unchanged")

    @property
    def removed(self) -> int:
        return self._count("removed")

    @property
    def chunks_written(self) -> int:
        return sum(f.chunks for f in self.files if f.status in ("added", "changed"))

    @property
    def errors(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status in ("error", "duplicate", "skipped")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "chunks_written": self.chunks_written,
            "errors": len([f for f in self.files if f.status == "error"]),
            "files": [asdict(f) for f in self.files],
        }


class IngestProgress(Protocol):
    def start(self, files: int) -> None: ...

    def file_done(self, outcome: FileOutcome) -> None: ...


def document_name(path: Path, root: Path) -> str:
    """A file's name in the index: its path under the knowledge directory, with '/'."""
    return PurePosixPath(*path.relative_to(root).parts).as_posix()


def folder_language(name: str) -> str | None:
    """``es/roaming.md`` -> ``es``: documents in a folder named by a language tag are in that
    language (front matter ``language:`` wins; docs/languages.md)."""
    parts = PurePosixPath(name).parts
    if len(parts) > 1 and LANGUAGE_TAG.match(parts[0]):
        return parts[0]
    return None


def _files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).parts
        # Hidden files and folders are editors' and version control's, never content.
        if any(part.startswith(".") for part in relative) or not path.is_file():
            continue
        found.append(path)
    return found


def ingest_directory(
    store: KnowledgeStore,
    root: Path,
    *,
    max_bytes: int,
    rebuild: bool = False,
    progress: IngestProgress | None = None,
) -> IngestReport:
    """Bring the index in line with the documents under ``root``."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    if rebuild:
        store.rebuild()
    manifest = store.manifest()
    files = _files(root)
    report = IngestReport()
    if progress is not None:
        progress.start(len(files))

    seen_hashes: dict[str, str] = {}
    present: set[str] = set()
    for path in files:
        name = document_name(path, root)
        present.add(name)
        outcome = ingest_file(
            store, path, name, max_bytes=max_bytes, manifest=manifest, seen=seen_hashes
        )
        report.files.append(outcome)
        if progress is not None:
            progress.file_done(outcome)

    for name in manifest:
        if name not in present:
            store.delete_document(name)
            report.files.append(FileOutcome(name, "removed"))
    return report


def ingest_file(
    store: KnowledgeStore,
    path: Path,
    name: str,
    *,
    max_bytes: int,
    manifest: dict[str, DocumentInfo],
    seen: dict[str, str] | None = None,
) -> FileOutcome:
    """Index one file (or leave it, when its hash is already there). Never raises for the file's
    own problems: they come back as an ``error`` outcome."""
    previous = manifest.get(name)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        return FileOutcome(
            name,
            "skipped",
            message=f"unsupported type '{path.suffix or '(none)'}'; "
            f"use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}",
        )
    try:
        data_hash = content_hash(path.read_bytes()) if path.stat().st_size <= max_bytes else None
    except OSError as exc:
        return FileOutcome(name, "error", message=f"cannot be read ({exc.strerror or exc})")

    if data_hash is not None and seen is not None:
        original = seen.get(data_hash)
        if original is not None:
            # The same document under two names would answer twice; keep the first.
            if previous is not None:
                store.delete_document(name)
            return FileOutcome(
                name, "duplicate", message=f"has the same content as {original}; not ingested twice"
            )
        seen[data_hash] = name
    if previous is not None and previous.file_hash == data_hash:
        return FileOutcome(name, "unchanged", chunks=previous.chunks)

    try:
        doc = load_document(path, name, max_bytes=max_bytes)
        if doc.language is None:
            doc.language = folder_language(name)
        chunks = chunk_document(doc)
        if not chunks:
            raise DocumentError("has no text to answer from")
        written = store.write(doc, chunks)
    except DocumentError as exc:
        kept = " (the previous version is still answered)" if previous is not None else ""
        return FileOutcome(name, "error", message=f"{exc}{kept}")
    except Exception as exc:
        logger.exception("ingest failed", extra={"document": name})
        kept = " (the previous version is still answered)" if previous is not None else ""
        return FileOutcome(name, "error", message=f"could not be indexed ({exc}){kept}")
    return FileOutcome(
        name,
        "changed" if previous is not None else "added",
        chunks=written,
        warnings=doc.warnings,
    )
