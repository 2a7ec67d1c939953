"""Agent assist on an API node: each customer line of a contact held by an agent whose desktop is
connected here goes to that desktop with the knowledge base's suggestions.

Customer lines arrive on the queue's event bus (every node hears them):

- ``chat_message`` with sender ``customer`` (web chat and messaging, voicebot/channels/relay.py);
  the desktop hub shows the message itself;
- ``caller_transcript``: a final line of a voice caller's live transcript
  (voicebot/assist/transcript.py), shown here as ``{"type": "transcript", ...}``.

The node holding the agent's desktop computes the suggestion (off the event loop) and sends
``{"type": "assist", "entry_id", "line_id", "for_text", "passages", "replies", "said_at",
"computed_ms"}``; with a model configured, the written reply follows in a second ``assist``
message for the same ``line_id``. Lines of one contact are handled in order.

The desktop reports when it has drawn a suggestion (``POST /api/assist/rendered``): the time
from the customer's words to the suggestion on screen is kept here (:class:`Latencies`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from voicebot.api.desktop_hub import Desktop, DesktopHub
from voicebot.assist.suggest import Assistant, ReplyWriter, Suggestions
from voicebot.config import Settings
from voicebot.knowledge.service import KnowledgeService
from voicebot.queues.events import Event
from voicebot.queues.service import QueueService
from voicebot.store.models import QueueEntry

__all__ = ["AssistHub", "Latencies", "start_assist"]

logger = logging.getLogger("voicebot.assist")

MAX_LINE_CHARS = 2000
_KEPT = 1000  # latencies kept for the figures (the latest)
_PENDING_LIMIT = 50  # lines of one contact waiting for their suggestions; older ones are skipped


def epoch(at: Any) -> float:
    """A bus event's ``at``: epoch seconds, or an ISO 8601 string (naive means UTC)."""
    if isinstance(at, int | float) and not isinstance(at, bool):
        return float(at)
    if isinstance(at, str):
        try:
            when = dt.datetime.fromisoformat(at)
        except ValueError:
            return time.time()
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    return time.time()


class Latencies:
    """From the customer's words to the suggestion drawn on the agent's screen, in ms."""

    def __init__(self) -> None:
        self.values: deque[float] = deque(maxlen=_KEPT)
        self.count = 0

    def add(self, ms: float) -> None:
        self.values.append(ms)
        self.count += 1

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.values)
        if not ordered:
            return {"count": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}

        def at(share: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)

        return {
            "count": self.count,
            "kept": len(ordered),
            "p50_ms": at(0.50),
            "p95_ms": at(0.95),
            "max_ms": round(ordered[-1], 1),
        }


class AssistHub:
    def __init__(
        self,
        service: QueueService,
        desktops: DesktopHub,
        assistant: Assistant | None,
        *,
        open_assistant: Callable[[], Assistant] | None = None,
    ) -> None:
        self.service = service
        self.desktops = desktops
        self.assistant = assistant
        # A node without the bot (``serve --no-phone``) opens the knowledge index at its first
        # customer line, not at start-up: most such nodes never need it.
        self._open_assistant = open_assistant if assistant is None else None
        self._opening = asyncio.Lock()
        self.latencies = Latencies()
        # lines sent to this node's desktops: line id -> (agent id, said_at), for the reports
        self.sent: dict[str, tuple[int, float]] = {}
        self._lines: dict[str, asyncio.Queue[tuple[str, str, float]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        service.bus.subscribe(self.on_event)

    # -- customer lines ----------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "chat_message" and event.get("sender") == "customer":
            self._line(event, "chat")
        elif kind == "caller_transcript":
            self._line(event, "voice")

    def _line(self, event: Event, media: str) -> None:
        if not self.desktops.desktops:
            return  # no desktop here: another node's business
        text = str(event.get("text") or "")[:MAX_LINE_CHARS].strip()
        key = str(event.get("entry_id") or event.get("call_id") or "")
        if not text or not key:
            return
        lines = self._lines.setdefault(key, asyncio.Queue())
        if lines.qsize() >= _PENDING_LIMIT:
            lines.get_nowait()  # the agent is past it already
        lines.put_nowait((media, text, epoch(event.get("at"))))
        worker = self._workers.get(key)
        if worker is None or worker.done():
            entry_id = event.get("entry_id")
            call_id = event.get("call_id")
            self._workers[key] = asyncio.create_task(
                self._work(key, str(entry_id) if entry_id else None, call_id),
                name="assist",
            )

    async def _work(self, key: str, entry_id: str | None, call_id: Any) -> None:
        lines = self._lines[key]
        try:
            while not lines.empty():
                media, text, said_at = lines.get_nowait()
                try:
                    await self._handle(entry_id, call_id, media, text, said_at)
                except Exception:
                    logger.exception("assist failed for a line", extra={"entry_id": entry_id})
        finally:
            if lines.empty():
                self._lines.pop(key, None)
                self._workers.pop(key, None)

    async def _holder(
        self, entry_id: str | None, call_id: Any
    ) -> tuple[QueueEntry, Desktop] | None:
        """The entry and the desktop here of the agent holding it."""
        async with self.service.db.session() as session:
            if entry_id is not None:
                entry = await session.get(QueueEntry, entry_id)
            else:
                entry = await session.scalar(
                    select(QueueEntry).where(
                        QueueEntry.call_id == str(call_id), QueueEntry.status == "connected"
                    )
                )
        if entry is None or entry.status != "connected" or entry.agent_id is None:
            return None
        desktop = self.desktops.desktops.get(entry.agent_id)
        if desktop is None:
            return None
        return entry, desktop

    async def _handle(
        self, entry_id: str | None, call_id: Any, media: str, text: str, said_at: float
    ) -> None:
        received = time.perf_counter()
        held = await self._holder(entry_id, call_id)
        if held is None:
            return
        entry, desktop = held
        language = entry.language
        line_id = uuid.uuid4().hex[:16]
        if media == "voice":
            desktop.send(
                {
                    "type": "transcript",
                    "entry_id": entry.id,
                    "line_id": line_id,
                    "role": "caller",
                    "text": text,
                    "at": said_at,
                }
            )
        assistant = await self._assistant()
        if assistant is None:
            return
        offline = await assistant.offline(text, language)
        if not offline.passages:
            return
        self._remember(line_id, desktop.agent_id, said_at)
        desktop.send(self._message(entry, line_id, text, said_at, offline, received))
        if assistant.writer is not None:
            written = await assistant.written(text, offline, language)
            if written is not offline and self.desktops.desktops.get(desktop.agent_id) is desktop:
                desktop.send(self._message(entry, line_id, text, said_at, written, received))

    async def _assistant(self) -> Assistant | None:
        async with self._opening:
            opener, self._open_assistant = self._open_assistant, None
            if opener is not None:
                try:
                    self.assistant = await asyncio.to_thread(opener)
                except Exception as exc:  # no embedding model, Chroma down: transcripts only
                    logger.warning(
                        "agent assist has no knowledge base; suggestions are off",
                        extra={"detail": str(exc)},
                    )
        return self.assistant

    def _message(
        self,
        entry: QueueEntry,
        line_id: str,
        text: str,
        said_at: float,
        suggestions: Suggestions,
        received: float,
    ) -> dict[str, Any]:
        return {
            "type": "assist",
            "entry_id": entry.id,
            "media": entry.media,
            "line_id": line_id,
            "for_text": text,
            **suggestions.to_dict(),
            "said_at": said_at,
            # on this node: from hearing the line to the suggestion sent (the database read
            # of who holds the contact included)
            "computed_ms": round((time.perf_counter() - received) * 1000, 1),
        }

    def _remember(self, line_id: str, agent_id: int, said_at: float) -> None:
        self.sent[line_id] = (agent_id, said_at)
        while len(self.sent) > _KEPT:
            self.sent.pop(next(iter(self.sent)))

    # -- what the desktop reports ------------------------------------------------------------------

    def rendered(self, agent_id: int, line_id: str, rendered_at: float) -> float | None:
        """The desktop drew the suggestion for ``line_id`` at ``rendered_at`` (epoch ms, the
        browser's clock): the latency in ms, or None for a line not sent to that agent here."""
        sent = self.sent.get(line_id)
        if sent is None or sent[0] != agent_id:
            return None
        latency = max(0.0, rendered_at - sent[1] * 1000)
        self.latencies.add(latency)
        return latency

    async def aclose(self) -> None:
        for worker in list(self._workers.values()):
            worker.cancel()
        self._workers.clear()
        if self.assistant is not None:
            await self.assistant.aclose()


def start_assist(
    settings: Settings,
    service: QueueService,
    desktops: DesktopHub,
    knowledge: KnowledgeService | None,
) -> AssistHub:
    """Agent assist for an API node: suggestions when the knowledge base is up (written ones
    too when a model is configured); the live transcript reaches desktops either way."""
    if knowledge is not None:
        return AssistHub(
            service, desktops, Assistant(knowledge, ReplyWriter.from_settings(settings))
        )

    def open_assistant() -> Assistant:
        # the index the bot's nodes keep (a shared VOICEBOT_CHROMA_URL, or this data dir's),
        # read as it is: ingesting is theirs (or `voicebot knowledge ingest`)
        opened = KnowledgeService.open(settings, settings.bot_dir / "knowledge")
        return Assistant(opened, ReplyWriter.from_settings(settings))

    return AssistHub(service, desktops, None, open_assistant=open_assistant)
