"""The seam between the ``answer`` step and a knowledge base."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from voicebot.engine.events import KnowledgeAnswered


class KnowledgeBase(Protocol):
    async def answer(
        self,
        question: str,
        *,
        tags: tuple[str, ...] = (),
        min_score: float | None = None,
        today: dt.date | None = None,
    ) -> KnowledgeAnswered:
        """The best answer to ``question`` with the passages that ground it (score 0..1).

        ``today`` (the call's date in the bot's time zone) decides which documents have expired.
        """
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
    ) -> KnowledgeAnswered:
        return KnowledgeAnswered(text=None, score=0.0)
