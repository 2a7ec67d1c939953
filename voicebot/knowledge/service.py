"""The knowledge base a bot runs with: store, retriever and offline answers behind one object.

:class:`KnowledgeService` is the ``answer`` step's :class:`~voicebot.knowledge.base.KnowledgeBase`
and what the CLI and the HTTP API manage documents through. Its methods block (embedding, Chroma);
:meth:`answer` runs them in a worker thread so a call's event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from voicebot.config import Settings
from voicebot.engine.events import KnowledgeAnswered
from voicebot.handoff.packet import Source
from voicebot.knowledge.answering import extract_answer
from voicebot.knowledge.chunking import chunk_document
from voicebot.knowledge.documents import SUPPORTED_SUFFIXES, DocumentError, load_document
from voicebot.knowledge.embeddings import (
    IdentifiedEmbeddings,
    LocalEmbeddings,
    OpenAICompatibleEmbeddings,
    embeddings_for,
)
from voicebot.knowledge.ingest import (
    FileOutcome,
    IngestProgress,
    IngestReport,
    ingest_directory,
    ingest_file,
)
from voicebot.knowledge.retriever import HybridRetriever, Passage
from voicebot.knowledge.store import (
    DocumentInfo,
    KnowledgeStore,
    KnowledgeUnavailable,
    chroma_client,
)

__all__ = ["DEFAULT_K", "KnowledgeService", "valid_document_name"]

logger = logging.getLogger(__name__)

DEFAULT_K = 5
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,150}$")


def valid_document_name(name: str) -> str:
    """``name`` if it is a plain file name with a supported type; ``DocumentError`` otherwise."""
    base = name.strip()
    if not _NAME.match(base) or ".." in base:
        raise DocumentError(
            f"'{name}' is not a valid document name: use letters, digits, spaces, '.', '-', '_' "
            "and no folders"
        )
    if Path(base).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DocumentError(
            f"'{name}' has an unsupported type; use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    return base


class KnowledgeService:
    def __init__(
        self,
        settings: Settings,
        store: KnowledgeStore,
        embeddings: IdentifiedEmbeddings,
        knowledge_dir: Path,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embeddings = embeddings
        self.knowledge_dir = knowledge_dir
        self.retriever = HybridRetriever(store, embeddings)
        # The language of documents that name none (front matter or folder): the bot's default
        # language, set when a bot loads; None answers every language from them.
        self.default_language: str | None = None
        # Uploads, deletes and ingests from the API's thread pool take turns: two of them
        # comparing hashes and deleting passages at once could undo each other's work.
        self._writing = threading.Lock()

    @classmethod
    def open(
        cls,
        settings: Settings,
        knowledge_dir: Path | None = None,
        *,
        client: object | None = None,
        embeddings: LocalEmbeddings | OpenAICompatibleEmbeddings | None = None,
    ) -> KnowledgeService:
        """Connect to the configured store (blocking). Raises ``KnowledgeUnavailable`` with a
        message to act on when the Chroma server is down or the index needs re-ingesting."""
        embeddings = embeddings or embeddings_for(settings)
        store = KnowledgeStore(
            client if client is not None else chroma_client(settings),
            settings.knowledge_collection,
            embeddings,
        )
        directory = knowledge_dir or (settings.bot_dir / "knowledge")
        return cls(settings, store, embeddings, directory)

    # -- answering -------------------------------------------------------------------------------

    def search(
        self,
        question: str,
        *,
        k: int = DEFAULT_K,
        tags: tuple[str, ...] | list[str] = (),
        today: dt.date | None = None,
        language: str | None = None,
    ) -> list[Passage]:
        with self._reachable():
            return self.retriever.search(
                question,
                k=k,
                tags=tuple(tags),
                today=today,
                language=language,
                untagged_language=self.default_language,
            )

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """A Chroma server that went away is :class:`KnowledgeUnavailable` (the API's 503, a
        call's "no answer"), not whatever its HTTP client raised."""
        try:
            yield
        except (httpx.TransportError, ConnectionError) as exc:
            where = self.settings.chroma_url or "the embedded store"
            raise KnowledgeUnavailable(
                f"The Chroma server at {where} is not reachable ({exc or type(exc).__name__})."
            ) from exc

    def answer_now(
        self,
        question: str,
        *,
        tags: tuple[str, ...] = (),
        min_score: float | None = None,
        today: dt.date | None = None,
        language: str | None = None,
    ) -> KnowledgeAnswered:
        passages = self.search(question, k=DEFAULT_K, tags=tags, today=today, language=language)
        if not passages:
            return KnowledgeAnswered(text=None, score=0.0)
        best = passages[0]
        if min_score is not None and best.score < min_score:
            return KnowledgeAnswered(text=None, score=best.score)
        text = extract_answer(question, best.text, self.embeddings.embed_documents)
        source = Source(
            id=best.id,
            title=best.title,
            file=best.source,
            heading=best.heading or None,
            score=best.score,
        )
        return KnowledgeAnswered(text=text, score=best.score, sources=(source,))

    async def answer(
        self,
        question: str,
        *,
        tags: tuple[str, ...] = (),
        min_score: float | None = None,
        today: dt.date | None = None,
        language: str | None = None,
    ) -> KnowledgeAnswered:
        return await asyncio.to_thread(
            self.answer_now,
            question,
            tags=tags,
            min_score=min_score,
            today=today,
            language=language,
        )

    async def passages(
        self,
        question: str,
        *,
        k: int = 4,
        tags: tuple[str, ...] = (),
        today: dt.date | None = None,
        language: str | None = None,
    ) -> list[Passage]:
        return await asyncio.to_thread(
            self.search, question, k=k, tags=tags, today=today, language=language
        )

    # -- documents -------------------------------------------------------------------------------

    def documents(self) -> list[DocumentInfo]:
        with self._reachable():
            return list(self.store.manifest().values())

    def ingest(
        self,
        directory: Path | None = None,
        *,
        rebuild: bool = False,
        progress: IngestProgress | None = None,
    ) -> IngestReport:
        """Make the index mirror ``directory`` (default: the bot's knowledge/)."""
        with self._writing, self._reachable():
            return self._ingest(directory, rebuild=rebuild, progress=progress)

    def _ingest(
        self,
        directory: Path | None,
        *,
        rebuild: bool,
        progress: IngestProgress | None,
    ) -> IngestReport:
        report = ingest_directory(
            self.store,
            directory or self.knowledge_dir,
            max_bytes=self.settings.knowledge_max_file_bytes,
            rebuild=rebuild,
            progress=progress,
        )
        self.retriever.reload()
        return report

    def add_document(self, name: str, data: bytes) -> FileOutcome:
        """Save an uploaded file into the knowledge directory and index it.

        The upload is checked before it replaces anything: a broken file is refused and the
        existing document of that name, if any, stays on disk and in the index.
        """
        with self._writing, self._reachable():
            return self._add_document(valid_document_name(name), data)

    def _add_document(self, name: str, data: bytes) -> FileOutcome:
        if len(data) > self.settings.knowledge_max_file_bytes:
            raise DocumentError(
                f"{name} is over the {self.settings.knowledge_max_file_bytes} byte limit "
                "(VOICEBOT_KNOWLEDGE_MAX_FILE_BYTES)"
            )
        self.knowledge_dir.mkdir(parents=True, exist_ok=True)
        target = self.knowledge_dir / name
        fd, temp_name = tempfile.mkstemp(
            prefix=".upload-", suffix=target.suffix, dir=self.knowledge_dir
        )
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            try:
                checked = load_document(
                    temp, name, max_bytes=self.settings.knowledge_max_file_bytes
                )
                if not chunk_document(checked):
                    raise DocumentError("has no text to answer from")
            except DocumentError as exc:
                raise DocumentError(f"{name} {exc}; nothing was changed") from exc
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        manifest = self.store.manifest()
        outcome = ingest_file(
            self.store,
            target,
            name,
            max_bytes=self.settings.knowledge_max_file_bytes,
            manifest=manifest,
        )
        self.retriever.reload()
        return outcome

    def delete_document(self, name: str) -> bool:
        """Remove a document from the index and from the knowledge directory."""
        with self._writing, self._reachable():
            return self._delete_document(name)

    def _delete_document(self, name: str) -> bool:
        deleted = self.store.delete_document(name)
        path = self.knowledge_dir / name
        on_disk = path.is_file() and path.resolve().is_relative_to(self.knowledge_dir.resolve())
        if on_disk:
            path.unlink()
        self.retriever.reload()
        return bool(deleted) or on_disk


def open_knowledge(
    settings: Settings,
    knowledge_dir: Path,
    *,
    ephemeral: bool = False,
    sync: bool = True,
) -> KnowledgeService:
    """The knowledge base for a bot, brought up to date with ``knowledge_dir`` when ``sync``.

    ``ephemeral`` keeps the index in memory only (conversation tests: they must not depend on,
    or change, what a previous ingest left on disk). Raises ``KnowledgeUnavailable``.
    """
    client = None
    if ephemeral:
        import uuid

        import chromadb
        from chromadb.config import Settings as ChromaSettings

        client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
        # Ephemeral clients in one process share their collections; a fresh name isolates runs.
        settings = settings.model_copy(
            update={"knowledge_collection": f"test_{uuid.uuid4().hex[:12]}"}
        )
    service = KnowledgeService.open(settings, knowledge_dir, client=client)
    if sync and knowledge_dir.is_dir():
        report = service.ingest(knowledge_dir)
        for outcome in report.errors:
            logger.warning(
                "knowledge document not ingested",
                extra={"document": outcome.name, "reason": outcome.message},
            )
        logger.info("knowledge base ready", extra=report.to_dict() | {"files": len(report.files)})
    return service
