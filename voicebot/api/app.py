"""The FastAPI application that ``voicebot serve`` runs.

Services are opened once at start-up and kept on ``app.state``. A Chroma server that is down
stops start-up with its message (the operator has to fix it); a missing embedding model only
switches the knowledge endpoints off, like the bot's own knowledge base.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from voicebot import __version__
from voicebot.api.routes import health, knowledge, phone
from voicebot.config import Settings
from voicebot.knowledge.service import KnowledgeService, open_knowledge
from voicebot.nlu.embedder import EmbeddingModelMissing

logger = logging.getLogger("voicebot.api")


def create_app(
    settings: Settings,
    *,
    knowledge_service: KnowledgeService | None = None,
    runtime: Any = None,
) -> FastAPI:
    """The app. ``knowledge_service`` is opened (and synced with knowledge/) when not given.

    With a bot ``runtime`` the softphone (``/phone``) is on: its speech models load at
    start-up and the fixed prompts are synthesised before the first call.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.knowledge is None and app.state.knowledge_error is None:
            try:
                app.state.knowledge = open_knowledge(settings, settings.bot_dir / "knowledge")
            except EmbeddingModelMissing as exc:
                app.state.knowledge_error = exc
        if runtime is not None:
            await _load_speech(app, settings, runtime)
        try:
            yield
        finally:
            for call in list(app.state.calls):
                await call.aclose("server stopping")
            if app.state.speech is not None:
                await app.state.speech.aclose()

    app = FastAPI(
        title="voicebot",
        version=__version__,
        description="Knowledge documents, the browser softphone and (in later releases) calls, "
        "queues and agents.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.knowledge = knowledge_service
    app.state.knowledge_error = None
    app.state.bot_name = None
    app.state.runtime = runtime
    app.state.speech = None
    app.state.speech_error = None if runtime is not None else "no bot loaded"
    app.state.calls = set()
    app.include_router(health.router)
    app.include_router(knowledge.router)
    app.include_router(phone.router)
    phone.mount_static(app)
    return app


async def _load_speech(app: FastAPI, settings: Settings, runtime: Any) -> None:
    """Speech models for the softphone; a failure switches the softphone off, not the API."""
    from voicebot.speech.stack import build_speech

    try:
        speech = await build_speech(settings, runtime.loaded.definition)
        cached = await speech.prefill()
    except Exception as exc:
        logger.error("the audio path could not start", extra={"detail": str(exc)})
        app.state.speech_error = f"the audio path could not start: {exc}"
        return
    app.state.speech = speech
    logger.info("audio ready", extra={"detail": f"{speech.describe()}; {cached} prompts cached"})
