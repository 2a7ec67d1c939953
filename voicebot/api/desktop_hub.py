"""The desktops connected to this node, and the events that reach them.

Every node hears every queue event (events.py); the hub passes on those that concern its own
connections: an offer to an agent signed in here, the live queue view to everyone here. Each
connection has its own outbox and sender, so one slow browser never holds up another.

One desktop per agent: a second tab (on any node) takes over, and the first is told so and
closed with code 4001. When an agent's last desktop closes, the queue service moves an open
offer on and flags a call in progress for supervisors.

Chats: the queue's events about a chat (``media: "chat"``) reach the desktop as ``chat_*``
messages, apart from the call's, so that a chat never disturbs the call on screen. The
conversation's lines and typing (voicebot/channels/relay.py) carry only the call id: the hub
knows which of its desktops holds which chat, and forwards them to that agent. What one
desktop hears of its chats is sent in order (the pane opens before its next line arrives).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from fastapi import WebSocket

from voicebot.access.audit import audit
from voicebot.api.push import PushConnection
from voicebot.queues.events import Event
from voicebot.queues.routing import CHAT
from voicebot.queues.service import QueueService, has_skills
from voicebot.store.db import is_unavailable

logger = logging.getLogger("voicebot.api.desktop")

REPLACED = 4001
# Queue views are rebuilt at most this often, however many calls arrive: with a thousand
# handoffs a second the desktops still get a fresh view four times a second.
_VIEW_INTERVAL = 0.25
_OUTBOX_LIMIT = 500


def view_signature(views: list[dict[str, Any]]) -> str:
    """A view without its clock-driven fields: equal signatures need not be sent again."""
    stripped = [
        {
            **{k: v for k, v in view.items() if k not in ("oldest_wait", "entries")},
            "entries": [
                {k: v for k, v in entry.items() if k != "waited_seconds"}
                for entry in view["entries"]
            ],
        }
        for view in views
    ]
    return json.dumps(stripped, sort_keys=True, default=str)


class Desktop(PushConnection):
    # Only queue views may be dropped, for a browser that stopped reading: the next view
    # replaces them, whereas a lost offer would expire unseen.
    outbox_limit = _OUTBOX_LIMIT

    def __init__(
        self,
        websocket: WebSocket,
        agent_id: int,
        role: str,
        skills: dict[str, int],
        username: str = "",
    ) -> None:
        super().__init__(websocket, name="desktop-sender")
        self.agent_id = agent_id
        self.username = username
        self.role = role
        self.skills = skills
        self.connection_id = uuid.uuid4().hex
        self.replaced = False
        self.last_view: str | None = None  # the queue view last sent, to skip repeats
        # Chat pushes one after the other: an assignment read from the database must not be
        # overtaken by the line that followed it.
        self.chat_order = asyncio.Lock()
        self.chat_pending = 0  # pushes waiting for or holding chat_order

    @property
    def supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")


class DesktopHub:
    def __init__(self, service: QueueService) -> None:
        self.service = service
        self.desktops: dict[int, Desktop] = {}
        # The chats the agents signed in here hold: call id -> (entry id, agent id).
        self.chats: dict[str, tuple[str, int]] = {}
        self._views_due = False
        self._views_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        service.bus.subscribe(self.on_event)

    # -- connections ---------------------------------------------------------------------------

    async def attach(self, desktop: Desktop) -> None:
        previous = self.desktops.get(desktop.agent_id)
        self.desktops[desktop.agent_id] = desktop
        if previous is not None:
            await self._replace(previous)
        # Other nodes close this agent's desktops there.
        await self.service.bus.publish(
            {
                "type": "desktop_opened",
                "agent_id": desktop.agent_id,
                "connection_id": desktop.connection_id,
            }
        )

    async def _replace(self, desktop: Desktop) -> None:
        desktop.replaced = True
        desktop.send({"type": "replaced"})
        await desktop.close(REPLACED, "the desktop was opened in another window")

    async def detach(self, desktop: Desktop) -> None:
        if self.desktops.get(desktop.agent_id) is desktop:
            del self.desktops[desktop.agent_id]
        await desktop.close()
        if not desktop.replaced:
            await self.service.desktop_gone(desktop.agent_id)

    # -- events --------------------------------------------------------------------------------

    def hold_chat(self, call_id: str, entry_id: str, agent_id: int) -> None:
        self.chats[call_id] = (entry_id, agent_id)

    def on_event(self, event: Event) -> None:
        kind = event.get("type")
        if kind in ("chat_message", "chat_typing", "chat_closed"):
            self._conversation_event(event)
            return
        agent_id = event.get("agent_id")
        desktop = self.desktops.get(agent_id) if isinstance(agent_id, int) else None
        if kind == "queue_changed" or kind == "agent_state":
            self._schedule_views()
        if kind == "flag":
            for supervisor in self._supervisors():
                supervisor.send(
                    {"type": "flag", "entry_id": event.get("entry_id"), "reason": event["reason"]}
                )
        if desktop is None:
            return
        if kind == "desktop_opened" and event.get("connection_id") != desktop.connection_id:
            del self.desktops[desktop.agent_id]
            self._spawn(self._replace(desktop))
        elif event.get("media") == CHAT or kind == "chat_done":
            self._chat_event(desktop, event)
        elif kind == "offer":
            entry_id = str(event["entry_id"])
            self._spawn(self._pushed(lambda: self._send_assignment(desktop, "offer", entry_id)))
        elif kind == "connected":
            entry_id = str(event["entry_id"])
            self._spawn(self._pushed(lambda: self._send_assignment(desktop, "connected", entry_id)))
        elif kind == "offer_withdrawn":
            desktop.send(
                {
                    "type": "offer_withdrawn",
                    "entry_id": event.get("entry_id"),
                    "reason": event.get("reason"),
                }
            )
        elif kind == "agent_state":
            self._spawn(self._send_state(desktop, event.get("reason")))
        elif kind == "caller_left":
            desktop.send({"type": "caller_left", "entry_id": event.get("entry_id")})
        elif kind == "call_returned":
            desktop.send(
                {
                    "type": "call_returned",
                    "entry_id": event.get("entry_id"),
                    "reason": event.get("reason"),
                }
            )
        elif kind == "wrap_up":
            entry_id = str(event["entry_id"])
            self._spawn(self._pushed(lambda: self._send_wrap_up(desktop, entry_id)))

    # -- chats ---------------------------------------------------------------------------------

    def _chat_event(self, desktop: Desktop, event: Event) -> None:
        """A queue event about one of this agent's chats."""
        kind = event.get("type")
        entry_id = str(event.get("entry_id") or "")
        message: dict[str, Any] | None = None
        if kind == "offer":
            self._in_order(desktop, lambda: self._send_chat(desktop, "chat_offer", entry_id))
            return
        if kind == "connected":
            call_id = event.get("call_id")
            if isinstance(call_id, str):
                self.hold_chat(call_id, entry_id, desktop.agent_id)
            self._in_order(desktop, lambda: self._send_chat(desktop, "chat_connected", entry_id))
            return
        if kind == "offer_withdrawn":
            message = {
                "type": "chat_withdrawn",
                "entry_id": entry_id,
                "reason": event.get("reason"),
            }
        elif kind in ("wrap_up", "caller_left"):
            message = {
                "type": "chat_wrap_up",
                "entry_id": entry_id,
                "wrap_up_until": event.get("wrap_up_until"),
                "ended_by": "customer" if kind == "caller_left" else "agent",
            }
        elif kind == "chat_done":
            for call_id, (held, _agent) in list(self.chats.items()):
                if held == entry_id:
                    del self.chats[call_id]
            message = {"type": "chat_done", "entry_id": entry_id, "reason": event.get("reason")}
        if message is not None:
            self._send_in_order(desktop, message)

    def _conversation_event(self, event: Event) -> None:
        """A chat line, typing or the end of a chat: to the agent holding it, if here."""
        held = self.chats.get(str(event.get("call_id")))
        if held is None:
            return
        entry_id, agent_id = held
        desktop = self.desktops.get(agent_id)
        if desktop is None:
            return
        kind = event.get("type")
        if kind == "chat_message":
            message = {
                "type": "chat_message",
                "entry_id": entry_id,
                "sender": event.get("sender"),
                "text": event.get("text"),
                "at": event.get("at"),
                "agent_name": event.get("agent_name"),
            }
        elif kind == "chat_typing":
            if event.get("sender") == "agent":
                return  # the agent's own typing, echoed by the bus
            message = {"type": "chat_typing", "entry_id": entry_id, "sender": event.get("sender")}
        else:
            message = {"type": "chat_closed", "entry_id": entry_id, "by": event.get("by")}
        self._send_in_order(desktop, message)

    def _in_order(self, desktop: Desktop, push: Any) -> None:
        desktop.chat_pending += 1

        async def ordered() -> None:
            try:
                async with desktop.chat_order:
                    await self._pushed(push)
            finally:
                desktop.chat_pending -= 1

        self._spawn(ordered())

    def _send_in_order(self, desktop: Desktop, message: dict[str, Any]) -> None:
        if desktop.chat_pending:
            # An assignment is being read: this line goes after it.
            async def send() -> None:
                desktop.send(message)

            self._in_order(desktop, send)
        else:
            desktop.send(message)

    async def chat_assignment(self, entry_id: str, *, lines: bool) -> dict[str, Any] | None:
        """A chat as its pane shows it: the screen pop, and the conversation once accepted."""
        assignment = await self.service.assignment(entry_id)
        if assignment is None:
            return None
        if lines:
            assignment["lines"] = await self.service.chat_lines(assignment["call_id"])
        return assignment

    async def _send_chat(self, desktop: Desktop, kind: str, entry_id: str) -> None:
        assignment = await self.chat_assignment(entry_id, lines=kind == "chat_connected")
        await self._send_pop(desktop, kind, assignment, offer=kind == "chat_offer")

    async def _pushed(self, push: Any, attempts: int = 10) -> None:
        """Run ``push`` (a coroutine function), again while the database is unavailable: an
        offer, a connected call or a wrap-up the desktop never hears of leaves it out of step
        with the queue (a call it cannot end)."""
        for attempt in range(attempts):
            try:
                await push()
                return
            except Exception as exc:
                if not is_unavailable(exc) or attempt == attempts - 1:
                    raise
            await asyncio.sleep(min(0.5 * 2**attempt, 5.0))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        # A push that still fails (the database down for long) is logged, not raised into the
        # loop: an offer the desktop never saw expires and goes to the next agent.
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if is_unavailable(exc):  # type: ignore[arg-type]
            logger.warning("desktop push skipped: the database is unavailable")
        else:
            logger.error("desktop push failed", exc_info=exc)

    def _supervisors(self) -> list[Desktop]:
        return [d for d in self.desktops.values() if d.supervisor]

    async def _send_assignment(self, desktop: Desktop, kind: str, entry_id: str) -> None:
        assignment = await self.service.assignment(entry_id)
        await self._send_pop(desktop, kind, assignment, offer=kind == "offer")

    async def _send_pop(
        self, desktop: Desktop, kind: str, assignment: dict[str, Any] | None, *, offer: bool
    ) -> None:
        if assignment is None:
            return
        message: dict[str, Any] = {"type": kind, "assignment": assignment}
        if offer:
            message["expires_at"] = assignment["expires_at"]
        desktop.send(message)
        if offer:
            # The screen pop shows the packet: it is a view like any other, audited after
            # the send so that the write never delays the pop.
            await audit(
                self.service.db,
                "view_packet",
                actor=desktop.username or None,
                actor_id=desktop.agent_id,
                target=assignment["packet"].get("id"),
                via="screen pop",
            )

    async def _send_state(self, desktop: Desktop, reason: Any) -> None:
        snapshot = await self.service.agent_snapshot(desktop.agent_id)
        if snapshot is None:
            return
        agent = snapshot["agent"]
        desktop.send(
            {
                "type": "state",
                "state": agent["state"],
                "state_since": agent["state_since"],
                "wrap_up_until": agent["wrap_up_until"],
                "reason": reason,
            }
        )

    async def _send_wrap_up(self, desktop: Desktop, entry_id: str) -> None:
        snapshot = await self.service.agent_snapshot(desktop.agent_id)
        until = snapshot["agent"]["wrap_up_until"] if snapshot else None
        desktop.send({"type": "wrap_up", "entry_id": entry_id, "wrap_up_until": until})

    # -- the live queue view -------------------------------------------------------------------

    def _schedule_views(self) -> None:
        self._views_due = True
        if self.desktops and (self._views_task is None or self._views_task.done()):
            self._views_task = asyncio.create_task(self._push_views(), name="queue-views")

    async def _push_views(self) -> None:
        while self._views_due and self.desktops:
            self._views_due = False
            try:
                views = await self.service.queue_views()
            except Exception:
                logger.exception("queue view failed")
                return
            # Desktops with the same skills see the same view: each distinct view is encoded
            # once, and sent only to desktops whose last view differs in more than the clock
            # (the page counts waiting time on by itself).
            encoded: dict[tuple[str, ...], tuple[str, str]] = {}
            for desktop in list(self.desktops.values()):
                shown = self.views_for(desktop, views)
                key = tuple(view["name"] for view in shown)
                if key not in encoded:
                    encoded[key] = (
                        json.dumps({"type": "queues", "queues": shown}, default=str),
                        view_signature(shown),
                    )
                text, signature = encoded[key]
                if desktop.last_view != signature:
                    desktop.last_view = signature
                    desktop.send_text(text, droppable=True)
            await asyncio.sleep(_VIEW_INTERVAL)

    def views_for(self, desktop: Desktop, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if desktop.supervisor:
            return views
        return [
            view
            for view in views
            if has_skills(
                desktop.skills,
                self.service.queues[view["name"]].skills
                if view["name"] in self.service.queues
                else [],
            )
        ]

    async def aclose(self) -> None:
        for desktop in list(self.desktops.values()):
            desktop.replaced = True  # shutting down is not the agent leaving
            await desktop.close(1001, "server stopping")
        self.desktops.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._views_task is not None:
            self._views_task.cancel()
