"""Hybrid retrieval: Chroma's nearest vectors plus BM25 keywords, filtered, fused and de-duplicated.

A spoken question is short and loose ("how much is it in Spain"); the vector half finds passages
that mean the same thing, the keyword half those that share its rare words. Both candidate sets are
scored on one scale, ``score = w * cosine + (1 - w) * keyword share``, which stays comparable
across questions so that one ``min_score`` means the same everywhere.

The retriever keeps a read-only mirror of the passages (texts, tags, expiry, vectors) for the
keyword index, filters and de-duplication. It reloads the mirror when the store's revision changes,
so an ingest from the CLI or the API reaches a running server within ``reload_interval`` seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from voicebot.flows.schema import primary_subtag
from voicebot.knowledge.embeddings import IdentifiedEmbeddings
from voicebot.knowledge.keyword_index import KeywordIndex
from voicebot.knowledge.store import KnowledgeStore, StoredPassage, date_number

__all__ = ["MAX_QUESTION_CHARS", "HybridRetriever", "Passage", "clean_question"]

logger = logging.getLogger(__name__)

# Longer input is not a spoken question; the embedder reads ~256 tokens anyway.
MAX_QUESTION_CHARS = 1000
VECTOR_WEIGHT = 0.7
# How many candidates each half proposes before fusion.
CANDIDATES = 30
# Above this share of passages allowed by the filters, Chroma is queried without them.
UNFILTERED_SHARE = 0.5
# Passages this similar (cosine of their vectors) are the same text twice, e.g. one paragraph
# copied into two documents; only the better-scored is kept.
DUPLICATE_SIMILARITY = 0.97


@dataclass(frozen=True)
class Passage:
    """A retrieved passage with its fused score and the two halves that made it."""

    id: str
    text: str
    title: str
    source: str
    heading: str
    url: str | None
    tags: tuple[str, ...]
    score: float
    vector_score: float
    keyword_score: float


def clean_question(question: str) -> str:
    """Whitespace collapsed and length capped: what is embedded and keyword-matched."""
    return re.sub(r"\s+", " ", question).strip()[:MAX_QUESTION_CHARS]


@dataclass
class _Snapshot:
    revision: str
    passages: list[StoredPassage]
    vectors: npt.NDArray[np.float32]
    index: KeywordIndex
    row: dict[str, int]
    expiry: npt.NDArray[np.int64]
    tags: dict[str, npt.NDArray[np.bool_]]
    # each passage's primary language subtag ("es"), "" when its document names none
    languages: npt.NDArray[np.str_]


class HybridRetriever:
    def __init__(
        self,
        store: KnowledgeStore,
        embeddings: IdentifiedEmbeddings,
        *,
        reload_interval: float = 5.0,
        vector_weight: float = VECTOR_WEIGHT,
    ) -> None:
        self.store = store
        self.embeddings = embeddings
        self.reload_interval = reload_interval
        self.vector_weight = vector_weight
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._snapshot = self._load()

    @property
    def size(self) -> int:
        return len(self._snapshot.passages)

    def reload(self) -> None:
        """Re-read the passages now (after this process changed them)."""
        snapshot = self._load()
        with self._lock:
            self._snapshot = snapshot
            self._checked_at = time.monotonic()

    def _load(self) -> _Snapshot:
        revision = self.store.revision()
        passages, vectors = self.store.passages()
        if len(passages):
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
        tags: dict[str, npt.NDArray[np.bool_]] = {}
        for row, passage in enumerate(passages):
            for tag in passage.tags:
                mask = tags.setdefault(tag, np.zeros(len(passages), dtype=np.bool_))
                mask[row] = True
        return _Snapshot(
            revision=revision,
            passages=passages,
            vectors=vectors,
            index=KeywordIndex([p.embed_text for p in passages]),
            row={p.id: i for i, p in enumerate(passages)},
            expiry=np.array([p.valid_until for p in passages], dtype=np.int64),
            tags=tags,
            languages=np.array(
                [primary_subtag(p.language) if p.language else "" for p in passages], dtype=np.str_
            ),
        )

    def _current(self) -> _Snapshot:
        now = time.monotonic()
        if now - self._checked_at >= self.reload_interval:
            self._checked_at = now
            try:
                if self.store.revision() != self._snapshot.revision:
                    self.reload()
            except Exception:
                # A store that went away keeps serving the last passages it gave.
                logger.warning("knowledge store revision check failed", exc_info=True)
        return self._snapshot

    def search(
        self,
        question: str,
        *,
        k: int = 5,
        tags: Sequence[str] = (),
        today: dt.date | None = None,
        language: str | None = None,
        untagged_language: str | None = None,
    ) -> list[Passage]:
        """The ``k`` best passages for ``question``, best first (empty when nothing matches).

        ``language`` keeps passages in that language (by primary subtag); those of documents
        that name no language count as ``untagged_language`` (None: as every language)."""
        text = clean_question(question)
        snap = self._current()
        if not re.search(r"\w", text) or not snap.passages or k < 1:
            return []
        allowed = snap.expiry >= date_number(today or dt.date.today())
        if tags:
            wanted = np.zeros(len(snap.passages), dtype=np.bool_)
            for tag in tags:
                mask = snap.tags.get(tag.lower())
                if mask is not None:
                    wanted |= mask
            allowed &= wanted
        before_language = int(allowed.sum())
        if language:
            wanted_language = primary_subtag(language)
            in_language = snap.languages == wanted_language
            if untagged_language is None or primary_subtag(untagged_language) == wanted_language:
                in_language |= snap.languages == ""
            allowed &= in_language
        if not allowed.any():
            return []

        query = np.asarray(self.embeddings.embed_query(text), dtype=np.float32)
        query /= max(float(np.linalg.norm(query)), 1e-12)

        keyword = snap.index.scores(text)
        keyword[~allowed] = 0.0
        candidates: set[int] = set()
        n = min(CANDIDATES, int(allowed.sum()))
        # Chroma answers a filtered query by scanning metadata (~80 ms at 10,000 passages on two
        # cores) but an unfiltered one from its HNSW graph (~1 ms). When most passages pass the
        # filter, ask unfiltered for a few more and filter with the mirror; when few pass, the
        # filtered query is the one that finds them.
        share = float(allowed.mean())
        if share >= UNFILTERED_SHARE:
            where, ask = None, min(len(snap.passages), int(n / share) + 10)
        else:
            # The language is filtered with the mirror: ask for as many more as it removes.
            where = _where(today, tags)
            ask = min(len(snap.passages), int(n * before_language / max(1, int(allowed.sum()))))
        for pid, _ in self.store.nearest(query.tolist(), ask, where):
            row = snap.row.get(pid)
            if row is not None and allowed[row]:
                candidates.add(row)
        if keyword.any():
            top = np.argpartition(-keyword, min(n, len(keyword) - 1))[:n]
            candidates.update(int(i) for i in top if keyword[i] > 0)
        if not candidates:
            return []

        rows = np.fromiter(candidates, dtype=np.int64)
        cosine = snap.vectors[rows] @ query
        fused = self.vector_weight * cosine + (1 - self.vector_weight) * keyword[rows]
        order = np.argsort(-fused, kind="stable")

        chosen: list[int] = []
        results: list[Passage] = []
        for position in order:
            row = int(rows[position])
            if any(
                float(snap.vectors[row] @ snap.vectors[c]) >= DUPLICATE_SIMILARITY for c in chosen
            ):
                continue
            chosen.append(row)
            p = snap.passages[row]
            results.append(
                Passage(
                    id=p.id,
                    text=p.text,
                    title=p.title,
                    source=p.source,
                    heading=p.heading,
                    url=p.url,
                    tags=p.tags,
                    score=round(float(np.clip(fused[position], 0.0, 1.0)), 4),
                    vector_score=round(float(cosine[position]), 4),
                    keyword_score=round(float(keyword[row]), 4),
                )
            )
            if len(results) == k:
                break
        return results


def _where(today: dt.date | None, tags: Sequence[str]) -> dict[str, Any]:
    """The same filter as the mirror's masks, for Chroma's nearest-neighbour query."""
    clauses: list[dict[str, Any]] = [
        {"valid_until": {"$gte": date_number(today or dt.date.today())}}
    ]
    tag_clauses = [{f"tag_{tag.lower()}": True} for tag in tags]
    if len(tag_clauses) == 1:
        clauses += tag_clauses
    elif tag_clauses:
        clauses.append({"$or": tag_clauses})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
