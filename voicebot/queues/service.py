"""The ACD: queue entries, agents and their states, routing, offers, wrap-up, overflow.

The call records (records.py), the live figures (figures.py), routing (routing.py) and what
chats do differently (chats.py) are mixins of QueueService, in files of their own; the names
other modules import from here are re-exported.

An offer not accepted within ``offer_timeout`` goes back to the queue at its place and the
agent is set away. An entry's media decides how it is handled: a call takes the agent's one
voice place and moves their state (offered, busy, wrap_up); a chat takes one of their chat
places and leaves their state alone.

Every change is one database transaction. With several nodes on PostgreSQL, routing locks the
rows it matches with ``FOR UPDATE SKIP LOCKED``: two nodes dispatching at once match disjoint
entries and agents, so an entry is offered to one agent by one node. Accepting is a conditional
update of an entry still offered to that agent, so it succeeds exactly once. Events go out
after the commit (see events.py), so a desktop never hears of a change that was rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.flows.schema import Queue
from voicebot.handoff.packet import HandoffPacket
from voicebot.queues.chats import ChatWork
from voicebot.queues.erlang import WaitInputs, estimate_wait
from voicebot.queues.events import Event, EventBus
from voicebot.queues.figures import ARRIVAL_WINDOW, QueueFigures, QueueStats, agent_view
from voicebot.queues.records import CallRecords
from voicebot.queues.routing import CHAT, VOICE, media_of
from voicebot.queues.terms import (
    ANGER_BONUS,
    IN_QUEUE,
    PRIORITY_SCORE,
    STAFFED,
    VIP_BONUS,
    QueueError,
    has_skills,
    priority_label,
    priority_score,
    utcnow,
)
from voicebot.store.db import Database, is_unavailable
from voicebot.store.models import (
    Agent,
    Call,
    Callback,
    Disposition,
    QueueEntry,
)

logger = logging.getLogger("voicebot.queues")

WRAP_UP_CODES = ("resolved", "follow_up", "escalated", "callback_promised", "no_answer", "other")


class QueueService(CallRecords, QueueFigures, ChatWork):
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        queues: Mapping[str, Queue],
        *,
        default_queue: str | None = None,
        offer_timeout: float = 15.0,
        wrap_up_seconds: float = 30.0,
        max_chats: int = 3,
        anger_threshold: float = 0.7,
        node_id: str | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.bus = bus
        self.queues = dict(queues)
        self.default_queue = default_queue or (
            "general" if "general" in self.queues else next(iter(self.queues), "general")
        )
        self.offer_timeout = offer_timeout
        self.wrap_up_seconds = wrap_up_seconds
        self.max_chats = max_chats
        self.anger_threshold = anger_threshold
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.clock = clock
        self._dispatch_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stats_cache: tuple[float, dict[str, QueueStats]] | None = None
        bus.subscribe(self._on_event)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.bus.start()
        self._loop_task = asyncio.create_task(self._run(), name="acd")

    async def aclose(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self.bus.aclose()

    def _on_event(self, event: Event) -> None:
        # This node routed already after its own changes. Another node's change may have found
        # rows this node held locked at that moment (SKIP LOCKED passes them over), so it is
        # worth one more routing round here; many events in a burst make one round.
        if event.get("node") == self.node_id:
            return
        kind = event.get("type")
        if kind == "queue_changed" or (kind == "agent_state" and event.get("state") == "available"):
            self._wake.set()

    async def _run(self) -> None:
        """Dispatch when woken (new entry, free agent), and sweep once a second."""
        last_sweep = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            self._wake.clear()
            try:
                if time.monotonic() - last_sweep >= 1.0:
                    last_sweep = time.monotonic()
                    await self.sweep()
                await self.dispatch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The database may be briefly unreachable (restarting, failing over): expected,
                # and said without a traceback; the next round tries again.
                if is_unavailable(exc):
                    logger.warning(
                        "queue dispatch paused: the database is unavailable; retrying",
                        extra={"detail": type(exc).__name__},
                    )
                else:
                    logger.exception("queue dispatch failed; retrying")
                await asyncio.sleep(1.0)

    # -- calls join the queue ------------------------------------------------------------------

    def resolve_queue(self, name: str) -> str:
        if name in self.queues or not self.queues:
            return name
        logger.warning(
            "handoff to an unknown queue; using the default queue",
            extra={"queue": name, "detail": self.default_queue},
        )
        return self.default_queue

    async def enqueue(
        self,
        packet: HandoffPacket,
        *,
        channel: str | None = None,
        audio_node: str | None = None,
    ) -> str:
        """Write the call, its turns, the handoff and the queue entry in one transaction.

        Delivering the same packet twice (a retried write) queues it once; the entry id is
        returned either way.
        """
        now = self.clock()
        queue = self.resolve_queue(packet.queue)
        channel = channel or str(packet.caller.attributes.get("channel") or "unknown")
        async with self.db.transaction() as session:
            existing = await session.scalar(
                select(QueueEntry.id).where(QueueEntry.handoff_id == packet.id)
            )
            if existing is not None:
                return existing
            await self._write_handoff(session, packet, queue, channel=channel, outcome="handoff")
            # Flushed parent first: with no relationship() between the tables, the unit of work
            # does not order the inserts by foreign key.
            await session.flush()
            entry = QueueEntry(
                id=uuid.uuid4().hex,
                handoff_id=packet.id,
                call_id=packet.call_id,
                kind="callback" if packet.callback else "call",
                queue=queue,
                original_queue=queue,
                skills=sorted({*self._queue_skills(queue), *packet.skills}),
                priority=priority_score(packet, self.anger_threshold),
                # A callback keeps the place the caller had when they asked for it.
                enqueued_at=packet.callback.requested_at if packet.callback else now,
                status="waiting",
                callback_number=packet.callback.number if packet.callback else None,
                audio_node=audio_node,
                media=media_of(packet.channel or channel),
                language=packet.language,
            )
            session.add(entry)
            if packet.callback:
                await session.flush()
                session.add(
                    Callback(
                        entry_id=entry.id,
                        handoff_id=packet.id,
                        number=packet.callback.number,
                        requested_at=packet.callback.requested_at,
                    )
                )
            entry_id = entry.id
        logger.info(
            "call queued",
            extra={"handoff_id": packet.id, "queue": queue, "call_id": packet.call_id},
        )
        self._observe(lambda o: o.handoff_recorded(queue=queue, reason=packet.reason_kind))
        # Routed here at once, before any other event goes out: the screen pop comes first.
        await self.dispatch()
        await self._publish({"type": "queue_changed", "queue": queue})
        return entry_id

    # -- what agents do ------------------------------------------------------------------------

    async def accept(self, agent_id: int, entry_id: str) -> None:
        if await self._media(entry_id) == CHAT:
            return await self._accept_chat(agent_id, entry_id)
        now = self.clock()
        async with self.db.transaction() as session:
            entry, agent = await self._offer_for_update(session, entry_id, agent_id)
            entry.status = "connected"
            entry.agent_id = agent_id
            entry.connected_at = now
            entry.offer_expires_at = None
            self._set_state(session, agent, "busy", now)
            await self._decide_offer(session, entry_id, agent_id, "accepted", now)
            queue = entry.queue
            # a caller's time on hold; a callback's "wait" is the caller's, not spent on hold
            waited = (now - entry.enqueued_at).total_seconds() if entry.kind == "call" else None
        if waited is not None:
            self._observe(lambda o: o.call_connected(queue=queue, waited=waited))
        await self._publish({"type": "connected", "entry_id": entry_id, "agent_id": agent_id})
        await self._publish_state(agent_id, "busy")
        await self._publish({"type": "queue_changed", "queue": queue})

    async def decline(
        self, agent_id: int, entry_id: str, *, outcome: str = "declined", away: bool = False
    ) -> None:
        """The agent turns the offer down; the entry goes back to its place in the queue."""
        if await self._media(entry_id) == CHAT:
            return await self._decline_chat(agent_id, entry_id, outcome=outcome, away=away)
        now = self.clock()
        async with self.db.transaction() as session:
            entry, agent = await self._offer_for_update(session, entry_id, agent_id)
            self._requeue(entry)
            # A decline leaves the agent free (keeping their idle time); a missed offer or a
            # closed desktop means nobody is there, so they are set away.
            reason = {"expired": "offer not answered", "withdrawn": "desktop closed"}.get(outcome)
            self._set_state(session, agent, "away" if away else "available", now, reason=reason)
            await self._decide_offer(session, entry_id, agent_id, outcome, now)
            queue = entry.queue
        await self._publish(
            {
                "type": "offer_withdrawn",
                "entry_id": entry_id,
                "agent_id": agent_id,
                "reason": reason or "declined",
            }
        )
        self._changed()
        await self._publish_state(agent_id, "away" if away else "available", reason=reason)
        await self._publish({"type": "queue_changed", "queue": queue})
        if away:
            await self.withdraw_chat_offers(agent_id)  # away: no chats either

    async def end(self, agent_id: int, entry_id: str, *, reason: str = "agent ended") -> None:
        """The conversation is over: the agent goes to (timed) wrap-up (a chat: the chat)."""
        if await self._media(entry_id) == CHAT:
            return await self._end_chat(agent_id, entry_id, reason=reason)
        now = self.clock()
        async with self.db.transaction() as session:
            entry = await self._entry_for_update(session, entry_id)
            if entry.agent_id != agent_id or entry.status != "connected":
                raise QueueError("this call is not connected to you")
            agent = await self._agent_for_update(session, agent_id)
            self._finish_talk(session, entry, agent, now, reason)
        await self._publish_state(agent_id, "wrap_up")
        await self._publish({"type": "wrap_up", "entry_id": entry_id, "agent_id": agent_id})

    def _finish_talk(
        self, session: AsyncSession, entry: QueueEntry, agent: Agent, now: dt.datetime, reason: str
    ) -> None:
        entry.status = "wrap_up"
        entry.ended_at = now
        entry.end_reason = reason
        until = now + dt.timedelta(seconds=self.wrap_up_seconds) if self.wrap_up_seconds else None
        entry.wrap_up_until = until
        self._set_state(session, agent, "wrap_up", now)
        agent.wrap_up_until = until

    async def wrap_up(self, agent_id: int, entry_id: str, code: str, notes: str = "") -> None:
        """The disposition is saved and the agent is free for the next call."""
        if code not in WRAP_UP_CODES:
            raise QueueError(
                f"the wrap-up code must be one of {', '.join(WRAP_UP_CODES)}", status=422
            )
        if await self._media(entry_id) == CHAT:
            return await self._wrap_up_chat(agent_id, entry_id, code, notes)
        now = self.clock()
        async with self.db.transaction() as session:
            entry = await self._entry_for_update(session, entry_id)
            if entry.agent_id != agent_id or entry.status not in ("wrap_up", "done"):
                raise QueueError("this call is not in wrap-up with you")
            agent = await self._agent_for_update(session, agent_id)
            session.add(
                Disposition(entry_id=entry_id, agent_id=agent_id, code=code, notes=notes, at=now)
            )
            call = await session.get(Call, entry.call_id)
            if call is not None:
                call.disposition = code
                call.ended_at = call.ended_at or entry.ended_at
            entry.status = "done"
            entry.wrapped_at = entry.wrapped_at or now
            if agent.state == "wrap_up":
                self._set_state(session, agent, "available", now)
                agent.wrap_up_until = None
                agent.idle_since = now
            free = agent.state == "available"
        if free:
            await self._publish_state(agent_id, "available")

    async def start_callback(self, agent_id: int, entry_id: str) -> str:
        """Marks a callback as started by the agent; returns the number to dial."""
        now = self.clock()
        async with self.db.transaction() as session:
            entry = await self._entry_for_update(session, entry_id)
            if entry.agent_id != agent_id or entry.kind != "callback":
                raise QueueError("this callback is not yours")
            callback = await session.scalar(select(Callback).where(Callback.entry_id == entry_id))
            if callback is None:
                raise QueueError("no callback is recorded for this entry", status=404)
            callback.status = "started"
            callback.started_at = now
            callback.agent_id = agent_id
            return callback.number

    async def set_state(self, agent_id: int, state: str, *, reason: str | None = None) -> str:
        """available / away / offline, as the agent asks; returns the state they are in."""
        if state not in ("available", "away", "offline"):
            raise QueueError(f"an agent cannot set the state '{state}'", status=422)
        now = self.clock()
        withdraw: str | None = None
        async with self.db.transaction() as session:
            agent = await self._agent_for_update(session, agent_id)
            if agent.state == state:
                return state
            if agent.state == "busy":
                raise QueueError("end the call before changing state")
            if agent.state == "offered":
                if state == "available":
                    return agent.state
                withdraw = await session.scalar(
                    select(QueueEntry.id).where(
                        QueueEntry.offered_to == agent_id,
                        QueueEntry.status == "offered",
                        QueueEntry.media == VOICE,
                    )
                )
            if agent.state == "wrap_up":
                await self._close_wrap_up(session, agent_id, now)
                agent.wrap_up_until = None
            if withdraw is None:
                self._set_state(session, agent, state, now, reason=reason)
                if state == "available":
                    agent.idle_since = now
        if state != "available":
            # A break stops chats too: open chat offers go to someone else.
            await self.withdraw_chat_offers(agent_id)
        if withdraw is not None:
            await self.decline(agent_id, withdraw, outcome="withdrawn", away=True)
            if state == "offline":
                return await self.set_state(agent_id, "offline", reason=reason)
            return "away"
        await self._publish_state(agent_id, state, reason=reason)
        return state

    async def desktop_gone(self, agent_id: int) -> None:
        """The agent's last desktop closed: nobody can take an offer, so it moves on; a call in
        progress is flagged for supervisors (the audio may go on, on the phone)."""
        async with self.db.session() as session:
            agent = await session.get(Agent, agent_id)
            state = agent.state if agent else None
        await self.withdraw_chat_offers(agent_id)
        if state in ("available", "offered"):
            await self.set_state(agent_id, "away", reason="desktop closed")
        elif state == "busy":
            async with self.db.transaction() as session:
                entry = await session.scalar(
                    select(QueueEntry).where(
                        QueueEntry.agent_id == agent_id,
                        QueueEntry.status == "connected",
                        QueueEntry.media == VOICE,
                    )
                )
                if entry is None:
                    return
                entry.flag = "the agent's desktop closed during the call"
                entry_id, queue = entry.id, entry.queue
            logger.warning("agent desktop closed during a call", extra={"detail": entry_id})
            await self._publish(
                {
                    "type": "flag",
                    "entry_id": entry_id,
                    "agent_id": agent_id,
                    "queue": queue,
                    "reason": "the agent's desktop closed during the call",
                }
            )

    # -- the caller leaves ---------------------------------------------------------------------

    async def abandon(self, entry_id: str, *, reason: str = "caller hung up") -> str | None:
        """The caller hung up. Waiting: the entry is abandoned. Offered: the offer is withdrawn
        and the agent is free again. Connected: the agent goes to wrap-up. Returns the status
        the entry had, or None when it was no longer active."""
        if await self._media(entry_id) == CHAT:
            return await self._abandon_chat(entry_id, reason)
        now = self.clock()
        async with self.db.transaction() as session:
            entry = await session.get(QueueEntry, entry_id, with_for_update=True)
            if entry is None or entry.status not in ("waiting", "offered", "connected"):
                return None
            previous, agent_id, queue = entry.status, entry.offered_to, entry.queue
            if previous in ("waiting", "offered"):
                await self._mark_abandoned(session, entry, now, reason)
            if previous == "offered" and agent_id is not None:
                agent = await self._agent_for_update(session, agent_id)
                self._set_state(session, agent, "available", now)
                await self._decide_offer(session, entry_id, agent_id, "withdrawn", now)
            if previous == "connected":
                agent_id = entry.agent_id
                assert agent_id is not None
                agent = await self._agent_for_update(session, agent_id)
                self._finish_talk(session, entry, agent, now, reason)
        logger.info("caller left the queue", extra={"detail": f"{entry_id} ({previous})"})
        if previous == "offered" and agent_id is not None:
            await self._publish(
                {
                    "type": "offer_withdrawn",
                    "entry_id": entry_id,
                    "agent_id": agent_id,
                    "reason": reason,
                }
            )
            await self._publish_state(agent_id, "available")
        if previous == "connected" and agent_id is not None:
            await self._publish({"type": "caller_left", "entry_id": entry_id, "agent_id": agent_id})
            await self._publish_state(agent_id, "wrap_up")
        await self._publish({"type": "queue_changed", "queue": queue})
        return previous

    async def return_to_queue(self, entry_id: str, *, reason: str) -> bool:
        """A phone caller whose agent never arrived or dropped out (the browser closed during
        a warm transfer): the caller goes back to the place they had, and the agent, who is
        evidently not there, is set away. False when the entry is no longer with an agent."""
        now = self.clock()
        async with self.db.transaction() as session:
            entry = await session.get(QueueEntry, entry_id, with_for_update=True)
            if entry is None or entry.media != VOICE:
                return False
            if entry.status not in ("offered", "connected"):
                return False
            agent_id = entry.agent_id if entry.status == "connected" else entry.offered_to
            previous = entry.status
            self._requeue(entry)
            entry.agent_id = None
            entry.connected_at = None
            entry.flag = None
            queue = entry.queue
            if agent_id is not None:
                agent = await self._agent_for_update(session, agent_id)
                self._set_state(session, agent, "away", now, reason=reason)
                if previous == "offered":
                    await self._decide_offer(session, entry_id, agent_id, "withdrawn", now)
        logger.warning("caller returned to the queue", extra={"detail": f"{entry_id}: {reason}"})
        if agent_id is not None:
            await self._publish(
                {
                    "type": "call_returned",
                    "entry_id": entry_id,
                    "agent_id": agent_id,
                    "reason": reason,
                }
            )
            await self._publish_state(agent_id, "away", reason=reason)
        self._changed()
        await self.dispatch()
        await self._publish({"type": "queue_changed", "queue": queue})
        return True

    async def to_callback(self, entry_id: str, number: str) -> bool:
        """A waiting caller would rather be called back: the entry becomes a callback and keeps
        its place, and the caller can hang up. An offer of the call is withdrawn (the agent
        gets the callback instead, as routing decides). False when it is no longer waiting."""
        now = self.clock()
        withdrawn: int | None = None
        async with self.db.transaction() as session:
            entry = await session.get(QueueEntry, entry_id, with_for_update=True)
            if (
                entry is None
                or entry.status not in IN_QUEUE
                or entry.kind != "call"
                or entry.media != VOICE
            ):
                return False
            if entry.status == "offered" and entry.offered_to is not None:
                withdrawn = entry.offered_to
                agent = await self._agent_for_update(session, withdrawn)
                self._set_state(session, agent, "available", now)
                await self._decide_offer(session, entry_id, withdrawn, "withdrawn", now)
                self._requeue(entry)
            entry.kind = "callback"
            entry.callback_number = number
            session.add(
                Callback(
                    entry_id=entry.id,
                    handoff_id=entry.handoff_id,
                    number=number,
                    requested_at=entry.enqueued_at,
                )
            )
            call = await session.get(Call, entry.call_id)
            if call is not None:
                call.outcome = "callback"
                call.ended_at = now
            queue = entry.queue
        logger.info("waiting caller chose a callback", extra={"detail": entry_id})
        if withdrawn is not None:
            await self._publish(
                {
                    "type": "offer_withdrawn",
                    "entry_id": entry_id,
                    "agent_id": withdrawn,
                    "reason": "the caller chose a callback",
                }
            )
            await self._publish_state(withdrawn, "available")
        self._changed()
        await self._publish({"type": "queue_changed", "queue": queue})
        return True

    async def place(self, entry_id: str) -> dict[str, Any] | None:
        """Where one caller stands, for what they are told while they wait: their status, their
        1-based position (callers served before them: higher priority, or the same priority
        and waiting longer) and their own estimated wait; with an agent, who."""
        async with self.db.session() as session:
            entry = await session.get(QueueEntry, entry_id)
            if entry is None:
                return None
            ahead = await session.scalar(
                select(func.count()).where(
                    QueueEntry.queue == entry.queue,
                    QueueEntry.status.in_(IN_QUEUE),
                    QueueEntry.id != entry.id,
                    (QueueEntry.priority > entry.priority)
                    | (
                        (QueueEntry.priority == entry.priority)
                        & (QueueEntry.enqueued_at < entry.enqueued_at)
                    ),
                )
            )
            agent = await session.get(Agent, entry.agent_id) if entry.agent_id else None
        position = int(ahead or 0) + 1
        figures = (await self.stats()).get(entry.queue)
        wait = None
        if figures is not None:
            wait = estimate_wait(
                WaitInputs(
                    arrivals=figures.arrivals,
                    window_s=ARRIVAL_WINDOW,
                    aht_s=figures.aht,
                    agents_staffed=figures.agents_staffed,
                    agents_available=figures.agents_available,
                    position=position,
                )
            )
        return {
            "status": entry.status,
            "queue": entry.queue,
            "position": position,
            "estimated_wait": wait,
            "agent_id": entry.agent_id,
            "agent_name": agent.display_name if agent else None,
        }

    async def entry_for_handoff(self, handoff_id: str) -> str | None:
        async with self.db.session() as session:
            return await session.scalar(
                select(QueueEntry.id).where(QueueEntry.handoff_id == handoff_id)
            )

    # -- the once-a-second sweep ---------------------------------------------------------------

    async def sweep(self) -> None:
        """Expired offers move on, timed wrap-ups end, long waits overflow."""
        now = self.clock()
        async with self.db.session() as session:
            expired = (
                await session.execute(
                    select(QueueEntry.id, QueueEntry.offered_to).where(
                        QueueEntry.status == "offered", QueueEntry.offer_expires_at <= now
                    )
                )
            ).all()
            wrapped = (
                await session.scalars(
                    select(Agent.id).where(Agent.state == "wrap_up", Agent.wrap_up_until <= now)
                )
            ).all()
        for entry_id, agent_id in expired:
            if agent_id is None:
                continue
            try:
                await self.decline(agent_id, entry_id, outcome="expired", away=True)
                logger.info("offer not answered; agent set away", extra={"detail": entry_id})
            except QueueError:
                pass  # accepted or withdrawn meanwhile
        for agent_id in wrapped:
            await self._end_wrap_up(agent_id, now)
        await self._sweep_chats(now)
        await self._overflow(now)

    async def _end_wrap_up(self, agent_id: int, now: dt.datetime) -> None:
        async with self.db.transaction() as session:
            agent = await session.get(Agent, agent_id, with_for_update=True)
            if agent is None or agent.state != "wrap_up":
                return
            if agent.wrap_up_until is None or agent.wrap_up_until > now:
                return
            await self._close_wrap_up(session, agent_id, now)
            self._set_state(session, agent, "available", now, reason="wrap-up time over")
            agent.wrap_up_until = None
            agent.idle_since = now
        await self._publish_state(agent_id, "available", reason="wrap-up time over")

    async def _close_wrap_up(self, session: AsyncSession, agent_id: int, now: dt.datetime) -> None:
        entries = (
            await session.scalars(
                select(QueueEntry).where(
                    QueueEntry.agent_id == agent_id,
                    QueueEntry.status == "wrap_up",
                    # a chat's wrap-up is its own, however the agent's call ends
                    QueueEntry.media == VOICE,
                )
            )
        ).all()
        for entry in entries:
            entry.status = "done"
            entry.wrapped_at = now

    async def _overflow(self, now: dt.datetime) -> None:
        moved: set[str] = set()
        for name, config in self.queues.items():
            if config.overflow_after is None or config.overflow_to is None:
                continue
            target = config.overflow_to
            cutoff = now - dt.timedelta(seconds=config.overflow_after)
            async with self.db.transaction() as session:
                entries = (
                    await session.scalars(
                        select(QueueEntry)
                        .where(
                            QueueEntry.status == "waiting",
                            QueueEntry.queue == name,
                            QueueEntry.enqueued_at <= cutoff,
                        )
                        .with_for_update(skip_locked=True)
                    )
                ).all()
                for entry in entries:
                    entry.queue = target
                    entry.skills = sorted(
                        {*self._queue_skills(target)}
                        | (set(entry.skills) - set(self._queue_skills(name)))
                    )
                    entry.overflowed_at = now
                if entries:
                    moved |= {name, target}
                    logger.info(
                        "calls overflowed",
                        extra={"queue": name, "detail": f"{len(entries)} to {target}"},
                    )
        for queue in moved:
            await self._publish({"type": "queue_changed", "queue": queue})
        if moved:
            self._changed()


__all__ = [
    "ANGER_BONUS",
    "IN_QUEUE",
    "PRIORITY_SCORE",
    "STAFFED",
    "VIP_BONUS",
    "WRAP_UP_CODES",
    "QueueError",
    "QueueService",
    "QueueStats",
    "agent_view",
    "has_skills",
    "priority_label",
    "priority_score",
    "utcnow",
]
