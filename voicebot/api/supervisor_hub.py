"""The supervisor pages connected to this node, and the wallboard pushed to them.

Every node hears every queue event (voicebot/queues/events.py: in-process, PostgreSQL
LISTEN/NOTIFY or Redis), so a change made on any node reaches every wallboard. An event marks
the board stale; one builder rebuilds it from the shared database (never more often than
``_MIN_INTERVAL``, however many events arrive: with a thousand calls a second the boards still
change five times a second) and sends the same encoded text to every page. Between events the
board is pushed every ``_HEARTBEAT`` seconds for the clock-driven figures (today's service
level moves as waits pass the target). Each page has its own outbox and sender, so a slow
browser never holds up the others; a page that stops reading misses boards, not the newest.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from typing import Any

from fastapi import WebSocket

from voicebot.analytics.wallboard import build_wallboard
from voicebot.api.push import PushConnection
from voicebot.queues.events import Event
from voicebot.queues.service import QueueService

logger = logging.getLogger("voicebot.api.supervisor")

# The events that change a figure on the board.
BOARD_EVENTS = frozenset(
    {
        "queue_changed",
        "agent_state",
        "offer",
        "offer_withdrawn",
        "connected",
        "caller_left",
        "call_returned",
        "wrap_up",
        "flag",
    }
)
_MIN_INTERVAL = 0.2
_HEARTBEAT = 5.0
_OUTBOX_LIMIT = 20


class SupervisorPage(PushConnection):
    # A board replaces the one before: a page that stopped reading gets the next, not all.
    outbox_limit = _OUTBOX_LIMIT

    def __init__(self, websocket: WebSocket, username: str) -> None:
        super().__init__(websocket, name="supervisor-sender")
        self.username = username


class SupervisorHub:
    def __init__(self, service: QueueService, *, tz: dt.tzinfo = dt.UTC) -> None:
        self.service = service
        self.tz = tz
        self.pages: set[SupervisorPage] = set()
        self.seq = 0
        self.last: dict[str, Any] | None = None
        self.built_at = 0.0  # monotonic time of the last build
        self._due = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        service.bus.subscribe(self.on_event)

    # -- pages ---------------------------------------------------------------------------------

    def attach(self, page: SupervisorPage) -> None:
        self.pages.add(page)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="wallboard")

    async def detach(self, page: SupervisorPage) -> None:
        self.pages.discard(page)
        await page.close()

    # -- events --------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        if event.get("type") in BOARD_EVENTS:
            self.mark_stale()

    def mark_stale(self) -> None:
        self._due.set()

    async def board(self) -> dict[str, Any]:
        """A fresh board (the REST answer and every push)."""
        board = await build_wallboard(self.service, tz=self.tz)
        self.seq += 1
        board = {"type": "wallboard", "seq": self.seq, **board}
        self.last = board
        return board

    async def _run(self) -> None:
        while self.pages:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), timeout=_HEARTBEAT)
            self._due.clear()
            if not self.pages:
                return
            started = time.monotonic()
            try:
                text = json.dumps(await self.board(), default=str)
            except Exception:
                logger.exception("the wallboard could not be built")
                await asyncio.sleep(1.0)
                continue
            for page in list(self.pages):
                page.send_text(text, droppable=True)
            self.built_at = time.monotonic()
            # Events during the build are already in ``_due``; wait out the minimum interval.
            await asyncio.sleep(max(0.0, _MIN_INTERVAL - (self.built_at - started)))

    async def aclose(self) -> None:
        for page in list(self.pages):
            await page.close(1001, "server stopping")
        self.pages.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
