"""The seam between the ``answer`` step and a knowledge base."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Protocol

from voicebot.engine.events import KnowledgeAnswered

if TYPE_CHECKING:
    from voicebot.knowledge.retriever import Passage


class KnowledgeBase(Protocol):
    async def answer(
        self,
        question: str,
        *,
        tags: tuple[str, ...] = (),
        min_score: float | None = None,
        today: dt.date | None = None,
        language: str | None = None,
    ) -> KnowledgeAnswered:
        """The best answer to ``question`` with the passages that ground it (score 0..1).

        ``today`` (the call's date in the bot's time zone) decides which documents have expired;
        ``language`` (a bot of several languages) keeps the documents in the call's language.
        """
        ...

    async def passages(
        self,
        question: str,
        *,
        k: int = 4,
        tags: tuple[str, ...] = (),
        today: dt.date | None = None,
        language: str | None = None,
    ) -> list[Passage]:
        """The best passages for ``question``, best first (what an LLM answers from)."""
        ...


class EmptyKnowledge:
    """A bot with no documents: every question is one the bot cannot answer."""

    async def answer(
        self,
        question: str,
        *,
        tags: tuple[str, ...] = (),
        min_score: float | None = None,
        today: dt.date | None = None,
        language: str | None = None,
    ) -> KnowledgeAnswered:
        return KnowledgeAnswered(text=None, score=0.0)

    async def passages(
        self,
        question: str,
        *,
        k: int = 4,
        tags: tuple[str, ...] = (),
        today: dt.date | None = None,
        language: str | None = None,
    ) -> list[Passage]:
        return []
