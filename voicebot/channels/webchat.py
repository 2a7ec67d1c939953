"""The web chat widget's conversations held by this node, from the greeting to the agent's
goodbye, whichever socket the customer is on at the moment.

A chat outlives its WebSocket: a phone that sleeps, a page reloaded or a flaky network drops
the socket, and the widget reconnects with the conversation's id and resume key (kept in the
tab's sessionStorage) to carry on where it was, shown everything it missed. A chat whose socket
stays away longer than ``VOICEBOT_CHAT_RESUME_SECONDS`` ends: with the bot, its leg is recorded;
waiting for or talking to an agent, it leaves the queue as a caller who hung up. Resuming needs
the same node (chats live in its memory): a load balancer keeps a widget on one node by cookie
or by client address, as for the softphone.

After the handoff what the agent writes, their typing, their joining and their closing arrive
on the event bus (voicebot/channels/relay.py) and are forwarded to the socket that holds the
chat now, or kept for it until it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from voicebot.channels import relay
from voicebot.channels.conversation import BotMessage, Conversation

if TYPE_CHECKING:
    from voicebot.queues.service import QueueService

logger = logging.getLogger("voicebot.channels.webchat")

Phase = Literal["bot", "queued", "agent", "closed"]
Deliver = Callable[[dict[str, Any]], None]
# What a chat keeps of its own messages for a widget that reconnects (a long chat's oldest
# lines go first; the stored transcript keeps them all).
_LOG_LIMIT = 500
# A closed chat is kept this long, so that a widget reconnecting just after is told it closed.
_CLOSED_KEEP = 30.0


@dataclass
class WebChat:
    """One widget conversation: the bot's part (``conversation``), then the agent's."""

    conversation: Conversation
    key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    phase: Phase = "bot"
    entry_id: str | None = None
    agent_name: str | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    deliver: Deliver | None = None
    detached_at: float | None = None
    closed_at: float | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def id(self) -> str:
        return self.conversation.call_id

    def key_matches(self, key: object) -> bool:
        return isinstance(key, str) and hmac.compare_digest(key, self.key)


class ChatHub:
    """This node's web chats, the bus events that reach them, and their end."""

    def __init__(
        self,
        *,
        queues: QueueService | None,
        resume_seconds: float,
        max_chats: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queues = queues
        self.resume_seconds = resume_seconds
        self.max_chats = max_chats
        self.clock = clock
        self.chats: dict[str, WebChat] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        if queues is not None:
            queues.bus.subscribe(self.on_event)

    # -- chats come and go ---------------------------------------------------------------------

    @property
    def full(self) -> bool:
        return len(self.chats) >= self.max_chats

    def add(self, chat: WebChat) -> None:
        self.chats[chat.id] = chat
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="webchat-reaper")

    def find(self, chat_id: object, key: object) -> WebChat | None:
        chat = self.chats.get(chat_id) if isinstance(chat_id, str) else None
        return chat if chat is not None and chat.key_matches(key) else None

    def attach(self, chat: WebChat, deliver: Deliver) -> None:
        """``deliver`` is the socket that holds the chat now; one that held it before is
        told the chat moved (a second tab took it over) and no longer gets its messages."""
        previous = chat.deliver
        if previous is not None and previous is not deliver:
            previous({"type": "error", "message": "this chat was continued in another window"})
            previous({"type": "detached"})
        chat.deliver = deliver
        chat.detached_at = None

    def detach(self, chat: WebChat, deliver: Deliver) -> None:
        if chat.deliver is deliver:
            chat.deliver = None
            chat.detached_at = self.clock()

    # -- what the customer is shown ------------------------------------------------------------

    def emit(self, chat: WebChat, message: dict[str, Any], *, keep: bool = True) -> None:
        """Send ``message`` to the chat's socket, and keep it for a reconnect (typing is not
        kept: it is stale by then)."""
        if keep:
            chat.log.append(message)
            del chat.log[:-_LOG_LIMIT]
        if chat.deliver is not None:
            chat.deliver(message)

    def emit_bot(self, chat: WebChat, messages: list[BotMessage]) -> None:
        for message in messages:
            self.emit(
                chat,
                {
                    "type": "bot",
                    "text": message.text,
                    "buttons": [{"label": b.label, "value": b.value} for b in message.buttons],
                },
            )

    def on_event(self, event: dict[str, Any]) -> None:
        """Bus events for chats held here (every node sees every event)."""
        kind = event.get("type")
        if not isinstance(kind, str) or not kind.startswith("chat_"):
            return
        chat = self.chats.get(str(event.get("call_id")))
        if chat is None or chat.phase == "closed":
            return
        if kind == "chat_message" and event.get("sender") in ("agent", "system"):
            name = event.get("agent_name") or chat.agent_name
            if event.get("sender") == "system":
                self.emit(chat, {"type": "system", "text": event.get("text")})
            else:
                self.emit(chat, {"type": "agent", "text": event.get("text"), "name": name})
        elif kind == "chat_typing" and event.get("sender") == "agent":
            self.emit(chat, {"type": "typing", "sender": "agent"}, keep=False)
        elif kind == "chat_joined":
            chat.phase = "agent"
            chat.agent_name = event.get("agent_name")
            self.emit(chat, {"type": "agent_joined", "name": chat.agent_name})
        elif kind == "chat_closed" and event.get("by") != "customer":
            self._close(chat, by=str(event.get("by") or "agent"))

    # -- the end -------------------------------------------------------------------------------

    def _close(self, chat: WebChat, *, by: str) -> None:
        chat.phase = "closed"
        chat.closed_at = self.clock()
        self.emit(chat, {"type": "closed", "by": by})

    async def after_turn(self, chat: WebChat) -> None:
        """After a bot turn: a handoff puts the chat in the queue, a bot goodbye closes it."""
        conversation = chat.conversation
        packet = conversation.handed_off
        if packet is None and not conversation.ended:
            return
        await self._record(chat)
        if packet is None:
            self._close(chat, by="bot")
            return
        if self.queues is None:
            # No built-in queues here (a JSON-lines sink or an outside ACD has the packet):
            # nobody can answer in this window.
            self.emit(
                chat,
                {
                    "type": "system",
                    "text": "Your request has been passed on; the team will contact you.",
                },
            )
            self._close(chat, by="bot")
            return
        chat.phase = "queued"
        entry_id = await self.queues.entry_for_handoff(packet.id)
        chat.entry_id = entry_id
        place = await self.queues.place(entry_id) if entry_id is not None else None
        self.emit(
            chat,
            {
                "type": "queued",
                "queue": place["queue"] if place else packet.queue,
                "position": place["position"] if place else None,
                "estimated_wait": place["estimated_wait"] if place else None,
            },
        )
        if place is not None and place["status"] == "connected" and chat.phase == "queued":
            # Accepted before this node heard of the chat's entry (a very quick agent).
            chat.phase = "agent"

    async def customer_left(self, chat: WebChat, *, reason: str) -> None:
        """The customer ended the chat, or their widget stayed away too long."""
        async with chat.lock:
            if chat.phase == "closed":
                return
            phase = chat.phase
            chat.phase = "closed"
            chat.closed_at = self.clock()
            if phase == "bot":
                await self._record(chat)
            elif self.queues is not None:
                entry_id = chat.entry_id or (
                    await self.queues.entry_for_handoff(chat.conversation.handed_off.id)
                    if chat.conversation.handed_off is not None
                    else None
                )
                if entry_id is not None:
                    await self.queues.abandon(entry_id, reason=reason)
                await relay.closed(self.queues, chat.id, "customer")
            self.emit(chat, {"type": "closed", "by": "customer"})

    async def _record(self, chat: WebChat) -> None:
        """The bot's leg (its transcript already masked), as the softphone records it."""
        if self.queues is None:
            return
        try:
            await self.queues.record_call(chat.conversation.call.state, channel="chat")
        except Exception:
            logger.exception("chat not recorded", extra={"call_id": chat.id})

    async def _reap(self) -> None:
        while self.chats:
            await asyncio.sleep(min(1.0, max(self.resume_seconds, 0.05)))
            now = self.clock()
            for chat in list(self.chats.values()):
                gone = (
                    chat.detached_at is not None and now - chat.detached_at >= self.resume_seconds
                )
                if gone and chat.phase != "closed":
                    try:
                        await self.customer_left(chat, reason="customer left the chat")
                    except Exception:
                        logger.exception("chat not closed", extra={"call_id": chat.id})
                if chat.phase == "closed" and now - (chat.closed_at or now) >= _CLOSED_KEEP:
                    self.chats.pop(chat.id, None)
                    await chat.conversation.aclose()

    async def aclose(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for chat in list(self.chats.values()):
            with contextlib.suppress(Exception):
                await chat.conversation.aclose()
        self.chats.clear()
