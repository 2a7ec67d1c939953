"""The seam between the ``answer`` step and a knowledge base."""

from __future__ import annotations

from typing import Protocol

from voicebot.engine.events import KnowledgeAnswered


class KnowledgeBase(Protocol):
    async def answer(
        self, question: str, *, tags: tuple[str, ...] = (), min_score: float | None = None
    ) -> KnowledgeAnswered:
        """The best answer to ``question`` with the passages that ground it (score 0..1)."""
        ...


class EmptyKnowledge:
    """A bot with no documents: every question is one the bot cannot answer."""

    async def answer(
        self, question: str, *, tags: tuple[str, ...] = (), min_score: float | None = None
    ) -> KnowledgeAnswered:
        return KnowledgeAnswered(text=None, score=0.0)
