"""The FastAPI application that ``voicebot serve`` runs.

Services are opened once at start-up and kept on ``app.state``. A Chroma server that is down
stops start-up with its message (the operator has to fix it); a missing embedding model only
switches the knowledge endpoints off, like the bot's own knowledge base.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from voicebot import __version__
from voicebot.api.routes import health, knowledge
from voicebot.config import Settings
from voicebot.knowledge.service import KnowledgeService, open_knowledge
from voicebot.nlu.embedder import EmbeddingModelMissing


def create_app(settings: Settings, *, knowledge_service: KnowledgeService | None = None) -> FastAPI:
    """The app. ``knowledge_service`` is opened (and synced with knowledge/) when not given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.knowledge is None and app.state.knowledge_error is None:
            try:
                app.state.knowledge = open_knowledge(settings, settings.bot_dir / "knowledge")
            except EmbeddingModelMissing as exc:
                app.state.knowledge_error = exc
        yield

    app = FastAPI(
        title="voicebot",
        version=__version__,
        description="Knowledge documents and (in later releases) calls, queues and agents.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.knowledge = knowledge_service
    app.state.knowledge_error = None
    app.state.bot_name = None
    app.include_router(health.router)
    app.include_router(knowledge.router)
    return app
