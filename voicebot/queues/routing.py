"""Routing: which waiting entry is offered to which agent.

A mixin of QueueService (service.py), with the row helpers every agent action shares.

Voice (phone, softphone, callbacks): the waiting entry with the highest priority, then the
longest wait, is offered to the longest-idle *available* agent who has all of its skills; the
agent is then ``offered``, ``busy`` on the call and in ``wrap_up`` after it.

Chat (web chat, messaging): an agent holds up to ``max_chats`` chats besides their one voice
contact. A chat is offered to an agent who is signed in and not on a break (any voice state
but away and offline), has the skills and holds fewer chats than their capacity (offered,
connected and in wrap-up all count). Among those, the one holding the fewest chats, then the
one whose last chat offer is oldest, then the longest idle. A chat never changes the agent's
voice state, so a call can still be offered to an agent who is chatting.

A declined entry is not offered to the same agent again for ``DECLINE_COOLDOWN`` seconds; a
chat offer that expired counts as declined (the agent stays, busy on a call perhaps, and
should not get the same chat straight back).

With several nodes on PostgreSQL, routing locks the rows it matches with ``FOR UPDATE SKIP
LOCKED``: two nodes dispatching at once match disjoint entries and agents, so an entry is
offered to one agent by one node, and an agent's chat count cannot be overrun by two nodes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.queues.events import Event, EventBus
from voicebot.queues.terms import STAFFED, QueueError, has_skills
from voicebot.store.db import Database
from voicebot.store.models import Agent, AgentStateChange, Call, Offer, QueueEntry

DECLINE_COOLDOWN = 30.0
CHAT = "chat"
VOICE = "voice"
# Media of the channels: a chat or messaging conversation is a chat, anything else a voice
# contact (phone, softphone, SIP, a callback).
CHAT_CHANNELS = ("chat", "messaging")
# What an agent holds of a chat while it is theirs: it takes one of their chat places.
CHAT_HELD = ("offered", "connected", "wrap_up")
_EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)


def media_of(channel: str | None) -> str:
    return CHAT if channel in CHAT_CHANNELS else VOICE


@dataclass(frozen=True)
class Offered:
    entry_id: str
    agent_id: int
    queue: str
    expires: dt.datetime
    media: str
    call_id: str


class Routing:
    db: Database
    bus: EventBus
    clock: Callable[[], dt.datetime]
    offer_timeout: float
    max_chats: int
    node_id: str
    _dispatch_lock: asyncio.Lock
    _wake: asyncio.Event

    # -- events --------------------------------------------------------------------------------

    async def _publish(self, event: Event) -> None:
        await self.bus.publish({**event, "node": self.node_id})

    def _changed(self) -> None:
        """A call or an agent came free here: route on the next loop iteration."""
        self._wake.set()

    async def _publish_state(self, agent_id: int, state: str, *, reason: str | None = None) -> None:
        if state == "available":
            self._changed()
        await self._publish(
            {"type": "agent_state", "agent_id": agent_id, "state": state, "reason": reason}
        )

    # -- dispatching ---------------------------------------------------------------------------

    def chat_capacity(self, agent: Agent) -> int:
        return self.max_chats if agent.max_chats is None else max(0, agent.max_chats)

    async def dispatch(self) -> int:
        """Offer waiting entries to free agents until nothing more matches; returns offers."""
        total = 0
        async with self._dispatch_lock:
            while True:
                offers = await self._dispatch_once()
                for offer in offers:
                    event: dict[str, Any] = {
                        "type": "offer",
                        "entry_id": offer.entry_id,
                        "agent_id": offer.agent_id,
                        "expires_at": offer.expires.isoformat(),
                    }
                    if offer.media == CHAT:
                        # The agent's voice state stays as it is: no agent_state event.
                        await self._publish({**event, "media": CHAT, "call_id": offer.call_id})
                    else:
                        await self._publish(event)
                        await self._publish_state(offer.agent_id, "offered")
                for queue in {o.queue for o in offers}:
                    await self._publish({"type": "queue_changed", "queue": queue})
                total += len(offers)
                if not offers:
                    return total

    async def _dispatch_once(self) -> list[Offered]:
        now = self.clock()
        async with self.db.transaction() as session:
            chats_waiting = await session.scalar(
                select(QueueEntry.id)
                .where(QueueEntry.status == "waiting", QueueEntry.media == CHAT)
                .limit(1)
            )
            # Only chats need agents who are not voice-available: without a chat waiting,
            # routing locks exactly the rows it did before chats existed.
            states = STAFFED if chats_waiting is not None else ("available",)
            agents = list(
                (
                    await session.scalars(
                        select(Agent)
                        .where(Agent.state.in_(states), Agent.active.is_(True))
                        .order_by(Agent.idle_since.asc().nulls_first(), Agent.id)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            if not agents:
                return []
            voice_free = [a for a in agents if a.state == "available"]
            offers = await self._route_voice(session, now, voice_free)
            if chats_waiting is not None:
                offers += await self._route_chats(session, now, agents)
            return offers

    async def _candidates(
        self, session: AsyncSession, media: str, per_queue: int
    ) -> list[QueueEntry]:
        """Waiting entries of one media, the first ``per_queue`` of every queue, locked."""
        queues = (
            await session.scalars(
                select(QueueEntry.queue)
                .where(QueueEntry.status == "waiting", QueueEntry.media == media)
                .distinct()
            )
        ).all()
        candidates: list[QueueEntry] = []
        for queue in queues:
            candidates += (
                await session.scalars(
                    select(QueueEntry)
                    .where(
                        QueueEntry.status == "waiting",
                        QueueEntry.queue == queue,
                        QueueEntry.media == media,
                    )
                    .order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at.asc())
                    .limit(per_queue)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        candidates.sort(key=lambda e: (-e.priority, e.enqueued_at))
        return candidates

    async def _declined(
        self,
        session: AsyncSession,
        now: dt.datetime,
        entries: Sequence[QueueEntry],
        outcomes: tuple[str, ...],
    ) -> set[tuple[str, int]]:
        cooldown = now - dt.timedelta(seconds=DECLINE_COOLDOWN)
        return {
            (row.entry_id, row.agent_id)
            for row in (
                await session.execute(
                    select(Offer.entry_id, Offer.agent_id).where(
                        Offer.entry_id.in_([e.id for e in entries]),
                        Offer.outcome.in_(outcomes),
                        Offer.decided_at > cooldown,
                    )
                )
            ).all()
        }

    def _offer(
        self, session: AsyncSession, entry: QueueEntry, agent: Agent, now: dt.datetime
    ) -> Offered:
        expires = now + dt.timedelta(seconds=self.offer_timeout)
        entry.status = "offered"
        entry.offered_to = agent.id
        entry.offered_at = now
        entry.offer_expires_at = expires
        session.add(Offer(entry_id=entry.id, agent_id=agent.id, offered_at=now))
        return Offered(entry.id, agent.id, entry.queue, expires, entry.media, entry.call_id)

    async def _route_voice(
        self, session: AsyncSession, now: dt.datetime, agents: list[Agent]
    ) -> list[Offered]:
        if not agents:
            return []
        candidates = await self._candidates(session, VOICE, len(agents))
        if not candidates:
            return []
        declined = await self._declined(session, now, candidates, ("declined",))
        free = list(agents)  # longest idle first
        offers: list[Offered] = []
        for entry in candidates:
            agent = next(
                (
                    a
                    for a in free
                    if has_skills(a.skills, entry.skills) and (entry.id, a.id) not in declined
                ),
                None,
            )
            if agent is None:
                continue
            free.remove(agent)
            self._set_state(session, agent, "offered", now)
            offers.append(self._offer(session, entry, agent, now))
            if not free:
                break
        return offers

    async def _route_chats(
        self, session: AsyncSession, now: dt.datetime, agents: list[Agent]
    ) -> list[Offered]:
        ids = [a.id for a in agents]
        holder = func.coalesce(QueueEntry.agent_id, QueueEntry.offered_to)
        held: dict[int, int] = {
            int(agent_id): int(count)
            for agent_id, count in (
                await session.execute(
                    select(holder, func.count())
                    .where(
                        QueueEntry.media == CHAT,
                        QueueEntry.status.in_(CHAT_HELD),
                        holder.in_(ids),
                    )
                    .group_by(holder)
                )
            ).all()
        }
        places = {a.id: self.chat_capacity(a) - held.get(a.id, 0) for a in agents}
        able = [a for a in agents if places[a.id] > 0]
        if not able:
            return []
        candidates = await self._candidates(session, CHAT, sum(places[a.id] for a in able))
        if not candidates:
            return []
        last_offer: dict[int, dt.datetime] = {
            int(agent_id): at
            for agent_id, at in (
                await session.execute(
                    select(Offer.agent_id, func.max(Offer.offered_at))
                    .join(QueueEntry, QueueEntry.id == Offer.entry_id)
                    .where(QueueEntry.media == CHAT, Offer.agent_id.in_([a.id for a in able]))
                    .group_by(Offer.agent_id)
                )
            ).all()
        }
        declined = await self._declined(session, now, candidates, ("declined", "expired"))
        offers: list[Offered] = []
        for entry in candidates:
            eligible = [
                a
                for a in able
                if places[a.id] > 0
                and has_skills(a.skills, entry.skills)
                and (entry.id, a.id) not in declined
            ]
            if not eligible:
                continue
            # Fewest chats first, then the longest since their last chat, then longest idle.
            agent = min(
                eligible,
                key=lambda a: (
                    self.chat_capacity(a) - places[a.id],
                    last_offer.get(a.id, _EPOCH),
                    a.idle_since or _EPOCH,
                    a.id,
                ),
            )
            places[agent.id] -= 1
            last_offer[agent.id] = now
            offers.append(self._offer(session, entry, agent, now))
        return offers

    # -- rows every action takes ---------------------------------------------------------------

    async def _entry_for_update(self, session: AsyncSession, entry_id: str) -> QueueEntry:
        entry = await session.get(QueueEntry, entry_id, with_for_update=True)
        if entry is None:
            raise QueueError("no such queue entry", status=404)
        return entry

    async def _offer_for_update(
        self, session: AsyncSession, entry_id: str, agent_id: int
    ) -> tuple[QueueEntry, Agent]:
        """The entry, still offered to this agent, and the agent, both locked (entry first,
        the order every transaction here takes them in)."""
        entry = await self._entry_for_update(session, entry_id)
        if entry.status != "offered" or entry.offered_to != agent_id:
            what = "chat" if entry.media == CHAT else "call"
            raise QueueError(f"this {what} is no longer offered to you")
        return entry, await self._agent_for_update(session, agent_id)

    async def _agent_for_update(self, session: AsyncSession, agent_id: int) -> Agent:
        agent = await session.get(Agent, agent_id, with_for_update=True)
        if agent is None:
            raise QueueError("no such agent", status=404)
        return agent

    @staticmethod
    def _requeue(entry: QueueEntry) -> None:
        # Back at its place: the original enqueue time and priority are kept.
        entry.status = "waiting"
        entry.offered_to = None
        entry.offered_at = None
        entry.offer_expires_at = None

    @staticmethod
    def _set_state(
        session: AsyncSession,
        agent: Agent,
        state: str,
        now: dt.datetime,
        *,
        reason: str | None = None,
    ) -> None:
        agent.state = state
        agent.state_since = now
        session.add(AgentStateChange(agent_id=agent.id, state=state, at=now, reason=reason))

    @staticmethod
    async def _decide_offer(
        session: AsyncSession, entry_id: str, agent_id: int, outcome: str, now: dt.datetime
    ) -> None:
        offer = await session.scalar(
            select(Offer)
            .where(Offer.entry_id == entry_id, Offer.agent_id == agent_id, Offer.outcome.is_(None))
            .order_by(Offer.id.desc())
            .limit(1)
        )
        if offer is not None:
            offer.outcome = outcome
            offer.decided_at = now

    @staticmethod
    async def _mark_abandoned(
        session: AsyncSession, entry: QueueEntry, now: dt.datetime, reason: str
    ) -> None:
        """A contact that left before an agent took it: the entry and its call say so."""
        entry.status = "abandoned"
        entry.ended_at = now
        entry.end_reason = reason
        call = await session.get(Call, entry.call_id)
        if call is not None:
            call.outcome = "abandoned"
            call.ended_at = now
