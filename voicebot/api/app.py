"""The FastAPI application that ``voicebot serve`` runs.

Services are opened once at start-up and kept on ``app.state``. A Chroma server that is down
stops start-up with its message (the operator has to fix it); a missing embedding model only
switches the knowledge endpoints off, like the bot's own knowledge base.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import DBAPIError

from voicebot import __version__
from voicebot.api.call_legs import CallLegs
from voicebot.api.metrics import AppMetrics
from voicebot.api.routes import (
    assist,
    auth,
    calls,
    contact_centre,
    customers,
    desktop,
    forecast,
    health,
    knowledge,
    livekit_webhooks,
    messaging,
    phone,
    privacy,
    reports,
    supervisor,
)
from voicebot.api.routes import chat as chat_routes
from voicebot.api.routes import metrics as metrics_routes
from voicebot.api.security import SecurityMiddleware, declare_error_shapes
from voicebot.config import Settings
from voicebot.flows.schema import Queue
from voicebot.knowledge.service import KnowledgeService, open_knowledge
from voicebot.knowledge.store import KnowledgeUnavailable
from voicebot.nlu.embedder import EmbeddingModelMissing
from voicebot.store.db import is_unavailable

logger = logging.getLogger("voicebot.api")


def create_app(
    settings: Settings,
    *,
    knowledge_service: KnowledgeService | None = None,
    runtime: Any = None,
    queues: Mapping[str, Queue] | None = None,
    default_queue: str | None = None,
    require_database: bool = False,
) -> FastAPI:
    """The app. ``knowledge_service`` is opened (and synced with knowledge/) when not given.

    With a bot ``runtime`` the softphone (``/phone``) is on: its speech models load at
    start-up and the fixed prompts are synthesised before the first call. The queues (from
    the runtime's flows, or ``queues``) run on the database of ``VOICEBOT_DATABASE_URL``;
    with ``require_database`` an unreachable database stops start-up (``voicebot serve``),
    otherwise it only switches the queue endpoints off.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.knowledge is None and app.state.knowledge_error is None:
            try:
                app.state.knowledge = open_knowledge(settings, settings.bot_dir / "knowledge")
            except EmbeddingModelMissing as exc:
                app.state.knowledge_error = exc
        await _open_queues(app, settings, runtime, queues, default_queue, require_database)
        if runtime is not None:
            await _load_speech(app, settings, runtime)
        try:
            yield
        finally:
            if getattr(app.state, "chat_hub", None) is not None:
                await app.state.chat_hub.aclose()
            for call in list(app.state.calls):
                await call.aclose("server stopping")
            if app.state.speech is not None:
                await app.state.speech.aclose()
            await _close_queues(app)

    app = FastAPI(
        title="voicebot",
        version=__version__,
        description="Knowledge documents, the browser softphone, handoffs, queues, agents, "
        "callbacks and the agent desktop.",
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
    app.state.db = None
    app.state.db_error = "not opened yet"
    app.state.queues = None
    app.state.hub = None
    app.state.assist = None
    app.state.supervisor_hub = None
    app.state.sink = None
    app.state.legs = CallLegs()
    app.state.metrics = AppMetrics()
    app.include_router(health.router)
    app.include_router(knowledge.router)
    app.include_router(phone.router)
    app.include_router(chat_routes.router)
    app.include_router(auth.router)
    app.include_router(contact_centre.router)
    app.include_router(desktop.router)
    app.include_router(assist.router)
    app.include_router(forecast.router)
    app.include_router(reports.router)
    app.include_router(calls.router)
    app.include_router(supervisor.router)
    app.include_router(metrics_routes.router)
    app.include_router(privacy.router)
    app.include_router(livekit_webhooks.router)
    app.include_router(customers.router)
    app.include_router(messaging.router)
    phone.mount_static(app)
    chat_routes.mount_static(app)
    desktop.mount_static(app)
    supervisor.mount_static(app)
    app.add_middleware(SecurityMiddleware, settings=settings)
    declare_error_shapes(app)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(ConnectionError, _database_error)
    app.add_exception_handler(KnowledgeUnavailable, _knowledge_unavailable)
    return app


async def _knowledge_unavailable(request: Request, exc: Exception) -> Response:
    """The Chroma server is down: the knowledge endpoints say so, and may be retried."""
    logger.warning("knowledge store unavailable", extra={"detail": str(exc)})
    return JSONResponse(
        {"detail": f"the knowledge base is unavailable: {exc}"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    """A database that is down or restarting is a 503 the client may retry, not a 500."""
    if is_unavailable(exc):
        logger.warning(
            "database unavailable", extra={"detail": f"{request.url.path}: {type(exc).__name__}"}
        )
        return JSONResponse(
            {"detail": "the database is unavailable right now; try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    logger.error("request failed", exc_info=exc, extra={"detail": request.url.path})
    return PlainTextResponse("Internal Server Error", status_code=500)


async def _open_queues(
    app: FastAPI,
    settings: Settings,
    runtime: Any,
    queues: Mapping[str, Queue] | None,
    default_queue: str | None,
    required: bool,
) -> None:
    """The database, the event bus, the ACD and the desktop hub; the runtime's handoffs then
    go to the built-in queues."""
    from voicebot.api.desktop_hub import DesktopHub
    from voicebot.api.supervisor_hub import SupervisorHub
    from voicebot.assist.hub import start_assist
    from voicebot.history.contacts import history_lookup
    from voicebot.queues.events import bus_for
    from voicebot.queues.service import QueueService
    from voicebot.queues.sink import QueueHandoffSink
    from voicebot.store.db import DatabaseUnavailable, open_database
    from voicebot.store.encryption import configure_from

    configure_from(settings)  # a malformed key stops start-up with its message
    try:
        db = await open_database(settings.resolved_database_url)
    except DatabaseUnavailable as exc:
        if required:
            raise
        logger.error("queues are off", extra={"detail": str(exc)})
        app.state.db_error = str(exc)
        return
    if runtime is not None:
        definition = runtime.loaded.definition
        queues = definition.queues
        default_queue = definition.bot.default_queue
    bus = bus_for(settings, db)
    service = QueueService(
        db,
        bus,
        queues or {},
        default_queue=default_queue,
        offer_timeout=settings.offer_timeout,
        wrap_up_seconds=settings.wrap_up_seconds,
        max_chats=settings.max_chats,
        anger_threshold=settings.anger_priority_threshold,
    )
    try:
        await service.start()
    except Exception as exc:
        await db.aclose()
        message = f"the event bus ({bus.describe()}) could not start: {exc}"
        if required:
            raise DatabaseUnavailable(message) from exc
        app.state.db_error = message
        return
    app.state.db, app.state.db_error, app.state.queues = db, None, service
    app.state.metrics.attach(service)  # before the spool replays: its handoffs count too
    app.state.hub = DesktopHub(service)
    app.state.assist = start_assist(settings, service, app.state.hub, app.state.knowledge)
    app.state.supervisor_hub = SupervisorHub(service, tz=_bot_zone(runtime))
    bus.subscribe(app.state.legs.on_event)
    # The spool also keeps handoffs POSTed while the database is down (without a bot too).
    sink = QueueHandoffSink(
        service, settings.data_dir / "handoff-spool.jsonl", audio_node=service.node_id
    )
    app.state.sink = sink
    if runtime is not None:
        runtime.handoffs = sink
        runtime.queue_stats = service.flow_stats
        runtime.history = history_lookup(db)
    await sink.replay()
    app.state.messaging = await _start_messaging(settings, runtime, service)
    logger.info(
        "queues ready",
        extra={"detail": f"{db.describe()}; events: {bus.describe()}; node {service.node_id}"},
    )
    from voicebot.quality.review import start_reviewer

    app.state.reviewer = await start_reviewer(
        settings.bot_dir,
        db,
        bot=runtime.loaded.definition if runtime is not None else None,
        recordings_dir=settings.resolved_recordings_dir,
    )
    from voicebot.privacy.erasure import start_purger

    app.state.purger = start_purger(
        db,
        runtime.loaded.definition if runtime is not None else None,
        recordings_dir=settings.resolved_recordings_dir,
    )


def _bot_zone(runtime: Any) -> Any:
    """The contact centre's zone for "today" on the wallboard (the bot's hours), else UTC."""
    from voicebot.analytics.period import ReportError, zone

    hours = runtime.loaded.definition.bot.hours if runtime is not None else None
    try:
        return zone(hours.timezone if hours is not None else None)
    except ReportError:
        return zone(None)


async def _start_messaging(settings: Settings, runtime: Any, service: Any) -> Any:
    """The messaging gateway channel, when VOICEBOT_MESSAGING_SECRET is set (docs/channels.md)."""
    if settings.messaging_secret is None:
        return None
    from voicebot.channels.messaging import MessagingChannel

    channel = MessagingChannel(settings, runtime, service)
    await channel.start()
    return channel


async def _close_queues(app: FastAPI) -> None:
    if getattr(app.state, "messaging", None) is not None:
        await app.state.messaging.aclose()
    if getattr(app.state, "purger", None) is not None:
        await app.state.purger.aclose()
    if getattr(app.state, "reviewer", None) is not None:
        await app.state.reviewer.aclose()
    if app.state.supervisor_hub is not None:
        await app.state.supervisor_hub.aclose()
    if app.state.assist is not None:
        await app.state.assist.aclose()
    if app.state.hub is not None:
        await app.state.hub.aclose()
    if app.state.sink is not None:
        await app.state.sink.aclose()
    if app.state.queues is not None:
        await app.state.queues.aclose()
    if app.state.db is not None:
        await app.state.db.aclose()


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
