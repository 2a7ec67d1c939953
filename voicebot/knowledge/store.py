"""The passages in Chroma, through langchain-chroma: an embedded persistent store by default, a
``chroma run`` server when ``VOICEBOT_CHROMA_URL`` is set.

The collection's metadata records which embedder wrote it (``voicebot_embedder``) and a revision
that every change bumps, so that another process serving calls knows when to reload its keyword
index. Passages carry their document's name, hash and metadata; the set of documents in the index
(the manifest) is read back from them, so there is no second bookkeeping file to drift.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import chromadb
from chromadb.config import Settings as ChromaSettings
from langchain_chroma import Chroma

from voicebot.config import Settings
from voicebot.knowledge.chunking import Chunk
from voicebot.knowledge.documents import SourceDocument
from voicebot.knowledge.embeddings import IdentifiedEmbeddings

__all__ = [
    "NO_EXPIRY",
    "DocumentInfo",
    "EmbedderMismatch",
    "KnowledgeStore",
    "KnowledgeUnavailable",
    "StoredPassage",
    "chroma_client",
    "date_number",
]

logger = logging.getLogger(__name__)

# valid_until is stored as a number (YYYYMMDD) so that Chroma can filter with $gte; documents
# that never expire get the largest date.
NO_EXPIRY = 99991231
_PAGE = 2000
_WRITE_BATCH = 128
_EMBEDDER_KEY = "voicebot_embedder"
_REVISION_KEY = "voicebot_revision"


class KnowledgeUnavailable(RuntimeError):
    """The store cannot be reached or used; the message says what to do."""


class EmbedderMismatch(KnowledgeUnavailable):
    """The index was written by another embedding model than the configured one."""


def date_number(day: dt.date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def _number_date(value: Any) -> dt.date | None:
    if not isinstance(value, int) or value >= NO_EXPIRY:
        return None
    return dt.date(value // 10000, value // 100 % 100, value % 100)


@dataclass
class DocumentInfo:
    """One document in the index, as the API and ``voicebot knowledge list`` show it."""

    name: str
    title: str
    file_hash: str
    format: str
    tags: list[str] = field(default_factory=list)
    url: str | None = None
    language: str | None = None
    valid_until: dt.date | None = None
    ingested_at: str | None = None
    chunks: int = 0


@dataclass
class StoredPassage:
    """A passage as read back from the store (the retriever's in-memory mirror)."""

    id: str
    text: str
    embed_text: str
    source: str
    title: str
    heading: str
    tags: tuple[str, ...]
    valid_until: int
    url: str | None
    chunk: int
    language: str | None = None


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def chroma_client(settings: Settings) -> Any:
    """A Chroma client for ``settings``: the server at ``chroma_url`` or the embedded store.

    Raises :class:`KnowledgeUnavailable` when the server does not answer.
    """
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise KnowledgeUnavailable(
                f"VOICEBOT_CHROMA_URL '{settings.chroma_url}' is not an http(s) URL "
                "like http://127.0.0.1:8000"
            )
        try:
            server: Any = chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
            server.heartbeat()
        except Exception as exc:
            raise KnowledgeUnavailable(
                f"The Chroma server at {settings.chroma_url} is not reachable ({exc}). "
                "Start it (`chroma run --path DIR --port PORT`) or unset VOICEBOT_CHROMA_URL "
                "to use the embedded store."
            ) from exc
        return server
    path = (settings.data_dir / "chroma").resolve()
    # Chroma allows one client per directory and process; share it.
    with _clients_lock:
        client: Any = _clients.get(str(path))
        if client is None:
            try:
                path.mkdir(parents=True, exist_ok=True)
                client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
            except Exception as exc:
                raise KnowledgeUnavailable(
                    f"The knowledge store at {path} cannot be opened ({exc})."
                ) from exc
            _clients[str(path)] = client
        return client


class KnowledgeStore:
    """One bot's passages in one Chroma collection."""

    def __init__(self, client: Any, collection_name: str, embeddings: IdentifiedEmbeddings) -> None:
        self.client = client
        self.embeddings = embeddings
        self.collection_name = collection_name
        try:
            self.vectors = Chroma(
                client=client,
                collection_name=collection_name,
                embedding_function=embeddings,  # type: ignore[arg-type]
                collection_metadata={_EMBEDDER_KEY: embeddings.identity, _REVISION_KEY: "new"},
                # Sentence vectors are compared by angle; cosine distance is 1 - similarity.
                collection_configuration={"hnsw": {"space": "cosine"}},
            )
        except Exception as exc:
            raise KnowledgeUnavailable(
                f"The knowledge collection '{collection_name}' cannot be opened ({exc})."
            ) from exc
        self._check_embedder()

    @property
    def collection(self) -> Any:
        return self.vectors._collection

    def _check_embedder(self) -> None:
        metadata = self.collection.metadata or {}
        built_with = metadata.get(_EMBEDDER_KEY)
        if built_with == self.embeddings.identity:
            return
        if self.collection.count() == 0:
            self._set_metadata(embedder=self.embeddings.identity)
            return
        raise EmbedderMismatch(
            f"The knowledge index was built with the embedder '{built_with}', but "
            f"'{self.embeddings.identity}' is configured; their vectors cannot be mixed. "
            "Re-ingest with `voicebot knowledge ingest --rebuild`."
        )

    def _set_metadata(self, *, embedder: str | None = None) -> None:
        metadata = dict(self.collection.metadata or {})
        # Chroma refuses to change the HNSW space through metadata; keep only our own keys.
        metadata = {k: v for k, v in metadata.items() if k.startswith("voicebot_")}
        if embedder is not None:
            metadata[_EMBEDDER_KEY] = embedder
        metadata[_REVISION_KEY] = uuid.uuid4().hex
        self.collection.modify(metadata=metadata)

    def revision(self) -> str:
        """Changes whenever passages are written or deleted, in any process."""
        collection = self.client.get_collection(self.collection_name)
        return str((collection.metadata or {}).get(_REVISION_KEY, ""))

    def count(self) -> int:
        return int(self.collection.count())

    def rebuild(self) -> None:
        """Drop every passage and start an empty collection for the configured embedder."""
        self.vectors.delete_collection()
        self.vectors = Chroma(
            client=self.client,
            collection_name=self.collection_name,
            embedding_function=self.embeddings,  # type: ignore[arg-type]
            collection_metadata={_EMBEDDER_KEY: self.embeddings.identity, _REVISION_KEY: "new"},
            collection_configuration={"hnsw": {"space": "cosine"}},
        )

    # -- writing ---------------------------------------------------------------------------------

    def write(
        self,
        doc: SourceDocument,
        chunks: Sequence[Chunk],
    ) -> int:
        """Replace ``doc``'s passages with ``chunks``. Returns the number written.

        New passages are written before the old ones are deleted, so a failure half-way leaves
        the previous version answerable rather than nothing.
        """
        ingested_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        stamp = uuid.uuid4().hex[:8]
        ids = [f"{doc.name}#{chunk.index}@{stamp}" for chunk in chunks]
        texts = [chunk.embed_text for chunk in chunks]
        metadatas = [self._metadata(doc, chunk, ingested_at) for chunk in chunks]
        for start in range(0, len(chunks), _WRITE_BATCH):
            end = start + _WRITE_BATCH
            self.vectors.add_texts(
                texts[start:end], metadatas=metadatas[start:end], ids=ids[start:end]
            )
        old = [i for i in self._ids_of(doc.name) if i not in set(ids)]
        if old:
            self.collection.delete(ids=old)
        self._set_metadata()
        return len(chunks)

    def delete_document(self, name: str) -> int:
        """Delete a document's passages; the number deleted (0: it was not indexed)."""
        ids = self._ids_of(name)
        if ids:
            self.collection.delete(ids=ids)
            self._set_metadata()
        return len(ids)

    def _ids_of(self, name: str) -> list[str]:
        found = self.collection.get(where={"source": name}, include=[])
        return list(found["ids"])

    @staticmethod
    def _metadata(doc: SourceDocument, chunk: Chunk, ingested_at: str) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "source": doc.name,
            "title": doc.title,
            "heading": chunk.heading,
            "format": doc.format,
            "tags": ",".join(doc.tags),
            "file_hash": doc.file_hash,
            "ingested_at": ingested_at,
            "chunk": chunk.index,
            "prefix_chars": len(chunk.prefix),
            "valid_until": date_number(doc.valid_until) if doc.valid_until else NO_EXPIRY,
        }
        # One boolean per tag: Chroma filters on scalar values, and {"tag_x": True} is exact.
        for tag in doc.tags:
            metadata[f"tag_{tag}"] = True
        for key in ("url", "language"):
            value = getattr(doc, key)
            if value:
                metadata[key] = value
        if chunk.page is not None:
            metadata["page"] = chunk.page
        return metadata

    # -- reading ---------------------------------------------------------------------------------

    def _pages(self, include: list[str]) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.collection.get(include=include, limit=_PAGE, offset=offset)
            if not page["ids"]:
                return
            yield page
            if len(page["ids"]) < _PAGE:
                return
            offset += _PAGE

    def manifest(self) -> dict[str, DocumentInfo]:
        """Every indexed document by name."""
        documents: dict[str, DocumentInfo] = {}
        for page in self._pages(["metadatas"]):
            for meta in page["metadatas"]:
                name = str(meta.get("source", ""))
                info = documents.get(name)
                if info is None:
                    info = documents[name] = DocumentInfo(
                        name=name,
                        title=str(meta.get("title", name)),
                        file_hash=str(meta.get("file_hash", "")),
                        format=str(meta.get("format", "")),
                        tags=[t for t in str(meta.get("tags", "")).split(",") if t],
                        url=meta.get("url"),
                        language=meta.get("language"),
                        valid_until=_number_date(meta.get("valid_until")),
                        ingested_at=meta.get("ingested_at"),
                    )
                info.chunks += 1
        return dict(sorted(documents.items()))

    def passages(self) -> tuple[list[StoredPassage], Any]:
        """Every passage and the matrix of their vectors (rows in the same order)."""
        import numpy as np

        passages: list[StoredPassage] = []
        vectors: list[Any] = []
        for page in self._pages(["documents", "metadatas", "embeddings"]):
            for pid, text, meta, vector in zip(
                page["ids"], page["documents"], page["metadatas"], page["embeddings"], strict=True
            ):
                prefix = int(meta.get("prefix_chars", 0))
                passages.append(
                    StoredPassage(
                        id=pid,
                        text=text[prefix:],
                        embed_text=text,
                        source=str(meta.get("source", "")),
                        title=str(meta.get("title", "")),
                        heading=str(meta.get("heading", "")),
                        tags=tuple(t for t in str(meta.get("tags", "")).split(",") if t),
                        valid_until=int(meta.get("valid_until", NO_EXPIRY)),
                        url=meta.get("url"),
                        chunk=int(meta.get("chunk", 0)),
                        language=meta.get("language"),
                    )
                )
                vectors.append(vector)
        if not passages:
            return passages, np.zeros((0, 1), dtype=np.float32)
        return passages, np.asarray(vectors, dtype=np.float32)

    def nearest(
        self, vector: Sequence[float], k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        """Up to ``k`` nearest passage ids with cosine similarity, best first."""
        # Straight to the collection, asking for ids and distances only: the texts are in the
        # retriever's mirror, and shipping 40 documents and metadata per query costs more than
        # the search itself.
        with warnings.catch_warnings():
            # Chroma warns when fewer than k passages pass the filter; that is expected here.
            warnings.simplefilter("ignore")
            found = self.collection.query(
                query_embeddings=[list(vector)], n_results=k, where=where, include=["distances"]
            )
        ids, distances = found["ids"][0], found["distances"][0]
        return [(str(pid), 1.0 - float(d)) for pid, d in zip(ids, distances, strict=True)]


def wait_for_server(url: str, timeout: float = 30.0) -> None:
    """Block until the Chroma server at ``url`` answers (used by tests and start-up scripts)."""
    deadline = time.monotonic() + timeout
    settings = Settings(chroma_url=url)
    while True:
        try:
            chroma_client(settings)
            return
        except KnowledgeUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
