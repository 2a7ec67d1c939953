"""Stored calls for the quality tests, written row by row as the queues write them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from voicebot.store.db import Database
from voicebot.store.models import (
    Agent,
    Call,
    Callback,
    CallEvent,
    Disposition,
    Handoff,
    QueueEntry,
    Turn,
)

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)

# (role, text, seconds after the call started, intent)
Line = tuple[str, str, float, str | None]


@dataclass
class Leg:
    """The human leg: a queue entry and what became of it."""

    status: str = "done"
    agent: str | None = "Ann Agent"  # None: nobody took it
    talk_seconds: float = 120
    disposition: str | None = "resolved"
    notes: str = ""
    kind: str = "call"
    callback: str | None = None  # a Callback row's status


@dataclass
class Seed:
    turns: Sequence[Line] = ()
    flows: Sequence[tuple[str, str]] = ()
    no_answer: Sequence[str] = ()
    intent: str | None = None
    anger: float | None = None
    ended: bool = True
    outcome: str = "ended"
    handoff_summary: str | None = None  # a handoff with this packet summary
    packet: dict[str, Any] = field(default_factory=dict)
    leg: Leg | None = None
    started: dt.datetime = T0
    caller_name: str | None = None


async def seed_call(db: Database, seed: Seed, call_id: str | None = None) -> str:
    call_id = call_id or uuid.uuid4().hex[:12]
    start = seed.started
    end = start + dt.timedelta(seconds=(seed.turns[-1][2] if seed.turns else 0) + 5)
    async with db.transaction() as session:
        session.add(
            Call(
                id=call_id,
                started_at=start,
                ended_at=end if seed.ended and seed.leg is None else None,
                channel="web",
                intent=seed.intent,
                outcome=seed.outcome,
                anger=seed.anger,
                caller_name=seed.caller_name,
                bot_ended_at=end if seed.ended else None,
            )
        )
        await session.flush()
        for seq, (role, text, offset, intent) in enumerate(seed.turns):
            session.add(
                Turn(
                    call_id=call_id,
                    seq=seq,
                    role=role,
                    text=text,
                    at=start + dt.timedelta(seconds=offset),
                    intent=intent,
                )
            )
        for name, label in seed.flows:
            session.add(CallEvent(call_id=call_id, at=end, kind="flow", name=name, label=label))
        for question in seed.no_answer:
            session.add(CallEvent(call_id=call_id, at=end, kind="no_answer", name=question))
        if seed.handoff_summary is None and seed.leg is None:
            return call_id
        handoff_id = f"h-{call_id}"
        session.add(
            Handoff(
                id=handoff_id,
                call_id=call_id,
                created_at=end - dt.timedelta(seconds=2),
                queue="billing",
                priority="normal",
                reason="caller asked for a person",
                intent=seed.intent,
                packet={"summary": seed.handoff_summary or "", **seed.packet},
                reason_kind="asked",
            )
        )
        leg = seed.leg
        if leg is None:
            return call_id
        agent_id = None
        if leg.agent is not None:
            agent = Agent(
                username=f"a-{call_id}",
                display_name=leg.agent,
                password_hash="x",
                state_since=start,
                created_at=start,
            )
            session.add(agent)
            await session.flush()
            agent_id = agent.id
        entry_id = f"e-{call_id}"
        connected = end + dt.timedelta(seconds=30) if agent_id is not None else None
        session.add(
            QueueEntry(
                id=entry_id,
                handoff_id=handoff_id,
                call_id=call_id,
                kind=leg.kind,
                queue="billing",
                original_queue="billing",
                enqueued_at=end,
                status=leg.status,
                agent_id=agent_id,
                connected_at=connected,
                ended_at=(
                    connected + dt.timedelta(seconds=leg.talk_seconds)
                    if connected is not None
                    else end + dt.timedelta(seconds=40)
                ),
            )
        )
        await session.flush()
        if leg.disposition is not None and agent_id is not None:
            session.add(
                Disposition(
                    entry_id=entry_id,
                    agent_id=agent_id,
                    code=leg.disposition,
                    notes=leg.notes,
                    at=end + dt.timedelta(seconds=200),
                )
            )
        if leg.callback is not None:
            session.add(
                Callback(
                    entry_id=entry_id,
                    handoff_id=handoff_id,
                    number="+447700900123",
                    requested_at=end,
                    status=leg.callback,
                )
            )
    return call_id
