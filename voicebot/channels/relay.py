"""The conversation after the handoff: lines between a chat customer and the agent.

Every line is stored as a Turn of the call, continuing the bot's transcript (the same ``seq``),
so the transcript of a chat reads from the greeting to the agent's goodbye in one place. Card
data is masked before it is stored or sent anywhere (voicebot/privacy/cards.py). Then the line
goes out on the event bus, where whoever holds the other end picks it up:

- ``{"type": "chat_message", "call_id", "entry_id", "sender", "text", "at", "agent_name"}``;
- ``{"type": "chat_typing", "call_id", "sender"}``;
- ``{"type": "chat_joined", "call_id", "agent_name"}`` (published when an agent accepts);
- ``{"type": "chat_closed", "call_id", "by"}`` (the agent ended it, or the customer left).

The node that holds the customer's widget socket forwards agent lines, typing, joined and
closed to it (voicebot/api/routes/chat.py); the desktop hub forwards customer lines and typing
to the agent holding the entry. Events stay far below PostgreSQL's 8000-byte NOTIFY limit:
a line is at most :data:`MAX_MESSAGE_CHARS` characters.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from voicebot.channels.conversation import MAX_MESSAGE_CHARS
from voicebot.privacy.cards import mask_card_data
from voicebot.store.models import Call, QueueEntry, Turn

if TYPE_CHECKING:
    from voicebot.queues.service import QueueService

__all__ = [
    "ENDED",
    "RelayError",
    "Sender",
    "closed",
    "joined",
    "post",
    "typing",
]

logger = logging.getLogger("voicebot.channels.relay")

Sender = Literal["customer", "agent", "system"]
_ROLES: dict[str, str] = {"customer": "caller", "agent": "agent", "system": "event"}
# Entry statuses after which the customer is no longer talking to anyone.
ENDED = ("wrap_up", "done", "abandoned")
# Two lines written at the same moment (the customer and the agent) may take the same seq; the
# loser reads the new end of the transcript and tries again.
_ATTEMPTS = 5


class RelayError(ValueError):
    """A line the relay refuses (empty, too long, no such chat, the chat is over); the message
    says why and nothing was stored."""


async def post(
    service: QueueService,
    call_id: str,
    sender: Sender,
    text: str,
    *,
    agent_name: str | None = None,
) -> None:
    """Store one line of the chat and publish it as ``chat_message``."""
    if sender not in _ROLES:
        raise RelayError(f"unknown sender {sender!r}; expected customer, agent or system")
    text = (text or "").strip()
    if not text:
        raise RelayError("the message is empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise RelayError(
            f"messages are at most {MAX_MESSAGE_CHARS} characters; this one has {len(text)}"
        )
    masked = mask_card_data(text)
    at = service.clock()
    entry_id: str | None = None
    for attempt in range(_ATTEMPTS):
        try:
            async with service.db.transaction() as session:
                if await session.get(Call, call_id) is None:
                    raise RelayError(f"no conversation {call_id!r} was handed off")
                entry = await session.scalar(
                    select(QueueEntry)
                    .where(QueueEntry.call_id == call_id)
                    .order_by(QueueEntry.enqueued_at.desc())
                    .limit(1)
                )
                if entry is not None and entry.status in ENDED and sender == "customer":
                    raise RelayError("this chat has ended; start a new one to write again")
                entry_id = entry.id if entry is not None else None
                last = await session.scalar(
                    select(func.max(Turn.seq)).where(Turn.call_id == call_id)
                )
                session.add(
                    Turn(
                        call_id=call_id,
                        seq=(last if last is not None else -1) + 1,
                        role=_ROLES[sender],
                        text=masked,
                        at=at,
                    )
                )
            break
        except IntegrityError:
            if attempt == _ATTEMPTS - 1:
                raise
    await _publish(
        service,
        {
            "type": "chat_message",
            "call_id": call_id,
            "entry_id": entry_id,
            "sender": sender,
            "text": masked,
            "at": at.isoformat(),
            "agent_name": agent_name,
        },
    )


async def typing(service: QueueService, call_id: str, sender: Sender) -> None:
    """The customer or the agent is typing (not stored)."""
    await _publish(service, {"type": "chat_typing", "call_id": call_id, "sender": sender})


async def joined(service: QueueService, call_id: str, agent_name: str | None) -> None:
    """An agent accepted the chat: the customer is told who joined."""
    await _publish(service, {"type": "chat_joined", "call_id": call_id, "agent_name": agent_name})


async def closed(service: QueueService, call_id: str, by: Literal["agent", "customer"]) -> None:
    await _publish(service, {"type": "chat_closed", "call_id": call_id, "by": by})


async def _publish(service: QueueService, event: dict[str, Any]) -> None:
    # Tagged with the node like the queue service's own events (its handlers skip their own).
    await service.bus.publish({**event, "node": service.node_id})
