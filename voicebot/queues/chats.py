"""Chats in the queues: what accepting, declining, ending and wrapping up a chat does.

A mixin of QueueService, over the routing (routing.py). The service's public actions (accept,
decline, end, wrap_up, abandon) look at the entry's media and come here for a chat. The
difference from a call: a chat takes one of the agent's chat places (routing.py) and never
changes their voice state.
Its wrap-up is the entry's own (``queue_entries.wrap_up_until``): the place stays taken until
the agent submits it or its time runs out, while the agent may be on a call meanwhile.

Accepting tells the customer who joined (``chat_joined``, and a system line in the
transcript); the agent ending it tells them it is over (``chat_closed``): both through
voicebot/channels/relay.py, which holds the conversation after the handoff.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select

from voicebot.queues.routing import CHAT, CHAT_HELD, Routing
from voicebot.queues.terms import QueueError
from voicebot.store.models import Agent, Call, Disposition, QueueEntry, Turn

logger = logging.getLogger("voicebot.queues")

# The transcript a chat pane opens with: the bot's part and everything since, newest kept.
_MAX_LINES = 500
# Turn roles as the desktop's transcript names them.
_LINE_ROLES = {"caller": "caller", "bot": "bot", "agent": "agent", "keypad": "keypad"}


class ChatWork(Routing):
    wrap_up_seconds: float

    async def _media(self, entry_id: str) -> str | None:
        """An entry's media (it never changes), None for an unknown entry."""
        async with self.db.session() as session:
            return await session.scalar(select(QueueEntry.media).where(QueueEntry.id == entry_id))

    # -- what agents do with a chat ------------------------------------------------------------

    async def _accept_chat(self, agent_id: int, entry_id: str) -> None:
        now = self.clock()
        async with self.db.transaction() as session:
            entry, agent = await self._offer_for_update(session, entry_id, agent_id)
            entry.status = "connected"
            entry.agent_id = agent_id
            entry.connected_at = now
            entry.offer_expires_at = None
            await self._decide_offer(session, entry_id, agent_id, "accepted", now)
            queue, call_id, name = entry.queue, entry.call_id, agent.display_name
        await self._publish(
            {
                "type": "connected",
                "entry_id": entry_id,
                "agent_id": agent_id,
                "media": CHAT,
                "call_id": call_id,
            }
        )
        await self._publish({"type": "queue_changed", "queue": queue})
        await self._tell_customer_joined(call_id, name)

    async def _tell_customer_joined(self, call_id: str, agent_name: str) -> None:
        # Imported here: the relay sits above the queues (it imports the service's types).
        from voicebot.channels import relay

        try:
            await relay.joined(self, call_id, agent_name)  # type: ignore[arg-type]
            await relay.post(self, call_id, "system", f"{agent_name} joined the chat")  # type: ignore[arg-type]
        except Exception:
            # The chat is the agent's either way; the customer sees their first message.
            logger.exception("could not tell the chat customer an agent joined")

    async def _decline_chat(
        self, agent_id: int, entry_id: str, *, outcome: str, away: bool
    ) -> None:
        """The chat goes back to its place. An offer nobody answered while the agent was
        otherwise idle means nobody is at the desk: they are set away, as for a call; an agent
        on a call or in wrap-up keeps their state (they are there, just busy)."""
        now = self.clock()
        set_away = False
        reason = {"expired": "chat offer not answered", "withdrawn": "desktop closed"}.get(outcome)
        async with self.db.transaction() as session:
            entry, agent = await self._offer_for_update(session, entry_id, agent_id)
            self._requeue(entry)
            await self._decide_offer(session, entry_id, agent_id, outcome, now)
            if away and agent.state == "available":
                self._set_state(session, agent, "away", now, reason=reason)
                set_away = True
            queue = entry.queue
        await self._publish(
            {
                "type": "offer_withdrawn",
                "entry_id": entry_id,
                "agent_id": agent_id,
                "media": CHAT,
                "reason": reason or "declined",
            }
        )
        self._changed()
        if set_away:
            await self._publish_state(agent_id, "away", reason=reason)
        await self._publish({"type": "queue_changed", "queue": queue})
        if set_away:
            await self.withdraw_chat_offers(agent_id)  # away: their other chat offers too

    async def _end_chat(self, agent_id: int, entry_id: str, *, reason: str) -> None:
        from voicebot.channels import relay

        now = self.clock()
        async with self.db.transaction() as session:
            entry = await session.get(QueueEntry, entry_id, with_for_update=True)
            if entry is None:
                raise QueueError("no such queue entry", status=404)
            if entry.agent_id != agent_id or entry.status != "connected":
                raise QueueError("this chat is not connected to you")
            until = self._finish_chat(entry, now, reason)
            queue, call_id = entry.queue, entry.call_id
        await self._publish(
            {
                "type": "wrap_up",
                "entry_id": entry_id,
                "agent_id": agent_id,
                "media": CHAT,
                "wrap_up_until": until.isoformat() if until else None,
            }
        )
        await self._publish({"type": "queue_changed", "queue": queue})
        try:
            await relay.closed(self, call_id, "agent")  # type: ignore[arg-type]
        except Exception:
            logger.exception("could not tell the chat customer the chat ended")

    def _finish_chat(self, entry: QueueEntry, now: dt.datetime, reason: str) -> dt.datetime | None:
        entry.status = "wrap_up"
        entry.ended_at = now
        entry.end_reason = reason
        until = now + dt.timedelta(seconds=self.wrap_up_seconds) if self.wrap_up_seconds else None
        entry.wrap_up_until = until
        return until

    async def _wrap_up_chat(self, agent_id: int, entry_id: str, code: str, notes: str) -> None:
        now = self.clock()
        async with self.db.transaction() as session:
            entry = await session.get(QueueEntry, entry_id, with_for_update=True)
            if entry is None:
                raise QueueError("no such queue entry", status=404)
            if entry.agent_id != agent_id or entry.status not in ("wrap_up", "done"):
                raise QueueError("this chat is not in wrap-up with you")
            session.add(
                Disposition(entry_id=entry_id, agent_id=agent_id, code=code, notes=notes, at=now)
            )
            call = await session.get(Call, entry.call_id)
            if call is not None:
                call.disposition = code
                call.ended_at = call.ended_at or entry.ended_at
            was = entry.status
            entry.status = "done"
            entry.wrapped_at = entry.wrapped_at or now
            queue = entry.queue
        if was == "wrap_up":
            await self._chat_done(entry_id, agent_id, queue, None)

    async def _chat_done(
        self, entry_id: str, agent_id: int, queue: str, reason: str | None
    ) -> None:
        # A chat place came free: route again here, and on other nodes (queue_changed).
        self._changed()
        await self._publish(
            {"type": "chat_done", "entry_id": entry_id, "agent_id": agent_id, "reason": reason}
        )
        await self._publish({"type": "queue_changed", "queue": queue})

    async def _abandon_chat(self, entry_id: str, reason: str) -> str | None:
        """The customer left: waiting, the entry is abandoned; offered, the offer is withdrawn
        (the agent's state untouched); connected, the chat goes to its wrap-up."""
        now = self.clock()
        async with self.db.transaction() as session:
            entry = await session.get(QueueEntry, entry_id, with_for_update=True)
            if entry is None or entry.status not in ("waiting", "offered", "connected"):
                return None
            previous, queue = entry.status, entry.queue
            agent_id = entry.offered_to if previous == "offered" else entry.agent_id
            until: dt.datetime | None = None
            if previous in ("waiting", "offered"):
                await self._mark_abandoned(session, entry, now, reason)
                if previous == "offered" and agent_id is not None:
                    await self._decide_offer(session, entry_id, agent_id, "withdrawn", now)
            else:
                until = self._finish_chat(entry, now, reason)
        logger.info("chat customer left", extra={"detail": f"{entry_id} ({previous})"})
        if previous == "offered" and agent_id is not None:
            await self._publish(
                {
                    "type": "offer_withdrawn",
                    "entry_id": entry_id,
                    "agent_id": agent_id,
                    "media": CHAT,
                    "reason": reason,
                }
            )
            self._changed()
        if previous == "connected" and agent_id is not None:
            await self._publish(
                {
                    "type": "caller_left",
                    "entry_id": entry_id,
                    "agent_id": agent_id,
                    "media": CHAT,
                    "wrap_up_until": until.isoformat() if until else None,
                }
            )
        await self._publish({"type": "queue_changed", "queue": queue})
        return previous

    async def withdraw_chat_offers(self, agent_id: int, *, outcome: str = "withdrawn") -> int:
        """The agent went on a break, offline, or closed the desktop: their open chat offers
        go back to the queue (chats already connected stay theirs to finish)."""
        async with self.db.session() as session:
            offered = (
                await session.scalars(
                    select(QueueEntry.id).where(
                        QueueEntry.offered_to == agent_id,
                        QueueEntry.status == "offered",
                        QueueEntry.media == CHAT,
                    )
                )
            ).all()
        count = 0
        for entry_id in offered:
            try:
                await self._decline_chat(agent_id, entry_id, outcome=outcome, away=False)
                count += 1
            except QueueError:
                pass  # accepted or withdrawn meanwhile
        return count

    async def _sweep_chats(self, now: dt.datetime) -> None:
        """Chat wrap-ups whose time is over end; the agent's chat place is free again."""
        async with self.db.transaction() as session:
            entries = (
                await session.scalars(
                    select(QueueEntry)
                    .where(
                        QueueEntry.media == CHAT,
                        QueueEntry.status == "wrap_up",
                        QueueEntry.wrap_up_until <= now,
                    )
                    .with_for_update(skip_locked=True)
                )
            ).all()
            done = [(e.id, e.agent_id, e.queue) for e in entries]
            for entry in entries:
                entry.status = "done"
                entry.wrapped_at = now
        for entry_id, agent_id, queue in done:
            if agent_id is not None:
                await self._chat_done(entry_id, agent_id, queue, "wrap-up time over")

    # -- what the desktop reads ----------------------------------------------------------------

    async def chats_of(self, agent_id: int) -> list[str]:
        """The chats an agent holds (offered, connected, in wrap-up), oldest first."""
        async with self.db.session() as session:
            return list(
                (
                    await session.scalars(
                        select(QueueEntry.id)
                        .where(
                            QueueEntry.media == CHAT,
                            ((QueueEntry.offered_to == agent_id) & (QueueEntry.status == "offered"))
                            | (
                                (QueueEntry.agent_id == agent_id)
                                & QueueEntry.status.in_(CHAT_HELD[1:])
                            ),
                        )
                        .order_by(QueueEntry.enqueued_at, QueueEntry.id)
                    )
                ).all()
            )

    async def chat_lines(self, call_id: str) -> list[dict[str, Any]]:
        """The conversation so far, as stored: the bot's part and every line since."""
        async with self.db.session() as session:
            turns = (
                await session.scalars(
                    select(Turn)
                    .where(Turn.call_id == call_id)
                    .order_by(Turn.seq.desc())
                    .limit(_MAX_LINES)
                )
            ).all()
        return [
            {
                "seq": turn.seq,
                "role": _LINE_ROLES.get(turn.role, "event"),
                "text": turn.text,
                "at": turn.at.isoformat(),
                "intent": turn.intent,
            }
            for turn in reversed(turns)
        ]

    async def chat_held_by(self, entry_id: str, agent_id: int) -> tuple[str, str]:
        """The call id and agent's display name of a chat this agent is connected to; a
        QueueError otherwise: 404 no such chat, 403 someone else's, 409 not connected now."""
        async with self.db.session() as session:
            entry = await session.get(QueueEntry, entry_id)
            if entry is None or entry.media != CHAT:
                raise QueueError("no such chat", status=404)
            holder = entry.agent_id if entry.agent_id is not None else entry.offered_to
            if holder != agent_id:
                raise QueueError("this chat is not yours", status=403)
            if entry.status != "connected":
                raise QueueError(
                    "this chat is not connected"
                    + (": accept it first" if entry.status == "offered" else " any more"),
                    status=409,
                )
            agent = await session.get(Agent, agent_id)
            name = agent.display_name if agent is not None else ""
            return entry.call_id, name
