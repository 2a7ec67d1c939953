"""What the queues store of a call beyond its place in a queue: the call, its transcript, its
handoff packets, and the bot leg's figures that reports read (voicebot/analytics/).

A mixin of QueueService: the same database and clock, kept apart from routing because it is
about history, not about who takes the next call.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.channels.identity import customer_of
from voicebot.engine.state import CallState
from voicebot.handoff.packet import CallerInfo, HandoffPacket, TranscriptLine
from voicebot.store.db import Database
from voicebot.store.models import Call, CallEvent, Handoff, Turn

logger = logging.getLogger("voicebot.queues")


class QueueObserver(Protocol):
    """Told what this node records, after it is committed (the Prometheus counters of
    voicebot/api/metrics.py). Called on the event loop: it must not block."""

    def call_recorded(self, state: CallState, *, channel: str, outcome: str) -> None: ...

    def handoff_recorded(self, *, queue: str, reason: str | None) -> None: ...

    def call_connected(self, *, queue: str, waited: float) -> None: ...


class CallRecords:
    db: Database
    clock: Callable[[], dt.datetime]
    observer: QueueObserver | None = None

    def _observe(self, tell: Callable[[QueueObserver], None]) -> None:
        """Tell the observer, if any; its failure is logged and never undoes a record."""
        if self.observer is None:
            return
        try:
            tell(self.observer)
        except Exception:
            logger.exception("the queue observer failed")

    async def record_handoff(self, packet: HandoffPacket, *, channel: str, outcome: str) -> None:
        """Store a handoff that does not wait in these queues (a transfer to an outside ACD or
        a phone), so that the desktop there can fetch the packet by the id in the SIP headers
        (``GET /api/handoffs/{id}``). Idempotent by packet id."""
        async with self.db.transaction() as session:
            if await session.get(Handoff, packet.id) is not None:
                return
            await self._write_handoff(
                session, packet, packet.queue, channel=channel, outcome=outcome
            )
        self._observe(lambda o: o.handoff_recorded(queue=packet.queue, reason=packet.reason_kind))

    async def _write_handoff(
        self,
        session: AsyncSession,
        packet: HandoffPacket,
        queue: str,
        *,
        channel: str,
        outcome: str,
    ) -> None:
        """The call, its turns and the handoff's packet."""
        await self._write_call(
            session,
            call_id=packet.call_id,
            caller=packet.caller,
            intent=packet.intent.name,
            transcript=packet.transcript,
            started=packet.transcript[0].at if packet.transcript else packet.created_at,
            channel=channel,
            outcome=outcome,
        )
        session.add(
            Handoff(
                id=packet.id,
                call_id=packet.call_id,
                created_at=packet.created_at,
                queue=queue,
                priority=packet.priority,
                reason=packet.reason,
                intent=packet.intent.name,
                packet=packet.model_dump(mode="json"),
                reason_kind=packet.reason_kind,
            )
        )

    async def record_call(self, state: CallState, *, channel: str) -> None:
        """Store the bot's leg of a call once it is over: who called, the transcript, how it
        ended (the flow's disposition), and what analytics reads: the sentiment, how each flow
        ended, the questions the knowledge base could not answer, each turn's latency.

        A call handed off was stored at its handoff (the queue entry needs it); this adds what
        came after and leaves its outcome and end to the human leg. Called twice for one call,
        it adds nothing twice."""
        now = self.clock()
        handed_off = state.handoff is not None
        state.forget_cards()  # the call is over (the caller may have hung up mid-payment)
        async with self.db.transaction() as session:
            existing = await session.get(Call, state.call_id)
            first_time = existing is None or existing.bot_ended_at is None
            outcome = "handoff" if handed_off else "ended"
            if existing is not None and handed_off and existing.outcome:
                outcome = existing.outcome  # handoff, transferred, callback, abandoned
            call = await self._write_call(
                session,
                call_id=state.call_id,
                caller=state.caller,
                intent=state.intent,
                transcript=state.transcript,
                started=state.transcript[0].at if state.transcript else now,
                channel=channel,
                outcome=outcome,
            )
            if not handed_off:
                call.ended_at = call.ended_at or now
                call.disposition = state.disposition
            trend = state.sentiment_trend
            call.sentiment = round(sum(trend) / len(trend), 4) if trend else state.sentiment
            call.anger = state.anger
            call.language = state.language
            if first_time:
                call.bot_ended_at = now
                session.add_all(_call_events(state, now))
        if first_time:
            self._observe(lambda o: o.call_recorded(state, channel=channel, outcome=outcome))

    async def _write_call(
        self,
        session: AsyncSession,
        *,
        call_id: str,
        caller: CallerInfo,
        intent: str | None,
        transcript: list[TranscriptLine],
        started: dt.datetime,
        channel: str,
        outcome: str,
    ) -> Call:
        call = await session.get(Call, call_id)
        stored = 0
        if call is None:
            call = Call(id=call_id, started_at=started, channel=channel)
            session.add(call)
            await session.flush()  # the call before its turns (see enqueue)
        else:  # a call stored before (an earlier handoff): add only the newer lines
            stored = (
                await session.scalar(
                    select(func.count()).select_from(Turn).where(Turn.call_id == call_id)
                )
            ) or 0
        call.caller_number = caller.number
        # one history per customer across channels (voicebot/channels/identity.py)
        call.customer_id = customer_of(caller) or call.customer_id
        call.caller_name = caller.name
        call.vip = caller.vip
        call.intent = intent
        call.outcome = outcome
        for seq, line in enumerate(transcript[stored:], start=stored):
            session.add(
                Turn(
                    call_id=call_id,
                    seq=seq,
                    role=line.role,
                    text=line.text,
                    at=line.at,
                    intent=line.intent,
                )
            )
        return call


def _call_events(state: CallState, at: dt.datetime) -> list[CallEvent]:
    """The bot leg's events: each flow and how it ended (one still running when the caller
    hung up was abandoned), each unanswered question, each timed turn."""
    events = [
        CallEvent(
            call_id=state.call_id, at=at, kind="flow", name=flow[:200], label=outcome or "abandoned"
        )
        for flow, outcome in state.flow_outcomes
    ]
    events += [
        CallEvent(call_id=state.call_id, at=at, kind="no_answer", name=question[:200])
        for question in state.unanswered
    ]
    events += [
        CallEvent(
            call_id=state.call_id,
            at=at,
            kind="turn",
            label=str(timing.get("ended_by") or "")[:32] or None,
            value=float(timing["total_ms"]),
        )
        for timing in state.timings
        if isinstance(timing.get("total_ms"), int | float)
    ]
    return events
